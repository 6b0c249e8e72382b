//! Browser login, sessions, XSRF, the pages around a server and the OAuth2 provider, driven through
//! `router(...).oneshot(...)` with a cookie jar standing in for the browser.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wasmhub_model::{GroupName, PlainToken, SpawnState, UserName};
use wasmhub_proxy::{Proxy, ProxyConfig};
use wasmhub_spawner::{LocalProcessSpawner, LocalSpawnerConfig};
use wasmhub_store::{NewOAuthClient, NewOAuthCode, SqliteStore, Store};

use crate::tests::{Answer, Browser, SERVER, call_with, location};
use crate::{AuthSettings, DummyAuthenticator, Hub, HubConfig, SharedPasswordAuthenticator, router};

const PASSWORD: &str = "the-password";
const ADMIN_PASSWORD: &str = "the-admin-password-is-32-characters-long";
const SERVER_TOKEN: &str = "0123456789abcdef0123456789abcdef";
const CALLBACK: &str = "/user/alice/oauth_callback";

struct LoginHub {
    app: Router,
    store: Arc<SqliteStore>,
    hub: Hub,
    _dir: tempfile::TempDir,
}

async fn login_hub(auth: AuthSettings, edit: impl FnOnce(&mut HubConfig), shared_password: bool) -> LoginHub {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("hub.sqlite")).await.unwrap());
    let spawner = LocalProcessSpawner::new(LocalSpawnerConfig {
        cmd: vec!["python3".into(), "-c".into(), SERVER.into()],
        log_dir: dir.path().to_owned(),
        term_timeout: Duration::from_millis(500),
        ..LocalSpawnerConfig::default()
    });
    let proxy = Proxy::new(ProxyConfig::default()).await.unwrap();
    let mut config = HubConfig { auth: auth.clone(), ..HubConfig::default() };
    edit(&mut config);
    let authenticator: Arc<dyn crate::Authenticator> = if shared_password {
        Arc::new(
            SharedPasswordAuthenticator::new(
                Some(PASSWORD.into()),
                Some(ADMIN_PASSWORD.into()),
                auth.admin_users.iter().cloned(),
            )
            .unwrap(),
        )
    } else {
        Arc::new(DummyAuthenticator::new(Some(PASSWORD.into())))
    };
    let hub = Hub::new(config, store.clone(), Arc::new(spawner), Arc::new(proxy)).with_authenticator(authenticator);
    LoginHub { app: router(hub.clone()), store, hub, _dir: dir }
}

fn allow_all() -> AuthSettings {
    AuthSettings { allow_all: true, ..AuthSettings::default() }
}

fn set_cookie_line<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap())
        .find(|line| line.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", answer.headers))
}

async fn user(store: &SqliteStore, name: &str) -> Option<wasmhub_store::User> {
    store.get_user(&UserName::parse(name).unwrap()).await.ok()
}

#[tokio::test]
async fn login_sets_the_session_cookies_and_creates_the_user() {
    let hub = login_hub(allow_all(), |_| {}, false).await;
    let mut browser = Browser::default();
    let form = browser.get(&hub.app, "/hub/login?next=/hub/home").await;
    assert!(form.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(form.text.contains("name=\"_xsrf\"") && form.text.contains("name=\"password\""), "{}", form.text);
    assert!(form.text.contains("action=\"/hub/login?next=%2Fhub%2Fhome\""), "{}", form.text);
    assert!(set_cookie_line(&form, "_xsrf").contains("Max-Age=3600"));

    let answer = browser.log_in(&hub.app, "Alice", PASSWORD, "/hub/home").await;
    assert_eq!((answer.status, location(&answer)), (StatusCode::FOUND, "/hub/home"), "{}", answer.text);
    let login = set_cookie_line(&answer, "jupyterhub-hub-login");
    for attribute in ["HttpOnly", "Path=/hub/", "SameSite=Lax", "Max-Age=1209600"] {
        assert!(login.contains(attribute), "{login}");
    }
    assert!(!login.contains("Secure"));
    let session = set_cookie_line(&answer, "jupyterhub-session-id");
    assert!(session.contains("Path=/") && session.contains("HttpOnly"), "{session}");
    // Names are normalised by the auth hook: the user is `alice`.
    assert!(!user(&hub.store, "alice").await.unwrap().admin);

    let me = browser.get(&hub.app, "/hub/api/user").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    let me = me.json();
    assert_eq!((me["name"].as_str(), me["token_id"].clone()), (Some("alice"), Value::Null));
    assert_eq!(me["session_id"].as_str(), browser.cookies.get("jupyterhub-session-id").map(String::as_str));
    // Logged in, the form is skipped; without `next` the browser goes to spawn its server.
    let again = browser.get(&hub.app, "/hub/login").await;
    assert_eq!((again.status, location(&again)), (StatusCode::FOUND, "/hub/spawn"));
    let root = browser.get(&hub.app, "/hub/").await;
    assert_eq!(location(&root), "/hub/spawn");
    let home = browser.get(&hub.app, "/hub/home").await;
    assert!(home.text.contains("/hub/spawn/alice"), "{}", home.text);

    let secure = login_hub(allow_all(), |config| config.cookie_secure = true, false).await;
    let answer = Browser::default().log_in(&secure.app, "bob", PASSWORD, "").await;
    assert!(set_cookie_line(&answer, "jupyterhub-hub-login").contains("Secure"));
}

/// Behind TLS offload the proxy says `X-Forwarded-Proto: https`, and every cookie the hub sets is `Secure`; over
/// plain http none is (a `Secure` cookie would never come back).
#[tokio::test]
async fn cookies_are_secure_when_the_request_came_over_https() {
    let hub = login_hub(allow_all(), |_| {}, false).await;
    for (forwarded, secure) in [("https", true), ("http, https", true), ("https, http", false), ("", false)] {
        let headers: Vec<(&str, &str)> =
            if forwarded.is_empty() { Vec::new() } else { vec![("x-forwarded-proto", forwarded)] };
        let mut browser = Browser::default();
        let form = browser.request(&hub.app, Method::GET, "/hub/login", None, &headers).await;
        assert_eq!(set_cookie_line(&form, "_xsrf").contains("Secure"), secure, "{forwarded:?}");
        let body =
            serde_urlencoded::to_string([("username", "alice"), ("password", PASSWORD), ("_xsrf", &browser.xsrf())])
                .unwrap();
        let mut post_headers = headers.clone();
        post_headers.push(("content-type", "application/x-www-form-urlencoded"));
        let login = browser.request(&hub.app, Method::POST, "/hub/login", Some(&body), &post_headers).await;
        assert_eq!(login.status, StatusCode::FOUND, "{}", login.text);
        for name in ["jupyterhub-hub-login", "jupyterhub-session-id", "_xsrf"] {
            assert_eq!(set_cookie_line(&login, name).contains("Secure"), secure, "{name} with {forwarded:?}");
        }
    }
}

#[tokio::test]
async fn failed_logins_grant_nothing() {
    let settings = AuthSettings {
        allowed_users: ["alice".to_owned(), "eve".to_owned()].into(),
        blocked_users: ["eve".to_owned()].into(),
        ..AuthSettings::default()
    };
    let hub = login_hub(settings, |_| {}, false).await;
    let cases = [("alice", "wrong"), ("eve", PASSWORD), ("mallory", PASSWORD), ("", PASSWORD), ("a/b", PASSWORD)];
    for (username, password) in cases {
        let mut browser = Browser::default();
        let answer = browser.log_in(&hub.app, username, password, "/hub/home").await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{username}: {}", answer.text);
        assert!(answer.text.contains("Invalid username or password"), "{}", answer.text);
        assert!(answer.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
        assert!(!browser.cookies.contains_key("jupyterhub-hub-login"), "{username}");
        if !username.is_empty() && username != "a/b" {
            assert!(user(&hub.store, username).await.is_none(), "{username} was created");
        }
        assert_eq!(browser.get(&hub.app, "/hub/api/user").await.assert_error(403), "Forbidden");
    }
    let long_name = "a".repeat(10_000);
    let answer = Browser::default().log_in(&hub.app, &long_name, PASSWORD, "").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // The form needs its XSRF token.
    let mut browser = Browser::default();
    browser.get(&hub.app, "/hub/login").await;
    let body = format!("username=alice&password={PASSWORD}");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let answer = browser.request(&hub.app, Method::POST, "/hub/login", Some(&body), &form).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.text.contains("&#39;_xsrf&#39; argument missing from POST"), "{}", answer.text);
    let forged = format!("{body}&_xsrf=forged-token-value");
    let answer = browser.request(&hub.app, Method::POST, "/hub/login", Some(&forged), &form).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(user(&hub.store, "alice").await.is_none());
}

/// Posts the login form from `address` (as the proxy reports it in `X-Forwarded-For`).
async fn log_in_from(hub: &LoginHub, username: &str, password: &str, address: &str) -> Answer {
    let mut browser = Browser::default();
    browser.get(&hub.app, "/hub/login").await;
    let fields = [("username", username), ("password", password), ("_xsrf", &browser.xsrf())];
    let body = serde_urlencoded::to_string(fields).unwrap();
    // A client's own X-Forwarded-For comes first; the proxy's entry is the last one.
    let forwarded = format!("203.0.113.99, {address}");
    let headers = [("content-type", "application/x-www-form-urlencoded"), ("x-forwarded-for", forwarded.as_str())];
    browser.request(&hub.app, Method::POST, "/hub/login?next=", Some(&body), &headers).await
}

#[tokio::test]
async fn repeated_failed_logins_lock_the_name_and_the_address_with_429() {
    let throttle = crate::ThrottleSettings {
        max_failures_per_user: 3,
        max_failures_per_address: 5,
        window: Duration::from_secs(600),
        lockout: Duration::from_secs(120),
    };
    let hub = login_hub(allow_all(), |config| config.login_throttle = throttle, false).await;
    for _ in 0..3 {
        assert_eq!(log_in_from(&hub, "alice", "wrong", "192.0.2.1").await.status, StatusCode::FORBIDDEN);
    }
    // Locked: even the right password is not checked, from any address, and the answer says for how long.
    let locked = log_in_from(&hub, "Alice", PASSWORD, "192.0.2.2").await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS, "{}", locked.text);
    assert!(locked.text.contains("Too many failed logins. Try again in 120 seconds."), "{}", locked.text);
    assert_eq!(locked.headers[header::RETRY_AFTER], "120");
    assert!(user(&hub.store, "alice").await.is_none());
    // Other names still log in, and a success before the limit clears the name's count.
    assert_eq!(log_in_from(&hub, "bob", PASSWORD, "192.0.2.1").await.status, StatusCode::FOUND);
    log_in_from(&hub, "bob", "wrong", "192.0.2.3").await;
    log_in_from(&hub, "bob", "wrong", "192.0.2.3").await;
    assert_eq!(log_in_from(&hub, "bob", PASSWORD, "192.0.2.3").await.status, StatusCode::FOUND);
    log_in_from(&hub, "bob", "wrong", "192.0.2.3").await;
    assert_eq!(log_in_from(&hub, "bob", PASSWORD, "192.0.2.3").await.status, StatusCode::FOUND);
    // Guessing many names from one address locks the address (3 failures for alice + 2 more from 192.0.2.1).
    log_in_from(&hub, "carol", "wrong", "192.0.2.1").await;
    log_in_from(&hub, "dave", "wrong", "192.0.2.1").await;
    let answer = log_in_from(&hub, "erin", PASSWORD, "192.0.2.1").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);

    // Admins see both lockouts and lift them; others may not.
    let admin = crate::tests::user_with_token(&hub.store, "admin", true, &["inherit"]).await;
    let listed = call_with(&hub.app, Method::GET, "/hub/api/_wasmhub/login-lockouts", Some(&admin), None, &[]).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let lockouts = listed.json()["lockouts"].clone();
    let keys: Vec<(&str, &str)> = lockouts
        .as_array()
        .unwrap()
        .iter()
        .map(|lockout| (lockout["kind"].as_str().unwrap(), lockout["key"].as_str().unwrap()))
        .collect();
    assert_eq!(keys, [("user", "alice"), ("address", "192.0.2.1")]);
    let bob = crate::tests::user_with_token(&hub.store, "bob", false, &["inherit"]).await;
    let uri = "/hub/api/_wasmhub/login-lockouts?user=alice";
    call_with(&hub.app, Method::DELETE, uri, Some(&bob), None, &[]).await.assert_error(403);
    let lifted = call_with(&hub.app, Method::DELETE, uri, Some(&admin), None, &[]).await;
    assert_eq!(lifted.status, StatusCode::NO_CONTENT, "{}", lifted.text);
    call_with(&hub.app, Method::DELETE, uri, Some(&admin), None, &[]).await.assert_error(404);
    assert_eq!(log_in_from(&hub, "alice", PASSWORD, "192.0.2.9").await.status, StatusCode::FOUND);
}

#[tokio::test]
async fn existing_users_may_log_in_when_allowed() {
    let settings = AuthSettings {
        allowed_users: ["alice".to_owned()].into(),
        blocked_users: ["eve".to_owned()].into(),
        ..AuthSettings::default()
    };
    let hub = login_hub(settings.clone(), |config| config.allow_existing_users = true, false).await;
    for name in ["carol", "eve"] {
        hub.store.create_user(&UserName::parse(name).unwrap(), false).await.unwrap();
    }
    let answer = Browser::default().log_in(&hub.app, "Carol", PASSWORD, "").await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text);
    // Blocked stays blocked, and strangers stay out.
    assert_eq!(Browser::default().log_in(&hub.app, "eve", PASSWORD, "").await.status, StatusCode::FORBIDDEN);
    assert_eq!(Browser::default().log_in(&hub.app, "dave", PASSWORD, "").await.status, StatusCode::FORBIDDEN);
    let without = login_hub(settings, |_| {}, false).await;
    without.store.create_user(&UserName::parse("carol").unwrap(), false).await.unwrap();
    assert_eq!(Browser::default().log_in(&without.app, "carol", PASSWORD, "").await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn shared_password_admins_become_admin_and_groups_follow_the_decision() {
    let settings = AuthSettings {
        allow_all: true,
        admin_users: ["root".to_owned()].into(),
        manage_groups: true,
        ..AuthSettings::default()
    };
    let hub = login_hub(settings, |_| {}, true).await;
    // An admin name with the user password is refused; with the admin password it becomes admin.
    assert_eq!(Browser::default().log_in(&hub.app, "root", PASSWORD, "").await.status, StatusCode::FORBIDDEN);
    assert!(user(&hub.store, "root").await.is_none());
    let answer = Browser::default().log_in(&hub.app, "root", ADMIN_PASSWORD, "").await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text);
    assert!(user(&hub.store, "root").await.unwrap().admin);
    // The user password never makes an admin, and takes admin away (the authenticator says `admin: false`).
    let alice = UserName::parse("alice").unwrap();
    hub.store.create_user(&alice, true).await.unwrap();
    let staff = GroupName::parse("staff").unwrap();
    hub.store.create_group(&staff).await.unwrap();
    hub.store.add_group_members(&staff, std::slice::from_ref(&alice)).await.unwrap();
    assert_eq!(Browser::default().log_in(&hub.app, "alice", PASSWORD, "").await.status, StatusCode::FOUND);
    let alice = user(&hub.store, "alice").await.unwrap();
    // `manage_groups` with no groups claim: the decided groups are none.
    assert!(!alice.admin);
    assert!(alice.groups.is_empty());
}

#[tokio::test]
async fn cookie_authenticated_api_writes_need_the_xsrf_token() {
    let hub = login_hub(allow_all(), |_| {}, false).await;
    let mut browser = Browser::default();
    browser.log_in(&hub.app, "alice", PASSWORD, "").await;
    let tokens = "/hub/api/users/alice/tokens";
    let json_body = Some(r#"{"note": "from the browser"}"#);
    let json = ("content-type", "application/json");
    let answer = browser.request(&hub.app, Method::POST, tokens, json_body, &[json]).await;
    assert_eq!(answer.assert_error(403), "'_xsrf' argument missing from POST");
    let answer = browser.request(&hub.app, Method::POST, tokens, json_body, &[json, ("x-xsrftoken", "nope")]).await;
    assert_eq!(answer.assert_error(403), "XSRF cookie does not match POST argument");
    let xsrf = browser.xsrf();
    let answer = browser.request(&hub.app, Method::POST, tokens, json_body, &[json, ("x-xsrftoken", &xsrf)]).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let with_query = format!("{tokens}?_xsrf={xsrf}");
    let answer = browser.request(&hub.app, Method::POST, &with_query, json_body, &[json]).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    // A form post is not cookie-authenticated at all, token or not.
    let form = ("content-type", "application/x-www-form-urlencoded");
    let answer = browser.request(&hub.app, Method::POST, &with_query, Some("note=x"), &[form]).await;
    assert_eq!(answer.assert_error(403), "Missing or invalid credentials.");
    // A cross-origin read without the token is simply not authenticated.
    let cors = ("sec-fetch-mode", "cors");
    let answer = browser.request(&hub.app, Method::GET, "/hub/api/users/alice", None, &[cors]).await;
    answer.assert_error(403);
    let answer = browser.request(&hub.app, Method::GET, "/hub/api/users/alice", None, &[]).await;
    assert_eq!(answer.json()["name"], "alice");
    // The XSRF cookie a page could have planted does not help without the session it belongs to.
    let mut stranger = Browser::default();
    stranger.cookies.insert("_xsrf".into(), xsrf.clone());
    let answer = stranger.request(&hub.app, Method::POST, tokens, json_body, &[json, ("x-xsrftoken", &xsrf)]).await;
    answer.assert_error(403);
}

#[tokio::test]
async fn next_never_redirects_off_site() {
    let hub = login_hub(allow_all(), |_| {}, false).await;
    for evil in [
        "//evil.com",
        "///evil.com",
        "https://evil.com/",
        "http://evil.com",
        "\\\\evil.com",
        "/\t/evil.com",
        "https://hub.example.org@evil.com/",
        "https://hub.example.org.evil.com/x",
        "javascript:alert(1)",
    ] {
        let answer = Browser::default().log_in(&hub.app, "alice", PASSWORD, evil).await;
        assert_eq!((answer.status, location(&answer)), (StatusCode::FOUND, "/hub/spawn"), "{evil:?}");
    }
    let answer = Browser::default().log_in(&hub.app, "alice", PASSWORD, "https://hub.example.org//evil.com").await;
    assert_eq!(location(&answer), "/evil.com");
    let answer = Browser::default().log_in(&hub.app, "alice", PASSWORD, "/user/alice/lab?x=1").await;
    assert_eq!(location(&answer), "/hub/user/alice/lab?x=1");
    let home = login_hub(allow_all(), |config| config.redirect_to_server = false, false).await;
    assert_eq!(location(&Browser::default().log_in(&home.app, "alice", PASSWORD, "//evil.com").await), "/hub/home");
}

/// The OAuth client a spawn registers for alice's default server.
async fn alice_client(store: &SqliteStore) {
    let alice = UserName::parse("alice").unwrap();
    if store.get_user(&alice).await.is_err() {
        store.create_user(&alice, false).await.unwrap();
    }
    store
        .put_oauth_client(&NewOAuthClient {
            client_id: "jupyterhub-user-alice".into(),
            description: "Server at /user/alice/".into(),
            secret: Some(PlainToken::parse(SERVER_TOKEN).unwrap()),
            redirect_uri: CALLBACK.into(),
            allowed_scopes: vec!["access:servers!server=alice/".into()],
        })
        .await
        .unwrap();
}

fn authorize_uri(redirect_uri: &str, extra: &str) -> String {
    format!(
        "/hub/api/oauth2/authorize?client_id=jupyterhub-user-alice&redirect_uri={}&response_type=code&state=st8-_x{extra}",
        crate::login::encode_query_value(redirect_uri)
    )
}

fn code_of(answer: &Answer) -> String {
    let target = location(answer);
    assert!(target.starts_with(&format!("{CALLBACK}?code=")), "{target}");
    assert!(target.ends_with("&state=st8-_x"), "state is echoed: {target}");
    target.split("code=").nth(1).unwrap().split('&').next().unwrap().to_owned()
}

async fn exchange(app: &Router, code: &str, extra: &[(&str, &str)]) -> Answer {
    let mut fields = vec![
        ("client_id", "jupyterhub-user-alice"),
        ("client_secret", SERVER_TOKEN),
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CALLBACK),
    ];
    fields.extend_from_slice(extra);
    exchange_fields(app, &fields).await
}

async fn exchange_fields(app: &Router, fields: &[(&str, &str)]) -> Answer {
    let body = serde_urlencoded::to_string(fields).unwrap();
    // The single-user server also sends its API token as `Authorization: token`, which must not get in the way.
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("authorization", "token 0123456789abcdef0123456789abcdef"),
    ];
    call_with(app, Method::POST, "/hub/api/oauth2/token", None, Some(&body), &headers).await
}

#[tokio::test]
async fn oauth_authorize_token_and_identify() {
    let hub = login_hub(allow_all(), |_| {}, false).await;
    alice_client(&hub.store).await;
    let mut browser = Browser::default();
    let anonymous = browser.get(&hub.app, &authorize_uri(CALLBACK, "")).await;
    assert_eq!(anonymous.status, StatusCode::FOUND);
    let expected_login = format!("/hub/login?next={}", crate::login::encode_query_value(&authorize_uri(CALLBACK, "")));
    assert_eq!(location(&anonymous), expected_login);
    browser.log_in(&hub.app, "alice", PASSWORD, "").await;

    // A wrong redirect URI is a 400 page, never a redirect.
    let wrong = browser.get(&hub.app, &authorize_uri("https://evil.com/cb", "")).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(wrong.headers.get(header::LOCATION).is_none());
    let unknown = browser.get(&hub.app, "/hub/api/oauth2/authorize?client_id=nope&response_type=code").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);

    // PKCE S256, as 6.x single-user servers send it.
    let verifier = "a-verifier-that-is-long-enough-for-rfc-7636-0123456789";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let pkce = format!("&code_challenge={challenge}&code_challenge_method=S256");
    let code = code_of(&browser.get(&hub.app, &authorize_uri(CALLBACK, &pkce)).await);
    assert_eq!(code.len(), 30);
    let wrong_verifier = exchange(&hub.app, &code, &[("code_verifier", "not-the-verifier")]).await;
    assert_eq!((wrong_verifier.status.as_u16(), wrong_verifier.json()), (400, json!({"error": "invalid_grant"})));
    // The failed attempt burned the code.
    let again = exchange(&hub.app, &code, &[("code_verifier", verifier)]).await;
    assert_eq!(again.json(), json!({"error": "invalid_grant"}));
    let code = code_of(&browser.get(&hub.app, &authorize_uri(CALLBACK, &pkce)).await);
    let missing = exchange(&hub.app, &code, &[]).await;
    assert_eq!(missing.json(), json!({"error": "invalid_request"}));
    let code = code_of(&browser.get(&hub.app, &authorize_uri(CALLBACK, &pkce)).await);
    let granted = exchange(&hub.app, &code, &[("code_verifier", verifier)]).await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.text);
    assert_eq!(granted.headers[header::CACHE_CONTROL], "no-store");
    let body = granted.json();
    assert_eq!((body["token_type"].as_str(), body["expires_in"].as_u64()), (Some("Bearer"), Some(1_209_600)));
    assert_eq!(body["scope"], "access:servers!server=alice/ read:users:name!user read:users:groups!user");
    let access_token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(access_token.len(), 30);

    // A code is used once.
    let reused = exchange(&hub.app, &code, &[("code_verifier", verifier)]).await;
    assert_eq!((reused.status.as_u16(), reused.json()), (400, json!({"error": "invalid_grant"})));

    // What the single-user server learns with the token.
    let me = call_with(&hub.app, Method::GET, "/hub/api/user", Some(&access_token), None, &[]).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    let me = me.json();
    assert_eq!(me["kind"], "user");
    assert_eq!((me["name"].as_str(), me["admin"].as_bool()), (Some("alice"), Some(false)));
    assert_eq!(me["groups"], json!([]));
    assert!(me["token_id"].as_str().unwrap().starts_with('a'));
    assert_eq!(me["session_id"].as_str(), browser.cookies.get("jupyterhub-session-id").map(String::as_str));
    assert_eq!(
        me["scopes"],
        json!(["access:servers!server=alice/", "read:users:groups!user=alice", "read:users:name!user=alice"])
    );

    // Without PKCE (5.x single-user servers), and with the client in HTTP Basic.
    let code = code_of(&browser.get(&hub.app, &authorize_uri(CALLBACK, "")).await);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("jupyterhub-user-alice:{SERVER_TOKEN}"));
    let body = format!("grant_type=authorization_code&code={code}&redirect_uri=%2Fuser%2Falice%2Foauth_callback");
    let headers = [("content-type", "application/x-www-form-urlencoded"), ("authorization", &format!("Basic {basic}"))];
    let answer = call_with(&hub.app, Method::POST, "/hub/api/oauth2/token", None, Some(&body), &headers).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);

    // Client authentication and grant checks.
    let code = code_of(&browser.get(&hub.app, &authorize_uri(CALLBACK, "")).await);
    let fields = |secret: &'static str, redirect_uri: &'static str| {
        vec![
            ("client_id", "jupyterhub-user-alice"),
            ("client_secret", secret),
            ("grant_type", "authorization_code"),
            ("redirect_uri", redirect_uri),
        ]
    };
    let mut bad_secret = fields("wrong", CALLBACK);
    bad_secret.push(("code", &code));
    let bad_secret = exchange_fields(&hub.app, &bad_secret).await;
    assert_eq!((bad_secret.status.as_u16(), bad_secret.json()), (401, json!({"error": "invalid_client"})));
    let mut no_secret = fields(SERVER_TOKEN, CALLBACK);
    no_secret.retain(|(key, _)| *key != "client_secret");
    no_secret.push(("code", &code));
    assert_eq!(exchange_fields(&hub.app, &no_secret).await.status, StatusCode::UNAUTHORIZED);
    // The redirect URI must match the code's too; the code is gone after that try.
    let mut wrong_redirect = fields(SERVER_TOKEN, "/user/alice/elsewhere");
    wrong_redirect.push(("code", &code));
    assert_eq!(exchange_fields(&hub.app, &wrong_redirect).await.json(), json!({"error": "invalid_grant"}));
    assert_eq!(exchange(&hub.app, &code, &[]).await.json(), json!({"error": "invalid_grant"}));
    let expired = hub
        .store
        .create_oauth_code(&NewOAuthCode {
            client_id: "jupyterhub-user-alice".into(),
            user: UserName::parse("alice").unwrap(),
            redirect_uri: CALLBACK.into(),
            session_id: None,
            scopes: vec!["access:servers!server=alice/".into()],
            code_challenge: None,
            code_challenge_method: None,
            expires_at: Utc::now() - chrono::TimeDelta::seconds(1),
        })
        .await
        .unwrap();
    assert_eq!(exchange(&hub.app, expired.as_str(), &[]).await.json(), json!({"error": "invalid_grant"}));
    let code = code_of(&browser.get(&hub.app, &authorize_uri(CALLBACK, "")).await);
    let body = format!("client_id=jupyterhub-user-alice&client_secret={SERVER_TOKEN}&grant_type=password&code={code}");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let answer = call_with(&hub.app, Method::POST, "/hub/api/oauth2/token", None, Some(&body), &form).await;
    assert_eq!(answer.json(), json!({"error": "unsupported_grant_type"}));

    // Logout revokes the browser's OAuth tokens, and the login.
    let logout = browser.get(&hub.app, "/hub/logout").await;
    assert_eq!((logout.status, location(&logout)), (StatusCode::FOUND, "/hub/login"));
    assert!(set_cookie_line(&logout, "jupyterhub-hub-login").contains("Max-Age=0"));
    let me = call_with(&hub.app, Method::GET, "/hub/api/user", Some(&access_token), None, &[]).await;
    assert_eq!(me.assert_error(403), "Forbidden");
    assert!(!browser.cookies.contains_key("jupyterhub-hub-login"));
}

#[tokio::test]
async fn other_users_servers_need_confirmation_or_permission() {
    let hub = login_hub(allow_all(), |_| {}, false).await;
    alice_client(&hub.store).await;
    let mut bob = Browser::default();
    bob.log_in(&hub.app, "bob", PASSWORD, "").await;
    let refused = bob.get(&hub.app, &authorize_uri(CALLBACK, "")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.headers.get(header::LOCATION).is_none());

    hub.store
        .update_user(&UserName::parse("bob").unwrap(), &wasmhub_store::UserChange { name: None, admin: Some(true) })
        .await
        .unwrap();
    let confirm = bob.get(&hub.app, &authorize_uri(CALLBACK, "")).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.text);
    assert!(confirm.text.contains("Authorize"), "{}", confirm.text);
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let forged = bob.request(&hub.app, Method::POST, &authorize_uri(CALLBACK, ""), Some("_xsrf=forged"), &form).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let body = format!("_xsrf={}", bob.xsrf());
    let answer = bob.request(&hub.app, Method::POST, &authorize_uri(CALLBACK, ""), Some(&body), &form).await;
    let code = code_of(&answer);
    let granted = exchange(&hub.app, &code, &[]).await;
    let token = granted.json()["access_token"].as_str().unwrap().to_owned();
    let me = call_with(&hub.app, Method::GET, "/hub/api/user", Some(&token), None, &[]).await.json();
    assert_eq!(me["name"], "bob");
    assert_eq!(
        me["scopes"],
        json!(["access:servers!server=alice/", "read:users:groups!user=bob", "read:users:name!user=bob"])
    );
}

#[tokio::test]
async fn user_urls_of_stopped_servers_answer_424() {
    let hub = login_hub(allow_all(), |_| {}, false).await;
    let mut browser = Browser::default();
    let anonymous = browser.get(&hub.app, "/hub/user/alice/lab").await;
    assert_eq!(location(&anonymous), "/hub/login?next=%2Fhub%2Fuser%2Falice%2Flab");
    browser.log_in(&hub.app, "alice", PASSWORD, "").await;
    let page = browser.get(&hub.app, "/hub/user/alice/lab").await;
    assert_eq!(page.status, StatusCode::FAILED_DEPENDENCY);
    assert!(page.text.contains("/hub/spawn/alice"), "{}", page.text);
    let api = browser.get(&hub.app, "/hub/user/alice/api/status").await;
    assert_eq!(api.status, StatusCode::FAILED_DEPENDENCY);
    assert_eq!(
        api.json()["message"],
        "JupyterHub server no longer running at /user/alice/api/status. Restart the server at \
         http://hub.example.org/hub/spawn/alice"
    );
    let accept_json = [("accept", "application/json")];
    let json = browser.request(&hub.app, Method::GET, "/hub/user/alice/tree", None, &accept_json).await;
    assert_eq!(json.status, StatusCode::FAILED_DEPENDENCY);
    let post = Browser::default().request(&hub.app, Method::POST, "/hub/user/alice/api/x", None, &[]).await;
    assert_eq!(post.status, StatusCode::FAILED_DEPENDENCY);
    assert!(post.json()["message"].as_str().unwrap().contains("/user/alice/api/x"));
    // Someone else's server is not found for bob.
    let mut bob = Browser::default();
    bob.log_in(&hub.app, "bob", PASSWORD, "").await;
    assert_eq!(bob.get(&hub.app, "/hub/user/alice/lab").await.status, StatusCode::NOT_FOUND);

    let redirect = browser.get(&hub.app, "/hub/user-redirect/lab/tree?x=1").await;
    assert_eq!(location(&redirect), "/hub/spawn/alice?next=%2Fuser%2Falice%2Flab%2Ftree%3Fx%3D1");
}

#[tokio::test]
async fn spawn_page_starts_the_server_and_user_urls_lead_to_it() {
    let hub = login_hub(allow_all(), |_| {}, false).await;
    let mut browser = Browser::default();
    browser.log_in(&hub.app, "alice", PASSWORD, "").await;
    let spawn = browser.get(&hub.app, "/hub/spawn").await;
    assert_eq!(spawn.status, StatusCode::FOUND, "{}", spawn.text);
    let mut target = location(&spawn).to_owned();
    for _ in 0..100 {
        if target != "/hub/spawn-pending/alice" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let pending = browser.get(&hub.app, "/hub/spawn-pending/alice").await;
        if pending.status == StatusCode::FOUND {
            target = location(&pending).to_owned();
        } else {
            assert!(pending.text.contains("id=\"progress-bar\""), "{}", pending.text);
        }
    }
    assert_eq!(target, "/user/alice/");
    let user_url = browser.get(&hub.app, "/hub/user/alice/tree?a=b").await;
    assert_eq!(location(&user_url), "/user/alice/tree?a=b&redirects=1");
    let looping = browser.get(&hub.app, "/hub/user/alice/tree?redirects=4").await;
    assert_eq!(looping.status, StatusCode::INTERNAL_SERVER_ERROR);
    let home = browser.get(&hub.app, "/hub/home").await;
    assert!(home.text.contains("Stop My Server"), "{}", home.text);
    let again = browser.get(&hub.app, "/hub/spawn?next=/hub/home").await;
    assert_eq!(location(&again), "/hub/home");
    // Stop it through the API the home page uses, with the page's XSRF token.
    let stop = format!("/hub/api/users/alice/server?_xsrf={}", browser.xsrf());
    let answer = browser.request(&hub.app, Method::DELETE, &stop, None, &[]).await;
    assert!(answer.status == StatusCode::NO_CONTENT || answer.status == StatusCode::ACCEPTED, "{}", answer.text);
}

/// Starts alice's default server through the spawn page and waits until it is running.
async fn spawn_through_the_page(hub: &LoginHub, browser: &mut Browser) {
    let spawn = browser.get(&hub.app, "/hub/spawn").await;
    assert_eq!(spawn.status, StatusCode::FOUND, "{}", spawn.text);
    let alice = UserName::parse("alice").unwrap();
    let default = wasmhub_model::ServerName::parse("").unwrap();
    for _ in 0..100 {
        if hub.store.get_server(&alice, &default).await.is_ok_and(|server| server.state == SpawnState::Running) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("alice's server did not start");
}

#[tokio::test]
async fn logout_stops_servers_only_with_shutdown_on_logout() {
    let alice = UserName::parse("alice").unwrap();
    let default = wasmhub_model::ServerName::parse("").unwrap();
    for shutdown_on_logout in [false, true] {
        let hub = login_hub(allow_all(), |config| config.shutdown_on_logout = shutdown_on_logout, false).await;
        let mut browser = Browser::default();
        browser.log_in(&hub.app, "alice", PASSWORD, "").await;
        spawn_through_the_page(&hub, &mut browser).await;
        let logout = browser.get(&hub.app, "/hub/logout").await;
        assert_eq!(location(&logout), "/hub/login");
        let state = hub.store.get_server(&alice, &default).await.unwrap().state;
        let expected = if shutdown_on_logout { SpawnState::Stopped } else { SpawnState::Running };
        assert_eq!(state, expected, "shutdown_on_logout = {shutdown_on_logout}");
        // Whatever it left running goes now, so no server outlives the test.
        let stop = hub.store.get_server(&alice, &default).await.unwrap();
        crate::spawns::stop_if_running(&hub.hub, stop, false).await.unwrap();
    }
}

#[tokio::test]
async fn assets_are_cached_and_the_profile_form_refuses_forgeries() {
    let profiles = wasmhub_policy::hooks::initialize_profiles(&[
        serde_json::json!({"display_name": "Small"}),
        serde_json::json!({"display_name": "Big", "slug": "big"}),
    ])
    .unwrap();
    let hub = login_hub(allow_all(), |config| config.profiles = profiles, false).await;
    let mut browser = Browser::default();
    let login = browser.get(&hub.app, "/hub/login").await;
    let start = login.text.find("/hub/static/style.css?v=").expect("a versioned stylesheet link");
    let css_url = &login.text[start..start + login.text[start..].find('"').unwrap()];
    let css = browser.get(&hub.app, css_url).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers[header::CACHE_CONTROL].to_str().unwrap().contains("max-age=31536000"));
    assert!(css.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/css"));
    let etag = css.headers[header::ETAG].to_str().unwrap().to_owned();
    let unversioned = browser.get(&hub.app, "/hub/static/style.css").await;
    assert_eq!(unversioned.headers[header::CACHE_CONTROL], "no-cache");
    let revalidated =
        browser.request(&hub.app, Method::GET, "/hub/static/style.css", None, &[("if-none-match", &etag)]).await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert_eq!(browser.get(&hub.app, "/hub/static/nope.js").await.status, StatusCode::NOT_FOUND);

    let answer = browser.log_in(&hub.app, "alice", PASSWORD, "").await;
    assert_eq!(location(&answer), "/hub/spawn");
    let form = browser.get(&hub.app, "/hub/spawn").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert!(form.text.contains("id=\"profile-item-small\"") && form.text.contains("id=\"profile-item-big\""));
    let token_page = browser.get(&hub.app, "/hub/token").await;
    assert!(token_page.text.contains("request-token-btn"), "{}", token_page.text);
    let admin = browser.get(&hub.app, "/hub/admin").await;
    assert_eq!(admin.status, StatusCode::FORBIDDEN, "alice has no admin-ui");

    let form_type = [("content-type", "application/x-www-form-urlencoded")];
    let forged = browser.request(&hub.app, Method::POST, "/hub/spawn", Some("profile=big"), &form_type).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text);
    let body = format!("profile=nope&_xsrf={}", browser.xsrf());
    let unknown = browser.request(&hub.app, Method::POST, "/hub/spawn", Some(&body), &form_type).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.text);
    assert!(unknown.text.contains("no profile named") && unknown.text.contains("spawn_form"), "{}", unknown.text);
    let servers = hub.store.list_servers(None).await.unwrap();
    assert!(servers.iter().all(|server| !server.state.is_active()), "nothing was started: {servers:?}");
}

#[tokio::test]
async fn the_admin_page_says_when_servers_share_the_hubs_user() {
    for shared in [false, true] {
        let auth = AuthSettings { admin_users: ["admin".to_owned()].into(), ..allow_all() };
        let hub = login_hub(auth, |config| config.servers_share_hub_user = shared, false).await;
        let mut browser = Browser::default();
        let login = browser.log_in(&hub.app, "admin", PASSWORD, "/hub/admin").await;
        assert_eq!(login.status, StatusCode::FOUND, "{}", login.text);
        let page = browser.get(&hub.app, "/hub/admin").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert_eq!(page.text.contains("id=\"shared-user-warning\""), shared, "shared={shared}");
        if shared {
            assert!(page.text.contains("can read the hub's database"), "{}", page.text);
        }
    }
}
