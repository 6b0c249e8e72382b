//! The hub's front to the policy host: every hook decision the hub needs, as an async call that runs the blocking
//! host call (which may run a WebAssembly guest up to its deadline) on tokio's blocking pool, never on the async
//! workers. The host is always there: without policy files its slots hold the built-in rules, so no caller
//! branches on whether policies are configured.
//!
//! A call that panics decides as narrowly as it can: no login, no profiles, no pod, and no server culled.
//! Failure never widens access.

mod pods;

use std::sync::Arc;

use wasmhub_policy::PolicyHost;
use wasmhub_policy::hooks::{
    AuthDecision, CullDecision, CullServer, Identity, Profile, ProfileChoice, ProfileResolution, User,
};

/// A stored user as every hook sees them.
pub(crate) fn policy_user(user: &wasmhub_store::User) -> User {
    User {
        name: user.name.to_string(),
        admin: user.admin,
        groups: user.groups.iter().map(|group| group.to_string()).collect(),
    }
}

/// The policy host behind async calls. Cheap to clone.
#[derive(Clone)]
pub struct Policies {
    host: Arc<PolicyHost>,
}

impl Policies {
    pub fn new(host: Arc<PolicyHost>) -> Policies {
        Policies { host }
    }

    /// The host itself, for its status and counters.
    pub fn host(&self) -> &Arc<PolicyHost> {
        &self.host
    }

    /// The auth hook: allow (with the user's name, admin change and groups) or deny.
    pub async fn authenticate(&self, identity: Identity) -> AuthDecision {
        let host = self.host.clone();
        tokio::task::spawn_blocking(move || host.authenticate(&identity)).await.unwrap_or_else(|error| {
            AuthDecision::Deny { reason: format!("login is unavailable: the auth hook panicked ({error})") }
        })
    }

    /// The profiles hook's list for the spawn form: the slugs `user` may see.
    pub async fn visible_profiles(&self, user: User, profiles: Vec<Profile>) -> Vec<String> {
        let host = self.host.clone();
        // A panic shows nothing rather than everything.
        tokio::task::spawn_blocking(move || host.visible_profiles(&user, &profiles)).await.unwrap_or_default()
    }

    /// The profiles hook's decision for one spawn ([`PolicyHost::choose_profile`]).
    pub async fn choose_profile(&self, user: User, profiles: Vec<Profile>, choice: ProfileChoice) -> ProfileResolution {
        let host = self.host.clone();
        tokio::task::spawn_blocking(move || host.choose_profile(&user, &profiles, &choice)).await.unwrap_or_else(
            |error| ProfileResolution::Rejected { reason: format!("the profiles hook failed: {error}") },
        )
    }

    /// The cull hook for one batch of servers; a panic decides nothing, which keeps every server.
    pub async fn decide_cull(&self, servers: Vec<CullServer>) -> Vec<CullDecision> {
        let host = self.host.clone();
        tokio::task::spawn_blocking(move || host.decide_cull(&servers)).await.unwrap_or_default()
    }
}
