//! JupyterHub's login rules as an auth policy: lowercase then `username_map`, validation and
//! `username_pattern`, `blocked_users`, `allow_all`/`allowed_users`/`admin_users`, and OAuthenticator's
//! `manage_groups`/`allowed_groups`/`admin_groups`. The host's native default (`native/auth.rs`) decides the
//! same, and a property test holds the two to it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use wasmhub_policy_sdk::auth::{self, AdminChange, Allowed, AuthPolicy, Decision, Identity};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    username_claim: Option<String>,
    username_map: BTreeMap<String, String>,
    username_pattern: Option<String>,
    allow_all: bool,
    allowed_users: BTreeSet<String>,
    blocked_users: BTreeSet<String>,
    admin_users: BTreeSet<String>,
    manage_groups: bool,
    groups_claim: String,
    allowed_groups: BTreeSet<String>,
    admin_groups: BTreeSet<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            username_claim: None,
            username_map: BTreeMap::new(),
            username_pattern: None,
            allow_all: false,
            allowed_users: BTreeSet::new(),
            blocked_users: BTreeSet::new(),
            admin_users: BTreeSet::new(),
            manage_groups: false,
            groups_claim: "groups".to_owned(),
            allowed_groups: BTreeSet::new(),
            admin_groups: BTreeSet::new(),
        }
    }
}

pub struct JupyterHubRules;

impl AuthPolicy for JupyterHubRules {
    type Settings = Settings;

    fn validate_settings(settings: &Settings) -> Result<(), String> {
        if !settings.manage_groups && (!settings.allowed_groups.is_empty() || !settings.admin_groups.is_empty()) {
            return Err("allowed_groups and admin_groups need manage_groups: true".to_owned());
        }
        if let Some(pattern) = &settings.username_pattern {
            python_re_match(pattern, "")?;
        }
        Ok(())
    }

    fn authenticate(settings: &Settings, identity: Identity) -> Result<Decision, String> {
        let claims = auth::claims(&identity);
        let deny = |reason: String| Ok(Decision::Deny(reason));
        let raw_name = match &settings.username_claim {
            Some(claim) => match claims.get(claim).and_then(|value| value.as_str()) {
                Some(name) => name.to_owned(),
                None => return deny(format!("claim {claim:?} is missing")),
            },
            None => identity.username_hint.clone(),
        };
        let lowercase = raw_name.to_lowercase();
        let username = settings.username_map.get(&lowercase).cloned().unwrap_or(lowercase);
        if username.is_empty() || username.contains('/') || username.trim() != username {
            return deny(format!("invalid username {username:?}"));
        }
        if let Some(pattern) = &settings.username_pattern
            && !python_re_match(pattern, &username)?
        {
            return deny(format!("invalid username {username:?}"));
        }
        if settings.blocked_users.contains(&username) {
            return deny(format!("user {username:?} is blocked"));
        }
        let groups = if settings.manage_groups { Some(groups_from_claims(&claims, &settings.groups_claim)) } else { None };
        let user_groups = groups.as_deref().unwrap_or_default();
        let in_admin_groups = user_groups.iter().any(|group| settings.admin_groups.contains(group));
        let in_allowed_groups = user_groups.iter().any(|group| settings.allowed_groups.contains(group));
        let in_admin_users = settings.admin_users.contains(&username);
        let allowed = settings.allow_all
            || settings.allowed_users.contains(&username)
            || in_admin_users
            || in_allowed_groups
            || in_admin_groups;
        if !allowed {
            return deny(format!("user {username:?} is not allowed"));
        }
        let admin = if !settings.admin_groups.is_empty() {
            if in_admin_users || in_admin_groups { AdminChange::Grant } else { AdminChange::Revoke }
        } else if in_admin_users {
            AdminChange::Grant
        } else {
            AdminChange::LeaveUnchanged
        };
        Ok(Decision::Allow(Allowed { username, admin, groups, auth_state_json: None }))
    }
}

fn groups_from_claims(claims: &serde_json::Value, dotted_path: &str) -> Vec<String> {
    let mut value = claims;
    for key in dotted_path.split('.') {
        match value.get(key) {
            Some(inner) => value = inner,
            None => return Vec::new(),
        }
    }
    let mut groups: Vec<String> = Vec::new();
    for group in value.as_array().into_iter().flatten().filter_map(|group| group.as_str()) {
        if !groups.iter().any(|existing| existing == group) {
            groups.push(group.to_owned());
        }
    }
    groups
}

/// Python's `re.match`: anchored at the start only.
fn python_re_match(pattern: &str, text: &str) -> Result<bool, String> {
    let anchored = regex::Regex::new(&format!("^(?:{pattern})")).map_err(|error| format!("bad pattern {pattern:?}: {error}"))?;
    Ok(anchored.is_match(text))
}

wasmhub_policy_sdk::register!(auth: JupyterHubRules);
