//! `/_wasmhub/login-lockouts`: the login lockouts in force (`login/throttle.rs`), and lifting one. wasmhub's own
//! resource (JupyterHub has no login throttling), under `_wasmhub` so that it cannot collide with JupyterHub's paths.
//! Both need `admin:users` without a filter: a lockout is about names that may not even be users.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::access::caller::Caller;
use crate::api::models::isoformat;
use crate::api::query::Query;
use crate::error::ApiError;
use crate::login::throttle::{LoginThrottle, ThrottleKey};
use crate::{Hub, empty};

pub(crate) async fn list_lockouts(State(hub): State<Hub>, caller: Caller) -> Result<Response, ApiError> {
    caller.require_unfiltered(&["admin:users"])?;
    let lockouts: Vec<Value> = hub
        .login_throttle()
        .lockouts()
        .into_iter()
        .map(|lockout| {
            let (kind, key) = match lockout.key {
                ThrottleKey::User(name) => ("user", name),
                ThrottleKey::Address(address) => ("address", address.to_string()),
            };
            json!({ "kind": kind, "key": key, "failures": lockout.failures, "until": isoformat(&lockout.until) })
        })
        .collect();
    Ok(Json(json!({ "lockouts": lockouts })).into_response())
}

/// `?user=<name>` or `?address=<ip>`: lifts that lockout and forgets its failures.
pub(crate) async fn delete_lockout(
    State(hub): State<Hub>,
    caller: Caller,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require_unfiltered(&["admin:users"])?;
    let query = Query::parse(raw_query.as_deref());
    let key = match (query.get("user"), query.get("address")) {
        (Some(user), None) => LoginThrottle::user_key(user),
        (None, Some(address)) => ThrottleKey::Address(
            address.parse().map_err(|_| ApiError::bad_request(format!("Invalid address: {address}")))?,
        ),
        _ => return Err(ApiError::bad_request("Give exactly one of ?user= or ?address=")),
    };
    if !hub.login_throttle().unlock(&key) {
        return Err(ApiError::not_found());
    }
    tracing::info!(key = ?key, by = ?caller.owner, "login lockout lifted");
    Ok(empty(StatusCode::NO_CONTENT))
}
