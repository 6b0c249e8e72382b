//! The profiles hook as spawns and the spawn form use it: which of `HubConfig::profiles` a user sees, and the one
//! decision per spawn that turns `user_options` into a resolved profile (KubeSpawner's `_load_profile`), which the
//! spawner then applies without deciding again.

use serde_json::{Map, Value};
use wasmhub_policy::hooks::{OptionChoice, OptionValue, Profile, ProfileChoice, ProfileResolution};
use wasmhub_spawner::ResolvedProfile;
use wasmhub_store::User;

use crate::Hub;
use crate::policy::policy_user;

/// KubeSpawner's value of a select whose free-text field holds the choice.
const UNLISTED: &str = "unlisted-choice";
pub(crate) const UNLISTED_SUFFIX: &str = "--unlisted-choice";

/// The configured profiles `user` may see, in configured order.
pub(crate) async fn visible(hub: &Hub, user: &User) -> Vec<Profile> {
    let profiles = hub.config().profiles.clone();
    if profiles.is_empty() {
        return profiles;
    }
    let slugs = hub.policies().visible_profiles(policy_user(user), profiles.clone()).await;
    profiles.into_iter().filter(|profile| slugs.contains(&profile.slug)).collect()
}

/// The choice `user_options` names: the profile (empty for the default) and each option's listed key or text.
pub(crate) fn choice_from_options(profiles: &[Profile], options: &Map<String, Value>) -> ProfileChoice {
    let text = |key: &str| options.get(key).and_then(Value::as_str).map(str::to_owned);
    let profile = text("profile").unwrap_or_default();
    let definition = profiles.iter().find(|candidate| candidate.slug == profile).map(|found| &found.definition);
    let mut choice = ProfileChoice { profile, options: Vec::new() };
    let Some(option_names) = definition.and_then(|definition| definition.get("profile_options")?.as_object().cloned())
    else {
        return choice;
    };
    for option in option_names.keys() {
        let unlisted = text(&format!("{option}{UNLISTED_SUFFIX}"));
        let value = match (text(option), unlisted) {
            (Some(listed), _) if listed != UNLISTED => OptionValue::Listed(listed),
            (_, Some(typed)) => OptionValue::Unlisted(typed),
            // "Other..." chosen with nothing typed names no choice: the hook refuses it rather than the option
            // silently falling back to its default.
            (Some(listed), None) => OptionValue::Listed(listed),
            (None, None) => continue,
        };
        choice.options.push(OptionChoice { option: option.clone(), value });
    }
    choice
}

/// The spawn's one profile decision: `None` without configured profiles, else the profile `user_options` names
/// (the default one when they name none) with its resolved `kubespawner_override`; `Err` is the reason to show
/// the user.
pub(crate) async fn resolve(
    hub: &Hub,
    user: &User,
    options: &Map<String, Value>,
) -> Result<Option<ResolvedProfile>, String> {
    let profiles = hub.config().profiles.clone();
    if profiles.is_empty() {
        return Ok(None);
    }
    let choice = choice_from_options(&profiles, options);
    match hub.policies().choose_profile(policy_user(user), profiles, choice).await {
        ProfileResolution::Resolved { profile, kubespawner_override } => {
            let kubespawner_override = match kubespawner_override {
                Value::Object(overrides) => overrides,
                _ => Map::new(),
            };
            Ok(Some(ResolvedProfile { slug: profile, kubespawner_override }))
        }
        ProfileResolution::Rejected { reason } => Err(reason),
    }
}
