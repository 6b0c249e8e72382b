//! JupyterHub's JSON models (`APIHandler.user_model`, `server_model`, `token_model`), built by hand from store
//! records, with each key shown only to callers whose scopes allow it.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};
use wasmhub_store::{ApiToken, Group, HUB_OAUTH_CLIENT, Server, Service, Timestamp, TokenOwner, User};

use crate::scopes::{Resource, ScopeSet};

/// Python's `quote(name, safe='@~')` (`hub-contract.md` §9.12).
const URL_NAME: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~').remove(b'@');

/// JupyterHub's `isoformat`: UTC with microseconds and `Z`.
pub(crate) fn isoformat(timestamp: &Timestamp) -> String {
    // `%Y-%m-%dT%H:%M:%S%.6fZ` without parsing a format string for every timestamp of a user list.
    timestamp.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn optional_time(timestamp: Option<&Timestamp>) -> Value {
    timestamp.map_or(Value::Null, |timestamp| Value::String(isoformat(timestamp)))
}

pub(crate) fn quote_name(name: &str) -> String {
    utf8_percent_encode(name, URL_NAME).to_string()
}

/// `/user/<name>/` or `/user/<name>/<server>/` under the base URL: the server's URL and its route.
pub(crate) fn server_prefix(base_url: &str, user: &str, server: &str) -> String {
    let mut prefix = format!("{base_url}user/{}/", quote_name(user));
    if !server.is_empty() {
        prefix.push_str(&quote_name(server));
        prefix.push('/');
    }
    prefix
}

fn progress_url(base_url: &str, user: &str, server: &str) -> String {
    if server.is_empty() {
        format!("{base_url}hub/api/users/{}/server/progress", quote_name(user))
    } else {
        format!("{base_url}hub/api/users/{}/servers/{}/progress", quote_name(user), quote_name(server))
    }
}

/// The server model; `state` only for callers with `admin:server_state`.
pub(crate) fn server_model(server: &Server, base_url: &str, show_state: bool) -> Value {
    let user = server.user.as_str();
    let name = server.name.as_str();
    let mut model = json!({
        "name": name,
        "full_name": format!("{user}/{name}"),
        "last_activity": optional_time(server.last_activity.as_ref()),
        "started": optional_time(server.started.as_ref()),
        "pending": server.state.pending(),
        "ready": server.state.is_ready(),
        "stopped": !server.state.is_active(),
        "url": server_prefix(base_url, user, name),
        "user_options": serde_json::from_str::<Value>(&server.user_options).unwrap_or_else(|_| json!({})),
        "progress_url": progress_url(base_url, user, name),
        "full_url": null,
        "full_progress_url": null,
    });
    if show_state {
        model["state"] = serde_json::from_str::<Value>(&server.spawner_state).unwrap_or_else(|_| json!({}));
    }
    model
}

/// The user model with the keys `scopes` may read (`user_model`'s `access_map`); `None` if it may read none.
pub(crate) fn user_model(
    user: &User,
    servers: &[Server],
    scopes: &ScopeSet,
    include_stopped: bool,
    base_url: &str,
) -> Option<Value> {
    let name = user.name.as_str();
    let groups: Vec<String> = user.groups.iter().map(|group| group.to_string()).collect();
    let resource = Resource::User { name, groups: &groups };
    let allows = |scope: &str| scopes.allows(scope, &resource);
    let mut keys: Vec<&str> = Vec::new();
    let access: [(&str, &[&str]); 7] = [
        ("read:users", &["kind", "name", "admin", "roles", "groups", "server", "pending", "created", "last_activity"]),
        ("read:users:name", &["kind", "name", "admin"]),
        ("read:users:groups", &["kind", "name", "groups"]),
        ("read:users:activity", &["kind", "name", "last_activity"]),
        ("read:servers", &["kind", "name", "servers"]),
        ("read:roles:users", &["kind", "name", "roles", "admin"]),
        ("admin:auth_state", &["kind", "name", "auth_state"]),
    ];
    for (scope, scope_keys) in access {
        if allows(scope) {
            keys.extend(scope_keys);
        }
    }
    if keys.is_empty() {
        return None;
    }
    // Only the readable keys are built, in the order JupyterHub's model has them (`_filter_model` keeps that
    // order): a user list builds thousands of these, so nothing is made to be thrown away.
    let wanted = |key: &str| keys.contains(&key);
    let server_models = wanted("servers").then(|| {
        let mut server_models = Map::new();
        for server in servers {
            let server_resource = Resource::Server { user: name, server: server.name.as_str(), groups: &groups };
            if (include_stopped || server.state.is_active()) && scopes.allows("read:servers", &server_resource) {
                let show_state = scopes.allows("admin:server_state", &server_resource);
                server_models.insert(server.name.to_string(), server_model(server, base_url, show_state));
            }
        }
        server_models
    });
    let default_server = servers.iter().find(|server| server.name.is_default());
    let mut model = Map::new();
    model.insert("kind".into(), Value::from("user"));
    model.insert("name".into(), Value::from(name));
    if wanted("admin") {
        model.insert("admin".into(), Value::from(user.admin));
    }
    if wanted("roles") {
        let mut roles = vec!["user".to_string()];
        if user.admin {
            roles.push("admin".into());
        }
        roles.extend(user.roles.iter().map(|role| role.to_string()));
        roles.sort();
        roles.dedup();
        model.insert("roles".into(), Value::from(roles));
    }
    if wanted("groups") {
        model.insert("groups".into(), Value::from(groups));
    }
    if wanted("server") {
        let server = match default_server {
            Some(server) if server.state.is_ready() => Value::from(server_prefix(base_url, name, "")),
            _ => Value::Null,
        };
        model.insert("server".into(), server);
    }
    if wanted("pending") {
        model.insert("pending".into(), json!(default_server.and_then(|server| server.state.pending())));
    }
    if wanted("created") {
        model.insert("created".into(), Value::from(isoformat(&user.created)));
    }
    if wanted("last_activity") {
        model.insert("last_activity".into(), optional_time(user.last_activity.as_ref()));
    }
    if wanted("auth_state") {
        model.insert("auth_state".into(), Value::Null);
    }
    if let Some(server_models) = server_models {
        model.insert("servers".into(), Value::Object(server_models));
    }
    Some(Value::Object(model))
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
