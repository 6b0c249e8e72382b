//! `/users`, `/users/{name}` and `/users/{name}/activity` (`apihandlers/users.py`).

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use serde_json::{Map, Value};
use wasmhub_model::{GroupName, RoleName, ServerName, UserName};
use wasmhub_store::{
    PageRequest, RoleHolder, Server, StoreError, Timestamp, User, UserChange, UserQuery, UserSort, UserState,
};

use crate::access::caller::Caller;
use crate::access::grants;
use crate::access::scopes::Resource;
use crate::access::{find_user, group_names};
use crate::api::models::{MaybeUserModel, UserModel, user_model};
use crate::api::query::{Pagination, Query};
use crate::error::{ApiError, parse_json_body};
use crate::{Hub, empty};

/// The scopes that let a caller read some of a user (`UserAPIHandler.get`).
const READ_USER_SCOPES: &[&str] =
    &["read:users", "read:users:name", "read:servers", "read:users:groups", "read:users:activity", "read:roles:users"];

/// Keys a user model in a request may have (`_check_user_model`).
const USER_MODEL_KEYS: &[&str] = &["name", "admin", "groups", "roles", "auth_state"];

/// The user named in a path, if the name is valid and the user exists.
async fn model_for(hub: &Hub, caller: &Caller, user: &User, include_stopped: bool) -> Result<Value, ApiError> {
    // The user was just read, so the query that does not tell "no servers" from "no user" is enough.
    let servers = hub.store().list_servers_of(std::slice::from_ref(&user.name)).await?;
    let model = user_model(user, &servers, &caller.scopes, include_stopped, hub.config());
    Ok(model.unwrap_or_else(|| Value::Object(Map::new())))
}

pub(crate) async fn list_users(
    State(hub): State<Hub>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require_some(&["list:users"])?;
    let query = Query::parse(raw_query.as_deref());
    let pagination = Pagination::from_request(&query, &headers, hub.config())?;
    let state = match query.get("state") {
        None | Some("") => None,
        Some("active") => Some(UserState::Active),
        Some("ready") => Some(UserState::Ready),
        Some("inactive") => Some(UserState::Inactive),
        Some(other) => return Err(ApiError::bad_request(format!("Unrecognized state filter: '{other}'"))),
    };
    let sort_text = query.get("sort").unwrap_or("id");
    let (descending, sort_key) = match sort_text.strip_prefix('-') {
        Some(key) => (true, key),
        None => (false, sort_text),
    };
    let sort = match sort_key {
        "id" => UserSort::Id,
        "name" => UserSort::Name,
        "last_activity" => UserSort::LastActivity,
        other => {
            return Err(ApiError::bad_request(format!("sort must be one of id, name, last_activity, not {other}")));
        }
    };
    let name_filter = query.get("name_filter").filter(|text| !text.is_empty()).map(str::to_owned);
    let include_stopped = query.has("include_stopped_servers");
    let mut store_query = UserQuery { state, name_filter, sort, descending, page: PageRequest::ALL };
    let (users, total) = if caller.scopes.has_unfiltered("list:users") {
        store_query.page = PageRequest { offset: pagination.offset, limit: pagination.limit };
        let page = hub.store().list_users(&store_query).await?;
        (page.items, page.total)
    } else {
        // Filtered `list:users` (`!user=`, `!group=`): the store cannot filter by them, so filter here.
        let page = hub.store().list_users(&store_query).await?;
        let visible: Vec<User> = page
            .items
            .into_iter()
            .filter(|user| {
                let groups = group_names(Some(user));
                caller.scopes.allows("list:users", &Resource::User { name: user.name.as_str(), groups: &groups })
            })
            .collect();
        let total = visible.len() as u64;
        let slice = visible.into_iter().skip(pagination.offset as usize).take(pagination.limit as usize).collect();
        (slice, total)
    };
    // The page's servers in one query rather than one per user.
    let names: Vec<UserName> = users.iter().map(|user| user.name.clone()).collect();
    let mut servers_by_user: HashMap<UserName, Vec<Server>> = HashMap::new();
    for server in hub.store().list_servers_of(&names).await? {
        servers_by_user.entry(server.user.clone()).or_default().push(server);
    }
    // Each user's servers stay borrowed from one list; the models are written straight to the response.
    let no_servers: Vec<Server> = Vec::new();
    let config = hub.config();
    let items: Vec<MaybeUserModel<'_>> = users
        .iter()
        .map(|user| {
            let servers = servers_by_user.get(&user.name).unwrap_or(&no_servers);
            UserModel::or_empty(UserModel::new(user, servers, &caller.scopes, include_stopped, config))
        })
        .collect();
    Ok(Json(pagination.page(items, total, &uri, &headers)).into_response())
}

pub(crate) async fn get_user(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let user = find_user(&hub, &name).await?;
    let groups = group_names(user.as_ref());
    caller.require(READ_USER_SCOPES, &Resource::User { name: &name, groups: &groups })?;
    let user = user.ok_or_else(ApiError::not_found)?;
    let include_stopped = Query::parse(raw_query.as_deref()).has("include_stopped_servers");
    // The user was just read, so the query that does not tell "no servers" from "no user" is enough.
    let servers = hub.store().list_servers_of(std::slice::from_ref(&user.name)).await?;
    let model = UserModel::new(&user, &servers, &caller.scopes, include_stopped, hub.config());
    Ok(Json(UserModel::or_empty(model)).into_response())
}

/// Checks the keys and types of a user model in a request body.
fn check_user_model(body: &Map<String, Value>) -> Result<(), ApiError> {
    let unknown: Vec<&String> = body.keys().filter(|key| !USER_MODEL_KEYS.contains(&key.as_str())).collect();
    if !unknown.is_empty() {
        return Err(ApiError::bad_request(format!("Invalid JSON keys: {unknown:?}")));
    }
    let type_error = |key: &str, kind: &str| ApiError::bad_request(format!("{key} must be {kind}"));
    if body.get("name").is_some_and(|value| !value.is_string()) {
        return Err(type_error("name", "a str"));
    }
    if body.get("admin").is_some_and(|value| !value.is_boolean()) {
        return Err(type_error("admin", "a bool"));
    }
    for key in ["groups", "roles"] {
        if let Some(value) = body.get(key) {
            let is_string_list = value.as_array().is_some_and(|items| items.iter().all(Value::is_string));
            if !is_string_list {
                return Err(type_error(key, "a list of str"));
            }
        }
    }
    if body.get("auth_state").is_some_and(|value| !value.is_object() && !value.is_null()) {
        return Err(type_error("auth_state", "a dict"));
    }
    Ok(())
}

fn body_object(body: &[u8]) -> Result<Option<Map<String, Value>>, ApiError> {
    match parse_json_body(body)? {
        None => Ok(None),
        Some(Value::Object(object)) => Ok(Some(object)),
        Some(_) => Err(ApiError::bad_request("Request body must be a JSON object")),
    }
}

fn require_admin_to_grant(caller: &Caller, body: &Map<String, Value>) -> Result<(), ApiError> {
    if body.get("admin") == Some(&Value::Bool(true)) && !caller.admin {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "Only admins can grant admin permissions"));
    }
    Ok(())
}

/// Checks that the caller may give `user` the roles and groups the body lists that `user` does not have yet.
async fn require_grants_held(
    hub: &Hub,
    caller: &Caller,
    user: &str,
    current: Option<&User>,
    body: &Map<String, Value>,
) -> Result<(), ApiError> {
    for role in list_of_strings(body, "roles").unwrap_or_default() {
        if !current.is_some_and(|user| user.roles.iter().any(|held| held.as_str() == role)) {
            grants::require_role_held(hub, caller, user, &role).await?;
        }
    }
    for group in list_of_strings(body, "groups").unwrap_or_default() {
        // An unknown group is refused with its own message when the memberships are applied.
        let Ok(group) = GroupName::parse(&group) else { continue };
        if !current.is_some_and(|user| user.groups.contains(&group)) {
            grants::require_membership_held(hub, caller, user, &group).await?;
        }
    }
    Ok(())
}

fn list_of_strings(body: &Map<String, Value>, key: &str) -> Option<Vec<String>> {
    body.get(key)?.as_array().map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
}

pub(crate) async fn create_user(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&["admin:users"], &Resource::User { name: &name, groups: &[] })?;
    let body = body_object(&body)?.unwrap_or_default();
    check_user_model(&body)?;
    require_admin_to_grant(&caller, &body)?;
    require_grants_held(&hub, &caller, &name, None, &body).await?;
    let user_name = UserName::parse(&name).map_err(|_| ApiError::bad_request(format!("Invalid username: {name}")))?;
    let admin = body.get("admin").and_then(Value::as_bool).unwrap_or(false);
    let user = match hub.store().create_user(&user_name, admin).await {
        Ok(user) => user,
        Err(StoreError::Conflict { .. }) => {
            return Err(ApiError::new(StatusCode::CONFLICT, format!("User {name} already exists")));
        }
        Err(other) => return Err(other.into()),
    };
    let user = apply_memberships(&hub, user, &body).await?;
    Ok((StatusCode::CREATED, Json(model_for(&hub, &caller, &user, false).await?)).into_response())
}

pub(crate) async fn create_users(State(hub): State<Hub>, caller: Caller, body: Bytes) -> Result<Response, ApiError> {
    // No resource is named, so a filtered `admin:users` is 403 as in JupyterHub 5.5.1, not the 404 of a miss.
    caller.require_unfiltered(&["admin:users"])?;
    let body = body_object(&body)?.unwrap_or_default();
    let usernames = body
        .get("usernames")
        .and_then(Value::as_array)
        .filter(|items| items.iter().all(Value::is_string))
        .ok_or_else(|| ApiError::bad_request("Must specify at least one user to create"))?;
    if body.get("admin").is_some_and(|value| !value.is_boolean()) {
        return Err(ApiError::bad_request("admin must be a bool"));
    }
    require_admin_to_grant(&caller, &body)?;
    let admin = body.get("admin").and_then(Value::as_bool).unwrap_or(false);
    let mut names = Vec::new();
    let mut invalid = Vec::new();
    for text in usernames.iter().filter_map(Value::as_str) {
        match UserName::parse(text) {
            Ok(name) if !names.contains(&name) => names.push(name),
            Ok(_) => {}
            Err(_) => invalid.push(text.to_owned()),
        }
    }
    if !invalid.is_empty() {
        return Err(ApiError::bad_request(format!("Invalid usernames: {invalid:?}")));
    }
    if names.is_empty() {
        return Err(ApiError::bad_request("Must specify at least one user to create"));
    }
    let mut created = Vec::new();
    for name in &names {
        match hub.store().create_user(name, admin).await {
            Ok(user) => created.push(user),
            Err(StoreError::Conflict { .. }) => {}
            Err(other) => return Err(other.into()),
        }
    }
    if created.is_empty() {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("All {} users already exist", names.len())));
    }
    let mut models = Vec::with_capacity(created.len());
    for user in &created {
        models.push(model_for(&hub, &caller, user, false).await?);
    }
    Ok((StatusCode::CREATED, Json(Value::Array(models))).into_response())
}

/// Applies `groups` and `roles` of a user model: the user ends up in exactly the listed ones.
async fn apply_memberships(hub: &Hub, user: User, body: &Map<String, Value>) -> Result<User, ApiError> {
    let store = hub.store();
    if let Some(wanted) = list_of_strings(body, "groups") {
        let mut wanted_names = Vec::new();
        for group in &wanted {
            let name = GroupName::parse(group).map_err(|_| ApiError::bad_request(format!("No such group: {group}")))?;
            store.get_group(&name).await.map_err(|error| match error {
                StoreError::NotFound { .. } => ApiError::bad_request(format!("No such group: {group}")),
                other => other.into(),
            })?;
            wanted_names.push(name);
        }
        for group in &user.groups {
            if !wanted_names.contains(group) {
                store.remove_group_members(group, std::slice::from_ref(&user.name)).await?;
            }
        }
        for group in &wanted_names {
            store.add_group_members(group, std::slice::from_ref(&user.name)).await?;
        }
    }
    if let Some(wanted) = list_of_strings(body, "roles") {
        let holder = RoleHolder::User(user.name.clone());
        let mut wanted_names = Vec::new();
        for role in &wanted {
            let name = RoleName::parse(role).map_err(|_| ApiError::bad_request(format!("No such role: {role}")))?;
            store.get_role(&name).await.map_err(|error| match error {
                StoreError::NotFound { .. } => ApiError::bad_request(format!("No such role: {role}")),
                other => other.into(),
            })?;
            wanted_names.push(name);
        }
        for role in &user.roles {
            if !wanted_names.contains(role) {
                store.unassign_role(role, &holder).await?;
            }
        }
        for role in &wanted_names {
            store.assign_role(role, &holder).await?;
        }
    }
    Ok(store.get_user(&user.name).await?)
}

pub(crate) async fn patch_user(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = find_user(&hub, &name).await?;
    let groups = group_names(user.as_ref());
    caller.require(&["admin:users"], &Resource::User { name: &name, groups: &groups })?;
    let user = user.ok_or_else(ApiError::not_found)?;
    let body = body_object(&body)?.unwrap_or_default();
    check_user_model(&body)?;
    require_admin_to_grant(&caller, &body)?;
    grants::require_admin_for_admin(&caller, &user)?;
    require_grants_held(&hub, &caller, &name, Some(&user), &body).await?;
    if body.get("auth_state").is_some_and(|value| !value.is_null()) {
        return Err(ApiError::bad_request("auth_state is not stored by this hub"));
    }
    let mut change = UserChange { name: None, admin: body.get("admin").and_then(Value::as_bool) };
    if let Some(new_name) = body.get("name").and_then(Value::as_str)
        && new_name != user.name.as_str()
    {
        let parsed =
            UserName::parse(new_name).map_err(|_| ApiError::bad_request(format!("Invalid username: {new_name}")))?;
        if find_user(&hub, new_name).await?.is_some() {
            return Err(ApiError::bad_request(format!("User {new_name} already exists, username must be unique")));
        }
        change.name = Some(parsed);
    }
    let user = match hub.store().update_user(&user.name, &change).await {
        Ok(user) => user,
        Err(StoreError::Conflict { .. }) => {
            return Err(ApiError::bad_request("User already exists, username must be unique"));
        }
        Err(other) => return Err(other.into()),
    };
    let user = apply_memberships(&hub, user, &body).await?;
    Ok(Json(model_for(&hub, &caller, &user, false).await?).into_response())
}

pub(crate) async fn delete_user(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let user = find_user(&hub, &name).await?;
    let groups = group_names(user.as_ref());
    caller.require(&["delete:users"], &Resource::User { name: &name, groups: &groups })?;
    let user = user.ok_or_else(ApiError::not_found)?;
    if caller.user_name() == Some(user.name.as_str()) {
        return Err(ApiError::bad_request("Cannot delete yourself!"));
    }
    grants::require_admin_for_admin(&caller, &user)?;
    for server in hub.store().list_servers(Some(&user.name)).await? {
        if server.state.is_active() {
            crate::spawns::stop_for_delete(&hub, &server).await.map_err(|error| match error {
                crate::spawns::StopError::Refused(reason) => ApiError::bad_request(reason),
                other => ApiError::internal(other),
            })?;
        }
    }
    hub.store().delete_user(&user.name).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Parses a client's activity timestamp: ISO 8601 with an offset, or naive (taken as UTC, as JupyterHub does).
fn parse_timestamp(value: &Value) -> Result<Timestamp, ApiError> {
    let invalid = || ApiError::bad_request(format!("Invalid timestamp: {value}"));
    let text = value.as_str().ok_or_else(invalid)?;
    let parsed = DateTime::parse_from_rfc3339(text)
        .map(|timestamp| timestamp.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|naive| naive.and_utc()))
        .map_err(|_| invalid())?;
    if parsed - Utc::now() > TimeDelta::minutes(59) {
        return Err(ApiError::bad_request(format!("last_activity {text} is more than an hour in the future")));
    }
    Ok(parsed)
}

pub(crate) async fn post_activity(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = find_user(&hub, &name).await?;
    let groups = group_names(user.as_ref());
    caller.require(&["users:activity"], &Resource::User { name: &name, groups: &groups })?;
    let user = user.ok_or_else(ApiError::not_found)?;
    let body = body_object(&body)?.unwrap_or_default();
    let user_activity = body.get("last_activity").filter(|value| !value.is_null()).map(parse_timestamp).transpose()?;
    let servers = match body.get("servers") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(servers)) => servers.clone(),
        Some(_) => return Err(ApiError::bad_request("servers must be a dict")),
    };
    if user_activity.is_none() && servers.is_empty() {
        return Err(ApiError::bad_request("body must contain at least one of `last_activity` or `servers`"));
    }
    let mut server_activity: Vec<(Server, Timestamp)> = Vec::new();
    for (server_name, info) in &servers {
        let no_such = || ApiError::bad_request(format!("No such server '{server_name}' for user {name}"));
        let parsed_name = ServerName::parse(server_name).map_err(|_| no_such())?;
        let server = match hub.store().get_server(&user.name, &parsed_name).await {
            Ok(server) => server,
            Err(StoreError::NotFound { .. }) => return Err(no_such()),
            Err(other) => return Err(other.into()),
        };
        let resource = Resource::Server { user: &name, server: server_name, groups: &groups };
        if !caller.scopes.allows("users:activity", &resource) {
            return Err(ApiError::not_found_filtered());
        }
        let at = info
            .get("last_activity")
            .ok_or_else(|| ApiError::bad_request(format!("server {server_name} must have last_activity")))
            .and_then(parse_timestamp)?;
        server_activity.push((server, at));
    }
    if let Some(at) = user_activity {
        hub.store().record_user_activity(&user.name, at).await?;
    }
    for (server, at) in server_activity {
        hub.store().record_server_activity(&user.name, &server.name, at).await?;
    }
    Ok(empty(StatusCode::OK))
}
