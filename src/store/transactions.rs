//! Transactions an application started (a Duo push) and polls: the id's hash, whose they
//! are, and the factor's sealed state. A transaction ends at its first final answer: the
//! row is deleted by a compare-and-set, in the same transaction as what an accepted answer
//! uses up (see `Consumption::Credential`), so that two polls cannot both end it.

use super::{Result, Store};

/// A transaction to keep.
pub struct NewTransaction<'a> {
    pub id_hash: &'a [u8],
    pub application_id: i64,
    pub account_id: i64,
    pub service: &'a str,
    pub sealed: &'a [u8],
    /// The user's address, as the application reported it.
    pub remote_addr: Option<&'a str>,
    pub expires_at: i64,
}

/// A transaction as kept.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredTransaction {
    pub account_id: i64,
    pub service: String,
    pub sealed: Vec<u8>,
    pub remote_addr: Option<String>,
    pub expires_at: i64,
}

impl Store {
    pub async fn create_transaction(&self, new: &NewTransaction<'_>, now: i64) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO validate_transactions
               (id_hash, application_id, account_id, service, sealed, remote_addr, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new.id_hash)
        .bind(new.application_id)
        .bind(new.account_id)
        .bind(new.service)
        .bind(new.sealed)
        .bind(new.remote_addr)
        .bind(now)
        .bind(new.expires_at)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// The transaction with this id hash, if it is the application's (expired or not).
    pub async fn transaction(&self, id_hash: &[u8], application_id: i64) -> Result<Option<StoredTransaction>> {
        Ok(with_reader!(self, pool => sqlx::query_as(
            "SELECT account_id, service, sealed, remote_addr, expires_at FROM validate_transactions
             WHERE id_hash = $1 AND application_id = $2",
        )
        .bind(id_hash)
        .bind(application_id)
        .fetch_optional(pool)
        .await?))
    }

    /// Ends the transaction (once: false if it had already ended).
    pub async fn end_transaction(&self, id_hash: &[u8]) -> Result<bool> {
        Ok(
            with_pool!(self, pool => sqlx::query("DELETE FROM validate_transactions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(pool)
            .await?
            .rows_affected())
                == 1,
        )
    }
}
