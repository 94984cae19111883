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
