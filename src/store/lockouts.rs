//! Attempt counters (see `core::lockout` for the rule they serve).

use super::{Result, Store};
use crate::core::lockout::{Count, LockoutPolicy};

/// One counter: a subject's factor, from one source address or from all (`ALL_SOURCES`).
#[derive(Clone, Copy, Debug)]
pub struct AttemptKey<'a> {
    pub subject: &'a str,
    pub factor: &'a str,
    pub source: &'a str,
}

impl Store {
    /// Counts an attempt and returns the counter, this attempt included. A window that has
    /// ended is replaced by one starting now, twice as long if the old one filled up, as
    /// long as the first after a quiet `FORGET_AFTER_SECS`. `failures` grows only by attempts
    /// within the window's limit (those that get checked). One statement, so concurrent
    /// attempts each get their own count.
    pub async fn count_attempt(&self, key: AttemptKey<'_>, policy: &LockoutPolicy, now: i64) -> Result<Count> {
        Ok(with_pool!(self, pool => count_attempt_in!(pool, key, policy, now)))
    }

    /// After a success: clears the counters of its address and of all addresses (another
    /// address's lock stays: the owner's login does not free a guesser).
    pub async fn clear_attempts(&self, key: AttemptKey<'_>) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "DELETE FROM lockouts WHERE subject = $1 AND factor = $2 AND source IN ('*', $3)",
        )
        .bind(key.subject)
        .bind(key.factor)
        .bind(key.source)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// An administrator's unlock: every counter of the subject, the hard lock included.
    pub async fn lift_lockouts(&self, subject: &str) -> Result<()> {
        with_pool!(self, pool => sqlx::query("DELETE FROM lockouts WHERE subject = $1")
            .bind(subject)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }
}
