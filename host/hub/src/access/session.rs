//! Browser sessions: the hub's cookies, the XSRF rule for cookie-authenticated requests, and where a `next=` may
//! send the browser (`handlers/base.py` `set_login_cookie`/`clear_login_cookie`/`get_next_url`, `_xsrf_utils.py`).
//!
//! `jupyterhub-hub-login` holds a generated token whose hash the store keeps with the user and the browser's
//! `jupyterhub-session-id`, so a stolen database yields no cookie. The XSRF token is derived from the login
//! cookie (a hash under a fixed label), which binds it to the session as JupyterHub's signed
//! `<session_id>:<cookie_id>` does: a cookie planted by a same-origin single-user server cannot forge it.

use axum::http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, SameSite};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use wasmhub_store::{LoginSession, StoreError};

use crate::Hub;
use crate::access::caller::{Caller, Credential, owner_scopes};
use crate::access::scopes::Owner;
use crate::error::ApiError;
use crate::urls::SubdomainHost;

pub(crate) const LOGIN_COOKIE: &str = "jupyterhub-hub-login";
pub(crate) const SESSION_COOKIE: &str = "jupyterhub-session-id";
pub(crate) const XSRF_COOKIE: &str = "_xsrf";
/// Cleared at logout like JupyterHub does, though this hub never sets it.
const SERVICES_COOKIE: &str = "jupyterhub-services";
/// How long an anonymous (login form) XSRF cookie lives, as in `_set_xsrf_cookie`.
const ANONYMOUS_XSRF_SECONDS: i64 = 3600;

/// A logged-in browser: the stored login and the XSRF token bound to it.
#[derive(Debug, Clone)]
pub(crate) struct BrowserSession {
    pub(crate) login: LoginSession,
    pub(crate) xsrf_token: String,
}

/// Every value of the cookie `name` in the request's `Cookie` headers, in order.
pub(crate) fn cookie_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    let mut values = Vec::new();
    for header in headers.get_all(COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for cookie in Cookie::split_parse(text).flatten() {
            if cookie.name() == name {
                values.push(cookie.value().to_owned());
            }
        }
    }
    values
}

/// The session's XSRF token: the login cookie hashed under a label, so the token reveals nothing of the cookie.
pub(crate) fn xsrf_for(login_cookie: &str) -> String {
    let digest = Sha256::new().chain_update(b"wasmhub _xsrf\0").chain_update(login_cookie.as_bytes()).finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

/// A fresh random value for cookies and ids, URL-safe.
pub(crate) fn random_token(bytes: usize) -> Result<String, ApiError> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|error| ApiError::internal(format!("no randomness: {error}")))?;
    Ok(URL_SAFE_NO_PAD.encode(buffer))
}

/// JupyterHub's session id: uuid4 hex.
pub(crate) fn new_session_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| ApiError::internal(format!("no randomness: {error}")))?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

pub(crate) fn same_token(presented: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// The browser's login, if its `jupyterhub-hub-login` cookie names an unexpired one.
pub(crate) async fn current_session(hub: &Hub, headers: &HeaderMap) -> Result<Option<BrowserSession>, ApiError> {
    // Several values can arrive (cookies on other paths); the first one that names a login wins.
    for value in cookie_values(headers, LOGIN_COOKIE).iter().take(4) {
        match hub.store().find_login_session(value).await {
            Ok(login) => return Ok(Some(BrowserSession { login, xsrf_token: xsrf_for(value) })),
            Err(StoreError::NotFound { .. } | StoreError::Invalid { .. }) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Ok(None)
}

/// The caller a browser session acts as: its user with all of the user's scopes, as cookie auth is in JupyterHub.
/// `None` when the user no longer exists.
pub(crate) async fn session_caller(hub: &Hub, session: &BrowserSession) -> Result<Option<Caller>, ApiError> {
    let owner = Owner::User(session.login.user.to_string());
    let (scopes, admin) = match owner_scopes(hub, &owner).await {
        Ok(found) => found,
        Err(error) if error.status == StatusCode::NOT_FOUND => return Ok(None),
        Err(error) => return Err(error),
    };
    let credential = Credential::Cookie { session_id: session.login.session_id.clone() };
    Ok(Some(Caller { owner: Some(owner), scopes: std::sync::Arc::new(scopes), admin, credential }))
}

/// The XSRF token a request presents: `_xsrf` in the query, or the `X-XSRFToken` or `X-CSRFToken` header.
pub(crate) fn presented_xsrf(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let from_query = uri.query().and_then(|query| {
        form_pairs(query.as_bytes()).into_iter().find(|(key, _)| key == "_xsrf").map(|(_, value)| value)
    });
    from_query.or_else(|| {
        ["x-xsrftoken", "x-csrftoken"]
            .iter()
            .find_map(|name| headers.get(*name).and_then(|value| value.to_str().ok()).map(str::to_owned))
    })
}

/// Form-encoded pairs; malformed input is no pairs rather than an error, as tornado's argument parsing is lenient.
pub(crate) fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

/// Whether a cookie-authenticated request must present the XSRF token (`_needs_check_xsrf`). Only page views and
/// other safe requests made by navigation are exempt; unlike JupyterHub 5.4's `no-cors` exemption
/// (CVE-2026-40864), a state-changing request is always checked.
fn needs_xsrf_check(method: &Method, headers: &HeaderMap) -> bool {
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let fetch_mode = headers.get("sec-fetch-mode").and_then(|value| value.to_str().ok()).unwrap_or("navigate");
    !(safe && matches!(fetch_mode, "navigate" | "no-cors" | "websocket"))
}

/// Resolves a request without a token header through its login cookie, or anonymous.
///
/// A state-changing request without a valid XSRF token is refused with tornado's 403; a safe one merely is not
/// authenticated by its cookie. Cookie-authenticated API writes must be JSON (or bodiless), as in JupyterHub, so
/// an HTML form on another site cannot post to the API.
pub(crate) async fn cookie_caller(parts: &Parts, hub: &Hub) -> Result<Caller, ApiError> {
    let Some(session) = current_session(hub, &parts.headers).await? else {
        return Ok(Caller::anonymous());
    };
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe
        && let Some(content_type) = parts.headers.get(CONTENT_TYPE)
        && !content_type.to_str().is_ok_and(|value| value.starts_with("application/json"))
    {
        tracing::warn!(path = %parts.uri.path(), "not accepting cookie auth for a non-JSON API request");
        return Ok(Caller::anonymous());
    }
    if needs_xsrf_check(&parts.method, &parts.headers) {
        let method = parts.method.as_str();
        let refusal = match presented_xsrf(&parts.uri, &parts.headers) {
            None => Some(format!("'_xsrf' argument missing from {method}")),
            Some(token) if !same_token(&token, &session.xsrf_token) => {
                Some(format!("XSRF cookie does not match {} argument", method.to_uppercase()))
            }
            Some(_) => None,
        };
        if let Some(message) = refusal {
            if safe {
                tracing::warn!(path = %parts.uri.path(), "not accepting cookie auth: {message}");
                return Ok(Caller::anonymous());
            }
            return Err(ApiError::new(StatusCode::FORBIDDEN, message));
        }
    }
    Ok(session_caller(hub, &session).await?.unwrap_or_else(Caller::anonymous))
}

/// The hub's pages live under `<base_url>hub/`.
pub(crate) fn hub_prefix(hub: &Hub) -> String {
    format!("{}hub/", hub.config().base_url)
}

fn cookie_header(cookie: Cookie<'_>) -> Option<HeaderValue> {
    HeaderValue::from_str(&cookie.to_string()).ok()
}

/// Whether the hub's cookies for this request are `Secure`: the public URL is https (`HubConfig::cookie_secure`),
/// or the request came over https, as the proxy in front says in `X-Forwarded-Proto` (its last value is the
/// proxy's own, as Tornado reads it with `xheaders`). A client that forges it only makes its own cookies `Secure`.
pub(crate) fn cookies_secure(hub: &Hub, headers: &HeaderMap) -> bool {
    let forwarded =
        |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).and_then(|value| value.rsplit(',').next());
    let scheme = forwarded("x-scheme").or_else(|| forwarded("x-forwarded-proto")).map(str::trim);
    hub.config().cookie_secure || scheme.is_some_and(|scheme| scheme.eq_ignore_ascii_case("https"))
}

/// The cookies a successful login sets: the login, the session id and the session's XSRF token.
pub(crate) fn login_cookies(hub: &Hub, login_cookie: &str, session_id: &str, secure: bool) -> Vec<HeaderValue> {
    let max_age = cookie::time::Duration::seconds(hub.config().cookie_max_age.as_secs() as i64);
    let hub_path = hub_prefix(hub);
    let login = Cookie::build((LOGIN_COOKIE, login_cookie.to_owned()))
        .path(hub_path.clone())
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(max_age)
        .build();
    // Unsigned and a browser-session cookie, as JupyterHub sets it; single-user servers read it.
    let mut session = Cookie::build((SESSION_COOKIE, session_id.to_owned()))
        .path(hub.config().base_url.clone())
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .build();
    // With subdomains, JupyterHub shares the session id (not a credential) with the users' hosts, whose servers
    // tie their OAuth logins to it; the login and XSRF cookies stay on the hub's host alone.
    if let Some(hosts) = &hub.config().subdomain_host {
        session.set_domain(hosts.domain.clone());
    }
    // Readable by scripts (not HttpOnly), like tornado's, so pages can send it back.
    let xsrf = Cookie::build((XSRF_COOKIE, xsrf_for(login_cookie)))
        .path(hub_path)
        .secure(secure)
        .same_site(SameSite::Lax)
        .build();
    [login, session, xsrf].into_iter().filter_map(cookie_header).collect()
}

/// An anonymous XSRF cookie for the login form, valid for an hour.
pub(crate) fn anonymous_xsrf_cookie(hub: &Hub, token: &str, secure: bool) -> Option<HeaderValue> {
    cookie_header(
        Cookie::build((XSRF_COOKIE, token.to_owned()))
            .path(hub_prefix(hub))
            .secure(secure)
            .same_site(SameSite::Lax)
            .max_age(cookie::time::Duration::seconds(ANONYMOUS_XSRF_SECONDS))
            .build(),
    )
}

/// Expired cookies for everything a login set, as `clear_login_cookie` sends.
pub(crate) fn cleared_cookies(hub: &Hub) -> Vec<HeaderValue> {
    let base_url = hub.config().base_url.clone();
    let hub_path = hub_prefix(hub);
    let services_path = format!("{base_url}services");
    [
        (LOGIN_COOKIE, hub_path.clone()),
        (SESSION_COOKIE, base_url),
        (XSRF_COOKIE, hub_path),
        (SERVICES_COOKIE, services_path),
    ]
    .into_iter()
    .filter_map(|(name, path)| {
        let mut cookie = Cookie::build((name, "")).path(path).build();
        if let Some(hosts) = hub.config().subdomain_host.as_ref().filter(|_| name == SESSION_COOKIE) {
            cookie.set_domain(hosts.domain.clone());
        }
        cookie.make_removal();
        cookie_header(cookie)
    })
    .collect()
}

pub(crate) fn set_cookies(headers: &mut HeaderMap, cookies: Vec<HeaderValue>) {
    for cookie in cookies {
        headers.append(SET_COOKIE, cookie);
    }
}

/// Where `next` may send the browser (`get_next_url`), or `None` if it leaves the hub's origin.
///
/// Accepted: a path with exactly one leading `/`, and absolute URLs to this very host, reduced to their path
/// (with leading slashes collapsed, CVE-2026-33709). Backslashes are escaped because browsers read them as `/`;
/// control characters and whitespace are refused because browsers drop tabs and newlines, turning `/\t/evil`
/// into `//evil`. Paths to single-user servers go through `/hub/user/`, which checks the server is running.
pub(crate) fn safe_next_url(
    next: &str,
    host: Option<&str>,
    base_url: &str,
    user_hosts: Option<&SubdomainHost>,
) -> Option<String> {
    if next.is_empty() || next.chars().any(|character| character.is_control() || character.is_whitespace()) {
        return None;
    }
    let mut next = next.replace('\\', "%5C");
    // With `subdomain_host`, an absolute URL on a user's host is ours too (JupyterHub's `get_next_url`).
    let user_host = user_hosts.and_then(|hosts| {
        let authority = ["http://", "https://", "//"].iter().find_map(|scheme| next.strip_prefix(scheme))?;
        let authority = authority.split('/').next().unwrap_or_default();
        hosts.is_user_host(authority).then(|| authority.to_owned())
    });
    if let Some(host) = user_host.as_deref().or(host).filter(|host| !host.is_empty()) {
        let own_origins = [format!("http://{host}/"), format!("https://{host}/"), format!("//{host}/")];
        let with_slash = format!("{next}/");
        if let Some(origin) = own_origins.iter().find(|origin| with_slash.starts_with(origin.as_str())) {
            let path = &next[(origin.len() - 1).min(next.len())..];
            next = format!("/{}", path.trim_start_matches('/'));
        }
    }
    if !next.starts_with('/') || next.starts_with("//") {
        return None;
    }
    let user_prefix = format!("{base_url}user/");
    if let Some(rest) = next.strip_prefix(&user_prefix) {
        next = format!("{base_url}hub/user/{rest}");
    }
    Some(next)
}

/// The request's `Host`, for recognising absolute URLs to ourselves.
pub(crate) fn request_host(headers: &HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::HOST).and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_urls_never_leave_the_hub() {
        let check = |next: &str| safe_next_url(next, Some("hub.example.org"), "/", None);
        // Every open-redirect form of auth.md §2.7.
        for evil in [
            "//evil.com",
            "///evil.com",
            "////evil.com/x",
            "https://evil.com/",
            "http://evil.com",
            "https:evil.com",
            "javascript:alert(1)",
            "\\\\evil.com",
            "\\/evil.com",
            "/\t/evil.com",
            "/\n/evil.com",
            " //evil.com",
            "https://hub.example.org@evil.com/",
            "https://hub.example.org.evil.com/",
            "//hub.example.org.evil.com/",
            "evil.com",
        ] {
            assert_eq!(check(evil), None, "{evil:?} must be refused");
        }
        assert_eq!(check("/\\evil.com").as_deref(), Some("/%5Cevil.com"));
        assert_eq!(check("https://hub.example.org//evil.com").as_deref(), Some("/evil.com"));
        assert_eq!(check("https://hub.example.org///evil.com/x?y=1").as_deref(), Some("/evil.com/x?y=1"));
        assert_eq!(check("http://hub.example.org").as_deref(), Some("/"));
        assert_eq!(check("//hub.example.org/hub/home").as_deref(), Some("/hub/home"));
        assert_eq!(check("/hub/home?x=1").as_deref(), Some("/hub/home?x=1"));
        assert_eq!(check("/user/alice/lab?a=b").as_deref(), Some("/hub/user/alice/lab?a=b"));
        assert_eq!(safe_next_url("/base/user/a/", None, "/base/", None).as_deref(), Some("/base/hub/user/a/"));
        // With subdomains, a user's host is ours; look-alikes are not.
        let hosts = SubdomainHost::parse("https://hub.example.org").unwrap();
        let on_hosts = |next: &str| safe_next_url(next, Some("hub.example.org"), "/", Some(&hosts));
        assert_eq!(on_hosts("https://alice.hub.example.org/user/alice/lab").as_deref(), Some("/hub/user/alice/lab"));
        for evil in
            ["https://alice.hub.example.org.evil.com/", "https://evilhub.example.org/", "//a.hub.example.org@evil.com/"]
        {
            assert_eq!(on_hosts(evil), None, "{evil:?} must be refused");
        }
    }

    #[test]
    fn xsrf_is_bound_to_the_login_cookie() {
        assert_eq!(xsrf_for("cookie-a"), xsrf_for("cookie-a"));
        assert_ne!(xsrf_for("cookie-a"), xsrf_for("cookie-b"));
        assert!(!xsrf_for("cookie-a").contains("cookie-a"));
        assert!(same_token(&xsrf_for("x"), &xsrf_for("x")));
        assert!(!same_token("", ""));
        let session_id = new_session_id().unwrap();
        assert_eq!(session_id.len(), 32);
        assert!(session_id.chars().all(|character| character.is_ascii_hexdigit()));
    }
}
