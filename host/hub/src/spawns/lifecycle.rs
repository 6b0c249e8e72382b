//! One spawn and one stop, start to end (`handlers/base.py spawn_single_user`, `user.py User.spawn` and
//! `User.stop`): the server's credentials, the spawner's two phases, the readiness probe, the route, and the
//! record's state at each step.
//!
//! A spawn is persisted as `Requested` before anything else happens, and the spawner's prepared state is
//! persisted (with `Starting`) before the spawner creates anything, so a crash leaves a record of what may exist.
//! The proxy route is added only after the server answers its readiness probe; only then is the server `Running`.

use std::time::Duration;

use serde_json::{Map, json};
use wasmhub_model::{SpawnState, TokenKind, UserName};
use wasmhub_spawner::{ResolvedProfile, SingleUserContext, SpawnRequest, SpawnerState, singleuser_env};
use wasmhub_store::{HUB_OAUTH_CLIENT, NewApiToken, NewOAuthClient, Server, ServerUpdate, StoreError, TokenOwner};

use crate::Hub;
use crate::metrics::{self, SpawnStatus};
use crate::spawns::progress::ProgressEvent;
use crate::urls::{log_name, route_path, server_prefix, server_url};

/// Why a spawn or a stop did not complete; logged, and kept on the server record as its failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LifecycleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Spawner(#[from] wasmhub_spawner::SpawnError),
    #[error("the spawner did not start the server within {0:?}")]
    StartTimeout(Duration),
    #[error("the server at {0} did not answer within {1:?}")]
    NotReady(String, Duration),
    #[error("the server exited before it answered (exit code {0:?}); its log says why")]
    Exited(Option<i32>),
    #[error("adding the proxy route: {0}")]
    Route(#[from] wasmhub_proxy::RouteError),
}

/// Runs one spawn from `Requested` to `Running`, or to `Failed` with everything it made removed.
pub(super) async fn spawn_server(
    hub: Hub,
    server: Server,
    profile: Option<ResolvedProfile>,
) -> Result<(), LifecycleError> {
    // Beyond `concurrent_spawn_limit` a spawn waits here, still `Requested`, instead of failing with 429 as
    // JupyterHub does; the semaphore is never closed, so acquiring cannot fail.
    let _slot = hub.spawn_slots().acquire().await.ok();
    let mut started_state: Option<SpawnerState> = None;
    let spawn_started = std::time::Instant::now();
    let result = try_spawn(&hub, &server, profile, &mut started_state).await;
    conclude_spawn(&hub, &server, started_state, spawn_started, result).await
}

/// Picks up a spawn an earlier hub process left `Starting` before the spawner said where the server is (see
/// `Spawner::resume`): waits for it with the same limits, routes it and makes it `Running`, or fails it as a spawn
/// fails. The server keeps the token and OAuth client it was started with.
pub(super) async fn resume_spawn(hub: Hub, server: Server) -> Result<(), LifecycleError> {
    let _slot = hub.spawn_slots().acquire().await.ok();
    let (user, name) = (server.user.as_str(), server.name.as_str());
    let prepared = SpawnerState(server.spawner_state.clone());
    let spawn_started = std::time::Instant::now();
    hub.progress().begin(user, name);
    let result = async {
        let forward = forward_spawner_progress(&hub, user, name, &prepared);
        let resumed = tokio::time::timeout(hub.config().start_timeout, hub.spawner().resume(&prepared)).await;
        forward.abort();
        match resumed.map_err(|_| LifecycleError::StartTimeout(hub.config().start_timeout))?? {
            Some(started) => finish_start(&hub, &server, &started).await,
            None => Err(LifecycleError::Spawner(wasmhub_spawner::SpawnError::Failed(
                "the server was gone after the hub restarted".to_owned(),
            ))),
        }
    }
    .await;
    conclude_spawn(&hub, &server, Some(prepared), spawn_started, result).await
}

/// The end of a spawn, whichever way it went: the last progress event and the metrics; on failure, whatever the
/// spawner made is stopped, the server's credentials are removed and the record is `Failed` with the reason.
async fn conclude_spawn(
    hub: &Hub,
    server: &Server,
    started_state: Option<SpawnerState>,
    spawn_started: std::time::Instant,
    result: Result<(), LifecycleError>,
) -> Result<(), LifecycleError> {
    let (user, name) = (server.user.as_str(), server.name.as_str());
    let (last_event, status) = match &result {
        Ok(()) => (ProgressEvent::ready(&server_url(hub.config(), user, name)), SpawnStatus::Success),
        Err(error) => (ProgressEvent::for_error(error), SpawnStatus::Failure),
    };
    hub.metrics().observe_spawn(status, spawn_started.elapsed());
    if let Err(error) = &result {
        tracing::warn!(server = %log_name(user, name), %error, "spawn failed");
        if let Some(state) = &started_state
            && let Err(stop_error) = hub.spawner().stop(state).await
        {
            tracing::warn!(%stop_error, "stopping a server whose spawn failed");
        }
        remove_credentials(hub, &server.user, name).await;
        let failed = ServerUpdate {
            state: Some(SpawnState::Failed),
            failure: Some(error.to_string()),
            ..ServerUpdate::default()
        };
        if let Err(store_error) = hub.store().update_server(&server.user, &server.name, &failed).await {
            tracing::error!(%store_error, "recording a failed spawn");
        }
    }
    hub.progress().finish(user, name, last_event);
    result
}

async fn try_spawn(
    hub: &Hub,
    server: &Server,
    profile: Option<ResolvedProfile>,
    started_state: &mut Option<SpawnerState>,
) -> Result<(), LifecycleError> {
    let config = hub.config();
    let store = hub.store();
    let user = server.user.as_str();
    let name = server.name.as_str();
    let prefix = server_prefix(&config.base_url, user, name);
    // The server's own token: post activity, be reached by its owner (`Spawner.server_token_scopes`).
    let access_scope = format!("access:servers!server={user}/{name}");
    let (_, api_token) = store
        .create_api_token(&NewApiToken {
            owner: TokenOwner::User(server.user.clone()),
            kind: TokenKind::Api,
            supplied: None,
            scopes: vec![access_scope.clone(), format!("users:activity!user={user}")],
            note: format!("Server at {prefix}"),
            expires_at: None,
            session_id: None,
            client_id: HUB_OAUTH_CLIENT.to_owned(),
        })
        .await?;
    let context = SingleUserContext {
        user: user.to_owned(),
        server_name: name.to_owned(),
        api_token: api_token.as_str().to_owned(),
        hub_api_url: config.hub_api_url.clone(),
        base_url: config.base_url.clone(),
        default_url: config.default_url.clone(),
        root_dir: config.notebook_dir.clone(),
        extra: config.environment.clone(),
        hub_origin: config.subdomain_host.as_ref().map(|host| host.hub_origin()),
        server_origin: config.subdomain_host.as_ref().map(|host| host.user_origin(user)),
    };
    store
        .put_oauth_client(&NewOAuthClient {
            client_id: context.oauth_client_id(),
            description: format!("Server at {prefix}"),
            secret: Some(api_token.clone()),
            redirect_uri: context.oauth_callback_url(),
            allowed_scopes: vec![access_scope],
        })
        .await?;
    let owner = store.get_user(&server.user).await?;
    let request = SpawnRequest {
        user: user.to_owned(),
        server_name: name.to_owned(),
        service_prefix: prefix.clone(),
        env: singleuser_env(&context),
        user_options: serde_json::from_str(&server.user_options).unwrap_or_default(),
        groups: owner.groups.iter().map(|group| group.to_string()).collect(),
        admin: owner.admin,
        profile,
    };
    let prepared = hub.spawner().prepare(&request).await?;
    let starting = ServerUpdate {
        state: Some(SpawnState::Starting),
        spawner_state: Some(prepared.0.clone()),
        ..ServerUpdate::default()
    };
    store.update_server(&server.user, &server.name, &starting).await?;
    *started_state = Some(prepared.clone());
    let forward = forward_spawner_progress(hub, user, name, &prepared);
    let started = tokio::time::timeout(config.start_timeout, hub.spawner().start(&request, &prepared)).await;
    forward.abort();
    let started = started.map_err(|_| LifecycleError::StartTimeout(config.start_timeout))??;
    *started_state = Some(started.state.clone());
    finish_start(hub, server, &started).await
}

/// Passes the spawner's own progress messages (the Kubernetes spawner's pod events) on to the spawn's event
/// stream, moving the bar as KubeSpawner does: each message a third of the way closer to 90 %. A spawner
/// without messages gets JupyterHub's default "Spawning server..." at 50 %. Abort the task when the start ends.
fn forward_spawner_progress(hub: &Hub, user: &str, name: &str, prepared: &SpawnerState) -> tokio::task::JoinHandle<()> {
    let Some(mut messages) = hub.spawner().progress(prepared) else {
        hub.progress().push(user, name, ProgressEvent::spawning());
        return tokio::spawn(async {});
    };
    let (hub, user, name) = (hub.clone(), user.to_owned(), name.to_owned());
    tokio::spawn(async move {
        let mut progress = 0.0_f64;
        loop {
            match messages.recv().await {
                Ok(message) => {
                    progress += (90.0 - progress) / 3.0;
                    hub.progress().push(&user, &name, ProgressEvent::message(progress as u32, &message));
                }
                // A burst beyond the channel's capacity loses the oldest messages, not the stream.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

/// The part of a start after the spawner answered: record where the server is, wait for it to answer, add its
/// route, and only then make it `Running`.
async fn finish_start(hub: &Hub, server: &Server, started: &wasmhub_spawner::Started) -> Result<(), LifecycleError> {
    let config = hub.config();
    let store = hub.store();
    let (user, name) = (server.user.as_str(), server.name.as_str());
    let prefix = server_prefix(&config.base_url, user, name);
    let located = ServerUpdate {
        url: Some(started.url.clone()),
        spawner_state: Some(started.state.0.clone()),
        ..ServerUpdate::default()
    };
    store.update_server(&server.user, &server.name, &located).await?;
    wait_up(hub, &format!("{}{prefix}api", started.url), &started.state).await?;
    let mut data = Map::new();
    data.insert("user".into(), json!(user));
    data.insert("server_name".into(), json!(name));
    data.insert("target".into(), json!(started.url));
    data.insert("jupyterhub".into(), json!(true));
    let route = route_path(config, user, name);
    metrics::timed(metrics::proxy_add, hub, hub.routes().add(&route, data)).await?;
    let running = ServerUpdate { state: Some(SpawnState::Running), ..ServerUpdate::default() };
    if let Err(error) = store.update_server(&server.user, &server.name, &running).await {
        let _ = hub.routes().remove(&route).await;
        return Err(error.into());
    }
    Ok(())
}

/// JupyterHub's readiness probe: any answer below 500 means up; refused connections and 5xx are retried with
/// backoff from 0.2 s, doubling to at most 5 s, for `http_timeout`. Between tries the spawner is asked whether
/// the server still exists, so one that exits at start (a bad command, `--allow-root` missing) fails the spawn
/// at once instead of after `http_timeout`.
pub(crate) async fn wait_up(hub: &Hub, url: &str, state: &SpawnerState) -> Result<(), LifecycleError> {
    let timeout = hub.config().http_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(200);
    loop {
        if let Ok(response) = hub.probe_client().get(url).send().await
            && response.status().as_u16() < 500
        {
            return Ok(());
        }
        if let Ok(wasmhub_spawner::PollStatus::Exited { code }) = hub.spawner().poll(state).await {
            return Err(LifecycleError::Exited(code));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(LifecycleError::NotReady(url.to_owned(), timeout));
        }
        tokio::time::sleep(delay.min(deadline - now)).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Deletes the server's API token and OAuth client (`user.stop`), so each spawn gets new ones.
pub(crate) async fn remove_credentials(hub: &Hub, user: &UserName, server_name: &str) {
    let prefix = server_prefix(&hub.config().base_url, user.as_str(), server_name);
    let note = format!("Server at {prefix}");
    match hub.store().list_api_tokens(&TokenOwner::User(user.clone())).await {
        Ok(tokens) => {
            for token in tokens.iter().filter(|token| token.note == note) {
                if let Err(error) = hub.store().delete_api_token(token.id).await {
                    tracing::warn!(%error, "deleting a server token");
                }
            }
        }
        Err(error) => tracing::warn!(%error, "listing a user's tokens"),
    }
    let context = SingleUserContext {
        user: user.to_string(),
        server_name: server_name.to_owned(),
        ..SingleUserContext::default()
    };
    match hub.store().delete_oauth_client(&context.oauth_client_id()).await {
        Ok(()) | Err(StoreError::NotFound { .. }) => {}
        Err(error) => tracing::warn!(%error, "deleting a server's OAuth client"),
    }
    // A named server started before client ids were unambiguous holds JupyterHub's id, which can also be another
    // user's default server (`a`/`b` and `a-b`): its client goes only when its callback is this server's.
    let legacy = context.jupyterhub_oauth_client_id();
    if legacy != context.oauth_client_id() {
        let callback = format!("{}oauth_callback", server_url(hub.config(), user.as_str(), server_name));
        match hub.store().get_oauth_client(&legacy).await {
            Ok(client) if client.redirect_uri == callback => {
                if let Err(error) = hub.store().delete_oauth_client(&legacy).await {
                    tracing::warn!(%error, "deleting a server's OAuth client");
                }
            }
            Ok(_) | Err(StoreError::NotFound { .. }) => {}
            Err(error) => tracing::warn!(%error, "reading a server's OAuth client"),
        }
    }
}

/// Stops a running server: `Stopping` persisted, route removed, spawner stopped, credentials removed, `Stopped`.
pub(super) async fn stop_server(hub: Hub, server: Server, remove: bool) -> Result<(), LifecycleError> {
    metrics::timed(metrics::stop, &hub.clone(), untimed_stop_server(hub, server, remove)).await
}

async fn untimed_stop_server(hub: Hub, server: Server, remove: bool) -> Result<(), LifecycleError> {
    let store = hub.store();
    let stopping = ServerUpdate { state: Some(SpawnState::Stopping), ..ServerUpdate::default() };
    store.update_server(&server.user, &server.name, &stopping).await?;
    let route = route_path(hub.config(), server.user.as_str(), server.name.as_str());
    if let Err(error) = metrics::timed(metrics::proxy_delete, &hub, hub.routes().remove(&route)).await {
        tracing::warn!(%error, "removing a server's route");
    }
    let stopped = hub.spawner().stop(&SpawnerState(server.spawner_state.clone())).await;
    remove_credentials(&hub, &server.user, server.name.as_str()).await;
    let (state, failure) = match &stopped {
        Ok(()) => (SpawnState::Stopped, None),
        Err(error) => (SpawnState::Failed, Some(error.to_string())),
    };
    store
        .update_server(
            &server.user,
            &server.name,
            &ServerUpdate { state: Some(state), failure, ..ServerUpdate::default() },
        )
        .await?;
    stopped?;
    if remove {
        store.delete_server(&server.user, &server.name).await?;
    }
    Ok(())
}
