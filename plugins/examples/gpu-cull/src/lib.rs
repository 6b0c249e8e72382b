//! Example cull policy: the idle culler's rule with a shorter timeout for servers started with a GPU profile,
//! since an idle GPU costs far more than an idle CPU.

use serde::Deserialize;
use wasmhub_policy_sdk::cull::{Action, CullPolicy, Decision, Server};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    timeout_seconds: u64,
    gpu_timeout_seconds: u64,
    gpu_profiles: Vec<String>,
}

pub struct GpuCull;

impl CullPolicy for GpuCull {
    type Settings = Settings;

    fn validate_settings(settings: &Settings) -> Result<(), String> {
        if settings.gpu_timeout_seconds > settings.timeout_seconds {
            return Err("gpu_timeout_seconds should not exceed timeout_seconds".to_owned());
        }
        Ok(())
    }

    fn decide(settings: &Settings, servers: Vec<Server>) -> Result<Vec<Decision>, String> {
        Ok(servers
            .iter()
            .map(|server| {
                let is_gpu = settings.gpu_profiles.contains(&server.profile);
                let timeout = if is_gpu { settings.gpu_timeout_seconds } else { settings.timeout_seconds };
                let kind = if is_gpu { "GPU " } else { "" };
                if server.pending || !server.ready {
                    Decision { action: Action::Keep, reason: "not ready".to_owned() }
                } else if server.inactive_seconds >= timeout {
                    Decision {
                        action: Action::Stop,
                        reason: format!("{kind}server inactive for {}s (timeout {timeout}s)", server.inactive_seconds),
                    }
                } else {
                    Decision { action: Action::Keep, reason: format!("{kind}server active {}s ago", server.inactive_seconds) }
                }
            })
            .collect())
    }
}

wasmhub_policy_sdk::register!(cull: GpuCull);
