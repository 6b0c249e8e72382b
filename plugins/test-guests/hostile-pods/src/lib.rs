//! Test guest: a pods policy that misbehaves as its settings say (see `../hostile/behaviour.rs`). When it
//! behaves, it adds a label.

use wasmhub_policy_sdk::pods::{PatchOperation, PodJson, PodPolicy, SpawnContext};

#[path = "../../hostile/behaviour.rs"]
mod behaviour;

use behaviour::{Settings, misbehave, validate};

pub struct Hostile;

impl PodPolicy for Hostile {
    type Settings = Settings;

    fn validate_settings(settings: &Settings) -> Result<(), String> {
        validate(settings)
    }

    fn mutate_pod(settings: &Settings, context: SpawnContext, _pod: PodJson) -> Result<Vec<PatchOperation>, String> {
        if misbehave(settings, &context.user.name)? {
            // Malformed: escalate privileges, outside every default allowed path.
            return Ok(vec![PatchOperation::add(
                "/spec/containers/0/securityContext",
                serde_json::json!({"privileged": true}),
            )?]);
        }
        Ok(vec![PatchOperation::add("/metadata/labels/hostile", "yes")?])
    }
}

wasmhub_policy_sdk::register!(pods: Hostile);
