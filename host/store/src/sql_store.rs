//! The one implementation of [`Store`](crate::Store) in SQL, expanded once per database.
//!
//! Both databases take the same statements (`$N` parameters, `RETURNING`, `ON CONFLICT`), so the code is written
//! once. It is a macro rather than a function generic over `sqlx::Database` because sqlx's generic bounds (an
//! `Encode`, `Decode` and `Type` bound per column type, per lifetime) would bury the SQL; expanded per backend,
//! every query is checked against concrete types. The differences are parameters: the case-insensitive `LIKE`
//! operator, the collation that sorts names by bytes (so both backends list in the same order), and the subquery
//! that unpacks a list of ids or names bound as one JSON-array parameter.

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
            contains_pattern, decode_scopes, encode_scopes, full_server_name, hash_token, json_ids, json_strings, micros,
            name, new_token, now, optional_timestamp, parse_hash, parse_names, timestamp,
        };
        use crate::error::conflict_on_unique;
        use crate::{
            ApiToken, Group, LoginSession, NewApiToken, NewOAuthClient, NewOAuthCode, OAuthClient, OAuthCode, Page, PageRequest,
            Role, RoleHolder, Server, ServerUpdate, Service, Store, StoreError, StoreResult, Timestamp, TokenOwner,
            User, UserChange, UserQuery, UserSort, UserState, HUB_OAUTH_CLIENT,
        };

        type DbRow = <$db as sqlx::Database>::Row;

        const ACTIVE_STATES: &str = "('requested', 'starting', 'running', 'stopping')";

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

        fn server_from_row(row: &DbRow) -> StoreResult<Server> {
            let state: String = row.try_get("state")?;
            Ok(Server {
                user: name("username", row.try_get("user_name")?, UserName::parse)?,
                name: name("server name", row.try_get("name")?, ServerName::parse)?,
                state: SpawnState::parse(&state).ok_or(StoreError::Corrupt { what: "server state", value: state })?,
                url: row.try_get("url")?,
                spawner_state: row.try_get("spawner_state")?,
                object_names: row.try_get("object_names")?,
                user_options: row.try_get("user_options")?,
                failure: row.try_get("failure")?,
                started: optional_timestamp(row.try_get("started")?)?,
                last_activity: optional_timestamp(row.try_get("last_activity")?)?,
            })
        }

        /// A user without memberships from an `id, name, admin, created, last_activity` row.
        fn user_from_row(row: &DbRow) -> StoreResult<User> {
            Ok(User {
                name: name("username", row.try_get("name")?, UserName::parse)?,
                admin: row.try_get("admin")?,
                created: timestamp(row.try_get("created")?)?,
                last_activity: optional_timestamp(row.try_get("last_activity")?)?,
                groups: Vec::new(),
                roles: Vec::new(),
            })
        }

        /// Adds a membership row's group (`kind` "g") or role ("r") to `user`.
        fn add_membership(user: &mut User, kind: &str, member: String) -> StoreResult<()> {
            match kind {
                "g" => user.groups.push(name("group name", member, GroupName::parse)?),
                _ => user.roles.push(name("role name", member, RoleName::parse)?),
            }
            Ok(())
        }

        /// Byte order, as the listings sort names on both backends; sorted here because a `UNION` cannot be
        /// ordered by a collated expression in PostgreSQL.
        fn sort_memberships(user: &mut User) {
            user.groups.sort_unstable_by(|left, right| left.as_str().cmp(right.as_str()));
            user.roles.sort_unstable_by(|left, right| left.as_str().cmp(right.as_str()));
        }

        const SERVER_COLUMNS_FROM: &str = "SELECT u.name AS user_name, s.name, s.state, s.url, s.spawner_state, \
            s.object_names, s.user_options, s.failure, s.started, s.last_activity \
            FROM servers s JOIN users u ON u.id = s.user_id";

        fn token_from_row(row: &DbRow) -> StoreResult<ApiToken> {
            let user_name: Option<String> = row.try_get("user_name")?;
            let service_name: Option<String> = row.try_get("service_name")?;
            let owner = match (user_name, service_name) {
                (Some(user), None) => TokenOwner::User(name("username", user, UserName::parse)?),
                (None, Some(service)) => TokenOwner::Service(name("service name", service, ServiceName::parse)?),
                _ => return Err(StoreError::Corrupt { what: "token owner", value: String::new() }),
            };
            Ok(ApiToken {
                id: TokenId(row.try_get("id")?),
                owner,
                client_id: row.try_get("client_id")?,
                prefix: row.try_get("prefix")?,
                scopes: decode_scopes(&row.try_get::<String, _>("scopes")?),
                note: row.try_get("note")?,
                session_id: row.try_get("session_id")?,
                created: timestamp(row.try_get("created")?)?,
                expires_at: optional_timestamp(row.try_get("expires_at")?)?,
                last_activity: optional_timestamp(row.try_get("last_activity")?)?,
            })
        }

        const TOKEN_COLUMNS_FROM: &str = "SELECT t.id, u.name AS user_name, s.name AS service_name, t.client_id, \
            t.prefix, t.hashed, t.scopes, t.note, t.session_id, t.created, t.expires_at, t.last_activity \
            FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id LEFT JOIN services s ON s.id = t.service_id";

        impl $store {
            /// Turns `id, name, admin, created, last_activity` rows into users, with their groups and roles fetched
            /// in one query for the whole batch.
            async fn users_from_rows(&self, rows: Vec<DbRow>) -> StoreResult<Vec<User>> {
                let mut ids = Vec::with_capacity(rows.len());
                let mut users = Vec::with_capacity(rows.len());
                for row in &rows {
                    ids.push(row.try_get::<i64, _>("id")?);
                    users.push(user_from_row(row)?);
                }
                if ids.is_empty() {
                    return Ok(users);
                }
                let position: HashMap<i64, usize> = ids.iter().enumerate().map(|(index, id)| (*id, index)).collect();
                // Both memberships in one statement, the ids bound once as a JSON array (see `json_ids`).
                let query = sqlx::query(concat!(
                    "SELECT ug.user_id, 'g' AS kind, g.name FROM user_groups ug JOIN groups g ON g.id = ug.group_id ",
                    "WHERE ug.user_id IN (",
                    $ids_in,
                    ") UNION ALL SELECT ur.user_id, 'r' AS kind, r.name FROM user_roles ur ",
                    "JOIN roles r ON r.id = ur.role_id WHERE ur.user_id IN (",
                    $ids_in,
                    ")"
                ))
                .bind(json_ids(&ids));
                for row in query.fetch_all(&self.pool).await? {
                    let user = &mut users[position[&row.try_get::<i64, _>(0)?]];
                    add_membership(user, &row.try_get::<String, _>(1)?, row.try_get(2)?)?;
                }
                for user in &mut users {
                    sort_memberships(user);
                }
                Ok(users)
            }

            async fn names(&self, sql: &'static str, id: i64) -> StoreResult<Vec<String>> {
                let rows = sqlx::query(sql).bind(id).fetch_all(&self.pool).await?;
                rows.iter().map(|row| Ok(row.try_get::<String, _>(0)?)).collect()
            }

            async fn group_from_row(&self, row: &DbRow) -> StoreResult<Group> {
                let id: i64 = row.try_get("id")?;
                let users = self
                    .names(
                        concat!(
                            "SELECT u.name FROM user_groups ug JOIN users u ON u.id = ug.user_id ",
                            "WHERE ug.group_id = $1 ORDER BY u.name ",
                            $byte_order
                        ),
                        id,
                    )
                    .await?;
                let roles = self
                    .names(
                        concat!(
                            "SELECT r.name FROM group_roles gr JOIN roles r ON r.id = gr.role_id ",
                            "WHERE gr.group_id = $1 ORDER BY r.name ",
                            $byte_order
                        ),
                        id,
                    )
                    .await?;
                Ok(Group {
                    name: name("group name", row.try_get("name")?, GroupName::parse)?,
                    properties: row.try_get("properties")?,
                    users: parse_names("username", users, UserName::parse)?,
                    roles: parse_names("role name", roles, RoleName::parse)?,
                })
            }

            async fn role_from_row(&self, row: &DbRow) -> StoreResult<Role> {
                let id: i64 = row.try_get("id")?;
                let users = self
                    .names(
                        concat!(
                            "SELECT u.name FROM user_roles ur JOIN users u ON u.id = ur.user_id ",
                            "WHERE ur.role_id = $1 ORDER BY u.name ",
                            $byte_order
                        ),
                        id,
                    )
                    .await?;
                let groups = self
                    .names(
                        concat!(
                            "SELECT g.name FROM group_roles gr JOIN groups g ON g.id = gr.group_id ",
                            "WHERE gr.role_id = $1 ORDER BY g.name ",
                            $byte_order
                        ),
                        id,
                    )
                    .await?;
                let services = self
                    .names(
                        concat!(
                            "SELECT s.name FROM service_roles sr JOIN services s ON s.id = sr.service_id ",
                            "WHERE sr.role_id = $1 ORDER BY s.name ",
                            $byte_order
                        ),
                        id,
                    )
                    .await?;
                Ok(Role {
                    name: name("role name", row.try_get("name")?, RoleName::parse)?,
                    description: row.try_get("description")?,
                    scopes: decode_scopes(&row.try_get::<String, _>("scopes")?),
                    users: parse_names("username", users, UserName::parse)?,
                    groups: parse_names("group name", groups, GroupName::parse)?,
                    services: parse_names("service name", services, ServiceName::parse)?,
                })
            }

            async fn service_from_row(&self, row: &DbRow) -> StoreResult<Service> {
                let id: i64 = row.try_get("id")?;
                let roles = self
                    .names(
                        concat!(
                            "SELECT r.name FROM service_roles sr JOIN roles r ON r.id = sr.role_id ",
                            "WHERE sr.service_id = $1 ORDER BY r.name ",
                            $byte_order
                        ),
                        id,
                    )
                    .await?;
                Ok(Service {
                    name: name("service name", row.try_get("name")?, ServiceName::parse)?,
                    admin: row.try_get("admin")?,
                    created: timestamp(row.try_get("created")?)?,
                    roles: parse_names("role name", roles, RoleName::parse)?,
                })
            }

            /// The row of `holder` and the assignment table that links it to roles.
            async fn holder(&self, holder: &RoleHolder) -> StoreResult<(i64, &'static str, &'static str)> {
                Ok(match holder {
                    RoleHolder::User(user) => {
                        (lookup_id(&self.pool, USER_ID, "user", user.as_str()).await?, "user_roles", "user_id")
                    }
                    RoleHolder::Group(group) => {
                        (lookup_id(&self.pool, GROUP_ID, "group", group.as_str()).await?, "group_roles", "group_id")
                    }
                    RoleHolder::Service(service) => (
                        lookup_id(&self.pool, SERVICE_ID, "service", service.as_str()).await?,
                        "service_roles",
                        "service_id",
                    ),
                })
            }

            async fn owner_column(&self, owner: &TokenOwner) -> StoreResult<(&'static str, i64)> {
                Ok(match owner {
                    TokenOwner::User(user) => ("user_id", lookup_id(&self.pool, USER_ID, "user", user.as_str()).await?),
                    TokenOwner::Service(service) => {
                        ("service_id", lookup_id(&self.pool, SERVICE_ID, "service", service.as_str()).await?)
                    }
                })
            }

            /// Moves [`Store::auth_generation`] when the returned guard drops: at the end of a write method, after its
            /// commit, and also when the write is cancelled midway, since it may have committed anyway.
            fn auth_change(&self) -> crate::sql_store::AuthChange<'_> {
                crate::sql_store::AuthChange(&self.auth_generation)
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

        #[async_trait]
        impl Store for $store {
            fn auth_generation(&self) -> u64 {
                self.auth_generation.load(std::sync::atomic::Ordering::SeqCst)
            }

            // === users ===

            async fn create_user(&self, user: &UserName, admin: bool) -> StoreResult<User> {
                let created = now();
                sqlx::query("INSERT INTO users (name, admin, created) VALUES ($1, $2, $3)")
                    .bind(user.as_str())
                    .bind(admin)
                    .bind(micros(created))
                    .execute(&self.pool)
                    .await
                    .map_err(conflict_on_unique("user", user.as_str()))?;
                Ok(User {
                    name: user.clone(),
                    admin,
                    created,
                    last_activity: None,
                    groups: Vec::new(),
                    roles: Vec::new(),
                })
            }

            async fn get_user(&self, user: &UserName) -> StoreResult<User> {
                // One statement for the user and its memberships: request authentication and every handler that
                // names a user call this, so it is the hub's most frequent query. The user's own row is the one
                // with no `kind`.
                let rows = sqlx::query(
                    "SELECT u.name, u.admin, u.created, u.last_activity, NULL AS kind, NULL AS member \
                     FROM users u WHERE u.name = $1 \
                     UNION ALL SELECT u.name, u.admin, u.created, u.last_activity, 'g', g.name FROM users u \
                     JOIN user_groups ug ON ug.user_id = u.id JOIN groups g ON g.id = ug.group_id WHERE u.name = $1 \
                     UNION ALL SELECT u.name, u.admin, u.created, u.last_activity, 'r', r.name FROM users u \
                     JOIN user_roles ur ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id WHERE u.name = $1",
                )
                .bind(user.as_str())
                .fetch_all(&self.pool)
                .await?;
                let Some(first) = rows.first() else { return Err(StoreError::not_found("user", user.as_str())) };
                let mut found = user_from_row(first)?;
                for row in &rows {
                    if let Some(kind) = row.try_get::<Option<String>, _>("kind")? {
                        let member: Option<String> = row.try_get("member")?;
                        add_membership(&mut found, &kind, member.unwrap_or_default())?;
                    }
                }
                sort_memberships(&mut found);
                Ok(found)
            }

            async fn list_users(&self, query: &UserQuery) -> StoreResult<Page<User>> {
                let mut conditions = Vec::new();
                match query.state {
                    None => {}
                    Some(UserState::Active) => conditions.push(format!(
                        "EXISTS (SELECT 1 FROM servers s WHERE s.user_id = users.id AND s.state IN {ACTIVE_STATES})"
                    )),
                    Some(UserState::Ready) => conditions.push(
                        "EXISTS (SELECT 1 FROM servers s WHERE s.user_id = users.id AND s.state = 'running')"
                            .to_owned(),
                    ),
                    Some(UserState::Inactive) => conditions.push(format!(
                        "NOT EXISTS (SELECT 1 FROM servers s WHERE s.user_id = users.id AND s.state IN {ACTIVE_STATES})"
                    )),
                }
                let name_pattern = query.name_filter.as_deref().map(contains_pattern);
                if name_pattern.is_some() {
                    conditions.push(format!("name {} $1 ESCAPE '\\'", $ilike));
                }
                let where_clause =
                    if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };

                let count_sql = format!("SELECT COUNT(*) FROM users {where_clause}");
                let mut count_query = sqlx::query(sqlx::AssertSqlSafe(count_sql));
                if let Some(pattern) = &name_pattern {
                    count_query = count_query.bind(pattern.clone());
                }
                let total: i64 = count_query.fetch_one(&self.pool).await?.try_get(0)?;

                let direction = if query.descending { "DESC" } else { "ASC" };
                let order = match query.sort {
                    UserSort::Id => format!("id {direction}"),
                    UserSort::Name => format!("name {} {direction}", $byte_order),
                    UserSort::LastActivity => format!("last_activity {direction} NULLS LAST, id {direction}"),
                };
                let next_parameter = if name_pattern.is_some() { 2 } else { 1 };
                let page_sql = format!(
                    "SELECT id, name, admin, created, last_activity FROM users {where_clause} ORDER BY {order} \
                     LIMIT ${} OFFSET ${}",
                    next_parameter,
                    next_parameter + 1
                );
                let (limit, offset) = page_bounds(query.page);
                let mut page_query = sqlx::query(sqlx::AssertSqlSafe(page_sql));
                if let Some(pattern) = &name_pattern {
                    page_query = page_query.bind(pattern.clone());
                }
                let rows = page_query.bind(limit).bind(offset).fetch_all(&self.pool).await?;
                Ok(Page { items: self.users_from_rows(rows).await?, total: total as u64 })
            }

            async fn update_user(&self, user: &UserName, change: &UserChange) -> StoreResult<User> {
                let _auth_change = self.auth_change();
                let new_name = change.name.as_ref().map(UserName::as_str);
                let result = sqlx::query(
                    "UPDATE users SET name = COALESCE($1, name), admin = COALESCE($2, admin) WHERE name = $3",
                )
                .bind(new_name)
                .bind(change.admin)
                .bind(user.as_str())
                .execute(&self.pool)
                .await
                .map_err(conflict_on_unique("user", new_name.unwrap_or_default()))?;
                if result.rows_affected() == 0 {
                    return Err(StoreError::not_found("user", user.as_str()));
                }
                self.get_user(change.name.as_ref().unwrap_or(user)).await
            }

            async fn delete_user(&self, user: &UserName) -> StoreResult<()> {
                let _auth_change = self.auth_change();
                self.delete_one("DELETE FROM users WHERE name = $1", "user", user.as_str()).await
            }

            async fn record_user_activity(&self, user: &UserName, at: Timestamp) -> StoreResult<()> {
                let result = sqlx::query(
                    "UPDATE users SET last_activity = $1 \
                     WHERE name = $2 AND (last_activity IS NULL OR last_activity < $1)",
                )
                .bind(micros(at))
                .bind(user.as_str())
                .execute(&self.pool)
                .await?;
                if result.rows_affected() == 0 {
                    lookup_id(&self.pool, USER_ID, "user", user.as_str()).await?;
                }
                Ok(())
            }

            // === groups ===

            async fn create_group(&self, group: &GroupName) -> StoreResult<Group> {
                sqlx::query("INSERT INTO groups (name, properties) VALUES ($1, '{}')")
                    .bind(group.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(conflict_on_unique("group", group.as_str()))?;
                Ok(Group { name: group.clone(), properties: "{}".to_owned(), users: Vec::new(), roles: Vec::new() })
            }

            async fn get_group(&self, group: &GroupName) -> StoreResult<Group> {
                let row = sqlx::query("SELECT id, name, properties FROM groups WHERE name = $1")
                    .bind(group.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::not_found("group", group.as_str()))?;
                self.group_from_row(&row).await
            }

            async fn get_groups_roles(&self, groups: &[GroupName]) -> StoreResult<Vec<RoleName>> {
                if groups.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = format!(
                    "SELECT r.name FROM group_roles gr JOIN groups g ON g.id = gr.group_id \
                     JOIN roles r ON r.id = gr.role_id WHERE g.name IN ({})",
                    $names_in
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(json_strings(groups.iter().map(GroupName::as_str)))
                    .fetch_all(&self.pool)
                    .await?;
                let mut names =
                    rows.iter().map(|row| Ok(row.try_get::<String, _>(0)?)).collect::<StoreResult<Vec<_>>>()?;
                // Byte order and each role once, done here rather than in SQL, where PostgreSQL's `DISTINCT`
                // would refuse ordering by the collated expression.
                names.sort_unstable();
                names.dedup();
                parse_names("role name", names, RoleName::parse)
            }

            async fn list_groups(&self, page: PageRequest) -> StoreResult<Page<Group>> {
                let total: i64 = sqlx::query("SELECT COUNT(*) FROM groups").fetch_one(&self.pool).await?.try_get(0)?;
                let (limit, offset) = page_bounds(page);
                let rows = sqlx::query("SELECT id, name, properties FROM groups ORDER BY id LIMIT $1 OFFSET $2")
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await?;
                let mut items = Vec::with_capacity(rows.len());
                for row in &rows {
                    items.push(self.group_from_row(row).await?);
                }
                Ok(Page { items, total: total as u64 })
            }

            async fn set_group_properties(&self, group: &GroupName, properties: &str) -> StoreResult<Group> {
                let result = sqlx::query("UPDATE groups SET properties = $1 WHERE name = $2")
                    .bind(properties)
                    .bind(group.as_str())
                    .execute(&self.pool)
                    .await?;
                if result.rows_affected() == 0 {
                    return Err(StoreError::not_found("group", group.as_str()));
                }
                self.get_group(group).await
            }

            async fn add_group_members(&self, group: &GroupName, users: &[UserName]) -> StoreResult<Group> {
                let _auth_change = self.auth_change();
                let mut transaction = self.pool.begin().await?;
                let group_id = lookup_id(&mut *transaction, GROUP_ID, "group", group.as_str()).await?;
                for user in users {
                    let user_id = lookup_id(&mut *transaction, USER_ID, "user", user.as_str()).await?;
                    sqlx::query("INSERT INTO user_groups (user_id, group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                        .bind(user_id)
                        .bind(group_id)
                        .execute(&mut *transaction)
                        .await?;
                }
                transaction.commit().await?;
                self.get_group(group).await
            }

            async fn remove_group_members(&self, group: &GroupName, users: &[UserName]) -> StoreResult<Group> {
                let _auth_change = self.auth_change();
                let mut transaction = self.pool.begin().await?;
                let group_id = lookup_id(&mut *transaction, GROUP_ID, "group", group.as_str()).await?;
                for user in users {
                    let user_id = lookup_id(&mut *transaction, USER_ID, "user", user.as_str()).await?;
                    sqlx::query("DELETE FROM user_groups WHERE user_id = $1 AND group_id = $2")
                        .bind(user_id)
                        .bind(group_id)
                        .execute(&mut *transaction)
                        .await?;
                }
                transaction.commit().await?;
                self.get_group(group).await
            }

            async fn delete_group(&self, group: &GroupName) -> StoreResult<()> {
                let _auth_change = self.auth_change();
                self.delete_one("DELETE FROM groups WHERE name = $1", "group", group.as_str()).await
            }

            // === roles ===

            async fn put_role(&self, role: &RoleName, description: &str, scopes: &[String]) -> StoreResult<Role> {
                let _auth_change = self.auth_change();
                sqlx::query(
                    "INSERT INTO roles (name, description, scopes) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET description = excluded.description, scopes = excluded.scopes",
                )
                .bind(role.as_str())
                .bind(description)
                .bind(encode_scopes(scopes)?)
                .execute(&self.pool)
                .await?;
                self.get_role(role).await
            }

            async fn get_role(&self, role: &RoleName) -> StoreResult<Role> {
                let row = sqlx::query("SELECT id, name, description, scopes FROM roles WHERE name = $1")
                    .bind(role.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::not_found("role", role.as_str()))?;
                self.role_from_row(&row).await
            }

            async fn get_role_scopes(&self, role: &RoleName) -> StoreResult<Vec<String>> {
                let row = sqlx::query("SELECT scopes FROM roles WHERE name = $1")
                    .bind(role.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::not_found("role", role.as_str()))?;
                Ok(decode_scopes(&row.try_get::<String, _>("scopes")?))
            }

            async fn get_roles_scopes(&self, roles: &[RoleName]) -> StoreResult<Vec<(RoleName, Vec<String>)>> {
                if roles.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = format!("SELECT name, scopes FROM roles WHERE name IN ({})", $names_in);
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(json_strings(roles.iter().map(RoleName::as_str)))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        let role = name("role name", row.try_get("name")?, RoleName::parse)?;
                        Ok((role, decode_scopes(&row.try_get::<String, _>("scopes")?)))
                    })
                    .collect()
            }

            async fn list_roles(&self) -> StoreResult<Vec<Role>> {
                let rows = sqlx::query(concat!(
                    "SELECT id, name, description, scopes FROM roles ORDER BY name ",
                    $byte_order
                ))
                .fetch_all(&self.pool)
                .await?;
                let mut roles = Vec::with_capacity(rows.len());
                for row in &rows {
                    roles.push(self.role_from_row(row).await?);
                }
                Ok(roles)
            }

            async fn delete_role(&self, role: &RoleName) -> StoreResult<()> {
                let _auth_change = self.auth_change();
                self.delete_one("DELETE FROM roles WHERE name = $1", "role", role.as_str()).await
            }

            async fn assign_role(&self, role: &RoleName, holder: &RoleHolder) -> StoreResult<()> {
                let _auth_change = self.auth_change();
                let role_id = lookup_id(&self.pool, ROLE_ID, "role", role.as_str()).await?;
                let (holder_id, table, column) = self.holder(holder).await?;
                let sql = format!("INSERT INTO {table} ({column}, role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING");
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(holder_id).bind(role_id).execute(&self.pool).await?;
                Ok(())
            }

            async fn unassign_role(&self, role: &RoleName, holder: &RoleHolder) -> StoreResult<()> {
                let _auth_change = self.auth_change();
                let role_id = lookup_id(&self.pool, ROLE_ID, "role", role.as_str()).await?;
                let (holder_id, table, column) = self.holder(holder).await?;
                let sql = format!("DELETE FROM {table} WHERE {column} = $1 AND role_id = $2");
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(holder_id).bind(role_id).execute(&self.pool).await?;
                Ok(())
            }

            // === services ===

            async fn put_service(&self, service: &ServiceName, admin: bool) -> StoreResult<Service> {
                let _auth_change = self.auth_change();
                sqlx::query(
                    "INSERT INTO services (name, admin, created) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET admin = excluded.admin",
                )
                .bind(service.as_str())
                .bind(admin)
                .bind(micros(now()))
                .execute(&self.pool)
                .await?;
                self.get_service(service).await
            }

            async fn get_service(&self, service: &ServiceName) -> StoreResult<Service> {
                let row = sqlx::query("SELECT id, name, admin, created FROM services WHERE name = $1")
                    .bind(service.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::not_found("service", service.as_str()))?;
                self.service_from_row(&row).await
            }

            async fn list_services(&self) -> StoreResult<Vec<Service>> {
                let rows =
                    sqlx::query(concat!("SELECT id, name, admin, created FROM services ORDER BY name ", $byte_order))
                        .fetch_all(&self.pool)
                        .await?;
                let mut services = Vec::with_capacity(rows.len());
                for row in &rows {
                    services.push(self.service_from_row(row).await?);
                }
                Ok(services)
            }

            async fn delete_service(&self, service: &ServiceName) -> StoreResult<()> {
                let _auth_change = self.auth_change();
                self.delete_one("DELETE FROM services WHERE name = $1", "service", service.as_str()).await
            }

            // === API tokens ===

            async fn create_api_token(&self, new: &NewApiToken) -> StoreResult<(ApiToken, PlainToken)> {
                let token = match (new.kind, &new.supplied) {
                    (TokenKind::Supplied, Some(supplied)) => {
                        // Supplied hashes are salted, so the unique index cannot see a duplicate; JupyterHub
                        // refuses one too (`Hashed.check_token`).
                        match self.find_api_token(supplied.as_str()).await {
                            Ok(_) => return Err(StoreError::conflict("token", format!("{}...", supplied.prefix()))),
                            Err(StoreError::NotFound { .. }) => supplied.clone(),
                            Err(error) => return Err(error),
                        }
                    }
                    (TokenKind::Supplied, None) => {
                        return Err(StoreError::invalid("token", "a supplied token needs its value"));
                    }
                    (kind, None) => new_token(kind)?,
                    (_, Some(_)) => return Err(StoreError::invalid("token", "only a supplied token has a value")),
                };
                let scopes = encode_scopes(&new.scopes)?;
                let (owner_column, owner_id) = self.owner_column(&new.owner).await?;
                lookup_id(&self.pool, CLIENT_ID, "oauth client", &new.client_id).await?;
                let created = now();
                let sql = format!(
                    "INSERT INTO api_tokens \
                     ({owner_column}, client_id, prefix, hashed, scopes, note, session_id, created, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id"
                );
                let id: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(owner_id)
                    .bind(&new.client_id)
                    .bind(token.prefix())
                    .bind(hash_token(&token, new.kind)?)
                    .bind(scopes)
                    .bind(&new.note)
                    .bind(new.session_id.as_deref())
                    .bind(micros(created))
                    .bind(new.expires_at.map(micros))
                    .fetch_one(&self.pool)
                    .await?
                    .try_get(0)?;
                let record = ApiToken {
                    id: TokenId(id),
                    owner: new.owner.clone(),
                    client_id: new.client_id.clone(),
                    prefix: token.prefix().to_owned(),
                    scopes: new.scopes.clone(),
                    note: new.note.clone(),
                    session_id: new.session_id.clone(),
                    created,
                    expires_at: new.expires_at,
                    last_activity: None,
                };
                Ok((record, token))
            }

            async fn find_api_token(&self, presented: &str) -> StoreResult<ApiToken> {
                let not_found = || StoreError::not_found("token", "(presented token)");
                let token = PlainToken::parse(presented).map_err(|_| not_found())?;
                let sql = format!(
                    "{TOKEN_COLUMNS_FROM} WHERE t.prefix = $1 AND (t.expires_at IS NULL OR t.expires_at >= $2)"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(token.prefix())
                    .bind(micros(now()))
                    .fetch_all(&self.pool)
                    .await?;
                for row in &rows {
                    if self.verified.matches(token.as_str(), &row.try_get::<String, _>("hashed")?)? {
                        return token_from_row(row);
                    }
                }
                Err(not_found())
            }

            async fn get_api_token(&self, id: TokenId) -> StoreResult<ApiToken> {
                let sql = format!("{TOKEN_COLUMNS_FROM} WHERE t.id = $1");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::not_found("token", id.to_string()))?;
                token_from_row(&row)
            }

            async fn list_api_tokens(&self, owner: &TokenOwner) -> StoreResult<Vec<ApiToken>> {
                let (owner_column, owner_id) = self.owner_column(owner).await?;
                let sql = format!(
                    "{TOKEN_COLUMNS_FROM} WHERE t.{owner_column} = $1 \
                     AND (t.expires_at IS NULL OR t.expires_at >= $2) ORDER BY t.id"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(owner_id)
                    .bind(micros(now()))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(token_from_row).collect()
            }

            async fn record_token_activity(&self, id: TokenId, at: Timestamp) -> StoreResult<()> {
                let result = sqlx::query(
                    "UPDATE api_tokens SET last_activity = $1 \
                     WHERE id = $2 AND (last_activity IS NULL OR last_activity < $1)",
                )
                .bind(micros(at))
                .bind(id.0)
                .execute(&self.pool)
                .await?;
                if result.rows_affected() == 0 {
                    self.get_api_token(id).await?;
                }
                Ok(())
            }

            async fn delete_api_token(&self, id: TokenId) -> StoreResult<()> {
                let _auth_change = self.auth_change();
                let result = sqlx::query("DELETE FROM api_tokens WHERE id = $1").bind(id.0).execute(&self.pool).await?;
                if result.rows_affected() == 0 {
                    return Err(StoreError::not_found("token", id.to_string()));
                }
                Ok(())
            }

            async fn delete_session_tokens(&self, session_id: &str) -> StoreResult<u64> {
                let _auth_change = self.auth_change();
                let result = sqlx::query("DELETE FROM api_tokens WHERE session_id = $1")
                    .bind(session_id)
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected())
            }

            async fn delete_expired(&self) -> StoreResult<u64> {
                let _auth_change = self.auth_change();
                let now = micros(now());
                let tokens = sqlx::query("DELETE FROM api_tokens WHERE expires_at < $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                let codes = sqlx::query("DELETE FROM oauth_codes WHERE expires_at < $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                let logins = sqlx::query("DELETE FROM login_sessions WHERE expires_at < $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(tokens + codes + logins)
            }

            // === OAuth ===

            async fn put_oauth_client(&self, new: &NewOAuthClient) -> StoreResult<OAuthClient> {
                let secret_hash =
                    new.secret.as_ref().map(|secret| hash_token(secret, TokenKind::Supplied)).transpose()?;
                sqlx::query(
                    "INSERT INTO oauth_clients (client_id, description, secret_hash, redirect_uri, allowed_scopes) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (client_id) DO UPDATE SET description = excluded.description, \
                     secret_hash = excluded.secret_hash, redirect_uri = excluded.redirect_uri, \
                     allowed_scopes = excluded.allowed_scopes",
                )
                .bind(&new.client_id)
                .bind(&new.description)
                .bind(secret_hash)
                .bind(&new.redirect_uri)
                .bind(encode_scopes(&new.allowed_scopes)?)
                .execute(&self.pool)
                .await?;
                self.get_oauth_client(&new.client_id).await
            }

            async fn get_oauth_client(&self, client_id: &str) -> StoreResult<OAuthClient> {
                let row = sqlx::query(
                    "SELECT client_id, description, secret_hash, redirect_uri, allowed_scopes \
                     FROM oauth_clients WHERE client_id = $1",
                )
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| StoreError::not_found("oauth client", client_id))?;
                let secret_hash: Option<String> = row.try_get("secret_hash")?;
                Ok(OAuthClient {
                    client_id: row.try_get("client_id")?,
                    description: row.try_get("description")?,
                    secret_hash: secret_hash.as_deref().map(parse_hash).transpose()?,
                    redirect_uri: row.try_get("redirect_uri")?,
                    allowed_scopes: decode_scopes(&row.try_get::<String, _>("allowed_scopes")?),
                })
            }

            async fn delete_oauth_client(&self, client_id: &str) -> StoreResult<()> {
                let _auth_change = self.auth_change();
                if client_id == HUB_OAUTH_CLIENT {
                    // Every token the hub issued itself belongs to this client and would go with it.
                    return Err(StoreError::invalid("oauth client", "the hub's own client cannot be deleted"));
                }
                self.delete_one("DELETE FROM oauth_clients WHERE client_id = $1", "oauth client", client_id).await
            }

            async fn create_oauth_code(&self, new: &NewOAuthCode) -> StoreResult<PlainToken> {
                let user_id = lookup_id(&self.pool, USER_ID, "user", new.user.as_str()).await?;
                lookup_id(&self.pool, CLIENT_ID, "oauth client", &new.client_id).await?;
                let code = new_token(TokenKind::OAuthAccess)?;
                sqlx::query(
                    "INSERT INTO oauth_codes (client_id, user_id, prefix, hashed, redirect_uri, session_id, scopes, \
                     code_challenge, code_challenge_method, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&new.client_id)
                .bind(user_id)
                .bind(code.prefix())
                .bind(hash_token(&code, TokenKind::OAuthAccess)?)
                .bind(&new.redirect_uri)
                .bind(new.session_id.as_deref())
                .bind(encode_scopes(&new.scopes)?)
                .bind(new.code_challenge.as_deref())
                .bind(new.code_challenge_method.as_deref())
                .bind(micros(new.expires_at))
                .execute(&self.pool)
                .await?;
                Ok(code)
            }

            async fn take_oauth_code(&self, client_id: &str, code: &str) -> StoreResult<OAuthCode> {
                let not_found = || StoreError::not_found("oauth code", "(presented code)");
                let code = PlainToken::parse(code).map_err(|_| not_found())?;
                let candidates = sqlx::query("SELECT id, hashed FROM oauth_codes WHERE prefix = $1 AND client_id = $2")
                    .bind(code.prefix())
                    .bind(client_id)
                    .fetch_all(&self.pool)
                    .await?;
                let mut matching_id = None;
                for row in &candidates {
                    if parse_hash(&row.try_get::<String, _>("hashed")?)?.matches(code.as_str()) {
                        matching_id = Some(row.try_get::<i64, _>("id")?);
                        break;
                    }
                }
                let id = matching_id.ok_or_else(not_found)?;
                // Deleting is the claim: of two concurrent exchanges, only one gets the row back.
                let row = sqlx::query(
                    "DELETE FROM oauth_codes WHERE id = $1 RETURNING client_id, user_id, redirect_uri, session_id, \
                     scopes, code_challenge, code_challenge_method, expires_at",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(not_found)?;
                let expires_at = timestamp(row.try_get("expires_at")?)?;
                if expires_at < now() {
                    return Err(not_found());
                }
                let user_name: String = sqlx::query("SELECT name FROM users WHERE id = $1")
                    .bind(row.try_get::<i64, _>("user_id")?)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(not_found)?
                    .try_get(0)?;
                Ok(OAuthCode {
                    client_id: row.try_get("client_id")?,
                    user: name("username", user_name, UserName::parse)?,
                    redirect_uri: row.try_get("redirect_uri")?,
                    session_id: row.try_get("session_id")?,
                    scopes: decode_scopes(&row.try_get::<String, _>("scopes")?),
                    code_challenge: row.try_get("code_challenge")?,
                    code_challenge_method: row.try_get("code_challenge_method")?,
                    expires_at,
                })
            }

            // === browser logins ===

            async fn create_login_session(
                &self,
                user: &UserName,
                session_id: &str,
                expires_at: Timestamp,
            ) -> StoreResult<(LoginSession, PlainToken)> {
                let user_id = lookup_id(&self.pool, USER_ID, "user", user.as_str()).await?;
                // A login cookie carries its own entropy, like a generated API token, so one hash round is enough.
                let token = new_token(TokenKind::Api)?;
                let created = now();
                sqlx::query(
                    "INSERT INTO login_sessions (user_id, prefix, hashed, session_id, created, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(user_id)
                .bind(token.prefix())
                .bind(hash_token(&token, TokenKind::Api)?)
                .bind(session_id)
                .bind(micros(created))
                .bind(micros(expires_at))
                .execute(&self.pool)
                .await?;
                let session =
                    LoginSession { user: user.clone(), session_id: session_id.to_owned(), created, expires_at };
                Ok((session, token))
            }

            async fn find_login_session(&self, presented: &str) -> StoreResult<LoginSession> {
                let not_found = || StoreError::not_found("login", "(presented cookie)");
                let token = PlainToken::parse(presented).map_err(|_| not_found())?;
                let rows = sqlx::query(
                    "SELECT u.name AS user_name, l.hashed, l.session_id, l.created, l.expires_at \
                     FROM login_sessions l JOIN users u ON u.id = l.user_id \
                     WHERE l.prefix = $1 AND l.expires_at >= $2",
                )
                .bind(token.prefix())
                .bind(micros(now()))
                .fetch_all(&self.pool)
                .await?;
                for row in &rows {
                    if parse_hash(&row.try_get::<String, _>("hashed")?)?.matches(token.as_str()) {
                        return Ok(LoginSession {
                            user: name("username", row.try_get("user_name")?, UserName::parse)?,
                            session_id: row.try_get("session_id")?,
                            created: timestamp(row.try_get("created")?)?,
                            expires_at: timestamp(row.try_get("expires_at")?)?,
                        });
                    }
                }
                Err(not_found())
            }

            async fn delete_login_sessions(&self, session_id: &str) -> StoreResult<u64> {
                let result = sqlx::query("DELETE FROM login_sessions WHERE session_id = $1")
                    .bind(session_id)
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected())
            }

            // === servers ===

            async fn create_server(
                &self,
                user: &UserName,
                server: &ServerName,
                user_options: &str,
            ) -> StoreResult<Server> {
                let user_id = lookup_id(&self.pool, USER_ID, "user", user.as_str()).await?;
                sqlx::query(
                    "INSERT INTO servers (user_id, name, state, spawner_state, object_names, user_options) \
                     VALUES ($1, $2, 'stopped', '{}', '{}', $3)",
                )
                .bind(user_id)
                .bind(server.as_str())
                .bind(user_options)
                .execute(&self.pool)
                .await
                .map_err(conflict_on_unique("server", &full_server_name(user.as_str(), server.as_str())))?;
                self.get_server(user, server).await
            }

            async fn get_server(&self, user: &UserName, server: &ServerName) -> StoreResult<Server> {
                let sql = format!("{SERVER_COLUMNS_FROM} WHERE u.name = $1 AND s.name = $2");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(user.as_str())
                    .bind(server.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::not_found("server", full_server_name(user.as_str(), server.as_str())))?;
                server_from_row(&row)
            }

            async fn list_servers(&self, user: Option<&UserName>) -> StoreResult<Vec<Server>> {
                let rows = match user {
                    Some(user) => {
                        let sql = format!("{SERVER_COLUMNS_FROM} WHERE u.name = $1 ORDER BY s.name {}", $byte_order);
                        let rows =
                            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user.as_str()).fetch_all(&self.pool).await?;
                        // A user with servers exists; only an empty answer needs telling apart from no such user.
                        if rows.is_empty() {
                            lookup_id(&self.pool, USER_ID, "user", user.as_str()).await?;
                        }
                        rows
                    }
                    None => {
                        let sql = format!(
                            "{SERVER_COLUMNS_FROM} ORDER BY u.name {byte_order}, s.name {byte_order}",
                            byte_order = $byte_order
                        );
                        sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?
                    }
                };
                rows.iter().map(server_from_row).collect()
            }

            async fn list_servers_of(&self, users: &[UserName]) -> StoreResult<Vec<Server>> {
                if users.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = format!(
                    "{SERVER_COLUMNS_FROM} WHERE u.name IN ({}) ORDER BY u.name {byte_order}, s.name {byte_order}",
                    $names_in,
                    byte_order = $byte_order
                );
                let names = json_strings(users.iter().map(UserName::as_str));
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(names).fetch_all(&self.pool).await?;
                rows.iter().map(server_from_row).collect()
            }

            async fn update_server(
                &self,
                user: &UserName,
                server: &ServerName,
                update: &ServerUpdate,
            ) -> StoreResult<Server> {
                let current = self.get_server(user, server).await?;
                let full_name = full_server_name(user.as_str(), server.as_str());
                let mut next = current.clone();
                if let Some(state) = update.state {
                    current
                        .state
                        .transition_to(state)
                        .map_err(|source| StoreError::IllegalTransition { server: full_name.clone(), source })?;
                    next.state = state;
                    match state {
                        SpawnState::Requested => {
                            next.started = Some(now());
                            next.url = None;
                            next.failure = None;
                        }
                        SpawnState::Stopped | SpawnState::Failed => {
                            next.url = None;
                            next.started = None;
                        }
                        SpawnState::Starting | SpawnState::Running | SpawnState::Stopping => {}
                    }
                }
                if let Some(url) = &update.url {
                    next.url = Some(url.clone());
                }
                if let Some(spawner_state) = &update.spawner_state {
                    next.spawner_state = spawner_state.clone();
                }
                if let Some(object_names) = &update.object_names {
                    next.object_names = object_names.clone();
                }
                if let Some(user_options) = &update.user_options {
                    next.user_options = user_options.clone();
                }
                if let Some(failure) = &update.failure {
                    next.failure = Some(failure.clone());
                }
                // Compare-and-set on the state we read, so two writers cannot both move the same server.
                let result = sqlx::query(
                    "UPDATE servers SET state = $1, url = $2, spawner_state = $3, object_names = $4, \
                     user_options = $5, failure = $6, started = $7 \
                     WHERE user_id = (SELECT id FROM users WHERE name = $8) AND name = $9 AND state = $10",
                )
                .bind(next.state.as_str())
                .bind(next.url.as_deref())
                .bind(&next.spawner_state)
                .bind(&next.object_names)
                .bind(&next.user_options)
                .bind(next.failure.as_deref())
                .bind(next.started.map(micros))
                .bind(user.as_str())
                .bind(server.as_str())
                .bind(current.state.as_str())
                .execute(&self.pool)
                .await?;
                if result.rows_affected() == 0 {
                    return Err(StoreError::ConcurrentUpdate { server: full_name });
                }
                Ok(next)
            }

            async fn record_server_activity(
                &self,
                user: &UserName,
                server: &ServerName,
                at: Timestamp,
            ) -> StoreResult<()> {
                let result = sqlx::query(
                    "UPDATE servers SET last_activity = $1 \
                     WHERE user_id = (SELECT id FROM users WHERE name = $2) AND name = $3 \
                     AND (last_activity IS NULL OR last_activity < $1)",
                )
                .bind(micros(at))
                .bind(user.as_str())
                .bind(server.as_str())
                .execute(&self.pool)
                .await?;
                if result.rows_affected() == 0 {
                    self.get_server(user, server).await?;
                }
                Ok(())
            }

            async fn delete_server(&self, user: &UserName, server: &ServerName) -> StoreResult<()> {
                let current = self.get_server(user, server).await?;
                let full_name = full_server_name(user.as_str(), server.as_str());
                if current.state.is_active() {
                    return Err(StoreError::ServerActive { server: full_name, state: current.state });
                }
                let result = sqlx::query(
                    "DELETE FROM servers WHERE user_id = (SELECT id FROM users WHERE name = $1) \
                     AND name = $2 AND state = $3",
                )
                .bind(user.as_str())
                .bind(server.as_str())
                .bind(current.state.as_str())
                .execute(&self.pool)
                .await?;
                if result.rows_affected() == 0 {
                    return Err(StoreError::ConcurrentUpdate { server: full_name });
                }
                Ok(())
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
