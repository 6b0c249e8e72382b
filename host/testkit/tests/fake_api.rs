//! The fake API server's own behaviour suite, driven by the real kube-rs client from the generated kubeconfig:
//! errors, validation, selectors, resourceVersions, watches with bookmarks and 410 Expired, and the simulated
//! kubelet's scenarios.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use wasmhub_testkit::fake_k8s::{FakeApiServer, FakeConfig, PodMatch, Resource, Scenario};

async fn client(fake: &FakeApiServer) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(fake.kubeconfig_path()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"component": "singleuser-server", "user": name}},
        "spec": {"containers": [{"name": "notebook", "image": image, "ports": [{"name": "notebook-port", "containerPort": 8888}]}]}
    }))
    .unwrap()
}

fn api_error(error: kube::Error) -> kube::core::ErrorResponse {
    match error {
        kube::Error::Api(response) => response,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn crud_errors_validation_and_selectors() {
    let fake = FakeApiServer::start(FakeConfig::default()).await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client(&fake).await);
    let created = pods.create(&PostParams::default(), &pod("jupyter-alice", "x:1")).await.unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.resource_version.is_some());
    assert_eq!(created.spec.as_ref().unwrap().restart_policy.as_deref(), Some("Always"), "defaulted");

    let conflict = api_error(pods.create(&PostParams::default(), &pod("jupyter-alice", "x:1")).await.unwrap_err());
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(conflict.message, "pods \"jupyter-alice\" already exists");

    let missing = api_error(pods.get("nobody").await.unwrap_err());
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));

    let invalid = api_error(pods.create(&PostParams::default(), &pod("jupyter-bob", "")).await.unwrap_err());
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    assert!(invalid.message.contains("spec.containers[0].image: Required value"), "{}", invalid.message);

    let elsewhere: Api<Pod> = Api::namespaced(client(&fake).await, "missing-ns");
    let no_namespace = api_error(elsewhere.create(&PostParams::default(), &pod("p", "x:1")).await.unwrap_err());
    assert_eq!(no_namespace.message, "namespaces \"missing-ns\" not found");

    pods.create(&PostParams::default(), &pod("jupyter-carol", "x:1")).await.unwrap();
    let selected = pods.list(&ListParams::default().labels("user in (jupyter-carol, zed)")).await.unwrap();
    assert_eq!(selected.items.len(), 1);
    let by_field = pods.list(&ListParams::default().fields("metadata.name=jupyter-alice")).await.unwrap();
    assert_eq!(by_field.items[0].metadata.name.as_deref(), Some("jupyter-alice"));
    let refused = api_error(pods.list(&ListParams::default().fields("spec.bogus=1")).await.unwrap_err());
    assert_eq!((refused.code, refused.message.as_str()), (400, "field label not supported: spec.bogus"));
    let paged = pods.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(paged.items.len(), 1);
    assert!(paged.metadata.continue_.is_some());

    // An object kube-rs would never send, with an unknown field: straight over HTTP.
    let http = reqwest_free_post(
        &fake,
        "/api/v1/namespaces/default/pods",
        json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "typo"},
            "spec": {"containers": [{"name": "notebook", "image": "x:1", "imagePullPolicies": "Always"}]}
        }),
    )
    .await;
    assert_eq!(http.0, 400);
    assert!(http.1.contains("unknown field \\\"spec.containers[0].imagePullPolicies\\\""), "{}", http.1);

    pods.delete("jupyter-carol", &DeleteParams::default()).await.unwrap();
}

/// A raw POST over a plain TCP connection, for bodies the typed client cannot produce.
async fn reqwest_free_post(fake: &FakeApiServer, path: &str, body: serde_json::Value) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = fake.url().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let code = response[9..12].parse().unwrap();
    (code, response)
}

#[tokio::test]
async fn watcher_recovers_from_410_and_sees_bookmarks() {
    let config = FakeConfig { bookmark_interval: Duration::from_millis(50), ..FakeConfig::default() };
    let fake = FakeApiServer::start(config).await.unwrap();
    fake.set_scenario(PodMatch::Any, Scenario::Stuck);
    let client = client(&fake).await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.create(&PostParams::default(), &pod("jupyter-a", "x:1")).await.unwrap();
    let mut stream = watcher(pods.clone(), watcher::Config::default().labels("component=singleuser-server")).boxed();
    let mut names = std::collections::BTreeSet::new();
    let collect =
        async |stream: &mut futures_util::stream::BoxStream<'_, Result<watcher::Event<Pod>, watcher::Error>>,
               names: &mut std::collections::BTreeSet<String>,
               until: &dyn Fn(&std::collections::BTreeSet<String>) -> bool| {
            tokio::time::timeout(Duration::from_secs(10), async {
                while !until(names) {
                    match stream.next().await.unwrap() {
                        Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                            names.insert(pod.metadata.name.unwrap());
                        }
                        Ok(watcher::Event::Delete(pod)) => {
                            names.remove(&pod.metadata.name.unwrap());
                        }
                        Ok(_) => {}
                        // The watcher reports the 410 and then relists by itself.
                        Err(error) => assert!(error.to_string().contains("Expired"), "watch error {error}"),
                    }
                }
            })
            .await
            .expect("watch stalled");
        };
    collect(&mut stream, &mut names, &|names| names.contains("jupyter-a")).await;
    // Bookmarks keep the watch's version fresh without surfacing as events.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The server restarts and compacts its history while a pod is created: the re-watch gets 410 and relists.
    fake.compact();
    fake.drop_watches();
    fake.create(Resource::Pods, "default", serde_json::to_value(pod("jupyter-c", "x:1")).unwrap()).unwrap();
    fake.compact();
    collect(&mut stream, &mut names, &|names| names.contains("jupyter-c")).await;
    pods.delete("jupyter-a", &DeleteParams::default()).await.unwrap();
    collect(&mut stream, &mut names, &|names| !names.contains("jupyter-a")).await;
    assert!(fake.api_call_count("list", Resource::Pods) >= 2, "the 410 forced a relist");
}

#[tokio::test]
async fn kubelet_scenarios_produce_real_statuses_and_events() {
    let fake = FakeApiServer::start(FakeConfig::default()).await.unwrap();
    fake.set_scenario(PodMatch::Image("bad/image:1".into()), Scenario::ImagePullError);
    fake.set_scenario(PodMatch::Name("jupyter-huge".into()), Scenario::Unschedulable);
    fake.set_scenario(PodMatch::Name("jupyter-crash".into()), Scenario::CrashLoop);
    let client = client(&fake).await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    for (name, image) in
        [("jupyter-ok", "x:1"), ("jupyter-pull", "bad/image:1"), ("jupyter-huge", "x:1"), ("jupyter-crash", "x:1")]
    {
        pods.create(&PostParams::default(), &pod(name, image)).await.unwrap();
    }
    let wait_for = async |name: &str, check: &dyn Fn(&Pod) -> bool| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let pod = pods.get(name).await.unwrap();
            if check(&pod) {
                return pod;
            }
            assert!(tokio::time::Instant::now() < deadline, "{name} never got there: {:?}", pod.status);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let waiting_reason = |pod: &Pod| {
        pod.status.as_ref()?.container_statuses.as_ref()?.first()?.state.as_ref()?.waiting.as_ref()?.reason.clone()
    };
    let ok =
        wait_for("jupyter-ok", &|pod| pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).await;
    assert!(ok.status.unwrap().pod_ip.is_some());
    wait_for("jupyter-pull", &|pod| waiting_reason(pod).as_deref() == Some("ImagePullBackOff")).await;
    wait_for("jupyter-crash", &|pod| waiting_reason(pod).as_deref() == Some("CrashLoopBackOff")).await;
    let huge = wait_for("jupyter-huge", &|pod| {
        pod.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.reason.as_deref() == Some("Unschedulable")))
    })
    .await;
    assert!(huge.spec.unwrap().node_name.is_none());

    let events: Api<Event> = Api::default_namespaced(client);
    let pulled = events
        .list(&ListParams::default().fields("involvedObject.name=jupyter-pull,involvedObject.kind=Pod"))
        .await
        .unwrap();
    let reasons: Vec<String> = pulled.items.iter().filter_map(|event| event.reason.clone()).collect();
    assert!(reasons.starts_with(&["Scheduled".into(), "Pulling".into(), "Failed".into()]), "{reasons:?}");
    assert!(pulled.items.iter().all(|event| event.involved_object.name.as_deref() == Some("jupyter-pull")));

    // Graceful deletion: the pod is marked, then gone.
    pods.delete("jupyter-ok", &DeleteParams::default().grace_period(1)).await.unwrap();
    assert!(pods.get("jupyter-ok").await.unwrap().metadata.deletion_timestamp.is_some());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while pods.get_opt("jupyter-ok").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the pod was never removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two fakes running side by side (two tests in parallel) never give their process-backed pods one address: a
/// hub's readiness probe would find the other test's server and log the user into it.
#[tokio::test]
async fn process_backed_pods_of_two_fakes_get_different_addresses() {
    let work = tempfile::tempdir().unwrap();
    let mut addresses = Vec::new();
    let mut fakes = Vec::new();
    for _ in 0..2 {
        let fake = FakeApiServer::start(FakeConfig::default()).await.unwrap();
        let backing = wasmhub_testkit::fake_k8s::ProcessBacking {
            bin_dir: None,
            extra_args: Vec::new(),
            work_dir: work.path().to_owned(),
            command_prefix: Vec::new(),
        };
        fake.set_scenario(PodMatch::Any, Scenario::Process(backing));
        let pods: Api<Pod> = Api::default_namespaced(client(&fake).await);
        let mut sleeper = pod("jupyter-alice", "x:1");
        sleeper.spec.as_mut().unwrap().containers[0].command = Some(vec!["sleep".into(), "30".into()]);
        pods.create(&PostParams::default(), &sleeper).await.unwrap();
        let mut address = None;
        for _ in 0..200 {
            address = pods.get("jupyter-alice").await.unwrap().status.and_then(|status| status.pod_ip);
            if address.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        addresses.push(address.expect("the pod got an address"));
        fakes.push(fake);
    }
    assert_ne!(addresses[0], addresses[1]);
    assert!(addresses.iter().all(|address| address.starts_with("127.")), "{addresses:?}");
}
