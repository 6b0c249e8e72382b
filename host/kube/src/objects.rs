//! The Pod and the PVC exactly as KubeSpawner 7 builds them (`get_pod_manifest`, `objects.make_pod`,
//! `get_pvc_manifest`, `objects.make_pvc`): labels, annotations, environment, resources, security contexts,
//! volumes, scheduling and the extra-config escape hatches, as JSON in Kubernetes' camelCase.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::names::{NameFields, label_slug};
use crate::settings::Traits;

/// The annotation and label keys KubeSpawner writes and adoption reads.
pub(crate) const USERNAME_KEY: &str = "hub.jupyter.org/username";
pub(crate) const SERVERNAME_KEY: &str = "hub.jupyter.org/servername";
/// Which hub made a pod: several hubs may share a namespace (ks#434).
pub(crate) const HUB_KEY: &str = "hub.jupyter.org/wasmhub-instance";

/// Python's `str(float)`: `2.0`, `0.05`.
fn python_float(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e16 { format!("{value:.1}") } else { format!("{value}") }
}

/// A CPU quantity: `2`, `0.05`.
fn cpu_quantity(value: f64) -> String {
    format!("{value}")
}

/// Labels every object of a server gets (`_build_common_labels`).
fn common_labels(traits: &Traits, names: &NameFields, extra: &BTreeMap<String, String>) -> Map<String, Value> {
    let mut labels = Map::new();
    labels.insert(USERNAME_KEY.into(), json!(label_slug(&names.username)));
    for (key, value) in extra {
        labels.insert(names.expand(key), json!(names.expand(value)));
    }
    for (key, value) in &traits.common_labels {
        labels.insert(key.clone(), json!(value));
    }
    labels
}

/// Annotations every object of a server gets: the raw names, which adoption reads back.
fn common_annotations(names: &NameFields, hub_instance: &str) -> Map<String, Value> {
    let mut annotations = Map::new();
    annotations.insert(USERNAME_KEY.into(), json!(names.username));
    if !names.servername.is_empty() {
        annotations.insert(SERVERNAME_KEY.into(), json!(names.servername));
    }
    annotations.insert(HUB_KEY.into(), json!(hub_instance));
    annotations.insert("hub.jupyter.org/wasmhub-version".into(), json!(env!("CARGO_PKG_VERSION")));
    annotations
}

/// A list-or-mapping trait (volumes, containers, tolerations) as a list: a mapping's values sorted by key
/// (KubeSpawner 7's `_sorted_dict_values`), each named after its key when it has no name.
fn list_or_sorted_values(value: &Value, name_from_key: bool) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            keys.into_iter()
                .filter(|key| !map[*key].is_null())
                .map(|key| {
                    let mut item = map[key].clone();
                    if name_from_key && item.get("name").is_none() && item.is_object() {
                        item["name"] = json!(key);
                    }
                    item
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// `snake_case` to `camelCase`, as `update_k8s_model` accepts either.
fn camel_case(key: &str) -> String {
    let mut output = String::new();
    let mut upper = false;
    for character in key.chars() {
        if character == '_' {
            upper = true;
        } else if upper {
            output.extend(character.to_uppercase());
            upper = false;
        } else {
            output.push(character);
        }
    }
    output
}

/// Environment as KubeSpawner orders it: by name, then moved so a variable referenced as `$(NAME)` comes first.
fn ordered_env(env: BTreeMap<String, Value>) -> Vec<Value> {
    let names: BTreeSet<String> = env.keys().cloned().collect();
    let mut emitted: BTreeSet<String> = BTreeSet::new();
    let mut output = Vec::new();
    let mut remaining: Vec<(String, Value)> = env.into_iter().collect();
    while !remaining.is_empty() {
        let ready = remaining.iter().position(|(_, variable)| {
            let text = variable["value"].as_str().unwrap_or_default();
            names.iter().all(|name| emitted.contains(name) || !text.contains(&format!("$({name})")))
        });
        // A cycle cannot be ordered; what is left keeps its name order, as Kubernetes then leaves it unexpanded.
        let index = ready.unwrap_or(0);
        let (name, variable) = remaining.remove(index);
        emitted.insert(name);
        output.push(variable);
    }
    output
}

/// Everything the pod needs besides the traits.
pub(crate) struct PodInputs<'a> {
    pub(crate) names: &'a NameFields,
    /// JupyterHub's environment from the hub, plus the bind URL.
    pub(crate) hub_env: &'a BTreeMap<String, String>,
    pub(crate) service_prefix: &'a str,
    pub(crate) hub_instance: &'a str,
}

/// `get_pod_manifest`.
pub(crate) fn make_pod(traits: &Traits, inputs: &PodInputs<'_>) -> Value {
    let names = inputs.names;
    // === labels and annotations ===
    let mut labels = common_labels(traits, names, &traits.extra_labels);
    labels.insert("app.kubernetes.io/component".into(), json!(traits.component_label));
    labels.insert("component".into(), json!(traits.component_label));
    labels.insert(SERVERNAME_KEY.into(), json!(label_slug(&names.servername)));
    let mut annotations = Map::new();
    for (key, value) in &traits.extra_annotations {
        annotations.insert(names.expand(key), json!(names.expand(value)));
    }
    annotations.extend(common_annotations(names, inputs.hub_instance));

    // === environment (`get_env`) ===
    let mut env: BTreeMap<String, Value> = BTreeMap::new();
    let put = |env: &mut BTreeMap<String, Value>, name: &str, value: String| {
        env.insert(name.to_owned(), json!({"name": name, "value": value}));
    };
    for (name, value) in inputs.hub_env {
        put(&mut env, name, value.clone());
    }
    put(&mut env, "JUPYTERHUB_SERVICE_URL", format!("http://0.0.0.0:{}{}", traits.port, inputs.service_prefix));
    put(&mut env, "JUPYTER_IMAGE", traits.image.clone());
    put(&mut env, "JUPYTER_IMAGE_SPEC", traits.image.clone());
    if let Some(url) = &traits.default_url {
        put(&mut env, "JUPYTERHUB_DEFAULT_URL", url.clone());
    }
    if let Some(dir) = &traits.notebook_dir {
        put(&mut env, "JUPYTERHUB_ROOT_DIR", names.expand(dir));
    }
    if let Some(value) = traits.cpu_limit {
        put(&mut env, "CPU_LIMIT", python_float(value));
    }
    if let Some(value) = traits.cpu_guarantee {
        put(&mut env, "CPU_GUARANTEE", python_float(value));
    }
    if let Some(value) = traits.mem_limit {
        put(&mut env, "MEM_LIMIT", value.to_string());
    }
    if let Some(value) = traits.mem_guarantee {
        put(&mut env, "MEM_GUARANTEE", value.to_string());
    }
    for (name, value) in &traits.environment {
        match value {
            Value::String(text) => put(&mut env, name, names.expand(text)),
            Value::Object(_) => {
                let mut variable = names.expand_json(value);
                variable["name"] = json!(name);
                env.insert(name.clone(), variable);
            }
            other => put(&mut env, name, other.to_string()),
        }
    }

    // === the notebook container ===
    let mut resources = json!({});
    let mut limits = Map::new();
    let mut requests = Map::new();
    if let Some(value) = traits.cpu_limit {
        limits.insert("cpu".into(), json!(cpu_quantity(value)));
    }
    if let Some(value) = traits.mem_limit {
        limits.insert("memory".into(), json!(value.to_string()));
    }
    if let Some(value) = traits.cpu_guarantee {
        requests.insert("cpu".into(), json!(cpu_quantity(value)));
    }
    if let Some(value) = traits.mem_guarantee {
        requests.insert("memory".into(), json!(value.to_string()));
    }
    for (key, value) in &traits.extra_resource_limits {
        limits.insert(key.clone(), json!(value));
    }
    for (key, value) in &traits.extra_resource_guarantees {
        requests.insert(key.clone(), json!(value));
    }
    if !limits.is_empty() {
        resources["limits"] = Value::Object(limits);
    }
    if !requests.is_empty() {
        resources["requests"] = Value::Object(requests);
    }
    let mut security = Map::new();
    if let Some(uid) = traits.uid {
        security.insert("runAsUser".into(), json!(uid));
    }
    if let Some(gid) = traits.gid {
        security.insert("runAsGroup".into(), json!(gid));
    }
    if traits.privileged {
        security.insert("privileged".into(), json!(true));
    }
    if let Some(allow) = traits.allow_privilege_escalation {
        security.insert("allowPrivilegeEscalation".into(), json!(allow));
    }
    // The configured context has the last word, as `.update()` gives it in `make_pod`.
    security.extend(traits.container_security_context.clone());
    let mut container = json!({
        "name": "notebook",
        "image": traits.image,
        "ports": [{"name": "notebook-port", "containerPort": traits.port}],
        "env": ordered_env(env),
        "resources": resources,
        "securityContext": security,
        "lifecycle": traits.lifecycle_hooks,
        "volumeMounts": names.expand_json(&Value::Array(list_or_sorted_values(&traits.volume_mounts, true))),
    });
    // `cmd` goes into args, so the image's ENTRYPOINT (tini) still runs; without a cmd the args mean nothing.
    if let Some(cmd) = &traits.cmd {
        let mut args = cmd.clone();
        args.extend(traits.args.iter().cloned());
        container["args"] = json!(args);
    }
    if let Some(policy) = &traits.image_pull_policy {
        container["imagePullPolicy"] = json!(policy);
    }
    if let Some(dir) = &traits.working_dir {
        container["workingDir"] = json!(names.expand(dir));
    }
    for (key, value) in &traits.extra_container_config {
        container[camel_case(key)] = value.clone();
    }

    // === the pod spec ===
    let mut pod_security = Map::new();
    if let Some(fs_gid) = traits.fs_gid {
        pod_security.insert("fsGroup".into(), json!(fs_gid));
    }
    if !traits.supplemental_gids.is_empty() {
        pod_security.insert("supplementalGroups".into(), json!(traits.supplemental_gids));
    }
    pod_security.extend(traits.pod_security_context.clone());
    let mut containers = vec![container];
    containers.extend(list_or_sorted_values(&names.expand_json(&traits.extra_containers), true));
    let mut spec = json!({
        "restartPolicy": "OnFailure",
        "securityContext": pod_security,
        "containers": containers,
        "imagePullSecrets": traits.image_pull_secrets.iter().map(|name| json!({"name": name})).collect::<Vec<_>>(),
        "volumes": names.expand_json(&Value::Array(list_or_sorted_values(&traits.volumes, true))),
    });
    match &traits.service_account {
        Some(account) => {
            spec["serviceAccountName"] = json!(names.expand(account));
            if let Some(automount) = traits.automount_service_account_token {
                spec["automountServiceAccountToken"] = json!(automount);
            }
        }
        // No account named: no token mounted, unless asked for.
        None => spec["automountServiceAccountToken"] = json!(traits.automount_service_account_token.unwrap_or(false)),
    }
    let init_containers = list_or_sorted_values(&names.expand_json(&traits.init_containers), true);
    if !init_containers.is_empty() {
        spec["initContainers"] = json!(init_containers);
    }
    if !traits.node_selector.is_empty() {
        spec["nodeSelector"] = json!(traits.node_selector);
    }
    let tolerations = list_or_sorted_values(&traits.tolerations, false);
    if !tolerations.is_empty() {
        spec["tolerations"] = json!(tolerations);
    }
    if let Some(affinity) = affinity(traits) {
        spec["affinity"] = affinity;
    }
    if let Some(name) = &traits.scheduler_name {
        spec["schedulerName"] = json!(name);
    }
    if let Some(name) = traits.priority_class_name.as_ref().filter(|name| !name.is_empty()) {
        spec["priorityClassName"] = json!(name);
    }
    for (key, value) in
        names.expand_json(&Value::Object(traits.extra_pod_config.clone())).as_object().into_iter().flatten()
    {
        spec[camel_case(key)] = value.clone();
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": names.pod_name, "labels": labels, "annotations": annotations},
        "spec": spec,
    })
}

fn affinity(traits: &Traits) -> Option<Value> {
    let mut affinity = Map::new();
    let terms = |value: &Value| list_or_sorted_values(value, false);
    let mut node = Map::new();
    if !terms(&traits.node_affinity_required).is_empty() {
        node.insert(
            "requiredDuringSchedulingIgnoredDuringExecution".into(),
            json!({"nodeSelectorTerms": terms(&traits.node_affinity_required)}),
        );
    }
    if !terms(&traits.node_affinity_preferred).is_empty() {
        node.insert(
            "preferredDuringSchedulingIgnoredDuringExecution".into(),
            json!(terms(&traits.node_affinity_preferred)),
        );
    }
    if !node.is_empty() {
        affinity.insert("nodeAffinity".into(), Value::Object(node));
    }
    for (key, required, preferred) in [
        ("podAffinity", &traits.pod_affinity_required, &traits.pod_affinity_preferred),
        ("podAntiAffinity", &traits.pod_anti_affinity_required, &traits.pod_anti_affinity_preferred),
    ] {
        let mut section = Map::new();
        if !terms(required).is_empty() {
            section.insert("requiredDuringSchedulingIgnoredDuringExecution".into(), json!(terms(required)));
        }
        if !terms(preferred).is_empty() {
            section.insert("preferredDuringSchedulingIgnoredDuringExecution".into(), json!(terms(preferred)));
        }
        if !section.is_empty() {
            affinity.insert(key.into(), Value::Object(section));
        }
    }
    (!affinity.is_empty()).then_some(Value::Object(affinity))
}

/// `get_pvc_manifest`: the home claim. It has no owner, so it outlives the pod.
pub(crate) fn make_pvc(traits: &Traits, names: &NameFields, hub_instance: &str) -> Value {
    let mut labels = common_labels(traits, names, &traits.storage_extra_labels);
    labels.insert("app.kubernetes.io/component".into(), json!(traits.component_label));
    // KubeSpawner kept the old value for the claim's `component` label.
    labels.insert("component".into(), json!("singleuser-storage"));
    let mut annotations = common_annotations(names, hub_instance);
    let mut spec = json!({
        "accessModes": traits.storage_access_modes,
        "resources": {"requests": {"storage": traits.storage_capacity.clone().unwrap_or_else(|| "10Gi".into())}},
    });
    if let Some(class) = &traits.storage_class {
        annotations.insert("volume.beta.kubernetes.io/storage-class".into(), json!(class));
        spec["storageClassName"] = json!(class);
    }
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": names.pvc_name, "labels": labels, "annotations": annotations},
        "spec": spec,
    })
}

/// The Service in front of one server's pod (`get_service_manifest`, `objects.make_service`), with
/// `services_enabled`: a ClusterIP on the server's port selecting the pod by its labels, owned by the pod so that
/// the cluster removes it with the pod.
pub(crate) fn make_service(
    traits: &Traits,
    names: &NameFields,
    hub_instance: &str,
    pod_labels: &Map<String, Value>,
    pod_uid: &str,
) -> Value {
    let labels = common_labels(traits, names, &traits.extra_labels);
    let mut annotations = Map::new();
    for (key, value) in &traits.extra_annotations {
        annotations.insert(names.expand(key), json!(names.expand(value)));
    }
    annotations.extend(common_annotations(names, hub_instance));
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": names.pod_name,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "Pod",
                "name": names.pod_name,
                "uid": pod_uid,
                "blockOwnerDeletion": true,
                "controller": false,
            }],
        },
        "spec": {
            "type": "ClusterIP",
            "ports": [{"name": "http", "port": traits.port, "targetPort": traits.port}],
            "selector": pod_labels,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_come_first() {
        let mut env = BTreeMap::new();
        env.insert("A".into(), json!({"name": "A", "value": "$(Z)/bin"}));
        env.insert("Z".into(), json!({"name": "Z", "value": "/opt"}));
        env.insert("M".into(), json!({"name": "M", "value": "m"}));
        let names: Vec<String> =
            ordered_env(env).iter().map(|variable| variable["name"].as_str().unwrap().to_owned()).collect();
        assert_eq!(names, ["M", "Z", "A"]);
    }

    #[test]
    fn python_formatting() {
        assert_eq!(python_float(2.0), "2.0");
        assert_eq!(python_float(0.05), "0.05");
        assert_eq!(cpu_quantity(1.0), "1");
        assert_eq!(camel_case("termination_grace_period_seconds"), "terminationGracePeriodSeconds");
    }
}
