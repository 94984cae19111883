//! The repository: the only place with SQL.
//!
//! Every rule that must hold under concurrency is one statement or one transaction here,
//! never a read-then-write in Rust: the last accepted TOTP step (compare-and-set), attempt
//! counting (one upsert), backup-code consumption (compare-and-set on the old hash),
//! enrolment confirmation (one transaction), session stage changes (compare-and-set).
//!
//! Queries use `$n` placeholders and portable SQL so that the PostgreSQL backend can run
//! the same statements.

mod accounts;
mod audit;
mod sessions;
mod two_factor;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

pub use accounts::{Account, AccountSummary, NewAccount};
pub use audit::AuditEvent;
pub use sessions::{Session, Stage};
pub use two_factor::{Enrolment, PendingEnrolment, TwoFactor};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("already exists")]
    Conflict,
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
            _ => StoreError::Internal(error.to_string()),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating it if needed) the SQLite database at `path`, in WAL mode, and
    /// applies the migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(StoreError::from)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|error| StoreError::Internal(format!("migration failed: {error}")))?;
        Ok(Store { pool })
    }

    /// Reads a setting's JSON value.
    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        let value = sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(value)
    }

    pub async fn put_setting(&self, name: &str, value: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Counts an attempt on `factor` for the account and returns the window it falls in:
    /// `(window_start, attempts in it, this one included)`. A window older than
    /// `window_secs` is replaced by a new one starting now. One statement, so concurrent
    /// attempts each get their own count.
    pub async fn count_attempt(&self, account_id: i64, factor: &str, now: i64, window_secs: i64) -> Result<(i64, i64)> {
        let row = sqlx::query_as(
            "INSERT INTO attempts (account_id, factor, window_start, attempts) VALUES ($1, $2, $3, 1)
             ON CONFLICT (account_id, factor) DO UPDATE SET
               attempts = CASE WHEN attempts.window_start + $4 <= $3 THEN 1 ELSE attempts.attempts + 1 END,
               window_start = CASE WHEN attempts.window_start + $4 <= $3 THEN $3 ELSE attempts.window_start END
             RETURNING window_start, attempts",
        )
        .bind(account_id)
        .bind(factor)
        .bind(now)
        .bind(window_secs)
        .fetch_one(&self.pool)
        .await?;
        Ok(row)
    }

    /// Clears the count for one factor (after a success) or all (an administrator's unlock).
    pub async fn clear_attempts(&self, account_id: i64, factor: Option<&str>) -> Result<()> {
        sqlx::query("DELETE FROM attempts WHERE account_id = $1 AND ($2 IS NULL OR factor = $2)")
            .bind(account_id)
            .bind(factor)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
