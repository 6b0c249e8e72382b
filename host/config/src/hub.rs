//! `hub`: the hub process, its database and secrets, and `hub.config`, the JupyterHub-style class sections.

use std::collections::BTreeMap;

use crate::PythonCode;
use crate::schema::{section, yaml_enum};
use crate::singleuser::SpawnerOverride;
use crate::values::{ByteSize, Command};

section! {
    /// The hub (z2jh `hub`).
    pub struct Hub {
        /// JupyterHub-style settings by class name (`JupyterHub`, `Authenticator`, ...).
        config("config"): HubConfig = HubConfig::default(),
        /// The hub's database.
        db("db"): Db = Db::default(),
        /// Key signing the hub's cookies (hex); null generates one at first start and keeps it in the data
        /// directory. Overridden by `WASMHUB_COOKIE_SECRET`.
        cookie_secret("cookieSecret"): Option<String> = None,
        /// URL prefix of the whole hub.
        base_url("baseUrl"): String = "/".to_owned(),
        /// Most spawns in progress at once; more are queued.
        concurrent_spawn_limit("concurrentSpawnLimit"): u32 = 64,
        /// Failed spawns in a row after which the hub reports itself unhealthy; 0 never.
        consecutive_failure_limit("consecutiveFailureLimit"): u32 = 5,
        /// Most running servers; null is unlimited.
        active_server_limit("activeServerLimit"): Option<u32> = None,
        /// Whether users may run named servers besides their default one.
        allow_named_servers("allowNamedServers"): bool = false,
        /// Most named servers per user; null is unlimited.
        named_server_limit_per_user("namedServerLimitPerUser"): Option<u32> = None,
        /// Environment variables of the hub process.
        extra_env("extraEnv"): BTreeMap<String, String> = BTreeMap::new(),
        /// Services (API clients such as the idle culler) by name, each with its API token.
        services("services"): BTreeMap<String, HubService> = BTreeMap::new(),
        /// Roles by name, assigned to users, groups and services at every start.
        load_roles("loadRoles"): BTreeMap<String, LoadRole> = BTreeMap::new(),
        /// Python code run by JupyterHub's config file; not supported.
        extra_config("extraConfig"): PythonCode = PythonCode,
        /// Read by the Helm chart only.
        image("image"): crate::chart::ChartImage = crate::chart::ChartImage::default(),
        /// Read by the Helm chart only.
        resources("resources"): Option<serde_json::Value> = None,
        /// Read by the Helm chart only.
        service("service"): crate::chart::HubService = crate::chart::HubService::default(),
        /// Read by the Helm chart only.
        network_policy("networkPolicy"): crate::chart::NetworkPolicy = crate::chart::NetworkPolicy::default(),
        /// Read by the Helm chart only.
        pdb("pdb"): crate::chart::Pdb = crate::chart::Pdb::default(),
        /// Read by the Helm chart only.
        node_selector("nodeSelector"): BTreeMap<String, String> = BTreeMap::new(),
        /// Read by the Helm chart only.
        tolerations("tolerations"): Vec<serde_json::Value> = Vec::new(),
        /// Read by the Helm chart only.
        deployment_strategy("deploymentStrategy"): Option<serde_json::Value> = None,
        /// Read by the Helm chart only.
        liveness_probe("livenessProbe"): crate::chart::Probe = crate::chart::Probe::default(),
        /// Read by the Helm chart only.
        readiness_probe("readinessProbe"): crate::chart::Probe = crate::chart::Probe::default(),
    }
}

section! {
    /// A service (z2jh `hub.services.<name>`): an API client of the hub, optionally proxied at `/services/<name>/`.
    pub struct HubService {
        /// The service's API token (at least 8 characters); null gives the service no token.
        api_token("apiToken"): Option<String> = None,
        /// Whether the service is admin (JupyterHub's deprecated shortcut for the `admin` role).
        admin("admin"): bool = false,
        /// Where the service listens; the proxy routes `/services/<name>/` there.
        url("url"): Option<String> = None,
        /// Whether the service is listed on the home page.
        display("display"): bool = true,
        /// Whether users are sent through the service's OAuth without a confirmation page.
        oauth_no_confirm("oauth_no_confirm"): bool = false,
        /// Set by z2jh from the key; must equal it when given.
        name("name"): Option<String> = None,
    }
}

section! {
    /// A role (z2jh `hub.loadRoles.<name>`): scopes given to users, groups and services.
    pub struct LoadRole {
        /// Shown in the API.
        description("description"): String = String::new(),
        /// Scopes the role grants, e.g. `list:users`, `admin:servers!group=gpu`.
        scopes("scopes"): Vec<String> = Vec::new(),
        /// Users holding the role.
        users("users"): Vec<String> = Vec::new(),
        /// Groups whose members hold the role.
        groups("groups"): Vec<String> = Vec::new(),
        /// Services holding the role.
        services("services"): Vec<String> = Vec::new(),
        /// Set by z2jh from the key; must equal it when given.
        name("name"): Option<String> = None,
    }
}

section! {
    /// The hub's database.
    pub struct Db {
        /// `sqlite-pvc`: a SQLite file; `sqlite-memory`: in memory, lost on restart; `postgres`: PostgreSQL at
        /// `url`.
        kind("type"): DbType = DbType::SqlitePvc,
        /// Database URL (`sqlite://path`, `postgres://user@host/db`); null uses `sqlite://jupyterhub.sqlite` for
        /// SQLite. Overridden by `WASMHUB_DB_URL`.
        url("url"): Option<String> = None,
        /// Database password, kept out of `url`. Overridden by `WASMHUB_DB_PASSWORD`.
        password("password"): Option<String> = None,
        /// Read by the Helm chart only (the SQLite volume).
        pvc("pvc"): crate::chart::DbPvc = crate::chart::DbPvc::default(),
        /// Migrations always run at start; accepted for compatibility.
        upgrade("upgrade"): Option<bool> = None,
    }
}

yaml_enum! {
    /// Kind of database.
    pub enum DbType {
        SqlitePvc = "sqlite-pvc",
        SqliteMemory = "sqlite-memory",
        Postgres = "postgres",
        Mysql = "mysql",
        Other = "other",
    }
}

impl Db {
    /// The URL to connect to, `None` where it must be given and is not (checked at load).
    pub fn effective_url(&self) -> Option<String> {
        match (&self.url, self.kind) {
            (Some(url), _) => Some(url.clone()),
            (None, DbType::SqlitePvc) => Some("sqlite://jupyterhub.sqlite".to_owned()),
            (None, DbType::SqliteMemory) => Some("sqlite::memory:".to_owned()),
            (None, _) => None,
        }
    }
}

section! {
    /// JupyterHub-style settings, keyed by class name as in `jupyterhub_config.py` (`c.Authenticator.admin_users`
    /// is `hub.config.Authenticator.admin_users`). A setting on the chosen authenticator's own class wins over the
    /// same setting on `Authenticator`.
    pub struct HubConfig {
        /// Hub-wide settings.
        jupyterhub("JupyterHub"): JupyterHub = JupyterHub::default(),
        /// Who may log in and who is admin, for every authenticator.
        authenticator("Authenticator"): Authenticator = Authenticator::default(),
        /// The `dummy` authenticator: any name, one optional shared password.
        dummy_authenticator("DummyAuthenticator"): DummyAuthenticator = DummyAuthenticator::default(),
        /// The `shared-password` authenticator.
        shared_password_authenticator("SharedPasswordAuthenticator"): SharedPasswordAuthenticator =
            SharedPasswordAuthenticator::default(),
        /// The `generic-oauth` authenticator (OAuth 2 / OpenID Connect, e.g. Keycloak).
        generic_oauthenticator("GenericOAuthenticator"): GenericOAuthenticator = GenericOAuthenticator::default(),
        /// Settings of every spawner.
        spawner("Spawner"): Spawner = Spawner::default(),
        /// Kubernetes spawner settings: the `kubespawner_override` keys (see below), applied before profiles.
        kubespawner("KubeSpawner"): SpawnerOverride = SpawnerOverride::default(),
        /// The proxy, as JupyterHub's `ConfigurableHTTPProxy` class: the built-in one, or one in another process.
        configurable_http_proxy("ConfigurableHTTPProxy"): ConfigurableHttpProxy = ConfigurableHttpProxy::default(),
    }
}

section! {
    /// `c.ConfigurableHTTPProxy`. With `should_start: false` the hub runs no proxy of its own and keeps its routes
    /// in the proxy at `api_url` (`wasmhub proxy` or configurable-http-proxy), as z2jh runs the proxy in its own
    /// pod, so a hub restart leaves users' connections alone.
    pub struct ConfigurableHttpProxy {
        /// Whether `wasmhub serve` runs the proxy itself (in process); false needs `api_url`.
        should_start("should_start"): bool = true,
        /// The REST API of the proxy in another process, e.g. `http://proxy-api:8001`; only with `should_start: false`.
        api_url("api_url"): Option<String> = None,
        /// The token of that API; null takes `proxy.secretToken`, then the `CONFIGPROXY_AUTH_TOKEN` variable.
        auth_token("auth_token"): Option<String> = None,
        /// Seconds between checks of that proxy's routes against the running servers: missing routes are added,
        /// wrong targets fixed, stale routes of this hub deleted (others are left alone), so a proxy that restarted
        /// empty has every route back within one period.
        check_running_interval("check_running_interval"): u64 = 5,
    }
}

section! {
    /// `c.JupyterHub`.
    pub struct JupyterHub {
        /// Which authenticator checks logins.
        authenticator_class("authenticator_class"): AuthenticatorClass = AuthenticatorClass::Dummy,
        /// Whether admins may open other users' servers (JupyterHub's `admin_access`, deprecated there in
        /// favour of roles; z2jh sets it).
        admin_access("admin_access"): bool = true,
        /// Days a login cookie stays valid.
        cookie_max_age_days("cookie_max_age_days"): f64 = 14.0,
        /// Whether logging out also stops the user's servers.
        shutdown_on_logout("shutdown_on_logout"): bool = false,
        /// Folders searched for page templates (`login.html`, `page.html`, ...) before the built-in ones; a
        /// template may `{% extends "templates/page.html" %}` to change one block of the built-in page.
        template_paths("template_paths"): Vec<std::path::PathBuf> = Vec::new(),
        /// Serves each user's servers from a host of their own, `<user>.<domain>` (e.g. `https://hub.example.org`
        /// puts alice's at `https://alice.hub.example.org/user/alice/`), so a page one user's server serves runs
        /// in an origin apart from the hub's and other users'. Needs wildcard DNS (and a wildcard certificate) for
        /// the domain; the proxy routes by host.
        subdomain_host("subdomain_host"): Option<String> = None,
        /// The public URL users open, e.g. `http://0.0.0.0:8000`: with the built-in proxy its host and port are
        /// where the proxy listens (over `wasmhub.listen.proxy`; `--listen` wins); with a proxy elsewhere
        /// (`ConfigurableHTTPProxy.should_start: false`) it is the address the hub announces.
        bind_url("bind_url"): Option<String> = None,
        /// Addresses of proxies in front of the hub, besides loopback and the built-in proxy, whose
        /// `X-Forwarded-Proto` and `X-Forwarded-For` the hub believes (https cookies, login throttling by client
        /// address). From anyone else those headers are dropped.
        trusted_downstream_ips("trusted_downstream_ips"): Vec<String> = Vec::new(),
    }
}

yaml_enum! {
    /// The authenticator. Python class paths are accepted for the same classes.
    pub enum AuthenticatorClass {
        /// Any username; with `DummyAuthenticator.password`, one shared password. Not for production.
        Dummy = "dummy" | "jupyterhub.auth.DummyAuthenticator" | "DummyAuthenticator",
        /// `SharedPasswordAuthenticator`: one password for users, another for admins.
        SharedPassword = "shared-password" | "jupyterhub.authenticators.shared.SharedPasswordAuthenticator"
            | "SharedPasswordAuthenticator",
        /// `GenericOAuthenticator`: an OAuth 2 / OpenID Connect provider.
        GenericOauth = "generic-oauth" | "generic" | "oauthenticator.generic.GenericOAuthenticator"
            | "oauthenticator.GenericOAuthenticator" | "GenericOAuthenticator",
    }
}

section! {
    /// `c.Authenticator`: settings every authenticator shares (JupyterHub 5 semantics).
    pub struct Authenticator {
        /// Users who are admins. Listing a name grants admin; removing it later does not revoke it.
        admin_users("admin_users"): Vec<String> = Vec::new(),
        /// Users who may log in. When not empty, admins are added to it.
        allowed_users("allowed_users"): Vec<String> = Vec::new(),
        /// Users who may never log in, checked before any allow rule.
        blocked_users("blocked_users"): Vec<String> = Vec::new(),
        /// Whether every authenticated user may log in; null is the authenticator's default (false, except
        /// `dummy` with no `allowed_users`).
        allow_all("allow_all"): Option<bool> = None,
        /// Whether users already in the database (e.g. added by an admin) may log in; null means "when
        /// `allowed_users` is set" (false for OAuth).
        allow_existing_users("allow_existing_users"): Option<bool> = None,
        /// Whether the login page redirects straight to the identity provider.
        auto_login("auto_login"): bool = false,
        /// Regular expression every username must match.
        username_pattern("username_pattern"): Option<String> = None,
        /// Renames applied after lowercasing, e.g. an email to a short name.
        username_map("username_map"): BTreeMap<String, String> = BTreeMap::new(),
        /// Whether users that no longer pass the checks are deleted at start.
        delete_invalid_users("delete_invalid_users"): bool = false,
        /// Whether the identity provider's tokens are kept, encrypted with `JUPYTERHUB_CRYPT_KEY`.
        enable_auth_state("enable_auth_state"): bool = false,
        /// Whether the authenticator's groups replace the user's groups at each login.
        manage_groups("manage_groups"): bool = false,
        /// Seconds after which the user's identity is refreshed.
        auth_refresh_age("auth_refresh_age"): u64 = 300,
        /// Whether the identity is refreshed before each spawn.
        refresh_pre_spawn("refresh_pre_spawn"): bool = false,
    }
}

section! {
    /// `c.DummyAuthenticator`. Its `Authenticator` keys, when set here, win over `hub.config.Authenticator`.
    pub struct DummyAuthenticator {
        /// One password for every user; null accepts any password. Overridden by `WASMHUB_DUMMY_PASSWORD`.
        password("password"): Option<String> = None,
        /// As `Authenticator.admin_users`.
        admin_users("admin_users"): Option<Vec<String>> = None,
        /// As `Authenticator.allowed_users`.
        allowed_users("allowed_users"): Option<Vec<String>> = None,
        /// As `Authenticator.blocked_users`.
        blocked_users("blocked_users"): Option<Vec<String>> = None,
        /// As `Authenticator.allow_all`.
        allow_all("allow_all"): Option<bool> = None,
    }
}

section! {
    /// `c.SharedPasswordAuthenticator` (JupyterHub 5.3+).
    pub struct SharedPasswordAuthenticator {
        /// Password of non-admin users, at least 8 characters. Overridden by `WASMHUB_USER_PASSWORD`.
        user_password("user_password"): Option<String> = None,
        /// Password of `admin_users`, at least 32 characters and different from `user_password`; admins can
        /// log in only with it. Overridden by `WASMHUB_ADMIN_PASSWORD`.
        admin_password("admin_password"): Option<String> = None,
        /// As `Authenticator.admin_users`.
        admin_users("admin_users"): Option<Vec<String>> = None,
        /// As `Authenticator.allowed_users`.
        allowed_users("allowed_users"): Option<Vec<String>> = None,
        /// As `Authenticator.allow_all`.
        allow_all("allow_all"): Option<bool> = None,
    }
}

section! {
    /// `c.GenericOAuthenticator` (OAuthenticator 17). Its `Authenticator` keys, when set here, win over
    /// `hub.config.Authenticator`.
    pub struct GenericOAuthenticator {
        /// OAuth client id registered at the provider.
        client_id("client_id"): Option<String> = None,
        /// OAuth client secret. Overridden by `WASMHUB_OAUTH_CLIENT_SECRET`.
        client_secret("client_secret"): Option<String> = None,
        /// This hub's callback, `https://<hub>/hub/oauth_callback`.
        oauth_callback_url("oauth_callback_url"): Option<String> = None,
        /// The provider's authorization endpoint.
        authorize_url("authorize_url"): Option<String> = None,
        /// The provider's token endpoint.
        token_url("token_url"): Option<String> = None,
        /// The provider's userinfo endpoint.
        userdata_url("userdata_url"): Option<String> = None,
        /// Extra query parameters of the userinfo request.
        userdata_params("userdata_params"): BTreeMap<String, String> = BTreeMap::new(),
        /// `header` sends the token as `Authorization: Bearer`, `url` as a query parameter.
        userdata_token_method("userdata_token_method"): TokenMethod = TokenMethod::Header,
        /// Claim holding the username, e.g. `preferred_username` for Keycloak; null means `username`.
        username_claim("username_claim"): Option<String> = None,
        /// Old name of `username_claim` (OAuthenticator < 16), still used by many configs.
        username_key("username_key"): Option<String> = None,
        /// Name of the provider on the login button ("Sign in with ...").
        login_service("login_service"): String = "OAuth 2.0".to_owned(),
        /// Scopes requested.
        scope("scope"): Vec<String> = Vec::new(),
        /// If set, users granted all of these scopes may log in.
        allowed_scopes("allowed_scopes"): Vec<String> = Vec::new(),
        /// Extra parameters of the token request.
        token_params("token_params"): BTreeMap<String, String> = BTreeMap::new(),
        /// Extra parameters of the authorization request.
        extra_authorize_params("extra_authorize_params"): BTreeMap<String, String> = BTreeMap::new(),
        /// Whether PKCE (S256) is used.
        enable_pkce("enable_pkce"): bool = true,
        /// Whether the client secret is sent with HTTP Basic instead of in the body.
        basic_auth("basic_auth"): bool = false,
        /// Whether the provider's TLS certificate is checked.
        validate_server_cert("validate_server_cert"): bool = true,
        /// Where the browser goes after logging out of the hub; null stays on the hub.
        logout_redirect_url("logout_redirect_url"): Option<String> = None,
        /// Groups whose members may log in (needs `manage_groups`).
        allowed_groups("allowed_groups"): Vec<String> = Vec::new(),
        /// Groups whose members are admins (needs `manage_groups`); when set, admin is also revoked.
        admin_groups("admin_groups"): Vec<String> = Vec::new(),
        /// Dotted path to the groups in the auth state (needs `manage_groups`).
        auth_state_groups_key("auth_state_groups_key"): Option<String> = None,
        /// As `Authenticator.manage_groups`.
        manage_groups("manage_groups"): Option<bool> = None,
        /// As `Authenticator.admin_users`.
        admin_users("admin_users"): Option<Vec<String>> = None,
        /// As `Authenticator.allowed_users`.
        allowed_users("allowed_users"): Option<Vec<String>> = None,
        /// As `Authenticator.blocked_users`.
        blocked_users("blocked_users"): Option<Vec<String>> = None,
        /// As `Authenticator.allow_all`.
        allow_all("allow_all"): Option<bool> = None,
        /// As `Authenticator.allow_existing_users`.
        allow_existing_users("allow_existing_users"): Option<bool> = None,
        /// As `Authenticator.auto_login`.
        auto_login("auto_login"): Option<bool> = None,
    }
}

impl GenericOAuthenticator {
    /// The claim holding the username: `username_claim`, else the old `username_key`, else `username`.
    pub fn effective_username_claim(&self) -> &str {
        self.username_claim.as_deref().or(self.username_key.as_deref()).unwrap_or("username")
    }
}

yaml_enum! {
    /// How the access token is sent to the userinfo endpoint.
    pub enum TokenMethod {
        Header = "header",
        Url = "url",
    }
}

section! {
    /// `c.Spawner`: settings of every spawner.
    pub struct Spawner {
        /// Command starting the server; null uses `singleuser.cmd`.
        cmd("cmd"): Option<Command> = None,
        /// Arguments appended to the command.
        args("args"): Vec<String> = Vec::new(),
        /// Page opened after start, e.g. `/lab`; null uses `singleuser.defaultUrl`.
        default_url("default_url"): Option<String> = None,
        /// Root directory the server shows.
        notebook_dir("notebook_dir"): Option<String> = None,
        /// Environment variables of every server.
        environment("environment"): BTreeMap<String, String> = BTreeMap::new(),
        /// Seconds allowed for a start; null uses `singleuser.startTimeout`.
        start_timeout("start_timeout"): Option<u64> = None,
        /// Seconds allowed for the server to answer HTTP after it started.
        http_timeout("http_timeout"): u64 = 30,
        /// Seconds between checks that a server is still running.
        poll_interval("poll_interval"): u64 = 30,
        /// CPU limit in cores (local spawner: not enforced).
        cpu_limit("cpu_limit"): Option<f64> = None,
        /// Memory limit (local spawner: not enforced).
        mem_limit("mem_limit"): Option<ByteSize> = None,
        /// Whether the server logs at debug level.
        debug("debug"): bool = false,
    }
}
