//! Keeps `OPERATIONS` and the router in agreement, keeps `docs/rest-api.json` current, and checks that real
//! answers have the documented shapes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body as HttpBody;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use wasmhub_model::ServiceName;
use wasmhub_store::Store;

use super::{Body, DOCUMENT_PATH, OPERATIONS, document};
use crate::metrics::MatchedRoute;
use crate::tests::{call_with, test_hub};

const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// Regenerates `docs/rest-api.json`; fails (after rewriting it) when the committed file differs.
#[test]
fn generate_rest_api_document() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/rest-api.json");
    let generated = serde_json::to_string_pretty(&document()).unwrap() + "\n";
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        std::fs::write(&path, &generated).unwrap();
        panic!("docs/rest-api.json was out of date and has been regenerated; review and commit it");
    }
}

/// A path template with every parameter filled in.
fn fill(template: &str) -> String {
    template
        .split('/')
        .map(|segment| if segment.starts_with('{') { "probe" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

/// Status and matched route of an anonymous request, which every authenticated handler refuses without effect.
async fn probe(app: &Router, method: Method, uri: &str) -> (StatusCode, Option<String>) {
    let request = Request::builder().method(method).uri(uri).body(HttpBody::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let matched = response.extensions().get::<MatchedRoute>().map(|route| route.0.clone());
    (response.status(), matched)
}

/// Every string literal given to `.route(` in this crate's sources: what the router may serve.
fn route_literals() -> BTreeSet<String> {
    fn walk(dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (index, _) in text.match_indices(".route(") {
                    let rest = text[index + ".route(".len()..].trim_start();
                    let literal = rest.strip_prefix('"').and_then(|rest| rest.split('"').next());
                    if let Some(literal) = literal.filter(|literal| literal.starts_with('/')) {
                        found.insert(literal.to_owned());
                    }
                }
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src"), &mut found);
    found
}

/// The documented path of a served `/hub/api` route.
fn api_path(served: &str) -> Option<String> {
    let rest = served.strip_prefix("/hub/api")?;
    Some(if rest.is_empty() { "/".to_owned() } else { rest.to_owned() })
}

#[tokio::test]
async fn every_served_api_route_is_documented_and_every_documented_one_served() {
    let hub = test_hub().await;
    let documented: BTreeSet<(String, String)> =
        OPERATIONS.iter().map(|operation| (operation.method.to_uppercase(), operation.path.to_owned())).collect();
    let documented_paths: BTreeSet<&str> = OPERATIONS.iter().map(|operation| operation.path).collect();

    // Router to table: each route literal, nested under /hub/api or not, that the router answers.
    let mut served = BTreeSet::new();
    for literal in route_literals() {
        let nested = if literal == "/" { "/hub/api".to_owned() } else { format!("/hub/api{literal}") };
        for template in [nested, literal.clone()] {
            for method in METHODS {
                let (status, matched) = probe(&hub.app, method, &fill(&template)).await;
                if matched.as_deref() == Some(template.as_str()) || status == StatusCode::METHOD_NOT_ALLOWED {
                    served.insert(template.clone());
                }
            }
        }
    }
    assert!(served.contains("/hub/api/users/{name}"), "the probe finds routes: {served:?}");
    for template in &served {
        if let Some(path) = api_path(template) {
            assert!(
                documented_paths.contains(path.as_str()),
                "{template} is served but not in openapi::OPERATIONS; add a row for it"
            );
        }
    }

    // Table to router: documented methods answer from their route, all others are 405.
    for path in &documented_paths {
        let template = if *path == "/" { "/hub/api".to_owned() } else { format!("/hub/api{path}") };
        for method in METHODS {
            let (status, matched) = probe(&hub.app, method.clone(), &fill(&template)).await;
            if documented.contains(&(method.to_string(), path.to_string())) {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {template} is documented but not served");
                assert_eq!(matched.as_deref(), Some(template.as_str()), "{method} {template} reached another route");
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {template} is served but not documented");
            }
        }
    }
}

/// A small JSON Schema check: `$ref`, `oneOf`, `const`, `type`, `properties`, `required`,
/// `additionalProperties` and `items`, which is all the document uses.
fn conforms(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/components/schemas/");
        return conforms(document, &document["components"]["schemas"][name], value, at);
    }
    if let Some(choices) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = choices.iter().filter(|choice| conforms(document, choice, value, at).is_ok()).count();
        return if matching == 1 { Ok(()) } else { Err(format!("{at}: {matching} of oneOf match {value}")) };
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        return Err(format!("{at}: {value} is not {constant}"));
    }
    if let Some(kind) = schema.get("type") {
        let kinds: Vec<&str> = match kind {
            Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
            other => other.as_str().into_iter().collect(),
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(number) if number.is_f64() => "number",
            Value::Number(_) => "integer",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = kinds.contains(&actual) || (actual == "integer" && kinds.contains(&"number"));
        if !fits {
            return Err(format!("{at}: {actual} is not {kinds:?}"));
        }
    }
    if let Value::Object(object) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let key = required.as_str().unwrap_or_default();
            if !object.contains_key(key) {
                return Err(format!("{at}: missing {key}"));
            }
        }
        for (key, item) in object {
            let path = format!("{at}.{key}");
            match (properties.and_then(|properties| properties.get(key)), schema.get("additionalProperties")) {
                (Some(property), _) => conforms(document, property, item, &path)?,
                (None, Some(Value::Bool(false))) => return Err(format!("{path}: not documented")),
                (None, Some(extra @ Value::Object(_))) => conforms(document, extra, item, &path)?,
                (None, _) => {}
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (index, item) in items.iter().enumerate() {
            conforms(document, item_schema, item, &format!("{at}[{index}]"))?;
        }
    }
    Ok(())
}

/// Every documented property is there (for models an admin reads whole).
fn assert_whole(document: &Value, schema: &str, value: &Value, except: &[&str]) {
    let properties = document["components"]["schemas"][schema]["properties"].as_object().unwrap();
    for key in properties.keys().filter(|key| !except.contains(&key.as_str())) {
        assert!(value.get(key).is_some(), "{schema} lacks documented key {key}: {value}");
    }
}

struct Session {
    app: Router,
    token: String,
    document: Value,
}

impl Session {
    /// Calls `uri`, requires its status to be documented for `method path`, and its body to match.
    async fn expect(
        &self,
        method: Method,
        path: &str,
        uri: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Value {
        let answer = call_with(&self.app, method.clone(), uri, Some(&self.token), body, headers).await;
        let operation = OPERATIONS
            .iter()
            .find(|operation| operation.path == path && operation.method.eq_ignore_ascii_case(method.as_str()))
            .unwrap_or_else(|| panic!("{method} {path} is not documented"));
        let documented =
            operation.answers.iter().find(|documented| documented.status == answer.status.as_u16()).unwrap_or_else(
                || panic!("{method} {uri} answered {} which is not documented: {}", answer.status, answer.text),
            );
        let schema = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
        match documented.body {
            Body::Empty => {
                assert_eq!(answer.text, "", "{method} {uri}");
                Value::Null
            }
            Body::Html => Value::Null,
            Body::Metrics => {
                assert!(answer.text.starts_with("# HELP"), "{}", answer.text);
                Value::Null
            }
            Body::Events => {
                let events: Vec<Value> = answer
                    .text
                    .split("\n\n")
                    .filter_map(|block| block.strip_prefix("data: "))
                    .map(|data| serde_json::from_str(data).unwrap())
                    .collect();
                for event in &events {
                    conforms(&self.document, &schema("ProgressEvent"), event, uri).unwrap();
                }
                Value::Array(events)
            }
            Body::Json(name) => {
                let value = answer.json();
                conforms(&self.document, &schema(name), &value, uri).unwrap_or_else(|error| panic!("{error}"));
                value
            }
            Body::Page(name) => {
                let value = answer.json();
                let page_schema = &super::content(Body::Page(name)).unwrap()["application/json"]["schema"];
                conforms(&self.document, page_schema, &value, uri).unwrap_or_else(|error| panic!("{error}"));
                value
            }
        }
    }
}

#[tokio::test]
async fn answers_have_the_documented_shapes() {
    let hub = test_hub().await;
    hub.store.put_service(&ServiceName::parse("cull-idle").unwrap(), true).await.unwrap();
    let session = Session { app: hub.app.clone(), token: hub.admin_token.clone(), document: document() };
    let page = [("accept", "application/jupyterhub-pagination+json")];
    let doc = &session.document;

    session.expect(Method::GET, "/", "/hub/api", None, &[]).await;
    session.expect(Method::GET, "/info", "/hub/api/info", None, &[]).await;
    session.expect(Method::GET, "/health", "/hub/api/health", None, &[]).await;
    session.expect(Method::POST, "/users", "/hub/api/users", Some(r#"{"usernames": ["alice", "bob"]}"#), &[]).await;
    session.expect(Method::GET, "/users", "/hub/api/users", None, &[]).await;
    session.expect(Method::GET, "/users", "/hub/api/users?limit=1", None, &page).await;
    session.expect(Method::PATCH, "/users/{name}", "/hub/api/users/bob", Some(r#"{"admin": false}"#), &[]).await;
    session.expect(Method::POST, "/users/{name}", "/hub/api/users/bob", None, &[]).await;
    let token =
        session.expect(Method::POST, "/users/{name}/tokens", "/hub/api/users/alice/tokens", Some("{}"), &[]).await;
    let id = token["id"].as_str().unwrap();
    session.expect(Method::GET, "/users/{name}/tokens", "/hub/api/users/alice/tokens", None, &[]).await;
    let uri = format!("/hub/api/users/alice/tokens/{id}");
    session.expect(Method::GET, "/users/{name}/tokens/{token_id}", &uri, None, &[]).await;
    let body = r#"{"groups": ["staff"], "users": ["alice"]}"#;
    session.expect(Method::POST, "/groups", "/hub/api/groups", Some(body), &[]).await;
    session.expect(Method::POST, "/groups/{name}", "/hub/api/groups/tas", None, &[]).await;
    session.expect(Method::GET, "/groups", "/hub/api/groups", None, &page).await;
    session
        .expect(Method::POST, "/groups/{name}/users", "/hub/api/groups/tas/users", Some(r#"{"users": ["bob"]}"#), &[])
        .await;
    session
        .expect(Method::PUT, "/groups/{name}/properties", "/hub/api/groups/tas/properties", Some(r#"{"a": 1}"#), &[])
        .await;
    let group = session.expect(Method::GET, "/groups/{name}", "/hub/api/groups/tas", None, &[]).await;
    assert_whole(doc, "Group", &group, &[]);
    let services = session.expect(Method::GET, "/services", "/hub/api/services", None, &[]).await;
    assert_whole(doc, "Service", &services["cull-idle"], &[]);
    session.expect(Method::GET, "/services/{name}", "/hub/api/services/cull-idle", None, &[]).await;

    // A running server: user and server models whole, its route, its progress.
    let started = session.expect(Method::POST, "/users/{name}/server", "/hub/api/users/alice/server", None, &[]).await;
    assert_eq!(started, Value::Null);
    let alice = session.expect(Method::GET, "/users/{name}", "/hub/api/users/alice", None, &[]).await;
    assert_whole(doc, "User", &alice, &[]);
    assert_whole(doc, "Server", &alice["servers"][""], &[]);
    let events = session
        .expect(Method::GET, "/users/{name}/server/progress", "/hub/api/users/alice/server/progress", None, &[])
        .await;
    assert_eq!(events[0]["ready"], true);
    let routes = session.expect(Method::GET, "/proxy", "/hub/api/proxy", None, &[]).await;
    assert_whole(doc, "Route", &routes["/user/alice/"], &[]);
    session.expect(Method::GET, "/proxy", "/hub/api/proxy", None, &page).await;
    session.expect(Method::POST, "/proxy", "/hub/api/proxy", None, &[]).await;
    session.expect(Method::PATCH, "/proxy", "/hub/api/proxy", Some("{}"), &[]).await;
    session.expect(Method::DELETE, "/users/{name}/server", "/hub/api/users/alice/server", None, &[]).await;
    session
        .expect(Method::POST, "/users/{name}/servers/{server_name}", "/hub/api/users/bob/servers/gpu", None, &[])
        .await;
    let uri = "/hub/api/users/bob/servers/gpu";
    session.expect(Method::DELETE, "/users/{name}/servers/{server_name}", uri, Some(r#"{"remove": true}"#), &[]).await;

    let activity = r#"{"last_activity": "2020-01-01T00:00:00Z"}"#;
    session.expect(Method::POST, "/users/{name}/activity", "/hub/api/users/bob/activity", Some(activity), &[]).await;
    session
        .expect(Method::DELETE, "/groups/{name}/users", "/hub/api/groups/tas/users", Some(r#"{"users": ["bob"]}"#), &[])
        .await;
    session.expect(Method::DELETE, "/groups/{name}", "/hub/api/groups/tas", None, &[]).await;
    session
        .expect(
            Method::DELETE,
            "/users/{name}/tokens/{token_id}",
            &format!("/hub/api/users/alice/tokens/{id}"),
            None,
            &[],
        )
        .await;
    session.expect(Method::DELETE, "/users/{name}", "/hub/api/users/bob", None, &[]).await;
    session.expect(Method::GET, "/metrics", "/hub/api/metrics", None, &[]).await;
    let served = session.expect(Method::GET, "/_wasmhub/openapi.json", DOCUMENT_PATH, None, &[]).await;
    assert_eq!(&served, doc);
    // Errors have the documented shape too.
    session.expect(Method::GET, "/groups/{name}", "/hub/api/groups/nope", None, &[]).await;
    session.expect(Method::POST, "/shutdown", "/hub/api/shutdown", None, &[]).await;
}
