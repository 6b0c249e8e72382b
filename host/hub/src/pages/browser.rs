//! The pages a browser moves through around its server (`handlers/pages.py`, `handlers/base.py`): `/hub/`,
//! `/hub/home`, `/hub/spawn[/user[/server]]`, `/hub/spawn-pending/...`, `/hub/user/...` (`UserUrlHandler`, where
//! the proxy sends requests for servers it has no route for) and `/hub/user-redirect/...`.
//!
//! Also `/hub/token` and `/hub/admin`, whose scripts do their work through the REST API.
//!
//! Every page needs a login; anonymous browsers go to `/hub/login?next=<this page>`. Pages act as the logged-in
//! user with their full scopes, through the same checks as the API.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use minijinja::context;
use percent_encoding::percent_decode_str;
use serde_json::json;
use wasmhub_model::{ServerName, SpawnState, UserName};
use wasmhub_store::{Server, StoreError, User};

use crate::Hub;
use crate::access::caller::Caller;
use crate::access::scopes::Resource;
use crate::access::session::{self, BrowserSession};
use crate::access::{group_names, xsrf};
use crate::error::ApiError;
use crate::pages::profile_form;
use crate::pages::redirects::{default_next_url, encode_query_value, found, login_redirect, page_error, query_value};
use crate::pages::render::{self as pages, Visitor};
use crate::spawns::{self, StartError, StartOutcome, profiles};
use crate::urls::{quote_name, server_url};

/// JupyterHub's `user_redirect_limit`: more redirects back to a server than this is a loop.
const REDIRECT_LIMIT: u32 = 4;
/// The spawn page waits this long for a quick spawn before showing the pending page (`SpawnHandler`).
const SPAWN_PAGE_WAIT: Duration = Duration::from_secs(1);

/// The browser-facing routes but login and logout, merged into [`crate::router`].
pub(crate) fn routes() -> Router<Hub> {
    Router::new()
        .route("/", get(|| async { found("/hub/") }))
        .route("/hub", get(|| async { (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/hub/")]).into_response() }))
        .route("/hub/", get(hub_root))
        .route("/hub/home", get(home))
        .route("/hub/spawn", get(spawn_page).post(spawn_form))
        .route("/hub/spawn/{*target}", get(spawn_page).post(spawn_form))
        .route("/hub/token", get(token_page))
        .route("/hub/admin", get(admin_page))
        .route("/hub/spawn-pending/{*target}", get(spawn_pending))
        .route("/hub/user/{*rest}", any(user_url))
        .route("/hub/user-redirect/", get(user_redirect))
        .route("/hub/user-redirect/{*rest}", get(user_redirect))
}

/// The logged-in browser, its caller and its user, or the redirect to the login page.
async fn logged_in(hub: &Hub, uri: &Uri, headers: &HeaderMap) -> Result<(BrowserSession, Caller, User), Response> {
    let session = session::current_session(hub, headers).await.map_err(page_error)?;
    let Some(session) = session else { return Err(login_redirect(hub, uri)) };
    let caller = session::session_caller(hub, &session).await.map_err(page_error)?;
    let user = match hub.store().get_user(&session.login.user).await {
        Ok(user) => user,
        Err(StoreError::NotFound { .. }) => return Err(login_redirect(hub, uri)),
        Err(other) => return Err(page_error(other.into())),
    };
    match caller {
        Some(caller) => Ok((session, caller, user)),
        None => Err(login_redirect(hub, uri)),
    }
}

async fn hub_root(State(hub): State<Hub>, OriginalUri(uri): OriginalUri, headers: HeaderMap) -> Response {
    match logged_in(&hub, &uri, &headers).await {
        Ok((_, _, user)) => match default_next_url(&hub, &user).await {
            Ok(url) => found(&url),
            Err(error) => page_error(error),
        },
        Err(response) => response,
    }
}

async fn find_server(hub: &Hub, user: &UserName, server: &str) -> Result<Option<Server>, ApiError> {
    let Ok(name) = ServerName::parse(server) else { return Ok(None) };
    match hub.store().get_server(user, &name).await {
        Ok(server) => Ok(Some(server)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

/// What `home.html` shows of one server; `api_path` is the REST path under `/hub/api` that stops it.
fn server_context(hub: &Hub, user: &str, server_name: &str, server: Option<&Server>) -> minijinja::Value {
    let state = server.map(|server| server.state);
    let quoted = quote_name(user);
    let api_path = if server_name.is_empty() {
        format!("/users/{quoted}/server")
    } else {
        format!("/users/{quoted}/servers/{}", quote_name(server_name))
    };
    context! {
        name => server_name,
        ready => state == Some(SpawnState::Running),
        pending => matches!(state, Some(SpawnState::Requested | SpawnState::Starting | SpawnState::Stopping)),
        url => server_url(hub.config(), user, server_name),
        spawn_url => spawn_url(hub, user, server_name),
        pending_url => pending_url(hub, user, server_name, None),
        api_path => api_path,
        last_activity => server.and_then(|server| server.last_activity).map(|time| time.to_string()),
    }
}

async fn home(State(hub): State<Hub>, OriginalUri(uri): OriginalUri, headers: HeaderMap) -> Result<Response, Response> {
    let (session, caller, user) = logged_in(&hub, &uri, &headers).await?;
    let servers = hub.store().list_servers(Some(&user.name)).await.map_err(|error| page_error(error.into()))?;
    let name = user.name.as_str();
    let default = servers.iter().find(|server| server.name.as_str().is_empty());
    let named: Vec<minijinja::Value> = servers
        .iter()
        .filter(|server| !server.name.as_str().is_empty())
        .map(|server| server_context(&hub, name, server.name.as_str(), Some(server)))
        .collect();
    let visitor = Visitor { user: &user, caller: &caller, xsrf_token: &session.xsrf_token };
    let context = context! {
        page => "home",
        default_server => server_context(&hub, name, "", default),
        named_servers => named,
        allow_named_servers => hub.config().allow_named_servers,
        spawn_prefix => format!("{}spawn/{}", session::hub_prefix(&hub), quote_name(name)),
        ..pages::base_context(&hub, Some(&visitor)),
    };
    Ok(pages::render(&hub, StatusCode::OK, "home.html", context))
}

/// `/hub/token`: the page's script lists, requests and revokes tokens through the REST API.
async fn token_page(
    State(hub): State<Hub>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let (session, caller, user) = logged_in(&hub, &uri, &headers).await?;
    let visitor = Visitor { user: &user, caller: &caller, xsrf_token: &session.xsrf_token };
    let context = context! { page => "token", ..pages::base_context(&hub, Some(&visitor)) };
    Ok(pages::render(&hub, StatusCode::OK, "token.html", context))
}

/// `/hub/admin` (scope `admin-ui`). Each action of its script is checked again by the API with the admin's own
/// scopes, so the page grants nothing by itself.
async fn admin_page(
    State(hub): State<Hub>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let (session, caller, user) = logged_in(&hub, &uri, &headers).await?;
    if !caller.scopes.has_unfiltered("admin-ui") {
        return Err(pages::error(
            StatusCode::FORBIDDEN,
            "Action is not authorized with current scopes; requires any of [admin-ui]",
        ));
    }
    let visitor = Visitor { user: &user, caller: &caller, xsrf_token: &session.xsrf_token };
    let context = context! {
        page => "admin",
        allow_named_servers => hub.config().allow_named_servers,
        servers_share_hub_user => hub.config().servers_share_hub_user,
        ..pages::base_context(&hub, Some(&visitor)),
    };
    Ok(pages::render(&hub, StatusCode::OK, "admin.html", context))
}

/// `<user>[/<server>]` from the path after a page's prefix, names percent-decoded.
fn user_and_server(target: &str) -> Option<(String, String)> {
    let mut parts = target.trim_end_matches('/').splitn(2, '/');
    let decode = |part: &str| percent_decode_str(part).decode_utf8().ok().map(|text| text.into_owned());
    let user = decode(parts.next()?)?;
    let server = decode(parts.next().unwrap_or_default())?;
    (!user.is_empty() && !server.contains('/')).then_some((user, server))
}

/// `/hub/spawn-pending/<user>[/<server>]`, keeping the query (`next`).
fn pending_url(hub: &Hub, user: &str, server: &str, query: Option<&str>) -> String {
    let mut url = format!("{}spawn-pending/{}", session::hub_prefix(hub), quote_name(user));
    if !server.is_empty() {
        url.push('/');
        url.push_str(&quote_name(server));
    }
    if let Some(query) = query.filter(|query| !query.is_empty()) {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// Where a ready server's page goes: a safe `next`, else the server.
fn ready_url(hub: &Hub, user: &str, server: &str, uri: &Uri, headers: &HeaderMap) -> String {
    let next = query_value(uri.query(), "next");
    next.and_then(|next| {
        session::safe_next_url(
            &next,
            session::request_host(headers),
            &hub.config().base_url,
            hub.config().subdomain_host.as_ref(),
        )
    })
    .unwrap_or_else(|| server_url(hub.config(), user, server))
}

/// The target user and server of a page, after the caller's scope check on it.
async fn page_target(
    hub: &Hub,
    caller: &Caller,
    me: &User,
    target: Option<&str>,
    scope: &str,
) -> Result<(User, String), Response> {
    let (user_name, server_name) = match target {
        None => (me.name.to_string(), String::new()),
        Some(target) => user_and_server(target).ok_or_else(|| pages::error(StatusCode::NOT_FOUND, "No such user"))?,
    };
    let user = crate::access::find_user(hub, &user_name).await.map_err(page_error)?;
    let groups = group_names(user.as_ref());
    let resource = Resource::Server { user: &user_name, server: &server_name, groups: &groups };
    caller.require(&[scope], &resource).map_err(page_error)?;
    let user = user.ok_or_else(|| pages::error(StatusCode::NOT_FOUND, &format!("No such user {user_name}")))?;
    if !server_name.is_empty() && !hub.config().allow_named_servers {
        return Err(pages::error(StatusCode::BAD_REQUEST, "Named servers are not enabled."));
    }
    Ok((user, server_name))
}

/// The target of a spawn page from its path: `/hub/spawn[/<user>[/<server>]]`.
fn spawn_target<'a>(hub: &Hub, uri: &'a Uri) -> Option<&'a str> {
    let spawn_prefix = format!("{}spawn", session::hub_prefix(hub));
    uri.path().strip_prefix(&spawn_prefix).map(|rest| rest.trim_start_matches('/')).filter(|rest| !rest.is_empty())
}

/// `/hub/spawn[/<user>[/<server>]]`: with profiles, the options form (or, with `?profile=...`, a spawn with
/// those options, as `options_from_query`); without, starts the server and sends the browser to it, or to the
/// pending page if it is not up within a second.
async fn spawn_page(
    State(hub): State<Hub>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let (session, caller, me) = logged_in(&hub, &uri, &headers).await?;
    let (user, server_name) = page_target(&hub, &caller, &me, spawn_target(&hub, &uri), "servers").await?;
    if let Some(response) = already_started(&hub, &user, &server_name, &uri, &headers).await? {
        return Ok(response);
    }
    let mut options = serde_json::Map::new();
    if !hub.config().profiles.is_empty() {
        let query_options =
            profile_form::options_from_form(&session::form_pairs(uri.query().unwrap_or_default().as_bytes()));
        if query_options.is_empty() {
            let visitor = Visitor { user: &me, caller: &caller, xsrf_token: &session.xsrf_token };
            return Ok(spawn_form_page(&hub, &visitor, &user, &server_name, &uri, None).await);
        }
        options = query_options;
    }
    start_and_redirect(&hub, &user, &server_name, options, &uri, &headers).await.map_err(|refused| match refused {
        SpawnPageError::ProfileRefused(reason) => page_error(ApiError::bad_request(reason)),
        SpawnPageError::Page(response) => response,
    })
}

/// The options form's POST (`SpawnHandler.post`): KubeSpawner's fields become `user_options`; a refused choice
/// shows the form again with the reason.
async fn spawn_form(
    State(hub): State<Hub>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Response> {
    let (session, caller, me) = logged_in(&hub, &uri, &headers).await?;
    let fields = session::form_pairs(&body);
    xsrf::check_form(&fields, &uri, &headers, &[&session.xsrf_token])
        .map_err(|refused| pages::error(StatusCode::FORBIDDEN, &refused.to_string()))?;
    let (user, server_name) = page_target(&hub, &caller, &me, spawn_target(&hub, &uri), "servers").await?;
    if let Some(response) = already_started(&hub, &user, &server_name, &uri, &headers).await? {
        return Ok(response);
    }
    let options = profile_form::options_from_form(&fields);
    match start_and_redirect(&hub, &user, &server_name, options, &uri, &headers).await {
        Err(SpawnPageError::ProfileRefused(reason)) => {
            let visitor = Visitor { user: &me, caller: &caller, xsrf_token: &session.xsrf_token };
            let mut response = spawn_form_page(&hub, &visitor, &user, &server_name, &uri, Some(&reason)).await;
            *response.status_mut() = StatusCode::BAD_REQUEST;
            Ok(response)
        }
        Err(SpawnPageError::Page(response)) => Err(response),
        Ok(response) => Ok(response),
    }
}

/// `spawn.html` with the profiles `user` may start.
async fn spawn_form_page(
    hub: &Hub,
    visitor: &Visitor<'_>,
    user: &User,
    server_name: &str,
    uri: &Uri,
    error: Option<&str>,
) -> Response {
    let visible = profiles::visible(hub, user).await;
    if visible.is_empty() {
        return pages::error(StatusCode::FORBIDDEN, "No profile is available to you; ask an administrator.");
    }
    let action = uri.path_and_query().map(|value| value.as_str()).unwrap_or_default();
    let for_user = (user.name != visitor.user.name).then(|| user.name.to_string());
    let context = context! {
        page => "spawn",
        url => action,
        profiles => profile_form::for_template(&visible),
        for_user => for_user,
        server_name => server_name,
        error_message => error,
        ..pages::base_context(hub, Some(visitor)),
    };
    pages::render(hub, StatusCode::OK, "spawn.html", context)
}

/// A running or starting server needs no spawn: the redirect to it or to its pending page.
async fn already_started(
    hub: &Hub,
    user: &User,
    server_name: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<Response>, Response> {
    let name = user.name.as_str();
    let server = find_server(hub, &user.name, server_name).await.map_err(page_error)?;
    Ok(match server.map(|server| server.state) {
        Some(SpawnState::Running) => Some(found(&ready_url(hub, name, server_name, uri, headers))),
        Some(SpawnState::Requested | SpawnState::Starting | SpawnState::Stopping) => {
            Some(found(&pending_url(hub, name, server_name, pending_query(uri).as_deref())))
        }
        Some(SpawnState::Stopped | SpawnState::Failed) | None => None,
    })
}

/// The query kept on the way to the pending page: `next` only (never `_xsrf` or the form's options).
fn pending_query(uri: &Uri) -> Option<String> {
    query_value(uri.query(), "next").map(|next| format!("next={}", encode_query_value(&next)))
}

/// Why the spawn form's start did not redirect: a refused profile shows the form again, anything else is a page.
enum SpawnPageError {
    ProfileRefused(String),
    Page(Response),
}

/// Starts the server with `options` through the spawn service and sends the browser to it, or to the pending
/// page if it is not up within a second; a refused start is an error page.
async fn start_and_redirect(
    hub: &Hub,
    user: &User,
    server_name: &str,
    options: serde_json::Map<String, serde_json::Value>,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, SpawnPageError> {
    let name = user.name.as_str();
    let page = |error: ApiError| SpawnPageError::Page(page_error(error));
    let server_key = ServerName::parse(server_name)
        .map_err(|_| page(ApiError::bad_request(format!("Invalid server_name: {server_name}"))))?;
    // No options (no profiles) reuses the previous spawn's, as a body-less API request does.
    let options = (!options.is_empty()).then_some(options);
    match spawns::start(hub, user, &server_key, options, SPAWN_PAGE_WAIT).await {
        Ok(StartOutcome::Running) => Ok(found(&ready_url(hub, name, server_name, uri, headers))),
        Ok(StartOutcome::Pending) => Ok(found(&pending_url(hub, name, server_name, pending_query(uri).as_deref()))),
        Err(StartError::ProfileRefused(reason)) => Err(SpawnPageError::ProfileRefused(reason)),
        Err(StartError::Refused(reason)) => Err(page(ApiError::bad_request(reason))),
        Err(error @ StartError::TooManyActive) => {
            Err(page(ApiError::new(StatusCode::TOO_MANY_REQUESTS, error.to_string())))
        }
        Err(error @ StartError::Failed(_)) => {
            Err(page(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())))
        }
        Err(StartError::Store(error)) => Err(page(error.into())),
        Err(error @ StartError::Panicked(_)) => Err(page(ApiError::internal(error))),
    }
}

/// `/hub/spawn-pending/<user>[/<server>]`: reloads until ready, then goes on to the server (or `next`).
async fn spawn_pending(
    State(hub): State<Hub>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let (session, caller, me) = logged_in(&hub, &uri, &headers).await?;
    let pending_prefix = format!("{}spawn-pending/", session::hub_prefix(&hub));
    let target = uri.path().strip_prefix(&pending_prefix);
    let (user, server_name) = page_target(&hub, &caller, &me, target, "servers").await?;
    let name = user.name.as_str();
    let label =
        if server_name.is_empty() { format!("{name}'s server") } else { format!("{name}'s server {server_name}") };
    let server = find_server(&hub, &user.name, &server_name).await.map_err(page_error)?;
    let visitor = Visitor { user: &me, caller: &caller, xsrf_token: &session.xsrf_token };
    match server.map(|server| server.state) {
        Some(SpawnState::Running) => Ok(found(&ready_url(&hub, name, &server_name, &uri, &headers))),
        Some(SpawnState::Requested | SpawnState::Starting) => {
            let here = uri.path_and_query().map(|value| value.as_str()).unwrap_or_default();
            let quoted = quote_name(name);
            let api_server = if server_name.is_empty() {
                format!("users/{quoted}/server")
            } else {
                format!("users/{quoted}/servers/{}", quote_name(&server_name))
            };
            // EventSource requests are `cors` fetches, which must carry the XSRF token (`_xsrf` in the query).
            let progress_url = format!(
                "{}api/{api_server}/progress?_xsrf={}",
                session::hub_prefix(&hub),
                encode_query_value(&session.xsrf_token)
            );
            let context = context! {
                page => "spawn_pending",
                server_label => label,
                progress_url => progress_url,
                ready_url => here,
                ..pages::base_context(&hub, Some(&visitor)),
            };
            Ok(pages::render(&hub, StatusCode::OK, "spawn_pending.html", context))
        }
        Some(SpawnState::Failed) => {
            let reason = hub
                .progress()
                .failure_message(name, &server_name)
                .unwrap_or_else(|| "An administrator can find the reason in the hub's log.".to_owned());
            Err(pages::error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{label} could not start. {reason}")))
        }
        Some(SpawnState::Stopping | SpawnState::Stopped) | None => Ok(not_running_page(
            &hub,
            Some(&visitor),
            StatusCode::OK,
            &label,
            &spawn_url(&hub, name, &server_name),
            None,
        )),
    }
}

/// `not_running.html`: the server is not running, with a link to start it.
fn not_running_page(
    hub: &Hub,
    visitor: Option<&Visitor<'_>>,
    status: StatusCode,
    label: &str,
    spawn_url: &str,
    failure: Option<String>,
) -> Response {
    let context = context! {
        page => "not_running",
        server_label => label,
        spawn_url => spawn_url,
        failure => failure,
        ..pages::base_context(hub, visitor),
    };
    pages::render(hub, status, "not_running.html", context)
}

fn spawn_url(hub: &Hub, user: &str, server: &str) -> String {
    let mut url = format!("{}spawn/{}", session::hub_prefix(hub), quote_name(user));
    if !server.is_empty() {
        url.push('/');
        url.push_str(&quote_name(server));
    }
    url
}

/// Whether the client wants JSON rather than a page (`get_accepted_mimetype`).
fn prefers_json(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|value| value.to_str().ok()).unwrap_or_default();
    match (accept.find("application/json"), accept.find("text/html")) {
        (Some(json), Some(html)) => json < html,
        (Some(_), None) => true,
        _ => false,
    }
}

/// `_fail_api_request`: 424, because the server, not the resource in it, is missing.
fn not_running_json(hub: &Hub, uri: &Uri, headers: &HeaderMap, user: &str, server: &str) -> Response {
    let hub_path = format!("{}hub", hub.config().base_url);
    let path = uri.path().strip_prefix(&hub_path).unwrap_or(uri.path());
    let scheme = headers.get("x-forwarded-proto").and_then(|value| value.to_str().ok()).unwrap_or("http");
    let host = session::request_host(headers).unwrap_or("localhost");
    let message = format!(
        "JupyterHub server no longer running at {path}. Restart the server at {scheme}://{host}{}",
        spawn_url(hub, user, server)
    );
    (StatusCode::FAILED_DEPENDENCY, axum::Json(json!({ "status": 424, "message": message }))).into_response()
}

/// `/hub/user/<name>/<path>` (`UserUrlHandler`).
async fn user_url(
    State(hub): State<Hub>,
    caller: Caller,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let user_prefix = format!("{}user/", session::hub_prefix(&hub));
    let rest = uri.path().strip_prefix(&user_prefix).unwrap_or_default().to_owned();
    let (user_segment, user_path) = rest.split_once('/').unwrap_or((&rest, ""));
    let user_name = percent_decode_str(user_segment).decode_utf8_lossy().into_owned();
    let user = crate::access::find_user(&hub, &user_name).await.map_err(page_error)?;
    // A named server is the first path segment when the user has a server by that name. Only a caller who
    // presented credentials learns that: an anonymous request gets the same answer whether the server exists or not.
    let mut server_name = String::new();
    if let Some(user) = &user
        && (caller.owner.is_some() || method == Method::GET)
        && hub.config().allow_named_servers
        && let Some(first) = user_path.split('/').next().filter(|first| !first.is_empty())
    {
        let candidate = percent_decode_str(first).decode_utf8_lossy().into_owned();
        if find_server(&hub, &user.name, &candidate).await.map_err(page_error)?.is_some() {
            server_name = candidate;
        }
    }
    if method != Method::GET {
        return Ok(not_running_json(&hub, &uri, &headers, &user_name, &server_name));
    }
    // API clients come with a token (JupyterHub's `get_current_user` takes one here too); browsers with the
    // login cookie, or they are sent to log in.
    let caller = match caller.owner {
        Some(_) => caller,
        None => logged_in(&hub, &uri, &headers).await?.1,
    };
    let groups = group_names(user.as_ref());
    let resource = Resource::Server { user: &user_name, server: &server_name, groups: &groups };
    let no_such = || pages::error(StatusCode::NOT_FOUND, &format!("No such user {user_name}"));
    if !caller.scopes.allows("access:servers", &resource) {
        return Err(no_such());
    }
    let user = user.ok_or_else(no_such)?;
    let server = find_server(&hub, &user.name, &server_name).await.map_err(page_error)?;
    let here = uri.path_and_query().map(|value| value.as_str()).unwrap_or_default();
    match server.map(|server| server.state) {
        Some(SpawnState::Requested | SpawnState::Starting | SpawnState::Failed) => {
            let query = format!("next={}", encode_query_value(here));
            let mut response = found(&pending_url(&hub, user.name.as_str(), &server_name, Some(&query)));
            *response.status_mut() = StatusCode::SEE_OTHER;
            Ok(response)
        }
        Some(SpawnState::Running) => redirect_to_server(&hub, &uri).await,
        _ if prefers_json(&headers) || user_path.split('/').any(|part| part == "api") => {
            Ok(not_running_json(&hub, &uri, &headers, user.name.as_str(), &server_name))
        }
        _ => {
            let label = if server_name.is_empty() {
                format!("{}'s server", user.name)
            } else {
                format!("{}'s server {server_name}", user.name)
            };
            let spawn_url = spawn_url(&hub, user.name.as_str(), &server_name);
            let failure = hub.progress().failure_message(user.name.as_str(), &server_name);
            Err(not_running_page(&hub, None, StatusCode::FAILED_DEPENDENCY, &label, &spawn_url, failure))
        }
    }
}

/// The server is running, so the proxy should have routed this: send the browser back to `/user/...` with a
/// `redirects` count, backing off, and give up with a 500 when it loops.
async fn redirect_to_server(hub: &Hub, uri: &Uri) -> Result<Response, Response> {
    let mut pairs = session::form_pairs(uri.query().unwrap_or_default().as_bytes());
    let redirects: u32 =
        pairs.iter().find(|(key, _)| key == "redirects").and_then(|(_, value)| value.parse().ok()).unwrap_or(0);
    if redirects >= REDIRECT_LIMIT {
        return Err(pages::error(StatusCode::INTERNAL_SERVER_ERROR, "Redirect loop detected."));
    }
    if redirects > 0 {
        tracing::warn!(path = %uri.path(), "redirect loop detected");
        tokio::time::sleep(Duration::from_secs(2u64.pow(redirects).min(10))).await;
    }
    pairs.retain(|(key, _)| key != "redirects");
    pairs.push(("redirects".to_owned(), (redirects + 1).to_string()));
    let hub_user = format!("{}hub/user/", hub.config().base_url);
    let rest = uri.path().strip_prefix(&hub_user).unwrap_or_default();
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    Ok(found(&format!("{}user/{rest}?{query}", hub.config().base_url)))
}

/// `/hub/user-redirect/<path>`: the current user's server at `<path>`, by way of the spawn page.
async fn user_redirect(
    State(hub): State<Hub>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let (_, _, me) = logged_in(&hub, &uri, &headers).await?;
    let redirect_prefix = format!("{}user-redirect/", session::hub_prefix(&hub));
    let path = uri.path().strip_prefix(&redirect_prefix).unwrap_or_default();
    let mut target = format!("{}{path}", server_url(hub.config(), me.name.as_str(), ""));
    if let Some(query) = uri.query().filter(|query| !query.is_empty()) {
        target.push('?');
        target.push_str(query);
    }
    let spawn = spawn_url(&hub, me.name.as_str(), "");
    Ok(found(&format!("{spawn}?next={}", encode_query_value(&target))))
}
