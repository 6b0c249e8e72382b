//! Who the login form says you are: an [`Authenticator`] checks a username and password and yields a
//! [`VerifiedIdentity`], which the policy host's auth hook then allows, refuses, renames or makes admin
//! (`jupyterhub/auth.py Authenticator.authenticate`, before `get_authenticated_user`'s allow and admin rules).
//!
//! Two implementations match JupyterHub's built-in ones: [`SharedPasswordAuthenticator`] (5.3's `shared-password`)
//! and [`DummyAuthenticator`]. Passwords are compared in constant time.

use std::collections::BTreeSet;

use async_trait::async_trait;
use subtle::ConstantTimeEq;

/// The fields of the login form an authenticator sees.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginForm {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for LoginForm {
    // The password never reaches a log line.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("LoginForm").field("username", &self.username).finish_non_exhaustive()
    }
}

/// What an authenticator vouches for; the name is not yet normalised (the auth hook lowercases and maps it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub username: String,
    /// JupyterHub's `{"admin": ...}` in the authentication result: `Some(false)` revokes admin, `None` leaves the
    /// decision to the admin rules.
    pub admin: Option<bool>,
}

/// Checks a login form.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// The provider name the auth hook sees in `identity.provider`.
    fn provider(&self) -> &str;

    /// The verified identity, or `None` for wrong credentials.
    async fn authenticate(&self, form: &LoginForm) -> Option<VerifiedIdentity>;
}

/// Why an authenticator's settings are refused at startup (`SharedPasswordAuthenticator`'s validators).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthenticatorConfigError {
    #[error("SharedPasswordAuthenticator.user_password must be at least 8 characters long, got {0} characters")]
    UserPasswordTooShort(usize),
    #[error("SharedPasswordAuthenticator.admin_password must be at least 32 characters, not {0}")]
    AdminPasswordTooShort(usize),
    #[error(
        "SharedPasswordAuthenticator.user_password and SharedPasswordAuthenticator.admin_password cannot be the same"
    )]
    SamePasswords,
}

fn same_secret(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// JupyterHub 5.3's `SharedPasswordAuthenticator`: names in `admin_users` log in only with `admin_password` and
/// become admin; everyone else logs in with `user_password` and is never admin.
pub struct SharedPasswordAuthenticator {
    user_password: Option<String>,
    admin_password: Option<String>,
    /// Normalised (lowercased) names, as `Authenticator.admin_users` holds them.
    admin_users: BTreeSet<String>,
}

impl SharedPasswordAuthenticator {
    /// Empty passwords count as unset; the length and distinctness rules are JupyterHub's.
    pub fn new(
        user_password: Option<String>,
        admin_password: Option<String>,
        admin_users: impl IntoIterator<Item = String>,
    ) -> Result<SharedPasswordAuthenticator, AuthenticatorConfigError> {
        let user_password = user_password.filter(|password| !password.is_empty());
        let admin_password = admin_password.filter(|password| !password.is_empty());
        if let Some(password) = &user_password
            && password.chars().count() < 8
        {
            return Err(AuthenticatorConfigError::UserPasswordTooShort(password.chars().count()));
        }
        if let Some(password) = &admin_password {
            if password.chars().count() < 32 {
                return Err(AuthenticatorConfigError::AdminPasswordTooShort(password.chars().count()));
            }
            if user_password.as_ref() == Some(password) {
                return Err(AuthenticatorConfigError::SamePasswords);
            }
        }
        if user_password.is_none() && admin_password.is_none() {
            tracing::error!(
                "Neither SharedPasswordAuthenticator.admin_password nor SharedPasswordAuthenticator.user_password \
                 is set. Nobody will be able to login!"
            );
        }
        let admin_users = admin_users.into_iter().map(|name| name.to_lowercase()).collect();
        Ok(SharedPasswordAuthenticator { user_password, admin_password, admin_users })
    }
}

impl SharedPasswordAuthenticator {
    /// No password at all: nobody logs in. The hub's default until one is configured.
    pub fn no_passwords() -> SharedPasswordAuthenticator {
        SharedPasswordAuthenticator { user_password: None, admin_password: None, admin_users: BTreeSet::new() }
    }
}

#[async_trait]
impl Authenticator for SharedPasswordAuthenticator {
    fn provider(&self) -> &str {
        "shared-password"
    }

    async fn authenticate(&self, form: &LoginForm) -> Option<VerifiedIdentity> {
        // JupyterHub compares the raw name; comparing the normalised one keeps `Root` from using the user
        // password to log in as the admin `root`.
        if self.admin_users.contains(&form.username.to_lowercase()) {
            let password = self.admin_password.as_deref()?;
            return same_secret(&form.password, password)
                .then(|| VerifiedIdentity { username: form.username.clone(), admin: Some(true) });
        }
        let password = self.user_password.as_deref()?;
        same_secret(&form.password, password)
            .then(|| VerifiedIdentity { username: form.username.clone(), admin: Some(false) })
    }
}

/// JupyterHub's `DummyAuthenticator`: any password, or only the configured one. For tests and demos only.
pub struct DummyAuthenticator {
    password: Option<String>,
}

impl DummyAuthenticator {
    pub fn new(password: Option<String>) -> DummyAuthenticator {
        tracing::warn!("DummyAuthenticator is for testing only: it is not meant for production");
        DummyAuthenticator { password: password.filter(|password| !password.is_empty()) }
    }
}

#[async_trait]
impl Authenticator for DummyAuthenticator {
    fn provider(&self) -> &str {
        "dummy"
    }

    async fn authenticate(&self, form: &LoginForm) -> Option<VerifiedIdentity> {
        if let Some(password) = &self.password
            && !same_secret(&form.password, password)
        {
            return None;
        }
        Some(VerifiedIdentity { username: form.username.clone(), admin: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(username: &str, password: &str) -> LoginForm {
        LoginForm { username: username.into(), password: password.into() }
    }

    const ADMIN_PASSWORD: &str = "an-admin-password-of-32-characters!";

    #[tokio::test]
    async fn shared_password_admins_need_the_admin_password_and_users_are_never_admin() {
        let authenticator = SharedPasswordAuthenticator::new(
            Some("user-password".into()),
            Some(ADMIN_PASSWORD.into()),
            ["Root".to_string()],
        )
        .unwrap();
        let verified = |username: &str, admin| Some(VerifiedIdentity { username: username.into(), admin: Some(admin) });
        assert_eq!(authenticator.authenticate(&form("alice", "user-password")).await, verified("alice", false));
        assert_eq!(authenticator.authenticate(&form("alice", ADMIN_PASSWORD)).await, None);
        assert_eq!(authenticator.authenticate(&form("alice", "wrong")).await, None);
        assert_eq!(authenticator.authenticate(&form("root", ADMIN_PASSWORD)).await, verified("root", true));
        assert_eq!(authenticator.authenticate(&form("ROOT", "user-password")).await, None);
        assert_eq!(authenticator.authenticate(&form("root", "user-password")).await, None);
    }

    #[tokio::test]
    async fn shared_password_settings_follow_jupyterhub_validation() {
        let new = |user: Option<&str>, admin: Option<&str>| {
            SharedPasswordAuthenticator::new(user.map(Into::into), admin.map(Into::into), Vec::new()).err()
        };
        assert_eq!(new(Some("short"), None), Some(AuthenticatorConfigError::UserPasswordTooShort(5)));
        assert_eq!(new(None, Some("too-short-for-admin")), Some(AuthenticatorConfigError::AdminPasswordTooShort(19)));
        assert_eq!(new(Some(ADMIN_PASSWORD), Some(ADMIN_PASSWORD)), Some(AuthenticatorConfigError::SamePasswords));
        // Without passwords nobody logs in; that is allowed, only logged.
        let nobody = SharedPasswordAuthenticator::new(None, Some(String::new()), Vec::new()).unwrap();
        assert_eq!(nobody.authenticate(&form("alice", "")).await, None);
    }

    #[tokio::test]
    async fn dummy_accepts_any_password_unless_one_is_set() {
        let open = DummyAuthenticator::new(None);
        assert!(open.authenticate(&form("alice", "anything")).await.is_some());
        let closed = DummyAuthenticator::new(Some("secret".into()));
        assert!(closed.authenticate(&form("alice", "anything")).await.is_none());
        assert_eq!(
            closed.authenticate(&form("alice", "secret")).await,
            Some(VerifiedIdentity { username: "alice".into(), admin: None })
        );
    }
}
