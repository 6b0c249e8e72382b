//! Policy files: the YAML that binds a component, its settings, limits, failure mode and mode to a hook.

use std::path::{Path, PathBuf};
use std::time::Duration;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde::{Deserialize, Serialize};

use crate::hooks::Hook;

/// One parsed policy file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub hook: Hook,
    /// The component, relative to the policy file's folder.
    pub component: PathBuf,
    #[serde(default)]
    pub mode: PolicyMode,
    #[serde(default)]
    pub failure: FailureMode,
    #[serde(default)]
    pub limits: Limits,
    /// Pods only: JSON Pointer prefixes the patch may touch; `*` matches one segment. Empty means the defaults.
    #[serde(default)]
    pub allowed_paths: Vec<String>,
    /// A fixture (the `--input` shape of `wasmhub policy run`) that must give an `ok` outcome before a version
    /// becomes active. Without it the host smoke-calls with a built-in input and refuses only traps, timeouts,
    /// memory limits and invalid output.
    #[serde(default)]
    pub smoke: Option<serde_json::Value>,
    /// The policy's own settings, passed to it as JSON.
    #[serde(default = "empty_settings")]
    pub settings: serde_json::Value,
}

fn empty_settings() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// Whether the policy decides or only runs beside the active one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    #[default]
    Enforce,
    /// Runs beside the active policy (or the native default), records where they disagree, never decides.
    Monitor,
}

/// What a pods policy's failure does to the spawn. Other hooks have fixed failure modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Fail the spawn with the policy's name and the reason.
    #[default]
    Fail,
    /// Spawn the Pod unmodified.
    Ignore,
}

/// Per-call limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock budget per call (per sweep for cull), enforced with epoch interruption.
    pub timeout_ms: u64,
    /// Cap on the component's linear memory.
    pub memory_mib: u64,
    /// Cap on the bytes handed to one call (settings plus input).
    pub max_input_bytes: usize,
    /// Cap on the bytes a call returns.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout_ms: 200, memory_mib: 64, max_input_bytes: 256 * 1024, max_output_bytes: 64 * 1024 }
    }
}

impl Limits {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
    }
}

/// The largest memory cap a policy file may ask for; the engine's pooling allocator is sized for it.
pub const MAX_MEMORY_MIB: u64 = 512;
/// The longest timeout a policy file may ask for.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The text is not YAML, or a key or value does not fit the policy file's shape. `line` and `column` are
    /// 1-based and point at the offending key or value; `key` is its dotted path (`limits.timeout_ms`), empty
    /// for the file as a whole.
    #[error("{}:{line}:{column}: {}{message}", path.display(), if key.is_empty() { String::new() } else { format!("{key}: ") })]
    Yaml { path: PathBuf, line: usize, column: usize, key: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

const TOP_LEVEL_KEYS: &[&str] =
    &["hook", "component", "mode", "failure", "limits", "allowed_paths", "smoke", "settings"];
const LIMITS_KEYS: &[&str] = &["timeout_ms", "memory_mib", "max_input_bytes", "max_output_bytes"];

impl PolicyFile {
    /// Parses a policy file's text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<PolicyFile, PolicyFileError> {
        let file = YamlWalk { path }.policy_file(text)?;
        let invalid = |message: String| PolicyFileError::Invalid { path: path.to_owned(), message };
        if file.limits.memory_mib == 0 || file.limits.memory_mib > MAX_MEMORY_MIB {
            return Err(invalid(format!("limits.memory_mib must be 1..={MAX_MEMORY_MIB}")));
        }
        if file.limits.timeout_ms == 0 || file.limits.timeout_ms > MAX_TIMEOUT_MS {
            return Err(invalid(format!("limits.timeout_ms must be 1..={MAX_TIMEOUT_MS}")));
        }
        if file.hook != Hook::Pods && (file.failure != FailureMode::Fail || !file.allowed_paths.is_empty()) {
            return Err(invalid("failure and allowed_paths apply to pods policies only".to_owned()));
        }
        for allowed_path in &file.allowed_paths {
            if !allowed_path.starts_with('/') {
                return Err(invalid(format!("allowed path {allowed_path:?} must start with /")));
            }
        }
        Ok(file)
    }

    /// Reads and parses a policy file.
    pub fn read(path: &Path) -> Result<(PolicyFile, Vec<u8>), PolicyFileError> {
        let bytes = std::fs::read(path).map_err(|source| PolicyFileError::Read { path: path.to_owned(), source })?;
        let text = String::from_utf8_lossy(&bytes);
        Ok((PolicyFile::parse(path, &text)?, bytes))
    }

    /// The component's path, resolved against the folder of the policy file.
    pub fn component_path(&self, policy_path: &Path) -> PathBuf {
        policy_path.parent().unwrap_or(Path::new(".")).join(&self.component)
    }

    pub fn settings_json(&self) -> String {
        self.settings.to_string()
    }
}

/// Reads a policy file from saphyr's position-marked tree, so every error names the line, column and key. Each
/// value is turned into JSON and typed by the field's serde implementation, which words the message.
struct YamlWalk<'a> {
    path: &'a Path,
}

impl YamlWalk<'_> {
    fn policy_file(&self, text: &str) -> Result<PolicyFile, PolicyFileError> {
        let documents = MarkedYaml::load_from_str(text).map_err(|error| {
            let marker = error.marker();
            self.error_at_position(marker.line(), marker.col() + 1, "", error.info().to_owned())
        })?;
        let root = match documents.as_slice() {
            [] => return Err(self.error_at_position(1, 1, "", "the file is empty".to_owned())),
            [root] => root,
            [_, extra, ..] => return Err(self.error(extra, "", "only one YAML document is allowed".to_owned())),
        };
        let mut hook = None;
        let mut component = None;
        let mut file = PolicyFile {
            hook: Hook::Cull,
            component: PathBuf::new(),
            mode: PolicyMode::default(),
            failure: FailureMode::default(),
            limits: Limits::default(),
            allowed_paths: Vec::new(),
            smoke: None,
            settings: empty_settings(),
        };
        for (key_node, value) in self.mapping(root, "")? {
            let key = self.key(key_node, "", TOP_LEVEL_KEYS)?;
            match key {
                "hook" => hook = Some(self.typed(value, key)?),
                "component" => component = Some(self.typed(value, key)?),
                "mode" => file.mode = self.typed(value, key)?,
                "failure" => file.failure = self.typed(value, key)?,
                "limits" => {
                    for (key_node, value) in self.mapping(value, key)? {
                        let limit = self.key(key_node, "limits", LIMITS_KEYS)?;
                        let key = format!("limits.{limit}");
                        match limit {
                            "timeout_ms" => file.limits.timeout_ms = self.typed(value, &key)?,
                            "memory_mib" => file.limits.memory_mib = self.typed(value, &key)?,
                            "max_input_bytes" => file.limits.max_input_bytes = self.typed(value, &key)?,
                            _ => file.limits.max_output_bytes = self.typed(value, &key)?,
                        }
                    }
                }
                "allowed_paths" => file.allowed_paths = self.typed(value, key)?,
                "smoke" => file.smoke = self.typed(value, key)?,
                _ => file.settings = if is_null(value) { empty_settings() } else { self.json(value, key)? },
            }
        }
        let missing = |field: &str| self.error_at_position(1, 1, "", format!("missing field `{field}`"));
        file.hook = hook.ok_or_else(|| missing("hook"))?;
        file.component = component.ok_or_else(|| missing("component"))?;
        Ok(file)
    }

    /// A mapping's entries; a null value counts as an empty mapping.
    fn mapping<'n, 'input>(
        &self,
        node: &'n MarkedYaml<'input>,
        key: &str,
    ) -> Result<Vec<(&'n MarkedYaml<'input>, &'n MarkedYaml<'input>)>, PolicyFileError> {
        match &untagged(node).data {
            YamlData::Mapping(mapping) => Ok(mapping.iter().collect()),
            YamlData::Value(Scalar::Null) => Ok(Vec::new()),
            _ => Err(self.error(node, key, "expected a mapping".to_owned())),
        }
    }

    /// A mapping key, which must be one of `known`.
    fn key<'n>(&self, node: &'n MarkedYaml<'_>, parent: &str, known: &[&str]) -> Result<&'n str, PolicyFileError> {
        let Some(key) = (match &untagged(node).data {
            YamlData::Value(Scalar::String(text)) => Some(text.as_ref()),
            _ => None,
        }) else {
            return Err(self.error(node, parent, "keys must be strings".to_owned()));
        };
        if !known.contains(&key) {
            let expected: Vec<String> = known.iter().map(|known| format!("`{known}`")).collect();
            let dotted = if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") };
            return Err(self.error(
                node,
                &dotted,
                format!("unknown field `{key}`, expected one of {}", expected.join(", ")),
            ));
        }
        Ok(key)
    }

    fn typed<T: serde::de::DeserializeOwned>(&self, node: &MarkedYaml<'_>, key: &str) -> Result<T, PolicyFileError> {
        serde_json::from_value(self.json(node, key)?).map_err(|error| self.error(node, key, error.to_string()))
    }

    fn json(&self, node: &MarkedYaml<'_>, key: &str) -> Result<serde_json::Value, PolicyFileError> {
        use serde_json::Value;
        let node = untagged(node);
        Ok(match &node.data {
            YamlData::Value(Scalar::Null) => Value::Null,
            YamlData::Value(Scalar::Boolean(value)) => Value::Bool(*value),
            YamlData::Value(Scalar::Integer(value)) => Value::from(*value),
            YamlData::Value(Scalar::FloatingPoint(value)) => serde_json::Number::from_f64(value.into_inner())
                .map(Value::Number)
                .ok_or_else(|| self.error(node, key, "NaN and infinity are not JSON numbers".to_owned()))?,
            YamlData::Value(Scalar::String(text)) => Value::String(text.to_string()),
            YamlData::Sequence(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| self.json(item, &format!("{key}[{index}]")))
                    .collect::<Result<_, _>>()?,
            ),
            YamlData::Mapping(mapping) => {
                let mut object = serde_json::Map::new();
                for (key_node, value) in mapping.iter() {
                    let YamlData::Value(Scalar::String(name)) = &untagged(key_node).data else {
                        return Err(self.error(key_node, key, "keys must be strings".to_owned()));
                    };
                    let dotted = if key.is_empty() { name.to_string() } else { format!("{key}.{name}") };
                    object.insert(name.to_string(), self.json(value, &dotted)?);
                }
                Value::Object(object)
            }
            _ => return Err(self.error(node, key, "aliases and unreadable values are not supported".to_owned())),
        })
    }

    fn error(&self, node: &MarkedYaml<'_>, key: &str, message: String) -> PolicyFileError {
        self.error_at_position(node.span.start.line(), node.span.start.col() + 1, key, message)
    }

    fn error_at_position(&self, line: usize, column: usize, key: &str, message: String) -> PolicyFileError {
        PolicyFileError::Yaml { path: self.path.to_owned(), line, column, key: key.to_owned(), message }
    }
}

/// Looks through explicit tags (`!!str x`) to the node they wrap.
fn untagged<'n, 'input>(node: &'n MarkedYaml<'input>) -> &'n MarkedYaml<'input> {
    match &node.data {
        YamlData::Tagged(_, inner) => untagged(inner),
        _ => node,
    }
}

fn is_null(node: &MarkedYaml<'_>) -> bool {
    matches!(untagged(node).data, YamlData::Value(Scalar::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_keys() {
        let file = PolicyFile::parse(Path::new("p.yaml"), "hook: cull\ncomponent: c.wasm\n").unwrap();
        assert_eq!((file.mode, file.failure, file.limits.timeout_ms), (PolicyMode::Enforce, FailureMode::Fail, 200));
        let error = PolicyFile::parse(Path::new("p.yaml"), "hook: cull\ncomponent: c.wasm\ntimeout: 3\n").unwrap_err();
        assert!(error.to_string().starts_with("p.yaml:3:1: timeout: unknown field `timeout`"), "{error}");
        let error =
            PolicyFile::parse(Path::new("p.yaml"), "hook: auth\ncomponent: c.wasm\nfailure: ignore\n").unwrap_err();
        assert!(error.to_string().contains("pods policies only"), "{error}");
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let parse = |text: &str| PolicyFile::parse(Path::new("p.yaml"), text).unwrap_err().to_string();
        let error = parse("hook: cull\ncomponent: c.wasm\nlimits:\n  timeout_ms: soon\n");
        assert!(error.starts_with("p.yaml:4:15: limits.timeout_ms: invalid type: string \"soon\""), "{error}");
        let error = parse("hook: cull\ncomponent: c.wasm\nlimits:\n  memory: 3\n");
        assert!(error.starts_with("p.yaml:4:3: limits.memory: unknown field `memory`"), "{error}");
        let error = parse("hook: login\ncomponent: c.wasm\n");
        assert!(error.starts_with("p.yaml:1:7: hook: unknown variant `login`"), "{error}");
        let error = parse("hook: cull\n");
        assert_eq!(error, "p.yaml:1:1: missing field `component`");
        let error = parse("hook: [cull\n");
        assert!(error.starts_with("p.yaml:"), "{error}");
    }

    #[test]
    fn settings_and_smoke_become_json() {
        let text = "hook: pods\ncomponent: c.wasm\nfailure: ignore\nallowed_paths: [/spec]\nsettings:\n  gpu: {count: 2, ratio: 0.5, on: true, none: null}\nsmoke: {context: {}}\n";
        let file = PolicyFile::parse(Path::new("p.yaml"), text).unwrap();
        assert_eq!(file.settings, serde_json::json!({"gpu": {"count": 2, "ratio": 0.5, "on": true, "none": null}}));
        assert_eq!(file.smoke, Some(serde_json::json!({"context": {}})));
        assert_eq!((file.failure, file.allowed_paths), (FailureMode::Ignore, vec!["/spec".to_owned()]));
    }
}
