use super::accounts::{account_from_row, AccountRow};
use super::statements::{Columns, FromColumns, Statements};
use super::{Account, Result, Store};

/// How far a login has come. Only `Authenticated` may use the product; the two others are
/// "half-logged-in" and may only finish their step (or log out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Password accepted; the second factor is due.
    SecondFactor,
    /// Password accepted; the account must enrol in 2FA before anything else.
    Enrolment,
    Authenticated,
    /// Opened by an application's enrolment link, without a password: it may only enrol,
    /// and ends when it has.
    LinkEnrolment,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::SecondFactor => "second_factor",
            Stage::Enrolment => "enrolment",
            Stage::Authenticated => "authenticated",
            Stage::LinkEnrolment => "link_enrolment",
        }
    }

    fn parse(text: &str) -> Option<Stage> {
        [
            Stage::SecondFactor,
            Stage::Enrolment,
            Stage::Authenticated,
            Stage::LinkEnrolment,
        ]
        .into_iter()
        .find(|stage| stage.as_str() == text)
    }
}

struct SessionRow {
    stage: String,
    csrf_token: String,
    expires_at: i64,
    verified_at: Option<i64>,
    account: AccountRow,
}

impl FromColumns for SessionRow {
    fn from_columns(row: &impl Columns) -> Result<Self> {
        Ok(SessionRow {
            stage: row.text(0)?,
            csrf_token: row.text(1)?,
            expires_at: row.int(2)?,
            verified_at: row.optional_int(3)?,
            account: (
                row.int(4)?,
                row.text(5)?,
                row.optional_text(6)?,
                row.text(7)?,
                row.optional_text(8)?,
                row.text(9)?,
            ),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Session {
    pub token_hash: Vec<u8>,
    pub account_id: i64,
    pub stage: Stage,
    pub csrf_token: String,
    pub expires_at: i64,
    /// When every factor of the account was last proven in this session (its login's end).
    pub verified_at: Option<i64>,
}

impl Store {
    pub async fn create_session(&self, session: &Session, now: i64) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO sessions (token_hash, account_id, stage, csrf_token, created_at, expires_at, verified_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&session.token_hash)
        .bind(session.account_id)
        .bind(session.stage.as_str())
        .bind(&session.csrf_token)
        .bind(now)
        .bind(session.expires_at)
        .bind(session.verified_at)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// The live session with this token hash, if it has not expired, with its account
    /// (one query: this runs on every request).
    pub async fn session(&self, token_hash: &[u8], now: i64) -> Result<Option<(Session, Account)>> {
        let rows: Vec<SessionRow> = read!(self, reader => reader.fetch_all(
            "SELECT s.stage, s.csrf_token, s.expires_at, s.verified_at,
                    a.id, a.kind, a.role, a.username, a.email, a.password_hash
             FROM sessions s JOIN accounts a ON a.id = s.account_id
             WHERE s.token_hash = $1 AND s.expires_at > $2",
            args![token_hash, now],
        )
        .await?);
        Ok(rows.into_iter().next().and_then(|row| {
            let account = account_from_row(row.account)?;
            let session = Session {
                token_hash: token_hash.to_vec(),
                account_id: account.id,
                stage: Stage::parse(&row.stage)?,
                csrf_token: row.csrf_token,
                expires_at: row.expires_at,
                verified_at: row.verified_at,
            };
            Some((session, account))
        }))
    }

    pub async fn delete_session(&self, token_hash: &[u8]) -> Result<()> {
        with_pool!(self, pool => sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Ends every session of an account but one (after a password change, say).
    pub async fn delete_other_sessions(&self, account_id: i64, keep: &[u8]) -> Result<()> {
        with_pool!(self, pool => sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND token_hash <> $2")
            .bind(account_id)
            .bind(keep)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }
}
