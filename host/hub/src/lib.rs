//! The hub: JupyterHub 5.x's REST API at `/hub/api`, over the [`Store`], a [`Spawner`] and the proxy's route table.
//!
//! [`router`] builds the whole axum app from a [`Hub`], so tests drive it with `tower::ServiceExt::oneshot`;
//! [`serve`] runs it on a listener the caller bound, until the shutdown future resolves. JupyterHub's JSON exists
//! only in this crate: handlers turn store records into JupyterHub's models by hand (`models.rs`).

mod auth;
mod error;
mod models;
mod query;
mod scopes;
mod servers;
mod tokens;
mod users;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use wasmhub_proxy::Proxy;
use wasmhub_spawner::Spawner;
use wasmhub_store::Store;

use crate::auth::Caller;
use crate::error::{ApiError, error_response};

/// The version the API reports. It must be PEP 440 and of JupyterHub's major version, or single-user servers
/// exit or warn (`hub-contract.md` §9.2).
pub const JUPYTERHUB_VERSION: &str = "5.5.4+wasmhub";

/// What the hub's API needs to know beyond its collaborators; defaults are JupyterHub's.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// `JupyterHub.base_url`, with leading and trailing slash.
    pub base_url: String,
    /// The hub API as single-user servers reach it (`JUPYTERHUB_API_URL`), without a trailing slash.
    pub hub_api_url: String,
    /// `JupyterHub.allow_named_servers`.
    pub allow_named_servers: bool,
    /// How long a spawn request waits before answering 202 instead of 201.
    pub slow_spawn_timeout: Duration,
    /// How long a stop request waits before answering 202 instead of 204.
    pub slow_stop_timeout: Duration,
    /// `Spawner.start_timeout`.
    pub start_timeout: Duration,
    /// `Spawner.http_timeout`: how long the readiness probe keeps trying.
    pub http_timeout: Duration,
    /// `api_page_default_limit` and `api_page_max_limit`.
    pub page_default_limit: u64,
    pub page_max_limit: u64,
    /// Spawner and authenticator names for `/hub/api/info`.
    pub spawner_class: String,
    pub authenticator_class: String,
}

impl Default for HubConfig {
    fn default() -> HubConfig {
        HubConfig {
            base_url: "/".into(),
            hub_api_url: "http://127.0.0.1:8081/hub/api".into(),
            allow_named_servers: false,
            slow_spawn_timeout: Duration::from_secs(10),
            slow_stop_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(60),
            http_timeout: Duration::from_secs(30),
            page_default_limit: 50,
            page_max_limit: 200,
            spawner_class: "wasmhub.LocalProcessSpawner".into(),
            authenticator_class: "wasmhub.SharedPasswordAuthenticator".into(),
        }
    }
}

struct Inner {
    config: HubConfig,
    store: Arc<dyn Store>,
    spawner: Arc<dyn Spawner>,
    proxy: Proxy,
    /// The readiness probe's client; it never follows redirects, as JupyterHub's probe does not.
    probe: reqwest::Client,
}

/// The hub's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
    pub fn new(config: HubConfig, store: Arc<dyn Store>, spawner: Arc<dyn Spawner>, proxy: Proxy) -> Hub {
        let probe = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Hub { inner: Arc::new(Inner { config, store, spawner, proxy, probe }) }
    }

    pub(crate) fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub(crate) fn spawner(&self) -> &dyn Spawner {
        self.inner.spawner.as_ref()
    }

    #[cfg(test)]
    pub(crate) fn spawner_arc(&self) -> Arc<dyn Spawner> {
        self.inner.spawner.clone()
    }

    pub(crate) fn proxy(&self) -> &Proxy {
        &self.inner.proxy
    }

    pub(crate) fn probe_client(&self) -> &reqwest::Client {
        &self.inner.probe
    }
}

/// The hub's HTTP app: `/hub/api/...` and `/hub/health`.
pub fn router(hub: Hub) -> Router {
    let api = Router::new()
        .route("/", get(version))
        .route("/info", get(info))
        .route("/health", get(health))
        .route("/users", get(users::list_users).post(users::create_users))
        .route(
            "/users/{name}",
            get(users::get_user).post(users::create_user).patch(users::patch_user).delete(users::delete_user),
        )
        .route("/users/{name}/activity", post(users::post_activity))
        .route("/users/{name}/tokens", get(tokens::list_tokens).post(tokens::create_token))
        .route("/users/{name}/tokens/{token_id}", get(tokens::get_token).delete(tokens::delete_token))
        .route("/users/{name}/server", post(servers::start_default).delete(servers::stop_default))
        .route("/users/{name}/servers/{server_name}", post(servers::start_named).delete(servers::stop_named))
        .fallback(not_found);
    Router::new()
        // Nesting serves `/hub/api`; single-user servers probe it and the culler probes `/hub/api/`.
        .route("/hub/api/", get(version))
        .route("/hub/health", get(health))
        .nest("/hub/api", api)
        .fallback(not_found)
        .layer(middleware::from_fn(jupyterhub_headers))
        .with_state(hub)
}

/// Serves the hub on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    hub: Hub,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(hub)).with_graceful_shutdown(shutdown).await
}

async fn version() -> Response {
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

async fn health() -> Response {
    empty(StatusCode::OK)
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// A body-less answer, which JupyterHub sends as `text/plain`.
pub(crate) fn empty(status: StatusCode) -> Response {
    let mut response = (status, Bytes::new()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=UTF-8"));
    response
}

/// Adds `X-JupyterHub-Version` everywhere, and gives errors produced outside our handlers (axum's own 405s and
/// extractor rejections) JupyterHub's JSON shape.
async fn jupyterhub_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if (response.status().is_client_error() || response.status().is_server_error()) && !is_json {
        let status = response.status();
        let reason = status.canonical_reason().unwrap_or("Error");
        let allow = response.headers().get(header::ALLOW).cloned();
        response = error_response(status, reason);
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    response.headers_mut().insert("x-jupyterhub-version", HeaderValue::from_static(JUPYTERHUB_VERSION));
    response
}
