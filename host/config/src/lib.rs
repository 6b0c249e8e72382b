//! wasmhub's configuration: one YAML file shaped like Zero-to-JupyterHub's `values.yaml` (`hub`, `proxy`,
//! `singleuser`, `cull`, `scheduling`, and `wasmhub` for what is ours), read into plain typed data.
//!
//! [`check`] reads a file and returns the [`Config`] or every problem at once, each a [`ConfigError`] with file,
//! line, column, dotted key path and, for an unknown key, the nearest valid one. Every setting is declared once
//! (with [`schema::section!`]) with its key, type, default and doc; the walk, the defaults and the reference in
//! `docs/config.md` all come from that declaration. Secrets can come from the environment ([`ENV_OVERRIDES`]).
//! A [`Config`] is plain data: tests build one with `Config::default()` and struct update syntax.

mod auth;
mod chart;
mod config;
mod docs;
mod env;
mod error;
mod hub;
mod proxy;
mod schema;
mod singleuser;
mod suggest;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::path::Path;

use saphyr::{LoadableYamlNode, MarkedYaml};

pub use auth::AuthRules;
pub use config::{
    Config, Cull, Debug, Kubernetes, Listen, LocalSpawner, LogFormat, MatchNodePurpose, NodeAffinity, NoopSpawner,
    PodPlacement, PodPriority, Policies, ProxyProcess, Scheduling, SpawnerKind, UserScheduler, Wasmhub,
};
pub use docs::{reference_markdown, values_key_tree, values_schema};
pub use env::{ENV_OVERRIDES, Env, EnvOverride, ProcessEnv};
pub use error::{ConfigError, ErrorKind, Position};
pub use hub::{
    Authenticator, AuthenticatorClass, Db, DbType, DummyAuthenticator, GenericOAuthenticator, Hub, HubConfig,
    HubService, JupyterHub, LoadRole, SharedPasswordAuthenticator, Spawner, TokenMethod,
};
pub use proxy::{
    Chp, Https, HttpsType, Letsencrypt, ManualTls, NodePorts, Proxy, ProxyService, ServiceType, TlsSecret,
};
pub use schema::OrderedMap;
pub use singleuser::{
    Choice, Cpu, DynamicStorage, ExtraResource, Image, Memory, Profile, ProfileOption, PullPolicy, Singleuser,
    SpawnerOverride, StaticStorage, Storage, StorageType, UnlistedChoice,
};
pub use values::{ByteSize, ChartOnly, Command, PythonCode};

use schema::{Ctx, FromYaml};

/// Reads the config file at `path` with the process environment's overrides; every problem is returned at
/// once, in file order. This is what `wasmhub config check` and `wasmhub serve` call.
pub fn check(path: impl AsRef<Path>) -> Result<Config, Vec<ConfigError>> {
    check_with_env(path, &ProcessEnv)
}

/// [`check`] with the environment given, for tests.
pub fn check_with_env(path: impl AsRef<Path>, env: &dyn Env) -> Result<Config, Vec<ConfigError>> {
    let path = path.as_ref();
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, &file, env),
        Err(error) => {
            let kind = ErrorKind::Io(error.to_string());
            Err(vec![ConfigError { file, position: None, path: String::new(), kind }])
        }
    }
}

/// Parses `text` as the config file named `file` (the name is only used in errors).
pub fn load_str(text: &str, file: &str, env: &dyn Env) -> Result<Config, Vec<ConfigError>> {
    let mut ctx = Ctx::new(file);
    let documents = match MarkedYaml::load_from_str(text) {
        Ok(documents) => documents,
        Err(error) => {
            let marker = error.marker();
            let position = Some(Position { line: marker.line(), column: marker.col() + 1 });
            let kind = ErrorKind::Syntax(error.info().to_owned());
            return Err(vec![ConfigError { file: file.to_owned(), position, path: String::new(), kind }]);
        }
    };
    let mut config = match documents.as_slice() {
        [] => Config::default(),
        [document, rest @ ..] => {
            for extra in rest {
                let kind = ErrorKind::Invalid("only one YAML document is allowed".to_owned());
                ctx.error_at(extra, "", kind);
            }
            Config::from_yaml(document, "", &mut ctx).unwrap_or_default()
        }
    };
    env::apply_overrides(&mut config, env);
    validate::validate(&config, &mut ctx);
    if ctx.errors.is_empty() {
        Ok(config)
    } else {
        let mut errors = ctx.errors;
        errors.sort_by_key(|error| error.position);
        Err(errors)
    }
}
