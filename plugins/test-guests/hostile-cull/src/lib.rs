//! Test guest: a cull policy that misbehaves as its settings say (see `../hostile/behaviour.rs`).

use wasmhub_policy_sdk::cull::{Action, CullPolicy, Decision, Server};

#[path = "../../hostile/behaviour.rs"]
mod behaviour;

use behaviour::{Settings, misbehave, validate};

pub struct Hostile;

impl CullPolicy for Hostile {
    type Settings = Settings;

    fn validate_settings(settings: &Settings) -> Result<(), String> {
        validate(settings)
    }

    fn decide(settings: &Settings, servers: Vec<Server>) -> Result<Vec<Decision>, String> {
        let user_name = servers
            .iter()
            .map(|server| server.user.name.as_str())
            .find(|name| Some(*name) == settings.only_for.as_deref())
            .unwrap_or("");
        let malformed = misbehave(settings, user_name)?;
        // Malformed: one decision too many, so the host cannot pair decisions with servers.
        let count = if malformed { servers.len() + 1 } else { servers.len() };
        Ok((0..count)
            .map(|_| Decision { action: Action::Keep, reason: "hostile guest keeps everything".to_owned() })
            .collect())
    }
}

wasmhub_policy_sdk::register!(cull: Hostile);
