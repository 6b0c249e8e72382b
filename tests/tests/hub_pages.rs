//! The hub's pages in headless Chromium (Debian's `chromium` driven by npm `playwright-core`), against a real
//! `wasmhub serve` with real `jupyterhub-singleuser` and JupyterLab, a `profileList` and the example
//! profiles-by-group policy (only `gpu-users` see the GPU profile).
//!
//! Each test runs scenarios of `tests/browser/pages.mjs` with `node`, checks what the hub's API says afterwards,
//! and leaves a screenshot of every page in `<target>/test-artifacts/pages/` (or `$WASMHUB_ARTIFACTS/pages/`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmhub_system_tests::hub_harness::{ADMIN_TOKEN, HubOptions, RunningHub};
use wasmhub_system_tests::{artifacts_dir, chromium_bin, playwright_core_dir};

const PASSWORD: &str = "browser-test-password";

/// A hub with two profiles (GPU restricted to `gpu-users` by a policy file), three allowed users and an admin.
fn start_hub(policies: &Path) -> RunningHub {
    let component = policies.join("components/example_profiles_by_group.wasm");
    std::fs::create_dir_all(component.parent().unwrap()).unwrap();
    std::fs::copy(wasmhub_policy_test_plugins::EXAMPLE_PROFILES_BY_GROUP, &component)
        .expect("the example profiles-by-group component, built by the test build");
    std::fs::write(
        policies.join("profiles-by-group.yaml"),
        "hook: profiles\ncomponent: components/example_profiles_by_group.wasm\nsettings:\n  restricted:\n    gpu: [gpu-users]\n",
    )
    .unwrap();
    RunningHub::start(HubOptions {
        hub_config: format!(
            "    DummyAuthenticator:\n      password: {PASSWORD}\n    Authenticator:\n      allowed_users: [alice, bob]\n      \
             admin_users: [admin]\n      allow_existing_users: true\n"
        ),
        wasmhub_extra: format!("  policies:\n    dir: \"{}\"\n", policies.display()),
        top_level: r#"singleuser:
  defaultUrl: /lab
  profileList:
    - display_name: "CPU only"
      description: "2 cores, 4 GB of memory"
      default: true
    - display_name: "GPU"
      slug: gpu
      description: "One NVIDIA A100 for deep learning"
      kubespawner_override:
        extra_resource_limits:
          nvidia.com/gpu: "1"
      profile_options:
        image:
          display_name: "Image"
          choices:
            torch:
              display_name: "PyTorch"
              default: true
            tf:
              display_name: "TensorFlow"
          unlisted_choice:
            enabled: true
            display_name: "Image name"
            validation_regex: "^[a-z0-9./:-]+$"
            validation_message: "Lowercase image names only"
"#
        .to_owned(),
        ..HubOptions::default()
    })
}

async fn api(hub: &RunningHub, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", hub.api_url()))
        .header("Authorization", format!("token {ADMIN_TOKEN}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("hub API");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Runs one scenario of `pages.mjs`; its `RESULT` line, or a panic with its output and the hub's log.
fn scenario(hub: &RunningHub, name: &str) -> Value {
    scenario_at(hub, name, &hub.public_url(), None)
}

/// [`scenario`] with the hub at `public_url`, and Chromium's `--host-resolver-rules` when names need mapping.
fn scenario_at(hub: &RunningHub, name: &str, public_url: &str, host_rules: Option<&str>) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/pages.mjs");
    let args = json!({
        "hub": public_url,
        "hostResolverRules": host_rules,
        "password": PASSWORD,
        "artifacts": artifacts_dir("pages"),
        "playwright": playwright_core_dir(),
        "chromium": chromium_bin(),
    });
    let output = Command::new("node")
        .arg(&script)
        .arg(name)
        .env("SCENARIO_ARGS", args.to_string())
        .output()
        .expect("node runs (it is on PATH for CHP too)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser scenario {name} failed ({}); screenshots in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- hub log\n{}",
        output.status,
        artifacts_dir("pages").display(),
        hub.log_tail()
    );
    let line = stdout.lines().find_map(|line| line.strip_prefix("RESULT ")).expect("the scenario prints RESULT");
    serde_json::from_str(line).expect("RESULT is JSON")
}

async fn wait_for_server(hub: &RunningHub, user: &str, ready: bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, model) = api(hub, reqwest::Method::GET, &format!("/users/{user}"), None).await;
        let is_ready = model["servers"][""]["ready"] == json!(true);
        if is_ready == ready {
            return;
        }
        assert!(Instant::now() < deadline, "{user}'s server never became ready={ready}: {model}\n{}", hub.log_tail());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// alice (in `gpu-users`) logs in past a failed attempt, sees both profiles, starts the GPU one and watches the
/// progress bar reach 100% into JupyterLab, uses the home and token pages and logs out of the hub and her server;
/// bob sees the CPU profile only, and his forged spawns (hidden profile, no XSRF token, cross-site form) and
/// open-redirect logins all fail.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_logs_in_picks_a_profile_and_watches_the_spawn() {
    let policies = tempfile::tempdir().unwrap();
    let hub = start_hub(policies.path());
    let (status, _) = api(&hub, reqwest::Method::POST, "/groups/gpu-users", None).await;
    assert_eq!(status, 201);
    let (status, _) =
        api(&hub, reqwest::Method::POST, "/groups/gpu-users/users", Some(json!({"users": ["alice"]}))).await;
    assert!((200..300).contains(&status), "{status}");

    let journey = scenario(&hub, "journey");
    assert_eq!(journey["profiles"], json!(["cpu-only", "gpu"]), "{journey}");
    let progress: Vec<u64> = journey["progress"].as_array().unwrap().iter().filter_map(Value::as_u64).collect();
    assert!(progress.contains(&100) && progress.first() == Some(&0), "{progress:?}");
    let (_, alice) = api(&hub, reqwest::Method::GET, "/users/alice", None).await;
    assert_eq!(alice["servers"][""]["user_options"], json!({"profile": "gpu", "image": "tf"}), "{alice}");

    let restricted = scenario(&hub, "restricted");
    assert_eq!(restricted["profiles"], json!(["cpu-only"]), "{restricted}");
    let (_, bob) = api(&hub, reqwest::Method::GET, "/users/bob", None).await;
    assert_eq!(bob["servers"], json!({}), "no forged request started bob's server: {bob}");
}

/// The admin lifts a login lockout, adds carol (who can then log in), stops bob's server, makes a group and edits a user, all from the
/// panel.
#[tokio::test(flavor = "multi_thread")]
async fn an_admin_adds_a_user_and_stops_a_server_from_the_panel() {
    let policies = tempfile::tempdir().unwrap();
    let hub = start_hub(policies.path());
    let (status, body) = api(&hub, reqwest::Method::POST, "/users/bob/server", None).await;
    assert!(status == 201 || status == 202, "{status} {body}");
    wait_for_server(&hub, "bob", true).await;

    let result = scenario(&hub, "admin");
    assert!(result["carolLanded"].as_str().is_some_and(|url| url.contains("/hub/spawn")), "{result}");
    wait_for_server(&hub, "bob", false).await;
    let (status, carol) = api(&hub, reqwest::Method::GET, "/users/carol", None).await;
    assert_eq!(status, 200);
    assert_eq!(carol["admin"], json!(false), "{carol}");
    assert_eq!(carol["groups"], json!(["testers"]), "{carol}");
}

/// `JupyterHub.subdomain_host` in Chromium, hosts mapped with `--host-resolver-rules`: alice's server is on
/// `alice.hub.test`, and a script there reads nothing of the hub (`hub.test`) or of bob's server (`bob.hub.test`).
#[tokio::test(flavor = "multi_thread")]
async fn with_subdomains_a_users_server_cannot_read_the_hub_or_another_server() {
    let hub = RunningHub::start(HubOptions {
        hub_config: format!("    DummyAuthenticator:\n      password: {PASSWORD}\n"),
        top_level: "singleuser:\n  defaultUrl: /lab\n".to_owned(),
        subdomain_domain: Some("hub.test"),
        ..HubOptions::default()
    });
    let (status, body) = api(&hub, reqwest::Method::POST, "/users/bob", None).await;
    assert!(status == 201 || status == 409, "{status} {body}");
    let (status, body) = api(&hub, reqwest::Method::POST, "/users/bob/server", None).await;
    assert!(status == 201 || status == 202, "{status} {body}");
    let public_url = format!("http://hub.test:{}", hub.public_port);
    let result = scenario_at(&hub, "subdomains", &public_url, Some("MAP hub.test 127.0.0.1, MAP *.hub.test 127.0.0.1"));
    let landed = result["landed"].as_str().unwrap();
    assert!(landed.starts_with(&format!("http://alice.hub.test:{}/user/alice/lab", hub.public_port)), "{landed}");
    let probe = &result["probe"];
    let cookies = probe["cookies"].as_str().unwrap();
    assert!(!cookies.contains("jupyterhub-hub-login") && !cookies.contains("jupyterhub-session-id"), "{cookies}");
    for (what, answer) in probe.as_object().unwrap().iter().filter(|(key, _)| *key != "cookies") {
        assert_eq!(answer, "blocked", "{what}: a script on alice's host read it: {probe}");
    }
    let (_, model) = api(&hub, reqwest::Method::GET, "/users/alice", None).await;
    assert_eq!(model["servers"][""]["url"], format!("http://alice.hub.test:{}/user/alice/", hub.public_port));
}
