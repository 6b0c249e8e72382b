//! `/groups`, `/groups/{name}`, `/groups/{name}/users` and `/groups/{name}/properties` (`apihandlers/groups.py`).
//!
//! Messages, status codes and quirks follow JupyterHub 5.5: creating an existing group is 409 (groups created
//! earlier in the same `POST /groups` stay created), an unknown member is 400, and the paginated `total` of a list
//! filtered by `!group=` still counts every group, as JupyterHub's `full_query.count()` does.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use wasmhub_model::{GroupName, UserName};
use wasmhub_store::{Group, PageRequest, StoreError};

use crate::access::caller::Caller;
use crate::access::grants;
use crate::access::scopes::Resource;
use crate::api::models::group_model;
use crate::api::query::{Pagination, Query};
use crate::error::{ApiError, parse_json_body, python_repr, python_type};
use crate::{Hub, empty};

/// The keys and types a group model in a request may have (`_group_model_types`).
const GROUP_MODEL_TYPES: &[(&str, &str)] = &[("name", "str"), ("users", "list"), ("roles", "list")];

impl Caller {
    /// Any one of `names` for a hub-wide action. JupyterHub's `needs_scope` has no resource to match a filter
    /// against here, so a filtered scope is as good as none: 403, never the 404 of a filtered resource.
    pub(crate) fn require_unfiltered(&self, names: &[&str]) -> Result<(), ApiError> {
        self.require_global(names).map_err(|error| {
            if error.status != StatusCode::NOT_FOUND {
                return error;
            }
            let quoted: Vec<String> = names.iter().map(|name| format!("'{name}'")).collect();
            ApiError::new(
                StatusCode::FORBIDDEN,
                format!("Action is not authorized with current scopes; requires any of [{}]", quoted.join(", ")),
            )
        })
    }
}

fn no_such_group(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("No such group: {name}"))
}

async fn find_group(hub: &Hub, name: &str) -> Result<Group, ApiError> {
    let parsed = GroupName::parse(name).map_err(|_| no_such_group(name))?;
    match hub.store().get_group(&parsed).await {
        Ok(group) => Ok(group),
        Err(StoreError::NotFound { .. }) => Err(no_such_group(name)),
        Err(other) => Err(other.into()),
    }
}

/// `_check_group_model`: an object whose keys are known and of the right type.
fn check_group_model(model: &Value) -> Result<&Map<String, Value>, ApiError> {
    let Value::Object(object) = model else {
        return Err(ApiError::bad_request(format!("Invalid JSON data: {}", python_repr(model))));
    };
    if object.keys().any(|key| !GROUP_MODEL_TYPES.iter().any(|(known, _)| known == key)) {
        return Err(ApiError::bad_request(format!("Invalid JSON keys: {}", python_repr(model))));
    }
    for (key, expected) in GROUP_MODEL_TYPES {
        let Some(value) = object.get(*key) else { continue };
        let fits = match *expected {
            "str" => value.is_string(),
            _ => value.is_array(),
        };
        if !fits {
            return Err(ApiError::bad_request(format!(
                "group.{key} must be <class '{expected}'>, not: {}",
                python_type(value)
            )));
        }
    }
    Ok(object)
}

/// `_usernames_to_users`: every name must be an existing user.
async fn existing_users(hub: &Hub, names: Option<&Value>) -> Result<Vec<UserName>, ApiError> {
    let mut users = Vec::new();
    for value in names.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        let text = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
        let no_such = || ApiError::bad_request(format!("No such user: {text}"));
        let name = UserName::parse(&text).map_err(|_| no_such())?;
        match hub.store().get_user(&name).await {
            Ok(user) => users.push(user.name),
            Err(StoreError::NotFound { .. }) => return Err(no_such()),
            Err(other) => return Err(other.into()),
        }
    }
    Ok(users)
}

/// Creates one group with its members; an existing group is JupyterHub's 409.
async fn create_group(hub: &Hub, name: &str, users: &[UserName]) -> Result<Group, ApiError> {
    let conflict = || ApiError::new(StatusCode::CONFLICT, format!("Group {name} already exists"));
    let parsed = GroupName::parse(name).map_err(|_| ApiError::bad_request(format!("Invalid group name: {name}")))?;
    let group = match hub.store().create_group(&parsed).await {
        Ok(group) => group,
        Err(StoreError::Conflict { .. }) => return Err(conflict()),
        Err(other) => return Err(other.into()),
    };
    if users.is_empty() {
        return Ok(group);
    }
    Ok(hub.store().add_group_members(&parsed, users).await?)
}

pub(crate) async fn list_groups(
    State(hub): State<Hub>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require_some(&["list:groups"])?;
    let pagination = Pagination::from_request(&Query::parse(raw_query.as_deref()), &headers, hub.config())?;
    let page = PageRequest { offset: pagination.offset, limit: pagination.limit };
    let (groups, total) = if caller.scopes.has_unfiltered("list:groups") {
        let found = hub.store().list_groups(page).await?;
        (found.items, found.total)
    } else {
        let all = hub.store().list_groups(PageRequest::ALL).await?;
        let visible = all
            .items
            .into_iter()
            .filter(|group| caller.scopes.allows("list:groups", &Resource::Group { name: group.name.as_str() }))
            .skip(page.offset as usize)
            .take(page.limit as usize)
            .collect();
        (visible, all.total)
    };
    let items: Vec<Value> = groups.iter().map(|group| group_model(group, &caller.scopes)).collect();
    Ok(Json(pagination.respond(items, total, &uri, &headers)).into_response())
}

pub(crate) async fn create_groups(State(hub): State<Hub>, caller: Caller, body: Bytes) -> Result<Response, ApiError> {
    caller.require_unfiltered(&["admin:groups"])?;
    let missing = || ApiError::bad_request("Must specify at least one group to create");
    let mut model = match parse_json_body(&body)? {
        Some(Value::Object(model)) => model,
        _ => return Err(missing()),
    };
    let names = match model.remove("groups") {
        Some(Value::Array(names)) if !names.is_empty() => names,
        _ => return Err(missing()),
    };
    let model = Value::Object(model);
    let model = check_group_model(&model)?;
    let mut created = Vec::with_capacity(names.len());
    for name in &names {
        // One group at a time, as JupyterHub commits them: a conflict or unknown user stops the rest.
        let name = name.as_str().map(str::to_owned).unwrap_or_else(|| name.to_string());
        if find_group(&hub, &name).await.is_ok() {
            return Err(ApiError::new(StatusCode::CONFLICT, format!("Group {name} already exists")));
        }
        let users = existing_users(&hub, model.get("users")).await?;
        created.push(create_group(&hub, &name, &users).await?);
    }
    let models: Vec<Value> = created.iter().map(|group| group_model(group, &caller.scopes)).collect();
    Ok((StatusCode::CREATED, Json(Value::Array(models))).into_response())
}

pub(crate) async fn get_group(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(&["read:groups", "read:groups:name", "read:roles:groups"], &Resource::Group { name: &name })?;
    let group = find_group(&hub, &name).await?;
    Ok(Json(group_model(&group, &caller.scopes)).into_response())
}

pub(crate) async fn create_group_named(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&["admin:groups"], &Resource::Group { name: &name })?;
    let model = parse_json_body(&body)?.unwrap_or_else(|| Value::Object(Map::new()));
    let model = check_group_model(&model)?;
    if find_group(&hub, &name).await.is_ok() {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("Group {name} already exists")));
    }
    let users = existing_users(&hub, model.get("users")).await?;
    let group = create_group(&hub, &name, &users).await?;
    Ok((StatusCode::CREATED, Json(group_model(&group, &caller.scopes))).into_response())
}

pub(crate) async fn delete_group(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(&["delete:groups"], &Resource::Group { name: &name })?;
    let group = find_group(&hub, &name).await?;
    hub.store().delete_group(&group.name).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// The `users` of a membership change; JupyterHub checks the model, then that `users` is there.
fn membership_body(body: &[u8], verb: &str) -> Result<Value, ApiError> {
    let model = parse_json_body(body)?.unwrap_or(Value::Null);
    let object = check_group_model(&model)?;
    match object.get("users") {
        Some(users) => Ok(users.clone()),
        None => Err(ApiError::bad_request(format!("Must specify users to {verb}"))),
    }
}

pub(crate) async fn add_group_users(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&["groups"], &Resource::Group { name: &name })?;
    let group = find_group(&hub, &name).await?;
    let users = existing_users(&hub, Some(&membership_body(&body, "add")?)).await?;
    for user in users.iter().filter(|user| !group.users.contains(user)) {
        grants::require_membership_held(&hub, &caller, user.as_str(), &group.name).await?;
    }
    let group = if users.is_empty() { group } else { hub.store().add_group_members(&group.name, &users).await? };
    Ok(Json(group_model(&group, &caller.scopes)).into_response())
}

pub(crate) async fn remove_group_users(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&["groups"], &Resource::Group { name: &name })?;
    let group = find_group(&hub, &name).await?;
    let users = existing_users(&hub, Some(&membership_body(&body, "delete")?)).await?;
    let group = if users.is_empty() { group } else { hub.store().remove_group_members(&group.name, &users).await? };
    Ok(Json(group_model(&group, &caller.scopes)).into_response())
}

pub(crate) async fn put_group_properties(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&["groups"], &Resource::Group { name: &name })?;
    let group = find_group(&hub, &name).await?;
    let properties = match parse_json_body(&body)? {
        Some(properties @ Value::Object(_)) => properties,
        _ => return Err(ApiError::bad_request("Must specify properties")),
    };
    let group = hub.store().set_group_properties(&group.name, &properties.to_string()).await?;
    Ok(Json(group_model(&group, &caller.scopes)).into_response())
}

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use serde_json::json;

    use crate::tests::{call, call_with, test_hub, user_with_token};

    #[tokio::test]
    async fn groups_are_created_listed_changed_and_deleted() {
        let hub = test_hub().await;
        let admin = Some(hub.admin_token.as_str());
        for name in ["alice", "bob"] {
            user_with_token(&hub.store, name, false, &["inherit"]).await;
        }
        let body = json!({ "groups": ["staff", "students"], "users": ["alice"] }).to_string();
        let created = call(&hub.app, Method::POST, "/hub/api/groups", admin, Some(&body)).await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(
            created.json(),
            json!([
                { "kind": "group", "name": "staff", "roles": [], "users": ["alice"], "properties": {} },
                { "kind": "group", "name": "students", "roles": [], "users": ["alice"], "properties": {} },
            ])
        );
        let message = call(&hub.app, Method::POST, "/hub/api/groups", admin, Some(&body)).await.assert_error(409);
        assert_eq!(message, "Group staff already exists");
        let one = call(&hub.app, Method::POST, "/hub/api/groups/tas", admin, None).await;
        assert_eq!(one.status, 201, "{}", one.text);
        assert_eq!(one.json()["users"], json!([]));
        call(&hub.app, Method::POST, "/hub/api/groups/tas", admin, None).await.assert_error(409);

        let added =
            call(&hub.app, Method::POST, "/hub/api/groups/tas/users", admin, Some(r#"{"users": ["bob", "alice"]}"#))
                .await;
        assert_eq!(added.status, 200, "{}", added.text);
        assert_eq!(added.json()["users"], json!(["alice", "bob"]));
        // Membership shows in the user model.
        let bob = call(&hub.app, Method::GET, "/hub/api/users/bob", admin, None).await.json();
        assert_eq!(bob["groups"], json!(["tas"]));
        let removed =
            call(&hub.app, Method::DELETE, "/hub/api/groups/tas/users", admin, Some(r#"{"users": ["alice"]}"#)).await;
        assert_eq!(removed.json()["users"], json!(["bob"]));
        let properties =
            call(&hub.app, Method::PUT, "/hub/api/groups/tas/properties", admin, Some(r#"{"gpu": true}"#)).await;
        assert_eq!(properties.status, 200);
        assert_eq!(properties.json()["properties"], json!({ "gpu": true }));
        let got = call(&hub.app, Method::GET, "/hub/api/groups/tas", admin, None).await;
        assert_eq!(
            got.json(),
            json!({ "kind": "group", "name": "tas", "roles": [], "users": ["bob"], "properties": { "gpu": true } })
        );

        let accept = ("accept", "application/jupyterhub-pagination+json");
        let host = ("host", "hub.example.org");
        let page = call_with(&hub.app, Method::GET, "/hub/api/groups?limit=2", admin, None, &[accept, host]).await;
        let page = page.json();
        assert_eq!(page["items"].as_array().unwrap().len(), 2);
        assert_eq!(page["_pagination"]["total"], 3);
        assert_eq!(page["_pagination"]["next"]["url"], "http://hub.example.org/hub/api/groups?limit=2&offset=2");
        let plain = call(&hub.app, Method::GET, "/hub/api/groups", admin, None).await.json();
        let names: Vec<&str> = plain.as_array().unwrap().iter().map(|group| group["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["staff", "students", "tas"]);

        let deleted = call(&hub.app, Method::DELETE, "/hub/api/groups/tas", admin, None).await;
        assert_eq!(deleted.status, 204);
        let message = call(&hub.app, Method::GET, "/hub/api/groups/tas", admin, None).await.assert_error(404);
        assert_eq!(message, "No such group: tas");
        let bob = call(&hub.app, Method::GET, "/hub/api/users/bob", admin, None).await.json();
        assert_eq!(bob["groups"], json!([]));
    }

    #[tokio::test]
    async fn bad_group_requests_get_jupyterhubs_messages() {
        let hub = test_hub().await;
        let admin = Some(hub.admin_token.as_str());
        let cases = [
            (Method::POST, "/hub/api/groups", None, "Must specify at least one group to create"),
            (Method::POST, "/hub/api/groups", Some(r#"{"groups": []}"#), "Must specify at least one group to create"),
            (
                Method::POST,
                "/hub/api/groups",
                Some(r#"{"groups": ["x"], "users": ["nobody"]}"#),
                "No such user: nobody",
            ),
            (
                Method::POST,
                "/hub/api/groups/x",
                Some(r#"{"users": "alice"}"#),
                "group.users must be <class 'list'>, not: <class 'str'>",
            ),
            (Method::POST, "/hub/api/groups/x", Some(r#"{"shoe": 1}"#), "Invalid JSON keys: {'shoe': 1}"),
        ];
        for (method, uri, body, expected) in cases {
            let message = call(&hub.app, method, uri, admin, body).await.assert_error(400);
            assert_eq!(message, expected, "{uri} {body:?}");
        }
        call(&hub.app, Method::POST, "/hub/api/groups/x", admin, None).await;
        let cases = [
            (Method::POST, "/hub/api/groups/x/users", None, "Invalid JSON data: None"),
            (Method::POST, "/hub/api/groups/x/users", Some("{}"), "Must specify users to add"),
            (Method::DELETE, "/hub/api/groups/x/users", Some("{}"), "Must specify users to delete"),
            (Method::PUT, "/hub/api/groups/x/properties", Some("[]"), "Must specify properties"),
        ];
        for (method, uri, body, expected) in cases {
            let message = call(&hub.app, method, uri, admin, body).await.assert_error(400);
            assert_eq!(message, expected, "{uri} {body:?}");
        }
        call(&hub.app, Method::POST, "/hub/api/groups/nope/users", admin, Some(r#"{"users": []}"#))
            .await
            .assert_error(404);
        call(&hub.app, Method::DELETE, "/hub/api/groups/nope", admin, None).await.assert_error(404);
    }

    #[tokio::test]
    async fn group_filters_reach_only_their_group() {
        let hub = test_hub().await;
        let admin = Some(hub.admin_token.as_str());
        call(&hub.app, Method::POST, "/hub/api/groups", admin, Some(r#"{"groups": ["a", "b", "c"]}"#)).await;
        let scoped = user_with_token(
            &hub.store,
            "admin",
            true,
            &["list:groups!group=b", "groups!group=b", "read:groups!group=b"],
        )
        .await;
        let list = call(&hub.app, Method::GET, "/hub/api/groups", Some(&scoped), None).await.json();
        assert_eq!(list, json!([{ "kind": "group", "name": "b", "users": [], "properties": {} }]));
        let accept = ("accept", "application/jupyterhub-pagination+json");
        let page = call_with(&hub.app, Method::GET, "/hub/api/groups", Some(&scoped), None, &[accept]).await.json();
        assert_eq!(page["_pagination"]["total"], 3, "JupyterHub counts every group");
        assert_eq!(call(&hub.app, Method::GET, "/hub/api/groups/b", Some(&scoped), None).await.status, 200);
        let message = call(&hub.app, Method::GET, "/hub/api/groups/a", Some(&scoped), None).await.assert_error(404);
        assert_eq!(message, "No access to resources or resources not found");
        call(&hub.app, Method::PUT, "/hub/api/groups/a/properties", Some(&scoped), Some("{}")).await.assert_error(404);
        // A filtered admin:groups cannot create groups at all: 403, as JupyterHub has no group to match.
        let filtered_admin = user_with_token(&hub.store, "admin", true, &["admin:groups!group=b"]).await;
        let message =
            call(&hub.app, Method::POST, "/hub/api/groups", Some(&filtered_admin), Some(r#"{"groups": ["d"]}"#))
                .await
                .assert_error(403);
        assert_eq!(message, "Action is not authorized with current scopes; requires any of ['admin:groups']");
        let names_only = user_with_token(&hub.store, "admin", true, &["read:groups:name"]).await;
        let model = call(&hub.app, Method::GET, "/hub/api/groups/c", Some(&names_only), None).await.json();
        assert_eq!(model, json!({ "kind": "group", "name": "c" }));
        call(&hub.app, Method::GET, "/hub/api/groups", None, None).await.assert_error(403);
    }
}
