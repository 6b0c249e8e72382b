//! `wasmhub serve`: wires the whole hub in one process from the config file (or the embedded defaults): the
//! store (a SQLite file unless `hub.db` says otherwise), the built-in proxy on the public port, the spawner, the
//! policy host and the authenticator, then hands over to `wasmhub_hub::run`. SIGTERM or SIGINT stop it; running
//! servers are left running and adopted by the next start, as JupyterHub does with `cleanup_servers = False`.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmhub_config::{AuthenticatorClass, Config, DbType, HttpsType, SpawnerKind};
use wasmhub_hub::{AuthSettings, Authenticator, DummyAuthenticator, Hub, Lease, SharedPasswordAuthenticator};
use wasmhub_kube::{KubeSpawner, KubeSpawnerConfig};
use wasmhub_policy::native::{CullSettings, NativeDefaults};
use wasmhub_policy::{PolicyHost, PolicyHostConfig};
use wasmhub_proxy::server::Listeners;
use wasmhub_proxy::{LocalService, Proxy, ProxyConfig, RemoteRoutes, TlsFiles};
use wasmhub_spawner::{LocalProcessSpawner, LocalSpawnerConfig, NoopSpawner, Spawner};
use wasmhub_store::{PostgresStore, SqliteStore, Store};

use crate::settings;

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// The config file, shaped like Zero-to-JupyterHub's values (see `wasmhub config check`); none runs the
    /// embedded defaults
    #[arg(short = 'f', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Public address of the proxy, overriding `wasmhub.listen.proxy`
    #[arg(long, value_name = "IP:PORT")]
    listen: Option<String>,
    /// Address of the hub, overriding `wasmhub.listen.hub`
    #[arg(long, value_name = "IP:PORT")]
    hub_listen: Option<String>,
    /// Address of the proxy's REST API, overriding `wasmhub.listen.proxyApi`
    #[arg(long, value_name = "IP:PORT")]
    proxy_api_listen: Option<String>,
    /// Log level (error, warn, info, debug); RUST_LOG wins when set
    #[arg(long, default_value = "info")]
    log_level: String,
    /// How log lines are written, overriding `wasmhub.logFormat`: text, or one JSON object per line
    #[arg(long, value_enum)]
    log_format: Option<crate::logging::LogFormat>,
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Everything the hub creates (database, routes file, policy cache, logs) is its own alone: 0600 and 0700.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let config = match &args.config {
        Some(file) => wasmhub_config::check(file).map_err(|errors| {
            for error in &errors {
                eprintln!("{error}");
            }
            anyhow::anyhow!("{}: {} error(s); `wasmhub config check` shows the same", file.display(), errors.len())
        })?,
        None => Config::default(),
    };
    crate::logging::init(&args.log_level, args.log_format.unwrap_or_else(|| config.wasmhub.log_format.into()));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(args, config))
}

/// What a hub needs that takes time to make (policies compiled, the spawner's watch), made before the lease.
struct Parts {
    store: Arc<dyn Store>,
    auth: AuthSettings,
    policy: Arc<PolicyHost>,
    spawner: Arc<dyn Spawner>,
}

async fn serve(args: ServeArgs, config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let auth = settings::auth_settings(&config);
    let policy = start_policy_host(&config, auth.clone()).await?;
    let spawner = spawner(&config, &policy).await?;
    let shutdown = CancellationToken::new();
    spawn_signal_watch(shutdown.clone())?;
    // Everything slow is ready before the lease, so during a rolling update the new hub acts as soon as the old one
    // lets go. Listeners are bound only once it is held: until then this hub answers nothing and requests wait in
    // the proxy's hold, and the old hub's ports are free for it on a machine that runs both.
    let Some(lease) = Lease::take(store.clone(), &settings::lease_settings(&config), &shutdown).await? else {
        return Ok(());
    };
    let served = serve_holding_lease(&args, &config, Parts { store, auth, policy, spawner }, shutdown, &lease).await;
    // Given up last, after this hub's servers are stopped or left for the next one, so that one acts at once.
    lease.release().await;
    served
}

async fn serve_holding_lease(
    args: &ServeArgs,
    config: &Config,
    parts: Parts,
    shutdown: CancellationToken,
    lease: &Lease,
) -> anyhow::Result<()> {
    let Parts { store, auth, policy, spawner } = parts;
    wasmhub_hub::apply_startup_state(store.as_ref(), &settings::startup_state(config)).await?;
    let listen = &config.wasmhub.listen;
    let hub_listener =
        bind("wasmhub.listen.hub (--hub-listen)", args.hub_listen.as_deref().unwrap_or(&listen.hub)).await?;
    let hub_address = hub_listener.local_addr()?;
    let external = &config.hub.config.configurable_http_proxy;
    let built_in = if external.should_start {
        let public =
            args.listen.clone().or_else(|| settings::bind_address(config)).unwrap_or_else(|| listen.proxy.clone());
        let proxy_listener = bind("wasmhub.listen.proxy (--listen, JupyterHub.bind_url)", &public).await?;
        let api_listener = bind(
            "wasmhub.listen.proxyApi (--proxy-api-listen)",
            args.proxy_api_listen.as_deref().unwrap_or(&listen.proxy_api),
        )
        .await?;
        Some((proxy_listener, api_listener))
    } else {
        None
    };
    let hub_settings = settings::hub_config(config, &format!("http://{}", connect_address(hub_address)), auth)?;
    let mut run_settings = settings::run_settings(config);

    let Some((proxy_listener, api_listener)) = built_in else {
        // The proxy runs elsewhere (z2jh's proxy pod): routes go over its REST API and are checked every period,
        // so a proxy that restarts empty gets them back and a hub restart leaves users' connections alone.
        let api_url = external.api_url.as_deref().context("hub.config.ConfigurableHTTPProxy.api_url is required")?;
        let token = settings::proxy_api_token(config, std::env::var("CONFIGPROXY_AUTH_TOKEN").ok()).context(
            "the proxy's API token: set proxy.secretToken (or hub.config.ConfigurableHTTPProxy.auth_token, or \
                 CONFIGPROXY_AUTH_TOKEN) to the token the proxy was started with",
        )?;
        let routes = RemoteRoutes::new(api_url, &token).context("hub.config.ConfigurableHTTPProxy.api_url")?;
        let hub = Hub::new(hub_settings, store, spawner, Arc::new(routes))
            .with_authenticator(authenticator(config)?)
            .with_policy(policy);
        run_settings.route_check_interval = Some(Duration::from_secs(external.check_running_interval.max(1)));
        let public = config.hub.config.jupyterhub.bind_url.clone().unwrap_or_else(|| "the proxy's public URL".into());
        let announce = |_: &Hub| {
            tracing::info!(hub = %hub_address, proxy_api = %api_url, "wasmhub is up behind the proxy at {public}");
            Ok(())
        };
        wasmhub_hub::run(hub, lease, hub_listener, run_settings, shutdown, announce, || async {}).await?;
        return Ok(());
    };
    let public_address = proxy_listener.local_addr()?;
    let tls = https_files(config)?;
    let redirect = match (&tls, &listen.proxy_http) {
        (Some(_), Some(address)) => Some((bind("wasmhub.listen.proxyHttp", address).await?, public_address.port())),
        _ => None,
    };
    let proxy_token = config.proxy.secret_token.clone().unwrap_or_else(random_hex);
    let hub_target = format!("http://{}", connect_address(hub_address));
    let proxy = Proxy::new(ProxyConfig {
        auth_token: Some(proxy_token),
        // Everything no server claims goes to the hub, which answers `/hub/...` and redirects the rest.
        default_target: Some(hub_target.clone()),
        error_target: config.proxy.chp.error_target.clone(),
        // With subdomains, servers' routes start with their user's host (CHP's `--host-routing`).
        host_routing: config.hub.config.jupyterhub.subdomain_host.is_some(),
        tls: tls.as_ref().map(|(files, _)| files.clone()),
        ..ProxyConfig::default()
    })
    .await
    .context("starting the built-in proxy (proxy.https)")?;
    if let Some((files, true)) = &tls {
        tokio::spawn(reload_when_changed(proxy.clone(), files.clone(), shutdown.clone()));
    }
    let hub = Hub::new(hub_settings, store, spawner, Arc::new(proxy.clone()))
        .with_authenticator(authenticator(config)?)
        .with_policy(policy);

    // The proxy hands requests for the hub to the hub's router in this process rather than over loopback HTTP;
    // the listener stays for single-user servers (`hub_api_url`) and websocket upgrades. From the moment the hub
    // stops serving (signal or `POST /shutdown`) the proxy connects again, so it answers as the closed listener
    // does, and the in-flight in-process requests are waited for as the listener's graceful shutdown waits for its.
    let in_process = TaskTracker::new();
    let hub_stopping = {
        let (proxy, shutdown, requested) = (proxy.clone(), shutdown.clone(), hub.shutdown_requested());
        async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = requested => {}
            }
            proxy.stop_serving_locally();
        }
    };
    tokio::spawn(hub_stopping);
    // The proxy starts once the servers are adopted, so until then a browser finds nothing listening rather than a
    // hub that cannot answer yet.
    let mut proxy_task = None;
    let serve_in_process = |hub: &Hub| {
        proxy
            .serve_locally(&hub_target, in_process_service(hub, in_process.clone()))
            .map_err(|error| format!("serving the hub in process: {error}"))?;
        proxy_task = Some(tokio::spawn(wasmhub_proxy::server::run(
            proxy.clone(),
            Listeners { proxy: proxy_listener, api: api_listener, metrics: None, redirect },
            shutdown.clone().cancelled_owned(),
        )));
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(public = %public_address, hub = %hub_address, "wasmhub is up: open {scheme}://{public_address}/");
        Ok(())
    };
    let drain_in_process = || async {
        proxy.stop_serving_locally();
        in_process.close();
        in_process.wait().await;
    };
    wasmhub_hub::run(hub, lease, hub_listener, run_settings, shutdown.clone(), serve_in_process, drain_in_process)
        .await?;
    if let Some(proxy_task) = proxy_task {
        let _ = proxy_task.await;
    }
    Ok(())
}

/// `proxy.https` for the built-in proxy: the certificate files, and whether to watch them for changes; none when
/// HTTPS is off or ends before the hub (`offload`, where cookies are still `Secure`).
fn https_files(config: &Config) -> anyhow::Result<Option<(TlsFiles, bool)>> {
    let https = &config.proxy.https;
    if !https.enabled {
        return Ok(None);
    }
    match https.kind {
        HttpsType::Offload => Ok(None),
        HttpsType::Letsencrypt => {
            bail!("proxy.https.type: letsencrypt is not supported; use secret, manual or offload")
        }
        HttpsType::Manual => {
            let (Some(cert), Some(key)) = (&https.manual.cert, &https.manual.key) else {
                bail!("proxy.https.manual.cert and .key are required with proxy.https.type: manual");
            };
            // Written where only the hub can read them (the hub's umask is 077).
            let dir = std::env::temp_dir().join(format!("wasmhub-tls-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("proxy.https.manual: cannot create {}", dir.display()))?;
            let files = TlsFiles { cert: dir.join("tls.crt"), key: dir.join("tls.key") };
            std::fs::write(&files.cert, cert).context("proxy.https.manual.cert: cannot write it for the proxy")?;
            std::fs::write(&files.key, key).context("proxy.https.manual.key: cannot write it for the proxy")?;
            Ok(Some((files, false)))
        }
        HttpsType::Secret => {
            let dir = &config.wasmhub.tls_secret_dir;
            let files = TlsFiles { cert: dir.join(&https.secret.crt), key: dir.join(&https.secret.key) };
            for (what, path) in [("crt", &files.cert), ("key", &files.key)] {
                if !path.is_file() {
                    bail!(
                        "proxy.https.secret.{what}: {} is missing; mount the TLS secret at wasmhub.tlsSecretDir",
                        path.display()
                    );
                }
            }
            Ok(Some((files, true)))
        }
    }
}

/// Reads the certificate again whenever its files change (a Kubernetes secret is updated by swapping a symlink, so
/// the files' modification times are compared, following links); a certificate that cannot be read leaves the
/// previous one in use and says so.
async fn reload_when_changed(proxy: Proxy, files: TlsFiles, shutdown: CancellationToken) {
    let stamp =
        || [&files.cert, &files.key].map(|path| std::fs::metadata(path).and_then(|metadata| metadata.modified()).ok());
    let mut seen = stamp();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        let now = stamp();
        if now != seen {
            seen = now;
            match proxy.reload_tls() {
                Ok(()) => tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded"),
                Err(error) => tracing::error!(%error, "TLS reload failed; the previous certificate stays in use"),
            }
        }
    }
}

/// The hub's router as the built-in proxy's in-process target ([`Proxy::serve_locally`]). Each request runs as its
/// own task on `tasks`, as it would on its own connection to the listener, so a panicking handler fails only its
/// request (the proxy's 503, as for a dropped connection) and shutdown can wait for those in flight.
fn in_process_service(hub: &Hub, tasks: TaskTracker) -> LocalService {
    let router = wasmhub_hub::router(hub.clone());
    Arc::new(move |request| {
        let task = tasks.spawn(tower::ServiceExt::oneshot(router.clone(), request));
        Box::pin(async move {
            let response = match task.await? {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok(response.map(wasmhub_proxy::boxed_body))
        })
    })
}

async fn bind(what: &str, address: &str) -> anyhow::Result<TcpListener> {
    let address: SocketAddr =
        address.parse().with_context(|| format!("{what}: `{address}` is not an IP:PORT address"))?;
    TcpListener::bind(address).await.with_context(|| format!("{what}: cannot listen on {address}"))
}

/// Where a local client reaches a listener: an unspecified bind address (`0.0.0.0`) is reached on loopback.
fn connect_address(address: SocketAddr) -> SocketAddr {
    let mut address = address;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    address
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let db = &config.hub.db;
    let url = db.effective_url().context("hub.db.url is required for this hub.db.type")?;
    Ok(match db.kind {
        DbType::SqlitePvc | DbType::SqliteMemory => {
            let store = if url == "sqlite::memory:" {
                // A pool of in-memory connections would each get their own empty database; one shared cache
                // keeps them one.
                SqliteStore::open_url("sqlite:file:wasmhub?mode=memory&cache=shared").await
            } else if let Some(path) = url.strip_prefix("sqlite://") {
                let store = SqliteStore::open(Path::new(path)).await;
                // A database an earlier hub created under a looser umask becomes the hub's alone.
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making the SQLite database {path} private (0600)"))?;
                store
            } else {
                SqliteStore::open_url(&url).await
            };
            Arc::new(store.with_context(|| format!("opening the SQLite database {url} (hub.db.url)"))?)
        }
        DbType::Postgres => {
            let url = with_password(&url, db.password.as_deref());
            Arc::new(PostgresStore::connect(&url).await.context("connecting to PostgreSQL (hub.db.url)")?)
        }
        DbType::Mysql | DbType::Other => {
            bail!("hub.db.type: only sqlite-pvc, sqlite-memory and postgres are supported")
        }
    })
}

/// Puts `hub.db.password` into a PostgreSQL URL that has none.
fn with_password(url: &str, password: Option<&str>) -> String {
    let Some(password) = password else { return url.to_owned() };
    match url.split_once("://") {
        Some((scheme, rest)) if !rest.split('@').next().unwrap_or("").contains(':') && rest.contains('@') => {
            let (user, host) = rest.split_once('@').unwrap_or((rest, ""));
            let encoded = percent_encoding::utf8_percent_encode(password, percent_encoding::NON_ALPHANUMERIC);
            format!("{scheme}://{user}:{encoded}@{host}")
        }
        _ => url.to_owned(),
    }
}

/// `wasmhub.spawner`: the local process spawner, the Kubernetes spawner, or the no-op spawner that benchmarks use.
async fn spawner(config: &Config, policy: &Arc<PolicyHost>) -> anyhow::Result<Arc<dyn Spawner>> {
    Ok(match config.wasmhub.spawner {
        SpawnerKind::Local => Arc::new(LocalProcessSpawner::new(local_spawner_config(config)?)),
        SpawnerKind::Noop => {
            let url = config.wasmhub.noop.url.as_deref().context("wasmhub.noop.url is required with spawner: noop")?;
            tracing::warn!(%url, "wasmhub.spawner is noop: servers are not started; for benchmarks and tests only");
            Arc::new(NoopSpawner::new(url))
        }
        SpawnerKind::Kubernetes => {
            let kubernetes = &config.wasmhub.kubernetes;
            let (client, default_namespace) = KubeSpawner::client(kubernetes.kubeconfig.as_deref())
                .await
                .context("wasmhub.kubernetes.kubeconfig: cannot reach the cluster")?;
            let settings: KubeSpawnerConfig = settings::kube::kube_spawner_config(config, &default_namespace)
                .context("the Kubernetes spawner's settings (singleuser, hub.config.KubeSpawner)")?;
            tracing::info!(namespace = %settings.namespace, "spawning servers as Kubernetes pods");
            let pods = Arc::new(wasmhub_hub::Policies::new(policy.clone()));
            Arc::new(KubeSpawner::new(client, settings, pods).await)
        }
    })
}

fn local_spawner_config(config: &Config) -> anyhow::Result<LocalSpawnerConfig> {
    let local = &config.wasmhub.local;
    let spawner = &config.hub.config.spawner;
    let mut cmd: Vec<String> = match spawner.cmd.as_ref().or(config.singleuser.cmd.as_ref()) {
        Some(command) => command.0.clone(),
        None => vec!["jupyterhub-singleuser".to_owned()],
    };
    if cmd.is_empty() {
        bail!("singleuser.cmd is empty: it must run jupyterhub-singleuser");
    }
    // A configured Python environment supplies the program when the command names it without a path.
    if let Some(env) = &local.python_env
        && !cmd[0].contains('/')
    {
        let candidate = env.join("bin").join(&cmd[0]);
        if !candidate.exists() {
            bail!("wasmhub.local.pythonEnv: {} does not exist; install jupyterhub there", candidate.display());
        }
        cmd[0] = candidate.display().to_string();
    }
    std::fs::create_dir_all(&local.log_dir)
        .with_context(|| format!("wasmhub.local.logDir: cannot create {}", local.log_dir.display()))?;
    std::fs::set_permissions(&local.log_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("wasmhub.local.logDir: cannot make {} private (0700)", local.log_dir.display()))?;
    let args = spawner.args.clone();
    Ok(LocalSpawnerConfig {
        cmd,
        args,
        ip: local.ip.clone(),
        log_dir: local.log_dir.clone(),
        term_timeout: Duration::from_secs(local.stop_timeout),
        run_as: settings::local_run_as(config, nix::unistd::geteuid())?,
        work_dir: local.work_dir.clone(),
        ..LocalSpawnerConfig::default()
    })
}

fn authenticator(config: &Config) -> anyhow::Result<Arc<dyn Authenticator>> {
    let classes = &config.hub.config;
    Ok(match classes.jupyterhub.authenticator_class {
        AuthenticatorClass::Dummy => Arc::new(DummyAuthenticator::new(classes.dummy_authenticator.password.clone())),
        AuthenticatorClass::SharedPassword => {
            let own = &classes.shared_password_authenticator;
            Arc::new(
                SharedPasswordAuthenticator::new(
                    own.user_password.clone(),
                    own.admin_password.clone(),
                    config.auth_rules().admin_users,
                )
                .context("hub.config.SharedPasswordAuthenticator")?,
            )
        }
        AuthenticatorClass::GenericOauth => bail!(
            "hub.config.JupyterHub.authenticator_class: generic-oauth is not served by `wasmhub serve` yet; use \
             dummy or shared-password"
        ),
    })
}

/// The policy host: the policies folder if configured, with the config's login and cull rules as the built-in
/// defaults. Loading compiles components, so it runs off the async workers.
async fn start_policy_host(config: &Config, auth: AuthSettings) -> anyhow::Result<Arc<PolicyHost>> {
    let cull = &config.cull;
    let host_config = PolicyHostConfig {
        folder: config.wasmhub.policies.dir.clone(),
        cache_dir: config.wasmhub.policies.dir.as_ref().map(|dir| dir.join(".cache")),
        defaults: NativeDefaults {
            auth,
            cull: CullSettings {
                timeout_seconds: cull.timeout,
                max_age_seconds: cull.max_age,
                remove_named_servers: cull.remove_named_servers,
                ..CullSettings::default()
            },
            ..NativeDefaults::default()
        },
        ..PolicyHostConfig::default()
    };
    let host = tokio::task::spawn_blocking(move || PolicyHost::start(host_config))
        .await
        .context("starting the policy host")?
        .context("wasmhub.policies")?;
    for status in host.status() {
        if let Some(error) = &status.last_load_error {
            tracing::error!(policy = %status.name, %error, "policy not loaded; the built-in rule applies");
        }
    }
    Ok(Arc::new(host))
}

fn spawn_signal_watch(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down; servers keep running"),
            _ = interrupt.recv() => tracing::info!("SIGINT: shutting down; servers keep running"),
        }
        shutdown.cancel();
    });
    Ok(())
}
