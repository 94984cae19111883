//! Applications and their API keys (the secrets only as keyed hashes).

use super::{Result, Store, StoreError};

/// Inserts `$key` for the application `$id` on `$executor`.
macro_rules! insert_key {
    ($executor:expr, $id:expr, $key:expr, $now:expr) => {{
        let key: &NewKey<'_> = $key;
        sqlx::query(
            "INSERT INTO application_keys (key_id, application_id, secret_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key.key_id)
        .bind($id)
        .bind(key.secret_hash)
        .bind($now)
        .bind(key.expires_at)
        .execute($executor)
        .await?;
    }};
}

/// An application as the administrators' list shows it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ApplicationRow {
    pub id: i64,
    pub name: String,
    pub kinds: String,
    pub scopes: String,
    pub networks: String,
    pub suspended_at: Option<i64>,
    pub created_at: i64,
    /// Whether its unenrolled users may pass without a second factor.
    pub allow_unenrolled: bool,
}

/// One of an application's keys, without its secret.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeyRow {
    pub key_id: String,
    pub application_id: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A key found by its id, with its stored hash and its application, for authentication.
#[derive(Clone, Debug)]
pub struct KeyAndApplication {
    pub key: KeyRow,
    pub secret_hash: Vec<u8>,
    pub application: ApplicationRow,
}

/// A new key: its public id and the hash of its secret.
pub struct NewKey<'a> {
    pub key_id: &'a str,
    pub secret_hash: &'a [u8],
    pub expires_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct Joined {
    key_id: String,
    application_id: i64,
    secret_hash: Vec<u8>,
    key_created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    name: String,
    kinds: String,
    scopes: String,
    networks: String,
    suspended_at: Option<i64>,
    created_at: i64,
    allow_unenrolled: bool,
}

impl Store {
    /// Creates an application with its first key, in one transaction; `Conflict` when the
    /// name is taken.
    pub async fn create_application(&self, app: &ApplicationRow, key: &NewKey<'_>, now: i64) -> Result<i64> {
        let id = with_pool!(self, pool => transaction!(pool, tx => {
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO applications (name, kinds, scopes, networks, suspended_at, created_at, allow_unenrolled)
                 VALUES ($1, $2, $3, $4, NULL, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING id",
            )
            .bind(&app.name)
            .bind(&app.kinds)
            .bind(&app.scopes)
            .bind(&app.networks)
            .bind(now)
            .bind(app.allow_unenrolled)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(id) = id else { return Err(StoreError::Conflict) };
            insert_key!(&mut *tx, id, key, now);
            tx.commit().await?;
            Ok(id)
        }));
        Ok(id)
    }

    /// Adds a key to an application; `false` when there is no such application.
    pub async fn add_application_key(&self, application_id: i64, key: &NewKey<'_>, now: i64) -> Result<bool> {
        let added = with_pool!(self, pool => transaction!(pool, tx => {
            let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM applications WHERE id = $1")
                .bind(application_id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Ok(false);
            }
            insert_key!(&mut *tx, application_id, key, now);
            tx.commit().await?;
            Ok(true)
        }));
        Ok(added)
    }

    /// Revokes a key of an application at once; `false` when there is no such live key.
    pub async fn revoke_application_key(&self, application_id: i64, key_id: &str, now: i64) -> Result<bool> {
        let revoked = with_pool!(self, pool => sqlx::query(
            "UPDATE application_keys SET revoked_at = $3
             WHERE application_id = $1 AND key_id = $2 AND revoked_at IS NULL",
        )
        .bind(application_id)
        .bind(key_id)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(revoked == 1)
    }

    /// Suspends (`Some(now)`) or resumes (`None`) an application; `false` when there is none.
    pub async fn set_application_suspended(&self, application_id: i64, suspended_at: Option<i64>) -> Result<bool> {
        let changed = with_pool!(self, pool => sqlx::query("UPDATE applications SET suspended_at = $2 WHERE id = $1")
            .bind(application_id)
            .bind(suspended_at)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(changed == 1)
    }

    /// Sets whether the application's unenrolled users may pass; `false` when there is none.
    pub async fn set_application_allow_unenrolled(&self, application_id: i64, allow: bool) -> Result<bool> {
        let changed = with_pool!(self, pool => sqlx::query("UPDATE applications SET allow_unenrolled = $2 WHERE id = $1")
            .bind(application_id)
            .bind(allow)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(changed == 1)
    }

    /// Every application, by name, and every key, by application and creation.
    pub async fn applications(&self) -> Result<(Vec<ApplicationRow>, Vec<KeyRow>)> {
        with_reader!(self, pool => {
            let apps = sqlx::query_as(
                "SELECT id, name, kinds, scopes, networks, suspended_at, created_at, allow_unenrolled
                 FROM applications ORDER BY name",
            )
            .fetch_all(pool)
            .await?;
            let keys = sqlx::query_as(
                "SELECT key_id, application_id, created_at, last_used_at, expires_at, revoked_at
                 FROM application_keys ORDER BY application_id, created_at, key_id",
            )
            .fetch_all(pool)
            .await?;
            Ok((apps, keys))
        })
    }

    /// The key `key_id` with its hash and application, if there is one.
    pub async fn application_key(&self, key_id: &str) -> Result<Option<KeyAndApplication>> {
        let row: Option<Joined> = with_reader!(self, pool => sqlx::query_as(
            "SELECT k.key_id, k.application_id, k.secret_hash, k.created_at AS key_created_at, k.last_used_at,
                    k.expires_at, k.revoked_at, a.name, a.kinds, a.scopes, a.networks, a.suspended_at, a.created_at,
                    a.allow_unenrolled
             FROM application_keys k JOIN applications a ON a.id = k.application_id WHERE k.key_id = $1",
        )
        .bind(key_id)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|row| KeyAndApplication {
            key: KeyRow {
                key_id: row.key_id,
                application_id: row.application_id,
                created_at: row.key_created_at,
                last_used_at: row.last_used_at,
                expires_at: row.expires_at,
                revoked_at: row.revoked_at,
            },
            secret_hash: row.secret_hash,
            application: ApplicationRow {
                id: row.application_id,
                name: row.name,
                kinds: row.kinds,
                scopes: row.scopes,
                networks: row.networks,
                suspended_at: row.suspended_at,
                created_at: row.created_at,
                allow_unenrolled: row.allow_unenrolled,
            },
        }))
    }

    /// Records a key's use.
    pub async fn note_application_key_used(&self, key_id: &str, now: i64) -> Result<()> {
        with_pool!(self, pool => sqlx::query("UPDATE application_keys SET last_used_at = $2 WHERE key_id = $1")
        .bind(key_id)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }
}
