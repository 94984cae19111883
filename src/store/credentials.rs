//! Second-factor credentials (any number per account), the backup code, and the challenges
//! a step keeps between requests.

use super::completion::{finish_login, SessionUpgrade};
use super::statements::{Columns, FromColumns, Statement, Statements};
use super::{AttemptKey, Result, Store};

/// One second-factor credential of an account. `secret` is sealed under the master key.
#[derive(Clone, Debug)]
pub struct Credential {
    pub id: i64,
    pub service: String,
    pub label: String,
    pub secret: Vec<u8>,
    /// The replay counter: the last accepted TOTP step, YubiKey counter, signature count.
    pub counter: Option<i64>,
    /// Non-secret state of the factor's own (JSON).
    pub state: Option<String>,
    pub enrolled_at: i64,
    pub last_used_at: Option<i64>,
    /// The name it is known by outside (a YubiKey's public ID), unique per service.
    pub external_id: Option<String>,
}

/// What a login's second step reads, with its session (see `Store::session`).
#[derive(Clone, Debug)]
pub struct SecondStep {
    pub credentials: Vec<Credential>,
    /// The login challenge kept for the session, if it is live.
    pub kept: Option<StoredChallenge>,
    /// The setting named in the read (`None` if it was never saved).
    pub setting: Option<String>,
}

/// Read from `CREDENTIAL_COLUMNS`, in their order.
impl FromColumns for Credential {
    fn from_columns(row: &impl Columns) -> Result<Self> {
        Ok(Credential {
            id: row.int(0)?,
            service: row.text(1)?,
            label: row.text(2)?,
            secret: row.blob(3)?,
            counter: row.optional_int(4)?,
            state: row.optional_text(5)?,
            enrolled_at: row.int(6)?,
            last_used_at: row.optional_int(7)?,
            external_id: row.optional_text(8)?,
        })
    }
}

/// What a step of a login or an enrolment keeps for its session until the next request.
#[derive(Clone, Debug)]
pub struct StoredChallenge {
    pub service: String,
    /// The label the user chose for the credential being enrolled.
    pub label: Option<String>,
    pub sealed: Vec<u8>,
}

/// Why a challenge is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Enrolment,
    Login,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Enrolment => "enrolment",
            Purpose::Login => "login",
        }
    }
}

/// A credential whose enrolment was proved, written with everything that goes with it.
pub struct Enrolment<'a> {
    pub account_id: i64,
    /// The session that enrolled it: its enrolment challenge is consumed, it stays signed
    /// in, and every other session of the account ends.
    pub session_hash: &'a [u8],
    /// The challenge's sealed state, as read: consumed only if still the same.
    pub challenge: &'a [u8],
    pub service: &'a str,
    pub label: &'a str,
    pub secret: &'a [u8],
    pub counter: Option<i64>,
    pub state: Option<&'a str>,
    pub external_id: Option<&'a str>,
    /// Stored only if this is the account's first credential.
    pub backup_code_hash: &'a [u8],
    pub max_credentials: i64,
    /// The second-factor attempt counters to reset (the confirmation was one).
    pub attempts: AttemptKey<'a>,
    /// A forced user's session, which the enrolment completes.
    pub session: Option<SessionUpgrade<'a>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// Stored, with the account's first backup code when `first`.
    Added { id: i64, first: bool },
    /// The challenge was consumed or replaced meanwhile, or the session has gone.
    Gone,
    /// The account already has the most credentials allowed.
    Full,
    /// A credential of this service already has this external ID (the key is enrolled).
    Taken,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removed {
    /// Removed; `last` when the account has no credential left (2FA is now off).
    Removed {
        last: bool,
    },
    /// It was the last one, and removing it was not allowed: nothing changed.
    LastRefused,
    NotFound,
}

/// Takes the account's row lock, so that decisions about its credentials (how many, the
/// first one, the last one) are made one at a time, on SQLite and PostgreSQL alike.
macro_rules! lock_account {
    ($tx:ident, $account_id:expr) => {
        sqlx::query("UPDATE accounts SET id = id WHERE id = $1")
            .bind($account_id)
            .execute(&mut *$tx)
            .await?
    };
}

pub(super) const CREDENTIAL_COLUMNS: &str =
    "id, service, label, secret, counter, state, enrolled_at, last_used_at, external_id";

impl Store {
    /// The account's credentials, oldest first.
    pub async fn credentials(&self, account_id: i64) -> Result<Vec<Credential>> {
        static QUERY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE account_id = $1 ORDER BY id")
        });
        Ok(read!(self, reader => reader.fetch_all(&QUERY, args![account_id]).await?))
    }

    /// Keeps a step's state for a session, replacing what it kept for the same purpose.
    pub async fn put_challenge(
        &self,
        session_hash: &[u8],
        purpose: Purpose,
        challenge: &StoredChallenge,
        expires_at: i64,
    ) -> Result<()> {
        write_transaction!(self, tx => {
            put_challenge_in(&mut *tx, session_hash, purpose, challenge, expires_at).await?;
            tx.commit().await?;
            Ok(())
        });
        Ok(())
    }

    /// What the session keeps for `purpose`, unless it expired. Reading does not consume
    /// it: the transaction that completes the step does, if it is still the same.
    pub async fn challenge(&self, session_hash: &[u8], purpose: Purpose, now: i64) -> Result<Option<StoredChallenge>> {
        let row: Option<(String, Option<String>, Vec<u8>)> = with_reader!(self, pool => sqlx::query_as(
            "SELECT service, label, sealed FROM challenges WHERE session_hash = $1 AND purpose = $2 AND expires_at > $3",
        )
        .bind(session_hash)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(service, label, sealed)| StoredChallenge { service, label, sealed }))
    }

    /// Stores a proved credential in one transaction: the enrolment challenge is consumed
    /// (so two confirmations cannot both win), the credential written (and the first backup
    /// code, for a first credential), the attempts reset, a forced user's session completed
    /// and the account's other sessions ended. Nothing is written unless all of it is.
    pub async fn add_credential(&self, enrolment: &Enrolment<'_>, now: i64) -> Result<Added> {
        let added = with_pool!(self, pool => transaction!(pool, tx => {
            lock_account!(tx, enrolment.account_id);
            let consumed = sqlx::query(
                "DELETE FROM challenges WHERE session_hash = $1 AND purpose = 'enrolment' AND service = $2 AND sealed = $3",
            )
            .bind(enrolment.session_hash)
            .bind(enrolment.service)
            .bind(enrolment.challenge)
            .execute(&mut *tx)
            .await?;
            if consumed.rows_affected() != 1 {
                return Ok(Added::Gone);
            }
            let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM credentials WHERE account_id = $1")
                .bind(enrolment.account_id)
                .fetch_one(&mut *tx)
                .await?;
            if existing >= enrolment.max_credentials {
                return Ok(Added::Full);
            }
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO credentials (account_id, service, label, secret, counter, state, enrolled_at, external_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (service, external_id) DO NOTHING RETURNING id",
            )
            .bind(enrolment.account_id)
            .bind(enrolment.service)
            .bind(enrolment.label)
            .bind(enrolment.secret)
            .bind(enrolment.counter)
            .bind(enrolment.state)
            .bind(now)
            .bind(enrolment.external_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(id) = id else {
                return Ok(Added::Taken);
            };
            if existing == 0 {
                sqlx::query(
                    "INSERT INTO backup_codes (account_id, code_hash, issued_at) VALUES ($1, $2, $3)
                     ON CONFLICT (account_id) DO UPDATE SET code_hash = excluded.code_hash, issued_at = excluded.issued_at",
                )
                .bind(enrolment.account_id)
                .bind(enrolment.backup_code_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            if !finish_login(&mut *tx, Some(&enrolment.attempts), enrolment.session).await? {
                return Ok(Added::Gone);
            }
            // The enrolling session stays, under its new token if the enrolment completed its login.
            let keep = enrolment.session.map_or(enrolment.session_hash, |s| s.new_token_hash);
            end_other_sessions!(tx, enrolment.account_id, keep);
            tx.commit().await?;
            Ok(Added::Added { id, first: existing == 0 })
        }));
        Ok(added)
    }

    /// Renames one of the account's credentials; false when it has no such credential.
    pub async fn rename_credential(&self, account_id: i64, id: i64, label: &str) -> Result<bool> {
        let renamed = with_pool!(self, pool => sqlx::query("UPDATE credentials SET label = $3 WHERE id = $2 AND account_id = $1")
            .bind(account_id)
            .bind(id)
            .bind(label)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(renamed == 1)
    }

    /// Removes one of the account's credentials and ends its sessions but `keep`. Removing
    /// the last one turns 2FA off (the backup code goes too), unless `allow_last` is false.
    pub async fn remove_credential(&self, account_id: i64, id: i64, allow_last: bool, keep: &[u8]) -> Result<Removed> {
        let removed = with_pool!(self, pool => transaction!(pool, tx => {
            lock_account!(tx, account_id);
            let deleted = sqlx::query("DELETE FROM credentials WHERE id = $2 AND account_id = $1")
                .bind(account_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if deleted.rows_affected() != 1 {
                return Ok(Removed::NotFound);
            }
            let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM credentials WHERE account_id = $1")
                .bind(account_id)
                .fetch_one(&mut *tx)
                .await?;
            if left == 0 {
                if !allow_last {
                    return Ok(Removed::LastRefused);
                }
                sqlx::query("DELETE FROM backup_codes WHERE account_id = $1")
                    .bind(account_id)
                    .execute(&mut *tx)
                    .await?;
            }
            end_other_sessions!(tx, account_id, keep);
            tx.commit().await?;
            Ok(Removed::Removed { last: left == 0 })
        }));
        Ok(removed)
    }

    /// Turns the account's 2FA off: every credential, the backup code and any enrolment in
    /// progress, and ends every session of the account but `keep` (the owner's own, or none).
    /// False, changing nothing, when the account had no credential.
    pub async fn remove_two_factor(&self, account_id: i64, keep: &[u8]) -> Result<bool> {
        let removed = with_pool!(self, pool => transaction!(pool, tx => {
            let removed = sqlx::query("DELETE FROM credentials WHERE account_id = $1")
                .bind(account_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if removed == 0 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM backup_codes WHERE account_id = $1")
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "DELETE FROM challenges WHERE session_hash IN (SELECT token_hash FROM sessions WHERE account_id = $1)",
            )
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
            end_other_sessions!(tx, account_id, keep);
            tx.commit().await?;
            Ok(true)
        }));
        Ok(removed)
    }

    /// The hash of the account's backup code and when it was issued.
    pub async fn backup_code(&self, account_id: i64) -> Result<Option<(Vec<u8>, i64)>> {
        let row = with_reader!(self, pool => sqlx::query_as("SELECT code_hash, issued_at FROM backup_codes WHERE account_id = $1")
            .bind(account_id)
            .fetch_optional(pool)
            .await?);
        Ok(row)
    }

    /// Any one stored credential, to check at start-up that the master key opens it.
    pub async fn any_sealed_credential(&self) -> Result<Option<(i64, String, Vec<u8>)>> {
        let row = with_reader!(self, pool => sqlx::query_as("SELECT account_id, service, secret FROM credentials ORDER BY id LIMIT 1")
            .fetch_optional(pool)
            .await?);
        Ok(row)
    }
}

/// Keeps `challenge` for the session `session_hash` and `purpose` until `expires_at`,
/// replacing what it kept.
pub(super) async fn put_challenge_in(
    tx: &mut impl Statements,
    session_hash: &[u8],
    purpose: Purpose,
    challenge: &StoredChallenge,
    expires_at: i64,
) -> Result<()> {
    let put = put_challenge_statement(session_hash, purpose, challenge, expires_at);
    tx.execute(put.sql, &put.args).await?;
    Ok(())
}

/// The statement that keeps a step's state for a session (see [`put_challenge_in`]).
pub(super) fn put_challenge_statement<'a>(
    session_hash: &'a [u8],
    purpose: Purpose,
    challenge: &'a StoredChallenge,
    expires_at: i64,
) -> Statement<'a> {
    statement!(
        "INSERT INTO challenges (session_hash, purpose, service, label, sealed, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (session_hash, purpose) DO UPDATE SET service = excluded.service,
           label = excluded.label, sealed = excluded.sealed, expires_at = excluded.expires_at",
        session_hash,
        purpose.as_str(),
        &challenge.service,
        &challenge.label,
        &challenge.sealed,
        expires_at
    )
}
