//! Hot reload: a swap under concurrent calls loses no call, a bad update leaves the old version serving and
//! says why, removing a file returns the hook to its default, and the precompiled cache is used.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmhub_policy::hooks::{CullAction, CullServer, User};
use wasmhub_policy::{PolicyHost, PolicyHostConfig, PolicyStatus};
use wasmhub_policy_test_plugins as plugins;

/// Writes a file the way operators should: to a temporary name, then renamed into place.
fn write_atomically(path: &Path, contents: &[u8]) {
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, contents).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

fn install(folder: &Path, component_file: &str, component_path: &str, policy_yaml: &str) {
    write_atomically(&folder.join(component_file), &plugins::component_bytes(component_path));
    write_atomically(&folder.join("cull.yaml"), policy_yaml.as_bytes());
}

fn server(inactive_seconds: u64) -> CullServer {
    CullServer {
        user: User { name: "alice".into(), admin: false, groups: vec![] },
        name: String::new(),
        profile: "gpu".into(),
        ready: true,
        pending: false,
        age_seconds: inactive_seconds,
        inactive_seconds,
    }
}

fn status_of(host: &PolicyHost, name: &str) -> PolicyStatus {
    host.status().into_iter().find(|status| status.name == name).expect("policy in status")
}

fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_swap_under_concurrent_calls_loses_no_call_and_a_bad_update_never_replaces_a_good_one() {
    let folder = tempfile::tempdir().unwrap();
    // v1: the default idle rule with a 100 s timeout. Both good versions get a 2 s deadline: the test is about
    // swaps losing no call, and on a loaded 2-core CI machine a call can be descheduled past the default 200 ms.
    install(
        folder.path(),
        "v1.wasm",
        plugins::WASMHUB_DEFAULT_CULL,
        "hook: cull\ncomponent: v1.wasm\nlimits:\n  timeout_ms: 2000\nsettings:\n  timeout_seconds: 100\n",
    );
    let config = PolicyHostConfig {
        folder: Some(folder.path().to_owned()),
        poll_interval: Duration::from_millis(20),
        ..PolicyHostConfig::default()
    };
    let host = Arc::new(PolicyHost::start(config).unwrap());
    let v1_version = status_of(&host, "cull").active_version.expect("v1 active");
    // With 500 s inactive: v1 (timeout 100) stops; v2 (GPU timeout 1000) keeps. Each call is one or the other.
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
    let callers: Vec<_> = (0..2)
        .map(|_| {
            let (host, stop, counts) = (host.clone(), stop.clone(), counts.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let decisions = host.decide_cull(&[server(500)]);
                    let index = match (decisions[0].action, decisions[0].reason.starts_with("built-in")) {
                        (_, true) => 2,
                        (CullAction::Stop, false) => 0,
                        (CullAction::Keep, false) if decisions[0].reason.starts_with("GPU") => 1,
                        _ => 2,
                    };
                    counts[index].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    wait_until("calls on v1", Duration::from_secs(10), || counts[0].load(Ordering::Relaxed) > 100);
    install(
        folder.path(),
        "v2.wasm",
        plugins::EXAMPLE_GPU_CULL,
        "hook: cull\ncomponent: v2.wasm\nlimits:\n  timeout_ms: 2000\nsettings:\n  timeout_seconds: 3600\n  gpu_timeout_seconds: 1000\n  gpu_profiles: [gpu]\n",
    );
    wait_until("v2 active", Duration::from_secs(20), || {
        status_of(&host, "cull").active_version.as_deref() != Some(&v1_version)
    });
    let v2_version = status_of(&host, "cull").active_version.unwrap();
    wait_until("calls on v2", Duration::from_secs(10), || counts[1].load(Ordering::Relaxed) > 100);

    // A bad update: the component loops, so the smoke call times out; v2 keeps serving.
    install(
        folder.path(),
        "v3.wasm",
        plugins::HOSTILE_CULL,
        "hook: cull\ncomponent: v3.wasm\nlimits:\n  timeout_ms: 50\nsettings:\n  behaviour: loop\n",
    );
    wait_until("v3 refused", Duration::from_secs(20), || status_of(&host, "cull").last_load_error.is_some());
    let status = status_of(&host, "cull");
    assert_eq!(status.active_version.as_deref(), Some(v2_version.as_str()));
    assert!(status.last_load_error.as_deref().unwrap().contains("smoke call: timeout"), "{status:?}");
    let v2_calls_before = counts[1].load(Ordering::Relaxed);
    wait_until("v2 still serving", Duration::from_secs(10), || {
        counts[1].load(Ordering::Relaxed) > v2_calls_before + 100
    });

    // Bad settings are refused by validate-settings, with the policy's own message.
    install(
        folder.path(),
        "v4.wasm",
        plugins::HOSTILE_CULL,
        "hook: cull\ncomponent: v4.wasm\nsettings:\n  behaviour: bad-settings\n",
    );
    wait_until("v4 refused", Duration::from_secs(20), || {
        status_of(&host, "cull").last_load_error.is_some_and(|error| error.contains("refused on purpose"))
    });
    assert_eq!(status_of(&host, "cull").active_version.as_deref(), Some(v2_version.as_str()));

    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.join().unwrap();
    }
    assert_eq!(counts[2].load(Ordering::Relaxed), 0, "calls that fell back or decided neither way");
    let status = status_of(&host, "cull");
    let failed: u64 = status.counters.iter().filter(|(class, _)| *class != "ok").map(|(_, count)| count).sum();
    assert_eq!(failed, 0, "{status:?}");
}

#[test]
fn removing_the_file_returns_the_hook_to_the_native_default() {
    let folder = tempfile::tempdir().unwrap();
    install(folder.path(), "keep.wasm", plugins::HOSTILE_CULL, "hook: cull\ncomponent: keep.wasm\n");
    let config = PolicyHostConfig {
        folder: Some(folder.path().to_owned()),
        poll_interval: Duration::ZERO,
        ..PolicyHostConfig::default()
    };
    let host = PolicyHost::start(config).unwrap();
    // The hostile guest behaving keeps everything; the native default (timeout 3600 s) stops this server.
    assert_eq!(host.decide_cull(&[server(7200)])[0].action, CullAction::Keep);
    std::fs::remove_file(folder.path().join("cull.yaml")).unwrap();
    host.reload_now();
    assert_eq!(host.decide_cull(&[server(7200)])[0].action, CullAction::Stop);
    assert!(host.status().is_empty());
}

#[test]
fn a_second_load_comes_from_the_precompiled_cache() {
    let cache = tempfile::tempdir().unwrap();
    let engine = wasmhub_policy::PolicyEngine::new(Some(cache.path().join("cache"))).unwrap();
    let bytes = plugins::component_bytes(plugins::WASMHUB_DEFAULT_CULL);
    assert!(!engine.compile(&bytes).unwrap().from_cache);
    let second = engine.compile(&bytes).unwrap();
    assert!(second.from_cache);
    let artifacts: Vec<_> = std::fs::read_dir(cache.path().join("cache")).unwrap().collect();
    assert_eq!(artifacts.len(), 1, "one artifact keyed by content and engine hash");
    // A fresh engine (same wasmtime, same config) reuses the artifact too.
    let other_engine = wasmhub_policy::PolicyEngine::new(Some(cache.path().join("cache"))).unwrap();
    assert!(other_engine.compile(&bytes).unwrap().from_cache);
    // An artifact others could have written is never loaded as machine code: it is compiled again.
    use std::os::unix::fs::PermissionsExt;
    let artifact = artifacts[0].as_ref().unwrap().path();
    std::fs::set_permissions(&artifact, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(!other_engine.compile(&bytes).unwrap().from_cache);
}

#[test]
fn a_broken_policy_file_is_reported_and_binds_nothing() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("broken.yaml"), "hook: cull\ncomponent: missing.wasm\n").unwrap();
    std::fs::write(folder.path().join("typo.yaml"), "hook: cull\ncomponnt: x.wasm\n").unwrap();
    let config = PolicyHostConfig {
        folder: Some(folder.path().to_owned()),
        poll_interval: Duration::ZERO,
        ..PolicyHostConfig::default()
    };
    let host = PolicyHost::start(config).unwrap();
    let status = host.status();
    assert!(status[0].last_load_error.as_deref().unwrap().contains("missing.wasm"), "{status:?}");
    assert!(status[1].last_load_error.as_deref().unwrap().contains("unknown field `componnt`"), "{status:?}");
    assert!(status.iter().all(|status| status.active_version.is_none()));
    assert_eq!(host.decide_cull(&[server(7200)])[0].action, CullAction::Stop);
}

#[test]
fn two_files_for_one_slot_the_second_waits_until_the_first_goes() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("keep.wasm"), plugins::component_bytes(plugins::HOSTILE_CULL)).unwrap();
    std::fs::write(folder.path().join("rule.wasm"), plugins::component_bytes(plugins::WASMHUB_DEFAULT_CULL)).unwrap();
    std::fs::write(folder.path().join("a.yaml"), "hook: cull\ncomponent: keep.wasm\n").unwrap();
    std::fs::write(folder.path().join("b.yaml"), "hook: cull\ncomponent: rule.wasm\nsettings: {timeout_seconds: 60}\n")
        .unwrap();
    let config = PolicyHostConfig {
        folder: Some(folder.path().to_owned()),
        poll_interval: Duration::ZERO,
        ..PolicyHostConfig::default()
    };
    let host = PolicyHost::start(config).unwrap();
    assert!(status_of(&host, "b").last_load_error.as_deref().unwrap().contains("taken by \"a\""));
    assert_eq!(host.decide_cull(&[server(100)])[0].action, CullAction::Keep);
    std::fs::remove_file(folder.path().join("a.yaml")).unwrap();
    host.reload_now();
    assert_eq!(status_of(&host, "b").last_load_error, None);
    assert_eq!(host.decide_cull(&[server(100)])[0].action, CullAction::Stop);
}

/// Writes `files` as the kubelet writes a ConfigMap volume: the files in a fresh hidden folder, `..data` pointing at
/// it (replaced by a rename, so the switch is atomic), and each top-level name a symlink through `..data`.
fn kubelet_write(folder: &Path, generation: u32, files: &[(&str, Vec<u8>)]) {
    let hidden = format!("..2026_12_08_{generation:02}");
    for (path, bytes) in files {
        let target = folder.join(&hidden).join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
    std::os::unix::fs::symlink(&hidden, folder.join("..data_tmp")).unwrap();
    std::fs::rename(folder.join("..data_tmp"), folder.join("..data")).unwrap();
    for (path, _) in files {
        let top = path.split('/').next().unwrap();
        if std::fs::symlink_metadata(folder.join(top)).is_err() {
            std::os::unix::fs::symlink(format!("..data/{top}"), folder.join(top)).unwrap();
        }
    }
    if generation > 1 {
        std::fs::remove_dir_all(folder.join(format!("..2026_12_08_{:02}", generation - 1))).unwrap();
    }
}

#[test]
fn a_configmap_update_as_the_kubelet_writes_it_is_loaded_without_a_restart() {
    let folder = tempfile::tempdir().unwrap();
    let policy = |timeout: u64| {
        format!("hook: cull\ncomponent: components/cull.wasm\nsettings:\n  timeout_seconds: {timeout}\n").into_bytes()
    };
    let component = plugins::component_bytes(plugins::WASMHUB_DEFAULT_CULL);
    kubelet_write(folder.path(), 1, &[("cull.yaml", policy(100)), ("components/cull.wasm", component.clone())]);
    let config = PolicyHostConfig {
        folder: Some(folder.path().to_owned()),
        poll_interval: Duration::from_millis(20),
        ..PolicyHostConfig::default()
    };
    let host = PolicyHost::start(config).unwrap();
    assert_eq!(host.decide_cull(&[server(500)])[0].action, CullAction::Stop, "{:?}", host.status());
    // The operator raises the timeout in the values; helm upgrade changes the ConfigMap; the kubelet swaps.
    kubelet_write(folder.path(), 2, &[("cull.yaml", policy(1000)), ("components/cull.wasm", component)]);
    wait_until("the new policy", Duration::from_secs(20), || {
        host.decide_cull(&[server(500)])[0].action == CullAction::Keep
    });
    let status = host.status();
    assert_eq!(status.len(), 1, "the kubelet's hidden entries are not policies: {status:?}");
    assert!(status[0].last_load_error.is_none(), "{status:?}");
}
