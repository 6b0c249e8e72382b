//! A scripted browser for system tests against `wasmhub serve`: the login form with its XSRF cookie,
//! cookie-authenticated hub API calls as JupyterLab's hub extension makes them, the admin token's API calls, and
//! running code on a kernel over its WebSocket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use reqwest::cookie::{CookieStore, Jar};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::hub_harness::{ADMIN_TOKEN, RunningHub};

/// The password the test configs give `DummyAuthenticator`.
pub const PASSWORD: &str = "shared-secret-password";

/// A browser: a cookie jar and the hub's public URL.
pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
    pub base: String,
}

impl Browser {
    /// A browser with an empty cookie jar, pointed at the hub's public URL.
    pub fn new(hub: &RunningHub) -> Browser {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        Browser { client, jar, base: hub.public_url() }
    }

    /// A cookie the browser would send to `path`.
    pub fn cookie(&self, path: &str, name: &str) -> Option<String> {
        let url = format!("{}{path}", self.base).parse().ok()?;
        let header = self.jar.cookies(&url)?;
        header.to_str().ok()?.split("; ").find_map(|pair| pair.strip_prefix(&format!("{name}=")).map(str::to_owned))
    }

    /// The `Cookie` header the browser would send to `path`.
    pub fn cookie_header(&self, path: &str) -> String {
        let url = format!("{}{path}", self.base).parse().expect("url");
        self.jar.cookies(&url).and_then(|header| header.to_str().ok().map(str::to_owned)).unwrap_or_default()
    }

    /// The login form: GET for the `_xsrf` cookie, POST the credentials with it. Returns the final page.
    pub async fn log_in(&self, user: &str) -> Result<reqwest::Response> {
        let form = self.client.get(format!("{}/hub/login", self.base)).send().await?;
        ensure!(form.status() == 200, "GET /hub/login: {}", form.status());
        let xsrf = self.cookie("/hub/", "_xsrf").context("the login page set no _xsrf cookie")?;
        let response = self
            .client
            .post(format!("{}/hub/login", self.base))
            .form(&[("username", user), ("password", PASSWORD), ("_xsrf", &xsrf)])
            .send()
            .await?;
        ensure!(response.status().is_success(), "logging in as {user}: {}", response.status());
        ensure!(self.cookie("/hub/", "jupyterhub-hub-login").is_some(), "no login cookie after logging in as {user}");
        Ok(response)
    }

    /// A cookie-authenticated hub API call, with the XSRF header JupyterLab's hub extension sends.
    pub async fn hub_api(&self, method: reqwest::Method, path: &str) -> Result<(u16, Value)> {
        let xsrf = self.cookie("/hub/", "_xsrf").unwrap_or_default();
        let response = self
            .client
            .request(method, format!("{}/hub/api{path}", self.base))
            .header("X-XSRFToken", xsrf)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }
}

/// A hub API call with the harness's admin service token.
pub async fn admin_api(hub: &RunningHub, method: reqwest::Method, path: &str) -> Result<(u16, Value)> {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", hub.api_url()))
        .header("Authorization", format!("token {ADMIN_TOKEN}"))
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// Runs `code` over the kernel's `channels` WebSocket with the browser's cookies, and returns the text result.
pub async fn execute(
    hub: &RunningHub,
    user: &str,
    cookies: &str,
    xsrf: &str,
    kernel_id: &str,
    code: &str,
) -> Result<String> {
    let session = format!("{:x}", Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
    let url = format!(
        "ws://127.0.0.1:{}/user/{user}/api/kernels/{kernel_id}/channels?session_id={session}&_xsrf={xsrf}",
        hub.public_port
    );
    let mut request = url.as_str().into_client_request()?;
    request.headers_mut().insert("Cookie", cookies.parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.context("kernel WebSocket handshake")?;
    let msg_id = format!("{session}-1");
    let execute = json!({
        "header": { "msg_id": msg_id, "username": user, "session": session, "date": "2026-01-01T00:00:00.000Z",
                    "msg_type": "execute_request", "version": "5.3" },
        "parent_header": {}, "metadata": {}, "buffers": [], "channel": "shell",
        "content": { "code": code, "silent": false, "store_history": false, "user_expressions": {},
                     "allow_stdin": false, "stop_on_error": true },
    });
    socket.send(Message::Text(execute.to_string().into())).await?;
    while let Some(message) = socket.next().await {
        let Message::Text(text) = message? else { continue };
        let message: Value = serde_json::from_str(text.as_str())?;
        if message["parent_header"]["msg_id"] != json!(msg_id) {
            continue;
        }
        match message["msg_type"].as_str() {
            Some("execute_result") => {
                return message["content"]["data"]["text/plain"].as_str().map(str::to_owned).context("no text/plain");
            }
            Some("error") => bail!("the kernel raised an error: {}", message["content"]),
            _ => {}
        }
    }
    bail!("the kernel WebSocket closed before the result")
}
