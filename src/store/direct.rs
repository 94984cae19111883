//! SQLite's direct connections: a writer and readers of SQLite's own (through rusqlite),
//! used in the calling task. A statement through sqlx's SQLite driver is a round trip to
//! its worker thread (about 30 µs on two cores, where the statement itself takes a few);
//! the writer is serial, so those round trips bounded the whole server's write rate, and
//! on two cores the hand-offs of the reads took a third of the CPU. Here a transaction of
//! the login's second step runs in one go, its statements prepared once and cached.
//!
//! **Group commit.** Writing a commit to the WAL costs more than the statements of a step
//! (a dozen pages, two system calls each). So writers that queue for the connection share
//! one transaction: each writer's work is a savepoint in it (rolled back alone if it fails
//! or is abandoned), and the last writer of the queue, or the one that fills the batch,
//! commits it for all. No writer is answered before its work is committed; a failed commit
//! fails every writer of the batch. A lone writer commits at once, as before.
//!
//! It takes turns with sqlx's writer connection (`with_pool!` commits the open batch and
//! holds the turn), so there is still one writer in the process. Writers of other processes
//! (the command line) are waited for without blocking the task's thread.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{watch, Mutex, MutexGuard};

use rusqlite::{ErrorCode, OpenFlags};

use super::statements::{Arg, Columns, FromColumns, Statements};
use super::{Result, StoreError};

/// How long a writer of another process may hold the database before a write is answered
/// "unavailable", and how often it is looked at meanwhile.
const BUSY_WAIT: Duration = Duration::from_secs(10);
const BUSY_POLL: Duration = Duration::from_millis(2);

/// A reader waits for SQLite only while another connection recovers the WAL (rare, short).
const READER_BUSY_WAIT: Duration = Duration::from_millis(200);

/// The statements the writer keeps prepared (the hot paths use about a dozen).
const STATEMENT_CACHE: usize = 64;

/// The most writers one commit carries: it bounds how long the first of them waits.
const MAX_BATCH: usize = 32;

/// How long a writer waits for its batch's commit before it looks whether the writer that
/// was to commit it gave up (a request abandoned while queued), and commits it itself.
const COMMIT_PATIENCE: Duration = Duration::from_millis(20);

/// The outcome of a batch's commit, as its writers see it: `None` until it is known.
type Outcome = Option<Result<(), StoreError>>;

/// The direct writer: the connection, the batch open on it, and how many writers queue.
pub(crate) struct DirectWriter {
    held: Mutex<Held>,
    queued: AtomicUsize,
    _checkpointer: Checkpointer,
}

/// How often the checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// A thread that checkpoints the WAL (passively: writers and readers go on meanwhile), so
/// that no writer's commit copies pages and syncs the database file while others queue
/// behind it. It stops when dropped.
struct Checkpointer {
    _stop: std::sync::mpsc::Sender<()>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer> {
        let connection = connect(path, READER_BUSY_WAIT)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("twofold-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                    let checkpointed =
                        connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(0));
                    if let Err(error) = checkpointed {
                        tracing::warn!(%error, "checkpointing the WAL failed");
                    }
                }
            })
            .map_err(|error| StoreError::Internal(format!("starting the checkpointer: {error}")))?;
        Ok(Checkpointer { _stop: stop })
    }
}

struct Held {
    connection: DirectConnection,
    batch: Option<Batch>,
}

/// The transaction open on the connection, shared by its writers until it commits.
struct Batch {
    members: usize,
    outcome: watch::Sender<Outcome>,
}

impl DirectWriter {
    pub(crate) fn open(path: &Path) -> Result<DirectWriter> {
        let connection = DirectConnection::open(path)?;
        // Its commits only append to the WAL; the checkpointer copies it into the database.
        connection.connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(DirectWriter {
            held: Mutex::new(Held {
                connection,
                batch: None,
            }),
            queued: AtomicUsize::new(0),
            _checkpointer: Checkpointer::start(path)?,
        })
    }

    /// Waits for this writer's turn on the connection (first come, first served).
    pub(crate) async fn turn(&self) -> Turn<'_> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        // Counted while waiting only, even if this task is abandoned meanwhile.
        let unqueue = Unqueue(&self.queued);
        let held = self.held.lock().await;
        drop(unqueue);
        Turn {
            writer: self,
            held,
            joined: None,
        }
    }

    /// Waits for the turn, with the batch open on the connection committed first: for
    /// sqlx's writer, which must find no transaction holding SQLite's write lock.
    pub(crate) async fn exclusive_turn(&self) -> Result<Turn<'_>> {
        let mut turn = self.turn().await;
        turn.commit()?;
        Ok(turn)
    }

    /// Waits for the commit of the batch a writer's work joined.
    pub(crate) async fn committed(&self, mut outcome: watch::Receiver<Outcome>) -> Result<()> {
        loop {
            let known = tokio::time::timeout(COMMIT_PATIENCE, outcome.wait_for(Option::is_some))
                .await
                .map(|known| known.map(|known| known.clone()));
            match known {
                Ok(Ok(known)) => return known.unwrap_or(Ok(())),
                Ok(Err(_)) => return Err(StoreError::Internal("a batch was dropped uncommitted".into())),
                // Whoever was to commit it did not: commit it, unless a writer is queued
                // (who will).
                Err(_) => drop(self.turn().await),
            }
        }
    }
}

struct Unqueue<'a>(&'a AtomicUsize);

impl Drop for Unqueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A writer's turn on the direct connection. When it ends (dropped), the batch is
/// committed unless another writer is queued to join it and it is not full.
pub(crate) struct Turn<'w> {
    writer: &'w DirectWriter,
    held: MutexGuard<'w, Held>,
    /// The outcome of the batch this turn's work joined.
    joined: Option<watch::Receiver<Outcome>>,
}

impl Turn<'_> {
    /// Begins this writer's transaction: a savepoint in the open batch, which begins
    /// (taking the database's write lock, so that no statement inside it waits) if none is.
    pub(crate) async fn begin(&mut self) -> Result<DirectTransaction<'_>> {
        let stale = self.held.batch.is_some() && self.held.connection.connection.is_autocommit();
        if stale {
            // SQLite rolled the open batch back after a failure: its writers are told so
            // (see `commit`), and this writer starts afresh.
            let _ = self.commit();
        }
        let held = &mut *self.held;
        if held.batch.is_none() {
            held.connection.begin_immediate().await?;
            held.batch = Some(Batch {
                members: 0,
                outcome: watch::channel(None).0,
            });
        }
        let batch = held
            .batch
            .as_mut()
            .ok_or_else(|| StoreError::Internal("no batch open".into()))?;
        batch.members += 1;
        let joined = batch.outcome.subscribe();
        held.connection.connection.execute_batch("SAVEPOINT writer")?;
        self.joined = Some(joined);
        Ok(DirectTransaction {
            connection: &mut self.held.connection,
            released: false,
        })
    }

    /// Ends the turn; what to wait for before the work is known to be committed.
    pub(crate) fn finish(mut self) -> Option<watch::Receiver<Outcome>> {
        self.joined.take()
    }

    /// Commits the open batch, if any, and tells its writers how it went.
    fn commit(&mut self) -> Result<()> {
        let held = &mut *self.held;
        let Some(batch) = held.batch.take() else {
            return Ok(());
        };
        let committed = if held.connection.connection.is_autocommit() {
            // SQLite rolled the whole transaction back on a failure (a full disk, an I/O
            // error): none of the batch's work is there.
            Err(StoreError::Unavailable(
                "the database rolled back a write transaction".into(),
            ))
        } else {
            let committed = held
                .connection
                .connection
                .execute_batch("COMMIT")
                .map_err(StoreError::from);
            // A failed commit may leave the transaction open (SQLite rolls back only some
            // failures itself).
            if committed.is_err() && !held.connection.connection.is_autocommit() {
                held.connection.rollback();
            }
            committed
        };
        batch.outcome.send_replace(Some(committed.clone()));
        committed
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let last = self.writer.queued.load(Ordering::SeqCst) == 0;
        let full = self.held.batch.as_ref().is_some_and(|batch| batch.members >= MAX_BATCH);
        if last || full {
            // Its writers learn the outcome through the batch.
            let _ = self.commit();
        }
    }
}

pub(crate) struct DirectConnection {
    connection: rusqlite::Connection,
}

impl DirectConnection {
    /// Opens the database (which sqlx has created, in WAL mode) for writing.
    pub(crate) fn open(path: &Path) -> Result<DirectConnection> {
        // Never sleep in SQLite's busy handler: `begin` waits for other processes instead.
        let connection = connect(path, Duration::ZERO)?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(DirectConnection { connection })
    }

    /// Opens the database for reading only.
    fn open_reader(path: &Path) -> Result<DirectConnection> {
        let connection = connect(path, READER_BUSY_WAIT)?;
        connection.pragma_update(None, "query_only", "ON")?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(DirectConnection { connection })
    }

    async fn begin_immediate(&mut self) -> Result<()> {
        let attempts = BUSY_WAIT.as_millis() / BUSY_POLL.as_millis();
        for _ in 0..attempts {
            match self.connection.execute_batch("BEGIN IMMEDIATE") {
                Err(error) if error.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {
                    tokio::time::sleep(BUSY_POLL).await;
                }
                begun => return Ok(begun?),
            }
        }
        Err(StoreError::Unavailable(
            "the database is locked by another process".into(),
        ))
    }

    fn rollback(&mut self) {
        if let Err(error) = self.connection.execute_batch("ROLLBACK") {
            tracing::error!(%error, "rolling back a write transaction failed");
        }
    }

    fn run(&mut self, sql: &str, args: &[Arg<'_>]) -> rusqlite::Result<u64> {
        let mut statement = self.connection.prepare_cached(sql)?;
        bind(&mut statement, args)?;
        Ok(statement.raw_execute()? as u64)
    }

    /// Every row, the statement run to completion.
    fn all_rows<T: FromColumns>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>> {
        let mut statement = self.connection.prepare_cached(sql)?;
        bind(&mut statement, args)?;
        let mut rows = statement.raw_query();
        let mut read = Vec::new();
        while let Some(row) = rows.next()? {
            read.push(T::from_columns(row)?);
        }
        Ok(read)
    }
}

/// A connection to the database at `path` (which must exist), whose statements wait for a
/// lock at most `busy_wait`.
fn connect(path: &Path, busy_wait: Duration) -> rusqlite::Result<rusqlite::Connection> {
    let connection = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(busy_wait)?;
    Ok(connection)
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
    // The direct writer's turns (see `DirectWriter`).
    const WRITES_ONE_AT_A_TIME: bool = true;

    fn execute<'a>(
        &'a mut self,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl std::future::Future<Output = Result<u64>> + Send + 'a {
        std::future::ready(self.run(sql, args).map_err(StoreError::from))
    }

    fn fetch_all<'a, T: FromColumns + Send + 'static>(
        &'a mut self,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl std::future::Future<Output = Result<Vec<T>>> + Send + 'a {
        std::future::ready(self.all_rows(sql, args))
    }
}

impl Columns for rusqlite::Row<'_> {
    fn int(&self, index: usize) -> Result<i64> {
        Ok(self.get(index)?)
    }
    fn optional_int(&self, index: usize) -> Result<Option<i64>> {
        Ok(self.get(index)?)
    }
    fn text(&self, index: usize) -> Result<String> {
        Ok(self.get(index)?)
    }
    fn optional_text(&self, index: usize) -> Result<Option<String>> {
        Ok(self.get(index)?)
    }
    fn blob(&self, index: usize) -> Result<Vec<u8>> {
        Ok(self.get(index)?)
    }
    fn optional_blob(&self, index: usize) -> Result<Option<Vec<u8>>> {
        Ok(self.get(index)?)
    }
}

/// SQLite's direct readers: connections that only read, used in the calling task, taken
/// from and given back to an idle list. A read holds one only while it runs (it never
/// waits), so the list stays as short as the threads that run tasks.
pub(crate) struct DirectReaders {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<DirectConnection>>,
}

impl DirectReaders {
    pub(crate) fn new(path: &Path) -> DirectReaders {
        DirectReaders {
            path: path.to_path_buf(),
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn reader(&self) -> Result<Reader<'_>> {
        let idle = self
            .idle
            .lock()
            .map_err(|_| StoreError::Internal("the readers' list was poisoned".into()))?
            .pop();
        let connection = match idle {
            Some(connection) => connection,
            None => DirectConnection::open_reader(&self.path)?,
        };
        Ok(Reader {
            readers: self,
            connection: Some(connection),
        })
    }
}

/// A direct reader, given back when dropped.
pub(crate) struct Reader<'r> {
    readers: &'r DirectReaders,
    connection: Option<DirectConnection>,
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let (Some(connection), Ok(mut idle)) = (self.connection.take(), self.readers.idle.lock()) {
            idle.push(connection);
        }
    }
}

impl Deref for Reader<'_> {
    type Target = DirectConnection;
    fn deref(&self) -> &DirectConnection {
        self.connection
            .as_ref()
            .unwrap_or_else(|| unreachable!("a reader holds its connection until dropped"))
    }
}

impl DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut DirectConnection {
        self.connection
            .as_mut()
            .unwrap_or_else(|| unreachable!("a reader holds its connection until dropped"))
    }
}

/// A writer's transaction: a savepoint in its batch, rolled back unless committed.
pub(crate) struct DirectTransaction<'c> {
    connection: &'c mut DirectConnection,
    released: bool,
}

impl DirectTransaction<'_> {
    /// Keeps the work: it is committed with its batch (see `DirectWriter::committed`).
    pub(crate) async fn commit(mut self) -> Result<()> {
        self.connection.connection.execute_batch("RELEASE writer")?;
        self.released = true;
        Ok(())
    }
}

impl Drop for DirectTransaction<'_> {
    fn drop(&mut self) {
        // Unless SQLite has already rolled the whole transaction back (see `Turn::commit`).
        if !self.released && !self.connection.connection.is_autocommit() {
            if let Err(error) = self
                .connection
                .connection
                .execute_batch("ROLLBACK TO writer; RELEASE writer")
            {
                tracing::error!(%error, "rolling back a writer's work failed");
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
    use std::sync::Arc;

    use super::*;

    fn database() -> (tempfile::TempDir, DirectConnection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("direct.db");
        let connection = rusqlite::Connection::open(&path).unwrap();
        // As sqlx leaves it (see `Store::open`).
        connection.pragma_update(None, "journal_mode", "WAL").unwrap();
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
        let found: Vec<String> = direct
            .fetch_all(
                "SELECT hex(data) FROM t WHERE name = $2 AND note IS NULL AND id = $1",
                args![7, "seven"],
            )
            .await
            .unwrap();
        assert_eq!(found, ["0102"]);
        let missing = direct.execute("UPDATE t SET note = $1 WHERE id = $2", args!["x"]).await;
        assert!(matches!(missing, Err(StoreError::Internal(_))), "{missing:?}");
    }

    fn rows(path: &Path) -> i64 {
        // Another connection sees only what was committed.
        let reader = rusqlite::Connection::open(path).unwrap();
        reader
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .unwrap()
    }

    async fn insert(
        writer: &DirectWriter,
        id: i64,
        name: &str,
        keep: bool,
    ) -> (Result<u64>, Option<watch::Receiver<Outcome>>) {
        let mut turn = writer.turn().await;
        let mut tx = turn.begin().await.unwrap();
        let inserted = tx
            .execute("INSERT INTO t (id, name) VALUES ($1, $2)", args![id, name])
            .await;
        if keep && inserted.is_ok() {
            tx.commit().await.unwrap();
        } else {
            drop(tx);
        }
        (inserted, turn.finish())
    }

    #[tokio::test]
    async fn a_writers_work_is_kept_only_if_committed_and_a_duplicate_is_a_conflict() {
        let (dir, _) = database();
        let path = dir.path().join("direct.db");
        let writer = DirectWriter::open(&path).unwrap();

        let (inserted, batch) = insert(&writer, 1, "a", false).await;
        assert_eq!(inserted.unwrap(), 1);
        writer.committed(batch.unwrap()).await.unwrap();
        assert_eq!(rows(&path), 0, "work not committed was kept");

        let (_, batch) = insert(&writer, 1, "a", true).await;
        writer.committed(batch.unwrap()).await.unwrap();
        assert_eq!(rows(&path), 1);
        let (twice, _) = insert(&writer, 2, "a", true).await;
        assert!(matches!(twice, Err(StoreError::Conflict)), "{twice:?}");
        assert_eq!(rows(&path), 1);
    }

    fn shared_writer() -> (tempfile::TempDir, std::path::PathBuf, Arc<DirectWriter>) {
        let (dir, _) = database();
        let path = dir.path().join("direct.db");
        let writer = Arc::new(DirectWriter::open(&path).unwrap());
        (dir, path, writer)
    }

    /// A turn whose work (a row named "first") is kept, not yet committed.
    async fn first_writer_keeps_a_row(writer: &DirectWriter) -> Turn<'_> {
        let mut first = writer.turn().await;
        let mut tx = first.begin().await.unwrap();
        tx.execute("INSERT INTO t (id, name) VALUES (1, 'first')", args![])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        first
    }

    /// Writers queued behind one another share its commit; none of them is told its work
    /// is committed before it is, and one writer's rolled-back work takes nothing of the
    /// others' with it.
    #[tokio::test]
    async fn queued_writers_share_one_commit_and_roll_back_alone() {
        let (_dir, path, writer) = shared_writer();
        let first = first_writer_keeps_a_row(&writer).await;
        let queued: Vec<_> = [(2, "second", false), (3, "third", true)]
            .into_iter()
            .map(|(id, name, keep)| {
                let writer = writer.clone();
                tokio::spawn(async move { insert(&writer, id, name, keep).await.1 })
            })
            .collect();
        while writer.queued.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        let first = first.finish().unwrap();
        assert!(first.borrow().is_none(), "committed with writers queued to join");
        assert_eq!(rows(&path), 0);
        for batch in queued {
            writer.committed(batch.await.unwrap().unwrap()).await.unwrap();
        }
        assert!(first.borrow().is_some());
        writer.committed(first).await.unwrap();
        let reader = rusqlite::Connection::open(&path).unwrap();
        let names: Vec<String> = reader
            .prepare("SELECT name FROM t ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(names, ["first", "third"]);
    }

    /// The writer's commits only append to the WAL: the checkpointer copies them into the
    /// database file by itself.
    #[tokio::test]
    async fn the_checkpointer_copies_the_wal_into_the_database() {
        let (_dir, path, writer) = shared_writer();
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        for id in 0..200 {
            let mut turn = writer.turn().await;
            let mut tx = turn.begin().await.unwrap();
            tx.execute("INSERT INTO t (id, data) VALUES ($1, zeroblob(4000))", args![id])
                .await
                .unwrap();
            tx.commit().await.unwrap();
            writer.committed(turn.finish().unwrap()).await.unwrap();
        }
        let mut waited = 0;
        while size() < before + 200 * 4000 && waited < 100 {
            tokio::time::sleep(CHECKPOINT_EVERY / 4).await;
            waited += 1;
        }
        assert!(
            size() >= before + 200 * 4000,
            "the database file stayed at {} bytes",
            size()
        );
    }

    /// A writer that was to commit the batch gives up while queued (its request was
    /// abandoned): the batch is still committed, by the writer waiting for it.
    #[tokio::test]
    async fn a_batch_whose_next_writer_gave_up_is_still_committed() {
        let (_dir, path, writer) = shared_writer();
        let first = first_writer_keeps_a_row(&writer).await;
        let abandoned = tokio::spawn({
            let writer = writer.clone();
            async move { drop(writer.turn().await) }
        });
        while writer.queued.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        let batch = first.finish().unwrap();
        abandoned.abort();
        writer.committed(batch).await.unwrap();
        assert_eq!(rows(&path), 1);
    }
}
