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

    #[error("database: {0}")]
    Database(#[from] sqlx::Error),

    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

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
        _ => StoreError::Database(error),
    }
}
