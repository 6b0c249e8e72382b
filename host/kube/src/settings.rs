//! The spawner's settings: KubeSpawner's traits as one JSON object keyed by trait name, and what else the spawner
//! needs ([`KubeSpawnerConfig`]). The traits are built in KubeSpawner's order: its defaults
//! ([`kubespawner_defaults`]), what the configuration maps onto them (`singleuser.*` and `hub.config.KubeSpawner`,
//! translated by the caller, so this crate does not know the configuration file), then per spawn the override of
//! the profile the hub resolved. Every step merges with KubeSpawner's `_apply_overrides` ([`apply_override`]): a
//! mapping over a mapping merges deeply (a null removes the key), anything else, lists included, replaces.
//!
//! Keeping the traits as JSON until the end makes that merge exactly KubeSpawner's; the result is then decoded
//! into [`Traits`] with unknown keys refused, so a key outside the closed set can never be silently ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::KubeError;

/// How the spawner is set up.
#[derive(Debug, Clone)]
pub struct KubeSpawnerConfig {
    /// Where pods and claims go.
    pub namespace: String,
    /// KubeSpawner's traits before profiles: [`kubespawner_defaults`] with the configuration applied over them.
    pub traits: Map<String, Value>,
    /// Written on every pod and claim, so several hubs can share a namespace and each collects only its own.
    pub hub_instance: String,
    /// The hub's URL as pods reach it (z2jh: `http://hub:8081`); replaces the host of `JUPYTERHUB_API_URL` and
    /// `JUPYTERHUB_ACTIVITY_URL`. `None` keeps the hub's own URL (a hub on the same network as its pods).
    pub hub_connect_url: Option<String>,
    /// `gracePeriodSeconds` of a stop (KubeSpawner's `delete_grace_period`).
    pub delete_grace_period: i64,
    /// How long a pod may stay unschedulable before the spawn fails; zero fails at once (a cluster autoscaler
    /// needs minutes).
    pub unschedulable_timeout: Duration,
    /// How long `stop` waits for the pod to be gone.
    pub stop_timeout: Duration,
    /// Whether `collect_orphans` deletes anything (`wasmhub.kubernetes.collectOrphans`).
    pub collect_orphans: bool,
    /// How often a slow spawn tells its progress where the pod is.
    pub slow_spawn_interval: Duration,
}

impl KubeSpawnerConfig {
    /// Whether the traits decode, so that a wrong key or value stops the hub at start rather than failing the
    /// first spawn.
    pub fn validate(&self) -> Result<(), KubeError> {
        serde_json::from_value::<Traits>(Value::Object(self.traits.clone()))
            .map(drop)
            .map_err(|error| KubeError::Settings(error.to_string()))
    }
}

/// The effective settings of one spawn.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Traits {
    pub(crate) image: String,
    pub(crate) image_pull_policy: Option<String>,
    pub(crate) image_pull_secrets: Vec<String>,
    pub(crate) cmd: Option<Vec<String>>,
    pub(crate) args: Vec<String>,
    pub(crate) cpu_limit: Option<f64>,
    pub(crate) cpu_guarantee: Option<f64>,
    pub(crate) mem_limit: Option<u64>,
    pub(crate) mem_guarantee: Option<u64>,
    pub(crate) extra_resource_limits: BTreeMap<String, String>,
    pub(crate) extra_resource_guarantees: BTreeMap<String, String>,
    pub(crate) uid: Option<i64>,
    pub(crate) gid: Option<i64>,
    pub(crate) fs_gid: Option<i64>,
    pub(crate) supplemental_gids: Vec<i64>,
    pub(crate) privileged: bool,
    pub(crate) allow_privilege_escalation: Option<bool>,
    pub(crate) container_security_context: Map<String, Value>,
    pub(crate) pod_security_context: Map<String, Value>,
    pub(crate) node_selector: BTreeMap<String, String>,
    pub(crate) tolerations: Value,
    pub(crate) node_affinity_required: Value,
    pub(crate) node_affinity_preferred: Value,
    pub(crate) pod_affinity_required: Value,
    pub(crate) pod_affinity_preferred: Value,
    pub(crate) pod_anti_affinity_required: Value,
    pub(crate) pod_anti_affinity_preferred: Value,
    pub(crate) scheduler_name: Option<String>,
    pub(crate) priority_class_name: Option<String>,
    pub(crate) volumes: Value,
    pub(crate) volume_mounts: Value,
    pub(crate) storage_pvc_ensure: bool,
    pub(crate) storage_capacity: Option<String>,
    pub(crate) storage_class: Option<String>,
    pub(crate) storage_access_modes: Vec<String>,
    pub(crate) storage_extra_labels: BTreeMap<String, String>,
    pub(crate) pvc_name_template: String,
    pub(crate) pod_name_template: String,
    pub(crate) environment: Map<String, Value>,
    pub(crate) default_url: Option<String>,
    pub(crate) working_dir: Option<String>,
    pub(crate) notebook_dir: Option<String>,
    pub(crate) service_account: Option<String>,
    pub(crate) automount_service_account_token: Option<bool>,
    pub(crate) start_timeout: Option<u64>,
    pub(crate) http_timeout: Option<u64>,
    pub(crate) lifecycle_hooks: Map<String, Value>,
    pub(crate) init_containers: Value,
    pub(crate) extra_containers: Value,
    pub(crate) extra_container_config: Map<String, Value>,
    pub(crate) extra_pod_config: Map<String, Value>,
    pub(crate) extra_labels: BTreeMap<String, String>,
    pub(crate) extra_annotations: BTreeMap<String, String>,
    pub(crate) common_labels: BTreeMap<String, String>,
    pub(crate) component_label: String,
    pub(crate) port: u16,
    /// Whether this pod's events are shown as progress (z2jh `singleuser.events`).
    pub(crate) events_enabled: bool,
    /// Whether each pod gets a Service and is reached through its DNS name rather than the pod IP.
    pub(crate) services_enabled: bool,
}

/// KubeSpawner's defaults for the traits the configuration does not set.
pub fn kubespawner_defaults() -> Map<String, Value> {
    let defaults = json!({
        "image": "quay.io/jupyterhub/singleuser:latest",
        "storage_access_modes": ["ReadWriteOnce"],
        "pvc_name_template": "claim-{user_server}",
        "pod_name_template": "jupyter-{user_server}",
        "common_labels": {
            "app.kubernetes.io/name": "jupyterhub",
            "app.kubernetes.io/managed-by": "kubespawner",
            "app": "jupyterhub",
            "heritage": "jupyterhub",
        },
        "component_label": "singleuser-server",
        "allow_privilege_escalation": false,
        "port": 8888,
        "events_enabled": true,
    });
    defaults.as_object().cloned().unwrap_or_default()
}

/// `_apply_overrides`: each key replaces the trait, except that a mapping over a mapping is merged deeply.
pub fn apply_override(traits: &mut Map<String, Value>, overrides: &Map<String, Value>) {
    for (key, value) in overrides {
        match (traits.get_mut(key), value) {
            (Some(current @ Value::Object(_)), Value::Object(_)) => recursive_update(current, value),
            _ => {
                traits.insert(key.clone(), value.clone());
            }
        }
    }
}

/// KubeSpawner's `utils.recursive_update`: nested mappings merge, a null deletes the key.
fn recursive_update(target: &mut Value, update: &Value) {
    let (Some(target), Some(update)) = (target.as_object_mut(), update.as_object()) else { return };
    for (key, value) in update {
        match (target.get_mut(key), value) {
            (_, Value::Null) => {
                target.remove(key);
            }
            (Some(current @ Value::Object(_)), Value::Object(_)) => recursive_update(current, value),
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicts_merge_deeply_and_lists_replace() {
        let mut traits = json!({
            "node_selector": {"pool": "user"},
            "tolerations": [{"key": "a"}],
            "volumes": {"home": {"name": "home"}, "scratch": {"name": "scratch"}},
        })
        .as_object()
        .cloned()
        .unwrap();
        let overrides = json!({
            "node_selector": {"gpu": "t4"},
            "tolerations": [{"key": "b"}],
            "volumes": {"scratch": null, "data": {"name": "data"}},
            "image": "x:1",
        });
        apply_override(&mut traits, overrides.as_object().unwrap());
        assert_eq!(traits["node_selector"], json!({"pool": "user", "gpu": "t4"}));
        assert_eq!(traits["tolerations"], json!([{"key": "b"}]));
        assert_eq!(traits["volumes"], json!({"home": {"name": "home"}, "data": {"name": "data"}}));
        assert_eq!(traits["image"], "x:1");
    }
}
