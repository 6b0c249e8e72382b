//! The hub as OAuth2 provider for single-user servers and services (`apihandlers/auth.py OAuthAuthorizeHandler`,
//! `OAuthTokenHandler`, `oauth/provider.py`), as `hub-contract.md` §2.3 observed it.
//!
//! `GET /hub/api/oauth2/authorize` needs a logged-in browser. A user's own server is authorized at once; another
//! user's server or a service gets a confirmation page that posts back. The code is one-time, lives 300 s, is
//! bound to the browser's session id and may carry a PKCE challenge (6.x single-user servers send S256).
//! `POST /hub/api/oauth2/token` authenticates the client by its secret (the server's API token), consumes the code
//! and issues an OAuth access token with the same session id, so hub logout revokes it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{TimeDelta, Utc};
use percent_encoding::percent_decode_str;
use serde_json::json;
use sha2::{Digest, Sha256};
use wasmhub_model::{Scope, ScopeFilter, TokenKind};
use wasmhub_store::{HUB_OAUTH_CLIENT, NewApiToken, NewOAuthCode, OAuthClient, StoreError, TokenOwner};

use crate::Hub;
use crate::access::caller::Caller;
use crate::access::scopes::Resource;
use crate::access::session::{self, BrowserSession};
use crate::access::xsrf;
use crate::error::ApiError;
use crate::pages::redirects::{encode_query_value, found, login_redirect, page_error};
use crate::pages::render as pages;

/// `save_authorization_code`'s lifetime.
const CODE_LIFETIME: TimeDelta = TimeDelta::seconds(300);
/// The identify scopes every OAuth token carries, with the bare filter JupyterHub reports in `scope`.
const IDENTIFY_SCOPES: [&str; 2] = ["read:users:name!user", "read:users:groups!user"];

/// An authorization request's parameters.
#[derive(Debug, Default)]
struct AuthorizeRequest {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

impl AuthorizeRequest {
    fn parse(query: Option<&str>) -> AuthorizeRequest {
        let mut request = AuthorizeRequest::default();
        for (key, value) in session::form_pairs(query.unwrap_or_default().as_bytes()) {
            let slot = match key.as_str() {
                "client_id" => &mut request.client_id,
                "redirect_uri" => &mut request.redirect_uri,
                "response_type" => &mut request.response_type,
                "state" => &mut request.state,
                "code_challenge" => &mut request.code_challenge,
                "code_challenge_method" => &mut request.code_challenge_method,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        request
    }
}

/// A request that passed every check, ready for a code.
struct Authorized {
    client: OAuthClient,
    scopes: Vec<String>,
    /// The client is one of the user's own servers: no confirmation.
    own: bool,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// `redirect_uri` with `pairs` appended to its query.
fn with_query(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = redirect_uri.to_owned();
    for (key, value) in pairs {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(key);
        url.push('=');
        url.push_str(&encode_query_value(value));
    }
    url
}

/// An error sent back to the client's (verified) redirect URI, as oauthlib does for request errors.
fn error_redirect(redirect_uri: &str, error: &str, state: Option<&str>) -> Response {
    let mut pairs = vec![("error", error)];
    pairs.extend(state.map(|state| ("state", state)));
    found(&with_query(redirect_uri, &pairs))
}

/// The client's access scopes and whether `caller` holds one; `own` when it is `caller`'s own server.
fn access(caller: &Caller, client: &OAuthClient, groups: &[String]) -> (bool, bool) {
    let me = caller.user_name().unwrap_or_default();
    let (mut allowed, mut own) = (false, false);
    for text in &client.allowed_scopes {
        let Ok(scope) = Scope::parse(text) else { continue };
        let resource = match (&scope.name[..], &scope.filter) {
            ("access:servers", Some(ScopeFilter::Server { user, server })) => {
                own |= user == me;
                Resource::Server { user, server, groups }
            }
            ("access:servers", Some(ScopeFilter::User(user))) => {
                own |= user == me;
                Resource::User { name: user, groups }
            }
            ("access:services", Some(ScopeFilter::Service(service))) => Resource::Service { name: service },
            _ => continue,
        };
        allowed |= caller.scopes.allows(&scope.name, &resource);
    }
    (allowed, own && allowed)
}

/// The checks of `OAuthAuthorizeHandler`: a known client, its exact redirect URI (else a 400 page and no
/// redirect), `response_type=code`, a PKCE method we know, and the visitor's access to the client.
async fn check(hub: &Hub, caller: &Caller, request: &AuthorizeRequest) -> Result<Authorized, Response> {
    let bad_request = |message: &str| pages::error(StatusCode::BAD_REQUEST, message);
    let client_id = request
        .client_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| bad_request("Missing client_id parameter."))?;
    let client = match hub.store().get_oauth_client(client_id).await {
        Ok(client) if client.client_id != HUB_OAUTH_CLIENT => client,
        Ok(_) | Err(StoreError::NotFound { .. }) => return Err(bad_request("Invalid client_id parameter value.")),
        Err(other) => return Err(page_error(other.into())),
    };
    if request.redirect_uri.as_deref().is_some_and(|uri| uri != client.redirect_uri) {
        return Err(bad_request("Mismatching redirect URI."));
    }
    let redirect_uri = client.redirect_uri.as_str();
    let state = request.state.as_deref();
    match request.response_type.as_deref() {
        Some("code") => {}
        None => return Err(error_redirect(redirect_uri, "invalid_request", state)),
        Some(_) => return Err(error_redirect(redirect_uri, "unsupported_response_type", state)),
    }
    let code_challenge_method = match (&request.code_challenge, request.code_challenge_method.as_deref()) {
        (None, None) => None,
        // RFC 7636: a challenge without a method is `plain`.
        (Some(_), None) => Some("plain".to_owned()),
        (Some(_), Some(method @ ("S256" | "plain"))) => Some(method.to_owned()),
        _ => return Err(error_redirect(redirect_uri, "invalid_request", state)),
    };
    let user = caller.user_name().unwrap_or_default();
    let groups = match wasmhub_model::UserName::parse(user) {
        Ok(name) => {
            hub.store().get_user(&name).await.map(|user| crate::access::group_names(Some(&user))).unwrap_or_default()
        }
        Err(_) => Vec::new(),
    };
    let (allowed, own) = access(caller, &client, &groups);
    if !allowed {
        return Err(pages::error(
            StatusCode::FORBIDDEN,
            &format!("You do not have permission to access {}", client.description),
        ));
    }
    let mut scopes = client.allowed_scopes.clone();
    scopes.extend(IDENTIFY_SCOPES.iter().map(|scope| scope.to_string()));
    scopes.dedup();
    Ok(Authorized { client, scopes, own, code_challenge: request.code_challenge.clone(), code_challenge_method })
}

/// Stores the code and sends the browser back to the client with it and the unchanged `state`.
async fn issue_code(
    hub: &Hub,
    session: &BrowserSession,
    authorized: Authorized,
    state: Option<&str>,
) -> Result<Response, Response> {
    let code = hub
        .store()
        .create_oauth_code(&NewOAuthCode {
            client_id: authorized.client.client_id.clone(),
            user: session.login.user.clone(),
            redirect_uri: authorized.client.redirect_uri.clone(),
            session_id: Some(session.login.session_id.clone()),
            scopes: authorized.scopes,
            code_challenge: authorized.code_challenge,
            code_challenge_method: authorized.code_challenge_method,
            expires_at: Utc::now() + CODE_LIFETIME,
        })
        .await
        .map_err(|error| page_error(error.into()))?;
    let mut pairs = vec![("code", code.as_str())];
    pairs.extend(state.map(|state| ("state", state)));
    Ok(found(&with_query(&authorized.client.redirect_uri, &pairs)))
}

/// The logged-in browser and its caller, or the answer for an anonymous one.
async fn logged_in(hub: &Hub, uri: &Uri, headers: &HeaderMap) -> Result<(BrowserSession, Caller), Response> {
    let session = session::current_session(hub, headers).await.map_err(page_error)?;
    let Some(session) = session else { return Err(login_redirect(hub, uri)) };
    match session::session_caller(hub, &session).await.map_err(page_error)? {
        Some(caller) => Ok((session, caller)),
        None => Err(login_redirect(hub, uri)),
    }
}

pub(crate) async fn authorize(
    State(hub): State<Hub>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let (session, caller) = logged_in(&hub, &uri, &headers).await?;
    let request = AuthorizeRequest::parse(uri.query());
    let authorized = check(&hub, &caller, &request).await?;
    if authorized.own {
        return issue_code(&hub, &session, authorized, request.state.as_deref()).await;
    }
    let action = uri.path_and_query().map(|value| value.as_str()).unwrap_or_default();
    let user = hub.store().get_user(&session.login.user).await.map_err(|error| page_error(error.into()))?;
    let visitor = pages::Visitor { user: &user, caller: &caller, xsrf_token: &session.xsrf_token };
    Ok(pages::oauth_confirm(&hub, &visitor, &authorized.client.description, action, &authorized.scopes))
}

/// The confirmation page's POST: the same checks again, plus the session's XSRF token.
pub(crate) async fn authorize_confirmed(
    State(hub): State<Hub>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Response> {
    let (session, caller) = logged_in(&hub, &uri, &headers).await?;
    xsrf::check_form(&session::form_pairs(&body), &uri, &headers, &[&session.xsrf_token])
        .map_err(|refused| pages::error(StatusCode::FORBIDDEN, &refused.to_string()))?;
    let request = AuthorizeRequest::parse(uri.query());
    let authorized = check(&hub, &caller, &request).await?;
    issue_code(&hub, &session, authorized, request.state.as_deref()).await
}

/// An OAuth error body (RFC 6749 §5.2), never cached.
fn token_error(status: StatusCode, error: &str) -> Response {
    no_store((status, Json(json!({ "error": error }))).into_response())
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `Authorization: Basic` client credentials, each part form-decoded (RFC 6749 §2.3.1). Single-user servers send
/// `Authorization: token ...` instead, which is simply not client authentication.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let decode =
        |part: &str| percent_decode_str(&part.replace('+', " ")).decode_utf8().ok().map(|text| text.into_owned());
    Some((decode(id)?, decode(secret)?))
}

fn pkce_verified(challenge: &str, method: Option<&str>, verifier: &str) -> bool {
    let computed = match method.unwrap_or("plain") {
        "S256" => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        "plain" => verifier.to_owned(),
        _ => return false,
    };
    session::same_token(&computed, challenge)
}

pub(crate) async fn token(State(hub): State<Hub>, headers: HeaderMap, body: Bytes) -> Response {
    match exchange(&hub, &headers, &body).await {
        Ok(response) | Err(response) => response,
    }
}

async fn exchange(hub: &Hub, headers: &HeaderMap, body: &[u8]) -> Result<Response, Response> {
    let fields = session::form_pairs(body);
    let field = |key: &str| fields.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_str());
    let invalid_client = || token_error(StatusCode::UNAUTHORIZED, "invalid_client");
    let (client_id, secret) = match basic_credentials(headers) {
        Some((id, secret)) => {
            if field("client_id").is_some_and(|body_id| body_id != id) {
                return Err(invalid_client());
            }
            (id, secret)
        }
        None => match (field("client_id"), field("client_secret")) {
            (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
            _ => return Err(invalid_client()),
        },
    };
    let client = match hub.store().get_oauth_client(&client_id).await {
        Ok(client) => client,
        Err(StoreError::NotFound { .. }) => return Err(invalid_client()),
        Err(other) => return Err(ApiError::from(other).into_response()),
    };
    if !client.secret_hash.as_ref().is_some_and(|hash| hash.matches(&secret)) {
        return Err(invalid_client());
    }
    match field("grant_type") {
        Some("authorization_code") => {}
        None => return Err(token_error(StatusCode::BAD_REQUEST, "invalid_request")),
        Some(_) => return Err(token_error(StatusCode::BAD_REQUEST, "unsupported_grant_type")),
    }
    let Some(presented_code) = field("code") else {
        return Err(token_error(StatusCode::BAD_REQUEST, "invalid_request"));
    };
    let invalid_grant = || token_error(StatusCode::BAD_REQUEST, "invalid_grant");
    // Taking the code consumes it, so a failed check below also burns it: a code is tried once.
    let code = match hub.store().take_oauth_code(&client.client_id, presented_code).await {
        Ok(code) => code,
        Err(StoreError::NotFound { .. } | StoreError::Invalid { .. }) => return Err(invalid_grant()),
        Err(other) => return Err(ApiError::from(other).into_response()),
    };
    if field("redirect_uri") != Some(code.redirect_uri.as_str()) {
        return Err(invalid_grant());
    }
    if let Some(challenge) = &code.code_challenge {
        let Some(verifier) = field("code_verifier") else {
            return Err(token_error(StatusCode::BAD_REQUEST, "invalid_request"));
        };
        if !pkce_verified(challenge, code.code_challenge_method.as_deref(), verifier) {
            return Err(invalid_grant());
        }
    }
    let expires_in = hub.config().cookie_max_age;
    let created = hub
        .store()
        .create_api_token(&NewApiToken {
            owner: TokenOwner::User(code.user.clone()),
            kind: TokenKind::OAuthAccess,
            supplied: None,
            scopes: code.scopes.clone(),
            note: String::new(),
            expires_at: Some(Utc::now() + TimeDelta::from_std(expires_in).unwrap_or_default()),
            session_id: code.session_id.clone(),
            client_id: client.client_id.clone(),
        })
        .await;
    let (_, access_token) = match created {
        Ok(created) => created,
        // The user was deleted since the code was issued.
        Err(StoreError::NotFound { .. }) => return Err(invalid_grant()),
        Err(other) => return Err(ApiError::from(other).into_response()),
    };
    Ok(no_store(
        Json(json!({
            "access_token": access_token.as_str(),
            "expires_in": expires_in.as_secs(),
            "token_type": "Bearer",
            "scope": code.scopes.join(" "),
        }))
        .into_response(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An anonymous client presenting a huge `client_secret` costs no hashing: before secrets were capped, each of
    /// these requests hashed two megabytes 16384 times (about a minute of CPU each) on the hub's async workers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn huge_client_secrets_are_refused_without_hashing_while_the_hub_keeps_answering() {
        let hub = crate::tests::test_hub().await;
        let secret = wasmhub_model::PlainToken::parse("the-servers-own-secret-token").unwrap();
        let client = wasmhub_store::NewOAuthClient {
            client_id: "jupyterhub-user-alice".into(),
            description: "Server at /user/alice/".into(),
            secret: Some(secret),
            redirect_uri: "/user/alice/oauth_callback".into(),
            allowed_scopes: Vec::new(),
        };
        wasmhub_store::Store::put_oauth_client(hub.store.as_ref(), &client).await.unwrap();
        // Just under the 2 MiB body limit, so the secret reaches the client check.
        let body = format!(
            "grant_type=authorization_code&code=x&client_id=jupyterhub-user-alice&client_secret={}",
            "s".repeat(2_000_000)
        );
        let form = [("content-type", "application/x-www-form-urlencoded")];
        let attempts = (0..8).map(|_| {
            let (app, body) = (hub.app.clone(), body.clone());
            tokio::spawn(async move {
                crate::tests::call_with(
                    &app,
                    axum::http::Method::POST,
                    "/hub/api/oauth2/token",
                    None,
                    Some(&body),
                    &form,
                )
                .await
            })
        });
        let everything = async {
            let health = crate::tests::call(&hub.app, axum::http::Method::GET, "/hub/health", None, None).await;
            assert_eq!(health.status, StatusCode::OK);
            for attempt in attempts.collect::<Vec<_>>() {
                let answer = attempt.await.unwrap();
                assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
                assert_eq!(answer.json()["error"], "invalid_client");
            }
        };
        // A bound a hundred times what the refusals take, and far below what hashing them would.
        tokio::time::timeout(std::time::Duration::from_secs(30), everything).await.expect("refused in time");
    }

    #[test]
    fn pkce_s256_and_plain() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_verified(challenge, Some("S256"), verifier));
        assert!(!pkce_verified(challenge, Some("S256"), "wrong"));
        assert!(pkce_verified("same", None, "same"));
        assert!(!pkce_verified("same", Some("S512"), "same"));
    }

    #[test]
    fn redirect_queries_are_appended_and_encoded() {
        assert_eq!(
            with_query("/user/a/oauth_callback", &[("code", "x"), ("state", "a b&c")]),
            "/user/a/oauth_callback?code=x&state=a%20b%26c"
        );
        assert_eq!(with_query("/cb?x=1", &[("code", "y")]), "/cb?x=1&code=y");
    }

    #[test]
    fn basic_client_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("jupyterhub-user-a%40b:s%3Acret");
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {encoded}")).unwrap());
        assert_eq!(basic_credentials(&headers), Some(("jupyterhub-user-a@b".into(), "s:cret".into())));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("token abc"));
        assert_eq!(basic_credentials(&headers), None);
    }
}
