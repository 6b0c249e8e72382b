//! Validated names for users, servers, groups, roles and services, with JupyterHub 5.x's rules.
//!
//! JupyterHub keeps every name in a `Unicode(255)` column, so 255 characters is the limit everywhere; PostgreSQL
//! enforces it and a longer name would turn into a 500 there, so we refuse it up front instead. PostgreSQL text
//! cannot hold NUL either, so NUL is refused in every kind of name.
//!
//! The authenticator's normalisation (lowercasing, `username_map`) and the configurable `username_pattern` are
//! decisions of the hub and its auth policy, not of these types: a `UserName` is any name JupyterHub's base
//! `validate_username` accepts.

use std::fmt;

/// The longest name JupyterHub can store (`Unicode(255)` in its orm).
pub const MAX_NAME_CHARS: usize = 255;

/// The longest JupyterHub 6.x server name (`slugs.is_valid_safe_slug`).
pub const MAX_SAFE_SLUG_CHARS: usize = 30;

/// Why a name was refused. `kind` is "username", "server name", "group name", "role name" or "service name".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct NameError {
    pub kind: &'static str,
    pub reason: &'static str,
}

fn check_length_and_nul(kind: &'static str, value: &str) -> Result<(), NameError> {
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(NameError { kind, reason: "longer than 255 characters" });
    }
    if value.contains('\0') {
        return Err(NameError { kind, reason: "contains a NUL character" });
    }
    Ok(())
}

fn check_not_empty(kind: &'static str, value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError { kind, reason: "empty" });
    }
    Ok(())
}

fn check_no_slash(kind: &'static str, value: &str) -> Result<(), NameError> {
    if value.contains('/') {
        return Err(NameError { kind, reason: "contains '/'" });
    }
    Ok(())
}

/// Unicode's bidirectional formatting characters (embeddings, overrides, isolates and the implicit marks).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

macro_rules! name_type {
    ($(#[$doc:meta])* $type_name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $type_name(String);

        impl $type_name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $type_name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl AsRef<str> for $type_name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $type_name {
            type Err = NameError;

            fn from_str(value: &str) -> Result<Self, NameError> {
                Self::parse(value)
            }
        }
    };
}

name_type! {
    /// A username as JupyterHub's `Authenticator.validate_username` accepts it: not empty, no `/`, no leading or
    /// trailing whitespace.
    UserName
}

impl UserName {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        const KIND: &str = "username";
        check_not_empty(KIND, value)?;
        check_length_and_nul(KIND, value)?;
        check_no_slash(KIND, value)?;
        // Python's `str.strip()` strips Unicode whitespace; `char::is_whitespace` is the same class.
        if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
            return Err(NameError { kind: KIND, reason: "starts or ends with whitespace" });
        }
        // A name is shown in pages, logs, paths and a server's environment: a newline or another control character
        // breaks those (a spawn then failed), and a bidi control makes `alice` and another name look alike.
        if value.chars().any(|c| c.is_control() || is_bidi_control(c)) {
            return Err(NameError { kind: KIND, reason: "contains a control or bidirectional formatting character" });
        }
        Ok(Self(value.to_owned()))
    }
}

name_type! {
    /// A server name; the empty name is the user's default server. JupyterHub 5.x only refuses `/`
    /// (`spawn_single_user`); 6.x's stricter slug rule is [`ServerName::is_safe_slug`].
    ServerName
}

impl ServerName {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        const KIND: &str = "server name";
        check_length_and_nul(KIND, value)?;
        check_no_slash(KIND, value)?;
        Ok(Self(value.to_owned()))
    }

    /// The user's default server, whose name is empty.
    pub fn default_server() -> Self {
        Self(String::new())
    }

    pub fn is_default(&self) -> bool {
        self.0.is_empty()
    }

    /// JupyterHub 6.x's `is_valid_safe_slug`: 1-30 characters of lowercase ASCII letters, digits and single
    /// hyphens, starting with a letter and ending with a letter or digit.
    pub fn is_safe_slug(&self) -> bool {
        let bytes = self.0.as_bytes();
        let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
            return false;
        };
        bytes.len() <= MAX_SAFE_SLUG_CHARS
            && first.is_ascii_lowercase()
            && (last.is_ascii_lowercase() || last.is_ascii_digit())
            && bytes.iter().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-')
            && !self.0.contains("--")
    }
}

name_type! {
    /// A group name. JupyterHub 5.x accepts any non-empty name up to its column width.
    GroupName
}

impl GroupName {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        const KIND: &str = "group name";
        check_not_empty(KIND, value)?;
        check_length_and_nul(KIND, value)?;
        Ok(Self(value.to_owned()))
    }
}

name_type! {
    /// A role name with JupyterHub's `roles._role_name_pattern`: `^[a-z][a-z0-9\-_~\.]{1,253}[a-z0-9]$`.
    RoleName
}

impl RoleName {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        const KIND: &str = "role name";
        let bytes = value.as_bytes();
        if !(3..=MAX_NAME_CHARS).contains(&bytes.len()) {
            return Err(NameError { kind: KIND, reason: "must be 3-255 characters" });
        }
        if !bytes[0].is_ascii_lowercase() {
            return Err(NameError { kind: KIND, reason: "must start with a lowercase letter" });
        }
        let last = bytes[bytes.len() - 1];
        if !(last.is_ascii_lowercase() || last.is_ascii_digit()) {
            return Err(NameError { kind: KIND, reason: "must end with a lowercase letter or digit" });
        }
        let allowed = |byte: &u8| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"-_~.".contains(byte);
        if !bytes.iter().all(allowed) {
            return Err(NameError {
                kind: KIND,
                reason: "may contain only lowercase ASCII letters, digits and '-_~.'",
            });
        }
        Ok(Self(value.to_owned()))
    }
}

name_type! {
    /// A service name. JupyterHub only requires one; we also refuse `/` because the name becomes the route
    /// `/services/<name>/`, where a slash would change the route's meaning.
    ServiceName
}

impl ServiceName {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        const KIND: &str = "service name";
        check_not_empty(KIND, value)?;
        check_length_and_nul(KIND, value)?;
        check_no_slash(KIND, value)?;
        Ok(Self(value.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_validate_username() {
        for good in ["alice", "Alice", "a b", "alice@example.org", "ü", "x".repeat(255).as_str()] {
            assert!(UserName::parse(good).is_ok(), "{good:?} should be valid");
        }
        for bad in ["", "a/b", " alice", "alice ", "\talice", "al\0ice", "x".repeat(256).as_str()] {
            assert!(UserName::parse(bad).is_err(), "{bad:?} should be invalid");
        }
        // The limit counts characters, as the database column does, not bytes.
        assert!(UserName::parse(&"é".repeat(255)).is_ok());
    }

    #[test]
    fn usernames_with_control_or_bidi_characters_are_refused() {
        for bad in ["a\nb", "a\tb", "a\u{7f}b", "adm\u{202E}nila", "a\u{2066}b", "a\u{200F}b"] {
            let error = UserName::parse(bad).unwrap_err();
            assert!(error.to_string().contains("control or bidirectional"), "{bad:?}: {error}");
        }
        assert!(UserName::parse("a b").is_ok(), "a plain space stays allowed, as in JupyterHub");
    }

    #[test]
    fn server_names_allow_the_default_and_refuse_slashes() {
        assert!(ServerName::parse("").unwrap().is_default());
        assert!(ServerName::parse("gpu").is_ok());
        assert!(ServerName::parse("My Server").is_ok());
        assert!(ServerName::parse("a/b").is_err());
        assert!(ServerName::parse(&"s".repeat(256)).is_err());
    }

    #[test]
    fn safe_slugs_follow_jupyterhub_6() {
        for good in ["a", "gpu", "gpu-2", "a1b2"] {
            assert!(ServerName::parse(good).unwrap().is_safe_slug(), "{good:?}");
        }
        for bad in ["", "1gpu", "gpu-", "GPU", "a--b", "a_b", "x".repeat(31).as_str()] {
            assert!(!ServerName::parse(bad).unwrap().is_safe_slug(), "{bad:?}");
        }
    }

    #[test]
    fn role_names_follow_the_role_pattern() {
        for good in ["admin", "user", "my-role.v1", "a~_0"] {
            assert!(RoleName::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["ab", "Admin", "1role", "role-", "role name", "rôle", "x".repeat(256).as_str()] {
            assert!(RoleName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn group_and_service_names() {
        assert!(GroupName::parse("a/b c").is_ok());
        assert!(GroupName::parse("").is_err());
        assert!(ServiceName::parse("cull-idle").is_ok());
        assert!(ServiceName::parse("a/b").is_err());
        assert_eq!(UserName::parse("").unwrap_err().to_string(), "invalid username: empty");
    }
}
