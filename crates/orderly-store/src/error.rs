//! The crate's error type.

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed (connection lost, disk full, constraint broken).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The embedded migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names a database this crate does not support.
    #[error("unsupported database URL {0:?}: expected sqlite:… or postgres://…")]
    UnsupportedUrl(String),
    /// The thing to create exists already (e.g. a registered charger, an id tag).
    #[error("{0} already exists")]
    Conflict(String),
    /// The thing to change does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// An argument is out of range for storage (e.g. a negative connector id).
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// Hashing a password failed (argon2 parameter or salt problem).
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
    /// A stored row does not parse back (hand-edited database, or a newer schema).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The group-commit writer has stopped (store closed, or its task panicked).
    #[error("the store's writer has stopped")]
    WriterClosed,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
