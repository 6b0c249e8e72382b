//! The inputs and decisions of the four hooks, as the hub sees them. These mirror the WIT records but are plain
//! Rust (and serde, because fixtures for `wasmhub policy run` and policy settings are JSON).

use serde::{Deserialize, Serialize};

/// The four places a policy can plug in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    Auth,
    Profiles,
    Pods,
    Cull,
}

impl Hook {
    pub const ALL: [Hook; 4] = [Hook::Auth, Hook::Profiles, Hook::Pods, Hook::Cull];

    /// The name used in policy files and the status API.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Auth => "auth",
            Hook::Profiles => "profiles",
            Hook::Pods => "pods",
            Hook::Cull => "cull",
        }
    }

    /// The WIT interface a component exports to serve this hook.
    pub fn wit_interface(self) -> &'static str {
        match self {
            Hook::Auth => "auth",
            Hook::Profiles => "profiles",
            Hook::Pods => "pods",
            Hook::Cull => "cull",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Hook::Auth => 0,
            Hook::Profiles => 1,
            Hook::Pods => 2,
            Hook::Cull => 3,
        }
    }
}

impl std::fmt::Display for Hook {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A hub user as policies see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub groups: Vec<String>,
}

// === auth ===

/// An identity the authenticator has already verified.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub provider: String,
    pub subject: String,
    pub username_hint: String,
    /// Every claim the provider returned, as a JSON object.
    #[serde(default = "empty_object")]
    pub claims: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// How a login changes the stored admin flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdminChange {
    LeaveUnchanged,
    Grant,
    Revoke,
}

/// The auth hook's decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthDecision {
    Allow {
        username: String,
        admin: AdminChange,
        /// `None` leaves the stored groups unchanged.
        groups: Option<Vec<String>>,
        auth_state: Option<String>,
    },
    Deny {
        reason: String,
    },
}

// === profiles ===

/// One initialised entry of the profile list (see [`initialize_profiles`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub slug: String,
    /// The whole entry in KubeSpawner's `profile_list` shape, with `slug` and `default` filled in.
    pub definition: serde_json::Value,
}

/// The value chosen for one profile option.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptionValue {
    Listed(String),
    Unlisted(String),
}

/// One option of the chosen profile and its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptionChoice {
    pub option: String,
    pub value: OptionValue,
}

/// What the user asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileChoice {
    /// Empty means the default profile.
    #[serde(default)]
    pub profile: String,
    #[serde(default)]
    pub options: Vec<OptionChoice>,
}

/// A choice turned into what the spawner applies, or refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileResolution {
    Resolved { profile: String, kubespawner_override: serde_json::Value },
    Rejected { reason: String },
}

/// Fills in what KubeSpawner's `_get_initialized_profile_list` fills in: a slug made from `display_name` where
/// none is given, the first profile as default when none is, and the first choice of each option as default
/// when none is. Entries that are not JSON objects are an error.
pub fn initialize_profiles(profile_list: &[serde_json::Value]) -> Result<Vec<Profile>, String> {
    let mut profiles = Vec::with_capacity(profile_list.len());
    for (profile_index, entry) in profile_list.iter().enumerate() {
        let Some(object) = entry.as_object() else {
            return Err(format!("profile_list[{profile_index}] is not an object"));
        };
        let mut object = object.clone();
        let slug = match object.get("slug").and_then(|slug| slug.as_str()) {
            Some(slug) if !slug.is_empty() => slug.to_owned(),
            _ => {
                let display_name = object.get("display_name").and_then(|name| name.as_str()).unwrap_or_default();
                slugify(display_name)
            }
        };
        object.insert("slug".to_owned(), serde_json::Value::String(slug.clone()));
        if let Some(options) = object.get_mut("profile_options").and_then(|options| options.as_object_mut()) {
            for option in options.values_mut() {
                let Some(choices) = option.get_mut("choices").and_then(|choices| choices.as_object_mut()) else {
                    continue;
                };
                let has_default = choices.values().any(|choice| choice.get("default") == Some(&true.into()));
                if !has_default && let Some(first) = choices.values_mut().next().and_then(|c| c.as_object_mut()) {
                    first.insert("default".to_owned(), true.into());
                }
            }
        }
        profiles.push(Profile { slug, definition: serde_json::Value::Object(object) });
    }
    let has_default = profiles.iter().any(|profile| profile.definition.get("default") == Some(&true.into()));
    if !has_default && let Some(first) = profiles.first_mut().and_then(|p| p.definition.as_object_mut()) {
        first.insert("default".to_owned(), true.into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for profile in &profiles {
        if !seen.insert(profile.slug.clone()) {
            return Err(format!("two profiles have the slug {:?}", profile.slug));
        }
    }
    Ok(profiles)
}

/// KubeSpawner's slug for a display name: lowercase, every run of other characters turned into one `-`.
fn slugify(display_name: &str) -> String {
    let mut slug = String::new();
    for character in display_name.chars().flat_map(char::to_lowercase) {
        if character.is_ascii_alphanumeric() {
            slug.push(character);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

// === pods ===

/// Who is spawning what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnContext {
    pub user: User,
    #[serde(default)]
    pub server_name: String,
    #[serde(default)]
    pub profile: String,
}

// === cull ===

/// One server as the culler sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CullServer {
    pub user: User,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub profile: String,
    pub ready: bool,
    #[serde(default)]
    pub pending: bool,
    pub age_seconds: u64,
    pub inactive_seconds: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CullAction {
    Keep,
    Stop,
    StopAndRemove,
}

/// What to do with one server, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CullDecision {
    pub action: CullAction,
    pub reason: String,
}

// === fixtures ===

/// Input for the profiles hook in fixtures: with `choice`, the choice is resolved; without, the visible
/// profiles are listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilesInput {
    pub user: User,
    /// The configured `profile_list`, initialised by the host before the call.
    pub profile_list: Vec<serde_json::Value>,
    #[serde(default)]
    pub choice: Option<ProfileChoice>,
}

/// Input for the pods hook in fixtures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodsInput {
    pub context: SpawnContext,
    pub pod: serde_json::Value,
}

/// Input for the cull hook in fixtures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CullInput {
    pub servers: Vec<CullServer>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialize_profiles_fills_slugs_and_defaults() {
        let list = vec![
            serde_json::json!({"display_name": "Small CPU (2 GB)"}),
            serde_json::json!({"display_name": "GPU", "slug": "gpu", "profile_options": {
                "image": {"choices": {"a": {"display_name": "A"}, "b": {"display_name": "B"}}}
            }}),
        ];
        let profiles = initialize_profiles(&list).unwrap();
        assert_eq!(profiles[0].slug, "small-cpu-2-gb");
        assert_eq!(profiles[0].definition["default"], true);
        assert_eq!(profiles[1].definition.get("default"), None);
        assert_eq!(profiles[1].definition["profile_options"]["image"]["choices"]["a"]["default"], true);
    }

    #[test]
    fn initialize_profiles_refuses_duplicate_slugs() {
        let list = vec![serde_json::json!({"slug": "a"}), serde_json::json!({"display_name": "A"})];
        assert!(initialize_profiles(&list).unwrap_err().contains("\"a\""));
    }
}
