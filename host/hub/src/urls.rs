//! Where a server lives: its public URL prefix (names quoted as JupyterHub quotes them), its proxy route (names as
//! they are, since the proxy matches decoded paths) and its name in logs. Pages, the API and spawns all build
//! these, so they live here rather than with any one of them.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Python's `quote(name, safe='@~')` (`hub-contract.md` §9.12).
pub(crate) const URL_NAME: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~').remove(b'@');

pub(crate) fn quote_name(name: &str) -> String {
    utf8_percent_encode(name, URL_NAME).to_string()
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
/// they are, while URLs shown to clients quote them ([`server_prefix`]).
pub(crate) fn route_path(base_url: &str, user: &str, server: &str) -> String {
    if server.is_empty() { format!("{base_url}user/{user}/") } else { format!("{base_url}user/{user}/{server}/") }
}

/// JupyterHub's `spawner._log_name`: `alice` or `alice:gpu`.
pub(crate) fn log_name(user: &str, server: &str) -> String {
    if server.is_empty() { user.to_owned() } else { format!("{user}:{server}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_hold_decoded_names_and_urls_quoted_ones() {
        assert_eq!(route_path("/", "a b", ""), "/user/a b/");
        assert_eq!(route_path("/base/", "alice", "gpu"), "/base/user/alice/gpu/");
        assert_eq!(server_prefix("/", "a b", "x/y"), "/user/a%20b/x%2Fy/");
        assert_eq!(server_prefix("/", "a@b~c", ""), "/user/a@b~c/");
    }
}
