//! `wasmhub serve` with the proxy in another process (`ConfigurableHTTPProxy.should_start: false`), driven over
//! CHP's REST API as z2jh runs it: against `wasmhub proxy` and against configurable-http-proxy 5.3 itself, the hub
//! adds its servers' routes, fixes a wrong target, deletes a stale route of its own, leaves a route it does not own
//! alone, puts everything back when the proxy restarts empty, and fails its health check while the proxy is away.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use wasmhub_system_tests::hub_client::admin_api;
use wasmhub_system_tests::hub_harness::{HubOptions, RunningHub};
use wasmhub_system_tests::proxy_harness::{ProxyKind, RunningProxy, TOKEN};

/// The proxy's routes, by key, through its own API.
async fn routes(proxy: &RunningProxy) -> Result<serde_json::Map<String, Value>> {
    let response = reqwest::Client::new()
        .get(format!("{}/api/routes", proxy.api_url()))
        .header("Authorization", format!("token {TOKEN}"))
        .send()
        .await?;
    ensure!(response.status() == 200, "GET /api/routes: {}", response.status());
    Ok(response.json::<Value>().await?.as_object().cloned().unwrap_or_default())
}

async fn post_route(proxy: &RunningProxy, path: &str, data: Value) -> Result<()> {
    let response = reqwest::Client::new()
        .post(format!("{}/api/routes{path}", proxy.api_url()))
        .header("Authorization", format!("token {TOKEN}"))
        .json(&data)
        .send()
        .await?;
    ensure!(response.status() == 201, "POST /api/routes{path}: {}", response.status());
    Ok(())
}

/// Waits up to `within` for `check` on the proxy's routes to hold.
async fn eventually(
    proxy: &RunningProxy,
    within: Duration,
    what: &str,
    check: impl Fn(&serde_json::Map<String, Value>) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let table = routes(proxy).await.unwrap_or_default();
        if check(&table) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what} within {within:?}; the proxy's routes: {}", Value::Object(table));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn hub_health(hub: &RunningHub) -> u16 {
    let url = format!("http://127.0.0.1:{}/hub/health", hub.hub_port);
    reqwest::get(url).await.map(|response| response.status().as_u16()).unwrap_or(0)
}

async fn routes_follow_the_hub(kind: ProxyKind) -> Result<()> {
    let (mut proxy, hub_port) = RunningProxy::for_hub(kind).await;
    let mut hub = RunningHub::start(HubOptions::behind(&proxy, hub_port));
    let (status, body) = admin_api(&hub, reqwest::Method::POST, "/users/alice").await?;
    ensure!(status == 201, "creating alice: {status} {body}");
    let (status, body) = admin_api(&hub, reqwest::Method::POST, "/users/alice/server").await?;
    ensure!(status == 201 || status == 202, "starting alice's server: {status} {body}");
    let within = Duration::from_secs(60);
    eventually(&proxy, within, "alice's route", |table| table.contains_key("/user/alice")).await?;
    let target = routes(&proxy).await?["/user/alice"]["target"].as_str().context("a target")?.to_owned();
    // Through the proxy, alice's server answers (its API root needs no login).
    let reached = reqwest::get(format!("{}/user/alice/api", proxy.proxy_url())).await?;
    ensure!(reached.status() == 200, "alice's server through the proxy: {}", reached.status());

    // A wrong target of the hub's, a stale route of the hub's and a route the hub does not own.
    post_route(
        &proxy,
        "/user/alice",
        json!({ "target": "http://127.0.0.1:9", "user": "alice", "server_name": "", "jupyterhub": true }),
    )
    .await?;
    post_route(
        &proxy,
        "/user/ghost",
        json!({ "target": "http://127.0.0.1:9", "user": "ghost", "server_name": "", "jupyterhub": true }),
    )
    .await?;
    post_route(&proxy, "/someone-elses", json!({ "target": "http://127.0.0.1:9" })).await?;
    eventually(&proxy, Duration::from_secs(10), "the hub putting its routes right", |table| {
        table.get("/user/alice").and_then(|route| route["target"].as_str()) == Some(target.as_str())
            && !table.contains_key("/user/ghost")
            && table.contains_key("/someone-elses")
    })
    .await?;

    // The proxy dies: the hub's health check fails until it is back, then every route is back.
    proxy.process().signal("KILL");
    let _ = proxy.process().wait_timeout(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub_health(&hub).await != 503 {
        ensure!(Instant::now() < deadline, "/hub/health kept answering {} with the proxy gone", hub_health(&hub).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.restart("KILL").await;
    eventually(&proxy, Duration::from_secs(10), "alice's route back in the restarted proxy", |table| {
        table.get("/user/alice").and_then(|route| route["target"].as_str()) == Some(target.as_str())
    })
    .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub_health(&hub).await != 200 {
        ensure!(Instant::now() < deadline, "/hub/health still {} with the proxy back", hub_health(&hub).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reached = reqwest::get(format!("{}/user/alice/api", proxy.proxy_url())).await?;
    ensure!(reached.status() == 200, "alice's server through the restarted proxy: {}", reached.status());
    hub.check_alive().map_err(anyhow::Error::msg)?;
    let (status, _) = admin_api(&hub, reqwest::Method::DELETE, "/users/alice/server").await?;
    ensure!(status == 204 || status == 202, "stopping alice's server: {status}");
    eventually(&proxy, Duration::from_secs(30), "alice's route gone after her server stopped", |table| {
        !table.contains_key("/user/alice")
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_separate_wasmhub_proxy_keeps_the_hubs_routes() -> Result<()> {
    routes_follow_the_hub(ProxyKind::Wasmhub).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_separate_configurable_http_proxy_keeps_the_hubs_routes() -> Result<()> {
    routes_follow_the_hub(ProxyKind::Chp).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_proxy_token_is_one_clear_log_line_and_a_failing_health_check_not_a_crash() -> Result<()> {
    let (proxy, hub_port) = RunningProxy::for_hub(ProxyKind::Wasmhub).await;
    let mut hub = RunningHub::start(HubOptions {
        top_level: "proxy:\n  secretToken: \"not-the-proxys-token\"\n".into(),
        ..HubOptions::behind(&proxy, hub_port)
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while hub_health(&hub).await != 503 {
        ensure!(Instant::now() < deadline, "/hub/health answered {} with a wrong token", hub_health(&hub).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Several check periods later: still running, still failing its health check, and said so once.
    tokio::time::sleep(Duration::from_secs(4)).await;
    hub.check_alive().map_err(anyhow::Error::msg)?;
    ensure!(hub_health(&hub).await == 503, "/hub/health recovered with a wrong token");
    let said = hub.log().matches("cannot keep the proxy's routes").count();
    ensure!(said == 1, "the failure was logged {said} times:\n{}", hub.log_tail());
    ensure!(hub.log().contains("403"), "the log line does not say the proxy refused the token:\n{}", hub.log_tail());
    Ok(())
}
