//! Admission the way the real API server does it, in layers: decode into the k8s-openapi type (wrong types and
//! missing required fields are a 400), compare the re-encoded object with the input (a key that did not survive is
//! an unknown field: a 400 under strict field validation), then the semantic rules the OpenAPI schema cannot
//! express (names, enums, ports, quantities, volume references: a 422 with causes), then the server's defaults.

use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, PersistentVolumeClaim, Pod, Secret, Service};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::resources::Resource;
use super::status::{Cause, Status};

/// Decodes, checks and defaults an object sent by a client; returns the object as the server stores it.
pub(crate) fn admit(resource: Resource, input: &Value, strict: bool) -> Result<Value, Status> {
    let normalised = match resource {
        Resource::Pods => round_trip::<Pod>(resource, input)?,
        Resource::PersistentVolumeClaims => round_trip::<PersistentVolumeClaim>(resource, input)?,
        Resource::Services => round_trip::<Service>(resource, input)?,
        Resource::Events => round_trip::<Event>(resource, input)?,
        Resource::Secrets => round_trip::<Secret>(resource, input)?,
        Resource::ConfigMaps => round_trip::<ConfigMap>(resource, input)?,
        Resource::Namespaces => round_trip::<Namespace>(resource, input)?,
    };
    let mut unknown = Vec::new();
    unknown_fields(input, &normalised, "", &mut unknown);
    unknown.retain(|path| path != "apiVersion" && path != "kind");
    if strict && !unknown.is_empty() {
        let list: Vec<String> = unknown.iter().map(|path| format!("unknown field \"{path}\"")).collect();
        return Err(Status::bad_request(format!("strict decoding error: {}", list.join(", "))));
    }
    let mut object = normalised;
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut causes = Vec::new();
    check_metadata(resource, &object, &mut causes);
    match resource {
        Resource::Pods => check_pod(&object, &mut causes),
        Resource::PersistentVolumeClaims => check_pvc(&object, &mut causes),
        Resource::Services => check_service(&object, &mut causes),
        _ => {}
    }
    if !causes.is_empty() {
        return Err(Status::invalid(resource, &name, causes));
    }
    apply_defaults(resource, &mut object);
    Ok(object)
}

fn round_trip<T: DeserializeOwned + Serialize>(resource: Resource, input: &Value) -> Result<Value, Status> {
    let typed: T = serde_json::from_value(input.clone()).map_err(|error| {
        Status::bad_request(format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: {error}",
            kind = resource.kind()
        ))
    })?;
    let mut value = serde_json::to_value(&typed).expect("k8s-openapi types serialise");
    if let Some(object) = value.as_object_mut() {
        object.insert("apiVersion".into(), json!("v1"));
        object.insert("kind".into(), json!(resource.kind()));
    }
    Ok(value)
}

/// Paths of keys in `input` that the typed round trip dropped. Nulls count as absent, as in the server's decoder.
fn unknown_fields(input: &Value, output: &Value, path: &str, found: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(input), Value::Object(output)) => {
            for (key, value) in input {
                if value.is_null() {
                    continue;
                }
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match output.get(key) {
                    Some(kept) => unknown_fields(value, kept, &child, found),
                    None => found.push(child),
                }
            }
        }
        (Value::Array(input), Value::Array(output)) => {
            for (index, (item, kept)) in input.iter().zip(output).enumerate() {
                unknown_fields(item, kept, &format!("{path}[{index}]"), found);
            }
        }
        _ => {}
    }
}

/// RFC 1123 label: lower-case alphanumerics and `-`, starting and ending alphanumeric, at most 63 characters.
pub(crate) fn is_dns1123_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns1123_label)
}

/// A label value: empty, or at most 63 characters of alphanumerics, `-`, `_` and `.`, alphanumeric at both ends.
fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
            && value.as_bytes()[0].is_ascii_alphanumeric()
            && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric())
}

/// A qualified name (label and annotation keys): an optional DNS subdomain prefix and `/`, then a name part.
fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(|prefix| !prefix.is_empty() && is_dns1123_subdomain(prefix))
        && !name.is_empty()
        && name.len() <= 63
        && is_label_value(name)
}

fn check_metadata(resource: Resource, object: &Value, causes: &mut Vec<Cause>) {
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let name_ok = match resource {
        // Pods, claims, secrets and config maps take subdomains; services and namespaces only labels.
        Resource::Services | Resource::Namespaces => is_dns1123_label(name),
        Resource::Events => !name.is_empty(),
        _ => is_dns1123_subdomain(name),
    };
    if name.is_empty() {
        causes.push(Cause::required("metadata.name", "name or generateName is required"));
    } else if !name_ok {
        causes.push(Cause::invalid(
            "metadata.name",
            name,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and \
             must start and end with an alphanumeric character",
        ));
    }
    if let Some(labels) = object.pointer("/metadata/labels").and_then(Value::as_object) {
        for (key, value) in labels {
            if !is_qualified_name(key) {
                causes.push(Cause::invalid(
                    "metadata.labels",
                    key,
                    "name part must consist of alphanumeric characters, '-', '_' or '.'",
                ));
            }
            if !value.as_str().is_some_and(is_label_value) {
                let text = value.as_str().unwrap_or_default();
                causes.push(Cause::invalid(
                    &format!("metadata.labels.{key}"),
                    text,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', \
                     and must start and end with an alphanumeric character",
                ));
            }
        }
    }
    if let Some(annotations) = object.pointer("/metadata/annotations").and_then(Value::as_object) {
        for key in annotations.keys() {
            if !is_qualified_name(key) {
                causes.push(Cause::invalid("metadata.annotations", key, "invalid annotation key"));
            }
        }
    }
}

fn check_pod(pod: &Value, causes: &mut Vec<Cause>) {
    let spec = &pod["spec"];
    let volumes: Vec<&str> =
        spec["volumes"].as_array().into_iter().flatten().filter_map(|volume| volume["name"].as_str()).collect();
    for (index, name) in volumes.iter().enumerate() {
        if !is_dns1123_label(name) {
            causes.push(Cause::invalid(&format!("spec.volumes[{index}].name"), name, "must be a DNS-1123 label"));
        }
        if volumes[..index].contains(name) {
            causes.push(Cause::duplicate(&format!("spec.volumes[{index}].name"), name));
        }
    }
    let mut container_names: Vec<String> = Vec::new();
    for list in ["initContainers", "containers"] {
        let containers = spec[list].as_array().cloned().unwrap_or_default();
        if list == "containers" && containers.is_empty() {
            causes.push(Cause::required("spec.containers", "Required value"));
        }
        for (index, container) in containers.iter().enumerate() {
            let field = format!("spec.{list}[{index}]");
            let name = container["name"].as_str().unwrap_or_default();
            if !is_dns1123_label(name) {
                causes.push(Cause::invalid(&format!("{field}.name"), name, "must be a DNS-1123 label"));
            }
            if container_names.iter().any(|seen| seen == name) {
                causes.push(Cause::duplicate(&format!("{field}.name"), name));
            }
            container_names.push(name.to_owned());
            if container["image"].as_str().is_none_or(|image| image.trim().is_empty()) {
                causes.push(Cause::required(&format!("{field}.image"), "Required value"));
            }
            if let Some(policy) = container["imagePullPolicy"].as_str()
                && !["Always", "IfNotPresent", "Never"].contains(&policy)
            {
                causes.push(Cause::not_supported(
                    &format!("{field}.imagePullPolicy"),
                    policy,
                    &["Always", "IfNotPresent", "Never"],
                ));
            }
            for (port_index, port) in container["ports"].as_array().into_iter().flatten().enumerate() {
                let port_field = format!("{field}.ports[{port_index}]");
                let number = port["containerPort"].as_i64().unwrap_or(0);
                if !(1..=65535).contains(&number) {
                    causes.push(Cause::invalid(
                        &format!("{port_field}.containerPort"),
                        &number.to_string(),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
                if let Some(name) = port["name"].as_str() {
                    let valid = name.len() <= 15
                        && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
                        && name.bytes().any(|byte| byte.is_ascii_lowercase())
                        && !name.starts_with('-')
                        && !name.ends_with('-')
                        && !name.contains("--");
                    if !valid {
                        causes.push(Cause::invalid(
                            &format!("{port_field}.name"),
                            name,
                            "must be no more than 15 characters, lower case alphanumeric and '-', with a letter",
                        ));
                    }
                }
            }
            for (mount_index, mount) in container["volumeMounts"].as_array().into_iter().flatten().enumerate() {
                let mount_name = mount["name"].as_str().unwrap_or_default();
                if !volumes.contains(&mount_name) {
                    causes.push(Cause::not_found(&format!("{field}.volumeMounts[{mount_index}].name"), mount_name));
                }
            }
            for kind in ["limits", "requests"] {
                for (resource, quantity) in container["resources"][kind].as_object().into_iter().flatten() {
                    let text = quantity.as_str().unwrap_or_default();
                    if parse_quantity(text).is_none() {
                        causes.push(Cause::invalid(
                            &format!("{field}.resources.{kind}[{resource}]"),
                            text,
                            "must match the regex (\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$",
                        ));
                    }
                }
            }
            for (env_index, variable) in container["env"].as_array().into_iter().flatten().enumerate() {
                let name = variable["name"].as_str().unwrap_or_default();
                if name.is_empty() || name.contains('=') {
                    causes.push(Cause::invalid(
                        &format!("{field}.env[{env_index}].name"),
                        name,
                        "a valid environment variable name must consist only of printable ASCII characters other \
                         than '='",
                    ));
                }
            }
        }
    }
    if let Some(policy) = spec["restartPolicy"].as_str()
        && !["Always", "OnFailure", "Never"].contains(&policy)
    {
        causes.push(Cause::not_supported("spec.restartPolicy", policy, &["Always", "OnFailure", "Never"]));
    }
}

fn check_pvc(claim: &Value, causes: &mut Vec<Cause>) {
    let spec = &claim["spec"];
    let modes = spec["accessModes"].as_array().cloned().unwrap_or_default();
    if modes.is_empty() {
        causes.push(Cause::required("spec.accessModes", "at least 1 access mode is required"));
    }
    const MODES: [&str; 4] = ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"];
    for mode in modes.iter().filter_map(Value::as_str) {
        if !MODES.contains(&mode) {
            causes.push(Cause::not_supported("spec.accessModes", mode, &MODES));
        }
    }
    match spec.pointer("/resources/requests/storage").and_then(Value::as_str) {
        None => causes.push(Cause::required("spec.resources[storage]", "Required value")),
        Some(text) if parse_quantity(text).is_none() => {
            causes.push(Cause::invalid("spec.resources[storage]", text, "must be a quantity"))
        }
        Some(_) => {}
    }
}

fn check_service(service: &Value, causes: &mut Vec<Cause>) {
    let ports = service.pointer("/spec/ports").and_then(Value::as_array).cloned().unwrap_or_default();
    if ports.is_empty() {
        causes.push(Cause::required("spec.ports", "Required value"));
    }
}

/// A Kubernetes quantity's value, or `None` when the text is not one.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let suffixes: [(&str, f64); 16] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("", 1.0),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = text.strip_suffix(suffix) {
            if number.is_empty()
                || !number.bytes().all(|byte| byte.is_ascii_digit() || matches!(byte, b'.' | b'+' | b'-' | b'e' | b'E'))
            {
                continue;
            }
            return number.parse::<f64>().ok().map(|value| value * factor);
        }
    }
    None
}

/// The API server's defaulting for the fields our clients leave out.
fn apply_defaults(resource: Resource, object: &mut Value) {
    let set_default = |target: &mut Value, key: &str, value: Value| {
        if let Some(map) = target.as_object_mut()
            && map.get(key).is_none_or(Value::is_null)
        {
            map.insert(key.to_owned(), value);
        }
    };
    match resource {
        Resource::Pods => {
            let spec = &mut object["spec"];
            set_default(spec, "restartPolicy", json!("Always"));
            set_default(spec, "dnsPolicy", json!("ClusterFirst"));
            set_default(spec, "terminationGracePeriodSeconds", json!(30));
            set_default(spec, "schedulerName", json!("default-scheduler"));
            set_default(spec, "securityContext", json!({}));
            for list in ["initContainers", "containers"] {
                // `get_mut`, not indexing: indexing a missing key would store a null.
                for container in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
                    let image = container["image"].as_str().unwrap_or_default().to_owned();
                    let tag = image.rsplit('/').next().unwrap_or_default();
                    let latest = !tag.contains(':') || tag.ends_with(":latest");
                    let policy = if latest && !image.contains('@') { "Always" } else { "IfNotPresent" };
                    set_default(container, "imagePullPolicy", json!(policy));
                    set_default(container, "terminationMessagePath", json!("/dev/termination-log"));
                    set_default(container, "terminationMessagePolicy", json!("File"));
                    for port in container.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                        set_default(port, "protocol", json!("TCP"));
                    }
                }
            }
            set_default(object, "status", json!({}));
            set_default(&mut object["status"], "phase", json!("Pending"));
            set_default(&mut object["status"], "qosClass", json!("Burstable"));
        }
        Resource::PersistentVolumeClaims => {
            set_default(&mut object["spec"], "volumeMode", json!("Filesystem"));
            set_default(object, "status", json!({}));
            set_default(&mut object["status"], "phase", json!("Pending"));
        }
        Resource::Services => {
            let spec = &mut object["spec"];
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            for port in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                set_default(port, "protocol", json!("TCP"));
                let target = port["port"].clone();
                set_default(port, "targetPort", target);
            }
        }
        Resource::Secrets => set_default(object, "type", json!("Opaque")),
        Resource::Namespaces => {
            set_default(object, "spec", json!({"finalizers": ["kubernetes"]}));
            set_default(object, "status", json!({"phase": "Active"}));
        }
        Resource::Events | Resource::ConfigMaps => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(container: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "jupyter-alice"}, "spec": {"containers": [container]}})
    }

    #[test]
    fn unknown_fields_are_refused_under_strict_validation() {
        let input = pod(json!({"name": "notebook", "image": "x:1", "imagePullPolicies": "Always"}));
        let error = admit(Resource::Pods, &input, true).unwrap_err();
        assert_eq!(error.code, 400);
        assert!(error.message.contains("unknown field \"spec.containers[0].imagePullPolicies\""), "{}", error.message);
        assert!(admit(Resource::Pods, &input, false).is_ok());
    }

    #[test]
    fn semantic_rules_give_422_with_causes() {
        let input = pod(json!({"name": "Bad_Name", "image": "", "imagePullPolicy": "Sometimes",
            "ports": [{"name": "a-very-long-port-name", "containerPort": 70000}],
            "volumeMounts": [{"name": "home", "mountPath": "/home"}],
            "resources": {"limits": {"memory": "lots"}}}));
        let error = admit(Resource::Pods, &input, true).unwrap_err();
        assert_eq!(error.code, 422);
        let fields: Vec<&str> = error.causes.iter().map(|cause| cause.field.as_str()).collect();
        for field in [
            "spec.containers[0].name",
            "spec.containers[0].image",
            "spec.containers[0].imagePullPolicy",
            "spec.containers[0].ports[0].containerPort",
            "spec.containers[0].ports[0].name",
            "spec.containers[0].volumeMounts[0].name",
            "spec.containers[0].resources.limits[memory]",
        ] {
            assert!(fields.contains(&field), "{field} missing from {fields:?}");
        }
    }

    #[test]
    fn wrong_types_are_400_and_defaults_are_applied() {
        let error = admit(Resource::Pods, &pod(json!({"name": "notebook", "image": 5})), true).unwrap_err();
        assert_eq!(error.code, 400);
        let stored = admit(Resource::Pods, &pod(json!({"name": "notebook", "image": "x:latest"})), true).unwrap();
        assert_eq!(stored["spec"]["restartPolicy"], "Always");
        assert_eq!(stored["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(stored["status"]["phase"], "Pending");
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("1Gi"), Some(1073741824.0));
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("1073741824"), Some(1073741824.0));
        assert_eq!(parse_quantity("lots"), None);
    }
}
