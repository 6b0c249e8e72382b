//! The hub: JupyterHub 5.x's REST API at `/hub/api`, its pages and login, over the [`Store`], a [`Spawner`], the
//! proxy's [`Routes`] and the policy host.
//!
//! The rooms: `access/` (who is calling and what they may do), `api/` (the REST resources), `pages/` (what a
//! browser sees), `login/` and `oauth/` (how a browser and a single-user server log in), `spawns/` (the one way a
//! server starts or stops, and adoption), `policy/` (the policy host behind async calls), and the files
//! `culler.rs`, `error.rs`, `metrics.rs`, `openapi.rs` (the table of operations), `periodic.rs`, `run.rs`,
//! `startup.rs` and `urls.rs`. No room imports a room that imports it (`tests/tests/tidy.rs` checks).
//!
//! [`router`] builds the whole axum app from a [`Hub`], so tests drive it with `tower::ServiceExt::oneshot`;
//! [`serve`] runs it on a listener the caller bound, until the shutdown future resolves. JupyterHub's JSON exists
//! only in this crate: handlers turn store records into JupyterHub's models by hand (`api/models.rs`).

mod access;
mod api;
mod culler;
mod error;
mod lease;
mod login;
mod metrics;
mod oauth;
mod openapi;
mod pages;
mod periodic;
mod policy;
mod run;
mod spawns;
mod startup;
mod urls;

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
use axum::routing::get;
use wasmhub_policy::PolicyHost;
use wasmhub_proxy::Routes;
use wasmhub_spawner::Spawner;
use wasmhub_store::Store;

use crate::error::{ApiError, error_response};

pub use api::shutdown::ShutdownRequest;
pub use culler::{CullSweep, CullerConfig};
pub use lease::{Lease, LeaseSettings};
pub use login::authenticator::{
    Authenticator, AuthenticatorConfigError, DummyAuthenticator, LoginForm, SharedPasswordAuthenticator,
    VerifiedIdentity,
};
pub use login::throttle::ThrottleSettings;
pub use policy::Policies;
pub use run::{RunError, RunSettings, run};
pub use spawns::AdoptionReport;
pub use startup::apply as apply_startup_state;
pub use startup::{RoleSpec, ServiceSpec, StartupError, StartupState};
pub use urls::SubdomainHost;
pub use wasmhub_policy::native::AuthSettings;

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
    /// Most spawns in progress at once; more wait their turn (`hub.concurrentSpawnLimit`).
    pub concurrent_spawn_limit: usize,
    /// `Spawner.default_url` (`JUPYTERHUB_DEFAULT_URL`), e.g. `/lab`.
    pub default_url: Option<String>,
    /// `Spawner.notebook_dir` (`JUPYTERHUB_ROOT_DIR`).
    pub notebook_dir: Option<String>,
    /// `Spawner.environment` and `singleuser.extraEnv`: set in every server.
    pub environment: std::collections::BTreeMap<String, String>,
    /// JupyterHub's login rules (allowed, blocked and admin users, normalisation), decided natively when no policy
    /// host is set with [`Hub::with_policy`]; also the rules `allow_existing_users` re-checks names against.
    pub auth: AuthSettings,
    /// `Authenticator.allow_existing_users`: users already in the database may log in.
    pub allow_existing_users: bool,
    /// Adds `Secure` to the hub's cookies (an https public URL).
    pub cookie_secure: bool,
    /// `cookie_max_age_days`: how long a login lasts; also OAuth tokens' `expires_in` (`oauth_token_expires_in`).
    pub cookie_max_age: Duration,
    /// `JupyterHub.redirect_to_server`: after login without `next`, go to the user's server (spawning it).
    pub redirect_to_server: bool,
    /// `JupyterHub.default_url`: where a login without `next` goes, before `redirect_to_server` applies.
    pub hub_default_url: Option<String>,
    /// `JupyterHub.authenticate_prometheus`: scraping `/hub/metrics` needs `read:metrics`.
    pub authenticate_prometheus: bool,
    /// `singleuser.profileList`, initialised (`wasmhub_policy::hooks::initialize_profiles`); empty spawns without
    /// an options form. Which profiles a user sees and may start is the policy host's profiles hook.
    pub profiles: Vec<wasmhub_policy::hooks::Profile>,
    /// `JupyterHub.template_paths`: folders searched for page templates before the embedded defaults.
    pub template_paths: Vec<std::path::PathBuf>,
    /// `JupyterHub.shutdown_on_logout`: logging out also stops the user's running servers.
    pub shutdown_on_logout: bool,
    /// `JupyterHub.active_server_limit` (`hub.activeServerLimit`): most servers active (pending or running) at once;
    /// a spawn beyond it is refused with 429. `None` or 0 is unlimited.
    pub active_server_limit: Option<u32>,
    /// `JupyterHub.named_server_limit_per_user` (`hub.namedServerLimitPerUser`): most named servers a user may
    /// have; creating one more is refused with 400. `None` or 0 is unlimited.
    pub named_server_limit_per_user: Option<u32>,
    /// Login throttling for the password form (`wasmhub.loginThrottle`).
    pub login_throttle: login::throttle::ThrottleSettings,
    /// Servers run as the hub's own Unix user (`wasmhub.local.shareHubUser`); the admin page says what that means.
    pub servers_share_hub_user: bool,
    /// `JupyterHub.subdomain_host`: each user's servers on a host of their own (`urls.rs`).
    pub subdomain_host: Option<urls::SubdomainHost>,
    /// `JupyterHub.trusted_downstream_ips`: proxies besides loopback and the built-in one whose forwarding headers
    /// are believed.
    pub trusted_downstream_ips: Vec<std::net::IpAddr>,
}

impl HubConfig {
    /// `JupyterHub.base_url` as the hub uses it: with a leading and a trailing slash.
    pub fn normalised_base_url(raw: &str) -> String {
        let mut base_url = raw.to_owned();
        if !base_url.starts_with('/') {
            base_url.insert(0, '/');
        }
        if !base_url.ends_with('/') {
            base_url.push('/');
        }
        base_url
    }
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
            concurrent_spawn_limit: 64,
            default_url: None,
            notebook_dir: None,
            environment: std::collections::BTreeMap::new(),
            auth: AuthSettings::default(),
            allow_existing_users: false,
            cookie_secure: false,
            cookie_max_age: Duration::from_secs(14 * 24 * 3600),
            redirect_to_server: true,
            hub_default_url: None,
            authenticate_prometheus: true,
            profiles: Vec::new(),
            template_paths: Vec::new(),
            shutdown_on_logout: false,
            active_server_limit: None,
            named_server_limit_per_user: None,
            login_throttle: login::throttle::ThrottleSettings::default(),
            servers_share_hub_user: false,
            subdomain_host: None,
            trusted_downstream_ips: Vec::new(),
        }
    }
}

struct Inner {
    config: HubConfig,
    store: Arc<dyn Store>,
    spawner: Arc<dyn Spawner>,
    /// The proxy's route table, in this process or behind a proxy's REST API.
    routes: Arc<dyn Routes>,
    /// The readiness probe's client; it never follows redirects, as JupyterHub's probe does not.
    probe: reqwest::Client,
    /// One permit per spawn in progress (`concurrent_spawn_limit`).
    spawn_slots: tokio::sync::Semaphore,
    /// Checks the login form; the default (a shared password with no password set) lets nobody in.
    authenticator: Arc<dyn Authenticator>,
    /// The hooks' decisions: a policy file's, or the built-in rule in the hook's default slot.
    policies: Policies,
    /// Events of each server's latest spawn, for the progress streams.
    progress: spawns::progress::Progress,
    /// Cancelled once a shutdown is requested (`POST /shutdown`).
    shutdown: api::shutdown::ShutdownSignal,
    /// What `/hub/metrics` reports.
    metrics: metrics::HubMetrics,
    /// Page templates and static assets.
    templates: pages::templates::Templates,
    /// API-token callers already resolved (`caller_cache.rs`).
    caller_cache: access::caller_cache::CallerCache,
    /// Failed form logins by name and address (`login/throttle.rs`).
    login_throttle: login::throttle::LoginThrottle,
    /// Whether the last route check reached the proxy (`api/proxy.rs` `reconcile_routes`).
    proxy_reachable: std::sync::atomic::AtomicBool,
}

/// The hub's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
    /// A hub whose hooks decide with the built-in rules (logins with `HubConfig::auth`) until
    /// [`Hub::with_policy`] gives it the site's policy host.
    pub fn new(config: HubConfig, store: Arc<dyn Store>, spawner: Arc<dyn Spawner>, routes: Arc<dyn Routes>) -> Hub {
        let probe = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        let spawn_slots = tokio::sync::Semaphore::new(config.concurrent_spawn_limit.max(1));
        let authenticator = Arc::new(SharedPasswordAuthenticator::no_passwords());
        let templates =
            pages::templates::Templates::new(&config.template_paths, &format!("{}hub/static/", config.base_url));
        let defaults = wasmhub_policy::native::NativeDefaults { auth: config.auth.clone(), ..Default::default() };
        let policies = Policies::new(Arc::new(PolicyHost::built_in(defaults)));
        Hub {
            inner: Arc::new(Inner {
                store,
                spawner,
                routes,
                probe,
                spawn_slots,
                authenticator,
                policies,
                progress: spawns::progress::Progress::default(),
                shutdown: api::shutdown::ShutdownSignal::default(),
                metrics: metrics::HubMetrics::default(),
                templates,
                caller_cache: access::caller_cache::CallerCache::new(),
                login_throttle: login::throttle::LoginThrottle::new(config.login_throttle.clone()),
                proxy_reachable: std::sync::atomic::AtomicBool::new(true),
                config,
            }),
        }
    }

    /// Sets the login form's authenticator.
    ///
    /// # Panics
    /// If the hub was already cloned: call it right after [`Hub::new`].
    pub fn with_authenticator(mut self, authenticator: Arc<dyn Authenticator>) -> Hub {
        self.inner_mut().authenticator = authenticator;
        self
    }

    /// Decides every hook with `policy` (its policy files, or its native defaults) instead of the built-in rules
    /// of [`Hub::new`].
    ///
    /// # Panics
    /// If the hub was already cloned: call it right after [`Hub::new`].
    pub fn with_policy(mut self, policy: Arc<PolicyHost>) -> Hub {
        self.inner_mut().policies = Policies::new(policy);
        self
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner).expect("Hub::with_* must be called before the hub is cloned")
    }

    pub(crate) fn caller_cache(&self) -> &access::caller_cache::CallerCache {
        &self.inner.caller_cache
    }

    pub(crate) fn proxy_reachable(&self) -> bool {
        self.inner.proxy_reachable.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records whether the proxy answered; returns what was recorded before.
    pub(crate) fn set_proxy_reachable(&self, reachable: bool) -> bool {
        self.inner.proxy_reachable.swap(reachable, std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn login_throttle(&self) -> &login::throttle::LoginThrottle {
        &self.inner.login_throttle
    }

    pub(crate) fn authenticator(&self) -> &dyn Authenticator {
        self.inner.authenticator.as_ref()
    }

    /// The hooks' decisions, as async calls.
    pub fn policies(&self) -> &Policies {
        &self.inner.policies
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

    pub(crate) fn routes(&self) -> &dyn Routes {
        self.inner.routes.as_ref()
    }

    pub(crate) fn probe_client(&self) -> &reqwest::Client {
        &self.inner.probe
    }

    pub(crate) fn spawn_slots(&self) -> &tokio::sync::Semaphore {
        &self.inner.spawn_slots
    }

    pub(crate) fn templates(&self) -> &pages::templates::Templates {
        &self.inner.templates
    }
}

/// The hub's HTTP app: `/hub/api/...`, the pages, `/hub/health` and `/hub/metrics`.
pub fn router(hub: Hub) -> Router {
    let routes = Router::new()
        // Nesting serves `/hub/api`; single-user servers probe it and the culler probes `/hub/api/`.
        .route("/hub/api/", get(api::version))
        .route("/hub/health", get(api::health))
        .route("/hub/metrics", get(metrics::metrics))
        .nest("/hub/api", api::routes())
        .merge(login::routes())
        .merge(pages::routes())
        .route("/hub/static/{*file}", get(pages::templates::serve_static))
        .fallback(outside_hub)
        // Last, so it covers every route: tells the request metrics (and the OpenAPI test) which route answered.
        .route_layer(middleware::from_fn(metrics::tag_route));
    // Under `hub.baseUrl` (`/jhub/`) everything is served below the prefix, as JupyterHub's handlers are; the bare
    // root leads there, and nothing else outside it is the hub's.
    let base = hub.config().base_url.trim_end_matches('/').to_owned();
    let routes = if base.is_empty() { routes } else { Router::new().nest(&base, routes).fallback(outside_base_url) };
    routes
        .layer(middleware::from_fn_with_state(hub.clone(), pages::render::render_error_pages))
        .layer(middleware::from_fn_with_state(hub.clone(), hub_on_its_own_host))
        .layer(middleware::from_fn_with_state(hub.clone(), forget_untrusted_forwarding))
        .layer(middleware::from_fn(jupyterhub_headers))
        .layer(middleware::from_fn_with_state(hub.clone(), metrics::record_requests))
        .with_state(hub)
}

/// Serves the hub on `listener` until `shutdown` resolves or a shutdown is requested through the API, then lets
/// in-flight requests finish.
pub async fn serve(
    hub: Hub,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // `POST /shutdown` ends serving too, after its 202 went out.
    let requested = hub.shutdown_requested();
    let either = async move {
        tokio::select! {
            () = shutdown => {}
            () = requested => {}
        }
    };
    let app = router(hub).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(either).await
}

/// JupyterHub's `PrefixRedirectHandler`: a request outside `/hub/` reached the hub because the proxy has no route
/// for it (a stopped server's `/user/alice/...`), so it is sent to the same path under `/hub/`, where
/// `/hub/user/...` answers with the "not running" page or starts the server (all below `hub.baseUrl`).
async fn outside_hub(State(hub): State<Hub>, uri: axum::extract::OriginalUri) -> Response {
    let base_url = &hub.config().base_url;
    let path = uri.path().strip_prefix(base_url.as_str()).map(|rest| format!("/{rest}")).unwrap_or_default();
    if path.is_empty() || path == "/hub" || path.starts_with("/hub/") {
        return ApiError::not_found().into_response();
    }
    let mut location = format!("{base_url}hub{path}");
    if let Some(query) = uri.query() {
        location.push('?');
        location.push_str(query);
    }
    match HeaderValue::from_str(&location) {
        Ok(value) => (StatusCode::FOUND, [(header::LOCATION, value)]).into_response(),
        Err(_) => ApiError::not_found().into_response(),
    }
}

/// Outside `hub.baseUrl`: the bare root (and the prefix without its slash) leads to the prefix; nothing else here
/// is the hub's.
async fn outside_base_url(State(hub): State<Hub>, uri: axum::extract::OriginalUri) -> Response {
    let base_url = &hub.config().base_url;
    if uri.path() == "/" || uri.path() == base_url.trim_end_matches('/') {
        match HeaderValue::from_str(base_url) {
            Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
            Err(_) => ApiError::not_found().into_response(),
        }
    } else {
        ApiError::not_found().into_response()
    }
}

/// A body-less answer, which JupyterHub sends as `text/plain`.
pub(crate) fn empty(status: StatusCode) -> Response {
    let mut response = (status, Bytes::new()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=UTF-8"));
    response
}

/// Forwarding headers (`X-Forwarded-Proto`, `X-Scheme`, `X-Forwarded-For`, `X-Real-Ip`) are believed only from a
/// proxy: the built-in one, which calls the router in process (no connection, so no peer address), a loopback peer,
/// or `trusted_downstream_ips`. Anyone else reaching the hub's port directly could otherwise pick the client
/// address login throttling counts, or the scheme cookies are marked for; their headers are dropped.
async fn forget_untrusted_forwarding(State(hub): State<Hub>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|axum::extract::ConnectInfo(peer)| peer.ip());
    let trusted = peer.is_none_or(|ip| ip.is_loopback() || hub.config().trusted_downstream_ips.contains(&ip));
    if !trusted {
        for name in ["x-forwarded-proto", "x-scheme", "x-forwarded-for", "x-real-ip", "forwarded"] {
            request.headers_mut().remove(name);
        }
    }
    next.run(request).await
}

/// With `subdomain_host`, nothing of the hub is served on a user's host: a page or API answer there would be in
/// that user's origin, where their server's scripts could read it with the visitor's hub cookies. Whatever reaches
/// the hub on a user's host (a stopped server's URL falls through to the hub, the proxy's default target) is sent
/// to the same place on the hub's host, under `/hub/` as `PrefixRedirectHandler` does; single-user servers reach the
/// hub API on the hub's internal address, which is no user's host.
async fn hub_on_its_own_host(State(hub): State<Hub>, request: Request, next: Next) -> Response {
    let Some(hosts) = &hub.config().subdomain_host else { return next.run(request).await };
    let host = request.headers().get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or_default();
    if !hosts.is_user_host(host) {
        return next.run(request).await;
    }
    let base_url = &hub.config().base_url;
    let path = request.uri().path();
    let hub_prefix = format!("{base_url}hub/");
    let mut location = if path.starts_with(&hub_prefix) || path == &hub_prefix[..hub_prefix.len() - 1] {
        format!("{}{path}", hosts.hub_origin())
    } else {
        let rest = path.strip_prefix(base_url.as_str()).unwrap_or(path.trim_start_matches('/'));
        format!("{}{hub_prefix}{rest}", hosts.hub_origin())
    };
    if let Some(query) = request.uri().query() {
        location.push('?');
        location.push_str(query);
    }
    match HeaderValue::from_str(&location) {
        Ok(value) => (StatusCode::FOUND, [(header::LOCATION, value)]).into_response(),
        Err(_) => ApiError::not_found().into_response(),
    }
}

/// Adds `X-JupyterHub-Version`, `Content-Security-Policy: frame-ancestors 'self'` and
/// `X-Content-Type-Options: nosniff` everywhere, and gives errors produced outside our handlers (axum's own 405s and
/// extractor rejections) JupyterHub's JSON shape.
async fn jupyterhub_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    // Pages answer errors in HTML (the login form's 403, the not-running page's 424).
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    if (response.status().is_client_error() || response.status().is_server_error()) && !is_json && !is_html {
        let status = response.status();
        let reason = status.canonical_reason().unwrap_or("Error");
        let allow = response.headers().get(header::ALLOW).cloned();
        response = error_response(status, reason);
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    let headers = response.headers_mut();
    headers.insert("x-jupyterhub-version", HeaderValue::from_static(JUPYTERHUB_VERSION));
    // As JupyterHub: no other site may frame the hub's pages (clickjacking), and no browser may guess a content
    // type other than the one sent.
    headers.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static("frame-ancestors 'self'"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
