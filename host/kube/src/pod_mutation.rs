//! The one thing the spawner asks of the pods hook: the Pod to create from the one it built. A narrow trait rather
//! than the policy host, so this crate neither links the WebAssembly runtime nor knows how a hook is run; the hub
//! adapts its policy host to it, and [`UnmodifiedPods`] stands in where there is no hook.

use k8s_openapi::api::core::v1::Pod;

/// Who is spawning what, as the pods hook sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSpawn {
    pub user: String,
    /// Empty for the default server.
    pub server_name: String,
    /// The slug of the profile the hub resolved; empty without profiles.
    pub profile: String,
    pub admin: bool,
    pub groups: Vec<String>,
}

/// The pods hook, called once per spawn, after the spawner built the Pod and before it creates it.
#[async_trait::async_trait]
pub trait PodMutation: Send + Sync {
    /// The Pod to create from the one the spawner built (KubeSpawner's manifest as JSON); Err fails the spawn with
    /// a message for the user.
    async fn mutate_pod(&self, spawn: &PodSpawn, pod: serde_json::Value) -> Result<Pod, String>;
}

/// Creates the Pod as built (no pods hook).
#[derive(Debug, Clone, Copy, Default)]
pub struct UnmodifiedPods;

#[async_trait::async_trait]
impl PodMutation for UnmodifiedPods {
    async fn mutate_pod(&self, _spawn: &PodSpawn, pod: serde_json::Value) -> Result<Pod, String> {
        // The manifest is the spawner's own, so this fails only on a bug or a trait value Kubernetes cannot hold.
        serde_json::from_value(pod).map_err(|error| format!("the pod is invalid: {error}"))
    }
}
