//! A private PostgreSQL cluster for one test, which the test may stop and start (a database outage, two hubs on
//! one database) without touching the shared cluster of `tests/peers/postgres.sh` that other tests use meanwhile.
//! Debian's `postgresql` package provides the binaries (`tests/peers/postgres.sh` installs it); the cluster lives in
//! a temporary folder and is stopped when the guard drops.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::free_port;

/// A PostgreSQL server of this test alone, reached at `127.0.0.1:<port>` as the trusted `postgres` role.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// Creates the cluster (`initdb`) and starts it.
    pub fn start() -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                let mut bins: Vec<PathBuf> =
                    versions.filter_map(|entry| Some(entry.ok()?.path().join("bin"))).collect();
                bins.sort();
                bins.pop()
            })
            .filter(|bin| bin.join("initdb").exists())
            .expect("PostgreSQL is missing under /usr/lib/postgresql: run `tests/peers/postgres.sh`");
        let dir = tempfile::Builder::new().prefix("wasmhub-pg-test").tempdir().expect("tempdir");
        if running_as_root() {
            // initdb and postgres refuse root: the cluster belongs to Debian's `postgres` user.
            let status = Command::new("chown").args(["postgres:postgres"]).arg(dir.path()).status();
            assert!(status.is_ok_and(|status| status.success()), "chown of the cluster folder to postgres");
        }
        let data = dir.path().join("data");
        let postgres = PrivatePostgres { dir, bin, port: free_port() };
        postgres.run(
            "initdb",
            &["-D", path(&data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
        );
        postgres.start_again();
        postgres
    }

    /// The URL a hub connects with (`hub.db.url`).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server as an operator's restart does (`pg_ctl stop -m fast`: open connections are ended).
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", path(&self.dir.path().join("data")), "-m", "fast", "-w", "stop"]);
    }

    /// Starts the server (again) on the same port and data.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off",
            self.port,
            path(self.dir.path())
        );
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &["-D", path(&self.dir.path().join("data")), "-l", path(&log), "-w", "-t", "60", "-o", &options, "start"],
        );
    }

    /// Runs one of PostgreSQL's programs and fails the test with its output if it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let output = self.tool(program).args(args).output().expect("running PostgreSQL's tools");
        assert!(
            output.status.success(),
            "{program} {args:?}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// One of PostgreSQL's programs, run as the cluster's owner.
    fn tool(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.current_dir(self.dir.path());
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        if data.join("postmaster.pid").exists() {
            let _ = self.tool("pg_ctl").args(["-D", path(&data), "-m", "immediate", "-w", "stop"]).output();
        }
    }
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").map(|proc| std::os::unix::fs::MetadataExt::uid(&proc)).unwrap_or(1) == 0
}

fn path(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}
