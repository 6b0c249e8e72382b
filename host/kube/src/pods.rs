//! The one shared pod watch: a kube-runtime reflector over this hub's user pods (selected by the component label),
//! with bookmarks on, so a reconnect resumes from the last version and only a 410 Expired causes a relist. Every
//! spawn, poll and stop reads this cache; none of them lists pods.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

/// The cache of user pods and a signal that fires on every change.
#[derive(Clone)]
pub(crate) struct PodCache {
    store: Store<Pod>,
    /// Per pod name, a signal for the spawns and stops waiting on that pod: a change wakes only its waiters, so
    /// a thousand waiting spawns do not each look at every change.
    waiters: Waiters,
    namespace: String,
}

type Waiters = Arc<Mutex<HashMap<String, watch::Sender<u64>>>>;

fn notify(waiters: &Waiters, name: Option<&str>) {
    let waiters = waiters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match name {
        Some(name) => {
            if let Some(sender) = waiters.get(name) {
                sender.send_modify(|generation| *generation += 1);
            }
        }
        None => waiters.values().for_each(|sender| sender.send_modify(|generation| *generation += 1)),
    }
}

impl PodCache {
    /// Starts the watch on the current runtime; it runs until the process ends.
    pub(crate) fn start(client: kube::Client, namespace: &str, label_selector: &str) -> PodCache {
        let api: Api<Pod> = Api::namespaced(client, namespace);
        let (store, writer) = reflector::store();
        let waiters = Waiters::default();
        let config = watcher::Config::default().labels(label_selector);
        let stream = reflector::reflector(writer, watcher(api, config)).default_backoff();
        let notified = waiters.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    // The backoff retries; the cache keeps its last state meanwhile.
                    Err(error) => tracing::warn!(%error, "user pod watch failed; retrying"),
                    Ok(watcher::Event::Apply(pod) | watcher::Event::Delete(pod)) => {
                        notify(&notified, pod.metadata.name.as_deref())
                    }
                    Ok(watcher::Event::InitDone) => notify(&notified, None),
                    Ok(_) => {}
                }
            }
        });
        PodCache { store, waiters, namespace: namespace.to_owned() }
    }

    /// Waits until the first list is in the cache (or the deadline passes).
    pub(crate) async fn ready(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.store.wait_until_ready()).await.is_ok_and(|ready| ready.is_ok())
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Pod>> {
        self.store.get(&ObjectRef::new(name).within(&self.namespace))
    }

    pub(crate) fn all(&self) -> Vec<Arc<Pod>> {
        self.store.state()
    }

    /// Waits until `check` on the pod (or its absence) gives an answer, or `timeout` passes (`None`).
    pub(crate) async fn wait_for<T>(
        &self,
        name: &str,
        timeout: Duration,
        mut check: impl FnMut(Option<&Pod>) -> Option<T>,
    ) -> Option<T> {
        let mut changed = {
            let mut waiters = self.waiters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            waiters.entry(name.to_owned()).or_insert_with(|| watch::channel(0).0).subscribe()
        };
        let answer = self.wait_with(name, timeout, &mut changed, &mut check).await;
        let mut waiters = self.waiters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if waiters.get(name).is_some_and(|sender| sender.receiver_count() <= 1) {
            waiters.remove(name);
        }
        answer
    }

    async fn wait_with<T>(
        &self,
        name: &str,
        timeout: Duration,
        changed: &mut watch::Receiver<u64>,
        check: &mut impl FnMut(Option<&Pod>) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changed.borrow_and_update();
            if let Some(answer) = check(self.get(name).as_deref()) {
                return Some(answer);
            }
            // A periodic look as well as the signal: a time-based condition (how long a pod has been
            // unschedulable) can turn true without a change.
            let tick = tokio::time::sleep(Duration::from_millis(250));
            tokio::select! {
                _ = changed.changed() => {}
                _ = tick => {}
                _ = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }
}
