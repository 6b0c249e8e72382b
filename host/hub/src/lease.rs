//! The database lease: one hub acts on a database at a time (spawns, supervision, culling, route checks). A hub
//! takes it before it binds its listener, so during a rolling update the new hub neither acts nor answers until the
//! old one has let go, and requests meanwhile wait in the proxy's hold. It is renewed from the moment it is taken
//! and given up by the caller of [`crate::run`] after the hub has stopped.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wasmhub_store::Store;

use crate::RunError;

/// How a hub takes its database's lease.
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

/// The lease, held and renewed in the background until [`Lease::release`].
pub struct Lease {
    holder: String,
    store: Arc<dyn Store>,
    renewer: JoinHandle<()>,
}

impl Lease {
    /// Takes the lease, waiting for it when the settings say so; none when `shutdown` came first. Once taken it is
    /// renewed every third of its life; if another hub is found holding it, `shutdown` is cancelled, since this hub
    /// must not act beside it.
    pub async fn take(
        store: Arc<dyn Store>,
        settings: &LeaseSettings,
        shutdown: &CancellationToken,
    ) -> Result<Option<Lease>, RunError> {
        let holder = lease_holder();
        if !take(store.as_ref(), &holder, settings, shutdown).await? {
            return Ok(None);
        }
        let renewer = {
            let (store, holder, ttl, shutdown) = (store.clone(), holder.clone(), settings.ttl, shutdown.clone());
            tokio::spawn(async move { keep(store.as_ref(), &holder, ttl, &shutdown).await })
        };
        Ok(Some(Lease { holder, store, renewer }))
    }

    /// Gives the lease up, so the next hub acts at once rather than after it expires.
    pub async fn release(self) {
        self.renewer.abort();
        if let Err(error) = self.store.release_lease(&self.holder).await {
            tracing::warn!(%error, "giving up the database lease; the next hub waits for it to expire");
        }
    }
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
async fn take(
    store: &dyn Store,
    holder: &str,
    settings: &LeaseSettings,
    shutdown: &CancellationToken,
) -> Result<bool, RunError> {
    let mut announced = false;
    loop {
        match store.take_lease(holder, settings.ttl).await {
            Ok(None) => {
                tracing::info!(holder, "took the database lease; this hub acts now");
                return Ok(true);
            }
            // A hub of this machine that is gone (killed, so it never let go) holds it: taken over at once.
            Ok(Some(other)) if holder_is_dead_here(&other) => {
                tracing::warn!(holder = %other, "the hub that held the database lease is gone; taking it over");
                if let Err(error) = store.release_lease(&other).await {
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

/// Renews the lease every third of its life. A lease found held by another hub stops this one. A database that
/// does not answer is tried again for as long as it takes: the lease is ours until another hub takes it, and no hub
/// can take it, or act, while the database is away, so an outage longer than the lease does not end this hub.
async fn keep(store: &dyn Store, holder: &str, ttl: Duration, shutdown: &CancellationToken) {
    let period = (ttl / 3).max(Duration::from_millis(100));
    let mut failing = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        match store.renew_lease(holder, ttl).await {
            Ok(true) if failing => {
                tracing::info!("the database answers again; the database lease is renewed");
                failing = false;
            }
            Ok(true) => {}
            Ok(false) => {
                tracing::error!("another hub took the database lease; this hub stops acting");
                shutdown.cancel();
                return;
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "renewing the database lease; trying again until the database answers");
                }
                failing = true;
            }
        }
    }
}
