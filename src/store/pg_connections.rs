//! PostgreSQL connections for the hot paths (a login's reads, the second step's writes),
//! kept apart from sqlx's pool. The pool tests a connection with a round trip to the server
//! before each use and another after it: as many round trips as the statements of a
//! login's read. Here a connection proves itself by answering the statement it was taken
//! for. When one kept idle turns out to be closed (the server restarted or ended it), the
//! other idle ones are let go with it, and the work starts again on a new connection: a
//! read whole, a transaction at its BEGIN (see [`read!`] and [`write_transaction!`]).

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{Result, StoreError};

/// The hot paths' connections: at most `max_connections` open, those not in use kept idle
/// (with no idle timeout: one the server or a proxy closed is found out at its next use).
pub(crate) struct PgConnections {
    options: PgConnectOptions,
    idle: Mutex<Vec<PgConnection>>,
    /// One per connection this list may have open.
    slots: Semaphore,
    acquire_timeout: Duration,
}

impl PgConnections {
    pub(crate) fn new(options: PgConnectOptions, max_connections: u32, acquire_timeout: Duration) -> Self {
        PgConnections {
            options,
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
                None => PgConnection::connect_with(&self.options).await?,
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

    /// Lets every idle connection go: one of them was found closed, and those opened with it
    /// are likely closed too.
    fn forget_idle(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

/// A connection taken from [`PgConnections`]. It goes back to the idle list only through
/// [`Taken::keep`], after work that succeeded; otherwise (an error, or the work was
/// abandoned halfway) it is closed.
pub(crate) struct Taken<'c> {
    connections: &'c PgConnections,
    connection: PgConnection,
    reused: bool,
    _slot: SemaphorePermit<'c>,
}

impl Taken<'_> {
    pub(crate) fn keep(self) {
        if let Ok(mut idle) = self.connections.idle.lock() {
            idle.push(self.connection);
        }
    }

    /// Whether `error`, met on this connection's first statement, means the work should
    /// start again on a new connection: the connection had been idle, and the database
    /// is unreachable through it. If so, the other idle connections are let go too. (If the
    /// database itself is unavailable, the second try says so.)
    pub(crate) fn try_again_after(&self, error: &StoreError) -> bool {
        let again = self.reused && matches!(error, StoreError::Unavailable(_));
        if again {
            tracing::info!(%error, "an idle database connection was closed; opening new ones");
            self.connections.forget_idle();
        }
        again
    }
}

impl Deref for Taken<'_> {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.connection
    }
}

impl DerefMut for Taken<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.connection
    }
}
