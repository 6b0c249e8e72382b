//! A hub's life as a server, start to end: adopt what an earlier process left (before the hub answers anything), then
//! serve, poll servers and cull until a signal or `POST /hub/api/shutdown`, then let requests in flight finish
//! and, when the shutdown request asked for it, stop every server. A signal leaves servers running for the next
//! start to adopt, as JupyterHub does with `cleanup_servers = False`.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wasmhub_store::StoreError;

use crate::{CullerConfig, Hub, serve};

/// What runs beside the hub's listener.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// `Spawner.poll_interval`: how often running servers are checked.
    pub poll_interval: Duration,
    /// The built-in culler (`cull.enabled`), or none.
    pub culler: Option<CullerConfig>,
    /// The database lease.
    pub lease: LeaseSettings,
    /// How often the proxy's routes are checked against the servers and put right (`check_routes`), for a proxy
    /// in another process that may restart empty (`ConfigurableHTTPProxy.check_running_interval`); none for the
    /// built-in proxy, whose table lives and dies with the hub.
    pub route_check_interval: Option<Duration>,
}

/// How a hub takes its database's lease before it acts (spawns, supervision, culling, route checks), so that
/// two hubs on one database never both act.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// How long the lease lasts without renewal: a hub that died without giving it up is waited for this long.
    pub ttl: Duration,
    /// Whether a lease another hub holds is waited for (PostgreSQL, a rolling update) or refused (SQLite, whose
    /// file serves one hub).
    pub wait: bool,
}

impl Default for LeaseSettings {
    fn default() -> LeaseSettings {
        LeaseSettings { ttl: Duration::from_secs(10), wait: false }
    }
}

/// How often a hub waiting for the lease tries again: the new hub acts within this of the old one letting go.
const LEASE_RETRY: Duration = Duration::from_millis(250);

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

/// Runs `hub` on `listener` until `shutdown` is cancelled or a shutdown is requested through the API.
///
/// `serving` is called once adoption is done, so whatever else routes requests to the hub (the built-in proxy and
/// its in-process target) starts only then; its error stops the hub; `drained` is awaited after the listener stopped and before servers are
/// stopped, so the caller can wait for the requests it routed. `shutdown` is cancelled on the way out, which also
/// ends the supervisor and the culler.
pub async fn run<F: Future<Output = ()>>(
    hub: Hub,
    listener: TcpListener,
    settings: RunSettings,
    shutdown: CancellationToken,
    serving: impl FnOnce(&Hub) -> Result<(), String>,
    drained: impl FnOnce() -> F,
) -> Result<(), RunError> {
    let holder = lease_holder();
    if !take_lease(&hub, &holder, &settings.lease, &shutdown).await? {
        return Ok(());
    }
    let renewer = {
        let (hub, holder, ttl, shutdown) = (hub.clone(), holder.clone(), settings.lease.ttl, shutdown.clone());
        tokio::spawn(async move { keep_lease(&hub, &holder, ttl, &shutdown).await })
    };
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
    renewer.abort();
    // Given up last, after this hub's servers are stopped or left for the next one, so it acts at once.
    if let Err(error) = hub.store().release_lease(&holder).await {
        tracing::warn!(%error, "giving up the database lease; the next hub waits for it to expire");
    }
    served?;
    if let Some(stopped) = stopped? {
        tracing::info!(stopped, "servers stopped as the shutdown request asked");
    }
    Ok(())
}

/// Who this hub is in the lease: host, process and a random part, so a restarted process never passes for the old.
fn lease_holder() -> String {
    let mut random = [0u8; 6];
    // Without randomness the host and pid still tell hubs apart; only a recycled pid on one host could not be.
    let _ = getrandom::fill(&mut random);
    let random: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{}:{}:{random}", this_host(), std::process::id())
}

/// This machine's name, as the lease records it (empty when unknown).
fn this_host() -> String {
    std::fs::read_to_string("/etc/hostname").map(|name| name.trim().to_owned()).unwrap_or_default()
}

/// Whether `holder` names a hub process of this machine that no longer runs.
fn holder_is_dead_here(holder: &str) -> bool {
    let mut parts = holder.splitn(3, ':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else { return false };
    host == this_host() && pid.parse::<u32>().is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// Takes the lease, waiting for it when the settings say so; `false` when a shutdown came first.
async fn take_lease(
    hub: &Hub,
    holder: &str,
    settings: &LeaseSettings,
    shutdown: &CancellationToken,
) -> Result<bool, RunError> {
    let mut announced = false;
    loop {
        match hub.store().take_lease(holder, settings.ttl).await {
            Ok(None) => {
                tracing::info!(holder, "took the database lease; this hub acts now");
                return Ok(true);
            }
            // A hub of this machine that is gone (killed, so it never let go) holds it: taken over at once.
            Ok(Some(other)) if holder_is_dead_here(&other) => {
                tracing::warn!(holder = %other, "the hub that held the database lease is gone; taking it over");
                if let Err(error) = hub.store().release_lease(&other).await {
                    tracing::warn!(%error, "releasing a dead hub's lease");
                }
                continue;
            }
            Ok(Some(other)) if !settings.wait => {
                return Err(RunError::Lease(format!(
                    "another hub ({other}) uses this database, and a SQLite file serves one hub: stop it, or use \
                     PostgreSQL (hub.db.type: postgres) to run two hubs during a rolling update"
                )));
            }
            Ok(Some(other)) => {
                if !announced {
                    tracing::info!(holder = %other, "waiting for the hub that holds the database lease to let go");
                    announced = true;
                }
            }
            Err(error) => tracing::warn!(%error, "taking the database lease; trying again"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(false),
            () = tokio::time::sleep(LEASE_RETRY) => {}
        }
    }
}

/// Renews the lease every third of its life; a lease found taken by another hub stops this one (it must not act
/// beside it), and a database that does not answer is tried again until the lease would have run out.
async fn keep_lease(hub: &Hub, holder: &str, ttl: Duration, shutdown: &CancellationToken) {
    let period = (ttl / 3).max(Duration::from_millis(100));
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        match hub.store().renew_lease(holder, ttl).await {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::error!("another hub took the database lease; this hub stops acting");
                shutdown.cancel();
                return;
            }
            Err(error) if last_renewed.elapsed() >= ttl => {
                tracing::error!(%error, "the database lease ran out while the database did not answer; stopping");
                shutdown.cancel();
                return;
            }
            Err(error) => tracing::warn!(%error, "renewing the database lease; trying again"),
        }
    }
}
