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

/// Where browsers reach a hub: a [`RunningHub`], or the chart's proxy in the chart's end-to-end test.
pub trait Site {
    /// The proxy's public port on 127.0.0.1.
    fn public_port(&self) -> u16;
    /// `hub.baseUrl` without its trailing slash, or empty.
    fn base_path(&self) -> &str;
    /// The public URL with the base path.
    fn prefixed_url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.public_port(), self.base_path())
    }
}

impl Site for RunningHub {
    fn public_port(&self) -> u16 {
        self.public_port
    }
    fn base_path(&self) -> &str {
        RunningHub::base_path(self)
    }
}

/// A browser: a cookie jar and the hub's public URL.
pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
    pub base: String,
}

impl Browser {
    /// A browser with an empty cookie jar, pointed at the hub's public URL.
    pub fn new(hub: &impl Site) -> Browser {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        Browser { client, jar, base: hub.prefixed_url() }
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
        // The client follows redirects, and a login without `next` goes on to `/hub/spawn` (`redirect_to_server`),
        // which starts the server and may go on into it: the status can come from any page of that chain, so the
        // message names the page that gave it.
        ensure!(response.status().is_success(), "logging in as {user}: {} at {}", response.status(), response.url());
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
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let response = client
        .request(method, format!("{}{path}", hub.api_url()))
        .header("Authorization", format!("token {ADMIN_TOKEN}"))
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// The browser's way into a user's running server, as `browser` (who must be allowed in): `/user/<user>/lab`
/// through the server's OAuth flow to JupyterLab's page, `/api/contents` with cookies only, then a kernel started
/// with the server's XSRF cookie computes `1+1` over its WebSocket. `server_log` is added to a failure to open lab.
pub async fn use_jupyterlab(hub: &impl Site, browser: &Browser, user: &str, server_log: &str) -> Result<()> {
    // The OAuth flow: /user/<user>/lab -> /hub/api/oauth2/authorize -> /user/<user>/oauth_callback -> back.
    let lab = browser.client.get(format!("{}/user/{user}/lab", browser.base)).send().await?;
    let lab_url = lab.url().path().to_owned();
    let lab_status = lab.status();
    let lab_page = lab.text().await?;
    ensure!(
        lab_status == 200
            && lab_url == format!("{}/user/{user}/lab", hub.base_path())
            && lab_page.contains("jupyter-config-data"),
        "opening JupyterLab ended at {lab_url} with {lab_status}:\n{}\nserver log:\n{server_log}",
        &lab_page[..lab_page.len().min(600)],
    );
    let contents = browser.client.get(format!("{}/user/{user}/api/contents", browser.base)).send().await?;
    ensure!(
        contents.status() == 200,
        "/user/{user}/api/contents with cookies: {}\nserver log:\n{server_log}",
        contents.status()
    );
    let contents: Value = contents.json().await?;
    ensure!(contents["type"] == "directory", "contents: {contents}");

    // A kernel, started and used with cookies and the server's own XSRF cookie.
    let server_xsrf = browser.cookie(&format!("/user/{user}/"), "_xsrf").context("the server set no _xsrf cookie")?;
    let kernel = browser
        .client
        .post(format!("{}/user/{user}/api/kernels", browser.base))
        .header("X-XSRFToken", &server_xsrf)
        .json(&json!({ "name": "python3" }))
        .send()
        .await?;
    ensure!(kernel.status() == 201, "starting a kernel: {} {}", kernel.status(), kernel.text().await?);
    let kernel: Value = kernel.json().await?;
    let kernel_id = kernel["id"].as_str().context("kernel id")?.to_owned();
    let cookies = browser.cookie_header(&format!("/user/{user}/api/"));
    let answer =
        tokio::time::timeout(Duration::from_secs(60), execute(hub, user, &cookies, &server_xsrf, &kernel_id, "1+1"))
            .await
            .context("no execute_result within 60 s")??;
    ensure!(answer == "2", "1+1 gave {answer:?}");
    Ok(())
}

/// Runs `code` over the kernel's `channels` WebSocket with the browser's cookies, and returns the text result.
pub async fn execute(
    hub: &impl Site,
    user: &str,
    cookies: &str,
    xsrf: &str,
    kernel_id: &str,
    code: &str,
) -> Result<String> {
    let mut socket = kernel_socket(hub, user, cookies, xsrf, kernel_id).await?;
    run_code(&mut socket, user, code).await
}

/// A kernel's `channels` WebSocket through the proxy, opened with the browser's cookies.
pub async fn kernel_socket(
    hub: &impl Site,
    user: &str,
    cookies: &str,
    xsrf: &str,
    kernel_id: &str,
) -> Result<KernelSocket> {
    let session = format!("{:x}", Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
    let url = format!(
        "ws://127.0.0.1:{}{}/user/{user}/api/kernels/{kernel_id}/channels?session_id={session}&_xsrf={xsrf}",
        hub.public_port(),
        hub.base_path()
    );
    let mut request = url.as_str().into_client_request()?;
    request.headers_mut().insert("Cookie", cookies.parse()?);
    let (socket, _) = tokio_tungstenite::connect_async(request).await.context("kernel WebSocket handshake")?;
    Ok(KernelSocket { socket, session, sent: 0 })
}

/// An open kernel WebSocket, which can run code more than once.
pub struct KernelSocket {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    session: String,
    sent: u32,
}

/// Runs `code` on an open kernel WebSocket and returns the text result.
pub async fn run_code(kernel: &mut KernelSocket, user: &str, code: &str) -> Result<String> {
    kernel.sent += 1;
    let session = kernel.session.clone();
    let msg_id = format!("{session}-{}", kernel.sent);
    let execute = json!({
        "header": { "msg_id": msg_id, "username": user, "session": session, "date": "2026-01-01T00:00:00.000Z",
                    "msg_type": "execute_request", "version": "5.3" },
        "parent_header": {}, "metadata": {}, "buffers": [], "channel": "shell",
        "content": { "code": code, "silent": false, "store_history": false, "user_expressions": {},
                     "allow_stdin": false, "stop_on_error": true },
    });
    let socket = &mut kernel.socket;
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

/// `count` requests one after the other, as users keep using the hub while it restarts: logins (as carol, with the
/// `DummyAuthenticator` password), admin API calls about alice, and the home page with `page_cookies`. Returns the
/// failures a user would have seen.
pub async fn request_loop(public: String, page_cookies: String, count: usize) -> Vec<String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let mut failures = Vec::new();
    for index in 0..count {
        if let Err(error) = mixed_request(index, &public, &client, &page_cookies).await {
            failures.push(format!("{index}: {error:#}"));
        }
    }
    failures
}

/// One request of [`request_loop`]; `Err` is a failure a user would see.
async fn mixed_request(index: usize, public: &str, client: &reqwest::Client, page_cookies: &str) -> Result<()> {
    let status = match index % 3 {
        // A login: the form for its XSRF cookie, then the post, which sends the browser on to `next`.
        0 => {
            let form = client.get(format!("{public}/hub/login")).send().await?;
            ensure!(form.status() == 200, "GET /hub/login: {}", form.status());
            let xsrf = form
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .find_map(|cookie| cookie.strip_prefix("_xsrf=")?.split(';').next().map(str::to_owned))
                .context("no _xsrf cookie")?;
            let login = client
                .post(format!("{public}/hub/login?next=%2Fhub%2Fhome"))
                .header("Cookie", format!("_xsrf={xsrf}"))
                .form(&[("username", "carol"), ("password", PASSWORD), ("_xsrf", &xsrf)])
                .send()
                .await?;
            ensure!(login.headers().contains_key("set-cookie"), "a login without cookies: {}", login.status());
            login.status()
        }
        1 => {
            let api = client
                .get(format!("{public}/hub/api/users/alice"))
                .header("Authorization", format!("token {ADMIN_TOKEN}"));
            api.send().await?.status()
        }
        _ => client.get(format!("{public}/hub/home")).header("Cookie", page_cookies).send().await?.status(),
    };
    ensure!(status.is_success() || status.is_redirection(), "request {index} answered {status}");
    Ok(())
}

/// Waits up to 90 s until `user`'s default server is ready.
pub async fn wait_ready(hub: &RunningHub, user: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, model) = admin_api(hub, reqwest::Method::GET, &format!("/users/{user}")).await?;
        if model["servers"][""]["ready"] == Value::Bool(true) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{user}'s server is not ready: {model}\n{}\n--- server log\n{}",
            hub.log_tail(),
            hub.server_log(user)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
