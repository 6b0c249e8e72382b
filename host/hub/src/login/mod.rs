//! `/hub/login` and `/hub/logout` (`handlers/login.py`), and the login pipeline behind them
//! (`auth.py get_authenticated_user`, `handlers/base.py auth_to_user`): the authenticator verifies the form, the
//! policy host's auth hook allows, renames or refuses, then the user is created and their admin flag and groups
//! follow the decision.
//!
//! A refusal at any step (wrong password, blocked, not allowed, an invalid name, a failing policy) changes nothing
//! and answers the same 403 form.

pub(crate) mod authenticator;
pub(crate) mod throttle;

use std::net::{IpAddr, SocketAddr};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::Utc;
use serde_json::json;
use wasmhub_model::{GroupName, UserName};
use wasmhub_policy::hooks::{AdminChange, AuthDecision, Hook, Identity};
use wasmhub_policy::{PolicyMode, native};
use wasmhub_store::{StoreError, User, UserChange};

use crate::Hub;
use crate::access::session::{self, BrowserSession};
use crate::access::{find_user, xsrf};
use crate::error::ApiError;
use crate::login::authenticator::LoginForm;
use crate::login::throttle::{LoginThrottle, ThrottleKey};
use crate::pages::redirects::{encode_query_value, found, next_url, page_error, query_value};
use crate::pages::render as pages;

/// Longer usernames are refused before anything processes or logs them (GHSA-p43p-whwx-q52h).
const MAX_USERNAME_BYTES: usize = 255;
const LOGIN_FAILED: &str = "Invalid username or password";

/// `/hub/login` and `/hub/logout`, merged into [`crate::router`].
pub(crate) fn routes() -> axum::Router<Hub> {
    axum::Router::new()
        .route("/hub/login", axum::routing::get(get_login).post(post_login))
        .route("/hub/logout", axum::routing::get(logout))
}

pub(crate) async fn get_login(
    State(hub): State<Hub>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let next = query_value(uri.query(), "next");
    if let Some(session) = session::current_session(&hub, &headers).await.map_err(page_error)?
        && let Some(user) = find_user(&hub, session.login.user.as_str()).await.map_err(page_error)?
    {
        return Ok(found(&next_url(&hub, &user, next.as_deref(), &headers).await.map_err(page_error)?));
    }
    // Reuse the browser's anonymous token while it is well formed, so two open login tabs both work.
    let existing = session::cookie_values(&headers, session::XSRF_COOKIE).into_iter().find(|value| {
        (16..=128).contains(&value.len())
            && value.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    });
    let (xsrf_token, new_cookie) = match existing {
        Some(token) => (token, false),
        None => (session::random_token(32).map_err(page_error)?, true),
    };
    let action = login_action(&hub, next.as_deref());
    let mut response = pages::login(&hub, StatusCode::OK, &action, &xsrf_token, "", None);
    if new_cookie
        && let Some(cookie) = session::anonymous_xsrf_cookie(&hub, &xsrf_token, session::cookies_secure(&hub, &headers))
    {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The client's address: the last `X-Forwarded-For` entry, which the proxy in front of the hub appended (the
/// header survives only from a trusted proxy, `forget_untrusted_forwarding`), else the connection's peer.
fn client_address(headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.rsplit(',').next())
        .next_back()
        .and_then(|last| last.trim().parse::<IpAddr>().ok());
    forwarded.or(peer.map(|peer| peer.ip()))
}

fn login_action(hub: &Hub, next: Option<&str>) -> String {
    format!("{}login?next={}", session::hub_prefix(hub), encode_query_value(next.unwrap_or_default()))
}

pub(crate) async fn post_login(
    State(hub): State<Hub>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Bytes,
) -> Result<Response, Response> {
    let fields = session::form_pairs(&body);
    let field = |key: &str| fields.iter().find(|(name, _)| name == key).map(|(_, value)| value.clone());
    let next = query_value(uri.query(), "next");
    let previous = session::current_session(&hub, &headers).await.map_err(page_error)?;
    // The login form posts the anonymous token from its cookie (double submit); a logged-in browser's cookie
    // holds its session's token.
    let mut expected = session::cookie_values(&headers, session::XSRF_COOKIE);
    expected.extend(previous.as_ref().map(|session| session.xsrf_token.clone()));
    xsrf::check_form(&fields, &uri, &headers, &expected.iter().map(String::as_str).collect::<Vec<_>>())
        .map_err(|refused| pages::error(StatusCode::FORBIDDEN, &refused.to_string()))?;
    let form =
        LoginForm { username: field("username").unwrap_or_default(), password: field("password").unwrap_or_default() };
    // Over-long names are refused unchecked; counting them by name would let a flood of huge names fill memory.
    let user_key = (form.username.len() <= MAX_USERNAME_BYTES).then(|| LoginThrottle::user_key(&form.username));
    let address = client_address(&headers, peer.map(|Extension(ConnectInfo(peer))| peer));
    let throttle_keys: Vec<ThrottleKey> = user_key.iter().cloned().chain(address.map(ThrottleKey::Address)).collect();
    let refuse = |status: StatusCode, message: &str| {
        let token = expected.first().cloned().unwrap_or_default();
        let shown_name: String = form.username.chars().take(MAX_USERNAME_BYTES).collect();
        let action = login_action(&hub, next.as_deref());
        pages::login(&hub, status, &action, &token, &shown_name, Some(message))
    };
    if let Some(wait) = hub.login_throttle().locked(&throttle_keys) {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        tracing::warn!(username = %form.username, "login refused: locked after repeated failures");
        let message = format!("Too many failed logins. Try again in {seconds} seconds.");
        let mut response = refuse(StatusCode::TOO_MANY_REQUESTS, &message);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return Err(response);
    }
    let Some(user) = log_in(&hub, &form).await.map_err(page_error)? else {
        hub.login_throttle().record_failure(&throttle_keys);
        return Err(refuse(StatusCode::FORBIDDEN, LOGIN_FAILED));
    };
    if let Some(user_key) = &user_key {
        hub.login_throttle().record_success(user_key);
    }
    if let Some(previous) = &previous {
        hub.store()
            .delete_login_sessions(&previous.login.session_id)
            .await
            .map_err(|error| page_error(error.into()))?;
    }
    // A fresh session id at every login, so an id planted before login names nothing afterwards.
    let session_id = session::new_session_id().map_err(page_error)?;
    let expires_at = Utc::now() + chrono::TimeDelta::from_std(hub.config().cookie_max_age).unwrap_or_default();
    let (_, cookie) = hub
        .store()
        .create_login_session(&user.name, &session_id, expires_at)
        .await
        .map_err(|error| page_error(error.into()))?;
    tracing::info!(user = %user.name, "user logged in");
    let mut response = found(&next_url(&hub, &user, next.as_deref(), &headers).await.map_err(page_error)?);
    session::set_cookies(
        response.headers_mut(),
        session::login_cookies(&hub, cookie.as_str(), &session_id, session::cookies_secure(&hub, &headers)),
    );
    Ok(response)
}

/// Logout: the session's OAuth tokens and login are deleted, but only for a real login, so a forged logout link
/// cannot revoke anything; the cookies are cleared either way. With `shutdown_on_logout` the user's running
/// servers are stopped first, and the answer waits for them, as JupyterHub's does.
pub(crate) async fn logout(State(hub): State<Hub>, headers: HeaderMap) -> Result<Response, Response> {
    if let Some(BrowserSession { login, .. }) = session::current_session(&hub, &headers).await.map_err(page_error)? {
        let store = hub.store();
        if hub.config().shutdown_on_logout {
            let servers = store.list_servers(Some(&login.user)).await.map_err(|error| page_error(error.into()))?;
            for server in servers {
                let name = format!("{}:{}", server.user, server.name.as_str());
                if let Err(error) = crate::spawns::stop_if_running(&hub, server, false).await {
                    tracing::warn!(server = %name, %error, "stopping a server at logout");
                }
            }
        }
        let revoked = store.delete_session_tokens(&login.session_id).await.map_err(|error| page_error(error.into()))?;
        store.delete_login_sessions(&login.session_id).await.map_err(|error| page_error(error.into()))?;
        tracing::info!(user = %login.user, revoked, "user logged out");
    }
    let mut response = found(&format!("{}login", session::hub_prefix(&hub)));
    session::set_cookies(response.headers_mut(), session::cleared_cookies(&hub));
    Ok(response)
}

/// The whole login pipeline; `None` is a refusal, which changed nothing.
pub(crate) async fn log_in(hub: &Hub, form: &LoginForm) -> Result<Option<User>, ApiError> {
    if form.username.len() > MAX_USERNAME_BYTES {
        return Ok(None);
    }
    let Some(verified) = hub.authenticator().authenticate(form).await else {
        tracing::warn!(username = %form.username, "failed login");
        return Ok(None);
    };
    let identity = Identity {
        provider: hub.authenticator().provider().to_owned(),
        subject: verified.username.clone(),
        username_hint: verified.username.clone(),
        claims: json!({ "name": verified.username, "admin": verified.admin }),
    };
    let (username, admin_change, groups) = match hub.policies().authenticate(identity.clone()).await {
        AuthDecision::Allow { username, admin, groups, .. } => (username, admin, groups),
        AuthDecision::Deny { reason } => match existing_user_allowed(hub, &identity).await? {
            Some(allowed) => allowed,
            None => {
                tracing::warn!(username = %form.username, %reason, "login refused");
                return Ok(None);
            }
        },
    };
    let Ok(name) = UserName::parse(&username) else {
        tracing::warn!(%username, "login refused: the auth hook returned an invalid username");
        return Ok(None);
    };
    let store = hub.store();
    let user = match store.get_user(&name).await {
        Ok(user) => user,
        Err(StoreError::NotFound { .. }) => match store.create_user(&name, false).await {
            Ok(user) => user,
            Err(StoreError::Conflict { .. }) => store.get_user(&name).await?,
            Err(other) => return Err(other.into()),
        },
        Err(other) => return Err(other.into()),
    };
    let admin = resulting_admin(user.admin, verified.admin, admin_change);
    if admin != user.admin {
        store.update_user(&name, &UserChange { name: None, admin: Some(admin) }).await?;
    }
    if let Some(groups) = groups {
        apply_groups(hub, &user, &groups).await?;
    }
    Ok(Some(store.get_user(&name).await?))
}

/// `allow_existing_users`: a name the native rules refused only for not being allowed passes if the user is in
/// the database. A policy file bound to the auth hook decides alone, so this never overrides one.
async fn existing_user_allowed(
    hub: &Hub,
    identity: &Identity,
) -> Result<Option<(String, AdminChange, Option<Vec<String>>)>, ApiError> {
    if !hub.config().allow_existing_users || policy_file_decides_logins(hub) {
        return Ok(None);
    }
    let settings = native::AuthSettings { allow_all: true, ..hub.config().auth.clone() };
    // With `allow_all`, a refusal left is a blocked or invalid name.
    let Ok(AuthDecision::Allow { username, admin, groups, .. }) = native::authenticate(&settings, identity) else {
        return Ok(None);
    };
    let Ok(name) = UserName::parse(&username) else { return Ok(None) };
    Ok(find_user(hub, name.as_str()).await?.map(|_| (username, admin, groups)))
}

fn policy_file_decides_logins(hub: &Hub) -> bool {
    hub.policies().host().status().iter().any(|status| {
        status.hook == Some(Hook::Auth) && status.mode == Some(PolicyMode::Enforce) && status.active_version.is_some()
    })
}

/// JupyterHub's order: an authenticator's explicit `admin` is kept (`is_admin` runs only when it is `None`), the
/// admin rules grant or revoke, and otherwise the stored flag stays.
fn resulting_admin(stored: bool, claimed: Option<bool>, change: AdminChange) -> bool {
    match change {
        AdminChange::Revoke => false,
        AdminChange::Grant => claimed != Some(false),
        AdminChange::LeaveUnchanged => claimed.unwrap_or(stored),
    }
}

/// `manage_groups`: the user ends up in exactly the decided groups, which are created when missing.
async fn apply_groups(hub: &Hub, user: &User, wanted: &[String]) -> Result<(), ApiError> {
    let store = hub.store();
    let mut wanted_names = Vec::new();
    for group in wanted {
        match GroupName::parse(group) {
            Ok(name) => wanted_names.push(name),
            Err(_) => tracing::warn!(%group, "ignoring an invalid group name from the auth hook"),
        }
    }
    let member = std::slice::from_ref(&user.name);
    for group in &user.groups {
        if !wanted_names.contains(group) {
            store.remove_group_members(group, member).await?;
        }
    }
    for group in &wanted_names {
        if user.groups.contains(group) {
            continue;
        }
        match store.create_group(group).await {
            Ok(_) | Err(StoreError::Conflict { .. }) => {}
            Err(other) => return Err(other.into()),
        }
        store.add_group_members(group, member).await?;
    }
    Ok(())
}

#[cfg(test)]
mod flow_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_admin_answer_wins_over_granting_but_not_over_revoking() {
        use AdminChange::*;
        assert!(!resulting_admin(true, Some(false), LeaveUnchanged));
        assert!(resulting_admin(true, None, LeaveUnchanged));
        assert!(resulting_admin(false, None, Grant));
        assert!(!resulting_admin(false, Some(false), Grant));
        assert!(!resulting_admin(true, Some(true), Revoke));
    }
}
