//! The servers part of the SQL [`Store`](crate::Store): `servers_sql!`, expanded by `sql_store!`
//! (`sql/mod.rs`) beside the imports and shared helpers it uses. State changes follow the spawn state machine
//! and are written compare-and-set on the state read.

macro_rules! servers_sql {
    (
        $store:ident,
        byte_order = $byte_order:literal,
        names_in = $names_in:literal
    ) => {
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

        const SERVER_COLUMNS_FROM: &str = "SELECT u.name AS user_name, s.name, s.state, s.url, s.spawner_state, \
            s.object_names, s.user_options, s.failure, s.started, s.last_activity \
            FROM servers s JOIN users u ON u.id = s.user_id";

        impl $store {
            async fn sql_create_server(
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

            async fn sql_get_server(&self, user: &UserName, server: &ServerName) -> StoreResult<Server> {
                let sql = format!("{SERVER_COLUMNS_FROM} WHERE u.name = $1 AND s.name = $2");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(user.as_str())
                    .bind(server.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::not_found("server", full_server_name(user.as_str(), server.as_str())))?;
                server_from_row(&row)
            }

            async fn sql_list_servers(&self, user: Option<&UserName>) -> StoreResult<Vec<Server>> {
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

            async fn sql_list_servers_of(&self, users: &[UserName]) -> StoreResult<Vec<Server>> {
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

            async fn sql_update_server(
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

            async fn sql_record_server_activity(
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

            async fn sql_delete_server(&self, user: &UserName, server: &ServerName) -> StoreResult<()> {
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

pub(crate) use servers_sql;
