//! SQLite's direct writer: one connection of SQLite's own (through rusqlite), used in the
//! calling task. A statement through sqlx's SQLite driver is a round trip to its worker
//! thread (about 30 µs on two cores, where the statement itself takes a few); the writer is
//! serial, so those round trips bounded the whole server's write rate. Here a transaction
//! of the login's second step runs in one go, its statements prepared once and cached.
//!
//! It takes turns with sqlx's writer connection ([`with_pool!`] holds the same lock), so
//! there is still one writer in the process. Writers of other processes (the command line)
//! are waited for without blocking the task's thread.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::Duration;

use rusqlite::{ErrorCode, OpenFlags};

use super::statements::{Arg, Statements};
use super::{Result, StoreError};

/// How long a writer of another process may hold the database before a write is answered
/// "unavailable", and how often it is looked at meanwhile.
const BUSY_WAIT: Duration = Duration::from_secs(10);
const BUSY_POLL: Duration = Duration::from_millis(2);

/// The statements the writer keeps prepared (the hot paths use about a dozen).
const STATEMENT_CACHE: usize = 64;

pub(crate) struct DirectConnection {
    connection: rusqlite::Connection,
}

impl DirectConnection {
    /// Opens the database (which sqlx has created, in WAL mode) for writing.
    pub(crate) fn open(path: &Path) -> Result<DirectConnection> {
        let connection = rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Never sleep in SQLite's busy handler: `begin` waits for other processes instead.
        connection.busy_timeout(Duration::ZERO)?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(DirectConnection { connection })
    }

    /// Begins a write transaction (taking the database's write lock now, so that no
    /// statement inside it waits).
    pub(crate) async fn begin(&mut self) -> Result<DirectTransaction<'_>> {
        let attempts = BUSY_WAIT.as_millis() / BUSY_POLL.as_millis();
        for _ in 0..attempts {
            match self.connection.execute_batch("BEGIN IMMEDIATE") {
                Err(error) if error.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {
                    tokio::time::sleep(BUSY_POLL).await;
                }
                begun => {
                    begun?;
                    return Ok(DirectTransaction { connection: self });
                }
            }
        }
        Err(StoreError::Unavailable(
            "the database is locked by another process".into(),
        ))
    }

    fn run(&mut self, sql: &str, args: &[Arg<'_>]) -> rusqlite::Result<u64> {
        let mut statement = self.connection.prepare_cached(sql)?;
        bind(&mut statement, args)?;
        Ok(statement.raw_execute()? as u64)
    }

    fn first_row<const N: usize>(&mut self, sql: &str, args: &[Arg<'_>]) -> rusqlite::Result<Option<[i64; N]>> {
        let mut statement = self.connection.prepare_cached(sql)?;
        bind(&mut statement, args)?;
        let mut rows = statement.raw_query();
        let mut first = None;
        // To completion, as sqlx does (see `Statements::fetch_integers`).
        while let Some(row) = rows.next()? {
            if first.is_none() {
                let mut integers = [0; N];
                for (index, integer) in integers.iter_mut().enumerate() {
                    *integer = row.get(index)?;
                }
                first = Some(integers);
            }
        }
        Ok(first)
    }
}

/// Binds `args` to the statement's `$n` parameters (SQLite numbers parameters by their
/// first appearance, not by their names).
fn bind(statement: &mut rusqlite::CachedStatement<'_>, args: &[Arg<'_>]) -> rusqlite::Result<()> {
    for index in 1..=statement.parameter_count() {
        let arg = statement
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|number| number.parse::<usize>().ok())
            .and_then(|number| args.get(number.checked_sub(1)?))
            .ok_or(rusqlite::Error::InvalidParameterCount(index, args.len()))?;
        statement.raw_bind_parameter(index, arg)?;
    }
    Ok(())
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        let value = match *self {
            Arg::Int(value) | Arg::OptionalInt(Some(value)) => ValueRef::Integer(value),
            Arg::Text(value) | Arg::OptionalText(Some(value)) => ValueRef::Text(value.as_bytes()),
            Arg::Blob(value) => ValueRef::Blob(value),
            Arg::OptionalInt(None) | Arg::OptionalText(None) => ValueRef::Null,
        };
        Ok(ToSqlOutput::Borrowed(value))
    }
}

// The work is done when the statement is called: the future is already complete.
impl Statements for DirectConnection {
    fn execute<'a>(
        &'a mut self,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl std::future::Future<Output = Result<u64>> + Send + 'a {
        std::future::ready(self.run(sql, args).map_err(StoreError::from))
    }

    fn fetch_integers<'a, const N: usize>(
        &'a mut self,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl std::future::Future<Output = Result<Option<[i64; N]>>> + Send + 'a {
        std::future::ready(self.first_row(sql, args).map_err(StoreError::from))
    }
}

/// A write transaction on the direct writer; rolled back unless committed.
pub(crate) struct DirectTransaction<'c> {
    connection: &'c mut DirectConnection,
}

impl DirectTransaction<'_> {
    pub(crate) async fn commit(self) -> Result<()> {
        let committed = self.connection.connection.execute_batch("COMMIT");
        // A failed commit may leave the transaction open (SQLite rolls back only some
        // failures itself): `drop` rolls it back.
        Ok(committed?)
    }
}

impl Drop for DirectTransaction<'_> {
    fn drop(&mut self) {
        if !self.connection.connection.is_autocommit() {
            if let Err(error) = self.connection.connection.execute_batch("ROLLBACK") {
                tracing::error!(%error, "rolling back a write transaction failed");
            }
        }
    }
}

impl Deref for DirectTransaction<'_> {
    type Target = DirectConnection;
    fn deref(&self) -> &DirectConnection {
        self.connection
    }
}

impl DerefMut for DirectTransaction<'_> {
    fn deref_mut(&mut self) -> &mut DirectConnection {
        self.connection
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        match &error {
            rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
                ErrorCode::ConstraintViolation
                    if matches!(
                        failure.extended_code,
                        rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    ) =>
                {
                    StoreError::Conflict
                }
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::ReadOnly
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
                | ErrorCode::CannotOpen => StoreError::Unavailable(error.to_string()),
                _ => StoreError::Internal(error.to_string()),
            },
            _ => StoreError::Internal(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> (tempfile::TempDir, DirectConnection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("direct.db");
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, data BLOB, note TEXT)")
            .unwrap();
        (dir, DirectConnection::open(&path).unwrap())
    }

    #[tokio::test]
    async fn arguments_go_to_their_numbers_whatever_order_the_sql_names_them_in() {
        let (_dir, mut direct) = database();
        let inserted = direct
            .execute(
                "INSERT INTO t (note, data, name, id) VALUES ($4, $3, $2, $1)",
                args![7, "seven", &[1u8, 2][..], None::<&str>],
            )
            .await
            .unwrap();
        assert_eq!(inserted, 1);
        let row = direct
            .fetch_integers::<2>(
                "SELECT id, length(data) FROM t WHERE name = $2 AND note IS NULL AND id = $1",
                args![7, "seven"],
            )
            .await
            .unwrap();
        assert_eq!(row, Some([7, 2]));
        let missing = direct.execute("UPDATE t SET note = $1 WHERE id = $2", args!["x"]).await;
        assert!(matches!(missing, Err(StoreError::Internal(_))), "{missing:?}");
    }

    #[tokio::test]
    async fn a_transaction_not_committed_leaves_nothing_and_a_duplicate_is_a_conflict() {
        let (_dir, mut direct) = database();
        {
            let mut tx = direct.begin().await.unwrap();
            tx.execute("INSERT INTO t (id, name) VALUES ($1, $2)", args![1, "a"])
                .await
                .unwrap();
        }
        let count = direct
            .fetch_integers::<1>("SELECT COUNT(*) FROM t", args![])
            .await
            .unwrap();
        assert_eq!(count, Some([0]));

        let mut tx = direct.begin().await.unwrap();
        tx.execute("INSERT INTO t (id, name) VALUES ($1, $2)", args![1, "a"])
            .await
            .unwrap();
        let twice = tx
            .execute("INSERT INTO t (id, name) VALUES ($1, $2)", args![2, "a"])
            .await;
        assert!(matches!(twice, Err(StoreError::Conflict)), "{twice:?}");
        tx.commit().await.unwrap();
        let count = direct
            .fetch_integers::<1>("SELECT COUNT(*) FROM t", args![])
            .await
            .unwrap();
        assert_eq!(count, Some([1]));
    }
}
