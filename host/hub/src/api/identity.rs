//! `GET /hub/api/user` (`apihandlers/users.py SelfAPIHandler`): who the credential belongs to. Single-user servers
//! call it for every token and OAuth cookie they see (`hub-contract.md` §2.4), so an unknown or expired credential
//! must be a 403, which they read as "not a valid token".

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use wasmhub_model::UserName;

use crate::Hub;
use crate::access::caller::{Caller, Credential};
use crate::access::scopes::Owner;
use crate::api::models::user_model;
use crate::error::ApiError;

pub(crate) async fn get_self(State(hub): State<Hub>, caller: Caller) -> Result<Response, ApiError> {
    let forbidden = || ApiError::new(StatusCode::FORBIDDEN, "Forbidden");
    let mut model = match &caller.owner {
        None => return Err(forbidden()),
        Some(Owner::User(name)) => {
            let name = UserName::parse(name).map_err(|_| forbidden())?;
            let user = hub.store().get_user(&name).await?;
            let servers = hub.store().list_servers(Some(&name)).await?;
            user_model(&user, &servers, &caller.scopes, false, hub.config())
                .unwrap_or_else(|| Value::Object(Map::new()))
        }
        Some(Owner::Service(name)) => json!({ "kind": "service", "name": name, "admin": caller.admin }),
    };
    let (token_id, session_id) = match &caller.credential {
        Credential::None => (Value::Null, Value::Null),
        Credential::Token { id, session_id } => (json!(id.to_string()), json!(session_id)),
        Credential::Cookie { session_id } => (Value::Null, json!(session_id)),
    };
    if let Value::Object(fields) = &mut model {
        fields.insert("token_id".into(), token_id);
        fields.insert("session_id".into(), session_id);
        fields.insert("scopes".into(), json!(caller.scopes.to_strings()));
    }
    Ok(Json(model).into_response())
}
