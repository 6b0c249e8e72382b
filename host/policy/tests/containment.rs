//! Hostile guests are contained: a loop stops at its deadline, a memory bomb at its cap, a panic is a crash,
//! malformed output is refused, no call sees an earlier call's memory, a wrong WIT version never loads, and
//! other calls keep being served meanwhile.

use std::time::{Duration, Instant};

use wasmhub_policy::hooks::{CullServer, Hook, Identity, User};
use wasmhub_policy::{Limits, LoadedComponent, OutcomeClass, PolicyEngine};
use wasmhub_policy_test_plugins as plugins;

fn load(engine: &PolicyEngine, hook: Hook, path: &str) -> LoadedComponent {
    LoadedComponent::load(engine, "test", hook, &plugins::component_bytes(path))
        .unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn identity(name: &str) -> Identity {
    Identity {
        provider: "test".into(),
        subject: name.into(),
        username_hint: name.into(),
        claims: serde_json::json!({}),
    }
}

fn behaviour(name: &str) -> String {
    serde_json::json!({ "behaviour": name }).to_string()
}

fn servers() -> Vec<CullServer> {
    vec![CullServer {
        user: User { name: "alice".into(), admin: false, groups: vec![] },
        name: String::new(),
        profile: String::new(),
        ready: true,
        pending: false,
        age_seconds: 10,
        inactive_seconds: 10,
    }]
}

#[test]
fn an_infinite_loop_stops_within_its_deadline_plus_slack() {
    let engine = PolicyEngine::new(None).unwrap();
    let hostile = load(&engine, Hook::Auth, plugins::HOSTILE_AUTH);
    let limits = Limits { timeout_ms: 100, ..Limits::default() };
    let started = Instant::now();
    let report = hostile.authenticate(&behaviour("loop"), &limits, &identity("alice"));
    let elapsed = started.elapsed();
    assert_eq!(report.class(), OutcomeClass::Timeout, "{:?}", report.result);
    assert!(elapsed >= Duration::from_millis(100), "stopped early: {elapsed:?}");
    // Slack: one 1 ms tick plus scheduling on a busy 2-core machine.
    assert!(elapsed < Duration::from_millis(100 + 150), "stopped late: {elapsed:?}");
}

#[test]
fn a_memory_bomb_is_stopped_at_the_cap() {
    let engine = PolicyEngine::new(None).unwrap();
    let hostile = load(&engine, Hook::Auth, plugins::HOSTILE_AUTH);
    let limits = Limits { memory_mib: 32, ..Limits::default() };
    let report = hostile.authenticate(&behaviour("memory-bomb"), &limits, &identity("alice"));
    assert_eq!(report.class(), OutcomeClass::MemoryLimit, "{:?}", report.result);
    assert!(report.peak_memory_bytes <= 32 * 1024 * 1024, "peak {}", report.peak_memory_bytes);
}

#[test]
fn a_panic_is_a_crash_and_an_error_is_a_policy_error() {
    let engine = PolicyEngine::new(None).unwrap();
    let hostile = load(&engine, Hook::Auth, plugins::HOSTILE_AUTH);
    let report = hostile.authenticate(&behaviour("panic"), &Limits::default(), &identity("alice"));
    assert_eq!(report.class(), OutcomeClass::Crash, "{:?}", report.result);
    let report = hostile.authenticate(&behaviour("error"), &Limits::default(), &identity("alice"));
    assert_eq!(report.class(), OutcomeClass::PolicyError, "{:?}", report.result);
    // A fresh instance per call: the next call after a crash works.
    let report = hostile.authenticate(&behaviour("ok"), &Limits::default(), &identity("alice"));
    assert_eq!(report.class(), OutcomeClass::Ok, "{:?}", report.result);
}

#[test]
fn no_call_sees_what_an_earlier_call_wrote() {
    let engine = PolicyEngine::new(None).unwrap();
    let hostile = load(&engine, Hook::Auth, plugins::HOSTILE_AUTH);
    // The pool gives the same slot back to the same component, so each call runs where the last one wrote.
    for _ in 0..5 {
        let report = hostile.authenticate(&behaviour("remember"), &Limits::default(), &identity("alice"));
        assert_eq!(report.class(), OutcomeClass::Ok, "{:?}", report.result);
    }
}

#[test]
fn malformed_output_is_refused_for_every_hook() {
    let engine = PolicyEngine::new(None).unwrap();
    let malformed = behaviour("malformed");
    let auth = load(&engine, Hook::Auth, plugins::HOSTILE_AUTH);
    assert_eq!(
        auth.authenticate(&malformed, &Limits::default(), &identity("alice")).class(),
        OutcomeClass::InvalidOutput
    );
    let cull = load(&engine, Hook::Cull, plugins::HOSTILE_CULL);
    assert_eq!(cull.decide_cull(&malformed, &Limits::default(), &servers()).class(), OutcomeClass::InvalidOutput);
    let profiles = load(&engine, Hook::Profiles, plugins::HOSTILE_PROFILES);
    let user = User { name: "alice".into(), admin: false, groups: vec![] };
    assert_eq!(
        profiles.visible_profiles(&malformed, &Limits::default(), &user, &[]).class(),
        OutcomeClass::InvalidOutput
    );
    let pods = load(&engine, Hook::Pods, plugins::HOSTILE_PODS);
    let context = wasmhub_policy::hooks::SpawnContext { user, server_name: String::new(), profile: String::new() };
    let pod = serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
    let report = pods.mutate_pod(&malformed, &Limits::default(), &[], &context, &pod);
    assert_eq!(report.class(), OutcomeClass::InvalidOutput, "{:?}", report.result);
}

#[test]
fn oversized_input_and_output_are_capped() {
    let engine = PolicyEngine::new(None).unwrap();
    let auth = load(&engine, Hook::Auth, plugins::HOSTILE_AUTH);
    let tiny_input = Limits { max_input_bytes: 64, ..Limits::default() };
    let mut big = identity("alice");
    big.claims = serde_json::json!({ "blob": "x".repeat(1000) });
    assert_eq!(auth.authenticate(&behaviour("ok"), &tiny_input, &big).class(), OutcomeClass::Unavailable);
    let tiny_output = Limits { max_output_bytes: 8, ..Limits::default() };
    assert_eq!(
        auth.authenticate(&behaviour("ok"), &tiny_output, &identity("alice")).class(),
        OutcomeClass::InvalidOutput
    );
}

#[test]
fn the_host_keeps_serving_other_calls_while_a_guest_loops() {
    let engine = PolicyEngine::new(None).unwrap();
    let hostile = std::sync::Arc::new(load(&engine, Hook::Auth, plugins::HOSTILE_AUTH));
    let good = load(&engine, Hook::Cull, plugins::WASMHUB_DEFAULT_CULL);
    let looping = {
        let hostile = hostile.clone();
        std::thread::spawn(move || {
            hostile.authenticate(&behaviour("loop"), &Limits { timeout_ms: 1000, ..Limits::default() }, &identity("a"))
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let limits = Limits::default();
    let mut served = 0;
    while !looping.is_finished() {
        let report = good.decide_cull("{}", &limits, &servers());
        match report.class() {
            OutcomeClass::Ok => served += 1,
            // On a loaded machine (load 6-10 on 2 cores) this thread can wait for a core longer than the whole
            // 200 ms budget, and then the deadline is honest. What must never happen is a well-behaved call cut
            // short: a timeout counts only if the call really ran past its budget.
            OutcomeClass::Timeout if report.elapsed >= limits.timeout() => {}
            _ => panic!("a well-behaved call failed after {:?}: {:?}", report.elapsed, report.result),
        }
    }
    assert_eq!(looping.join().unwrap().class(), OutcomeClass::Timeout);
    assert!(served > 10, "only {served} calls were served while the guest looped");
}

#[test]
fn a_wrong_wit_version_is_refused_at_load_and_a_newer_minor_runs() {
    let engine = PolicyEngine::new(None).unwrap();
    let error = LoadedComponent::load(&engine, "test", Hook::Cull, &plugins::component_bytes(plugins::WRONG_VERSION))
        .err()
        .unwrap();
    assert!(error.to_string().contains("wasmhub:policy@0.2.0"), "{error}");
    let newer = load(&engine, Hook::Cull, plugins::FUTURE_MINOR);
    assert_eq!(newer.wit_version(), "0.1.1");
    let report = newer.decide_cull("{}", &Limits::default(), &servers());
    assert_eq!(report.class(), OutcomeClass::Ok, "{:?}", report.result);
    assert_eq!(report.logs[0].message, "0.1.1 guest deciding");
}

#[test]
fn a_component_for_another_hook_is_refused() {
    let engine = PolicyEngine::new(None).unwrap();
    let error =
        LoadedComponent::load(&engine, "test", Hook::Auth, &plugins::component_bytes(plugins::WASMHUB_DEFAULT_CULL))
            .err()
            .unwrap();
    assert!(error.to_string().contains("does not export wasmhub:policy/auth"), "{error}");
}
