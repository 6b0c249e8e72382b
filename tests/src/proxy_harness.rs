//! Runs configurable-http-proxy (CHP) or `wasmhub proxy` with the same CHP flags, and talks to both the same way.
//!
//! The contract tests are written once against [`RunningProxy`] and run for each [`ProxyKind`], so any difference
//! between the two proxies shows up as one test passing for CHP and failing for wasmhub.
//!
//! All requests go through a bare hyper HTTP/1.1 connection ([`http_request`]) rather than a URL-parsing client:
//! the routing contract is about request-targets such as `/user/alice/../bob` or `/x/%E0%A4%A`, which a URL library
//! would normalise or reject before they reach the proxy.
//!
//! When a test panics, the proxy's log tail is printed and its temporary folder (log, routes file) is kept, so a
//! failure on either proxy can be read without rerunning.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::backend::Echo;
use crate::{ChildGuard, chp_script, free_port, wasmhub_bin};

/// The API token the tests start proxies with (through `CONFIGPROXY_AUTH_TOKEN`, as JupyterHub does).
pub const TOKEN: &str = "contract-test-token";

/// How long a proxy gets to open both ports; generous because node and debug builds start slowly on a busy host.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for any single request made by the harness, so a stuck proxy fails the test instead of hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// configurable-http-proxy 5.3 from npm, run with `node`.
    Chp,
    /// `wasmhub proxy` from this workspace.
    Wasmhub,
}

impl ProxyKind {
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Chp => "chp",
            ProxyKind::Wasmhub => "wasmhub",
        }
    }
}

/// Which `Authorization` header an API call carries.
#[derive(Clone, Copy, Debug)]
pub enum ApiAuth<'a> {
    /// `token <TOKEN>` if the proxy was started with a token, otherwise no header.
    Token,
    /// No `Authorization` header.
    None,
    /// This exact header value.
    Header(&'a str),
}

/// A started proxy; killed (with its process group) on drop.
pub struct RunningProxy {
    pub kind: ProxyKind,
    pub proxy_port: u16,
    pub api_port: u16,
    /// The token in `CONFIGPROXY_AUTH_TOKEN`, or `None` when the variable was unset.
    pub token: Option<String>,
    log_path: PathBuf,
    dir: tempfile::TempDir,
    flags: Vec<String>,
    child: ChildGuard,
}

impl RunningProxy {
    /// Starts `kind` with [`TOKEN`] and the extra CHP flags `args`.
    /// A proxy of `kind` in front of a hub that is yet to start, and the port that hub must listen on (the
    /// proxy's default target).
    pub async fn for_hub(kind: ProxyKind) -> (RunningProxy, u16) {
        let hub_port = free_port();
        let proxy = RunningProxy::start(kind, &["--default-target", &format!("http://127.0.0.1:{hub_port}")]).await;
        (proxy, hub_port)
    }

    pub async fn start(kind: ProxyKind, args: &[&str]) -> RunningProxy {
        RunningProxy::start_with(kind, Some(TOKEN), args).await
    }

    /// Starts `kind` with `CONFIGPROXY_AUTH_TOKEN` set to `token` (removed if `None`) and the extra CHP flags `args`.
    pub async fn start_with(kind: ProxyKind, token: Option<&str>, args: &[&str]) -> RunningProxy {
        let dir =
            tempfile::Builder::new().prefix(&format!("proxy-contract-{}-", kind.name())).tempdir().expect("temp dir");
        let log_path = dir.path().join("proxy.log");
        let proxy_port = free_port();
        let mut api_port = free_port();
        while api_port == proxy_port {
            api_port = free_port();
        }
        let mut flags: Vec<String> = [
            "--ip",
            "127.0.0.1",
            "--port",
            &proxy_port.to_string(),
            "--api-ip",
            "127.0.0.1",
            "--api-port",
            &api_port.to_string(),
            // Debug level logs every proxied request, which is what one needs to read a failure.
            "--log-level",
            "debug",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        flags.extend(args.iter().map(|s| s.to_string()));

        let child = spawn_proxy(kind, &flags, token, dir.path(), &log_path);
        let mut proxy =
            RunningProxy { kind, proxy_port, api_port, token: token.map(str::to_owned), log_path, dir, flags, child };
        proxy.wait_until_listening().await;
        proxy
    }

    /// Stops the proxy with `signal` ("TERM" for a clean stop, "KILL" for a crash), waits for it to exit, and starts
    /// it again with the same flags, ports and folder (so the same routes file).
    pub async fn restart(&mut self, signal: &str) {
        self.child.signal(signal);
        let status = self.child.wait_timeout(Duration::from_secs(40));
        assert!(status.is_some(), "{} did not exit after SIG{signal}", self.context());
        let token = self.token.clone();
        self.child = spawn_proxy(self.kind, &self.flags, token.as_deref(), self.dir.path(), &self.log_path);
        self.wait_until_listening().await;
    }

    /// The running proxy process, to signal it or wait for it.
    pub fn process(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    /// The folder the proxy runs with (its log, and for wasmhub its routes file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    async fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        for port in [self.proxy_port, self.api_port] {
            loop {
                if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                    break;
                }
                if let Ok(Some(status)) = self.child.child.try_wait() {
                    panic!("{} exited with {status} before listening on {port}", self.context());
                }
                assert!(
                    Instant::now() < deadline,
                    "{} does not listen on {port} after {STARTUP_TIMEOUT:?}",
                    self.context()
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }

    /// Names the proxy and its log file, for assertion messages.
    pub fn context(&self) -> String {
        format!("{} proxy (log: {})", self.kind.name(), self.log_path.display())
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the proxy's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log_path) {
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.proxy_port))
    }

    pub fn api_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.api_port))
    }

    /// `http://127.0.0.1:<proxy port>`
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.proxy_addr())
    }

    /// `http://127.0.0.1:<api port>`
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api_addr())
    }

    // ---- the public (proxy) port ----

    /// `GET target` on the proxy port, with `Host: 127.0.0.1:<port>`.
    pub async fn get(&self, target: &str) -> HttpResponse {
        self.request("GET", target, &[], Bytes::new()).await
    }

    /// Any request on the proxy port; `headers` may override `Host`.
    pub async fn request(&self, method: &str, target: &str, headers: &[(&str, &str)], body: Bytes) -> HttpResponse {
        http_request(self.proxy_addr(), method, target, headers, body)
            .await
            .unwrap_or_else(|error| panic!("{method} {target} via {}: {error:#}", self.context()))
    }

    /// Opens a WebSocket through the proxy port.
    pub async fn websocket(&self, target: &str) -> Result<WsClient, tokio_tungstenite::tungstenite::Error> {
        let request = format!("ws://{}{}", self.proxy_addr(), target).into_client_request()?;
        let (ws, _) = tokio::time::timeout(REQUEST_TIMEOUT, tokio_tungstenite::connect_async(request))
            .await
            .unwrap_or_else(|_| panic!("WebSocket handshake for {target} timed out via {}", self.context()))?;
        Ok(ws)
    }

    // ---- the REST API ----

    /// Any API request, e.g. `api("GET", "/api/routes?inactive_since=x", ApiAuth::Token, "")`.
    pub async fn api(&self, method: &str, target: &str, auth: ApiAuth<'_>, body: &str) -> HttpResponse {
        let token_header;
        let mut headers: Vec<(&str, &str)> = Vec::new();
        match auth {
            ApiAuth::Token => {
                if let Some(token) = &self.token {
                    token_header = format!("token {token}");
                    headers.push(("authorization", &token_header));
                }
            }
            ApiAuth::None => {}
            ApiAuth::Header(value) => headers.push(("authorization", value)),
        }
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        http_request(self.api_addr(), method, target, &headers, Bytes::copy_from_slice(body.as_bytes()))
            .await
            .unwrap_or_else(|error| panic!("API {method} {target} via {}: {error:#}", self.context()))
    }

    /// `POST /api/routes<path>` with `data`; asserts 201. `path` is sent as given (percent-encode it yourself).
    pub async fn add_route(&self, path: &str, data: Value) {
        let response = self.api("POST", &format!("/api/routes{path}"), ApiAuth::Token, &data.to_string()).await;
        assert_eq!(response.status, 201, "adding route {path}: {} via {}", response.text(), self.context());
    }

    /// `POST /api/routes<path>` with `{"target": target}`.
    pub async fn add_target(&self, path: &str, target: &str) {
        self.add_route(path, serde_json::json!({ "target": target })).await;
    }

    /// `GET /api/routes<path>`: the route's data, or `None` on 404.
    pub async fn get_route(&self, path: &str) -> Option<Value> {
        let response = self.api("GET", &format!("/api/routes{path}"), ApiAuth::Token, "").await;
        match response.status {
            200 => Some(response.json()),
            404 => None,
            other => panic!("GET route {path}: {other} {} via {}", response.text(), self.context()),
        }
    }

    /// `DELETE /api/routes<path>`: the status code.
    pub async fn delete_route(&self, path: &str) -> u16 {
        self.api("DELETE", &format!("/api/routes{path}"), ApiAuth::Token, "").await.status
    }

    /// `GET /api/routes`: the whole table; asserts 200.
    pub async fn list_routes(&self) -> Map<String, Value> {
        let response = self.api("GET", "/api/routes", ApiAuth::Token, "").await;
        assert_eq!(response.status, 200, "listing routes: {} via {}", response.text(), self.context());
        match response.json() {
            Value::Object(map) => map,
            other => panic!("route table is not an object: {other} via {}", self.context()),
        }
    }

    /// The `last_activity` string of the route at `path` (which must exist).
    pub async fn last_activity(&self, path: &str) -> String {
        let route =
            self.get_route(path).await.unwrap_or_else(|| panic!("route {path} is missing via {}", self.context()));
        route["last_activity"]
            .as_str()
            .unwrap_or_else(|| panic!("route {path} has no last_activity string: {route} via {}", self.context()))
            .to_owned()
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep the folder so the whole log can be read after the run.
            self.dir.disable_cleanup(true);
            eprintln!(
                "----- {} log tail ({}; folder kept) -----\n{}\n----- end of {} log -----",
                self.kind.name(),
                self.log_path.display(),
                self.log_tail(80),
                self.kind.name()
            );
        }
    }
}

/// Starts one proxy process that appends its output to `log_path`.
fn spawn_proxy(kind: ProxyKind, flags: &[String], token: Option<&str>, dir: &Path, log_path: &Path) -> ChildGuard {
    let log = File::options().create(true).append(true).open(log_path).expect("open proxy log");
    let mut command = match kind {
        ProxyKind::Chp => {
            let mut command = Command::new("node");
            command.arg(chp_script()).args(flags);
            command
        }
        ProxyKind::Wasmhub => {
            let mut command = Command::new(wasmhub_bin());
            // Our proxy persists routes by default; a per-test file keeps tests from seeing each other's routes.
            command.arg("proxy").args(flags).arg("--routes-file").arg(dir.join("routes.jsonl"));
            command
        }
    };
    match token {
        Some(token) => command.env("CONFIGPROXY_AUTH_TOKEN", token),
        None => command.env_remove("CONFIGPROXY_AUTH_TOKEN"),
    };
    command.stdin(Stdio::null()).stdout(log.try_clone().expect("clone log handle")).stderr(log);
    ChildGuard::spawn(kind.name(), command)
}

pub type WsClient = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The error type of request bodies sent by the harness.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request body: fixed bytes or a stream.
pub type ReqBody = BoxBody<Bytes, BoxError>;

/// A response whose body has been read completely.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {:?}", self.text()))
    }

    /// The backend's echo of the request it got (panics if the response is not an echo).
    pub fn echo(&self) -> Echo {
        assert_eq!(self.status, 200, "expected an echo from the backend, got {}: {}", self.status, self.text());
        Echo::from_body(&self.body)
    }

    /// The first value of header `name`, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Wraps fixed bytes as a request body.
pub fn full_body(body: impl Into<Bytes>) -> ReqBody {
    Full::new(body.into()).map_err(|never| match never {}).boxed()
}

/// Sends one request on a fresh HTTP/1.1 connection to `addr` and returns the response head with a streaming body.
///
/// The request-target is sent verbatim. A `Host: <addr>` header is added unless `request` has one.
pub async fn send(addr: SocketAddr, mut request: http::Request<ReqBody>) -> anyhow::Result<http::Response<Incoming>> {
    if !request.headers().contains_key("host") {
        request.headers_mut().insert("host", addr.to_string().parse()?);
    }
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(request))
        .await
        .map_err(|_| anyhow::anyhow!("no response head within {REQUEST_TIMEOUT:?}"))??;
    Ok(response)
}

/// Sends one request (see [`send`]) and reads the whole response body.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> anyhow::Result<HttpResponse> {
    let mut builder = http::Request::builder().method(method).uri(target);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = send(addr, builder.body(full_body(body))?).await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(REQUEST_TIMEOUT, response.into_body().collect())
        .await
        .map_err(|_| anyhow::anyhow!("response body not complete within {REQUEST_TIMEOUT:?}"))??
        .to_bytes();
    Ok(HttpResponse { status, headers, body })
}

/// Polls `check` every 20 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Parses the exact `last_activity` format, `YYYY-MM-DDTHH:MM:SS.mmmZ` (what a JS `Date` serialises to), into
/// milliseconds since the Unix epoch. Anything else (no milliseconds, an offset instead of `Z`, ...) is `None`.
pub fn parse_timestamp_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 24 {
        return None;
    }
    for (i, &c) in b.iter().enumerate() {
        let ok = match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        };
        if !ok {
            return None;
        }
    }
    let num = |range: std::ops::Range<usize>| text[range].parse::<i64>().unwrap();
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let (hour, minute, second, milli) = (num(11..13), num(14..16), num(17..19), num(20..23));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + milli)
}

#[cfg(test)]
mod tests {
    use super::parse_timestamp_ms;

    #[test]
    fn parses_js_iso_strings() {
        assert_eq!(parse_timestamp_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_timestamp_ms("2026-11-26T14:30:28.197Z"), Some(1_795_703_428_197));
        assert_eq!(parse_timestamp_ms("2000-02-29T23:59:59.999Z"), Some(951_868_799_999));
        assert_eq!(parse_timestamp_ms("2026-11-26T14:30:28Z"), None);
        assert_eq!(parse_timestamp_ms("2026-11-26T14:30:28.197+00:00"), None);
        assert_eq!(parse_timestamp_ms("2026-11-26 14:30:28.197Z"), None);
    }
}
