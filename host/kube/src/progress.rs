//! A spawn's progress: one broadcast channel per pod between `prepare` and the end of `start` (or `resume`), fed by
//! a watch of that pod's events only (a field selector, so a thousand spawns do not each see every event) and by
//! the spawner's own messages. The hub subscribes through [`Spawner::progress`].
//!
//! [`Spawner::progress`]: wasmhub_spawner::Spawner::progress

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use tokio::sync::broadcast;

use crate::api::with_retries;

/// Messages a subscriber may fall behind by before it loses the oldest: a spawn says far fewer.
const CAPACITY: usize = 64;

/// Progress channels of spawns between `prepare` and the end of `start`, by pod name.
#[derive(Clone, Default)]
pub(crate) struct ProgressChannels(Arc<Mutex<HashMap<String, broadcast::Sender<String>>>>);

impl ProgressChannels {
    fn channels(&self) -> MutexGuard<'_, HashMap<String, broadcast::Sender<String>>> {
        // A panic while holding the lock leaves the map whole: every change is one insert or remove.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the pod's channel, so a subscriber who comes before `start` misses nothing.
    pub(crate) fn open(&self, pod_name: &str) {
        self.channels().entry(pod_name.to_owned()).or_insert_with(|| broadcast::channel(CAPACITY).0);
    }

    /// Subscribes to the pod's channel, making it when a resumed start has none yet.
    pub(crate) fn subscribe(&self, pod_name: &str) -> broadcast::Receiver<String> {
        self.channels().entry(pod_name.to_owned()).or_insert_with(|| broadcast::channel(CAPACITY).0).subscribe()
    }

    /// Tells the pod's subscribers, if it has a channel; without one nobody is listening.
    pub(crate) fn publish(&self, pod_name: &str, message: String) {
        tracing::debug!(pod = pod_name, %message, "spawn progress");
        if let Some(sender) = self.channels().get(pod_name) {
            let _ = sender.send(message);
        }
    }

    /// Removes the pod's channel when the returned guard is dropped: at the end of `start` or `resume`, also when
    /// the hub gives up on it (a start timeout drops the future).
    pub(crate) fn close_on_drop<'a>(&'a self, pod_name: &'a str) -> ChannelGuard<'a> {
        ChannelGuard { channels: self, pod_name }
    }
}

/// See [`ProgressChannels::close_on_drop`].
pub(crate) struct ChannelGuard<'a> {
    channels: &'a ProgressChannels,
    pod_name: &'a str,
}

impl Drop for ChannelGuard<'_> {
    fn drop(&mut self) {
        self.channels.channels().remove(self.pod_name);
    }
}

/// Watches the pod's events only (a field selector, from the current version on) and publishes them as progress,
/// until the returned task is aborted.
pub(crate) fn watch_events(
    client: kube::Client,
    progress: ProgressChannels,
    namespace: &str,
    pod_name: &str,
) -> tokio::task::JoinHandle<()> {
    let (namespace, pod_name) = (namespace.to_owned(), pod_name.to_owned());
    tokio::spawn(async move {
        let events: Api<Event> = Api::namespaced(client, &namespace);
        let selector = format!("involvedObject.kind=Pod,involvedObject.name={pod_name}");
        // Events of an earlier pod with the same name are history, not this spawn's progress.
        let params = ListParams::default().fields(&selector).limit(1);
        let mut version = match with_retries(|| events.list(&params)).await {
            Ok(list) => list.metadata.resource_version.unwrap_or_else(|| "0".into()),
            Err(error) => {
                tracing::warn!(%error, "listing pod events; progress has no events");
                return;
            }
        };
        loop {
            let params = WatchParams::default().fields(&selector).timeout(290);
            let stream = match events.watch(&params, &version).await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, "watching pod events");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut stream = std::pin::pin!(stream);
            while let Ok(Some(event)) = stream.try_next().await {
                match event {
                    WatchEvent::Added(event) | WatchEvent::Modified(event) => {
                        if let Some(rv) = event.metadata.resource_version.clone() {
                            version = rv;
                        }
                        progress.publish(&pod_name, event_message(&event));
                    }
                    WatchEvent::Bookmark(bookmark) => version = bookmark.metadata.resource_version,
                    WatchEvent::Deleted(_) => {}
                    // Expired: progress only needs what comes next.
                    WatchEvent::Error(_) => version = "0".into(),
                }
            }
            let _ = stream.next().await;
        }
    })
}

/// `"{lastTimestamp} [{type}] {message}"`, KubeSpawner's progress line for an event.
fn event_message(event: &Event) -> String {
    let timestamp = event
        .last_timestamp
        .as_ref()
        .map(|time| time.0.to_string())
        .or_else(|| event.event_time.as_ref().map(|time| time.0.to_string()))
        .unwrap_or_default();
    format!(
        "{timestamp} [{}] {}",
        event.type_.clone().unwrap_or_else(|| "Normal".into()),
        event.message.clone().unwrap_or_default()
    )
}
