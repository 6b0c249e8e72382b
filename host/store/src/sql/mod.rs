//! The one implementation of [`Store`](crate::Store) in SQL, expanded once per database.
//!
//! Both databases take the same statements (`$N` parameters, `RETURNING`, `ON CONFLICT`), so the code is written
//! once. It is a macro rather than a function generic over `sqlx::Database` because sqlx's generic bounds (an
//! `Encode`, `Decode` and `Type` bound per column type, per lifetime) would bury the SQL; expanded per backend,
//! every query is checked against concrete types. The differences are parameters: the case-insensitive `LIKE`
//! operator, the collation that sorts names by bytes (so both backends list in the same order), and the subquery
//! that unpacks a list of ids or names bound as one JSON-array parameter.
//!
//! The SQL is split by the trait's areas, one file and one macro each (`users_sql!` in `users.rs`, and likewise
//! groups, roles, services, API tokens, OAuth, browser logins, servers and the hub lease), each given only the differences its
//! statements use. `sql_store!` expands the imports and helpers they share, then every area, then the `Store`
//! impl. The areas cannot contribute to that impl directly: `#[async_trait]` rewrites an impl's `async fn`s before
//! any macro inside it expands, so an `async fn` coming out of an area macro would not match the trait's
//! boxed-future signature. Each area instead defines inherent `sql_<method>` methods, and the impl forwards every
//! trait method to its own; a missing one is a compile error rather than a call back into the trait.

pub(crate) mod groups;
pub(crate) mod lease;
pub(crate) mod logins;
pub(crate) mod oauth;
pub(crate) mod roles;
pub(crate) mod servers;
pub(crate) mod services;
pub(crate) mod tokens;
pub(crate) mod users;

macro_rules! sql_store {
    (
        $store:ident,
        $db:ty,
        case_insensitive_like = $ilike:literal,
        byte_order = $byte_order:literal,
        ids_in = $ids_in:literal,
        names_in = $names_in:literal
    ) => {
        use std::collections::HashMap;

        use async_trait::async_trait;
        use sqlx::Row;
        use wasmhub_model::{
            GroupName, PlainToken, RoleName, ServerName, ServiceName, SpawnState, TokenId, TokenKind, UserName,
        };

        use crate::encoding::{
            contains_pattern, decode_scopes, encode_scopes, full_server_name, hash_token, json_ids, json_strings,
            micros, name, new_token, now, optional_timestamp, parse_hash, parse_names, timestamp,
        };
        use crate::error::conflict_on_unique;
        use crate::{
            ApiToken, Group, HUB_OAUTH_CLIENT, LoginSession, NewApiToken, NewOAuthClient, NewOAuthCode, OAuthClient,
            OAuthCode, Page, PageRequest, Role, RoleHolder, Server, ServerUpdate, Service, Store, StoreError,
            StoreResult, Timestamp, TokenOwner, User, UserChange, UserQuery, UserSort, UserState,
        };

        type DbRow = <$db as sqlx::Database>::Row;

        async fn lookup_id<'e, E>(executor: E, sql: &'static str, kind: &'static str, key: &str) -> StoreResult<i64>
        where
            E: sqlx::Executor<'e, Database = $db>,
        {
            sqlx::query(sql)
                .bind(key)
                .fetch_optional(executor)
                .await?
                .map(|row| row.try_get::<i64, _>(0))
                .transpose()?
                .ok_or_else(|| StoreError::not_found(kind, key))
        }

        const USER_ID: &str = "SELECT id FROM users WHERE name = $1";
        const GROUP_ID: &str = "SELECT id FROM groups WHERE name = $1";
        const ROLE_ID: &str = "SELECT id FROM roles WHERE name = $1";
        const SERVICE_ID: &str = "SELECT id FROM services WHERE name = $1";
        const CLIENT_ID: &str = "SELECT id FROM oauth_clients WHERE client_id = $1";

        fn page_bounds(page: PageRequest) -> (i64, i64) {
            let clamp = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
            (clamp(page.limit), clamp(page.offset))
        }

        impl $store {
            async fn names(&self, sql: &'static str, id: i64) -> StoreResult<Vec<String>> {
                let rows = sqlx::query(sql).bind(id).fetch_all(&self.pool).await?;
                rows.iter().map(|row| Ok(row.try_get::<String, _>(0)?)).collect()
            }

            /// Moves [`Store::auth_generation`] when the returned guard drops: at the end of a write method, after its
            /// commit, and also when the write is cancelled midway, since it may have committed anyway.
            fn auth_change(&self) -> crate::sql::AuthChange<'_> {
                crate::sql::AuthChange(&self.auth_generation)
            }

            /// Deletes `sql`'s single matching row, or reports `NotFound`.
            async fn delete_one(&self, sql: &'static str, kind: &'static str, key: &str) -> StoreResult<()> {
                let result = sqlx::query(sql).bind(key).execute(&self.pool).await?;
                if result.rows_affected() == 0 {
                    return Err(StoreError::not_found(kind, key));
                }
                Ok(())
            }
        }

        crate::sql::users::users_sql!(
            $store,
            case_insensitive_like = $ilike,
            byte_order = $byte_order,
            ids_in = $ids_in
        );
        crate::sql::groups::groups_sql!($store, byte_order = $byte_order, names_in = $names_in);
        crate::sql::roles::roles_sql!($store, byte_order = $byte_order, names_in = $names_in);
        crate::sql::services::services_sql!($store, byte_order = $byte_order);
        crate::sql::tokens::tokens_sql!($store);
        crate::sql::oauth::oauth_sql!($store);
        crate::sql::logins::logins_sql!($store);
        crate::sql::servers::servers_sql!($store, byte_order = $byte_order, names_in = $names_in);
        crate::sql::lease::lease_sql!($store);

        #[async_trait]
        impl Store for $store {
            fn auth_generation(&self) -> u64 {
                self.auth_generation.load(std::sync::atomic::Ordering::SeqCst)
            }

            // === the hub lease (lease.rs) ===

            async fn take_lease(&self, holder: &str, ttl: std::time::Duration) -> StoreResult<Option<String>> {
                self.sql_take_lease(holder, ttl).await
            }

            async fn renew_lease(&self, holder: &str, ttl: std::time::Duration) -> StoreResult<bool> {
                self.sql_renew_lease(holder, ttl).await
            }

            async fn release_lease(&self, holder: &str) -> StoreResult<()> {
                self.sql_release_lease(holder).await
            }

            // === users (users.rs) ===

            async fn create_user(&self, user: &UserName, admin: bool) -> StoreResult<User> {
                self.sql_create_user(user, admin).await
            }

            async fn get_user(&self, user: &UserName) -> StoreResult<User> {
                self.sql_get_user(user).await
            }

            async fn list_users(&self, query: &UserQuery) -> StoreResult<Page<User>> {
                self.sql_list_users(query).await
            }

            async fn update_user(&self, user: &UserName, change: &UserChange) -> StoreResult<User> {
                self.sql_update_user(user, change).await
            }

            async fn delete_user(&self, user: &UserName) -> StoreResult<()> {
                self.sql_delete_user(user).await
            }

            async fn record_user_activity(&self, user: &UserName, at: Timestamp) -> StoreResult<()> {
                self.sql_record_user_activity(user, at).await
            }

            // === groups (groups.rs) ===

            async fn create_group(&self, group: &GroupName) -> StoreResult<Group> {
                self.sql_create_group(group).await
            }

            async fn get_group(&self, group: &GroupName) -> StoreResult<Group> {
                self.sql_get_group(group).await
            }

            async fn get_groups_roles(&self, groups: &[GroupName]) -> StoreResult<Vec<RoleName>> {
                self.sql_get_groups_roles(groups).await
            }

            async fn list_groups(&self, page: PageRequest) -> StoreResult<Page<Group>> {
                self.sql_list_groups(page).await
            }

            async fn set_group_properties(&self, group: &GroupName, properties: &str) -> StoreResult<Group> {
                self.sql_set_group_properties(group, properties).await
            }

            async fn add_group_members(&self, group: &GroupName, users: &[UserName]) -> StoreResult<Group> {
                self.sql_add_group_members(group, users).await
            }

            async fn remove_group_members(&self, group: &GroupName, users: &[UserName]) -> StoreResult<Group> {
                self.sql_remove_group_members(group, users).await
            }

            async fn delete_group(&self, group: &GroupName) -> StoreResult<()> {
                self.sql_delete_group(group).await
            }

            // === roles (roles.rs) ===

            async fn put_role(&self, role: &RoleName, description: &str, scopes: &[String]) -> StoreResult<Role> {
                self.sql_put_role(role, description, scopes).await
            }

            async fn get_role(&self, role: &RoleName) -> StoreResult<Role> {
                self.sql_get_role(role).await
            }

            async fn get_role_scopes(&self, role: &RoleName) -> StoreResult<Vec<String>> {
                self.sql_get_role_scopes(role).await
            }

            async fn get_roles_scopes(&self, roles: &[RoleName]) -> StoreResult<Vec<(RoleName, Vec<String>)>> {
                self.sql_get_roles_scopes(roles).await
            }

            async fn list_roles(&self) -> StoreResult<Vec<Role>> {
                self.sql_list_roles().await
            }

            async fn delete_role(&self, role: &RoleName) -> StoreResult<()> {
                self.sql_delete_role(role).await
            }

            async fn assign_role(&self, role: &RoleName, holder: &RoleHolder) -> StoreResult<()> {
                self.sql_assign_role(role, holder).await
            }

            async fn unassign_role(&self, role: &RoleName, holder: &RoleHolder) -> StoreResult<()> {
                self.sql_unassign_role(role, holder).await
            }

            // === services (services.rs) ===

            async fn put_service(&self, service: &ServiceName, admin: bool) -> StoreResult<Service> {
                self.sql_put_service(service, admin).await
            }

            async fn get_service(&self, service: &ServiceName) -> StoreResult<Service> {
                self.sql_get_service(service).await
            }

            async fn list_services(&self) -> StoreResult<Vec<Service>> {
                self.sql_list_services().await
            }

            async fn delete_service(&self, service: &ServiceName) -> StoreResult<()> {
                self.sql_delete_service(service).await
            }

            // === API tokens (tokens.rs) ===

            async fn create_api_token(&self, new: &NewApiToken) -> StoreResult<(ApiToken, PlainToken)> {
                self.sql_create_api_token(new).await
            }

            async fn find_api_token(&self, presented: &str) -> StoreResult<ApiToken> {
                self.sql_find_api_token(presented).await
            }

            async fn get_api_token(&self, id: TokenId) -> StoreResult<ApiToken> {
                self.sql_get_api_token(id).await
            }

            async fn list_api_tokens(&self, owner: &TokenOwner) -> StoreResult<Vec<ApiToken>> {
                self.sql_list_api_tokens(owner).await
            }

            async fn record_token_activity(&self, id: TokenId, at: Timestamp) -> StoreResult<()> {
                self.sql_record_token_activity(id, at).await
            }

            async fn delete_api_token(&self, id: TokenId) -> StoreResult<()> {
                self.sql_delete_api_token(id).await
            }

            async fn delete_session_tokens(&self, session_id: &str) -> StoreResult<u64> {
                self.sql_delete_session_tokens(session_id).await
            }

            async fn delete_expired(&self) -> StoreResult<u64> {
                self.sql_delete_expired().await
            }

            // === OAuth (oauth.rs) ===

            async fn put_oauth_client(&self, new: &NewOAuthClient) -> StoreResult<OAuthClient> {
                self.sql_put_oauth_client(new).await
            }

            async fn get_oauth_client(&self, client_id: &str) -> StoreResult<OAuthClient> {
                self.sql_get_oauth_client(client_id).await
            }

            async fn delete_oauth_client(&self, client_id: &str) -> StoreResult<()> {
                self.sql_delete_oauth_client(client_id).await
            }

            async fn create_oauth_code(&self, new: &NewOAuthCode) -> StoreResult<PlainToken> {
                self.sql_create_oauth_code(new).await
            }

            async fn take_oauth_code(&self, client_id: &str, code: &str) -> StoreResult<OAuthCode> {
                self.sql_take_oauth_code(client_id, code).await
            }

            // === browser logins (logins.rs) ===

            async fn create_login_session(
                &self,
                user: &UserName,
                session_id: &str,
                expires_at: Timestamp,
            ) -> StoreResult<(LoginSession, PlainToken)> {
                self.sql_create_login_session(user, session_id, expires_at).await
            }

            async fn find_login_session(&self, presented: &str) -> StoreResult<LoginSession> {
                self.sql_find_login_session(presented).await
            }

            async fn delete_login_sessions(&self, session_id: &str) -> StoreResult<u64> {
                self.sql_delete_login_sessions(session_id).await
            }

            // === servers (servers.rs) ===

            async fn create_server(
                &self,
                user: &UserName,
                server: &ServerName,
                user_options: &str,
            ) -> StoreResult<Server> {
                self.sql_create_server(user, server, user_options).await
            }

            async fn get_server(&self, user: &UserName, server: &ServerName) -> StoreResult<Server> {
                self.sql_get_server(user, server).await
            }

            async fn list_servers(&self, user: Option<&UserName>) -> StoreResult<Vec<Server>> {
                self.sql_list_servers(user).await
            }

            async fn list_servers_of(&self, users: &[UserName]) -> StoreResult<Vec<Server>> {
                self.sql_list_servers_of(users).await
            }

            async fn update_server(
                &self,
                user: &UserName,
                server: &ServerName,
                update: &ServerUpdate,
            ) -> StoreResult<Server> {
                self.sql_update_server(user, server, update).await
            }

            async fn record_server_activity(
                &self,
                user: &UserName,
                server: &ServerName,
                at: Timestamp,
            ) -> StoreResult<()> {
                self.sql_record_server_activity(user, server, at).await
            }

            async fn delete_server(&self, user: &UserName, server: &ServerName) -> StoreResult<()> {
                self.sql_delete_server(user, server).await
            }
        }
    };
}

pub(crate) use sql_store;

/// Moves a store's auth generation when dropped (see `auth_change` in the expansion).
pub(crate) struct AuthChange<'a>(pub(crate) &'a std::sync::atomic::AtomicU64);

impl Drop for AuthChange<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}
