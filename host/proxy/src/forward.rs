//! Forwarding one client request to the route's target: CHP's URL rewriting and `X-Forwarded-*` headers, streamed
//! bodies both ways, WebSocket upgrades piped byte for byte, and `last_activity` recorded as CHP records it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::metrics::{KindLabel, StatusLabel};
use crate::path::RequestPath;
use crate::routes::Route;
use crate::{BoxError, Proxy, ProxyBody, full_body};

/// What the proxy knows about the client connection a request came on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientInfo {
    pub(crate) remote: SocketAddr,
    pub(crate) encrypted: bool,
}

/// A target's response made ready for the client: hop-by-hop headers dropped, the client's HTTP version, and CHP's
/// activity rule (a web response counts once it has succeeded, status < 300, and been sent).
fn finish_response(
    response: Response<ProxyBody>,
    route: Arc<Route>,
    client_version: http::Version,
    websocket: bool,
) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.version = client_version;
    let body = if !websocket && parts.status.as_u16() < 300 {
        ActivityBody::successful_response(body, route).boxed_unsync()
    } else {
        body.map_err(BoxError::from).boxed_unsync()
    };
    Response::from_parts(parts, body)
}

/// How often a held request for the default target tries to connect again.
const HOLD_RETRY: Duration = Duration::from_millis(100);

/// The largest request body a held request keeps in order to send it again (login forms and API calls are far
/// smaller); larger bodies stream through unheld, so bodies are never buffered beyond this.
const HOLD_BODY_LIMIT: u64 = 64 * 1024;

/// Whether a held request may be sent again: it never reached the target (nothing accepted the connection, or
/// the connection closed before the request was written); the target reset the connection, which a server's
/// kernel does when it closes a connection with our bytes unread (a hub stopping gracefully closes its idle
/// keep-alive connections), so the application never saw the request; or its method is idempotent and the
/// connection died before an answer (the hub killed mid-request), which HTTP allows a client to retry. A POST
/// the hub may have read is never sent twice.
fn retryable(error: &(dyn std::error::Error + 'static), method: &http::Method) -> bool {
    let connect = error
        .downcast_ref::<hyper_util::client::legacy::Error>()
        .is_some_and(hyper_util::client::legacy::Error::is_connect);
    if connect {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        let unsent = current.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_canceled);
        let io_kind = current.downcast_ref::<std::io::Error>().map(std::io::Error::kind);
        let unread = matches!(io_kind, Some(std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe));
        if unsent || unread {
            return true;
        }
        let died = current.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_incomplete_message)
            || io_kind == Some(std::io::ErrorKind::UnexpectedEof);
        if died && method.is_idempotent() {
            return true;
        }
        source = current.source();
    }
    false
}

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

impl Proxy {
    /// Answers one request that arrived on the proxy port.
    pub(crate) async fn handle_proxy(&self, mut request: Request<Incoming>, client: ClientInfo) -> Response<ProxyBody> {
        if request.uri().path_and_query().map(|pq| pq.as_str()) == Some("/_chp_healthz") {
            return health_check();
        }
        if head_size(&request) > MAX_HEAD_BYTES {
            // hyper bounds its read buffer, not the head itself, so the limit is enforced here.
            let mut response = Response::new(full_body(Bytes::from_static(b"Request Header Fields Too Large")));
            *response.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        let websocket = is_websocket_upgrade(&request);
        let metrics = &self.shared.metrics;
        if websocket {
            metrics.requests_ws.inc();
        } else {
            metrics.requests_web.inc();
        }

        let path = match RequestPath::parse(request.uri().path()) {
            Ok(path) => path,
            Err(error) => {
                // The path only: a query string may carry a token.
                tracing::warn!(path = request.uri().path(), %error, "cannot route request");
                return self.error_response(StatusCode::INTERNAL_SERVER_ERROR, request.uri(), websocket).await;
            }
        };
        let lookup_key = if self.shared.config.host_routing {
            format!("/{}{}", request_host(&request).unwrap_or_default(), path.decoded)
        } else {
            path.decoded.clone()
        };
        let Some(route) = self.shared.store.table().lookup(&lookup_key) else {
            return self.error_response(StatusCode::NOT_FOUND, request.uri(), websocket).await;
        };

        let upstream_uri = match self.upstream_uri(&route, &path, request.uri().query()) {
            Ok(uri) => uri,
            Err(error) => {
                tracing::error!(route = route.key(), %error, "cannot build the upstream URL");
                return self.error_response(StatusCode::INTERNAL_SERVER_ERROR, request.uri(), websocket).await;
            }
        };
        let original_uri = request.uri().clone();
        let method = request.method().clone();
        let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut request));
        let (parts, body) = request.into_parts();
        let client_version = parts.version;
        let mut upstream_request = Request::new(if websocket {
            full_body(Bytes::new())
        } else {
            ActivityBody::request(body, route.clone()).boxed_unsync()
        });
        *upstream_request.method_mut() = parts.method;
        *upstream_request.uri_mut() = upstream_uri;
        *upstream_request.headers_mut() = self.upstream_headers(parts.headers, &client, websocket);

        let started = Instant::now();
        let hold = self.shared.config.default_target_hold;
        if !websocket && !hold.is_zero() && route.key() == "/" {
            upstream_request = match self.send_holding(upstream_request, &route, hold).await {
                Ok(response) => {
                    metrics.request_duration.observe(started.elapsed().as_secs_f64());
                    metrics.requests_proxy.get_or_create(&StatusLabel { status: response.status().as_u16() }).inc();
                    return finish_response(response, route, client_version, false);
                }
                Err(Some(request)) => request,
                Err(None) => {
                    tracing::error!(
                        "503 {} {}: the hub did not come back within {hold:?}",
                        method,
                        original_uri.path()
                    );
                    return self.error_response(StatusCode::SERVICE_UNAVAILABLE, &original_uri, websocket).await;
                }
            };
        }
        let sent = self.send_upstream(upstream_request, &route, websocket);
        let result = match self.shared.config.proxy_timeout {
            Some(limit) => match tokio::time::timeout(limit, sent).await {
                Ok(result) => result,
                Err(_) => Err(UpstreamTimeout.into()),
            },
            None => sent.await,
        };
        metrics.request_duration.observe(started.elapsed().as_secs_f64());
        let mut response = match result {
            Ok(response) => response,
            Err(error) => {
                let kind = classify_upstream_error(&*error);
                metrics.upstream_errors.get_or_create(&KindLabel { kind }).inc();
                tracing::error!(
                    "503 {} {} {}: {}",
                    if websocket { "WS" } else { method.as_str() },
                    original_uri.path(),
                    route.target().as_str(),
                    error_chain(&*error)
                );
                return self.error_response(StatusCode::SERVICE_UNAVAILABLE, &original_uri, websocket).await;
            }
        };
        metrics.requests_proxy.get_or_create(&StatusLabel { status: response.status().as_u16() }).inc();

        if let Some(client_upgrade) = client_upgrade.filter(|_| response.status() == StatusCode::SWITCHING_PROTOCOLS) {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            self.spawn_websocket_pipe(client_upgrade, upstream_upgrade, route);
            let (parts, _) = response.into_parts();
            return Response::from_parts(parts, full_body(Bytes::new()));
        }

        finish_response(response, route, client_version, websocket)
    }

    /// Sends a request for the default target, and while nothing accepts connections there (the hub restarting),
    /// tries again every [`HOLD_RETRY`] for up to `hold`. A request is resent only when it never reached the target,
    /// or when its method is idempotent and the connection died before an answer, and only a body small enough to keep ([`HOLD_BODY_LIMIT`], known from `Content-Length`) is kept for that;
    /// anything else is handed back (`Err(Some)`) to go the usual way. `Err(None)`: the hold ran out.
    async fn send_holding(
        &self,
        request: Request<ProxyBody>,
        route: &Route,
        hold: Duration,
    ) -> Result<Response<ProxyBody>, Option<Request<ProxyBody>>> {
        let length = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
        let keepable = match length {
            Some(length) => length <= HOLD_BODY_LIMIT,
            None => !chunked,
        };
        if !keepable {
            return Err(Some(request));
        }
        let (parts, body) = request.into_parts();
        let Ok(collected) = body.collect().await else {
            // The client went away mid-body; there is nobody to answer.
            return Err(None);
        };
        let body = collected.to_bytes();
        let deadline = Instant::now() + hold;
        loop {
            let mut attempt = Request::new(full_body(body.clone()));
            *attempt.method_mut() = parts.method.clone();
            *attempt.uri_mut() = parts.uri.clone();
            *attempt.version_mut() = parts.version;
            *attempt.headers_mut() = parts.headers.clone();
            let sent = match self.shared.config.proxy_timeout {
                Some(limit) => tokio::time::timeout(limit, self.send_upstream(attempt, route, false))
                    .await
                    .unwrap_or_else(|_| Err(UpstreamTimeout.into())),
                None => self.send_upstream(attempt, route, false).await,
            };
            match sent {
                Ok(response) => return Ok(response),
                Err(error) if retryable(&*error, &parts.method) && Instant::now() + HOLD_RETRY < deadline => {
                    tracing::debug!(
                        path = parts.uri.path(),
                        "the default target is not accepting connections; holding"
                    );
                    tokio::time::sleep(HOLD_RETRY).await;
                }
                Err(error) => {
                    tracing::error!(path = parts.uri.path(), error = %error_chain(&*error), "the default target failed");
                    return Err(None);
                }
            }
        }
    }

    /// Sends the request to the route's target: over a pooled connection, or to the in-process service when the
    /// target is the local one (websocket upgrades always connect, since a service call cannot hand over a socket).
    async fn send_upstream(
        &self,
        mut request: Request<ProxyBody>,
        route: &Route,
        websocket: bool,
    ) -> Result<Response<ProxyBody>, BoxError> {
        let local = self.shared.local.load();
        if let Some(local) = local.as_deref().filter(|local| !websocket && local.target.same_origin(route.target())) {
            // What the target's HTTP server would have been given: an origin-form URI and, as hyper's client
            // adds it when the client sent none, a Host header naming the target.
            let path_and_query = request.uri().path_and_query().cloned();
            if !request.headers().contains_key(header::HOST)
                && let Ok(host) = HeaderValue::from_str(local.target.authority().as_str())
            {
                request.headers_mut().insert(header::HOST, host);
            }
            let mut origin_form = http::uri::Parts::default();
            origin_form.path_and_query = path_and_query;
            *request.uri_mut() = Uri::from_parts(origin_form)?;
            let mut response = (local.service)(request).await?;
            // The target's HTTP server would have framed a body of known size with `Content-Length` (never for
            // 1xx, 204 and 304); set it the same way, so the client gets the same header at the same place.
            let status = response.status();
            let headers = response.headers();
            if !headers.contains_key(header::CONTENT_LENGTH)
                && !headers.contains_key(header::TRANSFER_ENCODING)
                && !status.is_informational()
                && status != StatusCode::NO_CONTENT
                && status != StatusCode::NOT_MODIFIED
                && let Some(length) = response.body().size_hint().exact()
            {
                response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            }
            return Ok(response);
        }
        drop(local);
        let response = self.shared.client.request(request).await?;
        Ok(response.map(|body| body.map_err(BoxError::from).boxed_unsync()))
    }

    fn upstream_uri(&self, route: &Route, path: &RequestPath, query: Option<&str>) -> Result<Uri, http::Error> {
        let config = &self.shared.config;
        let target = route.target();
        let mut forwarded_path: &str = &path.forwarded;
        if !config.include_prefix {
            // Drop as many leading segments as the route key has (the host segment is not in the path).
            let mut segments = route.key().trim_matches('/').split('/').filter(|s| !s.is_empty()).count();
            if config.host_routing {
                segments = segments.saturating_sub(1);
            }
            let trimmed = forwarded_path.trim_start_matches('/');
            let cut = trimmed.match_indices('/').nth(segments.saturating_sub(1)).map(|(i, _)| i);
            forwarded_path = match (segments, cut) {
                (0, _) => forwarded_path,
                (_, Some(index)) => &trimmed[index..],
                (_, None) => "/",
            };
        }
        let base = if config.prepend_path { target.base_path() } else { "" };
        let mut path_and_query = String::with_capacity(base.len() + forwarded_path.len() + 64);
        path_and_query.push_str(base);
        path_and_query.push_str(forwarded_path);
        if let Some(query) = query {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        Uri::builder()
            .scheme(target.scheme().clone())
            .authority(target.authority().clone())
            .path_and_query(path_and_query)
            .build()
    }

    fn upstream_headers(&self, mut headers: HeaderMap, client: &ClientInfo, websocket: bool) -> HeaderMap {
        strip_hop_by_hop(&mut headers);
        if websocket {
            headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        if self.shared.config.x_forward {
            let port = headers
                .get(header::HOST)
                .and_then(|host| host.to_str().ok())
                .and_then(|host| host.rsplit_once(':').map(|(_, port)| port.to_owned()))
                .filter(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
                .unwrap_or_else(|| if client.encrypted { "443".into() } else { "80".into() });
            let proto = match (websocket, client.encrypted) {
                (true, true) => "wss",
                (true, false) => "ws",
                (false, true) => "https",
                (false, false) => "http",
            };
            let client_ip = client.remote.ip().to_canonical().to_string();
            append_forwarded(&mut headers, "x-forwarded-for", &client_ip);
            append_forwarded(&mut headers, "x-forwarded-port", &port);
            append_forwarded(&mut headers, "x-forwarded-proto", proto);
            if !websocket && !headers.contains_key("x-forwarded-host") {
                let host = headers.get(header::HOST).cloned().unwrap_or_else(|| HeaderValue::from_static(""));
                headers.insert(HeaderName::from_static("x-forwarded-host"), host);
            }
        }
        for (name, value) in &self.shared.config.custom_headers {
            headers.insert(name.clone(), value.clone());
        }
        headers
    }

    fn spawn_websocket_pipe(
        &self,
        client_upgrade: hyper::upgrade::OnUpgrade,
        upstream_upgrade: hyper::upgrade::OnUpgrade,
        route: Arc<Route>,
    ) {
        let proxy = self.clone();
        self.shared.websockets.spawn(async move {
            let (client, upstream) = match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(route = route.key(), %error, "websocket upgrade failed");
                    return;
                }
            };
            let gauge = &proxy.shared.metrics.websockets_open;
            gauge.inc();
            let mut client = ActivityIo { inner: TokioIo::new(client), route };
            let mut upstream = TokioIo::new(upstream);
            if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(%error, "websocket closed with an error");
            }
            gauge.dec();
        });
    }
}

/// Request heads larger than this get a 431; JupyterHub's cookies fit many times over.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The size of a request head as it was on the wire, near enough: target plus `name: value\r\n` lines.
fn head_size<B>(request: &Request<B>) -> usize {
    let target = request.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    let fields: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    target + fields
}

fn health_check() -> Response<ProxyBody> {
    let mut response = Response::new(full_body(Bytes::from_static(br#"{"status":"OK"}"#)));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `GET` with `Upgrade: websocket` and a `Connection` header listing `upgrade`: what browsers send for websockets.
fn is_websocket_upgrade<B>(request: &Request<B>) -> bool {
    let headers = request.headers();
    let upgrade_is_websocket = headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("websocket"));
    let connection_upgrade = headers.get_all(header::CONNECTION).iter().any(|value| {
        value.to_str().is_ok_and(|value| value.split(',').any(|token| token.trim().eq_ignore_ascii_case("upgrade")))
    });
    request.method() == http::Method::GET && upgrade_is_websocket && connection_upgrade
}

/// The Host header without its port (or the authority of an absolute-form request).
pub(crate) fn request_host<B>(request: &Request<B>) -> Option<String> {
    let host = match request.headers().get(header::HOST).and_then(|value| value.to_str().ok()) {
        Some(host) => host.to_owned(),
        None => request.uri().host()?.to_owned(),
    };
    Some(host.split(':').next().unwrap_or_default().to_owned())
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// CHP appends with a bare comma: an incoming `X-Forwarded-For: 1.2.3.4` becomes `1.2.3.4,127.0.0.1`.
fn append_forwarded(headers: &mut HeaderMap, name: &'static str, value: &str) {
    let existing: Vec<&str> = headers.get_all(name).iter().filter_map(|value| value.to_str().ok()).collect();
    let combined = if existing.is_empty() { value.to_owned() } else { format!("{},{value}", existing.join(", ")) };
    if let Ok(combined) = HeaderValue::from_str(&combined) {
        headers.insert(HeaderName::from_static(name), combined);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the target did not answer within --proxy-timeout")]
struct UpstreamTimeout;

fn classify_upstream_error(error: &(dyn std::error::Error + 'static)) -> &'static str {
    if error.is::<UpstreamTimeout>() {
        return "timeout";
    }
    if let Some(client_error) = error.downcast_ref::<hyper_util::client::legacy::Error>()
        && client_error.is_connect()
    {
        return "connect";
    }
    "protocol"
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// A body that records activity on its route the way CHP does: a client's request body counts for every data
/// chunk; a successful response counts once, when it has been sent completely.
struct ActivityBody<B: Body> {
    inner: B,
    route: Arc<Route>,
    mode: ActivityMode,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ActivityMode {
    EachDataFrame,
    /// Cleared once counted, so the end is counted at most once.
    AtEnd,
    Done,
}

impl<B: Body> ActivityBody<B> {
    fn request(inner: B, route: Arc<Route>) -> ActivityBody<B> {
        ActivityBody { inner, route, mode: ActivityMode::EachDataFrame }
    }

    fn successful_response(inner: B, route: Arc<Route>) -> ActivityBody<B> {
        ActivityBody { inner, route, mode: ActivityMode::AtEnd }
    }
}

impl<B> Body for ActivityBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match (&polled, self.mode) {
            (Poll::Ready(Some(Ok(frame))), ActivityMode::EachDataFrame) if frame.is_data() => self.route.touch(),
            (Poll::Ready(None), ActivityMode::AtEnd) => {
                self.route.touch();
                self.mode = ActivityMode::Done;
            }
            _ => {}
        }
        polled.map(|frame| frame.map(|result| result.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body> Drop for ActivityBody<B> {
    fn drop(&mut self) {
        // The server may never poll a body that is empty from the start (204, HEAD); it still finished. A response
        // abandoned half way does not count, as in CHP.
        if self.mode == ActivityMode::AtEnd && self.inner.is_end_stream() {
            self.route.touch();
        }
    }
}

/// The client side of a proxied websocket: every chunk the client sends is activity, server pushes are not.
struct ActivityIo<T> {
    inner: T,
    route: Arc<Route>,
}

impl<T: AsyncRead + Unpin> AsyncRead for ActivityIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.route.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ActivityIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;
    use crate::server::{Listeners, run};
    use crate::{LocalService, ProxyConfig};

    /// What a target saw of a request, and answers with: method, URI, version, headers and body, one per line.
    async fn echo<B: Body<Data = Bytes>>(request: Request<B>) -> Response<ProxyBody>
    where
        B::Error: std::fmt::Debug,
    {
        let (parts, body) = request.into_parts();
        let body = body.collect().await.expect("request body").to_bytes();
        let mut seen = format!("{} {} {:?}\n", parts.method, parts.uri, parts.version);
        for (name, value) in &parts.headers {
            seen.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
        }
        seen.push_str(&String::from_utf8_lossy(&body));
        let mut response = Response::new(full_body(Bytes::from(seen)));
        response.headers_mut().insert("x-target", HeaderValue::from_static("echo"));
        if parts.uri.path().ends_with("/missing") {
            *response.status_mut() = StatusCode::NOT_FOUND;
        }
        response
    }

    async fn echo_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                    TokioIo::new(stream),
                    hyper::service::service_fn(|request| async move { Ok::<_, Infallible>(echo(request).await) }),
                ));
            }
        });
        format!("http://{address}")
    }

    /// Sends each raw HTTP/1 request on a connection of its own and returns the responses without `date` headers.
    async fn exchange(port: u16, requests: &[&str]) -> Vec<String> {
        let mut answers = Vec::new();
        for request in requests {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut raw = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut raw).await.unwrap();
            let text = String::from_utf8_lossy(&raw).into_owned();
            answers.push(text.lines().filter(|line| !line.starts_with("date: ")).collect::<Vec<_>>().join("\n"));
        }
        answers
    }

    #[tokio::test]
    async fn an_in_process_target_sees_and_answers_exactly_what_it_would_over_http() {
        let target = echo_server().await;
        let config = ProxyConfig { default_target: Some(target.clone()), ..ProxyConfig::default() };
        let proxy = Proxy::new(config).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listeners = Listeners { proxy: listener, api, metrics: None, redirect: None };
        tokio::spawn(run(proxy.clone(), listeners, std::future::pending()));
        let requests = [
            "GET /hub/api/users?limit=2&x=%20y HTTP/1.1\r\nHost: hub.example:8000\r\nX-Forwarded-For: 10.0.0.1\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n",
            "POST /hub/api/users/a/activity HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\nConnection: keep-alive, x-private\r\nX-Private: 1\r\nConnection: close\r\n\r\n{}",
            "GET /hub/missing HTTP/1.0\r\n\r\n",
            "HEAD /hub/ HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        ];
        let over_http = exchange(port, &requests).await;
        let local: LocalService = Arc::new(|request| Box::pin(async move { Ok(echo(request).await) }));
        proxy.serve_locally(&target, local).unwrap();
        let in_process = exchange(port, &requests).await;
        assert_eq!(in_process, over_http);
        assert!(over_http[0].contains("x-forwarded-for: 10.0.0.1,127.0.0.1"), "{}", over_http[0]);
        proxy.stop_serving_locally();
        assert_eq!(exchange(port, &requests).await, over_http);
    }

    #[test]
    fn forwarded_headers_append_with_a_bare_comma() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        append_forwarded(&mut headers, "x-forwarded-for", "127.0.0.1");
        append_forwarded(&mut headers, "x-forwarded-proto", "http");
        assert_eq!(headers["x-forwarded-for"], "1.2.3.4,127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-private"));
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert(header::COOKIE, HeaderValue::from_static("a=b"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::COOKIE));
    }

    #[test]
    fn websocket_upgrades_are_recognised() {
        let request = Request::get("/x")
            .header(header::CONNECTION, "keep-alive, Upgrade")
            .header(header::UPGRADE, "WebSocket")
            .body(())
            .unwrap();
        assert!(is_websocket_upgrade(&request));
        let post = Request::post("/x").header(header::CONNECTION, "upgrade").header(header::UPGRADE, "websocket");
        assert!(!is_websocket_upgrade(&post.body(()).unwrap()));
    }

    /// A proxy whose default target is `hub_address`, holding requests for it up to `hold`; its public port.
    async fn holding_proxy(hub_address: SocketAddr, hold: Duration) -> u16 {
        let default_target = Some(format!("http://{hub_address}"));
        serve_proxy(ProxyConfig { default_target, default_target_hold: hold, ..ProxyConfig::default() }).await
    }

    /// A proxy with `config` on loopback ports; its public port.
    async fn serve_proxy(config: ProxyConfig) -> u16 {
        let proxy = Proxy::new(config).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listeners = Listeners { proxy: listener, api, metrics: None, redirect: None };
        tokio::spawn(run(proxy, listeners, std::future::pending()));
        port
    }

    #[tokio::test]
    async fn requests_for_a_restarting_default_target_wait_for_it_instead_of_failing() {
        // A port nothing listens on yet: the hub is "restarting".
        let reserved = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hub_address = reserved.local_addr().unwrap();
        drop(reserved);
        let port = holding_proxy(hub_address, Duration::from_secs(20)).await;
        let login = "POST /hub/login HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\nConnection: close\r\n\r\nname=a&b=";
        let page = "GET /hub/home HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
        let waiting = tokio::spawn(async move { exchange(port, &[login, page]).await });
        // The hub comes back half a second later, on the same address.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiting.is_finished(), "the requests are held, not answered 503");
        let listener = TcpListener::bind(hub_address).await.unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                    TokioIo::new(stream),
                    hyper::service::service_fn(|request| async move { Ok::<_, Infallible>(echo(request).await) }),
                ));
            }
        });
        let answers = waiting.await.unwrap();
        assert!(answers[0].starts_with("HTTP/1.1 200"), "{}", answers[0]);
        assert!(answers[0].ends_with("name=a&b="), "the held body reaches the hub whole: {}", answers[0]);
        assert!(answers[1].starts_with("HTTP/1.1 200") && answers[1].contains("GET /hub/home"), "{}", answers[1]);

        // Without the hold, CHP's answer: 503 at once.
        let config = ProxyConfig { default_target: Some("http://127.0.0.1:9".into()), ..ProxyConfig::default() };
        let port = serve_proxy(config).await;
        let answers = exchange(port, &[page]).await;
        assert!(answers[0].starts_with("HTTP/1.1 503"), "{}", answers[0]);
    }

    /// What a scripted "hub" does with one connection, once the request's first bytes have arrived.
    enum Conduct {
        /// Reads the request and answers 200 `ok`.
        Answer,
        /// Reads the request and dies without answering: it may have acted on it.
        ReadAndDie,
        /// Closes with the request unread, so the kernel answers with a reset (a hub stopping gracefully).
        CloseUnread,
    }

    /// A "hub" on a loopback port that treats each connection as `conduct` says, given the connection's number and
    /// the request's first bytes (peeked, so still unread); its address.
    async fn scripted_hub(mut conduct: impl FnMut(usize, &[u8]) -> Conduct + Send + 'static) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for index in 0.. {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let mut head = [0u8; 4096];
                let seen = stream.peek(&mut head).await.unwrap_or(0);
                match conduct(index, &head[..seen]) {
                    Conduct::CloseUnread => drop(stream),
                    Conduct::ReadAndDie => {
                        let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut head).await;
                    }
                    Conduct::Answer => {
                        let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut head).await;
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                        let _ = stream.write_all(answer).await;
                    }
                }
            }
        });
        address
    }

    #[tokio::test]
    async fn a_held_get_is_sent_again_when_the_hub_dies_mid_request_but_a_post_is_not() {
        // The "hub" reads each POST and the first GET and dies without answering (it may have acted on them); it
        // answers the GET sent again.
        let mut first_get = true;
        let hub_address = scripted_hub(move |_, head| {
            if head.starts_with(b"GET") && !std::mem::take(&mut first_get) {
                Conduct::Answer
            } else {
                Conduct::ReadAndDie
            }
        })
        .await;
        let port = holding_proxy(hub_address, Duration::from_secs(10)).await;
        let page = "GET /hub/home HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
        let answers = exchange(port, &[page]).await;
        assert!(answers[0].starts_with("HTTP/1.1 200"), "an idempotent request is sent again: {}", answers[0]);
        let login = "POST /hub/login HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: close\r\n\r\na=b";
        let answers = exchange(port, &[login]).await;
        assert!(answers[0].starts_with("HTTP/1.1 503"), "a POST the hub may have seen is not: {}", answers[0]);
    }

    #[tokio::test]
    async fn a_held_post_is_sent_again_when_the_hub_closed_the_connection_without_reading_it() {
        // The "hub" stopping: it closes its first connection with the request unread, then answers on the next one.
        let hub_address =
            scripted_hub(|index, _| if index == 0 { Conduct::CloseUnread } else { Conduct::Answer }).await;
        let port = holding_proxy(hub_address, Duration::from_secs(10)).await;
        let login = "POST /hub/login HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: close\r\n\r\na=b";
        let answers = exchange(port, &[login]).await;
        assert!(answers[0].starts_with("HTTP/1.1 200"), "a POST the hub never read is sent again: {}", answers[0]);
    }
}
