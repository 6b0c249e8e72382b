//! `wasmhub config check` as an operator runs it: the seed's examples pass, a broken file lists every error with
//! its line and the nearest valid key, and the exit code tells a script which happened.

use std::process::Command;

fn check(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wasmhub")).args(["config", "check"]).arg(path).output().unwrap()
}

#[test]
fn every_deployed_example_checks_clean() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "yaml") {
            let output = check(&path);
            assert!(output.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&output.stderr));
            checked += 1;
        }
    }
    assert!(checked >= 7, "the seed's fragments are all there");
}

#[test]
fn a_broken_file_gets_every_error_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasmhub.yaml");
    std::fs::write(&path, "hub:\n  config:\n    Authenticator:\n      admin_user: [alice]\ncul:\n  timeout: 60\n")
        .unwrap();
    let output = check(&path);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("wasmhub.yaml:4:"), "line of the first error: {stderr}");
    assert!(stderr.contains("did you mean admin_users?"), "{stderr}");
    assert!(stderr.contains("wasmhub.yaml:5:") && stderr.contains("did you mean cull?"), "{stderr}");
    assert!(stderr.contains("2 errors"), "{stderr}");
}
