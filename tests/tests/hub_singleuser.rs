//! A browser's whole path through `wasmhub serve` with the real `jupyterhub-singleuser` and JupyterLab, for
//! JupyterHub 5.x and 6.x single-user servers: log in with the form, start the server with a cookie-authenticated
//! API call, pass the server's OAuth flow, open `/user/alice/lab` and `/user/alice/api/contents` with cookies
//! only, run `1+1` on a kernel over its WebSocket, see another user refused, see the server's activity post move
//! `last_activity`, and stop: the route goes and the server's token stops working.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::json;
use wasmhub_system_tests::hub_client::{Browser, PASSWORD, admin_api, use_jupyterlab};
use wasmhub_system_tests::hub_harness::{ADMIN_TOKEN, HubOptions, RunningHub};

async fn browser_session_reaches_jupyterlab(venv: &'static str) -> Result<()> {
    let mut hub = RunningHub::start(HubOptions {
        venv,
        hub_config: format!("    DummyAuthenticator:\n      password: {PASSWORD}\n"),
        ..HubOptions::default()
    });
    let alice = Browser::new(&hub);
    alice.log_in("alice").await?;

    let (status, body) = alice.hub_api(reqwest::Method::POST, "/users/alice/server").await?;
    ensure!(status == 201 || status == 202, "starting alice's server with cookies: {status} {body}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        hub.check_alive().map_err(anyhow::Error::msg)?;
        let (_, model) = alice.hub_api(reqwest::Method::GET, "/user").await?;
        if model["servers"][""]["ready"] == json!(true) {
            break;
        }
        if Instant::now() > deadline {
            bail!("alice's server is not ready after 120 s: {model}\n{}\n{}", hub.log_tail(), hub.server_log("alice"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    use_jupyterlab(&hub, &alice, "alice", &hub.server_log("alice")).await?;

    // Bob is logged in to the hub but may not use alice's server: the hub refuses the OAuth authorization.
    let bob = Browser::new(&hub);
    bob.log_in("bob").await?;
    let refused = bob.client.get(format!("{}/user/alice/lab", bob.base)).send().await?;
    ensure!(refused.status() == 403, "bob opening alice's lab got {} at {}", refused.status(), refused.url());
    let refused = bob.client.get(format!("{}/user/alice/api/contents", bob.base)).send().await?;
    ensure!(refused.status() == 403, "bob reading alice's contents got {} at {}", refused.status(), refused.url());

    // The server posts its activity to the hub when it starts and while it is used.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, model) = admin_api(&hub, reqwest::Method::GET, "/users/alice").await?;
        if model["servers"][""]["last_activity"].is_string() {
            break;
        }
        ensure!(Instant::now() < deadline, "the server's activity never reached the hub: {model}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Stopping: the route goes, and the server's hub token stops working.
    let server_token = server_api_token(&hub, "alice").context("alice's server token")?;
    let (status, _) = admin_api(&hub, reqwest::Method::GET, "/user").await?;
    ensure!(status == 200, "the admin token itself works");
    let with_server_token = reqwest::Client::new()
        .get(format!("{}/user", hub.api_url()))
        .header("Authorization", format!("token {server_token}"))
        .send()
        .await?;
    ensure!(with_server_token.status() == 200, "the server's token before the stop: {}", with_server_token.status());
    let (status, body) = alice.hub_api(reqwest::Method::DELETE, "/users/alice/server").await?;
    ensure!(status == 204 || status == 202, "stopping with cookies: {status} {body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = reqwest::Client::new()
            .get(format!("{}/user/alice/api/status", hub.public_url()))
            .header("Authorization", format!("token {ADMIN_TOKEN}"))
            .send()
            .await?
            .status();
        if status == 424 {
            break;
        }
        ensure!(Instant::now() < deadline, "after the stop /user/alice/api/status still gives {status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let with_server_token = reqwest::Client::new()
        .get(format!("{}/user", hub.api_url()))
        .header("Authorization", format!("token {server_token}"))
        .send()
        .await?;
    ensure!(with_server_token.status() == 403, "the server's token after the stop: {}", with_server_token.status());
    Ok(())
}

/// `JUPYTERHUB_API_TOKEN` of the user's running server, read from its environment.
fn server_api_token(hub: &RunningHub, user: &str) -> Option<String> {
    hub.server_pids().into_iter().find_map(|pid| {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        let variables: Vec<String> =
            environ.split(|byte| *byte == 0).map(|entry| String::from_utf8_lossy(entry).into_owned()).collect();
        if !variables.iter().any(|entry| entry == &format!("JUPYTERHUB_USER={user}")) {
            return None;
        }
        variables.iter().find_map(|entry| entry.strip_prefix("JUPYTERHUB_API_TOKEN=").map(str::to_owned))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_reaches_jupyterlab_with_a_jupyterhub_5_server() -> Result<()> {
    browser_session_reaches_jupyterlab("jh5").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_reaches_jupyterlab_with_a_jupyterhub_6_server() -> Result<()> {
    browser_session_reaches_jupyterlab("jh6").await
}

/// `hub.baseUrl: /jhub/` (issue 14, point 5): login, spawn, JupyterLab with a kernel computing `1+1`, and logout,
/// all under the prefix with the real `jupyterhub-singleuser`; nothing of the hub answers outside it.
#[tokio::test(flavor = "multi_thread")]
async fn everything_works_under_a_base_url() -> Result<()> {
    let mut hub = RunningHub::start(HubOptions {
        hub_config: format!("    DummyAuthenticator:\n      password: {PASSWORD}\n"),
        base_url: Some("/jhub"),
        ..HubOptions::default()
    });
    let alice = Browser::new(&hub);
    alice.log_in("alice").await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        hub.check_alive().map_err(anyhow::Error::msg)?;
        let (_, model) = alice.hub_api(reqwest::Method::GET, "/user").await?;
        if model["servers"][""]["ready"] == json!(true) {
            ensure!(model["servers"][""]["url"] == "/jhub/user/alice/", "the server's URL: {model}");
            break;
        }
        if Instant::now() > deadline {
            bail!("alice's server is not ready after 120 s: {model}\n{}\n{}", hub.log_tail(), hub.server_log("alice"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    use_jupyterlab(&hub, &alice, "alice", &hub.server_log("alice")).await?;

    let outside = reqwest::get(format!("{}/hub/api/", hub.public_url())).await?;
    ensure!(outside.status() == 404, "/hub/api/ outside the prefix answered {}", outside.status());
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let root = client.get(format!("{}/", hub.public_url())).send().await?;
    ensure!(root.headers().get("location").is_some_and(|location| location == "/jhub/"), "/ leads to the prefix");

    let logout = alice.client.get(format!("{}/hub/logout", alice.base)).send().await?;
    ensure!(logout.url().path() == "/jhub/hub/login", "logout ends at the login page: {}", logout.url());
    ensure!(alice.cookie("/hub/", "jupyterhub-hub-login").is_none(), "the login cookie is gone after logout");
    let (status, _) = alice.hub_api(reqwest::Method::GET, "/user").await?;
    ensure!(status == 403, "after logout the API answers {status}");
    Ok(())
}
