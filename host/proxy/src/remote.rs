//! A proxy in another process, driven over configurable-http-proxy's REST API: `wasmhub proxy` or CHP itself, as
//! JupyterHub's `ConfigurableHTTPProxy` drives it with `should_start = False`. The hub keeps its table there with
//! the same [`Routes`] calls it makes on the built-in table; what the proxy reports (`last_activity`, the routes
//! it has after a restart) comes back through [`Routes::list`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Map, Value};

use crate::routes::{Route, Target, clean_path};
use crate::{RouteError, Routes};

/// How long one API call may take before the hub gives up on it.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What a route path cannot carry literally in a URL path (CHP decodes it again).
const PATH: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'%').add(b'<').add(b'>').add(b'?').add(b'`');

/// The route table of a proxy reached at its REST API.
#[derive(Clone)]
pub struct RemoteRoutes {
    /// `http://host:port`, without a trailing slash.
    api_url: String,
    token: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl RemoteRoutes {
    /// The proxy whose API is at `api_url` (`http://proxy-api:8001`), with the token its API checks.
    pub fn new(api_url: &str, token: &str) -> Result<RemoteRoutes, RouteError> {
        let api_url = api_url.trim_end_matches('/').to_owned();
        let authority = api_url.strip_prefix("http://").unwrap_or_default();
        if authority.is_empty() || authority.contains(['/', '?', '#']) {
            return Err(RouteError::Remote(format!(
                "the proxy API URL {api_url:?} must be http://host:port (the API is plain HTTP inside the deployment)"
            )));
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(RemoteRoutes { api_url, token: token.to_owned(), client })
    }

    /// `/api/routes` plus `path`, percent-encoded as CHP's clients send it.
    fn routes_url(&self, path: &str) -> String {
        let path = if path == "/" { "" } else { path.trim_end_matches('/') };
        format!("{}/api/routes{}", self.api_url, utf8_percent_encode(path, PATH))
    }

    async fn call(&self, method: Method, url: &str, body: Option<Vec<u8>>) -> Result<(StatusCode, Bytes), RouteError> {
        let failed = |why: String| RouteError::Remote(format!("{method} {url}: {why}"));
        let mut request = Request::builder()
            .method(method.clone())
            .uri(url)
            .header(header::AUTHORIZATION, format!("token {}", self.token));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|error| failed(error.to_string()))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|error| failed(error.to_string()))?;
            let status = response.status();
            let bytes = response.into_body().collect().await.map_err(|error| failed(error.to_string()))?;
            Ok((status, bytes.to_bytes()))
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| failed(format!("no answer within {} s", CALL_TIMEOUT.as_secs())))?
    }
}

/// A failed answer, worded with what the proxy said.
fn refused(method: &str, url: &str, status: StatusCode, body: &[u8]) -> RouteError {
    let said: String = String::from_utf8_lossy(body).chars().take(200).collect();
    let hint = if status == StatusCode::FORBIDDEN { " (is the proxy's auth token the hub's?)" } else { "" };
    RouteError::Remote(format!("{method} {url} answered {status}{hint}: {said}"))
}

/// `2026-12-07T23:00:00.000Z` as milliseconds since the epoch; CHP writes JavaScript's ISO strings.
fn parse_timestamp(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|time| time.timestamp_millis())
}

#[async_trait::async_trait]
impl Routes for RemoteRoutes {
    async fn add(&self, path: &str, data: Map<String, Value>) -> Result<(), RouteError> {
        if !data.get("target").is_some_and(Value::is_string) {
            return Err(RouteError::MissingTarget);
        }
        let url = self.routes_url(path);
        let body = serde_json::to_vec(&data).map_err(|error| RouteError::Remote(error.to_string()))?;
        let (status, reply) = self.call(Method::POST, &url, Some(body)).await?;
        if status.is_success() { Ok(()) } else { Err(refused("POST", &url, status, &reply)) }
    }

    async fn remove(&self, path: &str) -> Result<(), RouteError> {
        let url = self.routes_url(path);
        let (status, reply) = self.call(Method::DELETE, &url, None).await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(refused("DELETE", &url, status, &reply))
        }
    }

    async fn get(&self, path: &str) -> Result<Option<Arc<Route>>, RouteError> {
        let key = clean_path(path);
        Ok(self.list().await?.into_iter().find(|route| route.key() == key))
    }

    async fn list(&self) -> Result<Vec<Arc<Route>>, RouteError> {
        let url = self.routes_url("/");
        let (status, reply) = self.call(Method::GET, &url, None).await?;
        if !status.is_success() {
            return Err(refused("GET", &url, status, &reply));
        }
        let table: Map<String, Value> = serde_json::from_slice(&reply)
            .map_err(|error| RouteError::Remote(format!("GET {url}: not a JSON object of routes: {error}")))?;
        let mut routes = Vec::with_capacity(table.len());
        for (key, route) in table {
            let Value::Object(mut data) = route else { continue };
            let Some(Value::String(target)) = data.get("target").cloned() else { continue };
            let last_activity =
                data.remove("last_activity").and_then(|value| value.as_str().and_then(parse_timestamp)).unwrap_or(0);
            // A route this hub could not have made (a target that is no URL) is listed by nobody here.
            let Ok(target) = Target::parse(&target) else { continue };
            routes.push(Arc::new(Route::new(clean_path(&key), target, data, last_activity)));
        }
        Ok(routes)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Proxy, ProxyConfig};

    /// The built-in proxy's API on a loopback port, as `wasmhub proxy` serves it.
    async fn proxy_api(token: &str) -> (Proxy, String) {
        let proxy = Proxy::new(ProxyConfig { auth_token: Some(token.into()), ..ProxyConfig::default() }).await.unwrap();
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let public = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", api.local_addr().unwrap());
        let listeners = crate::server::Listeners { proxy: public, api, metrics: None, redirect: None };
        tokio::spawn(crate::server::run(proxy.clone(), listeners, std::future::pending()));
        (proxy, url)
    }

    #[tokio::test]
    async fn routes_go_over_the_rest_api_and_come_back_with_their_activity() {
        let (proxy, url) = proxy_api("the-token").await;
        let remote: Arc<dyn Routes> = Arc::new(RemoteRoutes::new(&url, "the-token").unwrap());
        let data = json!({ "target": "http://127.0.0.1:9001", "user": "a b", "jupyterhub": true });
        remote.add("/user/a b/", data.as_object().unwrap().clone()).await.unwrap();
        assert!(proxy.routes().table().get("/user/a b/").is_some(), "the key is the decoded path");
        let listed = remote.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].key(), listed[0].target().as_str()), ("/user/a b", "http://127.0.0.1:9001"));
        assert_eq!(listed[0].data()["user"], "a b");
        assert!(listed[0].last_activity_ms() > 0, "CHP sets last_activity when a route is added");
        assert!(remote.get("/user/a b/").await.unwrap().is_some());
        remote.remove("/user/a b/").await.unwrap();
        remote.remove("/user/a b/").await.expect("removing a missing route succeeds");
        assert!(remote.list().await.unwrap().is_empty());

        let wrong = RemoteRoutes::new(&url, "not-the-token").unwrap();
        let error = wrong.list().await.unwrap_err().to_string();
        assert!(error.contains("403") && error.contains("auth token"), "{error}");
        let error = RemoteRoutes::new("https://proxy:8001", "t").err().unwrap().to_string();
        assert!(error.contains("must be http://host:port"), "{error}");
        let nobody = RemoteRoutes::new("http://127.0.0.1:9", "t").unwrap();
        assert!(nobody.list().await.unwrap_err().to_string().contains("GET http://127.0.0.1:9/api/routes"));
    }
}
