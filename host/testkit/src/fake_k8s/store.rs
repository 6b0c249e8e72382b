//! The fake's etcd: every object by resource, namespace and name, one global resourceVersion counter, a bounded
//! history of changes for watches to replay, and a broadcast of live changes.
//!
//! Every change is numbered and broadcast while the lock is held, so broadcast order is resourceVersion order,
//! and a watch that subscribes under the lock neither misses nor repeats a change.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::resources::Resource;
use super::status::Status;
use super::validate;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One numbered change, as watches replay it.
#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) resource_version: u64,
    pub(crate) resource: Resource,
    pub(crate) namespace: String,
    pub(crate) change_type: ChangeType,
    pub(crate) object: Value,
    /// The object before a modification, so a watch can tell an object that stopped matching its selector.
    pub(crate) previous: Option<Value>,
}

/// What the simulated kubelet is told about pods (a channel rather than the broadcast, so it can never lag).
#[derive(Debug, Clone)]
pub(crate) enum KubeletSignal {
    Created { namespace: String, name: String },
    Deleting { namespace: String, name: String, grace_seconds: i64 },
    Removed { namespace: String, name: String },
}

type Key = (Resource, String, String);

struct Inner {
    resource_version: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Change>>,
    /// Watches from a resourceVersion below this get 410 Expired.
    oldest_replayable: u64,
    /// The last version of every object ever stored (keyed by uid), for the strict schema check in tests.
    ever_stored: BTreeMap<String, Value>,
    uid_counter: u64,
    cluster_ip_counter: u32,
}

/// The object store shared by the HTTP handlers and the simulated controllers.
pub(crate) struct Store {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Arc<Change>>,
    kubelet: mpsc::UnboundedSender<KubeletSignal>,
    history_limit: usize,
}

/// Parameters of a create that the server honours.
#[derive(Debug, Default, Clone)]
pub(crate) struct CreateOptions {
    pub(crate) strict: bool,
    pub(crate) dry_run: bool,
}

impl Store {
    pub(crate) fn new(
        namespaces: &[String],
        history_limit: usize,
        kubelet: mpsc::UnboundedSender<KubeletSignal>,
    ) -> Arc<Store> {
        let (changes, _) = broadcast::channel(1 << 16);
        let store = Arc::new(Store {
            inner: Mutex::new(Inner {
                resource_version: 0,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                oldest_replayable: 0,
                ever_stored: BTreeMap::new(),
                uid_counter: 0,
                cluster_ip_counter: 10,
            }),
            changes,
            kubelet,
            history_limit,
        });
        for namespace in namespaces {
            let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
            store.create(Resource::Namespaces, "", object, &CreateOptions::default()).expect("a valid namespace");
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not take the fake down with it; the data is still consistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn current_resource_version(&self) -> u64 {
        self.lock().resource_version
    }

    fn record(&self, inner: &mut Inner, change: Change) {
        if let Some(uid) = change.object.pointer("/metadata/uid").and_then(Value::as_str) {
            inner.ever_stored.insert(format!("{}/{uid}", change.resource.plural()), change.object.clone());
        }
        let change = Arc::new(change);
        inner.history.push_back(change.clone());
        while inner.history.len() > self.history_limit {
            if let Some(dropped) = inner.history.pop_front() {
                inner.oldest_replayable = dropped.resource_version;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.changes.send(change);
    }

    pub(crate) fn create(
        &self,
        resource: Resource,
        namespace: &str,
        body: Value,
        options: &CreateOptions,
    ) -> Result<Value, Status> {
        let mut body = body;
        if let Some(generate) = body.pointer("/metadata/generateName").and_then(Value::as_str).map(str::to_owned)
            && body.pointer("/metadata/name").and_then(Value::as_str).is_none_or(str::is_empty)
        {
            let suffix = self.lock().uid_counter + 1;
            body["metadata"]["name"] = json!(format!("{generate}{}", random_suffix(suffix)));
        }
        if resource.namespaced()
            && let Some(declared) = body.pointer("/metadata/namespace").and_then(Value::as_str)
            && declared != namespace
        {
            return Err(Status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
        let mut object = validate::admit(resource, &body, options.strict)?;
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let mut inner = self.lock();
        if resource.namespaced()
            && !inner.objects.contains_key(&(Resource::Namespaces, String::new(), namespace.into()))
        {
            return Err(Status::not_found(Resource::Namespaces, namespace));
        }
        let key = (resource, if resource.namespaced() { namespace.to_owned() } else { String::new() }, name.clone());
        if inner.objects.contains_key(&key) {
            return Err(Status::already_exists(resource, &name));
        }
        inner.uid_counter += 1;
        let uid = format!("6b1f{:04x}-0000-4000-8000-{:012x}", inner.uid_counter >> 48, inner.uid_counter);
        let metadata = object["metadata"].as_object_mut().expect("admitted objects have metadata");
        if resource.namespaced() {
            metadata.insert("namespace".into(), json!(namespace));
        }
        metadata.insert("uid".into(), json!(uid));
        metadata.insert("creationTimestamp".into(), json!(now()));
        metadata.remove("generateName");
        if matches!(resource, Resource::Pods | Resource::PersistentVolumeClaims | Resource::Services) {
            metadata.insert("generation".into(), json!(1));
        }
        if resource == Resource::Services && object["spec"].get("clusterIP").is_none_or(Value::is_null) {
            inner.cluster_ip_counter += 1;
            let counter = inner.cluster_ip_counter;
            object["spec"]["clusterIP"] = json!(format!("10.96.{}.{}", counter / 250, counter % 250 + 1));
            object["spec"]["clusterIPs"] = json!([object["spec"]["clusterIP"].clone()]);
        }
        if options.dry_run {
            return Ok(object);
        }
        inner.resource_version += 1;
        let resource_version = inner.resource_version;
        object["metadata"]["resourceVersion"] = json!(resource_version.to_string());
        inner.objects.insert(key, object.clone());
        self.record(
            &mut inner,
            Change {
                resource_version,
                resource,
                namespace: namespace.to_owned(),
                change_type: ChangeType::Added,
                object: object.clone(),
                previous: None,
            },
        );
        drop(inner);
        if resource == Resource::Pods {
            let _ = self.kubelet.send(KubeletSignal::Created { namespace: namespace.into(), name });
        }
        Ok(object)
    }

    pub(crate) fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        let namespace = if resource.namespaced() { namespace } else { "" };
        self.lock().objects.get(&(resource, namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Objects of one resource, in one namespace or all, with the current resourceVersion.
    pub(crate) fn list(&self, resource: Resource, namespace: Option<&str>) -> (Vec<Value>, u64) {
        self.list_matching(resource, namespace, |_| true)
    }

    /// As [`Store::list`], selecting before copying: a field-selected list of one pod's events stays cheap in a
    /// namespace with thousands of events.
    pub(crate) fn list_matching(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        selected: impl Fn(&Value) -> bool,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let first = (resource, String::new(), String::new());
        let items = inner
            .objects
            .range(first..)
            .take_while(|((kind, _, _), _)| *kind == resource)
            .filter(|((_, object_namespace, _), object)| {
                namespace.is_none_or(|wanted| wanted == object_namespace) && selected(object)
            })
            .map(|(_, object)| object.clone())
            .collect();
        (items, inner.resource_version)
    }

    /// Changes an object in place (the simulated controllers, replace, patch); `None` when it does not exist.
    /// The closure may refuse the change with a Status.
    pub(crate) fn modify(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value) -> Result<(), Status>,
    ) -> Result<Value, Status> {
        let namespace = if resource.namespaced() { namespace } else { "" };
        let key = (resource, namespace.to_owned(), name.to_owned());
        let mut inner = self.lock();
        let Some(existing) = inner.objects.get(&key).cloned() else {
            return Err(Status::not_found(resource, name));
        };
        let mut object = existing.clone();
        change(&mut object)?;
        if object == existing {
            return Ok(object);
        }
        if existing.get("spec") != object.get("spec")
            && let Some(generation) = existing.pointer("/metadata/generation").and_then(Value::as_i64)
        {
            object["metadata"]["generation"] = json!(generation + 1);
        }
        inner.resource_version += 1;
        let resource_version = inner.resource_version;
        object["metadata"]["resourceVersion"] = json!(resource_version.to_string());
        inner.objects.insert(key, object.clone());
        self.record(
            &mut inner,
            Change {
                resource_version,
                resource,
                namespace: namespace.to_owned(),
                change_type: ChangeType::Modified,
                object: object.clone(),
                previous: Some(existing),
            },
        );
        Ok(object)
    }

    /// Removes an object for good and garbage-collects objects it owns (services and secrets of a pod).
    pub(crate) fn remove(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        let namespace = if resource.namespaced() { namespace } else { "" };
        let mut inner = self.lock();
        let mut object = inner.objects.remove(&(resource, namespace.to_owned(), name.to_owned()))?;
        inner.resource_version += 1;
        let resource_version = inner.resource_version;
        object["metadata"]["resourceVersion"] = json!(resource_version.to_string());
        self.record(
            &mut inner,
            Change {
                resource_version,
                resource,
                namespace: namespace.to_owned(),
                change_type: ChangeType::Deleted,
                object: object.clone(),
                previous: None,
            },
        );
        let uid = object.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_owned();
        let owned: Vec<Key> = inner
            .objects
            .iter()
            .filter(|(_, candidate)| {
                candidate
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|owners| owners.iter().any(|owner| owner["uid"].as_str() == Some(uid.as_str())))
            })
            .map(|(key, _)| key.clone())
            .collect();
        drop(inner);
        for (owned_resource, owned_namespace, owned_name) in owned {
            self.remove(owned_resource, &owned_namespace, &owned_name);
        }
        if resource == Resource::Pods {
            let _ = self.kubelet.send(KubeletSignal::Removed { namespace: namespace.into(), name: name.into() });
        }
        Some(object)
    }

    /// DELETE: pods on a node terminate gracefully (deletionTimestamp now, gone when the kubelet is done), every
    /// other object goes at once. Preconditions on uid and resourceVersion give 409 Conflict.
    pub(crate) fn delete(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        grace_seconds: Option<i64>,
        preconditions: (Option<String>, Option<String>),
    ) -> Result<Value, Status> {
        let Some(object) = self.get(resource, namespace, name) else {
            return Err(Status::not_found(resource, name));
        };
        let (uid, resource_version) = preconditions;
        if let Some(uid) = uid
            && object.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid.as_str())
        {
            return Err(Status::conflict(resource, name, "Precondition failed: UID in precondition does not match"));
        }
        if let Some(version) = resource_version
            && object.pointer("/metadata/resourceVersion").and_then(Value::as_str) != Some(version.as_str())
        {
            return Err(Status::conflict(
                resource,
                name,
                "Precondition failed: ResourceVersion in precondition does not match",
            ));
        }
        let on_node = object.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|node| !node.is_empty());
        let grace = grace_seconds
            .or_else(|| object.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
            .unwrap_or(30);
        if resource != Resource::Pods || !on_node || grace == 0 {
            return Ok(self.remove(resource, namespace, name).unwrap_or(object));
        }
        if object.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(object);
        }
        let updated = self.modify(resource, namespace, name, |pod| {
            pod["metadata"]["deletionTimestamp"] = json!(now());
            pod["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            Ok(())
        })?;
        let _ = self.kubelet.send(KubeletSignal::Deleting {
            namespace: namespace.into(),
            name: name.into(),
            grace_seconds: grace,
        });
        Ok(updated)
    }

    /// Subscribes a watch: the changes to send first and the live ones after them. `since` of `None` (or `0`)
    /// starts from the current state as synthetic ADDED events; a version older than the history is 410.
    pub(crate) fn subscribe(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        since: Option<u64>,
    ) -> Result<(Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>, u64), Status> {
        let inner = self.lock();
        let initial = match since {
            None | Some(0) => inner
                .objects
                .iter()
                .filter(|((kind, object_namespace, _), _)| {
                    *kind == resource && namespace.is_none_or(|wanted| wanted == object_namespace)
                })
                .map(|((_, object_namespace, _), object)| {
                    Arc::new(Change {
                        resource_version: inner.resource_version,
                        resource,
                        namespace: object_namespace.clone(),
                        change_type: ChangeType::Added,
                        object: object.clone(),
                        previous: None,
                    })
                })
                .collect(),
            Some(version) => {
                if version < inner.oldest_replayable {
                    return Err(Status::expired(format!(
                        "too old resource version: {version} ({})",
                        inner.oldest_replayable
                    )));
                }
                inner.history.iter().filter(|change| change.resource_version > version).cloned().collect()
            }
        };
        Ok((initial, self.changes.subscribe(), inner.resource_version))
    }

    /// Forgets the history, as etcd compaction does: every watch from an earlier version gets 410 Expired.
    pub(crate) fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.oldest_replayable = inner.resource_version;
    }

    pub(crate) fn ever_stored(&self) -> Vec<Value> {
        self.lock().ever_stored.values().cloned().collect()
    }
}

/// The time as the API server writes it (RFC 3339, seconds, UTC).
pub(crate) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Five characters from `[a-z0-9]`, as `generateName` appends.
fn random_suffix(seed: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut value = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (std::process::id() as u64);
    (0..5)
        .map(|_| {
            let character = ALPHABET[(value % ALPHABET.len() as u64) as usize] as char;
            value /= ALPHABET.len() as u64;
            character
        })
        .collect()
}
