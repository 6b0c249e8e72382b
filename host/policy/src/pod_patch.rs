//! Applies a pod policy's JSON Patch (RFC 6902) after checking every operation against the policy's allowed
//! paths, then parses the result as a Kubernetes Pod. Only `add`, `remove` and `replace` exist here: `move` and
//! `copy` would read from paths outside the allow-list, and `test` buys a policy nothing it cannot check itself.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{IntoDeserializer, Visitor};
use serde_json::value::RawValue;

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

/// One operation as the policy wrote it. Everything borrows from the patch text: `op` and `path` (copied only
/// when they contain an escape) and `value`, which stays JSON text until the patched Pod is parsed. Unknown
/// members such as `from` are ignored, since the ops that use them are refused.
#[derive(Deserialize)]
struct Operation<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(borrow)]
    path: Cow<'a, str>,
    /// `Some` whenever the member is present, `null` included (an `add` of `null` is a valid operation).
    #[serde(default, borrow, deserialize_with = "present")]
    value: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// Applies `patch_json` to `pod` and parses the result. Every error is the policy's fault (invalid output).
///
/// The Pod is not copied: the patch is applied to an overlay ([`Node`]) that borrows every untouched part of
/// `pod` and keeps the patch's values as their JSON text, and the typed `Pod` is parsed straight from that
/// overlay. Only the objects and arrays on the path to a patched member are opened up, one level at a time.
/// The `Pod` comes back boxed: it is a few kilobytes, and the caller passes it on through several layers.
pub fn apply_pod_patch(
    pod: &serde_json::Value,
    patch_json: &str,
    allowed_paths: &[String],
) -> Result<Box<Pod>, String> {
    // Parsed once, straight into operations: no JSON value per operation.
    let patch: Vec<Operation<'_>> = serde_json::from_str(patch_json)
        .map_err(|error| format!("the patch is not a JSON array of operations: {error}"))?;
    let invalid_pod = |error: serde_json::Error| format!("the patched Pod is not a valid Pod: {error}");
    if patch.is_empty() {
        // Nothing to apply: parse the Pod in place.
        return Box::<Pod>::deserialize(pod).map_err(invalid_pod);
    }
    let mut document = Node::Base(pod);
    for (index, operation) in patch.into_iter().enumerate() {
        let applied = if allowed_paths.is_empty() {
            apply_operation(&mut document, operation, DEFAULT_ALLOWED_PATHS)
        } else {
            apply_operation(&mut document, operation, allowed_paths)
        };
        applied.map_err(|message| format!("patch operation {index}: {message}"))?;
    }
    Box::<Pod>::deserialize(&document).map_err(invalid_pod)
}

fn apply_operation<'a>(
    document: &mut Node<'a>,
    operation: Operation<'a>,
    allowed_paths: &[impl AsRef<str>],
) -> Result<(), String> {
    let Operation { op, path, value } = operation;
    let segments = parse_pointer(&path)?;
    if !allowed_paths.iter().any(|allowed| path_is_under(&path, allowed.as_ref())) {
        return Err(format!("path {path:?} is not under the allowed paths"));
    }
    let (last, parent_segments) = segments.split_last().ok_or("the root cannot be patched")?;
    let parent = resolve(document, parent_segments).ok_or_else(|| format!("{path:?}: the parent does not exist"))?;
    match op.as_ref() {
        "add" | "replace" => {
            let add = op == "add";
            let value = Node::Raw(value.ok_or("no \"value\"")?, path.clone());
            match parent {
                Node::Object(members) => {
                    let existing = members.iter_mut().find(|(key, _)| key.as_ref() == last.as_ref());
                    match existing {
                        Some((_, member)) => *member = value,
                        None if add => members.push((Cow::Owned(last.clone().into_owned()), value)),
                        None => return Err(format!("{path:?} does not exist")),
                    }
                }
                Node::Array(items) => {
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
            Node::Object(members) => {
                let position = members
                    .iter()
                    .position(|(key, _)| key.as_ref() == last.as_ref())
                    .ok_or_else(|| format!("{path:?} does not exist"))?;
                members.remove(position);
            }
            Node::Array(items) => {
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

/// The unescaped segments of a JSON Pointer; a segment is copied only when it holds an escape. A `~` must
/// start `~0` or `~1` (RFC 6901), which keeps the escaped form of a key unique, so [`path_is_under`] can
/// compare pointers as written.
fn parse_pointer(path: &str) -> Result<Vec<Cow<'_, str>>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("path {path:?} does not start with /"));
    };
    rest.split('/')
        .map(|segment| match segment.contains('~') {
            false => Ok(Cow::Borrowed(segment)),
            true if segment.split('~').skip(1).all(|after| after.starts_with(['0', '1'])) => {
                Ok(Cow::Owned(segment.replace("~1", "/").replace("~0", "~")))
            }
            true => Err(format!("path {path:?}: `~` must be followed by 0 or 1")),
        })
        .collect()
}

/// Whether the pointer lies at or under the allowed prefix; `*` in the prefix matches any one segment. Both
/// are compared as written, segment by segment, without unescaping: escapes are unique (see
/// [`parse_pointer`]). A byte loop, because this runs for every allowed path of every operation and most
/// comparisons end at the first segment.
fn path_is_under(path: &str, allowed: &str) -> bool {
    let (path, allowed) = (path.as_bytes(), allowed.as_bytes());
    if path.first() != Some(&b'/') || allowed.first() != Some(&b'/') {
        return false;
    }
    let segment_end = |text: &[u8], start: usize| {
        text[start..].iter().position(|&byte| byte == b'/').map_or(text.len(), |offset| start + offset)
    };
    // `at_path` and `at_allowed` are each at the `/` that starts the next segment.
    let (mut at_path, mut at_allowed) = (0, 0);
    while at_allowed < allowed.len() {
        if at_path >= path.len() {
            return false;
        }
        let (path_end, allowed_end) = (segment_end(path, at_path + 1), segment_end(allowed, at_allowed + 1));
        let pattern = &allowed[at_allowed + 1..allowed_end];
        if pattern != b"*" && pattern != &path[at_path + 1..path_end] {
            return false;
        }
        (at_path, at_allowed) = (path_end, allowed_end);
    }
    true
}

/// The node at `segments`, with every object and array on the way opened up into [`Node::Object`] or
/// [`Node::Array`] so the caller can change it; `None` when something on the way does not exist.
fn resolve<'n, 'a>(document: &'n mut Node<'a>, segments: &[Cow<'_, str>]) -> Option<&'n mut Node<'a>> {
    let mut current = document;
    current.open();
    for segment in segments {
        current = match current {
            Node::Object(members) => &mut members.iter_mut().find(|(key, _)| key.as_ref() == segment.as_ref())?.1,
            Node::Array(items) => items.get_mut(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
        current.open();
    }
    Some(current)
}

/// The Pod while it is being patched: untouched parts borrowed from the hub's Pod, patch values as the policy's
/// JSON text, and, on the paths the patch changes, objects and arrays whose members are nodes again.
enum Node<'a> {
    /// Part of the hub's Pod, unchanged.
    Base(&'a serde_json::Value),
    /// A value from the patch, as the policy wrote it, and the path of the operation that put it there.
    Raw(&'a RawValue, Cow<'a, str>),
    /// A patch value that a later operation reached into, parsed, and the path it was added at.
    Owned(serde_json::Value, Cow<'a, str>),
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
    Array(Vec<Node<'a>>),
}

impl<'a> Node<'a> {
    /// Turns an object or array into its editable form, one level deep; scalars stay as they are.
    fn open(&mut self) {
        if let Node::Raw(raw, path) = self {
            // Only when an operation reaches into a value an earlier one added; it parses because the patch did.
            let value = serde_json::from_str(raw.get()).unwrap_or(serde_json::Value::Null);
            *self = Node::Owned(value, std::mem::take(path));
        }
        let opened = match self {
            Node::Base(serde_json::Value::Object(map)) => {
                Node::Object(map.iter().map(|(key, value)| (Cow::Borrowed(key.as_str()), Node::Base(value))).collect())
            }
            Node::Base(serde_json::Value::Array(items)) => Node::Array(items.iter().map(Node::Base).collect()),
            Node::Owned(serde_json::Value::Object(map), path) => Node::Object(
                std::mem::take(map)
                    .into_iter()
                    .map(|(key, value)| (Cow::Owned(key), Node::Owned(value, path.clone())))
                    .collect(),
            ),
            Node::Owned(serde_json::Value::Array(items), path) => {
                Node::Array(std::mem::take(items).into_iter().map(|item| Node::Owned(item, path.clone())).collect())
            }
            _ => return,
        };
        *self = opened;
    }

    /// The path of an operation whose value is in this node, if any.
    fn patched_path(&self) -> Option<&str> {
        match self {
            Node::Base(_) => None,
            Node::Raw(_, path) | Node::Owned(_, path) => Some(path),
            Node::Object(members) => members.iter().find_map(|(_, node)| node.patched_path()),
            Node::Array(items) => items.iter().find_map(Node::patched_path),
        }
    }
}

/// Parses a value the policy wrote, refusing members the Kubernetes type does not have. k8s-openapi skips
/// unknown members, so without this a patch could add one under an allowed path and have it vanish from the
/// Pod without a word. Only patch values are checked: the rest is the hub's own Pod.
fn parse_strictly<'de, D, T>(
    deserializer: D,
    path: &str,
    parse: impl FnOnce(serde_ignored::Deserializer<'_, '_, D, IgnoredMembers<'_>>) -> Result<T, serde_json::Error>,
) -> Result<T, serde_json::Error>
where
    D: serde::Deserializer<'de, Error = serde_json::Error>,
{
    let mut unknown: Option<String> = None;
    let mut record_first = |member: serde_ignored::Path<'_>| {
        unknown.get_or_insert_with(|| member.to_string());
    };
    let mut record: IgnoredMembers<'_> = &mut record_first;
    let parsed = parse(serde_ignored::Deserializer::new(deserializer, &mut record));
    match unknown {
        Some(member) => Err(unknown_member(path, Some(&member))),
        None => parsed,
    }
}

type IgnoredMembers<'r> = &'r mut dyn FnMut(serde_ignored::Path<'_>);

fn unknown_member(path: &str, member: Option<&str>) -> serde_json::Error {
    match member {
        Some(member) => serde::de::Error::custom(format_args!(
            "the value at {path:?} has a member a Pod does not have: `{member}` (Kubernetes would drop it)"
        )),
        None => serde::de::Error::custom(format_args!("{path:?} is not part of a Pod (Kubernetes would drop it)")),
    }
}

/// Parsing from a node: the borrowed and parsed values go to serde_json's own deserializer for `&Value`, patch
/// text to its text deserializer (both through [`parse_strictly`] when the patch wrote them), and opened objects
/// and arrays are walked member by member, so the typed Pod comes out exactly as if the patched document had
/// been built as one `serde_json::Value`. The trailing arms say what opened objects and arrays do for `$method`.
macro_rules! on_node {
    ($node:expr, $method:ident($($argument:expr),*), $visitor:expr, $($opened:pat => $then:expr),+ $(,)?) => {
        match $node {
            Node::Base(value) => value.$method($($argument,)* $visitor),
            Node::Owned(value, path) => parse_strictly(value, path, |strict| strict.$method($($argument,)* $visitor)),
            Node::Raw(raw, path) => parse_strictly(&mut serde_json::Deserializer::from_str(raw.get()), path, |strict| {
                strict.$method($($argument,)* $visitor)
            }),
            $($opened => $then,)+
        }
    };
}

/// The `Deserializer` methods that treat an opened object or array as `deserialize_any` does.
macro_rules! delegate {
    ($($method:ident($($argument:ident: $type:ty),*)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($argument: $type,)* visitor: V) -> Result<V::Value, serde_json::Error> {
                on_node!(self, $method($($argument),*), visitor,
                    Node::Object(_) | Node::Array(_) => self.deserialize_any(visitor))
            }
        )*
    };
}

impl<'de> serde::Deserializer<'de> for &'de Node<'_> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, serde_json::Error> {
        on_node!(self, deserialize_any(), visitor,
            Node::Object(members) => {
                let mut map = MapDeserializer::new(members.iter().map(|(key, value)| (key.as_ref(), value)));
                let parsed = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(parsed)
            },
            Node::Array(items) => {
                let mut seq = SeqDeserializer::new(items.iter());
                let parsed = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(parsed)
            },
        )
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, serde_json::Error> {
        on_node!(self, deserialize_option(), visitor, Node::Object(_) | Node::Array(_) => visitor.visit_some(self))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        on_node!(self, deserialize_newtype_struct(name), visitor,
            Node::Object(_) | Node::Array(_) => visitor.visit_newtype_struct(self))
    }

    delegate! {
        deserialize_bool(), deserialize_i8(), deserialize_i16(), deserialize_i32(), deserialize_i64(),
        deserialize_i128(), deserialize_u8(), deserialize_u16(), deserialize_u32(), deserialize_u64(),
        deserialize_u128(), deserialize_f32(), deserialize_f64(), deserialize_char(), deserialize_str(),
        deserialize_string(), deserialize_bytes(), deserialize_byte_buf(), deserialize_unit(),
        deserialize_unit_struct(name: &'static str), deserialize_seq(), deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize), deserialize_map(),
        deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]), deserialize_identifier(),
    }

    /// What the Pod's types call for members they do not have: fine for the hub's own Pod, an error for
    /// anything the patch put there.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, serde_json::Error> {
        match self.patched_path() {
            Some(path) => Err(unknown_member(path, None)),
            None => visitor.visit_unit(),
        }
    }
}

impl<'de> IntoDeserializer<'de, serde_json::Error> for &'de Node<'_> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
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
    fn the_overlay_gives_the_pod_a_patched_json_document_would() {
        let pod = serde_json::json!({"metadata": {"name": "jupyter-alice", "labels": {"app": "hub", "old": "x"}},
            "spec": {"nodeSelector": {"pool": "cpu"}, "tolerations": [{"key": "a", "operator": "Exists"}],
                "containers": [{"name": "notebook", "image": "base", "resources": {"limits": {"memory": "2G"}}},
                    {"name": "sidecar", "image": "side"}]}});
        let patch = r#"[
            {"op": "replace", "path": "/spec/nodeSelector", "value": {"pool": "gpu"}},
            {"op": "add", "path": "/spec/tolerations/0", "value": {"key": "b", "effect": "NoSchedule"}},
            {"op": "remove", "path": "/spec/tolerations/1"},
            {"op": "add", "path": "/spec/containers/1/resources", "value": {"limits": {"cpu": "1"}}},
            {"op": "add", "path": "/spec/containers/1/resources/requests", "value": {"cpu": "500m"}},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "gpu"},
            {"op": "remove", "path": "/metadata/labels/old"},
            {"op": "add", "path": "/metadata/labels/example.com~1gpu", "value": "yes"}
        ]"#;
        let expected: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "jupyter-alice", "labels": {"app": "hub", "example.com/gpu": "yes"}},
            "spec": {"nodeSelector": {"pool": "gpu"}, "tolerations": [{"key": "b", "effect": "NoSchedule"}],
                "containers": [{"name": "notebook", "image": "gpu", "resources": {"limits": {"memory": "2G"}}},
                    {"name": "sidecar", "image": "side", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "500m"}}}]}}))
        .unwrap();
        assert_eq!(*apply_pod_patch(&pod, patch, &[]).unwrap(), expected);
        let missing = r#"[{"op": "replace", "path": "/metadata/labels/none", "value": "x"}]"#;
        assert!(apply_pod_patch(&pod, missing, &[]).unwrap_err().contains("does not exist"));
        let no_parent = r#"[{"op": "add", "path": "/spec/containers/5/image", "value": "x"}]"#;
        assert!(apply_pod_patch(&pod, no_parent, &[]).unwrap_err().contains("parent does not exist"));
        let into_scalar = r#"[{"op": "add", "path": "/spec/containers/0/image/x", "value": "x"}]"#;
        assert!(apply_pod_patch(&pod, into_scalar, &["/spec".into()]).unwrap_err().contains("not an object or array"));
        let bad_index = r#"[{"op": "add", "path": "/spec/tolerations/9", "value": {}}]"#;
        assert!(apply_pod_patch(&pod, bad_index, &[]).unwrap_err().contains("index out of range"));
    }

    #[test]
    fn a_patch_that_breaks_the_pod_schema_is_refused() {
        let broken = r#"[{"op": "add", "path": "/spec/nodeSelector", "value": ["not", "a", "map"]}]"#;
        assert!(apply_pod_patch(&pod(), broken, &[]).unwrap_err().contains("not a valid Pod"));
    }

    #[test]
    fn members_a_pod_does_not_have_are_refused_rather_than_dropped() {
        let refused = |patch: &str, expected: &[&str]| {
            let error = apply_pod_patch(&pod(), patch, &["/spec".to_owned()]).unwrap_err();
            for text in expected {
                assert!(error.contains(text), "{text:?} missing from: {error}");
            }
        };
        // A misspelt member inside a value the policy wrote.
        refused(
            r#"[{"op": "add", "path": "/spec/tolerations", "value": [{"key": "gpu", "operater": "Exists"}]}]"#,
            &["/spec/tolerations", "operater", "Kubernetes would drop it"],
        );
        // A member the parent's type does not have, added by its own operation.
        refused(
            r#"[{"op": "add", "path": "/spec/containers/0/imagePolicy", "value": "Always"}]"#,
            &["/spec/containers/0/imagePolicy", "not part of a Pod"],
        );
        // One added into a value an earlier operation wrote.
        refused(
            r#"[{"op": "add", "path": "/spec/containers/0/resources", "value": {"limits": {"cpu": "1"}}},
                {"op": "add", "path": "/spec/containers/0/resources/bogus", "value": 1}]"#,
            &["bogus"],
        );
        // Members the hub's own Pod carries are not the policy's doing, even next to a patched one.
        let pod_with_extra = serde_json::json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}], "hubExtra": true}});
        let patch = r#"[{"op": "add", "path": "/spec/nodeSelector", "value": {"gpu": "a100"}}]"#;
        assert!(apply_pod_patch(&pod_with_extra, patch, &[]).is_ok());
        // Maps take any key.
        let labels = r#"[{"op": "add", "path": "/metadata/labels", "value": {"anything": "goes"}}]"#;
        assert!(apply_pod_patch(&pod(), labels, &[]).is_ok());
    }

    #[test]
    fn allowed_paths_match_whole_segments_and_stars_match_one() {
        assert!(path_is_under("/spec/nodeSelector", "/spec/nodeSelector"));
        assert!(path_is_under("/spec/nodeSelector/gpu", "/spec/nodeSelector"));
        assert!(!path_is_under("/spec/nodeSelectorX", "/spec/nodeSelector"));
        assert!(!path_is_under("/spec", "/spec/nodeSelector"));
        assert!(path_is_under("/spec/containers/3/image", "/spec/containers/*/image"));
        assert!(!path_is_under("/spec/containers/3", "/spec/containers/*/image"));
        assert!(!path_is_under("/spec/initContainers/0/image", "/spec/containers/*/image"));
        assert!(path_is_under("/metadata/labels/a~1b", "/metadata/labels/a~1b"));
        assert!(!path_is_under("/metadata/labels", "metadata/labels"));
        assert!(!path_is_under("", "/metadata"));
    }

    #[test]
    fn a_tilde_must_start_an_escape() {
        let bad = r#"[{"op": "add", "path": "/metadata/labels/a~2b", "value": "x"}]"#;
        assert!(apply_pod_patch(&pod(), bad, &[]).unwrap_err().contains("followed by 0 or 1"));
        // The allow-list compares pointers as written, so an escaped prefix still matches its own keys.
        let allowed = ["/metadata/annotations/example.com~1team".to_owned()];
        let escaped = r#"[{"op": "add", "path": "/metadata/annotations/example.com~1team", "value": "x"}]"#;
        let pod = serde_json::json!({"metadata": {"annotations": {}}});
        assert!(apply_pod_patch(&pod, escaped, &allowed).is_ok());
        let other = r#"[{"op": "add", "path": "/metadata/annotations/example.com~1other", "value": "x"}]"#;
        assert!(apply_pod_patch(&pod, other, &allowed).unwrap_err().contains("not under the allowed paths"));
    }
}
