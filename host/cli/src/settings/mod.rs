//! The config file translated into the settings of each part `wasmhub serve` wires, in this one place: the hub's
//! [`HubConfig`], the state it writes at start, what runs beside it, the login rules, and the Kubernetes spawner's
//! traits (`kube.rs`). Nothing here decides behaviour; each part owns what its settings mean.

pub(crate) mod kube;

use std::time::Duration;

use wasmhub_config::{Config, SpawnerKind};
use wasmhub_hub::{
    AuthSettings, CullerConfig, HubConfig, LeaseSettings, RoleSpec, RunSettings, ServiceSpec, StartupState,
    SubdomainHost, ThrottleSettings,
};
use wasmhub_spawner::RunAs;

/// The hub's settings; `hub_url` is where local clients reach the hub's listener (`http://127.0.0.1:8081`).
pub(crate) fn hub_config(config: &Config, hub_url: &str, auth: AuthSettings) -> anyhow::Result<HubConfig> {
    let spawner = &config.hub.config.spawner;
    let base_url = HubConfig::normalised_base_url(&config.hub.base_url);
    let mut environment = config.singleuser.extra_env.clone();
    environment.extend(spawner.environment.clone());
    // KubeSpawner's initialisation (slugs, defaults) once at start, so a malformed list stops the hub here.
    let profile_list: Vec<serde_json::Value> =
        config.singleuser.profile_list.iter().map(|profile| profile.to_json()).collect();
    let profiles = wasmhub_policy::hooks::initialize_profiles(&profile_list)
        .map_err(|error| anyhow::anyhow!("singleuser.profileList: {error}"))?;
    Ok(HubConfig {
        hub_api_url: format!("{hub_url}{base_url}hub/api"),
        base_url,
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
        // HTTPS at the proxy (`proxy.https.enabled`) means the public URL is https: cookies are `Secure` always.
        cookie_secure: config.proxy.https.enabled,
        cookie_max_age: Duration::try_from_secs_f64(config.hub.config.jupyterhub.cookie_max_age_days * 86_400.0)
            .unwrap_or(HubConfig::default().cookie_max_age),
        active_server_limit: config.hub.active_server_limit,
        named_server_limit_per_user: config.hub.named_server_limit_per_user,
        profiles,
        template_paths: config.hub.config.jupyterhub.template_paths.clone(),
        login_throttle: login_throttle(config),
        servers_share_hub_user: config.wasmhub.spawner == SpawnerKind::Local && config.wasmhub.local.share_hub_user,
        subdomain_host: config
            .hub
            .config
            .jupyterhub
            .subdomain_host
            .as_deref()
            .map(SubdomainHost::parse)
            .transpose()
            .map_err(|error| anyhow::anyhow!("hub.config.JupyterHub.subdomain_host: {error}"))?,
        trusted_downstream_ips: config
            .hub
            .config
            .jupyterhub
            .trusted_downstream_ips
            .iter()
            .map(|ip| {
                ip.parse().map_err(|_| {
                    anyhow::anyhow!("hub.config.JupyterHub.trusted_downstream_ips: {ip:?} is not an IP address")
                })
            })
            .collect::<anyhow::Result<_>>()?,
        ..HubConfig::default()
    })
}

/// Whose Unix account local servers run as: as root, each server's own system user (created on first spawn with
/// `createSystemUsers`); otherwise the hub's, and only when `shareHubUser` says the site accepts what that means.
pub(crate) fn local_run_as(config: &Config, hub_uid: nix::unistd::Uid) -> anyhow::Result<RunAs> {
    let local = &config.wasmhub.local;
    match (hub_uid.is_root(), local.share_hub_user) {
        (true, true) => anyhow::bail!(
            "wasmhub.local.shareHubUser: the hub runs as root and servers never do; remove it to run each server as \
             its own system user (with wasmhub.local.createSystemUsers: true to create missing users)"
        ),
        (true, false) => Ok(RunAs::SystemUsers { create: local.create_system_users }),
        (false, true) => {
            if local.create_system_users {
                anyhow::bail!(
                    "wasmhub.local.createSystemUsers needs a hub running as root; remove it with shareHubUser"
                );
            }
            tracing::warn!(
                "wasmhub.local.shareHubUser: every server runs as the hub's own user and can read the hub's database, \
                 environment and files, and every other user's server and token; run the hub as root to isolate them"
            );
            Ok(RunAs::HubUser)
        }
        (false, false) => anyhow::bail!(
            "wasmhub.local: the hub runs as uid {hub_uid}, not root, so it cannot start each server as its own system \
             user. Run it as root, or set wasmhub.local.shareHubUser: true to run every server as the hub's own user \
             (every server can then read the hub's files and environment and the other servers' tokens: fit for one \
             person trying wasmhub out)"
        ),
    }
}

/// `JupyterHub.bind_url`'s host and port as the built-in proxy's public address (`http://0.0.0.0:8000` is
/// `0.0.0.0:8000`); its path is the base URL's business (`hub.baseUrl`).
pub(crate) fn bind_address(config: &Config) -> Option<String> {
    let url = config.hub.config.jupyterhub.bind_url.as_deref()?;
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    Some(rest.split('/').next().unwrap_or_default().to_owned())
}

/// The token of a proxy in another process: `ConfigurableHTTPProxy.auth_token`, else `proxy.secretToken`, else
/// `CONFIGPROXY_AUTH_TOKEN` (`env_token`), as JupyterHub looks for it.
pub(crate) fn proxy_api_token(config: &Config, env_token: Option<String>) -> Option<String> {
    config
        .hub
        .config
        .configurable_http_proxy
        .auth_token
        .clone()
        .or_else(|| config.proxy.secret_token.clone())
        .or_else(|| env_token.filter(|token| !token.is_empty()))
}

/// `wasmhub.loginThrottle`.
fn login_throttle(config: &Config) -> ThrottleSettings {
    let throttle = &config.wasmhub.login_throttle;
    ThrottleSettings {
        max_failures_per_user: throttle.max_failures_per_user,
        max_failures_per_address: throttle.max_failures_per_address,
        window: Duration::from_secs(throttle.window),
        lockout: Duration::from_secs(throttle.lockout),
    }
}

/// `hub.services`, `hub.loadRoles` and the admin and allowed users.
pub(crate) fn startup_state(config: &Config) -> StartupState {
    let rules = config.auth_rules();
    StartupState {
        services: config
            .hub
            .services
            .iter()
            .map(|(name, service)| ServiceSpec {
                name: name.clone(),
                admin: service.admin,
                api_token: service.api_token.clone(),
            })
            .collect(),
        roles: config
            .hub
            .load_roles
            .iter()
            .map(|(name, role)| RoleSpec {
                name: name.clone(),
                description: role.description.clone(),
                scopes: role.scopes.clone(),
                users: role.users.clone(),
                services: role.services.clone(),
                groups: role.groups.clone(),
            })
            .collect(),
        admin_users: rules.admin_users.iter().cloned().collect(),
        allowed_users: rules.allowed_users.iter().cloned().collect(),
    }
}

/// The supervisor's poll interval and the built-in culler (`cull.*`).
pub(crate) fn run_settings(config: &Config) -> RunSettings {
    let cull = &config.cull;
    RunSettings {
        poll_interval: Duration::from_secs(config.hub.config.spawner.poll_interval.max(1)),
        culler: cull.enabled.then(|| CullerConfig {
            every: Duration::from_secs(cull.every),
            concurrency: cull.concurrency as usize,
            cull_admin_users: cull.admin_users,
            cull_users_after: cull.users.then(|| Duration::from_secs(cull.timeout)),
        }),
        // Set by `serve` when the proxy is in another process; the built-in table needs no checking.
        route_check_interval: None,
    }
}

/// Two hubs share a PostgreSQL database during a rolling update, one at a time; a SQLite file serves one.
pub(crate) fn lease_settings(config: &Config) -> LeaseSettings {
    LeaseSettings { wait: config.hub.db.kind == wasmhub_config::DbType::Postgres, ..LeaseSettings::default() }
}

/// `Authenticator` and the chosen class's section as the login rules the auth hook applies natively.
pub(crate) fn auth_settings(config: &Config) -> AuthSettings {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_https_proxy_makes_the_hubs_cookies_secure_and_the_limits_and_throttle_reach_the_hub() {
        let mut config = Config::default();
        let plain = hub_config(&config, "http://127.0.0.1:8081", AuthSettings::default()).unwrap();
        assert!(!plain.cookie_secure);
        config.proxy.https.enabled = true;
        config.hub.active_server_limit = Some(3);
        config.hub.named_server_limit_per_user = Some(2);
        let https = hub_config(&config, "http://127.0.0.1:8081", AuthSettings::default()).unwrap();
        assert!(https.cookie_secure);
        assert_eq!((https.active_server_limit, https.named_server_limit_per_user), (Some(3), Some(2)));
        assert_eq!(https.login_throttle, ThrottleSettings::default());
        config.wasmhub.login_throttle.max_failures_per_user = 2;
        config.wasmhub.login_throttle.lockout = 7;
        let throttled = hub_config(&config, "http://127.0.0.1:8081", AuthSettings::default()).unwrap();
        assert_eq!(throttled.login_throttle.max_failures_per_user, 2);
        assert_eq!(throttled.login_throttle.lockout, Duration::from_secs(7));
        config.hub.config.jupyterhub.subdomain_host = Some("https://hub.example.org".into());
        config.hub.config.jupyterhub.trusted_downstream_ips = vec!["10.0.0.9".into()];
        let hosted = hub_config(&config, "http://127.0.0.1:8081", AuthSettings::default()).unwrap();
        assert_eq!(hosted.subdomain_host.unwrap().domain, "hub.example.org");
        assert_eq!(hosted.trusted_downstream_ips, ["10.0.0.9".parse::<std::net::IpAddr>().unwrap()]);
    }

    #[test]
    fn the_proxys_token_and_public_address_come_from_jupyterhubs_keys() {
        let mut config = Config::default();
        assert_eq!(proxy_api_token(&config, Some(String::new())), None);
        assert_eq!(proxy_api_token(&config, Some("from-env".into())).as_deref(), Some("from-env"));
        config.proxy.secret_token = Some("secret-token".into());
        assert_eq!(proxy_api_token(&config, Some("from-env".into())).as_deref(), Some("secret-token"));
        config.hub.config.configurable_http_proxy.auth_token = Some("auth-token".into());
        assert_eq!(proxy_api_token(&config, Some("from-env".into())).as_deref(), Some("auth-token"));
        assert_eq!(bind_address(&config), None);
        config.hub.config.jupyterhub.bind_url = Some("http://0.0.0.0:8000/jhub/".into());
        assert_eq!(bind_address(&config).as_deref(), Some("0.0.0.0:8000"));
    }

    #[test]
    fn servers_run_as_their_own_users_under_root_and_share_the_hubs_only_when_told() {
        let root = nix::unistd::Uid::from_raw(0);
        let hub_user = nix::unistd::Uid::from_raw(1000);
        let mut config = Config::default();
        assert_eq!(local_run_as(&config, root).unwrap(), RunAs::SystemUsers { create: false });
        let refused = local_run_as(&config, hub_user).unwrap_err().to_string();
        assert!(refused.contains("wasmhub.local.shareHubUser: true"), "{refused}");
        config.wasmhub.local.create_system_users = true;
        assert_eq!(local_run_as(&config, root).unwrap(), RunAs::SystemUsers { create: true });
        config.wasmhub.local.share_hub_user = true;
        let refused = local_run_as(&config, root).unwrap_err().to_string();
        assert!(refused.contains("servers never do"), "{refused}");
        assert!(local_run_as(&config, hub_user).unwrap_err().to_string().contains("needs a hub running as root"));
        config.wasmhub.local.create_system_users = false;
        assert_eq!(local_run_as(&config, hub_user).unwrap(), RunAs::HubUser);
        let shared = hub_config(&config, "http://127.0.0.1:8081", AuthSettings::default()).unwrap();
        assert!(shared.servers_share_hub_user, "the admin page says so");
    }
}
