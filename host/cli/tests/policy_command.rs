//! `wasmhub policy check|run` against the example policies in `policies/`, with components from this build.

use std::path::Path;
use std::process::Command;

use wasmhub_policy_test_plugins as plugins;

/// A copy of `policies/` with `components/` filled from the test build.
fn policies_folder() -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    let source = plugins::repository_root().join("policies");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "yaml") {
            std::fs::copy(&path, folder.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir(folder.path().join("components")).unwrap();
    for component in [
        plugins::EXAMPLE_KEYCLOAK_GROUPS,
        plugins::EXAMPLE_PROFILES_BY_GROUP,
        plugins::EXAMPLE_GPU_POD,
        plugins::EXAMPLE_GPU_CULL,
        plugins::WRONG_VERSION,
    ] {
        let file_name = Path::new(component).file_name().unwrap();
        std::fs::copy(component, folder.path().join("components").join(file_name)).unwrap();
    }
    folder
}

fn wasmhub(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wasmhub")).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[test]
fn check_accepts_every_example_policy() {
    let folder = policies_folder();
    for name in ["keycloak-groups", "profiles-by-group", "gpu-pod", "gpu-cull"] {
        let (success, text) =
            wasmhub(&["policy".as_ref(), "check".as_ref(), folder.path().join(format!("{name}.yaml")).as_os_str()]);
        assert!(success, "{name}: {text}");
        assert!(text.contains("validate-settings: ok") && text.contains("smoke call: ok"), "{name}: {text}");
    }
}

#[test]
fn check_refuses_a_wrong_wit_version_naming_it() {
    let folder = policies_folder();
    let (success, text) = wasmhub(&[
        "policy".as_ref(),
        "check".as_ref(),
        folder.path().join("components/wrong_version.wasm").as_os_str(),
    ]);
    assert!(!success);
    assert!(text.contains("wasmhub:policy@0.2.0"), "{text}");
}

#[test]
fn run_prints_the_decision_time_memory_and_outcome() {
    let folder = policies_folder();
    let fixture = plugins::repository_root().join("policies/fixtures/pods.json");
    let (success, text) = wasmhub(&[
        "policy".as_ref(),
        "run".as_ref(),
        folder.path().join("gpu-pod.yaml").as_os_str(),
        "--input".as_ref(),
        fixture.as_os_str(),
    ]);
    assert!(success, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text[text.find('{').unwrap()..]).unwrap();
    assert_eq!(json["outcome"], "ok");
    assert_eq!(json["decision"]["spec"]["nodeSelector"]["accelerator"], "nvidia-a100");
    assert!(json["elapsed_micros"].as_u64().unwrap() > 0);
    assert!(json["peak_memory_bytes"].as_u64().unwrap() > 0);
    for (policy, fixture) in [("keycloak-groups", "auth"), ("profiles-by-group", "profiles"), ("gpu-cull", "cull")] {
        let fixture = plugins::repository_root().join(format!("policies/fixtures/{fixture}.json"));
        let (success, text) = wasmhub(&[
            "policy".as_ref(),
            "run".as_ref(),
            folder.path().join(format!("{policy}.yaml")).as_os_str(),
            "--input".as_ref(),
            fixture.as_os_str(),
        ]);
        assert!(success, "{policy}: {text}");
    }
}
