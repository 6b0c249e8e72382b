//! JupyterHub's JSON models (`APIHandler.user_model`, `server_model`, `token_model`), built by hand from store
//! records, with each key shown only to callers whose scopes allow it.

use percent_encoding::utf8_percent_encode;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};
use wasmhub_store::{ApiToken, Group, HUB_OAUTH_CLIENT, Server, Service, Timestamp, TokenOwner, User};

use crate::access::scopes::{Resource, ScopeSet};
use crate::urls::URL_NAME;

/// JupyterHub's `isoformat`: UTC with microseconds and `Z`.
pub(crate) fn isoformat(timestamp: &Timestamp) -> String {
    // `%Y-%m-%dT%H:%M:%S%.6fZ` without parsing a format string for every timestamp of a user list.
    timestamp.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// [`isoformat`] written straight to the output (a user list has thousands of timestamps).
struct IsoTime<'a>(&'a Timestamp);

impl std::fmt::Display for IsoTime<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use chrono::{Datelike, Timelike};
        let time = self.0;
        // chrono writes other years with a sign and leap seconds as :60; those rare cases take its own path.
        if !(0..=9999).contains(&time.year()) || time.nanosecond() >= 1_000_000_000 {
            return f.write_str(&isoformat(time));
        }
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            time.year(),
            time.month(),
            time.day(),
            time.hour(),
            time.minute(),
            time.second(),
            time.nanosecond() / 1_000
        )
    }
}

impl Serialize for IsoTime<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// [`crate::urls::server_url`] (`url`), or with `progress` the server's `progress_url`, written straight to the
/// output.
struct ServerUrl<'a> {
    config: &'a crate::HubConfig,
    user: &'a str,
    server: &'a str,
    progress: bool,
}

impl std::fmt::Display for ServerUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let base_url = &self.config.base_url;
        if !self.progress
            && let Some(host) = &self.config.subdomain_host
        {
            f.write_str(&host.user_origin(self.user))?;
        }
        let user = utf8_percent_encode(self.user, URL_NAME);
        let server = utf8_percent_encode(self.server, URL_NAME);
        match (self.progress, self.server.is_empty()) {
            (false, true) => write!(f, "{base_url}user/{user}/"),
            (false, false) => write!(f, "{base_url}user/{user}/{server}/"),
            (true, true) => write!(f, "{base_url}hub/api/users/{user}/server/progress"),
            (true, false) => write!(f, "{base_url}hub/api/users/{user}/servers/{server}/progress"),
        }
    }
}

impl Serialize for ServerUrl<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn optional_time(timestamp: Option<&Timestamp>) -> Value {
    timestamp.map_or(Value::Null, |timestamp| Value::String(isoformat(timestamp)))
}

/// The server model, with `state` only for callers with `admin:server_state`, written straight to the output: a user list holds hundreds of them, and building each as a
/// `Value` first (an ordered map of owned keys) cost more than the rest of the request.
struct ServerModel<'a> {
    server: &'a Server,
    config: &'a crate::HubConfig,
    show_state: bool,
}

impl Serialize for ServerModel<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let server = self.server;
        let (user, name) = (server.user.as_str(), server.name.as_str());
        let mut map = serializer.serialize_map(Some(if self.show_state { 13 } else { 12 }))?;
        map.serialize_entry("name", name)?;
        map.serialize_entry("full_name", &format_args!("{user}/{name}"))?;
        map.serialize_entry("last_activity", &server.last_activity.as_ref().map(IsoTime))?;
        map.serialize_entry("started", &server.started.as_ref().map(IsoTime))?;
        map.serialize_entry("pending", &server.state.pending())?;
        map.serialize_entry("ready", &server.state.is_ready())?;
        map.serialize_entry("stopped", &!server.state.is_active())?;
        map.serialize_entry("url", &ServerUrl { config: self.config, user, server: name, progress: false })?;
        map.serialize_entry("user_options", &JsonObjectText(&server.user_options))?;
        map.serialize_entry("progress_url", &ServerUrl { config: self.config, user, server: name, progress: true })?;
        map.serialize_entry("full_url", &())?;
        map.serialize_entry("full_progress_url", &())?;
        if self.show_state {
            map.serialize_entry("state", &JsonObjectText(&server.spawner_state))?;
        }
        map.end()
    }
}

/// A JSON object kept as text in the store, written as its parsed value (so as compact, key order kept), or `{}`
/// if it does not parse. The common `{}` is written without parsing.
struct JsonObjectText<'a>(&'a str);

impl Serialize for JsonObjectText<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == "{}" {
            return serializer.serialize_map(Some(0))?.end();
        }
        match serde_json::from_str::<Value>(self.0) {
            Ok(value) => value.serialize(serializer),
            Err(_) => serializer.serialize_map(Some(0))?.end(),
        }
    }
}

/// The keys of a user model, as bits; which ones a caller may read follows `user_model`'s `access_map`.
mod user_key {
    pub(super) const ADMIN: u16 = 1;
    pub(super) const ROLES: u16 = 1 << 1;
    pub(super) const GROUPS: u16 = 1 << 2;
    pub(super) const SERVER: u16 = 1 << 3;
    pub(super) const PENDING: u16 = 1 << 4;
    pub(super) const CREATED: u16 = 1 << 5;
    pub(super) const LAST_ACTIVITY: u16 = 1 << 6;
    pub(super) const AUTH_STATE: u16 = 1 << 7;
    pub(super) const SERVERS: u16 = 1 << 8;
}

/// The user model with the keys `scopes` may read (`user_model`'s `access_map`); `None` if it may read none.
pub(crate) fn user_model(
    user: &User,
    servers: &[Server],
    scopes: &ScopeSet,
    include_stopped: bool,
    config: &crate::HubConfig,
) -> Option<Value> {
    UserModel::new(user, servers, scopes, include_stopped, config)
        .map(|model| serde_json::to_value(model).unwrap_or_else(|_| json!({})))
}

/// A user model (see [`user_model`]) that is written straight to the output rather than built as a `Value`.
pub(crate) struct UserModel<'a> {
    user: &'a User,
    servers: &'a [Server],
    scopes: &'a ScopeSet,
    include_stopped: bool,
    config: &'a crate::HubConfig,
    groups: Vec<String>,
    keys: u16,
}

impl<'a> UserModel<'a> {
    /// `None` if `scopes` may read no key of the user.
    pub(crate) fn new(
        user: &'a User,
        servers: &'a [Server],
        scopes: &'a ScopeSet,
        include_stopped: bool,
        config: &'a crate::HubConfig,
    ) -> Option<UserModel<'a>> {
        use user_key::*;
        let groups: Vec<String> = user.groups.iter().map(|group| group.to_string()).collect();
        let resource = Resource::User { name: user.name.as_str(), groups: &groups };
        // `kind` and `name` come with every scope, so the bits hold only the others.
        let access: [(&str, u16); 7] = [
            ("read:users", ADMIN | ROLES | GROUPS | SERVER | PENDING | CREATED | LAST_ACTIVITY),
            ("read:users:name", ADMIN),
            ("read:users:groups", GROUPS),
            ("read:users:activity", LAST_ACTIVITY),
            ("read:servers", SERVERS),
            ("read:roles:users", ROLES | ADMIN),
            ("admin:auth_state", AUTH_STATE),
        ];
        let mut keys = 0;
        let mut any = false;
        for (scope, scope_keys) in access {
            if scopes.allows(scope, &resource) {
                keys |= scope_keys;
                any = true;
            }
        }
        any.then_some(UserModel { user, servers, scopes, include_stopped, config, groups, keys })
    }

    /// An empty object for callers that may read nothing of the user (JupyterHub's filtered model).
    pub(crate) fn or_empty(model: Option<UserModel<'a>>) -> MaybeUserModel<'a> {
        MaybeUserModel(model)
    }
}

/// A [`UserModel`], or `{}` for a user the caller may read nothing of.
pub(crate) struct MaybeUserModel<'a>(Option<UserModel<'a>>);

impl Serialize for MaybeUserModel<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(model) => model.serialize(serializer),
            None => serializer.serialize_map(Some(0))?.end(),
        }
    }
}

impl Serialize for UserModel<'_> {
    /// The readable keys only, in the order JupyterHub's model has them (`_filter_model` keeps that order).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use user_key::*;
        let (user, config) = (self.user, self.config);
        let name = user.name.as_str();
        let wanted = |key: u16| self.keys & key != 0;
        let default_server = self.servers.iter().find(|server| server.name.is_default());
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("kind", "user")?;
        map.serialize_entry("name", name)?;
        if wanted(ADMIN) {
            map.serialize_entry("admin", &user.admin)?;
        }
        if wanted(ROLES) {
            let mut roles: Vec<&str> = Vec::with_capacity(user.roles.len() + 2);
            roles.push("user");
            if user.admin {
                roles.push("admin");
            }
            roles.extend(user.roles.iter().map(|role| role.as_str()));
            roles.sort_unstable();
            roles.dedup();
            map.serialize_entry("roles", &roles)?;
        }
        if wanted(GROUPS) {
            map.serialize_entry("groups", &self.groups)?;
        }
        if wanted(SERVER) {
            let server = match default_server {
                Some(server) if server.state.is_ready() => {
                    Some(ServerUrl { config, user: name, server: "", progress: false })
                }
                _ => None,
            };
            map.serialize_entry("server", &server)?;
        }
        if wanted(PENDING) {
            map.serialize_entry("pending", &default_server.and_then(|server| server.state.pending()))?;
        }
        if wanted(CREATED) {
            map.serialize_entry("created", &IsoTime(&user.created))?;
        }
        if wanted(LAST_ACTIVITY) {
            map.serialize_entry("last_activity", &user.last_activity.as_ref().map(IsoTime))?;
        }
        if wanted(AUTH_STATE) {
            map.serialize_entry("auth_state", &())?;
        }
        if wanted(SERVERS) {
            map.serialize_entry("servers", &ServerModels(self))?;
        }
        map.end()
    }
}

/// A user's `servers`: the ones the caller may read, by name.
struct ServerModels<'a, 'b>(&'b UserModel<'a>);

impl Serialize for ServerModels<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let model = self.0;
        let name = model.user.name.as_str();
        let mut map = serializer.serialize_map(None)?;
        for server in model.servers {
            let server_resource = Resource::Server { user: name, server: server.name.as_str(), groups: &model.groups };
            if (model.include_stopped || server.state.is_active())
                && model.scopes.allows("read:servers", &server_resource)
            {
                let show_state = model.scopes.allows("admin:server_state", &server_resource);
                map.serialize_entry(server.name.as_str(), &ServerModel { server, config: model.config, show_state })?;
            }
        }
        map.end()
    }
}

/// The token model; `scopes` are the token's effective scopes.
pub(crate) fn token_model(token: &ApiToken, scopes: Vec<String>) -> Value {
    let mut model = json!({
        "id": token.id.to_string(),
        "kind": "api_token",
        "roles": [],
        "scopes": scopes,
        "created": isoformat(&token.created),
        "last_activity": optional_time(token.last_activity.as_ref()),
        "expires_at": optional_time(token.expires_at.as_ref()),
        "note": token.note,
        "session_id": token.session_id,
        "oauth_client": if token.client_id == HUB_OAUTH_CLIENT { "JupyterHub" } else { token.client_id.as_str() },
    });
    match &token.owner {
        TokenOwner::User(user) => model["user"] = json!(user.as_str()),
        TokenOwner::Service(service) => model["service"] = json!(service.as_str()),
    }
    model
}

/// Keeps the keys of `full` that some scope of `access` allows for `resource` (`_filter_model`).
fn filtered(full: Value, access: &[(&str, &[&str])], scopes: &ScopeSet, resource: &Resource<'_>) -> Value {
    let Value::Object(full) = full else { return full };
    let keys: Vec<&str> = access
        .iter()
        .filter(|(scope, _)| scopes.allows(scope, resource))
        .flat_map(|(_, keys)| keys.iter().copied())
        .collect();
    Value::Object(full.into_iter().filter(|(key, _)| keys.contains(&key.as_str())).collect())
}

/// The group model (`group_model`), with the keys `scopes` may read.
pub(crate) fn group_model(group: &Group, scopes: &ScopeSet) -> Value {
    let properties = serde_json::from_str::<Value>(&group.properties).unwrap_or_else(|_| json!({}));
    let full = json!({
        "kind": "group",
        "name": group.name.as_str(),
        "roles": group.roles.iter().map(|role| role.as_str()).collect::<Vec<_>>(),
        "users": group.users.iter().map(|user| user.as_str()).collect::<Vec<_>>(),
        "properties": properties,
    });
    let access: [(&str, &[&str]); 3] = [
        ("read:groups", &["kind", "name", "properties", "users"]),
        ("read:groups:name", &["kind", "name"]),
        ("read:roles:groups", &["kind", "name", "roles"]),
    ];
    filtered(full, &access, scopes, &Resource::Group { name: group.name.as_str() })
}

/// The service model (`service_model`). The store knows a service's name, admin flag and roles; what JupyterHub
/// reads from a running `Service` object (URL, command, pid, info) is shown as JupyterHub shows it for a service
/// without a process or URL.
pub(crate) fn service_model(service: &Service, scopes: &ScopeSet) -> Value {
    let mut roles: Vec<String> = service.roles.iter().map(|role| role.to_string()).collect();
    if service.admin {
        roles.push("admin".into());
    }
    roles.sort();
    roles.dedup();
    let full = json!({
        "kind": "service",
        "name": service.name.as_str(),
        "roles": roles,
        "admin": service.admin,
        "url": "",
        "prefix": "",
        "command": [],
        "pid": 0,
        "info": {},
        "display": true,
    });
    let access: [(&str, &[&str]); 3] = [
        ("read:services", &["kind", "name", "admin", "url", "prefix", "command", "pid", "info", "display"]),
        ("read:services:name", &["kind", "name", "admin"]),
        ("read:roles:services", &["kind", "name", "roles", "admin"]),
    ];
    filtered(full, &access, scopes, &Resource::Service { name: service.name.as_str() })
}

#[cfg(test)]
mod tests {
    use crate::urls::{quote_name, server_url};
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn timestamps_and_urls_written_in_place_match_the_owned_forms() {
        let times = [
            Utc.with_ymd_and_hms(2026, 11, 27, 0, 1, 2).unwrap(),
            Utc.timestamp_micros(1_795_000_000_123_456).unwrap(),
            Utc.timestamp_micros(0).unwrap(),
            Utc.with_ymd_and_hms(12345, 1, 1, 0, 0, 0).unwrap(),
            Utc.timestamp_opt(1_019, 1_999_999_999).unwrap(),
        ];
        for time in &times {
            assert_eq!(IsoTime(time).to_string(), isoformat(time));
        }
        let plain = crate::HubConfig { base_url: "/base/".into(), ..crate::HubConfig::default() };
        let subdomains = crate::HubConfig {
            subdomain_host: Some(crate::SubdomainHost::parse("https://hub.example.org").unwrap()),
            ..plain.clone()
        };
        for (user, server) in [("alice", ""), ("a b@c~d/é", "gpu 1"), ("x", "named")] {
            let on_host = ServerUrl { config: &subdomains, user, server, progress: false };
            assert_eq!(on_host.to_string(), server_url(&subdomains, user, server));
            let url = ServerUrl { config: &plain, user, server, progress: false };
            assert_eq!(url.to_string(), server_url(&plain, user, server));
            let progress = ServerUrl { progress: true, ..url }.to_string();
            let expected = if server.is_empty() {
                format!("/base/hub/api/users/{}/server/progress", quote_name(user))
            } else {
                format!("/base/hub/api/users/{}/servers/{}/progress", quote_name(user), quote_name(server))
            };
            assert_eq!(progress, expected);
        }
    }
}
