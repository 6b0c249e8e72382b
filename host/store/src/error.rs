//! The store's error type. `NotFound` and `Conflict` are their own variants because the hub turns them into
//! JupyterHub's 404 and 409; everything the database itself reports stays wrapped with its source.

use wasmhub_model::{IllegalTransition, SpawnState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `kind` is "user", "group", "role", "service", "token", "oauth client", "oauth code" or "server".
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },

    #[error("{kind} {name:?} already exists")]
    Conflict { kind: &'static str, name: String },

    #[error("server {server:?}: {source}")]
    IllegalTransition { server: String, source: IllegalTransition },

    /// The server changed state between our read and our write; the caller may read it again and retry.
    #[error("server {server:?} changed state concurrently")]
    ConcurrentUpdate { server: String },

    #[error("server {server:?} is {state}; stop it before removing it")]
    ServerActive { server: String, state: SpawnState },

    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },

    /// A row that our own writes could not have produced, e.g. an unknown state name.
    #[error("corrupt {what} in the database: {value:?}")]
    Corrupt { what: &'static str, value: String },

    #[error("the operating system's random source failed: {0}")]
    Random(getrandom::Error),

    /// The database cannot be reached (stopped, restarting, no connection within the pool's wait): the request
    /// may succeed later, and nothing of it was written.
    #[error("the database does not answer: {0}")]
    Unavailable(sqlx::Error),

    #[error("database: {0}")]
    Database(sqlx::Error),

    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> StoreError {
        if is_unavailable(&error) { StoreError::Unavailable(error) } else { StoreError::Database(error) }
    }
}

/// Whether an error says the database is out of reach rather than that the statement failed: no connection could
/// be made or kept, or PostgreSQL is shutting down or starting (SQLSTATE class 08, 57P01-57P03).
fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(error) => error
            .code()
            .is_some_and(|code| code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

impl StoreError {
    pub(crate) fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        StoreError::NotFound { kind, name: name.into() }
    }

    pub(crate) fn conflict(kind: &'static str, name: impl Into<String>) -> Self {
        StoreError::Conflict { kind, name: name.into() }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        StoreError::Invalid { what, reason: reason.into() }
    }
}

/// Turns a unique-constraint violation into `Conflict`, leaving other errors as they are.
pub(crate) fn conflict_on_unique(kind: &'static str, name: &str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| match &error {
        sqlx::Error::Database(database_error) if database_error.is_unique_violation() => {
            StoreError::conflict(kind, name)
        }
        _ => StoreError::from(error),
    }
}
