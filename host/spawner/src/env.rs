//! The environment JupyterHub gives a single-user server (`Spawner.get_env`), variable for variable, so an
//! unmodified `jupyterhub-singleuser` finds its hub, its OAuth client and its URL prefix.

use std::collections::BTreeMap;

/// What the hub knows about a server when it builds the server's environment.
#[derive(Debug, Clone, Default)]
pub struct SingleUserContext {
    pub user: String,
    /// Empty for the default server.
    pub server_name: String,
    /// The server's hub token; also its OAuth client secret.
    pub api_token: String,
    /// The hub API as the server reaches it, e.g. `http://127.0.0.1:8081/hub/api` (no trailing slash).
    pub hub_api_url: String,
    /// The hub's base URL, `/` unless configured.
    pub base_url: String,
    /// `JUPYTERHUB_DEFAULT_URL`, e.g. `/lab`.
    pub default_url: Option<String>,
    /// `JUPYTERHUB_ROOT_DIR`.
    pub root_dir: Option<String>,
    /// Extra variables from config (`Spawner.environment`); they win over everything else.
    pub extra: BTreeMap<String, String>,
    /// With `subdomain_host`: the hub's origin (`JUPYTERHUB_HOST`, where the server sends browsers to log in)
    /// and the server's own (`https://alice.hub.example.org`, where its OAuth callback is).
    pub hub_origin: Option<String>,
    pub server_origin: Option<String>,
}

impl SingleUserContext {
    /// `/user/<name>/` or `/user/<name>/<server>/`, under the base URL, always with a trailing slash.
    pub fn service_prefix(&self) -> String {
        let base = if self.base_url.ends_with('/') { self.base_url.clone() } else { format!("{}/", self.base_url) };
        let mut prefix = format!("{base}user/{}/", quote(&self.user));
        if !self.server_name.is_empty() {
            prefix.push_str(&quote(&self.server_name));
            prefix.push('/');
        }
        prefix
    }

    /// The OAuth client id, which is also the server's cookie name: JupyterHub's `jupyterhub-user-<user>` for the
    /// default server. For a named server JupyterHub appends `-<server>`, so user `a`'s server `b` and user
    /// `a-b`'s default server would be one client; here the separator is `%2F`, a quoted `/`, which no quoted user
    /// name contains (a user name has no `/`, and its `%` is quoted), so every server has a client of its own.
    pub fn oauth_client_id(&self) -> String {
        self.client_id_with("%2F")
    }

    /// The id JupyterHub's scheme gives this server, which wasmhub used before [`Self::oauth_client_id`] became
    /// unambiguous; servers started then still hold it. The same as the current id for a default server.
    pub fn jupyterhub_oauth_client_id(&self) -> String {
        self.client_id_with("-")
    }

    /// `jupyterhub-user-<user>`, and for a named server `separator` and the server's name.
    fn client_id_with(&self, separator: &str) -> String {
        let mut client_id = format!("jupyterhub-user-{}", quote(&self.user));
        if !self.server_name.is_empty() {
            client_id.push_str(separator);
            client_id.push_str(&quote(&self.server_name));
        }
        client_id
    }

    /// Where the hub sends the browser back after OAuth: on the server's own host with `subdomain_host`.
    pub fn oauth_callback_url(&self) -> String {
        format!("{}{}oauth_callback", self.server_origin.as_deref().unwrap_or_default(), self.service_prefix())
    }

    /// Scopes a visitor needs (any one of them) to use this server.
    pub fn access_scopes(&self) -> Vec<String> {
        vec![
            format!("access:servers!server={}/{}", self.user, self.server_name),
            format!("access:servers!user={}", self.user),
        ]
    }
}

/// JupyterHub's environment for the server, except `JUPYTERHUB_SERVICE_URL`, which the spawner sets once it knows
/// where the server will listen.
pub fn singleuser_env(context: &SingleUserContext) -> BTreeMap<String, String> {
    let prefix = context.service_prefix();
    let scopes = serde_json::to_string(&context.access_scopes()).expect("strings serialise");
    let mut env = BTreeMap::new();
    let mut set = |name: &str, value: String| {
        env.insert(name.to_owned(), value);
    };
    set("JUPYTERHUB_API_TOKEN", context.api_token.clone());
    set("JPY_API_TOKEN", context.api_token.clone());
    set("JUPYTERHUB_API_URL", context.hub_api_url.trim_end_matches('/').to_owned());
    set(
        "JUPYTERHUB_ACTIVITY_URL",
        format!("{}/users/{}/activity", context.hub_api_url.trim_end_matches('/'), quote(&context.user)),
    );
    set("JUPYTERHUB_CLIENT_ID", context.oauth_client_id());
    set("JUPYTERHUB_OAUTH_CALLBACK_URL", context.oauth_callback_url());
    set("JUPYTERHUB_OAUTH_ACCESS_SCOPES", scopes.clone());
    set("JUPYTERHUB_OAUTH_SCOPES", scopes);
    set("JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES", "[]".to_owned());
    set("JUPYTERHUB_USER", context.user.clone());
    set("JUPYTERHUB_SERVER_NAME", context.server_name.clone());
    set("JUPYTERHUB_SERVICE_PREFIX", prefix);
    set("JUPYTERHUB_BASE_URL", context.base_url.clone());
    set("JUPYTERHUB_HOST", context.hub_origin.clone().unwrap_or_default());
    set("JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED", "0".to_owned());
    if let Some(default_url) = &context.default_url {
        set("JUPYTERHUB_DEFAULT_URL", default_url.clone());
    }
    if let Some(root_dir) = &context.root_dir {
        set("JUPYTERHUB_ROOT_DIR", root_dir.clone());
    }
    for (name, value) in &context.extra {
        set(name, value.clone());
    }
    env
}

/// Python's `urllib.parse.quote` with its default `safe='/'`, as JupyterHub uses for names in URLs.
fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' | b'/' => quoted.push(byte as char),
            _ => quoted.push_str(&format!("%{byte:02X}")),
        }
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> SingleUserContext {
        SingleUserContext {
            user: "alice".into(),
            api_token: "secret".into(),
            hub_api_url: "http://127.0.0.1:27381/hub/api".into(),
            base_url: "/".into(),
            ..SingleUserContext::default()
        }
    }

    #[test]
    fn default_server_gets_jupyterhubs_environment() {
        let env = singleuser_env(&alice());
        assert_eq!(env["JUPYTERHUB_API_URL"], "http://127.0.0.1:27381/hub/api");
        assert_eq!(env["JUPYTERHUB_ACTIVITY_URL"], "http://127.0.0.1:27381/hub/api/users/alice/activity");
        assert_eq!(env["JUPYTERHUB_CLIENT_ID"], "jupyterhub-user-alice");
        assert_eq!(env["JUPYTERHUB_OAUTH_CALLBACK_URL"], "/user/alice/oauth_callback");
        assert_eq!(env["JUPYTERHUB_SERVICE_PREFIX"], "/user/alice/");
        assert_eq!(
            env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"],
            r#"["access:servers!server=alice/","access:servers!user=alice"]"#
        );
        assert_eq!(env["JUPYTERHUB_SERVER_NAME"], "");
        assert_eq!(env["JPY_API_TOKEN"], "secret");
        assert!(!env.contains_key("JUPYTERHUB_SERVICE_URL"), "the spawner sets the bind URL");
    }

    #[test]
    fn named_servers_and_odd_names_are_quoted() {
        let context = SingleUserContext { user: "b@r".into(), server_name: "gpu 1".into(), ..alice() };
        let env = singleuser_env(&context);
        assert_eq!(env["JUPYTERHUB_CLIENT_ID"], "jupyterhub-user-b%40r%2Fgpu%201");
        assert_eq!(env["JUPYTERHUB_SERVICE_PREFIX"], "/user/b%40r/gpu%201/");
        assert_eq!(env["JUPYTERHUB_SERVER_NAME"], "gpu 1");
    }

    #[test]
    fn a_named_server_and_a_default_server_never_share_an_oauth_client() {
        let named = SingleUserContext { user: "a".into(), server_name: "b".into(), ..alice() };
        let dashed = SingleUserContext { user: "a-b".into(), ..alice() };
        let slashed = SingleUserContext { user: "a%2Fb".into(), ..alice() };
        assert_eq!(named.jupyterhub_oauth_client_id(), dashed.oauth_client_id(), "JupyterHub's scheme collides");
        let ids = [named.oauth_client_id(), dashed.oauth_client_id(), slashed.oauth_client_id()];
        assert_eq!(ids, ["jupyterhub-user-a%2Fb", "jupyterhub-user-a-b", "jupyterhub-user-a%252Fb"]);
        assert_eq!(dashed.jupyterhub_oauth_client_id(), dashed.oauth_client_id());
    }

    #[test]
    fn with_subdomains_the_callback_is_on_the_servers_host_and_login_on_the_hubs() {
        let context = SingleUserContext {
            hub_origin: Some("https://hub.example.org".into()),
            server_origin: Some("https://alice.hub.example.org".into()),
            ..alice()
        };
        let env = singleuser_env(&context);
        assert_eq!(env["JUPYTERHUB_HOST"], "https://hub.example.org");
        assert_eq!(env["JUPYTERHUB_OAUTH_CALLBACK_URL"], "https://alice.hub.example.org/user/alice/oauth_callback");
        assert_eq!(env["JUPYTERHUB_SERVICE_PREFIX"], "/user/alice/");
    }

    #[test]
    fn configured_environment_wins() {
        let mut context = alice();
        context.default_url = Some("/lab".into());
        context.extra.insert("JUPYTERHUB_HOST".into(), "https://hub.example".into());
        let env = singleuser_env(&context);
        assert_eq!(env["JUPYTERHUB_DEFAULT_URL"], "/lab");
        assert_eq!(env["JUPYTERHUB_HOST"], "https://hub.example");
    }
}
