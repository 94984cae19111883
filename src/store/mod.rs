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
//!
//! SQLite takes one writer at a time: its writes go through a pool of one connection, so
//! that writers queue in the process (first come, first served) instead of sleeping in
//! SQLite's busy handler; reads that need no write ([`with_reader!`]) run in parallel on the
//! other pool (WAL). PostgreSQL has one pool for both.

/// Runs `$body` with `$pool` bound to this store's pool for writes (and for reads that are
/// part of a write), whichever backend it is.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite { writer: $pool, .. } => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body`, which only reads, with `$pool` bound to this store's pool for reads.
macro_rules! with_reader {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite { readers: $pool, .. } => $body,
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
        clear_attempts_in!(&mut *$tx, $attempts);
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

/// Runs `$body` (which evaluates to a `Result`, and commits `$tx` itself) in a transaction
/// `$tx` on a connection of `$pool`; a connection whose transaction failed is closed, not
/// returned to the pool: a failed COMMIT may leave SQLite's transaction open, or rolled back
/// behind the driver's back (which then takes the next BEGIN for a savepoint).
macro_rules! transaction {
    ($pool:ident, $tx:ident => $body:block) => {{
        let mut connection = $pool.acquire().await?;
        let result: $crate::store::Result<_> = async {
            #[allow(unused_mut)]
            let mut $tx = sqlx::Connection::begin(&mut *connection).await?;
            $body
        }
        .await;
        if result.is_err() {
            connection.close_on_drop();
        }
        result?
    }};
}

/// Counts an attempt on the counter `$key` (an `AttemptKey`) through `$executor`, evaluating
/// to its `core::lockout::Count`, this attempt included. A window that has ended is replaced
/// by one starting now, twice as long if the old one filled up, as long as the first after
/// a quiet `FORGET_AFTER_SECS`. `failures` grows only by attempts within the window's limit
/// (those that get checked). One statement, so concurrent attempts each get their own count.
macro_rules! count_attempt_in {
    ($executor:expr, $key:expr, $policy:expr, $now:expr) => {{
        let key: $crate::store::AttemptKey = $key;
        let policy: &$crate::core::lockout::LockoutPolicy = $policy;
        let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "INSERT INTO lockouts (subject, factor, source, window_start, window_secs, attempts, failures)
             VALUES ($1, $2, $3, $4, $5, 1, 1)
             ON CONFLICT (subject, factor, source) DO UPDATE SET
               window_start = CASE WHEN lockouts.window_start + lockouts.window_secs > $4
                                   THEN lockouts.window_start ELSE $4 END,
               window_secs = CASE
                   WHEN lockouts.window_start + lockouts.window_secs > $4 THEN lockouts.window_secs
                   WHEN lockouts.window_start + lockouts.window_secs + $8 <= $4 THEN $5
                   WHEN lockouts.attempts > $6 AND lockouts.window_secs * 2 > $7 THEN $7
                   WHEN lockouts.attempts > $6 THEN lockouts.window_secs * 2
                   ELSE lockouts.window_secs END,
               attempts = CASE WHEN lockouts.window_start + lockouts.window_secs > $4
                               THEN lockouts.attempts + 1 ELSE 1 END,
               failures = lockouts.failures + CASE
                   WHEN lockouts.window_start + lockouts.window_secs <= $4 THEN 1
                   WHEN lockouts.attempts + 1 <= $6 THEN 1
                   ELSE 0 END
             RETURNING window_start, window_secs, attempts, failures",
        )
        .bind(key.subject)
        .bind(key.factor)
        .bind(key.source)
        .bind($now)
        .bind(policy.window_secs)
        .bind(policy.limit(key.source))
        .bind(policy.max_window_secs)
        .bind($crate::core::lockout::FORGET_AFTER_SECS)
        // Run to completion, not just to the first row: SQLite reports a failed commit (a
        // full disk, a read-only file) only when the statement finishes, and an attempt that
        // was not counted must not be checked.
        .fetch_all($executor)
        .await?;
        let (window_start, window_secs, attempts, failures) = rows
            .into_iter()
            .next()
            .ok_or_else(|| $crate::store::StoreError::Internal("counting an attempt returned no row".into()))?;
        $crate::core::lockout::Count {
            window_start,
            window_secs,
            attempts,
            failures,
        }
    }};
}

/// Inside a transaction `$tx`: counts an attempt on its address's counter, then (unless that
/// one refuses it) on all addresses' counter, evaluating to the `core::lockout::Refusal`, if
/// any (see `Store::count_attempts`).
macro_rules! count_attempts_in {
    ($tx:ident, $attempts:expr, $policy:expr, $hard_lock:expr, $now:expr) => {{
        let attempts: $crate::store::AttemptKey = $attempts;
        let mut refusal = None;
        for source in [attempts.source, $crate::core::lockout::ALL_SOURCES] {
            let key = $crate::store::AttemptKey { source, ..attempts };
            let count = count_attempt_in!(&mut *$tx, key, $policy, $now);
            refusal = $policy.refusal(source, count, $now, $hard_lock);
            if refusal.is_some() {
                break;
            }
        }
        refusal
    }};
}

/// Through `$executor` (a pool or a transaction): clears the counters a success clears (`$attempts`, an
/// `AttemptKey`): its address's, and all addresses'.
macro_rules! clear_attempts_in {
    ($executor:expr, $attempts:expr) => {{
        let attempts: &$crate::store::AttemptKey = $attempts;
        sqlx::query("DELETE FROM lockouts WHERE subject = $1 AND factor = $2 AND source IN ('*', $3)")
            .bind(attempts.subject)
            .bind(attempts.factor)
            .bind(attempts.source)
            .execute($executor)
            .await?
            .rows_affected()
    }};
}

/// Writes the audit event `$event` through `$executor` (a pool or a transaction).
macro_rules! record_audit_in {
    ($executor:expr, $event:expr) => {{
        let event: &$crate::store::AuditEvent = $event;
        sqlx::query(
            "INSERT INTO audit_events (at, account_id, event, outcome, remote_addr, detail)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(event.at)
        .bind(event.account_id)
        .bind(&event.event)
        .bind(&event.outcome)
        .bind(&event.remote_addr)
        .bind(&event.detail)
        .execute($executor)
        .await?
        .rows_affected()
    }};
}

/// Keeps `$challenge` for the session `$session_hash` and `$purpose` until `$expires_at`,
/// through `$executor` (a pool or a transaction), replacing what it kept.
macro_rules! put_challenge_in {
    ($executor:expr, $session_hash:expr, $purpose:expr, $challenge:expr, $expires_at:expr) => {{
        let challenge: &$crate::store::StoredChallenge = $challenge;
        let purpose: $crate::store::Purpose = $purpose;
        sqlx::query(
            "INSERT INTO challenges (session_hash, purpose, service, label, sealed, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (session_hash, purpose) DO UPDATE SET service = excluded.service,
               label = excluded.label, sealed = excluded.sealed, expires_at = excluded.expires_at",
        )
        .bind($session_hash)
        .bind(purpose.as_str())
        .bind(&challenge.service)
        .bind(&challenge.label)
        .bind(&challenge.sealed)
        .bind($expires_at)
        .execute($executor)
        .await?
        .rows_affected()
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
mod applications;
mod audit;
mod completion;
mod copy;
mod credentials;
mod enrolment_links;
mod imported_keys;
mod lockouts;
mod purge;
mod sessions;
mod settings;
mod transactions;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use accounts::{login_key, Account, AccountSummary, NewAccount};
pub use applications::{ApplicationRow, KeyAndApplication, KeyRow, NewKey};
pub use audit::AuditEvent;
pub use completion::{Consumption, Counting, Judged, Kept, KeptChallenge, ReplayGuard, SessionUpgrade, Settled};
pub use copy::{copied_tables, Snapshot};
pub use credentials::{Added, Credential, Enrolment, Purpose, Removed, StoredChallenge};
pub use enrolment_links::{LinkSession, LiveEnrolmentLink};
pub use imported_keys::{ImportedKey, ImportedKeySummary, NewImportedKey};
pub use lockouts::AttemptKey;
pub use purge::Purge;
pub use sessions::{Session, Stage};
pub use settings::SecretWrite;
pub use transactions::{NewTransaction, StoredTransaction};

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
    Sqlite { writer: SqlitePool, readers: SqlitePool },
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
            Database::Sqlite(path) => {
                // The writer first: it creates the file and sets WAL mode.
                let writer = open_sqlite(
                    path,
                    PoolSettings {
                        max_connections: 1,
                        ..pool
                    },
                )
                .await?;
                let readers = open_sqlite(path, pool).await?;
                Backend::Sqlite { writer, readers }
            }
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
            Backend::Sqlite { writer, .. } => sqlx::migrate!("migrations/sqlite").run(writer).await,
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
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

/// SQLite in WAL mode: readers never block the writer. The busy timeout is for writers of
/// other processes (the command line), and checkpoints.
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
