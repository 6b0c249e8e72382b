//! Who is calling and what they may do: the [`caller::Caller`] behind a token or a login cookie, the scope
//! evaluation, browser sessions and their cookies, the guards against granting more than the caller holds, the cache of resolved token callers, and the one form-XSRF
//! check. Everything else in the hub asks this room before it acts; it asks no other room.

pub(crate) mod caller;
pub(crate) mod caller_cache;
pub(crate) mod grants;
pub(crate) mod scopes;
pub(crate) mod session;
pub(crate) mod xsrf;

use wasmhub_model::UserName;
use wasmhub_store::{StoreError, User};

use crate::Hub;
use crate::error::ApiError;

/// The user a request names, for its scope check: `None` when the name is invalid or unknown, which the scope
/// check turns into 404 or 403 as JupyterHub does.
pub(crate) async fn find_user(hub: &Hub, name: &str) -> Result<Option<User>, ApiError> {
    let Ok(name) = UserName::parse(name) else { return Ok(None) };
    match hub.store().get_user(&name).await {
        Ok(user) => Ok(Some(user)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(other) => Err(other.into()),
    }
}

/// The groups of the user a request names, which `!group=` scope filters match.
pub(crate) fn group_names(user: Option<&User>) -> Vec<String> {
    user.map(|user| user.groups.iter().map(|group| group.to_string()).collect()).unwrap_or_default()
}
