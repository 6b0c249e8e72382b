//! [`Store`](crate::Store) on SQLite: one file, the embedded default for a single machine.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::verified::VerifiedTokens;

// `StoreError` and the rest of the vocabulary are imported by the `sql_store!` expansion at the end of this file.

/// The store on one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    verified: Arc<VerifiedTokens>,
    /// [`Store::auth_generation`](crate::Store::auth_generation), shared by clones.
    auth_generation: Arc<AtomicU64>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .foreign_keys(true)
            // WAL lets readers proceed while one writer commits; NORMAL sync is durable across process crashes,
            // which is what the hub's restart guarantees are about.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        Self::connect_with(options).await
    }

    /// Opens a `sqlite:` URL, e.g. `sqlite:///var/lib/wasmhub/hub.sqlite`.
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let mut options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        // The same reasons as in `open`; an in-memory database has no journal file to put in WAL mode.
        if !url.contains("mode=memory") && !url.contains(":memory:") {
            options = options.journal_mode(SqliteJournalMode::Wal);
        }
        Self::connect_with(options).await
    }

    async fn connect_with(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        migrator().run(&pool).await?;
        Ok(Self { pool, verified: Arc::new(VerifiedTokens::new()), auth_generation: Arc::default() })
    }

    /// The underlying pool, for tests that inspect what is stored.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// The migrations in `migrations/sqlite`, embedded in the binary. Never edit one that was released: add a new
/// file and a line here.
fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "initial".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0001_initial.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "login sessions".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0002_login_sessions.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            "hub lease".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0003_hub_lease.sql").into_sql_str(),
            false,
        ),
    ])
}

// Lists of ids and names arrive as one JSON array parameter, unpacked by `json_each`.
crate::sql::sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    case_insensitive_like = "LIKE",
    byte_order = "",
    ids_in = "SELECT value FROM json_each($1)",
    names_in = "SELECT value FROM json_each($1)"
);
