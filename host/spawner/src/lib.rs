//! Spawners start, watch and stop single-user servers. The hub drives them through the [`Spawner`] trait; this crate
//! also has the local process spawner, which runs `jupyterhub-singleuser` as a child process, and the environment
//! JupyterHub gives a single-user server. [`NoopSpawner`] starts nothing and exists for benchmarks and tests.
//!
//! Starting is two-phase so that a hub crash can never lose a server: [`Spawner::prepare`] decides everything that
//! names the server (port, log file) and the hub persists that state *before* [`Spawner::start`] creates anything.
//! After a restart the hub hands the persisted state back to [`Spawner::poll`] and [`Spawner::stop`] to adopt it.

mod env;
mod local;
mod noop;
mod system_user;

pub use env::{SingleUserContext, singleuser_env};
pub use local::{LocalProcessSpawner, LocalSpawnerConfig, RunAs};
pub use noop::NoopSpawner;

use std::collections::BTreeMap;

/// What the hub asks a spawner to run.
#[derive(Debug, Clone, Default)]
pub struct SpawnRequest {
    pub user: String,
    /// Empty for the default server.
    pub server_name: String,
    /// `JUPYTERHUB_SERVICE_PREFIX`, e.g. `/user/alice/`: the path the server is reached under.
    pub service_prefix: String,
    /// JupyterHub's environment for the server (see [`singleuser_env`]); the spawner adds where to listen.
    pub env: BTreeMap<String, String>,
    /// JupyterHub's `user_options` for this spawn (e.g. `{"profile": "gpu"}`); empty when none were given.
    pub user_options: serde_json::Map<String, serde_json::Value>,
    /// The user's groups and admin flag, for the pods hook (the profile was decided by the hub).
    pub groups: Vec<String>,
    pub admin: bool,
    /// The profile the hub resolved from `user_options`; `None` when no profiles are configured.
    pub profile: Option<ResolvedProfile>,
}

/// The profile the hub resolved for this spawn through the profiles hook (once per spawn); spawners apply it,
/// never decide it again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvedProfile {
    /// The chosen profile's slug, which the spawner records with the server.
    pub slug: String,
    /// The profile's `kubespawner_override` with the chosen options' overrides merged in, applied over the
    /// spawner's configured traits.
    pub kubespawner_override: serde_json::Map<String, serde_json::Value>,
}

/// The spawner's own record of one server, opaque to the hub, which stores it as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnerState(pub String);

/// A started server: where the proxy should send its traffic, and the state to persist.
#[derive(Debug, Clone)]
pub struct Started {
    /// The route target, `http://ip:port` without a path: the proxy forwards the full request path.
    pub url: String,
    pub state: SpawnerState,
}

/// What [`Spawner::poll`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollStatus {
    Running,
    /// The server is gone; the exit code when the spawner saw it.
    Exited {
        code: Option<i32>,
    },
}

/// Why a spawner could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("spawner state is not one this spawner wrote: {0}")]
    BadState(String),
    #[error("cannot start {command:?}: {source}")]
    Start { command: String, source: std::io::Error },
    #[error("cannot prepare the server: {0}")]
    Prepare(std::io::Error),
    #[error("server process {pid} is still running after SIGKILL")]
    Unkillable { pid: i32 },
    /// The spawn's choices cannot be applied (a resolved profile override this spawner cannot use); the message is
    /// written for the user.
    #[error("{0}")]
    Rejected(String),
    /// The server could not be started or stopped; the message is written for the user.
    #[error("{0}")]
    Failed(String),
}

/// Starts, polls and stops single-user servers.
#[async_trait::async_trait]
pub trait Spawner: Send + Sync {
    /// Decides the server's resources (port, log file, object names) without starting anything.
    async fn prepare(&self, request: &SpawnRequest) -> Result<SpawnerState, SpawnError>;

    /// Starts the server described by `request` with the `prepared` state.
    async fn start(&self, request: &SpawnRequest, prepared: &SpawnerState) -> Result<Started, SpawnError>;

    /// Whether the server is still there. Works on state from an earlier hub process, for adoption.
    async fn poll(&self, state: &SpawnerState) -> Result<PollStatus, SpawnError>;

    /// Stops the server and waits until it is gone. Stopping a stopped server succeeds.
    async fn stop(&self, state: &SpawnerState) -> Result<(), SpawnError>;

    /// Progress messages of a spawn prepared with `state`, as they happen (the Kubernetes spawner's pod events);
    /// `None` when the spawner has none to tell.
    fn progress(&self, _state: &SpawnerState) -> Option<tokio::sync::broadcast::Receiver<String>> {
        None
    }

    /// Picks up a start that an earlier hub process began with the `prepared` state but never saw finish (it
    /// died between `prepare` and the end of `start`): waits for what that start created and returns where it is
    /// reached, or `None` when nothing of it exists, in which case the hub fails the spawn. Nothing is created
    /// here: the server keeps the credentials it was started with. Spawners that cannot find such a server
    /// answer `None`.
    async fn resume(&self, _prepared: &SpawnerState) -> Result<Option<Started>, SpawnError> {
        Ok(None)
    }

    /// Removes servers this spawner started that no record in `known` owns (a hub that died after creating a
    /// server but before storing its state), returning their names. Spawners that cannot tell their own servers
    /// apart collect nothing.
    async fn collect_orphans(&self, _known: &[SpawnerState]) -> Result<Vec<String>, SpawnError> {
        Ok(Vec::new())
    }
}
