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
//! SQLite takes one writer at a time: writers queue in the process (first come, first
//! served) for one lock instead of sleeping in SQLite's busy handler. The hot paths (a
//! login's reads, attempt counting, settling a second step, the audit) are written over
//! `statements::Statements` ([`read!`], [`write_transaction!`]) and run on SQLite's direct
//! connections (`store::direct`), in the calling task; the others on sqlx's writer
//! connection, in turn with the direct writer ([`with_pool!`]), and sqlx's readers
//! ([`with_reader!`]). Readers run in parallel with the writer (WAL). On PostgreSQL, the hot
//! paths take connections that sqlx's pool does not test before and after each use
//! (`store::pg_connections`); the rest use the pool.

/// Runs `$body` with `$pool` bound to this store's pool for writes (and for reads that are
/// part of a write), whichever backend it is.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite {
                writer: $pool, direct, ..
            } => {
                // sqlx's writer and the direct one take turns.
                let _turn = direct.exclusive_turn().await?;
                $body
            }
            $crate::store::Backend::Postgres { pool: $pool, .. } => $body,
        }
    };
}

/// Runs `$body`, which only reads, with `$reader` bound to a connection that implements
/// `Statements`: on SQLite, a direct reader (see `store::direct`); on PostgreSQL, one of the
/// hot paths' connections (see `store::pg_connections`), and once more on a new one if an
/// idle connection turned out to be closed.
macro_rules! read {
    ($store:expr, $reader:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite { direct_readers, .. } => {
                let mut $reader = direct_readers.reader()?;
                $body
            }
            $crate::store::Backend::Postgres { hot, .. } => loop {
                let mut $reader = hot.take().await?;
                let result: $crate::store::Result<_> = async { Ok($body) }.await;
                match result {
                    Ok(value) => {
                        $reader.keep().await;
                        break value;
                    }
                    Err(error) if $reader.try_again_after(&error) => continue,
                    Err(error) => return Err(error.into()),
                }
            },
        }
    };
}

/// Runs `$body`, which only reads, with `$pool` bound to this store's pool for reads.
macro_rules! with_reader {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite { readers: $pool, .. } => $body,
            $crate::store::Backend::Postgres { pool: $pool, .. } => $body,
        }
    };
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

/// Runs `$body` (which evaluates to a `Result`, and commits `$tx` itself) in a write
/// transaction `$tx` that implements `Statements`: on SQLite, the direct writer's (see
/// `store::direct`); on PostgreSQL, on one of the hot paths' connections (see
/// `store::pg_connections`), taken again if an idle one fails its BEGIN. A connection whose
/// transaction failed is closed.
macro_rules! write_transaction {
    ($store:expr, $tx:ident => $body:block) => {{
        match &$store.backend {
            $crate::store::Backend::Sqlite { direct, .. } => {
                let mut turn = direct.turn().await;
                let result: $crate::store::Result<_> = async {
                    #[allow(unused_mut)]
                    let mut $tx = turn.begin().await?;
                    $body
                }
                .await;
                // Answered only once what it wrote is committed (see `store::direct`).
                if let (Ok(_), Some(batch)) = (&result, turn.finish()) {
                    direct.committed(batch).await?;
                }
                result?
            }
            $crate::store::Backend::Postgres { hot, .. } => loop {
                let mut connection = hot.take().await?;
                let result: $crate::store::Result<_> = async {
                    let mut transaction = connection.begin();
                    let $tx = &mut transaction;
                    $body
                }
                .await;
                match result {
                    Ok(value) => {
                        connection.keep().await;
                        break value;
                    }
                    Err(error) if connection.try_again_after(&error) => continue,
                    Err(error) => return Err(error.into()),
                }
            },
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

#[macro_use]
mod statements;
mod accounts;
mod applications;
mod audit;
mod completion;
mod copy;
mod credentials;
mod direct;
mod enrolment_links;
mod imported_keys;
mod lockouts;
mod pg_connections;
mod purge;
mod sessions;
mod settings;
mod transactions;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use accounts::{login_key, Account, AccountSummary, NewAccount};
pub use applications::{ApplicationRow, KeyAndApplication, KeyRow, NewKey};
pub use audit::AuditEvent;
pub use completion::{Consumption, Counting, Judged, Kept, KeptChallenge, ReplayGuard, SessionUpgrade, Settled};
pub use copy::{copied_tables, Snapshot};
pub use credentials::{Added, Credential, Enrolment, Purpose, Removed, SecondStep, StoredChallenge};
use direct::{DirectReaders, DirectWriter};
pub use enrolment_links::{LinkSession, LiveEnrolmentLink};
pub use imported_keys::{ImportedKey, ImportedKeySummary, NewImportedKey};
pub use lockouts::AttemptKey;
use pg_connections::PgConnections;
pub use purge::Purge;
pub use sessions::{LiveSession, Session, Stage};
pub use settings::SecretWrite;
pub use transactions::{NewTransaction, StoredTransaction};

#[derive(Clone, Debug, thiserror::Error)]
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
            sqlx::Error::Database(db) if db.code().is_some_and(|code| postgres_unavailable(&code)) => {
                StoreError::Unavailable(error.to_string())
            }
            _ => StoreError::Internal(error.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        use std::error::Error as _;
        let unreachable = error.is_closed() || error.source().is_some_and(|source| source.is::<std::io::Error>());
        match error.code().map(|code| code.code()) {
            Some("23505") => StoreError::Conflict,
            Some(code) if postgres_unavailable(code) => StoreError::Unavailable(error.to_string()),
            None if unreachable => StoreError::Unavailable(error.to_string()),
            _ => StoreError::Internal(error.to_string()),
        }
    }
}

/// Whether a PostgreSQL error code says the database cannot serve now: a connection
/// exception (08), a read-only transaction (25006), insufficient resources (53), operator
/// intervention such as a shutdown (57).
fn postgres_unavailable(code: &str) -> bool {
    code == "25006" || ["08", "53", "57"].iter().any(|class| code.starts_with(class))
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
    Sqlite {
        writer: SqlitePool,
        readers: SqlitePool,
        direct: Arc<DirectWriter>,
        direct_readers: Arc<DirectReaders>,
    },
    Postgres {
        pool: PgPool,
        /// For the hot paths (see [`read!`], [`write_transaction!`]).
        hot: Arc<PgConnections>,
    },
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
                let direct = Arc::new(DirectWriter::open(path)?);
                let direct_readers = Arc::new(DirectReaders::new(path));
                Backend::Sqlite {
                    writer,
                    readers,
                    direct,
                    direct_readers,
                }
            }
            Database::Postgres(url) => {
                let options = PgConnectOptions::from_str(url)?;
                // The node's connections are shared between the hot paths and the rest.
                let hot_connections = (pool.max_connections / 2).max(1);
                let hot = Arc::new(PgConnections::new(&options, url, hot_connections, pool.acquire_timeout));
                let others = PgPoolOptions::new()
                    .max_connections(pool.max_connections.saturating_sub(hot_connections).max(1))
                    .acquire_timeout(pool.acquire_timeout)
                    .connect_with(options)
                    .await?;
                Backend::Postgres { pool: others, hot }
            }
        };
        let store = Store { backend };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let migrated = match &self.backend {
            Backend::Sqlite { writer, .. } => sqlx::migrate!("migrations/sqlite").run(writer).await,
            Backend::Postgres { pool, .. } => sqlx::migrate!("migrations/postgres").run(pool).await,
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
            Backend::Postgres { .. } => "postgres",
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
        // A file on this machine does not hang up: a ping before each use would only cost a
        // round trip to the driver's thread.
        .test_before_acquire(false)
        .max_connections(pool.max_connections)
        .acquire_timeout(pool.acquire_timeout)
        .connect_with(options)
        .await?)
}
