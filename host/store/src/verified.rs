//! Tokens already verified against their slow hash in this process. A supplied token (config `apiToken`, a
//! service's token) is stored with 16384 rounds of sha512, about a millisecond of CPU per check; JupyterHub pays
//! it on every request, which made it the largest cost of an API call. Here a presented token is hashed slowly
//! once, and then recognised by a one-round digest under a random per-process key. The cache holds that digest
//! and the stored hash it matched, never the plaintext; an entry only applies while the row with that exact
//! stored hash is still what the lookup returns, so a deleted, expired or replaced token is never accepted.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use wasmhub_model::token::keyed_digest;

use crate::StoreResult;
use crate::encoding::parse_hash;

/// More entries than this and the cache starts over; a hub has few slow-hashed tokens in use.
const MAX_ENTRIES: usize = 4096;

#[derive(Debug)]
pub(crate) struct VerifiedTokens {
    key: [u8; 32],
    entries: Mutex<HashMap<[u8; 64], String>>,
}

impl VerifiedTokens {
    pub(crate) fn new() -> VerifiedTokens {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source is available");
        VerifiedTokens { key, entries: Mutex::new(HashMap::new()) }
    }

    /// Whether `presented` hashes to `stored`, with the slow hash only the first time per stored hash.
    pub(crate) fn matches(&self, presented: &str, stored: &str) -> StoreResult<bool> {
        let hash = parse_hash(stored)?;
        if hash.rounds() <= 1 {
            return Ok(hash.matches(presented));
        }
        let digest = keyed_digest(presented, &self.key);
        // A panic elsewhere while holding the lock leaves a map that is still consistent (one insert or clear),
        // so a poisoned lock is used as it is rather than failing every later login.
        if self.entries.lock().unwrap_or_else(PoisonError::into_inner).get(&digest).is_some_and(|known| known == stored)
        {
            return Ok(true);
        }
        if !hash.matches(presented) {
            return Ok(false);
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(digest, stored.to_owned());
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmhub_model::{PlainToken, TokenKind};

    #[test]
    fn a_token_is_recognised_only_against_the_hash_it_matched() {
        let cache = VerifiedTokens::new();
        let token = PlainToken::parse("supplied-token-123").unwrap();
        let stored = token.hash(TokenKind::Supplied, [1; 8]).to_string();
        let other = token.hash(TokenKind::Supplied, [2; 8]).to_string();
        assert!(!cache.matches("supplied-token-124", &stored).unwrap());
        assert!(cache.matches(token.as_str(), &stored).unwrap());
        assert!(cache.matches(token.as_str(), &stored).unwrap(), "the cached answer");
        assert!(cache.entries.lock().unwrap().values().all(|known| !known.contains(token.as_str())));
        // The same plaintext against a new stored hash (the token was replaced) is checked again, and matches.
        assert!(cache.matches(token.as_str(), &other).unwrap());
        let wrong = PlainToken::parse("another-token-1").unwrap().hash(TokenKind::Supplied, [3; 8]).to_string();
        assert!(!cache.matches(token.as_str(), &wrong).unwrap());
    }
}
