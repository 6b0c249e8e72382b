//! Builds every component in `plugins/` with `cargo build --release --target wasm32-wasip2`, so tests use
//! components made from the sources in this commit and no binary is ever committed. Plugins of different hooks
//! are built in separate cargo invocations because the SDK generates one WIT world per hook feature and a
//! component may embed only one.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One cargo invocation per hook; the version guests do not use the SDK and ride along with cull.
const GROUPS: &[&[&str]] = &[
    &["wasmhub-default-auth", "example-keycloak-groups", "hostile-auth"],
    &["wasmhub-default-profiles", "example-profiles-by-group", "hostile-profiles"],
    &["wasmhub-default-pods", "example-gpu-pod", "hostile-pods"],
    &["wasmhub-default-cull", "example-gpu-cull", "hostile-cull", "wrong-version", "future-minor"],
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let repository = manifest_dir.ancestors().nth(3).expect("host/policy/test-plugins is three levels deep").to_owned();
    let plugins = repository.join("plugins");
    for watched in ["sdk", "defaults", "examples", "test-guests", "Cargo.toml", "Cargo.lock", ".cargo"] {
        println!("cargo:rerun-if-changed={}", plugins.join(watched).display());
    }
    println!("cargo:rerun-if-changed={}", repository.join("wit").display());

    // Our own target dir next to the outer one (OUT_DIR is <target>/<profile>/build/<pkg>/out): the outer
    // cargo holds the lock on its build dir while this script runs, so sharing it would deadlock.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_dir = out_dir.ancestors().nth(3).expect("OUT_DIR is nested").join("wasm-plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    for group in GROUPS {
        let mut command = Command::new(&cargo);
        command
            .current_dir(&plugins)
            .args(["build", "--release", "--locked", "--target", "wasm32-wasip2", "--target-dir"])
            .arg(&target_dir);
        for package in *group {
            command.args(["-p", package]);
        }
        for variable in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "RUSTC_WORKSPACE_WRAPPER",
        ] {
            command.env_remove(variable);
        }
        let status = command.status().unwrap_or_else(|error| panic!("cannot run {cargo}: {error}"));
        if !status.success() {
            panic!(
                "building plugins/ ({}) failed; if the error says the wasm32-wasip2 target is missing, run \
                 `rustup target add wasm32-wasip2`",
                group.join(", ")
            );
        }
    }

    let wasm_dir = target_dir.join("wasm32-wasip2").join("release");
    let mut constants = String::new();
    for package in GROUPS.iter().flat_map(|group| group.iter()) {
        let file = wasm_dir.join(format!("{}.wasm", package.replace('-', "_")));
        assert!(file.exists(), "{} was not produced", file.display());
        constants.push_str(&format!(
            "/// `plugins/` package `{package}`, built for this test run.\npub const {}: &str = {:?};\n",
            package.replace('-', "_").to_uppercase(),
            path_string(&file)
        ));
    }
    std::fs::write(out_dir.join("components.rs"), constants).expect("cannot write components.rs");
}

fn path_string(path: &Path) -> String {
    path.to_str().expect("the target dir path is UTF-8").to_owned()
}
