//! Tests of the hub API through `router(...).oneshot(...)` on a temporary SQLite store, with the local process
//! spawner running a tiny Python HTTP server in place of `jupyterhub-singleuser`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use cookie::Cookie;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use wasmhub_model::{GroupName, ServerName, SpawnState, TokenKind, UserName};
use wasmhub_proxy::{Proxy, ProxyConfig};
use wasmhub_spawner::{LocalProcessSpawner, LocalSpawnerConfig};
use wasmhub_store::{HUB_OAUTH_CLIENT, NewApiToken, SqliteStore, Store, TokenOwner};

use crate::{Hub, HubConfig, router};

/// A stand-in single-user server: it serves HTTP where `JUPYTERHUB_SERVICE_URL` says.
pub(crate) const SERVER: &str = r#"
import http.server, os, urllib.parse
url = urllib.parse.urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
http.server.HTTPServer((url.hostname, url.port), http.server.SimpleHTTPRequestHandler).serve_forever()
"#;

/// A browser: keeps the cookies the hub sets and sends them back.
#[derive(Default, Clone)]
pub(crate) struct Browser {
    pub(crate) cookies: BTreeMap<String, String>,
}

impl Browser {
    pub(crate) async fn request(
        &mut self,
        app: &Router,
        method: Method,
        uri: &str,
        body: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let cookie_header =
            self.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ");
        let mut headers: Vec<(&str, &str)> = vec![("host", "hub.example.org")];
        if !cookie_header.is_empty() {
            headers.push(("cookie", &cookie_header));
        }
        headers.extend_from_slice(extra);
        let answer = call_with(app, method, uri, None, body, &headers).await;
        for value in answer.headers.get_all(header::SET_COOKIE) {
            let cookie = Cookie::parse(value.to_str().unwrap().to_owned()).unwrap();
            if cookie.max_age().is_some_and(|age| age.is_zero()) {
                self.cookies.remove(cookie.name());
            } else {
                self.cookies.insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
        answer
    }

    pub(crate) async fn get(&mut self, app: &Router, uri: &str) -> Answer {
        self.request(app, Method::GET, uri, None, &[]).await
    }

    pub(crate) fn xsrf(&self) -> String {
        self.cookies.get("_xsrf").cloned().unwrap_or_default()
    }

    /// Opens the login form and posts it.
    pub(crate) async fn log_in(&mut self, app: &Router, username: &str, password: &str, next: &str) -> Answer {
        let form = self.get(app, "/hub/login").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text);
        let body =
            serde_urlencoded::to_string([("username", username), ("password", password), ("_xsrf", &self.xsrf())])
                .unwrap();
        let uri = format!("/hub/login?next={}", crate::pages::redirects::encode_query_value(next));
        self.request(app, Method::POST, &uri, Some(&body), &[("content-type", "application/x-www-form-urlencoded")])
            .await
    }
}

pub(crate) fn location(answer: &Answer) -> &str {
    answer.headers.get(header::LOCATION).map(|value| value.to_str().unwrap()).unwrap_or_default()
}

pub(crate) struct TestHub {
    pub(crate) app: Router,
    pub(crate) store: Arc<SqliteStore>,
    pub(crate) proxy: Proxy,
    pub(crate) hub: Hub,
    pub(crate) admin_token: String,
    pub(crate) _dir: tempfile::TempDir,
}

pub(crate) async fn test_hub() -> TestHub {
    test_hub_with(HubConfig { allow_named_servers: true, ..HubConfig::default() }, ProxyConfig::default()).await
}

/// [`test_hub`] with this hub and proxy configuration.
pub(crate) async fn test_hub_with(config: HubConfig, proxy_config: ProxyConfig) -> TestHub {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("hub.sqlite")).await.unwrap());
    let spawner = LocalProcessSpawner::new(LocalSpawnerConfig {
        cmd: vec!["python3".into(), "-c".into(), SERVER.into()],
        log_dir: dir.path().to_owned(),
        term_timeout: Duration::from_millis(500),
        ..LocalSpawnerConfig::default()
    });
    let proxy = Proxy::new(proxy_config).await.unwrap();
    let hub = Hub::new(config, store.clone(), Arc::new(spawner), Arc::new(proxy.clone()));
    let admin_token = user_with_token(store.as_ref(), "admin", true, &["inherit"]).await;
    TestHub { app: router(hub.clone()), store, proxy, hub, admin_token, _dir: dir }
}

pub(crate) async fn user_with_token(store: &SqliteStore, name: &str, admin: bool, scopes: &[&str]) -> String {
    let user = UserName::parse(name).unwrap();
    if store.get_user(&user).await.is_err() {
        store.create_user(&user, admin).await.unwrap();
    }
    let new = NewApiToken {
        owner: TokenOwner::User(user),
        kind: TokenKind::Api,
        supplied: None,
        scopes: scopes.iter().map(|scope| scope.to_string()).collect(),
        note: "test".into(),
        expires_at: None,
        session_id: None,
        client_id: HUB_OAUTH_CLIENT.into(),
    };
    store.create_api_token(&new).await.unwrap().1.as_str().to_owned()
}

pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) text: String,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {:?}", self.text))
    }

    /// Asserts JupyterHub's error shape with this status.
    #[track_caller]
    pub(crate) fn assert_error(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        let body = self.json();
        assert_eq!(body["status"], json!(status), "body: {body}");
        body["message"].as_str().expect("a message").to_owned()
    }
}

pub(crate) async fn call(app: &Router, method: Method, uri: &str, token: Option<&str>, body: Option<&str>) -> Answer {
    call_with(app, method, uri, token, body, &[]).await
}

pub(crate) async fn call_with(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("token {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Body::from(body.unwrap_or_default().to_owned())).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() }
}

#[tokio::test]
async fn version_info_health_and_unknown_paths() {
    let hub = test_hub().await;
    for path in ["/hub/api", "/hub/api/"] {
        let answer = call(&hub.app, Method::GET, path, None, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(answer.json(), json!({ "version": "5.5.4+wasmhub" }));
        assert_eq!(answer.headers["x-jupyterhub-version"], "5.5.4+wasmhub");
        assert_eq!(answer.headers["access-control-allow-origin"], "*");
    }
    for path in ["/hub/api/health", "/hub/health"] {
        let answer = call(&hub.app, Method::GET, path, None, None).await;
        assert_eq!((answer.status, answer.text.as_str()), (StatusCode::OK, ""), "{path}");
    }
    let message = call(&hub.app, Method::GET, "/hub/api/info", None, None).await.assert_error(403);
    assert_eq!(message, "Missing or invalid credentials.");
    let info = call(&hub.app, Method::GET, "/hub/api/info", Some(&hub.admin_token), None).await;
    assert_eq!(info.status, StatusCode::OK);
    assert_eq!(info.json()["version"], "5.5.4+wasmhub");
    call(&hub.app, Method::GET, "/hub/api/no/such/thing", Some(&hub.admin_token), None).await.assert_error(404);
    call(&hub.app, Method::GET, "/hub/api/users/admin/nope", None, None).await.assert_error(404);
    call(&hub.app, Method::DELETE, "/hub/api/info", Some(&hub.admin_token), None).await.assert_error(405);
}

/// As JupyterHub: no other site frames the hub (clickjacking), and no browser sniffs a type the hub did not send.
#[tokio::test]
async fn every_answer_forbids_framing_by_other_sites_and_type_sniffing() {
    let hub = test_hub().await;
    for path in ["/hub/login", "/hub/api/", "/hub/api/users", "/hub/static/hub.js", "/hub/no-such-page"] {
        let answer = call(&hub.app, Method::GET, path, None, None).await;
        assert_eq!(answer.headers["content-security-policy"], "frame-ancestors 'self'", "{path}");
        assert_eq!(answer.headers["x-content-type-options"], "nosniff", "{path}");
    }
}

#[tokio::test]
async fn scopes_deny_with_jupyterhubs_403_and_404() {
    let hub = test_hub().await;
    let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
    user_with_token(&hub.store, "bob", false, &["inherit"]).await;
    user_with_token(&hub.store, "carol", false, &["inherit"]).await;

    // A user's default token reaches the user and nobody else.
    let own = call(&hub.app, Method::GET, "/hub/api/users/alice", Some(&alice), None).await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.json()["name"], "alice");
    assert_eq!(own.json()["kind"], "user");
    let message = call(&hub.app, Method::GET, "/hub/api/users/bob", Some(&alice), None).await.assert_error(404);
    assert_eq!(message, "No access to resources or resources not found");
    call(&hub.app, Method::GET, "/hub/api/users/nobody", Some(&alice), None).await.assert_error(404);
    let message = call(&hub.app, Method::GET, "/hub/api/users", Some(&alice), None).await.assert_error(403);
    assert_eq!(message, "Action is not authorized with current scopes; requires any of ['list:users']");
    call(&hub.app, Method::POST, "/hub/api/users/dave", Some(&alice), None).await.assert_error(403);
    call(&hub.app, Method::GET, "/hub/api/info", Some(&alice), None).await.assert_error(403);

    // Bad or misplaced credentials are anonymous: `?token=` is not accepted by the API.
    let message =
        call(&hub.app, Method::GET, "/hub/api/users/alice", Some("not-a-token"), None).await.assert_error(403);
    assert_eq!(message, "Missing or invalid credentials.");
    let uri = format!("/hub/api/users/alice?token={alice}");
    call(&hub.app, Method::GET, &uri, None, None).await.assert_error(403);
    let bearer = call_with(
        &hub.app,
        Method::GET,
        "/hub/api/users/alice",
        None,
        None,
        &[("authorization", &format!("Bearer {alice}"))],
    )
    .await;
    assert_eq!(bearer.status, StatusCode::OK);

    // A group filter reaches the group's members only, in single reads and in lists.
    let staff = GroupName::parse("staff").unwrap();
    hub.store.create_group(&staff).await.unwrap();
    hub.store.add_group_members(&staff, &[UserName::parse("bob").unwrap()]).await.unwrap();
    let watcher =
        user_with_token(&hub.store, "admin", true, &["read:users!group=staff", "list:users!group=staff"]).await;
    assert_eq!(call(&hub.app, Method::GET, "/hub/api/users/bob", Some(&watcher), None).await.status, StatusCode::OK);
    call(&hub.app, Method::GET, "/hub/api/users/carol", Some(&watcher), None).await.assert_error(404);
    let list = call(&hub.app, Method::GET, "/hub/api/users", Some(&watcher), None).await.json();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|user| user["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bob"]);
    // A user filter: a token of the admin restricted to alice cannot delete bob, and gets 404 for him.
    let narrow = user_with_token(&hub.store, "admin", true, &["admin:users!user=alice"]).await;
    call(&hub.app, Method::DELETE, "/hub/api/users/bob", Some(&narrow), None).await.assert_error(404);
    // A token never exceeds its owner: alice's token asking for admin:users gets nothing of it.
    let greedy = user_with_token(&hub.store, "alice", false, &["admin:users"]).await;
    call(&hub.app, Method::GET, "/hub/api/users", Some(&greedy), None).await.assert_error(403);
    // Model keys follow the scopes: only the name-level keys with read:users:name.
    let names_only = user_with_token(&hub.store, "admin", true, &["read:users:name"]).await;
    let model = call(&hub.app, Method::GET, "/hub/api/users/bob", Some(&names_only), None).await.json();
    let mut keys: Vec<&String> = model.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["admin", "kind", "name"]);
}

#[tokio::test]
async fn users_are_paginated_with_an_absolute_next_url() {
    let hub = test_hub().await;
    let body = json!({ "usernames": ["u1", "u2", "u3", "u4", "u5"] }).to_string();
    let created = call(&hub.app, Method::POST, "/hub/api/users", Some(&hub.admin_token), Some(&body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.json().as_array().unwrap().len(), 5);

    let accept = ("accept", "application/jupyterhub-pagination+json");
    let host = ("host", "hub.example.org:8000");
    let mut uri = "/hub/api/users?limit=2&sort=name".to_owned();
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let page = call_with(&hub.app, Method::GET, &uri, Some(&hub.admin_token), None, &[accept, host]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let page = page.json();
        assert_eq!(page["_pagination"]["total"], 6);
        assert_eq!(page["_pagination"]["limit"], 2);
        names.extend(page["items"].as_array().unwrap().iter().map(|user| user["name"].as_str().unwrap().to_owned()));
        pages += 1;
        let next = &page["_pagination"]["next"];
        if next.is_null() {
            break;
        }
        let url = next["url"].as_str().unwrap();
        if pages == 1 {
            assert_eq!(url, "http://hub.example.org:8000/hub/api/users?limit=2&sort=name&offset=2");
            assert_eq!(next["offset"], 2);
        }
        uri = url.strip_prefix("http://hub.example.org:8000").unwrap().to_owned();
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["admin", "u1", "u2", "u3", "u4", "u5"]);

    // Without the Accept header: a plain list; filters and descending sort.
    let list =
        call(&hub.app, Method::GET, "/hub/api/users?sort=-name&name_filter=U", Some(&hub.admin_token), None).await;
    let names: Vec<String> =
        list.json().as_array().unwrap().iter().map(|user| user["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["u5", "u4", "u3", "u2", "u1"]);
    let ready = call(&hub.app, Method::GET, "/hub/api/users?state=ready", Some(&hub.admin_token), None).await;
    assert_eq!(ready.json(), json!([]));
    call(&hub.app, Method::GET, "/hub/api/users?state=bogus", Some(&hub.admin_token), None).await.assert_error(400);
    call(&hub.app, Method::GET, "/hub/api/users?sort=shoe", Some(&hub.admin_token), None).await.assert_error(400);
    call(&hub.app, Method::GET, "/hub/api/users?limit=many", Some(&hub.admin_token), None).await.assert_error(400);
}

#[tokio::test]
async fn bad_input_gets_jupyterhubs_status_and_error_shape() {
    let hub = test_hub().await;
    let admin = hub.admin_token.as_str();
    let message =
        call(&hub.app, Method::POST, "/hub/api/users/carol", Some(admin), Some("{not json")).await.assert_error(400);
    assert_eq!(message, "Invalid JSON in body of request");
    call(&hub.app, Method::POST, "/hub/api/users", Some(admin), Some("[1,")).await.assert_error(400);
    call(&hub.app, Method::POST, "/hub/api/users", Some(admin), Some(r#"{"usernames": "x"}"#)).await.assert_error(400);
    call(&hub.app, Method::POST, "/hub/api/users", Some(admin), Some(r#"{"usernames": ["a/b"]}"#))
        .await
        .assert_error(400);
    let long = "x".repeat(256);
    call(&hub.app, Method::POST, &format!("/hub/api/users/{long}"), Some(admin), None).await.assert_error(400);
    call(&hub.app, Method::GET, &format!("/hub/api/users/{long}"), Some(admin), None).await.assert_error(404);
    call(&hub.app, Method::GET, "/hub/api/users/nobody", Some(admin), None).await.assert_error(404);
    call(&hub.app, Method::POST, "/hub/api/users/admin", Some(admin), None).await.assert_error(409);
    let all_exist = json!({ "usernames": ["admin"] }).to_string();
    call(&hub.app, Method::POST, "/hub/api/users", Some(admin), Some(&all_exist)).await.assert_error(409);
    call(&hub.app, Method::PATCH, "/hub/api/users/admin", Some(admin), Some(r#"{"shoe": 1}"#)).await.assert_error(400);
    call(&hub.app, Method::PATCH, "/hub/api/users/admin", Some(admin), Some(r#"{"admin": "yes"}"#))
        .await
        .assert_error(400);
    call(&hub.app, Method::POST, "/hub/api/users/admin/tokens", Some(admin), Some(r#"{"expires_in": 0}"#))
        .await
        .assert_error(400);
    call(
        &hub.app,
        Method::POST,
        "/hub/api/users/admin/tokens",
        Some(admin),
        Some(r#"{"scopes": ["read:everything"]}"#),
    )
    .await
    .assert_error(400);
    call(&hub.app, Method::GET, "/hub/api/users/admin/tokens/x1", Some(admin), None).await.assert_error(404);
    call(&hub.app, Method::GET, "/hub/api/users/admin/tokens/a99999", Some(admin), None).await.assert_error(404);
    call(&hub.app, Method::POST, "/hub/api/users/admin/activity", Some(admin), Some("{}")).await.assert_error(400);
    call(&hub.app, Method::POST, "/hub/api/users/admin/server", Some(admin), Some("[1]")).await.assert_error(400);
    let message = call(&hub.app, Method::DELETE, "/hub/api/users/admin", Some(admin), None).await.assert_error(400);
    assert_eq!(message, "Cannot delete yourself!");
}

#[tokio::test]
async fn users_are_created_renamed_and_deleted() {
    let hub = test_hub().await;
    let admin = hub.admin_token.as_str();
    let created = call(&hub.app, Method::POST, "/hub/api/users/carol", Some(admin), Some(r#"{"admin": false}"#)).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let model = created.json();
    assert_eq!((model["name"].clone(), model["admin"].clone()), (json!("carol"), json!(false)));
    assert_eq!(model["roles"], json!(["user"]));
    assert_eq!(model["servers"], json!({}));
    assert!(model["created"].as_str().unwrap().ends_with('Z'));
    let renamed =
        call(&hub.app, Method::PATCH, "/hub/api/users/carol", Some(admin), Some(r#"{"name": "caroline"}"#)).await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    assert_eq!(renamed.json()["name"], "caroline");
    call(&hub.app, Method::GET, "/hub/api/users/carol", Some(admin), None).await.assert_error(404);
    let deleted = call(&hub.app, Method::DELETE, "/hub/api/users/caroline", Some(admin), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    call(&hub.app, Method::GET, "/hub/api/users/caroline", Some(admin), None).await.assert_error(404);

    // Only admins may make admins.
    user_with_token(&hub.store, "alice", false, &["inherit"]).await;
    let helper = user_with_token(&hub.store, "helper", false, &["inherit"]).await;
    let role = wasmhub_model::RoleName::parse("user-admins").unwrap();
    hub.store.put_role(&role, "manage users", &["admin:users".to_owned()]).await.unwrap();
    let holder = wasmhub_store::RoleHolder::User(UserName::parse("helper").unwrap());
    hub.store.assign_role(&role, &holder).await.unwrap();
    let message = call(&hub.app, Method::PATCH, "/hub/api/users/alice", Some(&helper), Some(r#"{"admin": true}"#))
        .await
        .assert_error(403);
    assert_eq!(message, "Only admins can grant admin permissions");
    let patched =
        call(&hub.app, Method::PATCH, "/hub/api/users/alice", Some(&helper), Some(r#"{"roles": ["user-admins"]}"#))
            .await;
    assert_eq!(patched.json()["roles"], json!(["user", "user-admins"]));
}

#[tokio::test]
async fn tokens_are_shown_once_and_never_exceed_their_owner() {
    let hub = test_hub().await;
    let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
    let body = json!({ "note": "for the culler", "expires_in": 3600 }).to_string();
    let created = call(&hub.app, Method::POST, "/hub/api/users/alice/tokens", Some(&alice), Some(&body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let created = created.json();
    let token = created["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32);
    assert_eq!(created["note"], "for the culler");
    assert_eq!(created["user"], "alice");
    assert_eq!(created["oauth_client"], "JupyterHub");
    assert!(created["expires_at"].is_string());
    let scopes: Vec<&str> = created["scopes"].as_array().unwrap().iter().map(|scope| scope.as_str().unwrap()).collect();
    assert!(scopes.contains(&"read:users!user=alice") && scopes.contains(&"tokens!user=alice"), "{scopes:?}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with('a'));

    let listed = call(&hub.app, Method::GET, "/hub/api/users/alice/tokens", Some(&token), None).await.json();
    let listed = listed["api_tokens"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|model| model.get("token").is_none()));
    let one = call(&hub.app, Method::GET, &format!("/hub/api/users/alice/tokens/{id}"), Some(&alice), None).await;
    assert_eq!(one.json()["id"], json!(id));
    call(&hub.app, Method::GET, &format!("/hub/api/users/admin/tokens/{id}"), Some(&hub.admin_token), None)
        .await
        .assert_error(404);

    let greedy = json!({ "scopes": ["admin:users"] }).to_string();
    call(&hub.app, Method::POST, "/hub/api/users/alice/tokens", Some(&alice), Some(&greedy)).await.assert_error(400);
    let narrow = json!({ "scopes": ["read:users!user=alice"] }).to_string();
    let narrow = call(&hub.app, Method::POST, "/hub/api/users/alice/tokens", Some(&alice), Some(&narrow)).await.json();
    let narrow_token = narrow["token"].as_str().unwrap();
    call(&hub.app, Method::GET, "/hub/api/users/alice/tokens", Some(narrow_token), None).await.assert_error(403);

    let deleted =
        call(&hub.app, Method::DELETE, &format!("/hub/api/users/alice/tokens/{id}"), Some(&alice), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    call(&hub.app, Method::GET, "/hub/api/users/alice", Some(&token), None).await.assert_error(403);
}

#[tokio::test]
async fn activity_moves_last_activity_forward_only() {
    let hub = test_hub().await;
    let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
    let user = UserName::parse("alice").unwrap();
    hub.store.create_server(&user, &ServerName::default_server(), "{}").await.unwrap();
    let body = json!({
        "servers": { "": { "last_activity": "2026-01-02T03:04:05.123456Z" } },
        "last_activity": "2026-01-02T03:04:05.123456Z",
    })
    .to_string();
    let answer = call(&hub.app, Method::POST, "/hub/api/users/alice/activity", Some(&alice), Some(&body)).await;
    assert_eq!((answer.status, answer.text.as_str()), (StatusCode::OK, ""));
    let older = json!({ "last_activity": "2025-01-01T00:00:00" }).to_string();
    let answer = call(&hub.app, Method::POST, "/hub/api/users/alice/activity", Some(&alice), Some(&older)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let server = hub.store.get_server(&user, &ServerName::default_server()).await.unwrap();
    assert_eq!(crate::api::models::isoformat(&server.last_activity.unwrap()), "2026-01-02T03:04:05.123456Z");
    // The request itself also counts as activity of a user token, which is newer still.
    let stored = hub.store.get_user(&user).await.unwrap();
    assert!(stored.last_activity.unwrap() > server.last_activity.unwrap());

    let unknown = json!({ "servers": { "gpu": { "last_activity": "2026-01-02T03:04:05Z" } } }).to_string();
    let message = call(&hub.app, Method::POST, "/hub/api/users/alice/activity", Some(&alice), Some(&unknown))
        .await
        .assert_error(400);
    assert_eq!(message, "No such server 'gpu' for user alice");
    let future = json!({ "last_activity": "2999-01-01T00:00:00Z" }).to_string();
    call(&hub.app, Method::POST, "/hub/api/users/alice/activity", Some(&alice), Some(&future)).await.assert_error(400);
    let garbage = json!({ "last_activity": "yesterday" }).to_string();
    call(&hub.app, Method::POST, "/hub/api/users/alice/activity", Some(&alice), Some(&garbage)).await.assert_error(400);
}

#[tokio::test]
async fn a_server_starts_behind_its_route_and_stops_without_it() {
    let hub = test_hub().await;
    let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
    let user = UserName::parse("alice").unwrap();

    let started =
        call(&hub.app, Method::POST, "/hub/api/users/alice/server", Some(&alice), Some(r#"{"size": "s"}"#)).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    assert!(started.headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    let route = hub.proxy.routes().table().get("/user/alice/").expect("the route exists once the server answers");
    assert_eq!(route.data()["user"], "alice");
    assert_eq!(route.data()["server_name"], "");
    assert_eq!(route.data()["jupyterhub"], true);
    let server = hub.store.get_server(&user, &ServerName::default_server()).await.unwrap();
    assert_eq!(server.state, SpawnState::Running);
    assert_eq!(route.target().as_str(), server.url.as_deref().unwrap());
    // The server's own token exists while it runs.
    let tokens = hub.store.list_api_tokens(&TokenOwner::User(user.clone())).await.unwrap();
    assert!(tokens.iter().any(|token| token.note == "Server at /user/alice/"));

    let model = call(&hub.app, Method::GET, "/hub/api/users/alice", Some(&alice), None).await.json();
    assert_eq!(model["server"], "/user/alice/");
    assert_eq!(model["servers"][""]["ready"], true);
    assert_eq!(model["servers"][""]["user_options"], json!({ "size": "s" }));
    assert!(model["servers"][""].get("state").is_none());
    let admin_view = call(&hub.app, Method::GET, "/hub/api/users/alice", Some(&hub.admin_token), None).await.json();
    assert!(admin_view["servers"][""]["state"]["port"].is_number(), "{admin_view}");
    let ready = call(&hub.app, Method::GET, "/hub/api/users?state=ready", Some(&hub.admin_token), None).await.json();
    assert_eq!(ready.as_array().unwrap().len(), 1);

    let message =
        call(&hub.app, Method::POST, "/hub/api/users/alice/server", Some(&alice), None).await.assert_error(400);
    assert_eq!(message, "alice is already running");
    let message =
        call(&hub.app, Method::DELETE, "/hub/api/users/alice/server", Some(&alice), Some(r#"{"remove": true}"#))
            .await
            .assert_error(400);
    assert_eq!(message, "Cannot delete the default server");

    let stopped = call(&hub.app, Method::DELETE, "/hub/api/users/alice/server", Some(&alice), None).await;
    assert_eq!(stopped.status, StatusCode::NO_CONTENT, "{}", stopped.text);
    assert!(hub.proxy.routes().table().get("/user/alice/").is_none());
    let server = hub.store.get_server(&user, &ServerName::default_server()).await.unwrap();
    assert_eq!(server.state, SpawnState::Stopped);
    let tokens = hub.store.list_api_tokens(&TokenOwner::User(user.clone())).await.unwrap();
    assert!(!tokens.iter().any(|token| token.note.starts_with("Server at ")));
    let model = call(&hub.app, Method::GET, "/hub/api/users/alice", Some(&alice), None).await.json();
    assert_eq!((model["server"].clone(), model["servers"].clone()), (Value::Null, json!({})));

    // A named server, started without a body, removed with the culler's body and no Content-Type.
    let named = call(&hub.app, Method::POST, "/hub/api/users/alice/servers/gpu", Some(&alice), None).await;
    assert_eq!(named.status, StatusCode::CREATED, "{}", named.text);
    assert!(hub.proxy.routes().table().get("/user/alice/gpu/").is_some());
    let removed =
        call(&hub.app, Method::DELETE, "/hub/api/users/alice/servers/gpu", Some(&alice), Some(r#"{"remove": true}"#))
            .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    assert!(hub.proxy.routes().table().get("/user/alice/gpu/").is_none());
    call(&hub.app, Method::DELETE, "/hub/api/users/alice/servers/gpu", Some(&alice), None).await.assert_error(404);
    let bob = user_with_token(&hub.store, "bob", false, &["inherit"]).await;
    call(&hub.app, Method::POST, "/hub/api/users/alice/server", Some(&bob), None).await.assert_error(404);
}

#[tokio::test]
async fn a_server_that_never_answers_fails_without_a_route() {
    let hub = test_hub().await;
    let quick = HubConfig { http_timeout: Duration::from_millis(300), ..hub.hub.config().clone() };
    let spawner = LocalProcessSpawner::new(LocalSpawnerConfig {
        cmd: vec!["python3".into(), "-c".into(), "import time; time.sleep(30)".into()],
        log_dir: hub._dir.path().to_owned(),
        term_timeout: Duration::from_millis(200),
        ..LocalSpawnerConfig::default()
    });
    let deaf = Hub::new(quick, hub.store.clone(), Arc::new(spawner), Arc::new(hub.proxy.clone()));
    let app = router(deaf);
    let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
    let answer = call(&app, Method::POST, "/hub/api/users/alice/server", Some(&alice), None).await;
    answer.assert_error(500);
    assert!(hub.proxy.routes().table().get("/user/alice/").is_none());
    let server = hub.store.get_server(&UserName::parse("alice").unwrap(), &ServerName::default_server()).await.unwrap();
    assert_eq!(server.state, SpawnState::Failed);
    assert!(server.failure.unwrap().contains("did not answer"));
}

#[tokio::test]
async fn serve_answers_on_a_bound_listener_and_stops_on_shutdown() {
    let hub = test_hub().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::serve(hub.hub.clone(), listener, async move {
        let _ = stopped.await;
    }));
    let response = reqwest::get(format!("http://{address}/hub/api")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-jupyterhub-version"], "5.5.4+wasmhub");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_slow_spawn_answers_202_and_a_second_request_202_too() {
    let hub = test_hub().await;
    let impatient = HubConfig { slow_spawn_timeout: Duration::from_millis(1), ..hub.hub.config().clone() };
    let app = router(Hub::new(impatient, hub.store.clone(), hub.hub.spawner_arc(), Arc::new(hub.proxy.clone())));
    let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
    let first = call(&app, Method::POST, "/hub/api/users/alice/server", Some(&alice), None).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    let model = call(&app, Method::GET, "/hub/api/users/alice", Some(&alice), None).await.json();
    if model["servers"][""]["ready"] == false {
        assert_eq!(model["pending"], "spawn");
        let second = call(&app, Method::POST, "/hub/api/users/alice/server", Some(&alice), None).await;
        assert_eq!(second.status, StatusCode::ACCEPTED, "{}", second.text);
    }
    let user = UserName::parse("alice").unwrap();
    for _ in 0..200 {
        let server = hub.store.get_server(&user, &ServerName::default_server()).await.unwrap();
        if server.state == SpawnState::Running {
            assert!(hub.proxy.routes().table().get("/user/alice/").is_some());
            let stopped = call(&app, Method::DELETE, "/hub/api/users/alice/server", Some(&alice), None).await;
            assert_eq!(stopped.status, StatusCode::NO_CONTENT);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the background spawn never finished");
}

/// A hub process that restarts finds its servers in the store: live ones are routed again in a fresh proxy,
/// dead ones put at rest, and routes of servers that no longer run removed.
#[tokio::test]
async fn a_restarted_hub_adopts_live_servers_and_cleans_up_dead_ones() {
    let hub = test_hub().await;
    let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
    let bob = user_with_token(&hub.store, "bob", false, &["inherit"]).await;
    for (name, token) in [("alice", &alice), ("bob", &bob)] {
        let started = call(&hub.app, Method::POST, &format!("/hub/api/users/{name}/server"), Some(token), None).await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    }
    let bob_server =
        hub.store.get_server(&UserName::parse("bob").unwrap(), &ServerName::default_server()).await.unwrap();
    // Bob's server dies while no hub watches it.
    hub.hub.spawner_arc().stop(&wasmhub_spawner::SpawnerState(bob_server.spawner_state.clone())).await.unwrap();

    // The new hub process: same store, a new spawner and an empty proxy holding one stale route.
    let proxy = Proxy::new(ProxyConfig::default()).await.unwrap();
    let mut stale = serde_json::Map::new();
    stale.insert("target".into(), json!("http://127.0.0.1:9"));
    stale.insert("user".into(), json!("carol"));
    stale.insert("server_name".into(), json!(""));
    stale.insert("jupyterhub".into(), json!(true));
    proxy.routes().add("/user/carol/", stale).await.unwrap();
    let spawner = LocalProcessSpawner::new(LocalSpawnerConfig {
        cmd: vec!["python3".into(), "-c".into(), SERVER.into()],
        log_dir: hub._dir.path().to_owned(),
        term_timeout: Duration::from_millis(500),
        ..LocalSpawnerConfig::default()
    });
    let restarted = Hub::new(hub.hub.config().clone(), hub.store.clone(), Arc::new(spawner), Arc::new(proxy.clone()));
    let report = restarted.adopt_servers().await.unwrap();
    assert_eq!(report.adopted, vec!["alice".to_owned()]);
    assert_eq!(report.cleaned_up, vec!["bob".to_owned()]);
    assert_eq!(report.stray_routes_removed, vec!["/user/carol".to_owned()]);

    let route = proxy.routes().table().get("/user/alice/").expect("alice is routed again");
    let url = format!("{}/user/alice/api", route.target().as_str());
    assert!(reqwest::get(&url).await.unwrap().status().as_u16() < 500, "alice's server answers through {url}");
    assert!(proxy.routes().table().get("/user/bob/").is_none());
    let app = router(restarted.clone());
    let model = call(&app, Method::GET, "/hub/api/users/alice", Some(&alice), None).await.json();
    assert_eq!(model["servers"][""]["ready"], true);
    let model = call(&app, Method::GET, "/hub/api/users/bob", Some(&bob), None).await.json();
    assert_eq!(model["servers"], json!({}));
    // Bob can start again; a second adoption changes nothing.
    let again = call(&app, Method::POST, "/hub/api/users/bob/server", Some(&bob), None).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    let report = restarted.adopt_servers().await.unwrap();
    assert_eq!(report.adopted, vec!["alice".to_owned(), "bob".to_owned()]);
    assert!(report.cleaned_up.is_empty() && report.stray_routes_removed.is_empty());
    for name in ["alice", "bob"] {
        let token = if name == "alice" { &alice } else { &bob };
        let stopped = call(&app, Method::DELETE, &format!("/hub/api/users/{name}/server"), Some(token), None).await;
        assert_eq!(stopped.status, StatusCode::NO_CONTENT, "{}", stopped.text);
    }
}

/// Past `concurrent_spawn_limit`, spawns wait for a slot instead of failing.
#[tokio::test]
async fn spawns_beyond_the_limit_queue_and_all_succeed() {
    let hub = test_hub().await;
    let limited = HubConfig { concurrent_spawn_limit: 1, ..hub.hub.config().clone() };
    let app = router(Hub::new(limited, hub.store.clone(), hub.hub.spawner_arc(), Arc::new(hub.proxy.clone())));
    let mut tokens = Vec::new();
    for name in ["u1", "u2", "u3"] {
        tokens.push((name, user_with_token(&hub.store, name, false, &["inherit"]).await));
    }
    let starts = tokens.iter().map(|(name, token)| {
        let app = app.clone();
        async move { call(&app, Method::POST, &format!("/hub/api/users/{name}/server"), Some(token), None).await }
    });
    for answer in futures_util::future::join_all(starts).await {
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    }
    // A server exiting on its own is noticed by the poll and loses its route.
    let user = UserName::parse("u1").unwrap();
    let server = hub.store.get_server(&user, &ServerName::default_server()).await.unwrap();
    hub.hub.spawner_arc().stop(&wasmhub_spawner::SpawnerState(server.spawner_state.clone())).await.unwrap();
    hub.hub.poll_running().await.unwrap();
    assert!(hub.proxy.routes().table().get("/user/u1/").is_none());
    assert_eq!(hub.store.get_server(&user, &ServerName::default_server()).await.unwrap().state, SpawnState::Stopped);
    for (name, token) in &tokens[1..] {
        let stopped = call(&app, Method::DELETE, &format!("/hub/api/users/{name}/server"), Some(token), None).await;
        assert_eq!(stopped.status, StatusCode::NO_CONTENT, "{}", stopped.text);
    }
}

/// A user name with a newline or a bidi control is refused when the user would be created (such a user was
/// created, and its spawn then answered 500), by the API and by login alike.
#[tokio::test]
async fn user_names_with_control_or_bidi_characters_are_refused_at_creation() {
    let hub = test_hub().await;
    for encoded in ["a%0Ab", "adm%E2%80%AEnila"] {
        let path = format!("/hub/api/users/{encoded}");
        let message = call(&hub.app, Method::POST, &path, Some(&hub.admin_token), None).await.assert_error(400);
        assert!(message.starts_with("Invalid username"), "{message}");
    }
    let body = r#"{"usernames": ["ok-user", "bad\nuser"]}"#;
    let answer = call(&hub.app, Method::POST, "/hub/api/users", Some(&hub.admin_token), Some(body)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert!(answer.text.contains("Invalid usernames"), "{}", answer.text);
    let ok_user = call(&hub.app, Method::GET, "/hub/api/users/ok-user", Some(&hub.admin_token), None).await;
    assert_eq!(ok_user.status, StatusCode::NOT_FOUND, "a refused batch creates nobody");
}

/// An anonymous non-GET request under `/hub/user/<name>/<server>/` gets the same answer whether that named
/// server exists or not; a caller with a token still learns where to restart it.
#[tokio::test]
async fn anonymous_requests_do_not_learn_which_named_servers_exist() {
    let hub = test_hub().await;
    let named = HubConfig { allow_named_servers: true, ..hub.hub.config().clone() };
    let app = router(Hub::new(named, hub.store.clone(), hub.hub.spawner_arc(), Arc::new(hub.proxy.clone())));
    let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
    hub.store
        .create_server(&UserName::parse("alice").unwrap(), &ServerName::parse("gpu").unwrap(), "{}")
        .await
        .unwrap();
    let restart_at = |answer: &Answer| {
        let message = answer.json()["message"].as_str().unwrap().to_owned();
        message.rsplit_once(" at ").map(|(_, url)| url.to_owned()).unwrap()
    };
    let existing = call(&app, Method::POST, "/hub/user/alice/gpu/api/x", None, None).await;
    let missing = call(&app, Method::POST, "/hub/user/alice/cpu/api/x", None, None).await;
    assert_eq!((existing.status.as_u16(), missing.status.as_u16()), (424, 424));
    assert_eq!(restart_at(&existing), restart_at(&missing));
    assert!(restart_at(&existing).ends_with("/hub/spawn/alice"), "{}", existing.text);
    let with_token = call(&app, Method::POST, "/hub/user/alice/gpu/api/x", Some(&alice), None).await;
    assert!(restart_at(&with_token).ends_with("/hub/spawn/alice/gpu"), "{}", with_token.text);
}

/// `hub.activeServerLimit` and `hub.namedServerLimitPerUser` are enforced with JupyterHub's status codes and
/// messages (they were accepted and ignored).
#[tokio::test]
async fn the_active_server_and_named_server_limits_refuse_as_jupyterhub_does() {
    let hub = test_hub().await;
    let limited = HubConfig {
        active_server_limit: Some(1),
        named_server_limit_per_user: Some(1),
        allow_named_servers: true,
        ..hub.hub.config().clone()
    };
    let app = router(Hub::new(limited, hub.store.clone(), hub.hub.spawner_arc(), Arc::new(hub.proxy.clone())));
    let u1 = user_with_token(&hub.store, "u1", false, &["inherit"]).await;
    let u2 = user_with_token(&hub.store, "u2", false, &["inherit"]).await;
    let first = call(&app, Method::POST, "/hub/api/users/u1/servers/one", Some(&u1), None).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    // One named server is u1's limit: a second is refused before anything is created.
    let message = call(&app, Method::POST, "/hub/api/users/u1/servers/two", Some(&u1), None).await.assert_error(400);
    assert_eq!(
        message,
        "User u1 already has the maximum of 1 named servers.  One must be deleted before a new server can be created"
    );
    let u1_name = UserName::parse("u1").unwrap();
    assert_eq!(hub.store.list_servers(Some(&u1_name)).await.unwrap().len(), 1, "no record for the refused server");
    // One active server is the hub's limit: u2 must wait.
    let message = call(&app, Method::POST, "/hub/api/users/u2/server", Some(&u2), None).await.assert_error(429);
    assert_eq!(message, "Active user limit exceeded. Try again in a few minutes.");
    let stopped = call(&app, Method::DELETE, "/hub/api/users/u1/servers/one", Some(&u1), None).await;
    assert_eq!(stopped.status, StatusCode::NO_CONTENT, "{}", stopped.text);
    let second = call(&app, Method::POST, "/hub/api/users/u2/server", Some(&u2), None).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
    call(&app, Method::DELETE, "/hub/api/users/u2/server", Some(&u2), None).await;
}

/// Every documented API operation, fed hostile input as admin, as a user and with bad credentials: malformed
/// JSON, JSON of the wrong type, wrong field types, unknown and over-long names. Each answer must be one of
/// JupyterHub's 4xx (or a success), in its `{"status", "message"}` shape, and never a 500.
#[tokio::test]
async fn hostile_input_to_every_api_operation_never_gives_a_500() {
    let hub = test_hub().await;
    let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
    let long_name = "x".repeat(300);
    let names = ["nobody", long_name.as_str(), "%00", "a%2Fb", "..", "ALICE", "alice"];
    let bodies: [Option<&str>; 10] = [
        None,
        Some("{"),
        Some("not json"),
        Some("[]"),
        Some("\"text\""),
        Some("12"),
        Some("null"),
        Some(r#"{"admin": "yes", "usernames": 5, "users": {"a": 1}, "expires_in": "soon", "scopes": "all"}"#),
        Some(r#"{"name": 7, "remove": "maybe", "properties": [], "servers": "x", "proxy": 1, "last_activity": 5}"#),
        Some(r#"{"usernames": ["ok", ""], "note": null, "roles": ["no-such-role"], "servers": {"": {"x": 1}}}"#),
    ];
    let long_token = "t".repeat(500);
    let bad_tokens = [Some("not-a-token"), Some("abcd"), Some(long_token.as_str())];
    let mut checked = 0;
    for operation in crate::openapi::OPERATIONS {
        // Shutting down would end the test hub; its input handling is covered in shutdown.rs.
        if operation.path == "/shutdown" || operation.path.ends_with("/progress") {
            continue;
        }
        let method = Method::from_bytes(operation.method.to_uppercase().as_bytes()).unwrap();
        for name in names {
            let path = operation
                .path
                .replace("{name}", name)
                .replace("{server_name}", name)
                .replace("{token_id}", if name == "alice" { "a1" } else { name });
            let uri = format!("/hub/api{path}");
            let tokens = [Some(hub.admin_token.as_str()), Some(alice.as_str())].into_iter().chain(bad_tokens);
            for token in tokens {
                for body in bodies {
                    let answer = call(&hub.app, method.clone(), &uri, token, body).await;
                    checked += 1;
                    let status = answer.status.as_u16();
                    assert!(status < 500, "{method} {uri} with body {body:?} gave {status}: {}", answer.text);
                    if status >= 400 && operation.path.starts_with("/oauth2/") {
                        // OAuth endpoints answer in RFC 6749's shape, as JupyterHub's oauthlib does.
                        let json = answer.json();
                        assert!(json["error"].is_string() || status == 403, "{method} {uri} {body:?}: {json}");
                    } else if status >= 400 {
                        let json = answer.json();
                        assert_eq!(json["status"], status, "{method} {uri} {body:?}: {json}");
                        assert!(json["message"].is_string(), "{method} {uri} {body:?}: {json}");
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "only {checked} requests were made");
}

#[tokio::test]
async fn with_subdomain_host_servers_live_on_their_users_hosts_and_the_hub_on_its_own() {
    let config = HubConfig {
        subdomain_host: Some(crate::SubdomainHost::parse("http://hub.test:8000").unwrap()),
        ..HubConfig::default()
    };
    let TestHub { app, store, proxy, admin_token: admin, _dir, .. } =
        test_hub_with(config, ProxyConfig { host_routing: true, ..ProxyConfig::default() }).await;
    user_with_token(&store, "alice", false, &["inherit"]).await;

    let started = call(&app, Method::POST, "/hub/api/users/alice/server", Some(&admin), None).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    // The route starts with alice's host, her URLs carry it, and her OAuth callback is on it.
    assert!(proxy.routes().table().get("/alice.hub.test/user/alice/").is_some());
    let model = call(&app, Method::GET, "/hub/api/users/alice", Some(&admin), None).await.json();
    assert_eq!(model["server"], "http://alice.hub.test:8000/user/alice/");
    assert_eq!(model["servers"][""]["url"], "http://alice.hub.test:8000/user/alice/");
    assert_eq!(model["servers"][""]["progress_url"], "/hub/api/users/alice/server/progress");
    let client = store.get_oauth_client("jupyterhub-user-alice").await.unwrap();
    assert_eq!(client.redirect_uri, "http://alice.hub.test:8000/user/alice/oauth_callback");
    // `GET /proxy` names the route as JupyterHub does under host routing.
    let routes = call(&app, Method::GET, "/hub/api/proxy", Some(&admin), None).await.json();
    assert!(routes.get("alice.hub.test/user/alice/").is_some(), "{routes}");

    // Nothing of the hub answers on a user's host: it is sent to the same place on the hub's.
    for (path, location) in [
        ("/hub/api/user", "http://hub.test:8000/hub/api/user"),
        ("/hub/home?x=1", "http://hub.test:8000/hub/home?x=1"),
        ("/user/alice/lab", "http://hub.test:8000/hub/user/alice/lab"),
    ] {
        let answer = call_with(&app, Method::GET, path, Some(&admin), None, &[("host", "alice.hub.test:8000")]).await;
        assert_eq!(answer.status, StatusCode::FOUND, "{path}");
        assert_eq!(answer.headers[header::LOCATION], location, "{path}");
    }
    let on_hub = call_with(&app, Method::GET, "/hub/api/user", Some(&admin), None, &[("host", "hub.test:8000")]).await;
    assert_eq!(on_hub.status, StatusCode::OK);
    let stopped = call(&app, Method::DELETE, "/hub/api/users/alice/server", Some(&admin), None).await;
    assert_eq!(stopped.status, StatusCode::NO_CONTENT, "{}", stopped.text);
    assert!(proxy.routes().table().get("/alice.hub.test/user/alice/").is_none());
}

#[tokio::test]
async fn forwarding_headers_count_only_from_a_trusted_proxy() {
    use axum::extract::ConnectInfo;
    let secure_xsrf_cookie = |trusted: Vec<std::net::IpAddr>, peer: Option<&'static str>| async move {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("hub.sqlite")).await.unwrap());
        let proxy = Proxy::new(ProxyConfig::default()).await.unwrap();
        let spawner = LocalProcessSpawner::new(LocalSpawnerConfig::default());
        let config = HubConfig { trusted_downstream_ips: trusted, ..HubConfig::default() };
        let app = router(Hub::new(config, store, Arc::new(spawner), Arc::new(proxy)));
        let mut request = Request::builder().uri("/hub/login").header("x-forwarded-proto", "https");
        if let Some(peer) = peer {
            request = request.extension(ConnectInfo(peer.parse::<std::net::SocketAddr>().unwrap()));
        }
        let response = app.oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
        cookie.contains("; Secure")
    };
    // The built-in proxy (in process, no peer) and loopback are believed; a stranger's header is dropped.
    assert!(secure_xsrf_cookie(Vec::new(), None).await);
    assert!(secure_xsrf_cookie(Vec::new(), Some("127.0.0.1:5000")).await);
    assert!(!secure_xsrf_cookie(Vec::new(), Some("192.0.2.7:5000")).await);
    assert!(secure_xsrf_cookie(vec!["192.0.2.7".parse().unwrap()], Some("192.0.2.7:5000")).await);
}

#[tokio::test]
async fn a_start_asked_for_before_a_restart_is_carried_out_after_it() {
    let hub = test_hub().await;
    user_with_token(&hub.store, "dora", false, &["inherit"]).await;
    let dora = UserName::parse("dora").unwrap();
    // The old process recorded the request and died before beginning the spawn.
    hub.store.create_server(&dora, &ServerName::default_server(), "{}").await.unwrap();
    let requested = wasmhub_store::ServerUpdate { state: Some(SpawnState::Requested), ..Default::default() };
    hub.store.update_server(&dora, &ServerName::default_server(), &requested).await.unwrap();

    let report = hub.hub.adopt_servers().await.unwrap();
    assert_eq!(report.resumed, vec!["dora".to_owned()]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let server = hub.store.get_server(&dora, &ServerName::default_server()).await.unwrap();
        if server.state == SpawnState::Running {
            break;
        }
        assert!(server.state != SpawnState::Failed, "{server:?}");
        assert!(std::time::Instant::now() < deadline, "dora's spawn did not complete: {server:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hub.proxy.routes().table().get("/user/dora/").is_some());
    let stopped = call(&hub.app, Method::DELETE, "/hub/api/users/dora/server", Some(&hub.admin_token), None).await;
    assert_eq!(stopped.status, StatusCode::NO_CONTENT, "{}", stopped.text);
}

#[tokio::test]
async fn one_hub_acts_on_a_database_and_the_next_one_as_soon_as_it_lets_go() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio_util::sync::CancellationToken;
    let first = test_hub().await;
    let settings =
        crate::RunSettings { poll_interval: Duration::from_secs(60), culler: None, route_check_interval: None };
    // A second hub process on the same database.
    let second = |wait: bool| {
        let hub = Hub::new(
            first.hub.config().clone(),
            first.store.clone(),
            first.hub.spawner_arc(),
            Arc::new(first.proxy.clone()),
        );
        let (acting, shutdown) = (Arc::new(AtomicBool::new(false)), CancellationToken::new());
        let run = {
            let (acting, shutdown, store, settings) =
                (acting.clone(), shutdown.clone(), first.store.clone(), settings.clone());
            tokio::spawn(async move {
                let lease_settings = crate::LeaseSettings { ttl: Duration::from_secs(10), wait };
                let Some(lease) = crate::Lease::take(store, &lease_settings, &shutdown).await? else {
                    return Ok(());
                };
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let serving = |_: &Hub| {
                    acting.store(true, Ordering::SeqCst);
                    Ok(())
                };
                let outcome = crate::run(hub, &lease, listener, settings, shutdown, serving, || async {}).await;
                lease.release().await;
                outcome
            })
        };
        (acting, shutdown, run)
    };
    let (first_acting, first_shutdown, first_run) = second(false);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !first_acting.load(Ordering::SeqCst) {
        assert!(std::time::Instant::now() < deadline, "the first hub never took the lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // On one SQLite file a second hub is refused, with what to do instead.
    let (_, _, refused) = second(false);
    let error = refused.await.unwrap().unwrap_err().to_string();
    assert!(error.contains("another hub") && error.contains("PostgreSQL"), "{error}");
    // Waiting (PostgreSQL's rolling update), it acts only once the first one has let go, and soon after.
    let (next_acting, next_shutdown, next_run) = second(true);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!next_acting.load(Ordering::SeqCst), "two hubs acted on one database");
    first_shutdown.cancel();
    first_run.await.unwrap().unwrap();
    let let_go = std::time::Instant::now();
    while !next_acting.load(Ordering::SeqCst) {
        assert!(let_go.elapsed() < Duration::from_secs(2), "the next hub did not act within 2 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    next_shutdown.cancel();
    next_run.await.unwrap().unwrap();

    // A hub of this machine that was killed (its lease left behind) does not keep the next one out.
    let host = std::fs::read_to_string("/etc/hostname").map(|name| name.trim().to_owned()).unwrap_or_default();
    let dead = format!("{host}:{}:killed", u32::MAX - 1);
    assert_eq!(first.store.take_lease(&dead, Duration::from_secs(60)).await.unwrap(), None);
    let (after_kill, after_kill_shutdown, after_kill_run) = second(false);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !after_kill.load(Ordering::SeqCst) {
        assert!(std::time::Instant::now() < deadline, "a dead hub's lease kept the next one out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    after_kill_shutdown.cancel();
    after_kill_run.await.unwrap().unwrap();
}
