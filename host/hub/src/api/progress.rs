//! `GET /users/{name}/server/progress` and `/users/{name}/servers/{server_name}/progress`: a spawn's events as
//! server-sent events (`SpawnProgressAPIHandler`), the ones so far and then the live ones until the spawn is ready
//! or failed, with JupyterHub's keepalives.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::json;
use tokio::sync::broadcast;
use wasmhub_model::{ServerName, SpawnState};
use wasmhub_store::StoreError;

use crate::Hub;
use crate::access::caller::Caller;
use crate::access::scopes::Resource;
use crate::access::{find_user, group_names};
use crate::error::ApiError;
use crate::spawns::progress::ProgressEvent;
use crate::urls::server_url;

/// JupyterHub writes an empty event this often, so proxies do not close a quiet stream.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(8);

pub(crate) async fn default_progress(
    State(hub): State<Hub>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    progress(hub, caller, name, String::new()).await
}

pub(crate) async fn named_progress(
    State(hub): State<Hub>,
    caller: Caller,
    Path((name, server_name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    progress(hub, caller, name, server_name).await
}

async fn progress(hub: Hub, caller: Caller, name: String, server_name: String) -> Result<Response, ApiError> {
    let user = find_user(&hub, &name).await?;
    let groups = group_names(user.as_ref());
    caller.require(&["read:servers"], &Resource::Server { user: &name, server: &server_name, groups: &groups })?;
    let user = user.ok_or_else(ApiError::not_found)?;
    let server_key = ServerName::parse(&server_name).map_err(|_| ApiError::not_found())?;
    // The default server always exists for JupyterHub; a named one only while it has a record.
    let state = match hub.store().get_server(&user.name, &server_key).await {
        Ok(server) => server.state,
        Err(StoreError::NotFound { .. }) if server_name.is_empty() => SpawnState::Stopped,
        Err(StoreError::NotFound { .. }) => return Err(ApiError::not_found()),
        Err(other) => return Err(other.into()),
    };
    let url = server_url(hub.config(), user.name.as_str(), &server_name);
    let progress = hub.progress();
    let (replay, live) = match state {
        SpawnState::Running => (vec![ProgressEvent::ready(&url)], None),
        SpawnState::Requested | SpawnState::Starting => {
            let subscription = progress.subscribe(user.name.as_str(), &server_name);
            let live = (!subscription.finished).then_some(subscription.live);
            (subscription.replay, live)
        }
        SpawnState::Stopped | SpawnState::Failed | SpawnState::Stopping => {
            match progress.failure(user.name.as_str(), &server_name) {
                Some(failure) => (vec![failure], None),
                None => {
                    let log = if server_name.is_empty() { name.clone() } else { format!("{name}:{server_name}") };
                    return Err(ApiError::bad_request(format!("{log} is not starting...")));
                }
            }
        }
    };
    Ok(event_stream(replay, live))
}

/// The SSE response: the replayed events, then live ones until a final one, with keepalives in between.
fn event_stream(replay: Vec<ProgressEvent>, live: Option<broadcast::Receiver<ProgressEvent>>) -> Response {
    enum Step {
        Replay(std::vec::IntoIter<ProgressEvent>, Option<broadcast::Receiver<ProgressEvent>>),
        Live(broadcast::Receiver<ProgressEvent>),
        Done,
    }
    let stream = futures_util::stream::unfold(Step::Replay(replay.into_iter(), live), |step| async move {
        match step {
            Step::Replay(mut events, live) => match events.next() {
                Some(event) if event.is_final() => Some((Ok::<_, Infallible>(event.to_sse()), Step::Done)),
                Some(event) => Some((Ok(event.to_sse()), Step::Replay(events, live))),
                None => match live {
                    Some(live) => next_live(live).await,
                    None => None,
                },
            },
            Step::Live(live) => next_live(live).await,
            Step::Done => None,
        }
    });

    async fn next_live(mut live: broadcast::Receiver<ProgressEvent>) -> Option<(Result<Bytes, Infallible>, Step)> {
        match tokio::time::timeout(KEEPALIVE_INTERVAL, live.recv()).await {
            Err(_quiet) => Some((Ok(Bytes::from_static(b"\n\n")), Step::Live(live))),
            Ok(Ok(event)) if event.is_final() => Some((Ok(event.to_sse()), Step::Done)),
            Ok(Ok(event)) => Some((Ok(event.to_sse()), Step::Live(live))),
            // Fell behind: the missed events were intermediate ones; the final one is still to come.
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => Some((Ok(Bytes::new()), Step::Live(live))),
            // The sender lives as long as the hub; should it go, end as JupyterHub does when it cannot tell why.
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                let unknown = ProgressEvent(json!({ "progress": 100, "failed": true, "message": "Spawn failed" }));
                Some((Ok(unknown.to_sse()), Step::Done))
            }
        }
    }

    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
