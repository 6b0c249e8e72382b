//! `wasmhub serve` as one process (store, built-in proxy, local spawner) with real `jupyterhub-singleuser`
//! servers and the real `jupyterhub-idle-culler`: a hub killed with SIGKILL adopts its running servers when it
//! starts again, and the culler stops an idle server through our API.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use wasmhub_system_tests::hub_client::admin_api;
use wasmhub_system_tests::hub_harness::{HubOptions, RunningHub};
use wasmhub_system_tests::venv_bin;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Starts `user`'s default server and waits until the user model says it is ready.
async fn start_server(hub: &mut RunningHub, user: &str) -> Result<()> {
    let (status, body) = admin_api(hub, reqwest::Method::POST, &format!("/users/{user}")).await?;
    ensure!(status == 201 || status == 409, "creating {user}: {status} {body}");
    let (status, body) = admin_api(hub, reqwest::Method::POST, &format!("/users/{user}/server")).await?;
    ensure!(status == 201 || status == 202, "starting {user}'s server: {status} {body}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        hub.check_alive().map_err(anyhow::Error::msg)?;
        let (_, model) = admin_api(hub, reqwest::Method::GET, &format!("/users/{user}")).await?;
        if model["servers"][""]["ready"] == Value::Bool(true) {
            return Ok(());
        }
        if model["servers"] == serde_json::json!({}) && Instant::now() > deadline - Duration::from_secs(110) {
            bail!("{user}'s spawn failed: {model}\nhub log:\n{}", hub.log_tail());
        }
        if Instant::now() > deadline {
            let server_log = hub.server_log(user);
            let tail: Vec<&str> = server_log.lines().rev().take(15).collect();
            bail!(
                "{user}'s server is not ready after 120 s: {model}\nhub log:\n{}\nserver log (last lines first):\n{}",
                hub.log_tail(),
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `GET /user/<name>/api` through the proxy: jupyter_server answers its version without authentication.
async fn server_answers(hub: &RunningHub, user: &str) -> Result<bool> {
    let response = client().get(format!("{}/user/{user}/api", hub.public_url())).send().await?;
    if response.status() != 200 {
        return Ok(false);
    }
    let body: Value = response.json().await.context("the server's /api is not JSON")?;
    Ok(body["version"].is_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_with_sigkill_adopts_its_running_servers() -> Result<()> {
    let mut hub = RunningHub::start(HubOptions::default());
    start_server(&mut hub, "alice").await?;
    start_server(&mut hub, "bob").await?;
    ensure!(server_answers(&hub, "alice").await?, "alice's server is not reachable through the proxy");
    let pids_before = hub.singleuser_pids();
    ensure!(pids_before.len() >= 2, "expected two server processes, found {pids_before:?}");

    hub.kill_hub();
    hub.restart();
    ensure!(
        server_answers(&hub, "alice").await?,
        "after the restart alice's server is not reachable:\n{}",
        hub.log_tail()
    );
    ensure!(server_answers(&hub, "bob").await?, "after the restart bob's server is not reachable");
    let pids_after = hub.singleuser_pids();
    ensure!(pids_after == pids_before, "servers were lost or started again: {pids_before:?} then {pids_after:?}");
    let (status, users) = admin_api(&hub, reqwest::Method::GET, "/users").await?;
    ensure!(status == 200, "listing users: {status} {users}");
    let names: Vec<&str> =
        users.as_array().context("a list")?.iter().filter_map(|user| user["name"].as_str()).collect();
    ensure!(names == ["alice", "bob"], "users after the restart: {names:?}");
    for user in users.as_array().unwrap() {
        let servers = user["servers"].as_object().context("servers")?;
        ensure!(servers.len() == 1 && servers[""]["ready"] == Value::Bool(true), "{}: {servers:?}", user["name"]);
    }

    // Bob's server dies while the hub is down; the next start cleans it up instead of routing to nothing.
    let (_, bob) = admin_api(&hub, reqwest::Method::GET, "/users/bob").await?;
    ensure!(bob["servers"][""]["ready"] == Value::Bool(true), "{bob}");
    hub.kill_hub();
    let bob_pids: Vec<i32> = hub
        .server_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| contains(&env, b"JUPYTERHUB_USER=bob\0"))
        })
        .collect();
    ensure!(!bob_pids.is_empty(), "bob's server process was not found");
    for pid in &bob_pids {
        std::process::Command::new("kill").args(["-s", "KILL", "--", &pid.to_string()]).status()?;
    }
    hub.restart();
    let (_, bob) = admin_api(&hub, reqwest::Method::GET, "/users/bob").await?;
    ensure!(bob["servers"] == serde_json::json!({}), "bob's dead server is still listed: {bob}");
    ensure!(!server_answers(&hub, "bob").await?, "a route to bob's dead server is still there");
    ensure!(server_answers(&hub, "alice").await?, "alice's server was lost in the second restart");

    let (status, body) = admin_api(&hub, reqwest::Method::DELETE, "/users/alice/server").await?;
    ensure!(status == 204 || status == 202, "stopping alice: {status} {body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !hub.server_pids().is_empty() {
        ensure!(Instant::now() < deadline, "server processes left after the stop: {:?}", hub.server_pids());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// The real `jupyterhub-idle-culler` 2.0, with the role z2jh gives it, stops a server nobody uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_idle_culler_stops_an_idle_server() -> Result<()> {
    const CULLER_TOKEN: &str = "idle-culler-token-0123456789abcdef";
    let mut hub = RunningHub::start(HubOptions {
        services: format!("    idle-culler:\n      apiToken: \"{CULLER_TOKEN}\"\n"),
        hub_extra: "  loadRoles:\n    idle-culler:\n      scopes: [\"list:users\", \"read:users:activity\", \
                    \"read:servers\", \"delete:servers\"]\n      services: [idle-culler]\n"
            .to_owned(),
        ..HubOptions::default()
    });
    start_server(&mut hub, "alice").await?;
    let culler_log = hub.dir.path().join("culler.log");
    let log = std::fs::File::create(&culler_log)?;
    let mut command = std::process::Command::new(venv_bin("jh5").join("jupyterhub-idle-culler"));
    command
        .args(["--timeout=5", "--cull-every=3", &format!("--url={}", hub.api_url())])
        .env("JUPYTERHUB_API_TOKEN", CULLER_TOKEN)
        .stdout(log.try_clone()?)
        .stderr(log);
    let _culler = wasmhub_system_tests::ChildGuard::spawn("jupyterhub-idle-culler", command);

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        hub.check_alive().map_err(anyhow::Error::msg)?;
        let (_, model) = admin_api(&hub, reqwest::Method::GET, "/users/alice").await?;
        if model["servers"] == serde_json::json!({}) {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the culler did not stop alice's server within 90 s: {model}\nculler log:\n{}",
                std::fs::read_to_string(&culler_log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let culler_output = std::fs::read_to_string(&culler_log)?;
    ensure!(culler_output.contains("Culling server"), "the culler's log does not show the cull:\n{culler_output}");
    ensure!(!server_answers(&hub, "alice").await?, "alice's route is still there after the cull");
    Ok(())
}

/// `proxy.https` in `wasmhub serve` (issue 14, point 4): `type: secret` serves the files mounted at
/// `wasmhub.tlsSecretDir`, reads them again when they change (a broken one leaves the previous certificate in use),
/// and `wasmhub.listen.proxyHttp` redirects plain HTTP to HTTPS as z2jh's port 80 does.
#[tokio::test(flavor = "multi_thread")]
async fn https_from_a_mounted_secret_is_served_reloaded_and_redirected_to() -> Result<()> {
    use wasmhub_system_tests::{ChildGuard, curl_https, free_port, make_certificate, wasmhub_bin};
    let dir = tempfile::tempdir()?;
    let secret = dir.path().join("secret");
    std::fs::create_dir_all(&secret)?;
    let (key, cert) = make_certificate(dir.path(), "first");
    std::fs::copy(&key, secret.join("tls.key"))?;
    std::fs::copy(&cert, secret.join("tls.crt"))?;
    let (https_port, http_port, api_port, hub_port) = (free_port(), free_port(), free_port(), free_port());
    let config = format!(
        "hub:\n  db:\n    url: \"sqlite://{db}\"\nproxy:\n  https:\n    enabled: true\n    type: secret\n    secret:\n      name: \
         hub-tls\nwasmhub:\n  spawner: noop\n  noop:\n    url: http://127.0.0.1:9\n  tlsSecretDir: \"{secret}\"\n  listen:\n    \
         proxy: \"127.0.0.1:{https_port}\"\n    proxyHttp: \"127.0.0.1:{http_port}\"\n    proxyApi: \"127.0.0.1:{api_port}\"\n    \
         hub: \"127.0.0.1:{hub_port}\"\n",
        db = dir.path().join("hub.sqlite").display(),
        secret = secret.display(),
    );
    let config_path = dir.path().join("wasmhub.yaml");
    std::fs::write(&config_path, config)?;
    let mut command = std::process::Command::new(wasmhub_bin());
    command.args(["serve", "--config"]).arg(&config_path).current_dir(dir.path());
    let log = std::fs::File::create(dir.path().join("hub.log"))?;
    command.stdout(log.try_clone()?).stderr(log);
    let _hub = ChildGuard::spawn("wasmhub serve", command);
    let log_tail = || std::fs::read_to_string(dir.path().join("hub.log")).unwrap_or_default();

    let url = format!("https://127.0.0.1:{https_port}/hub/api/");
    let served = |expected: &'static str| {
        let url = url.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let url = url.clone();
                let (body, subject) = tokio::task::spawn_blocking(move || curl_https(&url)).await.expect("curl");
                if subject.contains(expected) && body.contains("version") {
                    return true;
                }
                if Instant::now() > deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    ensure!(served("CN=first").await, "the mounted certificate is not served over HTTPS:\n{}", log_tail());
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let redirected = plain.get(format!("http://127.0.0.1:{http_port}/hub/login?next=x")).send().await?;
    let location = redirected.headers().get("location").and_then(|value| value.to_str().ok()).unwrap_or_default();
    ensure!(
        redirected.status().is_redirection() && location == format!("https://127.0.0.1:{https_port}/hub/login?next=x"),
        "plain HTTP is redirected to HTTPS: {} {location}",
        redirected.status()
    );

    // The secret is updated (as Kubernetes does, by replacing the files): the new certificate is served.
    let (key, cert) = make_certificate(dir.path(), "second");
    std::fs::copy(&key, secret.join("tls.key"))?;
    std::fs::copy(&cert, secret.join("tls.crt"))?;
    ensure!(served("CN=second").await, "the changed secret was not picked up:\n{}", log_tail());
    // A broken certificate leaves the previous one in use, and says so.
    std::fs::write(secret.join("tls.crt"), "not a certificate")?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    ensure!(served("CN=second").await, "a broken certificate replaced a working one");
    ensure!(log_tail().contains("the previous certificate stays in use"), "the failed reload is not logged");
    Ok(())
}
