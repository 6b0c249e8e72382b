//! JupyterHub's login rules: username normalisation and validation, then blocked, allowed and admin users, and
//! OAuthenticator's group rules (`manage_groups`, `allowed_groups`, `admin_groups`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::hooks::{AdminChange, AuthDecision, Identity};

/// JupyterHub `Authenticator` (and `OAuthenticator`) options with their JupyterHub meaning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Take the username from this claim instead of the authenticator's hint (OAuthenticator `username_claim`).
    pub username_claim: Option<String>,
    /// Applied after lowercasing (`username_map`).
    pub username_map: BTreeMap<String, String>,
    /// A regex the normalised name must match at its start (`username_pattern`, Python `re.match`).
    pub username_pattern: Option<String>,
    /// Everyone who authenticates may log in (`allow_all`; off by default since JupyterHub 5).
    pub allow_all: bool,
    pub allowed_users: BTreeSet<String>,
    /// Checked before every allow rule.
    pub blocked_users: BTreeSet<String>,
    /// Can only grant admin, never revoke it, unless `admin_groups` is set.
    pub admin_users: BTreeSet<String>,
    /// Take the user's groups from the claims (`manage_groups`).
    pub manage_groups: bool,
    /// Dotted path of the groups claim (`auth_state_groups_key`, relative to the claims).
    pub groups_claim: String,
    pub allowed_groups: BTreeSet<String>,
    /// When set, admin is exactly `admin_users` plus members of these groups: others lose admin.
    pub admin_groups: BTreeSet<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
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

impl AuthSettings {
    /// JupyterHub refuses group rules without `manage_groups`; so do we, and a bad pattern.
    pub fn validate(&self) -> Result<(), String> {
        if !self.manage_groups && (!self.allowed_groups.is_empty() || !self.admin_groups.is_empty()) {
            return Err("allowed_groups and admin_groups need manage_groups: true".to_owned());
        }
        if let Some(pattern) = &self.username_pattern {
            super::python_re_match(pattern, "")?;
        }
        Ok(())
    }
}

/// Decides a login. `Err` means the settings are unusable (a bad pattern), never a refusal.
pub fn authenticate(settings: &AuthSettings, identity: &Identity) -> Result<AuthDecision, String> {
    let deny = |reason: String| Ok(AuthDecision::Deny { reason });
    let raw_name = match &settings.username_claim {
        Some(claim) => match identity.claims.get(claim).and_then(|value| value.as_str()) {
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
        && !super::python_re_match(pattern, &username)?
    {
        return deny(format!("invalid username {username:?}"));
    }
    if settings.blocked_users.contains(&username) {
        return deny(format!("user {username:?} is blocked"));
    }
    let groups =
        if settings.manage_groups { Some(groups_from_claims(&identity.claims, &settings.groups_claim)) } else { None };
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
    Ok(AuthDecision::Allow { username, admin, groups, auth_state: None })
}

/// The strings at a dotted path of the claims, in order, without duplicates; anything else counts as no groups.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(hint: &str, claims: serde_json::Value) -> Identity {
        Identity { provider: "test".into(), subject: hint.into(), username_hint: hint.into(), claims }
    }

    fn allowed_name(decision: AuthDecision) -> (String, AdminChange) {
        match decision {
            AuthDecision::Allow { username, admin, .. } => (username, admin),
            AuthDecision::Deny { reason } => panic!("denied: {reason}"),
        }
    }

    #[test]
    fn nobody_logs_in_without_allow_config() {
        let decision = authenticate(&AuthSettings::default(), &identity("alice", serde_json::json!({}))).unwrap();
        assert_eq!(decision, AuthDecision::Deny { reason: "user \"alice\" is not allowed".into() });
    }

    #[test]
    fn names_are_lowercased_then_mapped() {
        let settings = AuthSettings {
            allow_all: true,
            username_map: [("bob".to_owned(), "robert".to_owned())].into(),
            ..AuthSettings::default()
        };
        let (name, admin) = allowed_name(authenticate(&settings, &identity("BoB", serde_json::json!({}))).unwrap());
        assert_eq!((name.as_str(), admin), ("robert", AdminChange::LeaveUnchanged));
    }

    #[test]
    fn blocked_wins_over_admin_and_bad_names_are_refused() {
        let settings = AuthSettings {
            admin_users: ["eve".to_owned()].into(),
            blocked_users: ["eve".to_owned()].into(),
            allow_all: true,
            ..AuthSettings::default()
        };
        assert!(matches!(
            authenticate(&settings, &identity("eve", serde_json::json!({}))).unwrap(),
            AuthDecision::Deny { .. }
        ));
        for bad in ["", "a/b", " alice", "alice "] {
            assert!(matches!(
                authenticate(&settings, &identity(bad, serde_json::json!({}))).unwrap(),
                AuthDecision::Deny { .. }
            ));
        }
    }

    #[test]
    fn admin_users_only_grant_but_admin_groups_also_revoke() {
        let mut settings =
            AuthSettings { admin_users: ["root".to_owned()].into(), allow_all: true, ..AuthSettings::default() };
        let claims = serde_json::json!({"realm": {"groups": ["staff", "staff"]}});
        assert_eq!(
            allowed_name(authenticate(&settings, &identity("root", claims.clone())).unwrap()).1,
            AdminChange::Grant
        );
        assert_eq!(
            allowed_name(authenticate(&settings, &identity("al", claims.clone())).unwrap()).1,
            AdminChange::LeaveUnchanged
        );
        settings.manage_groups = true;
        settings.groups_claim = "realm.groups".into();
        settings.admin_groups = ["staff".to_owned()].into();
        let decision = authenticate(&settings, &identity("al", claims.clone())).unwrap();
        assert_eq!(
            decision,
            AuthDecision::Allow {
                username: "al".into(),
                admin: AdminChange::Grant,
                groups: Some(vec!["staff".into()]),
                auth_state: None
            }
        );
        let outsider = authenticate(&settings, &identity("bo", serde_json::json!({}))).unwrap();
        assert_eq!(allowed_name(outsider).1, AdminChange::Revoke);
    }

    #[test]
    fn username_pattern_uses_python_match_semantics() {
        let settings =
            AuthSettings { allow_all: true, username_pattern: Some("[a-z]+".into()), ..AuthSettings::default() };
        assert!(matches!(
            authenticate(&settings, &identity("abc1", serde_json::json!({}))).unwrap(),
            AuthDecision::Allow { .. }
        ));
        assert!(matches!(
            authenticate(&settings, &identity("1abc", serde_json::json!({}))).unwrap(),
            AuthDecision::Deny { .. }
        ));
    }
}
