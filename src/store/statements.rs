//! Statements written once for whichever connection runs them: a PostgreSQL or SQLite
//! connection of sqlx, or SQLite's direct connections (`store::direct`). The hot paths (a
//! login's reads, the second step's writes) are written over [`Statements`], so that on
//! SQLite they run in the calling task, with no hop to a driver thread per statement.

use std::future::Future;

use super::Result;

/// A value bound to a statement's `$n` parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg<'a> {
    Int(i64),
    OptionalInt(Option<i64>),
    Text(&'a str),
    OptionalText(Option<&'a str>),
    Blob(&'a [u8]),
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Arg::Int(value)
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(value: Option<i64>) -> Self {
        Arg::OptionalInt(value)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Arg::Text(value)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(value: &'a String) -> Self {
        Arg::Text(value)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Arg::OptionalText(value)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(value: &'a Option<String>) -> Self {
        Arg::OptionalText(value.as_deref())
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(value: &'a [u8]) -> Self {
        Arg::Blob(value)
    }
}

impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(value: &'a Vec<u8>) -> Self {
        Arg::Blob(value)
    }
}

/// The arguments of a statement, in the order of its `$1`, `$2`, ...
macro_rules! args {
    ($($arg:expr),* $(,)?) => {
        &[$($crate::store::statements::Arg::from($arg)),*]
    };
}

/// A statement with its arguments, to run with others in one round trip
/// ([`Statements::execute_all`]).
#[derive(Debug)]
pub(crate) struct Statement<'a> {
    pub sql: &'static str,
    pub args: Vec<Arg<'a>>,
}

/// A [`Statement`]: its SQL, then the arguments of its `$1`, `$2`, ...
macro_rules! statement {
    ($sql:expr $(, $arg:expr)* $(,)?) => {
        $crate::store::statements::Statement {
            sql: $sql,
            args: vec![$($crate::store::statements::Arg::from($arg)),*],
        }
    };
}

/// The columns of a row, by position, whichever connection read it.
pub(crate) trait Columns {
    fn int(&self, index: usize) -> Result<i64>;
    fn optional_int(&self, index: usize) -> Result<Option<i64>>;
    fn text(&self, index: usize) -> Result<String>;
    fn optional_text(&self, index: usize) -> Result<Option<String>>;
    fn blob(&self, index: usize) -> Result<Vec<u8>>;
    fn optional_blob(&self, index: usize) -> Result<Option<Vec<u8>>>;
}

/// A row's columns from `by` on: what reads a type's columns where a query puts others
/// before them.
pub(crate) struct Shifted<'r, C> {
    pub row: &'r C,
    pub by: usize,
}

impl<C: Columns> Columns for Shifted<'_, C> {
    fn int(&self, index: usize) -> Result<i64> {
        self.row.int(index + self.by)
    }
    fn optional_int(&self, index: usize) -> Result<Option<i64>> {
        self.row.optional_int(index + self.by)
    }
    fn text(&self, index: usize) -> Result<String> {
        self.row.text(index + self.by)
    }
    fn optional_text(&self, index: usize) -> Result<Option<String>> {
        self.row.optional_text(index + self.by)
    }
    fn blob(&self, index: usize) -> Result<Vec<u8>> {
        self.row.blob(index + self.by)
    }
    fn optional_blob(&self, index: usize) -> Result<Option<Vec<u8>>> {
        self.row.optional_blob(index + self.by)
    }
}

/// What a row of a query reads into (its columns in the query's order).
pub(crate) trait FromColumns: Sized {
    fn from_columns(row: &impl Columns) -> Result<Self>;
}

impl FromColumns for i64 {
    fn from_columns(row: &impl Columns) -> Result<Self> {
        row.int(0)
    }
}

impl FromColumns for String {
    fn from_columns(row: &impl Columns) -> Result<Self> {
        row.text(0)
    }
}

/// A connection (or a transaction on one) that runs statements with `$n` parameters, in
/// SQL both backends accept.
pub(crate) trait Statements: Send {
    /// Whether this connection's write transactions run one after another, none beside
    /// another (SQLite's one writer), so that a read in one sees every write of those before
    /// it. On PostgreSQL another transaction may be writing, uncommitted, unseen by a read.
    const WRITES_ONE_AT_A_TIME: bool;

    /// Runs `sql`; how many rows it changed.
    fn execute<'a>(
        &'a mut self,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<u64>> + Send + 'a;

    /// Runs `sql` to completion (SQLite reports a failed commit of a statement outside a
    /// transaction, such as a full disk, only when it finishes); every row it returned.
    fn fetch_all<'a, T: FromColumns + Send + 'static>(
        &'a mut self,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<Vec<T>>> + Send + 'a;

    /// Runs `statements` in order; how many rows each changed. Each runs whatever the ones
    /// before it changed: the caller checks every count. PostgreSQL sends them all at once,
    /// and waits for the answers once.
    fn execute_all<'a>(
        &'a mut self,
        statements: &'a [Statement<'a>],
    ) -> impl Future<Output = Result<Vec<u64>>> + Send + 'a {
        async move {
            let mut counts = Vec::with_capacity(statements.len());
            for statement in statements {
                counts.push(self.execute(statement.sql, &statement.args).await?);
            }
            Ok(counts)
        }
    }
}

/// Implements [`Statements`] for a connection of sqlx.
macro_rules! sqlx_statements {
    ($connection:ty, $database:ty, $row:ty, $one_at_a_time:expr) => {
        impl Statements for $connection {
            const WRITES_ONE_AT_A_TIME: bool = $one_at_a_time;

            fn execute<'a>(
                &'a mut self,
                sql: &'static str,
                args: &'a [Arg<'a>],
            ) -> impl Future<Output = Result<u64>> + Send + 'a {
                async move { Ok(bound::<$database>(sql, args).execute(self).await?.rows_affected()) }
            }

            fn fetch_all<'a, T: FromColumns + Send + 'static>(
                &'a mut self,
                sql: &'static str,
                args: &'a [Arg<'a>],
            ) -> impl Future<Output = Result<Vec<T>>> + Send + 'a {
                async move {
                    let rows = bound::<$database>(sql, args).fetch_all(self).await?;
                    rows.iter().map(T::from_columns).collect()
                }
            }
        }

        impl Columns for $row {
            fn int(&self, index: usize) -> Result<i64> {
                Ok(sqlx::Row::try_get(self, index)?)
            }
            fn optional_int(&self, index: usize) -> Result<Option<i64>> {
                Ok(sqlx::Row::try_get(self, index)?)
            }
            fn text(&self, index: usize) -> Result<String> {
                Ok(sqlx::Row::try_get(self, index)?)
            }
            fn optional_text(&self, index: usize) -> Result<Option<String>> {
                Ok(sqlx::Row::try_get(self, index)?)
            }
            fn blob(&self, index: usize) -> Result<Vec<u8>> {
                Ok(sqlx::Row::try_get(self, index)?)
            }
            fn optional_blob(&self, index: usize) -> Result<Option<Vec<u8>>> {
                Ok(sqlx::Row::try_get(self, index)?)
            }
        }
    };
}

sqlx_statements!(sqlx::PgConnection, sqlx::Postgres, sqlx::postgres::PgRow, false);
sqlx_statements!(sqlx::SqliteConnection, sqlx::Sqlite, sqlx::sqlite::SqliteRow, true);

/// `sql` with `args` bound, for sqlx.
fn bound<'a, DB>(sql: &'a str, args: &'a [Arg<'a>]) -> sqlx::query::Query<'a, DB, DB::Arguments<'a>>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'a, DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<&'a str>: sqlx::Encode<'a, DB>,
    &'a [u8]: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    args.iter().fold(sqlx::query(sql), |query, arg| match *arg {
        Arg::Int(value) => query.bind(value),
        Arg::OptionalInt(value) => query.bind(value),
        Arg::Text(value) => query.bind(value),
        Arg::OptionalText(value) => query.bind(value),
        Arg::Blob(value) => query.bind(value),
    })
}
