//! API-token callers already resolved in this process. Resolving one reads the token, its owner, the owner's
//! groups and every role's scopes; that was most of an authenticated request's database work. A presented token
//! is resolved once and then found here by a one-round digest under a random per-process key (as in the store's
//! `verified.rs`): the cache never holds a plaintext.
//!
//! Staleness is ruled out by the store's [`auth_generation`](wasmhub_store::Store::auth_generation), which moves
//! after every committed write that can change an existing token's grant or existence. The cache remembers the
//! generation its entries were resolved under: a lookup under a newer one empties it first, and an entry resolved
//! under an older one is not kept. Because the resolver reads the generation before reading the database, a write
//! that resolution might have missed has moved the generation past the entry's, so a revoked token or a removed
//! role stops working with the next request. Expiry is checked on every hit.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use wasmhub_model::TokenId;
use wasmhub_model::UserName;
use wasmhub_model::token::keyed_digest;
use wasmhub_store::{ApiToken, Timestamp, TokenOwner};

use crate::access::caller::{ACTIVITY_RESOLUTION, Caller};

/// More entries than this and the cache starts over; each entry is one token in use.
const MAX_ENTRIES: usize = 8192;

pub(crate) struct CallerCache {
    key: [u8; 32],
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The store generation every entry was resolved under.
    generation: u64,
    entries: HashMap<[u8; 64], Entry>,
}

struct Entry {
    caller: Caller,
    token: TokenId,
    expires_at: Option<Timestamp>,
    /// The user whose activity a use of this token records (none for services and servers' own tokens).
    active_user: Option<UserName>,
    /// When the token's activity was last written (or read from the store); the next write is due
    /// [`ACTIVITY_RESOLUTION`] later.
    activity_at: Option<Timestamp>,
}

/// Activity a cache hit should record: the token's, and its user's when [`Self::user`] is set.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ActivityDue {
    pub(crate) token: TokenId,
    pub(crate) user: Option<UserName>,
}

impl CallerCache {
    pub(crate) fn new() -> CallerCache {
        let mut key = [0u8; 32];
        // Once, when the hub is built. Without an OS random source the hub cannot make a session or token
        // either, so refusing to start is the only sensible answer (as `serve` does for its cookie secret).
        getrandom::fill(&mut key).expect("the OS random source is available");
        CallerCache { key, inner: Mutex::new(Inner::default()) }
    }

    /// The caller `presented` resolved to under store generation `generation`, if still current and unexpired at
    /// `now`, with the activity to record when it is due (claimed here, so concurrent hits write it once).
    pub(crate) fn get(
        &self,
        presented: &str,
        generation: u64,
        now: Timestamp,
    ) -> Option<(Caller, Option<ActivityDue>)> {
        let digest = keyed_digest(presented, &self.key);
        // A panic while holding the lock leaves the map consistent (each change is one insert, remove or clear).
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.generation != generation {
            inner.entries.clear();
            inner.generation = inner.generation.max(generation);
            return None;
        }
        let entry = inner.entries.get_mut(&digest)?;
        if entry.expires_at.is_some_and(|expires_at| expires_at < now) {
            inner.entries.remove(&digest);
            return None;
        }
        let due = entry.activity_at.is_none_or(|last| now - last >= ACTIVITY_RESOLUTION);
        let activity = due.then(|| {
            entry.activity_at = Some(now);
            ActivityDue { token: entry.token, user: entry.active_user.clone() }
        });
        Some((entry.caller.clone(), activity))
    }

    /// Remembers `caller`, resolved from `token` after reading `generation`; `activity_at` is when the token's
    /// activity was last written. Kept only if no auth-relevant write happened since `generation` was read.
    pub(crate) fn insert(
        &self,
        presented: &str,
        generation: u64,
        caller: &Caller,
        token: &ApiToken,
        activity_at: Option<Timestamp>,
    ) {
        let digest = keyed_digest(presented, &self.key);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if generation < inner.generation {
            return;
        }
        if generation > inner.generation || inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
            inner.generation = generation;
        }
        let active_user = match &token.owner {
            TokenOwner::User(user) if !counts_as_server(token) => Some(user.clone()),
            _ => None,
        };
        let entry =
            Entry { caller: caller.clone(), token: token.id, expires_at: token.expires_at, active_user, activity_at };
        inner.entries.insert(digest, entry);
    }
}

/// A server's own token ("Server at ...") does not make its user active (`hub-contract.md` §9.9).
pub(crate) fn counts_as_server(token: &ApiToken) -> bool {
    token.note.starts_with("Server at ")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{TimeDelta, Utc};
    use wasmhub_model::ServiceName;

    use super::*;
    use crate::access::caller::Credential;
    use crate::access::scopes::{Owner, ScopeSet};

    fn token(owner: TokenOwner, note: &str, expires_at: Option<Timestamp>) -> ApiToken {
        ApiToken {
            id: TokenId(7),
            owner,
            client_id: "jupyterhub".into(),
            prefix: "abcd".into(),
            scopes: vec!["inherit".into()],
            note: note.into(),
            session_id: None,
            created: Utc::now(),
            expires_at,
            last_activity: None,
        }
    }

    fn caller() -> Caller {
        Caller {
            owner: Some(Owner::User("alice".into())),
            scopes: Arc::new(ScopeSet::default()),
            admin: false,
            credential: Credential::Token { id: TokenId(7), session_id: None },
        }
    }

    fn alice() -> TokenOwner {
        TokenOwner::User(UserName::parse("alice").unwrap())
    }

    #[test]
    fn an_entry_lives_only_in_its_generation() {
        let cache = CallerCache::new();
        let now = Utc::now();
        cache.insert("tok-1", 3, &caller(), &token(alice(), "test", None), Some(now));
        assert!(cache.get("tok-1", 3, now).is_some());
        assert!(cache.get("tok-2", 3, now).is_none(), "another token");
        assert!(cache.get("tok-1", 4, now).is_none(), "a write happened since");
        assert!(cache.get("tok-1", 3, now).is_none(), "the newer generation emptied the cache");
        // Resolved before the write but inserted after it: not kept.
        cache.insert("tok-1", 3, &caller(), &token(alice(), "test", None), Some(now));
        assert!(cache.get("tok-1", 4, now).is_none());
        cache.insert("tok-1", 4, &caller(), &token(alice(), "test", None), Some(now));
        assert!(cache.get("tok-1", 4, now).is_some());
    }

    #[test]
    fn an_expired_token_is_not_served() {
        let cache = CallerCache::new();
        let now = Utc::now();
        let expires = now + TimeDelta::seconds(5);
        cache.insert("tok", 0, &caller(), &token(alice(), "test", Some(expires)), Some(now));
        assert!(cache.get("tok", 0, expires).is_some(), "valid through its expiry instant, as in the store");
        assert!(cache.get("tok", 0, expires + TimeDelta::microseconds(1)).is_none());
        assert!(cache.get("tok", 0, now).is_none(), "and gone afterwards");
    }

    #[test]
    fn activity_is_due_once_per_resolution() {
        let cache = CallerCache::new();
        let now = Utc::now();
        cache.insert("user", 0, &caller(), &token(alice(), "test", None), Some(now));
        cache.insert("server", 0, &caller(), &token(alice(), "Server at /user/alice/", None), None);
        let service = TokenOwner::Service(ServiceName::parse("bench").unwrap());
        cache.insert("service", 0, &caller(), &token(service, "", None), None);
        assert_eq!(cache.get("user", 0, now).unwrap().1, None);
        let later = now + ACTIVITY_RESOLUTION;
        let user = UserName::parse("alice").unwrap();
        assert_eq!(cache.get("user", 0, later).unwrap().1, Some(ActivityDue { token: TokenId(7), user: Some(user) }));
        assert_eq!(cache.get("user", 0, later).unwrap().1, None, "claimed by the first hit");
        assert_eq!(cache.get("server", 0, now).unwrap().1, Some(ActivityDue { token: TokenId(7), user: None }));
        assert_eq!(cache.get("service", 0, now).unwrap().1, Some(ActivityDue { token: TokenId(7), user: None }));
    }
}
