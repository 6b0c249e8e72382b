//! JupyterHub 5.x's scope and role vocabulary: scope syntax with filters, the known scope names, which scopes a
//! scope implies, and the four default roles.
//!
//! This is vocabulary, not evaluation: expanding `self` and `inherit` against a token's owner and intersecting with
//! the owner's scopes is the hub's job. A valid scope never contains whitespace, which is also why OAuth 2 can write
//! a scope list as one space-separated string.

use std::fmt;

/// Every scope name JupyterHub 5.x defines (`scopes.scope_definitions`), plus the metascopes.
pub const KNOWN_SCOPES: &[&str] = &[
    "(no_scope)",
    "self",
    "inherit",
    "identify",
    "admin-ui",
    "admin:users",
    "admin:auth_state",
    "users",
    "delete:users",
    "list:users",
    "read:users",
    "read:users:name",
    "read:users:groups",
    "read:users:activity",
    "users:activity",
    "read:roles",
    "read:roles:users",
    "read:roles:services",
    "read:roles:groups",
    "admin:servers",
    "admin:server_state",
    "servers",
    "read:servers",
    "delete:servers",
    "tokens",
    "read:tokens",
    "admin:groups",
    "groups",
    "list:groups",
    "read:groups",
    "read:groups:name",
    "delete:groups",
    "admin:services",
    "list:services",
    "read:services",
    "read:services:name",
    "read:hub",
    "access:servers",
    "access:services",
    "proxy",
    "shutdown",
    "read:metrics",
    "shares",
    "read:shares",
    "users:shares",
    "read:users:shares",
    "groups:shares",
    "read:groups:shares",
];

/// The scopes `name` directly implies (JupyterHub 5.x `scope_definitions[...]["subscopes"]`); empty for leaves.
pub fn implied_scopes(name: &str) -> &'static [&'static str] {
    match name {
        "admin:users" => &["admin:auth_state", "users", "read:roles:users", "delete:users"],
        "users" => &["read:users", "list:users", "users:activity"],
        "list:users" => &["read:users:name"],
        "read:users" => &["read:users:name", "read:users:groups", "read:users:activity"],
        "users:activity" => &["read:users:activity"],
        "admin:servers" => &["admin:server_state", "servers"],
        "servers" => &["read:servers", "delete:servers"],
        "read:servers" => &["read:users:name"],
        "tokens" => &["read:tokens"],
        "admin:groups" => &["groups", "read:roles:groups", "delete:groups"],
        "groups" => &["read:groups", "list:groups"],
        "list:groups" | "read:groups" => &["read:groups:name"],
        "admin:services" => &["list:services", "read:services", "read:roles:services"],
        "list:services" | "read:services" => &["read:services:name"],
        "read:roles" => &["read:roles:users", "read:roles:services", "read:roles:groups"],
        "shares" => &["access:servers", "read:shares", "users:shares", "groups:shares"],
        "users:shares" => &["read:users:shares"],
        "groups:shares" => &["read:groups:shares"],
        _ => &[],
    }
}

/// Why a scope string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("empty scope")]
    Empty,
    #[error("scope {0:?} contains whitespace or a control character")]
    BadCharacter(String),
    #[error("scope {0:?} has an unknown filter; expected !user, !server, !service, !group with =name")]
    BadFilter(String),
}

/// The part after `!` in a scope. The bare forms name the token's own user, server or service and are resolved
/// by the hub when a role is turned into token scopes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScopeFilter {
    User(String),
    /// `server=<user>/<server>`; the default server is `<user>/`.
    Server {
        user: String,
        server: String,
    },
    Group(String),
    Service(String),
    OwnUser,
    OwnServer,
    OwnService,
}

/// One scope, such as `read:users`, `access:servers!server=alice/` or `users:activity!user`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub name: String,
    pub filter: Option<ScopeFilter>,
}

impl Scope {
    /// Parses the syntax. Unknown names are accepted here (config may name scopes of a newer JupyterHub, and the
    /// hub decides how to treat them); use [`Scope::is_known`] to check.
    pub fn parse(value: &str) -> Result<Scope, ScopeError> {
        if value.is_empty() {
            return Err(ScopeError::Empty);
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ScopeError::BadCharacter(value.to_owned()));
        }
        let Some((name, filter)) = value.split_once('!') else {
            return Ok(Scope { name: value.to_owned(), filter: None });
        };
        let bad_filter = || ScopeError::BadFilter(value.to_owned());
        if name.is_empty() {
            return Err(ScopeError::Empty);
        }
        let filter = match filter.split_once('=') {
            None => match filter {
                "user" => ScopeFilter::OwnUser,
                "server" => ScopeFilter::OwnServer,
                "service" => ScopeFilter::OwnService,
                _ => return Err(bad_filter()),
            },
            Some((_, "")) => return Err(bad_filter()),
            Some(("user", user)) => ScopeFilter::User(user.to_owned()),
            Some(("group", group)) => ScopeFilter::Group(group.to_owned()),
            Some(("service", service)) => ScopeFilter::Service(service.to_owned()),
            Some(("server", full_name)) => match full_name.split_once('/') {
                Some((user, server)) if !user.is_empty() => {
                    ScopeFilter::Server { user: user.to_owned(), server: server.to_owned() }
                }
                _ => return Err(bad_filter()),
            },
            Some(_) => return Err(bad_filter()),
        };
        Ok(Scope { name: name.to_owned(), filter: Some(filter) })
    }

    pub fn is_known(&self) -> bool {
        KNOWN_SCOPES.contains(&self.name.as_str())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.name)?;
        match &self.filter {
            None => Ok(()),
            Some(ScopeFilter::User(user)) => write!(formatter, "!user={user}"),
            Some(ScopeFilter::Server { user, server }) => write!(formatter, "!server={user}/{server}"),
            Some(ScopeFilter::Group(group)) => write!(formatter, "!group={group}"),
            Some(ScopeFilter::Service(service)) => write!(formatter, "!service={service}"),
            Some(ScopeFilter::OwnUser) => formatter.write_str("!user"),
            Some(ScopeFilter::OwnServer) => formatter.write_str("!server"),
            Some(ScopeFilter::OwnService) => formatter.write_str("!service"),
        }
    }
}

/// JupyterHub's default roles (`roles.get_default_roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultRole {
    /// Every user.
    User,
    /// Admin users.
    Admin,
    /// The server's own `$JUPYTERHUB_API_TOKEN`.
    Server,
    /// New API tokens when no scopes are requested.
    Token,
}

impl DefaultRole {
    pub const ALL: [DefaultRole; 4] = [DefaultRole::User, DefaultRole::Admin, DefaultRole::Server, DefaultRole::Token];

    pub fn name(self) -> &'static str {
        match self {
            DefaultRole::User => "user",
            DefaultRole::Admin => "admin",
            DefaultRole::Server => "server",
            DefaultRole::Token => "token",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            DefaultRole::User => "Standard user privileges",
            DefaultRole::Admin => "Elevated privileges (can do anything)",
            DefaultRole::Server => "Post activity only",
            DefaultRole::Token => "Token with same permissions as its owner",
        }
    }

    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            DefaultRole::User => &["self"],
            DefaultRole::Admin => &[
                "admin-ui",
                "admin:users",
                "admin:servers",
                "admin:services",
                "tokens",
                "admin:groups",
                "list:services",
                "read:services",
                "read:hub",
                "proxy",
                "shutdown",
                "access:services",
                "access:servers",
                "read:roles",
                "read:metrics",
                "shares",
            ],
            DefaultRole::Server => &["users:activity!user", "access:servers!server"],
            DefaultRole::Token => &["inherit"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip() {
        for text in [
            "read:users",
            "access:servers!server=alice/",
            "access:servers!server=bob/gpu",
            "read:users!group=staff",
            "users:activity!user",
            "access:servers!server",
            "access:services!service=cull",
            "admin:users!user=alice",
        ] {
            let scope = Scope::parse(text).unwrap();
            assert_eq!(scope.to_string(), text);
        }
        assert_eq!(
            Scope::parse("access:servers!server=alice/").unwrap().filter,
            Some(ScopeFilter::Server { user: "alice".into(), server: String::new() })
        );
    }

    #[test]
    fn bad_scopes_are_refused() {
        assert_eq!(Scope::parse(""), Err(ScopeError::Empty));
        assert_eq!(Scope::parse("!user=a"), Err(ScopeError::Empty));
        assert!(matches!(Scope::parse("read:users extra"), Err(ScopeError::BadCharacter(_))));
        for bad in ["read:users!bogus=x", "read:users!user=", "x!server=alice", "x!server=/gpu", "x!group"] {
            assert!(matches!(Scope::parse(bad), Err(ScopeError::BadFilter(_))), "{bad:?}");
        }
    }

    #[test]
    fn the_vocabulary_is_closed_under_implication() {
        for name in KNOWN_SCOPES {
            for implied in implied_scopes(name) {
                assert!(KNOWN_SCOPES.contains(implied), "{name} implies unknown {implied}");
            }
        }
        for role in DefaultRole::ALL {
            for scope in role.scopes() {
                assert!(Scope::parse(scope).unwrap().is_known(), "{} has {scope}", role.name());
            }
        }
        assert!(!Scope::parse("read:everything").unwrap().is_known());
    }
}
