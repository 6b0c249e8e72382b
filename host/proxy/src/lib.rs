//! The wasmhub proxy: a drop-in for configurable-http-proxy (CHP) 5.3 that sits in front of the hub and every
//! single-user server.
//!
//! It speaks CHP's REST API on one listener and proxies HTTP and WebSockets on another, with CHP's routing
//! (longest whole-segment prefix of the decoded path), headers, error pages and `last_activity` semantics.
//! Beyond CHP it keeps its routes in a file across restarts, drains in-flight requests on shutdown, uses every
//! core, and serves Prometheus metrics. [`Proxy`] is the shared state; [`server::run`] serves it on bound listeners.

mod api;
mod error_page;
mod forward;
mod hub_routes;
mod journal;
mod metrics;
mod path;
mod remote;
pub mod routes;
pub mod server;
mod store;
mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderName, HeaderValue};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio_util::task::TaskTracker;

pub use hub_routes::Routes;
pub use journal::JournalError;
pub use metrics::Metrics;
pub use remote::RemoteRoutes;
pub use store::{RouteError, RouteStore};
pub use tls::{TlsError, TlsFiles};

/// Errors that can come from anywhere in a body we forward.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of everything the proxy sends: streamed from a peer, or small and in memory.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A target that lives in this process, called instead of connecting to it (`wasmhub serve` hands requests for the
/// hub to the hub's router this way). It gets the request as it would go on the wire (origin-form URI, forwarded
/// headers, streamed body) and answers the target's response, or an error where a connection would have failed.
pub type LocalService = Arc<dyn Fn(http::Request<ProxyBody>) -> BoxFuture<'static, LocalResult> + Send + Sync>;

/// What a [`LocalService`] answers.
pub type LocalResult = Result<http::Response<ProxyBody>, BoxError>;

/// A [`LocalService`] and the target whose requests it answers.
pub(crate) struct LocalTarget {
    pub(crate) target: routes::Target,
    pub(crate) service: LocalService,
}

/// Any body as a [`ProxyBody`] (for a [`LocalService`]'s responses).
pub fn boxed_body<B>(body: B) -> ProxyBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

pub(crate) fn full_body(bytes: Bytes) -> ProxyBody {
    http_body_util::Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

/// Everything that changes the proxy's behaviour; the CLI fills it from CHP's flags.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// `CONFIGPROXY_AUTH_TOKEN`. `None` leaves the API unauthenticated, as CHP does.
    pub auth_token: Option<String>,
    /// `--default-target`: adds the `/` route at start.
    pub default_target: Option<String>,
    /// `--error-target`: where error pages are fetched from (`<target>/<code>?url=<request url>`).
    pub error_target: Option<String>,
    /// `--error-path`: a folder with `<code>.html` or `error.html`.
    pub error_path: Option<PathBuf>,
    /// `--no-x-forward` turns this off.
    pub x_forward: bool,
    /// `--custom-header`: set on every proxied request, replacing the client's value.
    pub custom_headers: Vec<(HeaderName, HeaderValue)>,
    /// `--host-routing`: the Host header is the first segment of the route key.
    pub host_routing: bool,
    /// `--no-include-prefix` turns this off: the route's prefix is then removed from the forwarded path.
    pub include_prefix: bool,
    /// `--no-prepend-path` turns this off: the target's own path is then not prepended.
    pub prepend_path: bool,
    /// `--timeout`: a client connection with no traffic for this long is closed.
    pub timeout: Option<Duration>,
    /// `--proxy-timeout`: a target that has not answered within this long gets the request a 503.
    pub proxy_timeout: Option<Duration>,
    /// `--keep-alive-timeout`: how long an idle keep-alive client connection stays open.
    pub keep_alive_timeout: Duration,
    /// How long SIGTERM waits for in-flight requests and websockets before exiting anyway.
    pub drain_timeout: Duration,
    /// Where routes are kept across restarts; `None` keeps them in memory only, like CHP.
    pub routes_file: Option<PathBuf>,
    /// `--ssl-key` and `--ssl-cert` for the proxy listener.
    pub tls: Option<TlsFiles>,
    /// How long a request for the default target (the hub) waits, retrying, while nothing accepts connections
    /// there, before the 503 CHP answers at once: a hub restart or upgrade then costs users a pause, not an error.
    /// Zero answers at once, as CHP does.
    pub default_target_hold: Duration,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig {
            auth_token: None,
            default_target: None,
            error_target: None,
            error_path: None,
            x_forward: true,
            custom_headers: Vec::new(),
            host_routing: false,
            include_prefix: true,
            prepend_path: true,
            timeout: None,
            proxy_timeout: None,
            keep_alive_timeout: Duration::from_millis(5000),
            drain_timeout: Duration::from_secs(30),
            routes_file: None,
            tls: None,
            default_target_hold: Duration::ZERO,
        }
    }
}

/// Why the proxy cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("--default-target: {0}")]
    DefaultTarget(RouteError),
    #[error("--error-target: {0}")]
    ErrorTarget(routes::TargetError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

type UpstreamClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, ProxyBody>;

struct Shared {
    config: ProxyConfig,
    store: RouteStore,
    metrics: Metrics,
    client: UpstreamClient,
    error_target: Option<routes::Target>,
    /// Proxied websockets outlive their HTTP connection; shutdown waits for them here.
    websockets: TaskTracker,
    tls: Option<Arc<tls::ReloadableCert>>,
    /// Read without a lock on every proxied request (an `ArcSwap` load), like the route table.
    local: ArcSwapOption<LocalTarget>,
}

/// The proxy's shared state: routes, upstream connection pool, metrics. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl Proxy {
    /// Opens the routes file (if any), adds the default target, and prepares the upstream client.
    pub async fn new(config: ProxyConfig) -> Result<Proxy, ProxyError> {
        // Only the ring provider is compiled in; installing it explicitly keeps rustls from guessing.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = match &config.routes_file {
            Some(path) => RouteStore::persistent(path, config.host_routing)?,
            None => RouteStore::in_memory(config.host_routing),
        };
        let error_target = config
            .error_target
            .as_deref()
            .map(|target| {
                // CHP appends the status code to the target's path, so it makes sure the path ends in a slash.
                let with_slash = if target.ends_with('/') { target.to_owned() } else { format!("{target}/") };
                routes::Target::parse(&with_slash)
            })
            .transpose()
            .map_err(ProxyError::ErrorTarget)?;
        let tls = config.tls.as_ref().map(tls::ReloadableCert::load).transpose()?.map(Arc::new);
        let shared = Shared {
            store,
            metrics: Metrics::default(),
            client: upstream_client(),
            error_target,
            websockets: TaskTracker::new(),
            tls,
            local: ArcSwapOption::empty(),
            config,
        };
        let proxy = Proxy { shared: Arc::new(shared) };
        if let Some(target) = proxy.shared.config.default_target.clone() {
            let mut data = serde_json::Map::new();
            data.insert("target".into(), target.into());
            proxy.shared.store.add("/", data).await.map_err(ProxyError::DefaultTarget)?;
        }
        proxy.shared.metrics.routes.set(proxy.shared.store.table().len() as i64);
        Ok(proxy)
    }

    /// The routes, for callers in the same process (the hub adds and removes routes without HTTP).
    pub fn routes(&self) -> &RouteStore {
        &self.shared.store
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// From now on, requests routed to `target` (same scheme, host and port; by any route) are answered by
    /// `service` in this process rather than over a connection. Websocket upgrades still connect, so the target
    /// must keep listening at `target`.
    pub fn serve_locally(&self, target: &str, service: LocalService) -> Result<(), routes::TargetError> {
        let target = routes::Target::parse(target)?;
        self.shared.local.store(Some(Arc::new(LocalTarget { target, service })));
        Ok(())
    }

    /// Undoes [`Proxy::serve_locally`]: requests connect to the target again (and fail as it does once it has
    /// stopped listening).
    pub fn stop_serving_locally(&self) {
        self.shared.local.store(None);
    }

    /// Re-reads the TLS certificate and key (on SIGHUP); the old pair stays in use if the new one is bad.
    pub fn reload_tls(&self) -> Result<(), TlsError> {
        match &self.shared.tls {
            Some(cert) => cert.reload(),
            None => Ok(()),
        }
    }
}

fn upstream_client() -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .pool_max_idle_per_host(256)
        .build(https)
}
