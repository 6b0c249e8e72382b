//! `wasmhub serve` with `wasmhub.spawner: kubernetes` against the fake API server of `host/testkit`, whose kubelet
//! backs each pod with a real `jupyterhub-singleuser` (JupyterLab from PyPI) on the pod's own loopback address:
//! a browser logs in, starts a server, watches the pod's events as progress, passes the OAuth flow and runs `1+1`
//! in JupyterLab through the proxy; stopping deletes the pod. A hub killed mid-spawn finds the pod again and
//! finishes the spawn, pods no server owns are collected, and an image that cannot be pulled fails the spawn
//! within seconds with a message the user can read. Every object the fake stored passes
//! `kubernetes-validate --strict`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures_util::StreamExt;
use serde_json::{Value, json};
use wasmhub_system_tests::hub_client::{Browser, PASSWORD, admin_api, use_jupyterlab};
use wasmhub_system_tests::hub_harness::{ADMIN_TOKEN, HubOptions, RunningHub};
use wasmhub_system_tests::venv_bin;
use wasmhub_testkit::fake_k8s::{FakeApiServer, FakeConfig, PodMatch, ProcessBacking, Resource, Scenario};

/// A fake cluster whose pods run the jupyterhub 5 venv's `jupyterhub-singleuser`.
async fn fake_cluster(kubelet_step: Duration, work_dir: &Path) -> Result<FakeApiServer> {
    let fake = FakeApiServer::start(FakeConfig { kubelet_step, ..FakeConfig::default() }).await?;
    let running_as_root = std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|status| status.lines().any(|line| line.starts_with("Uid:\t0\t")));
    fake.set_scenario(
        PodMatch::Any,
        Scenario::Process(ProcessBacking {
            bin_dir: Some(venv_bin("jh5")),
            // jupyter_server refuses to run as root without it; the pods of a real cluster run as uid 1000.
            extra_args: if running_as_root { vec!["--allow-root".into()] } else { Vec::new() },
            work_dir: work_dir.to_owned(),
            command_prefix: Vec::new(),
        }),
    );
    Ok(fake)
}

fn kube_hub(fake: &FakeApiServer, singleuser: &str) -> RunningHub {
    RunningHub::start(HubOptions {
        hub_config: format!("    DummyAuthenticator:\n      password: {PASSWORD}\n"),
        wasmhub_extra: format!(
            "  spawner: kubernetes\n  kubernetes:\n    kubeconfig: \"{}\"\n",
            fake.kubeconfig_path().display()
        ),
        top_level: format!("singleuser:\n{singleuser}"),
        ..HubOptions::default()
    })
}

/// The spawn's progress events from `GET .../progress` (server-sent events) until the ready or failed one.
async fn progress_events(hub: &RunningHub, user: &str, within: Duration) -> Result<Vec<Value>> {
    let response = reqwest::Client::new()
        .get(format!("{}/users/{user}/server/progress", hub.api_url()))
        .header("Authorization", format!("token {ADMIN_TOKEN}"))
        .send()
        .await?;
    ensure!(response.status() == 200, "progress of {user}: {}", response.status());
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + within;
    loop {
        let chunk = tokio::time::timeout_at(deadline.into(), stream.next())
            .await
            .with_context(|| format!("no final progress event for {user} within {within:?}; so far: {events:?}"))?;
        let Some(chunk) = chunk else { bail!("the progress stream of {user} ended early: {events:?}") };
        buffer.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = buffer.find("\n\n") {
            let record: String = buffer.drain(..end + 2).collect();
            let Some(data) = record.trim().strip_prefix("data: ") else { continue };
            let event: Value = serde_json::from_str(data)?;
            let last = event.get("ready").is_some() || event.get("failed").is_some();
            events.push(event);
            if last {
                return Ok(events);
            }
        }
    }
}

/// `kubernetes-validate --strict` (Kubernetes 1.33, from the `k8s` peer venv) on every object the fake stored.
fn validate_stored_objects(fake: &FakeApiServer) -> Result<()> {
    let validator = venv_bin("k8s").join("kubernetes-validate");
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("objects.yaml");
    let count = fake.dump_stored_objects(&file)?;
    ensure!(count > 0, "the fake stored nothing");
    let output =
        std::process::Command::new(&validator).args(["--strict", "--quiet", "-k", "1.33.0"]).arg(&file).output()?;
    ensure!(
        output.status.success(),
        "kubernetes-validate refused objects the fake stored:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

async fn wait_ready(hub: &mut RunningHub, user: &str, within: Duration) -> Result<Value> {
    let deadline = Instant::now() + within;
    loop {
        hub.check_alive().map_err(anyhow::Error::msg)?;
        let (_, model) = admin_api(hub, reqwest::Method::GET, &format!("/users/{user}")).await?;
        if model["servers"][""]["ready"] == json!(true) {
            return Ok(model);
        }
        ensure!(
            Instant::now() < deadline,
            "{user}'s server is not ready after {within:?}: {model}\n{}",
            hub.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_spawned_through_the_kubernetes_spawner_serves_jupyterlab() -> Result<()> {
    let work = tempfile::tempdir()?;
    let fake = fake_cluster(Duration::from_millis(200), work.path()).await?;
    let mut hub = kube_hub(&fake, "  storage:\n    capacity: 2Gi\n");
    let alice = Browser::new(&hub);
    alice.log_in("alice").await?;

    let (status, body) = alice.hub_api(reqwest::Method::POST, "/users/alice/server").await?;
    ensure!(status == 201 || status == 202, "starting alice's server with cookies: {status} {body}");
    let events = progress_events(&hub, "alice", Duration::from_secs(120)).await?;
    let last = events.last().context("no progress")?;
    ensure!(last["ready"] == json!(true), "the spawn did not end ready: {events:#?}\n{}", hub.log_tail());
    // The pod's own events, as KubeSpawner shows them, with the bar moving forward.
    let pod_events: Vec<&str> = events.iter().filter_map(|event| event["message"].as_str()).collect();
    ensure!(
        pod_events.iter().any(|message| message.contains("[Normal] Successfully assigned")),
        "no scheduling event in the progress: {pod_events:#?}"
    );
    let percents: Vec<u64> = events.iter().filter_map(|event| event["progress"].as_u64()).collect();
    ensure!(percents.windows(2).all(|pair| pair[0] <= pair[1]), "progress went backwards: {percents:?}");
    wait_ready(&mut hub, "alice", Duration::from_secs(30)).await?;

    // The objects KubeSpawner would have made, under its names.
    let namespace = fake.namespace().to_owned();
    let pod = fake.get(Resource::Pods, &namespace, "jupyter-alice").context("no pod jupyter-alice")?;
    ensure!(pod["metadata"]["labels"]["component"] == "singleuser-server", "labels: {}", pod["metadata"]["labels"]);
    ensure!(pod["metadata"]["annotations"]["hub.jupyter.org/username"] == "alice");
    let claim = fake.get(Resource::PersistentVolumeClaims, &namespace, "claim-alice").context("no claim")?;
    ensure!(claim["spec"]["resources"]["requests"]["storage"] == "2Gi", "claim: {claim}");

    // Through the proxy into JupyterLab: the OAuth flow, contents, a kernel.
    use_jupyterlab(&hub, &alice, "alice", "").await?;

    // Stopping deletes the pod (and waits for it); the claim stays for the next start.
    let (status, body) = alice.hub_api(reqwest::Method::DELETE, "/users/alice/server").await?;
    ensure!(status == 204 || status == 202, "stopping with cookies: {status} {body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.get(Resource::Pods, &namespace, "jupyter-alice").is_some() {
        ensure!(Instant::now() < deadline, "the pod is still there 30 s after the stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(fake.get(Resource::PersistentVolumeClaims, &namespace, "claim-alice").is_some(), "the claim went too");
    validate_stored_objects(&fake)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_mid_spawn_finishes_it_after_the_restart_and_failures_reach_the_user() -> Result<()> {
    let work = tempfile::tempdir()?;
    // Slow steps, so the hub can be killed while the pod is still being started.
    let fake = fake_cluster(Duration::from_millis(1500), work.path()).await?;
    fake.set_scenario(PodMatch::Name("jupyter-carol".into()), Scenario::ImagePullError);
    let namespace = fake.namespace().to_owned();
    let mut hub = kube_hub(&fake, "  storage:\n    type: none\n");
    for user in ["alice", "carol"] {
        let (status, body) = admin_api(&hub, reqwest::Method::POST, &format!("/users/{user}")).await?;
        ensure!(status == 201, "creating {user}: {status} {body}");
    }

    // Not awaited: the hub answers only after up to `slow_spawn_timeout`, and it is killed before that.
    let start = reqwest::Client::new()
        .post(format!("{}/users/alice/server", hub.api_url()))
        .header("Authorization", format!("token {ADMIN_TOKEN}"))
        .send();
    let start = tokio::spawn(start);
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.get(Resource::Pods, &namespace, "jupyter-alice").is_none() {
        ensure!(Instant::now() < deadline, "no pod for alice after 30 s:\n{}", hub.log_tail());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let uid = fake.get(Resource::Pods, &namespace, "jupyter-alice").context("pod")?["metadata"]["uid"].clone();
    hub.kill_hub();
    start.abort();
    // A pod of this hub that no server owns: what a hub that died between creating a pod and recording it leaves.
    let mut orphan = fake.get(Resource::Pods, &namespace, "jupyter-alice").context("pod")?;
    orphan["metadata"] = json!({
        "name": "jupyter-nobody",
        "labels": orphan["metadata"]["labels"],
        "annotations": { "hub.jupyter.org/username": "nobody", "hub.jupyter.org/wasmhub-instance": "wasmhub" },
    });
    orphan.as_object_mut().context("pod object")?.remove("status");
    fake.create(Resource::Pods, &namespace, orphan).map_err(|status| anyhow::anyhow!("{status:?}"))?;

    hub.restart();
    wait_ready(&mut hub, "alice", Duration::from_secs(120)).await?;
    ensure!(hub.log_tail().contains("resumed=1"), "the spawn was not resumed:\n{}", hub.log_tail());
    let pod = fake.get(Resource::Pods, &namespace, "jupyter-alice").context("alice's pod after the restart")?;
    ensure!(pod["metadata"]["uid"] == uid, "the pod was recreated instead of adopted");
    ensure!(fake.api_call_count("create", Resource::Pods) == 1, "alice's pod was created more than once");
    let status = reqwest::Client::new()
        .get(format!("{}/user/alice/api/status", hub.public_url()))
        .header("Authorization", format!("token {ADMIN_TOKEN}"))
        .send()
        .await?
        .status();
    ensure!(status == 200, "alice's resumed server through the proxy: {status}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.get(Resource::Pods, &namespace, "jupyter-nobody").is_some() {
        ensure!(Instant::now() < deadline, "the orphaned pod was not collected:\n{}", hub.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An image that cannot be pulled ends the spawn within seconds, and says why.
    let began = Instant::now();
    let (status, body) = admin_api(&hub, reqwest::Method::POST, "/users/carol/server").await?;
    ensure!(status == 202 || status == 500, "starting carol's server: {status} {body}");
    let events = progress_events(&hub, "carol", Duration::from_secs(30)).await?;
    let last = events.last().context("no progress")?;
    ensure!(last["failed"] == json!(true), "carol's spawn did not fail: {events:#?}");
    let message = last["message"].as_str().unwrap_or_default();
    ensure!(message.contains("the image cannot be pulled (ErrImagePull)"), "failure message: {message}");
    ensure!(began.elapsed() < Duration::from_secs(20), "the pull failure took {:?}", began.elapsed());
    let (_, carol) = admin_api(&hub, reqwest::Method::GET, "/users/carol").await?;
    ensure!(carol["servers"].as_object().is_none_or(|servers| servers.is_empty()), "carol: {carol}");
    validate_stored_objects(&fake)
}
