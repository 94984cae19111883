use super::accounts::{account_from_row, AccountRow};
use super::credentials::{Credential, SecondStep, StoredChallenge, CREDENTIAL_COLUMNS};
use super::statements::{Columns, FromColumns, Shifted, Statements};
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

/// A row of `Store::session`'s query: the session and its account, and, at the second
/// step, the setting, the kept challenge and one credential (one row per credential).
struct LiveRow {
    session: SessionRow,
    setting: Option<String>,
    kept: Option<StoredChallenge>,
    credential: Option<Credential>,
}

impl FromColumns for LiveRow {
    fn from_columns(row: &impl Columns) -> Result<Self> {
        let kept = match (row.optional_text(11)?, row.optional_blob(13)?) {
            (Some(service), Some(sealed)) => Some(StoredChallenge {
                service,
                label: row.optional_text(12)?,
                sealed,
            }),
            _ => None,
        };
        let credential = match row.optional_int(14)? {
            Some(_) => Some(Credential::from_columns(&Shifted { row, by: 14 })?),
            None => None,
        };
        Ok(LiveRow {
            session: SessionRow::from_columns(row)?,
            setting: row.optional_text(10)?,
            kept,
            credential,
        })
    }
}

/// A live session as a request finds it.
#[derive(Clone, Debug)]
pub struct LiveSession {
    pub session: Session,
    pub account: Account,
    /// What the second step reads: only while the session is at it.
    pub second_step: Option<SecondStep>,
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

    /// The live session with this token hash, if it has not expired, with its account, and,
    /// while it is at the second factor, what that step reads (its credentials, its kept
    /// challenge and the setting `second_step_setting`). One query: it runs on every request.
    pub async fn session(&self, token_hash: &[u8], second_step_setting: &str, now: i64) -> Result<Option<LiveSession>> {
        static QUERY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "SELECT s.stage, s.csrf_token, s.expires_at, s.verified_at,
                        a.id, a.kind, a.role, a.username, a.email, a.password_hash,
                        CASE WHEN s.stage = $3 THEN (SELECT value FROM settings WHERE name = $4) END,
                        ch.service, ch.label, ch.sealed, c.{}
                 FROM sessions s JOIN accounts a ON a.id = s.account_id
                 LEFT JOIN challenges ch ON s.stage = $3 AND ch.session_hash = s.token_hash
                   AND ch.purpose = 'login' AND ch.expires_at > $2
                 LEFT JOIN credentials c ON s.stage = $3 AND c.account_id = a.id
                 WHERE s.token_hash = $1 AND s.expires_at > $2 ORDER BY c.id",
                CREDENTIAL_COLUMNS.replace(", ", ", c.")
            )
        });
        let second_factor = Stage::SecondFactor.as_str();
        let rows: Vec<LiveRow> = read!(self, reader => reader
            .fetch_all(&QUERY, args![token_hash, now, second_factor, second_step_setting])
            .await?);
        let mut rows = rows.into_iter();
        let Some(first) = rows.next() else { return Ok(None) };
        let (Some(account), Some(stage)) = (
            account_from_row(first.session.account),
            Stage::parse(&first.session.stage),
        ) else {
            return Ok(None);
        };
        let second_step = (stage == Stage::SecondFactor).then(|| SecondStep {
            credentials: first
                .credential
                .into_iter()
                .chain(rows.filter_map(|row| row.credential))
                .collect(),
            kept: first.kept,
            setting: first.setting,
        });
        let session = Session {
            token_hash: token_hash.to_vec(),
            account_id: account.id,
            stage,
            csrf_token: first.session.csrf_token,
            expires_at: first.session.expires_at,
            verified_at: first.session.verified_at,
        };
        Ok(Some(LiveSession {
            session,
            account,
            second_step,
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
