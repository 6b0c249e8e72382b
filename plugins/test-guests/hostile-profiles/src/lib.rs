//! Test guest: a profiles policy that misbehaves as its settings say (see `../hostile/behaviour.rs`). When it
//! behaves, it shows every profile.

use wasmhub_policy_sdk::User;
use wasmhub_policy_sdk::profiles::{Choice, Profile, ProfilePolicy, Resolution, Resolved};

#[path = "../../hostile/behaviour.rs"]
mod behaviour;

use behaviour::{Settings, misbehave, validate};

pub struct Hostile;

impl ProfilePolicy for Hostile {
    type Settings = Settings;

    fn validate_settings(settings: &Settings) -> Result<(), String> {
        validate(settings)
    }

    fn visible_profiles(settings: &Settings, user: User, profiles: Vec<Profile>) -> Result<Vec<String>, String> {
        let malformed = misbehave(settings, &user.name)?;
        let mut slugs: Vec<String> = profiles.into_iter().map(|profile| profile.slug).collect();
        if malformed {
            slugs.push("no-such-profile".to_owned());
        }
        Ok(slugs)
    }

    fn resolve_choice(
        settings: &Settings,
        user: User,
        _profiles: Vec<Profile>,
        choice: Choice,
    ) -> Result<Resolution, String> {
        let malformed = misbehave(settings, &user.name)?;
        let override_json = if malformed { "[1, 2]".to_owned() } else { "{}".to_owned() };
        Ok(Resolution::Resolved(Resolved { profile: choice.profile, override_json }))
    }
}

wasmhub_policy_sdk::register!(profiles: Hostile);
