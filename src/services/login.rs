//! Logging in: the password, then the second factor or a backup code, then a session.
//!
//! A session is only `Authenticated` after both factors. Until then it is half-logged-in:
//! its stage allows the next step of the login and nothing else (the web layer refuses
//! every other call, and these functions check the stage again).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Answer, Challenge, Consumed, Context, Error, Judgement, SecondFactor, Verdict};
use crate::app::App;
use crate::core::backup_codes::{self, BackupCode};
use crate::core::lockout::{Decision, Factor};
use crate::core::password::{self, SALT_BYTES};
use crate::core::policy::{AccountKind, NextStep, ServiceId, TwoFactorSettings};
use crate::random;
use crate::store::{Account, AuditEvent, Completion, Consumption, Session, SessionUpgrade, Stage, TwoFactor};

const SETTINGS_KEY: &str = "two_factor";

/// A new session and what the login must do next.
pub struct LoginOutcome {
    pub session_token: String,
    pub next: NextStep,
    /// For `NextStep::SecondFactor`: what the second-factor page asks for.
    pub challenge: Option<Challenge>,
}

/// The hash under which a session token is stored; the token itself is only in the cookie.
pub fn session_token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl App {
    pub fn service(&self, id: ServiceId) -> &dyn SecondFactor {
        match id {
            ServiceId::Totp => &self.totp,
        }
    }

    /// The Two-Factor Authentication settings, read fresh on every call so that a change
    /// applies at once.
    pub async fn two_factor_settings(&self) -> Result<TwoFactorSettings, Error> {
        match self.store.setting(SETTINGS_KEY).await? {
            None => Ok(TwoFactorSettings::default()),
            Some(json) => serde_json::from_str(&json).map_err(|e| Error::Internal(format!("stored settings: {e}"))),
        }
    }

    pub(crate) async fn store_two_factor_settings(&self, settings: &TwoFactorSettings) -> Result<(), Error> {
        let json = serde_json::to_string(settings).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(self.store.put_setting(SETTINGS_KEY, &json, self.now()).await?)
    }

    /// Writes an audit event; a failure to write is logged, never shown to the user.
    pub async fn audit(
        &self,
        account_id: Option<i64>,
        event: &str,
        outcome: &str,
        remote: Option<&str>,
        detail: Option<&str>,
    ) {
        let record = AuditEvent {
            at: self.now(),
            account_id,
            event: event.into(),
            outcome: outcome.into(),
            remote_addr: remote.map(Into::into),
            detail: detail.map(Into::into),
        };
        tracing::info!(account_id, event, outcome, remote, detail, "audit");
        if let Err(error) = self.store.record_audit(&record).await {
            tracing::error!(%error, event, "could not write the audit event");
        }
    }

    /// Verifies a password on the blocking pool, a bounded number at a time.
    pub async fn check_password(&self, candidate: &str, stored: &str) -> Result<bool, Error> {
        let _slot = self
            .password_slots
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let (candidate, stored) = (candidate.to_owned(), stored.to_owned());
        tokio::task::spawn_blocking(move || password::verify(&candidate, &stored))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Internal(e.to_string()))
    }

    pub async fn hash_password(&self, new_password: &str) -> Result<String, Error> {
        password::check_new(new_password).map_err(|e| Error::Validation(e.to_string()))?;
        let _slot = self
            .password_slots
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let salt = random::bytes::<SALT_BYTES>()?;
        let new_password = new_password.to_owned();
        tokio::task::spawn_blocking(move || password::hash(&new_password, salt))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Counts an attempt on `factor` before it is checked; refuses it when the account is
    /// locked out (see `core::lockout`).
    pub(crate) async fn count_attempt(
        &self,
        account_id: i64,
        factor: Factor,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        let policy = self.config.lockout;
        let now = self.now();
        let (window_start, attempts) = self
            .store
            .count_attempt(account_id, factor.as_str(), now, policy.window_secs)
            .await?;
        match policy.decide(window_start, attempts, now) {
            Decision::Allowed => Ok(()),
            Decision::Locked { retry_after_secs } => {
                let event = format!("{}_attempt", factor.as_str());
                self.audit(Some(account_id), &event, "locked_out", remote, None).await;
                Err(Error::LockedOut { retry_after_secs })
            }
        }
    }

    /// Step one: the password. Unknown names cost the same time as known ones.
    pub async fn login(
        &self,
        kind: AccountKind,
        username: &str,
        password: &str,
        remote: Option<&str>,
    ) -> Result<LoginOutcome, Error> {
        let Some(account) = self.store.find_account(kind, username).await? else {
            let _ = self.check_password(password, dummy_password_hash()).await;
            self.audit(None, "login_password", "unknown_account", remote, Some(kind.as_str()))
                .await;
            return Err(Error::InvalidCredentials);
        };
        self.count_attempt(account.id, Factor::Password, remote).await?;
        if !self.check_password(password, &account.password_hash).await? {
            self.audit(Some(account.id), "login_password", "failure", remote, None)
                .await;
            return Err(Error::InvalidCredentials);
        }
        self.store
            .clear_attempts(account.id, Some(Factor::Password.as_str()))
            .await?;
        self.audit(Some(account.id), "login_password", "success", remote, None)
            .await;

        let settings = self.two_factor_settings().await?;
        let enrolled = self.store.two_factor(account.id).await?;
        let (next, challenge) = match &enrolled {
            Some(enrolled) => {
                // Fail closed: a second factor this build does not know still blocks the login.
                let service = enrolled_service(&account, enrolled)?;
                let challenge = self.challenge(&account, &settings, service, enrolled)?;
                (settings.next_step(account.kind, Some(service)), Some(challenge))
            }
            None => (settings.next_step(account.kind, None), None),
        };
        let stage = match next {
            NextStep::Authenticated => Stage::Authenticated,
            NextStep::SecondFactor(_) => Stage::SecondFactor,
            NextStep::Enrolment(_) => Stage::Enrolment,
        };
        let session_token = self.create_session(account.id, stage).await?;
        Ok(LoginOutcome {
            session_token,
            next,
            challenge,
        })
    }

    /// What the second-factor page asks this account for; `None` without a second factor.
    pub async fn login_challenge(&self, account: &Account) -> Result<Option<Challenge>, Error> {
        let Some(enrolled) = self.store.two_factor(account.id).await? else {
            return Ok(None);
        };
        let settings = self.two_factor_settings().await?;
        let service = enrolled_service(account, &enrolled)?;
        Ok(Some(self.challenge(account, &settings, service, &enrolled)?))
    }

    fn challenge(
        &self,
        account: &Account,
        settings: &TwoFactorSettings,
        service: ServiceId,
        enrolled: &TwoFactor,
    ) -> Result<Challenge, Error> {
        let ctx = Context {
            account,
            settings,
            now: self.now(),
        };
        self.service(service).challenge(self, &ctx, enrolled)
    }

    async fn create_session(&self, account_id: i64, stage: Stage) -> Result<String, Error> {
        let token = random::token()?;
        let now = self.now();
        let session = Session {
            token_hash: session_token_hash(&token),
            account_id,
            stage,
            csrf_token: random::token()?,
            expires_at: now + self.stage_ttl(stage),
        };
        self.store.create_session(&session, now).await?;
        Ok(token)
    }

    pub(crate) fn stage_ttl(&self, stage: Stage) -> i64 {
        match stage {
            Stage::Authenticated => self.config.session_ttl_secs,
            Stage::SecondFactor | Stage::Enrolment => self.config.login_step_ttl_secs,
        }
    }

    /// The live session a cookie names, with its account.
    pub async fn session(&self, token: &str) -> Result<Option<(Session, Account)>, Error> {
        Ok(self.store.session(&session_token_hash(token), self.now()).await?)
    }

    /// Step two: the code (or other answer) of the account's second factor.
    pub async fn verify_second_factor(
        &self,
        session: &Session,
        account: &Account,
        answer: &Answer,
        remote: Option<&str>,
    ) -> Result<Verdict, Error> {
        require_stage(session, Stage::SecondFactor)?;
        let enrolled = self.store.two_factor(account.id).await?.ok_or(Error::Unauthenticated)?;
        let service = enrolled_service(account, &enrolled)?;
        self.count_attempt(account.id, Factor::SecondFactor, remote).await?;
        let settings = self.two_factor_settings().await?;
        let ctx = Context {
            account,
            settings: &settings,
            now: self.now(),
        };
        let event = format!("login_{}", service.as_str());
        let result = match self.service(service).verify(self, &ctx, &enrolled, answer).await {
            Ok(Judgement::Accepted(Consumed::TotpStep { step, clock_offset })) => {
                let consumption = Consumption::TotpStep { step, clock_offset };
                self.finish_second_step(session, account, consumption).await
            }
            Ok(Judgement::Pending) => return Ok(Verdict::Pending),
            Err(error) => Err(error),
        };
        match &result {
            Ok(()) => self.audit(Some(account.id), &event, "success", remote, None).await,
            Err(error) => {
                self.audit(Some(account.id), &event, "failure", remote, Some(error.code()))
                    .await
            }
        }
        result.map(|()| Verdict::Accepted)
    }

    /// Records what the accepted answer used up, resets the attempts and completes the
    /// login, in one transaction (see `store::completion`).
    async fn finish_second_step(
        &self,
        session: &Session,
        account: &Account,
        consumption: Consumption<'_>,
    ) -> Result<(), Error> {
        let upgrade = SessionUpgrade {
            token_hash: &session.token_hash,
            from: session.stage,
            expires_at: self.now() + self.stage_ttl(Stage::Authenticated),
        };
        let completion = self
            .store
            .complete_second_factor(
                account.id,
                consumption,
                Factor::SecondFactor.as_str(),
                upgrade,
                self.now(),
            )
            .await?;
        match completion {
            Completion::Completed => Ok(()),
            Completion::AlreadyUsed => Err(match consumption {
                Consumption::TotpStep { .. } => Error::CodeAlreadyUsed,
                Consumption::BackupCode { .. } => Error::InvalidBackupCode,
            }),
            Completion::SessionGone => Err(Error::Unauthenticated),
        }
    }

    /// Step two with the backup code: consumed, and the next one returned to be shown.
    pub async fn login_with_backup_code(
        &self,
        session: &Session,
        account: &Account,
        input: &str,
        remote: Option<&str>,
    ) -> Result<BackupCode, Error> {
        require_stage(session, Stage::SecondFactor)?;
        let code = BackupCode::parse(input).map_err(|e| Error::MalformedCode(e.to_string()))?;
        self.count_attempt(account.id, Factor::SecondFactor, remote).await?;
        let used = code.hash(&self.backup_code_key);
        let stored = self.store.backup_code_hash(account.id).await?;
        let matches = stored.is_some_and(|stored| bool::from(stored.as_slice().ct_eq(&used)));
        let next = BackupCode::from_random(random::bytes::<{ backup_codes::RANDOM_BYTES }>()?);
        let result = if matches {
            let next_hash = next.hash(&self.backup_code_key);
            let consumption = Consumption::BackupCode {
                used: &used,
                next: &next_hash,
            };
            self.finish_second_step(session, account, consumption).await
        } else {
            Err(Error::InvalidBackupCode)
        };
        let event = "login_backup_code";
        match &result {
            Ok(()) => {
                self.audit(
                    Some(account.id),
                    event,
                    "success",
                    remote,
                    Some("new backup code issued"),
                )
                .await
            }
            Err(error) => {
                self.audit(Some(account.id), event, "failure", remote, Some(error.code()))
                    .await
            }
        }
        result.map(|()| next)
    }

    pub async fn logout(&self, session: &Session, remote: Option<&str>) -> Result<(), Error> {
        self.store.delete_session(&session.token_hash).await?;
        self.audit(Some(session.account_id), "logout", "success", remote, None)
            .await;
        Ok(())
    }
}

/// The service of an enrolled credential; an unknown one is an error, never "no 2FA".
fn enrolled_service(account: &Account, enrolled: &TwoFactor) -> Result<ServiceId, Error> {
    ServiceId::parse(&enrolled.service).ok_or_else(|| {
        Error::Internal(format!(
            "account {} uses unknown service {}",
            account.id, enrolled.service
        ))
    })
}

pub(crate) fn require_stage(session: &Session, stage: Stage) -> Result<(), Error> {
    if session.stage == stage {
        Ok(())
    } else {
        Err(Error::Forbidden)
    }
}

/// A real argon2id hash of a random password, verified when the account does not exist so
/// that the answer takes as long as for a real account.
fn dummy_password_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Gz5Bq7Jb0iFq8JyAq4H2mQ1m7eV8w3pXyC0f6k2dL9s"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_costs_a_real_verification_and_never_matches() {
        assert_eq!(password::verify("anything", dummy_password_hash()), Ok(false));
        assert_eq!(password::verify("", dummy_password_hash()), Ok(false));
    }
}
