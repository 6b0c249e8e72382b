//! KubeSpawner's `profile_list` rules as a profiles policy: every profile is visible; a choice names a profile
//! (empty: the default) and a listed choice or validated free text per option; the override is the profile's
//! `kubespawner_override` with each option's override merged in declaration order (object into object
//! recursively, anything else replaces, `null` kept so that it removes the key downstream). The host's native
//! default (`native/profiles.rs`) decides the same, and a property test holds the two to it.

use serde::Deserialize;
use wasmhub_policy_sdk::User;
use wasmhub_policy_sdk::profiles::{self, Choice, Profile, ProfilePolicy, Resolution};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Settings {}

pub struct KubeSpawnerProfiles;

impl ProfilePolicy for KubeSpawnerProfiles {
    type Settings = Settings;

    fn visible_profiles(_settings: &Settings, _user: User, profiles: Vec<Profile>) -> Result<Vec<String>, String> {
        Ok(profiles.into_iter().map(|profile| profile.slug).collect())
    }

    fn resolve_choice(_settings: &Settings, _user: User, profiles: Vec<Profile>, choice: Choice) -> Result<Resolution, String> {
        profiles::resolve_kubespawner_choice(&profiles::chosen_definitions(&profiles, &choice)?, &choice)
    }
}

wasmhub_policy_sdk::register!(profiles: KubeSpawnerProfiles);
