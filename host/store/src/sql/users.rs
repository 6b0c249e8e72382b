//! The users part of the SQL [`Store`](crate::Store): `users_sql!`, expanded by `sql_store!` (`sql/mod.rs`)
//! beside the imports and shared helpers it uses. A user's groups and roles come with it, read in the same
//! statement for one user and in one batch for a page of them.

macro_rules! users_sql {
    (
        $store:ident,
        case_insensitive_like = $ilike:literal,
        byte_order = $byte_order:literal,
        ids_in = $ids_in:literal
    ) => {
        const ACTIVE_STATES: &str = "('requested', 'starting', 'running', 'stopping')";

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

            async fn sql_create_user(&self, user: &UserName, admin: bool) -> StoreResult<User> {
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

            async fn sql_get_user(&self, user: &UserName) -> StoreResult<User> {
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

            async fn sql_list_users(&self, query: &UserQuery) -> StoreResult<Page<User>> {
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

            async fn sql_update_user(&self, user: &UserName, change: &UserChange) -> StoreResult<User> {
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

            async fn sql_delete_user(&self, user: &UserName) -> StoreResult<()> {
                let _auth_change = self.auth_change();
                self.delete_one("DELETE FROM users WHERE name = $1", "user", user.as_str()).await
            }

            async fn sql_record_user_activity(&self, user: &UserName, at: Timestamp) -> StoreResult<()> {
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
        }
    };
}

pub(crate) use users_sql;
