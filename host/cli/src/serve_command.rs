//! `wasmhub serve`: the whole hub in one process with embedded defaults: the config file (or none), the store
//! (a SQLite file unless `hub.db` says otherwise), the built-in proxy on the public port, the local process
//! spawner, and the hub's API behind the proxy. SIGTERM or SIGINT stop it; running servers are left running and
//! adopted by the next start, as JupyterHub does with `cleanup_servers = False`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing_subscriber::EnvFilter;
use wasmhub_config::{AuthenticatorClass, Config, DbType, SpawnerKind};
use wasmhub_hub::{
    AuthSettings, Authenticator, CullerConfig, DummyAuthenticator, Hub, HubConfig, SharedPasswordAuthenticator,
};
use wasmhub_kube::{KubeSpawner, KubeSpawnerConfig};
use wasmhub_model::{PlainToken, RoleName, ServiceName, TokenKind, UserName};
use wasmhub_policy::native::{CullSettings, NativeDefaults};
use wasmhub_policy::{PolicyHost, PolicyHostConfig};
use wasmhub_proxy::server::Listeners;
use wasmhub_proxy::{LocalService, Proxy, ProxyConfig};
use wasmhub_spawner::{LocalProcessSpawner, LocalSpawnerConfig, NoopSpawner, Spawner};
use wasmhub_store::{HUB_OAUTH_CLIENT, NewApiToken, PostgresStore, RoleHolder, SqliteStore, Store, TokenOwner};

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
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&args.log_level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
    let config = match &args.config {
        Some(file) => wasmhub_config::check(file).map_err(|errors| {
            for error in &errors {
                eprintln!("{error}");
            }
            anyhow::anyhow!("{}: {} error(s); `wasmhub config check` shows the same", file.display(), errors.len())
        })?,
        None => Config::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(args, config))
}

async fn serve(args: ServeArgs, config: Config) -> anyhow::Result<()> {
    let listen = &config.wasmhub.listen;
    let proxy_listener =
        bind("wasmhub.listen.proxy (--listen)", args.listen.as_deref().unwrap_or(&listen.proxy)).await?;
    let hub_listener =
        bind("wasmhub.listen.hub (--hub-listen)", args.hub_listen.as_deref().unwrap_or(&listen.hub)).await?;
    let api_listener = bind(
        "wasmhub.listen.proxyApi (--proxy-api-listen)",
        args.proxy_api_listen.as_deref().unwrap_or(&listen.proxy_api),
    )
    .await?;
    let hub_address = hub_listener.local_addr()?;
    let public_address = proxy_listener.local_addr()?;

    let store = open_store(&config).await?;
    load_services_and_roles(&config, store.as_ref()).await?;
    load_users(&config, store.as_ref()).await?;

    let proxy_token = config.proxy.secret_token.clone().unwrap_or_else(random_hex);
    let hub_target = format!("http://{}", connect_address(hub_address));
    let proxy = Proxy::new(ProxyConfig {
        auth_token: Some(proxy_token),
        // Everything no server claims goes to the hub, which answers `/hub/...` and redirects the rest.
        default_target: Some(hub_target.clone()),
        error_target: config.proxy.chp.error_target.clone(),
        ..ProxyConfig::default()
    })
    .await
    .context("starting the built-in proxy")?;

    let auth = auth_settings(&config);
    let policy = start_policy_host(&config, auth.clone()).await?;
    let spawner = spawner(&config, &policy).await?;
    let mut hub_settings = hub_config(&config, hub_address, auth);
    // KubeSpawner's initialisation (slugs, defaults) once at start, so a malformed list stops the hub here.
    let profile_list: Vec<serde_json::Value> =
        config.singleuser.profile_list.iter().map(|profile| profile.to_json()).collect();
    hub_settings.profiles = wasmhub_policy::hooks::initialize_profiles(&profile_list)
        .map_err(|error| anyhow::anyhow!("singleuser.profileList: {error}"))?;
    hub_settings.template_paths = config.hub.config.jupyterhub.template_paths.clone();
    let hub = Hub::new(hub_settings, store, spawner, proxy.clone())
        .with_authenticator(authenticator(&config)?)
        .with_policy(policy.clone());
    let report = hub.adopt_servers().await.context("adopting servers from the previous run")?;
    if !report.cleaned_up.is_empty() {
        tracing::warn!(servers = ?report.cleaned_up, "servers that were gone after the restart were put at rest");
    }

    let shutdown = CancellationToken::new();
    spawn_signal_watch(shutdown.clone())?;
    let poll_interval = Duration::from_secs(config.hub.config.spawner.poll_interval.max(1));
    let supervisor = {
        let hub = hub.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { hub.supervise(poll_interval, shutdown.cancelled_owned()).await })
    };
    if config.cull.enabled {
        let culler = CullerConfig {
            every: Duration::from_secs(config.cull.every),
            concurrency: config.cull.concurrency as usize,
            cull_admin_users: config.cull.admin_users,
            cull_users_after: config.cull.users.then(|| Duration::from_secs(config.cull.timeout)),
        };
        let hub = hub.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { hub.run_culler(policy, culler, shutdown.cancelled_owned()).await });
    }
    // The proxy hands requests for the hub to the hub's router in this process rather than over loopback HTTP;
    // the listener stays for single-user servers (`hub_api_url`) and websocket upgrades. From the moment the hub
    // stops serving (signal or `POST /shutdown`) the proxy connects again, so it answers as the closed listener
    // does, and the in-flight in-process requests are waited for as the listener's graceful shutdown waits for its.
    let in_process = TaskTracker::new();
    proxy
        .serve_locally(&hub_target, in_process_service(&hub, in_process.clone()))
        .context("serving the hub in process")?;
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
    let proxy_task = tokio::spawn(wasmhub_proxy::server::run(
        proxy.clone(),
        Listeners { proxy: proxy_listener, api: api_listener, metrics: None, redirect: None },
        shutdown.clone().cancelled_owned(),
    ));
    tracing::info!(public = %public_address, hub = %hub_address, "wasmhub is up: open http://{public_address}/");
    wasmhub_hub::serve(hub.clone(), hub_listener, shutdown.clone().cancelled_owned())
        .await
        .context("serving the hub")?;
    proxy.stop_serving_locally();
    in_process.close();
    in_process.wait().await;
    // `POST /hub/api/shutdown` asks whether servers go too; a signal leaves them for the next start to adopt.
    if let Some(request) = hub.shutdown_request()
        && request.servers
    {
        let stopped = hub.stop_all_servers().await.context("stopping servers at shutdown")?;
        tracing::info!(stopped, "servers stopped as the shutdown request asked");
    }
    shutdown.cancel();
    let _ = supervisor.await;
    let _ = proxy_task.await;
    Ok(())
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
                SqliteStore::open(Path::new(path)).await
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

/// `hub.services` and `hub.loadRoles`, written at every start as JupyterHub's `init_services` and `init_roles`
/// do. A service token from config replaces the previous one.
async fn load_services_and_roles(config: &Config, store: &dyn Store) -> anyhow::Result<()> {
    for (name, service) in &config.hub.services {
        let service_name = ServiceName::parse(name).map_err(|error| anyhow::anyhow!("hub.services.{name}: {error}"))?;
        store.put_service(&service_name, service.admin).await?;
        let owner = TokenOwner::Service(service_name.clone());
        for token in store.list_api_tokens(&owner).await? {
            if token.note == "from config" {
                store.delete_api_token(token.id).await?;
            }
        }
        if let Some(token) = &service.api_token {
            let supplied =
                PlainToken::parse(token).map_err(|error| anyhow::anyhow!("hub.services.{name}.apiToken: {error}"))?;
            store
                .create_api_token(&NewApiToken {
                    owner,
                    kind: TokenKind::Supplied,
                    supplied: Some(supplied),
                    scopes: vec!["inherit".to_owned()],
                    note: "from config".to_owned(),
                    expires_at: None,
                    session_id: None,
                    client_id: HUB_OAUTH_CLIENT.to_owned(),
                })
                .await
                .with_context(|| format!("hub.services.{name}.apiToken"))?;
        }
    }
    for (name, role) in &config.hub.load_roles {
        let role_name = RoleName::parse(name).map_err(|error| anyhow::anyhow!("hub.loadRoles.{name}: {error}"))?;
        store.put_role(&role_name, &role.description, &role.scopes).await?;
        for user in &role.users {
            let user = ensure_user(store, user, false).await?;
            store.assign_role(&role_name, &RoleHolder::User(user)).await?;
        }
        for service in &role.services {
            let service = ServiceName::parse(service)?;
            store.assign_role(&role_name, &RoleHolder::Service(service)).await?;
        }
        for group in &role.groups {
            let group = wasmhub_model::GroupName::parse(group)?;
            if store.get_group(&group).await.is_err() {
                store.create_group(&group).await?;
            }
            store.assign_role(&role_name, &RoleHolder::Group(group)).await?;
        }
    }
    Ok(())
}

/// JupyterHub's `init_users`: `admin_users` exist and are admin, `allowed_users` exist.
async fn load_users(config: &Config, store: &dyn Store) -> anyhow::Result<()> {
    let rules = config.auth_rules();
    for name in &rules.admin_users {
        ensure_user(store, name, true).await?;
    }
    for name in &rules.allowed_users {
        ensure_user(store, name, false).await?;
    }
    Ok(())
}

async fn ensure_user(store: &dyn Store, name: &str, admin: bool) -> anyhow::Result<UserName> {
    let user = UserName::parse(name).map_err(|error| anyhow::anyhow!("user `{name}`: {error}"))?;
    match store.get_user(&user).await {
        Ok(existing) if admin && !existing.admin => {
            let change = wasmhub_store::UserChange { name: None, admin: Some(true) };
            store.update_user(&user, &change).await?;
        }
        Ok(_) => {}
        Err(wasmhub_store::StoreError::NotFound { .. }) => {
            store.create_user(&user, admin).await?;
        }
        Err(error) => return Err(error.into()),
    }
    Ok(user)
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
            let settings = KubeSpawnerConfig::from_config(config, &default_namespace)
                .context("the Kubernetes spawner's settings (singleuser, hub.config.KubeSpawner)")?;
            tracing::info!(namespace = %settings.namespace, "spawning servers as Kubernetes pods");
            Arc::new(KubeSpawner::new(client, settings, policy.clone()).await)
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
    let mut args = spawner.args.clone();
    // jupyter_server refuses to run as root without this flag; a hub started as root (a container, a test
    // machine) would otherwise see every server exit at start.
    if nix::unistd::geteuid().is_root() && !args.iter().chain(cmd.iter()).any(|arg| arg == "--allow-root") {
        tracing::warn!("running as root: single-user servers are started with --allow-root");
        args.push("--allow-root".to_owned());
    }
    Ok(LocalSpawnerConfig {
        cmd,
        args,
        ip: local.ip.clone(),
        log_dir: local.log_dir.clone(),
        term_timeout: Duration::from_secs(local.stop_timeout),
        ..LocalSpawnerConfig::default()
    })
}

/// `Authenticator` and the chosen class's section as the login rules the auth hook applies natively.
fn auth_settings(config: &Config) -> AuthSettings {
    let rules = config.auth_rules();
    let authenticator = &config.hub.config.authenticator;
    AuthSettings {
        username_map: authenticator.username_map.clone(),
        username_pattern: authenticator.username_pattern.clone(),
        allow_all: rules.allow_all,
        allowed_users: rules.allowed_users.clone(),
        blocked_users: rules.blocked_users.clone(),
        admin_users: rules.admin_users.clone(),
        manage_groups: authenticator.manage_groups,
        ..AuthSettings::default()
    }
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

fn hub_config(config: &Config, hub_address: SocketAddr, auth: AuthSettings) -> HubConfig {
    let spawner = &config.hub.config.spawner;
    let mut base_url = config.hub.base_url.clone();
    if !base_url.starts_with('/') {
        base_url.insert(0, '/');
    }
    if !base_url.ends_with('/') {
        base_url.push('/');
    }
    let mut environment = config.singleuser.extra_env.clone();
    environment.extend(spawner.environment.clone());
    let hub_api_url = format!("http://{}{base_url}hub/api", connect_address(hub_address));
    HubConfig {
        base_url,
        hub_api_url,
        allow_named_servers: config.hub.allow_named_servers,
        start_timeout: Duration::from_secs(spawner.start_timeout.unwrap_or(config.singleuser.start_timeout)),
        http_timeout: Duration::from_secs(spawner.http_timeout),
        concurrent_spawn_limit: config.hub.concurrent_spawn_limit.max(1) as usize,
        default_url: spawner.default_url.clone().or_else(|| config.singleuser.default_url.clone()),
        notebook_dir: spawner.notebook_dir.clone(),
        environment,
        spawner_class: match config.wasmhub.spawner {
            SpawnerKind::Noop => "wasmhub.NoopSpawner".to_owned(),
            SpawnerKind::Kubernetes => "kubespawner.KubeSpawner".to_owned(),
            SpawnerKind::Local => "wasmhub.LocalProcessSpawner".to_owned(),
        },
        authenticator_class: format!("{:?}", config.hub.config.jupyterhub.authenticator_class),
        allow_existing_users: config.auth_rules().allow_existing_users,
        auth,
        shutdown_on_logout: config.hub.config.jupyterhub.shutdown_on_logout,
        cookie_max_age: Duration::try_from_secs_f64(config.hub.config.jupyterhub.cookie_max_age_days * 86_400.0)
            .unwrap_or(HubConfig::default().cookie_max_age),
        ..HubConfig::default()
    }
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
