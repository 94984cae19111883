//! Enrolment in a second factor, and turning it off.
//!
//! Nothing is active until the user proves the credential works (a correct code); then the
//! credential and the first backup code are written in one transaction, and the backup code
//! is shown once. Disabling one's own 2FA takes the password.

use super::login::require_stage;
use super::{Answer, Context, EnrolmentSetup, Error};
use crate::app::App;
use crate::core::backup_codes::{self, BackupCode};
use crate::core::lockout::Factor;
use crate::core::policy::ServiceId;
use crate::random;
use crate::store::{Account, Enrolment, Session, SessionUpgrade, Stage};

/// How long an unconfirmed enrolment stays valid.
const PENDING_ENROLMENT_TTL_SECS: i64 = 3600;

fn require_enrolment_allowed(session: &Session) -> Result<(), Error> {
    match session.stage {
        Stage::Authenticated | Stage::Enrolment => Ok(()),
        Stage::SecondFactor => Err(Error::SecondFactorRequired),
    }
}

impl App {
    /// The services this account may enrol in.
    pub async fn services_for(&self, account: &Account) -> Result<Vec<ServiceId>, Error> {
        Ok(self.two_factor_settings().await?.enabled_for(account.kind))
    }

    /// "Get Started": creates a credential, kept pending until confirmed.
    pub async fn begin_enrolment(
        &self,
        session: &Session,
        account: &Account,
        service: ServiceId,
        remote: Option<&str>,
    ) -> Result<EnrolmentSetup, Error> {
        require_enrolment_allowed(session)?;
        if self.store.two_factor(account.id).await?.is_some() {
            return Err(Error::Conflict(
                "Two-factor authentication is already enabled. Disable it before choosing another service.".into(),
            ));
        }
        let settings = self.two_factor_settings().await?;
        if !settings.enabled_for(account.kind).contains(&service) {
            return Err(Error::Validation(format!(
                "{} is not enabled for your account.",
                service.display_name()
            )));
        }
        let ctx = Context {
            account,
            settings: &settings,
            now: self.now(),
        };
        let enrolment = self.service(service).begin_enrolment(self, &ctx).await?;
        self.store
            .save_pending_enrolment(account.id, service.as_str(), &enrolment.sealed_credential, ctx.now)
            .await?;
        self.audit(
            Some(account.id),
            "enrolment_started",
            "success",
            remote,
            Some(service.as_str()),
        )
        .await;
        Ok(enrolment.setup)
    }

    /// The enrolment in progress, shown again; `None` when there is none (or it expired).
    pub async fn pending_enrolment_setup(
        &self,
        account: &Account,
    ) -> Result<Option<(ServiceId, EnrolmentSetup)>, Error> {
        let now = self.now();
        let Some(pending) = self.store.pending_enrolment(account.id).await? else {
            return Ok(None);
        };
        let Some(service) = ServiceId::parse(&pending.service) else {
            return Ok(None);
        };
        if pending.started_at + PENDING_ENROLMENT_TTL_SECS <= now {
            return Ok(None);
        }
        let settings = self.two_factor_settings().await?;
        let ctx = Context {
            account,
            settings: &settings,
            now,
        };
        Ok(Some((
            service,
            self.service(service).enrolment_setup(self, &ctx, &pending.credential)?,
        )))
    }

    /// "Submit": checks the code and activates the credential; returns the backup code.
    pub async fn confirm_enrolment(
        &self,
        session: &Session,
        account: &Account,
        service: ServiceId,
        answer: &Answer,
        remote: Option<&str>,
    ) -> Result<BackupCode, Error> {
        require_enrolment_allowed(session)?;
        let now = self.now();
        let pending = self
            .store
            .pending_enrolment(account.id)
            .await?
            .filter(|p| p.service == service.as_str() && p.started_at + PENDING_ENROLMENT_TTL_SECS > now)
            .ok_or_else(|| {
                Error::Conflict("No enrolment is in progress, or it expired: click Get Started again.".into())
            })?;
        self.count_attempt(account.id, Factor::SecondFactor, remote).await?;
        let settings = self.two_factor_settings().await?;
        let ctx = Context {
            account,
            settings: &settings,
            now,
        };
        let replay = match self
            .service(service)
            .confirm_enrolment(self, &ctx, &pending.credential, answer)
            .await
        {
            Ok(replay) => replay,
            Err(error) => {
                self.audit(
                    Some(account.id),
                    "enrolment_confirm",
                    "failure",
                    remote,
                    Some(error.code()),
                )
                .await;
                return Err(error);
            }
        };
        let backup_code = BackupCode::from_random(random::bytes::<{ backup_codes::RANDOM_BYTES }>()?);
        // A forced user's login completes in the same transaction: the backup code is only
        // shown if everything was written.
        let session_upgrade = (session.stage == Stage::Enrolment).then(|| SessionUpgrade {
            token_hash: &session.token_hash,
            from: Stage::Enrolment,
            expires_at: now + self.stage_ttl(Stage::Authenticated),
        });
        let enrolment = Enrolment {
            account_id: account.id,
            service: service.as_str(),
            credential: &pending.credential,
            last_used_step: replay.last_used_step,
            clock_offset: replay.clock_offset,
            backup_code_hash: &backup_code.hash(&self.backup_code_key),
            attempts_factor: Factor::SecondFactor.as_str(),
            session: session_upgrade,
        };
        if !self.store.confirm_enrolment(&enrolment, now).await? {
            return Err(Error::Conflict(
                "This enrolment was already completed or restarted.".into(),
            ));
        }
        self.audit(
            Some(account.id),
            "two_factor_enabled",
            "success",
            remote,
            Some(service.as_str()),
        )
        .await;
        Ok(backup_code)
    }

    /// Turns off the account's own 2FA; the password is required.
    pub async fn disable_own_two_factor(
        &self,
        session: &Session,
        account: &Account,
        password: &str,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        require_stage(session, Stage::Authenticated)?;
        self.confirm_password(account, password, remote).await?;
        if !self.store.remove_two_factor(account.id).await? {
            return Err(Error::Conflict("Two-factor authentication is not enabled.".into()));
        }
        self.audit(
            Some(account.id),
            "two_factor_disabled",
            "success",
            remote,
            Some("by its owner"),
        )
        .await;
        Ok(())
    }

    pub async fn change_password(
        &self,
        session: &Session,
        account: &Account,
        current: &str,
        new: &str,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        require_stage(session, Stage::Authenticated)?;
        self.confirm_password(account, current, remote).await?;
        let hash = self.hash_password(new).await?;
        self.store.set_password_hash(account.id, &hash).await?;
        self.store
            .delete_other_sessions(account.id, &session.token_hash)
            .await?;
        self.audit(Some(account.id), "password_changed", "success", remote, None)
            .await;
        Ok(())
    }

    /// Re-checks the password of a logged-in user, under the same lockout as the login.
    async fn confirm_password(&self, account: &Account, password: &str, remote: Option<&str>) -> Result<(), Error> {
        self.count_attempt(account.id, Factor::Password, remote).await?;
        if !self.check_password(password, &account.password_hash).await? {
            self.audit(Some(account.id), "password_check", "failure", remote, None)
                .await;
            return Err(Error::WrongPassword);
        }
        self.store
            .clear_attempts(account.id, Some(Factor::Password.as_str()))
            .await?;
        Ok(())
    }
}
