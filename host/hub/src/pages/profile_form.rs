//! KubeSpawner's profile form: the profiles a user may start as `spawn.html` iterates them, and the form's fields
//! turned back into `user_options` (`options_from_form`).

use minijinja::{Value as TemplateValue, context};
use serde_json::{Map, Value};
use wasmhub_policy::hooks::Profile;

use crate::spawns::profiles::UNLISTED_SUFFIX;

/// KubeSpawner's `options_from_form`: `profile`, and the chosen profile's `profile-option-<slug>--<option>`
/// fields under their option names (free text under `<option>--unlisted-choice`).
pub(crate) fn options_from_form(fields: &[(String, String)]) -> Map<String, Value> {
    let mut options = Map::new();
    let Some((_, profile)) = fields.iter().find(|(key, _)| key == "profile") else { return options };
    options.insert("profile".to_owned(), Value::String(profile.clone()));
    let prefix = format!("profile-option-{profile}--");
    for (key, value) in fields {
        if let Some(option) = key.strip_prefix(&prefix) {
            // The free-text field is always in the form; empty, it chose nothing.
            if option.ends_with(UNLISTED_SUFFIX) && value.is_empty() {
                continue;
            }
            options.insert(option.to_owned(), Value::String(value.clone()));
        }
    }
    options
}

/// The profiles as `spawn.html` iterates them: options and choices as ordered lists.
pub(crate) fn for_template(profiles: &[Profile]) -> Vec<TemplateValue> {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or_default().to_owned();
    let flag = |value: Option<&Value>| value.and_then(Value::as_bool).unwrap_or(false);
    profiles
        .iter()
        .map(|profile| {
            let definition = &profile.definition;
            let empty = Map::new();
            let options =
                definition.get("profile_options").and_then(Value::as_object).unwrap_or(&empty).iter().map(|(name, option)| {
                    let choices: Vec<TemplateValue> = option
                        .get("choices")
                        .and_then(Value::as_object)
                        .unwrap_or(&empty)
                        .iter()
                        .map(|(key, choice)| {
                            context! {
                                key => key,
                                display_name => text(choice.get("display_name")),
                                default => flag(choice.get("default")),
                            }
                        })
                        .collect();
                    let unlisted = option.get("unlisted_choice");
                    let field = |key: &str| unlisted.and_then(|unlisted| unlisted.get(key));
                    let in_choices = text(field("display_name_in_choices"));
                    context! {
                        name => name,
                        display_name => text(option.get("display_name")),
                        choices => choices,
                        unlisted => context! {
                            enabled => flag(field("enabled")),
                            display_name => text(field("display_name")),
                            display_name_in_choices => if in_choices.is_empty() { "Other...".to_owned() } else { in_choices },
                            validation_regex => text(field("validation_regex")),
                            validation_message => text(field("validation_message")),
                        },
                    }
                });
            context! {
                slug => profile.slug,
                display_name => text(definition.get("display_name")),
                description => text(definition.get("description")),
                default => flag(definition.get("default")),
                options => options.collect::<Vec<_>>(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spawns::profiles::choice_from_options;
    use wasmhub_policy::hooks::{self, OptionValue};

    #[test]
    fn form_fields_become_kubespawner_user_options_and_a_choice() {
        let profiles = hooks::initialize_profiles(&[
            serde_json::json!({"display_name": "CPU"}),
            serde_json::json!({"display_name": "GPU", "slug": "gpu", "profile_options": {
                "image": {"choices": {"torch": {"display_name": "PyTorch"}}, "unlisted_choice": {"enabled": true}},
                "size": {"choices": {"s": {}, "l": {}}}
            }}),
        ])
        .unwrap();
        let pairs = |items: &[(&str, &str)]| -> Vec<(String, String)> {
            items.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
        };
        let fields = pairs(&[
            ("_xsrf", "x"),
            ("profile", "gpu"),
            ("profile-option-cpu--image", "ignored"),
            ("profile-option-gpu--image", "unlisted-choice"),
            ("profile-option-gpu--image--unlisted-choice", "my/image:1"),
            ("profile-option-gpu--size", "l"),
        ]);
        let options = options_from_form(&fields);
        assert_eq!(
            Value::Object(options.clone()),
            serde_json::json!({"profile": "gpu", "image": "unlisted-choice", "image--unlisted-choice": "my/image:1", "size": "l"})
        );
        let choice = choice_from_options(&profiles, &options);
        assert_eq!(choice.profile, "gpu");
        assert_eq!(choice.options[0].value, OptionValue::Unlisted("my/image:1".into()));
        assert_eq!(choice.options[1].value, OptionValue::Listed("l".into()));
        assert_eq!(for_template(&profiles).len(), 2);
        assert!(options_from_form(&pairs(&[("_xsrf", "x")])).is_empty());
        // "Other..." with nothing typed names no choice: it goes to the hook as the select's own value, which no
        // profile lists, so the spawn is refused instead of quietly getting the option's default.
        let empty_other = options_from_form(&pairs(&[
            ("profile", "gpu"),
            ("profile-option-gpu--image", "unlisted-choice"),
            ("profile-option-gpu--image--unlisted-choice", ""),
        ]));
        let choice = choice_from_options(&profiles, &empty_other);
        assert_eq!(choice.options[0].value, OptionValue::Listed("unlisted-choice".into()));
    }
}
