//! KubeSpawner's traits as one JSON object keyed by trait name, built from `singleuser.*` the way z2jh's
//! `jupyterhub_config.py` maps it, then overridden in KubeSpawner's order: `hub.config.KubeSpawner`, the profile's
//! `kubespawner_override`, each option's chosen override. The merge is KubeSpawner's `_apply_overrides`: a mapping
//! over a mapping merges deeply (a null removes the key), anything else, lists included, replaces.
//!
//! Keeping the traits as JSON until the end makes that merge exactly KubeSpawner's; the result is then decoded
//! into [`Traits`] with unknown keys refused, so a key outside the closed set can never be silently ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use wasmhub_config::{Config, MatchNodePurpose, StorageType};

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

/// The traits before any override: KubeSpawner's defaults with `singleuser.*` and `hub.config.Spawner` mapped
/// onto them as z2jh does.
pub fn base_traits(config: &Config) -> Map<String, Value> {
    let singleuser = &config.singleuser;
    let spawner = &config.hub.config.spawner;
    let storage = &singleuser.storage;
    let mut traits = Map::new();
    let mut set = |key: &str, value: Value| {
        traits.insert(key.to_owned(), value);
    };
    set("image", json!(singleuser.image.reference()));
    set("image_pull_policy", json!(singleuser.image.pull_policy.map(|policy| policy.as_str())));
    set("image_pull_secrets", json!(singleuser.image.pull_secrets));
    let cmd = spawner.cmd.as_ref().or(singleuser.cmd.as_ref()).map(|command| command.0.clone());
    set("cmd", json!(cmd));
    set("args", json!(spawner.args));
    set("cpu_limit", json!(singleuser.cpu.limit.or(spawner.cpu_limit)));
    set("cpu_guarantee", json!(singleuser.cpu.guarantee));
    set("mem_limit", json!(singleuser.memory.limit.or(spawner.mem_limit).map(|size| size.bytes())));
    set("mem_guarantee", json!(singleuser.memory.guarantee.map(|size| size.bytes())));
    set("extra_resource_limits", json!(singleuser.extra_resource.limits));
    set("extra_resource_guarantees", json!(singleuser.extra_resource.guarantees));
    set("uid", json!(singleuser.uid));
    set("fs_gid", json!(singleuser.fs_gid));
    set("allow_privilege_escalation", json!(singleuser.allow_privilege_escalation));
    set("node_selector", json!(singleuser.node_selector));
    // z2jh: the user pods' tolerations (its defaults unless configured) and then the extra ones, as a list.
    let mut tolerations = config.scheduling.user_pods.tolerations.clone().unwrap_or_else(|| {
        ["hub.jupyter.org/dedicated", "hub.jupyter.org_dedicated"]
            .iter()
            .map(|key| json!({"key": key, "operator": "Equal", "value": "user", "effect": "NoSchedule"}))
            .collect()
    });
    tolerations.extend(singleuser.extra_tolerations.iter().cloned());
    set("tolerations", Value::Array(tolerations));
    let node_purpose =
        json!({"matchExpressions": [{"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}]});
    match config.scheduling.user_pods.node_affinity.match_node_purpose {
        MatchNodePurpose::Prefer => {
            set("node_affinity_preferred", json!([{"weight": 100, "preference": node_purpose}]))
        }
        MatchNodePurpose::Require => set("node_affinity_required", json!([node_purpose])),
        MatchNodePurpose::Ignore => {}
    }
    // Home storage, as z2jh's dict-valued `volumes` and `volume_mounts` (so a profile's dict merges, a list
    // replaces).
    let mut volumes = Map::new();
    let mut mounts = Map::new();
    match storage.kind {
        StorageType::Dynamic => {
            let name = storage.dynamic.volume_name_template.clone();
            volumes.insert(name.clone(), json!({"name": name, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}));
            let mut mount = json!({"name": name, "mountPath": storage.home_mount_path});
            if let Some(sub_path) = &storage.dynamic.sub_path {
                mount["subPath"] = json!(sub_path);
            }
            mounts.insert(name, mount);
            set("storage_pvc_ensure", json!(true));
            set("storage_capacity", json!(storage.capacity));
            set("storage_class", json!(storage.dynamic.storage_class));
            set("storage_access_modes", json!(storage.dynamic.storage_access_modes));
            if let Some(template) = &storage.dynamic.pvc_name_template {
                set("pvc_name_template", json!(template));
            }
        }
        StorageType::Static => {
            let claim = storage.static_.pvc_name.clone().unwrap_or_default();
            volumes.insert("home".into(), json!({"name": "home", "persistentVolumeClaim": {"claimName": claim}}));
            mounts.insert(
                "home".into(),
                json!({"name": "home", "mountPath": storage.home_mount_path, "subPath": storage.static_.sub_path}),
            );
        }
        StorageType::None => {}
    }
    for (source, target) in [(&storage.extra_volumes, &mut volumes), (&storage.extra_volume_mounts, &mut mounts)] {
        match source {
            Some(Value::Object(map)) => target.extend(map.clone()),
            Some(Value::Array(items)) => {
                for item in items {
                    let name = item["name"].as_str().unwrap_or_default().to_owned();
                    target.insert(name, item.clone());
                }
            }
            _ => {}
        }
    }
    set("volumes", Value::Object(volumes));
    set("volume_mounts", Value::Object(mounts));
    set("storage_extra_labels", json!(storage.extra_labels));
    set("service_account", json!(singleuser.service_account_name));
    set("lifecycle_hooks", Value::Object(singleuser.lifecycle_hooks.clone()));
    set("init_containers", Value::Array(singleuser.init_containers.clone()));
    set("extra_containers", Value::Array(singleuser.extra_containers.clone()));
    set("extra_pod_config", Value::Object(singleuser.extra_pod_config.clone()));
    set("extra_labels", json!(singleuser.extra_labels));
    set("extra_annotations", json!(singleuser.extra_annotations));
    if let Some(template) = &singleuser.pod_name_template {
        set("pod_name_template", json!(template));
    }
    set("start_timeout", json!(spawner.start_timeout.unwrap_or(singleuser.start_timeout)));
    set("events_enabled", json!(singleuser.events));
    traits
}

/// KubeSpawner's defaults for the traits `singleuser` does not set.
pub(crate) fn kubespawner_defaults() -> Map<String, Value> {
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
pub(crate) fn apply_override(traits: &mut Map<String, Value>, overrides: &Map<String, Value>) {
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
