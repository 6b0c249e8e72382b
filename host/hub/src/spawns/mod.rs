//! The spawn service: the one way a server is started or stopped, whoever asks (the REST API, the pages, the
//! culler, logout, user deletion, adoption after a restart). HTTP layers turn its outcomes into responses; none
//! of them calls another's handler.
//!
//! A start decides the profile once, through the profiles hook (`profiles.rs`), and hands the resolved profile to
//! the spawner in the spawn request, so a hot swap of the profiles policy during a spawn cannot give two answers.
//! `lifecycle.rs` runs one spawn or stop to its end, `progress.rs` keeps each spawn's events for the progress
//! streams, `supervision.rs` adopts servers at start and polls them afterwards.

mod lifecycle;
pub(crate) mod profiles;
pub(crate) mod progress;
mod supervision;
#[cfg(test)]
mod tests;

use std::time::Duration;

use serde_json::{Map, Value};
use wasmhub_model::{ServerName, SpawnState};
use wasmhub_store::{Server, ServerUpdate, StoreError, User};

use crate::Hub;
use crate::metrics::SpawnStatus;
use crate::urls::log_name;

pub(crate) use lifecycle::{LifecycleError, remove_credentials};
pub use supervision::AdoptionReport;

/// What a start request came to, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartOutcome {
    /// The server answered its readiness probe within the wait.
    Running,
    /// The spawn goes on in the background (it outlasted the wait, or another request had already begun it).
    Pending,
}

/// Why a start was not begun or did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// The profiles hook refused the choice; the reason is written for the user.
    #[error("{0}")]
    ProfileRefused(String),
    /// The request does not fit the server's state or the hub's settings; the message is JupyterHub's.
    #[error("{0}")]
    Refused(String),
    /// `active_server_limit` servers are already active (JupyterHub's 429).
    #[error("Active user limit exceeded. Try again in a few minutes.")]
    TooManyActive,
    /// The spawn ran and failed; the reason is on the server record and in the log.
    #[error("Spawn failed for {0}; see the hub log")]
    Failed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the spawn task ended abnormally: {0}")]
    Panicked(String),
}

/// What a stop request came to, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopOutcome {
    /// The server is stopped (or was not running).
    Stopped,
    /// The stop goes on in the background (it outlasted the wait, or another request had already begun it).
    Pending,
}

/// Why a stop was not begun or did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StopError {
    /// The request does not fit the server's state; the message is JupyterHub's.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Failed(#[from] LifecycleError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stop task ended abnormally: {0}")]
    Panicked(String),
}

/// Starts `user`'s server `server_name` with `user_options` (`None` reuses the previous spawn's), waiting up to
/// `wait` for it to be ready; a spawn that takes longer goes on in its own task. The caller has checked
/// `allow_named_servers`, as JupyterHub answers that before anything else (the API before parsing the body, the
/// pages before any page of a named server).
pub(crate) async fn start(
    hub: &Hub,
    user: &User,
    server_name: &ServerName,
    user_options: Option<Map<String, Value>>,
    wait: Duration,
) -> Result<StartOutcome, StartError> {
    // The checks and the record's move to `Requested` run in a task of their own too, so a caller that goes away
    // (a closed connection drops its request) never leaves a server `Requested` with no spawn behind it.
    let begun = tokio::spawn(begin(hub.clone(), user.clone(), server_name.clone(), user_options));
    let (spawn, log) = match begun.await {
        Ok(Ok(Some(begun))) => begun,
        Ok(Ok(None)) => return Ok(StartOutcome::Pending),
        Ok(Err(refused)) => return Err(refused),
        Err(join_error) => return Err(StartError::Panicked(join_error.to_string())),
    };
    match tokio::time::timeout(wait, spawn).await {
        Ok(Ok(Ok(()))) => Ok(StartOutcome::Running),
        Ok(Ok(Err(_logged_by_the_spawn))) => Err(StartError::Failed(log)),
        Ok(Err(join_error)) => Err(StartError::Panicked(join_error.to_string())),
        Err(_still_spawning) => Ok(StartOutcome::Pending),
    }
}

/// The spawn task of a start, with the server's name for messages.
type Begun = (tokio::task::JoinHandle<Result<(), LifecycleError>>, String);

/// A start's checks, its one profile decision and the record's move to `Requested`, then the spawn in its own
/// task; `None` when another request is already spawning or stopping the server.
async fn begin(
    hub: Hub,
    user: User,
    server_name: ServerName,
    user_options: Option<Map<String, Value>>,
) -> Result<Option<Begun>, StartError> {
    let (hub, user, server_name) = (&hub, &user, &server_name);
    let existing = match hub.store().get_server(&user.name, server_name).await {
        Ok(server) => Some(server),
        Err(StoreError::NotFound { .. }) => None,
        Err(other) => return Err(other.into()),
    };
    // The options this spawn runs with, and so the ones its profile is resolved from.
    let effective = match (&user_options, &existing) {
        (Some(options), _) => options.clone(),
        (None, Some(server)) => serde_json::from_str(&server.user_options).unwrap_or_default(),
        (None, None) => Map::new(),
    };
    if existing.is_none()
        && !server_name.as_str().is_empty()
        && let Some(limit) = hub.config().named_server_limit_per_user.filter(|limit| *limit > 0)
    {
        let servers = hub.store().list_servers(Some(&user.name)).await?;
        let named = servers.iter().filter(|server| !server.name.as_str().is_empty()).count();
        if named >= limit as usize {
            return Err(StartError::Refused(format!(
                "User {} already has the maximum of {limit} named servers.  One must be deleted before a new \
                 server can be created",
                user.name
            )));
        }
    }
    let profile = profiles::resolve(hub, user, &effective).await.map_err(StartError::ProfileRefused)?;
    let user_options = user_options.map(|options| Value::Object(options).to_string());
    let server = match existing {
        Some(server) => server,
        None => {
            let options = user_options.clone().unwrap_or_else(|| "{}".to_owned());
            match hub.store().create_server(&user.name, server_name, &options).await {
                Ok(server) => server,
                Err(StoreError::Conflict { .. }) => hub.store().get_server(&user.name, server_name).await?,
                Err(other) => return Err(other.into()),
            }
        }
    };
    let log = log_name(user.name.as_str(), server_name.as_str());
    match server.state {
        SpawnState::Running => return Err(StartError::Refused(format!("{log} is already running"))),
        SpawnState::Stopping => return Err(StartError::Refused(format!("{log} is pending stop"))),
        SpawnState::Requested | SpawnState::Starting => {
            hub.metrics().observe_spawn(SpawnStatus::AlreadyPending, Duration::ZERO);
            return Ok(None);
        }
        SpawnState::Stopped | SpawnState::Failed => {}
    }
    if let Some(limit) = hub.config().active_server_limit.filter(|limit| *limit > 0) {
        let active = hub.store().list_servers(None).await?.iter().filter(|server| server.state.is_active()).count();
        if active >= limit as usize {
            tracing::info!(active, "servers active, no space available");
            hub.metrics().observe_spawn(SpawnStatus::TooManyUsers, Duration::ZERO);
            return Err(StartError::TooManyActive);
        }
    }
    let request = ServerUpdate { state: Some(SpawnState::Requested), user_options, ..ServerUpdate::default() };
    let server = match hub.store().update_server(&user.name, server_name, &request).await {
        Ok(server) => server,
        // Another request moved the server first; it is being spawned or stopped by that request.
        Err(StoreError::IllegalTransition { .. } | StoreError::ConcurrentUpdate { .. }) => return Ok(None),
        Err(other) => return Err(other.into()),
    };
    hub.progress().begin(server.user.as_str(), server.name.as_str());
    // The spawn runs in its own task so that it finishes even when the caller stops waiting for it.
    Ok(Some((tokio::spawn(lifecycle::spawn_server(hub.clone(), server, profile)), log)))
}

/// Stops `server` as the REST API asks: a running server is stopped (waiting up to `wait`), a failed one is put
/// at rest, and with `remove` the record is deleted too.
pub(crate) async fn stop(hub: &Hub, server: Server, remove: bool, wait: Duration) -> Result<StopOutcome, StopError> {
    let log = log_name(server.user.as_str(), server.name.as_str());
    match server.state {
        SpawnState::Stopping => Ok(StopOutcome::Pending),
        SpawnState::Requested | SpawnState::Starting => {
            Err(StopError::Refused(format!("{log} is pending spawn, please wait")))
        }
        SpawnState::Stopped | SpawnState::Failed => {
            if server.state == SpawnState::Failed {
                let stopped = ServerUpdate { state: Some(SpawnState::Stopped), ..ServerUpdate::default() };
                hub.store().update_server(&server.user, &server.name, &stopped).await?;
            }
            if remove {
                hub.store().delete_server(&server.user, &server.name).await?;
            }
            Ok(StopOutcome::Stopped)
        }
        SpawnState::Running => {
            let stopping = tokio::spawn(lifecycle::stop_server(hub.clone(), server, remove));
            match tokio::time::timeout(wait, stopping).await {
                Ok(Ok(Ok(()))) => Ok(StopOutcome::Stopped),
                Ok(Ok(Err(LifecycleError::Store(
                    StoreError::IllegalTransition { .. } | StoreError::ConcurrentUpdate { .. },
                )))) => Ok(StopOutcome::Pending),
                Ok(Ok(Err(error))) => Err(error.into()),
                Ok(Err(join_error)) => Err(StopError::Panicked(join_error.to_string())),
                Err(_still_stopping) => Ok(StopOutcome::Pending),
            }
        }
    }
}

/// Stops a running server and waits (the culler, logout, shutdown); a server in the middle of a spawn or stop,
/// or at rest, is left alone.
pub(crate) async fn stop_if_running(hub: &Hub, server: Server, remove: bool) -> Result<(), LifecycleError> {
    match server.state {
        SpawnState::Running => lifecycle::stop_server(hub.clone(), server, remove).await,
        _ => Ok(()),
    }
}

/// Before a user is deleted: stops an active server and waits, or refuses as JupyterHub does while a spawn or
/// stop is in progress.
pub(crate) async fn stop_for_delete(hub: &Hub, server: &Server) -> Result<(), StopError> {
    let log = log_name(server.user.as_str(), server.name.as_str());
    match server.state {
        SpawnState::Running => Ok(lifecycle::stop_server(hub.clone(), server.clone(), false).await?),
        SpawnState::Stopping => {
            Err(StopError::Refused(format!("{log}'s server is in the process of stopping, please wait.")))
        }
        SpawnState::Requested | SpawnState::Starting => {
            Err(StopError::Refused(format!("{log} is pending spawn, please wait")))
        }
        SpawnState::Stopped | SpawnState::Failed => Ok(()),
    }
}

/// Picks up a spawn an earlier hub process left `Starting` (adoption after a restart).
pub(crate) async fn resume(hub: &Hub, server: Server) -> Result<(), LifecycleError> {
    lifecycle::resume_spawn(hub.clone(), server).await
}

/// Carries out a spawn an earlier hub process was asked for (`Requested`, the request answered or not) but died
/// before beginning: the profile is decided again from the stored options and the spawn runs as any spawn does, so
/// a hub restart or upgrade loses no start a user asked for.
pub(crate) async fn carry_out_requested(hub: &Hub, server: Server) -> Result<(), LifecycleError> {
    let user = hub.store().get_user(&server.user).await?;
    let options: Map<String, Value> = serde_json::from_str(&server.user_options).unwrap_or_default();
    let profile = match profiles::resolve(hub, &user, &options).await {
        Ok(profile) => profile,
        Err(refused) => {
            let update = ServerUpdate {
                state: Some(SpawnState::Failed),
                failure: Some(refused.clone()),
                ..ServerUpdate::default()
            };
            hub.store().update_server(&server.user, &server.name, &update).await?;
            return Err(LifecycleError::Spawner(wasmhub_spawner::SpawnError::Rejected(refused)));
        }
    };
    hub.progress().begin(server.user.as_str(), server.name.as_str());
    lifecycle::spawn_server(hub.clone(), server, profile).await
}
