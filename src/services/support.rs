//! What the operations share: the time, the settings, the audit log, passwords, attempt
//! counting, and the context a factor is called with.

use secrecy::SecretString;

use super::factors::{FactorCx, ImportedSecret, Sealer, SecondFactor, SettingSecrets};
use super::login::dummy_password_hash;
use super::{Error, Services};
use crate::core::lockout::{self, Guess, FORGET_AFTER_SECS};
use crate::core::password::{self, SALT_BYTES};
use crate::core::policy::{AccountKind, ServiceId, TwoFactorSettings};
use crate::random;
use crate::store::{login_key, Account, AttemptKey, AuditEvent, Purge, SecretWrite};

/// The name the settings document is stored under.
pub(crate) const SETTINGS_KEY: &str = "two_factor";

/// One attempt at a factor: whose it is, what it answers, and where it comes from.
pub(crate) struct Attempt<'a> {
    /// The `core::lockout` subject: an account, or a name no account has.
    pub subject: String,
    pub account_id: Option<i64>,
    pub guess: Guess,
    pub remote: Option<&'a str>,
}

impl<'a> Attempt<'a> {
    pub fn on_account(account_id: i64, guess: Guess, remote: Option<&'a str>) -> Self {
        Attempt {
            subject: lockout::account_subject(account_id),
            account_id: Some(account_id),
            guess,
            remote,
        }
    }

    /// An attempt on a name no account has: counted and locked out as a real name would be
    /// (under a keyed hash of the name), so that neither tells.
    pub fn on_unknown_name(
        name_key: &[u8; 32],
        kind: AccountKind,
        name: &str,
        guess: Guess,
        remote: Option<&'a str>,
    ) -> Self {
        Attempt {
            subject: lockout::unknown_name_subject(name_key, kind.as_str(), &login_key(name)),
            account_id: None,
            guess,
            remote,
        }
    }

    /// Its counters, named by its address's (the address as the audit log records it);
    /// the store counts and clears all addresses' counter with it.
    pub fn counters(&self) -> AttemptKey<'_> {
        AttemptKey {
            subject: &self.subject,
            factor: self.guess.factor().as_str(),
            source: self.remote.unwrap_or("unknown"),
        }
    }
}

impl Services {
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The account a typed name (username or e-mail address) names. A name with a control
    /// character names none, without asking the database (PostgreSQL cannot even compare
    /// one with a NUL).
    pub(crate) async fn account_named(&self, kind: AccountKind, name: &str) -> Result<Option<Account>, Error> {
        match name.chars().any(char::is_control) {
            true => Ok(None),
            false => Ok(self.store.find_account(kind, name).await?),
        }
    }

    pub fn factor(&self, id: ServiceId) -> &dyn SecondFactor {
        self.factors.get(id)
    }

    /// What `service` may see to act for `account`: with its write-only settings opened, if
    /// it has any that are set.
    pub(crate) async fn factor_cx<'a>(
        &'a self,
        account: &'a Account,
        settings: &'a TwoFactorSettings,
        service: ServiceId,
    ) -> Result<FactorCx<'a>, Error> {
        Ok(FactorCx {
            account,
            settings,
            now: self.now(),
            sealer: Sealer::new(&self.master_key, service, account.id),
            issuer: &self.config.issuer,
            public_url: self.config.public_url.as_deref(),
            outbound: &self.outbound,
            secrets: self.setting_secrets(settings, service).await?,
            imported: None,
            service_clock: match service {
                ServiceId::Duo => *self.duo_clock.lock().unwrap_or_else(|e| e.into_inner()),
                _ => None,
            },
        })
    }

    /// The key an administrator imported under `external_id`, opened.
    pub(crate) async fn imported_secret(
        &self,
        service: ServiceId,
        external_id: &str,
    ) -> Result<Option<ImportedSecret>, Error> {
        let Some(imported) = self.store.imported_key(service.as_str(), external_id).await? else {
            return Ok(None);
        };
        let secret = Sealer::for_imported_key(&self.master_key, service, external_id).open(&imported.sealed)?;
        Ok(Some(ImportedSecret {
            secret: secret.into(),
            account_id: imported.account_id,
        }))
    }

    /// The write-only settings of `service` that are set, read and opened.
    pub(crate) async fn setting_secrets(
        &self,
        settings: &TwoFactorSettings,
        service: ServiceId,
    ) -> Result<SettingSecrets, Error> {
        let mut services = settings.services.clone();
        let mut opened = Vec::new();
        for secret in services.secrets_mut() {
            if secret.service != service || !secret.value.is_set() {
                continue;
            }
            let Some(sealed) = self.store.setting_secret(service.as_str(), secret.name).await? else {
                continue;
            };
            let plain = Sealer::for_setting(&self.master_key, service, secret.name).open(&sealed)?;
            let text = String::from_utf8(plain)
                .map_err(|_| Error::Internal(format!("{}.{}: not text", service.as_str(), secret.name)))?;
            opened.push((secret.name, SecretString::from(text)));
        }
        Ok(SettingSecrets::new(opened))
    }

    /// The Two-Factor Authentication settings, read fresh on every call so that a change
    /// applies at once.
    pub async fn two_factor_settings(&self) -> Result<TwoFactorSettings, Error> {
        settings_of(self.store.setting(SETTINGS_KEY).await?)
    }

    /// Saves the settings document, with the changes to the write-only settings' sealed
    /// values, in one transaction.
    pub(crate) async fn store_two_factor_settings(
        &self,
        settings: &TwoFactorSettings,
        secrets: &[SecretWrite<'_>],
    ) -> Result<(), Error> {
        let json = serde_json::to_string(settings).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(self
            .store
            .put_setting_with_secrets(SETTINGS_KEY, &json, secrets, self.now())
            .await?)
    }

    /// Deletes what has expired: sessions (with their challenges), challenges left by live
    /// sessions, used single-use tokens, attempt counters quiet for a day, and audit events
    /// beyond `audit_retention_days`, each in batches that find their rows by index, so that logins never wait behind one
    /// long delete. Runs every few minutes on every node (each delete is safe to run
    /// twice). Returns how many rows of each `Purge::ALL` it deleted.
    pub async fn purge_expired(&self) -> Result<[u64; Purge::ALL.len()], Error> {
        const BATCH: i64 = 5_000;
        let now = self.now();
        let lockout = &self.config.lockout;
        let mut deleted = [0; Purge::ALL.len()];
        for (what, count) in Purge::ALL.into_iter().zip(&mut deleted) {
            let cutoff = match what {
                Purge::Sessions
                | Purge::Challenges
                | Purge::UsedTokens
                | Purge::EnrolmentLinks
                | Purge::Transactions => now,
                // A counter's window is at most max_window_secs long.
                Purge::Lockouts => now - FORGET_AFTER_SECS - lockout.max_window_secs,
                Purge::AuditEvents if self.config.audit_retention_days == 0 => continue,
                Purge::AuditEvents => now - i64::from(self.config.audit_retention_days) * 86_400,
            };
            loop {
                let batch = self.store.purge_batch(what, cutoff, BATCH).await?;
                *count += batch;
                if batch < BATCH as u64 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        Ok(deleted)
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
        self.write_audit(self.audit_record(account_id, event, outcome, remote, detail))
            .await;
    }

    async fn write_audit(&self, record: AuditEvent) {
        if let Err(error) = self.store.record_audit(&record).await {
            tracing::error!(%error, event = record.event, "could not write the audit event");
        }
    }

    /// The audit event of an attempt the lockout refused without checking it.
    pub(crate) fn refusal_record(&self, attempt: &Attempt<'_>, error: &Error) -> AuditEvent {
        let event = format!("{}_attempt", attempt.guess.factor().as_str());
        self.audit_record(
            attempt.account_id,
            &event,
            "locked_out",
            attempt.remote,
            Some(error.code()),
        )
    }

    /// An audit event as of now, logged as it is made (for a caller that writes it in its
    /// own transaction).
    pub(crate) fn audit_record(
        &self,
        account_id: Option<i64>,
        event: &str,
        outcome: &str,
        remote: Option<&str>,
        detail: Option<&str>,
    ) -> AuditEvent {
        tracing::info!(account_id, event, outcome, remote, detail, "audit");
        AuditEvent {
            at: self.now(),
            account_id,
            event: event.into(),
            outcome: outcome.into(),
            remote_addr: remote.map(Into::into),
            detail: detail.map(Into::into),
        }
    }

    /// Verifies a password on the password threads, a bounded number at a time.
    pub async fn check_password(&self, candidate: &str, stored: &str) -> Result<bool, Error> {
        if stored == password::NO_PASSWORD {
            // The time of a wrong password, and never a match.
            self.verify_password(candidate, dummy_password_hash()).await?;
            return Ok(false);
        }
        self.verify_password(candidate, stored).await
    }

    async fn verify_password(&self, candidate: &str, stored: &str) -> Result<bool, Error> {
        let _slot = self
            .password_slots
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let (candidate, stored) = (candidate.to_owned(), stored.to_owned());
        self.password_checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // At most one scratch per slot exists: the memory stays bounded, and is reused.
        let mut scratch = self.password_scratch().pop().unwrap_or_default();
        let (verified, scratch) = self
            .password_threads
            .run(move || {
                let verified = password::verify(&candidate, &stored, &mut scratch);
                (verified, scratch)
            })
            .await?;
        self.password_scratch().push(scratch);
        verified.map_err(|e| Error::Internal(e.to_string()))
    }

    /// The argon2id working memories not in use (see `password::Scratch`).
    fn password_scratch(&self) -> std::sync::MutexGuard<'_, Vec<password::Scratch>> {
        // A panic while holding the lock leaves the list usable.
        self.password_scratch_pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        self.password_threads
            .run(move || password::hash(&new_password, salt))
            .await?
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Counts an attempt before it is checked, from its address and from all; refuses it
    /// while either counter is over its limit, and a second factor under the hard lock (see
    /// `core::lockout`). Each refusal is audited with the address.
    pub(crate) async fn count_attempt(&self, attempt: &Attempt<'_>) -> Result<(), Error> {
        let refusal = self
            .store
            .count_attempts(
                attempt.counters(),
                &self.config.lockout,
                attempt.guess.hard_lock_applies(),
                self.now(),
            )
            .await?;
        let Some(refusal) = refusal else { return Ok(()) };
        let error = Error::from(refusal);
        self.write_audit(self.refusal_record(attempt, &error)).await;
        Err(error)
    }

    /// An outside service could not judge an answer: the attempt, if it was `counted`
    /// before it was sent, is taken back (an outage or a misconfiguration locks nobody out)
    /// and the trouble is audited with what went wrong.
    pub(crate) async fn outside_trouble(
        &self,
        attempt: &Attempt<'_>,
        event: &str,
        error: &Error,
        counted: bool,
    ) -> Result<(), Error> {
        if counted {
            self.store.refund_attempt(attempt.counters()).await?;
        }
        self.recheck_clock(error).await;
        let detail = error.audit_detail();
        self.audit(attempt.account_id, event, "failure", attempt.remote, Some(&detail))
            .await;
        Ok(())
    }

    /// After Duo refused this server's configuration (perhaps its clock: 40105), compares
    /// the clocks again so that the admin area's banner shows it at once.
    pub(crate) async fn recheck_clock(&self, error: &Error) {
        if matches!(error, Error::ServiceMisconfigured { service, .. } if *service == ServiceId::Duo.display_name()) {
            if let Err(trouble) = self.check_duo_clock().await {
                tracing::warn!(%trouble, "could not compare the clock with Duo's");
            }
        }
    }

    /// After a success: its address's and the account's counters start again.
    pub(crate) async fn clear_attempts(&self, attempt: &Attempt<'_>) -> Result<(), Error> {
        Ok(self.store.clear_attempts(attempt.counters()).await?)
    }

    /// Re-checks the password of a logged-in user, under the same lockout as the login.
    pub(crate) async fn confirm_password(
        &self,
        account: &Account,
        password: &str,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        let attempt = Attempt::on_account(account.id, Guess::Password, remote);
        self.count_attempt(&attempt).await?;
        if !self.check_password(password, &account.password_hash).await? {
            self.audit(Some(account.id), "password_check", "failure", remote, None)
                .await;
            return Err(Error::WrongPassword);
        }
        self.clear_attempts(&attempt).await
    }
}

/// The settings document stored as `json` (the defaults if it was never saved).
pub(crate) fn settings_of(json: Option<String>) -> Result<TwoFactorSettings, Error> {
    match json {
        None => Ok(TwoFactorSettings::default()),
        Some(json) => serde_json::from_str(&json).map_err(|e| Error::Internal(format!("stored settings: {e}"))),
    }
}
