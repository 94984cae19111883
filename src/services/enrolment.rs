//! Enrolment in a second factor, and turning 2FA off.
//!
//! Nothing is active until the user proves the credential works (a correct code). What is
//! being enrolled is kept for the session that started it (sealed, with an expiry), never
//! for the account, so no other session can read or replace it. The proved credential is
//! written in one transaction with, for a first credential, the backup code, which is shown
//! once. Adding a credential to an account that already has one takes the password.

use super::factors::{Answer, Challenge, EnrolmentSetup, Progress};
use super::login::require_stage;
use super::support::Attempt;
use super::{Error, Services};
use crate::core::backup_codes::{self, BackupCode};
use crate::core::lockout::Guess;
use crate::core::policy::ServiceId;
use crate::random;
use crate::store::{Account, Added, Enrolment, Purpose, Session, SessionUpgrade, Stage, StoredChallenge};

/// How long an unconfirmed enrolment stays valid.
const PENDING_ENROLMENT_TTL_SECS: i64 = 3600;

/// The most credentials one account may hold.
pub const MAX_CREDENTIALS: usize = 10;

/// What a confirmed enrolment gives.
pub enum Enrolled {
    /// The credential is active. `backup_code`: the account's first, shown this once
    /// (adding a credential to an account that has one issues none).
    /// `session_token`: a forced user's enrolment also completed the login, under this new
    /// session token (the old one no longer works).
    Done {
        credential_id: i64,
        backup_code: Option<BackupCode>,
        session_token: Option<String>,
    },
    /// Not proved yet (an approval still waiting): ask again later.
    Pending,
    /// Not proved yet: the answer started something (an activation done, a push sent);
    /// answer this next.
    Next(Challenge),
}

fn require_enrolment_allowed(session: &Session) -> Result<(), Error> {
    match session.stage {
        Stage::Authenticated | Stage::Enrolment | Stage::LinkEnrolment => Ok(()),
        Stage::SecondFactor => Err(Error::SecondFactorRequired),
    }
}

/// A credential's label: what the user typed, trimmed, 1 to 64 characters, no control
/// characters; the service's name when left empty.
pub(crate) fn label_or_default(label: Option<&str>, service: ServiceId) -> Result<String, Error> {
    let label = label.map(str::trim).unwrap_or_default();
    if label.is_empty() {
        return Ok(service.display_name().to_string());
    }
    if label.chars().count() > 64 || label.chars().any(char::is_control) {
        return Err(Error::Validation(
            "A name is at most 64 characters, without control characters.".into(),
        ));
    }
    Ok(label.to_string())
}

impl Services {
    /// The services this account may enrol in.
    pub async fn services_for(&self, account: &Account) -> Result<Vec<ServiceId>, Error> {
        Ok(self.two_factor_settings().await?.enabled_for(account.kind))
    }

    /// "Get Started" (or "Add"): starts an enrolment for this session, kept until confirmed.
    /// With 2FA already on, `password` must be the account's.
    pub async fn begin_enrolment(
        &self,
        session: &Session,
        account: &Account,
        service: ServiceId,
        label: Option<&str>,
        password: Option<&str>,
        remote: Option<&str>,
    ) -> Result<EnrolmentSetup, Error> {
        require_enrolment_allowed(session)?;
        let label = label_or_default(label, service)?;
        let settings = self.two_factor_settings().await?;
        if !settings.enabled_for(account.kind).contains(&service) {
            return Err(Error::Validation(format!(
                "{} is not enabled for your account.",
                service.display_name()
            )));
        }
        let existing = self.store.credentials(account.id).await?.len();
        if existing > 0 {
            // ASVS 5.0 §7.5.1: adding an authentication factor takes the password again.
            let password = password
                .filter(|p| !p.is_empty())
                .ok_or_else(|| Error::Validation("Enter your password to add another second factor.".into()))?;
            self.confirm_password(account, password, remote).await?;
        }
        if existing >= MAX_CREDENTIALS {
            return Err(too_many());
        }
        let cx = self.factor_cx(account, &settings, service).await?;
        let step = self.factor(service).begin_enrolment(&cx).await?;
        let sealed = step
            .state
            .ok_or_else(|| Error::Internal(format!("{} kept no enrolment state", service.as_str())))?;
        let kept = StoredChallenge {
            service: service.as_str().into(),
            label: Some(label),
            sealed,
        };
        self.store
            .put_challenge(
                &session.token_hash,
                Purpose::Enrolment,
                &kept,
                cx.now + PENDING_ENROLMENT_TTL_SECS,
            )
            .await?;
        self.audit(
            Some(account.id),
            "enrolment_started",
            "success",
            remote,
            Some(service.as_str()),
        )
        .await;
        Ok(step.show)
    }

    /// The enrolment this session has in progress, shown again; `None` when there is none
    /// (or it expired).
    pub async fn pending_enrolment_setup(
        &self,
        session: &Session,
        account: &Account,
    ) -> Result<Option<(ServiceId, EnrolmentSetup)>, Error> {
        let Some(kept) = self
            .store
            .challenge(&session.token_hash, Purpose::Enrolment, self.now())
            .await?
        else {
            return Ok(None);
        };
        let Some(service) = ServiceId::parse(&kept.service) else {
            return Ok(None);
        };
        let settings = self.two_factor_settings().await?;
        let cx = self.factor_cx(account, &settings, service).await?;
        Ok(Some((
            service,
            self.factor(service).enrolment_setup(&cx, &kept.sealed)?,
        )))
    }

    /// "Submit": checks the answer and activates the credential.
    pub async fn confirm_enrolment(
        &self,
        session: &Session,
        account: &Account,
        service: ServiceId,
        answer: &Answer,
        remote: Option<&str>,
    ) -> Result<Enrolled, Error> {
        require_enrolment_allowed(session)?;
        let now = self.now();
        let kept = self
            .store
            .challenge(&session.token_hash, Purpose::Enrolment, now)
            .await?
            .filter(|kept| kept.service == service.as_str())
            .ok_or_else(|| {
                Error::Conflict("No enrolment is in progress, or it expired: click Get Started again.".into())
            })?;
        let attempt = Attempt::on_account(account.id, Guess::SecondFactor, remote);
        // A poll is no new answer: what it waits on was counted when it started.
        let counted = *answer != Answer::Poll;
        if counted {
            self.count_attempt(&attempt).await?;
        }
        let settings = self.two_factor_settings().await?;
        let mut cx = self.factor_cx(account, &settings, service).await?;
        let factor = self.factor(service);
        if let Some(external_id) = factor.external_id_of(answer) {
            cx.imported = self.imported_secret(service, &external_id).await?;
        }
        let keep = |sealed: Vec<u8>| StoredChallenge {
            service: service.as_str().into(),
            label: kept.label.clone(),
            sealed,
        };
        let expires_at = now + PENDING_ENROLMENT_TTL_SECS;
        let new = match factor.finish_enrolment(&cx, &kept.sealed, answer).await {
            Ok(Progress::Done(new)) => Ok(new),
            Ok(Progress::Pending) => return Ok(Enrolled::Pending),
            Ok(Progress::Next { show, keep: next }) => {
                self.store
                    .put_challenge(&session.token_hash, Purpose::Enrolment, &keep(next), expires_at)
                    .await?;
                return Ok(Enrolled::Next(show));
            }
            Err(error @ (Error::ServiceUnreachable { .. } | Error::ServiceMisconfigured { .. })) => {
                self.outside_trouble(&attempt, "enrolment_confirm", &error, counted)
                    .await?;
                return Err(error);
            }
            Ok(Progress::Refused { error, keep: next }) => {
                self.store
                    .put_challenge(&session.token_hash, Purpose::Enrolment, &keep(next), expires_at)
                    .await?;
                Err(error)
            }
            Err(error) => Err(error),
        };
        let new = match new {
            Ok(new) => new,
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
        let renewed = match session.stage {
            Stage::Enrolment => Some(self.new_session_token()?),
            _ => None,
        };
        let session_upgrade = renewed.as_ref().map(|(_, new_token_hash)| SessionUpgrade {
            token_hash: &session.token_hash,
            new_token_hash,
            from: Stage::Enrolment,
            expires_at: now + self.stage_ttl(Stage::Authenticated),
            verified_at: now,
        });
        let label = kept.label.unwrap_or_else(|| service.display_name().to_string());
        let enrolment = Enrolment {
            account_id: account.id,
            session_hash: &session.token_hash,
            challenge: &kept.sealed,
            service: service.as_str(),
            label: &label,
            secret: &new.secret,
            counter: new.counter,
            state: new.state.as_deref(),
            external_id: new.external_id.as_deref(),
            backup_code_hash: &backup_code.hash(&self.backup_code_key),
            max_credentials: MAX_CREDENTIALS as i64,
            attempts: attempt.counters(),
            session: session_upgrade,
        };
        match self.store.add_credential(&enrolment, now).await? {
            Added::Added { id, first } => {
                let event = if first {
                    "two_factor_enabled"
                } else {
                    "credential_added"
                };
                let detail = credential_detail(service, id, &label);
                self.audit(Some(account.id), event, "success", remote, Some(&detail))
                    .await;
                if session.stage == Stage::LinkEnrolment {
                    // An enrolment link opens a session for this one enrolment.
                    self.store.delete_session(&session.token_hash).await?;
                }
                Ok(Enrolled::Done {
                    credential_id: id,
                    backup_code: first.then_some(backup_code),
                    session_token: renewed.map(|(token, _)| token),
                })
            }
            Added::Gone => Err(Error::Conflict(
                "This enrolment was already completed or restarted.".into(),
            )),
            Added::Full => Err(too_many()),
            Added::Taken => Err(Error::Conflict(format!(
                "This {} is already enrolled on an account: it can be enrolled on one only.",
                service.display_name()
            ))),
        }
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
        if !self.store.remove_two_factor(account.id, &session.token_hash).await? {
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
}

fn too_many() -> Error {
    Error::Conflict(format!(
        "You already have {MAX_CREDENTIALS} second factors: remove one before adding another."
    ))
}

/// How the audit log names a credential: its service, id and label.
pub(crate) fn credential_detail(service: ServiceId, id: i64, label: &str) -> String {
    format!("{} credential {id} \"{label}\"", service.as_str())
}
