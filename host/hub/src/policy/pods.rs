//! The policy host as the Kubernetes spawner's pods hook: the spawner asks only for the Pod to create
//! ([`wasmhub_kube::PodMutation`]), so it needs neither the policy host nor the WebAssembly runtime; [`Policies`]
//! answers with [`PolicyHost::mutate_pod`](wasmhub_policy::PolicyHost::mutate_pod).
//!
//! The call may run a WebAssembly guest up to its deadline, so it runs on tokio's blocking pool, never on the async
//! workers. A call that panics fails the spawn: creating the pod unmodified would skip the policy.

use wasmhub_kube::{Pod, PodMutation, PodSpawn};
use wasmhub_policy::hooks::{SpawnContext, User};

use super::Policies;

#[async_trait::async_trait]
impl PodMutation for Policies {
    async fn mutate_pod(&self, spawn: &PodSpawn, pod: serde_json::Value) -> Result<Pod, String> {
        let host = self.host().clone();
        let context = SpawnContext {
            user: User { name: spawn.user.clone(), admin: spawn.admin, groups: spawn.groups.clone() },
            server_name: spawn.server_name.clone(),
            profile: spawn.profile.clone(),
        };
        match tokio::task::spawn_blocking(move || host.mutate_pod(&context, &pod)).await {
            Ok(decided) => decided.map_err(|error| error.to_string()),
            Err(error) => Err(format!("the pods hook failed: {error}")),
        }
    }
}
