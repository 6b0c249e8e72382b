//! The Kubernetes spawner: one pod (and a home claim) per server, built as KubeSpawner 7 builds them, so existing
//! clusters, NetworkPolicies and operators' habits keep working, with KubeSpawner's known failures fixed:
//!
//! - names come from the `safe` slug scheme, are decided in [`Spawner::prepare`] and stored before anything is
//!   created, so a template change or an upgrade never orphans a claim (`names.rs`);
//! - profiles are resolved by the profile policy and applied in KubeSpawner's order with its merge rules, and the
//!   result is decoded with unknown keys refused (`settings.rs`); the pod policy patches the final Pod;
//! - one shared pod watch with bookmarks answers `poll` and readiness, relisting only after a 410 (`pods.rs`);
//! - progress comes from a field-selected watch of this pod's events only, and image pull errors, unschedulable
//!   pods and crash loops end the spawn within seconds with a readable message (`spawner.rs`);
//! - after a hub restart pods are found by their labels and annotations, a pod whose spawn was interrupted is
//!   adopted rather than recreated, and pods no server owns can be collected.
//!
//! [`Spawner::prepare`]: wasmhub_spawner::Spawner::prepare

mod names;
mod objects;
mod pods;
mod settings;
mod spawner;

pub use settings::base_traits;
pub use spawner::{KubeSpawner, KubeSpawnerConfig};

/// Why the Kubernetes spawner could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot read the kubeconfig {path}: {source}")]
    Kubeconfig { path: String, source: kube::config::KubeconfigError },
    #[error("no Kubernetes configuration (neither a kubeconfig nor in-cluster): {0}")]
    NoConfig(String),
    #[error("cannot make a Kubernetes client: {0}")]
    Client(#[from] kube::Error),
    #[error("singleuser.profileList: {0}")]
    Profiles(String),
    #[error("the spawner settings are invalid: {0}")]
    Settings(String),
}
