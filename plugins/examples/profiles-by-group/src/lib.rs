//! Example profiles policy: some profiles are reserved for groups (with the shipped settings only members of
//! `gpu-users` see the `gpu` profile); everything else follows KubeSpawner's rules through the SDK helper.

use std::collections::BTreeMap;

use serde::Deserialize;
use wasmhub_policy_sdk::User;
use wasmhub_policy_sdk::profiles::{self, Choice, Profile, ProfilePolicy, Resolution};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Profile slug → the groups whose members may use it. Profiles not listed are open to everyone.
    restricted: BTreeMap<String, Vec<String>>,
}

pub struct ProfilesByGroup;

fn may_use(settings: &Settings, user: &User, slug: &str) -> bool {
    match settings.restricted.get(slug) {
        None => true,
        Some(groups) => user.groups.iter().any(|group| groups.contains(group)),
    }
}

impl ProfilePolicy for ProfilesByGroup {
    type Settings = Settings;

    fn visible_profiles(settings: &Settings, user: User, profiles: Vec<Profile>) -> Result<Vec<String>, String> {
        Ok(profiles.into_iter().map(|profile| profile.slug).filter(|slug| may_use(settings, &user, slug)).collect())
    }

    fn resolve_choice(settings: &Settings, user: User, profiles: Vec<Profile>, choice: Choice) -> Result<Resolution, String> {
        // Hidden profiles are rejected here too: API clients can name any slug.
        let visible: Vec<Profile> = profiles.into_iter().filter(|profile| may_use(settings, &user, &profile.slug)).collect();
        if !choice.profile.is_empty() && !visible.iter().any(|profile| profile.slug == choice.profile) {
            return Ok(Resolution::Rejected(format!("profile {:?} is not available to {}", choice.profile, user.name)));
        }
        let mut definitions = profiles::definitions(&visible)?;
        // The configured default may be hidden from this user; then the first visible profile is the default.
        if !definitions.iter().any(|(_, definition)| definition.get("default") == Some(&true.into()))
            && let Some((_, first)) = definitions.first_mut()
            && let Some(object) = first.as_object_mut()
        {
            object.insert("default".to_owned(), true.into());
        }
        profiles::resolve_kubespawner_choice(&definitions, &choice)
    }
}

wasmhub_policy_sdk::register!(profiles: ProfilesByGroup);
