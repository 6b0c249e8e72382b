//! The API tokens part of the SQL [`Store`](crate::Store): `tokens_sql!`, expanded by `sql_store!`
//! (`sql/mod.rs`) beside the imports and shared helpers it uses. Tokens are stored as a clear prefix and a salted
//! hash; `delete_expired` also sweeps authorization codes and logins, which expire the same way.

macro_rules! tokens_sql {
    ($store:ident) => {
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
            async fn owner_column(&self, owner: &TokenOwner) -> StoreResult<(&'static str, i64)> {
                Ok(match owner {
                    TokenOwner::User(user) => ("user_id", lookup_id(&self.pool, USER_ID, "user", user.as_str()).await?),
                    TokenOwner::Service(service) => {
                        ("service_id", lookup_id(&self.pool, SERVICE_ID, "service", service.as_str()).await?)
                    }
                })
            }

            async fn sql_create_api_token(&self, new: &NewApiToken) -> StoreResult<(ApiToken, PlainToken)> {
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

            async fn sql_find_api_token(&self, presented: &str) -> StoreResult<ApiToken> {
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

            async fn sql_get_api_token(&self, id: TokenId) -> StoreResult<ApiToken> {
                let sql = format!("{TOKEN_COLUMNS_FROM} WHERE t.id = $1");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::not_found("token", id.to_string()))?;
                token_from_row(&row)
            }

            async fn sql_list_api_tokens(&self, owner: &TokenOwner) -> StoreResult<Vec<ApiToken>> {
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

            async fn sql_record_token_activity(&self, id: TokenId, at: Timestamp) -> StoreResult<()> {
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

            async fn sql_delete_api_token(&self, id: TokenId) -> StoreResult<()> {
                let _auth_change = self.auth_change();
                let result = sqlx::query("DELETE FROM api_tokens WHERE id = $1").bind(id.0).execute(&self.pool).await?;
                if result.rows_affected() == 0 {
                    return Err(StoreError::not_found("token", id.to_string()));
                }
                Ok(())
            }

            async fn sql_delete_session_tokens(&self, session_id: &str) -> StoreResult<u64> {
                let _auth_change = self.auth_change();
                let result = sqlx::query("DELETE FROM api_tokens WHERE session_id = $1")
                    .bind(session_id)
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected())
            }

            async fn sql_delete_expired(&self) -> StoreResult<u64> {
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
        }
    };
}

pub(crate) use tokens_sql;
