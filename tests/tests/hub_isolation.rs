//! Servers isolated from the hub and from each other (issue 13, point 1): `wasmhub serve` as root runs alice's
//! and bob's servers as system users of their own, created on first spawn, and from inside alice's server nothing
//! of the hub or of bob is reachable. The "server" is a small Python program the spawner starts exactly as it
//! starts `jupyterhub-singleuser` (same account, groups, environment and working directory) that tries each
//! access when asked and reports what happened.
//!
//! It needs root, as JupyterHub's LocalProcessSpawner does to switch users; CI runs as root.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use wasmhub_system_tests::hub_client::admin_api;
use wasmhub_system_tests::hub_harness::{HubOptions, RunningHub};

/// A variable only the hub's environment has, standing for its secrets (`up.sh` exports the admin password).
const HUB_SECRET_NAME: &str = "WASMHUB_TEST_HUB_SECRET";

/// Serves the readiness probe, and on `?probe=1` tries every access named in the query and answers with a report.
const PROBE_SERVER: &str = r#"
import http.server, json, os, pwd, urllib.error, urllib.parse, urllib.request

def attempt(action):
    try:
        action()
        return "allowed"
    except PermissionError:
        return "denied"
    except urllib.error.HTTPError as error:
        return "http %d" % error.code
    except Exception as error:
        return "%s: %s" % (type(error).__name__, error)

class Probe(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(self.path).query))
        report = {"ready": True}
        if "probe" in query:
            report = {
                "user": pwd.getpwuid(os.getuid()).pw_name,
                "uid": os.getuid(),
                "gid": os.getgid(),
                "groups": os.getgroups(),
                "home_mode": oct(os.stat(os.environ["HOME"]).st_mode & 0o777),
                "cwd": os.getcwd(),
                "hub_secret_in_env": query["secret_name"] in os.environ,
                "hub_environ": attempt(lambda: open("/proc/%s/environ" % query["hub_pid"], "rb").read()),
                "database": attempt(lambda: open(query["database"], "rb").read(1)),
                "bob_home": attempt(lambda: os.listdir(query["bob_home"])),
                "bob_environ": attempt(lambda: open("/proc/%s/environ" % query["bob_pid"], "rb").read()),
                "bob_log": attempt(lambda: open(query["bob_log"], "rb").read(1)),
                "proxy_api": attempt(lambda: urllib.request.urlopen(query["proxy_api"] + "/api/routes", timeout=5)),
            }
        body = json.dumps(report).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

url = urllib.parse.urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
http.server.HTTPServer((url.hostname, url.port), Probe).serve_forever()
"#;

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|proc| std::os::unix::fs::MetadataExt::uid(&proc) == 0)
}

/// Starts `user`'s default server and returns its pid from the admin's view of the user.
async fn start_server(hub: &mut RunningHub, user: &str) -> Result<i64> {
    let (status, body) = admin_api(hub, reqwest::Method::POST, &format!("/users/{user}")).await?;
    ensure!(status == 201 || status == 409, "creating {user}: {status} {body}");
    let (status, body) = admin_api(hub, reqwest::Method::POST, &format!("/users/{user}/server")).await?;
    ensure!(status == 201 || status == 202, "starting {user}'s server: {status} {body}\n{}", hub.log_tail());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, model) = admin_api(hub, reqwest::Method::GET, &format!("/users/{user}")).await?;
        if model["servers"][""]["ready"] == Value::Bool(true) {
            return model["servers"][""]["state"]["pid"].as_i64().context("the admin view has the server's pid");
        }
        if Instant::now() > deadline {
            bail!("{user}'s server is not ready: {model}\n{}\n{}", hub.log_tail(), hub.server_log(user));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn alices_server_reaches_nothing_of_the_hub_or_of_bob() -> Result<()> {
    assert!(is_root(), "this test needs root (the hub switches servers to their own system users); CI runs as root");
    let probe = tempfile::Builder::new().prefix("probe").suffix(".py").tempfile()?;
    std::fs::write(probe.path(), PROBE_SERVER)?;
    std::fs::set_permissions(probe.path(), std::fs::Permissions::from_mode(0o644))?;
    let options = HubOptions {
        hub_config: format!("    Spawner:\n      cmd: [\"python3\", \"{}\"]\n", probe.path().display()),
        hub_env: vec![(HUB_SECRET_NAME.to_owned(), "the-hub-secret".to_owned())],
        ..HubOptions::default()
    };
    let mut hub = RunningHub::start(options);
    let bob_pid = start_server(&mut hub, "bob").await?;
    start_server(&mut hub, "alice").await?;

    let dir = hub.dir.path().to_owned();
    let query = [
        ("probe", "1".to_owned()),
        ("secret_name", HUB_SECRET_NAME.to_owned()),
        ("hub_pid", hub.hub_pid().context("the hub runs")?.to_string()),
        ("database", dir.join("hub.sqlite").display().to_string()),
        ("bob_home", dir.join("home/bob").display().to_string()),
        ("bob_pid", bob_pid.to_string()),
        ("bob_log", dir.join("logs/bob.log").display().to_string()),
        ("proxy_api", format!("http://127.0.0.1:{}", hub.proxy_api_port)),
    ];
    let url = format!("{}/user/alice/", hub.public_url());
    let report: Value = reqwest::Client::new().get(&url).query(&query).send().await?.json().await?;

    let alice = nix_user("alice")?;
    assert_eq!(report["user"], "alice", "{report}");
    assert_eq!((report["uid"].as_u64(), report["gid"].as_u64()), (Some(alice.0), Some(alice.1)), "{report}");
    assert_ne!(report["uid"], 0, "{report}");
    assert!(!report["groups"].as_array().unwrap().contains(&Value::from(0)), "no root group: {report}");
    assert_eq!(report["cwd"], dir.join("home/alice").display().to_string(), "{report}");
    assert_eq!(report["home_mode"], "0o700", "{report}");
    assert_eq!(report["hub_secret_in_env"], false, "{report}");
    for access in ["hub_environ", "database", "bob_home", "bob_environ", "bob_log"] {
        assert_eq!(report[access], "denied", "{access}: {report}");
    }
    assert_eq!(report["proxy_api"], "http 403", "the proxy API needs its token: {report}");
    Ok(())
}

/// The uid and gid of a system user, from the password database.
fn nix_user(name: &str) -> Result<(u64, u64)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let line = passwd.lines().find(|line| line.split(':').next() == Some(name)).context("no such system user")?;
    let fields: Vec<&str> = line.split(':').collect();
    Ok((fields[2].parse()?, fields[3].parse()?))
}
