//! jupyterhub-idle-culler's server rules as a cull policy; the host's native default (`native/cull.rs`) decides
//! the same, and a property test holds the two to it.

use serde::Deserialize;
use wasmhub_policy_sdk::cull::{Action, CullPolicy, Decision, Server};

/// The idle culler's options, with z2jh's defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    timeout_seconds: u64,
    max_age_seconds: u64,
    cull_default_servers: bool,
    cull_named_servers: bool,
    remove_named_servers: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeout_seconds: 3600,
            max_age_seconds: 0,
            cull_default_servers: true,
            cull_named_servers: true,
            remove_named_servers: false,
        }
    }
}

pub struct IdleCuller;

impl CullPolicy for IdleCuller {
    type Settings = Settings;

    fn decide(settings: &Settings, servers: Vec<Server>) -> Result<Vec<Decision>, String> {
        Ok(servers.iter().map(|server| decide_one(settings, server)).collect())
    }
}

fn decide_one(settings: &Settings, server: &Server) -> Decision {
    let keep = |reason: String| Decision { action: Action::Keep, reason };
    if server.pending {
        return keep("pending".to_owned());
    }
    if !server.ready {
        return keep("not ready".to_owned());
    }
    let is_named = !server.name.is_empty();
    if !is_named && !settings.cull_default_servers {
        return keep("default servers are not culled".to_owned());
    }
    if is_named && !settings.cull_named_servers {
        return keep("named servers are not culled".to_owned());
    }
    let stop = if is_named && settings.remove_named_servers { Action::StopAndRemove } else { Action::Stop };
    if server.inactive_seconds >= settings.timeout_seconds {
        return Decision { action: stop, reason: format!("inactive for {}s (timeout {}s)", server.inactive_seconds, settings.timeout_seconds) };
    }
    if settings.max_age_seconds > 0 && server.age_seconds >= settings.max_age_seconds {
        return Decision { action: stop, reason: format!("running for {}s (max age {}s)", server.age_seconds, settings.max_age_seconds) };
    }
    keep(format!("inactive for {}s (timeout {}s)", server.inactive_seconds, settings.timeout_seconds))
}

wasmhub_policy_sdk::register!(cull: IdleCuller);
