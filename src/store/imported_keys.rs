//! Keys imported with their secrets by an administrator (YubiKey's local mode), before an
//! account enrols them.

use super::{Result, Store};

/// A key to import: its secret sealed by the services.
pub struct NewImportedKey<'a> {
    pub service: &'a str,
    pub external_id: &'a str,
    pub serial: Option<i64>,
    pub sealed: &'a [u8],
    pub account_id: Option<i64>,
}

/// An imported key, as the enrolment reads it.
#[derive(Clone, Debug)]
pub struct ImportedKey {
    pub sealed: Vec<u8>,
    /// The account it is assigned to; `None`: the first account to touch it may enrol it.
    pub account_id: Option<i64>,
}

/// An imported key as the administrators' list shows it.
#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ImportedKeySummary {
    /// The public ID (modhex).
    pub public_id: String,
    pub serial: Option<i64>,
    /// The username of the account it is assigned to, if any.
    pub assigned_to: Option<String>,
    /// The username of the account that enrolled it, if one has.
    pub enrolled_by: Option<String>,
    /// Unix seconds.
    pub imported_at: i64,
}

impl Store {
    /// The keys of `service` imported so far, in the order of their import.
    pub async fn imported_keys(&self, service: &str) -> Result<Vec<ImportedKeySummary>> {
        let keys = with_reader!(self, pool => sqlx::query_as(
            "SELECT k.external_id AS public_id, k.serial, assigned.username AS assigned_to,
                    enrolled.username AS enrolled_by, k.imported_at
             FROM imported_keys k
             LEFT JOIN accounts assigned ON assigned.id = k.account_id
             LEFT JOIN credentials c ON c.service = k.service AND c.external_id = k.external_id
             LEFT JOIN accounts enrolled ON enrolled.id = c.account_id
             WHERE k.service = $1 ORDER BY k.imported_at, k.external_id",
        )
        .bind(service)
        .fetch_all(pool)
        .await?);
        Ok(keys)
    }

    /// Imports keys in one transaction: all, or none when one of them is already imported
    /// (`Err` names those, and nothing is written).
    pub async fn import_keys(
        &self,
        keys: &[NewImportedKey<'_>],
        now: i64,
    ) -> Result<std::result::Result<(), Vec<String>>> {
        let outcome = with_pool!(self, pool => transaction!(pool, tx => {
            let mut taken = Vec::new();
            for key in keys {
                let inserted = sqlx::query(
                    "INSERT INTO imported_keys (service, external_id, serial, sealed, account_id, imported_at)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (service, external_id) DO NOTHING",
                )
                .bind(key.service)
                .bind(key.external_id)
                .bind(key.serial)
                .bind(key.sealed)
                .bind(key.account_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    taken.push(key.external_id.to_string());
                }
            }
            if !taken.is_empty() {
                return Ok(Err(taken));
            }
            tx.commit().await?;
            Ok(Ok(()))
        }));
        Ok(outcome)
    }

    pub async fn imported_key(&self, service: &str, external_id: &str) -> Result<Option<ImportedKey>> {
        let row: Option<(Vec<u8>, Option<i64>)> = with_reader!(self, pool => sqlx::query_as(
            "SELECT sealed, account_id FROM imported_keys WHERE service = $1 AND external_id = $2",
        )
        .bind(service)
        .bind(external_id)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(sealed, account_id)| ImportedKey { sealed, account_id }))
    }
}
