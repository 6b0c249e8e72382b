//! The configuration translated into the Kubernetes spawner's settings, in this one place, so `host/kube` knows
//! KubeSpawner's traits but not the configuration file: `singleuser.*` and `hub.config.Spawner` mapped onto
//! KubeSpawner's traits the way z2jh's `jupyterhub_config.py` maps them, `hub.config.KubeSpawner` over that, and
//! `wasmhub.kubernetes`. Profiles are not here: the hub resolves them per spawn and the spawner applies the result.

use std::time::Duration;

use serde_json::{Map, Value, json};
use wasmhub_config::{Config, MatchNodePurpose, StorageType};
use wasmhub_kube::{KubeSpawnerConfig, apply_override, kubespawner_defaults};

/// The spawner as `wasmhub.yaml` describes it; `default_namespace` is the client's, used when
/// `wasmhub.kubernetes.namespace` is not set.
pub(crate) fn kube_spawner_config(config: &Config, default_namespace: &str) -> anyhow::Result<KubeSpawnerConfig> {
    // KubeSpawner's order: its defaults, what z2jh maps from `singleuser`, then `hub.config.KubeSpawner`.
    let mut traits = kubespawner_defaults();
    apply_override(&mut traits, &base_traits(config));
    if let Value::Object(hub_override) = config.hub.config.kubespawner.to_json() {
        apply_override(&mut traits, &hub_override);
    }
    let kubernetes = &config.wasmhub.kubernetes;
    let settings = KubeSpawnerConfig {
        namespace: kubernetes.namespace.clone().unwrap_or_else(|| default_namespace.to_owned()),
        traits,
        hub_instance: kubernetes.hub_instance.clone(),
        hub_connect_url: kubernetes.hub_connect_url.clone(),
        delete_grace_period: 1,
        unschedulable_timeout: Duration::from_secs(kubernetes.unschedulable_timeout),
        stop_timeout: Duration::from_secs(config.singleuser.start_timeout.max(10)),
        collect_orphans: kubernetes.collect_orphans,
        slow_spawn_interval: Duration::from_secs(10),
    };
    // The traits must decode before the first spawn, not at it.
    settings.validate()?;
    Ok(settings)
}

/// The traits before any override: KubeSpawner's defaults with `singleuser.*` and `hub.config.Spawner` mapped
/// onto them as z2jh does.
fn base_traits(config: &Config) -> Map<String, Value> {
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// `host/kube`'s tests spawn with the traits in `host/kube/tests/settings/*.json`, each next to the
    /// configuration it stands for (`config_file`, relative to the repository, or `config`, the YAML itself),
    /// since that crate cannot read configuration. This keeps those files what the configuration translates to,
    /// so the golden pods there still follow from the example configurations.
    #[test]
    fn the_kube_tests_settings_are_what_their_configuration_translates_to() {
        let folder = repo_root().join("host/kube/tests/settings");
        let mut checked = 0;
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let settings: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let scratch = tempfile::tempdir().unwrap();
            let config_path = match (settings["config_file"].as_str(), settings["config"].as_str()) {
                (Some(file), None) => repo_root().join(file),
                (None, Some(yaml)) => {
                    let written = scratch.path().join("wasmhub.yaml");
                    std::fs::write(&written, yaml).unwrap();
                    written
                }
                _ => panic!("{}: neither config_file nor config", path.display()),
            };
            let config =
                wasmhub_config::check(&config_path).unwrap_or_else(|errors| panic!("{}: {errors:?}", path.display()));
            let translated = kube_spawner_config(&config, "default").unwrap();
            assert_eq!(Value::Object(translated.traits), settings["traits"], "{}", path.display());
            checked += 1;
        }
        assert!(checked >= 6, "only {checked} settings files in {}", folder.display());
    }
}
