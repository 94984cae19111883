use super::statements::{Statement, Statements};
use super::{Result, Store};

/// One line of the audit log: who, when, from where, what, and how it ended — never a
/// code, password or secret.
#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct AuditEvent {
    pub at: i64,
    pub account_id: Option<i64>,
    pub event: String,
    pub outcome: String,
    pub remote_addr: Option<String>,
    pub detail: Option<String>,
}

impl Store {
    pub async fn record_audit(&self, event: &AuditEvent) -> Result<()> {
        write_transaction!(self, tx => {
            record_audit_in(&mut *tx, event).await?;
            tx.commit().await?;
            Ok(())
        });
        Ok(())
    }

    /// The newest events first.
    pub async fn audit_events(&self, account_id: Option<i64>, limit: i64) -> Result<Vec<AuditEvent>> {
        let events = with_reader!(self, pool => sqlx::query_as(
            "SELECT at, account_id, event, outcome, remote_addr, detail FROM audit_events
             WHERE ($1 IS NULL OR account_id = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(account_id)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(events)
    }

    /// The newest event since `since` whose detail starts with `prefix` (found through the
    /// index on the time, so the search never reads older events).
    pub async fn latest_audit_detail(&self, prefix: &str, since: i64) -> Result<Option<AuditEvent>> {
        let event = with_reader!(self, pool => sqlx::query_as(
            "SELECT at, account_id, event, outcome, remote_addr, detail FROM audit_events
             WHERE at >= $1 AND substr(detail, 1, $3) = $2 ORDER BY at DESC, id DESC LIMIT 1",
        )
        .bind(since)
        .bind(prefix)
        .bind(i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX))
        .fetch_optional(pool)
        .await?);
        Ok(event)
    }
}

/// Writes the audit event `event` (inside the transaction whose outcome it tells).
pub(super) async fn record_audit_in(tx: &mut impl Statements, event: &AuditEvent) -> Result<()> {
    let record = audit_statement(event);
    tx.execute(record.sql, &record.args).await?;
    Ok(())
}

/// The statement that writes the audit event `event`.
pub(super) fn audit_statement(event: &AuditEvent) -> Statement<'_> {
    statement!(
        "INSERT INTO audit_events (at, account_id, event, outcome, remote_addr, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
        event.at,
        event.account_id,
        &event.event,
        &event.outcome,
        &event.remote_addr,
        &event.detail
    )
}
