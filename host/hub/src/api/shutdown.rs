//! `POST /shutdown` (`ShutdownAPIHandler`) and the hub-wide shutdown signal behind it.
//!
//! The hub does not stop itself: it records what was asked ([`ShutdownRequest`]) and cancels a token, which
//! [`crate::serve`] and the `wasmhub serve` command wait on. The command then stops servers and the proxy if the
//! request says so, as JupyterHub's `cleanup_servers` and `cleanup_proxy` do.

use std::future::Future;
use std::sync::OnceLock;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::Hub;
use crate::access::caller::Caller;
use crate::error::{ApiError, parse_json_body, python_repr};

/// What a shutdown should take down besides the hub. JupyterHub's defaults stop both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownRequest {
    /// Stop every single-user server (`cleanup_servers`).
    pub servers: bool,
    /// Stop the proxy (`cleanup_proxy`).
    pub proxy: bool,
}

impl Default for ShutdownRequest {
    fn default() -> ShutdownRequest {
        ShutdownRequest { servers: true, proxy: true }
    }
}

/// The hub's shutdown state: cancelled once, and the request that cancelled it.
#[derive(Default)]
pub(crate) struct ShutdownSignal {
    token: CancellationToken,
    /// The first request wins; a later one cannot change what an exiting hub was told.
    request: OnceLock<ShutdownRequest>,
}

impl Hub {
    /// Asks the hub to shut down (the API does this; so may a signal handler). Only the first request counts.
    pub fn request_shutdown(&self, request: ShutdownRequest) {
        let _ = self.inner.shutdown.request.set(request);
        self.inner.shutdown.token.cancel();
    }

    /// Resolves once a shutdown was requested. Independent of `self`, so it can be moved into a task.
    pub fn shutdown_requested(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.shutdown.token.clone().cancelled_owned()
    }

    /// What the shutdown asked for, once one was requested.
    pub fn shutdown_request(&self) -> Option<ShutdownRequest> {
        self.inner.shutdown.request.get().copied()
    }
}

/// JupyterHub's `value not in {True, False}`: Python's `1 == True`, so 0 and 1 pass too.
fn flag(data: &serde_json::Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    let Some(value) = data.get(key) else { return Ok(None) };
    match value {
        Value::Bool(flag) => Ok(Some(*flag)),
        Value::Number(number) if number.as_f64() == Some(1.0) => Ok(Some(true)),
        Value::Number(number) if number.as_f64() == Some(0.0) => Ok(Some(false)),
        other => Err(ApiError::bad_request(format!("{key} must be true or false, got {}", python_repr(other)))),
    }
}

pub(crate) async fn shutdown(State(hub): State<Hub>, caller: Caller, body: Bytes) -> Result<Response, ApiError> {
    caller.require_unfiltered(&["shutdown"])?;
    let mut request = ShutdownRequest::default();
    if let Some(Value::Object(data)) = parse_json_body(&body)? {
        if let Some(proxy) = flag(&data, "proxy")? {
            request.proxy = proxy;
        }
        if let Some(servers) = flag(&data, "servers")? {
            request.servers = servers;
        }
    }
    tracing::info!(servers = request.servers, proxy = request.proxy, "shutdown requested through the API");
    // `serve` shuts down gracefully, so this answer still reaches the client.
    hub.request_shutdown(request);
    Ok((StatusCode::ACCEPTED, Json(json!({ "message": "Shutting down Hub" }))).into_response())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::Method;
    use serde_json::json;

    use super::ShutdownRequest;
    use crate::tests::{call, test_hub, user_with_token};

    #[tokio::test]
    async fn shutdown_answers_202_then_signals_with_what_was_asked() {
        let hub = test_hub().await;
        let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
        let message = call(&hub.app, Method::POST, "/hub/api/shutdown", Some(&alice), None).await.assert_error(403);
        assert_eq!(message, "Action is not authorized with current scopes; requires any of ['shutdown']");
        let admin = Some(hub.admin_token.as_str());
        let message = call(&hub.app, Method::POST, "/hub/api/shutdown", admin, Some(r#"{"proxy": "yes"}"#))
            .await
            .assert_error(400);
        assert_eq!(message, "proxy must be true or false, got 'yes'");
        assert_eq!(hub.hub.shutdown_request(), None);

        let waiting = tokio::spawn(hub.hub.shutdown_requested());
        let answer = call(&hub.app, Method::POST, "/hub/api/shutdown", admin, Some(r#"{"servers": false}"#)).await;
        assert_eq!(answer.status, 202);
        assert_eq!(answer.headers["content-type"], "application/json");
        assert_eq!(answer.json(), json!({ "message": "Shutting down Hub" }));
        tokio::time::timeout(Duration::from_secs(1), waiting).await.expect("the signal fired").unwrap();
        assert_eq!(hub.hub.shutdown_request(), Some(ShutdownRequest { servers: false, proxy: true }));
        // A second request changes nothing.
        call(&hub.app, Method::POST, "/hub/api/shutdown", admin, Some(r#"{"servers": true, "proxy": 0}"#)).await;
        assert_eq!(hub.hub.shutdown_request(), Some(ShutdownRequest { servers: false, proxy: true }));
    }

    #[tokio::test]
    async fn serve_stops_when_the_api_asks() {
        let hub = test_hub().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(crate::serve(hub.hub.clone(), listener, std::future::pending()));
        let response = reqwest::Client::new()
            .post(format!("http://{address}/hub/api/shutdown"))
            .header("authorization", format!("token {}", hub.admin_token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, json!({ "message": "Shutting down Hub" }));
        tokio::time::timeout(Duration::from_secs(5), server).await.expect("serve returned").unwrap().unwrap();
    }
}
