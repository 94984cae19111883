use super::{Result, Store, StoreError};
use crate::core::lockout::{LockoutPolicy, ALL_SOURCES};
use crate::core::policy::{AccountKind, Role};

/// An administrator or a client, as loaded for a login or a session.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: i64,
    pub kind: AccountKind,
    pub role: Option<Role>,
    pub username: String,
    pub email: Option<String>,
    pub password_hash: String,
}

/// A row of the Administrators or Clients list.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AccountSummary {
    pub id: i64,
    pub username: String,
    pub email: Option<String>,
    pub role: Option<Role>,
    pub two_factor_enabled: bool,
    /// The first service the account enrolled in (kept for clients of earlier versions).
    pub two_factor_service: Option<String>,
    /// Every service the account has a credential of.
    pub two_factor_services: Vec<String>,
    pub locked: bool,
}

pub struct NewAccount<'a> {
    pub kind: AccountKind,
    pub role: Option<Role>,
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub password_hash: &'a str,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: i64,
    username: String,
    email: Option<String>,
    role: Option<String>,
    locked: bool,
}

pub(super) type AccountRow = (i64, String, Option<String>, String, Option<String>, String);

const ACCOUNT_COLUMNS: &str = "id, kind, role, username, email, password_hash";

/// Inserts the account `$new` on `$executor` unless its username or e-mail is taken for its
/// kind (a username may not be another account's e-mail address, nor the reverse);
/// evaluates to its id, or `None`.
macro_rules! insert_account {
    ($executor:expr, $new:expr, $now:expr) => {{
        let new: &NewAccount<'_> = $new;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO accounts (kind, role, username, username_key, email, email_key, password_hash, created_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8
             WHERE NOT EXISTS (SELECT 1 FROM accounts WHERE kind = $1 AND (email_key = $4 OR username_key = $6))
             RETURNING id",
        )
        .bind(new.kind.as_str())
        .bind(new.role.map(Role::as_str))
        .bind(new.username)
        .bind(login_key(new.username))
        .bind(new.email)
        .bind(new.email.map(login_key))
        .bind(new.password_hash)
        .bind($now)
        .fetch_all($executor) // to completion, so a failed commit is reported (see count_attempt)
        .await?
        .into_iter()
        .next();
        id
    }};
}

pub(super) fn account_from_row(row: AccountRow) -> Option<Account> {
    let (id, kind, role, username, email, password_hash) = row;
    Some(Account {
        id,
        kind: AccountKind::parse(&kind)?,
        role: role.as_deref().and_then(Role::parse),
        username,
        email,
        password_hash,
    })
}

/// Usernames and e-mail addresses are compared case-insensitively, through this key.
pub fn login_key(name: &str) -> String {
    name.trim().to_lowercase()
}

impl Store {
    /// Creates an account; `Conflict` when the username or e-mail is taken for that kind.
    /// A username may not be another account's e-mail address, nor an e-mail address another
    /// account's username: a login by that name would reach only one of them.
    pub async fn create_account(&self, new: NewAccount<'_>, now: i64) -> Result<i64> {
        let id = with_pool!(self, pool => insert_account!(pool, &new, now));
        id.ok_or(StoreError::Conflict)
    }

    /// Creates an account for an application, known to it as `external_id`, in one
    /// transaction; `Conflict` when the username or e-mail is taken for that kind, or the
    /// external id for that application.
    pub async fn create_application_account(
        &self,
        new: NewAccount<'_>,
        application_id: i64,
        external_id: &str,
        now: i64,
    ) -> Result<i64> {
        let id = with_pool!(self, pool => transaction!(pool, tx => {
            let Some(id) = insert_account!(&mut *tx, &new, now) else {
                return Err(StoreError::Conflict);
            };
            let linked = sqlx::query(
                "INSERT INTO application_accounts (application_id, external_id, account_id) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(application_id)
            .bind(external_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if linked.rows_affected() != 1 {
                return Err(StoreError::Conflict);
            }
            tx.commit().await?;
            Ok(id)
        }));
        Ok(id)
    }

    /// The account of `kind` an application knows as `external_id`.
    pub async fn account_by_external_id(
        &self,
        application_id: i64,
        kind: AccountKind,
        external_id: &str,
    ) -> Result<Option<Account>> {
        let row: Option<AccountRow> = with_reader!(self, pool => sqlx::query_as(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE kind = $3 AND id =
               (SELECT account_id FROM application_accounts WHERE application_id = $1 AND external_id = $2)"
        ))
        .bind(application_id)
        .bind(external_id)
        .bind(kind.as_str())
        .fetch_optional(pool)
        .await?);
        Ok(row.and_then(account_from_row))
    }

    /// Creates the first full administrator, only while there is no administrator at all;
    /// `None` when one already exists. Concurrent setups (on any node) are serialised by
    /// claiming the `setup` settings row in the same transaction: one wins.
    pub async fn create_first_admin(&self, new: NewAccount<'_>, now: i64) -> Result<Option<i64>> {
        let id = with_pool!(self, pool => transaction!(pool, tx => {
            let claimed = sqlx::query(
                "INSERT INTO settings (name, value, updated_at) VALUES ('setup', 'done', $1) ON CONFLICT (name) DO NOTHING",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if claimed.rows_affected() != 1 {
                return Ok(None);
            }
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO accounts (kind, role, username, username_key, email, email_key, password_hash, created_at)
                 SELECT 'admin', 'full', $1, $2, $3, $4, $5, $6
                 WHERE NOT EXISTS (SELECT 1 FROM accounts WHERE kind = 'admin')
                 RETURNING id",
            )
            .bind(new.username)
            .bind(login_key(new.username))
            .bind(new.email)
            .bind(new.email.map(login_key))
            .bind(new.password_hash)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if id.is_some() {
                tx.commit().await?;
            }
            Ok(id)
        }));
        Ok(id)
    }

    pub async fn has_admin(&self) -> Result<bool> {
        let found: Option<i64> = with_reader!(self, pool => sqlx::query_scalar("SELECT id FROM accounts WHERE kind = 'admin' LIMIT 1")
            .fetch_optional(pool)
            .await?);
        Ok(found.is_some())
    }

    /// Finds the account a login names: its username or its e-mail, in any case.
    pub async fn find_account(&self, kind: AccountKind, name: &str) -> Result<Option<Account>> {
        let key = login_key(name);
        let row: Option<AccountRow> = with_reader!(self, pool => sqlx::query_as(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts
             WHERE kind = $1 AND (username_key = $2 OR email_key = $2)
             ORDER BY username_key = $2 DESC LIMIT 1"
        ))
        .bind(kind.as_str())
        .bind(key)
        .fetch_optional(pool)
        .await?);
        Ok(row.and_then(account_from_row))
    }

    pub async fn account(&self, id: i64) -> Result<Option<Account>> {
        let row: Option<AccountRow> = with_reader!(self, pool => sqlx::query_as(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?);
        Ok(row.and_then(account_from_row))
    }

    /// The Administrators or Clients list, with each account's 2FA status; `locked` means
    /// one of its attempt counters refuses attempts at `now` (from some address, from all,
    /// or the second factor's hard lock).
    pub async fn list_accounts(
        &self,
        kind: AccountKind,
        now: i64,
        policy: &LockoutPolicy,
    ) -> Result<Vec<AccountSummary>> {
        let rows: Vec<SummaryRow> = with_reader!(self, pool => sqlx::query_as(
            "SELECT a.id, a.username, a.email, a.role,
                    EXISTS (SELECT 1 FROM lockouts x WHERE x.subject = 'account:' || a.id
                            AND ((x.window_start + x.window_secs > $2
                                  AND x.attempts > CASE WHEN x.source = '*' THEN $4 ELSE $3 END)
                                 OR (x.source = '*' AND x.factor = 'second_factor' AND x.failures >= $5))) AS locked
             FROM accounts a WHERE a.kind = $1 ORDER BY a.username_key",
        )
        .bind(kind.as_str())
        .bind(now)
        .bind(policy.limit("any address"))
        .bind(policy.limit(ALL_SOURCES))
        .bind(i64::from(policy.hard_lock_failures))
        .fetch_all(pool)
        .await?);
        // Each account's services, in the order it first enrolled in them.
        let services: Vec<(i64, String)> = with_reader!(self, pool => sqlx::query_as(
            "SELECT c.account_id, c.service FROM credentials c JOIN accounts a ON a.id = c.account_id
             WHERE a.kind = $1 GROUP BY c.account_id, c.service ORDER BY c.account_id, MIN(c.id)",
        )
        .bind(kind.as_str())
        .fetch_all(pool)
        .await?);
        let mut by_account: std::collections::HashMap<i64, Vec<String>> = std::collections::HashMap::new();
        for (account_id, service) in services {
            by_account.entry(account_id).or_default().push(service);
        }
        Ok(rows
            .into_iter()
            .map(|row| {
                let services = by_account.remove(&row.id).unwrap_or_default();
                AccountSummary {
                    id: row.id,
                    username: row.username,
                    email: row.email,
                    role: row.role.as_deref().and_then(Role::parse),
                    two_factor_enabled: !services.is_empty(),
                    two_factor_service: services.first().cloned(),
                    two_factor_services: services,
                    locked: row.locked,
                }
            })
            .collect())
    }

    pub async fn set_password_hash(&self, account_id: i64, password_hash: &str) -> Result<()> {
        with_pool!(self, pool => sqlx::query("UPDATE accounts SET password_hash = $2 WHERE id = $1")
            .bind(account_id)
            .bind(password_hash)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }
}
