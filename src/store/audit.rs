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
        with_pool!(self, pool => record_audit_in!(pool, event));
        Ok(())
    }

    /// Deletes up to `batch` events older than `before` (the oldest first); returns how
    /// many. Callers loop: each batch is a short statement, so logins never wait behind one
    /// long delete.
    pub async fn delete_audit_events_before(&self, before: i64, batch: i64) -> Result<u64> {
        let deleted = with_pool!(self, pool => sqlx::query(
            "DELETE FROM audit_events WHERE id IN
               (SELECT id FROM audit_events WHERE at < $1 ORDER BY id LIMIT $2)",
        )
        .bind(before)
        .bind(batch)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(deleted)
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
}
