//! Shared support for the system tests: where the real peers live, how to start them, and process hygiene.
//!
//! Peers are installed by `tests/peers/install.sh` into `$WASMHUB_PEERS` (default `~/.cache/wasmhub/peers`).
//! A test that needs a missing peer fails with a message naming that install step; it never skips.

pub mod backend;
pub mod hub_client;
pub mod hub_harness;
pub mod pod;
pub mod postgres;
pub mod proxy_harness;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The folder `tests/peers/install.sh` installs into.
pub fn peers_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WASMHUB_PEERS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").expect("HOME is not set");
    Path::new(&home).join(".cache/wasmhub/peers")
}

fn require(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} is missing at {}: run `tests/peers/install.sh` (or set WASMHUB_PEERS)",
        path.display()
    );
    path
}

/// The `configurable-http-proxy` 5.3 entry script from npm (run it with `node`).
pub fn chp_script() -> PathBuf {
    require(
        peers_dir().join("chp/node_modules/configurable-http-proxy/bin/configurable-http-proxy"),
        "configurable-http-proxy",
    )
}

/// The `bin/` folder of a Python peer venv, e.g. `venv_bin("jh5")` for JupyterHub 5.x.
pub fn venv_bin(name: &str) -> PathBuf {
    require(peers_dir().join(format!("venv-{name}/bin")), &format!("Python venv {name}"))
}

/// The `wasmhub` binary built by this workspace (`cargo nextest run --workspace` builds it first).
///
/// `WASMHUB_BIN` overrides the location, e.g. to test a release build.
pub fn wasmhub_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("WASMHUB_BIN") {
        return PathBuf::from(bin);
    }
    // Test binaries live in target/<profile>/deps; the workspace's binaries one level up.
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    require(profile_dir.join("wasmhub"), "the wasmhub binary (cargo build -p wasmhub-cli)")
}

/// A port that was free a moment ago on 127.0.0.1.
///
/// Only for peers that must be told a port on their command line; our own servers bind port 0.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on 127.0.0.1:{port} after {timeout:?}");
}

/// A child process that is killed (with its process group) when the guard drops, so a failing test leaks nothing.
pub struct ChildGuard {
    pub child: Child,
    pub name: String,
}

impl ChildGuard {
    /// Starts `command` in its own process group.
    pub fn spawn(name: &str, mut command: Command) -> ChildGuard {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
        let child = command.spawn().unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        ChildGuard { child, name: name.to_owned() }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` (e.g. "TERM", "KILL") to the whole process group.
    pub fn signal(&self, signal: &str) {
        // `-s SIG -- -PGID`, never `-SIG -PGID`: procps-ng 4.0.2 (Debian 12) keeps only the first digit of the
        // group there, so `kill -TERM -12345` runs kill(-1, SIGTERM) and hits every process we may signal (strace).
        let group = format!("-{}", self.pid());
        let _ = Command::new("kill").args(["-s", signal, "--", &group]).status();
    }

    /// Waits up to `timeout` for the process to exit and returns its exit status.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal("KILL");
            let _ = self.child.wait();
        }
    }
}

/// `playwright-core` from npm, installed by `tests/peers/install.sh` (pinned in `tests/browser/package-lock.json`).
pub fn playwright_core_dir() -> PathBuf {
    require(peers_dir().join("browser/node_modules/playwright-core"), "playwright-core (npm)")
}

/// Debian's Chromium, which the page tests drive headless (`apt-get install chromium`, done by `install.sh`).
pub fn chromium_bin() -> PathBuf {
    let path = std::env::var_os("WASMHUB_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/chromium".into());
    require(path, "chromium (Debian package)")
}

/// Where tests leave files for people to look at (screenshots): `$WASMHUB_ARTIFACTS`, else
/// `<cargo target dir>/test-artifacts`, plus `sub`. Created if missing.
pub fn artifacts_dir(sub: &str) -> PathBuf {
    let root = match std::env::var_os("WASMHUB_ARTIFACTS") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            // target/<profile>/deps/<test binary>
            exe.ancestors().nth(3).expect("target/<profile>/deps").join("test-artifacts")
        }
    };
    let dir = root.join(sub);
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
    dir
}

/// A self-signed certificate for 127.0.0.1 made with the openssl command line.
pub fn make_certificate(dir: &std::path::Path, name: &str) -> (String, String) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN={name}"))
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed to make test certificates (apt-get install openssl)");
    assert!(status.status.success(), "openssl failed: {}", String::from_utf8_lossy(&status.stderr));
    (key.display().to_string(), cert.display().to_string())
}

/// `curl -k -v` against the proxy: the response body and the certificate subject it saw.
pub fn curl_https(url: &str) -> (String, String) {
    let output = Command::new("curl").args(["-sk", "-v", "--max-time", "10", url]).output().expect("curl");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let subject = stderr.lines().find(|line| line.contains("subject:")).unwrap_or_default().to_owned();
    (String::from_utf8_lossy(&output.stdout).into_owned(), subject)
}
