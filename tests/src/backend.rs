//! A real HTTP and WebSocket backend for the proxy contract tests.
//!
//! It binds `127.0.0.1:0` (never a fixed port) and records the request-target of every request it gets, so a test
//! can check exactly what a proxy forwarded. Behaviour is chosen by the **last path segment** of the request, because
//! a proxy prepends the route target's path and keeps the route prefix: `/ALICE/user/alice/slow?ms=10` is a slow
//! request just like `/slow?ms=10`.
//!
//! | last segment | behaviour |
//! |---|---|
//! | anything else | 200 JSON echo: method, request-target as received, headers, body length ([`Echo`]) |
//! | `slow?ms=N` | waits N ms, then echoes |
//! | `hang` | never answers |
//! | `status?code=N[&empty=1]` | answers status N (a 3xx gets `Location: /elsewhere`) with `status N` or no body |
//! | `bytes?n=N` | streams N bytes of the [`pattern`] (chunked, no content-length) |
//! | `upload` | counts and checks a streamed request body against the [`pattern`]; answers [`UploadReport`] JSON |
//! | parent segment `error` (e.g. `/hub/error/503`) | a fake error target: 200, [`ERROR_PAGE_CONTENT_TYPE`], a body starting with [`ERROR_PAGE_MARKER`] |
//! | `reset` | reads the request head, then resets the TCP connection (RST) |
//! | `garbage` | reads the request head, then writes bytes that are not HTTP and closes |
//! | `ws-echo` | WebSocket that echoes every text/binary message |
//! | `ws-push?n=N` | WebSocket that sends N text messages on its own and ignores whatever the client sends |
//!
//! Every connection serves exactly one request (HTTP keep-alive is off). That lets the accept loop choose between
//! hyper and the raw misbehaviours by peeking at the request line, and it keeps a proxy's pooled upstream connection
//! from carrying a later request to a handler that was chosen for an earlier one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, Stream, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request as WsRequest, Response as WsResponse};

/// The content-type the fake error target answers with, so a test can tell its body reached the client.
pub const ERROR_PAGE_CONTENT_TYPE: &str = "text/x-wasmhub-test-error; charset=utf-8";
/// The first bytes of every fake error-target body.
pub const ERROR_PAGE_MARKER: &str = "wasmhub-test-error-page";

/// A running backend; its tasks stop accepting when it is dropped.
pub struct Backend {
    addr: SocketAddr,
    state: Arc<State>,
    accept_task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct State {
    /// The request-target (path and query, as received) of every request, in arrival order.
    seen: Mutex<Vec<String>>,
    /// The request-target and headers of every WebSocket handshake.
    ws_handshakes: Mutex<Vec<Echo>>,
}

impl Backend {
    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let accept_state = state.clone();
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                tokio::spawn(serve_connection(stream, accept_state.clone()));
            }
        });
        Backend { addr, state, accept_task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` (no trailing slash), ready to be a route target.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The request-targets received so far, in arrival order.
    pub fn seen(&self) -> Vec<String> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The WebSocket handshakes received so far (method `GET`, body length 0).
    pub fn ws_handshakes(&self) -> Vec<Echo> {
        self.state.ws_handshakes.lock().unwrap().clone()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

/// A port on 127.0.0.1 that refuses connections for as long as this value lives.
///
/// The socket is bound but never listens: connecting gets a reset at once (ECONNREFUSED), and, unlike a port that
/// was merely free a moment ago, no other test can start listening on it meanwhile.
pub struct ClosedPort {
    _socket: tokio::net::TcpSocket,
    addr: SocketAddr,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind 127.0.0.1:0");
        let addr = socket.local_addr().unwrap();
        ClosedPort { _socket: socket, addr }
    }

    /// `http://127.0.0.1:<port>`, a route target that is down.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Default for ClosedPort {
    fn default() -> ClosedPort {
        ClosedPort::new()
    }
}

/// What the echo endpoint saw, parsed back from its JSON reply.
#[derive(Clone, Debug)]
pub struct Echo {
    pub method: String,
    /// The request-target exactly as it arrived (path and query, still percent-encoded).
    pub uri: String,
    /// Header names are lower case; repeated headers appear once per line received.
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
}

impl Echo {
    pub fn from_json(value: &Value) -> Echo {
        let headers = value["headers"]
            .as_array()
            .expect("echo headers")
            .iter()
            .map(|pair| (pair[0].as_str().unwrap().to_owned(), pair[1].as_str().unwrap().to_owned()))
            .collect();
        Echo {
            method: value["method"].as_str().expect("echo method").to_owned(),
            uri: value["uri"].as_str().expect("echo uri").to_owned(),
            headers,
            body_len: value["body_len"].as_u64().expect("echo body_len"),
        }
    }

    pub fn from_body(body: &[u8]) -> Echo {
        let value: Value = serde_json::from_slice(body).unwrap_or_else(|error| {
            panic!("backend reply is not echo JSON ({error}): {}", String::from_utf8_lossy(body))
        });
        Echo::from_json(&value)
    }

    /// Every value of header `name` (lower case), one entry per header line.
    pub fn header(&self, name: &str) -> Vec<String> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect()
    }

    fn to_json(&self) -> Value {
        json!({
            "method": self.method,
            "uri": self.uri,
            "headers": self.headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
            "body_len": self.body_len,
        })
    }
}

/// The reply of the `upload` endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadReport {
    pub received: u64,
    pub pattern_ok: bool,
}

impl UploadReport {
    pub fn from_body(body: &[u8]) -> UploadReport {
        let value: Value = serde_json::from_slice(body)
            .unwrap_or_else(|error| panic!("not an upload report ({error}): {}", String::from_utf8_lossy(body)));
        UploadReport {
            received: value["received"].as_u64().expect("received"),
            pattern_ok: value["pattern_ok"].as_bool().expect("pattern_ok"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The byte pattern for large bodies.
//
// Byte i of a stream is `i % 251`. The period is prime so that a dropped, duplicated or reordered chunk (chunks are
// powers of two long) shows up as a mismatch, not just as a wrong total. Chunks are slices of one shared buffer, so
// producing and checking 100+ MB stays cheap even in a debug build (a slice compare, no per-byte loop).

const PERIOD: usize = 251;
const CHUNK: usize = 64 * 1024;

fn pattern_buffer() -> &'static Bytes {
    static BUFFER: OnceLock<Bytes> = OnceLock::new();
    BUFFER.get_or_init(|| (0..CHUNK + PERIOD).map(|i| (i % PERIOD) as u8).collect::<Vec<u8>>().into())
}

/// `len` bytes of the pattern, in chunks, as a stream (for uploads and for the `bytes` endpoint).
pub fn pattern(len: u64) -> impl Stream<Item = Bytes> + Send + Sync + 'static {
    futures_util::stream::unfold(0u64, move |offset| async move {
        if offset >= len {
            return None;
        }
        let take = (len - offset).min(CHUNK as u64) as usize;
        let start = (offset % PERIOD as u64) as usize;
        Some((pattern_buffer().slice(start..start + take), offset + take as u64))
    })
}

/// Checks that a body, fed in arbitrary pieces, is exactly the pattern.
pub struct PatternCheck {
    received: u64,
    ok: bool,
}

impl Default for PatternCheck {
    fn default() -> PatternCheck {
        PatternCheck::new()
    }
}

impl PatternCheck {
    pub fn new() -> PatternCheck {
        PatternCheck { received: 0, ok: true }
    }

    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = data.len().min(CHUNK);
            let start = (self.received % PERIOD as u64) as usize;
            if data[..take] != pattern_buffer()[start..start + take] {
                self.ok = false;
            }
            self.received += take as u64;
            data = &data[take..];
        }
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// True while every byte so far matched (length is the caller's to check).
    pub fn ok(&self) -> bool {
        self.ok
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Serving.

type Body = BoxBody<Bytes, Infallible>;

async fn serve_connection(stream: TcpStream, state: Arc<State>) {
    let Some(target) = peek_request_target(&stream).await else { return };
    let (path, _) = split_target(&target);
    match last_segment(path) {
        "reset" => {
            state.seen.lock().unwrap().push(target);
            reset(stream).await;
        }
        "garbage" => {
            state.seen.lock().unwrap().push(target);
            garbage(stream).await;
        }
        "ws-echo" | "ws-push" => websocket(stream, state).await,
        _ => {
            let service = hyper::service::service_fn(move |request| handle(request, state.clone()));
            // One request per connection: see the module comment.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    }
}

/// The request-target of the first request line, without consuming any bytes.
async fn peek_request_target(stream: &TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&buf[..end]).into_owned();
            return line.split(' ').nth(1).map(str::to_owned);
        }
        if n == buf.len() {
            return None;
        }
        // peek returns at once while bytes are buffered, so wait a little for the rest of the line.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn split_target(target: &str) -> (&str, &str) {
    target.split_once('?').unwrap_or((target, ""))
}

fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

fn parent_segment(path: &str) -> &str {
    path.rsplit('/').nth(1).unwrap_or("")
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').filter_map(|pair| pair.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// Consumes the request head so that the peer has finished sending before we misbehave.
async fn read_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
}

async fn reset(mut stream: TcpStream) {
    read_head(&mut stream).await;
    // A zero linger turns close() into an RST instead of a FIN.
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn garbage(mut stream: TcpStream) {
    read_head(&mut stream).await;
    let _ = stream.write_all(b"\x00\x01\x02 this is not an HTTP response \xff\xfe\r\n\r\n").await;
    let _ = stream.shutdown().await;
}

async fn websocket(stream: TcpStream, state: Arc<State>) {
    let handshake_state = state.clone();
    let mut target = String::new();
    // The error type of this callback is fixed by tungstenite; it is never returned here.
    #[allow(clippy::result_large_err)]
    let callback = |request: &WsRequest, response: WsResponse| {
        let echo = Echo {
            method: request.method().to_string(),
            uri: request.uri().to_string(),
            headers: header_pairs(request.headers()),
            body_len: 0,
        };
        target = echo.uri.clone();
        handshake_state.seen.lock().unwrap().push(echo.uri.clone());
        handshake_state.ws_handshakes.lock().unwrap().push(echo);
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else { return };
    let (path, query) = split_target(&target);
    if last_segment(path) == "ws-push" {
        let n: usize = query_param(query, "n").and_then(|n| n.parse().ok()).unwrap_or(1);
        for i in 0..n {
            if ws.send(Message::text(format!("push {i}"))).await.is_err() {
                return;
            }
        }
        // Stay open (and read, so pings and close frames are answered) until the client leaves.
        while let Some(Ok(_)) = ws.next().await {}
    } else {
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                break;
            }
            // Pings are answered by tungstenite itself; only data messages are echoed.
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                return;
            }
        }
    }
}

fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect()
}

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

async fn handle(request: Request<Incoming>, state: Arc<State>) -> Result<Response<Body>, Infallible> {
    let target = request.uri().path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_default();
    state.seen.lock().unwrap().push(target.clone());
    let (path, query) = split_target(&target);
    let response = if parent_segment(path) == "error" {
        let body = format!("{ERROR_PAGE_MARKER} for {target}");
        full(200, ERROR_PAGE_CONTENT_TYPE, body)
    } else {
        match last_segment(path) {
            "slow" => {
                let ms = query_param(query, "ms").and_then(|ms| ms.parse().ok()).unwrap_or(1000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                echo(request, target).await
            }
            "hang" => std::future::pending().await,
            "status" => {
                let code: u16 = query_param(query, "code").and_then(|c| c.parse().ok()).unwrap_or(200);
                // `empty=1` tells apart "a response finished" from "response bytes flowed".
                let body = if query_param(query, "empty").is_some() { String::new() } else { format!("status {code}") };
                let mut response = full(code, "text/plain", body);
                if (300..400).contains(&code) {
                    response.headers_mut().insert("location", "/elsewhere".parse().unwrap());
                }
                response
            }
            "bytes" => {
                let n: u64 = query_param(query, "n").and_then(|n| n.parse().ok()).unwrap_or(0);
                let frames = pattern(n).map(|chunk| Ok::<_, Infallible>(Frame::data(chunk)));
                Response::builder()
                    .status(200)
                    .header("content-type", "application/octet-stream")
                    .body(BodyExt::boxed(StreamBody::new(frames)))
                    .unwrap()
            }
            "upload" => {
                let mut check = PatternCheck::new();
                let mut body = request.into_body();
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else { break };
                    if let Some(data) = frame.data_ref() {
                        check.feed(data);
                    }
                }
                let report = json!({"received": check.received(), "pattern_ok": check.ok()});
                full(200, "application/json", report.to_string())
            }
            _ => echo(request, target).await,
        }
    };
    Ok(response)
}

async fn echo(request: Request<Incoming>, target: String) -> Response<Body> {
    let method = request.method().to_string();
    let headers = header_pairs(request.headers());
    let mut body_len = 0u64;
    let mut body = request.into_body();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            body_len += data.len() as u64;
        }
    }
    let echo = Echo { method, uri: target, headers, body_len };
    let mut response = full(200, "application/json", echo.to_json().to_string());
    // A response header the proxy has to pass through untouched.
    response.headers_mut().insert("x-backend", "echo".parse().unwrap());
    response
}

#[cfg(test)]
mod tests {
    use super::{PatternCheck, pattern};
    use futures_util::StreamExt;

    #[tokio::test]
    async fn pattern_is_i_mod_251_and_check_accepts_any_split() {
        let len = 200_003u64;
        let chunks: Vec<_> = pattern(len).collect().await;
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(all.len() as u64, len);
        assert!(all.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        let mut check = PatternCheck::new();
        for piece in all.chunks(7_777) {
            check.feed(piece);
        }
        assert_eq!(check.received(), len);
        assert!(check.ok());
    }

    #[tokio::test]
    async fn check_detects_changed_dropped_and_repeated_bytes() {
        let all: Vec<u8> = pattern(300_000).collect::<Vec<_>>().await.concat();
        let mut changed = all.clone();
        changed[123_456] ^= 1;
        let mut dropped = all.clone();
        dropped.drain(70_000..70_000 + 65_536);
        let mut repeated = all[..65_536].to_vec();
        repeated.extend_from_slice(&all);
        for (label, body) in [("changed", changed), ("dropped", dropped), ("repeated", repeated)] {
            let mut check = PatternCheck::new();
            check.feed(&body);
            assert!(!check.ok(), "{label} chunk not detected");
        }
    }
}
