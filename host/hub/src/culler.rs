//! The built-in idle culler (z2jh `cull.*`): what `jupyterhub-idle-culler` does as a service, run inside the hub
//! and decided by the cull hook of the policy host, so a site can swap the rule (a shorter timeout for GPU
//! servers, say) without restarting anything. The external culler still works against the REST API.
//!
//! One sweep lists the ready servers, asks the hook once for the whole batch, and stops (or stops and removes)
//! what it says, at most `concurrency` at a time. A failing cull policy falls back to the built-in idle rule
//! inside the policy host, so an error never culls anything the idle rule would keep.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use wasmhub_model::SpawnState;
use wasmhub_policy::PolicyHost;
use wasmhub_policy::hooks::{CullAction, CullServer, User as PolicyUser};
use wasmhub_store::{Server, StoreError};

use crate::Hub;

/// What the culler does besides what the hook decides (`cull.every`, `cull.concurrency`, `cull.adminUsers`).
#[derive(Debug, Clone)]
pub struct CullerConfig {
    pub every: Duration,
    pub concurrency: usize,
    /// Whether admins' servers are culled at all.
    pub cull_admin_users: bool,
}

/// One sweep's result, for the log and tests: `(server, reason)` for every server stopped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CullSweep {
    pub stopped: Vec<(String, String)>,
    pub kept: usize,
}

impl Hub {
    /// Sweeps every `config.every` until `shutdown` resolves.
    pub async fn run_culler(
        &self,
        policy: Arc<PolicyHost>,
        config: CullerConfig,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut ticker = tokio::time::interval(config.every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = ticker.tick() => {}
            }
            match self.cull_once(policy.clone(), &config).await {
                Ok(sweep) if !sweep.stopped.is_empty() => {
                    tracing::info!(stopped = ?sweep.stopped, kept = sweep.kept, "culled idle servers");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "cull sweep"),
            }
        }
    }

    /// One sweep: decide for every active server, then stop what the hook says to stop.
    pub async fn cull_once(&self, policy: Arc<PolicyHost>, config: &CullerConfig) -> Result<CullSweep, StoreError> {
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
                user: PolicyUser {
                    name: user.name.to_string(),
                    admin: user.admin,
                    groups: user.groups.iter().map(|group| group.to_string()).collect(),
                },
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
        // The hook may run a WebAssembly component: keep it off the async workers.
        // A failed task (a panic in the host) decides nothing, so nothing is culled.
        let decisions = tokio::task::spawn_blocking(move || policy.decide_cull(&batch)).await.unwrap_or_default();
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
                    match crate::servers::stop_for_culler(&hub, server, remove).await {
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
        Ok(sweep)
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
