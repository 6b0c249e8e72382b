//! Hub restarts nobody notices (issue 14, point 2): with the proxy in its own process (`wasmhub proxy`, holding
//! requests for the hub while it is away), the hub is killed with SIGKILL and started again from another copy of
//! the binary, standing for an upgrade. Counted, not timed: a client loop of 200 logins, API calls and page loads
//! across the gap has no failure; alice's kernel WebSocket is the same connection and still computes `1+1`; and
//! bob's spawn, in flight when the hub died, completes.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use wasmhub_system_tests::hub_client::{
    Browser, PASSWORD, admin_api, kernel_socket, request_loop, run_code, use_jupyterlab, wait_ready,
};
use wasmhub_system_tests::hub_harness::{ADMIN_TOKEN, HubOptions, RunningHub};
use wasmhub_system_tests::proxy_harness::{ProxyKind, RunningProxy};
use wasmhub_system_tests::wasmhub_bin;

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_killed_and_upgraded_behind_its_own_proxy_goes_unnoticed() -> Result<()> {
    let (proxy, hub_port) = RunningProxy::for_hub(ProxyKind::Wasmhub).await;
    let behind = HubOptions::behind(&proxy, hub_port);
    let mut hub = RunningHub::start(HubOptions {
        hub_config: format!("    DummyAuthenticator:\n      password: {PASSWORD}\n{}", behind.hub_config),
        top_level: format!("{}singleuser:\n  defaultUrl: /lab\n", behind.top_level),
        ..behind
    });
    let public = hub.public_url();

    // alice in JupyterLab with a kernel WebSocket open through the proxy.
    let alice = Browser::new(&hub);
    alice.log_in("alice").await?;
    wait_ready(&hub, "alice").await?;
    use_jupyterlab(&hub, &alice, "alice", &hub.server_log("alice")).await?;
    let server_xsrf = alice.cookie("/user/alice/", "_xsrf").context("the server's _xsrf cookie")?;
    let kernel: Value = alice
        .client
        .post(format!("{public}/user/alice/api/kernels"))
        .header("X-XSRFToken", &server_xsrf)
        .json(&json!({ "name": "python3" }))
        .send()
        .await?
        .json()
        .await?;
    let kernel_id = kernel["id"].as_str().context("kernel id")?.to_owned();
    let cookies = alice.cookie_header("/user/alice/api/");
    let mut socket = kernel_socket(&hub, "alice", &cookies, &server_xsrf, &kernel_id).await?;
    ensure!(run_code(&mut socket, "alice", "1+1").await? == "2", "1+1 before the restart");
    let page_cookies = alice.cookie_header("/hub/");

    // bob's spawn is in flight (its record says so) when the hub dies.
    let (status, body) = admin_api(&hub, reqwest::Method::POST, "/users/bob").await?;
    ensure!(status == 201, "creating bob: {status} {body}");
    let spawn = {
        let url = format!("{}/users/bob/server", hub.api_url());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let _ = client.post(url).header("Authorization", format!("token {ADMIN_TOKEN}")).send().await;
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, model) = admin_api(&hub, reqwest::Method::GET, "/users/bob").await?;
        if model["servers"][""]["pending"] == "spawn" {
            break;
        }
        ensure!(Instant::now() < deadline, "bob's spawn never showed as pending: {model}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The upgrade: the hub is killed, and a copy of the binary starts a moment later while clients keep going.
    let copy = tempfile::tempdir()?;
    let upgraded = copy.path().join("wasmhub-upgraded");
    std::fs::copy(wasmhub_bin(), &upgraded)?;
    hub.kill_hub();
    let client_loop = tokio::spawn(request_loop(public.clone(), page_cookies.clone(), 200));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut hub = tokio::task::spawn_blocking(move || {
        hub.start_again_from(&upgraded);
        hub
    })
    .await?;
    let failures = client_loop.await?;
    ensure!(failures.is_empty(), "{} of 200 requests failed across the restart: {failures:#?}", failures.len());

    // The same WebSocket still computes, and bob's spawn finished.
    ensure!(run_code(&mut socket, "alice", "1+1").await? == "2", "1+1 on the same WebSocket after the restart");
    wait_ready(&hub, "bob").await.context("bob's spawn, in flight when the hub died")?;
    spawn.abort();
    hub.check_alive().map_err(anyhow::Error::msg)?;
    Ok(())
}
