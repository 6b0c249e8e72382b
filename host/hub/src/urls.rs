//! Where a server lives: its public URL prefix (names quoted as JupyterHub quotes them), its proxy route (names as
//! they are, since the proxy matches decoded paths) and its name in logs. Pages, the API and spawns all build
//! these, so they live here rather than with any one of them.
//!
//! With `JupyterHub.subdomain_host` ([`SubdomainHost`]) each user's servers live on a host of their own,
//! `<user>.<domain>` (JupyterHub's `subdomain_hook_legacy`): their URLs carry that host and their routes start
//! with it, for a proxy that routes by host.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Python's `quote(name, safe='@~')` (`hub-contract.md` §9.12).
pub(crate) const URL_NAME: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~').remove(b'@');

pub(crate) fn quote_name(name: &str) -> String {
    utf8_percent_encode(name, URL_NAME).to_string()
}

/// `JupyterHub.subdomain_host`, parsed: the hub's own public scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubdomainHost {
    pub scheme: String,
    /// The hub's host, lowercase; users' hosts are `<user>.<domain>`.
    pub domain: String,
    pub port: Option<u16>,
}

impl SubdomainHost {
    /// `https://hub.example.org` or `http://hub.test:8000`, without a path.
    pub fn parse(text: &str) -> Result<SubdomainHost, String> {
        let invalid = || format!("{text:?} is not a scheme and host such as https://hub.example.org");
        let (scheme, rest) = text.split_once("://").ok_or_else(invalid)?;
        if scheme != "http" && scheme != "https" {
            return Err(invalid());
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
            return Err(invalid());
        }
        let (domain, port) = match authority.rsplit_once(':') {
            Some((domain, port)) => (domain, Some(port.parse::<u16>().map_err(|_| invalid())?)),
            None => (authority, None),
        };
        let valid_domain = !domain.is_empty()
            && domain.split('.').all(|label| {
                !label.is_empty() && label.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
            });
        if !valid_domain {
            return Err(invalid());
        }
        Ok(SubdomainHost { scheme: scheme.to_owned(), domain: domain.to_ascii_lowercase(), port })
    }

    /// `scheme://host[:port]` for `host`.
    fn origin(&self, host: &str) -> String {
        match self.port {
            Some(port) => format!("{}://{host}:{port}", self.scheme),
            None => format!("{}://{host}", self.scheme),
        }
    }

    /// The hub's own origin, `https://hub.example.org`.
    pub(crate) fn hub_origin(&self) -> String {
        self.origin(&self.domain)
    }

    /// `user`'s host: JupyterHub's `_dns_quote(user).<domain>`.
    pub(crate) fn user_domain(&self, user: &str) -> String {
        format!("{}.{}", dns_label(user), self.domain)
    }

    /// `user`'s origin, `https://alice.hub.example.org`.
    pub(crate) fn user_origin(&self, user: &str) -> String {
        self.origin(&self.user_domain(user))
    }

    /// Whether `host` (without port) is a user's host under this domain, not the hub's own.
    pub(crate) fn is_user_host(&self, host: &str) -> bool {
        let host = host.split(':').next().unwrap_or_default().to_ascii_lowercase();
        host.strip_suffix(&self.domain).is_some_and(|label| label.len() > 1 && label.ends_with('.'))
    }
}

/// JupyterHub's `_dns_quote`: the name's UTF-8 bytes with ASCII letters lowercased, every byte but letters,
/// digits, `-` and `.` written as `_` and two hex digits.
fn dns_label(name: &str) -> String {
    let mut label = String::new();
    for byte in name.bytes().map(|byte| byte.to_ascii_lowercase()) {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.' {
            label.push(byte as char);
        } else {
            label.push_str(&format!("_{byte:02x}"));
        }
    }
    label
}

/// A server's public URL: [`server_prefix`], on its user's host with `subdomain_host`.
pub(crate) fn server_url(config: &crate::HubConfig, user: &str, server: &str) -> String {
    let prefix = server_prefix(&config.base_url, user, server);
    match &config.subdomain_host {
        Some(host) => format!("{}{prefix}", host.user_origin(user)),
        None => prefix,
    }
}

/// `/user/<name>/` or `/user/<name>/<server>/` under the base URL: the server's URL and its route.
pub(crate) fn server_prefix(base_url: &str, user: &str, server: &str) -> String {
    let mut prefix = format!("{base_url}user/{}/", quote_name(user));
    if !server.is_empty() {
        prefix.push_str(&quote_name(server));
        prefix.push('/');
    }
    prefix
}

/// The proxy route of a server. The proxy matches percent-decoded request paths, so the key holds the names as
/// they are, while URLs shown to clients quote them ([`server_prefix`]). With `subdomain_host` the key starts with
/// the user's host, as a proxy routing by host (CHP's `--host-routing`) keys it.
pub(crate) fn route_path(config: &crate::HubConfig, user: &str, server: &str) -> String {
    let base_url = &config.base_url;
    let path =
        if server.is_empty() { format!("{base_url}user/{user}/") } else { format!("{base_url}user/{user}/{server}/") };
    match &config.subdomain_host {
        Some(host) => format!("/{}{path}", host.user_domain(user)),
        None => path,
    }
}

/// JupyterHub's `spawner._log_name`: `alice` or `alice:gpu`.
pub(crate) fn log_name(user: &str, server: &str) -> String {
    if server.is_empty() { user.to_owned() } else { format!("{user}:{server}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base_url: &str, subdomain_host: Option<&str>) -> crate::HubConfig {
        crate::HubConfig {
            base_url: base_url.into(),
            subdomain_host: subdomain_host.map(|host| SubdomainHost::parse(host).unwrap()),
            ..crate::HubConfig::default()
        }
    }

    #[test]
    fn routes_hold_decoded_names_and_urls_quoted_ones() {
        assert_eq!(route_path(&config("/", None), "a b", ""), "/user/a b/");
        assert_eq!(route_path(&config("/base/", None), "alice", "gpu"), "/base/user/alice/gpu/");
        assert_eq!(server_url(&config("/", None), "alice", ""), "/user/alice/");
        assert_eq!(server_prefix("/", "a b", "x/y"), "/user/a%20b/x%2Fy/");
        assert_eq!(server_prefix("/", "a@b~c", ""), "/user/a@b~c/");
    }

    #[test]
    fn with_subdomain_host_each_user_has_a_host_as_jupyterhub_names_it() {
        let with_port = config("/", Some("http://Hub.Test:8000/"));
        assert_eq!(route_path(&with_port, "alice", ""), "/alice.hub.test/user/alice/");
        assert_eq!(route_path(&with_port, "Bob", "gpu"), "/bob.hub.test/user/Bob/gpu/");
        assert_eq!(server_url(&with_port, "alice", "gpu"), "http://alice.hub.test:8000/user/alice/gpu/");
        // JupyterHub's _dns_quote: `_` and the hex of each byte that is not a letter, digit, '-' or '.'.
        assert_eq!(server_url(&with_port, "a.b_c@d", ""), "http://a.b_5fc_40d.hub.test:8000/user/a.b_c@d/");
        let host = with_port.subdomain_host.as_ref().unwrap();
        assert_eq!(host.hub_origin(), "http://hub.test:8000");
        assert!(host.is_user_host("alice.hub.test:8000") && host.is_user_host("ALICE.hub.test"));
        assert!(
            !host.is_user_host("hub.test:8000")
                && !host.is_user_host("evilhub.test")
                && !host.is_user_host("127.0.0.1")
        );
        for bad in [
            "hub.test",
            "ftp://hub.test",
            "https://hub.test/path",
            "https://",
            "https://a@hub.test",
            "https://hub.test:x",
        ] {
            assert!(SubdomainHost::parse(bad).is_err(), "{bad}");
        }
    }
}
