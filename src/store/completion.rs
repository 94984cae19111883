//! Settling a login's second step: the attempt's count, what an accepted answer uses up, the
//! session's move to `Authenticated`, the reset of the account's second-factor attempts and
//! the audit event happen in one transaction. So an answer is accepted at most once (each consumption is a
//! compare-and-set), and never consumed without the login completing: a backup code is not
//! spent unless its successor is stored and the session upgraded.
//!
//! One replay rule serves every factor ([`ReplayGuard`]); a new factor adds no SQL here.

use super::audit::{audit_statement, record_audit_in};
use super::credentials::put_challenge_statement;
use super::lockouts::{clear_attempts_statement, count_attempts_in, count_right_answer_in};
use super::statements::{Statement, Statements};
use super::{AttemptKey, AuditEvent, Purpose, Result, Stage, Store, StoredChallenge};
use crate::core::lockout::{LockoutPolicy, Refusal};

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
    /// An answer of the credential `id`. `kept`: the state the factor kept for it, which
    /// is consumed too (only if it is still there).
    Credential {
        id: i64,
        service: &'a str,
        guard: &'a ReplayGuard,
        kept: Option<Kept<'a>>,
    },
    /// The backup code whose hash is `used`, replaced by the one whose hash is `next`.
    BackupCode { used: &'a [u8], next: &'a [u8] },
}

/// Where the state a factor kept for an answer is.
#[derive(Clone, Copy, Debug)]
pub enum Kept<'a> {
    /// The login challenge of the session with this token hash.
    Session(&'a [u8]),
    /// The application's transaction with this id hash (see `store::transactions`).
    Transaction(&'a [u8]),
}

impl<'a> Kept<'a> {
    /// The statement that consumes it (one row, if it is still there).
    fn deletion(self) -> Statement<'a> {
        match self {
            Kept::Session(hash) => statement!(
                "DELETE FROM challenges WHERE session_hash = $1 AND purpose = 'login'",
                hash
            ),
            Kept::Transaction(hash) => statement!("DELETE FROM validate_transactions WHERE id_hash = $1", hash),
        }
    }
}

/// How the counters are asked before an answer is settled.
#[derive(Clone, Copy, Debug)]
pub struct Counting<'a> {
    pub policy: &'a LockoutPolicy,
    /// Whether the hard lock refuses this answer (not the backup code: see
    /// `core::lockout::Guess`).
    pub hard_lock: bool,
}

/// What the check of an answer found.
#[derive(Clone, Copy, Debug)]
pub enum Judged<'a> {
    /// Right: what it uses up, and the session it completes (none for an application's
    /// check, which has no session).
    Right {
        consumption: Consumption<'a>,
        session: Option<SessionUpgrade<'a>>,
    },
    /// Wrong; `keep`: what the factor remembers of it for the session's next answer.
    Wrong { keep: Option<KeptChallenge<'a>> },
}

/// A login challenge to keep for a session (see `Judged::Wrong`).
#[derive(Clone, Copy, Debug)]
pub struct KeptChallenge<'a> {
    pub session_hash: &'a [u8],
    pub challenge: &'a StoredChallenge,
    pub expires_at: i64,
}

/// How an answer was settled. Every outcome counted the attempt (when asked to) and wrote
/// its audit event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Consumed, attempts reset, session authenticated.
    Completed,
    /// Not checked: the counters refuse it.
    Refused(Refusal),
    /// A wrong answer.
    Wrong,
    /// Another request consumed it first (or a later step was used): nothing consumed.
    AlreadyUsed,
    /// The session is gone (logged out, expired) or already moved on: nothing consumed.
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

impl Store {
    /// Settles a checked second-factor answer in one transaction: counts the attempt
    /// (`counting`; `None` when it was counted before a check over the network), then, if
    /// the counters allow it, consumes a right answer and completes the login, or keeps what
    /// a wrong one leaves the factor to remember; and writes the audit event `audit` makes
    /// of the outcome. One commit per attempt. The answer was checked before it was counted,
    /// but nothing of the check is used or shown unless the count allows it, so parallel
    /// guesses still get no more than the limit.
    pub async fn settle_second_factor(
        &self,
        account_id: i64,
        counting: Option<Counting<'_>>,
        attempts: AttemptKey<'_>,
        judged: Judged<'_>,
        audit: impl Fn(&Settled) -> AuditEvent,
        now: i64,
    ) -> Result<Settled> {
        let settled = write_transaction!(self, tx => {
            // `clear`: whether a success has counters to clear.
            let (refused, clear) = match (counting, &judged) {
                (Some(counting), Judged::Right { .. }) => {
                    count_right_answer_in(&mut *tx, attempts, counting.policy, counting.hard_lock, now).await?
                }
                (Some(counting), Judged::Wrong { .. }) => (
                    count_attempts_in(&mut *tx, attempts, counting.policy, counting.hard_lock, now).await?,
                    true,
                ),
                // Counted before a check over the network.
                (None, _) => (None, true),
            };
            // What the outcome writes, each statement with what the outcome comes to
            // instead if it does not change exactly one row (none: any count will do).
            let (settled, steps): (Settled, Vec<(Statement, Option<Settled>)>) = match (refused, judged) {
                (Some(refusal), _) => (Settled::Refused(refusal), Vec::new()),
                (None, Judged::Wrong { keep }) => (
                    Settled::Wrong,
                    keep.into_iter()
                        .map(|keep| (put_challenge_statement(keep.session_hash, Purpose::Login, keep.challenge, keep.expires_at), None))
                        .collect(),
                ),
                (None, Judged::Right { consumption, session }) => {
                    let consumed = consumption_statements(account_id, consumption, now)
                        .into_iter()
                        .map(|statement| (statement, Some(Settled::AlreadyUsed)));
                    let finished = finish_login_statements(clear.then_some(&attempts), session);
                    (Settled::Completed, consumed.chain(finished.into_iter().map(|(statement, moves)| {
                        (statement, moves.then_some(Settled::SessionGone))
                    })).collect())
                }
            };
            let event = audit(&settled);
            let (mut statements, mut otherwise): (Vec<_>, Vec<_>) = steps.into_iter().unzip();
            statements.push(audit_statement(&event));
            otherwise.push(None);
            let counts = tx.execute_all(&statements).await?;
            // An answer used up elsewhere, or a session gone, changes nothing but the count
            // and the audit: this transaction is rolled back (nothing of it is kept) and both
            // are written again below.
            let unconsumed = counts.iter().zip(&otherwise).find_map(|(&count, otherwise)| otherwise.filter(|_| count != 1));
            if let Some(unconsumed) = unconsumed {
                return Ok(Err(unconsumed));
            }
            tx.commit().await?;
            Ok(Ok(settled))
        });
        // Rare (a replay, a race lost): counted and audited in a transaction of their own,
        // so that the common case needs no savepoint.
        let settled = match settled {
            Ok(settled) => settled,
            Err(unconsumed) => write_transaction!(self, tx => {
                let refused = match counting {
                    Some(counting) => count_attempts_in(&mut *tx, attempts, counting.policy, counting.hard_lock, now).await?,
                    None => None,
                };
                let settled = refused.map_or(unconsumed, Settled::Refused);
                record_audit_in(&mut *tx, &audit(&settled)).await?;
                tx.commit().await?;
                Ok(settled)
            }),
        };
        Ok(settled)
    }
}

/// The statements that use up a right answer, each a compare-and-set that changes one row
/// unless another request used it first.
fn consumption_statements<'a>(account_id: i64, consumption: Consumption<'a>, now: i64) -> Vec<Statement<'a>> {
    match consumption {
        Consumption::Credential {
            id,
            service,
            guard,
            kept,
        } => {
            let mut statements: Vec<Statement> = kept.map(Kept::deletion).into_iter().collect();
            let mark_used = || {
                statement!(
                    "UPDATE credentials SET last_used_at = $3 WHERE id = $2 AND account_id = $1",
                    account_id,
                    id,
                    now
                )
            };
            match guard {
                // The counter's update records the use too.
                ReplayGuard::Counter { value, state } => statements.push(statement!(
                    "UPDATE credentials SET counter = $3, state = $4, last_used_at = $5
                     WHERE id = $2 AND account_id = $1 AND (counter IS NULL OR counter < $3)",
                    account_id,
                    id,
                    *value,
                    state,
                    now
                )),
                ReplayGuard::Token { token_hash, expires_at } => statements.extend([
                    statement!(
                        "INSERT INTO used_tokens (service, token_hash, expires_at) VALUES ($1, $2, $3)
                         ON CONFLICT (service, token_hash) DO NOTHING",
                        service,
                        token_hash,
                        *expires_at
                    ),
                    mark_used(),
                ]),
                ReplayGuard::ChallengeOnly => statements.push(mark_used()),
            }
            statements
        }
        Consumption::BackupCode { used, next } => vec![statement!(
            "UPDATE backup_codes SET code_hash = $3, issued_at = $4 WHERE account_id = $1 AND code_hash = $2",
            account_id,
            used,
            next,
            now
        )],
    }
}

/// The statements that finish a login: they reset the attempt counters a success clears
/// (`attempts`: its address's and the account's; none when the attempt left none) and move
/// `session` to `Authenticated` under its new token, only from the stage it is expected
/// at; what its old token kept (challenges) goes. Each with whether it must change one row:
/// the session's move, which changes none when that session has gone or moved on.
fn finish_login_statements<'a>(
    attempts: Option<&'a AttemptKey<'a>>,
    session: Option<SessionUpgrade<'a>>,
) -> Vec<(Statement<'a>, bool)> {
    let mut statements: Vec<_> = attempts
        .map(|attempts| (clear_attempts_statement(attempts), false))
        .into_iter()
        .collect();
    if let Some(session) = session {
        statements.push((
            statement!("DELETE FROM challenges WHERE session_hash = $1", session.token_hash),
            false,
        ));
        statements.push((
            statement!(
                "UPDATE sessions SET token_hash = $4, stage = 'authenticated', expires_at = $3, verified_at = $5
                 WHERE token_hash = $1 AND stage = $2",
                session.token_hash,
                session.from.as_str(),
                session.expires_at,
                session.new_token_hash,
                session.verified_at,
            ),
            true,
        ));
    }
    statements
}

/// Inside a transaction: finishes a login (see [`finish_login_statements`]). False when its
/// session has gone or moved on; the caller then returns without committing.
pub(super) async fn finish_login(
    tx: &mut impl Statements,
    attempts: Option<&AttemptKey<'_>>,
    session: Option<SessionUpgrade<'_>>,
) -> Result<bool> {
    let (statements, moves): (Vec<_>, Vec<_>) = finish_login_statements(attempts, session).into_iter().unzip();
    let counts = tx.execute_all(&statements).await?;
    Ok(counts.iter().zip(moves).all(|(&count, moves)| !moves || count == 1))
}
