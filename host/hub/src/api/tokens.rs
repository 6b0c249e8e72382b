//! `/users/{name}/tokens` and `/users/{name}/tokens/{id}` (`apihandlers/users.py UserTokenListAPIHandler`,
//! `UserTokenAPIHandler`). A token's plaintext appears once, in the answer to the POST that created it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use wasmhub_model::{TokenId, TokenKind, UserName};
use wasmhub_store::{ApiToken, HUB_OAUTH_CLIENT, NewApiToken, StoreError, TokenOwner, User};

use crate::access::caller::{Caller, groups_for_filters, owner_scopes, role_scopes, token_scopes};
use crate::access::scopes::{Owner, Resource, ScopeSet};
use crate::access::{find_user, group_names};
use crate::api::models::token_model;
use crate::error::{ApiError, parse_json_body};
use crate::{Hub, empty};

async fn authorized_user(hub: &Hub, caller: &Caller, name: &str, scope: &str) -> Result<User, ApiError> {
    let user = find_user(hub, name).await?;
    let groups = group_names(user.as_ref());
    caller.require(&[scope], &Resource::User { name, groups: &groups })?;
    user.ok_or_else(ApiError::not_found)
}

/// The user a new token is for. JupyterHub's `UserTokenListAPIHandler.post` has no scope decorator: whenever the
/// caller may not make tokens for `name`, whether or not such a user exists (even for an admin), it answers 403,
/// never the decorator's 404, with the message below.
async fn token_creation_target(hub: &Hub, caller: &Caller, name: &str) -> Result<User, ApiError> {
    let user = find_user(hub, name).await?;
    let groups = group_names(user.as_ref());
    let allowed = caller.require(&["tokens"], &Resource::User { name, groups: &groups });
    match (user, allowed) {
        (Some(user), Ok(())) => Ok(user),
        // No or invalid credentials: the usual answer.
        (_, Err(error)) if caller.owner.is_none() => Err(error),
        _ => {
            let kind = if matches!(caller.owner, Some(Owner::Service(_))) { "Service" } else { "User" };
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("{kind} {name} not found or no permissions to generate tokens"),
            ))
        }
    }
}

/// The token model with the token's effective scopes.
async fn model(hub: &Hub, token: &ApiToken) -> Result<Value, ApiError> {
    let owner = match &token.owner {
        TokenOwner::User(name) => Owner::User(name.to_string()),
        TokenOwner::Service(name) => Owner::Service(name.to_string()),
    };
    let (owner_set, _) = owner_scopes(hub, &owner).await?;
    let scopes = token_scopes(hub, &token.scopes, &owner, &owner_set).await?;
    Ok(token_model(token, scopes.to_strings()))
}

async fn user_token(hub: &Hub, user: &UserName, token_id: &str) -> Result<ApiToken, ApiError> {
    let id = TokenId::parse(token_id).map_err(|_| ApiError::not_found())?;
    let token = match hub.store().get_api_token(id).await {
        Ok(token) => token,
        Err(StoreError::NotFound { .. }) => return Err(ApiError::not_found()),
        Err(other) => return Err(other.into()),
    };
    let expired = token.expires_at.is_some_and(|expires| expires <= Utc::now());
    if token.owner != TokenOwner::User(user.clone()) || expired {
        return Err(ApiError::not_found());
    }
    Ok(token)
}

pub(crate) async fn list_tokens(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let user = authorized_user(&hub, &caller, &name, "read:tokens").await?;
    let tokens = hub.store().list_api_tokens(&TokenOwner::User(user.name.clone())).await?;
    let mut models = Vec::with_capacity(tokens.len());
    for token in &tokens {
        models.push(model(&hub, token).await?);
    }
    Ok(Json(json!({ "api_tokens": models })).into_response())
}

pub(crate) async fn get_token(
    State(hub): State<Hub>,
    caller: Caller,
    Path((name, token_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let user = authorized_user(&hub, &caller, &name, "read:tokens").await?;
    let token = user_token(&hub, &user.name, &token_id).await?;
    Ok(Json(model(&hub, &token).await?).into_response())
}

pub(crate) async fn delete_token(
    State(hub): State<Hub>,
    caller: Caller,
    Path((name, token_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let user = authorized_user(&hub, &caller, &name, "tokens").await?;
    let token = user_token(&hub, &user.name, &token_id).await?;
    if token.client_id == HUB_OAUTH_CLIENT {
        hub.store().delete_api_token(token.id).await?;
    } else {
        // Revoking an OAuth token revokes the user's every token from that client, as JupyterHub does.
        for other in hub.store().list_api_tokens(&token.owner).await? {
            if other.client_id == token.client_id {
                hub.store().delete_api_token(other.id).await?;
            }
        }
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(crate) async fn create_token(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = token_creation_target(&hub, &caller, &name).await?;
    let body = match parse_json_body(&body)? {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(object)) => object,
        Some(_) => return Err(ApiError::bad_request("Request body must be a JSON object")),
    };
    let note = match body.get("note") {
        None | Some(Value::Null) => match caller.user_name() {
            Some(requester) if requester != user.name.as_str() => format!("Requested via api by user {requester}"),
            _ => "Requested via api".to_owned(),
        },
        Some(Value::String(note)) => note.clone(),
        Some(_) => return Err(ApiError::bad_request("note must be a string")),
    };
    let expires_at = match body.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_i64() {
            Some(seconds) if seconds > 0 && seconds <= i64::from(i32::MAX) => {
                Some(Utc::now() + TimeDelta::seconds(seconds))
            }
            _ => return Err(ApiError::bad_request("expires_in must be a positive integer or null")),
        },
    };
    let strings = |key: &str| -> Result<Option<Vec<String>>, ApiError> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                Ok(Some(items.iter().filter_map(Value::as_str).map(str::to_owned).collect()))
            }
            Some(_) => Err(ApiError::bad_request(format!("{key} must be a list of strings"))),
        }
    };
    let (requested_scopes, requested_roles) = (strings("scopes")?, strings("roles")?);
    let scopes = match (requested_scopes, requested_roles) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("Specify only one of scopes or roles, not both")),
        (Some(scopes), None) => scopes,
        (None, Some(roles)) => {
            let mut scopes = Vec::new();
            for role in &roles {
                let role_scopes = role_scopes(&hub, role).await?;
                if role_scopes.is_empty() {
                    return Err(ApiError::bad_request(format!("No such role: {role}")));
                }
                scopes.extend(role_scopes);
            }
            scopes
        }
        (None, None) => vec!["inherit".to_owned()],
    };
    for scope in &scopes {
        let known = wasmhub_model::Scope::parse(scope).is_ok_and(|parsed| parsed.is_known());
        if !known {
            return Err(ApiError::bad_request(format!("Invalid scope: {scope}")));
        }
    }
    // A token may not carry scopes its owner does not hold.
    let owner = Owner::User(user.name.to_string());
    let (owner_set, _) = owner_scopes(&hub, &owner).await?;
    let mut not_held = Vec::new();
    for scope in &scopes {
        let asked = ScopeSet::expand(std::slice::from_ref(scope), &owner, Some(&owner_set));
        let groups = groups_for_filters(&hub, &asked, &owner_set).await?;
        if owner_set.covers(&asked, &groups).is_err() {
            not_held.push(scope.as_str());
        }
    }
    if !not_held.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Not assigning requested scopes {} not held by User {}",
            not_held.join(", "),
            user.name
        )));
    }
    let new = NewApiToken {
        owner: TokenOwner::User(user.name.clone()),
        kind: TokenKind::Api,
        supplied: None,
        scopes,
        note,
        expires_at,
        session_id: None,
        client_id: HUB_OAUTH_CLIENT.to_owned(),
    };
    let (token, plaintext) = hub.store().create_api_token(&new).await?;
    let mut model = model(&hub, &token).await?;
    model["token"] = json!(plaintext.as_str());
    Ok((StatusCode::CREATED, Json(model)).into_response())
}
