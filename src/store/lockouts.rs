//! Attempt counters (see `core::lockout` for the rule they serve).

use super::statements::{Columns, FromColumns, Statement, Statements};
use super::{Result, Store, StoreError};
use crate::core::lockout::{Count, LockoutPolicy, Refusal, ALL_SOURCES, FORGET_AFTER_SECS};

/// One counter: a subject's factor, from one source address or from all (`ALL_SOURCES`).
#[derive(Clone, Copy, Debug)]
pub struct AttemptKey<'a> {
    pub subject: &'a str,
    pub factor: &'a str,
    pub source: &'a str,
}

impl Store {
    /// Counts an attempt, before it is checked, on its address's counter and then on all
    /// addresses' (which an attempt its address refuses never reaches), in one transaction;
    /// why it is refused, if it is. `hard_lock`: whether the hard lock applies to it.
    pub async fn count_attempts(
        &self,
        attempts: AttemptKey<'_>,
        policy: &LockoutPolicy,
        hard_lock: bool,
        now: i64,
    ) -> Result<Option<Refusal>> {
        Ok(write_transaction!(self, tx => {
            let refusal = count_attempts_in(&mut *tx, attempts, policy, hard_lock, now).await?;
            tx.commit().await?;
            Ok(refusal)
        }))
    }

    /// After a success: clears the counters of its address and of all addresses (another
    /// address's lock stays: the owner's login does not free a guesser).
    pub async fn clear_attempts(&self, key: AttemptKey<'_>) -> Result<()> {
        write_transaction!(self, tx => {
            clear_attempts_in(&mut *tx, &key).await?;
            tx.commit().await?;
            Ok(())
        });
        Ok(())
    }

    /// Takes back an attempt counted before a check that could not be made (the outside
    /// service that checks it did not answer, or refused this server's configuration): the
    /// user's answer was not judged, so an outage locks nobody out. It was counted on both
    /// counters, within their limits, so both take one back.
    pub async fn refund_attempt(&self, key: AttemptKey<'_>) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE lockouts SET attempts = attempts - 1, failures = failures - 1
             WHERE subject = $1 AND factor = $2 AND source IN ('*', $3) AND attempts > 0 AND failures > 0",
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

/// Counts an attempt on the counter `key`, this attempt included. A window that has ended
/// is replaced by one starting now, twice as long if the old one filled up, as long as the
/// first after a quiet `FORGET_AFTER_SECS`. `failures` grows only by attempts within the
/// window's limit (those that get checked). One statement, so concurrent attempts each get
/// their own count.
async fn count_attempt_in(
    tx: &mut impl Statements,
    key: AttemptKey<'_>,
    policy: &LockoutPolicy,
    now: i64,
) -> Result<Count> {
    let counts: Vec<Count> = tx
        .fetch_all(
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
            args![
                key.subject,
                key.factor,
                key.source,
                now,
                policy.window_secs,
                policy.limit(key.source),
                policy.max_window_secs,
                FORGET_AFTER_SECS,
            ],
        )
        .await?;
    counts
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Internal("counting an attempt returned no row".into()))
}

impl FromColumns for Count {
    fn from_columns(row: &impl Columns) -> Result<Self> {
        Ok(Count {
            window_start: row.int(0)?,
            window_secs: row.int(1)?,
            attempts: row.int(2)?,
            failures: row.int(3)?,
        })
    }
}

/// Inside a transaction: counts an attempt on its address's counter, then (unless that one
/// refuses it) on all addresses' counter; the refusal, if any (see `Store::count_attempts`).
pub(super) async fn count_attempts_in(
    tx: &mut impl Statements,
    attempts: AttemptKey<'_>,
    policy: &LockoutPolicy,
    hard_lock: bool,
    now: i64,
) -> Result<Option<Refusal>> {
    for source in [attempts.source, ALL_SOURCES] {
        let count = count_attempt_in(tx, AttemptKey { source, ..attempts }, policy, now).await?;
        let refusal = policy.refusal(source, count, now, hard_lock);
        if refusal.is_some() {
            return Ok(refusal);
        }
    }
    Ok(None)
}

/// Inside a transaction: counts the attempt of an answer found right, which its success
/// then clears. On SQLite, where write transactions run one at a time, the counters can be
/// looked at first: usually neither exists, so the count would be each one's first, written
/// only to be deleted with the success. Then nothing is written, and `false` says there is
/// nothing to clear. Otherwise (or if even a first attempt is refused) it is counted as any
/// other (see `count_attempts_in`), and `true` says the counters are to be cleared. On
/// PostgreSQL it is always counted: a look would not see the guesses counted beside it,
/// not yet committed, which the upsert waits for; a right guess among many parallel ones
/// would then go through past the limit.
pub(super) async fn count_right_answer_in<S: Statements>(
    tx: &mut S,
    attempts: AttemptKey<'_>,
    policy: &LockoutPolicy,
    hard_lock: bool,
    now: i64,
) -> Result<(Option<Refusal>, bool)> {
    let first = Count {
        window_start: now,
        window_secs: policy.window_secs,
        attempts: 1,
        failures: 1,
    };
    let first_allowed = [attempts.source, ALL_SOURCES]
        .into_iter()
        .all(|source| policy.refusal(source, first, now, hard_lock).is_none());
    if S::WRITES_ONE_AT_A_TIME && first_allowed && no_counter_in(tx, &attempts).await? {
        return Ok((None, false));
    }
    Ok((count_attempts_in(tx, attempts, policy, hard_lock, now).await?, true))
}

/// Whether neither counter a success clears exists.
async fn no_counter_in(tx: &mut impl Statements, attempts: &AttemptKey<'_>) -> Result<bool> {
    let counters: Vec<i64> = tx
        .fetch_all(
            "SELECT attempts FROM lockouts WHERE subject = $1 AND factor = $2 AND source IN ('*', $3) LIMIT 1",
            args![attempts.subject, attempts.factor, attempts.source],
        )
        .await?;
    Ok(counters.is_empty())
}

/// Clears the counters a success clears: its address's, and all addresses'.
pub(super) async fn clear_attempts_in(tx: &mut impl Statements, attempts: &AttemptKey<'_>) -> Result<()> {
    let clear = clear_attempts_statement(attempts);
    tx.execute(clear.sql, &clear.args).await?;
    Ok(())
}

/// The statement that clears the counters a success clears (see [`clear_attempts_in`]).
pub(super) fn clear_attempts_statement<'a>(attempts: &AttemptKey<'a>) -> Statement<'a> {
    statement!(
        "DELETE FROM lockouts WHERE subject = $1 AND factor = $2 AND source IN ('*', $3)",
        attempts.subject,
        attempts.factor,
        attempts.source
    )
}
