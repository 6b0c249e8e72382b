//! [`Store`](crate::Store) on PostgreSQL, for hubs whose state must outlive the machine they run on.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::verified::VerifiedTokens;

// `StoreError` and the rest of the vocabulary are imported by the `sql_store!` expansion at the end of this file.

/// The store on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    verified: Arc<VerifiedTokens>,
    /// [`Store::auth_generation`](crate::Store::auth_generation), shared by clones.
    auth_generation: Arc<AtomicU64>,
}

/// How long a query waits for a connection before the store says the database is unavailable: long enough for a
/// database restart's first seconds, short enough that an API client hears a clear 503 rather than a hanging call.
const CONNECTION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url.parse()?).await
    }

    /// Connects with options built in code, e.g. a URL with another database name.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool =
            PgPoolOptions::new().max_connections(16).acquire_timeout(CONNECTION_WAIT).connect_with(options).await?;
        migrator().run(&pool).await?;
        Ok(Self { pool, verified: Arc::new(VerifiedTokens::new()), auth_generation: Arc::default() })
    }

    /// The underlying pool, for tests that inspect what is stored.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The migrations in `migrations/postgres`, embedded in the binary. Never edit one that was released: add a new
/// file and a line here.
fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "initial".into(),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0001_initial.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "login sessions".into(),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0002_login_sessions.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            "hub lease".into(),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0003_hub_lease.sql").into_sql_str(),
            false,
        ),
    ])
}

// `COLLATE "C"` sorts names by bytes, as SQLite's default BINARY collation does, whatever the database's locale.
// Lists of ids and names arrive as one JSON array parameter, unpacked by `jsonb_array_elements_text`.
crate::sql::sql_store!(
    PostgresStore,
    sqlx::Postgres,
    case_insensitive_like = "ILIKE",
    byte_order = "COLLATE \"C\"",
    ids_in = "SELECT jsonb_array_elements_text($1::jsonb)::bigint",
    names_in = "SELECT jsonb_array_elements_text($1::jsonb)"
);
