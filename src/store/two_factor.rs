use super::completion::SessionUpgrade;
use super::{Result, Store};

/// An account's active second factor. `credential` is sealed under the master key.
#[derive(Clone, Debug)]
pub struct TwoFactor {
    pub service: String,
    pub credential: Vec<u8>,
    pub last_used_step: Option<i64>,
    pub clock_offset: i64,
}

/// An enrolment started but not yet confirmed with a code.
#[derive(Clone, Debug)]
pub struct PendingEnrolment {
    pub service: String,
    pub credential: Vec<u8>,
    pub started_at: i64,
}

/// What a confirmed enrolment writes, all at once.
pub struct Enrolment<'a> {
    pub account_id: i64,
    pub service: &'a str,
    pub credential: &'a [u8],
    pub last_used_step: Option<i64>,
    pub clock_offset: i64,
    pub backup_code_hash: &'a [u8],
    /// The second-factor attempts to reset (the confirmation was one).
    pub attempts_factor: &'a str,
    /// A forced user's session, which the enrolment completes.
    pub session: Option<SessionUpgrade<'a>>,
}

impl Store {
    pub async fn two_factor(&self, account_id: i64) -> Result<Option<TwoFactor>> {
        let row: Option<(String, Vec<u8>, Option<i64>, i64)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT service, credential, last_used_step, clock_offset FROM two_factor WHERE account_id = $1",
        )
        .bind(account_id)
        .fetch_optional(pool)
        .await?);
        Ok(
            row.map(|(service, credential, last_used_step, clock_offset)| TwoFactor {
                service,
                credential,
                last_used_step,
                clock_offset,
            }),
        )
    }

    /// Starts (or restarts) an enrolment; an earlier unconfirmed one is replaced.
    pub async fn save_pending_enrolment(
        &self,
        account_id: i64,
        service: &str,
        credential: &[u8],
        now: i64,
    ) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO pending_enrolments (account_id, service, credential, started_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (account_id) DO UPDATE SET service = excluded.service,
               credential = excluded.credential, started_at = excluded.started_at",
        )
        .bind(account_id)
        .bind(service)
        .bind(credential)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    pub async fn pending_enrolment(&self, account_id: i64) -> Result<Option<PendingEnrolment>> {
        let row: Option<(String, Vec<u8>, i64)> = with_pool!(self, pool => sqlx::query_as("SELECT service, credential, started_at FROM pending_enrolments WHERE account_id = $1")
                .bind(account_id)
                .fetch_optional(pool)
                .await?);
        Ok(row.map(|(service, credential, started_at)| PendingEnrolment {
            service,
            credential,
            started_at,
        }))
    }

    /// Activates a confirmed enrolment in one transaction: the pending enrolment is
    /// consumed (so two confirmations cannot both win), the credential and the backup code
    /// are written together, the attempts are reset and a forced user's session completed.
    /// False (and nothing written) when the pending enrolment was already consumed, the
    /// account already has a second factor, or the session to complete is gone.
    pub async fn confirm_enrolment(&self, enrolment: &Enrolment<'_>, now: i64) -> Result<bool> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let consumed = sqlx::query(
                "DELETE FROM pending_enrolments WHERE account_id = $1 AND service = $2 AND credential = $3",
            )
            .bind(enrolment.account_id)
            .bind(enrolment.service)
            .bind(enrolment.credential)
            .execute(&mut *tx)
            .await?;
            if consumed.rows_affected() != 1 {
                return Ok(false);
            }
            let inserted = sqlx::query(
                "INSERT INTO two_factor (account_id, service, credential, last_used_step, clock_offset, enrolled_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id) DO NOTHING",
            )
            .bind(enrolment.account_id)
            .bind(enrolment.service)
            .bind(enrolment.credential)
            .bind(enrolment.last_used_step)
            .bind(enrolment.clock_offset)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() != 1 {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO backup_codes (account_id, code_hash, issued_at) VALUES ($1, $2, $3)
                 ON CONFLICT (account_id) DO UPDATE SET code_hash = excluded.code_hash, issued_at = excluded.issued_at",
            )
            .bind(enrolment.account_id)
            .bind(enrolment.backup_code_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if !finish_login!(tx, enrolment.account_id, enrolment.attempts_factor, enrolment.session) {
                return Ok(false);
            }
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Removes the second factor, its backup code and any enrolment in progress.
    /// False when the account had no second factor.
    pub async fn remove_two_factor(&self, account_id: i64) -> Result<bool> {
        let removed = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let removed = sqlx::query("DELETE FROM two_factor WHERE account_id = $1")
                .bind(account_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            for table in ["backup_codes", "pending_enrolments"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE account_id = $1"))
                    .bind(account_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            removed
        });
        Ok(removed == 1)
    }

    pub async fn backup_code_hash(&self, account_id: i64) -> Result<Option<Vec<u8>>> {
        let hash = with_pool!(self, pool => sqlx::query_scalar("SELECT code_hash FROM backup_codes WHERE account_id = $1")
            .bind(account_id)
            .fetch_optional(pool)
            .await?);
        Ok(hash)
    }
}

impl Store {
    /// Any one stored credential, to check at start-up that the master key opens it.
    pub async fn any_sealed_credential(&self) -> Result<Option<(i64, String, Vec<u8>)>> {
        let row = with_pool!(self, pool => sqlx::query_as("SELECT account_id, service, credential FROM two_factor ORDER BY account_id LIMIT 1")
            .fetch_optional(pool)
            .await?);
        Ok(row)
    }
}
