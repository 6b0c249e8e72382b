//! Tokens as JupyterHub makes and keeps them: the plaintext formats, the stored prefix and salted hash, and the
//! constant-time check.
//!
//! JupyterHub's `orm.Hashed` stores a token as its first 4 characters (`prefix`, to narrow the lookup) and
//! `sha512:<rounds>:<salt>:<hexdigest>`, where the digest is sha512 over the salt's hex text followed by the token
//! repeated `rounds` times (`utils.hash_token`). Generated tokens carry 122+ bits of entropy, so one round is
//! enough; tokens a person chose (config `api_tokens`, OAuth client secrets) get 16384 rounds. We keep the same
//! format, so a hash written by either program verifies in the other.

use std::fmt;

use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

/// Characters of the plaintext kept in clear for lookup (`Hashed.prefix_length`).
pub const TOKEN_PREFIX_CHARS: usize = 4;
/// The shortest token a caller may supply (`Hashed.min_length`).
pub const TOKEN_MIN_CHARS: usize = 8;
/// Longer presented tokens are never matched, so an attacker cannot make us hash megabytes per request.
pub const TOKEN_MAX_CHARS: usize = 64;
/// Hash rounds for generated tokens (`Hashed.generated_rounds`).
pub const GENERATED_TOKEN_ROUNDS: u32 = 1;
/// Hash rounds for supplied tokens and client secrets (`Hashed.rounds`).
pub const SUPPLIED_TOKEN_ROUNDS: u32 = 16384;
/// Random bytes in a salt (`Hashed.salt_bytes`); stored as 16 hex characters.
pub const SALT_BYTES: usize = 8;
/// Length of OAuth access tokens and codes (oauthlib's `generate_token` default).
pub const OAUTH_TOKEN_CHARS: usize = 30;

const OAUTH_TOKEN_ALPHABET: &[u8; 62] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Where a token came from, which fixes its plaintext format and its hash rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Made by the hub for an API client or a server: uuid4 hex, 32 characters (`utils.new_token`).
    Api,
    /// Issued by the OAuth token endpoint: 30 characters of `[A-Za-z0-9]`, as oauthlib makes them.
    OAuthAccess,
    /// Chosen by an operator (config `api_tokens`, a service's `api_token`).
    Supplied,
}

impl TokenKind {
    pub fn hash_rounds(self) -> u32 {
        match self {
            TokenKind::Api | TokenKind::OAuthAccess => GENERATED_TOKEN_ROUNDS,
            TokenKind::Supplied => SUPPLIED_TOKEN_ROUNDS,
        }
    }
}

/// Why a token or a stored hash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("a token must be {TOKEN_MIN_CHARS}-{TOKEN_MAX_CHARS} characters, got {0}")]
    BadLength(usize),
    #[error("a token must not contain whitespace or control characters")]
    BadCharacter,
    #[error("malformed token hash")]
    MalformedHash,
    #[error("malformed token id {0:?}: expected 'a' followed by a number")]
    MalformedId(String),
}

/// A token in plaintext. It exists only between its creation and the response that hands it out, and when a
/// client presents it; `Debug` shows only the prefix so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainToken(String);

impl PlainToken {
    /// A new API token from 16 random bytes, formatted as JupyterHub's `uuid.uuid4().hex`.
    pub fn new_api_token(random: [u8; 16]) -> Self {
        let mut bytes = random;
        // The version and variant bits make it a real uuid4, as JupyterHub's are.
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Self(hex(&bytes))
    }

    /// A new OAuth access token or authorization code: 30 characters drawn uniformly from `[A-Za-z0-9]`.
    /// Bytes of 248 and above are skipped so every character is equally likely (248 is the largest multiple of
    /// 62 that fits a byte); `None` if `random` ran out first, which for 64 bytes happens with probability
    /// below 10^-30, and the caller then tries again with fresh bytes.
    pub fn new_oauth_token(random: &[u8]) -> Option<Self> {
        let token: String = random
            .iter()
            .filter(|byte| **byte < 248)
            .take(OAUTH_TOKEN_CHARS)
            .map(|byte| OAUTH_TOKEN_ALPHABET[usize::from(byte % 62)] as char)
            .collect();
        (token.len() == OAUTH_TOKEN_CHARS).then_some(Self(token))
    }

    /// A token an operator chose, or one a client presented.
    pub fn parse(value: &str) -> Result<Self, TokenError> {
        let length = value.chars().count();
        if !(TOKEN_MIN_CHARS..=TOKEN_MAX_CHARS).contains(&length) {
            return Err(TokenError::BadLength(length));
        }
        // The `Authorization: token X` grammar ends a token at whitespace, so such a token could never be used.
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TokenError::BadCharacter);
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The clear part stored for lookup.
    pub fn prefix(&self) -> &str {
        let end = self.0.char_indices().nth(TOKEN_PREFIX_CHARS).map_or(self.0.len(), |(index, _)| index);
        &self.0[..end]
    }

    /// The stored form, salted with `salt`.
    pub fn hash(&self, kind: TokenKind, salt: [u8; SALT_BYTES]) -> TokenHash {
        TokenHash::compute(&self.0, kind.hash_rounds(), &hex(&salt))
    }
}

impl fmt::Debug for PlainToken {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "PlainToken({}...)", self.prefix())
    }
}

/// JupyterHub's stored hash: `sha512:<rounds>:<salt>:<hexdigest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash {
    rounds: u32,
    salt: String,
    digest: [u8; 64],
}

impl TokenHash {
    fn compute(token: &str, rounds: u32, salt: &str) -> Self {
        let mut hasher = Sha512::new();
        hasher.update(salt.as_bytes());
        for _ in 0..rounds {
            hasher.update(token.as_bytes());
        }
        Self { rounds, salt: salt.to_owned(), digest: hasher.finalize().into() }
    }

    /// Reads the stored text form. Only sha512, as JupyterHub writes it, is accepted.
    pub fn parse(stored: &str) -> Result<Self, TokenError> {
        let mut parts = stored.split(':');
        let (Some("sha512"), Some(rounds), Some(salt), Some(digest), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::MalformedHash);
        };
        let rounds = rounds.parse().map_err(|_| TokenError::MalformedHash)?;
        let digest = unhex(digest).and_then(|bytes| bytes.try_into().ok()).ok_or(TokenError::MalformedHash)?;
        Ok(Self { rounds, salt: salt.to_owned(), digest })
    }

    /// Whether `token` hashes to this value. The digests are compared in constant time, so the time taken says
    /// nothing about how much of a guess was right.
    ///
    /// A value longer than any token can be ([`TOKEN_MAX_CHARS`] characters of up to 4 bytes) never matches and is
    /// never hashed: a stored hash may take 16384 rounds, and hashing a presented megabyte that often is minutes of
    /// CPU an anonymous client could ask for with one request.
    pub fn matches(&self, token: &str) -> bool {
        if token.len() > TOKEN_MAX_CHARS * 4 {
            return false;
        }
        let candidate = TokenHash::compute(token, self.rounds, &self.salt);
        bool::from(candidate.digest.ct_eq(&self.digest))
    }

    pub fn rounds(&self) -> u32 {
        self.rounds
    }
}

/// A one-round sha512 of `token` under a secret `key`: how a process remembers which presented tokens it already
/// verified against a slow hash without keeping their plaintext. Not a stored form; `key` is random per process.
pub fn keyed_digest(token: &str, key: &[u8; 32]) -> [u8; 64] {
    let mut hasher = Sha512::new();
    hasher.update(key);
    hasher.update(token.as_bytes());
    hasher.finalize().into()
}

impl fmt::Display for TokenHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "sha512:{}:{}:{}", self.rounds, self.salt, hex(&self.digest))
    }
}

/// A token's public id, shown as `a<number>` in the REST API (`APIToken.api_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenId(pub i64);

impl TokenId {
    pub fn parse(value: &str) -> Result<Self, TokenError> {
        value
            .strip_prefix('a')
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()))
            .and_then(|digits| digits.parse().ok())
            .map(TokenId)
            .ok_or_else(|| TokenError::MalformedId(value.to_owned()))
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "a{}", self.0)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    text
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presented_value_longer_than_any_token_never_matches_and_is_not_hashed() {
        let long = "x".repeat(TOKEN_MAX_CHARS * 4 + 1);
        // Even a hash made from that very value refuses it: the length is checked before any hashing.
        let hash = TokenHash::compute(&long, 1, "salt");
        assert!(!hash.matches(&long));
        let longest = "\u{10348}".repeat(TOKEN_MAX_CHARS);
        assert!(TokenHash::compute(&longest, 1, "salt").matches(&longest), "a 64-character token still matches");
    }

    // Both vectors were produced by JupyterHub's own `utils.hash_token` (Python, hashlib).
    const JUPYTERHUB_GENERATED: &str = "sha512:1:0011223344556677:729c5dced4cf147b84e446bb84acb4dd759a9737f3367504f3ec9f01c399df6479e8aae33b624abbe218c51f40524a6b80d2736099aa5b14669834c9b0180bea";
    const JUPYTERHUB_SUPPLIED: &str = "sha512:16384:8899aabbccddeeff:8c9c2b1b847a681555bc88aac36c1ea42434e0baf1e6277dc3889d72437f6d8089bbf46f8a4f054d9b98d4d767930dd08e0fc82beb9b481ac9332b7fe609db9d";

    #[test]
    fn hashes_match_jupyterhub_byte_for_byte() {
        let generated = PlainToken::parse("7d9a0b4e2c1f4e3a9b8c6d5e4f3a2b1c").unwrap();
        let salt = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77];
        assert_eq!(generated.hash(TokenKind::Api, salt).to_string(), JUPYTERHUB_GENERATED);

        let supplied = PlainToken::parse("config-supplied-token").unwrap();
        let salt = [0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
        assert_eq!(supplied.hash(TokenKind::Supplied, salt).to_string(), JUPYTERHUB_SUPPLIED);
    }

    #[test]
    fn stored_hashes_verify_and_round_trip() {
        let stored = TokenHash::parse(JUPYTERHUB_SUPPLIED).unwrap();
        assert_eq!(stored.rounds(), SUPPLIED_TOKEN_ROUNDS);
        assert_eq!(stored.to_string(), JUPYTERHUB_SUPPLIED);
        assert!(stored.matches("config-supplied-token"));
        assert!(!stored.matches("config-supplied-tokem"));
        assert!(!stored.matches(""));
        for malformed in ["", "md5:1:aa:bb", "sha512:x:aa:bb", "sha512:1:aa:zz", "sha512:1:aa:abcd", "sha512:1:a:b:c"] {
            assert_eq!(TokenHash::parse(malformed), Err(TokenError::MalformedHash), "{malformed:?}");
        }
    }

    #[test]
    fn api_tokens_are_uuid4_hex() {
        let token = PlainToken::new_api_token([0xff; 16]);
        assert_eq!(token.as_str(), "ffffffffffff4fffbfffffffffffffff");
        assert_eq!(token.as_str().len(), 32);
        assert_eq!(token.prefix(), "ffff");
        assert_eq!(format!("{token:?}"), "PlainToken(ffff...)");
    }

    #[test]
    fn oauth_tokens_are_30_alphanumerics_without_bias() {
        let random: Vec<u8> = [255u8, 248, 0, 61, 62, 247].into_iter().cycle().take(60).collect();
        let token = PlainToken::new_oauth_token(&random).unwrap();
        assert_eq!(token.as_str().len(), OAUTH_TOKEN_CHARS);
        // 255 and 248 are skipped; 0 -> 'a', 61 -> '9', 62 -> 'a', 247 -> 247 % 62 = 61 -> '9'.
        assert!(token.as_str().starts_with("a9a9a9"));
        assert!(token.as_str().bytes().all(|byte| byte.is_ascii_alphanumeric()));
        assert_eq!(PlainToken::new_oauth_token(&[255; 64]), None);
        assert_eq!(PlainToken::new_oauth_token(&random[..45]), None);
        assert!(PlainToken::new_oauth_token(&random[..46]).is_some());
    }

    #[test]
    fn presented_tokens_are_length_checked() {
        assert_eq!(PlainToken::parse("short"), Err(TokenError::BadLength(5)));
        assert_eq!(PlainToken::parse(&"x".repeat(65)), Err(TokenError::BadLength(65)));
        assert_eq!(PlainToken::parse("has space in it"), Err(TokenError::BadCharacter));
        assert!(PlainToken::parse(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn token_ids_look_like_jupyterhubs() {
        assert_eq!(TokenId(12).to_string(), "a12");
        assert_eq!(TokenId::parse("a12"), Ok(TokenId(12)));
        for bad in ["12", "a", "b12", "a-1", "a1x", "a99999999999999999999"] {
            assert!(TokenId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
