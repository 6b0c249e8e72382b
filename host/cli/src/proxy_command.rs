//! `wasmhub proxy`: configurable-http-proxy's command line mapped onto [`wasmhub_proxy::ProxyConfig`], listeners
//! bound, signals wired (SIGTERM/SIGINT drain, SIGHUP reloads the TLS certificate).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tokio::net::TcpListener;
use wasmhub_proxy::server::Listeners;
use wasmhub_proxy::{Proxy, ProxyConfig, TlsFiles};

/// CHP 5.3's flags (same names, same defaults) plus wasmhub's own.
#[derive(Args, Debug)]
#[command(about, long_about = None)]
pub(crate) struct ProxyArgs {
    /// Public-facing IP of the proxy ('' or '*' for all interfaces)
    #[arg(long, default_value = "", value_name = "IP")]
    ip: String,
    /// Public-facing port of the proxy
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Inward-facing IP for API requests
    #[arg(long, default_value = "localhost", value_name = "IP")]
    api_ip: String,
    /// Inward-facing port for API requests [default: --port + 1]
    #[arg(long)]
    api_port: Option<u16>,
    /// IP for the Prometheus metrics endpoint
    #[arg(long, default_value = "", value_name = "IP")]
    metrics_ip: String,
    /// Port of the metrics endpoint (no metrics endpoint without it)
    #[arg(long)]
    metrics_port: Option<u16>,
    /// SSL key to use, if any
    #[arg(long, value_name = "KEYFILE")]
    ssl_key: Option<PathBuf>,
    /// SSL certificate to use, if any
    #[arg(long, value_name = "CERTFILE")]
    ssl_cert: Option<PathBuf>,
    /// Default proxy target (proto://host[:port])
    #[arg(long, value_name = "HOST")]
    default_target: Option<String>,
    /// Seconds a request for the default target (the hub) waits, retrying, while nothing accepts connections
    /// there (a hub restart or upgrade), before answering 503; 0 answers at once as CHP does [wasmhub's own]
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    default_target_hold: u64,
    /// Alternate server for handling proxy errors (proto://host[:port])
    #[arg(long, value_name = "HOST", conflicts_with = "error_path")]
    error_target: Option<String>,
    /// Alternate folder for the error pages: <code>.html, else error.html
    #[arg(long, value_name = "PATH")]
    error_path: Option<PathBuf>,
    /// Port on which plain HTTP is redirected to HTTPS (needs --ssl-key and --ssl-cert)
    #[arg(long)]
    redirect_port: Option<u16>,
    /// Port to redirect to [default: --port]
    #[arg(long, requires = "redirect_port")]
    redirect_to: Option<u16>,
    /// Write our pid to this file; removed on exit
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Do not add X-Forwarded-* headers
    #[arg(long)]
    no_x_forward: bool,
    /// Do not prepend the target's path to the proxied request path
    #[arg(long)]
    no_prepend_path: bool,
    /// Remove the route's prefix from the proxied request path
    #[arg(long)]
    no_include_prefix: bool,
    /// A header added to every proxied request, "Name: value"; repeatable
    #[arg(long, value_name = "NAME: VALUE")]
    custom_header: Vec<String>,
    /// Route by Host as well: the host is the first segment of route paths
    #[arg(long)]
    host_routing: bool,
    /// Log level (debug, info, warn, error)
    #[arg(long, default_value = "info", value_parser = ["debug", "info", "warn", "error"])]
    log_level: String,
    /// How log lines are written: text, or one JSON object per line for a cluster's log collector [wasmhub's own]
    #[arg(long, value_enum, default_value = "text")]
    log_format: crate::logging::LogFormat,
    /// Close a client connection after this many ms without traffic
    #[arg(long, value_name = "MS")]
    timeout: Option<u64>,
    /// Answer 503 when a target has not responded within this many ms
    #[arg(long, value_name = "MS")]
    proxy_timeout: Option<u64>,
    /// How long (ms) an idle keep-alive client connection is kept open
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    keep_alive_timeout: u64,
    /// [wasmhub] Where routes are kept across restarts
    #[arg(long, value_name = "FILE", default_value = "wasmhub-proxy-routes.jsonl")]
    routes_file: PathBuf,
    /// [wasmhub] Keep routes in memory only, as configurable-http-proxy does
    #[arg(long, conflicts_with = "routes_file")]
    no_persist_routes: bool,
    /// [wasmhub] On SIGTERM, how long (ms) in-flight requests and websockets may take to finish
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    drain_timeout: u64,
    /// Not supported: configurable-http-proxy options wasmhub does not implement
    #[command(flatten)]
    unsupported: UnsupportedArgs,
}

/// configurable-http-proxy flags we recognise but do not implement: using one is a clear error, not a silent no-op.
#[derive(Args, Debug)]
struct UnsupportedArgs {
    #[arg(long, hide = true)]
    socket: Option<String>,
    #[arg(long, hide = true)]
    api_socket: Option<String>,
    #[arg(long, hide = true)]
    metrics_socket: Option<String>,
    #[arg(long, hide = true)]
    storage_backend: Option<String>,
    #[arg(long, hide = true)]
    api_ssl_key: Option<String>,
    #[arg(long, hide = true)]
    api_ssl_cert: Option<String>,
    #[arg(long, hide = true)]
    api_ssl_ca: Option<String>,
    #[arg(long, hide = true)]
    client_ssl_key: Option<String>,
    #[arg(long, hide = true)]
    client_ssl_cert: Option<String>,
    #[arg(long, hide = true)]
    client_ssl_ca: Option<String>,
    #[arg(long, hide = true)]
    ssl_ca: Option<String>,
    #[arg(long, hide = true)]
    insecure: bool,
    #[arg(long, hide = true)]
    auto_rewrite: bool,
    #[arg(long, hide = true)]
    change_origin: bool,
    #[arg(long, hide = true)]
    protocol_rewrite: Option<String>,
}

impl UnsupportedArgs {
    fn check(&self) -> anyhow::Result<()> {
        let given: Vec<&str> = [
            ("--socket", self.socket.is_some()),
            ("--api-socket", self.api_socket.is_some()),
            ("--metrics-socket", self.metrics_socket.is_some()),
            ("--storage-backend (routes persist by default; see --routes-file)", self.storage_backend.is_some()),
            ("--api-ssl-key", self.api_ssl_key.is_some()),
            ("--api-ssl-cert", self.api_ssl_cert.is_some()),
            ("--api-ssl-ca", self.api_ssl_ca.is_some()),
            ("--client-ssl-key", self.client_ssl_key.is_some()),
            ("--client-ssl-cert", self.client_ssl_cert.is_some()),
            ("--client-ssl-ca", self.client_ssl_ca.is_some()),
            ("--ssl-ca", self.ssl_ca.is_some()),
            ("--insecure", self.insecure),
            ("--auto-rewrite", self.auto_rewrite),
            ("--change-origin", self.change_origin),
            ("--protocol-rewrite", self.protocol_rewrite.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, used)| used.then_some(flag))
        .collect();
        if !given.is_empty() {
            bail!("not supported by wasmhub proxy yet: {}", given.join(", "));
        }
        Ok(())
    }
}

pub(crate) fn run(args: ProxyArgs) -> anyhow::Result<()> {
    args.unsupported.check()?;
    crate::logging::init(&args.log_level, args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: ProxyArgs) -> anyhow::Result<()> {
    let config = config_from_args(&args)?;
    if config.auth_token.is_none() {
        tracing::warn!("REST API is not authenticated: set CONFIGPROXY_AUTH_TOKEN");
    }
    if args.redirect_port.is_some() && config.tls.is_none() {
        bail!("--redirect-port needs --ssl-key and --ssl-cert: it redirects plain HTTP to HTTPS");
    }
    let proxy = Proxy::new(config).await?;

    let api_port = args.api_port.unwrap_or(args.port.saturating_add(1));
    let listeners = Listeners {
        proxy: bind("--ip/--port", &args.ip, args.port).await?,
        api: bind("--api-ip/--api-port", &args.api_ip, api_port).await?,
        metrics: match args.metrics_port {
            Some(port) => Some(bind("--metrics-ip/--metrics-port", &args.metrics_ip, port).await?),
            None => None,
        },
        redirect: match args.redirect_port {
            Some(port) => Some((bind("--redirect-port", &args.ip, port).await?, args.redirect_to.unwrap_or(args.port))),
            None => None,
        },
    };
    tracing::info!(
        proxy = %listeners.proxy.local_addr()?, api = %listeners.api.local_addr()?,
        routes = proxy.routes().table().len(), "wasmhub proxy listening"
    );
    if let Some(pid_file) = &args.pid_file {
        std::fs::write(pid_file, std::process::id().to_string())
            .with_context(|| format!("--pid-file {}", pid_file.display()))?;
    }

    let reload_target = proxy.clone();
    tokio::spawn(async move {
        let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        while hangups.recv().await.is_some() {
            if let Err(error) = reload_target.reload_tls() {
                tracing::error!(%error, "TLS reload failed; the previous certificate stays in use");
            }
        }
    });

    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    wasmhub_proxy::server::run(proxy, listeners, shutdown_signal(terminate, interrupt)).await;
    if let Some(pid_file) = &args.pid_file {
        let _ = std::fs::remove_file(pid_file);
    }
    tracing::info!("wasmhub proxy stopped");
    Ok(())
}

/// The first SIGTERM or SIGINT starts the drain; a second one exits at once.
async fn shutdown_signal(mut terminate: tokio::signal::unix::Signal, mut interrupt: tokio::signal::unix::Signal) {
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::warn!("second signal: exiting without waiting for the drain");
        std::process::exit(2);
    });
}

fn config_from_args(args: &ProxyArgs) -> anyhow::Result<ProxyConfig> {
    let tls = match (&args.ssl_key, &args.ssl_cert) {
        (Some(key), Some(cert)) => Some(TlsFiles { key: key.clone(), cert: cert.clone() }),
        (None, None) => None,
        _ => bail!("--ssl-key and --ssl-cert go together: give both or neither"),
    };
    let custom_headers =
        args.custom_header.iter().map(|header| parse_custom_header(header)).collect::<anyhow::Result<Vec<_>>>()?;
    let auth_token = std::env::var("CONFIGPROXY_AUTH_TOKEN").ok().filter(|token| !token.is_empty());
    Ok(ProxyConfig {
        auth_token,
        default_target: args.default_target.clone(),
        error_target: args.error_target.clone(),
        error_path: args.error_path.clone(),
        x_forward: !args.no_x_forward,
        custom_headers,
        host_routing: args.host_routing,
        include_prefix: !args.no_include_prefix,
        prepend_path: !args.no_prepend_path,
        timeout: args.timeout.map(Duration::from_millis),
        proxy_timeout: args.proxy_timeout.map(Duration::from_millis),
        keep_alive_timeout: Duration::from_millis(args.keep_alive_timeout),
        drain_timeout: Duration::from_millis(args.drain_timeout),
        routes_file: (!args.no_persist_routes).then(|| args.routes_file.clone()),
        tls,
        default_target_hold: Duration::from_secs(args.default_target_hold),
    })
}

fn parse_custom_header(header: &str) -> anyhow::Result<(http::HeaderName, http::HeaderValue)> {
    let Some((name, value)) = header.split_once(':') else {
        bail!("--custom-header {header:?} must look like \"Name: value\"");
    };
    let name = http::HeaderName::from_bytes(name.trim().as_bytes())
        .with_context(|| format!("--custom-header {header:?}: invalid header name"))?;
    let value = http::HeaderValue::from_str(value.trim())
        .with_context(|| format!("--custom-header {header:?}: invalid header value"))?;
    Ok((name, value))
}

/// Binds like CHP: '' and '*' mean every interface (IPv6 and IPv4 where the host has both), names are resolved.
async fn bind(flag: &str, ip: &str, port: u16) -> anyhow::Result<TcpListener> {
    let addresses: Vec<SocketAddr> = match ip {
        "" | "*" => vec![
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        ],
        "localhost" => vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)],
        literal => match literal.trim_matches(|c| c == '[' || c == ']').parse::<IpAddr>() {
            Ok(address) => vec![SocketAddr::new(address, port)],
            Err(_) => tokio::net::lookup_host((literal, port))
                .await
                .with_context(|| format!("{flag}: cannot resolve {literal:?}"))?
                .collect(),
        },
    };
    let mut last_error = None;
    for address in addresses {
        match TcpListener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some((address, error)),
        }
    }
    match last_error {
        Some((address, error)) => Err(error).with_context(|| format!("{flag}: cannot listen on {address}")),
        None => bail!("{flag}: {ip:?} resolves to no address"),
    }
}
