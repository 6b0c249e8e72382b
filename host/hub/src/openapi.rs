//! The REST API described once: [`OPERATIONS`] lists every method and path the hub serves under `/hub/api`, with
//! its JupyterHub handler class, scopes and answers, and [`document`] turns it into OpenAPI 3.1.
//!
//! The document is served at `/hub/api/_wasmhub/openapi.json` (JupyterHub serves none, and the `_wasmhub`
//! segment cannot collide with a user, group or JupyterHub path) and written to `docs/rest-api.json` by a test.
//! Tests keep the table honest: every route the router serves under `/hub/api` is in it, every method and path in
//! it is served and no other method is, and the answers of a scripted session match the documented schemas.
//! The handler names label `jupyterhub_request_duration_seconds` as JupyterHub labels it.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::JUPYTERHUB_VERSION;

/// Where the document is served (`lib.rs` writes the route as a literal, which the route test reads).
#[cfg(test)]
pub(crate) const DOCUMENT_PATH: &str = "/hub/api/_wasmhub/openapi.json";

/// What an answer carries.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Body {
    /// No body (`text/plain` or none, as JupyterHub sends them).
    Empty,
    /// JSON matching the named schema in `components.schemas`.
    Json(&'static str),
    /// A JSON list of the named schema, or the paginated form with the pagination `Accept` header.
    Page(&'static str),
    /// Server-sent events, each a `ProgressEvent`.
    Events,
    /// Prometheus text.
    Metrics,
    /// An HTML page (the OAuth confirmation and error pages).
    Html,
}

/// One documented answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) description: &'static str,
    pub(crate) body: Body,
}

const fn ok(status: u16, description: &'static str, body: Body) -> Answer {
    Answer { status, description, body }
}

const BAD_REQUEST: Answer = ok(400, "Invalid request", Body::Json("Error"));
const FORBIDDEN: Answer = ok(403, "Missing or invalid credentials, or no scope for this action", Body::Json("Error"));
const NOT_FOUND: Answer = ok(404, "Not found, or a scope is held but not for this resource", Body::Json("Error"));
const CONFLICT: Answer = ok(409, "Already exists", Body::Json("Error"));
const TOO_MANY_ACTIVE: Answer = ok(429, "hub.activeServerLimit servers are already active", Body::Json("Error"));

/// One method on one path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operation {
    pub(crate) method: &'static str,
    /// Relative to `/hub/api`, with axum's `{param}` syntax (which is also OpenAPI's).
    pub(crate) path: &'static str,
    /// JupyterHub's handler class, the `handler` label of the request metric.
    pub(crate) handler: &'static str,
    /// Any one of these scopes; empty for unauthenticated endpoints.
    pub(crate) scopes: &'static [&'static str],
    pub(crate) summary: &'static str,
    /// The JSON request body's schema.
    pub(crate) request: Option<&'static str>,
    pub(crate) answers: &'static [Answer],
}

const READ_USER: &[&str] =
    &["read:users", "read:users:name", "read:servers", "read:users:groups", "read:users:activity", "read:roles:users"];
const READ_GROUP: &[&str] = &["read:groups", "read:groups:name", "read:roles:groups"];
const READ_SERVICE: &[&str] = &["read:services", "read:services:name", "read:roles:services"];

macro_rules! op {
    ($method:literal $path:literal $handler:literal $scopes:expr, $summary:literal, $request:expr, [$($answer:expr),* $(,)?]) => {
        Operation {
            method: $method,
            path: $path,
            handler: $handler,
            scopes: $scopes,
            summary: $summary,
            request: $request,
            answers: &[$($answer),*],
        }
    };
}

/// Every operation of the REST API, in JupyterHub's order.
pub(crate) const OPERATIONS: &[Operation] = &[
    op!("get" "/" "jupyterhub.apihandlers.hub.RootAPIHandler" &[], "The hub's version (also at /hub/api without a slash)", None,
        [ok(200, "The version", Body::Json("Version"))]),
    op!("get" "/info" "jupyterhub.apihandlers.hub.InfoAPIHandler" &["read:hub"], "Versions of the hub, spawner and authenticator", None,
        [ok(200, "Hub information", Body::Json("Info")), FORBIDDEN]),
    op!("get" "/health" "jupyterhub.handlers.pages.HealthCheckHandler" &[], "Health check (also at /hub/health)", None,
        [ok(200, "The hub is up", Body::Empty), ok(503, "The proxy in another process does not answer", Body::Empty)]),
    op!("get" "/metrics" "jupyterhub.handlers.metrics.MetricsHandler" &["read:metrics"], "Prometheus metrics (also at /hub/metrics)", None,
        [ok(200, "Prometheus text", Body::Metrics), FORBIDDEN]),
    op!("get" "/user" "jupyterhub.apihandlers.users.SelfAPIHandler" &[], "Who the token or cookie belongs to, with its scopes", None,
        [ok(200, "The owner's model plus token_id, session_id and scopes", Body::Json("Identity")), ok(403, "No or invalid credentials", Body::Json("Error"))]),
    op!("get" "/users" "jupyterhub.apihandlers.users.UserListAPIHandler" &["list:users"], "List users", None,
        [ok(200, "Users; `state`, `name_filter`, `sort`, `offset`, `limit` and `include_stopped_servers` select them", Body::Page("User")), BAD_REQUEST, FORBIDDEN]),
    op!("post" "/users" "jupyterhub.apihandlers.users.UserListAPIHandler" &["admin:users"], "Create users", Some("NewUsers"),
        [ok(201, "The users created", Body::Json("UserList")), BAD_REQUEST, FORBIDDEN, CONFLICT]),
    op!("get" "/users/{name}" "jupyterhub.apihandlers.users.UserAPIHandler" READ_USER, "One user", None,
        [ok(200, "The user, with the keys the caller's scopes allow", Body::Json("User")), FORBIDDEN, NOT_FOUND]),
    op!("post" "/users/{name}" "jupyterhub.apihandlers.users.UserAPIHandler" &["admin:users"], "Create a user", Some("UserChange"),
        [ok(201, "The user", Body::Json("User")), BAD_REQUEST, FORBIDDEN, CONFLICT]),
    op!("patch" "/users/{name}" "jupyterhub.apihandlers.users.UserAPIHandler" &["admin:users"], "Change or rename a user", Some("UserChange"),
        [ok(200, "The user", Body::Json("User")), BAD_REQUEST, FORBIDDEN, NOT_FOUND]),
    op!("delete" "/users/{name}" "jupyterhub.apihandlers.users.UserAPIHandler" &["delete:users"], "Delete a user, stopping their servers", None,
        [ok(204, "Deleted", Body::Empty), BAD_REQUEST, FORBIDDEN, NOT_FOUND]),
    op!("post" "/users/{name}/activity" "jupyterhub.apihandlers.users.ActivityAPIHandler" &["users:activity"], "Report activity of a user and their servers", Some("Activity"),
        [ok(200, "Recorded", Body::Empty), BAD_REQUEST, FORBIDDEN, NOT_FOUND]),
    op!("get" "/users/{name}/tokens" "jupyterhub.apihandlers.users.UserTokenListAPIHandler" &["read:tokens"], "A user's tokens", None,
        [ok(200, "The tokens", Body::Json("TokenList")), FORBIDDEN, NOT_FOUND]),
    op!("post" "/users/{name}/tokens" "jupyterhub.apihandlers.users.UserTokenListAPIHandler" &["tokens"], "Create a token", Some("NewToken"),
        [ok(201, "The token, with its plaintext shown this once", Body::Json("Token")), BAD_REQUEST, ok(403, "Missing or invalid credentials, or no such user or no permission to make their tokens", Body::Json("Error"))]),
    op!("get" "/users/{name}/tokens/{token_id}" "jupyterhub.apihandlers.users.UserTokenAPIHandler" &["read:tokens"], "One token", None,
        [ok(200, "The token", Body::Json("Token")), FORBIDDEN, NOT_FOUND]),
    op!("delete" "/users/{name}/tokens/{token_id}" "jupyterhub.apihandlers.users.UserTokenAPIHandler" &["tokens"], "Revoke a token", None,
        [ok(204, "Revoked", Body::Empty), FORBIDDEN, NOT_FOUND]),
    op!("post" "/users/{name}/server" "jupyterhub.apihandlers.users.UserServerAPIHandler" &["servers"], "Start the default server; the body is its user_options", Some("UserOptions"),
        [ok(201, "Started and ready", Body::Empty), ok(202, "Still starting", Body::Empty), BAD_REQUEST, FORBIDDEN, NOT_FOUND, TOO_MANY_ACTIVE]),
    op!("delete" "/users/{name}/server" "jupyterhub.apihandlers.users.UserServerAPIHandler" &["delete:servers"], "Stop the default server", Some("ServerRemoval"),
        [ok(204, "Stopped", Body::Empty), ok(202, "Still stopping", Body::Empty), BAD_REQUEST, FORBIDDEN, NOT_FOUND]),
    op!("post" "/users/{name}/servers/{server_name}" "jupyterhub.apihandlers.users.UserServerAPIHandler" &["servers"], "Start a named server; the body is its user_options", Some("UserOptions"),
        [ok(201, "Started and ready", Body::Empty), ok(202, "Still starting", Body::Empty), BAD_REQUEST, FORBIDDEN, NOT_FOUND, TOO_MANY_ACTIVE]),
    op!("delete" "/users/{name}/servers/{server_name}" "jupyterhub.apihandlers.users.UserServerAPIHandler" &["delete:servers"], "Stop a named server, or remove it with {\"remove\": true}", Some("ServerRemoval"),
        [ok(204, "Stopped", Body::Empty), ok(202, "Still stopping", Body::Empty), BAD_REQUEST, FORBIDDEN, NOT_FOUND]),
    op!("get" "/users/{name}/server/progress" "jupyterhub.apihandlers.users.SpawnProgressAPIHandler" &["read:servers"], "Progress of the default server's spawn", None,
        [ok(200, "Events until ready or failed; one ready event if the server runs", Body::Events), ok(400, "The server is not starting", Body::Json("Error")), FORBIDDEN, NOT_FOUND]),
    op!("get" "/users/{name}/servers/{server_name}/progress" "jupyterhub.apihandlers.users.SpawnProgressAPIHandler" &["read:servers"], "Progress of a named server's spawn", None,
        [ok(200, "Events until ready or failed; one ready event if the server runs", Body::Events), ok(400, "The server is not starting", Body::Json("Error")), FORBIDDEN, NOT_FOUND]),
    op!("get" "/groups" "jupyterhub.apihandlers.groups.GroupListAPIHandler" &["list:groups"], "List groups", None,
        [ok(200, "Groups, by `offset` and `limit`", Body::Page("Group")), BAD_REQUEST, FORBIDDEN]),
    op!("post" "/groups" "jupyterhub.apihandlers.groups.GroupListAPIHandler" &["admin:groups"], "Create groups", Some("NewGroups"),
        [ok(201, "The groups created", Body::Json("GroupList")), BAD_REQUEST, FORBIDDEN, CONFLICT]),
    op!("get" "/groups/{name}" "jupyterhub.apihandlers.groups.GroupAPIHandler" READ_GROUP, "One group", None,
        [ok(200, "The group, with the keys the caller's scopes allow", Body::Json("Group")), FORBIDDEN, NOT_FOUND]),
    op!("post" "/groups/{name}" "jupyterhub.apihandlers.groups.GroupAPIHandler" &["admin:groups"], "Create a group", Some("GroupChange"),
        [ok(201, "The group", Body::Json("Group")), BAD_REQUEST, FORBIDDEN, CONFLICT]),
    op!("delete" "/groups/{name}" "jupyterhub.apihandlers.groups.GroupAPIHandler" &["delete:groups"], "Delete a group", None,
        [ok(204, "Deleted", Body::Empty), FORBIDDEN, NOT_FOUND]),
    op!("post" "/groups/{name}/users" "jupyterhub.apihandlers.groups.GroupUsersAPIHandler" &["groups"], "Add members", Some("GroupChange"),
        [ok(200, "The group", Body::Json("Group")), BAD_REQUEST, FORBIDDEN, NOT_FOUND]),
    op!("delete" "/groups/{name}/users" "jupyterhub.apihandlers.groups.GroupUsersAPIHandler" &["groups"], "Remove members", Some("GroupChange"),
        [ok(200, "The group", Body::Json("Group")), BAD_REQUEST, FORBIDDEN, NOT_FOUND]),
    op!("put" "/groups/{name}/properties" "jupyterhub.apihandlers.groups.GroupPropertiesAPIHandler" &["groups"], "Replace a group's properties", Some("Properties"),
        [ok(200, "The group", Body::Json("Group")), BAD_REQUEST, FORBIDDEN, NOT_FOUND]),
    op!("get" "/services" "jupyterhub.apihandlers.services.ServiceListAPIHandler" &["list:services"], "List services (a dict by name, never paginated)", None,
        [ok(200, "The services", Body::Json("ServiceDict")), FORBIDDEN]),
    op!("get" "/services/{name}" "jupyterhub.apihandlers.services.ServiceAPIHandler" READ_SERVICE, "One service", None,
        [ok(200, "The service", Body::Json("Service")), FORBIDDEN, NOT_FOUND]),
    op!("get" "/proxy" "jupyterhub.apihandlers.proxy.ProxyAPIHandler" &["proxy"], "The hub's routes in the proxy", None,
        [ok(200, "Routes by routespec (a dict; `items` is a dict when paginated)", Body::Json("RouteTable")), FORBIDDEN]),
    op!("post" "/proxy" "jupyterhub.apihandlers.proxy.ProxyAPIHandler" &["proxy"], "Bring the proxy's routes in line with the running servers", None,
        [ok(200, "Done", Body::Empty), FORBIDDEN]),
    op!("patch" "/proxy" "jupyterhub.apihandlers.proxy.ProxyAPIHandler" &["proxy"], "Re-point the hub at a proxy (the proxy is in-process here: validated, then re-synced)", Some("ProxyLocation"),
        [ok(200, "Done", Body::Empty), BAD_REQUEST, FORBIDDEN]),
    op!("post" "/shutdown" "jupyterhub.apihandlers.hub.ShutdownAPIHandler" &["shutdown"], "Shut the hub down", Some("Shutdown"),
        [ok(202, "Shutting down", Body::Json("Message")), BAD_REQUEST, FORBIDDEN]),
    op!("get" "/oauth2/authorize" "jupyterhub.apihandlers.auth.OAuthAuthorizeHandler" &[], "OAuth authorization (cookie-authenticated, for browsers)", None,
        [ok(200, "The confirmation page", Body::Html), ok(302, "To the client's redirect_uri with a code, or to the login page", Body::Empty), ok(400, "Invalid request page", Body::Html), ok(403, "Not allowed page", Body::Html)]),
    op!("post" "/oauth2/authorize" "jupyterhub.apihandlers.auth.OAuthAuthorizeHandler" &[], "Confirm an OAuth authorization (form with scopes and _xsrf)", None,
        [ok(302, "To the client's redirect_uri with a code", Body::Empty), ok(400, "Invalid request page", Body::Html), ok(403, "Not allowed page", Body::Html)]),
    op!("post" "/oauth2/token" "jupyterhub.apihandlers.auth.OAuthTokenHandler" &[], "Exchange an authorization code (form-urlencoded)", None,
        [ok(200, "The access token", Body::Json("OAuthToken")), ok(400, "OAuth error", Body::Json("OAuthError")), ok(401, "Bad client credentials", Body::Json("OAuthError"))]),
    op!("get" "/_wasmhub/openapi.json" "wasmhub.OpenApiHandler" &[], "This document", None,
        [ok(200, "OpenAPI 3.1", Body::Json("OpenApi"))]),
    op!("get" "/_wasmhub/login-lockouts" "wasmhub.LoginLockoutsHandler" &["admin:users"], "Login names and client addresses locked out after failed logins", None,
        [ok(200, "The lockouts in force", Body::Json("Lockouts")), FORBIDDEN]),
    op!("delete" "/_wasmhub/login-lockouts" "wasmhub.LoginLockoutsHandler" &["admin:users"], "Lift one lockout: `?user=<name>` or `?address=<ip>`", None,
        [ok(204, "Lifted", Body::Empty), BAD_REQUEST, FORBIDDEN, NOT_FOUND]),
];

/// JupyterHub's handler class for a matched route (`/hub/api/...` as axum reports it, or its aliases).
pub(crate) fn jupyterhub_handler(method: &str, matched: &str) -> Option<&'static str> {
    let path = match matched {
        "/hub/api" | "/hub/api/" => "/",
        "/hub/health" => "/health",
        "/hub/metrics" => "/metrics",
        other => other.strip_prefix("/hub/api")?,
    };
    OPERATIONS
        .iter()
        .find(|operation| operation.path == path && operation.method.eq_ignore_ascii_case(method))
        .map(|operation| operation.handler)
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn nullable(kind: &str) -> Value {
    json!({ "type": [kind, "null"] })
}

fn list_of(schema: &str) -> Value {
    json!({ "type": "array", "items": { "$ref": format!("#/components/schemas/{schema}") } })
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
}

/// The models. Keys a caller's scopes hide are optional; `required` lists what every answer has.
fn schemas() -> Value {
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    let free_object = json!({ "type": "object" });
    json!({
        "Error": object(json!({ "status": { "type": "integer" }, "message": string() }), &["status", "message"]),
        "Version": object(json!({ "version": string() }), &["version"]),
        "Info": object(json!({
            "version": string(), "python": string(), "sys_executable": string(),
            "spawner": { "type": "object", "properties": { "class": string(), "version": string() } },
            "authenticator": { "type": "object", "properties": { "class": string(), "version": string() } },
        }), &["version"]),
        "Message": object(json!({ "message": string() }), &["message"]),
        "Server": object(json!({
            "name": string(), "full_name": string(), "last_activity": nullable("string"), "started": nullable("string"),
            "pending": nullable("string"), "ready": { "type": "boolean" }, "stopped": { "type": "boolean" },
            "url": string(), "user_options": free_object, "progress_url": string(), "full_url": nullable("string"),
            "full_progress_url": nullable("string"), "state": free_object,
        }), &["name", "full_name", "ready", "stopped", "url", "progress_url"]),
        "User": object(json!({
            "kind": { "const": "user" }, "name": string(), "admin": { "type": "boolean" }, "roles": strings,
            "groups": strings, "server": nullable("string"), "pending": nullable("string"), "created": string(),
            "last_activity": nullable("string"), "auth_state": nullable("object"),
            "servers": { "type": "object", "additionalProperties": { "$ref": "#/components/schemas/Server" } },
        }), &["kind", "name"]),
        "UserList": list_of("User"),
        "Identity": {
            "type": "object",
            "properties": { "kind": string(), "name": string(), "token_id": nullable("string"), "session_id": nullable("string"), "scopes": strings },
            "required": ["kind", "name", "scopes"],
        },
        "OAuthToken": object(json!({
            "access_token": string(), "expires_in": { "type": "integer" }, "token_type": string(), "scope": string(),
        }), &["access_token", "token_type"]),
        "OAuthError": object(json!({ "error": string() }), &["error"]),
        "Token": object(json!({
            "id": string(), "kind": string(), "user": string(), "service": string(), "roles": strings,
            "scopes": strings, "created": string(), "last_activity": nullable("string"),
            "expires_at": nullable("string"), "note": string(), "session_id": nullable("string"),
            "oauth_client": string(), "token": string(),
        }), &["id", "kind", "roles", "scopes", "created", "last_activity", "expires_at", "note", "session_id", "oauth_client"]),
        "TokenList": object(json!({ "api_tokens": list_of("Token") }), &["api_tokens"]),
        "Group": object(json!({
            "kind": { "const": "group" }, "name": string(), "roles": strings, "users": strings, "properties": free_object,
        }), &["kind", "name"]),
        "GroupList": list_of("Group"),
        "Service": object(json!({
            "kind": { "const": "service" }, "name": string(), "roles": strings, "admin": { "type": "boolean" },
            "url": string(), "prefix": string(), "command": { "type": ["array", "string"] }, "pid": { "type": "integer" },
            "info": free_object, "display": { "type": "boolean" },
        }), &["kind", "name"]),
        "ServiceDict": { "type": "object", "additionalProperties": { "$ref": "#/components/schemas/Service" } },
        "Route": object(json!({ "routespec": string(), "target": string(), "data": free_object }), &["routespec", "target", "data"]),
        "RouteTable": {
            "oneOf": [
                { "type": "object", "additionalProperties": { "$ref": "#/components/schemas/Route" } },
                pagination(json!({ "type": "object", "additionalProperties": { "$ref": "#/components/schemas/Route" } })),
            ],
        },
        "ProgressEvent": object(json!({
            "progress": { "type": "integer" }, "message": string(), "html_message": string(),
            "ready": { "type": "boolean" }, "failed": { "type": "boolean" }, "url": string(),
        }), &["progress", "message"]),
        "OpenApi": { "type": "object", "required": ["openapi", "paths"] },
        "Lockouts": object(json!({
            "lockouts": { "type": "array", "items": object(json!({
                "kind": { "enum": ["user", "address"] }, "key": string(), "failures": { "type": "integer" }, "until": string(),
            }), &["kind", "key", "failures", "until"]) },
        }), &["lockouts"]),
        "NewUsers": object(json!({ "usernames": strings, "admin": { "type": "boolean" } }), &["usernames"]),
        "UserChange": object(json!({
            "name": string(), "admin": { "type": "boolean" }, "groups": strings, "roles": strings, "auth_state": nullable("object"),
        }), &[]),
        "Activity": object(json!({
            "last_activity": nullable("string"),
            "servers": { "type": "object", "additionalProperties": object(json!({ "last_activity": string() }), &["last_activity"]) },
        }), &[]),
        "NewToken": object(json!({
            "note": string(), "expires_in": nullable("integer"), "scopes": strings, "roles": strings,
        }), &[]),
        "UserOptions": free_object,
        "ServerRemoval": object(json!({ "remove": { "type": "boolean" } }), &[]),
        "NewGroups": object(json!({ "groups": strings, "users": strings, "roles": strings }), &["groups"]),
        "GroupChange": object(json!({ "name": string(), "users": strings, "roles": strings }), &[]),
        "Properties": free_object,
        "ProxyLocation": object(json!({ "api_url": string(), "auth_token": string() }), &[]),
        "Shutdown": object(json!({ "servers": { "type": "boolean" }, "proxy": { "type": "boolean" } }), &[]),
    })
}

/// JupyterHub's paginated form around `items`.
fn pagination(items: Value) -> Value {
    let next = json!({
        "oneOf": [
            { "type": "null" },
            object(json!({ "offset": { "type": "integer" }, "limit": { "type": "integer" }, "url": string() }), &["offset", "limit", "url"]),
        ],
    });
    object(
        json!({
            "items": items,
            "_pagination": object(json!({
                "offset": { "type": "integer" }, "limit": { "type": "integer" }, "total": { "type": "integer" }, "next": next,
            }), &["offset", "limit", "total", "next"]),
        }),
        &["items", "_pagination"],
    )
}

fn content(body: Body) -> Option<Value> {
    let reference = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    Some(match body {
        Body::Empty => return None,
        Body::Json(name) => json!({ "application/json": { "schema": reference(name) } }),
        Body::Page(name) => json!({
            "application/json": { "schema": { "oneOf": [list_of(name), pagination(list_of(name))] } },
            "application/jupyterhub-pagination+json": { "schema": pagination(list_of(name)) },
        }),
        Body::Events => json!({
            "text/event-stream": {
                "schema": string(),
                "description": "`data: <ProgressEvent>` blocks, and blank keepalive lines every 8 seconds",
                "x-event-schema": reference("ProgressEvent"),
            },
        }),
        Body::Metrics => json!({ "text/plain": { "schema": string() } }),
        Body::Html => json!({ "text/html": { "schema": string() } }),
    })
}

/// The whole OpenAPI document.
pub(crate) fn document() -> Value {
    let mut paths = Map::new();
    for operation in OPERATIONS {
        let mut answers = Map::new();
        for answer in operation.answers {
            let mut described = json!({ "description": answer.description });
            if let Some(content) = content(answer.body) {
                described["content"] = content;
            }
            answers.insert(answer.status.to_string(), described);
        }
        let parameters: Vec<Value> = operation
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": string() }))
            .collect();
        let mut described = json!({
            "summary": operation.summary,
            "operationId": format!("{}{}", operation.method, operation.path.replace(['{', '}'], "").replace('/', "_")),
            "x-jupyterhub-handler": operation.handler,
            "responses": answers,
        });
        if !parameters.is_empty() {
            described["parameters"] = Value::Array(parameters);
        }
        described["security"] = if operation.scopes.is_empty() {
            json!([])
        } else {
            json!([{ "token": operation.scopes }, { "oauth2": operation.scopes }])
        };
        if let Some(request) = operation.request {
            described["requestBody"] = json!({
                "required": false,
                "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{request}") } } },
            });
        }
        let entry = paths.entry(operation.path).or_insert_with(|| json!({}));
        entry[operation.method] = described;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "JupyterHub REST API (wasmhub)",
            "version": JUPYTERHUB_VERSION,
            "description": "JupyterHub 5.x's REST API as wasmhub serves it. Errors are `{\"status\", \"message\"}`; a scope held \
                            but not for the resource answers 404, an absent one 403.",
        },
        "servers": [{ "url": "/hub/api" }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "token": { "type": "apiKey", "in": "header", "name": "Authorization", "description": "`token <t>` or `bearer <t>`" },
                "oauth2": {
                    "type": "oauth2",
                    "flows": {
                        "authorizationCode": { "authorizationUrl": "/hub/api/oauth2/authorize", "tokenUrl": "/hub/api/oauth2/token", "scopes": {} },
                    },
                },
            },
            "schemas": schemas(),
        },
    })
}

/// `GET /hub/api/_wasmhub/openapi.json`.
pub(crate) async fn serve_document() -> Response {
    Json(document()).into_response()
}

#[cfg(test)]
mod tests;
