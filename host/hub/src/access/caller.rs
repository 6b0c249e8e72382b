//! Who is calling: the `Authorization: token|bearer <t>` header resolved to a stored token, its owner, and the
//! token's effective scopes (its own scopes, `inherit` resolved, intersected with the owner's current scopes, plus
//! the identify scopes), as JupyterHub's `get_current_user_token` and `get_scopes_for` compute them. Without a
//! token header, the browser's login cookie is tried under JupyterHub's XSRF rules (`session.rs`). A resolved
//! token caller is kept in `caller_cache.rs` until a write that could change it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::Utc;
use wasmhub_model::{DefaultRole, RoleName, ServiceName, TokenId, UserName};
use wasmhub_store::{ApiToken, StoreError, Timestamp, TokenOwner};

use crate::Hub;
use crate::access::caller_cache::counts_as_server;
use crate::access::scopes::{Denial, Owner, Resource, ScopeSet};
use crate::error::ApiError;

/// Token activity is written at most this often per token (`activity_resolution`).
pub(crate) const ACTIVITY_RESOLUTION: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// The authenticated caller of one request, or an anonymous one (no or invalid credentials).
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) owner: Option<Owner>,
    /// Shared, because a cached caller is handed to every request that presents its token.
    pub(crate) scopes: Arc<ScopeSet>,
    /// An admin user or admin service, which alone may grant admin.
    pub(crate) admin: bool,
    /// How the caller authenticated, for `GET /hub/api/user`'s `token_id` and `session_id`.
    pub(crate) credential: Credential,
}

/// The credential a request authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    None,
    Token {
        id: wasmhub_model::TokenId,
        session_id: Option<String>,
    },
    /// The browser's login cookie (`session.rs`), with its `jupyterhub-session-id`.
    Cookie {
        session_id: String,
    },
}

impl Caller {
    pub(crate) fn anonymous() -> Caller {
        Caller { owner: None, scopes: Arc::default(), admin: false, credential: Credential::None }
    }

    fn denial_error(&self, names: &[&str], denial: Denial) -> ApiError {
        if self.owner.is_none() {
            return ApiError::new(StatusCode::FORBIDDEN, "Missing or invalid credentials.");
        }
        match denial {
            Denial::Filtered => ApiError::not_found_filtered(),
            Denial::NotHeld => {
                let quoted: Vec<String> = names.iter().map(|name| format!("'{name}'")).collect();
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("Action is not authorized with current scopes; requires any of [{}]", quoted.join(", ")),
                )
            }
        }
    }

    /// Any one of `names` for `resource`, or JupyterHub's 403/404.
    pub(crate) fn require(&self, names: &[&str], resource: &Resource<'_>) -> Result<(), ApiError> {
        self.scopes.check(names, resource).map_err(|denial| self.denial_error(names, denial))
    }

    /// Any one of `names`, unfiltered (hub-wide endpoints).
    pub(crate) fn require_global(&self, names: &[&str]) -> Result<(), ApiError> {
        if names.iter().any(|name| self.scopes.has_unfiltered(name)) {
            return Ok(());
        }
        let denial = if self.scopes.holds_any(names) { Denial::Filtered } else { Denial::NotHeld };
        Err(self.denial_error(names, denial))
    }

    /// Any one of `names` with any filter (list endpoints, which then filter their items).
    pub(crate) fn require_some(&self, names: &[&str]) -> Result<(), ApiError> {
        if self.scopes.holds_any(names) { Ok(()) } else { Err(self.denial_error(names, Denial::NotHeld)) }
    }

    pub(crate) fn user_name(&self) -> Option<&str> {
        match &self.owner {
            Some(Owner::User(name)) => Some(name),
            _ => None,
        }
    }
}

impl ApiError {
    /// The answer when a scope is held but not for this resource; JupyterHub gives it for missing ones too.
    pub(crate) fn not_found_filtered() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "No access to resources or resources not found")
    }
}

impl FromRequestParts<Hub> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Caller, ApiError> {
        let Some(presented) = presented_token(parts) else {
            // Browsers (the admin panel, JupyterLab's hub extension) authenticate with the login cookie.
            return crate::access::session::cookie_caller(parts, hub).await;
        };
        let now = Utc::now();
        // Read before the database, so that any write this resolution could miss moves the generation past it.
        let generation = hub.store().auth_generation();
        if let Some((caller, activity)) = hub.caller_cache().get(presented, generation, now) {
            if let Some(due) = activity {
                record_activity(hub, due.token, due.user.as_ref(), now).await;
            }
            return Ok(caller);
        }
        let token = match hub.store().find_api_token(presented).await {
            Ok(token) => token,
            Err(StoreError::NotFound { .. } | StoreError::Invalid { .. }) => return Ok(Caller::anonymous()),
            Err(other) => return Err(other.into()),
        };
        let caller = match caller_for_token(hub, &token).await {
            Ok(caller) => caller,
            // The owner vanished between the token lookup and now.
            Err(error) if error.status == StatusCode::NOT_FOUND => return Ok(Caller::anonymous()),
            Err(error) => return Err(error),
        };
        let activity_at = if token.last_activity.is_some_and(|last| now - last < ACTIVITY_RESOLUTION) {
            token.last_activity
        } else {
            let user = match &token.owner {
                TokenOwner::User(user) if !counts_as_server(&token) => Some(user),
                _ => None,
            };
            record_activity(hub, token.id, user, now).await;
            Some(now)
        };
        hub.caller_cache().insert(presented, generation, &caller, &token, activity_at);
        Ok(caller)
    }
}

/// JupyterHub's `^(?:token|bearer)\s+([^\s]+)$`, case-insensitive. `?token=` is deliberately not accepted.
fn presented_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let mut words = value.split_whitespace();
    let scheme = words.next()?;
    let token = words.next()?;
    let is_known_scheme = scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer");
    (is_known_scheme && words.next().is_none()).then_some(token)
}

async fn caller_for_token(hub: &Hub, token: &ApiToken) -> Result<Caller, ApiError> {
    let owner = match &token.owner {
        TokenOwner::User(name) => Owner::User(name.to_string()),
        TokenOwner::Service(name) => Owner::Service(name.to_string()),
    };
    let (owner_scopes, admin) = owner_scopes(hub, &owner).await?;
    let scopes = token_scopes(hub, &token.scopes, &owner, &owner_scopes).await?;
    let credential = Credential::Token { id: token.id, session_id: token.session_id.clone() };
    Ok(Caller { owner: Some(owner), scopes: Arc::new(scopes), admin, credential })
}

/// What a token with `raw` scopes may do: intersected with its owner's scopes, plus the identify scopes.
pub(crate) async fn token_scopes(
    hub: &Hub,
    raw: &[String],
    owner: &Owner,
    owner_scopes: &ScopeSet,
) -> Result<ScopeSet, ApiError> {
    let asked = ScopeSet::expand(raw, owner, Some(owner_scopes));
    let groups = groups_for_filters(hub, &asked, owner_scopes).await?;
    let mut scopes = asked.intersect(owner_scopes, &groups);
    scopes.add_identify(owner);
    Ok(scopes)
}

/// The groups of every user named in either set's filters, when a group filter could cover them.
pub(crate) async fn groups_for_filters(
    hub: &Hub,
    left: &ScopeSet,
    right: &ScopeSet,
) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let mut groups = HashMap::new();
    if !left.has_group_filters() && !right.has_group_filters() {
        return Ok(groups);
    }
    for user in left.named_users().into_iter().chain(right.named_users()) {
        let Ok(name) = UserName::parse(&user) else { continue };
        match hub.store().get_user(&name).await {
            Ok(record) => {
                groups.insert(user, record.groups.iter().map(|group| group.to_string()).collect());
            }
            Err(StoreError::NotFound { .. }) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Ok(groups)
}

/// The owner's own scopes from its roles (default, assigned, and through groups), and whether it is an admin.
pub(crate) async fn owner_scopes(hub: &Hub, owner: &Owner) -> Result<(ScopeSet, bool), ApiError> {
    let mut role_names: Vec<String> = Vec::new();
    let admin;
    match owner {
        Owner::User(name) => {
            let name = UserName::parse(name).map_err(|_| ApiError::not_found())?;
            let user = hub.store().get_user(&name).await?;
            admin = user.admin;
            role_names.push(DefaultRole::User.name().into());
            if user.admin {
                role_names.push(DefaultRole::Admin.name().into());
            }
            role_names.extend(user.roles.iter().map(|role| role.to_string()));
            // The groups' roles in one query, without reading every member of every group.
            let group_roles = hub.store().get_groups_roles(&user.groups).await?;
            role_names.extend(group_roles.iter().map(|role| role.to_string()));
        }
        Owner::Service(name) => {
            let name = ServiceName::parse(name).map_err(|_| ApiError::not_found())?;
            let service = hub.store().get_service(&name).await?;
            admin = service.admin;
            if service.admin {
                role_names.push(DefaultRole::Admin.name().into());
            }
            role_names.extend(service.roles.iter().map(|role| role.to_string()));
        }
    }
    role_names.sort();
    role_names.dedup();
    // Every stored role's scopes in one query; a role not stored is a default one (or grants nothing).
    let parsed: Vec<RoleName> = role_names.iter().filter_map(|role| RoleName::parse(role).ok()).collect();
    let stored: HashMap<String, Vec<String>> = hub
        .store()
        .get_roles_scopes(&parsed)
        .await?
        .into_iter()
        .map(|(role, scopes)| (role.to_string(), scopes))
        .collect();
    let mut raw = Vec::new();
    for role in &role_names {
        match stored.get(role) {
            Some(scopes) => raw.extend(scopes.iter().cloned()),
            None => raw.extend(default_role_scopes(role)),
        }
    }
    Ok((ScopeSet::expand(&raw, owner, None), admin))
}

/// The scopes of the default role named `role`, or none.
fn default_role_scopes(role: &str) -> Vec<String> {
    DefaultRole::ALL
        .into_iter()
        .find(|default| default.name() == role)
        .map(|default| default.scopes().iter().map(|scope| scope.to_string()).collect())
        .unwrap_or_default()
}

/// A role's scopes: the stored role if there is one (config may redefine the defaults), else the default role.
pub(crate) async fn role_scopes(hub: &Hub, role: &str) -> Result<Vec<String>, ApiError> {
    let Ok(name) = RoleName::parse(role) else { return Ok(default_role_scopes(role)) };
    match hub.store().get_role_scopes(&name).await {
        Ok(scopes) => Ok(scopes),
        Err(StoreError::NotFound { .. }) => Ok(default_role_scopes(role)),
        Err(other) => Err(other.into()),
    }
}

/// Token activity, and `user`'s when the token makes its user active, at `now`. The callers write it at most once
/// per [`ACTIVITY_RESOLUTION`] per token; failures are logged, not answered.
async fn record_activity(hub: &Hub, token: TokenId, user: Option<&UserName>, now: Timestamp) {
    if let Err(error) = hub.store().record_token_activity(token, now).await {
        tracing::warn!(%error, "recording token activity");
    }
    if let Some(user) = user
        && let Err(error) = hub.store().record_user_activity(user, now).await
    {
        tracing::warn!(%error, "recording user activity");
    }
}

#[cfg(test)]
mod tests {
    //! Cached callers (`caller_cache.rs`) never outlive what they were resolved from: each test warms the cache
    //! with a request, changes the grant through the API or the store, and expects the very next request to see it.

    use axum::http::{Method, StatusCode};
    use serde_json::json;
    use wasmhub_model::{GroupName, RoleName, UserName};
    use wasmhub_store::{RoleHolder, Store, TokenOwner};

    use crate::tests::{call, test_hub, user_with_token};

    async fn status(hub: &crate::tests::TestHub, method: Method, uri: &str, token: &str) -> StatusCode {
        call(&hub.app, method, uri, Some(token), None).await.status
    }

    #[tokio::test]
    async fn a_revoked_token_is_refused_at_once() {
        let hub = test_hub().await;
        let alice = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
        for _ in 0..2 {
            assert_eq!(status(&hub, Method::GET, "/hub/api/users/alice", &alice).await, StatusCode::OK);
        }
        let owner = TokenOwner::User(UserName::parse("alice").unwrap());
        let id = hub.store.list_api_tokens(&owner).await.unwrap()[0].id;
        let uri = format!("/hub/api/users/alice/tokens/{id}");
        assert_eq!(status(&hub, Method::DELETE, &uri, &hub.admin_token).await, StatusCode::NO_CONTENT);
        let message = call(&hub.app, Method::GET, "/hub/api/users/alice", Some(&alice), None).await.assert_error(403);
        assert_eq!(message, "Missing or invalid credentials.");

        // The same through the store alone, as logout and the hub's own cleanups revoke tokens.
        let again = user_with_token(&hub.store, "alice", false, &["inherit"]).await;
        assert_eq!(status(&hub, Method::GET, "/hub/api/users/alice", &again).await, StatusCode::OK);
        let id = hub.store.find_api_token(&again).await.unwrap().id;
        hub.store.delete_api_token(id).await.unwrap();
        assert_eq!(status(&hub, Method::GET, "/hub/api/users/alice", &again).await, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn a_role_removed_from_a_group_takes_its_scopes_at_once() {
        let hub = test_hub().await;
        let bob = user_with_token(&hub.store, "bob", false, &["inherit"]).await;
        user_with_token(&hub.store, "carol", false, &["inherit"]).await;
        let reader = RoleName::parse("reader").unwrap();
        hub.store.put_role(&reader, "reads users", &["read:users".to_owned()]).await.unwrap();
        let staff = GroupName::parse("staff").unwrap();
        hub.store.create_group(&staff).await.unwrap();
        hub.store.add_group_members(&staff, &[UserName::parse("bob").unwrap()]).await.unwrap();
        // Before the group has the role, bob cannot read carol; the cache must not keep that answer either.
        assert_eq!(status(&hub, Method::GET, "/hub/api/users/carol", &bob).await, StatusCode::NOT_FOUND);
        hub.store.assign_role(&reader, &RoleHolder::Group(staff.clone())).await.unwrap();
        for _ in 0..2 {
            assert_eq!(status(&hub, Method::GET, "/hub/api/users/carol", &bob).await, StatusCode::OK);
        }
        hub.store.unassign_role(&reader, &RoleHolder::Group(staff.clone())).await.unwrap();
        assert_eq!(status(&hub, Method::GET, "/hub/api/users/carol", &bob).await, StatusCode::NOT_FOUND);

        // Leaving the group (through the API) and the role's scopes changing take effect at once too.
        hub.store.assign_role(&reader, &RoleHolder::Group(staff.clone())).await.unwrap();
        assert_eq!(status(&hub, Method::GET, "/hub/api/users/carol", &bob).await, StatusCode::OK);
        let body = json!({ "users": ["bob"] }).to_string();
        let removed =
            call(&hub.app, Method::DELETE, "/hub/api/groups/staff/users", Some(&hub.admin_token), Some(&body)).await;
        assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
        assert_eq!(status(&hub, Method::GET, "/hub/api/users/carol", &bob).await, StatusCode::NOT_FOUND);
        hub.store.add_group_members(&staff, &[UserName::parse("bob").unwrap()]).await.unwrap();
        assert_eq!(status(&hub, Method::GET, "/hub/api/users/carol", &bob).await, StatusCode::OK);
        hub.store.put_role(&reader, "reads names", &["read:users:name".to_owned()]).await.unwrap();
        let model = call(&hub.app, Method::GET, "/hub/api/users/carol", Some(&bob), None).await.json();
        assert!(model.get("last_activity").is_none(), "only name-level keys now: {model}");
    }

    #[tokio::test]
    async fn losing_admin_or_the_user_ends_a_cached_token() {
        let hub = test_hub().await;
        let chief = user_with_token(&hub.store, "chief", true, &["inherit"]).await;
        user_with_token(&hub.store, "carol", false, &["inherit"]).await;
        assert_eq!(status(&hub, Method::GET, "/hub/api/users/carol", &chief).await, StatusCode::OK);
        let body = json!({ "admin": false }).to_string();
        let patched = call(&hub.app, Method::PATCH, "/hub/api/users/chief", Some(&hub.admin_token), Some(&body)).await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
        assert_eq!(status(&hub, Method::GET, "/hub/api/users/carol", &chief).await, StatusCode::NOT_FOUND);
        assert_eq!(status(&hub, Method::GET, "/hub/api/users/chief", &chief).await, StatusCode::OK);
        assert_eq!(
            status(&hub, Method::DELETE, "/hub/api/users/chief", &hub.admin_token).await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(status(&hub, Method::GET, "/hub/api/users/chief", &chief).await, StatusCode::FORBIDDEN);
    }
}
