//! Spawn progress: the events of each server's current spawn, which `api/progress.rs` serves as server-sent
//! events (`SpawnProgressAPIHandler`).
//!
//! The spawn path records events here ([`Progress::begin`], [`Progress::push`], [`Progress::finish`]); a client
//! gets the events of the current spawn so far, then the live ones, until the spawn is ready or failed. That is
//! what JupyterHub's `_generate_progress` gives each client. Events stay after a spawn ends, so a client that comes
//! late to a failed spawn still gets its failure, as JupyterHub keeps `_spawn_future`. They live in memory only:
//! after a restart only a spawn the hub resumes (`Spawner::resume`) has events again, from its resumption on.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::Hub;
use crate::spawns::LifecycleError;

/// Live events a slow client may fall behind by before it misses some; a spawn sends a handful.
const CHANNEL_CAPACITY: usize = 64;

/// One progress event, with JupyterHub's keys in JupyterHub's order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProgressEvent(pub(crate) Value);

impl ProgressEvent {
    pub(crate) fn requested() -> ProgressEvent {
        ProgressEvent(json!({ "progress": 0, "message": "Server requested" }))
    }

    /// The default `Spawner.progress` event, sent while the spawner starts the server.
    pub(crate) fn spawning() -> ProgressEvent {
        ProgressEvent(json!({ "progress": 50, "message": "Spawning server..." }))
    }

    /// A message of the spawner's own (KubeSpawner's pod events), at `progress` percent.
    pub(crate) fn message(progress: u32, message: &str) -> ProgressEvent {
        ProgressEvent(json!({ "progress": progress, "message": message }))
    }

    pub(crate) fn ready(url: &str) -> ProgressEvent {
        ProgressEvent(json!({
            "progress": 100,
            "ready": true,
            "message": format!("Server ready at {url}"),
            "html_message": format!("Server ready at <a href=\"{url}\">{url}</a>"),
            "url": url,
        }))
    }

    pub(crate) fn failed(message: &str) -> ProgressEvent {
        ProgressEvent(json!({ "progress": 100, "failed": true, "message": format!("Spawn failed: {message}") }))
    }

    /// The failure of a spawn as a user should read it. JupyterHub shows the exception's text; ours says the same
    /// for timeouts and spawner errors, and nothing internal for store or route failures, which go to the log.
    pub(crate) fn for_error(error: &LifecycleError) -> ProgressEvent {
        let message = match error {
            LifecycleError::StartTimeout(_) => "Timeout".to_owned(),
            LifecycleError::NotReady(url, timeout) => {
                format!("Server at {url} didn't respond in {} seconds", timeout.as_secs_f64())
            }
            LifecycleError::Spawner(error) => error.to_string(),
            LifecycleError::Exited(_) => error.to_string(),
            _ => "an internal error occurred; see the hub log".to_owned(),
        };
        ProgressEvent::failed(&message)
    }

    pub(crate) fn is_final(&self) -> bool {
        self.0.get("ready").is_some() || self.0.get("failed").is_some()
    }

    fn is_failure(&self) -> bool {
        self.0.get("failed").is_some()
    }

    /// `data: <json>\n\n`, with Python's `json.dumps` spacing and ASCII escapes.
    pub(crate) fn to_sse(&self) -> Bytes {
        Bytes::from(format!("data: {}\n\n", python_json(&self.0)))
    }
}

/// The events of one server's latest spawn.
struct SpawnEvents {
    events: Vec<ProgressEvent>,
    finished: bool,
    /// Kept across spawns, so a client that subscribed before a spawn began still hears it.
    live: broadcast::Sender<ProgressEvent>,
}

/// What a client sees when it starts listening: the events so far and the live ones after them.
pub(crate) struct Subscription {
    pub(crate) replay: Vec<ProgressEvent>,
    pub(crate) finished: bool,
    pub(crate) live: broadcast::Receiver<ProgressEvent>,
}

/// Every server's spawn events, keyed by user and server name. Cheap to share; each call holds the lock only to
/// copy or append, never across an await.
#[derive(Default)]
pub(crate) struct Progress {
    spawns: Mutex<HashMap<(String, String), SpawnEvents>>,
}

impl Progress {
    fn with_spawn<T>(&self, user: &str, server: &str, action: impl FnOnce(&mut SpawnEvents) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-append; the events are still usable.
        let mut spawns = self.spawns.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let spawn = spawns.entry((user.to_owned(), server.to_owned())).or_insert_with(|| SpawnEvents {
            events: Vec::new(),
            finished: false,
            live: broadcast::channel(CHANNEL_CAPACITY).0,
        });
        action(spawn)
    }

    /// A new spawn: forgets the previous one's events and records "Server requested".
    pub(crate) fn begin(&self, user: &str, server: &str) {
        self.with_spawn(user, server, |spawn| {
            spawn.events.clear();
            spawn.finished = false;
        });
        self.push(user, server, ProgressEvent::requested());
    }

    pub(crate) fn push(&self, user: &str, server: &str, event: ProgressEvent) {
        self.with_spawn(user, server, |spawn| {
            if spawn.finished {
                return;
            }
            spawn.finished = event.is_final();
            spawn.events.push(event.clone());
            // No receivers is fine: nobody is watching this spawn.
            let _ = spawn.live.send(event);
        });
    }

    /// The spawn's last event: ready or failed.
    pub(crate) fn finish(&self, user: &str, server: &str, event: ProgressEvent) {
        self.push(user, server, event);
    }

    pub(crate) fn subscribe(&self, user: &str, server: &str) -> Subscription {
        self.with_spawn(user, server, |spawn| Subscription {
            replay: spawn.events.clone(),
            finished: spawn.finished,
            live: spawn.live.subscribe(),
        })
    }

    /// The failure event of the latest spawn, if it failed.
    pub(crate) fn failure(&self, user: &str, server: &str) -> Option<ProgressEvent> {
        self.with_spawn(user, server, |spawn| {
            spawn.events.last().filter(|event| spawn.finished && event.is_failure()).cloned()
        })
    }

    /// The message of the latest spawn's failure, for the pages (it says nothing internal, see `for_error`).
    pub(crate) fn failure_message(&self, user: &str, server: &str) -> Option<String> {
        let event = self.failure(user, server)?;
        event.0.get("message").and_then(Value::as_str).map(str::to_owned)
    }
}

impl Hub {
    pub(crate) fn progress(&self) -> &Progress {
        &self.inner.progress
    }
}

/// `json.dumps(value)`: `", "` and `": "` separators and non-ASCII escaped as `\uXXXX`, byte for byte what
/// JupyterHub sends.
fn python_json(value: &Value) -> String {
    struct PythonFormatter;
    impl serde_json::ser::Formatter for PythonFormatter {
        fn begin_array_value<W: ?Sized + std::io::Write>(
            &mut self,
            writer: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            if first { Ok(()) } else { writer.write_all(b", ") }
        }
        fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, writer: &mut W, first: bool) -> std::io::Result<()> {
            if first { Ok(()) } else { writer.write_all(b", ") }
        }
        fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
            writer.write_all(b": ")
        }
        fn write_string_fragment<W: ?Sized + std::io::Write>(
            &mut self,
            writer: &mut W,
            fragment: &str,
        ) -> std::io::Result<()> {
            for character in fragment.chars() {
                if character.is_ascii() {
                    writer.write_all(&[character as u8])?;
                } else {
                    let mut units = [0u16; 2];
                    for unit in character.encode_utf16(&mut units) {
                        write!(writer, "\\u{unit:04x}")?;
                    }
                }
            }
            Ok(())
        }
    }
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Serializing a `Value` into memory cannot fail.
    let _ = serde::Serialize::serialize(value, &mut serializer);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Method, Request};
    use futures_util::StreamExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;
    use wasmhub_model::{ServerName, UserName};
    use wasmhub_store::Store;

    use super::{ProgressEvent, python_json};
    use crate::tests::{call, test_hub, user_with_token};
    use crate::{Hub, HubConfig, router};

    /// The events of an SSE body, read until it ends.
    async fn read_events(app: &axum::Router, uri: &str, token: &str) -> (axum::http::HeaderMap, Vec<Value>) {
        let request = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header("authorization", format!("token {token}"))
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        let mut body = response.into_body().into_data_stream();
        let mut text = String::new();
        while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), body.next()).await.expect("an event") {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        let events = text
            .split("\n\n")
            .filter_map(|block| block.strip_prefix("data: "))
            .map(|data| serde_json::from_str(data).unwrap())
            .collect();
        (headers, events)
    }

    #[test]
    fn events_are_written_as_python_writes_them() {
        let ready = ProgressEvent::ready("/user/zoë/");
        assert_eq!(
            String::from_utf8(ready.to_sse().to_vec()).unwrap(),
            "data: {\"progress\": 100, \"ready\": true, \"message\": \"Server ready at /user/zo\\u00eb/\", \
             \"html_message\": \"Server ready at <a href=\\\"/user/zo\\u00eb/\\\">/user/zo\\u00eb/</a>\", \
             \"url\": \"/user/zo\\u00eb/\"}\n\n"
        );
        assert_eq!(python_json(&json!({"a": [1, 2], "b": null})), r#"{"a": [1, 2], "b": null}"#);
    }

    #[tokio::test]
    async fn a_slow_spawn_streams_its_events_and_ends_ready() {
        let hub = test_hub().await;
        let impatient = HubConfig { slow_spawn_timeout: Duration::from_millis(1), ..hub.hub.config().clone() };
        let app = router(Hub::new(impatient, hub.store.clone(), hub.hub.spawner_arc(), Arc::new(hub.proxy.clone())));
        let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
        let stopped = call(&app, Method::GET, "/hub/api/users/alice/server/progress", Some(&alice), None).await;
        assert_eq!(stopped.assert_error(400), "alice is not starting...");
        call(&app, Method::GET, "/hub/api/users/alice/servers/gpu/progress", Some(&alice), None)
            .await
            .assert_error(404);

        let started = call(&app, Method::POST, "/hub/api/users/alice/server", Some(&alice), None).await;
        assert_eq!(started.status, 202, "{}", started.text);
        let (headers, events) = read_events(&app, "/hub/api/users/alice/server/progress", &alice).await;
        assert_eq!(headers["content-type"], "text/event-stream");
        assert_eq!(headers["cache-control"], "no-cache");
        let last = events.last().unwrap().clone();
        assert_eq!(
            last,
            json!({
                "progress": 100, "ready": true, "message": "Server ready at /user/alice/",
                "html_message": "Server ready at <a href=\"/user/alice/\">/user/alice/</a>", "url": "/user/alice/",
            })
        );
        // A spawn that was still pending streams from the start; one that finished answers with one event.
        if events.len() > 1 {
            assert_eq!(events[0], json!({ "progress": 0, "message": "Server requested" }));
        }
        let (_, again) = read_events(&app, "/hub/api/users/alice/server/progress", &alice).await;
        assert_eq!(again, vec![last]);
        let bob = user_with_token(&hub.store, "bob", false, &["inherit"]).await;
        call(&app, Method::GET, "/hub/api/users/alice/server/progress", Some(&bob), None).await.assert_error(404);
        let stopped = call(&app, Method::DELETE, "/hub/api/users/alice/server", Some(&alice), None).await;
        assert_eq!(stopped.status, 204);
        call(&app, Method::GET, "/hub/api/users/alice/server/progress", Some(&alice), None).await.assert_error(400);
    }

    #[tokio::test]
    async fn a_listener_hears_the_whole_spawn_and_a_failure_is_kept() {
        let hub = test_hub().await;
        let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
        let user = UserName::parse("alice").unwrap();
        let server = hub.store.create_server(&user, &ServerName::parse("gpu").unwrap(), "{}").await.unwrap();
        // A spawn seen from its start: the listener subscribes while the server is requested.
        let requested =
            wasmhub_store::ServerUpdate { state: Some(wasmhub_model::SpawnState::Requested), ..Default::default() };
        hub.store.update_server(&user, &server.name, &requested).await.unwrap();
        let progress = hub.hub.progress();
        progress.begin("alice", "gpu");
        let app = hub.app.clone();
        let listener =
            tokio::spawn(async move { read_events(&app, "/hub/api/users/alice/servers/gpu/progress", &alice).await.1 });
        tokio::time::sleep(Duration::from_millis(100)).await;
        progress.push("alice", "gpu", ProgressEvent::spawning());
        progress.finish("alice", "gpu", ProgressEvent::failed("Timeout"));
        let heard = listener.await.unwrap();
        assert_eq!(
            heard,
            vec![
                json!({ "progress": 0, "message": "Server requested" }),
                json!({ "progress": 50, "message": "Spawning server..." }),
                json!({ "progress": 100, "failed": true, "message": "Spawn failed: Timeout" }),
            ]
        );
        // Once the server is at rest, a late client still learns that the spawn failed.
        let failed = wasmhub_store::ServerUpdate {
            state: Some(wasmhub_model::SpawnState::Failed),
            failure: Some("Timeout".into()),
            ..Default::default()
        };
        hub.store.update_server(&user, &server.name, &failed).await.unwrap();
        let token = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
        let (_, late) = read_events(&hub.app, "/hub/api/users/alice/servers/gpu/progress", &token).await;
        assert_eq!(late, vec![json!({ "progress": 100, "failed": true, "message": "Spawn failed: Timeout" })]);
    }
}
