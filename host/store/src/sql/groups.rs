//! The groups part of the SQL [`Store`](crate::Store): `groups_sql!`, expanded by `sql_store!` (`sql/mod.rs`)
//! beside the imports and shared helpers it uses. Membership changes run in one transaction, so one unknown
//! user leaves the group as it was.

macro_rules! groups_sql {
    (
        $store:ident,
        byte_order = $byte_order:literal,
        names_in = $names_in:literal
    ) => {
        impl $store {
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

            async fn sql_create_group(&self, group: &GroupName) -> StoreResult<Group> {
                sqlx::query("INSERT INTO groups (name, properties) VALUES ($1, '{}')")
                    .bind(group.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(conflict_on_unique("group", group.as_str()))?;
                Ok(Group { name: group.clone(), properties: "{}".to_owned(), users: Vec::new(), roles: Vec::new() })
            }

            async fn sql_get_group(&self, group: &GroupName) -> StoreResult<Group> {
                let row = sqlx::query("SELECT id, name, properties FROM groups WHERE name = $1")
                    .bind(group.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::not_found("group", group.as_str()))?;
                self.group_from_row(&row).await
            }

            async fn sql_get_groups_roles(&self, groups: &[GroupName]) -> StoreResult<Vec<RoleName>> {
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

            async fn sql_list_groups(&self, page: PageRequest) -> StoreResult<Page<Group>> {
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

            async fn sql_set_group_properties(&self, group: &GroupName, properties: &str) -> StoreResult<Group> {
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

            async fn sql_add_group_members(&self, group: &GroupName, users: &[UserName]) -> StoreResult<Group> {
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

            async fn sql_remove_group_members(&self, group: &GroupName, users: &[UserName]) -> StoreResult<Group> {
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

            async fn sql_delete_group(&self, group: &GroupName) -> StoreResult<()> {
                let _auth_change = self.auth_change();
                self.delete_one("DELETE FROM groups WHERE name = $1", "group", group.as_str()).await
            }
        }
    };
}

pub(crate) use groups_sql;
