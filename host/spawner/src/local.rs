//! The local process spawner: one `jupyterhub-singleuser` process per server, in its own process group so that it
//! outlives a hub restart, with its output in a log file per server. A server is identified by its pid *and* the
//! kernel's start time for that pid, so a recycled pid is never mistaken for the server after a restart.
//!
//! With [`RunAs::SystemUsers`] each server runs as the system user of its hub user (`system_user.rs`), in that
//! user's home or `work_dir`; [`RunAs::HubUser`] runs every server as the hub's own user, which only a hub that is
//! not root and whose site said so should do.

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::{PollStatus, SpawnError, SpawnRequest, Spawner, SpawnerState, Started, system_user};

/// How the local spawner runs servers.
#[derive(Debug, Clone)]
pub struct LocalSpawnerConfig {
    /// `Spawner.cmd`, e.g. `["jupyterhub-singleuser"]`.
    pub cmd: Vec<String>,
    /// `Spawner.args`, e.g. `["--allow-root"]`.
    pub args: Vec<String>,
    /// The address servers listen on and the proxy reaches them at.
    pub ip: String,
    /// One `<user>[-<server>].log` per server goes here.
    pub log_dir: PathBuf,
    /// How long a server gets to exit after SIGTERM before SIGKILL.
    pub term_timeout: Duration,
    /// Variables passed through from the hub's own environment (`Spawner.env_keep`).
    pub env_keep: Vec<String>,
    /// Whose Unix account each server runs as.
    pub run_as: RunAs,
    /// Each server's working directory, `{username}` replaced (`wasmhub.local.workDir`); `None` is the system
    /// user's home, or the hub's working directory with [`RunAs::HubUser`]. Created when missing.
    pub work_dir: Option<String>,
}

/// Whose Unix account a local server runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunAs {
    /// The hub's own: every server can read the hub's files and every other server's. For a one-person trial
    /// without root, or tests.
    #[default]
    HubUser,
    /// The system user named like the hub user, never root; with `create`, missing users are created
    /// (`useradd --create-home`). Needs a hub running as root.
    SystemUsers { create: bool },
}

impl Default for LocalSpawnerConfig {
    fn default() -> LocalSpawnerConfig {
        let env_keep = [
            "PATH",
            "PYTHONPATH",
            "LD_LIBRARY_PATH",
            "CONDA_ROOT",
            "CONDA_DEFAULT_ENV",
            "VIRTUAL_ENV",
            "LANG",
            "LC_ALL",
            "JUPYTERHUB_SINGLEUSER_APP",
            "USER",
            "HOME",
            "SHELL",
        ];
        LocalSpawnerConfig {
            cmd: vec!["jupyterhub-singleuser".into()],
            args: Vec::new(),
            ip: "127.0.0.1".into(),
            log_dir: PathBuf::from("wasmhub-logs"),
            term_timeout: Duration::from_secs(5),
            env_keep: env_keep.iter().map(|name| name.to_string()).collect(),
            run_as: RunAs::HubUser,
            work_dir: None,
        }
    }
}

/// What the local spawner persists per server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct LocalState {
    port: u16,
    log: PathBuf,
    /// Set once started.
    pid: Option<i32>,
    /// The kernel's start time of `pid` (clock ticks since boot), to tell our process from a recycled pid.
    start_time: Option<u64>,
}

impl LocalState {
    fn parse(state: &SpawnerState) -> Result<LocalState, SpawnError> {
        serde_json::from_str(&state.0).map_err(|error| SpawnError::BadState(error.to_string()))
    }

    fn to_state(&self) -> SpawnerState {
        SpawnerState(serde_json::to_string(self).expect("state serialises"))
    }
}

/// Runs servers as local child processes.
pub struct LocalProcessSpawner {
    config: LocalSpawnerConfig,
    /// Exit codes of our own children, collected by their reaper tasks (adopted processes are reaped by init).
    exited: Arc<Mutex<HashMap<i32, Option<i32>>>>,
}

impl LocalProcessSpawner {
    /// A spawner with `config`. Whether the hub may run servers as it does is the caller's decision (`wasmhub
    /// serve` refuses [`RunAs::HubUser`] as root).
    pub fn new(config: LocalSpawnerConfig) -> LocalProcessSpawner {
        LocalProcessSpawner { config, exited: Arc::default() }
    }

    /// `state`, with the pid and start time of its process filled in when an earlier hub died between starting
    /// it and recording them: the process group leader whose environment gives this server's address (its
    /// `JUPYTERHUB_SERVICE_URL`, unique by port; kernels inherit it but lead no group of their own).
    fn located(&self, mut state: LocalState) -> LocalState {
        if state.pid.is_some() {
            return state;
        }
        let needle = format!("JUPYTERHUB_SERVICE_URL=http://{}:{}/", self.config.ip, state.port);
        let Ok(entries) = std::fs::read_dir("/proc") else { return state };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
            if process_group(pid) != Some(pid) {
                continue;
            }
            let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
            if environ.split(|byte| *byte == 0).any(|variable| variable.starts_with(needle.as_bytes())) {
                state.pid = Some(pid);
                state.start_time = process_start_time(pid).map(|(started, _)| started);
                break;
            }
        }
        state
    }

    fn is_running(&self, state: &LocalState) -> PollStatus {
        let (Some(pid), Some(start_time)) = (state.pid, state.start_time) else {
            return PollStatus::Exited { code: None };
        };
        // The lock is only held for one map operation, so it cannot be poisoned by a panic elsewhere.
        if let Some(code) = self.exited.lock().expect("exit map").get(&pid) {
            return PollStatus::Exited { code: *code };
        }
        match process_start_time(pid) {
            Some((started, zombie)) if started == start_time && !zombie => PollStatus::Running,
            _ => PollStatus::Exited { code: None },
        }
    }
}

#[async_trait::async_trait]
impl Spawner for LocalProcessSpawner {
    async fn prepare(&self, request: &SpawnRequest) -> Result<SpawnerState, SpawnError> {
        // Like JupyterHub's random_port: the port is free now; the server binds it a moment later.
        let port = std::net::TcpListener::bind((self.config.ip.as_str(), 0))
            .and_then(|listener| listener.local_addr())
            .map_err(SpawnError::Prepare)?
            .port();
        let file_name = if request.server_name.is_empty() {
            format!("{}.log", request.user)
        } else {
            format!("{}-{}.log", request.user, request.server_name)
        };
        let log = self.config.log_dir.join(file_name.replace('/', "_"));
        Ok(LocalState { port, log, pid: None, start_time: None }.to_state())
    }

    async fn start(&self, request: &SpawnRequest, prepared: &SpawnerState) -> Result<Started, SpawnError> {
        let mut state = LocalState::parse(prepared)?;
        let program_and_args: Vec<&String> = self.config.cmd.iter().chain(&self.config.args).collect();
        let command_text = program_and_args.iter().map(|part| part.as_str()).collect::<Vec<_>>().join(" ");
        let start_error = |source| SpawnError::Start { command: command_text.clone(), source };
        let Some((program, args)) = program_and_args.split_first() else {
            return Err(start_error(std::io::Error::other("Spawner.cmd is empty")));
        };
        std::fs::create_dir_all(&self.config.log_dir).map_err(start_error)?;
        // The hub writes the log through the server's stdout: the file stays the hub's, readable by it alone.
        let log =
            std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&state.log).map_err(start_error)?;
        let work_dir = self.config.work_dir.as_ref().map(|dir| PathBuf::from(dir.replace("{username}", &request.user)));

        let mut command = tokio::process::Command::new(program);
        command.args(args).env_clear();
        for name in &self.config.env_keep {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        match self.config.run_as {
            RunAs::SystemUsers { create } => {
                let user = system_user::resolve(&request.user, create).await?;
                let cwd = match &work_dir {
                    Some(dir) => {
                        system_user::private_dir(&user, dir)?;
                        dir.clone()
                    }
                    None => user.home.clone(),
                };
                command
                    .current_dir(cwd)
                    .env("HOME", &user.home)
                    .env("USER", &user.name)
                    .env("LOGNAME", &user.name)
                    .env("SHELL", &user.shell);
                // SAFETY: the closure only makes system calls (setgroups, setgid, setuid, umask), which is what may
                // run between fork and exec.
                #[allow(unsafe_code)]
                unsafe {
                    command.pre_exec(system_user::become_user(&user));
                }
            }
            RunAs::HubUser => {
                if let Some(dir) = &work_dir {
                    std::fs::create_dir_all(dir).map_err(start_error)?;
                    command.current_dir(dir);
                }
            }
        }
        command.envs(&request.env);
        let url = format!("http://{}:{}", self.config.ip, state.port);
        command.env("JUPYTERHUB_SERVICE_URL", format!("{url}{}", request.service_prefix));
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(start_error)?)
            .stderr(log)
            // Its own process group: signals to the hub do not reach it, and stop() can signal its children too.
            .process_group(0)
            // A hub that exits must leave its servers running, to adopt them when it starts again.
            .kill_on_drop(false);
        let mut child = command.spawn().map_err(start_error)?;
        let pid = child.id().expect("a just-spawned child has a pid") as i32;
        state.pid = Some(pid);
        state.start_time = process_start_time(pid).map(|(started, _)| started);

        let exited = self.exited.clone();
        tokio::spawn(async move {
            let code = child.wait().await.ok().and_then(|status| status.code());
            exited.lock().expect("exit map").insert(pid, code);
        });
        tracing::info!(user = %request.user, server = %request.server_name, pid, %url, "started single-user server");
        Ok(Started { url, state: state.to_state() })
    }

    async fn poll(&self, state: &SpawnerState) -> Result<PollStatus, SpawnError> {
        Ok(self.is_running(&self.located(LocalState::parse(state)?)))
    }

    /// A server an earlier hub started but died before recording its pid: found by its address.
    async fn resume(&self, prepared: &SpawnerState) -> Result<Option<Started>, SpawnError> {
        let state = self.located(LocalState::parse(prepared)?);
        if self.is_running(&state) != PollStatus::Running {
            return Ok(None);
        }
        let url = format!("http://{}:{}", self.config.ip, state.port);
        Ok(Some(Started { url, state: state.to_state() }))
    }

    async fn stop(&self, state: &SpawnerState) -> Result<(), SpawnError> {
        let state = self.located(LocalState::parse(state)?);
        let Some(pid) = state.pid else { return Ok(()) };
        for (signal, patience) in
            [(Signal::SIGTERM, self.config.term_timeout), (Signal::SIGKILL, Duration::from_secs(5))]
        {
            if self.is_running(&state) != PollStatus::Running {
                return Ok(());
            }
            // The whole group: the server's kernels and terminals go with it.
            let _ = killpg(Pid::from_raw(pid), signal);
            let deadline = tokio::time::Instant::now() + patience;
            while tokio::time::Instant::now() < deadline {
                if self.is_running(&state) != PollStatus::Running {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        match self.is_running(&state) {
            PollStatus::Running => Err(SpawnError::Unkillable { pid }),
            PollStatus::Exited { .. } => Ok(()),
        }
    }
}

/// The process group of `pid` (field 5 of `/proc/<pid>/stat`).
fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(2)?.parse().ok()
}

/// The start time (field 22 of `/proc/<pid>/stat`) and whether the process is a zombie.
fn process_start_time(pid: i32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; the fields after its last ')' are plain.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let zombie = fields.first()? == &"Z";
    let start_time = fields.get(19)?.parse().ok()?;
    Some((start_time, zombie))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A stand-in single-user server: it serves HTTP where JUPYTERHUB_SERVICE_URL says and logs its environment.
    const SERVER: &str = r#"
import http.server, os, sys, urllib.parse
url = urllib.parse.urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
print("user", os.environ["JUPYTERHUB_USER"], "prefix", os.environ["JUPYTERHUB_SERVICE_PREFIX"], flush=True)
http.server.HTTPServer((url.hostname, url.port), http.server.SimpleHTTPRequestHandler).serve_forever()
"#;

    fn spawner(dir: &std::path::Path, script: &str) -> LocalProcessSpawner {
        LocalProcessSpawner::new(LocalSpawnerConfig {
            cmd: vec!["python3".into(), "-c".into(), script.into()],
            log_dir: dir.to_owned(),
            term_timeout: Duration::from_millis(500),
            ..LocalSpawnerConfig::default()
        })
    }

    fn request(user: &str) -> SpawnRequest {
        let mut env = BTreeMap::new();
        env.insert("JUPYTERHUB_USER".to_owned(), user.to_owned());
        env.insert("JUPYTERHUB_SERVICE_PREFIX".to_owned(), format!("/user/{user}/"));
        SpawnRequest {
            user: user.into(),
            server_name: String::new(),
            service_prefix: format!("/user/{user}/"),
            env,
            ..SpawnRequest::default()
        }
    }

    async fn wait_until_answers(url: &str) {
        let address = url.trim_start_matches("http://").to_owned();
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(&address).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("nothing answers at {url}");
    }

    #[tokio::test]
    async fn starts_polls_and_stops_a_server_with_its_own_log() {
        let dir = tempfile::tempdir().unwrap();
        let spawner = spawner(dir.path(), SERVER);
        let request = request("alice");
        let prepared = spawner.prepare(&request).await.unwrap();
        let started = spawner.start(&request, &prepared).await.unwrap();
        wait_until_answers(&started.url).await;
        assert_eq!(spawner.poll(&started.state).await.unwrap(), PollStatus::Running);
        let log = std::fs::read_to_string(dir.path().join("alice.log")).unwrap();
        assert!(log.contains("user alice prefix /user/alice/"), "log: {log}");

        spawner.stop(&started.state).await.unwrap();
        assert!(matches!(spawner.poll(&started.state).await.unwrap(), PollStatus::Exited { .. }));
        spawner.stop(&started.state).await.expect("stopping a stopped server succeeds");
    }

    #[tokio::test]
    async fn a_server_that_ignores_sigterm_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let stubborn = format!("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n{SERVER}");
        let spawner = spawner(dir.path(), &stubborn);
        let request = request("bob");
        let started = spawner.start(&request, &spawner.prepare(&request).await.unwrap()).await.unwrap();
        wait_until_answers(&started.url).await;
        let began = std::time::Instant::now();
        spawner.stop(&started.state).await.unwrap();
        assert!(began.elapsed() >= Duration::from_millis(500), "SIGKILL only after the term timeout");
        assert!(matches!(spawner.poll(&started.state).await.unwrap(), PollStatus::Exited { .. }));
    }

    #[tokio::test]
    async fn a_new_spawner_adopts_a_running_server_from_its_state() {
        let dir = tempfile::tempdir().unwrap();
        let request = request("carol");
        let state = {
            let first_hub = spawner(dir.path(), SERVER);
            let started = first_hub.start(&request, &first_hub.prepare(&request).await.unwrap()).await.unwrap();
            wait_until_answers(&started.url).await;
            started.state
        };
        let second_hub = spawner(dir.path(), SERVER);
        assert_eq!(second_hub.poll(&state).await.unwrap(), PollStatus::Running, "adopted after a restart");
        second_hub.stop(&state).await.unwrap();
        assert!(matches!(second_hub.poll(&state).await.unwrap(), PollStatus::Exited { .. }));
    }

    #[tokio::test]
    async fn a_server_whose_pid_was_never_recorded_is_found_by_its_address() {
        let dir = tempfile::tempdir().unwrap();
        let request = request("erin");
        let first_hub = spawner(dir.path(), SERVER);
        let prepared = first_hub.prepare(&request).await.unwrap();
        let started = first_hub.start(&request, &prepared).await.unwrap();
        wait_until_answers(&started.url).await;
        // A new hub that only has the prepared state (the old one died before storing the pid).
        let second_hub = spawner(dir.path(), SERVER);
        assert_eq!(second_hub.poll(&prepared).await.unwrap(), PollStatus::Running);
        let resumed = second_hub.resume(&prepared).await.unwrap().expect("found");
        assert_eq!(resumed.url, started.url);
        assert_eq!(LocalState::parse(&resumed.state).unwrap(), LocalState::parse(&started.state).unwrap());
        second_hub.stop(&prepared).await.unwrap();
        assert!(matches!(second_hub.poll(&started.state).await.unwrap(), PollStatus::Exited { .. }));
        assert!(second_hub.resume(&prepared).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_recycled_pid_is_not_mistaken_for_the_server() {
        let own_pid = std::process::id() as i32;
        let (start_time, _) = process_start_time(own_pid).unwrap();
        let spawner = spawner(std::path::Path::new("/tmp"), SERVER);
        let state =
            LocalState { port: 1, log: "/dev/null".into(), pid: Some(own_pid), start_time: Some(start_time + 1) };
        assert!(matches!(spawner.poll(&state.to_state()).await.unwrap(), PollStatus::Exited { .. }));
        spawner.stop(&state.to_state()).await.expect("nothing is signalled");
    }

    #[tokio::test]
    async fn state_from_elsewhere_is_a_clear_error() {
        let spawner = spawner(std::path::Path::new("/tmp"), SERVER);
        let error = spawner.poll(&SpawnerState("{\"pod\":\"x\"}".into())).await.unwrap_err();
        assert!(matches!(error, SpawnError::BadState(_)));
    }
}
