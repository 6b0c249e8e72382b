//! The state a hub writes at every start from its configuration, as JupyterHub's `init_services`, `init_roles`
//! and `init_users` do: services and their tokens, roles and who holds them, and the configured admin and allowed
//! users. The CLI translates the config file into a [`StartupState`]; the hub owns what it means.

use wasmhub_model::{DefaultRole, GroupName, PlainToken, RoleName, ServiceName, TokenKind, UserName};
use wasmhub_store::{HUB_OAUTH_CLIENT, NewApiToken, RoleHolder, Store, StoreError, TokenOwner, UserChange};

/// What the configuration says must exist when the hub starts.
#[derive(Debug, Clone, Default)]
pub struct StartupState {
    /// `hub.services`.
    pub services: Vec<ServiceSpec>,
    /// `hub.loadRoles`.
    pub roles: Vec<RoleSpec>,
    /// `Authenticator.admin_users`: they exist and are admins.
    pub admin_users: Vec<String>,
    /// `Authenticator.allowed_users`: they exist.
    pub allowed_users: Vec<String>,
}

/// One `hub.services` entry.
#[derive(Debug, Clone, Default)]
pub struct ServiceSpec {
    pub name: String,
    pub admin: bool,
    /// A token from config replaces the previous one at every start.
    pub api_token: Option<String>,
}

/// One `hub.loadRoles` entry.
#[derive(Debug, Clone, Default)]
pub struct RoleSpec {
    pub name: String,
    pub description: String,
    pub scopes: Vec<String>,
    pub users: Vec<String>,
    pub services: Vec<String>,
    pub groups: Vec<String>,
}

/// Why the start-up state could not be written; the message names the config key.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("{key}: {source}")]
    Store { key: String, source: StoreError },
}

const FROM_CONFIG: &str = "from config";

/// Writes `state` into `store`. Running it again with the same state changes nothing.
pub async fn apply(store: &dyn Store, state: &StartupState) -> Result<(), StartupError> {
    for service in &state.services {
        let key = format!("hub.services.{}", service.name);
        let stored = |source| StartupError::Store { key: key.clone(), source };
        let name = ServiceName::parse(&service.name).map_err(|error| invalid(&key, error))?;
        store.put_service(&name, service.admin).await.map_err(stored)?;
        let owner = TokenOwner::Service(name.clone());
        for token in store.list_api_tokens(&owner).await.map_err(stored)? {
            if token.note == FROM_CONFIG {
                store.delete_api_token(token.id).await.map_err(stored)?;
            }
        }
        if let Some(token) = &service.api_token {
            let key = format!("{key}.apiToken");
            let supplied = PlainToken::parse(token).map_err(|error| invalid(&key, error))?;
            let token = NewApiToken {
                owner,
                kind: TokenKind::Supplied,
                supplied: Some(supplied),
                scopes: vec!["inherit".to_owned()],
                note: FROM_CONFIG.to_owned(),
                expires_at: None,
                session_id: None,
                client_id: HUB_OAUTH_CLIENT.to_owned(),
            };
            store.create_api_token(&token).await.map_err(|source| StartupError::Store { key, source })?;
        }
    }
    for role in &state.roles {
        let key = format!("hub.loadRoles.{}", role.name);
        let stored = |source| StartupError::Store { key: key.clone(), source };
        let role_name = RoleName::parse(&role.name).map_err(|error| invalid(&key, error))?;
        let (description, scopes) = merged_with_default(role);
        store.put_role(&role_name, &description, &scopes).await.map_err(stored)?;
        for user in &role.users {
            let user = ensure_user(store, user, false, &format!("{key}.users")).await?;
            store.assign_role(&role_name, &RoleHolder::User(user)).await.map_err(stored)?;
        }
        for service in &role.services {
            let service = ServiceName::parse(service).map_err(|error| invalid(&format!("{key}.services"), error))?;
            store.assign_role(&role_name, &RoleHolder::Service(service)).await.map_err(stored)?;
        }
        for group in &role.groups {
            let group = GroupName::parse(group).map_err(|error| invalid(&format!("{key}.groups"), error))?;
            if store.get_group(&group).await.is_err() {
                store.create_group(&group).await.map_err(stored)?;
            }
            store.assign_role(&role_name, &RoleHolder::Group(group)).await.map_err(stored)?;
        }
    }
    for name in &state.admin_users {
        ensure_user(store, name, true, "hub.config.Authenticator.admin_users").await?;
    }
    for name in &state.allowed_users {
        ensure_user(store, name, false, "hub.config.Authenticator.allowed_users").await?;
    }
    Ok(())
}

/// JupyterHub merges a loaded role named like a default role (`admin`, `user`, `server`, `token`) with the default:
/// what the config leaves out keeps its default, so `hub.loadRoles.admin` listing only `users` does not leave the
/// admin role without scopes.
fn merged_with_default(role: &RoleSpec) -> (String, Vec<String>) {
    let default = DefaultRole::ALL.into_iter().find(|default| default.name() == role.name);
    let description = match default {
        Some(default) if role.description.is_empty() => default.description().to_owned(),
        _ => role.description.clone(),
    };
    let scopes = match default {
        Some(default) if role.scopes.is_empty() => default.scopes().iter().map(|scope| scope.to_string()).collect(),
        _ => role.scopes.clone(),
    };
    (description, scopes)
}

fn invalid(key: &str, error: impl std::fmt::Display) -> StartupError {
    StartupError::Invalid { key: key.to_owned(), message: error.to_string() }
}

/// The user named `name` exists, and is an admin when `admin` says so (an existing admin is never demoted here).
async fn ensure_user(store: &dyn Store, name: &str, admin: bool, key: &str) -> Result<UserName, StartupError> {
    let stored = |source| StartupError::Store { key: key.to_owned(), source };
    let user = UserName::parse(name).map_err(|error| invalid(key, format!("user `{name}`: {error}")))?;
    match store.get_user(&user).await {
        Ok(existing) if admin && !existing.admin => {
            store.update_user(&user, &UserChange { name: None, admin: Some(true) }).await.map_err(stored)?;
        }
        Ok(_) => {}
        Err(StoreError::NotFound { .. }) => {
            store.create_user(&user, admin).await.map_err(stored)?;
        }
        Err(error) => return Err(stored(error)),
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_configured_state_is_written_and_writing_it_again_changes_nothing() {
        let folder = tempfile::tempdir().unwrap();
        let store = wasmhub_store::SqliteStore::open(&folder.path().join("hub.sqlite")).await.unwrap();
        let state = StartupState {
            services: vec![ServiceSpec { name: "culler".into(), admin: true, api_token: Some("a".repeat(32)) }],
            roles: vec![RoleSpec {
                name: "readers".into(),
                scopes: vec!["read:users".into()],
                users: vec!["carol".into()],
                groups: vec!["staff".into()],
                ..RoleSpec::default()
            }],
            admin_users: vec!["alice".into()],
            allowed_users: vec!["bob".into()],
        };
        apply(&store, &state).await.unwrap();
        apply(&store, &state).await.unwrap();
        let alice = store.get_user(&UserName::parse("alice").unwrap()).await.unwrap();
        assert!(alice.admin);
        assert!(!store.get_user(&UserName::parse("bob").unwrap()).await.unwrap().admin);
        assert!(store.get_user(&UserName::parse("carol").unwrap()).await.is_ok());
        let culler = TokenOwner::Service(ServiceName::parse("culler").unwrap());
        assert_eq!(store.list_api_tokens(&culler).await.unwrap().len(), 1, "a config token is replaced, not added");
        // A loaded `admin` role that only lists its holders keeps the default admin scopes, as JupyterHub merges it.
        let admins_only = StartupState {
            roles: vec![RoleSpec { name: "admin".into(), users: vec!["dave".into()], ..RoleSpec::default() }],
            ..StartupState::default()
        };
        apply(&store, &admins_only).await.unwrap();
        let admin_scopes = store.get_role_scopes(&RoleName::parse("admin").unwrap()).await.unwrap();
        assert!(admin_scopes.iter().any(|scope| scope == "admin:users"), "{admin_scopes:?}");
        assert_eq!(admin_scopes.len(), DefaultRole::Admin.scopes().len());
        let bad = StartupState { admin_users: vec![String::new()], ..StartupState::default() };
        let error = apply(&store, &bad).await.unwrap_err().to_string();
        assert!(error.starts_with("hub.config.Authenticator.admin_users: user ``"), "{error}");
    }
}
