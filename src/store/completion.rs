//! Finishing a login's second step: what the accepted answer uses up and the session's move
//! to `Authenticated` happen in one transaction, together with the reset of the account's
//! second-factor attempts. So an answer is accepted at most once (each consumption is a
//! compare-and-set), and never consumed without the login completing: a backup code is not
//! spent unless its successor is stored and the session upgraded.
//!
//! One replay rule serves every factor ([`ReplayGuard`]); a new factor adds no SQL here.

use super::{AttemptKey, Result, Stage, Store};

/// What an accepted answer of a credential uses up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayGuard {
    /// The credential's counter must increase to `value` (a TOTP step, a YubiKey counter, a
    /// WebAuthn signature count); `state` is stored with it.
    Counter { value: i64, state: Option<String> },
    /// A token that is accepted once (a Duo transaction id, a Universal Prompt state), by
    /// its hash, remembered until `expires_at`.
    Token { token_hash: Vec<u8>, expires_at: i64 },
    /// Nothing beyond the challenge kept for the session, which is consumed once (a
    /// WebAuthn authenticator whose signature count is always 0).
    ChallengeOnly,
}

/// What an accepted answer uses up.
#[derive(Clone, Copy, Debug)]
pub enum Consumption<'a> {
    /// An answer of the credential `id`. `challenge`: the login challenge kept for the
    /// session was used, and is consumed too (only if it is still there).
    Credential {
        id: i64,
        service: &'a str,
        guard: &'a ReplayGuard,
        challenge: bool,
    },
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

/// The session to move to `Authenticated`. It moves under a new token (`new_token_hash`):
/// whoever held the old one, half-logged-in, holds nothing now.
#[derive(Clone, Copy, Debug)]
pub struct SessionUpgrade<'a> {
    pub token_hash: &'a [u8],
    pub new_token_hash: &'a [u8],
    pub from: Stage,
    pub expires_at: i64,
    /// Now: every factor has just been proven.
    pub verified_at: i64,
}

/// Inside a transaction: records when the account's credential `id` was last used; false
/// when it has gone.
macro_rules! mark_used {
    ($tx:ident, $account_id:expr, $id:expr, $now:expr) => {
        sqlx::query("UPDATE credentials SET last_used_at = $3 WHERE id = $2 AND account_id = $1")
            .bind($account_id)
            .bind($id)
            .bind($now)
            .execute(&mut *$tx)
            .await?
            .rows_affected()
            == 1
    };
}

impl Store {
    pub async fn complete_second_factor(
        &self,
        account_id: i64,
        consumption: Consumption<'_>,
        attempts: AttemptKey<'_>,
        session: SessionUpgrade<'_>,
        now: i64,
    ) -> Result<Completion> {
        let completion = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let consumed = match consumption {
                Consumption::Credential { id, service, guard, challenge } => {
                    let challenge_taken = !challenge
                        || sqlx::query("DELETE FROM challenges WHERE session_hash = $1 AND purpose = 'login'")
                            .bind(session.token_hash)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                            == 1;
                    let guarded = match guard {
                        ReplayGuard::Counter { value, state } => sqlx::query(
                            "UPDATE credentials SET counter = $3, state = $4, last_used_at = $5
                             WHERE id = $2 AND account_id = $1 AND (counter IS NULL OR counter < $3)",
                        )
                        .bind(account_id)
                        .bind(id)
                        .bind(*value)
                        .bind(state)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                            == 1,
                        ReplayGuard::Token { token_hash, expires_at } => {
                            sqlx::query(
                                "INSERT INTO used_tokens (service, token_hash, expires_at) VALUES ($1, $2, $3)
                                 ON CONFLICT (service, token_hash) DO NOTHING",
                            )
                            .bind(service)
                            .bind(token_hash)
                            .bind(*expires_at)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                                == 1
                                && mark_used!(tx, account_id, id, now)
                        }
                        ReplayGuard::ChallengeOnly => mark_used!(tx, account_id, id, now),
                    };
                    challenge_taken && guarded
                }
                Consumption::BackupCode { used, next } => sqlx::query(
                    "UPDATE backup_codes SET code_hash = $3, issued_at = $4 WHERE account_id = $1 AND code_hash = $2",
                )
                .bind(account_id)
                .bind(used)
                .bind(next)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1,
            };
            if !consumed {
                return Ok(Completion::AlreadyUsed);
            }
            if !finish_login!(tx, &attempts, Some(session)) {
                return Ok(Completion::SessionGone);
            }
            tx.commit().await?;
            Completion::Completed
        });
        Ok(completion)
    }
}
