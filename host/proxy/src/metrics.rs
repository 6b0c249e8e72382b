//! Prometheus metrics: CHP's counters under CHP's names (so existing dashboards keep working) plus what CHP lacks:
//! route count, open connections and websockets, upstream failures by kind, request latency and memory.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabel {
    pub(crate) status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabel {
    pub(crate) kind: &'static str,
}

/// Every metric the proxy records.
pub struct Metrics {
    registry: Registry,
    pub(crate) api_route_get: Counter,
    pub(crate) api_route_add: Counter,
    pub(crate) api_route_delete: Counter,
    pub(crate) requests_web: Counter,
    pub(crate) requests_ws: Counter,
    pub(crate) requests_proxy: Family<StatusLabel, Counter>,
    pub(crate) requests_api: Family<StatusLabel, Counter>,
    pub(crate) upstream_errors: Family<KindLabel, Counter>,
    pub(crate) request_duration: Histogram,
    pub(crate) routes: Gauge,
    pub(crate) connections_open: Gauge,
    pub(crate) websockets_open: Gauge,
    resident_memory: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::default(),
            api_route_get: Counter::default(),
            api_route_add: Counter::default(),
            api_route_delete: Counter::default(),
            requests_web: Counter::default(),
            requests_ws: Counter::default(),
            requests_proxy: Family::default(),
            requests_api: Family::default(),
            upstream_errors: Family::default(),
            request_duration: Histogram::new(exponential_buckets(0.0001, 2.5, 14)),
            routes: Gauge::default(),
            connections_open: Gauge::default(),
            websockets_open: Gauge::default(),
            resident_memory: Gauge::default(),
        };
        metrics.registry.register("api_route_get", "Count of API route GET requests", metrics.api_route_get.clone());
        metrics.registry.register("api_route_add", "Count of API route POST requests", metrics.api_route_add.clone());
        metrics.registry.register(
            "api_route_delete",
            "Count of API route DELETE requests",
            metrics.api_route_delete.clone(),
        );
        metrics.registry.register("requests_web", "Count of proxied web requests", metrics.requests_web.clone());
        metrics.registry.register("requests_ws", "Count of proxied websocket requests", metrics.requests_ws.clone());
        metrics.registry.register("requests_proxy", "Proxied responses by status code", metrics.requests_proxy.clone());
        metrics.registry.register("requests_api", "API responses by status code", metrics.requests_api.clone());
        metrics.registry.register(
            "wasmhub_proxy_upstream_errors",
            "Requests that failed to reach their target, by kind (connect, timeout, protocol)",
            metrics.upstream_errors.clone(),
        );
        metrics.registry.register(
            "wasmhub_proxy_request_duration_seconds",
            "Time from request to upstream response headers",
            metrics.request_duration.clone(),
        );
        metrics.registry.register("wasmhub_proxy_routes", "Routes in the table", metrics.routes.clone());
        metrics.registry.register(
            "wasmhub_proxy_connections_open",
            "Client connections open on the proxy port",
            metrics.connections_open.clone(),
        );
        metrics.registry.register(
            "wasmhub_proxy_websockets_open",
            "Websockets being proxied",
            metrics.websockets_open.clone(),
        );
        metrics.registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the proxy process",
            metrics.resident_memory.clone(),
        );
        metrics
    }
}

impl Metrics {
    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        if let Some(bytes) = resident_memory_bytes() {
            self.resident_memory.set(bytes);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

fn resident_memory_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
