//! Each hook's failure mode through `PolicyHost`: auth fails closed and never grants admin, profiles fall back
//! to the safe list, pods fail the spawn unless `failure: ignore`, cull falls back to the built-in idle rule.
//! Also monitor mode: the monitored policy never decides, and disagreements are counted.

use std::path::Path;
use std::time::Duration;

use wasmhub_policy::hooks::{
    AdminChange, AuthDecision, CullAction, CullServer, Identity, OptionChoice, OptionValue, ProfileChoice,
    ProfileResolution, SpawnContext, User, initialize_profiles,
};
use wasmhub_policy::native::{AuthSettings, NativeDefaults};
use wasmhub_policy::{PodPolicyError, PolicyHost, PolicyHostConfig};
use wasmhub_policy_test_plugins as plugins;

/// A host over a folder holding `policy.yaml` for `component` (copied in as `policy.wasm`).
fn host_with(component: &str, policy_yaml: &str, config: PolicyHostConfig) -> (tempfile::TempDir, PolicyHost) {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("policy.wasm"), plugins::component_bytes(component)).unwrap();
    std::fs::write(folder.path().join("policy.yaml"), policy_yaml).unwrap();
    let config = PolicyHostConfig { folder: Some(folder.path().to_owned()), poll_interval: Duration::ZERO, ..config };
    let host = PolicyHost::start(config).unwrap();
    for status in host.status() {
        assert!(status.last_load_error.is_none(), "{status:?}");
    }
    (folder, host)
}

fn retarget(folder: &Path, policy_yaml: &str, host: &PolicyHost) {
    std::fs::write(folder.join("policy.yaml"), policy_yaml).unwrap();
    host.reload_now();
}

fn identity(name: &str) -> Identity {
    Identity {
        provider: "oidc".into(),
        subject: name.into(),
        username_hint: name.into(),
        claims: serde_json::json!({}),
    }
}

fn user(groups: &[&str]) -> User {
    User { name: "alice".into(), admin: false, groups: groups.iter().map(|group| (*group).to_owned()).collect() }
}

#[test]
fn auth_fails_closed_and_never_grants_admin_by_accident() {
    // The hostile guest allows everyone as admin when it behaves, and misbehaves only for mallory, so each
    // version passes the smoke call and fails on a real login.
    let (folder, host) =
        host_with(plugins::HOSTILE_AUTH, "hook: auth\ncomponent: policy.wasm\n", PolicyHostConfig::default());
    for (behaviour, class) in [
        ("loop", "timeout"),
        ("memory-bomb", "memory-limit"),
        ("panic", "crash"),
        ("malformed", "invalid-output"),
        ("error", "policy-error"),
    ] {
        let yaml = format!(
            "hook: auth\ncomponent: policy.wasm\nlimits:\n  timeout_ms: 50\n  memory_mib: 16\nsettings:\n  behaviour: {behaviour}\n  only_for: mallory\n"
        );
        retarget(folder.path(), &yaml, &host);
        assert_eq!(host.status()[0].last_load_error, None, "{behaviour}");
        assert!(matches!(host.authenticate(&identity("alice")), AuthDecision::Allow { admin: AdminChange::Grant, .. }));
        let decision = host.authenticate(&identity("mallory"));
        assert_eq!(
            decision,
            AuthDecision::Deny { reason: format!("login is unavailable: the auth policy failed ({class})") },
            "{behaviour}"
        );
    }
    let counters = &host.status()[0].counters;
    for class in ["timeout", "memory-limit", "crash", "invalid-output", "policy-error"] {
        assert_eq!(counters.iter().find(|(name, _)| *name == class).unwrap().1, 1, "{class}: {counters:?}");
    }
}

#[test]
fn auth_failures_at_call_time_deny_the_login() {
    // The smoke input is fine but real users trip the policy: a fixture-free version loads, then fails on calls.
    let (_folder, host) = host_with(
        plugins::HOSTILE_AUTH,
        "hook: auth\ncomponent: policy.wasm\nlimits:\n  timeout_ms: 50\nsettings:\n  behaviour: error\n",
        PolicyHostConfig {
            defaults: NativeDefaults {
                auth: AuthSettings { allow_all: true, ..AuthSettings::default() },
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let decision = host.authenticate(&identity("alice"));
    assert_eq!(
        decision,
        AuthDecision::Deny { reason: "login is unavailable: the auth policy failed (policy-error)".into() }
    );
    let status = &host.status()[0];
    assert_eq!(status.counters.iter().find(|(class, _)| *class == "policy-error").unwrap().1, 1);
    assert!(status.last_call_error.as_deref().unwrap().contains("on purpose"));
}

fn profile_list() -> Vec<wasmhub_policy::hooks::Profile> {
    initialize_profiles(&[
        serde_json::json!({"display_name": "Small", "slug": "small", "kubespawner_override": {"cpu_limit": 1}}),
        serde_json::json!({"display_name": "GPU", "slug": "gpu", "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": "1"}}}),
    ])
    .unwrap()
}

#[test]
fn profiles_fail_closed_to_the_safe_list() {
    let config = PolicyHostConfig { safe_profiles: vec!["small".into()], ..PolicyHostConfig::default() };
    let yaml = "hook: profiles\ncomponent: policy.wasm\nsettings:\n  behaviour: panic\n  only_for: alice\n";
    let (_folder, host) = host_with(plugins::HOSTILE_PROFILES, yaml, config);
    assert_eq!(host.visible_profiles(&user(&[]), &profile_list()), ["small"]);
    let gpu = ProfileChoice { profile: "gpu".into(), options: vec![] };
    assert!(matches!(host.resolve_profile(&user(&[]), &profile_list(), &gpu), ProfileResolution::Rejected { .. }));
    let small = ProfileChoice { profile: "small".into(), options: vec![] };
    assert_eq!(
        host.resolve_profile(&user(&[]), &profile_list(), &small),
        ProfileResolution::Resolved {
            profile: "small".into(),
            kubespawner_override: serde_json::json!({"cpu_limit": 1})
        }
    );
}

#[test]
fn profiles_by_group_hides_the_gpu_profile_from_non_members() {
    let yaml = "hook: profiles\ncomponent: policy.wasm\nsettings:\n  restricted:\n    gpu: [gpu-users]\n";
    let (_folder, host) = host_with(plugins::EXAMPLE_PROFILES_BY_GROUP, yaml, PolicyHostConfig::default());
    assert_eq!(host.visible_profiles(&user(&[]), &profile_list()), ["small"]);
    assert_eq!(host.visible_profiles(&user(&["gpu-users"]), &profile_list()), ["small", "gpu"]);
    let gpu = ProfileChoice { profile: "gpu".into(), options: vec![] };
    assert!(matches!(host.resolve_profile(&user(&[]), &profile_list(), &gpu), ProfileResolution::Rejected { .. }));
    assert!(matches!(
        host.resolve_profile(&user(&["gpu-users"]), &profile_list(), &gpu),
        ProfileResolution::Resolved { .. }
    ));
    let bad_option = ProfileChoice {
        profile: "small".into(),
        options: vec![OptionChoice { option: "x".into(), value: OptionValue::Listed("y".into()) }],
    };
    assert!(matches!(
        host.resolve_profile(&user(&[]), &profile_list(), &bad_option),
        ProfileResolution::Rejected { .. }
    ));
}

fn pod() -> serde_json::Value {
    serde_json::json!({"metadata": {"name": "jupyter-alice"}, "spec": {"containers": [{"name": "notebook", "image": "base"}]}})
}

fn context(profile: &str) -> SpawnContext {
    SpawnContext { user: user(&[]), server_name: String::new(), profile: profile.into() }
}

#[test]
fn pods_fail_the_spawn_unless_the_policy_says_ignore() {
    let yaml = "hook: pods\ncomponent: policy.wasm\nsettings:\n  behaviour: error\n  only_for: alice\n";
    let (folder, host) = host_with(plugins::HOSTILE_PODS, yaml, PolicyHostConfig::default());
    let error = host.mutate_pod(&context(""), &pod()).unwrap_err();
    assert!(matches!(&error, PodPolicyError::PolicyFailed { policy, .. } if policy == "policy"), "{error}");
    assert!(error.to_string().contains("on purpose"), "{error}");
    retarget(folder.path(), &format!("{yaml}failure: ignore\n"), &host);
    let unmodified = host.mutate_pod(&context(""), &pod()).unwrap();
    assert_eq!(unmodified.metadata.name.as_deref(), Some("jupyter-alice"));
    assert_eq!(unmodified.metadata.labels, None);
}

#[test]
fn the_gpu_pod_example_sets_resources_node_selector_and_tolerations_together() {
    let yaml = r#"hook: pods
component: policy.wasm
settings:
  gpu_profiles: [gpu]
  node_selector: {accelerator: a100}
  tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
"#;
    let (_folder, host) = host_with(plugins::EXAMPLE_GPU_POD, yaml, PolicyHostConfig::default());
    let cpu = host.mutate_pod(&context("small"), &pod()).unwrap();
    assert_eq!(cpu.spec.as_ref().unwrap().node_selector, None);
    let gpu = host.mutate_pod(&context("gpu"), &pod()).unwrap();
    let spec = gpu.spec.unwrap();
    assert_eq!(spec.node_selector.unwrap()["accelerator"], "a100");
    assert_eq!(spec.tolerations.unwrap()[0].key.as_deref(), Some("nvidia.com/gpu"));
    let limits = spec.containers[0].resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["nvidia.com/gpu"].0, "1");
}

fn cull_server(profile: &str, inactive_seconds: u64) -> CullServer {
    CullServer {
        user: user(&[]),
        name: String::new(),
        profile: profile.into(),
        ready: true,
        pending: false,
        age_seconds: inactive_seconds,
        inactive_seconds,
    }
}

#[test]
fn a_version_that_crashes_on_the_smoke_input_never_serves() {
    let (_folder, host) =
        host_with(plugins::WASMHUB_DEFAULT_CULL, "hook: cull\ncomponent: policy.wasm\n", PolicyHostConfig::default());
    let folder = host.status()[0].file.parent().unwrap().to_owned();
    std::fs::write(folder.join("policy.wasm"), plugins::component_bytes(plugins::HOSTILE_CULL)).unwrap();
    retarget(&folder, "hook: cull\ncomponent: policy.wasm\nsettings:\n  behaviour: panic\n", &host);
    let status = &host.status()[0];
    assert!(status.last_load_error.as_deref().unwrap().starts_with("smoke call: crash"), "{status:?}");
    assert!(status.active_version.is_some(), "the previous version still serves");
    let decisions = host.decide_cull(&[cull_server("", 10), cull_server("", 7200)]);
    assert_eq!(
        decisions.iter().map(|decision| decision.action).collect::<Vec<_>>(),
        [CullAction::Keep, CullAction::Stop]
    );
    assert!(!decisions[1].reason.starts_with("built-in"), "{decisions:?}");
}

#[test]
fn cull_falls_back_to_the_built_in_rule_and_never_culls_because_of_an_error() {
    // The hostile guest keeps everything when it behaves, and loops on sweeps that include mallory.
    let yaml = "hook: cull\ncomponent: policy.wasm\nlimits:\n  timeout_ms: 50\nsettings:\n  behaviour: loop\n  only_for: mallory\n";
    let (_folder, host) = host_with(plugins::HOSTILE_CULL, yaml, PolicyHostConfig::default());
    assert_eq!(host.decide_cull(&[cull_server("", 7200)])[0].action, CullAction::Keep);
    let mut mallory = cull_server("", 10);
    mallory.user.name = "mallory".into();
    let decisions = host.decide_cull(&[mallory, cull_server("", 7200)]);
    // The built-in rule (timeout 3600 s) decides the whole sweep: the active server is kept, not stopped
    // because the policy failed; the idle one is stopped because the rule says so.
    assert_eq!(
        decisions.iter().map(|decision| decision.action).collect::<Vec<_>>(),
        [CullAction::Keep, CullAction::Stop]
    );
    assert!(decisions[0].reason.starts_with("built-in rule (cull policy failed: timeout)"), "{decisions:?}");
}

#[test]
fn monitor_mode_never_decides_and_records_disagreements() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("gpu.wasm"), plugins::component_bytes(plugins::EXAMPLE_GPU_CULL)).unwrap();
    std::fs::write(
        folder.path().join("candidate.yaml"),
        "hook: cull\ncomponent: gpu.wasm\nmode: monitor\nsettings:\n  timeout_seconds: 3600\n  gpu_timeout_seconds: 600\n  gpu_profiles: [gpu]\n",
    )
    .unwrap();
    let config = PolicyHostConfig {
        folder: Some(folder.path().to_owned()),
        poll_interval: Duration::ZERO,
        ..PolicyHostConfig::default()
    };
    let host = PolicyHost::start(config).unwrap();
    // Native (timeout 3600 s) keeps an idle-for-900-s GPU server; the candidate would stop it.
    let decisions = host.decide_cull(&[cull_server("gpu", 900), cull_server("small", 900)]);
    assert_eq!(
        decisions.iter().map(|decision| decision.action).collect::<Vec<_>>(),
        [CullAction::Keep, CullAction::Keep]
    );
    let status = &host.status()[0];
    assert_eq!(status.disagreements, 1, "{status:?}");
    assert!(
        status.last_disagreement.as_deref().unwrap().contains("[Stop, Keep] instead of [Keep, Keep]"),
        "{status:?}"
    );
    // Agreement is not counted.
    host.decide_cull(&[cull_server("small", 10)]);
    assert_eq!(host.status()[0].disagreements, 1);
}
