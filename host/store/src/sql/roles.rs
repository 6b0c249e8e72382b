//! The roles part of the SQL [`Store`](crate::Store): `roles_sql!`, expanded by `sql_store!` (`sql/mod.rs`)
//! beside the imports and shared helpers it uses. Roles and their assignments to users, groups and services.

macro_rules! roles_sql {
    (
        $store:ident,
        byte_order = $byte_order:literal,
        names_in = $names_in:literal
    ) => {
        impl $store {
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

            async fn sql_put_role(&self, role: &RoleName, description: &str, scopes: &[String]) -> StoreResult<Role> {
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

            async fn sql_get_role(&self, role: &RoleName) -> StoreResult<Role> {
                let row = sqlx::query("SELECT id, name, description, scopes FROM roles WHERE name = $1")
                    .bind(role.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::not_found("role", role.as_str()))?;
                self.role_from_row(&row).await
            }

            async fn sql_get_role_scopes(&self, role: &RoleName) -> StoreResult<Vec<String>> {
                let row = sqlx::query("SELECT scopes FROM roles WHERE name = $1")
                    .bind(role.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::not_found("role", role.as_str()))?;
                Ok(decode_scopes(&row.try_get::<String, _>("scopes")?))
            }

            async fn sql_get_roles_scopes(&self, roles: &[RoleName]) -> StoreResult<Vec<(RoleName, Vec<String>)>> {
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

            async fn sql_list_roles(&self) -> StoreResult<Vec<Role>> {
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

            async fn sql_delete_role(&self, role: &RoleName) -> StoreResult<()> {
                let _auth_change = self.auth_change();
                self.delete_one("DELETE FROM roles WHERE name = $1", "role", role.as_str()).await
            }

            async fn sql_assign_role(&self, role: &RoleName, holder: &RoleHolder) -> StoreResult<()> {
                let _auth_change = self.auth_change();
                let role_id = lookup_id(&self.pool, ROLE_ID, "role", role.as_str()).await?;
                let (holder_id, table, column) = self.holder(holder).await?;
                let sql = format!("INSERT INTO {table} ({column}, role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING");
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(holder_id).bind(role_id).execute(&self.pool).await?;
                Ok(())
            }

            async fn sql_unassign_role(&self, role: &RoleName, holder: &RoleHolder) -> StoreResult<()> {
                let _auth_change = self.auth_change();
                let role_id = lookup_id(&self.pool, ROLE_ID, "role", role.as_str()).await?;
                let (holder_id, table, column) = self.holder(holder).await?;
                let sql = format!("DELETE FROM {table} WHERE {column} = $1 AND role_id = $2");
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(holder_id).bind(role_id).execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}

pub(crate) use roles_sql;
