//! The hub and its PostgreSQL database (issue 14, points 3 and 6), each test on a private PostgreSQL it may stop:
//! a rolling update, where a second hub on the same database waits for the lease and takes over when the first is
//! told to stop, with no failed request meanwhile; and a database outage of 20 s, during which users' servers keep
//! answering, the API says what is wrong and changes nothing, and after which the hub goes on without a restart.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use reqwest::Method;
use serde_json::Value;
use wasmhub_system_tests::hub_client::{Browser, PASSWORD, admin_api, request_loop, wait_ready};
use wasmhub_system_tests::hub_harness::{HubOptions, RunningHub};
use wasmhub_system_tests::postgres::PrivatePostgres;
use wasmhub_system_tests::proxy_harness::{ProxyKind, RunningProxy};

/// Creates `user` and starts their default server, waiting until it is ready.
async fn running_server(hub: &RunningHub, user: &str) -> Result<()> {
    let (status, body) = admin_api(hub, Method::POST, &format!("/users/{user}")).await?;
    ensure!(status == 201, "creating {user}: {status} {body}");
    let (status, body) = admin_api(hub, Method::POST, &format!("/users/{user}/server")).await?;
    ensure!(status == 201 || status == 202, "starting {user}'s server: {status} {body}");
    wait_ready(hub, user).await
}

/// Waits until the current hub log says `text`.
async fn wait_for_log(hub: &RunningHub, text: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !hub.log().contains(text) {
        ensure!(Instant::now() < deadline, "the hub never logged {text:?}:\n{}", hub.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_update_on_postgresql_hands_over_with_no_failed_request() -> Result<()> {
    let postgres = tokio::task::spawn_blocking(PrivatePostgres::start).await?;
    let (proxy, hub_port) = RunningProxy::for_hub(ProxyKind::Wasmhub).await;
    let behind = HubOptions::behind(&proxy, hub_port);
    let hub = RunningHub::start(HubOptions {
        hub_config: format!("    DummyAuthenticator:\n      password: {PASSWORD}\n{}", behind.hub_config),
        postgres_url: Some(postgres.url()),
        ..behind
    });
    let public = hub.public_url();
    running_server(&hub, "alice").await?;
    let carol = Browser::new(&hub);
    carol.log_in("carol").await?;
    let page_cookies = carol.cookie_header("/hub/");

    // The new hub (the same config: same database, same ports) starts beside the old one. It waits for the lease
    // and binds nothing meanwhile, so the old one keeps answering alone.
    let mut hub = hub;
    let next = hub.start_beside();
    wait_for_log(&hub, "waiting for the hub that holds the database lease").await?;
    let (status, _) = admin_api(&hub, Method::GET, "/users/alice").await?;
    ensure!(status == 200, "the old hub stopped answering while the new one waited: {status}");

    // Kubernetes stops the old pod; users keep going through the proxy, which holds requests for the hub.
    hub.terminate_hub();
    let client_loop = tokio::spawn(request_loop(public.clone(), page_cookies, 200));
    let (hub, old_exit) = tokio::task::spawn_blocking(move || {
        let status = hub.hand_over(next, Duration::from_secs(30));
        (hub, status)
    })
    .await?;
    ensure!(old_exit.is_some_and(|status| status.success()), "the old hub's exit on SIGTERM: {old_exit:?}");
    let failures = client_loop.await?;
    ensure!(
        failures.is_empty(),
        "{} of 200 requests failed across the handover: {failures:#?}\n--- proxy log\n{}",
        failures.len(),
        proxy.log_tail(40)
    );

    // The new hub acts: it took the lease, adopted alice's running server, and spawns.
    ensure!(hub.log().contains("took the database lease"), "{}", hub.log_tail());
    wait_ready(&hub, "alice").await.context("alice's server after the handover")?;
    let status = reqwest::get(format!("{public}/user/alice/api")).await?.status();
    ensure!(status == 200, "alice's server through the proxy after the handover: {status}");
    running_server(&hub, "bob").await.context("a spawn by the new hub")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_outage_answers_503_changes_nothing_and_the_hub_recovers_without_a_restart() -> Result<()> {
    let postgres = tokio::task::spawn_blocking(PrivatePostgres::start).await?;
    let mut hub = RunningHub::start(HubOptions { postgres_url: Some(postgres.url()), ..HubOptions::default() });
    let public = hub.public_url();
    running_server(&hub, "alice").await?;
    let (status, token) = admin_api(&hub, Method::POST, "/users/alice/tokens").await?;
    ensure!(status == 201, "a token for alice: {status} {token}");
    let token = token["token"].as_str().context("the new token")?.to_owned();
    // alice's client talks to her server, which checks her token with the hub (and remembers the answer).
    let use_server = || async {
        let response = reqwest::Client::new()
            .get(format!("{public}/user/alice/api/status"))
            .header("Authorization", format!("token {token}"))
            .send()
            .await?;
        anyhow::Ok(response.status().as_u16())
    };
    ensure!(use_server().await? == 200, "alice's server before the outage");

    let postgres = tokio::task::spawn_blocking(move || {
        postgres.stop();
        postgres
    })
    .await?;
    let outage = Instant::now();

    // Proxied traffic to running servers does not need the database.
    ensure!(use_server().await? == 200, "alice's server during the outage");
    // The API says what is wrong, in JupyterHub's error shape; a write is refused whole.
    let (status, body) = admin_api(&hub, Method::GET, "/users/alice").await?;
    ensure!(status == 503, "GET a user during the outage: {status} {body}");
    ensure!(body["status"] == 503, "JupyterHub's error shape: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    ensure!(message.contains("database is not answering"), "the message says why: {body}");
    let (status, body) = admin_api(&hub, Method::POST, "/users/bob").await?;
    ensure!(status == 503, "creating a user during the outage: {status} {body}");
    // Twenty seconds, longer than the database lease, with the hub up and alice's server answering throughout.
    while outage.elapsed() < Duration::from_secs(20) {
        hub.check_alive().map_err(anyhow::Error::msg)?;
        ensure!(use_server().await? == 200, "alice's server during the outage");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let postgres = tokio::task::spawn_blocking(move || {
        postgres.start_again();
        postgres
    })
    .await?;

    // The same hub process answers again, and nothing was half-done: bob does not exist, alice's server runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = admin_api(&hub, Method::GET, "/users/alice").await?;
        if status == 200 {
            ensure!(body["servers"][""]["ready"] == Value::Bool(true), "alice's server after the outage: {body}");
            break;
        }
        ensure!(Instant::now() < deadline, "the hub did not recover within 30 s: {status} {body}\n{}", hub.log_tail());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, body) = admin_api(&hub, Method::GET, "/users/bob").await?;
    ensure!(status == 404, "bob, whose creation was refused, exists: {status} {body}");
    running_server(&hub, "bob").await.context("creating and spawning after the outage")?;
    ensure!(use_server().await? == 200, "alice's server after the outage");
    hub.check_alive().map_err(anyhow::Error::msg)?;
    drop(postgres);
    Ok(())
}
