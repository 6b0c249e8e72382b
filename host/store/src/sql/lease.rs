//! The hub lease part of the SQL [`Store`](crate::Store): `lease_sql!`, expanded by `sql_store!` (`sql/mod.rs`).
//! One row names the hub that acts on the database; taking it is one upsert that succeeds only when the row is
//! free, expired or already the taker's, so two hubs racing for it cannot both win.

macro_rules! lease_sql {
    ($store:ident) => {
        impl $store {
            async fn sql_take_lease(&self, holder: &str, ttl: std::time::Duration) -> StoreResult<Option<String>> {
                let now = micros(now());
                let expires_at = now.saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX));
                let taken = sqlx::query(
                    "INSERT INTO hub_lease (id, holder, expires_at) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                     WHERE hub_lease.holder = excluded.holder OR hub_lease.expires_at < $3",
                )
                .bind(holder)
                .bind(expires_at)
                .bind(now)
                .execute(&self.pool)
                .await?;
                if taken.rows_affected() == 1 {
                    return Ok(None);
                }
                let row = sqlx::query("SELECT holder FROM hub_lease WHERE id = 1").fetch_optional(&self.pool).await?;
                Ok(Some(row.map(|row| row.try_get::<String, _>(0)).transpose()?.unwrap_or_default()))
            }

            async fn sql_renew_lease(&self, holder: &str, ttl: std::time::Duration) -> StoreResult<bool> {
                let expires_at = micros(now()).saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX));
                let renewed = sqlx::query("UPDATE hub_lease SET expires_at = $2 WHERE id = 1 AND holder = $1")
                    .bind(holder)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await?;
                Ok(renewed.rows_affected() == 1)
            }

            async fn sql_release_lease(&self, holder: &str) -> StoreResult<()> {
                sqlx::query("DELETE FROM hub_lease WHERE id = 1 AND holder = $1")
                    .bind(holder)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use lease_sql;
