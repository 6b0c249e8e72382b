//! Runs `wasmhub serve` from a generated config file in a temporary folder, with an admin service token for the
//! test, the real `jupyterhub-singleuser` of a peer venv, and fixed ports so a restarted hub is found where the
//! previous one was.
//!
//! Single-user servers run in their own process groups and outlive a killed hub on purpose (adoption). So that a
//! failing test still leaks nothing, every process whose working directory is inside the test's folder (the hub
//! starts servers there) is killed when the harness drops.
//!
//! The hub's stdout and stderr go to `hub-<start>.log` in the test's folder, and dropping the harness prints the
//! end of each of those logs, so every failing test shows what the hub said without asking for it (see the `Drop`
//! impl for why it prints for passing tests too).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ChildGuard, free_port, venv_bin, wasmhub_bin};

/// The token of the `test-admin` service every harness hub has.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// How many lines of each hub log the harness prints when it drops.
const DROP_LOG_LINES: usize = 200;

/// A `wasmhub serve` process and its folder.
pub struct RunningHub {
    pub public_port: u16,
    pub hub_port: u16,
    pub proxy_api_port: u16,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    /// `hub.baseUrl` without its trailing slash, or empty.
    base_path: String,
    hub_env: Vec<(String, String)>,
    starts: u32,
    child: Option<ChildGuard>,
}

/// What a test adds to the generated config, as YAML placed under the top-level keys.
#[derive(Default, Clone)]
pub struct HubOptions {
    /// Peer venv name for `jupyterhub-singleuser` (`jh5`, `jh6`).
    pub venv: &'static str,
    /// Extra keys under `hub.config` (YAML, indented by four spaces).
    pub hub_config: String,
    /// More services under `hub.services` (YAML, indented by four spaces).
    pub services: String,
    /// Extra keys under `hub` (YAML, indented by two spaces), e.g. `loadRoles`.
    pub hub_extra: String,
    /// Extra top-level sections (YAML), e.g. `cull:`.
    pub top_level: String,
    /// Extra keys under `wasmhub` (YAML, indented by two spaces), e.g. `policies:`.
    pub wasmhub_extra: String,
    /// Extra variables in the hub's environment.
    pub hub_env: Vec<(String, String)>,
    /// A domain for `JupyterHub.subdomain_host` (`hub.test` becomes `http://hub.test:<public port>`); browsers map
    /// it and its subdomains to 127.0.0.1.
    pub subdomain_domain: Option<&'static str>,
    /// The public, hub and proxy API ports, when a test runs the proxy itself (`should_start: false`).
    pub ports: Option<(u16, u16, u16)>,
    /// `hub.baseUrl` without its trailing slash (`/jhub`); none serves at the root.
    pub base_url: Option<&'static str>,
    /// A PostgreSQL URL for `hub.db` (`type: postgres`); none keeps a SQLite file in the test's folder.
    pub postgres_url: Option<String>,
}

impl HubOptions {
    /// A hub whose proxy runs apart (`ConfigurableHTTPProxy.should_start: false`): `proxy`'s public and API ports,
    /// its API URL and token, routes checked every second, and `hub_port`, the proxy's default target. Tests add
    /// to `hub_config` and `top_level`.
    pub fn behind(proxy: &crate::proxy_harness::RunningProxy, hub_port: u16) -> HubOptions {
        HubOptions {
            ports: Some((proxy.proxy_addr().port(), hub_port, proxy.api_addr().port())),
            hub_config: format!(
                "    ConfigurableHTTPProxy:\n      should_start: false\n      api_url: \"{}\"\n      \
                 check_running_interval: 1\n",
                proxy.api_url()
            ),
            top_level: format!("proxy:\n  secretToken: \"{}\"\n", crate::proxy_harness::TOKEN),
            ..HubOptions::default()
        }
    }
}

/// Whose accounts servers run as, as `wasmhub.local` keys. As root (CI), as wasmhub runs in production: each
/// server as its own system user, created on first spawn, working in `<test folder>/home/<user>` so the harness
/// still finds (and cleans up) its processes by working directory; the folder becomes traversable (0711) for them.
/// Without root the hub cannot switch users, so servers share its user, as a one-person trial would.
fn servers_users(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::metadata("/proc/self").map(|proc| std::os::unix::fs::MetadataExt::uid(&proc)).unwrap_or(1) == 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
            .expect("making the test folder traversable");
        format!("    createSystemUsers: true\n    workDir: \"{}/home/{{username}}\"", dir.display())
    } else {
        "    shareHubUser: true".to_owned()
    }
}

impl RunningHub {
    /// Writes the config and starts the hub; returns once `/hub/api` answers through the proxy.
    pub fn start(options: HubOptions) -> RunningHub {
        let dir = tempfile::Builder::new().prefix("wasmhub-hub-test").tempdir().expect("tempdir");
        let local_users = servers_users(dir.path());
        let venv = venv_bin(if options.venv.is_empty() { "jh5" } else { options.venv });
        let python_env = venv.parent().expect("venv/bin has a parent").to_owned();
        let (public_port, hub_port, proxy_api_port) =
            options.ports.unwrap_or_else(|| (free_port(), free_port(), free_port()));
        let path_str = |path: &Path| path.to_str().expect("UTF-8 temp path").to_owned();
        let config = format!(
            r#"hub:
  db:
{db}
  services:
    test-admin:
      apiToken: "{ADMIN_TOKEN}"
      admin: true
{services}
{base_url}
{hub_extra}
  config:
    JupyterHub:
      authenticator_class: dummy
{subdomain_host}
{hub_config}
cull:
  enabled: false
wasmhub:
  listen:
    proxy: "127.0.0.1:{public_port}"
    proxyApi: "127.0.0.1:{proxy_api_port}"
    hub: "127.0.0.1:{hub_port}"
  local:
    pythonEnv: "{python_env}"
    logDir: "{logs}"
    stopTimeout: 5
{local_users}
{wasmhub_extra}
{top_level}
"#,
            db = match &options.postgres_url {
                Some(url) => format!("    type: postgres\n    url: \"{url}\""),
                None => format!("    url: \"sqlite://{}\"", path_str(&dir.path().join("hub.sqlite"))),
            },
            services = options.services,
            hub_extra = options.hub_extra,
            hub_config = options.hub_config,
            python_env = path_str(&python_env),
            logs = path_str(&dir.path().join("logs")),
            top_level = options.top_level,
            wasmhub_extra = options.wasmhub_extra,
            base_url = options.base_url.map(|base| format!("  baseUrl: \"{base}/\"")).unwrap_or_default(),
            subdomain_host = options
                .subdomain_domain
                .map(|domain| format!("      subdomain_host: \"http://{domain}:{public_port}\""))
                .unwrap_or_default(),
        );
        let config_path = dir.path().join("wasmhub.yaml");
        std::fs::write(&config_path, config).expect("writing the config");
        let mut hub = RunningHub {
            public_port,
            hub_port,
            proxy_api_port,
            dir,
            config_path,
            hub_env: options.hub_env,
            base_path: options.base_url.unwrap_or_default().to_owned(),
            starts: 0,
            child: None,
        };
        hub.launch();
        hub
    }

    fn launch(&mut self) {
        self.launch_binary(&wasmhub_bin());
    }

    /// Starts the hub again from `binary` (a copy of `wasmhub`, standing for an upgraded one), on the same folder,
    /// config and ports.
    pub fn restart_from(&mut self, binary: &Path) {
        self.kill_hub();
        self.launch_binary(binary);
    }

    /// Starts `wasmhub serve` from `binary` after a [`RunningHub::kill_hub`].
    pub fn start_again_from(&mut self, binary: &Path) {
        self.launch_binary(binary);
    }

    fn launch_binary(&mut self, binary: &Path) {
        self.child = Some(self.spawn_hub(binary));
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("{}/hub/api/", self.prefixed_url());
        loop {
            if let Some(status) = self.child.as_mut().and_then(|child| child.child.try_wait().ok().flatten()) {
                panic!("wasmhub serve exited with {status}:\n{}", self.log_tail());
            }
            if let Ok(output) =
                Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url]).output()
                && output.stdout == b"200"
            {
                return;
            }
            assert!(Instant::now() < deadline, "the hub did not answer {url} within 60 s:\n{}", self.log_tail());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts `wasmhub serve` from `binary` on this folder and config, logging to the next `hub-<start>.log`.
    fn spawn_hub(&mut self, binary: &Path) -> ChildGuard {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).expect("hub log");
        let mut command = Command::new(binary);
        command
            .args(["serve", "--config"])
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .env("RUST_LOG", "info,wasmhub_hub=debug")
            .envs(self.hub_env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        ChildGuard::spawn("wasmhub serve", command)
    }

    /// Starts a second hub process on the same config while this one runs, as a rolling update's new pod, and
    /// returns at once; its log is [`RunningHub::log_tail`]'s from now on. [`RunningHub::hand_over`] makes it the
    /// hub this harness stands for.
    pub fn start_beside(&mut self) -> ChildGuard {
        self.spawn_hub(&wasmhub_bin())
    }

    /// SIGTERM to the hub process, as Kubernetes stops a pod; returns without waiting for it to exit.
    pub fn terminate_hub(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill").args(["-s", "TERM", &child.pid().to_string()]).status();
        }
    }

    /// Waits up to `timeout` for the hub process to exit, then makes `next` (from [`RunningHub::start_beside`])
    /// the hub. Returns the old process's exit status, none if it did not exit.
    pub fn hand_over(&mut self, next: ChildGuard, timeout: Duration) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut().and_then(|child| child.wait_timeout(timeout));
        self.child = Some(next);
        status
    }

    /// `http://127.0.0.1:<public port>`: the proxy, which browsers and API clients use.
    pub fn public_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.public_port)
    }

    /// The public URL with `hub.baseUrl` (no trailing slash): where `/hub/...` and `/user/...` paths go.
    pub fn prefixed_url(&self) -> String {
        format!("{}{}", self.public_url(), self.base_path)
    }

    /// `hub.baseUrl` without its trailing slash (`/jhub`), or empty.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The REST API through the proxy.
    pub fn api_url(&self) -> String {
        format!("{}/hub/api", self.prefixed_url())
    }

    /// SIGKILL to the hub process alone: its servers keep running, as after a crash.
    pub fn kill_hub(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.child.kill();
            let _ = child.child.wait();
        }
    }

    /// Starts the hub again on the same folder, config and ports.
    pub fn restart(&mut self) {
        self.kill_hub();
        self.launch();
    }

    /// The hub process's pid.
    pub fn hub_pid(&self) -> Option<i32> {
        self.child.as_ref().map(ChildGuard::pid)
    }

    /// Whether the hub process is still running; its log when not.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.as_mut().map(|child| child.child.try_wait()) {
            Some(Ok(None)) => Ok(()),
            _ => Err(format!("the hub is not running:\n{}", self.log_tail())),
        }
    }

    /// The last lines of the current hub log, for failure messages.
    pub fn log_tail(&self) -> String {
        self.start_log_tail(self.starts, 60)
    }

    /// The whole log of the current hub process.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path(self.starts)).unwrap_or_default()).into_owned()
    }

    /// The log of the `start`th start of the hub (1 is the first).
    fn log_path(&self, start: u32) -> PathBuf {
        self.dir.path().join(format!("hub-{start}.log"))
    }

    /// The last `count` lines of the log of the `start`th start.
    fn start_log_tail(&self, start: u32, count: usize) -> String {
        let bytes = std::fs::read(self.log_path(start)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(count)..].join("\n")
    }

    /// The log of one user's default server.
    pub fn server_log(&self, user: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("logs").join(format!("{user}.log"))).unwrap_or_default()
    }

    /// Pids of the `jupyterhub-singleuser` servers this hub started. Their kernels and short-lived helpers also
    /// work inside the test folder, so counting by folder alone sometimes counted a third process.
    pub fn singleuser_pids(&self) -> Vec<i32> {
        let is_singleuser = |cmdline: Vec<u8>| cmdline.windows(22).any(|window| window == b"jupyterhub-singleuser\0");
        self.server_pids()
            .into_iter()
            .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(is_singleuser))
            .collect()
    }

    /// Pids of every process working inside the test folder (the servers this hub started and their children).
    pub fn server_pids(&self) -> Vec<i32> {
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        let own = self.child.as_ref().map(|child| child.pid());
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| Some(*pid) != own)
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(self.dir.path()))
            })
            .collect()
    }
}

impl Drop for RunningHub {
    /// Stops the hub and its servers, and prints the end of every hub log to stderr.
    ///
    /// The logs are printed whether or not the test fails: a test that fails by returning `Err` drops its hub
    /// before the runner sees the error, so `std::thread::panicking()` cannot tell. The runners show a test's
    /// output only when it fails (nextest's default `success-output = "never"`, libtest's capture), so a passing
    /// test prints nothing visible. On a panic the folder is also kept for a post-mortem.
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        self.kill_hub();
        for pid in self.server_pids() {
            let _ = Command::new("kill").args(["-s", "KILL", "--", &pid.to_string()]).status();
        }
        let folder = if panicking { "folder kept" } else { "folder deleted" };
        for start in 1..=self.starts {
            eprintln!(
                "----- wasmhub serve log {} (last {DROP_LOG_LINES} lines; {folder}) -----\n{}\n\
                 ----- end of wasmhub serve log {start} -----",
                self.log_path(start).display(),
                self.start_log_tail(start, DROP_LOG_LINES),
            );
        }
        if panicking {
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
            let _ = kept.keep();
        }
    }
}
