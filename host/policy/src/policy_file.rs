//! Policy files: the YAML that binds a component, its settings, limits, failure mode and mode to a hook.

use std::path::{Path, PathBuf};
use std::time::Duration;

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
    #[error("{path}: {source}")]
    Yaml { path: PathBuf, source: serde_yaml::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl PolicyFile {
    /// Parses a policy file's text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<PolicyFile, PolicyFileError> {
        let file: PolicyFile =
            serde_yaml::from_str(text).map_err(|source| PolicyFileError::Yaml { path: path.to_owned(), source })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_keys() {
        let file = PolicyFile::parse(Path::new("p.yaml"), "hook: cull\ncomponent: c.wasm\n").unwrap();
        assert_eq!((file.mode, file.failure, file.limits.timeout_ms), (PolicyMode::Enforce, FailureMode::Fail, 200));
        let error = PolicyFile::parse(Path::new("p.yaml"), "hook: cull\ncomponent: c.wasm\ntimeout: 3\n").unwrap_err();
        assert!(error.to_string().contains("unknown field `timeout`"), "{error}");
        let error =
            PolicyFile::parse(Path::new("p.yaml"), "hook: auth\ncomponent: c.wasm\nfailure: ignore\n").unwrap_err();
        assert!(error.to_string().contains("pods policies only"), "{error}");
    }
}
