//! The Kubernetes spawner against the fake API server: the seed's profiles give the expected Pods and PVCs
//! (golden files), failures surface within seconds, a thousand concurrent spawns cost a few API calls each, a
//! spawn interrupted by a hub restart is adopted, stop waits for the pod to go, orphans are collected, a slow
//! spawn says where its pod is, `services_enabled` fronts the pod with a Service, and every object the fake stored
//! passes `kubernetes-validate --strict`. The example WebAssembly policies shaping a pod are tested with the
//! policy host, in `tests/tests/kube_policies.rs`.
//!
//! This crate does not read configuration: each test spawns with the traits in `tests/settings/<name>.json`, which
//! `host/cli`'s `settings::kube` tests keep equal to what the configuration beside them translates to. Where a
//! profile is configured, the test passes the profile the hub resolves (the native rule: the profile's
//! `kubespawner_override`, the chosen options' overrides merged in), written out.
//!
//! `UPDATE_GOLDEN=1` rewrites the golden files instead of comparing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmhub_kube::{KubeSpawner, KubeSpawnerConfig, UnmodifiedPods};
use wasmhub_spawner::{PollStatus, ResolvedProfile, SpawnError, SpawnRequest, Spawner, SpawnerState};
use wasmhub_testkit::fake_k8s::{FakeApiServer, FakeConfig, PodMatch, Resource, Scenario};

/// The spawner's settings for the configuration `tests/settings/<name>.json` stands for, with `wasmhub.kubernetes`
/// at its defaults.
fn settings(name: &str, namespace: &str) -> KubeSpawnerConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/settings").join(format!("{name}.json"));
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let settings = KubeSpawnerConfig {
        namespace: namespace.to_owned(),
        traits: file["traits"].as_object().cloned().unwrap_or_else(|| panic!("{}: no traits", path.display())),
        hub_instance: "wasmhub".into(),
        hub_connect_url: None,
        delete_grace_period: 1,
        unschedulable_timeout: Duration::ZERO,
        stop_timeout: Duration::from_secs(300),
        collect_orphans: true,
        slow_spawn_interval: Duration::from_secs(10),
    };
    settings.validate().unwrap();
    settings
}

async fn spawner(fake: &FakeApiServer, settings_name: &str) -> KubeSpawner {
    let (client, namespace) = KubeSpawner::client(Some(&fake.kubeconfig_path())).await.unwrap();
    KubeSpawner::new(client, settings(settings_name, &namespace), Arc::new(UnmodifiedPods)).await
}

/// The profile the hub resolved, as it passes it in the request.
fn profile(slug: &str, kubespawner_override: Value) -> Option<ResolvedProfile> {
    let kubespawner_override = kubespawner_override.as_object().cloned().expect("an override is an object");
    Some(ResolvedProfile { slug: slug.into(), kubespawner_override })
}

/// `profile-list.yaml`'s data science profile resolved: its `kubespawner_override` (it has no options).
fn data_science_override() -> Value {
    json!({
        "image": "jupyter/datascience-notebook:latest",
        "cpu_limit": 1.0,
        "cpu_guarantee": 0.05,
        "mem_limit": 2147483648u64,
        "mem_guarantee": 268435456,
        "volumes": [{"name": "jupyter-notebook-tf", "persistentVolumeClaim": {"claimName": "jupyter-notebook-tf"}}],
        "volume_mounts": [{"name": "jupyter-notebook-tf", "mountPath": "/home/jovyan"}],
    })
}

fn request(user: &str, options: Value) -> SpawnRequest {
    let prefix = format!("/user/{user}/");
    let context = wasmhub_spawner::SingleUserContext {
        user: user.into(),
        api_token: "token-for-golden-files".into(),
        hub_api_url: "http://hub:8081/hub/api".into(),
        base_url: "/".into(),
        ..Default::default()
    };
    SpawnRequest {
        user: user.into(),
        server_name: String::new(),
        service_prefix: prefix,
        env: wasmhub_spawner::singleuser_env(&context),
        user_options: options.as_object().cloned().unwrap_or_default(),
        ..SpawnRequest::default()
    }
}

/// The stored object without what the server or the clock decides.
fn normalised(mut object: Value) -> Value {
    if let Some(metadata) = object["metadata"].as_object_mut() {
        for key in ["uid", "creationTimestamp", "resourceVersion", "generation", "namespace"] {
            metadata.remove(key);
        }
    }
    if let Some(object) = object.as_object_mut() {
        object.remove("status");
    }
    object
}

fn check_golden(name: &str, actual: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{} is missing; UPDATE_GOLDEN=1", path.display()));
    assert_eq!(text, expected, "{name} differs from {}", path.display());
}

/// `kubernetes-validate --strict` for Kubernetes 1.33 on every object the fake stored.
fn validate_with_kubernetes_validate(fake: &FakeApiServer) {
    let peers = std::env::var_os("WASMHUB_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache/wasmhub/peers"));
    let validator = peers.join("venv-k8s/bin/kubernetes-validate");
    assert!(validator.exists(), "{} is missing: run `tests/peers/install.sh`", validator.display());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    let count = fake.dump_stored_objects(&file).unwrap();
    assert!(count > 0);
    let output = std::process::Command::new(&validator)
        .args(["--strict", "--quiet", "-k", "1.33.0"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kubernetes-validate refused objects the fake stored:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn seed_profiles_give_the_expected_pods_and_claims() {
    let fake = FakeApiServer::start(FakeConfig::default()).await.unwrap();
    // The data science and root profiles mount a claim the operator made.
    fake.create(
        Resource::PersistentVolumeClaims,
        fake.namespace(),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "jupyter-notebook-tf"},
               "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "50Gi"}}}}),
    )
    .unwrap();
    // Without a choice the hub resolves the default profile, the first where none is marked.
    let custom_root = json!({
        "image": "htdp1/jupyter-notebook-custom:latest",
        "image_pull_policy": "Always",
        "cmd": ["jupyterhub-singleuser", "--allow-root", "--ip=0.0.0.0"],
        "cpu_limit": 1.0,
        "cpu_guarantee": 0.1,
        "mem_limit": 2147483648u64,
        "mem_guarantee": 536870912,
        "uid": 0,
        "gid": 0,
        "volumes": [{"name": "jupyter-notebook-tf", "persistentVolumeClaim": {"claimName": "jupyter-notebook-tf"}}],
        "volume_mounts": [{"name": "jupyter-notebook-tf", "mountPath": "/root"}],
    });
    let lab = json!({
        "image": "htdp1/jupyter-notebook:bonjour",
        "cpu_limit": 1.0,
        "cpu_guarantee": 0.1,
        "mem_limit": 4294967296u64,
        "mem_guarantee": 536870912,
        "default_url": "/lab",
    });
    let cases: [(&str, &str, &str, Value, Option<ResolvedProfile>); 5] = [
        ("minimal", "profile-list", "alice", json!({}), profile("minimal-environment", json!({}))),
        (
            "data-science",
            "profile-list",
            "bob",
            json!({"profile": "data-science-environment"}),
            profile("data-science-environment", data_science_override()),
        ),
        ("custom-root", "custom-image-root", "carol", json!({}), profile("custom-notebook-without-conda", custom_root)),
        ("lab", "lab-profile", "dave", json!({}), profile("bonjour-lab", lab)),
        ("default-storage", "default-url-lab", "Erin.Smith@example.com", json!({}), None),
    ];
    for (name, settings, user, options, profile) in cases {
        let spawner = spawner(&fake, settings).await;
        let request = SpawnRequest { profile, ..request(user, options) };
        let prepared = spawner.prepare(&request).await.unwrap();
        let started = tokio::time::timeout(Duration::from_secs(10), spawner.start(&request, &prepared))
            .await
            .expect("spawn in time")
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert!(started.url.starts_with("http://10.244."), "{}", started.url);
        let state: Value = serde_json::from_str(&started.state.0).unwrap();
        let pod = fake.get(Resource::Pods, fake.namespace(), state["pod_name"].as_str().unwrap()).unwrap();
        check_golden(&format!("{name}-pod"), &normalised(pod));
        if let Some(claim) = state["pvc_name"].as_str() {
            let claim = fake.get(Resource::PersistentVolumeClaims, fake.namespace(), claim).unwrap();
            check_golden(&format!("{name}-pvc"), &normalised(claim));
        }
        assert_eq!(spawner.poll(&started.state).await.unwrap(), PollStatus::Running);
        spawner.stop(&started.state).await.unwrap();
        assert_eq!(spawner.poll(&started.state).await.unwrap(), PollStatus::Exited { code: None });
        assert!(
            fake.get(Resource::Pods, fake.namespace(), state["pod_name"].as_str().unwrap()).is_none(),
            "stop waits"
        );
    }
    validate_with_kubernetes_validate(&fake);
}

/// The hub decides the profile (and refuses an unknown or hidden one, through the profiles hook); the spawner
/// records the slug it was given and refuses an override it cannot apply before anything is created.
#[tokio::test]
async fn resolved_profiles_are_recorded_and_unusable_overrides_refused() {
    let fake = FakeApiServer::start(FakeConfig::default()).await.unwrap();
    let spawner = spawner(&fake, "profile-list").await;
    let unusable =
        SpawnRequest { profile: profile("gpu", json!({"gpus": 1})), ..request("alice", json!({"profile": "gpu"})) };
    let error = spawner.prepare(&unusable).await.unwrap_err();
    assert!(matches!(error, SpawnError::Rejected(_)), "{error}");
    let data_science = SpawnRequest {
        profile: profile("data-science-environment", data_science_override()),
        ..request("alice", json!({"profile": "data-science-environment"}))
    };
    let state = spawner.prepare(&data_science).await.unwrap();
    let state: Value = serde_json::from_str(&state.0).unwrap();
    assert_eq!(state["profile"], "data-science-environment");
    assert_eq!(state["pod_name"], "jupyter-alice");
}

/// Records the Pod the pods hook is shown, and drops every env var from the notebook container, as a careless
/// policy might.
struct RecordingPods(std::sync::Mutex<Vec<Value>>);

#[async_trait::async_trait]
impl wasmhub_kube::PodMutation for RecordingPods {
    async fn mutate_pod(&self, _spawn: &wasmhub_kube::PodSpawn, pod: Value) -> Result<wasmhub_kube::Pod, String> {
        self.0.lock().unwrap().push(pod.clone());
        let mut pod = pod;
        pod["spec"]["containers"][0]["env"] = json!([]);
        serde_json::from_value(pod).map_err(|error| error.to_string())
    }
}

#[tokio::test]
async fn the_pods_hook_never_sees_the_servers_token_and_the_pod_gets_it() {
    let fake = FakeApiServer::start(FakeConfig::default()).await.unwrap();
    let (client, namespace) = KubeSpawner::client(Some(&fake.kubeconfig_path())).await.unwrap();
    let recording = Arc::new(RecordingPods(std::sync::Mutex::default()));
    let spawner = KubeSpawner::new(client, settings("storage-none", &namespace), recording.clone()).await;
    let request = request("alice", json!({}));
    let prepared = spawner.prepare(&request).await.unwrap();
    spawner.start(&request, &prepared).await.unwrap();
    let shown = recording.0.lock().unwrap()[0].to_string();
    assert!(!shown.contains("token-for-golden-files"), "the pods hook saw the token: {shown}");
    assert!(shown.contains("JUPYTERHUB_API_TOKEN"), "the variable itself is shown");
    let pod = fake.get(Resource::Pods, &namespace, "jupyter-alice").expect("the pod");
    let env = pod.pointer("/spec/containers/0/env").and_then(Value::as_array).cloned().unwrap_or_default();
    for key in ["JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"] {
        let variable = env.iter().find(|variable| variable["name"] == key).unwrap_or_else(|| panic!("{key}: {env:?}"));
        assert_eq!(variable["value"], "token-for-golden-files", "{key}");
    }
}

#[tokio::test]
async fn failures_surface_within_seconds_with_readable_messages() {
    let fake = FakeApiServer::start(FakeConfig::default()).await.unwrap();
    fake.set_scenario(PodMatch::Name("jupyter-pull".into()), Scenario::ImagePullError);
    fake.set_scenario(PodMatch::Name("jupyter-huge".into()), Scenario::Unschedulable);
    fake.set_scenario(PodMatch::Name("jupyter-crash".into()), Scenario::CrashLoop);
    let spawner = spawner(&fake, "storage-none").await;
    for (user, expected) in [
        ("pull", "the image cannot be pulled (ErrImagePull)"),
        ("huge", "the pod cannot be scheduled: 0/3 nodes are available: 3 Insufficient cpu."),
        ("crash", "the server keeps crashing (CrashLoopBackOff)"),
    ] {
        let request = request(user, json!({}));
        let prepared = spawner.prepare(&request).await.unwrap();
        let mut progress = spawner.progress(&prepared).expect("progress while spawning");
        let began = Instant::now();
        let error = spawner.start(&request, &prepared).await.unwrap_err();
        assert!(began.elapsed() < Duration::from_secs(3), "{user} took {:?}", began.elapsed());
        assert!(error.to_string().starts_with(expected), "{user}: {error}");
        let mut messages = Vec::new();
        while let Ok(message) = progress.try_recv() {
            messages.push(message);
        }
        assert!(!messages.is_empty(), "{user}: no progress from the pod's events");
        assert!(messages.iter().all(|message| message.contains(" [Normal] ") || message.contains(" [Warning] ")));
        spawner.stop(&prepared).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_spawns_cost_a_few_calls_each() {
    let spawns_env = std::env::var("WASMHUB_KUBE_SPAWNS").ok().and_then(|n| n.parse().ok());
    let spawns: usize = spawns_env.unwrap_or(1000);
    let fake = FakeApiServer::start(FakeConfig { kubelet_step: Duration::from_millis(50), ..FakeConfig::default() })
        .await
        .unwrap();
    let spawner = Arc::new(spawner(&fake, "storage-none").await);
    let began = Instant::now();
    let mut tasks = Vec::new();
    for index in 0..spawns {
        let spawner = spawner.clone();
        tasks.push(tokio::spawn(async move {
            let request = request(&format!("user{index}"), json!({}));
            let prepared = spawner.prepare(&request).await?;
            spawner.start(&request, &prepared).await
        }));
    }
    let mut states = Vec::new();
    for task in tasks {
        states.push(task.await.unwrap().unwrap().state);
    }
    let elapsed = began.elapsed();
    let calls = fake.api_calls();
    let per_spawn: BTreeMap<_, f64> =
        calls.iter().map(|(key, count)| (key.clone(), *count as f64 / spawns as f64)).collect();
    eprintln!("{spawns} spawns in {elapsed:?}; API calls per spawn: {per_spawn:?}");
    assert!(fake.api_call_count("list", Resource::Pods) <= 1, "the pod cache relisted: {calls:?}");
    assert!(fake.api_call_count("watch", Resource::Pods) <= 2, "{calls:?}");
    assert_eq!(fake.api_call_count("create", Resource::Pods), spawns as u64);
    let total: u64 = calls.values().sum();
    assert!(total as f64 / (spawns as f64) <= 3.1, "{calls:?}");
    for state in &states {
        assert_eq!(spawner.poll(state).await.unwrap(), PollStatus::Running);
    }
    assert!(fake.api_calls().values().sum::<u64>() == total, "poll is answered from the cache");
}

#[tokio::test]
async fn a_spawn_interrupted_by_a_restart_is_adopted_and_orphans_are_collected() {
    let fake = FakeApiServer::start(FakeConfig { kubelet_step: Duration::from_millis(300), ..FakeConfig::default() })
        .await
        .unwrap();
    let request = request("alice", json!({}));
    let prepared = {
        let first = Arc::new(spawner(&fake, "storage-none").await);
        let prepared = first.prepare(&request).await.unwrap();
        let (spawning, state) = (first.clone(), prepared.clone());
        let request = request.clone();
        let task = tokio::spawn(async move { spawning.start(&request, &state).await });
        while fake.get(Resource::Pods, fake.namespace(), "jupyter-alice").is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The hub dies mid-spawn: its task and its spawner are gone, the pod stays.
        task.abort();
        prepared
    };
    let uid = fake.get(Resource::Pods, fake.namespace(), "jupyter-alice").unwrap()["metadata"]["uid"].clone();
    let second = spawner(&fake, "storage-none").await;
    assert_eq!(second.poll(&prepared).await.unwrap(), PollStatus::Running, "adopted by its labels and annotations");
    let started = second.start(&request, &prepared).await.unwrap();
    assert_eq!(fake.get(Resource::Pods, fake.namespace(), "jupyter-alice").unwrap()["metadata"]["uid"], uid);
    assert_eq!(fake.api_call_count("create", Resource::Pods), 1, "adopted, not recreated");
    // A pod no server record knows is collected; a known one is kept.
    let orphan = second.prepare(&self::request("bob", json!({}))).await.unwrap();
    second.start(&self::request("bob", json!({})), &orphan).await.unwrap();
    let collected = second.collect_orphans(&[started.state.clone()]).await.unwrap();
    assert_eq!(collected, ["jupyter-bob"]);
    second.stop(&SpawnerState(orphan.0)).await.unwrap();
    assert_eq!(second.poll(&started.state).await.unwrap(), PollStatus::Running);
}

#[tokio::test]
async fn services_enabled_puts_a_service_owned_by_the_pod_in_front_of_it() {
    let fake = FakeApiServer::start(FakeConfig::default()).await.unwrap();
    let spawner = spawner(&fake, "services").await;
    let request = request("alice", json!({}));
    let prepared = spawner.prepare(&request).await.unwrap();
    let started = spawner.start(&request, &prepared).await.unwrap();
    assert_eq!(started.url, format!("http://jupyter-alice.{}.svc.cluster.local:8888", fake.namespace()));
    let pod = fake.get(Resource::Pods, fake.namespace(), "jupyter-alice").unwrap();
    let service = fake.get(Resource::Services, fake.namespace(), "jupyter-alice").expect("a Service");
    assert_eq!(service["spec"]["selector"], pod["metadata"]["labels"], "it selects exactly this pod");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http", "port": 8888, "protocol": "TCP", "targetPort": 8888}])
    );
    assert_eq!(service["metadata"]["ownerReferences"][0]["uid"], pod["metadata"]["uid"]);
    assert_eq!(service["metadata"]["annotations"]["hub.jupyter.org/username"], "alice");
    // The state remembers the Service, so a restarted hub reaches the server the same way.
    let second = self::spawner(&fake, "services").await;
    assert_eq!(second.poll(&started.state).await.unwrap(), PollStatus::Running);
    second.stop(&started.state).await.unwrap();
    assert!(fake.get(Resource::Services, fake.namespace(), "jupyter-alice").is_none(), "stop removes the Service");
    validate_with_kubernetes_validate(&fake);
}

#[tokio::test]
async fn a_slow_spawn_says_where_the_pod_is_while_it_waits() {
    let fake = FakeApiServer::start(FakeConfig::default()).await.unwrap();
    fake.set_scenario(PodMatch::Name("jupyter-slow".into()), Scenario::Stuck);
    let (client, namespace) = KubeSpawner::client(Some(&fake.kubeconfig_path())).await.unwrap();
    let mut settings = settings("storage-none", &namespace);
    settings.slow_spawn_interval = Duration::from_millis(300);
    let spawner = KubeSpawner::new(client, settings, Arc::new(UnmodifiedPods)).await;
    let request = request("slow", json!({}));
    let prepared = spawner.prepare(&request).await.unwrap();
    let mut progress = spawner.progress(&prepared).expect("progress while spawning");
    let outcome = tokio::time::timeout(Duration::from_secs(2), spawner.start(&request, &prepared)).await;
    assert!(outcome.is_err(), "a stuck pod never becomes ready");
    let mut waiting = Vec::new();
    while let Ok(message) = progress.try_recv() {
        if message.starts_with("Still waiting for the pod jupyter-slow after ") {
            waiting.push(message);
        }
    }
    assert!(waiting.len() >= 3, "slow-spawn messages: {waiting:?}");
    assert!(waiting.last().unwrap().ends_with("Pending (ContainerCreating)"), "{waiting:?}");
    spawner.stop(&prepared).await.unwrap();
}
