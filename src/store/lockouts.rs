//! Attempt counters (see `core::lockout` for the rule they serve).

use super::{Result, Store, StoreError};
use crate::core::lockout::{Count, LockoutPolicy, FORGET_AFTER_SECS};

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
        let row: Vec<(i64, i64, i64, i64)> = with_pool!(self, pool => sqlx::query_as(
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
        .bind(now)
        .bind(policy.window_secs)
        .bind(policy.limit(key.source))
        .bind(policy.max_window_secs)
        .bind(FORGET_AFTER_SECS)
        // Run to completion, not just to the first row: SQLite reports a failed commit (a
        // full disk, a read-only file) only when the statement finishes, and an attempt that
        // was not counted must not be checked.
        .fetch_all(pool)
        .await?);
        let (window_start, window_secs, attempts, failures) = row
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Internal("counting an attempt returned no row".into()))?;
        Ok(Count {
            window_start,
            window_secs,
            attempts,
            failures,
        })
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

    /// Deletes the counters quiet for `FORGET_AFTER_SECS`, but never the count of
    /// second-factor failures in a row (which only a success or an administrator ends).
    pub async fn delete_forgotten_attempts(&self, now: i64) -> Result<u64> {
        Ok(with_pool!(self, pool => sqlx::query(
            "DELETE FROM lockouts WHERE window_start + window_secs + $1 <= $2
             AND NOT (source = '*' AND factor = 'second_factor')",
        )
        .bind(FORGET_AFTER_SECS)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()))
    }
}
