//! The browser logins part of the SQL [`Store`](crate::Store): `logins_sql!`, expanded by `sql_store!`
//! (`sql/mod.rs`) beside the imports and shared helpers it uses. A login is a hashed cookie value bound to
//! the browser's session id.

macro_rules! logins_sql {
    ($store:ident) => {
        impl $store {
            async fn sql_create_login_session(
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

            async fn sql_find_login_session(&self, presented: &str) -> StoreResult<LoginSession> {
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

            async fn sql_delete_login_sessions(&self, session_id: &str) -> StoreResult<u64> {
                let result = sqlx::query("DELETE FROM login_sessions WHERE session_id = $1")
                    .bind(session_id)
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected())
            }
        }
    };
}

pub(crate) use logins_sql;
