//! Who is calling: the `Authorization: token|bearer <t>` header resolved to a stored token, its owner, and the
//! token's effective scopes (its own scopes, `inherit` resolved, intersected with the owner's current scopes, plus
//! the identify scopes), as JupyterHub's `get_current_user_token` and `get_scopes_for` compute them. Without a
//! token header, the browser's login cookie is tried under JupyterHub's XSRF rules (`session.rs`).

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::Utc;
use wasmhub_model::{DefaultRole, RoleName, ServiceName, UserName};
use wasmhub_store::{ApiToken, StoreError, TokenOwner};

use crate::Hub;
use crate::error::ApiError;
use crate::scopes::{Denial, Owner, Resource, ScopeSet};

/// Token activity is written at most this often per token (`activity_resolution`).
const ACTIVITY_RESOLUTION: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// The authenticated caller of one request, or an anonymous one (no or invalid credentials).
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) owner: Option<Owner>,
    pub(crate) scopes: ScopeSet,
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
        Caller { owner: None, scopes: ScopeSet::default(), admin: false, credential: Credential::None }
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
            return crate::session::cookie_caller(parts, hub).await;
        };
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
        record_activity(hub, &token).await;
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
    Ok(Caller { owner: Some(owner), scopes, admin, credential })
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
            for group in &user.groups {
                let group = hub.store().get_group(group).await?;
                role_names.extend(group.roles.iter().map(|role| role.to_string()));
            }
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
    let mut raw = Vec::new();
    for role in &role_names {
        raw.extend(role_scopes(hub, role).await?);
    }
    Ok((ScopeSet::expand(&raw, owner, None), admin))
}

/// A role's scopes: the stored role if there is one (config may redefine the defaults), else the default role.
pub(crate) async fn role_scopes(hub: &Hub, role: &str) -> Result<Vec<String>, ApiError> {
    let default = || {
        DefaultRole::ALL
            .into_iter()
            .find(|default| default.name() == role)
            .map(|default| default.scopes().iter().map(|scope| scope.to_string()).collect())
            .unwrap_or_default()
    };
    let Ok(name) = RoleName::parse(role) else { return Ok(default()) };
    match hub.store().get_role_scopes(&name).await {
        Ok(scopes) => Ok(scopes),
        Err(StoreError::NotFound { .. }) => Ok(default()),
        Err(other) => Err(other.into()),
    }
}

/// Token and user activity on authentication, at most once per [`ACTIVITY_RESOLUTION`]. A server's own token
/// ("Server at ...") does not make its user active (`hub-contract.md` §9.9). Failures are logged, not answered.
async fn record_activity(hub: &Hub, token: &ApiToken) {
    let now = Utc::now();
    if token.last_activity.is_some_and(|last| now - last < ACTIVITY_RESOLUTION) {
        return;
    }
    if let Err(error) = hub.store().record_token_activity(token.id, now).await {
        tracing::warn!(%error, "recording token activity");
    }
    if let TokenOwner::User(user) = &token.owner
        && !token.note.starts_with("Server at ")
        && let Err(error) = hub.store().record_user_activity(user, now).await
    {
        tracing::warn!(%error, "recording user activity");
    }
}
