//! Copying a whole database to another (`twofold db copy`), such as from the embedded
//! SQLite to PostgreSQL when Twofold grows to several nodes. Every table is copied as is —
//! account ids, sealed credentials with their replay counters, backup-code hashes, lockout
//! counters, sessions and their challenges, used tokens, settings with their sealed secrets,
//! applications with their keys, accounts and enrolment links, and the audit log — into
//! the target in one transaction.

use sqlx::Row;

use super::{Backend, Result, Store, StoreError};

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bytes,
    Bool,
}

/// Every table, parents first, with its columns (nullable ones are read as such anyway).
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "accounts",
        &[
            ("id", Kind::Int),
            ("kind", Kind::Text),
            ("role", Kind::Text),
            ("username", Kind::Text),
            ("username_key", Kind::Text),
            ("email", Kind::Text),
            ("email_key", Kind::Text),
            ("password_hash", Kind::Text),
            ("created_at", Kind::Int),
        ],
    ),
    (
        "credentials",
        &[
            ("id", Kind::Int),
            ("account_id", Kind::Int),
            ("service", Kind::Text),
            ("label", Kind::Text),
            ("secret", Kind::Bytes),
            ("counter", Kind::Int),
            ("state", Kind::Text),
            ("enrolled_at", Kind::Int),
            ("last_used_at", Kind::Int),
            ("external_id", Kind::Text),
        ],
    ),
    (
        "backup_codes",
        &[
            ("account_id", Kind::Int),
            ("code_hash", Kind::Bytes),
            ("issued_at", Kind::Int),
        ],
    ),
    (
        "imported_keys",
        &[
            ("service", Kind::Text),
            ("external_id", Kind::Text),
            ("serial", Kind::Int),
            ("sealed", Kind::Bytes),
            ("account_id", Kind::Int),
            ("imported_at", Kind::Int),
        ],
    ),
    (
        "lockouts",
        &[
            ("subject", Kind::Text),
            ("factor", Kind::Text),
            ("source", Kind::Text),
            ("window_start", Kind::Int),
            ("window_secs", Kind::Int),
            ("attempts", Kind::Int),
            ("failures", Kind::Int),
        ],
    ),
    (
        "sessions",
        &[
            ("token_hash", Kind::Bytes),
            ("account_id", Kind::Int),
            ("stage", Kind::Text),
            ("csrf_token", Kind::Text),
            ("created_at", Kind::Int),
            ("expires_at", Kind::Int),
            ("verified_at", Kind::Int),
        ],
    ),
    (
        "challenges",
        &[
            ("session_hash", Kind::Bytes),
            ("purpose", Kind::Text),
            ("service", Kind::Text),
            ("label", Kind::Text),
            ("sealed", Kind::Bytes),
            ("expires_at", Kind::Int),
        ],
    ),
    (
        "used_tokens",
        &[
            ("service", Kind::Text),
            ("token_hash", Kind::Bytes),
            ("expires_at", Kind::Int),
        ],
    ),
    (
        "settings",
        &[("name", Kind::Text), ("value", Kind::Text), ("updated_at", Kind::Int)],
    ),
    (
        "setting_secrets",
        &[
            ("service", Kind::Text),
            ("name", Kind::Text),
            ("sealed", Kind::Bytes),
            ("updated_at", Kind::Int),
        ],
    ),
    (
        "applications",
        &[
            ("id", Kind::Int),
            ("name", Kind::Text),
            ("kinds", Kind::Text),
            ("scopes", Kind::Text),
            ("networks", Kind::Text),
            ("suspended_at", Kind::Int),
            ("created_at", Kind::Int),
            ("allow_unenrolled", Kind::Bool),
        ],
    ),
    (
        "application_keys",
        &[
            ("key_id", Kind::Text),
            ("application_id", Kind::Int),
            ("secret_hash", Kind::Bytes),
            ("created_at", Kind::Int),
            ("last_used_at", Kind::Int),
            ("expires_at", Kind::Int),
            ("revoked_at", Kind::Int),
        ],
    ),
    (
        "application_accounts",
        &[
            ("application_id", Kind::Int),
            ("external_id", Kind::Text),
            ("account_id", Kind::Int),
        ],
    ),
    (
        "enrolment_links",
        &[
            ("token_hash", Kind::Bytes),
            ("application_id", Kind::Int),
            ("account_id", Kind::Int),
            ("created_at", Kind::Int),
            ("expires_at", Kind::Int),
            ("used_at", Kind::Int),
        ],
    ),
    (
        "validate_transactions",
        &[
            ("id_hash", Kind::Bytes),
            ("application_id", Kind::Int),
            ("account_id", Kind::Int),
            ("service", Kind::Text),
            ("sealed", Kind::Bytes),
            ("remote_addr", Kind::Text),
            ("created_at", Kind::Int),
            ("expires_at", Kind::Int),
        ],
    ),
    (
        "audit_events",
        &[
            ("id", Kind::Int),
            ("at", Kind::Int),
            ("account_id", Kind::Int),
            ("event", Kind::Text),
            ("outcome", Kind::Text),
            ("remote_addr", Kind::Text),
            ("detail", Kind::Text),
        ],
    ),
];

#[derive(Clone, Debug)]
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Bool(Option<bool>),
}

/// The contents of every table.
pub struct Snapshot {
    tables: Vec<Vec<Vec<Value>>>,
}

/// The names of the tables copied, for a test that compares them with the schema.
pub fn copied_tables() -> Vec<&'static str> {
    TABLES.iter().map(|(name, _)| *name).collect()
}

impl Snapshot {
    /// Rows per table, for the report.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        TABLES
            .iter()
            .zip(&self.tables)
            .map(|((name, _), rows)| (*name, rows.len()))
            .collect()
    }
}

fn columns(spec: &[(&str, Kind)]) -> String {
    spec.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
}

impl Store {
    /// Reads every table.
    pub async fn export(&self) -> Result<Snapshot> {
        let mut tables = Vec::with_capacity(TABLES.len());
        for (table, spec) in TABLES {
            let sql = format!("SELECT {} FROM {table} ORDER BY 1", columns(spec));
            let rows = with_reader!(self, pool => {
                let mut rows = Vec::new();
                for row in sqlx::query(&sql).fetch_all(pool).await? {
                    let mut values = Vec::with_capacity(spec.len());
                    for (i, (_, kind)) in spec.iter().enumerate() {
                        values.push(match kind {
                            Kind::Int => Value::Int(row.try_get(i)?),
                            Kind::Text => Value::Text(row.try_get(i)?),
                            Kind::Bytes => Value::Bytes(row.try_get(i)?),
                            Kind::Bool => Value::Bool(row.try_get(i)?),
                        });
                    }
                    rows.push(values);
                }
                rows
            });
            tables.push(rows);
        }
        Ok(Snapshot { tables })
    }

    /// Writes a snapshot in one transaction. A target that already holds accounts,
    /// settings or audit events is refused, unless `replace` is set: then its contents are
    /// deleted first, in the same transaction.
    pub async fn import(&self, snapshot: &Snapshot, replace: bool) -> Result<()> {
        with_pool!(self, pool => transaction!(pool, tx => {
            let existing: i64 = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM accounts) + (SELECT COUNT(*) FROM settings) + (SELECT COUNT(*) FROM audit_events)",
            )
            .fetch_one(&mut *tx)
            .await?;
            if existing > 0 && !replace {
                return Err(StoreError::NotEmpty);
            }
            for (table, _) in TABLES.iter().rev() {
                sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await?;
            }
            for ((table, spec), rows) in TABLES.iter().zip(&snapshot.tables) {
                let placeholders: Vec<String> = (1..=spec.len()).map(|n| format!("${n}")).collect();
                let sql = format!("INSERT INTO {table} ({}) VALUES ({})", columns(spec), placeholders.join(", "));
                for row in rows {
                    let mut query = sqlx::query(&sql);
                    for value in row {
                        query = match value {
                            Value::Int(v) => query.bind(*v),
                            Value::Text(v) => query.bind(v.clone()),
                            Value::Bytes(v) => query.bind(v.clone()),
                            Value::Bool(v) => query.bind(*v),
                        };
                    }
                    query.execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(())
        }));
        self.continue_identities_after_copy().await
    }

    /// PostgreSQL identity columns do not follow explicitly inserted ids (SQLite's do):
    /// move them past the copied rows so that new accounts and events get fresh ids.
    async fn continue_identities_after_copy(&self) -> Result<()> {
        if let Backend::Postgres { pool, .. } = &self.backend {
            for table in ["accounts", "credentials", "applications", "audit_events"] {
                sqlx::query(&format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                ))
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }
}
