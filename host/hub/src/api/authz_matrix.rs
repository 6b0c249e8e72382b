//! The authorization matrix (issue 13, point 9): every REST operation, called by each of six callers, with the
//! status JupyterHub gives. The table follows JupyterHub 5.5.1's handlers (`apihandlers/*.py`, and `needs_scope`
//! in `scopes.py`), and every JupyterHub status in it was measured against a real JupyterHub 5.5.1 (MockHub, the
//! same scenario, a fresh hub per cell), except on wasmhub's own `_wasmhub` operations. Where wasmhub answers
//! otherwise, the row holds wasmhub's status and a `// differs from JupyterHub 5.5.1` comment says why.
//!
//! The scenario, built afresh for every cell (some cells delete or rename users, or shut the hub down): users
//! `admin` (an admin), `alice`, `bob` and `teacher`; group `students` with alice; role `teacher` with
//! `admin:users!group=students`, held by teacher; service `svc` with role `user-reader` (`read:users`); alice's
//! stopped named server `lab`; a token of alice's noted `target`; and a failed login for alice. Every caller's token
//! has the scopes `["inherit"]`, as JupyterHub's default `token` role gives.

use axum::http::Method;
use futures_util::stream::StreamExt;
use wasmhub_model::{GroupName, RoleName, ServerName, ServiceName, SpawnState, TokenKind, UserName};
use wasmhub_store::{HUB_OAUTH_CLIENT, NewApiToken, RoleHolder, Store, TokenOwner};

use crate::login::throttle::LoginThrottle;
use crate::openapi::OPERATIONS;
use crate::tests::{TestHub, call, test_hub, user_with_token};

/// The callers, in the order of a row's statuses.
const CALLERS: [&str; 6] = ["anonymous", "alice", "bob", "teacher", "svc", "admin"];

/// In a row's path, the id of alice's token `target`.
const TOKEN_ID: &str = "TOKEN_ID";

/// What the scenario does before the call, besides the common setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Before {
    Nothing,
    /// alice's default server is started (by the admin) and running.
    DefaultRunning,
    /// alice's named server `lab` is started and running.
    LabRunning,
}

/// One operation on one target, and the status each caller gets.
#[derive(Debug, Clone, Copy)]
struct Row {
    method: &'static str,
    /// Under `/hub/api`, with the concrete target.
    path: &'static str,
    body: Option<&'static str>,
    before: Before,
    /// In the order of [`CALLERS`]: anonymous, alice, bob, teacher, svc, admin.
    expected: [u16; 6],
}

const fn row(method: &'static str, path: &'static str, body: Option<&'static str>, expected: [u16; 6]) -> Row {
    Row { method, path, body, before: Before::Nothing, expected }
}

const fn after(before: Before, row: Row) -> Row {
    Row { before, ..row }
}

/// Everyone gets it.
const OPEN: [u16; 6] = [200; 6];
/// Only an unfiltered holder of the scope gets it: the admin. Nobody else holds it under any filter, so 403.
const fn admin_only(status: u16) -> [u16; 6] {
    [403, 403, 403, 403, 403, status]
}

#[rustfmt::skip]
const MATRIX: &[Row] = &[
    // Unauthenticated endpoints.
    row("GET", "/", None, OPEN),
    row("GET", "/health", None, OPEN),
    row("GET", "/_wasmhub/openapi.json", None, OPEN),
    // `read:hub`.
    row("GET", "/info", None, admin_only(200)),
    // `read:metrics`, checked by the handler itself (JupyterHub's MetricsHandler is no APIHandler).
    row("GET", "/metrics", None, admin_only(200)),
    // Anyone authenticated gets their own model, a service included.
    row("GET", "/user", None, [403, 200, 200, 200, 200, 200]),

    // Users. teacher reaches the members of students (alice) and nobody else; svc reads everyone.
    // `list:users` with a filter is enough to list (post_filter): teacher sees the students only.
    row("GET", "/users", None, [403, 403, 403, 200, 403, 200]),
    // Creating users needs unfiltered `admin:users` since 5.5.1 (GHSA-69wv-m5fw-2fhp; 5.5.0 gave teacher 201), and
    // a filtered holder gets 403: the operation names no resource for the filter to miss.
    row("POST", "/users", Some(r#"{"usernames": ["newbie"]}"#), [403, 403, 403, 403, 403, 201]),
    row("GET", "/users/alice", None, [403, 200, 404, 200, 200, 200]),
    row("GET", "/users/bob", None, [403, 404, 200, 404, 200, 200]),
    row("GET", "/users/nosuch", None, [403, 404, 404, 404, 404, 404]),
    // carol does not exist, so she is in no group: teacher's filtered `admin:users` does not reach her.
    row("POST", "/users/carol", None, [403, 403, 403, 404, 403, 201]),
    row("PATCH", "/users/alice", Some(r#"{"name": "alice2"}"#), [403, 403, 403, 200, 403, 200]),
    // Only an admin grants admin; taking it away (or not giving it) is allowed.
    row("PATCH", "/users/alice", Some(r#"{"admin": true}"#), [403, 403, 403, 403, 403, 200]),
    row("PATCH", "/users/alice", Some(r#"{"admin": false}"#), [403, 403, 403, 200, 403, 200]),
    // differs from JupyterHub 5.5.1 (teacher and admin get 500 there: its PATCH sets a list of strings on a
    // SQLAlchemy relationship): wasmhub sets groups and roles, and alice is already in students, so nothing is granted.
    row("PATCH", "/users/alice", Some(r#"{"groups": ["students"]}"#), [403, 403, 403, 200, 403, 200]),
    // differs from JupyterHub 5.5.1 (500 for teacher and admin, as above, measured with the role admin): wasmhub
    // sets roles, and refuses teacher a role with `read:users` on everyone, which it does not hold. (The role admin
    // would give wasmhub's admin 400 "No such role: admin": default roles are not stored unless configured.)
    row("PATCH", "/users/alice", Some(r#"{"roles": ["user-reader"]}"#), [403, 403, 403, 403, 403, 200]),
    row("PATCH", "/users/bob", Some(r#"{"name": "bob2"}"#), [403, 403, 403, 404, 403, 200]),
    row("PATCH", "/users/nosuch", Some(r#"{"name": "x2"}"#), [403, 403, 403, 404, 403, 404]),
    row("DELETE", "/users/alice", None, [403, 403, 403, 204, 403, 204]),
    row("DELETE", "/users/nosuch", None, [403, 403, 403, 404, 403, 404]),
    // bob holds `users:activity` for himself only: 404; svc holds none: 403.
    row("POST", "/users/alice/activity", Some(r#"{"last_activity": "2026-01-02T03:04:05.000000Z"}"#),
        [403, 200, 404, 200, 403, 200]),

    // Tokens: `admin:users` does not include them, so teacher holds them for himself only (404).
    row("GET", "/users/alice/tokens", None, [403, 200, 404, 404, 403, 200]),
    // No scope decorator on this one: 403 "... not found or no permissions to generate tokens" for anyone who may
    // not, whether the user exists or not.
    row("POST", "/users/alice/tokens", Some("{}"), [403, 201, 403, 403, 403, 201]),
    row("POST", "/users/alice/tokens", None, [403, 201, 403, 403, 403, 201]),
    row("POST", "/users/nosuch/tokens", Some("{}"), [403, 403, 403, 403, 403, 403]),
    row("GET", "/users/alice/tokens/TOKEN_ID", None, [403, 200, 404, 404, 403, 200]),
    row("DELETE", "/users/alice/tokens/TOKEN_ID", None, [403, 204, 404, 404, 403, 204]),

    // Servers: `admin:users` does not include them either. 201 and 204 because the stand-in server starts and
    // stops within slow_spawn_timeout and slow_stop_timeout (202 otherwise).
    row("POST", "/users/alice/server", None, [403, 201, 404, 404, 403, 201]),
    // A running server cannot be started again: 400 after the scope check.
    after(Before::DefaultRunning, row("POST", "/users/alice/server", None, [403, 400, 404, 404, 403, 400])),
    row("DELETE", "/users/alice/server", None, [403, 204, 404, 404, 403, 204]),
    after(Before::DefaultRunning, row("DELETE", "/users/alice/server", None, [403, 204, 404, 404, 403, 204])),
    row("POST", "/users/alice/servers/lab", None, [403, 201, 404, 404, 403, 201]),
    after(Before::LabRunning, row("POST", "/users/alice/servers/lab", None, [403, 400, 404, 404, 403, 400])),
    row("DELETE", "/users/alice/servers/lab", None, [403, 204, 404, 404, 403, 204]),
    after(Before::LabRunning, row("DELETE", "/users/alice/servers/lab", None, [403, 204, 404, 404, 403, 204])),
    // differs from JupyterHub 5.5.1 (404 for alice and admin there, because no Spawner object is in memory for a
    // server not started since the hub started; 400 "... is not starting" once one is): wasmhub keeps no such
    // objects and answers 400 for any stopped server with no failed spawn to report.
    row("GET", "/users/alice/server/progress", None, [403, 400, 404, 404, 403, 400]),
    after(Before::DefaultRunning, row("GET", "/users/alice/server/progress", None, [403, 200, 404, 404, 403, 200])),
    // differs from JupyterHub 5.5.1 (404 for alice and admin there), as for the default server above.
    row("GET", "/users/alice/servers/lab/progress", None, [403, 400, 404, 404, 403, 400]),
    after(Before::LabRunning, row("GET", "/users/alice/servers/lab/progress", None, [403, 200, 404, 404, 403, 200])),

    // Groups: nobody but the admin holds a group scope, and alice being a member of students gives her none.
    row("GET", "/groups", None, admin_only(200)),
    row("POST", "/groups", Some(r#"{"groups": ["g2"]}"#), admin_only(201)),
    row("GET", "/groups/students", None, admin_only(200)),
    row("POST", "/groups/g3", None, admin_only(201)),
    row("DELETE", "/groups/students", None, admin_only(204)),
    row("POST", "/groups/students/users", Some(r#"{"users": ["bob"]}"#), admin_only(200)),
    row("DELETE", "/groups/students/users", Some(r#"{"users": ["alice"]}"#), admin_only(200)),
    row("PUT", "/groups/students/properties", Some(r#"{"k": "v"}"#), admin_only(200)),

    // Services.
    row("GET", "/services", None, admin_only(200)),
    // differs from JupyterHub 5.5.1 (403 for svc there: a token's identify scopes, `read:services:name!service=svc`
    // here, are intersected with the owner's role scopes, and svc's role does not hold them): wasmhub adds the
    // identify scopes after the intersection (`token_scopes`), so svc reads its own name.
    row("GET", "/services/svc", None, [403, 403, 403, 403, 200, 200]),
    // differs from JupyterHub 5.5.1 (403 for svc there), for the same reason: holding `read:services:name` for
    // itself, svc gets the 404 of a scope held for other resources.
    row("GET", "/services/nosuch", None, [403, 403, 403, 403, 404, 404]),

    // The hub itself.
    row("GET", "/proxy", None, admin_only(200)),
    row("POST", "/proxy", None, admin_only(200)),
    row("PATCH", "/proxy", Some("{}"), admin_only(200)),
    // The admin's shutdown only cancels that cell's own hub's shutdown signal.
    row("POST", "/shutdown", None, admin_only(202)),

    // wasmhub's own: unfiltered `admin:users`. The scenario has a failed login for alice to lift.
    row("GET", "/_wasmhub/login-lockouts", None, admin_only(200)),
    row("DELETE", "/_wasmhub/login-lockouts?user=alice", None, admin_only(204)),
];

/// Operations not in the matrix: the OAuth endpoints are no token-authorized REST operations (a browser's login
/// cookie and a client's credentials authorize them); their own tests are in `oauth/`.
const NOT_IN_MATRIX: &[(&str, &str)] =
    &[("get", "/oauth2/authorize"), ("post", "/oauth2/authorize"), ("post", "/oauth2/token")];

/// Whether `path` (a row's, with any query) is an instance of `template` (an operation's, with `{param}` segments).
fn matches_template(path: &str, template: &str) -> bool {
    let path = path.split_once('?').map_or(path, |(path, _query)| path);
    let segments: Vec<&str> = path.split('/').collect();
    let template_segments: Vec<&str> = template.split('/').collect();
    segments.len() == template_segments.len()
        && segments.iter().zip(&template_segments).all(|(segment, template_segment)| {
            let is_param = template_segment.starts_with('{') && template_segment.ends_with('}');
            segment == template_segment || (is_param && !segment.is_empty())
        })
}

/// One cell's scenario: the hub, each caller's token (none for anonymous), and the id of alice's `target` token.
struct Scenario {
    hub: TestHub,
    tokens: [Option<String>; 6],
    target_token_id: String,
}

async fn scenario(before: Before) -> Scenario {
    let hub = test_hub().await;
    let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
    let bob = user_with_token(&hub.store, "bob", false, &["inherit"]).await;
    let teacher = user_with_token(&hub.store, "teacher", false, &["inherit"]).await;

    let students = GroupName::parse("students").unwrap();
    hub.store.create_group(&students).await.unwrap();
    hub.store.add_group_members(&students, &[UserName::parse("alice").unwrap()]).await.unwrap();
    let teacher_role = RoleName::parse("teacher").unwrap();
    hub.store.put_role(&teacher_role, "", &["admin:users!group=students".to_owned()]).await.unwrap();
    hub.store.assign_role(&teacher_role, &RoleHolder::User(UserName::parse("teacher").unwrap())).await.unwrap();

    let service = ServiceName::parse("svc").unwrap();
    hub.store.put_service(&service, false).await.unwrap();
    let reader_role = RoleName::parse("user-reader").unwrap();
    hub.store.put_role(&reader_role, "", &["read:users".to_owned()]).await.unwrap();
    hub.store.assign_role(&reader_role, &RoleHolder::Service(service.clone())).await.unwrap();
    let service_token = NewApiToken {
        owner: TokenOwner::Service(service),
        kind: TokenKind::Api,
        supplied: None,
        scopes: vec!["inherit".to_owned()],
        note: "test".into(),
        expires_at: None,
        session_id: None,
        client_id: HUB_OAUTH_CLIENT.into(),
    };
    let svc = hub.store.create_api_token(&service_token).await.unwrap().1.as_str().to_owned();

    let alice_name = UserName::parse("alice").unwrap();
    hub.store.create_server(&alice_name, &ServerName::parse("lab").unwrap(), "{}").await.unwrap();
    let target = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
    let target_token_id = hub.store.find_api_token(&target).await.unwrap().id.to_string();
    hub.hub.login_throttle().record_failure(&[LoginThrottle::user_key("alice")]);

    let start = match before {
        Before::Nothing => None,
        Before::DefaultRunning => Some("/hub/api/users/alice/server"),
        Before::LabRunning => Some("/hub/api/users/alice/servers/lab"),
    };
    if let Some(uri) = start {
        let started = call(&hub.app, Method::POST, uri, Some(&hub.admin_token), None).await;
        assert_eq!(started.status, 201, "starting {uri} for the scenario: {}", started.text);
    }
    let admin = hub.admin_token.clone();
    Scenario { hub, tokens: [None, Some(alice), Some(bob), Some(teacher), Some(svc), Some(admin)], target_token_id }
}

/// Stops every server the cell left running, so that no stand-in server process outlives the test.
async fn stop_servers(hub: &TestHub) {
    for server in hub.store.list_servers(None).await.unwrap() {
        if server.state == SpawnState::Stopped {
            continue;
        }
        let uri = if server.name.as_str().is_empty() {
            format!("/hub/api/users/{}/server", server.user)
        } else {
            format!("/hub/api/users/{}/servers/{}", server.user, server.name)
        };
        call(&hub.app, Method::DELETE, &uri, Some(&hub.admin_token), None).await;
    }
}

/// What one caller got for one row.
struct Outcome {
    row: Row,
    caller: usize,
    status: u16,
    text: String,
}

async fn run_cell(row: Row, caller: usize) -> Outcome {
    let scenario = scenario(row.before).await;
    let uri = format!("/hub/api{}", row.path.replace(TOKEN_ID, &scenario.target_token_id));
    let method = Method::from_bytes(row.method.as_bytes()).unwrap();
    let token = scenario.tokens[caller].as_deref();
    let answer = call(&scenario.hub.app, method, &uri, token, row.body).await;
    stop_servers(&scenario.hub).await;
    Outcome { row, caller, status: answer.status.as_u16(), text: answer.text }
}

/// Every row, for every caller, against a fresh scenario, gets the status in the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_each_caller_as_jupyterhub_does() {
    let cells: Vec<(Row, usize)> =
        MATRIX.iter().flat_map(|row| (0..CALLERS.len()).map(move |caller| (*row, caller))).collect();
    let count = cells.len();
    // A handful at a time: each cell is its own hub with its own SQLite file, and some start servers. Each cell is
    // a task of its own, so that the cells run on every worker thread, not only on the one polling the stream.
    let finished: Vec<Result<Outcome, tokio::task::JoinError>> = futures_util::stream::iter(cells)
        .map(|(row, caller)| tokio::spawn(run_cell(row, caller)))
        .buffer_unordered(8)
        .collect()
        .await;
    let outcomes: Vec<Outcome> = finished.into_iter().map(|outcome| outcome.expect("a cell panicked")).collect();
    assert_eq!(outcomes.len(), count);

    let mut mismatches: Vec<String> = outcomes
        .iter()
        .filter(|outcome| outcome.status != outcome.row.expected[outcome.caller])
        .map(|outcome| {
            let row = outcome.row;
            let body = row.body.map(|body| format!(" {body}")).unwrap_or_default();
            let text: String = outcome.text.chars().take(200).collect();
            format!(
                "{} {}{body} {}: expected {}, got {}, body {text}",
                row.method, row.path, CALLERS[outcome.caller], row.expected[outcome.caller], outcome.status
            )
        })
        .collect();
    mismatches.sort();
    assert!(mismatches.is_empty(), "{} of {count} cells differ:\n{}", mismatches.len(), mismatches.join("\n"));
}

/// The matrix covers every operation the hub serves (but the few explained in [`NOT_IN_MATRIX`]), and each of its
/// rows is one of them.
#[test]
fn the_matrix_covers_every_operation() {
    let missing: Vec<String> = OPERATIONS
        .iter()
        .filter(|operation| !NOT_IN_MATRIX.contains(&(operation.method, operation.path)))
        .filter(|operation| {
            !MATRIX.iter().any(|row| {
                row.method.eq_ignore_ascii_case(operation.method) && matches_template(row.path, operation.path)
            })
        })
        .map(|operation| format!("{} {}", operation.method.to_uppercase(), operation.path))
        .collect();
    assert!(missing.is_empty(), "operations without a row in MATRIX: {missing:?}");

    let unknown: Vec<String> = MATRIX
        .iter()
        .filter(|row| {
            !OPERATIONS.iter().any(|operation| {
                row.method.eq_ignore_ascii_case(operation.method) && matches_template(row.path, operation.path)
            })
        })
        .map(|row| format!("{} {}", row.method, row.path))
        .collect();
    assert!(unknown.is_empty(), "rows that are no operation: {unknown:?}");
    for (method, path) in NOT_IN_MATRIX {
        assert!(
            OPERATIONS.iter().any(|operation| operation.method == *method && operation.path == *path),
            "{method} {path} is excluded but is no operation"
        );
    }
}
