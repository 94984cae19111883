//! Attempt counters (see `core::lockout` for the rule they serve).

use super::{Result, Store};
use crate::core::lockout::{LockoutPolicy, Refusal};

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
        Ok(with_pool!(self, pool => transaction!(pool, tx => {
            let refusal = count_attempts_in!(tx, attempts, policy, hard_lock, now);
            tx.commit().await?;
            Ok(refusal)
        })))
    }

    /// After a success: clears the counters of its address and of all addresses (another
    /// address's lock stays: the owner's login does not free a guesser).
    pub async fn clear_attempts(&self, key: AttemptKey<'_>) -> Result<()> {
        with_pool!(self, pool => clear_attempts_in!(pool, &key));
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
