//! The routes a hub manages, behind one trait: add, remove, read one and list them all with their data and
//! `last_activity`. The hub holds a `dyn Routes`, so its spawn, adoption and `check_routes` code does not care
//! where the table is: the built-in proxy's, in this process (the impl here), or a proxy in another process driven
//! over CHP's REST API (`remote.rs`).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::routes::Route;
use crate::{Proxy, RouteError};

/// A proxy's route table as the hub uses it. Paths are given as the hub writes them (`/user/alice/`); the routes
/// returned carry the proxy's normalised key (`/user/alice`).
#[async_trait::async_trait]
pub trait Routes: Send + Sync {
    /// Adds or replaces the route at `path`; `data` must hold a string `target`.
    async fn add(&self, path: &str, data: Map<String, Value>) -> Result<(), RouteError>;

    /// Removes the route at `path`; removing a missing route succeeds.
    async fn remove(&self, path: &str) -> Result<(), RouteError>;

    /// The route at exactly `path`, if there is one.
    async fn get(&self, path: &str) -> Result<Option<Arc<Route>>, RouteError>;

    /// Every route, with its data and last activity.
    async fn list(&self) -> Result<Vec<Arc<Route>>, RouteError>;
}

/// The built-in proxy's own table: no copies, no network.
#[async_trait::async_trait]
impl Routes for Proxy {
    async fn add(&self, path: &str, data: Map<String, Value>) -> Result<(), RouteError> {
        self.routes().add(path, data).await.map(|_| ())
    }

    async fn remove(&self, path: &str) -> Result<(), RouteError> {
        self.routes().remove(path).await.map(|_| ())
    }

    async fn get(&self, path: &str) -> Result<Option<Arc<Route>>, RouteError> {
        Ok(self.routes().table().get(path))
    }

    async fn list(&self) -> Result<Vec<Arc<Route>>, RouteError> {
        Ok(self.routes().table().snapshot())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ProxyConfig;

    #[tokio::test]
    async fn the_built_in_table_serves_the_hub_through_the_trait() {
        let proxy = Proxy::new(ProxyConfig::default()).await.unwrap();
        let routes: Arc<dyn Routes> = Arc::new(proxy.clone());
        let mut data = Map::new();
        data.insert("target".into(), json!("http://127.0.0.1:9999"));
        data.insert("user".into(), json!("alice"));
        routes.add("/user/alice/", data).await.unwrap();
        let route = routes.get("/user/alice/").await.unwrap().expect("the route was added");
        assert_eq!(route.key(), "/user/alice");
        assert_eq!(route.target().as_str(), "http://127.0.0.1:9999");
        assert_eq!(route.data().get("user"), Some(&json!("alice")));
        assert!(route.last_activity_ms() > 0);
        assert_eq!(routes.list().await.unwrap().len(), proxy.routes().table().len());
        routes.remove("/user/alice/").await.unwrap();
        routes.remove("/user/alice/").await.unwrap();
        assert!(routes.get("/user/alice/").await.unwrap().is_none());
    }
}
