//! Environment variables that override secrets, so that a file without secrets can be committed.

use std::collections::{BTreeMap, HashMap};

use crate::Config;

/// Where environment variables come from: the process, or a map in tests.
pub trait Env {
    /// The variable's value; an empty value counts as unset.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|value| !value.is_empty()).cloned()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|value| !value.is_empty()).cloned()
    }
}

/// One variable and the key it overrides.
pub struct EnvOverride {
    pub var: &'static str,
    /// The dotted key it replaces.
    pub key: &'static str,
    apply: fn(&mut Config, String),
}

/// Every variable that overrides a key; a set variable wins over the file.
pub const ENV_OVERRIDES: &[EnvOverride] = &[
    EnvOverride {
        var: "WASMHUB_PROXY_SECRET_TOKEN",
        key: "proxy.secretToken",
        apply: |config, value| config.proxy.secret_token = Some(value),
    },
    EnvOverride {
        var: "WASMHUB_COOKIE_SECRET",
        key: "hub.cookieSecret",
        apply: |config, value| config.hub.cookie_secret = Some(value),
    },
    EnvOverride { var: "WASMHUB_DB_URL", key: "hub.db.url", apply: |config, value| config.hub.db.url = Some(value) },
    EnvOverride {
        var: "WASMHUB_DB_PASSWORD",
        key: "hub.db.password",
        apply: |config, value| config.hub.db.password = Some(value),
    },
    EnvOverride {
        var: "WASMHUB_DUMMY_PASSWORD",
        key: "hub.config.DummyAuthenticator.password",
        apply: |config, value| config.hub.config.dummy_authenticator.password = Some(value),
    },
    EnvOverride {
        var: "WASMHUB_USER_PASSWORD",
        key: "hub.config.SharedPasswordAuthenticator.user_password",
        apply: |config, value| config.hub.config.shared_password_authenticator.user_password = Some(value),
    },
    EnvOverride {
        var: "WASMHUB_ADMIN_PASSWORD",
        key: "hub.config.SharedPasswordAuthenticator.admin_password",
        apply: |config, value| config.hub.config.shared_password_authenticator.admin_password = Some(value),
    },
    EnvOverride {
        var: "WASMHUB_OAUTH_CLIENT_SECRET",
        key: "hub.config.GenericOAuthenticator.client_secret",
        apply: |config, value| config.hub.config.generic_oauthenticator.client_secret = Some(value),
    },
];

/// Applies every set variable of [`ENV_OVERRIDES`] to `config`.
pub(crate) fn apply_overrides(config: &mut Config, env: &dyn Env) {
    for entry in ENV_OVERRIDES {
        if let Some(value) = env.var(entry.var) {
            (entry.apply)(config, value);
        }
    }
}
