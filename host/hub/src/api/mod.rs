//! JupyterHub's REST API at `/hub/api`: one module per resource, each handler asking `Caller::require` before it
//! answers, and JupyterHub's JSON built by hand in `models.rs`. Starting and stopping servers goes through the
//! spawn service; this room only turns its outcomes into status codes.

#[cfg(test)]
mod authz_matrix;
pub(crate) mod groups;
pub(crate) mod identity;
pub(crate) mod lockouts;
pub(crate) mod models;
pub(crate) mod progress;
pub(crate) mod proxy;
pub(crate) mod query;
pub(crate) mod servers;
pub(crate) mod services;
pub(crate) mod shutdown;
pub(crate) mod tokens;
pub(crate) mod users;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::access::caller::Caller;
use crate::error::ApiError;
use crate::{Hub, JUPYTERHUB_VERSION, empty, metrics, oauth, openapi};

/// The routes under `/hub/api`, nested there by [`crate::router`].
pub(crate) fn routes() -> Router<Hub> {
    Router::new()
        .route("/", get(version))
        .route("/info", get(info))
        .route("/health", get(health))
        .route("/users", get(users::list_users).post(users::create_users))
        .route("/user", get(identity::get_self))
        .route("/oauth2/authorize", get(oauth::authorize).post(oauth::authorize_confirmed))
        .route("/oauth2/token", post(oauth::token))
        .route(
            "/users/{name}",
            get(users::get_user).post(users::create_user).patch(users::patch_user).delete(users::delete_user),
        )
        .route("/users/{name}/activity", post(users::post_activity))
        .route("/users/{name}/tokens", get(tokens::list_tokens).post(tokens::create_token))
        .route("/users/{name}/tokens/{token_id}", get(tokens::get_token).delete(tokens::delete_token))
        .route("/users/{name}/server", post(servers::start_default).delete(servers::stop_default))
        .route("/users/{name}/servers/{server_name}", post(servers::start_named).delete(servers::stop_named))
        .route("/users/{name}/server/progress", get(progress::default_progress))
        .route("/users/{name}/servers/{server_name}/progress", get(progress::named_progress))
        .route("/groups", get(groups::list_groups).post(groups::create_groups))
        .route("/groups/{name}", get(groups::get_group).post(groups::create_group_named).delete(groups::delete_group))
        .route("/groups/{name}/users", post(groups::add_group_users).delete(groups::remove_group_users))
        .route("/groups/{name}/properties", axum::routing::put(groups::put_group_properties))
        .route("/services", get(services::list_services))
        .route("/services/{name}", get(services::get_service))
        .route("/proxy", get(proxy::get_routes).post(proxy::post_routes).patch(proxy::patch_proxy))
        .route("/shutdown", post(shutdown::shutdown))
        .route("/metrics", get(metrics::metrics))
        .route("/_wasmhub/openapi.json", get(openapi::serve_document))
        .route("/_wasmhub/login-lockouts", get(lockouts::list_lockouts).delete(lockouts::delete_lockout))
        .fallback(not_found)
}

pub(crate) async fn version() -> Response {
    let mut response = axum::Json(serde_json::json!({ "version": JUPYTERHUB_VERSION })).into_response();
    response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

async fn info(State(hub): State<Hub>, caller: Caller) -> Result<Response, ApiError> {
    caller.require_global(&["read:hub"])?;
    let config = hub.config();
    let crate_version = env!("CARGO_PKG_VERSION");
    Ok(axum::Json(serde_json::json!({
        "version": JUPYTERHUB_VERSION,
        "python": format!("wasmhub {crate_version}"),
        "sys_executable": std::env::current_exe().map(|path| path.display().to_string()).unwrap_or_default(),
        "spawner": { "class": config.spawner_class, "version": crate_version },
        "authenticator": { "class": config.authenticator_class, "version": crate_version },
    }))
    .into_response())
}

/// 200 while the hub can do its work; 503 while the proxy it keeps routes in does not answer (a proxy in another
/// process with a wrong URL or token fails the health check instead of the hub crash-looping).
pub(crate) async fn health(State(hub): State<Hub>) -> Response {
    if hub.proxy_reachable() { empty(StatusCode::OK) } else { empty(StatusCode::SERVICE_UNAVAILABLE) }
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}
