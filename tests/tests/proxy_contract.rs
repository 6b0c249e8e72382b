//! The configurable-http-proxy contract (`research/proxy.md` §1–2), written once and run against both
//! configurable-http-proxy 5.3 (`chp::*`) and `wasmhub proxy` (`wasmhub::*`).
//!
//! Each case is an `async fn case(kind: ProxyKind)`; the `contract!` macro at the bottom turns every case into one
//! `#[tokio::test]` per proxy. Where the research notes and CHP disagree, the expectation follows what CHP does on
//! the wire, because the point of `wasmhub proxy` is to be a drop-in for it: `cargo nextest run -p
//! wasmhub-system-tests --test proxy_contract chp::` must always pass.
//!
//! Every test starts its own proxy and backend on fresh ports, so tests are independent and run in parallel. Waits
//! are polls with generous deadlines, never assertions on how fast something happened.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use wasmhub_system_tests::backend::{
    Backend, ClosedPort, ERROR_PAGE_CONTENT_TYPE, ERROR_PAGE_MARKER, PatternCheck, UploadReport, pattern,
};
use wasmhub_system_tests::proxy_harness::{
    ApiAuth, BoxError, ProxyKind, RunningProxy, TOKEN, WsClient, now_ms, parse_timestamp_ms, poll_until, send,
};

/// How long an activity update may take to show up in the API before a test gives up.
const ACTIVITY_WAIT: Duration = Duration::from_secs(10);
/// A little more than 100 MiB, deliberately not a multiple of any chunk size.
const LARGE_BODY: u64 = 100 * 1024 * 1024 + 12_345;

/// What the backend saw as request-target when `target` was requested through the proxy.
async fn forwarded(proxy: &RunningProxy, target: &str) -> String {
    let response = proxy.get(target).await;
    assert_eq!(response.status, 200, "GET {target}: {} via {}", response.text(), proxy.context());
    response.echo().uri
}

/// The route table's keys, sorted.
async fn route_keys(proxy: &RunningProxy) -> Vec<String> {
    let mut keys: Vec<String> = proxy.list_routes().await.keys().cloned().collect();
    keys.sort();
    keys
}

/// Route data without `last_activity` (for comparing with what was posted).
fn without_activity(mut route: Value) -> Value {
    route.as_object_mut().expect("route data is an object").remove("last_activity");
    route
}

/// A proxy and one backend with `/` → `<backend>/ROOT` and `/user/alice` → `<backend>/ALICE`, so the prefix the
/// backend sees tells which route matched (the table in research/proxy.md §2).
async fn root_and_alice(kind: ProxyKind, args: &[&str]) -> (RunningProxy, Backend) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, args).await;
    proxy.add_target("/", &format!("{}/ROOT", backend.url())).await;
    proxy.add_target("/user/alice", &format!("{}/ALICE", backend.url())).await;
    (proxy, backend)
}

// =================================================================================================================
// REST API: authentication

async fn api_auth_rejects_missing_wrong_and_bearer_tokens(kind: ProxyKind) {
    let proxy = RunningProxy::start(kind, &[]).await;
    let bearer = format!("Bearer {TOKEN}");
    // The scheme is matched case-sensitively: `Token` is not `token`.
    let capitalised = format!("Token {TOKEN}");
    let cases = [
        ("no header", ApiAuth::None),
        ("wrong token", ApiAuth::Header("token not-the-token")),
        ("Bearer", ApiAuth::Header(&bearer)),
        ("capitalised scheme", ApiAuth::Header(&capitalised)),
    ];
    let requests = [
        ("GET", "/api/routes", String::new()),
        ("GET", "/api/routes/user/alice", String::new()),
        ("POST", "/api/routes/user/alice", json!({"target": "http://127.0.0.1:9"}).to_string()),
        ("DELETE", "/api/routes/user/alice", String::new()),
    ];
    for (label, auth) in cases {
        for (method, target, body) in &requests {
            let response = proxy.api(method, target, auth, body).await;
            assert_eq!(response.status, 403, "{label}: {method} {target} via {}", proxy.context());
            assert!(response.body.is_empty(), "{label}: 403 body must be empty, got {:?}", response.text());
        }
    }
    assert!(proxy.list_routes().await.is_empty(), "a rejected POST must not add a route");
}

async fn api_auth_accepts_token_and_xtoken(kind: ProxyKind) {
    let proxy = RunningProxy::start(kind, &[]).await;
    // The token is found anywhere in the header after `token` and whitespace, so these all pass.
    for header in [format!("token {TOKEN}"), format!("xtoken {TOKEN}"), format!("token   {TOKEN}")] {
        let response = proxy.api("GET", "/api/routes", ApiAuth::Header(&header), "").await;
        assert_eq!(response.status, 200, "{header:?}: {} via {}", response.text(), proxy.context());
    }
    let xtoken = format!("xtoken {TOKEN}");
    let body = json!({"target": "http://127.0.0.1:9"}).to_string();
    let response = proxy.api("POST", "/api/routes/user/x", ApiAuth::Header(&xtoken), &body).await;
    assert_eq!(response.status, 201, "POST with xtoken: {}", response.text());
    assert_eq!(route_keys(&proxy).await, ["/user/x"]);
}

async fn api_unauthenticated_without_env_token(kind: ProxyKind) {
    let proxy = RunningProxy::start_with(kind, None, &[]).await;
    let response = proxy.api("GET", "/api/routes", ApiAuth::None, "").await;
    assert_eq!(response.status, 200, "GET without token: {} via {}", response.text(), proxy.context());
    assert_eq!(response.json(), json!({}));
    let body = json!({"target": "http://127.0.0.1:9"}).to_string();
    assert_eq!(proxy.api("POST", "/api/routes/user/x", ApiAuth::None, &body).await.status, 201);
    // Any header is ignored when there is no token to compare with.
    assert_eq!(proxy.api("GET", "/api/routes/user/x", ApiAuth::Header("token whatever"), "").await.status, 200);
    assert_eq!(proxy.api("DELETE", "/api/routes/user/x", ApiAuth::None, "").await.status, 204);
}

// =================================================================================================================
// REST API: paths, methods, status codes

async fn api_unknown_paths_404(kind: ProxyKind) {
    let proxy = RunningProxy::start(kind, &[]).await;
    for target in ["/", "/api", "/api/", "/api/route", "/api/routesx", "/api/routesx/user", "/other/api/routes"] {
        let response = proxy.api("GET", target, ApiAuth::Token, "").await;
        assert_eq!(response.status, 404, "GET {target} via {}", proxy.context());
        assert_eq!(response.text(), "Not Found", "GET {target}");
    }
}

async fn api_other_methods_405(kind: ProxyKind) {
    let proxy = RunningProxy::start(kind, &[]).await;
    for method in ["PUT", "PATCH", "OPTIONS"] {
        for target in ["/api/routes", "/api/routes/user/alice"] {
            let response = proxy.api(method, target, ApiAuth::Token, "").await;
            assert_eq!(response.status, 405, "{method} {target} via {}", proxy.context());
            assert_eq!(response.text(), "Method not supported", "{method} {target}");
        }
    }
}

async fn api_post_201_empty_body(kind: ProxyKind) {
    let proxy = RunningProxy::start(kind, &[]).await;
    let body = json!({"target": "http://127.0.0.1:9"}).to_string();
    let response = proxy.api("POST", "/api/routes/user/alice", ApiAuth::Token, &body).await;
    assert_eq!(response.status, 201, "{} via {}", response.text(), proxy.context());
    assert!(response.body.is_empty(), "201 body must be empty, got {:?}", response.text());
    assert_eq!(response.header("content-type"), None, "201 has no content-type");
}

async fn api_post_upserts(kind: ProxyKind) {
    let first = Backend::start().await;
    let second = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_route("/user/alice", json!({"target": first.url(), "user": "alice", "old_only": 1})).await;
    proxy.add_route("/user/alice", json!({"target": second.url(), "user": "alice2"})).await;
    // The second POST replaces the data as a whole: keys of the first one do not survive.
    let route = proxy.get_route("/user/alice").await.expect("route exists");
    assert_eq!(without_activity(route), json!({"target": second.url(), "user": "alice2"}));
    assert_eq!(route_keys(&proxy).await, ["/user/alice"]);
    assert_eq!(forwarded(&proxy, "/user/alice/x").await, "/user/alice/x");
    assert!(first.seen().is_empty(), "the replaced target still got {:?}", first.seen());
    assert_eq!(second.seen(), ["/user/alice/x"]);
}

async fn api_route_data_verbatim_with_last_activity(kind: ProxyKind) {
    let proxy = RunningProxy::start(kind, &[]).await;
    let data = json!({
        "target": "http://127.0.0.1:9200",
        "jupyterhub": true,
        "user": "alice",
        "server_name": "",
        "nested": {"list": [1, 2.5, "x", null, {"deep": false}], "empty": {}},
        "unicode": "é ✓ \"quoted\"",
    });
    let before = now_ms();
    proxy.add_route("/user/alice", data.clone()).await;
    let after = now_ms();

    let single = proxy.get_route("/user/alice").await.expect("route exists");
    let listed = proxy.list_routes().await["/user/alice"].clone();
    assert_eq!(single, listed, "GET one route and GET all must agree");
    let activity = single["last_activity"].as_str().unwrap_or_else(|| panic!("no last_activity in {single}"));
    let ms = parse_timestamp_ms(activity)
        .unwrap_or_else(|| panic!("last_activity {activity:?} is not ISO-8601 UTC with milliseconds and Z"));
    // Same machine, same clock: allow for clock granularity only.
    assert!(before - 1000 <= ms && ms <= after + 1000, "last_activity {activity} not at add time");
    assert_eq!(without_activity(single), data, "route data must come back verbatim");

    let response = proxy.api("GET", "/api/routes/user/alice", ApiAuth::Token, "").await;
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "content-type {content_type:?}");
    let response = proxy.api("GET", "/api/routes", ApiAuth::Token, "").await;
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "content-type {content_type:?}");
}

async fn api_post_requires_string_target(kind: ProxyKind) {
    let proxy = RunningProxy::start(kind, &[]).await;
    // `null` parses as JSON and counts as an empty object: it fails for the missing target, not as bad JSON.
    for body in
        [r#"{}"#, r#"{"target": 5}"#, r#"{"target": null}"#, r#"{"target": ["http://x"]}"#, r#"{"user": "a"}"#, "null"]
    {
        let response = proxy.api("POST", "/api/routes/user/alice", ApiAuth::Token, body).await;
        assert_eq!(response.status, 400, "body {body}: {} via {}", response.text(), proxy.context());
        assert_eq!(response.text(), "Must specify 'target' as string", "body {body}");
    }
    assert!(proxy.list_routes().await.is_empty(), "a rejected POST must not add a route");
}

async fn api_post_invalid_json(kind: ProxyKind) {
    let proxy = RunningProxy::start(kind, &[]).await;
    // The message goes on with the parser's own words, so only the prefix is part of the contract.
    for body in ["{not json", "", r#"{"target":"#, r#"{"target": "http://x",}"#] {
        let response = proxy.api("POST", "/api/routes/user/alice", ApiAuth::Token, body).await;
        assert_eq!(response.status, 400, "body {body:?}: {} via {}", response.text(), proxy.context());
        assert!(response.text().starts_with("Body not valid JSON"), "body {body:?}: message {:?}", response.text());
    }
    assert!(proxy.list_routes().await.is_empty(), "a rejected POST must not add a route");
}

async fn api_get_single_route(kind: ProxyKind) {
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_route("/user/alice", json!({"target": "http://127.0.0.1:9", "user": "alice"})).await;
    let response = proxy.api("GET", "/api/routes/user/alice", ApiAuth::Token, "").await;
    assert_eq!(response.status, 200, "{} via {}", response.text(), proxy.context());
    assert_eq!(without_activity(response.json()), json!({"target": "http://127.0.0.1:9", "user": "alice"}));
    // The API addresses routes exactly; it does no prefix matching.
    for missing in ["/api/routes/user/nobody", "/api/routes/user", "/api/routes/user/alice/tree"] {
        let response = proxy.api("GET", missing, ApiAuth::Token, "").await;
        assert_eq!(response.status, 404, "GET {missing}: {}", response.text());
        assert!(response.body.is_empty(), "GET {missing}: 404 body must be empty, got {:?}", response.text());
    }
}

async fn api_delete_route(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user", &format!("{}/USER", backend.url())).await;
    proxy.add_target("/user/alice", &format!("{}/ALICE", backend.url())).await;

    let response = proxy.api("DELETE", "/api/routes/user", ApiAuth::Token, "").await;
    assert_eq!(response.status, 204, "{} via {}", response.text(), proxy.context());
    assert!(response.body.is_empty(), "204 body must be empty");
    let response = proxy.api("DELETE", "/api/routes/user", ApiAuth::Token, "").await;
    assert_eq!(response.status, 404, "deleting a missing route");
    assert!(response.body.is_empty(), "404 body must be empty");
    assert_eq!(proxy.get_route("/user").await, None);
    assert_eq!(route_keys(&proxy).await, ["/user/alice"]);

    // Removing a parent keeps the child routable, and the parent's other paths stop matching.
    assert_eq!(forwarded(&proxy, "/user/alice/x").await, "/ALICE/user/alice/x");
    assert_eq!(proxy.get("/user/bob").await.status, 404);
    assert_eq!(proxy.delete_route("/user/alice").await, 204);
    assert_eq!(proxy.get("/user/alice/x").await.status, 404);
    assert!(proxy.list_routes().await.is_empty());
}

// =================================================================================================================
// REST API: route keys

async fn api_key_trailing_slash_ignored(kind: ProxyKind) {
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/alice/", "http://127.0.0.1:9").await;
    assert_eq!(route_keys(&proxy).await, ["/user/alice"]);
    assert!(proxy.get_route("/user/alice").await.is_some());
    assert!(proxy.get_route("/user/alice/").await.is_some());
    assert_eq!(proxy.delete_route("/user/alice/").await, 204);
    assert!(proxy.list_routes().await.is_empty());
}

async fn api_key_percent_decoded(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/b%40r/s%20p", &backend.url()).await;
    // Keys are stored decoded, and any spelling that decodes the same addresses the route.
    assert_eq!(route_keys(&proxy).await, ["/user/b@r/s p"]);
    assert!(proxy.get_route("/user/b%40r/s%20p").await.is_some());
    assert!(proxy.get_route("/user/b@r/s%20p").await.is_some());
    // Requests match on the decoded path but reach the backend as sent.
    assert_eq!(forwarded(&proxy, "/user/b%40r/s%20p/tree?x=1").await, "/user/b%40r/s%20p/tree?x=1");
    assert_eq!(forwarded(&proxy, "/user/b@r/s%20p/tree").await, "/user/b@r/s%20p/tree");
    assert_eq!(proxy.delete_route("/user/b%40r/s%20p").await, 204);
    assert!(proxy.list_routes().await.is_empty());
}

async fn api_root_route_without_path(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    // `POST /api/routes` with no path is the root route; a leading `/` is implied.
    let body = json!({"target": backend.url()}).to_string();
    let response = proxy.api("POST", "/api/routes", ApiAuth::Token, &body).await;
    assert_eq!(response.status, 201, "{} via {}", response.text(), proxy.context());
    assert_eq!(route_keys(&proxy).await, ["/"]);
    assert_eq!(forwarded(&proxy, "/anything/x?y=1").await, "/anything/x?y=1");
    // `/api/routes/` is the table, not the root route's data.
    let response = proxy.api("GET", "/api/routes/", ApiAuth::Token, "").await;
    assert_eq!(response.status, 200);
    assert_eq!(without_activity(response.json()["/"].clone()), json!({"target": backend.url()}));
    assert_eq!(proxy.delete_route("/").await, 204);
    assert!(proxy.list_routes().await.is_empty());
}

async fn api_list_includes_default_target(kind: ProxyKind) {
    let backend = Backend::start().await;
    let default = format!("{}/DEF", backend.url());
    let proxy = RunningProxy::start(kind, &["--default-target", &default]).await;
    proxy.add_target("/user/alice", &backend.url()).await;
    let routes = proxy.list_routes().await;
    assert_eq!(route_keys(&proxy).await, ["/", "/user/alice"]);
    assert_eq!(routes["/"]["target"], json!(default));
    assert!(parse_timestamp_ms(routes["/"]["last_activity"].as_str().unwrap_or_default()).is_some(), "{routes:?}");
}

// =================================================================================================================
// REST API: inactive_since

async fn api_inactive_since_filters(kind: ProxyKind) {
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/a", "http://127.0.0.1:9").await;
    let a = proxy.last_activity("/a").await;
    // Make sure /b is added in a later millisecond than /a.
    poll_until("the clock to pass /a's last_activity", Duration::from_secs(5), || async {
        (now_ms() > parse_timestamp_ms(&a).unwrap() + 2).then_some(())
    })
    .await;
    proxy.add_target("/b", "http://127.0.0.1:9").await;
    let b = proxy.last_activity("/b").await;
    assert!(parse_timestamp_ms(&a) < parse_timestamp_ms(&b), "/a {a} must be older than /b {b}");

    let keys = |query: String| {
        let proxy = &proxy;
        async move {
            let response = proxy.api("GET", &format!("/api/routes?{query}"), ApiAuth::Token, "").await;
            assert_eq!(response.status, 200, "?{query}: {} via {}", response.text(), proxy.context());
            let mut keys: Vec<String> = response.json().as_object().expect("object").keys().cloned().collect();
            keys.sort();
            keys
        }
    };
    // Strictly older than the given time: /b's own timestamp excludes /b.
    assert_eq!(keys(format!("inactive_since={b}")).await, ["/a"]);
    assert_eq!(keys(format!("inactiveSince={b}")).await, ["/a"]);
    assert_eq!(keys("inactive_since=2000-01-01T00:00:00.000Z".into()).await, Vec::<String>::new());
    assert_eq!(keys("inactiveSince=2000-01-01T00:00:00%2B00:00".into()).await, Vec::<String>::new());
    assert_eq!(keys("inactive_since=2999-01-01T00:00:00Z".into()).await, ["/a", "/b"]);
    assert_eq!(keys("inactive_since=2999-01-01".into()).await, ["/a", "/b"]);
    // An empty value is no filter at all.
    assert_eq!(keys("inactive_since=".into()).await, ["/a", "/b"]);
}

async fn api_inactive_since_bad_date_400(kind: ProxyKind) {
    let proxy = RunningProxy::start(kind, &[]).await;
    for (query, value) in [("inactive_since=notadate", "notadate"), ("inactiveSince=yesterday", "yesterday")] {
        let response = proxy.api("GET", &format!("/api/routes?{query}"), ApiAuth::Token, "").await;
        assert_eq!(response.status, 400, "?{query}: {} via {}", response.text(), proxy.context());
        assert_eq!(response.text(), format!("Invalid datestamp '{value}' must be ISO8601."));
    }
}

// =================================================================================================================
// Routing

async fn routing_longest_whole_segment_prefix(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    for (path, tag) in [("/", "ROOT"), ("/user", "USER"), ("/user/alice", "ALICE"), ("/user/alice/lab", "LAB")] {
        proxy.add_target(path, &format!("{}/{tag}", backend.url())).await;
    }
    for (request, expected) in [
        ("/user/alice", "/ALICE/user/alice"),
        ("/user/alice/", "/ALICE/user/alice/"),
        ("/user/alice/tree/x.ipynb", "/ALICE/user/alice/tree/x.ipynb"),
        ("/user/alice/lab", "/LAB/user/alice/lab"),
        ("/user/alice/lab/x", "/LAB/user/alice/lab/x"),
        ("/user/alice/labx", "/ALICE/user/alice/labx"),
        ("/user/bob", "/USER/user/bob"),
        ("/user", "/USER/user"),
        ("/other", "/ROOT/other"),
    ] {
        assert_eq!(forwarded(&proxy, request).await, expected, "request {request} via {}", proxy.context());
    }
}

async fn routing_segment_boundary(kind: ProxyKind) {
    let (proxy, _backend) = root_and_alice(kind, &[]).await;
    assert_eq!(forwarded(&proxy, "/user/alicebob/x").await, "/ROOT/user/alicebob/x");
    assert_eq!(forwarded(&proxy, "/user/alic").await, "/ROOT/user/alic");
    assert_eq!(forwarded(&proxy, "/user/alice").await, "/ALICE/user/alice");
}

async fn routing_case_sensitive(kind: ProxyKind) {
    let (proxy, _backend) = root_and_alice(kind, &[]).await;
    assert_eq!(forwarded(&proxy, "/USER/alice/x").await, "/ROOT/USER/alice/x");
    assert_eq!(forwarded(&proxy, "/user/Alice/x").await, "/ROOT/user/Alice/x");
}

async fn routing_empty_segments(kind: ProxyKind) {
    let (proxy, _backend) = root_and_alice(kind, &[]).await;
    // An empty segment is a segment: `/user//alice` is not under `/user/alice`.
    assert_eq!(forwarded(&proxy, "/user//alice//x").await, "/ROOT/user//alice//x");
    assert_eq!(forwarded(&proxy, "/user/alice//x").await, "/ALICE/user/alice//x");
}

async fn routing_encoded_chars_decoded_for_matching_forwarded_raw(kind: ProxyKind) {
    let (proxy, _backend) = root_and_alice(kind, &[]).await;
    assert_eq!(forwarded(&proxy, "/user%2Falice/x").await, "/ALICE/user%2Falice/x");
    assert_eq!(forwarded(&proxy, "/user/%61lice/x").await, "/ALICE/user/%61lice/x");
}

async fn routing_dot_segments_normalised(kind: ProxyKind) {
    let (proxy, _backend) = root_and_alice(kind, &[]).await;
    // Dot segments are resolved both for matching and in the forwarded path, so they cannot escape a route.
    assert_eq!(forwarded(&proxy, "/user/alice/../bob/x").await, "/ROOT/user/bob/x");
    assert_eq!(forwarded(&proxy, "/user/alice/%2e%2e/%2e%2e/etc").await, "/ROOT/etc");
    assert_eq!(forwarded(&proxy, "/user/bob/../alice/x").await, "/ALICE/user/alice/x");
}

async fn routing_bad_percent_escape_500(kind: ProxyKind) {
    let (proxy, backend) = root_and_alice(kind, &[]).await;
    let response = proxy.get("/user/alice/%E0%A4%A").await;
    assert_eq!(response.status, 500, "{} via {}", response.text(), proxy.context());
    assert!(backend.seen().is_empty(), "nothing may be forwarded, backend got {:?}", backend.seen());
}

async fn routing_no_route_404(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    assert_eq!(proxy.get("/anything").await.status, 404, "empty table via {}", proxy.context());
    proxy.add_target("/user/alice", &backend.url()).await;
    for request in ["/", "/user", "/user/bob/x", "/user/alicebob"] {
        assert_eq!(proxy.get(request).await.status, 404, "GET {request} via {}", proxy.context());
    }
    assert!(backend.seen().is_empty(), "backend got {:?}", backend.seen());
}

async fn routing_default_target(kind: ProxyKind) {
    let backend = Backend::start().await;
    let default = format!("{}/DEF", backend.url());
    let proxy = RunningProxy::start(kind, &["--default-target", &default]).await;
    assert_eq!(forwarded(&proxy, "/x/y?z=1").await, "/DEF/x/y?z=1");
    proxy.add_target("/user/alice", &format!("{}/ALICE", backend.url())).await;
    assert_eq!(forwarded(&proxy, "/user/alice/x").await, "/ALICE/user/alice/x");
    assert_eq!(forwarded(&proxy, "/user/bob/x").await, "/DEF/user/bob/x");
}

async fn routing_query_kept_and_target_path_prepended(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/alice", &format!("{}/prefix/path", backend.url())).await;
    proxy.add_target("/user/bob", &backend.url()).await;
    assert_eq!(forwarded(&proxy, "/user/alice/tree?a=1&b=%20x&c").await, "/prefix/path/user/alice/tree?a=1&b=%20x&c");
    assert_eq!(forwarded(&proxy, "/user/bob/api/kernels?token=abc").await, "/user/bob/api/kernels?token=abc");
    assert_eq!(forwarded(&proxy, "/user/bob?x=y").await, "/user/bob?x=y");
}

// =================================================================================================================
// Forwarding: requests, responses, headers

async fn forward_method_and_body(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/alice", &backend.url()).await;
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let body = Bytes::from(vec![b'x'; 1234]);
        let response = proxy.request(method, "/user/alice/api/contents", &[], body).await;
        let echo = response.echo();
        assert_eq!(echo.method, method);
        assert_eq!(echo.uri, "/user/alice/api/contents");
        assert_eq!(echo.body_len, 1234, "{method} body");
    }
}

async fn forward_response_status_and_headers(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/alice", &backend.url()).await;
    let response = proxy.get("/user/alice/x").await;
    assert_eq!(response.header("x-backend"), Some("echo"), "backend response headers are passed on");
    assert_eq!(response.header("content-type"), Some("application/json"));
    // Redirects are passed on untouched (no rewriting without --auto-rewrite).
    let response = proxy.get("/user/alice/status?code=302").await;
    assert_eq!(response.status, 302, "via {}", proxy.context());
    assert_eq!(response.header("location"), Some("/elsewhere"));
    assert_eq!(response.text(), "status 302");
    for code in [201u16, 404, 418, 500] {
        let response = proxy.get(&format!("/user/alice/status?code={code}")).await;
        assert_eq!(response.status, code, "backend status {code} via {}", proxy.context());
        assert_eq!(response.text(), format!("status {code}"), "backend body for {code}");
    }
}

async fn forward_host_passed_through(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/alice", &backend.url()).await;
    let echo = proxy.get("/user/alice/x").await.echo();
    assert_eq!(echo.header("host"), [proxy.proxy_addr().to_string()]);
    let echo = proxy.request("GET", "/user/alice/x", &[("host", "hub.example.org:8443")], Bytes::new()).await.echo();
    assert_eq!(echo.header("host"), ["hub.example.org:8443"], "Host must not be changed to the target's");
}

async fn forward_x_forwarded_headers(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/alice", &backend.url()).await;

    let echo = proxy.request("GET", "/user/alice/x", &[("host", "hub.example:8443")], Bytes::new()).await.echo();
    assert_eq!(echo.header("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(echo.header("x-forwarded-port"), ["8443"], "port from the Host header");
    assert_eq!(echo.header("x-forwarded-proto"), ["http"]);
    assert_eq!(echo.header("x-forwarded-host"), ["hub.example:8443"], "set from Host when absent");

    let echo = proxy.request("GET", "/user/alice/x", &[("host", "hub.example")], Bytes::new()).await.echo();
    assert_eq!(echo.header("x-forwarded-port"), ["80"], "default port when Host has none");

    // Existing values are extended with a comma (no space); X-Forwarded-Host is only set when absent.
    let headers = [
        ("host", "hub.example:8443"),
        ("x-forwarded-for", "1.2.3.4"),
        ("x-forwarded-port", "443"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "outer.example"),
    ];
    let echo = proxy.request("GET", "/user/alice/x", &headers, Bytes::new()).await.echo();
    assert_eq!(echo.header("x-forwarded-for"), ["1.2.3.4,127.0.0.1"]);
    assert_eq!(echo.header("x-forwarded-port"), ["443,8443"]);
    assert_eq!(echo.header("x-forwarded-proto"), ["https,http"]);
    assert_eq!(echo.header("x-forwarded-host"), ["outer.example"]);
}

async fn forward_no_x_forward(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &["--no-x-forward"]).await;
    proxy.add_target("/user/alice", &backend.url()).await;
    let echo = proxy.get("/user/alice/x").await.echo();
    for name in ["x-forwarded-for", "x-forwarded-port", "x-forwarded-proto", "x-forwarded-host"] {
        assert!(echo.header(name).is_empty(), "{name} must not be added with --no-x-forward: {:?}", echo.headers);
    }
    let echo = proxy.request("GET", "/user/alice/x", &[("x-forwarded-for", "1.2.3.4")], Bytes::new()).await.echo();
    assert_eq!(echo.header("x-forwarded-for"), ["1.2.3.4"], "client's header passes unchanged");
}

async fn forward_custom_header_overrides_client(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy =
        RunningProxy::start(kind, &["--custom-header", "X-Custom-One: one", "--custom-header", "x-custom-two:two"])
            .await;
    proxy.add_target("/user/alice", &backend.url()).await;
    let echo = proxy.get("/user/alice/x").await.echo();
    assert_eq!(echo.header("x-custom-one"), ["one"], "{:?}", echo.headers);
    assert_eq!(echo.header("x-custom-two"), ["two"], "{:?}", echo.headers);
    let headers = [("x-custom-one", "from-client"), ("X-Custom-Two", "from-client")];
    let echo = proxy.request("GET", "/user/alice/x", &headers, Bytes::new()).await.echo();
    assert_eq!(echo.header("x-custom-one"), ["one"], "the flag wins over the client: {:?}", echo.headers);
    assert_eq!(echo.header("x-custom-two"), ["two"], "the flag wins over the client: {:?}", echo.headers);
}

async fn host_routing(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &["--host-routing"]).await;
    proxy.add_target("/alice.example", &format!("{}/A", backend.url())).await;
    proxy.add_target("/alice.example/special", &format!("{}/S", backend.url())).await;
    // The route's data gains the host (its first segment).
    let route = proxy.get_route("/alice.example").await.expect("route exists");
    assert_eq!(route["host"], json!("alice.example"), "{route}");
    let route = proxy.get_route("/alice.example/special").await.expect("route exists");
    assert_eq!(route["host"], json!("alice.example"), "{route}");

    let get = |host: &'static str, target: &'static str| {
        let proxy = &proxy;
        async move { proxy.request("GET", target, &[("host", host)], Bytes::new()).await }
    };
    // The port is not part of the key; the host is not part of the forwarded path.
    assert_eq!(get("alice.example:8000", "/x?q=1").await.echo().uri, "/A/x?q=1");
    assert_eq!(get("alice.example", "/special/z").await.echo().uri, "/S/special/z");
    assert_eq!(get("alice.example", "/specialz").await.echo().uri, "/A/specialz");
    assert_eq!(get("ALICE.EXAMPLE", "/x").await.status, 404, "host matching is case-sensitive");
    assert_eq!(get("bob.example", "/x").await.status, 404);
    assert_eq!(get("alice.example.org", "/x").await.status, 404);
}

async fn health_check(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    // Answered by the proxy itself, even with an empty table.
    let response = proxy.get("/_chp_healthz").await;
    assert_eq!(response.status, 200, "via {}", proxy.context());
    assert!(response.header("content-type").unwrap_or_default().starts_with("application/json"));
    assert_eq!(response.json(), json!({"status": "OK"}));
    // Only the exact URL: with a query it is an ordinary request.
    assert_eq!(proxy.get("/_chp_healthz?x").await.status, 404);
    proxy.add_target("/", &backend.url()).await;
    assert_eq!(forwarded(&proxy, "/_chp_healthz?x").await, "/_chp_healthz?x");
    assert_eq!(proxy.get("/_chp_healthz").await.json(), json!({"status": "OK"}));
    assert_eq!(backend.seen(), ["/_chp_healthz?x"], "the health check itself never reaches a backend");
}

// =================================================================================================================
// Errors

async fn error_target_dead_backend_503(kind: ProxyKind) {
    let dead = ClosedPort::new();
    let error_target = Backend::start().await;
    let proxy = RunningProxy::start(kind, &["--error-target", &format!("{}/hub/error", error_target.url())]).await;
    proxy.add_target("/user/dead", &dead.url()).await;
    let response = proxy.get("/user/dead/x?a=1").await;
    assert_eq!(response.status, 503, "{} via {}", response.text(), proxy.context());
    // The proxy asks the error target for /<code>?url=<form-encoded original request-target>.
    let asked = "/hub/error/503?url=%2Fuser%2Fdead%2Fx%3Fa%3D1";
    assert_eq!(error_target.seen(), [asked]);
    assert_eq!(response.header("content-type"), Some(ERROR_PAGE_CONTENT_TYPE));
    assert_eq!(response.text(), format!("{ERROR_PAGE_MARKER} for {asked}"), "the error target's body is relayed");
}

async fn error_target_no_route_404(kind: ProxyKind) {
    let error_target = Backend::start().await;
    let proxy = RunningProxy::start(kind, &["--error-target", &format!("{}/hub/error/", error_target.url())]).await;
    let response = proxy.get("/nowhere/y").await;
    assert_eq!(response.status, 404, "{} via {}", response.text(), proxy.context());
    let asked = "/hub/error/404?url=%2Fnowhere%2Fy";
    assert_eq!(error_target.seen(), [asked], "a trailing slash on --error-target changes nothing");
    assert_eq!(response.header("content-type"), Some(ERROR_PAGE_CONTENT_TYPE));
    assert_eq!(response.text(), format!("{ERROR_PAGE_MARKER} for {asked}"));
}

async fn error_target_bad_escape_500(kind: ProxyKind) {
    let error_target = Backend::start().await;
    let (proxy, backend) =
        root_and_alice(kind, &["--error-target", &format!("{}/hub/error", error_target.url())]).await;
    let response = proxy.get("/user/alice/%E0%A4%A").await;
    assert_eq!(response.status, 500, "{} via {}", response.text(), proxy.context());
    assert_eq!(error_target.seen(), ["/hub/error/500?url=%2Fuser%2Falice%2F%25E0%25A4%25A"]);
    assert_eq!(response.header("content-type"), Some(ERROR_PAGE_CONTENT_TYPE));
    assert!(backend.seen().is_empty(), "backend got {:?}", backend.seen());
}

async fn error_target_unreachable_plain_status_text(kind: ProxyKind) {
    let dead = ClosedPort::new();
    let dead_error_target = ClosedPort::new();
    let proxy = RunningProxy::start(kind, &["--error-target", &format!("{}/hub/error", dead_error_target.url())]).await;
    proxy.add_target("/user/dead", &dead.url()).await;
    let response = proxy.get("/nowhere").await;
    assert_eq!(response.status, 404, "{} via {}", response.text(), proxy.context());
    assert_eq!(response.text(), "Not Found");
    let response = proxy.get("/user/dead/x").await;
    assert_eq!(response.status, 503, "{} via {}", response.text(), proxy.context());
    assert_eq!(response.text(), "Service Unavailable");
}

async fn builtin_error_pages(kind: ProxyKind) {
    let dead = ClosedPort::new();
    let (proxy, _backend) = root_and_alice(kind, &[]).await;
    proxy.add_target("/user/dead", &dead.url()).await;
    let bare = RunningProxy::start(kind, &[]).await;
    for (proxy, target, code) in
        [(&proxy, "/user/dead/x", 503u16), (&bare, "/nowhere", 404), (&proxy, "/user/alice/%E0%A4%A", 500)]
    {
        let response = proxy.get(target).await;
        assert_eq!(response.status, code, "GET {target} via {}", proxy.context());
        let content_type = response.header("content-type").unwrap_or_default();
        assert!(content_type.starts_with("text/html"), "{code} page content-type {content_type:?}");
        assert!(response.text().to_lowercase().contains("<html"), "{code} page is HTML: {:?}", response.text());
    }
}

async fn upstream_failures_503(kind: ProxyKind) {
    let dead = ClosedPort::new();
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/alice", &backend.url()).await;
    proxy.add_target("/user/dead", &dead.url()).await;
    // Refused, reset and non-HTTP answers are all 503 (CHP never answers 502).
    for target in ["/user/dead/x", "/user/alice/reset", "/user/alice/garbage"] {
        let response = proxy.get(target).await;
        assert_eq!(response.status, 503, "GET {target}: {} via {}", response.text(), proxy.context());
    }
    assert_eq!(backend.seen(), ["/user/alice/reset", "/user/alice/garbage"]);
}

async fn proxy_timeout_503(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &["--proxy-timeout", "500"]).await;
    proxy.add_target("/user/alice", &backend.url()).await;
    assert_eq!(proxy.get("/user/alice/slow?ms=10").await.status, 200, "a fast backend is unaffected");
    let response = proxy.get("/user/alice/slow?ms=8000").await;
    assert_eq!(response.status, 503, "{} via {}", response.text(), proxy.context());
}

async fn client_timeout_drops_connection(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &["--timeout", "500"]).await;
    proxy.add_target("/user/alice", &backend.url()).await;
    assert_eq!(proxy.get("/user/alice/x").await.status, 200, "a fast backend is unaffected");

    let mut stream = tokio::net::TcpStream::connect(proxy.proxy_addr()).await.unwrap();
    let request = format!("GET /user/alice/hang HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.proxy_addr());
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut received)).await;
    let read = read.unwrap_or_else(|_| panic!("connection still open after 30 s via {}", proxy.context()));
    // A reset is as good as a close here; what matters is that no response was written.
    if let Err(error) = read {
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "unexpected read error {error}");
    }
    assert!(received.is_empty(), "expected no response, got {:?}", String::from_utf8_lossy(&received));
    assert_eq!(backend.seen().last().map(String::as_str), Some("/user/alice/hang"));
}

// =================================================================================================================
// last_activity

/// Repeats `method target` (expecting `status`) until `route`'s last_activity moves past `before`; returns the
/// new value. Repeating (rather than one request and a wait) also suits a proxy that batches activity updates.
async fn activity_after(
    proxy: &RunningProxy,
    route: &str,
    request: (&str, &str, &[u8]),
    status: u16,
    before: &str,
) -> String {
    let (method, target, body) = request;
    let before_ms = parse_timestamp_ms(before).unwrap();
    poll_until(&format!("{route}'s last_activity to move after {method} {target}"), ACTIVITY_WAIT, || async {
        let response = proxy.request(method, target, &[], Bytes::copy_from_slice(body)).await;
        assert_eq!(response.status, status, "{method} {target} via {}", proxy.context());
        let now = proxy.last_activity(route).await;
        let ms = parse_timestamp_ms(&now).unwrap_or_else(|| panic!("bad last_activity {now:?}"));
        (ms > before_ms).then_some(now)
    })
    .await
}

/// [`activity_after`] for a `GET` answered with 200.
async fn activity_after_requests(proxy: &RunningProxy, route: &str, target: &str, before: &str) -> String {
    activity_after(proxy, route, ("GET", target, b""), 200, before).await
}

/// Waits until the wall clock is past `timestamp`, so a later update cannot land in the same millisecond.
async fn clock_past(timestamp: &str) {
    let ms = parse_timestamp_ms(timestamp).unwrap();
    poll_until("the clock to move on", Duration::from_secs(5), || async { (now_ms() > ms + 2).then_some(()) }).await;
}

async fn last_activity_moves_on_success(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/alice", &backend.url()).await;
    let mut before = proxy.last_activity("/user/alice").await;
    // A finished 2xx response counts whether or not it carried a body.
    for (target, status) in [
        ("/user/alice/api/status", 200u16),
        ("/user/alice/status?code=200&empty=1", 200),
        ("/user/alice/status?code=204", 204),
        ("/user/alice/status?code=201", 201),
    ] {
        clock_past(&before).await;
        before = activity_after(&proxy, "/user/alice", ("GET", target, b""), status, &before).await;
    }
}

async fn last_activity_counts_request_body_data(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/alice", &backend.url()).await;
    let before = proxy.last_activity("/user/alice").await;
    clock_past(&before).await;
    // Request body chunks are activity by themselves, even when the response then is a 404.
    let body = vec![b'x'; 4096];
    activity_after(&proxy, "/user/alice", ("POST", "/user/alice/status?code=404", &body), 404, &before).await;
}

async fn last_activity_ignores_non_2xx(kind: ProxyKind) {
    let dead = ClosedPort::new();
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/alice", &backend.url()).await;
    proxy.add_target("/user/dead", &dead.url()).await;
    proxy.add_target("/user/control", &backend.url()).await;
    let alice = proxy.last_activity("/user/alice").await;
    let dead = proxy.last_activity("/user/dead").await;
    let control = proxy.last_activity("/user/control").await;
    clock_past(&control).await;

    // With and without a response body: neither the finished response nor its bytes count.
    for (target, status) in [
        ("/user/alice/status?code=301", 301u16),
        ("/user/alice/status?code=302", 302),
        ("/user/alice/status?code=302&empty=1", 302),
        ("/user/alice/status?code=404", 404),
        ("/user/alice/status?code=404&empty=1", 404),
        ("/user/alice/status?code=500", 500),
        ("/user/dead/x", 503),
    ] {
        assert_eq!(proxy.get(target).await.status, status, "GET {target} via {}", proxy.context());
    }
    // A successful request on another route, seen in the API, shows that activity updates have been applied.
    activity_after_requests(&proxy, "/user/control", "/user/control/x", &control).await;
    assert_eq!(proxy.last_activity("/user/alice").await, alice, "3xx/4xx/5xx responses are not activity");
    assert_eq!(proxy.last_activity("/user/dead").await, dead, "503s are not activity");
    // And the same route does count a success.
    activity_after_requests(&proxy, "/user/alice", "/user/alice/status?code=200", &alice).await;
}

async fn last_activity_ignores_aborted_response(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/alice", &backend.url()).await;
    proxy.add_target("/user/control", &backend.url()).await;
    let alice = proxy.last_activity("/user/alice").await;
    let control = proxy.last_activity("/user/control").await;
    clock_past(&control).await;

    // A 200 that the client abandons half-way never finishes, so it is not a success (CHP counts `finish` only).
    let mut stream = tokio::net::TcpStream::connect(proxy.proxy_addr()).await.unwrap();
    let request = format!("GET /user/alice/bytes?n={LARGE_BODY} HTTP/1.1\r\nHost: {}\r\n\r\n", proxy.proxy_addr());
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "not a 200 download via {}", proxy.context());
    let mut received = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while received < 1024 * 1024 {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "download ended after {received} bytes via {}", proxy.context());
        received += n;
    }
    // Closing with unread data resets the connection, which the proxy sees on its next write.
    drop(stream);

    activity_after_requests(&proxy, "/user/control", "/user/control/x", &control).await;
    assert_eq!(proxy.last_activity("/user/alice").await, alice, "an aborted response is not activity");
}

/// Sends text messages on `ws` (reading each echo if `echoes`) until `route`'s last_activity moves past `before`.
async fn activity_after_ws_messages(proxy: &RunningProxy, ws: &mut WsClient, echoes: bool, route: &str, before: &str) {
    let before_ms = parse_timestamp_ms(before).unwrap();
    let deadline = std::time::Instant::now() + ACTIVITY_WAIT;
    loop {
        ws.send(Message::text("activity")).await.expect("send on websocket");
        if echoes {
            let reply = ws.next().await.expect("websocket open").expect("websocket read");
            assert_eq!(reply, Message::text("activity"));
        }
        let now = proxy.last_activity(route).await;
        if parse_timestamp_ms(&now).unwrap() > before_ms {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{route}'s last_activity did not move on client websocket data");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn last_activity_websocket_counts_client_data_only(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/push", &backend.url()).await;
    proxy.add_target("/user/control", &backend.url()).await;
    let push = proxy.last_activity("/user/push").await;
    let control = proxy.last_activity("/user/control").await;
    clock_past(&control).await;

    // The handshake and server→client messages are not activity.
    let mut pushed = proxy.websocket("/user/push/ws-push?n=5").await.expect("websocket through the proxy");
    for i in 0..5 {
        let message = pushed.next().await.expect("websocket open").expect("websocket read");
        assert_eq!(message, Message::text(format!("push {i}")));
    }
    let mut echo = proxy.websocket("/user/control/ws-echo").await.expect("websocket through the proxy");
    activity_after_ws_messages(&proxy, &mut echo, true, "/user/control", &control).await;
    assert_eq!(proxy.last_activity("/user/push").await, push, "server-push-only websocket traffic is not activity");

    // A client→server message is.
    activity_after_ws_messages(&proxy, &mut pushed, false, "/user/push", &push).await;
}

// =================================================================================================================
// WebSockets

async fn websocket_echo_round_trip(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/alice", &backend.url()).await;
    let mut ws = proxy.websocket("/user/alice/ws-echo?session=1").await.expect("websocket through the proxy");
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    let binary: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    ws.send(Message::binary(binary.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(binary));
    for i in 0..20 {
        ws.send(Message::text(format!("m{i}"))).await.unwrap();
    }
    for i in 0..20 {
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(format!("m{i}")), "messages stay in order");
    }
    ws.close(None).await.unwrap();
    // After our close the stream ends with the peer's close frame (or just ends).
    while let Some(Ok(message)) = ws.next().await {
        assert!(message.is_close(), "unexpected message after close: {message:?}");
    }

    // Server→client without any client message first.
    let mut pushed = proxy.websocket("/user/alice/ws-push?n=3").await.expect("websocket through the proxy");
    for i in 0..3 {
        assert_eq!(pushed.next().await.unwrap().unwrap(), Message::text(format!("push {i}")));
    }

    let handshakes = backend.ws_handshakes();
    let handshake = &handshakes[0];
    assert_eq!(handshake.uri, "/user/alice/ws-echo?session=1");
    assert_eq!(handshake.header("host"), [proxy.proxy_addr().to_string()], "Host is passed through");
    assert_eq!(handshake.header("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(handshake.header("x-forwarded-port"), [proxy.proxy_port.to_string()]);
    assert_eq!(handshake.header("x-forwarded-proto"), ["ws"], "upgrades are forwarded as ws");
    assert!(handshake.header("x-forwarded-host").is_empty(), "CHP sets no X-Forwarded-Host on upgrades");
}

async fn websocket_errors(kind: ProxyKind) {
    let dead = ClosedPort::new();
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/dead", &dead.url()).await;
    for (target, code) in [("/nowhere/ws-echo", 404u16), ("/user/dead/ws-echo", 503)] {
        match proxy.websocket(target).await {
            Err(WsError::Http(response)) => {
                assert_eq!(response.status().as_u16(), code, "{target} via {}", proxy.context())
            }
            Err(other) => panic!("{target}: expected an HTTP {code} answer, got {other} via {}", proxy.context()),
            Ok(_) => panic!("{target}: the upgrade succeeded via {}", proxy.context()),
        }
    }
}

// =================================================================================================================
// Streaming

async fn stream_large_download(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/big", &backend.url()).await;
    let request = http::Request::get(format!("/user/big/bytes?n={LARGE_BODY}"))
        .body(wasmhub_system_tests::proxy_harness::full_body(Bytes::new()))
        .unwrap();
    let response = send(proxy.proxy_addr(), request).await.unwrap_or_else(|e| panic!("{e:#} via {}", proxy.context()));
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut check = PatternCheck::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap_or_else(|error| {
            panic!("download broke after {} bytes: {error} via {}", check.received(), proxy.context())
        });
        if let Some(data) = frame.data_ref() {
            check.feed(data);
        }
    }
    assert_eq!(check.received(), LARGE_BODY, "download length");
    assert!(check.ok(), "download content differs from what the backend sent");
}

async fn stream_large_upload(kind: ProxyKind) {
    let backend = Backend::start().await;
    let proxy = RunningProxy::start(kind, &[]).await;
    proxy.add_target("/user/big", &backend.url()).await;
    let frames = pattern(LARGE_BODY).map(|chunk| Ok::<_, BoxError>(Frame::data(chunk)));
    let request = http::Request::post("/user/big/upload").body(BodyExt::boxed(StreamBody::new(frames))).unwrap();
    let response = send(proxy.proxy_addr(), request).await.unwrap_or_else(|e| panic!("{e:#} via {}", proxy.context()));
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(UploadReport::from_body(&body), UploadReport { received: LARGE_BODY, pattern_ok: true });
}

// =================================================================================================================

/// Generates `chp::<case>` and `wasmhub::<case>` tests for every case.
macro_rules! contract {
    ($($case:ident),+ $(,)?) => {
        mod chp {
            use wasmhub_system_tests::proxy_harness::ProxyKind;
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(ProxyKind::Chp).await;
                }
            )+
        }
        mod wasmhub {
            use wasmhub_system_tests::proxy_harness::ProxyKind;
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(ProxyKind::Wasmhub).await;
                }
            )+
        }
    };
}

contract! {
    api_auth_rejects_missing_wrong_and_bearer_tokens,
    api_auth_accepts_token_and_xtoken,
    api_unauthenticated_without_env_token,
    api_unknown_paths_404,
    api_other_methods_405,
    api_post_201_empty_body,
    api_post_upserts,
    api_route_data_verbatim_with_last_activity,
    api_post_requires_string_target,
    api_post_invalid_json,
    api_get_single_route,
    api_delete_route,
    api_key_trailing_slash_ignored,
    api_key_percent_decoded,
    api_root_route_without_path,
    api_list_includes_default_target,
    api_inactive_since_filters,
    api_inactive_since_bad_date_400,
    routing_longest_whole_segment_prefix,
    routing_segment_boundary,
    routing_case_sensitive,
    routing_empty_segments,
    routing_encoded_chars_decoded_for_matching_forwarded_raw,
    routing_dot_segments_normalised,
    routing_bad_percent_escape_500,
    routing_no_route_404,
    routing_default_target,
    routing_query_kept_and_target_path_prepended,
    forward_method_and_body,
    forward_response_status_and_headers,
    forward_host_passed_through,
    forward_x_forwarded_headers,
    forward_no_x_forward,
    forward_custom_header_overrides_client,
    host_routing,
    health_check,
    error_target_dead_backend_503,
    error_target_no_route_404,
    error_target_bad_escape_500,
    error_target_unreachable_plain_status_text,
    builtin_error_pages,
    upstream_failures_503,
    proxy_timeout_503,
    client_timeout_drops_connection,
    last_activity_moves_on_success,
    last_activity_ignores_non_2xx,
    last_activity_counts_request_body_data,
    last_activity_ignores_aborted_response,
    last_activity_websocket_counts_client_data_only,
    websocket_echo_round_trip,
    websocket_errors,
    stream_large_download,
    stream_large_upload,
}
