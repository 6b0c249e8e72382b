//! KubeSpawner's `profile_list` rules: every profile is visible, a choice names a profile and a choice (or free
//! text) per option, and the spawner override is the profile's `kubespawner_override` with each option's chosen
//! override merged in, in declaration order.

use serde::{Deserialize, Serialize};

use crate::hooks::{OptionValue, Profile, ProfileChoice, ProfileResolution, User};

/// KubeSpawner has no per-user profile rules, so the built-in profile policy has no settings yet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSettings {}

/// Every configured profile, in configured order.
pub fn visible_profiles(_settings: &ProfileSettings, _user: &User, profiles: &[Profile]) -> Vec<String> {
    profiles.iter().map(|profile| profile.slug.clone()).collect()
}

/// Validates a choice and builds its override. `Err` means the profile list itself is malformed.
pub fn resolve_choice(
    _settings: &ProfileSettings,
    _user: &User,
    profiles: &[Profile],
    choice: &ProfileChoice,
) -> Result<ProfileResolution, String> {
    let rejected = |reason: String| Ok(ProfileResolution::Rejected { reason });
    let profile = if choice.profile.is_empty() {
        profiles.iter().find(|profile| profile.definition.get("default") == Some(&true.into()))
    } else {
        profiles.iter().find(|profile| profile.slug == choice.profile)
    };
    let Some(profile) = profile else {
        return rejected(format!("no profile named {:?}", choice.profile));
    };
    let mut merged = match profile.definition.get("kubespawner_override") {
        None | Some(serde_json::Value::Null) => serde_json::Value::Object(serde_json::Map::new()),
        Some(value @ serde_json::Value::Object(_)) => value.clone(),
        Some(_) => return Err(format!("profile {:?}: kubespawner_override is not an object", profile.slug)),
    };
    let empty_options = serde_json::Map::new();
    let options =
        profile.definition.get("profile_options").and_then(|options| options.as_object()).unwrap_or(&empty_options);
    for (index, chosen) in choice.options.iter().enumerate() {
        if !options.contains_key(&chosen.option) {
            return rejected(format!("profile {:?} has no option {:?}", profile.slug, chosen.option));
        }
        if choice.options[..index].iter().any(|earlier| earlier.option == chosen.option) {
            return rejected(format!("option {:?} is chosen twice", chosen.option));
        }
    }
    for (option_name, option) in options {
        let chosen =
            choice.options.iter().find(|chosen| &chosen.option == option_name).map(|chosen| chosen.value.clone());
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
                let enabled =
                    unlisted.and_then(|unlisted| unlisted.get("enabled")).and_then(|enabled| enabled.as_bool());
                if enabled != Some(true) {
                    return rejected(format!("option {option_name:?} does not accept other values"));
                }
                if let Some(pattern) =
                    unlisted.and_then(|unlisted| unlisted.get("validation_regex")).and_then(|p| p.as_str())
                    && !super::python_re_match(pattern, &text)?
                {
                    let message =
                        unlisted.and_then(|unlisted| unlisted.get("validation_message")).and_then(|m| m.as_str());
                    return rejected(match message {
                        Some(message) => message.to_owned(),
                        None => format!("invalid value {text:?} for option {option_name:?}"),
                    });
                }
                unlisted
                    .and_then(|unlisted| unlisted.get("kubespawner_override"))
                    .map(|template| substitute_value(template, &text))
            }
        };
        match option_override {
            None | Some(serde_json::Value::Null) => {}
            Some(value @ serde_json::Value::Object(_)) => merge_override(&mut merged, &value),
            Some(_) => return Err(format!("option {option_name:?}: kubespawner_override is not an object")),
        }
    }
    Ok(ProfileResolution::Resolved { profile: profile.slug.clone(), kubespawner_override: merged })
}

/// The key of the option's default choice (the host's initialisation guarantees one when there are choices).
fn default_choice(option: &serde_json::Value) -> Option<String> {
    let choices = option.get("choices")?.as_object()?;
    choices.iter().find(|(_, choice)| choice.get("default") == Some(&true.into())).map(|(key, _)| key.clone())
}

/// KubeSpawner's `recursive_update`, except that a `null` is kept (not applied) so that it still removes the key
/// when the spawner applies the merged override to its own configuration.
pub(crate) fn merge_override(target: &mut serde_json::Value, update: &serde_json::Value) {
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

/// KubeSpawner's `recursive_format` for unlisted choices: `{value}` in every string becomes the typed text;
/// other placeholders are left alone.
fn substitute_value(template: &serde_json::Value, text: &str) -> serde_json::Value {
    match template {
        serde_json::Value::String(string) => serde_json::Value::String(string.replace("{value}", text)),
        serde_json::Value::Array(items) => items.iter().map(|item| substitute_value(item, text)).collect(),
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter().map(|(key, value)| (key.clone(), substitute_value(value, text))).collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::{OptionChoice, initialize_profiles};

    fn seed_profiles() -> Vec<Profile> {
        initialize_profiles(&[
            serde_json::json!({"display_name": "CPU", "kubespawner_override": {"cpu_limit": 2, "node_selector": {"pool": "cpu"}}}),
            serde_json::json!({
                "display_name": "GPU", "slug": "gpu",
                "kubespawner_override": {"node_selector": {"pool": "gpu"}, "tolerations": [{"key": "a"}]},
                "profile_options": {
                    "image": {
                        "display_name": "Image",
                        "choices": {
                            "torch": {"display_name": "PyTorch", "kubespawner_override": {"image": "torch:1", "node_selector": {"gpu": "a100"}}},
                            "tf": {"display_name": "TF", "kubespawner_override": {"image": "tf:2", "tolerations": [], "node_selector": {"pool": null}}}
                        },
                        "unlisted_choice": {"enabled": true, "validation_regex": "^[a-z]+:[0-9]+$",
                            "validation_message": "image must be name:tag", "kubespawner_override": {"image": "{value}", "args": ["{value}", "{other}"]}}
                    }
                }
            }),
        ])
        .unwrap()
    }

    fn user() -> User {
        User { name: "alice".into(), admin: false, groups: vec![] }
    }

    fn resolve(choice: ProfileChoice) -> ProfileResolution {
        resolve_choice(&ProfileSettings {}, &user(), &seed_profiles(), &choice).unwrap()
    }

    fn choose(profile: &str, option: &str, value: OptionValue) -> ProfileChoice {
        ProfileChoice { profile: profile.into(), options: vec![OptionChoice { option: option.into(), value }] }
    }

    #[test]
    fn empty_choice_takes_the_default_profile() {
        assert_eq!(
            resolve(ProfileChoice::default()),
            ProfileResolution::Resolved {
                profile: "cpu".into(),
                kubespawner_override: serde_json::json!({"cpu_limit": 2, "node_selector": {"pool": "cpu"}})
            }
        );
    }

    #[test]
    fn dicts_merge_lists_replace_null_is_kept_and_defaults_apply() {
        assert_eq!(
            resolve(choose("gpu", "image", OptionValue::Listed("tf".into()))),
            ProfileResolution::Resolved {
                profile: "gpu".into(),
                kubespawner_override: serde_json::json!({"node_selector": {"pool": null}, "tolerations": [], "image": "tf:2"})
            }
        );
        let default = resolve(ProfileChoice { profile: "gpu".into(), options: vec![] });
        assert_eq!(
            default,
            ProfileResolution::Resolved {
                profile: "gpu".into(),
                kubespawner_override: serde_json::json!({"node_selector": {"pool": "gpu", "gpu": "a100"}, "tolerations": [{"key": "a"}], "image": "torch:1"})
            }
        );
    }

    #[test]
    fn unlisted_choices_are_validated_and_substituted() {
        let resolution = resolve(choose("gpu", "image", OptionValue::Unlisted("mine:3".into())));
        let ProfileResolution::Resolved { kubespawner_override, .. } = resolution else { panic!("{resolution:?}") };
        assert_eq!(kubespawner_override["image"], "mine:3");
        assert_eq!(kubespawner_override["args"], serde_json::json!(["mine:3", "{other}"]));
        assert_eq!(
            resolve(choose("gpu", "image", OptionValue::Unlisted("Bad".into()))),
            ProfileResolution::Rejected { reason: "image must be name:tag".into() }
        );
    }

    #[test]
    fn unknown_profiles_options_and_choices_are_rejected() {
        assert!(matches!(
            resolve(choose("nope", "image", OptionValue::Listed("tf".into()))),
            ProfileResolution::Rejected { .. }
        ));
        assert!(matches!(
            resolve(choose("gpu", "size", OptionValue::Listed("tf".into()))),
            ProfileResolution::Rejected { .. }
        ));
        assert!(matches!(
            resolve(choose("gpu", "image", OptionValue::Listed("jax".into()))),
            ProfileResolution::Rejected { .. }
        ));
        assert!(matches!(
            resolve(choose("cpu", "image", OptionValue::Listed("tf".into()))),
            ProfileResolution::Rejected { .. }
        ));
    }
}
