//! Applies a pod policy's JSON Patch (RFC 6902) after checking every operation against the policy's allowed
//! paths, then parses the result as a Kubernetes Pod. Only `add`, `remove` and `replace` exist here: `move` and
//! `copy` would read from paths outside the allow-list, and `test` buys a policy nothing it cannot check itself.

use k8s_openapi::api::core::v1::Pod;

/// What a pod policy may touch when its file names no `allowed_paths`: scheduling, resources, image,
/// environment, labels and annotations; not volumes, security contexts, service accounts or the Pod's name.
pub const DEFAULT_ALLOWED_PATHS: &[&str] = &[
    "/metadata/labels",
    "/metadata/annotations",
    "/spec/nodeSelector",
    "/spec/tolerations",
    "/spec/affinity",
    "/spec/priorityClassName",
    "/spec/runtimeClassName",
    "/spec/containers/*/resources",
    "/spec/containers/*/image",
    "/spec/containers/*/imagePullPolicy",
    "/spec/containers/*/env",
];

/// Applies `patch_json` to `pod` and parses the result. Every error is the policy's fault (invalid output).
pub fn apply_pod_patch(pod: &serde_json::Value, patch_json: &str, allowed_paths: &[String]) -> Result<Pod, String> {
    let patch: Vec<serde_json::Value> = serde_json::from_str(patch_json)
        .map_err(|error| format!("the patch is not a JSON array of operations: {error}"))?;
    let default_paths: Vec<String>;
    let allowed_paths = if allowed_paths.is_empty() {
        default_paths = DEFAULT_ALLOWED_PATHS.iter().map(|path| (*path).to_owned()).collect();
        &default_paths
    } else {
        allowed_paths
    };
    let mut document = pod.clone();
    for (index, operation) in patch.iter().enumerate() {
        apply_operation(&mut document, operation, allowed_paths)
            .map_err(|message| format!("patch operation {index}: {message}"))?;
    }
    serde_json::from_value::<Pod>(document).map_err(|error| format!("the patched Pod is not a valid Pod: {error}"))
}

fn apply_operation(
    document: &mut serde_json::Value,
    operation: &serde_json::Value,
    allowed_paths: &[String],
) -> Result<(), String> {
    let op = operation.get("op").and_then(|op| op.as_str()).ok_or("no \"op\"")?;
    let path = operation.get("path").and_then(|path| path.as_str()).ok_or("no \"path\"")?;
    let segments = parse_pointer(path)?;
    if !allowed_paths.iter().any(|allowed| path_is_under(&segments, allowed)) {
        return Err(format!("path {path:?} is not under the allowed paths"));
    }
    let (last, parent_segments) = segments.split_last().ok_or("the root cannot be patched")?;
    let parent = resolve(document, parent_segments).ok_or_else(|| format!("{path:?}: the parent does not exist"))?;
    match op {
        "add" | "replace" => {
            let value = operation.get("value").ok_or("no \"value\"")?.clone();
            match parent {
                serde_json::Value::Object(map) => {
                    if op == "replace" && !map.contains_key(last) {
                        return Err(format!("{path:?} does not exist"));
                    }
                    map.insert(last.clone(), value);
                }
                serde_json::Value::Array(items) => {
                    if op == "add" && last == "-" {
                        items.push(value);
                    } else {
                        let index: usize = last.parse().map_err(|_| format!("{path:?}: bad array index"))?;
                        match op {
                            "add" if index <= items.len() => items.insert(index, value),
                            "replace" if index < items.len() => items[index] = value,
                            _ => return Err(format!("{path:?}: index out of range")),
                        }
                    }
                }
                _ => return Err(format!("{path:?}: the parent is not an object or array")),
            }
        }
        "remove" => match parent {
            serde_json::Value::Object(map) => {
                map.remove(last).ok_or_else(|| format!("{path:?} does not exist"))?;
            }
            serde_json::Value::Array(items) => {
                let index: usize = last.parse().map_err(|_| format!("{path:?}: bad array index"))?;
                if index >= items.len() {
                    return Err(format!("{path:?}: index out of range"));
                }
                items.remove(index);
            }
            _ => return Err(format!("{path:?}: the parent is not an object or array")),
        },
        other => return Err(format!("op {other:?} is not allowed (only add, remove, replace)")),
    }
    Ok(())
}

fn parse_pointer(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("path {path:?} does not start with /"));
    };
    Ok(rest.split('/').map(|segment| segment.replace("~1", "/").replace("~0", "~")).collect())
}

/// Whether the pointer lies at or under the allowed prefix; `*` in the prefix matches any one segment.
fn path_is_under(segments: &[String], allowed: &str) -> bool {
    let Ok(allowed_segments) = parse_pointer(allowed) else { return false };
    allowed_segments.len() <= segments.len()
        && !allowed_segments.is_empty()
        && allowed_segments.iter().zip(segments).all(|(allowed, actual)| allowed == "*" || allowed == actual)
}

fn resolve<'a>(document: &'a mut serde_json::Value, segments: &[String]) -> Option<&'a mut serde_json::Value> {
    let mut current = document;
    for segment in segments {
        current = match current {
            serde_json::Value::Object(map) => map.get_mut(segment)?,
            serde_json::Value::Array(items) => items.get_mut(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> serde_json::Value {
        serde_json::json!({"metadata": {"name": "jupyter-alice"}, "spec": {"containers": [{"name": "notebook", "image": "base"}]}})
    }

    #[test]
    fn gpu_patch_under_default_paths_applies() {
        let patch = r#"[
            {"op": "add", "path": "/spec/nodeSelector", "value": {"gpu": "a100"}},
            {"op": "add", "path": "/spec/tolerations", "value": []},
            {"op": "add", "path": "/spec/tolerations/-", "value": {"key": "nvidia.com/gpu", "operator": "Exists"}},
            {"op": "add", "path": "/spec/containers/0/resources", "value": {"limits": {"nvidia.com/gpu": "1"}}}
        ]"#;
        let patched = apply_pod_patch(&pod(), patch, &[]).unwrap();
        let spec = patched.spec.unwrap();
        assert_eq!(spec.node_selector.unwrap()["gpu"], "a100");
        assert_eq!(spec.tolerations.unwrap()[0].key.as_deref(), Some("nvidia.com/gpu"));
    }

    #[test]
    fn paths_outside_the_allow_list_and_other_ops_are_refused() {
        let rename = r#"[{"op": "replace", "path": "/metadata/name", "value": "x"}]"#;
        assert!(apply_pod_patch(&pod(), rename, &[]).unwrap_err().contains("not under the allowed paths"));
        let privileged =
            r#"[{"op": "add", "path": "/spec/containers/0/securityContext", "value": {"privileged": true}}]"#;
        assert!(apply_pod_patch(&pod(), privileged, &[]).is_err());
        assert!(apply_pod_patch(&pod(), privileged, &["/spec/containers/*/securityContext".into()]).is_ok());
        let moved = r#"[{"op": "move", "from": "/spec", "path": "/metadata/labels"}]"#;
        assert!(apply_pod_patch(&pod(), moved, &[]).unwrap_err().contains("not allowed"));
        assert!(apply_pod_patch(&pod(), "{}", &[]).is_err());
    }

    #[test]
    fn a_patch_that_breaks_the_pod_schema_is_refused() {
        let broken = r#"[{"op": "add", "path": "/spec/nodeSelector", "value": ["not", "a", "map"]}]"#;
        assert!(apply_pod_patch(&pod(), broken, &[]).unwrap_err().contains("not a valid Pod"));
    }
}
