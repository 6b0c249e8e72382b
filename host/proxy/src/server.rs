//! Serving the proxy on bound listeners until a shutdown signal, then draining: listeners close at once, in-flight
//! requests and open websockets get up to `drain_timeout` to finish, and the routes file gets a final snapshot.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::forward::{ClientInfo, MAX_HEAD_BYTES, request_host};
use crate::{Proxy, ProxyBody, full_body};

/// How long a client may take to finish a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The sockets the proxy serves, bound by the caller (tests bind port 0).
pub struct Listeners {
    /// Proxied traffic (`--ip`/`--port`).
    pub proxy: TcpListener,
    /// The REST API (`--api-ip`/`--api-port`).
    pub api: TcpListener,
    /// `/metrics` (`--metrics-ip`/`--metrics-port`), if asked for.
    pub metrics: Option<TcpListener>,
    /// Plain HTTP answered with redirects to HTTPS (`--redirect-port`), and the port to redirect to.
    pub redirect: Option<(TcpListener, u16)>,
}

/// Serves until `shutdown` completes, then drains and saves the routes.
pub async fn run(proxy: Proxy, listeners: Listeners, shutdown: impl Future<Output = ()>) {
    let stop_accepting = CancellationToken::new();
    let connections = TaskTracker::new();
    let accept_loops = TaskTracker::new();

    let tls = proxy.shared.tls.as_ref().map(|cert| tokio_rustls::TlsAcceptor::from(cert.server_config()));
    let server =
        Server { proxy: proxy.clone(), stop_accepting: stop_accepting.clone(), connections: connections.clone() };
    accept_loops.spawn(server.clone().accept(listeners.proxy, Kind::Proxy { tls }));
    accept_loops.spawn(server.clone().accept(listeners.api, Kind::Api));
    if let Some(listener) = listeners.metrics {
        accept_loops.spawn(server.clone().accept(listener, Kind::Metrics));
    }
    if let Some((listener, https_port)) = listeners.redirect {
        accept_loops.spawn(server.clone().accept(listener, Kind::Redirect { https_port }));
    }
    accept_loops.close();

    shutdown.await;
    let drain_timeout = proxy.shared.config.drain_timeout;
    tracing::info!(
        connections = connections.len(),
        websockets = proxy.shared.websockets.len(),
        "shutting down: no new connections, draining for up to {drain_timeout:?}"
    );
    stop_accepting.cancel();
    accept_loops.wait().await;
    connections.close();
    proxy.shared.websockets.close();
    let drained = tokio::time::timeout(drain_timeout, async {
        connections.wait().await;
        proxy.shared.websockets.wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            websockets = proxy.shared.websockets.len(),
            "drain timeout reached, closing what is left"
        );
    }
    if let Err(error) = proxy.shared.store.close().await {
        tracing::error!(%error, "cannot save the routes at shutdown");
    }
}

#[derive(Clone)]
enum Kind {
    Proxy { tls: Option<tokio_rustls::TlsAcceptor> },
    Api,
    Metrics,
    Redirect { https_port: u16 },
}

#[derive(Clone)]
struct Server {
    proxy: Proxy,
    stop_accepting: CancellationToken,
    connections: TaskTracker,
}

impl Server {
    async fn accept(self, listener: TcpListener, kind: Kind) {
        loop {
            let (stream, remote) = tokio::select! {
                _ = self.stop_accepting.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and similar: back off instead of spinning, keep serving.
                        tracing::error!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            let kind = kind.clone();
            self.connections.spawn(async move { server.connection(stream, remote, kind).await });
        }
    }

    async fn connection(self, stream: tokio::net::TcpStream, remote: SocketAddr, kind: Kind) {
        let proxy = self.proxy.clone();
        match kind {
            Kind::Proxy { tls: None } => {
                let client = ClientInfo { remote, encrypted: false };
                self.serve_proxy(stream, client).await;
            }
            Kind::Proxy { tls: Some(acceptor) } => {
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => {
                        let client = ClientInfo { remote, encrypted: true };
                        self.serve_proxy(tls_stream, client).await;
                    }
                    Ok(Err(error)) => tracing::debug!(%remote, %error, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                }
            }
            Kind::Api => {
                let service = service_fn(move |request: Request<Incoming>| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(proxy.handle_api(request).await) }
                });
                self.serve(stream, service, None).await;
            }
            Kind::Metrics => {
                let service = service_fn(move |request: Request<Incoming>| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(metrics_response(&proxy, &request)) }
                });
                self.serve(stream, service, None).await;
            }
            Kind::Redirect { https_port } => {
                let service = service_fn(move |request: Request<Incoming>| async move {
                    Ok::<_, Infallible>(redirect_response(&request, https_port))
                });
                self.serve(stream, service, None).await;
            }
        }
    }

    async fn serve_proxy<I>(&self, stream: I, client: ClientInfo)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let proxy = self.proxy.clone();
        let gauge = &self.proxy.shared.metrics.connections_open;
        gauge.inc();
        let service = service_fn(move |request: Request<Incoming>| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle_proxy(request, client).await) }
        });
        self.serve(stream, service, self.proxy.shared.config.timeout).await;
        gauge.dec();
    }

    /// Runs one HTTP/1.1 connection until it ends, the client is idle past `idle_timeout`, or shutdown asks it to
    /// finish its current request and close.
    async fn serve<I, S>(&self, stream: I, service: S, idle_timeout: Option<Duration>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::HttpService<Incoming, ResBody = ProxyBody> + Send,
        S::Future: Send,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let last_io = Arc::new(AtomicU64::new(monotonic_ms()));
        let io = TokioIo::new(StampedIo { inner: stream, last_io: last_io.clone() });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            // Also bounds how long an idle keep-alive connection waits for its next request.
            .header_read_timeout(self.proxy.shared.config.keep_alive_timeout.max(Duration::from_millis(100)))
            .max_buf_size(2 * MAX_HEAD_BYTES)
            .keep_alive(true);
        let connection = builder.serve_connection(io, service).with_upgrades();
        tokio::pin!(connection);
        let idle = idle_watch(last_io, idle_timeout);
        tokio::pin!(idle);
        let mut draining = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                _ = self.stop_accepting.cancelled(), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = &mut idle => {
                    tracing::debug!("closing a connection idle past --timeout");
                    return;
                }
            }
        }
    }
}

/// Resolves once nothing has been read or written for `timeout` (never, without a timeout).
async fn idle_watch(last_io: Arc<AtomicU64>, timeout: Option<Duration>) {
    let Some(timeout) = timeout else { return std::future::pending().await };
    let timeout_ms = timeout.as_millis() as u64;
    loop {
        let idle_for = monotonic_ms().saturating_sub(last_io.load(Ordering::Relaxed));
        if idle_for >= timeout_ms {
            return;
        }
        tokio::time::sleep(Duration::from_millis(timeout_ms - idle_for)).await;
    }
}

fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A client stream that notes the time of its last read or write, for `--timeout`.
struct StampedIo<T> {
    inner: T,
    last_io: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for StampedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_ready() {
            self.last_io.store(monotonic_ms(), Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StampedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if polled.is_ready() {
            self.last_io.store(monotonic_ms(), Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if polled.is_ready() {
            self.last_io.store(monotonic_ms(), Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn metrics_response(proxy: &Proxy, request: &Request<Incoming>) -> Response<ProxyBody> {
    if request.uri().path() != "/metrics" {
        let mut response = Response::new(full_body(Bytes::from_static(b"Not Found")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    }
    let mut response = Response::new(full_body(Bytes::from(proxy.metrics().render())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// `--redirect-port`: plain HTTP is sent to the same host and path over HTTPS.
fn redirect_response(request: &Request<Incoming>, https_port: u16) -> Response<ProxyBody> {
    let Some(host) = request_host(request).filter(|host| !host.is_empty()) else {
        let mut response = Response::new(full_body(Bytes::from_static(b"Bad Request: no Host header")));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    };
    let path = request.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let location =
        if https_port == 443 { format!("https://{host}{path}") } else { format!("https://{host}:{https_port}{path}") };
    let mut response = Response::new(full_body(Bytes::new()));
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
