//! The repository: the only place with SQL.
//!
//! Every rule that must hold under concurrency is one statement or one transaction here,
//! never a read-then-write in Rust: a credential's replay counter and single-use tokens
//! (compare-and-set), attempt counting (one upsert), backup-code consumption
//! (compare-and-set on the old hash), adding and removing credentials (one transaction under
//! the account's row lock), session stage changes (compare-and-set).
//!
//! Two backends, one set of statements: SQLite (the embedded default) and PostgreSQL
//! (several nodes on one database). Queries use `$n` placeholders and SQL both accept;
//! [`with_pool!`] compiles each body once per backend, so no method branches on the backend.

/// Runs `$body` with `$pool` bound to this store's pool, whichever backend it is.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}

/// Inside a transaction `$tx` of either backend: resets the attempt counters a success
/// clears (`$attempts`, an `AttemptKey`: its address's and the account's) and moves `$session` (an `Option<SessionUpgrade>`) to `Authenticated` under its new token,
/// only from the stage it is expected at; what its old token kept (challenges) goes. Evaluates
/// to false when that session has gone or moved on; the caller then returns without
/// committing.
macro_rules! finish_login {
    ($tx:ident, $attempts:expr, $session:expr) => {{
        let attempts: &$crate::store::AttemptKey = $attempts;
        sqlx::query("DELETE FROM lockouts WHERE subject = $1 AND factor = $2 AND source IN ('*', $3)")
            .bind(attempts.subject)
            .bind(attempts.factor)
            .bind(attempts.source)
            .execute(&mut *$tx)
            .await?;
        match $session {
            Some(session) => {
                sqlx::query("DELETE FROM challenges WHERE session_hash = $1")
                    .bind(session.token_hash)
                    .execute(&mut *$tx)
                    .await?;
                sqlx::query(
                    "UPDATE sessions SET token_hash = $4, stage = 'authenticated', expires_at = $3, verified_at = $5
                     WHERE token_hash = $1 AND stage = $2",
                )
                .bind(session.token_hash)
                .bind(session.from.as_str())
                .bind(session.expires_at)
                .bind(session.new_token_hash)
                .bind(session.verified_at)
                .execute(&mut *$tx)
                .await?
                .rows_affected()
                    == 1
            }
            None => true,
        }
    }};
}

/// Inside a transaction `$tx`: ends every session of the account but `$keep` (after a
/// change to its credentials, which a session opened before it must not outlive).
macro_rules! end_other_sessions {
    ($tx:ident, $account_id:expr, $keep:expr) => {
        sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND token_hash <> $2")
            .bind($account_id)
            .bind($keep)
            .execute(&mut *$tx)
            .await?
    };
}

mod accounts;
mod audit;
mod completion;
mod copy;
mod credentials;
mod lockouts;
mod sessions;
mod settings;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use accounts::{login_key, Account, AccountSummary, NewAccount};
pub use audit::AuditEvent;
pub use completion::{Completion, Consumption, ReplayGuard, SessionUpgrade};
pub use copy::{copied_tables, Snapshot};
pub use credentials::{Added, Credential, Enrolment, Purpose, Removed, StoredChallenge};
pub use lockouts::AttemptKey;
pub use sessions::{Session, Stage};
pub use settings::SecretWrite;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("already exists")]
    Conflict,
    #[error("the target database is not empty")]
    NotEmpty,
    #[error("database error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
            sqlx::Error::Database(db) if db.message().contains("database is locked") => {
                StoreError::Unavailable(error.to_string())
            }
            // SQLite cannot write: read-only (8), I/O error (10), full (13), cannot open (14),
            // whatever the extended code.
            sqlx::Error::Database(db)
                if db
                    .code()
                    .and_then(|code| code.parse::<i32>().ok())
                    .is_some_and(|code| [8, 10, 13, 14].contains(&(code & 0xff))) =>
            {
                StoreError::Unavailable(error.to_string())
            }
            // PostgreSQL: connection exceptions (08), a read-only transaction (25006),
            // insufficient resources (53), operator intervention such as a shutdown (57).
            sqlx::Error::Database(db)
                if db.code().is_some_and(|code| {
                    code == "25006" || ["08", "53", "57"].iter().any(|class| code.starts_with(class))
                }) =>
            {
                StoreError::Unavailable(error.to_string())
            }
            _ => StoreError::Internal(error.to_string()),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where the data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    Sqlite(std::path::PathBuf),
    /// A `postgres://` URL.
    Postgres(String),
}

/// Connection pool settings.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a request waits for a connection before it is answered 503.
    pub acquire_timeout: Duration,
}

#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

impl Store {
    /// Connects to the database and applies the migrations. On PostgreSQL the migrator
    /// holds an advisory lock, so nodes starting together migrate once.
    pub async fn open(database: &Database, pool: PoolSettings) -> Result<Store> {
        let backend = match database {
            Database::Sqlite(path) => Backend::Sqlite(open_sqlite(path, pool).await?),
            Database::Postgres(url) => {
                let options = PgConnectOptions::from_str(url)?;
                let pg = PgPoolOptions::new()
                    .max_connections(pool.max_connections)
                    .acquire_timeout(pool.acquire_timeout)
                    .connect_with(options)
                    .await?;
                Backend::Postgres(pg)
            }
        };
        let store = Store { backend };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let migrated = match &self.backend {
            Backend::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await,
            Backend::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await,
        };
        migrated.map_err(|error| match error {
            sqlx::migrate::MigrateError::Execute(error) => StoreError::from(error),
            other => StoreError::Internal(format!("migration failed: {other}")),
        })
    }

    /// Which backend this is, for logs.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

/// SQLite in WAL mode: readers never block the writer; the busy timeout queues writers.
async fn open_sqlite(path: &Path, pool: PoolSettings) -> Result<SqlitePool> {
    let options = SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    Ok(SqlitePoolOptions::new()
        .max_connections(pool.max_connections)
        .acquire_timeout(pool.acquire_timeout)
        .connect_with(options)
        .await?)
}
