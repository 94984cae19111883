//! Deleting what has expired, a batch at a time: each batch is one short statement that
//! finds its rows by index, so that logins queue behind it for milliseconds at most.

use super::{Result, Store};

/// What the purge deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purge {
    /// Sessions that expired at or before the cutoff (their challenges go with them).
    Sessions,
    /// Challenges (an enrolment, a login's) that expired at or before the cutoff, in
    /// sessions that live on.
    Challenges,
    /// Single-use tokens that could no longer be presented after the cutoff.
    UsedTokens,
    /// Attempt counters whose window started at or before the cutoff, but never the count
    /// of second-factor failures in a row (which only a success or an administrator ends).
    Lockouts,
    /// Audit events older than the cutoff, the oldest first.
    AuditEvents,
    /// Enrolment links that expired at or before the cutoff (used or not).
    EnrolmentLinks,
    /// Applications' transactions that expired at or before the cutoff, never polled to
    /// their end.
    Transactions,
}

impl Purge {
    pub const ALL: [Purge; 7] = [
        Purge::Sessions,
        Purge::Challenges,
        Purge::UsedTokens,
        Purge::Lockouts,
        Purge::AuditEvents,
        Purge::EnrolmentLinks,
        Purge::Transactions,
    ];

    /// The statement of one batch: `$1` the cutoff, `$2` the batch size.
    pub fn statement(self) -> &'static str {
        match self {
            Purge::Sessions => {
                "DELETE FROM sessions WHERE token_hash IN
                   (SELECT token_hash FROM sessions WHERE expires_at <= $1 LIMIT $2)"
            }
            Purge::Challenges => {
                "DELETE FROM challenges WHERE (session_hash, purpose) IN
                   (SELECT session_hash, purpose FROM challenges WHERE expires_at <= $1 LIMIT $2)"
            }
            Purge::UsedTokens => {
                "DELETE FROM used_tokens WHERE (service, token_hash) IN
                   (SELECT service, token_hash FROM used_tokens WHERE expires_at <= $1 LIMIT $2)"
            }
            Purge::Lockouts => {
                "DELETE FROM lockouts WHERE (subject, factor, source) IN
                   (SELECT subject, factor, source FROM lockouts WHERE window_start <= $1
                    AND NOT (source = '*' AND factor = 'second_factor') LIMIT $2)"
            }
            Purge::AuditEvents => {
                "DELETE FROM audit_events WHERE id IN
                   (SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)"
            }
            Purge::EnrolmentLinks => {
                "DELETE FROM enrolment_links WHERE token_hash IN
                   (SELECT token_hash FROM enrolment_links WHERE expires_at <= $1 LIMIT $2)"
            }
            Purge::Transactions => {
                "DELETE FROM validate_transactions WHERE id_hash IN
                   (SELECT id_hash FROM validate_transactions WHERE expires_at <= $1 LIMIT $2)"
            }
        }
    }
}

impl Store {
    /// Deletes one batch of at most `batch` rows of `what` beyond `cutoff`; returns how many.
    /// Callers loop until a batch comes back short.
    pub async fn purge_batch(&self, what: Purge, cutoff: i64, batch: i64) -> Result<u64> {
        Ok(with_pool!(self, pool => sqlx::query(what.statement())
            .bind(cutoff)
            .bind(batch)
            .execute(pool)
            .await?
            .rows_affected()))
    }
}
