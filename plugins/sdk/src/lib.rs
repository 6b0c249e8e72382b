//! The crate wasmhub policy authors use. Enable the feature of your hook (`auth`, `profiles`, `pods` or
//! `cull`), implement its trait (`AuthPolicy`, `ProfilePolicy`, `PodPolicy`, `CullPolicy`) and call
//! [`register!`]. Settings arrive already parsed into your own serde type; types are the WIT records of
//! `wasmhub:policy@0.1.0`, generated here so every policy uses the same ones.
//!
//! Exactly one hook feature per component: the generated world is embedded in the component, and two worlds
//! would ask the component to export both hooks.

extern crate self as wasmhub_policy_sdk;

#[cfg(any(
    all(feature = "auth", any(feature = "profiles", feature = "pods", feature = "cull")),
    all(feature = "profiles", any(feature = "pods", feature = "cull")),
    all(feature = "pods", feature = "cull"),
))]
compile_error!(
    "wasmhub-policy-sdk: enable exactly one hook feature (auth, profiles, pods or cull); when building several \
     plugins of different hooks, build them in separate cargo invocations (see plugins/README.md)"
);

#[cfg(all(target_arch = "wasm32", feature = "arena-allocator"))]
mod allocator;
/// Every call runs in a fresh instance, so a bump arena beats a general allocator (see `allocator.rs`).
#[cfg(all(target_arch = "wasm32", feature = "arena-allocator"))]
#[global_allocator]
static ALLOCATOR: allocator::ArenaAllocator = allocator::ArenaAllocator::new();

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;
pub use serde;
pub use serde_json;
#[cfg(feature = "k8s")]
pub use k8s_openapi;

#[cfg(feature = "auth")]
#[doc(hidden)]
pub mod auth_world {
    wit_bindgen::generate!({
        world: "auth-policy",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_auth_world",
        default_bindings_module: "wasmhub_policy_sdk::auth_world",
        runtime_path: "wasmhub_policy_sdk::__wit_bindgen::rt",
    });
}

#[cfg(feature = "profiles")]
#[doc(hidden)]
pub mod profiles_world {
    wit_bindgen::generate!({
        world: "profile-policy",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_profiles_world",
        default_bindings_module: "wasmhub_policy_sdk::profiles_world",
        runtime_path: "wasmhub_policy_sdk::__wit_bindgen::rt",
    });
}

#[cfg(feature = "pods")]
#[doc(hidden)]
pub mod pods_world {
    wit_bindgen::generate!({
        world: "pod-policy",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_pods_world",
        default_bindings_module: "wasmhub_policy_sdk::pods_world",
        runtime_path: "wasmhub_policy_sdk::__wit_bindgen::rt",
    });
}

#[cfg(feature = "cull")]
#[doc(hidden)]
pub mod cull_world {
    wit_bindgen::generate!({
        world: "cull-policy",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_cull_world",
        default_bindings_module: "wasmhub_policy_sdk::cull_world",
        runtime_path: "wasmhub_policy_sdk::__wit_bindgen::rt",
    });
}

#[cfg(feature = "auth")]
use auth_world::wasmhub::policy as shared;
#[cfg(all(feature = "profiles", not(feature = "auth")))]
use profiles_world::wasmhub::policy as shared;
#[cfg(all(feature = "pods", not(any(feature = "auth", feature = "profiles"))))]
use pods_world::wasmhub::policy as shared;
#[cfg(all(feature = "cull", not(any(feature = "auth", feature = "profiles", feature = "pods"))))]
use cull_world::wasmhub::policy as shared;

#[cfg(any(feature = "auth", feature = "profiles", feature = "pods", feature = "cull"))]
pub use shared::types::{LogLevel, User};

/// Writes a line to the hub's log (1 KiB and 64 lines per call at most; the host drops the rest).
#[cfg(any(feature = "auth", feature = "profiles", feature = "pods", feature = "cull"))]
pub fn log(level: LogLevel, message: &str) {
    shared::host::log(level, message);
}

/// Parses the policy's settings, with an error message that says so.
pub fn parse_settings<T: serde::de::DeserializeOwned>(settings_json: &str) -> Result<T, String> {
    serde_json::from_str(settings_json).map_err(|error| format!("invalid settings: {error}"))
}

/// The auth hook: a verified identity in, a user or a refusal out.
#[cfg(feature = "auth")]
pub mod auth {
    pub use crate::auth_world::exports::wasmhub::policy::auth::{AdminChange, Allowed, Decision, Identity};

    pub trait AuthPolicy {
        /// Your settings type; `{}` in the policy file must parse if you want it to be optional.
        type Settings: serde::de::DeserializeOwned;

        /// Extra checks beyond parsing; called once per load.
        fn validate_settings(_settings: &Self::Settings) -> Result<(), String> {
            Ok(())
        }

        /// `Err` means "could not decide": the host refuses the login.
        fn authenticate(settings: &Self::Settings, identity: Identity) -> Result<Decision, String>;
    }

    /// The identity's claims as JSON (`{}` when the provider sent none).
    pub fn claims(identity: &Identity) -> serde_json::Value {
        serde_json::from_str(&identity.claims_json).unwrap_or_else(|_| serde_json::Value::Object(Default::default()))
    }
}

/// The profiles hook: which profiles a user sees, and what a choice resolves to.
#[cfg(feature = "profiles")]
pub mod profiles {
    pub use crate::profiles_world::exports::wasmhub::policy::profiles::{
        Choice, OptionChoice, OptionValue, Profile, Resolution, Resolved,
    };
    pub use crate::User;

    pub trait ProfilePolicy {
        type Settings: serde::de::DeserializeOwned;

        fn validate_settings(_settings: &Self::Settings) -> Result<(), String> {
            Ok(())
        }

        /// Slugs of the profiles `user` may see, in display order.
        fn visible_profiles(settings: &Self::Settings, user: User, profiles: Vec<Profile>) -> Result<Vec<String>, String>;

        /// Validates and resolves a choice; reject anything `visible_profiles` hides.
        fn resolve_choice(settings: &Self::Settings, user: User, profiles: Vec<Profile>, choice: Choice) -> Result<Resolution, String>;
    }

    /// A profile's definition as JSON.
    pub fn definition(profile: &Profile) -> Result<serde_json::Value, String> {
        serde_json::from_str(&profile.profile_json).map_err(|error| format!("profile {:?}: {error}", profile.slug))
    }

    /// Every profile's `(slug, definition)`.
    pub fn definitions(profiles: &[Profile]) -> Result<Vec<(String, serde_json::Value)>, String> {
        profiles.iter().map(|profile| Ok((profile.slug.clone(), definition(profile)?))).collect()
    }

    /// The `(slug, definition)` pairs `resolve_kubespawner_choice` needs for `choice`: the named profile, or for
    /// an empty slug the profiles up to the first default. Parses only those, so resolving costs the same for
    /// a long profile list as for a short one.
    pub fn chosen_definitions(profiles: &[Profile], choice: &Choice) -> Result<Vec<(String, serde_json::Value)>, String> {
        if !choice.profile.is_empty() {
            return profiles.iter().filter(|profile| profile.slug == choice.profile).take(1).map(|profile| Ok((profile.slug.clone(), definition(profile)?))).collect();
        }
        let mut chosen = Vec::new();
        for profile in profiles {
            let parsed = definition(profile)?;
            let is_default = parsed.get("default") == Some(&true.into());
            chosen.push((profile.slug.clone(), parsed));
            if is_default {
                break;
            }
        }
        Ok(chosen)
    }

    /// KubeSpawner's resolution of a choice against `(slug, definition)` pairs: the default profile for an empty
    /// slug, a listed choice or validated free text (`unlisted_choice.validation_regex`, Python `re.match`
    /// semantics, `{value}` substituted) per option, option defaults, and the overrides merged in declaration
    /// order (object into object recursively, anything else replaces, `null` kept so it removes the key when the
    /// spawner applies it). `Err` means the profile list itself is malformed.
    pub fn resolve_kubespawner_choice(profiles: &[(String, serde_json::Value)], choice: &Choice) -> Result<Resolution, String> {
        let rejected = |reason: String| Ok(Resolution::Rejected(reason));
        let profile = if choice.profile.is_empty() {
            profiles.iter().find(|(_, definition)| definition.get("default") == Some(&true.into()))
        } else {
            profiles.iter().find(|(slug, _)| *slug == choice.profile)
        };
        let Some((slug, definition)) = profile else {
            return rejected(format!("no profile named {:?}", choice.profile));
        };
        let mut merged = match definition.get("kubespawner_override") {
            None | Some(serde_json::Value::Null) => serde_json::Value::Object(serde_json::Map::new()),
            Some(value @ serde_json::Value::Object(_)) => value.clone(),
            Some(_) => return Err(format!("profile {slug:?}: kubespawner_override is not an object")),
        };
        let empty_options = serde_json::Map::new();
        let options = definition.get("profile_options").and_then(|options| options.as_object()).unwrap_or(&empty_options);
        for (index, chosen) in choice.options.iter().enumerate() {
            if !options.contains_key(&chosen.option_name) {
                return rejected(format!("profile {slug:?} has no option {:?}", chosen.option_name));
            }
            if choice.options[..index].iter().any(|earlier| earlier.option_name == chosen.option_name) {
                return rejected(format!("option {:?} is chosen twice", chosen.option_name));
            }
        }
        for (option_name, option) in options {
            let chosen = choice.options.iter().find(|chosen| &chosen.option_name == option_name).map(|chosen| chosen.value.clone());
            let chosen = match chosen {
                Some(value) => value,
                None => match default_choice(option) {
                    Some(key) => OptionValue::Listed(key),
                    None => continue,
                },
            };
            let option_override = match chosen {
                OptionValue::Listed(key) => match option.get("choices").and_then(|choices| choices.get(&key)) {
                    Some(listed) => listed.get("kubespawner_override").cloned(),
                    None => return rejected(format!("invalid choice {key:?} for option {option_name:?}")),
                },
                OptionValue::Unlisted(text) => {
                    let unlisted = option.get("unlisted_choice");
                    let enabled = unlisted.and_then(|unlisted| unlisted.get("enabled")).and_then(|enabled| enabled.as_bool());
                    if enabled != Some(true) {
                        return rejected(format!("option {option_name:?} does not accept other values"));
                    }
                    if let Some(pattern) = unlisted.and_then(|unlisted| unlisted.get("validation_regex")).and_then(|p| p.as_str())
                        && !python_re_match(pattern, &text)?
                    {
                        let message = unlisted.and_then(|unlisted| unlisted.get("validation_message")).and_then(|m| m.as_str());
                        return rejected(match message {
                            Some(message) => message.to_owned(),
                            None => format!("invalid value {text:?} for option {option_name:?}"),
                        });
                    }
                    unlisted.and_then(|unlisted| unlisted.get("kubespawner_override")).map(|template| substitute_value(template, &text))
                }
            };
            match option_override {
                None | Some(serde_json::Value::Null) => {}
                Some(value @ serde_json::Value::Object(_)) => merge_override(&mut merged, &value),
                Some(_) => return Err(format!("option {option_name:?}: kubespawner_override is not an object")),
            }
        }
        Ok(Resolution::Resolved(Resolved { profile: slug.clone(), override_json: merged.to_string() }))
    }

    fn default_choice(option: &serde_json::Value) -> Option<String> {
        let choices = option.get("choices")?.as_object()?;
        choices.iter().find(|(_, choice)| choice.get("default") == Some(&true.into())).map(|(key, _)| key.clone())
    }

    fn merge_override(target: &mut serde_json::Value, update: &serde_json::Value) {
        let (Some(target_map), Some(update_map)) = (target.as_object_mut(), update.as_object()) else {
            *target = update.clone();
            return;
        };
        for (key, value) in update_map {
            match target_map.get_mut(key) {
                Some(existing) if existing.is_object() && value.is_object() => merge_override(existing, value),
                _ => {
                    target_map.insert(key.clone(), value.clone());
                }
            }
        }
    }

    fn substitute_value(template: &serde_json::Value, text: &str) -> serde_json::Value {
        match template {
            serde_json::Value::String(string) => serde_json::Value::String(string.replace("{value}", text)),
            serde_json::Value::Array(items) => items.iter().map(|item| substitute_value(item, text)).collect(),
            serde_json::Value::Object(map) => {
                serde_json::Value::Object(map.iter().map(|(key, value)| (key.clone(), substitute_value(value, text))).collect())
            }
            other => other.clone(),
        }
    }

    fn python_re_match(pattern: &str, text: &str) -> Result<bool, String> {
        let anchored = regex::Regex::new(&format!("^(?:{pattern})")).map_err(|error| format!("bad pattern {pattern:?}: {error}"))?;
        Ok(anchored.is_match(text))
    }
}

/// The pods hook: return a JSON Patch for the Pod the spawner built.
#[cfg(feature = "pods")]
pub mod pods {
    pub use crate::User;
    pub use crate::pods_world::exports::wasmhub::policy::pods::SpawnContext;

    pub trait PodPolicy {
        type Settings: serde::de::DeserializeOwned;

        fn validate_settings(_settings: &Self::Settings) -> Result<(), String> {
            Ok(())
        }

        /// The patch operations to apply (an empty list leaves the Pod alone).
        fn mutate_pod(settings: &Self::Settings, context: SpawnContext, pod: PodJson) -> Result<Vec<PatchOperation>, String>;
    }

    /// The Pod the spawner built, as the JSON text the host sent. It is parsed only when a policy asks, and
    /// straight into the type it asks for: a policy that decides from the context alone never parses it, and
    /// [`PodJson::get`] parses only the piece a policy needs.
    pub struct PodJson(String);

    impl PodJson {
        #[doc(hidden)]
        pub fn new(json: String) -> PodJson {
            PodJson(json)
        }

        pub fn as_str(&self) -> &str {
            &self.0
        }

        /// The piece of the Pod at a JSON Pointer (the same paths a patch uses, e.g. `/spec/tolerations` or
        /// `/spec/containers/0/resources`), parsed into `T`; `None` when the Pod has nothing there. Everything
        /// else in the Pod is skipped without being built, which is much cheaper than parsing the whole Pod. Each
        /// call walks the Pod's text from the start: to read several pieces, `get` one small struct holding them
        /// (see the GPU pod example) rather than calling `get` once per piece.
        pub fn get<T: serde::de::DeserializeOwned>(&self, pointer: &str) -> Result<Option<T>, String> {
            use serde::de::DeserializeSeed;
            let segments = pointer_segments(pointer)?;
            let mut deserializer = serde_json::Deserializer::from_str(&self.0);
            At { segments: &segments, found: std::marker::PhantomData::<T> }
                .deserialize(&mut deserializer)
                .map_err(|error| format!("the Pod at {pointer:?} does not parse: {error}"))
        }

        /// Whether the Pod has anything at a JSON Pointer.
        pub fn contains(&self, pointer: &str) -> Result<bool, String> {
            Ok(self.get::<serde::de::IgnoredAny>(pointer)?.is_some())
        }

        /// The Pod as a JSON value.
        pub fn value(&self) -> Result<serde_json::Value, String> {
            serde_json::from_str(&self.0).map_err(|error| format!("the Pod is not JSON: {error}"))
        }

        /// The whole Pod as k8s-openapi's typed `Pod`.
        #[cfg(feature = "k8s")]
        pub fn typed(&self) -> Result<k8s_openapi::api::core::v1::Pod, String> {
            serde_json::from_str(&self.0).map_err(|error| format!("the Pod does not parse: {error}"))
        }
    }

    /// The unescaped segments of a JSON Pointer (`~1` is `/`, `~0` is `~`), borrowed from the pointer unless
    /// they hold an escape.
    fn pointer_segments(pointer: &str) -> Result<Vec<std::borrow::Cow<'_, str>>, String> {
        if pointer.is_empty() {
            return Ok(Vec::new());
        }
        let Some(rest) = pointer.strip_prefix('/') else {
            return Err(format!("the pointer {pointer:?} does not start with /"));
        };
        // Most segments hold no escape; `replace` is not free in a guest, so it runs only when needed.
        Ok(rest
            .split('/')
            .map(|segment| match segment.contains('~') {
                true => std::borrow::Cow::Owned(segment.replace("~1", "/").replace("~0", "~")),
                false => std::borrow::Cow::Borrowed(segment),
            })
            .collect())
    }

    /// Walks one JSON document down `segments`, skipping every other member unbuilt, and parses what it finds
    /// there into `T`.
    struct At<'s, T> {
        segments: &'s [std::borrow::Cow<'s, str>],
        found: std::marker::PhantomData<T>,
    }

    impl<'de, T: serde::de::DeserializeOwned> serde::de::DeserializeSeed<'de> for At<'_, T> {
        type Value = Option<T>;

        fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
            match self.segments.split_first() {
                // `null` counts as absent, as it does for Kubernetes.
                None => <Option<T> as serde::Deserialize>::deserialize(deserializer),
                Some((segment, rest)) => deserializer.deserialize_any(Step { segment, rest, found: self.found }),
            }
        }
    }

    /// One step of [`At`]: the member named `segment` of an object, or the item at that index of an array.
    struct Step<'s, T> {
        segment: &'s str,
        rest: &'s [std::borrow::Cow<'s, str>],
        found: std::marker::PhantomData<T>,
    }

    impl<'de, T: serde::de::DeserializeOwned> serde::de::Visitor<'de> for Step<'_, T> {
        type Value = Option<T>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("any JSON value")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
            let mut found = None;
            while let Some(matches) = map.next_key_seed(KeyIs(self.segment))? {
                if matches && found.is_none() {
                    found = map.next_value_seed(At { segments: self.rest, found: self.found })?;
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(found)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<Option<T>, A::Error> {
            let wanted = self.segment.parse::<usize>().ok();
            let mut found = None;
            let mut index = 0;
            loop {
                let more = if Some(index) == wanted {
                    items
                        .next_element_seed(At { segments: self.rest, found: self.found })?
                        .map(|item| found = item)
                        .is_some()
                } else {
                    items.next_element::<serde::de::IgnoredAny>()?.is_some()
                };
                if !more {
                    return Ok(found);
                }
                index += 1;
            }
        }

        // A scalar has no members: the pointer leads nowhere.
        fn visit_bool<E>(self, _: bool) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_str<E>(self, _: &str) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
    }

    /// Compares an object key with a pointer segment without allocating it.
    struct KeyIs<'s>(&'s str);

    impl<'de> serde::de::DeserializeSeed<'de> for KeyIs<'_> {
        type Value = bool;

        fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
            deserializer.deserialize_str(self)
        }
    }

    impl<'de> serde::de::Visitor<'de> for KeyIs<'_> {
        type Value = bool;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("an object key")
        }

        fn visit_str<E>(self, key: &str) -> Result<bool, E> {
            Ok(key == self.0)
        }
    }

    /// A Pod toleration (Kubernetes `core/v1` `Toleration`, every field of it), for policies that read or add
    /// tolerations without k8s-openapi: a few small types like this one keep a component small and its code
    /// path short, which is most of a pod policy's cost when every call starts a fresh instance.
    #[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Toleration {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub key: Option<String>,
        /// `Exists` or `Equal` (Kubernetes' default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub operator: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub value: Option<String>,
        /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; none matches all three.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub effect: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub toleration_seconds: Option<i64>,
    }

    /// A container's resources (Kubernetes `core/v1` `ResourceRequirements`, every field of it); quantities are
    /// kept as the text Kubernetes wrote (`"500m"`, `"2Gi"`, `"1"`).
    #[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    pub struct ResourceRequirements {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub limits: Option<std::collections::BTreeMap<String, String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub requests: Option<std::collections::BTreeMap<String, String>>,
        /// Dynamic resource claims, passed through untouched.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub claims: Option<Vec<ResourceClaim>>,
    }

    /// One entry of [`ResourceRequirements::claims`].
    #[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    pub struct ResourceClaim {
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub request: Option<String>,
    }

    /// One JSON Patch operation; the host accepts only these three. The value is kept as JSON text, written
    /// once straight from the policy's own type (no intermediate `serde_json::Value`).
    #[derive(Clone, Debug, serde::Serialize)]
    #[serde(tag = "op", rename_all = "lowercase")]
    pub enum PatchOperation {
        Add { path: String, value: Box<serde_json::value::RawValue> },
        Replace { path: String, value: Box<serde_json::value::RawValue> },
        Remove { path: String },
    }

    impl PatchOperation {
        /// `add` of any serializable value, e.g. a [`Toleration`] list or [`ResourceRequirements`].
        pub fn add(path: impl Into<String>, value: impl serde::Serialize) -> Result<PatchOperation, String> {
            Ok(PatchOperation::Add { path: path.into(), value: json_text(&value)? })
        }

        /// `replace` of a value that must already be there.
        pub fn replace(path: impl Into<String>, value: impl serde::Serialize) -> Result<PatchOperation, String> {
            Ok(PatchOperation::Replace { path: path.into(), value: json_text(&value)? })
        }

        pub fn remove(path: impl Into<String>) -> PatchOperation {
            PatchOperation::Remove { path: path.into() }
        }
    }

    fn json_text(value: &impl serde::Serialize) -> Result<Box<serde_json::value::RawValue>, String> {
        serde_json::value::to_raw_value(value).map_err(|error| error.to_string())
    }
}

/// The cull hook: one decision per server, per sweep.
#[cfg(feature = "cull")]
pub mod cull {
    pub use crate::User;
    pub use crate::cull_world::exports::wasmhub::policy::cull::{Action, Decision, Server};

    pub trait CullPolicy {
        type Settings: serde::de::DeserializeOwned;

        fn validate_settings(_settings: &Self::Settings) -> Result<(), String> {
            Ok(())
        }

        /// Exactly one decision per server, in order.
        fn decide(settings: &Self::Settings, servers: Vec<Server>) -> Result<Vec<Decision>, String>;
    }
}

/// Exports a policy type as the component's hook: `register!(auth: MyPolicy);` (or `profiles:`, `pods:`,
/// `cull:`). Call it once, at the crate root.
#[macro_export]
macro_rules! register {
    (auth: $policy:ty) => {
        #[doc(hidden)]
        pub struct __WasmhubPolicyExport;
        impl $crate::auth_world::exports::wasmhub::policy::plugin::Guest for __WasmhubPolicyExport {
            fn validate_settings(settings: String) -> Result<(), String> {
                let parsed = $crate::parse_settings::<<$policy as $crate::auth::AuthPolicy>::Settings>(&settings)?;
                <$policy as $crate::auth::AuthPolicy>::validate_settings(&parsed)
            }
        }
        impl $crate::auth_world::exports::wasmhub::policy::auth::Guest for __WasmhubPolicyExport {
            fn authenticate(settings: String, identity: $crate::auth::Identity) -> Result<$crate::auth::Decision, String> {
                let parsed = $crate::parse_settings(&settings)?;
                <$policy as $crate::auth::AuthPolicy>::authenticate(&parsed, identity)
            }
        }
        $crate::auth_world::__export_auth_world!(__WasmhubPolicyExport with_types_in $crate::auth_world);
    };
    (profiles: $policy:ty) => {
        #[doc(hidden)]
        pub struct __WasmhubPolicyExport;
        impl $crate::profiles_world::exports::wasmhub::policy::plugin::Guest for __WasmhubPolicyExport {
            fn validate_settings(settings: String) -> Result<(), String> {
                let parsed = $crate::parse_settings::<<$policy as $crate::profiles::ProfilePolicy>::Settings>(&settings)?;
                <$policy as $crate::profiles::ProfilePolicy>::validate_settings(&parsed)
            }
        }
        impl $crate::profiles_world::exports::wasmhub::policy::profiles::Guest for __WasmhubPolicyExport {
            fn visible_profiles(
                settings: String,
                user: $crate::User,
                profiles: Vec<$crate::profiles::Profile>,
            ) -> Result<Vec<String>, String> {
                let parsed = $crate::parse_settings(&settings)?;
                <$policy as $crate::profiles::ProfilePolicy>::visible_profiles(&parsed, user, profiles)
            }
            fn resolve_choice(
                settings: String,
                user: $crate::User,
                profiles: Vec<$crate::profiles::Profile>,
                choice: $crate::profiles::Choice,
            ) -> Result<$crate::profiles::Resolution, String> {
                let parsed = $crate::parse_settings(&settings)?;
                <$policy as $crate::profiles::ProfilePolicy>::resolve_choice(&parsed, user, profiles, choice)
            }
        }
        $crate::profiles_world::__export_profiles_world!(__WasmhubPolicyExport with_types_in $crate::profiles_world);
    };
    (pods: $policy:ty) => {
        #[doc(hidden)]
        pub struct __WasmhubPolicyExport;
        impl $crate::pods_world::exports::wasmhub::policy::plugin::Guest for __WasmhubPolicyExport {
            fn validate_settings(settings: String) -> Result<(), String> {
                let parsed = $crate::parse_settings::<<$policy as $crate::pods::PodPolicy>::Settings>(&settings)?;
                <$policy as $crate::pods::PodPolicy>::validate_settings(&parsed)
            }
        }
        impl $crate::pods_world::exports::wasmhub::policy::pods::Guest for __WasmhubPolicyExport {
            fn mutate_pod(settings: String, context: $crate::pods::SpawnContext, pod_json: String) -> Result<String, String> {
                let parsed = $crate::parse_settings(&settings)?;
                let pod = $crate::pods::PodJson::new(pod_json);
                let patch = <$policy as $crate::pods::PodPolicy>::mutate_pod(&parsed, context, pod)?;
                $crate::serde_json::to_string(&patch).map_err(|error| error.to_string())
            }
        }
        $crate::pods_world::__export_pods_world!(__WasmhubPolicyExport with_types_in $crate::pods_world);
    };
    (cull: $policy:ty) => {
        #[doc(hidden)]
        pub struct __WasmhubPolicyExport;
        impl $crate::cull_world::exports::wasmhub::policy::plugin::Guest for __WasmhubPolicyExport {
            fn validate_settings(settings: String) -> Result<(), String> {
                let parsed = $crate::parse_settings::<<$policy as $crate::cull::CullPolicy>::Settings>(&settings)?;
                <$policy as $crate::cull::CullPolicy>::validate_settings(&parsed)
            }
        }
        impl $crate::cull_world::exports::wasmhub::policy::cull::Guest for __WasmhubPolicyExport {
            fn decide(settings: String, servers: Vec<$crate::cull::Server>) -> Result<Vec<$crate::cull::Decision>, String> {
                let parsed = $crate::parse_settings(&settings)?;
                <$policy as $crate::cull::CullPolicy>::decide(&parsed, servers)
            }
        }
        $crate::cull_world::__export_cull_world!(__WasmhubPolicyExport with_types_in $crate::cull_world);
    };
}
