//! The built-in idle culler (z2jh `cull.*`): what `jupyterhub-idle-culler` does as a service, run inside the hub
//! and decided by the cull hook of the policy host, so a site can swap the rule (a shorter timeout for GPU
//! servers, say) without restarting anything. The external culler still works against the REST API.
//!
//! One sweep lists the ready servers, asks the hook once for the whole batch, and stops (or stops and removes)
//! what it says, at most `concurrency` at a time. A failing cull policy falls back to the built-in idle rule
//! inside the policy host, so an error never culls anything the idle rule would keep.

use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use wasmhub_model::SpawnState;
use wasmhub_policy::hooks::{CullAction, CullServer};
use wasmhub_store::{Server, StoreError, UserQuery, UserState};

use crate::Hub;

/// What the culler does besides what the hook decides (`cull.every`, `cull.concurrency`, `cull.adminUsers`).
#[derive(Debug, Clone)]
pub struct CullerConfig {
    pub every: Duration,
    pub concurrency: usize,
    /// Whether admins' servers (and, with `cull_users_after`, admins) are culled at all.
    pub cull_admin_users: bool,
    /// `cull.users` (`--cull-users`): users with no active server and no activity for this long are deleted after
    /// the servers are handled; `None` keeps every user.
    pub cull_users_after: Option<Duration>,
}

/// One sweep's result, for the log and tests: `(server, reason)` for every server stopped, and the users deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CullSweep {
    pub stopped: Vec<(String, String)>,
    pub kept: usize,
    pub users_deleted: Vec<String>,
}

impl Hub {
    /// Sweeps every `config.every` until `shutdown` resolves.
    pub async fn run_culler(&self, config: CullerConfig, shutdown: impl std::future::Future<Output = ()>) {
        crate::periodic::every(config.every, shutdown, || async {
            match self.cull_once(&config).await {
                Ok(sweep) if !sweep.stopped.is_empty() || !sweep.users_deleted.is_empty() => {
                    tracing::info!(
                        stopped = ?sweep.stopped,
                        kept = sweep.kept,
                        users_deleted = ?sweep.users_deleted,
                        "culled idle servers"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "cull sweep"),
            }
        })
        .await;
    }

    /// One sweep: decide for every active server, then stop what the hook says to stop.
    pub async fn cull_once(&self, config: &CullerConfig) -> Result<CullSweep, StoreError> {
        let now = Utc::now();
        let mut candidates: Vec<(Server, CullServer)> = Vec::new();
        for server in self.store().list_servers(None).await? {
            if !server.state.is_active() {
                continue;
            }
            let user = match self.store().get_user(&server.user).await {
                Ok(user) => user,
                Err(StoreError::NotFound { .. }) => continue,
                Err(error) => return Err(error),
            };
            if user.admin && !config.cull_admin_users {
                continue;
            }
            let started = server.started.unwrap_or(now);
            // jupyterhub-idle-culler: a server that never reported activity has been idle since it started.
            let last_activity = server.last_activity.unwrap_or(started).max(started);
            let seconds = |delta: chrono::TimeDelta| u64::try_from(delta.num_seconds()).unwrap_or(0);
            let hook_server = CullServer {
                user: crate::policy::policy_user(&user),
                name: server.name.to_string(),
                profile: profile_of(&server),
                ready: server.state == SpawnState::Running,
                pending: server.state.pending().is_some(),
                age_seconds: seconds(now - started),
                inactive_seconds: seconds(now - last_activity),
            };
            candidates.push((server, hook_server));
        }
        let batch: Vec<CullServer> = candidates.iter().map(|(_, hook_server)| hook_server.clone()).collect();
        // A failed call (a panic in the host) decides nothing, so nothing is culled.
        let decisions = self.policies().decide_cull(batch).await;
        let mut sweep = CullSweep::default();
        let mut to_stop = Vec::new();
        for ((server, _), decision) in candidates.into_iter().zip(decisions) {
            match decision.action {
                CullAction::Keep => sweep.kept += 1,
                CullAction::Stop => to_stop.push((server, false, decision.reason)),
                CullAction::StopAndRemove => {
                    // The default server is never removed, as with the external culler.
                    let remove = !server_is_default(&server);
                    to_stop.push((server, remove, decision.reason))
                }
            }
        }
        let results: Vec<Option<(String, String)>> = futures_util::stream::iter(to_stop)
            .map(|(server, remove, reason)| {
                let hub = self.clone();
                async move {
                    let name = if server.name.as_str().is_empty() {
                        server.user.to_string()
                    } else {
                        format!("{}:{}", server.user, server.name.as_str())
                    };
                    match crate::spawns::stop_if_running(&hub, server, remove).await {
                        Ok(()) => Some((name, reason)),
                        Err(error) => {
                            tracing::warn!(server = %name, %error, "culling a server");
                            None
                        }
                    }
                }
            })
            .buffer_unordered(config.concurrency.max(1))
            .collect()
            .await;
        sweep.stopped = results.into_iter().flatten().collect();
        sweep.stopped.sort();
        if let Some(limit) = config.cull_users_after {
            sweep.users_deleted = self.cull_users(limit, config).await?;
        }
        Ok(sweep)
    }

    /// jupyterhub-idle-culler's `--cull-users`: a user with no active server whose last activity (or creation,
    /// when there was none) is older than `limit` is deleted; admins only with `cull_admin_users`. A user whose
    /// server started since the list was read is left for the next sweep.
    async fn cull_users(&self, limit: Duration, config: &CullerConfig) -> Result<Vec<String>, StoreError> {
        let now = Utc::now();
        let limit = chrono::TimeDelta::from_std(limit).unwrap_or(chrono::TimeDelta::MAX);
        let query = UserQuery { state: Some(UserState::Inactive), ..UserQuery::default() };
        let mut deleted = Vec::new();
        for user in self.store().list_users(&query).await?.items {
            if user.admin && !config.cull_admin_users {
                continue;
            }
            if now - user.last_activity.unwrap_or(user.created) <= limit {
                continue;
            }
            let servers = self.store().list_servers(Some(&user.name)).await?;
            if servers.iter().any(|server| server.state.is_active()) {
                continue;
            }
            match self.store().delete_user(&user.name).await {
                Ok(()) | Err(StoreError::NotFound { .. }) => deleted.push(user.name.to_string()),
                Err(error) => tracing::warn!(user = %user.name, %error, "culling an idle user"),
            }
        }
        Ok(deleted)
    }
}

fn server_is_default(server: &Server) -> bool {
    server.name.as_str().is_empty()
}

/// The profile slug the server was started with, from its `user_options` (KubeSpawner's `profile` key).
fn profile_of(server: &Server) -> String {
    serde_json::from_str::<serde_json::Value>(&server.user_options)
        .ok()
        .and_then(|options| options.get("profile").and_then(|profile| profile.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::Method;
    use wasmhub_model::{ServerName, UserName};
    use wasmhub_policy::native::{CullSettings, NativeDefaults};
    use wasmhub_policy::{PolicyHost, PolicyHostConfig};
    use wasmhub_store::Store;

    use std::sync::Arc;

    use super::*;
    use crate::tests::{call, test_hub};

    #[tokio::test]
    async fn a_sweep_stops_idle_servers_and_with_cull_users_deletes_idle_users() {
        let hub = test_hub().await;
        for name in ["alice", "bob", "carol"] {
            call(&hub.app, Method::POST, &format!("/hub/api/users/{name}"), Some(&hub.admin_token), None).await;
        }
        let answer = call(&hub.app, Method::POST, "/hub/api/users/alice/server", Some(&hub.admin_token), None).await;
        assert!(answer.status.is_success(), "{}", answer.text);
        let (alice, default) = (UserName::parse("alice").unwrap(), ServerName::parse("").unwrap());
        for _ in 0..100 {
            if hub.store.get_server(&alice, &default).await.unwrap().state == SpawnState::Running {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let policy = Arc::new(
            PolicyHost::start(PolicyHostConfig {
                defaults: NativeDefaults {
                    cull: CullSettings { timeout_seconds: 1, ..CullSettings::default() },
                    ..NativeDefaults::default()
                },
                ..PolicyHostConfig::default()
            })
            .unwrap(),
        );
        let config = CullerConfig {
            every: Duration::from_secs(600),
            concurrency: 2,
            cull_admin_users: false,
            cull_users_after: Some(Duration::from_secs(1)),
        };
        tokio::time::sleep(Duration::from_millis(1200)).await;
        // carol was just active: she stays; `admin` is an admin: kept without `cull.adminUsers`.
        hub.store.record_user_activity(&UserName::parse("carol").unwrap(), Utc::now()).await.unwrap();
        let culling =
            Hub::new(hub.hub.config().clone(), hub.store.clone(), hub.hub.spawner_arc(), Arc::new(hub.proxy.clone()))
                .with_policy(policy);
        let sweep = culling.cull_once(&config).await.unwrap();
        assert_eq!(sweep.stopped.len(), 1, "{sweep:?}");
        assert_eq!(sweep.stopped[0].0, "alice");
        assert_eq!(sweep.users_deleted, ["alice", "bob"]);
        let answer = call(&hub.app, Method::GET, "/hub/api/users/carol", Some(&hub.admin_token), None).await;
        assert_eq!(answer.status.as_u16(), 200);
        let answer = call(&hub.app, Method::GET, "/hub/api/users/alice", Some(&hub.admin_token), None).await;
        assert_eq!(answer.status.as_u16(), 404);
    }
}
