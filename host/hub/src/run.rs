//! A hub's life as a server, start to end, while it holds the database lease (`lease.rs`): adopt what an earlier
//! process left (before the hub answers anything), then
//! serve, poll servers and cull until a signal or `POST /hub/api/shutdown`, then let requests in flight finish
//! and, when the shutdown request asked for it, stop every server. A signal leaves servers running for the next
//! start to adopt, as JupyterHub does with `cleanup_servers = False`.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wasmhub_store::StoreError;

use crate::{CullerConfig, Hub, Lease, serve};

/// What runs beside the hub's listener.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// `Spawner.poll_interval`: how often running servers are checked.
    pub poll_interval: Duration,
    /// The built-in culler (`cull.enabled`), or none.
    pub culler: Option<CullerConfig>,
    /// How often the proxy's routes are checked against the servers and put right (`check_routes`), for a proxy
    /// in another process that may restart empty (`ConfigurableHTTPProxy.check_running_interval`); none for the
    /// built-in proxy, whose table lives and dies with the hub.
    pub route_check_interval: Option<Duration>,
}

/// Why a hub stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("adopting servers from the previous run: {0}")]
    Adopt(StoreError),
    #[error("{0}")]
    Lease(String),
    #[error("{0}")]
    Serving(String),
    #[error("serving the hub: {0}")]
    Serve(std::io::Error),
    #[error("stopping servers at shutdown: {0}")]
    StopServers(StoreError),
}

/// Runs `hub` on `listener` until `shutdown` is cancelled or a shutdown is requested through the API. The caller
/// holds the database `lease` (taken before it bound the listener) and gives it up after this returns.
///
/// `serving` is called once adoption is done, so whatever else routes requests to the hub (the built-in proxy and
/// its in-process target) starts only then; its error stops the hub; `drained` is awaited after the listener stopped and before servers are
/// stopped, so the caller can wait for the requests it routed. `shutdown` is cancelled on the way out, which also
/// ends the supervisor and the culler.
pub async fn run<F: Future<Output = ()>>(
    hub: Hub,
    _lease: &Lease,
    listener: TcpListener,
    settings: RunSettings,
    shutdown: CancellationToken,
    serving: impl FnOnce(&Hub) -> Result<(), String>,
    drained: impl FnOnce() -> F,
) -> Result<(), RunError> {
    let report = hub.adopt_servers().await.map_err(RunError::Adopt)?;
    if !report.cleaned_up.is_empty() {
        tracing::warn!(servers = ?report.cleaned_up, "servers that were gone after the restart were put at rest");
    }
    let supervisor = {
        let (hub, shutdown) = (hub.clone(), shutdown.clone());
        tokio::spawn(async move { hub.supervise(settings.poll_interval, shutdown.cancelled_owned()).await })
    };
    let culler = settings.culler.map(|culler| {
        let (hub, shutdown) = (hub.clone(), shutdown.clone());
        tokio::spawn(async move { hub.run_culler(culler, shutdown.cancelled_owned()).await })
    });
    let route_checker = settings.route_check_interval.map(|interval| {
        let (hub, shutdown) = (hub.clone(), shutdown.clone());
        tokio::spawn(async move {
            // At once, then every interval: a proxy that restarted empty gets its routes back within one period.
            crate::api::proxy::reconcile_routes(&hub).await;
            crate::periodic::every(interval, shutdown.cancelled_owned(), || crate::api::proxy::reconcile_routes(&hub))
                .await;
        })
    });
    if let Err(message) = serving(&hub) {
        shutdown.cancel();
        return Err(RunError::Serving(message));
    }
    let served = serve(hub.clone(), listener, shutdown.clone().cancelled_owned()).await.map_err(RunError::Serve);
    drained().await;
    // `POST /hub/api/shutdown` asks whether servers go too; a signal leaves them for the next start to adopt.
    let stopped = match hub.shutdown_request() {
        Some(request) if request.servers && served.is_ok() => {
            hub.stop_all_servers().await.map(Some).map_err(RunError::StopServers)
        }
        _ => Ok(None),
    };
    shutdown.cancel();
    let _ = supervisor.await;
    if let Some(culler) = culler {
        let _ = culler.await;
    }
    if let Some(route_checker) = route_checker {
        let _ = route_checker.await;
    }
    served?;
    if let Some(stopped) = stopped? {
        tracing::info!(stopped, "servers stopped as the shutdown request asked");
    }
    Ok(())
}
