//! The Kubernetes spawner with the policy host's profiles and pods hooks, wired as the hub wires them, against the
//! fake API server of `host/testkit`: the example profiles-by-group policy decides which profile a user may
//! start, the spawner applies the profile the hub resolved, and the example GPU pod policy patches the pod through
//! `wasmhub_hub::Policies`. Every object the fake stored passes `kubernetes-validate --strict`.
//!
//! It lives here rather than in `host/kube` because that crate does not depend on the policy host (nor on the
//! WebAssembly runtime under it); this crate may depend on everything.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use wasmhub_hub::Policies;
use wasmhub_kube::{KubeSpawner, KubeSpawnerConfig};
use wasmhub_policy::hooks::{Profile, ProfileChoice, ProfileResolution, User, initialize_profiles};
use wasmhub_policy::{PolicyHost, PolicyHostConfig};
use wasmhub_spawner::{ResolvedProfile, SpawnError, SpawnRequest, Spawner};
use wasmhub_testkit::fake_k8s::{FakeApiServer, FakeConfig, Resource};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load_config(yaml: &str) -> wasmhub_config::Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasmhub.yaml");
    std::fs::write(&path, yaml).unwrap();
    wasmhub_config::check(&path).unwrap_or_else(|errors| panic!("{errors:?}"))
}

/// The profile list as the hub holds it: KubeSpawner's initialisation of `singleuser.profileList`.
fn profiles(config: &wasmhub_config::Config) -> Vec<Profile> {
    let list: Vec<Value> = config.singleuser.profile_list.iter().map(wasmhub_config::Profile::to_json).collect();
    initialize_profiles(&list).unwrap()
}

/// The spawner's settings for `singleuser.storage.type: none`, from `host/kube`'s test settings, which
/// `host/cli`'s tests keep equal to what that configuration translates to (a profile list does not change them).
fn storage_none_settings(namespace: &str) -> KubeSpawnerConfig {
    let path = repo_root().join("host/kube/tests/settings/storage-none.json");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    KubeSpawnerConfig {
        namespace: namespace.to_owned(),
        traits: file["traits"].as_object().cloned().unwrap(),
        hub_instance: "wasmhub".into(),
        hub_connect_url: None,
        delete_grace_period: 1,
        unschedulable_timeout: std::time::Duration::ZERO,
        stop_timeout: std::time::Duration::from_secs(300),
        collect_orphans: true,
        slow_spawn_interval: std::time::Duration::from_secs(10),
    }
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

/// What the hub does once per spawn, before the spawner sees the request: the profiles hook turns the choice in
/// `user_options` into the profile to apply, or refuses it.
fn resolve(policy: &PolicyHost, profiles: &[Profile], request: SpawnRequest) -> Result<SpawnRequest, SpawnError> {
    let user = User { name: request.user.clone(), admin: request.admin, groups: request.groups.clone() };
    let slug = request.user_options.get("profile").and_then(Value::as_str).unwrap_or_default();
    let choice = ProfileChoice { profile: slug.to_owned(), options: Vec::new() };
    match policy.choose_profile(&user, profiles, &choice) {
        ProfileResolution::Resolved { profile, kubespawner_override } => {
            let kubespawner_override = kubespawner_override.as_object().cloned().unwrap_or_default();
            Ok(SpawnRequest { profile: Some(ResolvedProfile { slug: profile, kubespawner_override }), ..request })
        }
        ProfileResolution::Rejected { reason } => Err(SpawnError::Rejected(reason)),
    }
}

/// `kubernetes-validate --strict` for Kubernetes 1.33 on every object the fake stored.
fn validate_with_kubernetes_validate(fake: &FakeApiServer) {
    let validator = wasmhub_system_tests::venv_bin("k8s").join("kubernetes-validate");
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

/// A policy host over a folder with the example profiles-by-group and GPU pod policies (WebAssembly components
/// built from `plugins/` by the test build), bound as `policies/` binds them.
fn example_policies(folder: &Path) -> Arc<PolicyHost> {
    let components = folder.join("components");
    std::fs::create_dir_all(&components).unwrap();
    for (built, name) in [
        (wasmhub_policy_test_plugins::EXAMPLE_PROFILES_BY_GROUP, "example_profiles_by_group.wasm"),
        (wasmhub_policy_test_plugins::EXAMPLE_GPU_POD, "example_gpu_pod.wasm"),
    ] {
        std::fs::copy(built, components.join(name)).expect("the example components, built by the test build");
    }
    let examples = repo_root().join("policies");
    for file in ["profiles-by-group.yaml", "gpu-pod.yaml"] {
        std::fs::copy(examples.join(file), folder.join(file)).unwrap();
    }
    let host =
        PolicyHost::start(PolicyHostConfig { folder: Some(folder.to_owned()), ..PolicyHostConfig::default() }).unwrap();
    for status in host.status() {
        assert!(status.last_load_error.is_none(), "{}: {:?}", status.name, status.last_load_error);
    }
    Arc::new(host)
}

#[tokio::test]
async fn profile_and_pod_policies_shape_the_pod() {
    let fake = FakeApiServer::start(FakeConfig::default()).await.unwrap();
    let folder = tempfile::tempdir().unwrap();
    let policy = example_policies(folder.path());
    let config = load_config(
        "singleuser:\n  storage:\n    type: none\n  profileList:\n    - display_name: CPU\n      slug: cpu\n      \
         default: true\n    - display_name: GPU\n      slug: gpu\n      kubespawner_override:\n        image: \
         quay.io/jupyter/pytorch-notebook:cuda12-latest\n",
    );
    let profiles = profiles(&config);
    let (client, namespace) = KubeSpawner::client(Some(&fake.kubeconfig_path())).await.unwrap();
    let settings = storage_none_settings(&namespace);
    let spawner = KubeSpawner::new(client, settings, Arc::new(Policies::new(policy.clone()))).await;

    // bob is not in gpu-users: the profile policy refuses the GPU profile before anything is created.
    let bob = request("bob", json!({"profile": "gpu"}));
    let refused = resolve(&policy, &profiles, bob).unwrap_err();
    assert!(matches!(refused, SpawnError::Rejected(_)), "{refused}");

    // alice is: her pod gets the profile's image and the GPU pod policy's patch, validated as a Pod.
    let alice = SpawnRequest { groups: vec!["gpu-users".into()], ..request("alice", json!({"profile": "gpu"})) };
    let alice = resolve(&policy, &profiles, alice).unwrap();
    let prepared = spawner.prepare(&alice).await.unwrap();
    let started = spawner.start(&alice, &prepared).await.unwrap();
    let pod = fake.get(Resource::Pods, fake.namespace(), "jupyter-alice").unwrap();
    assert_eq!(pod["spec"]["containers"][0]["image"], "quay.io/jupyter/pytorch-notebook:cuda12-latest");
    assert_eq!(pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"], "1");
    assert_eq!(pod["spec"]["nodeSelector"]["accelerator"], "nvidia-a100");
    let tolerations = pod["spec"]["tolerations"].as_array().unwrap();
    assert!(tolerations.iter().any(|toleration| toleration["key"] == "nvidia.com/gpu"), "{tolerations:?}");
    spawner.stop(&started.state).await.unwrap();

    // A CPU pod is left as KubeSpawner built it.
    let carol = SpawnRequest { groups: vec!["gpu-users".into()], ..request("carol", json!({"profile": "cpu"})) };
    let carol = resolve(&policy, &profiles, carol).unwrap();
    let prepared = spawner.prepare(&carol).await.unwrap();
    let started = spawner.start(&carol, &prepared).await.unwrap();
    let pod = fake.get(Resource::Pods, fake.namespace(), "jupyter-carol").unwrap();
    assert!(pod["spec"]["nodeSelector"].get("accelerator").is_none(), "{}", pod["spec"]);
    assert!(pod["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu").is_none());
    spawner.stop(&started.state).await.unwrap();
    validate_with_kubernetes_validate(&fake);
}
