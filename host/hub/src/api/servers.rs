//! `POST`/`DELETE /users/{name}/server` and `/users/{name}/servers/{server_name}`
//! (`apihandlers/users.py UserServerAPIHandler`): the scope check and JupyterHub's body rules, then the spawn
//! service, whose outcome becomes JupyterHub's status code.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use wasmhub_model::ServerName;
use wasmhub_store::StoreError;

use crate::access::caller::Caller;
use crate::access::scopes::Resource;
use crate::access::{find_user, group_names};
use crate::error::{ApiError, parse_json_body};
use crate::spawns::{self, StartError, StartOutcome, StopError, StopOutcome};
use crate::{Hub, empty};

pub(crate) async fn start_default(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    start(hub, caller, name, String::new(), body, false).await
}

pub(crate) async fn start_named(
    State(hub): State<Hub>,
    caller: Caller,
    Path((name, server_name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    start(hub, caller, name, server_name, body, true).await
}

pub(crate) async fn stop_default(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    stop(hub, caller, name, String::new(), body, false).await
}

pub(crate) async fn stop_named(
    State(hub): State<Hub>,
    caller: Caller,
    Path((name, server_name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    stop(hub, caller, name, server_name, body, true).await
}

async fn start(
    hub: Hub,
    caller: Caller,
    name: String,
    server_name: String,
    body: Bytes,
    named: bool,
) -> Result<Response, ApiError> {
    let user = find_user(&hub, &name).await?;
    let groups = group_names(user.as_ref());
    caller.require(&["servers"], &Resource::Server { user: &name, server: &server_name, groups: &groups })?;
    let user = user.ok_or_else(ApiError::not_found)?;
    if named && !hub.config().allow_named_servers {
        return Err(ApiError::bad_request("Named servers are not enabled."));
    }
    let server_key = ServerName::parse(&server_name)
        .map_err(|_| ApiError::bad_request(format!("Invalid server_name: {server_name}")))?;
    // The body *is* `user_options`; no body reuses the previous options.
    let user_options = match parse_json_body(&body)? {
        None | Some(Value::Null) => None,
        Some(Value::Object(options)) => Some(options),
        Some(_) => return Err(ApiError::bad_request("user_options must be a dict")),
    };
    match spawns::start(&hub, &user, &server_key, user_options, hub.config().slow_spawn_timeout).await {
        Ok(StartOutcome::Running) => Ok(empty(StatusCode::CREATED)),
        Ok(StartOutcome::Pending) => Ok(empty(StatusCode::ACCEPTED)),
        Err(StartError::ProfileRefused(reason) | StartError::Refused(reason)) => Err(ApiError::bad_request(reason)),
        Err(error @ StartError::TooManyActive) => Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, error.to_string())),
        Err(error @ StartError::Failed(_)) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())),
        Err(StartError::Store(error)) => Err(error.into()),
        Err(error @ StartError::Panicked(_)) => Err(ApiError::internal(error)),
    }
}

async fn stop(
    hub: Hub,
    caller: Caller,
    name: String,
    server_name: String,
    body: Bytes,
    named: bool,
) -> Result<Response, ApiError> {
    let user = find_user(&hub, &name).await?;
    let groups = group_names(user.as_ref());
    caller.require(&["delete:servers"], &Resource::Server { user: &name, server: &server_name, groups: &groups })?;
    let user = user.ok_or_else(ApiError::not_found)?;
    if named && !hub.config().allow_named_servers {
        return Err(ApiError::bad_request("Named servers are not enabled."));
    }
    // The culler sends `{"remove": true}` without a Content-Type, so the body is parsed regardless.
    let remove = match parse_json_body(&body)? {
        None | Some(Value::Null) => false,
        Some(Value::Object(options)) => match options.get("remove") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(remove)) => *remove,
            Some(_) => return Err(ApiError::bad_request("remove must be a bool")),
        },
        Some(_) => return Err(ApiError::bad_request("Request body must be a JSON object")),
    };
    if remove && !named {
        return Err(ApiError::bad_request("Cannot delete the default server"));
    }
    let no_such = || ApiError::new(StatusCode::NOT_FOUND, format!("{name} has no server named '{server_name}'"));
    let server_key = ServerName::parse(&server_name).map_err(|_| no_such())?;
    let server = match hub.store().get_server(&user.name, &server_key).await {
        Ok(server) => server,
        Err(StoreError::NotFound { .. }) if !named => return Ok(empty(StatusCode::NO_CONTENT)),
        Err(StoreError::NotFound { .. }) => return Err(no_such()),
        Err(other) => return Err(other.into()),
    };
    match spawns::stop(&hub, server, remove, hub.config().slow_stop_timeout).await {
        Ok(StopOutcome::Stopped) => Ok(empty(StatusCode::NO_CONTENT)),
        Ok(StopOutcome::Pending) => Ok(empty(StatusCode::ACCEPTED)),
        Err(StopError::Refused(reason)) => Err(ApiError::bad_request(reason)),
        Err(StopError::Store(error)) => Err(error.into()),
        Err(error @ (StopError::Failed(_) | StopError::Panicked(_))) => Err(ApiError::internal(error)),
    }
}
