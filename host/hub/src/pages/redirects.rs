//! Redirects every page needs: `302`s, `next=` (only ever to this hub, `get_next_url`), the way to the login page,
//! and errors shown as pages.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use wasmhub_model::ServerName;
use wasmhub_store::{StoreError, User};

use crate::Hub;
use crate::access::session;
use crate::error::ApiError;
use crate::pages::render as pages;
use crate::urls::server_url;

/// A `302 Found` to `location`, as tornado's `redirect`.
pub(crate) fn found(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = header::HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// What Python's `urlencode` leaves alone in a query value: letters, digits and `-._~`.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes a query value (`next=`, `state=`).
pub(crate) fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// The value of `key` in a query string.
pub(crate) fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    let query = query?;
    session::form_pairs(query.as_bytes()).into_iter().find(|(name, _)| name == key).map(|(_, value)| value)
}

/// `/hub/login?next=<this request>`, where pages send anonymous visitors.
pub(crate) fn login_redirect(hub: &Hub, uri: &axum::http::Uri) -> Response {
    let path_and_query = uri.path_and_query().map(|value| value.as_str()).unwrap_or("/");
    found(&format!("{}login?next={}", session::hub_prefix(hub), encode_query_value(path_and_query)))
}

/// Where a logged-in browser goes without a (safe) `next` (`get_next_url`'s default).
pub(crate) async fn default_next_url(hub: &Hub, user: &User) -> Result<String, ApiError> {
    let config = hub.config();
    if let Some(url) = &config.hub_default_url {
        return Ok(url.clone());
    }
    let prefix = session::hub_prefix(hub);
    if !config.redirect_to_server {
        return Ok(format!("{prefix}home"));
    }
    let active = match hub.store().get_server(&user.name, &ServerName::default_server()).await {
        Ok(server) => server.state.is_active(),
        Err(StoreError::NotFound { .. }) => false,
        Err(other) => return Err(other.into()),
    };
    Ok(if active { server_url(config, user.name.as_str(), "") } else { format!("{prefix}spawn") })
}

/// `next` if it is safe, else the default for `user`.
pub(crate) async fn next_url(
    hub: &Hub,
    user: &User,
    next: Option<&str>,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    let host = session::request_host(headers);
    match next.and_then(|next| {
        session::safe_next_url(next, host, &hub.config().base_url, hub.config().subdomain_host.as_ref())
    }) {
        Some(url) => Ok(url),
        None => {
            if let Some(refused) = next.filter(|next| !next.is_empty()) {
                tracing::warn!(next = %refused.chars().take(200).collect::<String>(), "disallowing redirect outside JupyterHub");
            }
            default_next_url(hub, user).await
        }
    }
}

/// An internal failure on a page: the detail was logged by `ApiError::internal`; the page says no more.
pub(crate) fn page_error(error: ApiError) -> Response {
    pages::error(error.status, &error.message)
}
