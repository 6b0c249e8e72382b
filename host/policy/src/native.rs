//! The built-in behaviour of each hook, in plain Rust: what the hub does when no policy file binds a hook, and
//! what a failing cull policy falls back to. `plugins/defaults/*` implement the same rules as components, and a
//! property test (`tests/native_vs_plugin.rs`) requires both to decide identically.

mod auth;
mod cull;
mod profiles;

pub use auth::{AuthSettings, authenticate};
pub use cull::{CullSettings, decide_cull};
pub use profiles::{ProfileSettings, resolve_choice, visible_profiles};

use serde::{Deserialize, Serialize};

/// The settings of every native default, as the hub config gives them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativeDefaults {
    #[serde(default)]
    pub auth: AuthSettings,
    #[serde(default)]
    pub profiles: ProfileSettings,
    #[serde(default)]
    pub cull: CullSettings,
}

/// The built-in pod rule: leave the Pod as the spawner built it (an empty JSON Patch).
pub fn mutate_pod() -> Vec<serde_json::Value> {
    Vec::new()
}

/// Python's `re.match`: the pattern must match at the start of the text, not necessarily all of it.
pub(crate) fn python_re_match(pattern: &str, text: &str) -> Result<bool, String> {
    let anchored =
        regex::Regex::new(&format!("^(?:{pattern})")).map_err(|error| format!("bad pattern {pattern:?}: {error}"))?;
    Ok(anchored.is_match(text))
}
