//! Who may log in and who is admin: `Authenticator` merged with the chosen authenticator's own section, with
//! JupyterHub 5's rules (`jupyterhub/auth.py` `get_authenticated_user`, `app.py` `init_users`).

use std::collections::BTreeSet;

use crate::Config;
use crate::hub::AuthenticatorClass;

/// The effective allow/admin/block lists of the configured authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRules {
    pub class: AuthenticatorClass,
    /// Normalised (lowercased) names.
    pub admin_users: BTreeSet<String>,
    /// Normalised names; admins are included when the configured list was not empty, as JupyterHub does.
    pub allowed_users: BTreeSet<String>,
    pub blocked_users: BTreeSet<String>,
    /// Whether every authenticated user passes the allow check.
    pub allow_all: bool,
    /// Whether users already in the database pass the allow check (and so users an admin adds may log in).
    pub allow_existing_users: bool,
    /// Whether the login page redirects straight to the identity provider.
    pub auto_login: bool,
}

impl AuthRules {
    /// Whether an authenticated `username` passes JupyterHub's checks: blocked first, then `allow_all`, then
    /// the allowed list (OAuth also lets admins in).
    pub fn is_allowed(&self, username: &str) -> bool {
        let name = normalise(username);
        if self.blocked_users.contains(&name) {
            return false;
        }
        if self.allow_all || self.allowed_users.contains(&name) {
            return true;
        }
        self.class == AuthenticatorClass::GenericOauth && self.admin_users.contains(&name)
    }

    /// Whether `username` is made admin at login (`admin_users` only grants; it never revokes).
    pub fn is_admin(&self, username: &str) -> bool {
        self.admin_users.contains(&normalise(username))
    }
}

/// JupyterHub's default `normalize_username`: lowercase.
fn normalise(name: &str) -> String {
    name.to_lowercase()
}

fn set(names: &[String]) -> BTreeSet<String> {
    names.iter().map(|name| normalise(name)).collect()
}

impl Config {
    /// The authenticator's effective rules. A key set on the class's own section (`GenericOAuthenticator.admin_users`)
    /// wins over `Authenticator`, as traitlets gives the more specific class priority.
    pub fn auth_rules(&self) -> AuthRules {
        let config = &self.hub.config;
        let base = &config.authenticator;
        let class = config.jupyterhub.authenticator_class;
        let (admin, allowed, blocked, allow_all, allow_existing, auto_login) = match class {
            AuthenticatorClass::Dummy => {
                let own = &config.dummy_authenticator;
                (&own.admin_users, &own.allowed_users, &own.blocked_users, own.allow_all, None, None)
            }
            AuthenticatorClass::SharedPassword => {
                let own = &config.shared_password_authenticator;
                (&own.admin_users, &own.allowed_users, &None, own.allow_all, None, None)
            }
            AuthenticatorClass::GenericOauth => {
                let own = &config.generic_oauthenticator;
                let list = (&own.admin_users, &own.allowed_users, &own.blocked_users);
                (list.0, list.1, list.2, own.allow_all, own.allow_existing_users, own.auto_login)
            }
        };
        let admin_users = set(admin.as_deref().unwrap_or(&base.admin_users));
        let configured_allowed = set(allowed.as_deref().unwrap_or(&base.allowed_users));
        let blocked_users = set(blocked.as_deref().unwrap_or(&base.blocked_users));
        let allow_all = allow_all.or(base.allow_all).unwrap_or(match class {
            // DummyAuthenticator's `_allow_all_default`: True unless allowed_users is set.
            AuthenticatorClass::Dummy => configured_allowed.is_empty(),
            _ => false,
        });
        let allow_existing_users = allow_existing.or(base.allow_existing_users).unwrap_or(match class {
            AuthenticatorClass::GenericOauth => false,
            _ => !configured_allowed.is_empty(),
        });
        let mut allowed_users = configured_allowed;
        if !allowed_users.is_empty() {
            allowed_users.extend(admin_users.iter().cloned());
        }
        AuthRules {
            class,
            admin_users,
            allowed_users,
            blocked_users,
            allow_all,
            allow_existing_users,
            auto_login: auto_login.unwrap_or(base.auto_login),
        }
    }
}
