//! The HTTP face of the fake: core/v1 paths, verbs and query parameters as the real API server reads them, JSON
//! bodies, `metav1.Status` errors, and watches as a chunked stream of JSON lines with bookmarks and 410 Expired.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use super::resources::Resource;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::Status;
use super::store::{Change, ChangeType, CreateOptions, Store};
use super::validate;

/// How many requests of each verb and resource the fake answered.
pub type ApiCalls = BTreeMap<(String, String), u64>;

/// State shared by the handlers and the test handle.
pub(crate) struct Shared {
    pub(crate) store: Arc<Store>,
    pub(crate) strict_by_default: bool,
    pub(crate) bookmark_interval: Duration,
    pub(crate) calls: Mutex<ApiCalls>,
    /// Requests still to fail, and with which code (fault injection).
    pub(crate) failures: Mutex<(u64, u16)>,
    /// The rules a Role grants the client, as RBAC enforces them; none allows everything.
    pub(crate) access: Mutex<Option<Vec<AccessRule>>>,
    /// Calls the access rules refused, as (verb, resource).
    pub(crate) refused: Mutex<Vec<(String, String)>>,
    /// Bumped to end every open watch (a dropped connection, as after an API server restart).
    pub(crate) watch_generation: watch::Sender<u64>,
    pub(crate) open_watches: AtomicU64,
}

type Params = Query<HashMap<String, String>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(|| async { axum::Json(json!({"kind": "APIVersions", "versions": ["v1"]})) }))
        .route("/api/v1/{resource}", get(cluster_collection).post(cluster_create))
        .route("/api/v1/namespaces/{namespace}", get(namespace_get).delete(namespace_delete))
        .route("/api/v1/namespaces/{namespace}/{resource}", get(collection).post(create))
        .route(
            "/api/v1/namespaces/{namespace}/{resource}/{name}",
            get(object_get).delete(object_delete).put(object_replace).patch(object_patch),
        )
        .fallback(|method: Method, uri: axum::http::Uri| async move {
            let mut status = Status::not_found(Resource::Namespaces, "");
            status.code = 404;
            status.message = format!("the server could not find the requested resource ({method} {uri})");
            status.name = None;
            status.kind = None;
            status
        })
        .with_state(shared)
}

async fn version() -> axum::Json<Value> {
    axum::Json(json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-wasmhub-fake", "gitCommit": "", "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"
    }))
}

/// One rule of a Role (core API group): these verbs on these resources, `*` for any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
}

impl AccessRule {
    fn allows(&self, verb: &str, resource: &str) -> bool {
        let has = |list: &[String], wanted: &str| list.iter().any(|item| item == "*" || item == wanted);
        has(&self.resources, resource) && has(&self.verbs, verb)
    }
}

impl Shared {
    /// Counts the request, refuses it as RBAC would when the access rules do not allow it, and answers an
    /// injected failure if one is pending.
    fn admit(&self, verb: &str, resource: Resource) -> Result<(), Status> {
        {
            let mut calls = self.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *calls.entry((verb.to_owned(), resource.plural().to_owned())).or_insert(0) += 1;
        }
        let access = self.access.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(rules) = access.as_ref()
            && !rules.iter().any(|rule| rule.allows(verb, resource.plural()))
        {
            self.refused
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push((verb.to_owned(), resource.plural().to_owned()));
            let message = format!(
                "{plural} is forbidden: the service account cannot {verb} resource \"{plural}\" in API group \"\"",
                plural = resource.plural()
            );
            return Err(Status::new(403, "Forbidden", message));
        }
        drop(access);
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if failures.0 > 0 {
            failures.0 -= 1;
            return Err(Status::injected(failures.1));
        }
        Ok(())
    }
}

fn resource_of(plural: &str) -> Result<Resource, Status> {
    Resource::from_plural(plural).ok_or_else(|| {
        let mut status = Status::bad_request(format!("the server could not find the requested resource ({plural})"));
        status.code = 404;
        status.reason = "NotFound".into();
        status
    })
}

fn strict(shared: &Shared, params: &HashMap<String, String>) -> bool {
    match params.get("fieldValidation").map(String::as_str) {
        Some("Strict") => true,
        Some("Warn" | "Ignore") => false,
        _ => shared.strict_by_default,
    }
}

fn parse_body(body: &Bytes) -> Result<Value, Status> {
    serde_json::from_slice(body)
        .map_err(|error| Status::bad_request(format!("couldn't get version/kind; json parse error: {error}")))
}

fn is_watch(params: &HashMap<String, String>) -> bool {
    matches!(params.get("watch").map(String::as_str), Some("true" | "1"))
}

async fn cluster_collection(
    State(shared): State<Arc<Shared>>,
    Path(plural): Path<String>,
    Query(params): Params,
) -> Response {
    match resource_of(&plural) {
        Ok(resource) => list_or_watch(shared, resource, None, params),
        Err(status) => status.into_response(),
    }
}

async fn cluster_create(
    State(shared): State<Arc<Shared>>,
    Path(plural): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Response {
    let result = (|| {
        let resource = resource_of(&plural)?;
        if resource.namespaced() {
            return Err(Status::method_not_allowed(format!("{plural} are namespaced")));
        }
        shared.admit("create", resource)?;
        let options = CreateOptions { strict: strict(&shared, &params), dry_run: params.contains_key("dryRun") };
        shared.store.create(resource, "", parse_body(&body)?, &options)
    })();
    created(result)
}

async fn namespace_get(State(shared): State<Arc<Shared>>, Path(namespace): Path<String>) -> Response {
    let result = shared.admit("get", Resource::Namespaces).and_then(|()| {
        shared
            .store
            .get(Resource::Namespaces, "", &namespace)
            .ok_or_else(|| Status::not_found(Resource::Namespaces, &namespace))
    });
    ok(result)
}

async fn namespace_delete(State(shared): State<Arc<Shared>>, Path(namespace): Path<String>) -> Response {
    let result = shared
        .admit("delete", Resource::Namespaces)
        .and_then(|()| shared.store.delete(Resource::Namespaces, "", &namespace, None, (None, None)));
    ok(result)
}

async fn collection(
    State(shared): State<Arc<Shared>>,
    Path((namespace, plural)): Path<(String, String)>,
    Query(params): Params,
) -> Response {
    match resource_of(&plural) {
        Ok(resource) => list_or_watch(shared, resource, Some(namespace), params),
        Err(status) => status.into_response(),
    }
}

async fn create(
    State(shared): State<Arc<Shared>>,
    Path((namespace, plural)): Path<(String, String)>,
    Query(params): Params,
    body: Bytes,
) -> Response {
    let result = (|| {
        let resource = resource_of(&plural)?;
        shared.admit("create", resource)?;
        let options = CreateOptions { strict: strict(&shared, &params), dry_run: params.contains_key("dryRun") };
        shared.store.create(resource, &namespace, parse_body(&body)?, &options)
    })();
    created(result)
}

async fn object_get(
    State(shared): State<Arc<Shared>>,
    Path((namespace, plural, name)): Path<(String, String, String)>,
) -> Response {
    let result = (|| {
        let resource = resource_of(&plural)?;
        shared.admit("get", resource)?;
        shared.store.get(resource, &namespace, &name).ok_or_else(|| Status::not_found(resource, &name))
    })();
    ok(result)
}

async fn object_delete(
    State(shared): State<Arc<Shared>>,
    Path((namespace, plural, name)): Path<(String, String, String)>,
    Query(params): Params,
    body: Bytes,
) -> Response {
    let result = (|| {
        let resource = resource_of(&plural)?;
        shared.admit("delete", resource)?;
        // DeleteOptions come in the body (kube-rs) or as query parameters (kubectl).
        let options: Value = if body.is_empty() { json!({}) } else { parse_body(&body)? };
        let grace = options["gracePeriodSeconds"]
            .as_i64()
            .or_else(|| params.get("gracePeriodSeconds").and_then(|value| value.parse().ok()));
        let preconditions = (
            options.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_owned),
            options.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_owned),
        );
        shared.store.delete(resource, &namespace, &name, grace, preconditions)
    })();
    ok(result)
}

async fn object_replace(
    State(shared): State<Arc<Shared>>,
    Path((namespace, plural, name)): Path<(String, String, String)>,
    Query(params): Params,
    body: Bytes,
) -> Response {
    let result = (|| {
        let resource = resource_of(&plural)?;
        shared.admit("update", resource)?;
        let replacement = validate::admit(resource, &parse_body(&body)?, strict(&shared, &params))?;
        shared.store.modify(resource, &namespace, &name, |existing| replace(resource, existing, replacement))
    })();
    ok(result)
}

async fn object_patch(
    State(shared): State<Arc<Shared>>,
    Path((namespace, plural, name)): Path<(String, String, String)>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = (|| {
        let resource = resource_of(&plural)?;
        shared.admit("patch", resource)?;
        let content_type = headers.get("content-type").and_then(|value| value.to_str().ok()).unwrap_or_default();
        // A strategic merge patch on the fields our clients patch (metadata) is a JSON merge patch.
        if !content_type.starts_with("application/merge-patch+json")
            && !content_type.starts_with("application/strategic-merge-patch+json")
        {
            let mut status =
                Status::bad_request(format!("the body of the request was in an unknown format ({content_type})"));
            status.code = 415;
            status.reason = "UnsupportedMediaType".into();
            return Err(status);
        }
        let patch = parse_body(&body)?;
        let strict = strict(&shared, &params);
        shared.store.modify(resource, &namespace, &name, |existing| {
            let mut patched = existing.clone();
            merge_patch(&mut patched, &patch);
            let admitted = validate::admit(resource, &patched, strict)?;
            replace(resource, existing, admitted)
        })
    })();
    ok(result)
}

/// An update: server-owned fields are kept, a stale resourceVersion is 409, and a pod's spec may not change
/// except for images and `activeDeadlineSeconds`, as on the real server.
fn replace(resource: Resource, existing: &mut Value, mut replacement: Value) -> Result<(), Status> {
    let name = existing["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    if let Some(version) = replacement.pointer("/metadata/resourceVersion").and_then(Value::as_str)
        && Some(version) != existing.pointer("/metadata/resourceVersion").and_then(Value::as_str)
    {
        return Err(Status::conflict(
            resource,
            &name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    for key in ["uid", "creationTimestamp", "namespace", "generation", "deletionTimestamp", "resourceVersion"] {
        match existing["metadata"].get(key) {
            Some(value) => replacement["metadata"][key] = value.clone(),
            None => {
                if let Some(metadata) = replacement["metadata"].as_object_mut() {
                    metadata.remove(key);
                }
            }
        }
    }
    if resource == Resource::Pods {
        let mutable_only = |spec: &Value| {
            let mut spec = spec.clone();
            for list in ["containers", "initContainers"] {
                for container in spec[list].as_array_mut().into_iter().flatten() {
                    container["image"] = Value::Null;
                }
            }
            if let Some(spec) = spec.as_object_mut() {
                spec.remove("activeDeadlineSeconds");
            }
            spec
        };
        if mutable_only(&existing["spec"]) != mutable_only(&replacement["spec"]) {
            return Err(Status::invalid(
                resource,
                &name,
                vec![super::status::Cause {
                    reason: "FieldValueForbidden".into(),
                    message: "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, \
                              `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, \
                              `spec.tolerations` (only additions to existing tolerations)"
                        .into(),
                    field: "spec".into(),
                }],
            ));
        }
        // Status is the kubelet's; an update through the main resource does not change it.
        replacement["status"] = existing["status"].clone();
    }
    *existing = replacement;
    Ok(())
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(patch_map) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let target_map = target.as_object_mut().expect("made an object above");
    for (key, value) in patch_map {
        if value.is_null() {
            target_map.remove(key);
        } else {
            merge_patch(target_map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn ok(result: Result<Value, Status>) -> Response {
    match result {
        Ok(object) => (StatusCode::OK, axum::Json(object)).into_response(),
        Err(status) => status.into_response(),
    }
}

fn created(result: Result<Value, Status>) -> Response {
    match result {
        Ok(object) => (StatusCode::CREATED, axum::Json(object)).into_response(),
        Err(status) => status.into_response(),
    }
}

/// The selectors and paging of a list or watch request.
struct Selection {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Selection {
    fn parse(resource: Resource, params: &HashMap<String, String>) -> Result<Selection, Status> {
        let labels = LabelSelector::parse(params.get("labelSelector").map(String::as_str).unwrap_or_default())
            .map_err(Status::bad_request)?;
        let fields =
            FieldSelector::parse(params.get("fieldSelector").map(String::as_str).unwrap_or_default(), resource)
                .map_err(Status::bad_request)?;
        Ok(Selection { labels, fields })
    }

    fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object.pointer("/metadata/labels").and_then(Value::as_object))
            && self.fields.matches(object)
    }
}

fn list_or_watch(
    shared: Arc<Shared>,
    resource: Resource,
    namespace: Option<String>,
    params: HashMap<String, String>,
) -> Response {
    let verb = if is_watch(&params) { "watch" } else { "list" };
    if let Err(status) = shared.admit(verb, resource) {
        return status.into_response();
    }
    let selection = match Selection::parse(resource, &params) {
        Ok(selection) => selection,
        Err(status) => return status.into_response(),
    };
    if is_watch(&params) {
        return start_watch(shared, resource, namespace, params, selection);
    }
    let (mut items, resource_version) =
        shared.store.list_matching(resource, namespace.as_deref(), |object| selection.matches(object));
    // `continue` is "<offset>": paging walks the current state, which is what the server's cache gives too.
    let offset: usize = params.get("continue").and_then(|token| token.parse().ok()).unwrap_or(0);
    let limit: Option<usize> = params.get("limit").and_then(|limit| limit.parse().ok()).filter(|limit| *limit > 0);
    let total = items.len();
    items = items.into_iter().skip(offset).collect();
    let mut metadata = json!({"resourceVersion": resource_version.to_string()});
    if let Some(limit) = limit
        && items.len() > limit
    {
        items.truncate(limit);
        metadata["continue"] = json!((offset + limit).to_string());
        metadata["remainingItemCount"] = json!(total - offset - limit);
    }
    // List items carry no kind or apiVersion; the list does.
    for item in &mut items {
        if let Some(object) = item.as_object_mut() {
            object.remove("kind");
            object.remove("apiVersion");
        }
    }
    let list =
        json!({"kind": format!("{}List", resource.kind()), "apiVersion": "v1", "metadata": metadata, "items": items});
    (StatusCode::OK, axum::Json(list)).into_response()
}

fn watch_line(event_type: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": event_type, "object": object})).expect("JSON serialises");
    line.push(b'\n');
    Bytes::from(line)
}

/// What a watch sends for one change: the event, or nothing when the object is not, and was not, selected.
fn event_for(change: &Change, namespace: Option<&str>, selection: &Selection) -> Option<Bytes> {
    if namespace.is_some_and(|namespace| namespace != change.namespace) {
        return None;
    }
    let now_matches = selection.matches(&change.object);
    let before_matched = change.previous.as_ref().map(|previous| selection.matches(previous));
    let event_type = match (change.change_type, before_matched, now_matches) {
        (ChangeType::Modified, Some(true), false) => ChangeType::Deleted,
        (ChangeType::Modified, Some(false), true) => ChangeType::Added,
        (_, _, false) => return None,
        (change_type, _, true) => change_type,
    };
    Some(watch_line(event_type.as_str(), &change.object))
}

fn start_watch(
    shared: Arc<Shared>,
    resource: Resource,
    namespace: Option<String>,
    params: HashMap<String, String>,
    selection: Selection,
) -> Response {
    let since = match params.get("resourceVersion").filter(|version| !version.is_empty()) {
        None => None,
        Some(version) => match version.parse::<u64>() {
            Ok(version) => Some(version),
            Err(_) => return Status::bad_request(format!("invalid resource version: {version}")).into_response(),
        },
    };
    let bookmarks = params.get("allowWatchBookmarks").is_some_and(|value| value == "true");
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|seconds| seconds.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let (sender, receiver) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    match shared.store.subscribe(resource, namespace.as_deref(), since) {
        Err(expired) => {
            // The real server answers 200 and sends the 410 as an ERROR event.
            let line = watch_line("ERROR", &expired.to_json());
            let _ = sender.try_send(Ok(line));
        }
        Ok((initial, live, start_version)) => {
            tokio::spawn(run_watch(
                shared,
                resource,
                namespace,
                selection,
                initial,
                live,
                start_version,
                bookmarks,
                timeout,
                sender,
            ));
        }
    }
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .expect("a valid response")
}

#[allow(clippy::too_many_arguments)]
async fn run_watch(
    shared: Arc<Shared>,
    resource: Resource,
    namespace: Option<String>,
    selection: Selection,
    initial: Vec<Arc<Change>>,
    mut live: broadcast::Receiver<Arc<Change>>,
    start_version: u64,
    bookmarks: bool,
    timeout: Duration,
    sender: mpsc::Sender<Result<Bytes, Infallible>>,
) {
    shared.open_watches.fetch_add(1, Ordering::Relaxed);
    let mut generation = shared.watch_generation.subscribe();
    generation.borrow_and_update();
    let namespace = namespace.as_deref();
    let mut last_version = start_version;
    let send_change = |change: &Change| event_for(change, namespace, &selection);
    'watch: {
        for change in &initial {
            if change.resource == resource
                && let Some(line) = send_change(change)
                && sender.send(Ok(line)).await.is_err()
            {
                break 'watch;
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut ticker = tokio::time::interval(shared.bookmark_interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                biased;
                _ = sender.closed() => break,
                _ = tokio::time::sleep_until(deadline) => break,
                _ = generation.changed() => break,
                received = live.recv() => match received {
                    Ok(change) => {
                        if change.resource_version <= last_version {
                            continue;
                        }
                        last_version = change.resource_version;
                        if change.resource == resource
                            && let Some(line) = send_change(&change)
                            && sender.send(Ok(line)).await.is_err()
                        {
                            break;
                        }
                    }
                    // A watcher that fell this far behind is closed, as the server's watch cache does with slow
                    // consumers; the client watches again from its last version.
                    Err(_) => break,
                },
                _ = ticker.tick(), if bookmarks => {
                    let bookmark = json!({
                        "kind": resource.kind(),
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": last_version.to_string()},
                    });
                    if sender.send(Ok(watch_line("BOOKMARK", &bookmark))).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    shared.open_watches.fetch_sub(1, Ordering::Relaxed);
}
