//! Applies a pod policy's JSON Patch (RFC 6902) after checking every operation against the policy's allowed
//! paths, then parses the result as a Kubernetes Pod. Only `add`, `remove` and `replace` exist here: `move` and
//! `copy` would read from paths outside the allow-list, and `test` buys a policy nothing it cannot check itself.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

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

/// One operation as the policy wrote it. `op` and `path` borrow from the patch text (they are copied only when
/// they contain an escape); unknown members such as `from` are ignored, since the ops that use them are refused.
#[derive(Deserialize)]
struct Operation<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(borrow)]
    path: Cow<'a, str>,
    /// `Some` whenever the member is present, `null` included (an `add` of `null` is a valid operation).
    #[serde(default, deserialize_with = "present")]
    value: Option<serde_json::Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

/// Applies `patch_json` to `pod` and parses the result. Every error is the policy's fault (invalid output).
pub fn apply_pod_patch(pod: &serde_json::Value, patch_json: &str, allowed_paths: &[String]) -> Result<Pod, String> {
    // Parsed once, straight into operations: no intermediate JSON value per operation.
    let patch: Vec<Operation<'_>> = serde_json::from_str(patch_json)
        .map_err(|error| format!("the patch is not a JSON array of operations: {error}"))?;
    let invalid_pod = |error: serde_json::Error| format!("the patched Pod is not a valid Pod: {error}");
    if patch.is_empty() {
        // Nothing to apply: parse the Pod in place rather than through a copy.
        return Pod::deserialize(pod).map_err(invalid_pod);
    }
    let mut document = pod.clone();
    for (index, operation) in patch.into_iter().enumerate() {
        let applied = if allowed_paths.is_empty() {
            apply_operation(&mut document, operation, DEFAULT_ALLOWED_PATHS)
        } else {
            apply_operation(&mut document, operation, allowed_paths)
        };
        applied.map_err(|message| format!("patch operation {index}: {message}"))?;
    }
    serde_json::from_value::<Pod>(document).map_err(invalid_pod)
}

fn apply_operation(
    document: &mut serde_json::Value,
    operation: Operation<'_>,
    allowed_paths: &[impl AsRef<str>],
) -> Result<(), String> {
    let Operation { op, path, value } = operation;
    let segments = parse_pointer(&path)?;
    if !allowed_paths.iter().any(|allowed| path_is_under(&segments, allowed.as_ref())) {
        return Err(format!("path {path:?} is not under the allowed paths"));
    }
    let (last, parent_segments) = segments.split_last().ok_or("the root cannot be patched")?;
    let parent = resolve(document, parent_segments).ok_or_else(|| format!("{path:?}: the parent does not exist"))?;
    match op.as_ref() {
        "add" | "replace" => {
            let add = op == "add";
            // Moved into the document, not copied.
            let value = value.ok_or("no \"value\"")?;
            match parent {
                serde_json::Value::Object(map) => {
                    if !add && !map.contains_key(last.as_ref()) {
                        return Err(format!("{path:?} does not exist"));
                    }
                    map.insert(last.clone().into_owned(), value);
                }
                serde_json::Value::Array(items) => {
                    if add && last == "-" {
                        items.push(value);
                    } else {
                        let index: usize = last.parse().map_err(|_| format!("{path:?}: bad array index"))?;
                        match add {
                            true if index <= items.len() => items.insert(index, value),
                            false if index < items.len() => items[index] = value,
                            _ => return Err(format!("{path:?}: index out of range")),
                        }
                    }
                }
                _ => return Err(format!("{path:?}: the parent is not an object or array")),
            }
        }
        "remove" => match parent {
            serde_json::Value::Object(map) => {
                map.remove(last.as_ref()).ok_or_else(|| format!("{path:?} does not exist"))?;
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

/// The unescaped segments of a JSON Pointer; a segment is copied only when it holds an escape.
fn parse_pointer(path: &str) -> Result<Vec<Cow<'_, str>>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("path {path:?} does not start with /"));
    };
    Ok(rest.split('/').map(unescape_segment).collect())
}

fn unescape_segment(segment: &str) -> Cow<'_, str> {
    if segment.contains('~') {
        Cow::Owned(segment.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(segment)
    }
}

/// Whether the pointer lies at or under the allowed prefix; `*` in the prefix matches any one segment.
fn path_is_under(segments: &[Cow<'_, str>], allowed: &str) -> bool {
    let Some(rest) = allowed.strip_prefix('/') else { return false };
    let mut actual = segments.iter();
    rest.split('/')
        .map(unescape_segment)
        .all(|allowed| actual.next().is_some_and(|actual| allowed == "*" || allowed == actual.as_ref()))
}

fn resolve<'a>(document: &'a mut serde_json::Value, segments: &[Cow<'_, str>]) -> Option<&'a mut serde_json::Value> {
    let mut current = document;
    for segment in segments {
        current = match current {
            serde_json::Value::Object(map) => map.get_mut(segment.as_ref())?,
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
    fn an_add_of_null_is_an_operation_and_a_missing_value_is_not() {
        let null = r#"[{"op": "add", "path": "/metadata/labels", "value": null}]"#;
        assert!(apply_pod_patch(&pod(), null, &[]).is_ok());
        let missing = r#"[{"op": "add", "path": "/metadata/labels"}]"#;
        assert!(apply_pod_patch(&pod(), missing, &[]).unwrap_err().contains("no \"value\""));
        let escaped = r#"[{"op": "add", "path": "/metadata/labels/example.com~1gpu", "value": "yes"}]"#;
        let labelled = apply_pod_patch(&serde_json::json!({"metadata": {"labels": {}}}), escaped, &[]).unwrap();
        let labels = labelled.metadata.labels.unwrap();
        assert_eq!(labels["example.com/gpu"], "yes");
    }

    #[test]
    fn a_patch_that_breaks_the_pod_schema_is_refused() {
        let broken = r#"[{"op": "add", "path": "/spec/nodeSelector", "value": ["not", "a", "map"]}]"#;
        assert!(apply_pod_patch(&pod(), broken, &[]).unwrap_err().contains("not a valid Pod"));
    }
}
