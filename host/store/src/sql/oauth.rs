//! The OAuth part of the SQL [`Store`](crate::Store): `oauth_sql!`, expanded by `sql_store!` (`sql/mod.rs`)
//! beside the imports and shared helpers it uses. Clients, with hashed secrets, and authorization codes,
//! consumed by the statement that deletes them.

macro_rules! oauth_sql {
    ($store:ident) => {
        impl $store {
            async fn sql_put_oauth_client(&self, new: &NewOAuthClient) -> StoreResult<OAuthClient> {
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

            async fn sql_get_oauth_client(&self, client_id: &str) -> StoreResult<OAuthClient> {
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

            async fn sql_delete_oauth_client(&self, client_id: &str) -> StoreResult<()> {
                let _auth_change = self.auth_change();
                if client_id == HUB_OAUTH_CLIENT {
                    // Every token the hub issued itself belongs to this client and would go with it.
                    return Err(StoreError::invalid("oauth client", "the hub's own client cannot be deleted"));
                }
                self.delete_one("DELETE FROM oauth_clients WHERE client_id = $1", "oauth client", client_id).await
            }

            async fn sql_create_oauth_code(&self, new: &NewOAuthCode) -> StoreResult<PlainToken> {
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

            async fn sql_take_oauth_code(&self, client_id: &str, code: &str) -> StoreResult<OAuthCode> {
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
        }
    };
}

pub(crate) use oauth_sql;
