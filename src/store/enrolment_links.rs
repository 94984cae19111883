//! Enrolment links: one-time, short-lived, bound to an account; only their token's hash is
//! kept. Using one marks it used and opens its session in one transaction.

use super::{Result, Stage, Store};

/// A link that can still be used, as its page shows it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LiveEnrolmentLink {
    pub account_id: i64,
    /// The application that asked for it.
    pub application_name: String,
}

/// The session a link opens.
pub struct LinkSession<'a> {
    pub token_hash: &'a [u8],
    pub csrf_token: &'a str,
    pub expires_at: i64,
}

impl Store {
    pub async fn create_enrolment_link(
        &self,
        token_hash: &[u8],
        application_id: i64,
        account_id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO enrolment_links (token_hash, application_id, account_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(application_id)
        .bind(account_id)
        .bind(now)
        .bind(expires_at)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// The link with this token hash, if it is unused, unexpired and its application is
    /// active.
    pub async fn live_enrolment_link(&self, token_hash: &[u8], now: i64) -> Result<Option<LiveEnrolmentLink>> {
        Ok(with_reader!(self, pool => sqlx::query_as(
            "SELECT l.account_id, a.name AS application_name
             FROM enrolment_links l JOIN applications a ON a.id = l.application_id
             WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > $2 AND a.suspended_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(pool)
        .await?))
    }

    /// Uses the link (once: compare-and-set on `used_at`) and opens a session for its
    /// account at `Stage::LinkEnrolment`, in one transaction; returns the account's id.
    /// `None` when the link is unknown, used, expired or its application suspended: then
    /// nothing is written.
    pub async fn use_enrolment_link(
        &self,
        token_hash: &[u8],
        session: &LinkSession<'_>,
        now: i64,
    ) -> Result<Option<i64>> {
        let account_id = with_pool!(self, pool => transaction!(pool, tx => {
            let account_id: Option<i64> = sqlx::query_scalar(
                "UPDATE enrolment_links SET used_at = $2
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
                   AND application_id IN (SELECT id FROM applications WHERE suspended_at IS NULL)
                 RETURNING account_id",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(account_id) = account_id else { return Ok(None) };
            sqlx::query(
                "INSERT INTO sessions (token_hash, account_id, stage, csrf_token, created_at, expires_at, verified_at)
                 VALUES ($1, $2, $3, $4, $5, $6, NULL)",
            )
            .bind(session.token_hash)
            .bind(account_id)
            .bind(Stage::LinkEnrolment.as_str())
            .bind(session.csrf_token)
            .bind(now)
            .bind(session.expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some(account_id))
        }));
        Ok(account_id)
    }
}
