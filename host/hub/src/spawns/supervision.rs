//! Keeping the store, the spawner and the proxy in agreement: [`Hub::adopt_servers`] at start (JupyterHub's
//! `init_spawners` plus `check_routes`) and [`Hub::supervise`] afterwards (`Spawner.poll_interval` and
//! `last_activity_interval`).
//!
//! The store is the record of what may exist: a server is only ever `Running` with a route, so after a restart
//! every active record is either confirmed with the spawner and routed again, or cleaned up and put at rest.
//! Routes the hub did not make for a running server are removed; routes other parties added are left alone.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, json};
use wasmhub_model::SpawnState;
use wasmhub_spawner::{PollStatus, SpawnerState};
use wasmhub_store::{Server, ServerUpdate, StoreError};

use crate::Hub;
use crate::spawns::remove_credentials;
use crate::urls::route_path;

/// What adoption did, for the log and for tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AdoptionReport {
    /// Servers found alive and routed again (`user` or `user:server`).
    pub adopted: Vec<String>,
    /// Servers whose process was gone, now at rest.
    pub cleaned_up: Vec<String>,
    /// Routes removed because no running server owns them.
    pub stray_routes_removed: Vec<String>,
    /// Spawns the old process left between `prepare` and the end of `start` whose server exists, and spawns it was
    /// asked for but had not begun (`Requested`): they go on in the background (`Spawner::resume`, or the whole
    /// spawn) and end `Running` or `Failed` like any spawn.
    pub resumed: Vec<String>,
    /// Servers the spawner had made that no record owns, now removed (`Spawner::collect_orphans`).
    pub orphans_collected: Vec<String>,
}

fn log_name(server: &Server) -> String {
    if server.name.as_str().is_empty() {
        server.user.to_string()
    } else {
        format!("{}:{}", server.user, server.name.as_str())
    }
}

impl Hub {
    /// Reconciles every active server record with the spawner and the proxy. Run once at start, before the hub
    /// answers requests, so no request sees a half-adopted server.
    pub async fn adopt_servers(&self) -> Result<AdoptionReport, StoreError> {
        let mut report = AdoptionReport::default();
        let mut routed = BTreeSet::new();
        // Spawns the old process left in flight, which go on in the background once adoption is done.
        let mut to_go_on = Vec::new();
        for server in self.store().list_servers(None).await? {
            let name = log_name(&server);
            match server.state {
                SpawnState::Stopped | SpawnState::Failed => continue,
                // The old process died during the spawn: if what it began exists, the spawn goes on in the background
                // (waiting for it here would keep the hub from answering, and a starting server may be waiting for
                // the hub's API to answer).
                SpawnState::Starting if !server.spawner_state.is_empty() => {
                    let state = SpawnerState(server.spawner_state.clone());
                    if let Ok(PollStatus::Running) = self.spawner().poll(&state).await {
                        report.resumed.push(name);
                        to_go_on.push(server);
                    } else {
                        self.clean_up_dead(&server).await;
                        report.cleaned_up.push(name);
                    }
                }
                // Nothing was created yet for a start the old process was asked for: it is carried out now.
                SpawnState::Requested => {
                    report.resumed.push(name);
                    to_go_on.push(server);
                }
                SpawnState::Running | SpawnState::Starting => {
                    if self.confirm_alive(&server).await {
                        // Keys are stored normalised (no trailing slash); compare with what the table holds.
                        let path = route_path(self.config(), server.user.as_str(), server.name.as_str());
                        if let Ok(Some(route)) = self.routes().get(&path).await {
                            routed.insert(route.key().to_owned());
                        }
                        report.adopted.push(name);
                    } else {
                        self.clean_up_dead(&server).await;
                        report.cleaned_up.push(name);
                    }
                }
                SpawnState::Stopping => {
                    self.finish_stop(&server).await;
                    report.cleaned_up.push(name);
                }
            }
        }
        for route in self.listed_routes().await {
            let ours = route.data().get("jupyterhub").and_then(|value| value.as_bool()).unwrap_or(false);
            let owner = route.data().get("user").is_some();
            if ours && owner && !routed.contains(route.key()) {
                if let Err(error) = self.routes().remove(route.key()).await {
                    tracing::warn!(route = route.key(), %error, "removing a stray route");
                }
                report.stray_routes_removed.push(route.key().to_owned());
            }
        }
        report.orphans_collected = self.collect_orphans().await?;
        // After the stray routes went, so a resumed server's new route is never taken for one.
        for server in to_go_on {
            let name = log_name(&server);
            let hub = self.clone();
            tokio::spawn(async move {
                // The record says how far the old process got: nothing begun (`Requested`), or a server to wait for.
                let went_on = match server.state {
                    SpawnState::Requested => crate::spawns::carry_out_requested(&hub, server).await,
                    _ => crate::spawns::resume(&hub, server).await,
                };
                if let Err(error) = went_on {
                    tracing::warn!(server = %name, %error, "a spawn left by the previous hub failed");
                }
            });
        }
        tracing::info!(
            adopted = report.adopted.len(),
            cleaned_up = report.cleaned_up.len(),
            stray_routes = report.stray_routes_removed.len(),
            resumed = report.resumed.len(),
            orphans_collected = report.orphans_collected.len(),
            "servers from the previous hub process reconciled"
        );
        Ok(report)
    }

    /// Asks the spawner to remove what it made for no record that may still own something (`Starting`,
    /// `Running` or `Stopping`). A spawner error is logged, not fatal: orphans cost resources, not correctness.
    async fn collect_orphans(&self) -> Result<Vec<String>, StoreError> {
        let known: Vec<SpawnerState> = self
            .store()
            .list_servers(None)
            .await?
            .into_iter()
            .filter(|server| matches!(server.state, SpawnState::Starting | SpawnState::Running | SpawnState::Stopping))
            .filter(|server| !server.spawner_state.is_empty())
            .map(|server| SpawnerState(server.spawner_state))
            .collect();
        match self.spawner().collect_orphans(&known).await {
            Ok(collected) => {
                if !collected.is_empty() {
                    tracing::warn!(?collected, "removed servers no record owns (left by a hub that died mid-spawn)");
                }
                Ok(collected)
            }
            Err(error) => {
                tracing::warn!(%error, "collecting orphaned servers");
                Ok(Vec::new())
            }
        }
    }

    /// Whether a `Running` server is alive; if so it has its route. (A `Starting` one with spawner state is resumed
    /// in the background instead; one without never got past `spawner.prepare`, and nothing of it runs.)
    async fn confirm_alive(&self, server: &Server) -> bool {
        let (Some(url), false) = (&server.url, server.spawner_state.is_empty()) else {
            return false;
        };
        let state = SpawnerState(server.spawner_state.clone());
        match self.spawner().poll(&state).await {
            Ok(PollStatus::Running) => {}
            Ok(PollStatus::Exited { .. }) => return false,
            Err(error) => {
                tracing::warn!(server = %log_name(server), %error, "cannot poll a server from the previous hub");
                return false;
            }
        }
        self.add_route(server, url).await.is_ok()
    }

    /// The proxy's routes, or none when the proxy cannot list them now (logged; the next pass tries again).
    async fn listed_routes(&self) -> Vec<std::sync::Arc<wasmhub_proxy::routes::Route>> {
        self.routes().list().await.unwrap_or_else(|error| {
            tracing::warn!(%error, "listing the proxy's routes");
            Vec::new()
        })
    }

    async fn add_route(&self, server: &Server, url: &str) -> Result<(), wasmhub_proxy::RouteError> {
        let mut data = Map::new();
        data.insert("user".into(), json!(server.user.as_str()));
        data.insert("server_name".into(), json!(server.name.as_str()));
        data.insert("target".into(), json!(url));
        data.insert("jupyterhub".into(), json!(true));
        let route = route_path(self.config(), server.user.as_str(), server.name.as_str());
        self.routes().add(&route, data).await
    }

    /// A server whose process is gone (or cannot be confirmed): stop what may be left, drop its route and
    /// credentials, and put it at rest. A `Starting` one is `Failed` (its spawn never finished), a `Running` one
    /// `Stopped`, as JupyterHub's poll does.
    async fn clean_up_dead(&self, server: &Server) {
        let route = route_path(self.config(), server.user.as_str(), server.name.as_str());
        if let Err(error) = self.routes().remove(&route).await {
            tracing::warn!(%route, %error, "removing the route of a dead server");
        }
        if !server.spawner_state.is_empty()
            && let Err(error) = self.spawner().stop(&SpawnerState(server.spawner_state.clone())).await
        {
            tracing::warn!(server = %log_name(server), %error, "stopping the leftovers of a dead server");
        }
        remove_credentials(self, &server.user, server.name.as_str()).await;
        match server.state {
            SpawnState::Starting => {
                self.put_at_rest(server, SpawnState::Failed, Some("the server was gone after the hub restarted")).await
            }
            _ => self.put_at_rest(server, SpawnState::Stopped, None).await,
        }
    }

    /// A stop the old process began: finish it.
    async fn finish_stop(&self, server: &Server) {
        let route = route_path(self.config(), server.user.as_str(), server.name.as_str());
        let _ = self.routes().remove(&route).await;
        let stopped = if server.spawner_state.is_empty() {
            Ok(())
        } else {
            self.spawner().stop(&SpawnerState(server.spawner_state.clone())).await
        };
        remove_credentials(self, &server.user, server.name.as_str()).await;
        match stopped {
            Ok(()) => self.put_at_rest(server, SpawnState::Stopped, None).await,
            Err(error) => self.put_at_rest(server, SpawnState::Failed, Some(&error.to_string())).await,
        }
    }

    async fn put_at_rest(&self, server: &Server, state: SpawnState, failure: Option<&str>) {
        let update =
            ServerUpdate { state: Some(state), failure: failure.map(str::to_owned), ..ServerUpdate::default() };
        if let Err(error) = self.store().update_server(&server.user, &server.name, &update).await {
            tracing::error!(server = %log_name(server), %error, "putting a server at rest");
        }
    }

    /// Stops every running server and waits (JupyterHub's `cleanup_servers`, and `POST /shutdown` with
    /// `servers: true`). Failures are logged; the rest are still stopped.
    pub async fn stop_all_servers(&self) -> Result<usize, StoreError> {
        let mut stopped = 0;
        for server in self.store().list_servers(None).await? {
            if server.state != SpawnState::Running {
                continue;
            }
            let name = log_name(&server);
            match crate::spawns::stop_if_running(self, server, false).await {
                Ok(()) => stopped += 1,
                Err(error) => tracing::warn!(server = %name, %error, "stopping a server at shutdown"),
            }
        }
        Ok(stopped)
    }

    /// Runs until `shutdown` resolves: every `poll_interval` checks that running servers are still alive (a dead
    /// one loses its route and is put at rest), and copies the proxy's per-route activity into the store, so the
    /// idle culler sees traffic that went through the proxy.
    pub async fn supervise(&self, poll_interval: Duration, shutdown: impl std::future::Future<Output = ()>) {
        crate::periodic::every(poll_interval, shutdown, || async {
            if let Err(error) = self.poll_running().await {
                tracing::warn!(%error, "polling running servers");
            }
            if let Err(error) = self.sync_route_activity().await {
                tracing::warn!(%error, "copying proxy activity into the store");
            }
        })
        .await;
    }

    /// One round of JupyterHub's `poll_and_notify` over every running server.
    pub async fn poll_running(&self) -> Result<(), StoreError> {
        for server in self.store().list_servers(None).await? {
            if server.state != SpawnState::Running {
                continue;
            }
            let state = SpawnerState(server.spawner_state.clone());
            if let Ok(PollStatus::Exited { code }) = self.spawner().poll(&state).await {
                tracing::warn!(server = %log_name(&server), ?code, "server exited on its own; removing its route");
                // Another request may be stopping it right now; only a server still `Running` is cleaned up.
                match self.store().get_server(&server.user, &server.name).await {
                    Ok(current) if current.state == SpawnState::Running => self.clean_up_dead(&current).await,
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Copies each hub route's `last_activity` from the proxy to its server and user (`update_last_activity`).
    pub async fn sync_route_activity(&self) -> Result<(), StoreError> {
        for route in self.listed_routes().await {
            let (Some(user), Some(server)) = (
                route.data().get("user").and_then(|value| value.as_str()),
                route.data().get("server_name").and_then(|value| value.as_str()),
            ) else {
                continue;
            };
            let Some(at) = DateTime::<Utc>::from_timestamp_millis(route.last_activity_ms()) else { continue };
            let (Ok(user), Ok(server)) =
                (wasmhub_model::UserName::parse(user), wasmhub_model::ServerName::parse(server))
            else {
                continue;
            };
            match self.store().record_server_activity(&user, &server, at).await {
                Ok(()) | Err(StoreError::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
            match self.store().record_user_activity(&user, at).await {
                Ok(()) | Err(StoreError::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}
