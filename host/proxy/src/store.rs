//! Route changes with CHP's rules (upsert, `last_activity` set on add, `host` added under host routing), applied
//! to the in-memory table and, when persistence is on, to the routes file in the same order.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::journal::{Journal, JournalError, Record};
use crate::routes::{Route, RouteTable, Target, TargetError, clean_path, now_ms};

/// Why a route change was refused or not saved.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("Must specify 'target' as string")]
    MissingTarget,
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("route was applied but could not be saved: {0}")]
    Journal(#[from] JournalError),
    /// A proxy in another process (`remote.rs`) could not be reached or refused the change.
    #[error("the proxy's REST API: {0}")]
    Remote(String),
}

/// The route table plus its optional routes file.
pub struct RouteStore {
    table: Arc<RouteTable>,
    journal: Option<Journal>,
    host_routing: bool,
    /// Serialises writers so the file sees changes in the order the table did.
    write_order: tokio::sync::Mutex<()>,
}

impl RouteStore {
    /// A store that keeps routes in memory only, like CHP.
    pub fn in_memory(host_routing: bool) -> RouteStore {
        RouteStore { table: Arc::default(), journal: None, host_routing, write_order: tokio::sync::Mutex::new(()) }
    }

    /// A store backed by `path`: routes found there are served again at once.
    pub fn persistent(path: &Path, host_routing: bool) -> Result<RouteStore, JournalError> {
        let table: Arc<RouteTable> = Arc::default();
        let (loaded, pending) = Journal::open(path)?;
        let mut restored = 0;
        for (key, data, last_activity_ms) in loaded.routes {
            let target = data.get("target").and_then(Value::as_str).map(Target::parse);
            match target {
                Some(Ok(target)) => {
                    table.insert(Arc::new(Route::new(key, target, data, last_activity_ms)));
                    restored += 1;
                }
                _ => tracing::warn!(route = %key, "dropping a saved route without a usable target"),
            }
        }
        tracing::info!(routes = restored, file = %path.display(), "restored routes");
        let snapshot_table = table.clone();
        let journal = pending.start(Box::new(move || snapshot_records(&snapshot_table)))?;
        Ok(RouteStore { table, journal: Some(journal), host_routing, write_order: tokio::sync::Mutex::new(()) })
    }

    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    /// Adds or replaces the route at `path` with `data`, which must hold a string `target`.
    pub async fn add(&self, path: &str, mut data: Map<String, Value>) -> Result<Arc<Route>, RouteError> {
        let target = match data.get("target") {
            Some(Value::String(target)) => Target::parse(target)?,
            _ => return Err(RouteError::MissingTarget),
        };
        let key = clean_path(path);
        if self.host_routing && key != "/" {
            let host = key.split('/').nth(1).unwrap_or_default().to_owned();
            data.insert("host".into(), Value::String(host));
        }
        // `last_activity` is the proxy's to keep; a caller's value would be overwritten by CHP as well.
        data.remove("last_activity");
        let route = Arc::new(Route::new(key.clone(), target, data.clone(), now_ms()));
        let _order = self.write_order.lock().await;
        self.table.insert(route.clone());
        if let Some(journal) = &self.journal {
            journal.append(Record::Add { path: key, data, last_activity_ms: route.last_activity_ms() }).await?;
        }
        Ok(route)
    }

    /// Removes the route at `path`; `Ok(None)` if there was none.
    pub async fn remove(&self, path: &str) -> Result<Option<Arc<Route>>, RouteError> {
        let _order = self.write_order.lock().await;
        let removed = self.table.remove(path);
        if let (Some(route), Some(journal)) = (&removed, &self.journal) {
            journal.append(Record::Remove { path: route.key().to_owned() }).await?;
        }
        Ok(removed)
    }

    /// Saves a final snapshot, with current activity, and stops the writer.
    pub async fn close(&self) -> Result<(), RouteError> {
        if let Some(journal) = &self.journal {
            let _order = self.write_order.lock().await;
            journal.close(snapshot_records(&self.table)).await?;
        }
        Ok(())
    }
}

fn snapshot_records(table: &RouteTable) -> Vec<Record> {
    table
        .snapshot()
        .into_iter()
        .map(|route| Record::Add {
            path: route.key().to_owned(),
            data: route.data().clone(),
            last_activity_ms: route.last_activity_ms(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[tokio::test]
    async fn routes_and_their_data_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes.jsonl");
        {
            let store = RouteStore::persistent(&path, false).unwrap();
            for index in 0..100 {
                let body = json!({"target": "http://127.0.0.1:9000", "user": format!("u{index}"), "jupyterhub": true});
                store.add(&format!("/user/u{index}/"), data(body)).await.unwrap();
            }
            store.remove("/user/u7").await.unwrap();
            // No close(): a crash must not lose routes either.
        }
        let store = RouteStore::persistent(&path, false).unwrap();
        assert_eq!(store.table().len(), 99);
        let route = store.table().lookup("/user/u42/lab").unwrap();
        assert_eq!(route.key(), "/user/u42");
        assert_eq!(route.data()["user"], "u42");
        assert!(store.table().get("/user/u7").is_none());
    }

    #[tokio::test]
    async fn a_target_is_required_and_checked() {
        let store = RouteStore::in_memory(false);
        assert!(matches!(store.add("/a", data(json!({"user": "x"}))).await, Err(RouteError::MissingTarget)));
        assert!(matches!(store.add("/a", data(json!({"target": 5}))).await, Err(RouteError::MissingTarget)));
        assert!(matches!(store.add("/a", data(json!({"target": "ftp://h"}))).await, Err(RouteError::Target(_))));
    }

    #[tokio::test]
    async fn host_routing_records_the_host() {
        let store = RouteStore::in_memory(true);
        let route = store.add("/hub.example/user/a", data(json!({"target": "http://h:1"}))).await.unwrap();
        assert_eq!(route.data()["host"], "hub.example");
    }
}
