//! Test guest: an auth policy that misbehaves as its settings say (see `../hostile/behaviour.rs`). When it
//! behaves, it allows everyone and grants admin, so a test can see that a failure never leaks that grant.

use wasmhub_policy_sdk::auth::{AdminChange, Allowed, AuthPolicy, Decision, Identity};

#[path = "../../hostile/behaviour.rs"]
mod behaviour;

use behaviour::{Settings, misbehave, validate};

pub struct Hostile;

impl AuthPolicy for Hostile {
    type Settings = Settings;

    fn validate_settings(settings: &Settings) -> Result<(), String> {
        validate(settings)
    }

    fn authenticate(settings: &Settings, identity: Identity) -> Result<Decision, String> {
        let malformed = misbehave(settings, &identity.username_hint)?;
        // Malformed: a username the host must refuse.
        let username = if malformed { format!("../{}", identity.username_hint) } else { identity.username_hint };
        Ok(Decision::Allow(Allowed { username, admin: AdminChange::Grant, groups: None, auth_state_json: None }))
    }
}

wasmhub_policy_sdk::register!(auth: Hostile);
