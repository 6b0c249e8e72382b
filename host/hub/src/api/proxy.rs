//! `GET`, `POST` and `PATCH /proxy` (`apihandlers/proxy.py`), over the in-process proxy's route table.
//!
//! `GET` answers what JupyterHub's `get_all_routes` makes of CHP's table: only routes the hub made (`jupyterhub`
//! in their data), keyed by routespec with its trailing slash, the data without `target` and `jupyterhub` but with
//! the proxy's `last_activity`. `POST` is `check_routes` for servers: every running server gets its route, routes
//! of pending servers stay, and any other user route goes. The hub's own route and service routes are left alone,
//! because the hub is served in-process and services have no URL in the store. `PATCH` re-points JupyterHub at
//! another proxy; ours is in the process, so it validates the body, changes nothing, and re-syncs as JupyterHub does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};
use wasmhub_model::SpawnState;
use wasmhub_proxy::routes::{Route, clean_path};

use crate::Hub;
use crate::access::caller::Caller;
use crate::api::query::{Pagination, Query};
use crate::error::ApiError;
use crate::metrics;
use crate::urls::route_path;

/// Python's `quote(path, safe='@/~')`, which JupyterHub applies to CHP's unescaped route keys.
const ROUTESPEC: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~').remove(b'@').remove(b'/');

/// JupyterHub's routespec for a proxy key: escaped again, with the trailing slash every routespec has, and under
/// host routing (`subdomain_host`) without the leading slash, `alice.hub.test/user/alice/`, as JupyterHub's
/// `_routespec_from_chp_path` writes it.
fn routespec(key: &str, host_routing: bool) -> String {
    let mut spec = utf8_percent_encode(key, ROUTESPEC).to_string();
    if !spec.ends_with('/') {
        spec.push('/');
    }
    if host_routing && spec.len() > 1 {
        spec.remove(0);
    }
    spec
}

fn is_hub_route(route: &Route) -> bool {
    route.data().contains_key("jupyterhub")
}

/// One route as `get_all_routes` returns it.
fn route_model(route: &Route, host_routing: bool) -> Value {
    let mut data: Map<String, Value> = route
        .data()
        .iter()
        .filter(|(key, _)| *key != "target" && *key != "jupyterhub")
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if let Some(at) = DateTime::<Utc>::from_timestamp_millis(route.last_activity_ms()) {
        data.insert("last_activity".into(), json!(at.to_rfc3339_opts(SecondsFormat::Millis, true)));
    }
    json!({ "routespec": routespec(route.key(), host_routing), "target": route.target().as_str(), "data": data })
}

pub(crate) async fn get_routes(
    State(hub): State<Hub>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require_unfiltered(&["proxy"])?;
    let pagination = Pagination::from_request(&Query::parse(raw_query.as_deref()), &headers, hub.config())?;
    let started = Instant::now();
    let host_routing = hub.config().subdomain_host.is_some();
    let routes: BTreeMap<String, Value> = hub
        .routes()
        .list()
        .await
        .map_err(ApiError::internal)?
        .iter()
        .filter(|route| is_hub_route(route))
        .map(|route| (routespec(route.key(), host_routing), route_model(route, host_routing)))
        .collect();
    hub.metrics().observe_proxy_poll(started.elapsed());
    let total = routes.len() as u64;
    let page: Map<String, Value> =
        routes.into_iter().skip(pagination.offset as usize).take(pagination.limit as usize).collect();
    Ok(Json(pagination.respond(page, total, &uri, &headers)).into_response())
}

/// One periodic pass of [`check_routes`], remembering whether the proxy answered: its failure is logged once
/// when it starts and once when it ends, and `/hub/health` fails meanwhile, rather than a log line per pass.
pub(crate) async fn reconcile_routes(hub: &Hub) {
    let result = check_routes(hub).await;
    let was_reachable = hub.set_proxy_reachable(result.is_ok());
    match result {
        Ok(()) if !was_reachable => tracing::info!("the proxy answers again; its routes are in line"),
        Ok(()) => {}
        Err(error) if was_reachable => {
            tracing::error!(%error, "cannot keep the proxy's routes: /hub/health fails until it answers")
        }
        Err(_) => {}
    }
}

/// Why a route check could not finish.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RouteCheckError {
    #[error("{0}")]
    Proxy(#[from] wasmhub_proxy::RouteError),
    #[error("reading the servers: {0}")]
    Store(#[from] wasmhub_store::StoreError),
}

/// `check_routes` for servers; see the module documentation for what it leaves alone.
pub(crate) async fn check_routes(hub: &Hub) -> Result<(), RouteCheckError> {
    let started = Instant::now();
    let routes = hub.routes().list().await?;
    let by_key: std::collections::HashMap<&str, &Route> =
        routes.iter().map(|route| (route.key(), route.as_ref())).collect();
    let mut wanted = BTreeSet::new();
    for server in hub.store().list_servers(None).await? {
        let path = route_path(hub.config(), server.user.as_str(), server.name.as_str());
        match server.state {
            SpawnState::Running => {
                wanted.insert(clean_path(&path));
                let Some(url) = server.url.as_deref() else { continue };
                if by_key
                    .get(clean_path(&path).as_str())
                    .is_some_and(|route| route.target().as_str() == url && is_hub_route(&route))
                {
                    continue;
                }
                tracing::warn!(route = %path, target = url, "adding a missing route");
                let mut data = Map::new();
                data.insert("user".into(), json!(server.user.as_str()));
                data.insert("server_name".into(), json!(server.name.as_str()));
                data.insert("target".into(), json!(url));
                data.insert("jupyterhub".into(), json!(true));
                metrics::timed(metrics::proxy_add, hub, hub.routes().add(&path, data)).await?;
            }
            // A pending server's route is about to come or go; its spawn or stop owns it.
            SpawnState::Requested | SpawnState::Starting | SpawnState::Stopping => {
                wanted.insert(clean_path(&path));
            }
            SpawnState::Stopped | SpawnState::Failed => {}
        }
    }
    for route in &routes {
        if is_hub_route(&route) && route.data().contains_key("user") && !wanted.contains(route.key()) {
            tracing::warn!(route = route.key(), "deleting a stale route");
            metrics::timed(metrics::proxy_delete, hub, hub.routes().remove(route.key())).await?;
        }
    }
    hub.metrics().observe_check_routes(started.elapsed());
    Ok(())
}

/// A body-less 200 as Tornado sends it from an `APIHandler`: still `application/json`.
fn empty_ok() -> Response {
    let mut response = (StatusCode::OK, Body::empty()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(crate) async fn post_routes(State(hub): State<Hub>, caller: Caller) -> Result<Response, ApiError> {
    caller.require_unfiltered(&["proxy"])?;
    check_routes(&hub).await.map_err(ApiError::internal)?;
    Ok(empty_ok())
}

pub(crate) async fn patch_proxy(State(hub): State<Hub>, caller: Caller, body: Bytes) -> Result<Response, ApiError> {
    caller.require_unfiltered(&["proxy"])?;
    if body.is_empty() {
        return Err(ApiError::bad_request("need JSON body"));
    }
    let not_a_dict = || ApiError::bad_request("Request body must be JSON dict");
    let model: Value = serde_json::from_slice(&body).map_err(|_| not_a_dict())?;
    let Value::Object(model) = model else { return Err(not_a_dict()) };
    for key in ["api_url", "auth_token"] {
        if model.get(key).is_some_and(|value| !value.is_string()) {
            return Err(ApiError::bad_request(format!("{key} must be a string")));
        }
    }
    tracing::info!("PATCH /proxy: the proxy runs in this process, so there is nothing to re-point");
    check_routes(&hub).await.map_err(ApiError::internal)?;
    Ok(empty_ok())
}

#[cfg(test)]
mod tests {
    use axum::http::{Method, StatusCode};
    use serde_json::{Map, Value, json};
    use wasmhub_model::{ServerName, SpawnState, UserName};
    use wasmhub_store::{ServerUpdate, Store};

    use super::routespec;
    use crate::tests::{call, call_with, test_hub, user_with_token};

    fn data(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn routespecs_are_quoted_again_and_end_in_a_slash() {
        assert_eq!(routespec("/user/a b", false), "/user/a%20b/");
        assert_eq!(routespec("/user/a@b~c/gpu", false), "/user/a@b~c/gpu/");
        assert_eq!(routespec("/", false), "/");
        assert_eq!(routespec("/alice.hub.test/user/alice", true), "alice.hub.test/user/alice/");
    }

    #[tokio::test]
    async fn routes_are_listed_as_jupyterhub_lists_them() {
        let hub = test_hub().await;
        let admin = Some(hub.admin_token.as_str());
        let routes = hub.proxy.routes();
        let alice =
            json!({ "user": "alice", "server_name": "", "target": "http://127.0.0.1:9001", "jupyterhub": true });
        routes.add("/user/alice/", data(alice)).await.unwrap();
        let bob = json!({ "user": "bob", "server_name": "gpu", "target": "http://127.0.0.1:9002", "jupyterhub": true });
        routes.add("/user/bob/gpu/", data(bob)).await.unwrap();
        routes.add("/elsewhere", data(json!({ "target": "http://127.0.0.1:9003" }))).await.unwrap();

        let answer = call(&hub.app, Method::GET, "/hub/api/proxy", admin, None).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let mut body = answer.json();
        let activity = body["/user/alice/"]["data"]["last_activity"].take();
        assert!(activity.as_str().unwrap().ends_with('Z'), "{activity}");
        body["/user/bob/gpu/"]["data"]["last_activity"].take();
        assert_eq!(
            body,
            json!({
                "/user/alice/": {
                    "routespec": "/user/alice/", "target": "http://127.0.0.1:9001",
                    "data": { "user": "alice", "server_name": "", "last_activity": null },
                },
                "/user/bob/gpu/": {
                    "routespec": "/user/bob/gpu/", "target": "http://127.0.0.1:9002",
                    "data": { "user": "bob", "server_name": "gpu", "last_activity": null },
                },
            })
        );
        let accept = ("accept", "application/jupyterhub-pagination+json");
        let page = call_with(&hub.app, Method::GET, "/hub/api/proxy?limit=1", admin, None, &[accept]).await.json();
        assert_eq!(page["_pagination"]["total"], 2);
        assert_eq!(page["items"].as_object().unwrap().keys().collect::<Vec<_>>(), ["/user/alice/"]);
        assert_eq!(page["_pagination"]["next"]["offset"], 1);

        let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
        let message = call(&hub.app, Method::GET, "/hub/api/proxy", Some(&alice), None).await.assert_error(403);
        assert_eq!(message, "Action is not authorized with current scopes; requires any of ['proxy']");
    }

    #[tokio::test]
    async fn post_resyncs_routes_with_the_store_and_patch_validates() {
        let hub = test_hub().await;
        let admin = Some(hub.admin_token.as_str());
        let carol = UserName::parse("carol").unwrap();
        hub.store.create_user(&carol, false).await.unwrap();
        let default = ServerName::default_server();
        hub.store.create_server(&carol, &default, "{}").await.unwrap();
        for state in [SpawnState::Requested, SpawnState::Starting] {
            let update = ServerUpdate { state: Some(state), ..ServerUpdate::default() };
            hub.store.update_server(&carol, &default, &update).await.unwrap();
        }
        let located = ServerUpdate {
            state: Some(SpawnState::Running),
            url: Some("http://127.0.0.1:9100".into()),
            ..ServerUpdate::default()
        };
        hub.store.update_server(&carol, &default, &located).await.unwrap();
        let routes = hub.proxy.routes();
        let stray = json!({ "user": "dave", "server_name": "", "target": "http://127.0.0.1:9200", "jupyterhub": true });
        routes.add("/user/dave/", data(stray)).await.unwrap();
        routes
            .add("/", data(json!({ "hub": true, "target": "http://127.0.0.1:8081", "jupyterhub": true })))
            .await
            .unwrap();
        routes.add("/other", data(json!({ "target": "http://127.0.0.1:9300" }))).await.unwrap();

        let answer = call(&hub.app, Method::POST, "/hub/api/proxy", admin, None).await;
        assert_eq!((answer.status, answer.text.as_str()), (StatusCode::OK, ""));
        let table = routes.table();
        let route = table.get("/user/carol/").expect("the running server got its route");
        assert_eq!(route.target().as_str(), "http://127.0.0.1:9100");
        assert_eq!(route.data()["user"], "carol");
        assert!(table.get("/user/dave/").is_none(), "the stray user route is gone");
        assert!(table.get("/").is_some() && table.get("/other").is_some(), "other routes stay");

        let message = call(&hub.app, Method::PATCH, "/hub/api/proxy", admin, None).await.assert_error(400);
        assert_eq!(message, "need JSON body");
        let message = call(&hub.app, Method::PATCH, "/hub/api/proxy", admin, Some("[1]")).await.assert_error(400);
        assert_eq!(message, "Request body must be JSON dict");
        let patch = r#"{"api_url": "http://127.0.0.1:8001", "auth_token": "secret"}"#;
        let answer = call(&hub.app, Method::PATCH, "/hub/api/proxy", admin, Some(patch)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.headers["content-type"], "application/json");
    }
}
