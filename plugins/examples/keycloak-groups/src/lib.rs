//! Example auth policy for Keycloak: the username comes from `preferred_username`, the `groups` claim (with
//! Keycloak's full-path names like `/org/staff`) becomes the hub groups, members of the admin group are admins
//! and everyone else loses admin, and only members of the allowed groups may log in.

use serde::Deserialize;
use wasmhub_policy_sdk::auth::{self, AdminChange, Allowed, AuthPolicy, Decision, Identity};
use wasmhub_policy_sdk::{LogLevel, log};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default = "default_groups_claim")]
    groups_claim: String,
    admin_group: String,
    /// Empty: every authenticated user may log in.
    #[serde(default)]
    allowed_groups: Vec<String>,
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

pub struct KeycloakGroups;

impl AuthPolicy for KeycloakGroups {
    type Settings = Settings;

    fn validate_settings(settings: &Settings) -> Result<(), String> {
        if settings.admin_group.is_empty() {
            return Err("admin_group must not be empty".to_owned());
        }
        Ok(())
    }

    fn authenticate(settings: &Settings, identity: Identity) -> Result<Decision, String> {
        let claims = auth::claims(&identity);
        let Some(username) = claims.get("preferred_username").and_then(|name| name.as_str()) else {
            return Ok(Decision::Deny("the token has no preferred_username".to_owned()));
        };
        let username = username.to_lowercase();
        let mut groups: Vec<String> = Vec::new();
        for group in claims.get(&settings.groups_claim).and_then(|groups| groups.as_array()).into_iter().flatten() {
            // Keycloak's "full group path" mapper sends `/parent/child`; the hub group is the last segment.
            let Some(name) = group.as_str().and_then(|path| path.rsplit('/').next()).filter(|name| !name.is_empty()) else {
                continue;
            };
            if !groups.iter().any(|existing| existing == name) {
                groups.push(name.to_owned());
            }
        }
        if !settings.allowed_groups.is_empty() && !groups.iter().any(|group| settings.allowed_groups.contains(group)) {
            log(LogLevel::Info, &format!("{username} is in none of the allowed groups"));
            return Ok(Decision::Deny(format!("{username} is not in an allowed group")));
        }
        let admin = if groups.contains(&settings.admin_group) { AdminChange::Grant } else { AdminChange::Revoke };
        Ok(Decision::Allow(Allowed { username, admin, groups: Some(groups), auth_state_json: None }))
    }
}

wasmhub_policy_sdk::register!(auth: KeycloakGroups);
