//! The hub's persistent state: users, groups, roles, services, API tokens, OAuth clients and codes, browser
//! logins, and servers with their spawn state machine, behind one [`Store`] trait.
//!
//! Two implementations share one body of SQL (`sql/`, one file per area of the trait): [`SqliteStore`] for one
//! machine and [`PostgresStore`] for a cluster. Each owns its migrations (`migrations/sqlite`, `migrations/postgres`),
//! embedded in the binary and applied when the store opens. Tokens, OAuth client secrets and authorization codes are
//! stored as JupyterHub's prefix and salted hash, never in plaintext; a plaintext exists only in the value returned
//! when it is created.

mod encoding;
mod error;
mod postgres;
mod records;
mod sql;
mod sqlite;
mod verified;

use async_trait::async_trait;
use wasmhub_model::{GroupName, PlainToken, RoleName, ServerName, ServiceName, TokenId, UserName};

pub use error::{StoreError, StoreResult};
pub use postgres::PostgresStore;
pub use records::*;
pub use sqlite::SqliteStore;

/// Everything the hub keeps. Methods that name something that does not exist return
/// [`StoreError::NotFound`]; creating something that exists returns [`StoreError::Conflict`].
/// Timestamps the store sets itself (`created`, `started`) come from the system clock.
#[async_trait]
pub trait Store: Send + Sync {
    /// A counter that moves forward after every write that can change what an existing API token grants or
    /// whether it still exists: deleting tokens (one, a session's, expired ones, with their user, service or OAuth
    /// client), renaming or deleting users and changing their admin flag, group membership and deletion, roles,
    /// role assignments and services. Writes that cannot change an existing token's grant (creating users, groups,
    /// tokens or clients, activity, servers) leave it alone. It moves only after the write is committed, so a
    /// value read before reading the database is older than any write that reading could have missed: a cache of
    /// resolved tokens tagged with it is current while the tag equals the counter. It counts this process's writes
    /// only; like JupyterHub, the hub assumes it is the one writer of its database.
    fn auth_generation(&self) -> u64;

    // === the hub lease ===
    /// Takes the lease naming the one hub that acts on this database, for `ttl`, when it is free, expired or
    /// already `holder`'s: `None`. Otherwise `Some` of the holder that has it.
    async fn take_lease(&self, holder: &str, ttl: std::time::Duration) -> StoreResult<Option<String>>;
    /// Extends `holder`'s lease by `ttl` from now; `false` when it is no longer `holder`'s.
    async fn renew_lease(&self, holder: &str, ttl: std::time::Duration) -> StoreResult<bool>;
    /// Gives the lease up, if `holder` has it.
    async fn release_lease(&self, holder: &str) -> StoreResult<()>;

    // === users ===
    async fn create_user(&self, name: &UserName, admin: bool) -> StoreResult<User>;
    async fn get_user(&self, name: &UserName) -> StoreResult<User>;
    async fn list_users(&self, query: &UserQuery) -> StoreResult<Page<User>>;
    /// Renames and changes admin; the user's tokens, groups and servers follow a rename.
    async fn update_user(&self, name: &UserName, change: &UserChange) -> StoreResult<User>;
    /// Deletes the user with their tokens, codes, servers and memberships.
    async fn delete_user(&self, name: &UserName) -> StoreResult<()>;
    /// Moves `last_activity` forward to `at`; an older `at` changes nothing.
    async fn record_user_activity(&self, name: &UserName, at: Timestamp) -> StoreResult<()>;

    // === groups ===
    async fn create_group(&self, name: &GroupName) -> StoreResult<Group>;
    async fn get_group(&self, name: &GroupName) -> StoreResult<Group>;
    /// The roles held by any of `groups`, each once, in byte order, in one query and without the groups'
    /// members (request authentication needs only these); unknown groups hold none.
    async fn get_groups_roles(&self, groups: &[GroupName]) -> StoreResult<Vec<RoleName>>;
    async fn list_groups(&self, page: PageRequest) -> StoreResult<Page<Group>>;
    /// Replaces the properties (a JSON object as text).
    async fn set_group_properties(&self, name: &GroupName, properties: &str) -> StoreResult<Group>;
    /// Adds members; members already in the group are fine. One unknown user fails the whole call.
    async fn add_group_members(&self, name: &GroupName, users: &[UserName]) -> StoreResult<Group>;
    async fn remove_group_members(&self, name: &GroupName, users: &[UserName]) -> StoreResult<Group>;
    async fn delete_group(&self, name: &GroupName) -> StoreResult<()>;

    // === roles ===
    /// Creates the role or replaces its description and scopes (roles come from config at every start).
    async fn put_role(&self, name: &RoleName, description: &str, scopes: &[String]) -> StoreResult<Role>;
    async fn get_role(&self, name: &RoleName) -> StoreResult<Role>;
    /// Only the role's scopes, in one query: what request authentication needs, without the role's holders.
    async fn get_role_scopes(&self, name: &RoleName) -> StoreResult<Vec<String>>;
    /// The scopes of each of `roles` that is stored, in one query; roles not stored are left out.
    async fn get_roles_scopes(&self, roles: &[RoleName]) -> StoreResult<Vec<(RoleName, Vec<String>)>>;
    async fn list_roles(&self) -> StoreResult<Vec<Role>>;
    async fn delete_role(&self, name: &RoleName) -> StoreResult<()>;
    /// Assigning a role twice is fine.
    async fn assign_role(&self, role: &RoleName, holder: &RoleHolder) -> StoreResult<()>;
    async fn unassign_role(&self, role: &RoleName, holder: &RoleHolder) -> StoreResult<()>;

    // === services ===
    /// Creates the service or updates its admin flag (services come from config at every start).
    async fn put_service(&self, name: &ServiceName, admin: bool) -> StoreResult<Service>;
    async fn get_service(&self, name: &ServiceName) -> StoreResult<Service>;
    async fn list_services(&self) -> StoreResult<Vec<Service>>;
    /// Deletes the service with its tokens.
    async fn delete_service(&self, name: &ServiceName) -> StoreResult<()>;

    // === API tokens ===
    /// Stores a new token and returns it with its plaintext, which is not kept anywhere.
    async fn create_api_token(&self, new: &NewApiToken) -> StoreResult<(ApiToken, PlainToken)>;
    /// The unexpired token whose hash matches `presented`, found by its prefix and compared in constant time.
    async fn find_api_token(&self, presented: &str) -> StoreResult<ApiToken>;
    async fn get_api_token(&self, id: TokenId) -> StoreResult<ApiToken>;
    /// The owner's unexpired tokens, oldest first.
    async fn list_api_tokens(&self, owner: &TokenOwner) -> StoreResult<Vec<ApiToken>>;
    /// Moves `last_activity` forward to `at`.
    async fn record_token_activity(&self, id: TokenId, at: Timestamp) -> StoreResult<()>;
    async fn delete_api_token(&self, id: TokenId) -> StoreResult<()>;
    /// Logout: deletes every token bound to the browser session; returns how many.
    async fn delete_session_tokens(&self, session_id: &str) -> StoreResult<u64>;
    /// Deletes expired tokens, authorization codes and logins; returns how many.
    async fn delete_expired(&self) -> StoreResult<u64>;

    // === OAuth ===
    /// Creates the client or replaces its fields (a server's client is rewritten at every spawn).
    async fn put_oauth_client(&self, new: &NewOAuthClient) -> StoreResult<OAuthClient>;
    async fn get_oauth_client(&self, client_id: &str) -> StoreResult<OAuthClient>;
    /// Deletes the client with its tokens and codes. The hub's own client cannot be deleted.
    async fn delete_oauth_client(&self, client_id: &str) -> StoreResult<()>;
    /// Stores a new authorization code and returns its plaintext.
    async fn create_oauth_code(&self, new: &NewOAuthCode) -> StoreResult<PlainToken>;
    /// Consumes the code: it is returned once and deleted in the same statement, so two concurrent exchanges
    /// cannot both succeed. Unknown, expired, used or another client's codes are `NotFound`.
    async fn take_oauth_code(&self, client_id: &str, code: &str) -> StoreResult<OAuthCode>;

    // === browser logins ===
    /// Stores a login for `user` bound to the browser's `session_id` and returns the cookie value, which is not
    /// kept anywhere.
    async fn create_login_session(
        &self,
        user: &UserName,
        session_id: &str,
        expires_at: Timestamp,
    ) -> StoreResult<(LoginSession, PlainToken)>;
    /// The unexpired login whose hash matches the presented cookie value, compared in constant time.
    async fn find_login_session(&self, presented: &str) -> StoreResult<LoginSession>;
    /// Logout: deletes the logins of the browser session; returns how many.
    async fn delete_login_sessions(&self, session_id: &str) -> StoreResult<u64>;

    // === servers ===
    /// A new server at rest (`Stopped`).
    async fn create_server(&self, user: &UserName, name: &ServerName, user_options: &str) -> StoreResult<Server>;
    async fn get_server(&self, user: &UserName, name: &ServerName) -> StoreResult<Server>;
    /// One user's servers, or everyone's, ordered by user then name.
    async fn list_servers(&self, user: Option<&UserName>) -> StoreResult<Vec<Server>>;
    /// The servers of all of `users` in one query (a page of the user list), ordered by user then name; names
    /// that are not users have none.
    async fn list_servers_of(&self, users: &[UserName]) -> StoreResult<Vec<Server>>;
    /// Applies `update`; a state change the state machine forbids is [`StoreError::IllegalTransition`] and
    /// changes nothing.
    async fn update_server(&self, user: &UserName, name: &ServerName, update: &ServerUpdate) -> StoreResult<Server>;
    /// Moves `last_activity` forward to `at`.
    async fn record_server_activity(&self, user: &UserName, name: &ServerName, at: Timestamp) -> StoreResult<()>;
    /// Removes a server at rest; an active one is [`StoreError::ServerActive`].
    async fn delete_server(&self, user: &UserName, name: &ServerName) -> StoreResult<()>;
}
