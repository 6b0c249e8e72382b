//! System test: the real Python JupyterHub (PyPI `jupyterhub` 5.5.4) uses `wasmhub proxy` as its
//! `ConfigurableHTTPProxy.command`.
//!
//! The Hub starts our proxy itself, exactly as it starts configurable-http-proxy (CHP), and drives it over the
//! CHP REST API. The test then spawns a real `jupyterhub-singleuser` (JupyterLab) through the Hub REST API and,
//! as a client going only through the proxy's public port, reads `/user/<name>/api/status` with a token and runs
//! `1+1` on a kernel over the WebSocket. It also checks the proxy's route table before and after the server stops,
//! and that the proxy goes away when JupyterHub shuts down.
//!
//! The same scenario runs against the real CHP 5.3 (`jupyterhub_uses_chp_reference`): it proves the test itself is
//! right, so a failure of the wasmhub variant alone points at our proxy.
//!
//! Process hygiene: JupyterHub starts the proxy, the single-user server and (through it) the kernel each in a new
//! session, so killing the Hub's process group is not enough. Every process of one run carries the environment
//! variable `WASMHUB_TEST_TAG=<uuid>` (inherited by the proxy and the kernel, passed to the single-user server via
//! `Spawner.environment`), and teardown kills every process that carries it, on success and on failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wasmhub_system_tests::{ChildGuard, chp_script, free_port, venv_bin, wasmhub_bin};

/// The user whose server is spawned.
const USER: &str = "alice";
/// The environment variable that marks every process one test run starts (see the module comment).
const TAG_VAR: &str = "WASMHUB_TEST_TAG";
/// Upper bound for the whole client scenario; JupyterLab needs a while to start on a loaded 2-core machine. With the
/// shutdown check (at most 40 s) it stays well under nextest's hard limit (300 s, `.config/nextest.toml`): a test
/// killed by nextest never runs its teardown and would leak the Hub and its children.
const SCENARIO_BUDGET: Duration = Duration::from_secs(200);
/// How long the Hub may take to answer through the proxy after it was started.
const HUB_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long we wait for the spawned server to be ready (the Hub's own timeouts are set to 120 s below).
const SERVER_READY_TIMEOUT: Duration = Duration::from_secs(150);
/// How many lines of the Hub's log (which also holds the proxy's and the single-user server's output) a failure shows.
const LOG_TAIL_LINES: usize = 120;

#[test]
fn jupyterhub_uses_wasmhub_proxy() {
    run(ProxyUnderTest::Wasmhub);
}

/// The reference run with the real CHP 5.3: if this fails too, the test or the environment is broken, not our proxy.
#[test]
fn jupyterhub_uses_chp_reference() {
    run(ProxyUnderTest::Chp);
}

/// Which proxy JupyterHub is told to start.
#[derive(Clone, Copy, Debug)]
enum ProxyUnderTest {
    Wasmhub,
    Chp,
}

impl ProxyUnderTest {
    /// `ConfigurableHTTPProxy.command`; JupyterHub appends `--ip --port --api-ip --api-port --error-target --log-level`.
    fn command(self, dir: &Path) -> Vec<String> {
        match self {
            ProxyUnderTest::Wasmhub => vec![
                path_str(&wasmhub_bin()),
                "proxy".into(),
                "--routes-file".into(),
                path_str(&dir.join("routes.jsonl")),
            ],
            ProxyUnderTest::Chp => vec!["node".into(), path_str(&chp_script())],
        }
    }
}

/// Ports and secrets of one run.
struct Setup {
    public_port: u16,
    api_port: u16,
    hub_port: u16,
    /// `CONFIGPROXY_AUTH_TOKEN`: JupyterHub hands it to the proxy; we use it to read the proxy's route table.
    proxy_token: String,
    /// Token of a service with admin scopes, so the test can drive the Hub REST API.
    service_token: String,
    tag: String,
}

/// The running Hub. Dropping it kills every process of this run, whoever started it.
struct Hub {
    process: ChildGuard,
    tag: String,
    log: PathBuf,
}

impl Hub {
    /// Fails as soon as the Hub has exited, instead of letting a poll loop run into its timeout.
    fn check_alive(&mut self) -> Result<()> {
        match self.process.child.try_wait()? {
            Some(status) => bail!("JupyterHub exited early with {status}"),
            None => Ok(()),
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        kill_tagged(&self.tag);
    }
}

fn run(proxy: ProxyUnderTest) {
    let dir = tempfile::Builder::new().prefix("wasmhub-proxy-jupyterhub-").tempdir().unwrap();
    let command = proxy.command(dir.path());
    let setup = new_setup();
    let mut hub = start_hub(dir.path(), &setup, &command);
    eprintln!(
        "[{proxy:?}] JupyterHub pid {} in {}, proxy command {command:?}",
        hub.process.pid(),
        dir.path().display()
    );

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let result = runtime
        .block_on(async { tokio::time::timeout(SCENARIO_BUDGET, scenario(&mut hub, &setup, dir.path())).await })
        .unwrap_or_else(|_| Err(anyhow!("the scenario did not finish within {SCENARIO_BUDGET:?}")))
        .and_then(|proxy_pid| shut_down(&mut hub, proxy_pid));

    if let Err(error) = result {
        let tail = log_tail(&hub.log, LOG_TAIL_LINES);
        let log = hub.log.clone();
        // Kill everything before we panic, and keep the files (db, routes file, full log) for a post-mortem.
        drop(hub);
        let kept = dir.keep();
        panic!(
            "[{proxy:?}] {error:#}\n--- last {LOG_TAIL_LINES} lines of {} (files kept in {}) ---\n{tail}",
            log.display(),
            kept.display()
        );
    }
}

fn new_setup() -> Setup {
    // Three distinct ports: free_port() may hand out the same port twice in a row.
    let mut ports = Vec::new();
    while ports.len() < 3 {
        let port = free_port();
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    Setup {
        public_port: ports[0],
        api_port: ports[1],
        hub_port: ports[2],
        proxy_token: random_hex(),
        service_token: random_hex(),
        tag: random_hex(),
    }
}

/// Writes `jupyterhub_config.py` and starts JupyterHub with `dir` as its working directory, so its sqlite db,
/// cookie secret, proxy pid file and our proxy's routes file all land in the temp dir.
fn start_hub(dir: &Path, setup: &Setup, proxy_command: &[String]) -> Hub {
    let bin = venv_bin("jh5");
    // JSON strings and lists of strings are valid Python literals, which spares us Python quoting rules.
    let py = |value: Value| value.to_string();
    let config = format!(
        r#"# Written by wasmhub's tests/tests/proxy_jupyterhub.rs for one test run.
c = get_config()  # noqa: F821

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {public}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub}
c.JupyterHub.db_url = "sqlite:///jupyterhub.sqlite"

# The proxy under test, started and driven by the Hub like CHP.
c.ConfigurableHTTPProxy.command = {command}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api}"
c.ConfigurableHTTPProxy.auth_token = {proxy_token}

# No system users: the single-user server runs as the Hub's user (root here, hence --allow-root).
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = {home}
c.Spawner.cmd = {singleuser}
c.Spawner.args = ["--allow-root"]
# Generous for a loaded 2-core machine, still below the test's own bound.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
# The single-user server gets a filtered environment; pass the tag explicitly so teardown finds it (and its kernels).
c.Spawner.environment = {{{tag_var}: {tag}}}

# A service token with just the scopes the test needs to create a user, mint its token and start/stop its server.
c.JupyterHub.services = [{{"name": "system-test", "api_token": {service_token}}}]
c.JupyterHub.load_roles = [
    {{
        "name": "system-test",
        "scopes": ["admin:users", "admin:servers", "tokens"],
        "services": ["system-test"],
    }}
]
"#,
        public = setup.public_port,
        hub = setup.hub_port,
        api = setup.api_port,
        command = py(json!(proxy_command)),
        proxy_token = py(json!(setup.proxy_token)),
        home = py(json!(format!("{}/home/{{username}}", dir.display()))),
        singleuser = py(json!([path_str(&bin.join("jupyterhub-singleuser"))])),
        tag_var = py(json!(TAG_VAR)),
        tag = py(json!(setup.tag)),
        service_token = py(json!(setup.service_token)),
    );
    let config_path = dir.join("jupyterhub_config.py");
    fs::write(&config_path, config).unwrap();

    let log = dir.join("jupyterhub.log");
    let log_file = fs::File::create(&log).unwrap();
    let mut command = Command::new(bin.join("jupyterhub"));
    command
        .arg("-f")
        .arg(&config_path)
        .current_dir(dir)
        .env(TAG_VAR, &setup.tag)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file);
    Hub { process: ChildGuard::spawn("jupyterhub", command), tag: setup.tag.clone(), log }
}

/// The client's view; returns the proxy's pid (from the Hub's pid file) so the shutdown check can follow it.
async fn scenario(hub: &mut Hub, setup: &Setup, dir: &Path) -> Result<i32> {
    let started = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build()?;
    // Everything a client does goes through the proxy's public port, including the Hub API (the proxy's `/` route).
    let public = format!("http://127.0.0.1:{}", setup.public_port);
    let hub_api = format!("{public}/hub/api");
    let service_auth = format!("token {}", setup.service_token);

    step("waiting for JupyterHub behind the proxy");
    let deadline = Instant::now() + HUB_UP_TIMEOUT;
    loop {
        hub.check_alive()?;
        if let Ok(response) = http.get(format!("{hub_api}/")).send().await
            && response.status() == 200
        {
            break;
        }
        ensure!(Instant::now() < deadline, "JupyterHub did not answer on {hub_api}/ within {HUB_UP_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The Hub writes the pid file right after it started the proxy, long before it answers.
    let pid_file = dir.join("jupyterhub-proxy.pid");
    let proxy_pid: i32 = fs::read_to_string(&pid_file)
        .with_context(|| format!("reading {}", pid_file.display()))?
        .trim()
        .parse()
        .context("the proxy pid file does not hold a pid")?;
    step(&format!("JupyterHub is up; proxy pid {proxy_pid}"));

    let response = http.post(format!("{hub_api}/users/{USER}")).header("Authorization", &service_auth).send().await?;
    expect_status(response, &[201], "creating the user").await?;

    let response = http
        .post(format!("{hub_api}/users/{USER}/tokens"))
        .header("Authorization", &service_auth)
        .json(&json!({"note": "wasmhub system test"}))
        .send()
        .await?;
    let token_model = expect_status(response, &[201], "requesting a user token").await?;
    let user_token = token_model["token"].as_str().context("the token model has no `token`")?.to_owned();
    let user_auth = format!("token {user_token}");

    step("starting the single-user server");
    let response =
        http.post(format!("{hub_api}/users/{USER}/server")).header("Authorization", &service_auth).send().await?;
    expect_status(response, &[201, 202], "starting the server").await?;
    let deadline = Instant::now() + SERVER_READY_TIMEOUT;
    loop {
        hub.check_alive()?;
        let response =
            http.get(format!("{hub_api}/users/{USER}")).header("Authorization", &service_auth).send().await?;
        let user = expect_status(response, &[200], "reading the user").await?;
        let server = &user["servers"][""];
        if server["ready"] == json!(true) {
            break;
        }
        // Once a spawn fails, the Hub drops the server from the model: stop waiting and show the log.
        ensure!(server.is_object(), "the server is gone without becoming ready (spawn failed): {user}");
        ensure!(Instant::now() < deadline, "the server was not ready within {SERVER_READY_TIMEOUT:?}: {user}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    step("server ready");

    // The Hub adds the route before it reports the server ready, so it must be in the proxy's table now.
    let routes = proxy_routes(&http, setup).await?;
    let route = routes.get(format!("/user/{USER}")).with_context(|| format!("no /user/{USER} route in {routes}"))?;
    ensure!(route["user"] == json!(USER), "route has the wrong user: {route}");
    ensure!(route["server_name"] == json!(""), "route has the wrong server_name: {route}");
    ensure!(route["jupyterhub"] == json!(true), "route lacks jupyterhub: true: {route}");
    let target = route["target"].as_str().with_context(|| format!("route has no string target: {route}"))?;
    ensure!(target.starts_with("http://127.0.0.1:"), "unexpected route target: {route}");
    ensure!(routes.get("/").is_some_and(|hub_route| hub_route["hub"] == json!(true)), "no hub route `/`: {routes}");

    let user_base = format!("{public}/user/{USER}");
    let response = http.get(format!("{user_base}/api/status")).header("Authorization", &user_auth).send().await?;
    let status = expect_status(response, &[200], "GET /user/<name>/api/status through the proxy").await?;
    ensure!(status.get("started").is_some(), "unexpected /api/status body: {status}");
    step(&format!("api/status through the proxy: {status}"));

    let response = http
        .post(format!("{user_base}/api/kernels"))
        .header("Authorization", &user_auth)
        .json(&json!({"name": "python3"}))
        .send()
        .await?;
    let kernel = expect_status(response, &[201], "creating a kernel").await?;
    let kernel_id = kernel["id"].as_str().with_context(|| format!("kernel model without id: {kernel}"))?.to_owned();
    step(&format!("kernel {kernel_id} created"));

    let answer = tokio::time::timeout(
        Duration::from_secs(60),
        execute_over_websocket(setup.public_port, &kernel_id, &user_auth, "1+1"),
    )
    .await
    .context("no execute_result over the kernel WebSocket within 60 s")??;
    ensure!(answer == "2", "1+1 gave {answer:?}");
    step("kernel WebSocket round trip: 1+1 = 2");

    let response =
        http.delete(format!("{user_base}/api/kernels/{kernel_id}")).header("Authorization", &user_auth).send().await?;
    expect_status(response, &[204], "deleting the kernel").await?;

    step("stopping the server");
    let response =
        http.delete(format!("{hub_api}/users/{USER}/server")).header("Authorization", &service_auth).send().await?;
    expect_status(response, &[202, 204], "stopping the server").await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        hub.check_alive()?;
        let routes = proxy_routes(&http, setup).await?;
        if routes.get(format!("/user/{USER}")).is_none() {
            break;
        }
        ensure!(Instant::now() < deadline, "the /user/{USER} route is still there 60 s after the stop: {routes}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // With the route gone the request falls through to the Hub, which answers 424 for an API request to a stopped
    // server; a stale route to the dead server would give CHP's 503 error page instead.
    let response = http.get(format!("{user_base}/api/status")).header("Authorization", &user_auth).send().await?;
    ensure!(response.status() == 424, "after the stop, /user/{USER}/api/status gave {}", response.status());
    step("route removed after the stop");
    Ok(proxy_pid)
}

/// Sends a Jupyter `execute_request` over the kernel's `channels` WebSocket (JSON protocol, no subprotocol, the
/// channel named in each message) and returns the `text/plain` of the matching `execute_result`.
async fn execute_over_websocket(public_port: u16, kernel_id: &str, auth: &str, code: &str) -> Result<String> {
    let session = random_hex();
    let url = format!("ws://127.0.0.1:{public_port}/user/{USER}/api/kernels/{kernel_id}/channels?session_id={session}");
    let mut request = url.as_str().into_client_request()?;
    // The header, not ?token=: JupyterHub 5 singleuser servers reject tokens in URLs by default.
    request.headers_mut().insert("Authorization", auth.parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.context("kernel WebSocket handshake")?;

    let msg_id = random_hex();
    let execute = json!({
        "header": {
            "msg_id": msg_id,
            "username": USER,
            "session": session,
            "date": "2026-01-01T00:00:00.000Z",
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": false,
            "store_history": false,
            "user_expressions": {},
            "allow_stdin": false,
            "stop_on_error": true,
        },
        "buffers": [],
        "channel": "shell",
    });
    socket.send(Message::Text(execute.to_string().into())).await?;

    while let Some(message) = socket.next().await {
        let Message::Text(text) = message? else { continue };
        let message: Value = serde_json::from_str(text.as_str())?;
        if message["parent_header"]["msg_id"] != json!(msg_id) {
            continue;
        }
        match message["msg_type"].as_str() {
            Some("execute_result") => {
                let _ = socket.close(None).await;
                return message["content"]["data"]["text/plain"]
                    .as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("execute_result without text/plain: {message}"));
            }
            Some("error") => bail!("the kernel raised an error: {}", message["content"]),
            Some("execute_reply") if message["content"]["status"] != json!("ok") => {
                bail!("execute_reply is not ok: {}", message["content"])
            }
            _ => {}
        }
    }
    bail!("the kernel WebSocket closed before the execute_result arrived")
}

/// `GET /api/routes` on the proxy's API port, authenticated like JupyterHub does it.
async fn proxy_routes(http: &reqwest::Client, setup: &Setup) -> Result<Value> {
    let response = http
        .get(format!("http://127.0.0.1:{}/api/routes", setup.api_port))
        .header("Authorization", format!("token {}", setup.proxy_token))
        .send()
        .await?;
    let routes = expect_status(response, &[200], "GET /api/routes on the proxy API").await?;
    ensure!(routes.is_object(), "GET /api/routes did not return an object: {routes}");
    Ok(routes)
}

/// Checks the status and returns the JSON body (`null` if empty), naming the step and the body on failure.
async fn expect_status(response: reqwest::Response, expected: &[u16], what: &str) -> Result<Value> {
    let status = response.status().as_u16();
    let body = response.text().await?;
    ensure!(expected.contains(&status), "{what}: expected status {expected:?}, got {status}: {body}");
    if body.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&body).with_context(|| format!("{what}: body is not JSON: {body}"))
}

/// Stops the Hub the way an operator does (SIGTERM): it stops its servers and sends SIGTERM to the proxy, which
/// must then exit on its own (the Hub does not wait for it).
fn shut_down(hub: &mut Hub, proxy_pid: i32) -> Result<()> {
    hub.process.signal("TERM");
    hub.process.wait_timeout(Duration::from_secs(30)).context("JupyterHub did not exit within 30 s of SIGTERM")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while carries_tag(proxy_pid, &hub.tag) {
        ensure!(
            Instant::now() < deadline,
            "the proxy (pid {proxy_pid}) is still running 10 s after JupyterHub stopped it with SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Kills (SIGKILL) every process whose environment carries this run's tag, until none is left.
fn kill_tagged(tag: &str) {
    for _ in 0..50 {
        let pids: Vec<String> = fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid != std::process::id() as i32 && carries_tag(pid, tag))
            .map(|pid| pid.to_string())
            .collect();
        if pids.is_empty() {
            return;
        }
        eprintln!("teardown: killing tagged processes {pids:?}");
        let _ = Command::new("kill").args(["-s", "KILL", "--"]).args(&pids).status();
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("teardown: tagged processes survived repeated SIGKILL");
}

/// Whether `pid` is a live process of this run. Zombies have an empty environ, so they do not count (and a reused
/// pid would not carry the tag).
fn carries_tag(pid: i32, tag: &str) -> bool {
    let needle = format!("{TAG_VAR}={tag}");
    fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|environ| environ.split(|&byte| byte == 0).any(|entry| entry == needle.as_bytes()))
}

/// 32 random hex digits from the kernel, so the test needs no RNG crate.
fn random_hex() -> String {
    fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap().trim().replace('-', "")
}

fn log_tail(log: &Path, lines: usize) -> String {
    let text = fs::read(log).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("non-UTF-8 path").to_owned()
}
