//! Login throttling for the password form: failures are counted per user name and per client address, and after
//! too many in a window that name or address is locked out for a while, answered 429 without asking the
//! authenticator. JupyterHub has no such thing; NativeAuthenticator locks a name after failures, and this does the
//! same for every form authenticator and adds the address, so guessing many names from one place stops too.
//!
//! A success clears its user name's failures but not its address's, so an attacker who owns one account cannot
//! reset the address count by logging into it between guesses. The state lives in memory: a hub restart lifts
//! every lockout, which admins can also do one at a time (`api/throttle.rs`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// How many failures lock what, and for how long. A limit of 0 turns that count off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures of one user name within `window` that lock the name.
    pub max_failures_per_user: u32,
    /// Failures from one client address within `window` that lock the address.
    pub max_failures_per_address: u32,
    /// Failures older than this are forgotten.
    pub window: Duration,
    /// How long a lockout lasts.
    pub lockout: Duration,
}

impl Default for ThrottleSettings {
    fn default() -> ThrottleSettings {
        ThrottleSettings {
            max_failures_per_user: 5,
            max_failures_per_address: 20,
            window: Duration::from_secs(600),
            lockout: Duration::from_secs(300),
        }
    }
}

/// What is counted: a user name as typed (trimmed, lowercased) or a client address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ThrottleKey {
    User(String),
    Address(IpAddr),
}

/// A lockout as admins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lockout {
    pub(crate) key: ThrottleKey,
    pub(crate) failures: u32,
    pub(crate) until: DateTime<Utc>,
}

#[derive(Debug)]
struct Entry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

/// Entries beyond this many are pruned of expired ones, so a flood of names cannot grow memory without bound.
const PRUNE_ABOVE: usize = 10_000;

/// The failure counts; one per hub.
#[derive(Debug, Default)]
pub(crate) struct LoginThrottle {
    settings: ThrottleSettings,
    entries: Mutex<HashMap<ThrottleKey, Entry>>,
}

impl LoginThrottle {
    pub(crate) fn new(settings: ThrottleSettings) -> LoginThrottle {
        LoginThrottle { settings, entries: Mutex::default() }
    }

    /// The user key for a name as typed in the form.
    pub(crate) fn user_key(name: &str) -> ThrottleKey {
        ThrottleKey::User(name.trim().to_lowercase())
    }

    /// How long until `keys` may try again, if any of them is locked now.
    pub(crate) fn locked(&self, keys: &[ThrottleKey]) -> Option<Duration> {
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.iter()
            .filter_map(|key| entries.get(key)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Counts a failure for each key; a key that reaches its limit is locked (and logged once).
    pub(crate) fn record_failure(&self, keys: &[ThrottleKey]) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() > PRUNE_ABOVE {
            let settings = &self.settings;
            entries.retain(|_, entry| !entry.expired(now, settings));
        }
        for key in keys {
            let limit = match key {
                ThrottleKey::User(_) => self.settings.max_failures_per_user,
                ThrottleKey::Address(_) => self.settings.max_failures_per_address,
            };
            if limit == 0 {
                continue;
            }
            let entry =
                entries.entry(key.clone()).or_insert(Entry { window_start: now, failures: 0, locked_until: None });
            if entry.expired(now, &self.settings) {
                *entry = Entry { window_start: now, failures: 0, locked_until: None };
            }
            entry.failures += 1;
            if entry.failures >= limit && entry.locked_until.is_none_or(|until| until <= now) {
                entry.locked_until = Some(now + self.settings.lockout);
                tracing::warn!(
                    key = ?key,
                    failures = entry.failures,
                    lockout_seconds = self.settings.lockout.as_secs(),
                    "login locked after repeated failures"
                );
            }
        }
    }

    /// A successful login clears its user name's failures.
    pub(crate) fn record_success(&self, user: &ThrottleKey) {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(user);
    }

    /// The lockouts in force, in key order.
    pub(crate) fn lockouts(&self) -> Vec<Lockout> {
        let now = Instant::now();
        let wall = Utc::now();
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut lockouts: Vec<Lockout> = entries
            .iter()
            .filter_map(|(key, entry)| {
                let until = entry.locked_until.filter(|until| *until > now)?;
                let left = chrono::TimeDelta::from_std(until - now).unwrap_or_default();
                Some(Lockout { key: key.clone(), failures: entry.failures, until: wall + left })
            })
            .collect();
        lockouts.sort_by(|left, right| left.key.cmp(&right.key));
        lockouts
    }

    /// Lifts a lockout and forgets the key's failures; whether there was anything to lift.
    pub(crate) fn unlock(&self, key: &ThrottleKey) -> bool {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key).is_some()
    }
}

impl Entry {
    /// Nothing left to remember: the window has passed and no lockout is in force.
    fn expired(&self, now: Instant, settings: &ThrottleSettings) -> bool {
        now.duration_since(self.window_start) > settings.window && self.locked_until.is_none_or(|until| until <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(per_user: u32, per_address: u32) -> LoginThrottle {
        LoginThrottle::new(ThrottleSettings {
            max_failures_per_user: per_user,
            max_failures_per_address: per_address,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(30),
        })
    }

    #[test]
    fn a_name_locks_after_its_limit_and_a_success_before_it_starts_over() {
        let throttle = throttle(3, 0);
        let alice = LoginThrottle::user_key(" Alice ");
        throttle.record_failure(std::slice::from_ref(&alice));
        throttle.record_failure(std::slice::from_ref(&alice));
        throttle.record_success(&alice);
        throttle.record_failure(std::slice::from_ref(&alice));
        throttle.record_failure(std::slice::from_ref(&alice));
        assert_eq!(throttle.locked(std::slice::from_ref(&alice)), None);
        throttle.record_failure(std::slice::from_ref(&alice));
        let left = throttle.locked(&[LoginThrottle::user_key("alice")]).expect("locked");
        assert!(left <= Duration::from_secs(30) && left > Duration::from_secs(25), "{left:?}");
        let lockouts = throttle.lockouts();
        assert_eq!(lockouts.len(), 1);
        assert_eq!((lockouts[0].key.clone(), lockouts[0].failures), (ThrottleKey::User("alice".into()), 3));
        assert!(throttle.unlock(&alice));
        assert_eq!(throttle.locked(&[alice]), None);
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten_and_a_lockout_ends() {
        // Only lower bounds on time are relied on (a sleep lasts at least as long as asked), so load cannot flake it.
        let short_window = LoginThrottle::new(ThrottleSettings {
            max_failures_per_user: 2,
            max_failures_per_address: 0,
            window: Duration::from_millis(50),
            lockout: Duration::from_secs(60),
        });
        let bob = LoginThrottle::user_key("bob");
        short_window.record_failure(std::slice::from_ref(&bob));
        std::thread::sleep(Duration::from_millis(80));
        short_window.record_failure(std::slice::from_ref(&bob));
        assert_eq!(short_window.locked(std::slice::from_ref(&bob)), None, "the first failure was outside the window");

        let short_lockout = LoginThrottle::new(ThrottleSettings {
            max_failures_per_user: 1,
            max_failures_per_address: 0,
            window: Duration::from_secs(60),
            lockout: Duration::from_millis(50),
        });
        short_lockout.record_failure(std::slice::from_ref(&bob));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(short_lockout.locked(std::slice::from_ref(&bob)), None, "the lockout ran out");
    }

    #[test]
    fn an_address_locks_across_names_and_a_zero_limit_counts_nothing() {
        let throttle = throttle(0, 2);
        let address = ThrottleKey::Address("192.0.2.7".parse().unwrap());
        throttle.record_failure(&[LoginThrottle::user_key("a"), address.clone()]);
        throttle.record_failure(&[LoginThrottle::user_key("b"), address.clone()]);
        assert!(throttle.locked(&[LoginThrottle::user_key("c"), address.clone()]).is_some());
        assert!(throttle.locked(&[LoginThrottle::user_key("a")]).is_none(), "per-user counting is off");
        throttle.record_success(&LoginThrottle::user_key("a"));
        assert!(throttle.locked(&[address]).is_some(), "a success does not clear the address");
    }
}
