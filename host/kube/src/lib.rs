//! The Kubernetes spawner: one pod (and a home claim) per server, built as KubeSpawner 7 builds them, so existing
//! clusters, NetworkPolicies and operators' habits keep working, with KubeSpawner's known failures fixed:
//!
//! - names come from the `safe` slug scheme, are decided in [`Spawner::prepare`] and stored before anything is
//!   created, so a template change or an upgrade never orphans a claim (`names.rs`);
//! - the traits are KubeSpawner's, merged with its rules, and decoded with unknown keys refused (`settings.rs`);
//!   the caller translates its configuration into them, and the hub resolves the profile once per spawn and
//!   passes its override in the [`SpawnRequest`], which the spawner applies without deciding anything again;
//! - the pods hook ([`PodMutation`]) turns the built pod into the one created, once per spawn (`pod_mutation.rs`);
//! - one shared pod watch with bookmarks answers `poll` and readiness, relisting only after a 410 (`pods.rs`), and
//!   image pull errors, unschedulable pods and crash loops end the spawn within seconds with a readable message
//!   (`pod_status.rs`);
//! - progress comes from a field-selected watch of this pod's events only (`progress.rs`);
//! - after a hub restart pods are found by their labels and annotations, a pod whose spawn was interrupted is
//!   adopted rather than recreated, and pods no server owns can be collected (`spawner.rs`).
//!
//! [`Spawner::prepare`]: wasmhub_spawner::Spawner::prepare
//! [`SpawnRequest`]: wasmhub_spawner::SpawnRequest

mod api;
mod names;
mod objects;
mod pod_mutation;
mod pod_status;
mod pods;
mod progress;
mod settings;
mod spawner;

/// The type [`PodMutation`] returns, so its implementors need not depend on `k8s-openapi` themselves.
pub use k8s_openapi::api::core::v1::Pod;
pub use pod_mutation::{PodMutation, PodSpawn, UnmodifiedPods};
pub use settings::{KubeSpawnerConfig, apply_override, kubespawner_defaults};
pub use spawner::KubeSpawner;

/// Why the Kubernetes spawner could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot read the kubeconfig {path}: {source}")]
    Kubeconfig { path: String, source: kube::config::KubeconfigError },
    #[error("no Kubernetes configuration (neither a kubeconfig nor in-cluster): {0}")]
    NoConfig(String),
    #[error("cannot make a Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    #[error("the spawner settings are invalid: {0}")]
    Settings(String),
}
