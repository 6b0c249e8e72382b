//! The no-op spawner, for benchmarks and tests only: it starts nothing and points every server at one configured
//! URL, where something that answers HTTP (any status below 500) must already listen. The hub still does all of
//! its own work for each spawn (the server's token and OAuth client, the spawn record, the readiness probe, the
//! route), so what a benchmark measures is the hub. Selected with `wasmhub.spawner: noop` and `wasmhub.noop.url`.

use serde::{Deserialize, Serialize};

use crate::{PollStatus, SpawnError, SpawnRequest, Spawner, SpawnerState, Started};

/// Starts nothing; every server is "running" at `url` until stopped.
#[derive(Debug, Clone)]
pub struct NoopSpawner {
    url: String,
}

/// What the no-op spawner persists per server: the URL it handed out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct NoopState {
    noop: String,
}

impl NoopSpawner {
    /// Every server will be reached at `url` (`http://ip:port`, no path; a trailing `/` is dropped).
    pub fn new(url: impl Into<String>) -> NoopSpawner {
        NoopSpawner { url: url.into().trim_end_matches('/').to_owned() }
    }

    fn state(&self) -> SpawnerState {
        SpawnerState(serde_json::to_string(&NoopState { noop: self.url.clone() }).expect("state serialises"))
    }
}

#[async_trait::async_trait]
impl Spawner for NoopSpawner {
    async fn prepare(&self, _request: &SpawnRequest) -> Result<SpawnerState, SpawnError> {
        Ok(self.state())
    }

    async fn start(&self, _request: &SpawnRequest, _prepared: &SpawnerState) -> Result<Started, SpawnError> {
        Ok(Started { url: self.url.clone(), state: self.state() })
    }

    /// Running while the state is one this spawner wrote, as JupyterHub's `poll()` returning `None`.
    async fn poll(&self, state: &SpawnerState) -> Result<PollStatus, SpawnError> {
        serde_json::from_str::<NoopState>(&state.0).map_err(|error| SpawnError::BadState(error.to_string()))?;
        Ok(PollStatus::Running)
    }

    async fn stop(&self, _state: &SpawnerState) -> Result<(), SpawnError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[tokio::test]
    async fn every_server_is_the_configured_url_and_stays_running_until_stopped() {
        let spawner = NoopSpawner::new("http://127.0.0.1:9/");
        let request = SpawnRequest {
            user: "alice".into(),
            server_name: String::new(),
            service_prefix: "/user/alice/".into(),
            env: BTreeMap::new(),
            ..SpawnRequest::default()
        };
        let prepared = spawner.prepare(&request).await.unwrap();
        let started = spawner.start(&request, &prepared).await.unwrap();
        assert_eq!(started.url, "http://127.0.0.1:9");
        assert_eq!(spawner.poll(&started.state).await.unwrap(), PollStatus::Running);
        spawner.stop(&started.state).await.unwrap();
        // State written by another spawner is not adopted.
        let foreign = SpawnerState(r#"{"port":1,"log":"x"}"#.into());
        assert!(matches!(spawner.poll(&foreign).await, Err(SpawnError::BadState(_))));
    }
}
