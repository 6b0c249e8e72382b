//! Prometheus metrics at `/hub/metrics` and `/hub/api/metrics` under JupyterHub's names (`metrics.py`), so existing
//! dashboards and alerts keep working.
//!
//! Durations are observed where the work happens (request middleware, spawn and stop, proxy changes, route
//! checks); the user and server counts are read from the store at scrape time, so they are never stale.
//! Request durations carry JupyterHub's handler class names as the `handler` label (from the route table in
//! `openapi.rs`). Like JupyterHub 5 (`authenticate_prometheus`), scraping needs `read:metrics` unless configured
//! otherwise.

use std::future::Future;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{TimeDelta, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use wasmhub_model::SpawnState;
use wasmhub_store::{PageRequest, UserQuery};

use crate::Hub;
use crate::access::caller::Caller;
use crate::error::ApiError;

/// What JupyterHub's `prometheus_client` answers with.
const CONTENT_TYPE: &str = "text/plain; version=1.0.0; charset=utf-8";

/// `prometheus_client`'s default buckets, which JupyterHub keeps for most histograms.
const DEFAULT_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
/// Spawns take a while (`spawn_duration_buckets`).
const SPAWN_BUCKETS: [f64; 12] = [0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    handler: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeriodLabel {
    period: &'static str,
}

pub(crate) type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn default_histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

fn spawn_histogram() -> Histogram {
    Histogram::new(SPAWN_BUCKETS)
}

/// The `status` label of `server_spawn_duration_seconds` (`ServerSpawnStatus`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum SpawnStatus {
    Success,
    Failure,
    AlreadyPending,
    Throttled,
    TooManyUsers,
}

impl SpawnStatus {
    const ALL: [SpawnStatus; 5] = [
        SpawnStatus::Success,
        SpawnStatus::Failure,
        SpawnStatus::AlreadyPending,
        SpawnStatus::Throttled,
        SpawnStatus::TooManyUsers,
    ];

    fn label(self) -> StatusLabel {
        let status = match self {
            SpawnStatus::Success => "success",
            SpawnStatus::Failure => "failure",
            SpawnStatus::AlreadyPending => "already-pending",
            SpawnStatus::Throttled => "throttled",
            SpawnStatus::TooManyUsers => "too-many-users",
        };
        StatusLabel { status }
    }
}

fn outcome<T, E>(result: &Result<T, E>) -> StatusLabel {
    StatusLabel { status: if result.is_ok() { "success" } else { "failure" } }
}

/// Every metric the hub keeps.
pub(crate) struct HubMetrics {
    registry: Registry,
    request_duration: HistogramFamily<RequestLabels>,
    spawn_duration: HistogramFamily<StatusLabel>,
    stop_duration: HistogramFamily<StatusLabel>,
    proxy_add_duration: HistogramFamily<StatusLabel>,
    proxy_delete_duration: HistogramFamily<StatusLabel>,
    server_poll_duration: HistogramFamily<StatusLabel>,
    check_routes_duration: Histogram,
    proxy_poll_duration: Histogram,
    hub_startup_duration: Histogram,
    init_spawners_duration: Histogram,
    running_servers: Gauge,
    total_users: Gauge,
    active_users: Family<PeriodLabel, Gauge>,
}

impl Default for HubMetrics {
    fn default() -> HubMetrics {
        fn family<L: Clone + std::hash::Hash + Eq>() -> HistogramFamily<L> {
            HistogramFamily::new_with_constructor(default_histogram as fn() -> Histogram)
        }
        let mut metrics = HubMetrics {
            registry: Registry::with_prefix("jupyterhub"),
            request_duration: family(),
            spawn_duration: HistogramFamily::new_with_constructor(spawn_histogram as fn() -> Histogram),
            stop_duration: family(),
            proxy_add_duration: family(),
            proxy_delete_duration: family(),
            server_poll_duration: family(),
            check_routes_duration: default_histogram(),
            proxy_poll_duration: default_histogram(),
            hub_startup_duration: default_histogram(),
            init_spawners_duration: default_histogram(),
            running_servers: Gauge::default(),
            total_users: Gauge::default(),
            active_users: Family::default(),
        };
        // JupyterHub creates every label value up front, so dashboards see zeros rather than nothing.
        for status in SpawnStatus::ALL {
            let _ = metrics.spawn_duration.get_or_create(&status.label());
        }
        for status in ["success", "failure"] {
            let _ = metrics.stop_duration.get_or_create(&StatusLabel { status });
            let _ = metrics.proxy_add_duration.get_or_create(&StatusLabel { status });
            let _ = metrics.proxy_delete_duration.get_or_create(&StatusLabel { status });
        }
        for status in ["running", "stopped"] {
            let _ = metrics.server_poll_duration.get_or_create(&StatusLabel { status });
        }
        let registry = &mut metrics.registry;
        registry.register(
            "request_duration_seconds",
            "Request duration for all HTTP requests",
            metrics.request_duration.clone(),
        );
        registry.register(
            "server_spawn_duration_seconds",
            "Time taken for server spawning operation",
            metrics.spawn_duration.clone(),
        );
        registry.register(
            "running_servers",
            "The number of user servers currently running",
            metrics.running_servers.clone(),
        );
        registry.register("total_users", "Total number of users", metrics.total_users.clone());
        registry.register(
            "active_users",
            "Number of users who were active in the given time period",
            metrics.active_users.clone(),
        );
        registry.register(
            "check_routes_duration_seconds",
            "Time taken to validate all routes in proxy",
            metrics.check_routes_duration.clone(),
        );
        registry.register(
            "hub_startup_duration_seconds",
            "Time taken for Hub to start",
            metrics.hub_startup_duration.clone(),
        );
        registry.register(
            "init_spawners_duration_seconds",
            "Time taken for spawners to initialize",
            metrics.init_spawners_duration.clone(),
        );
        registry.register(
            "proxy_poll_duration_seconds",
            "Duration for polling all routes from proxy",
            metrics.proxy_poll_duration.clone(),
        );
        registry.register(
            "proxy_add_duration_seconds",
            "Duration for adding user routes to proxy",
            metrics.proxy_add_duration.clone(),
        );
        registry.register(
            "server_poll_duration_seconds",
            "Time taken to poll if server is running",
            metrics.server_poll_duration.clone(),
        );
        registry.register(
            "server_stop_seconds",
            "Time taken for server stopping operation",
            metrics.stop_duration.clone(),
        );
        registry.register(
            "proxy_delete_duration_seconds",
            "Duration for deleting user routes from proxy",
            metrics.proxy_delete_duration.clone(),
        );
        metrics
    }
}

impl HubMetrics {
    pub(crate) fn observe_spawn(&self, status: SpawnStatus, took: Duration) {
        self.spawn_duration.get_or_create(&status.label()).observe(took.as_secs_f64());
    }

    pub(crate) fn observe_check_routes(&self, took: Duration) {
        self.check_routes_duration.observe(took.as_secs_f64());
    }

    pub(crate) fn observe_proxy_poll(&self, took: Duration) {
        self.proxy_poll_duration.observe(took.as_secs_f64());
    }

    /// `server_poll_duration_seconds`, for whoever polls servers (`running` or `stopped`).
    #[allow(dead_code)]
    pub(crate) fn observe_server_poll(&self, running: bool, took: Duration) {
        let status = if running { "running" } else { "stopped" };
        self.server_poll_duration.get_or_create(&StatusLabel { status }).observe(took.as_secs_f64());
    }
}

impl Hub {
    pub(crate) fn metrics(&self) -> &HubMetrics {
        &self.inner.metrics
    }

    /// `hub_startup_duration_seconds`: how long the caller took from process start to serving.
    pub fn record_startup_duration(&self, took: Duration) {
        self.metrics().hub_startup_duration.observe(took.as_secs_f64());
    }

    /// `init_spawners_duration_seconds`: how long adopting the previous process's servers took.
    pub fn record_init_spawners_duration(&self, took: Duration) {
        self.metrics().init_spawners_duration.observe(took.as_secs_f64());
    }
}

/// Runs a spawn's or stop's lifecycle future and records how long it took and whether it succeeded.
pub(crate) async fn timed<T, E>(
    family: fn(&HubMetrics) -> &HistogramFamily<StatusLabel>,
    hub: &Hub,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let result = work.await;
    family(hub.metrics()).get_or_create(&outcome(&result)).observe(started.elapsed().as_secs_f64());
    result
}

/// For [`timed`]: `server_stop_seconds`.
pub(crate) fn stop(metrics: &HubMetrics) -> &HistogramFamily<StatusLabel> {
    &metrics.stop_duration
}

/// For [`timed`]: `proxy_add_duration_seconds`.
pub(crate) fn proxy_add(metrics: &HubMetrics) -> &HistogramFamily<StatusLabel> {
    &metrics.proxy_add_duration
}

/// For [`timed`]: `proxy_delete_duration_seconds`.
pub(crate) fn proxy_delete(metrics: &HubMetrics) -> &HistogramFamily<StatusLabel> {
    &metrics.proxy_delete_duration
}

/// The route template a request matched, carried on its response to [`record_requests`].
#[derive(Debug, Clone)]
pub(crate) struct MatchedRoute(pub(crate) String);

/// A route layer: only matched requests reach it, and it tells the outer layer which route they matched.
pub(crate) async fn tag_route(request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
    let mut response = next.run(request).await;
    if let Some(matched) = matched {
        response.extensions_mut().insert(MatchedRoute(matched));
    }
    response
}

/// The outermost layer: `request_duration_seconds` for every request, labelled as JupyterHub labels it.
pub(crate) async fn record_requests(State(hub): State<Hub>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let base = hub.config().base_url.trim_end_matches('/').to_owned();
    let under_api = request.uri().path().strip_prefix(base.as_str()).is_some_and(|path| path.starts_with("/hub/api"));
    let response = next.run(request).await;
    let handler = match response.extensions().get::<MatchedRoute>() {
        // A nested router reports the matched route with `hub.baseUrl` in front; JupyterHub's labels have none.
        Some(MatchedRoute(route)) => {
            crate::openapi::jupyterhub_handler(method.as_str(), route.strip_prefix(base.as_str()).unwrap_or(route))
                .map(str::to_owned)
                .unwrap_or_else(|| route.clone())
        }
        None if under_api => "jupyterhub.apihandlers.base.API404".to_owned(),
        None => "jupyterhub.handlers.base.Template404".to_owned(),
    };
    let labels = RequestLabels { method: method.to_string(), handler, code: response.status().as_u16().to_string() };
    hub.metrics().request_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    response
}

/// `GET /hub/metrics` and `/hub/api/metrics`.
pub(crate) async fn metrics(State(hub): State<Hub>, caller: Caller) -> Result<Response, ApiError> {
    // `metrics_authentication`: any `read:metrics`, filtered or not, is enough.
    if hub.config().authenticate_prometheus && !caller.scopes.holds_any(&["read:metrics"]) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "Access to metrics requires scope 'read:metrics'"));
    }
    refresh_counts(&hub).await?;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &hub.metrics().registry).map_err(ApiError::internal)?;
    let mut response = text.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(response)
}

/// The gauges JupyterHub keeps by counting: users, running servers, and users active in the last day, week and
/// month (`PeriodicMetricsCollector.update_active_users`).
async fn refresh_counts(hub: &Hub) -> Result<(), ApiError> {
    let metrics = hub.metrics();
    let users = hub.store().list_users(&UserQuery { page: PageRequest::ALL, ..UserQuery::default() }).await?;
    metrics.total_users.set(users.total as i64);
    let servers = hub.store().list_servers(None).await?;
    let running = servers.iter().filter(|server| server.state == SpawnState::Running).count();
    metrics.running_servers.set(running as i64);
    let now = Utc::now();
    for (period, window) in [("24h", TimeDelta::hours(24)), ("7d", TimeDelta::days(7)), ("30d", TimeDelta::days(30))] {
        let cutoff = now - window;
        let active = users.items.iter().filter(|user| user.last_activity.is_some_and(|at| at >= cutoff)).count();
        metrics.active_users.get_or_create(&PeriodLabel { period }).set(active as i64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::Method;

    use crate::tests::{call, test_hub, user_with_token};
    use crate::{Hub, HubConfig, router};

    /// The value of one sample line, e.g. `jupyterhub_total_users`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    #[tokio::test]
    async fn metrics_need_read_metrics_and_use_jupyterhubs_names() {
        let hub = test_hub().await;
        let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
        let message = call(&hub.app, Method::GET, "/hub/metrics", Some(&alice), None).await.assert_error(403);
        assert_eq!(message, "Access to metrics requires scope 'read:metrics'");
        call(&hub.app, Method::GET, "/hub/metrics", None, None).await.assert_error(403);
        // A request the metrics will count, with JupyterHub's handler name.
        call(&hub.app, Method::GET, "/hub/api/users", Some(&hub.admin_token), None).await;
        call(&hub.app, Method::GET, "/hub/api/nope", Some(&hub.admin_token), None).await;

        for path in ["/hub/metrics", "/hub/api/metrics"] {
            let answer = call(&hub.app, Method::GET, path, Some(&hub.admin_token), None).await;
            assert_eq!(answer.status, 200, "{path}: {}", answer.text);
            assert_eq!(answer.headers["content-type"], "text/plain; version=1.0.0; charset=utf-8");
            let text = &answer.text;
            assert_eq!(sample(text, "jupyterhub_total_users"), Some(2.0), "{text}");
            assert_eq!(sample(text, "jupyterhub_running_servers"), Some(0.0));
            assert_eq!(sample(text, r#"jupyterhub_active_users{period="24h"}"#), Some(2.0), "{text}");
            assert_eq!(sample(text, r#"jupyterhub_active_users{period="30d"}"#), Some(2.0));
            assert_eq!(
                sample(text, r#"jupyterhub_server_spawn_duration_seconds_count{status="already-pending"}"#),
                Some(0.0)
            );
            assert_eq!(sample(text, r#"jupyterhub_server_stop_seconds_count{status="success"}"#), Some(0.0));
            for name in [
                "jupyterhub_check_routes_duration_seconds_count",
                "jupyterhub_proxy_poll_duration_seconds_count",
                "jupyterhub_hub_startup_duration_seconds_count",
                "jupyterhub_init_spawners_duration_seconds_count",
            ] {
                assert_eq!(sample(text, name), Some(0.0), "{name}");
            }
            for status in ["success", "failure"] {
                let series = format!("jupyterhub_proxy_add_duration_seconds_count{{status=\"{status}\"}}");
                assert_eq!(sample(text, &series), Some(0.0), "{series}");
            }
            let users = r#"jupyterhub_request_duration_seconds_count{method="GET",handler="jupyterhub.apihandlers.users.UserListAPIHandler",code="200"}"#;
            assert_eq!(sample(text, users), Some(1.0), "{text}");
            let missing = r#"jupyterhub_request_duration_seconds_count{method="GET",handler="jupyterhub.apihandlers.base.API404",code="404"}"#;
            assert_eq!(sample(text, missing), Some(1.0), "{text}");
        }

        // With `authenticate_prometheus` off, anyone may scrape.
        let open = HubConfig { authenticate_prometheus: false, ..hub.hub.config().clone() };
        let app = router(Hub::new(open, hub.store.clone(), hub.hub.spawner_arc(), Arc::new(hub.proxy.clone())));
        assert_eq!(call(&app, Method::GET, "/hub/metrics", None, None).await.status, 200);
    }
}
