//! PostgreSQL connections for the hot paths (a login's reads, the second step's writes),
//! kept apart from sqlx's pool, on tokio-postgres. sqlx's pool tests a connection with a
//! round trip to the server before each use and another after it, and sqlx sends a
//! transaction's statements one round trip each. Here a connection proves itself by
//! answering the statement it was taken for, a transaction's BEGIN goes with its first
//! statement, and [`Statements::execute_all`] sends its statements together. When a
//! connection kept idle turns out to be closed (the server restarted or ended it), the other
//! idle ones are let go with it, and the work starts again on a new connection: a read
//! whole, a transaction if its COMMIT was not sent (see [`read!`] and [`write_transaction!`]).

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::{try_join, try_join_all};
use percent_encoding::percent_decode_str;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Row};

use super::statements::{Arg, Columns, FromColumns, Statement, Statements};
use super::{Result, StoreError};

/// The hot paths' connections: at most `max_connections` open, those not in use kept idle
/// (with no idle timeout: one the server or a proxy closed is found out at its next use).
pub(crate) struct PgConnections {
    config: tokio_postgres::Config,
    idle: Mutex<Vec<PgClient>>,
    /// One per connection this list may have open.
    slots: Semaphore,
    acquire_timeout: Duration,
}

impl PgConnections {
    /// Connections to the database that sqlx's `options`, read from `url`, name.
    pub(crate) fn new(options: &PgConnectOptions, url: &str, max_connections: u32, acquire_timeout: Duration) -> Self {
        PgConnections {
            config: config_of(options, url),
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(max_connections as usize),
            acquire_timeout,
        }
    }

    /// A connection: an idle one if there is one, or a new one; unavailable if none is free
    /// or opened within the acquire timeout.
    pub(crate) async fn take(&self) -> Result<Taken<'_>> {
        let taken = async {
            let slot = self
                .slots
                .acquire()
                .await
                .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
            let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let reused = idle.is_some();
            let connection = match idle {
                Some(connection) => connection,
                None => self.connect().await?,
            };
            Ok(Taken {
                connections: self,
                connection,
                reused,
                _slot: slot,
            })
        };
        tokio::time::timeout(self.acquire_timeout, taken)
            .await
            .map_err(|_| StoreError::Unavailable("no database connection was free in time".into()))?
    }

    async fn connect(&self) -> Result<PgClient> {
        let (client, connection) = self.config.connect(NoTls).await?;
        // The connection's own task carries its messages; it ends when the client is dropped.
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a database connection of the hot paths ended");
            }
        });
        Ok(PgClient {
            client,
            prepared: HashMap::new(),
            in_transaction: false,
            commit_sent: false,
        })
    }

    /// Lets every idle connection go: one of them was found closed, and those opened with it
    /// are likely closed too.
    fn forget_idle(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

/// tokio-postgres's settings for the database that sqlx's `options` name, so that both read
/// the URL the same way (sqlx's defaults from `PGHOST`, `PGUSER` and the like included). The
/// password is the URL's, or else `PGPASSWORD`'s (not a `.pgpass` file's).
fn config_of(options: &PgConnectOptions, url: &str) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    match options.get_socket() {
        Some(directory) => config.host_path(directory),
        None => config.host(options.get_host()),
    };
    config.port(options.get_port()).user(options.get_username());
    if let Some(database) = options.get_database() {
        config.dbname(database);
    }
    if let Some(server_options) = options.get_options() {
        config.options(server_options);
    }
    if let Some(name) = options.get_application_name() {
        config.application_name(name);
    }
    let password = url::Url::parse(url)
        .ok()
        .and_then(|url| {
            url.password()
                .map(|password| percent_decode_str(password).decode_utf8_lossy().into_owned())
        })
        .or_else(|| std::env::var("PGPASSWORD").ok());
    if let Some(password) = password {
        config.password(password);
    }
    config
}

/// A connection taken from [`PgConnections`]. It goes back to the idle list only through
/// [`Taken::keep`], after work that succeeded; otherwise (an error, or the work was
/// abandoned halfway) it is closed.
pub(crate) struct Taken<'c> {
    connections: &'c PgConnections,
    connection: PgClient,
    reused: bool,
    _slot: SemaphorePermit<'c>,
}

impl Taken<'_> {
    /// Returns the connection to the idle list; a transaction the work left open (it
    /// returned without committing) is rolled back first, and if that fails the connection
    /// is closed.
    pub(crate) async fn keep(mut self) {
        if self.connection.in_transaction && self.connection.client.batch_execute("ROLLBACK").await.is_err() {
            return;
        }
        self.connection.in_transaction = false;
        self.connection.commit_sent = false;
        if let Ok(mut idle) = self.connections.idle.lock() {
            idle.push(self.connection);
        }
    }

    /// Whether the work that failed with `error` should start again on a new connection:
    /// the connection had been idle, the database is unreachable through it, and no COMMIT
    /// was sent (until then the server rolls the transaction back when the connection
    /// ends; after, it may have committed). If so, the other idle connections are let go
    /// too. (If the database itself is unavailable, the second try says so.)
    pub(crate) fn try_again_after(&self, error: &StoreError) -> bool {
        let again = self.reused && !self.connection.commit_sent && matches!(error, StoreError::Unavailable(_));
        if again {
            tracing::info!(%error, "an idle database connection was closed; opening new ones");
            self.connections.forget_idle();
        }
        again
    }

    /// Begins a transaction, whose BEGIN is sent with its first statements.
    pub(crate) fn begin(&mut self) -> PgTransaction<'_> {
        PgTransaction {
            connection: &mut self.connection,
        }
    }
}

impl Deref for Taken<'_> {
    type Target = PgClient;
    fn deref(&self) -> &PgClient {
        &self.connection
    }
}

impl DerefMut for Taken<'_> {
    fn deref_mut(&mut self) -> &mut PgClient {
        &mut self.connection
    }
}

/// A connection of the hot paths, with the statements it has prepared.
pub(crate) struct PgClient {
    client: Client,
    prepared: HashMap<&'static str, tokio_postgres::Statement>,
    /// Whether a BEGIN was sent and neither COMMIT nor ROLLBACK since.
    in_transaction: bool,
    /// Whether a COMMIT was sent since the connection was taken.
    commit_sent: bool,
}

impl PgClient {
    /// `sql`, prepared once per connection, its parameters typed as `args` are.
    async fn prepared(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<tokio_postgres::Statement> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let types: Vec<Type> = args.iter().map(|arg| arg.pg_type()).collect();
        let statement = self.client.prepare_typed(sql, &types).await?;
        self.prepared.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Runs `statements` together, after a BEGIN if `begin`; how many rows each changed.
    async fn execute_together(&mut self, begin: bool, statements: &[Statement<'_>]) -> Result<Vec<u64>> {
        let mut prepared = Vec::with_capacity(statements.len());
        for statement in statements {
            prepared.push(self.prepared(statement.sql, &statement.args).await?);
        }
        let client = &self.client;
        let executions = try_join_all(prepared.iter().zip(statements).map(|(prepared, statement)| {
            let params: Vec<&(dyn ToSql + Sync)> = statement.args.iter().map(Arg::as_pg).collect();
            async move { client.execute(prepared, &params).await }
        }));
        self.in_transaction |= begin;
        Ok(after_begin(client, begin, executions).await?)
    }

    async fn execute_one(&mut self, begin: bool, sql: &'static str, args: &[Arg<'_>]) -> Result<u64> {
        let prepared = self.prepared(sql, args).await?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(Arg::as_pg).collect();
        self.in_transaction |= begin;
        Ok(after_begin(&self.client, begin, self.client.execute(&prepared, &params)).await?)
    }

    async fn fetch_rows(&mut self, begin: bool, sql: &'static str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
        let prepared = self.prepared(sql, args).await?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(Arg::as_pg).collect();
        self.in_transaction |= begin;
        Ok(after_begin(&self.client, begin, self.client.query(&prepared, &params)).await?)
    }
}

/// Runs `work` on `client`, sent together with a BEGIN before it if `begin`.
async fn after_begin<T>(
    client: &Client,
    begin: bool,
    work: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, tokio_postgres::Error> {
    if begin {
        Ok(try_join(client.batch_execute("BEGIN"), work).await?.1)
    } else {
        work.await
    }
}

impl Arg<'_> {
    fn pg_type(&self) -> Type {
        match self {
            Arg::Int(_) | Arg::OptionalInt(_) => Type::INT8,
            Arg::Text(_) | Arg::OptionalText(_) => Type::TEXT,
            Arg::Blob(_) => Type::BYTEA,
        }
    }

    fn as_pg(&self) -> &(dyn ToSql + Sync) {
        match self {
            Arg::Int(value) => value,
            Arg::OptionalInt(value) => value,
            Arg::Text(value) => value,
            Arg::OptionalText(value) => value,
            Arg::Blob(value) => value,
        }
    }
}

impl Statements for PgClient {
    const WRITES_ONE_AT_A_TIME: bool = false;

    async fn execute<'a>(&'a mut self, sql: &'static str, args: &'a [Arg<'a>]) -> Result<u64> {
        self.execute_one(false, sql, args).await
    }

    async fn fetch_all<'a, T: FromColumns + Send + 'static>(
        &'a mut self,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> Result<Vec<T>> {
        self.fetch_rows(false, sql, args)
            .await?
            .iter()
            .map(T::from_columns)
            .collect()
    }

    async fn execute_all<'a>(&'a mut self, statements: &'a [Statement<'a>]) -> Result<Vec<u64>> {
        self.execute_together(false, statements).await
    }
}

/// A transaction on a connection of the hot paths. Its BEGIN waits for its first
/// statements, to go with them; it commits with [`PgTransaction::commit`], and one left
/// open is rolled back when its connection is kept ([`Taken::keep`]).
pub(crate) struct PgTransaction<'c> {
    connection: &'c mut PgClient,
}

impl PgTransaction<'_> {
    /// Whether the BEGIN is still to be sent.
    fn begin_due(&self) -> bool {
        !self.connection.in_transaction
    }

    pub(crate) async fn commit(&mut self) -> Result<()> {
        if self.begin_due() {
            return Ok(());
        }
        self.connection.commit_sent = true;
        self.connection.client.batch_execute("COMMIT").await?;
        self.connection.in_transaction = false;
        Ok(())
    }
}

impl Statements for PgTransaction<'_> {
    const WRITES_ONE_AT_A_TIME: bool = false;

    async fn execute<'a>(&'a mut self, sql: &'static str, args: &'a [Arg<'a>]) -> Result<u64> {
        let begin = self.begin_due();
        self.connection.execute_one(begin, sql, args).await
    }

    async fn fetch_all<'a, T: FromColumns + Send + 'static>(
        &'a mut self,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> Result<Vec<T>> {
        let begin = self.begin_due();
        self.connection
            .fetch_rows(begin, sql, args)
            .await?
            .iter()
            .map(T::from_columns)
            .collect()
    }

    async fn execute_all<'a>(&'a mut self, statements: &'a [Statement<'a>]) -> Result<Vec<u64>> {
        let begin = self.begin_due();
        self.connection.execute_together(begin, statements).await
    }
}

impl Columns for Row {
    fn int(&self, index: usize) -> Result<i64> {
        Ok(self.try_get(index)?)
    }
    fn optional_int(&self, index: usize) -> Result<Option<i64>> {
        Ok(self.try_get(index)?)
    }
    fn text(&self, index: usize) -> Result<String> {
        Ok(self.try_get(index)?)
    }
    fn optional_text(&self, index: usize) -> Result<Option<String>> {
        Ok(self.try_get(index)?)
    }
    fn blob(&self, index: usize) -> Result<Vec<u8>> {
        Ok(self.try_get(index)?)
    }
    fn optional_blob(&self, index: usize) -> Result<Option<Vec<u8>>> {
        Ok(self.try_get(index)?)
    }
}
