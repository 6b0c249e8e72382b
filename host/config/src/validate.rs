//! Checks across keys that the schema walk cannot make alone (required-if, at most one default, password
//! lengths, regexes that must compile). They run on the typed config and place errors with the walk's positions.

use std::collections::BTreeMap;

use crate::Config;
use crate::config::SpawnerKind;
use crate::error::ErrorKind;
use crate::hub::{AuthenticatorClass, DbType};
use crate::proxy::HttpsType;
use crate::schema::Ctx;
use crate::singleuser::{SpawnerOverride, StorageType};

pub(crate) fn validate(config: &Config, ctx: &mut Ctx) {
    validate_profiles(config, ctx);
    validate_db(config, ctx);
    validate_authenticator(config, ctx);
    validate_storage_and_tls(config, ctx);
    validate_cull(config, ctx);
    validate_services_and_roles(config, ctx);
    validate_noop_spawner(config, ctx);
    validate_kubernetes(config, ctx);
}

fn invalid(ctx: &mut Ctx, path: &str, message: impl Into<String>) {
    ctx.error_for(path, ErrorKind::Invalid(message.into()));
}

fn check_regex(ctx: &mut Ctx, path: &str, pattern: &Option<String>) {
    if let Some(pattern) = pattern
        && let Err(error) = regex::Regex::new(pattern)
    {
        invalid(ctx, path, format!("not a valid regular expression: {error}"));
    }
}

fn validate_profiles(config: &Config, ctx: &mut Ctx) {
    let mut slugs: BTreeMap<String, usize> = BTreeMap::new();
    let mut first_default: Option<usize> = None;
    for (index, profile) in config.singleuser.profile_list.iter().enumerate() {
        let path = format!("singleuser.profileList[{index}]");
        if profile.display_name.trim().is_empty() {
            invalid(ctx, &path, "a profile needs a display_name");
        }
        if profile.default {
            match first_default {
                Some(first) => invalid(
                    ctx,
                    &format!("{path}.default"),
                    format!("only one profile may be the default; profileList[{first}] already is"),
                ),
                None => first_default = Some(index),
            }
        }
        let slug = profile.slug();
        if let Some(first) = slugs.insert(slug.clone(), index) {
            invalid(ctx, &path, format!("slug `{slug}` is also the slug of profileList[{first}]; set `slug` on one"));
        }
        validate_override(&profile.kubespawner_override, &format!("{path}.kubespawner_override"), ctx);
        for (option_name, option) in &profile.profile_options.0 {
            let option_path = format!("{path}.profile_options.{option_name}");
            let defaults: Vec<&str> =
                option.choices.0.iter().filter(|(_, choice)| choice.default).map(|(key, _)| key.as_str()).collect();
            if defaults.len() > 1 {
                invalid(
                    ctx,
                    &format!("{option_path}.choices"),
                    format!("only one choice may be the default, found {}", defaults.join(", ")),
                );
            }
            if option.choices.is_empty() && !option.unlisted_choice.enabled {
                invalid(ctx, &option_path, "an option needs choices or an enabled unlisted_choice");
            }
            for (choice_name, choice) in &option.choices.0 {
                let choice_path = format!("{option_path}.choices.{choice_name}.kubespawner_override");
                validate_override(&choice.kubespawner_override, &choice_path, ctx);
            }
            let unlisted_path = format!("{option_path}.unlisted_choice");
            check_regex(ctx, &format!("{unlisted_path}.validation_regex"), &option.unlisted_choice.validation_regex);
        }
    }
}

fn validate_override(spawner_override: &SpawnerOverride, path: &str, ctx: &mut Ctx) {
    for (key, value) in [("volumes", &spawner_override.volumes), ("volume_mounts", &spawner_override.volume_mounts)] {
        if let Some(value) = value
            && !(value.is_array() || value.is_object())
        {
            invalid(ctx, &format!("{path}.{key}"), "expected a list, or a mapping keyed by name");
        }
    }
}

fn validate_db(config: &Config, ctx: &mut Ctx) {
    let db = &config.hub.db;
    match db.kind {
        DbType::Postgres if db.url.is_none() => {
            invalid(ctx, "hub.db.url", "required when hub.db.type is postgres (or set WASMHUB_DB_URL)")
        }
        DbType::Mysql | DbType::Other => ctx.error_for(
            "hub.db.type",
            ErrorKind::Unsupported(format!(
                "`{}` is not supported; use sqlite-pvc, sqlite-memory or postgres",
                db.kind.as_str()
            )),
        ),
        _ => {}
    }
    if let Some(url) = &db.url {
        let scheme_ok =
            url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !scheme_ok {
            invalid(ctx, "hub.db.url", "expected a sqlite: or postgres:// URL");
        }
    }
}

fn validate_noop_spawner(config: &Config, ctx: &mut Ctx) {
    if let Some(host) = &config.hub.config.jupyterhub.subdomain_host {
        let shape_ok = host
            .strip_prefix("http://")
            .or_else(|| host.strip_prefix("https://"))
            .is_some_and(|rest| !rest.is_empty() && !rest.trim_end_matches('/').contains('/'));
        if !shape_ok {
            invalid(
                ctx,
                "hub.config.JupyterHub.subdomain_host",
                "expected a scheme and host, e.g. https://hub.example.org (no path)",
            );
        }
    }
    let chp = &config.hub.config.configurable_http_proxy;
    match (chp.should_start, chp.api_url.as_deref()) {
        (false, None) => invalid(
            ctx,
            "hub.config.ConfigurableHTTPProxy.api_url",
            "required with should_start: false (where the proxy's REST API is, e.g. http://proxy-api:8001)",
        ),
        (true, Some(_)) => invalid(
            ctx,
            "hub.config.ConfigurableHTTPProxy.api_url",
            "only with should_start: false; the built-in proxy's API listens at wasmhub.listen.proxyApi",
        ),
        (false, Some(url)) if !url.starts_with("http://") => invalid(
            ctx,
            "hub.config.ConfigurableHTTPProxy.api_url",
            "expected http://host:port (the proxy's API is plain HTTP inside the deployment)",
        ),
        _ => {}
    }
    if chp.check_running_interval == 0 {
        invalid(ctx, "hub.config.ConfigurableHTTPProxy.check_running_interval", "must be at least 1 second");
    }
    for ip in &config.hub.config.jupyterhub.trusted_downstream_ips {
        if ip.parse::<std::net::IpAddr>().is_err() {
            invalid(ctx, "hub.config.JupyterHub.trusted_downstream_ips", &format!("{ip:?} is not an IP address"));
        }
    }
    let url = config.wasmhub.noop.url.as_deref();
    if config.wasmhub.spawner == SpawnerKind::Noop && url.is_none() {
        invalid(ctx, "wasmhub.noop.url", "required when wasmhub.spawner is noop");
    }
    if let Some(url) = url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        invalid(ctx, "wasmhub.noop.url", "expected an http:// or https:// URL");
    }
}

fn validate_kubernetes(config: &Config, ctx: &mut Ctx) {
    let kubernetes = &config.wasmhub.kubernetes;
    if let Some(url) = kubernetes.hub_connect_url.as_deref()
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        invalid(ctx, "wasmhub.kubernetes.hubConnectUrl", "expected an http:// or https:// URL such as http://hub:8081");
    }
    let label_value = |text: &str| {
        !text.is_empty()
            && text.len() <= 63
            && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && text.starts_with(|c: char| c.is_ascii_alphanumeric())
            && text.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    if !label_value(&kubernetes.hub_instance) {
        invalid(
            ctx,
            "wasmhub.kubernetes.hubInstance",
            "expected a Kubernetes label value (letters, digits, -_., up to 63)",
        );
    }
    if let Some(namespace) = kubernetes.namespace.as_deref()
        && !(namespace.len() <= 63
            && namespace.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && namespace.starts_with(|c: char| c.is_ascii_alphanumeric())
            && namespace.ends_with(|c: char| c.is_ascii_alphanumeric()))
    {
        invalid(ctx, "wasmhub.kubernetes.namespace", "expected a DNS label (lowercase letters, digits and -)");
    }
}

fn validate_authenticator(config: &Config, ctx: &mut Ctx) {
    let hub_config = &config.hub.config;
    check_regex(ctx, "hub.config.Authenticator.username_pattern", &hub_config.authenticator.username_pattern);
    let class = hub_config.jupyterhub.authenticator_class;
    let class_path = "hub.config.JupyterHub.authenticator_class";
    match class {
        AuthenticatorClass::GenericOauth => {
            let oauth = &hub_config.generic_oauthenticator;
            let required = [
                ("client_id", &oauth.client_id),
                ("authorize_url", &oauth.authorize_url),
                ("token_url", &oauth.token_url),
                ("userdata_url", &oauth.userdata_url),
            ];
            for (key, value) in required {
                if value.is_none() {
                    let path = format!("hub.config.GenericOAuthenticator.{key}");
                    invalid(ctx, &path, format!("required when {class_path} is generic-oauth"));
                }
            }
        }
        AuthenticatorClass::SharedPassword => {
            let shared = &hub_config.shared_password_authenticator;
            let prefix = "hub.config.SharedPasswordAuthenticator";
            if shared.user_password.is_none() && shared.admin_password.is_none() {
                invalid(
                    ctx,
                    &format!("{prefix}.user_password"),
                    "required when authenticator_class is shared-password",
                );
            }
            if let Some(password) = &shared.user_password
                && password.chars().count() < 8
            {
                invalid(ctx, &format!("{prefix}.user_password"), "must be at least 8 characters");
            }
            if let Some(password) = &shared.admin_password {
                if password.chars().count() < 32 {
                    invalid(ctx, &format!("{prefix}.admin_password"), "must be at least 32 characters");
                }
                if shared.user_password.as_ref() == Some(password) {
                    invalid(ctx, &format!("{prefix}.admin_password"), "must differ from user_password");
                }
            }
        }
        AuthenticatorClass::Dummy => {}
    }
    let oauth = &hub_config.generic_oauthenticator;
    let prefix = "hub.config.GenericOAuthenticator";
    if oauth.username_claim.is_some() && oauth.username_key.is_some() {
        invalid(ctx, &format!("{prefix}.username_key"), "set username_claim or its old name username_key, not both");
    }
    let manage_groups = oauth.manage_groups.unwrap_or(hub_config.authenticator.manage_groups);
    if !manage_groups {
        let group_keys = [
            ("allowed_groups", !oauth.allowed_groups.is_empty()),
            ("admin_groups", !oauth.admin_groups.is_empty()),
            ("auth_state_groups_key", oauth.auth_state_groups_key.is_some()),
        ];
        for (key, set) in group_keys {
            if set {
                invalid(ctx, &format!("{prefix}.{key}"), "needs manage_groups: true");
            }
        }
    }
}

fn validate_storage_and_tls(config: &Config, ctx: &mut Ctx) {
    let storage = &config.singleuser.storage;
    if storage.kind == StorageType::Static && storage.static_.pvc_name.is_none() {
        invalid(ctx, "singleuser.storage.static.pvcName", "required when singleuser.storage.type is static");
    }
    let https = &config.proxy.https;
    if https.enabled && https.kind == HttpsType::Manual {
        for (key, value) in [("key", &https.manual.key), ("cert", &https.manual.cert)] {
            if value.is_none() {
                invalid(ctx, &format!("proxy.https.manual.{key}"), "required when proxy.https.type is manual");
            }
        }
    }
    if https.enabled && https.kind == HttpsType::Secret && https.secret.name.is_none() {
        invalid(ctx, "proxy.https.secret.name", "required when proxy.https.type is secret");
    }
    let served_here = https.enabled && matches!(https.kind, HttpsType::Manual | HttpsType::Secret);
    if config.wasmhub.listen.proxy_http.is_some() && !served_here {
        invalid(
            ctx,
            "wasmhub.listen.proxyHttp",
            "redirects plain HTTP to HTTPS, so it needs proxy.https enabled with type manual or secret",
        );
    }
    if https.enabled && https.kind == HttpsType::Letsencrypt {
        invalid(
            ctx,
            "proxy.https.type",
            "letsencrypt is not supported: use secret (a TLS secret, e.g. from cert-manager), manual (PEMs inline), \
             or offload (TLS ends at the load balancer)",
        );
    }
}

fn validate_cull(config: &Config, ctx: &mut Ctx) {
    let cull = &config.cull;
    if cull.enabled {
        if cull.timeout == 0 {
            invalid(ctx, "cull.timeout", "must be at least 1 second when cull.enabled is true");
        }
        if cull.every == 0 {
            invalid(ctx, "cull.every", "must be at least 1 second when cull.enabled is true");
        }
        if cull.concurrency == 0 {
            invalid(ctx, "cull.concurrency", "must be at least 1");
        }
    }
}

fn validate_services_and_roles(config: &Config, ctx: &mut Ctx) {
    for (name, service) in &config.hub.services {
        let path = format!("hub.services.{name}");
        if let Some(given) = &service.name
            && given != name
        {
            invalid(ctx, &format!("{path}.name"), format!("must equal the key `{name}` (or be left out)"));
        }
        if let Some(token) = &service.api_token
            && token.chars().count() < 8
        {
            invalid(ctx, &format!("{path}.apiToken"), "must be at least 8 characters");
        }
    }
    for (name, role) in &config.hub.load_roles {
        let path = format!("hub.loadRoles.{name}");
        if let Some(given) = &role.name
            && given != name
        {
            invalid(ctx, &format!("{path}.name"), format!("must equal the key `{name}` (or be left out)"));
        }
        for (index, service) in role.services.iter().enumerate() {
            if !config.hub.services.contains_key(service) {
                invalid(ctx, &format!("{path}.services[{index}]"), format!("no service `{service}` in hub.services"));
            }
        }
    }
}
