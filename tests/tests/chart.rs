//! The Helm chart, offline (issue 15): each test runs one check of `tests/chart/chart_checks.py` with the `k8s`
//! peer venv, where the Helm SDK (Helm 4 in-process) renders and lints `deploy/helm/wasmhub` and
//! kubernetes-validate checks every object. The values are the chart's defaults, every file of `deploy/examples/`
//! unchanged, and a few variants (PostgreSQL, HTTPS, ingress, policies, a name prefix).

use std::path::Path;
use std::process::Command;

use wasmhub_system_tests::{venv_bin, wasmhub_bin};

fn check(name: &str) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository");
    let output = Command::new(venv_bin("k8s").join("python"))
        .arg(repo.join("tests/chart/chart_checks.py"))
        .arg(name)
        .arg("--repo")
        .arg(repo)
        .arg("--wasmhub")
        .arg(wasmhub_bin())
        .output()
        .expect("running the chart checks");
    assert!(
        output.status.success(),
        "chart check {name} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `helm lint --strict` for every value set, on the oldest and newest Kubernetes the chart supports.
#[test]
fn the_chart_lints_for_every_example() {
    check("lint");
}

/// Every rendered object is valid for Kubernetes 1.30 to 1.37 (`kubernetes-validate --strict`: unknown fields are
/// errors), and what schemas cannot see holds: selectors select, named ports, accounts, claims and maps exist.
#[test]
fn every_rendered_object_is_valid_kubernetes_from_1_30_to_1_37() {
    check("validate");
}

/// The rendered hub config is what `wasmhub config check` accepts, for every value set.
#[test]
fn the_rendered_hub_config_passes_config_check() {
    check("config");
}

/// Renders of the seed's fragments and the variants, committed in `tests/chart/golden/` (rewritten when they
/// differ, so a change shows as a diff to review).
#[test]
fn golden_renders_of_the_seeds_fragments() {
    check("golden");
}

/// A misspelt key fails the install with the nearest-key hint `wasmhub config check` gives.
#[test]
fn a_misspelt_key_fails_the_install_with_the_same_hint_as_config_check() {
    check("unknown_keys");
}

/// A pre-install/pre-upgrade hook runs `wasmhub config check` on the config the hub would get, so what only the
/// hub's own check refuses fails the upgrade before anything changes.
#[test]
fn an_upgrade_with_a_config_the_hub_refuses_fails_before_it_changes_anything() {
    check("config_hook");
}

/// `values.schema.json`, generated from host/config, refuses a value of the wrong type.
#[test]
fn a_value_of_the_wrong_type_fails_the_install() {
    check("schema");
}

/// A hub config change restarts the hub (its checksum annotation changes) and not the proxy.
#[test]
fn a_config_change_restarts_the_hub_and_leaves_the_proxy() {
    check("checksums");
}

/// Every key the chart reads changes what it creates (a table of each key with a value other than its default).
#[test]
fn every_key_the_chart_reads_changes_what_it_creates() {
    check("effects");
}

/// Keys the chart reads change the objects: the proxy's hold, the strategy on PostgreSQL, cloud metadata.
#[test]
fn settings_the_chart_reads_have_their_effect() {
    check("settings");
}
