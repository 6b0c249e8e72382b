//! The identity pod patch: the built-in pods behaviour (leave the Pod as the spawner built it) as a component,
//! so the interface is proven by our own default and sites have a starting point.

use serde::Deserialize;
use wasmhub_policy_sdk::pods::{PatchOperation, PodJson, PodPolicy, SpawnContext};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Settings {}

pub struct Identity;

impl PodPolicy for Identity {
    type Settings = Settings;

    fn mutate_pod(_settings: &Settings, _context: SpawnContext, _pod: PodJson) -> Result<Vec<PatchOperation>, String> {
        Ok(Vec::new())
    }
}

wasmhub_policy_sdk::register!(pods: Identity);
