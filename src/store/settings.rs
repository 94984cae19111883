//! Settings: JSON documents by name, and the write-only secrets of the services' settings,
//! sealed by the services and kept in their own table.

use super::statements::Statements;
use super::{Result, Store};

/// A change to one write-only setting: its new sealed value, or `None` to clear it.
pub struct SecretWrite<'a> {
    pub service: &'a str,
    pub name: &'a str,
    pub sealed: Option<Vec<u8>>,
}

impl Store {
    /// Reads a setting's JSON value.
    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        let values: Vec<String> =
            read!(self, reader => reader.fetch_all("SELECT value FROM settings WHERE name = $1", args![name]).await?);
        Ok(values.into_iter().next())
    }

    pub async fn put_setting(&self, name: &str, value: &str, now: i64) -> Result<()> {
        self.put_setting_with_secrets(name, value, &[], now).await
    }

    /// Saves a setting's JSON value and changes its secrets, in one transaction: a reader
    /// never sees the new document with the old secrets.
    pub async fn put_setting_with_secrets(
        &self,
        name: &str,
        value: &str,
        secrets: &[SecretWrite<'_>],
        now: i64,
    ) -> Result<()> {
        with_pool!(self, pool => transaction!(pool, tx => {
            sqlx::query(
                "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(value)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for secret in secrets {
                match &secret.sealed {
                    Some(sealed) => sqlx::query(
                        "INSERT INTO setting_secrets (service, name, sealed, updated_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (service, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                    )
                    .bind(secret.service)
                    .bind(secret.name)
                    .bind(sealed)
                    .bind(now),
                    None => sqlx::query("DELETE FROM setting_secrets WHERE service = $1 AND name = $2")
                        .bind(secret.service)
                        .bind(secret.name),
                }
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        }));
        Ok(())
    }

    /// The `(service, name)` of every write-only setting that has a value.
    pub async fn setting_secrets_set(&self) -> Result<Vec<(String, String)>> {
        let names = with_reader!(self, pool => sqlx::query_as("SELECT service, name FROM setting_secrets ORDER BY service, name")
            .fetch_all(pool)
            .await?);
        Ok(names)
    }

    /// One write-only setting's sealed value.
    pub async fn setting_secret(&self, service: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let sealed = with_reader!(self, pool => sqlx::query_scalar(
            "SELECT sealed FROM setting_secrets WHERE service = $1 AND name = $2",
        )
        .bind(service)
        .bind(name)
        .fetch_optional(pool)
        .await?);
        Ok(sealed)
    }

    /// Any one sealed setting, to check at start-up that the master key opens it.
    pub async fn any_setting_secret(&self) -> Result<Option<(String, String, Vec<u8>)>> {
        let row = with_reader!(self, pool => sqlx::query_as(
            "SELECT service, name, sealed FROM setting_secrets ORDER BY service, name LIMIT 1",
        )
        .fetch_optional(pool)
        .await?);
        Ok(row)
    }
}
