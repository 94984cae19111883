//! Finishing a login's second step: what the accepted answer uses up (a TOTP step, a backup
//! code) and the session's move to `Authenticated` happen in one transaction, together with
//! the reset of the account's second-factor attempts. So an answer is accepted at most once
//! (each consumption is a compare-and-set), and never consumed without the login completing:
//! a backup code is not spent unless its successor is stored and the session upgraded.

use super::{Result, Stage, Store};

/// What an accepted answer uses up.
#[derive(Clone, Copy, Debug)]
pub enum Consumption<'a> {
    /// A TOTP step: stored only if later than the last one used (RFC 6238 §5.2).
    TotpStep { step: i64, clock_offset: i64 },
    /// The backup code whose hash is `used`, replaced by the one whose hash is `next`.
    BackupCode { used: &'a [u8], next: &'a [u8] },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Consumed, attempts reset, session authenticated.
    Completed,
    /// Another request consumed it first (or a later step was used): nothing changed.
    AlreadyUsed,
    /// The session is gone (logged out, expired) or already moved on: nothing changed.
    SessionGone,
}

/// The session to move to `Authenticated`.
#[derive(Clone, Copy, Debug)]
pub struct SessionUpgrade<'a> {
    pub token_hash: &'a [u8],
    pub from: Stage,
    pub expires_at: i64,
}

impl Store {
    pub async fn complete_second_factor(
        &self,
        account_id: i64,
        consumption: Consumption<'_>,
        attempts_factor: &str,
        session: SessionUpgrade<'_>,
        now: i64,
    ) -> Result<Completion> {
        let completion = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let consumed = match consumption {
                Consumption::TotpStep { step, clock_offset } => sqlx::query(
                    "UPDATE two_factor SET last_used_step = $2, clock_offset = $3
                     WHERE account_id = $1 AND (last_used_step IS NULL OR last_used_step < $2)",
                )
                .bind(account_id)
                .bind(step)
                .bind(clock_offset)
                .execute(&mut *tx)
                .await?,
                Consumption::BackupCode { used, next } => sqlx::query(
                    "UPDATE backup_codes SET code_hash = $3, issued_at = $4 WHERE account_id = $1 AND code_hash = $2",
                )
                .bind(account_id)
                .bind(used)
                .bind(next)
                .bind(now)
                .execute(&mut *tx)
                .await?,
            };
            if consumed.rows_affected() != 1 {
                return Ok(Completion::AlreadyUsed);
            }
            if !finish_login!(tx, account_id, attempts_factor, Some(session)) {
                return Ok(Completion::SessionGone);
            }
            tx.commit().await?;
            Completion::Completed
        });
        Ok(completion)
    }
}
