//! Log lines for a cluster's collector: `wasmhub proxy --log-format json` and `wasmhub serve` with
//! `wasmhub.logFormat: json` write one JSON object per line, with the level, the message and the event's fields.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The first `count` lines the process writes to stderr, then the process is killed.
fn first_lines(mut child: Child, count: usize) -> Vec<String> {
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let lines: Vec<String> = stderr.lines().take(count).map(Result::unwrap).collect();
    let _ = child.kill();
    let _ = child.wait();
    lines
}

fn assert_json_lines(lines: &[String]) {
    assert!(!lines.is_empty(), "no log lines");
    for line in lines {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"));
        assert!(event["level"].is_string() && event["message"].is_string(), "{event}");
        assert!(event["timestamp"].is_string(), "{event}");
    }
}

#[test]
fn the_proxy_logs_json_lines_when_asked() {
    let child = Command::new(env!("CARGO_BIN_EXE_wasmhub"))
        .args(["proxy", "--ip", "127.0.0.1", "--port", "0", "--api-port", "0", "--no-persist-routes"])
        .args(["--log-format", "json"])
        .env("CONFIGPROXY_AUTH_TOKEN", "token-for-the-logging-test")
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_json_lines(&first_lines(child, 1));
}

#[test]
fn serve_logs_json_lines_from_the_config_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wasmhub.yaml");
    std::fs::write(
        &config,
        format!(
            "hub:\n  db:\n    url: \"sqlite://{}/hub.sqlite\"\nwasmhub:\n  logFormat: json\n  spawner: noop\n  noop:\n    \
             url: http://127.0.0.1:9\n  listen:\n    proxy: 127.0.0.1:0\n    proxyApi: 127.0.0.1:0\n    hub: 127.0.0.1:0\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_wasmhub"))
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = first_lines(child, 3);
    assert_json_lines(&lines);
    assert!(lines.iter().any(|line| line.contains("database lease")), "{lines:#?}");
}
