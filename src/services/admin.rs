//! What administrators do: the Two-Factor Authentication settings (full administrators),
//! the account lists, disabling a user's 2FA and lifting a lockout; creating accounts and
//! the first administrator.

use subtle::ConstantTimeEq;

use super::Services;
use super::{ClockReading, Error};
use crate::core::duo_api::{diagnosis, DuoFailure};
use crate::outbound::duo::{Integration, WebSdk};
use secrecy::ExposeSecret;
use secrecy::SecretString;

use super::factors::yubikey::LocalKey;
use super::factors::Sealer;
use crate::core::lockout;
use crate::core::policy::{AccountKind, DuoMode, Role, SecretSetting, ServiceId, TwoFactorSettings, WriteOnly};
use crate::core::secretbox::MasterKey;
use crate::core::yubikey_import::parse_key_file;
use crate::store::{Account, AccountSummary, ImportedKeySummary, NewAccount, NewImportedKey, SecretWrite, Session};

/// A new account, as the API and the command line describe it.
pub struct AccountRequest<'a> {
    pub kind: AccountKind,
    pub role: Option<Role>,
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub password: &'a str,
}

pub fn require_full_admin(actor: &Account) -> Result<(), Error> {
    if actor.kind == AccountKind::Admin && actor.role == Some(Role::Full) {
        Ok(())
    } else {
        Err(Error::Forbidden)
    }
}

/// Who manages what only full administrators manage (applications, imported keys): a
/// full administrator (checked), or the command line (an operator with shell access).
#[derive(Clone, Copy)]
pub enum Operator<'a> {
    Administrator(&'a Account),
    CommandLine,
}

impl Operator<'_> {
    /// Whether it may; what the audit says of it.
    pub fn authorize(self) -> Result<String, Error> {
        match self {
            Operator::Administrator(actor) => {
                require_full_admin(actor)?;
                Ok(format!("by administrator {}", actor.id))
            }
            Operator::CommandLine => Ok("from the command line".into()),
        }
    }
}

/// How recent a login must be for what lowers security ("sudo mode"): every factor of the
/// account proven within this many seconds.
pub const RECENT_PROOF_SECS: i64 = 600;

pub fn require_admin(actor: &Account) -> Result<(), Error> {
    if actor.kind == AccountKind::Admin {
        Ok(())
    } else {
        Err(Error::Forbidden)
    }
}

/// Usernames: 1 to 64 of letters, digits and `. _ @ + -` (no `:`, which the otpauth label
/// reserves, and nothing that could be confused when shown).
pub(crate) fn validate_username(username: &str) -> Result<(), Error> {
    let ok = (1..=64).contains(&username.chars().count())
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Validation(
            "A username is 1 to 64 letters, digits or . _ @ + -".into(),
        ))
    }
}

pub(crate) fn validate_email(email: &str) -> Result<(), Error> {
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control() || c == ':');
    if ok {
        Ok(())
    } else {
        Err(Error::Validation("Enter a valid e-mail address.".into()))
    }
}

impl Services {
    pub async fn create_account(&self, request: &AccountRequest<'_>) -> Result<i64, Error> {
        let new = self.validated_account(request).await?;
        let id = self
            .store
            .create_account(new.as_new(), self.now())
            .await
            .map_err(|error| match error {
                crate::store::StoreError::Conflict => {
                    Error::Conflict("That username or e-mail address is already in use.".into())
                }
                other => other.into(),
            })?;
        self.audit(
            Some(id),
            "account_created",
            "success",
            None,
            Some(request.kind.as_str()),
        )
        .await;
        Ok(id)
    }

    /// The setup page: creates the first full administrator with the one-time token from
    /// `<data_dir>/setup-token`, then deletes the token.
    pub async fn setup_first_admin(
        &self,
        token: &str,
        username: &str,
        password: &str,
        remote: Option<&str>,
    ) -> Result<i64, Error> {
        let path = self.config.setup_token_path();
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        let expected = expected.trim();
        if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(token.trim().as_bytes())) {
            self.audit(None, "setup", "failure", remote, Some("wrong setup token"))
                .await;
            return Err(Error::Forbidden);
        }
        let request = AccountRequest {
            kind: AccountKind::Admin,
            role: Some(Role::Full),
            username,
            email: None,
            password,
        };
        let new = self.validated_account(&request).await?;
        let id = self
            .store
            .create_first_admin(new.as_new(), self.now())
            .await?
            .ok_or_else(|| Error::Conflict("An administrator already exists.".into()))?;
        if let Err(error) = std::fs::remove_file(&path) {
            tracing::warn!(%error, path = %path.display(), "could not delete the used setup token");
        }
        self.audit(
            Some(id),
            "setup",
            "success",
            remote,
            Some("first full administrator created"),
        )
        .await;
        Ok(id)
    }

    async fn validated_account<'a>(&self, request: &AccountRequest<'a>) -> Result<ValidatedAccount<'a>, Error> {
        validate_username(request.username)?;
        if let Some(email) = request.email {
            validate_email(email)?;
        }
        let role = match (request.kind, request.role) {
            (AccountKind::Admin, role) => Some(role.unwrap_or(Role::Staff)),
            (AccountKind::Client, None) => None,
            (AccountKind::Client, Some(_)) => return Err(Error::Validation("Clients have no role.".into())),
        };
        Ok(ValidatedAccount {
            kind: request.kind,
            role,
            username: request.username,
            email: request.email,
            password_hash: self.hash_password(request.password).await?,
        })
    }

    /// Saves the settings. Write-only settings sent with a new value are sealed and stored
    /// apart, in the same transaction; the audit names what changed, never a value.
    pub async fn save_two_factor_settings(
        &self,
        actor: &Account,
        settings: &TwoFactorSettings,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        require_full_admin(actor)?;
        settings.validate().map_err(Error::Validation)?;
        let duo = &settings.services.duo;
        if duo.active && duo.settings.mode == DuoMode::UniversalPrompt && self.config.public_url.is_none() {
            return Err(Error::Validation(
                "duo: the Universal Prompt sends the browser back to this server's public_url: set public_url in the server's configuration first".into(),
            ));
        }
        let before = self.two_factor_settings().await?;
        self.check_duo(&before, settings).await?;
        let already_set = self.store.setting_secrets_set().await?;
        let mut settings = settings.clone();
        let (writes, replaced) = seal_secret_settings(settings.services.secrets_mut(), &already_set, &self.master_key)?;
        self.store_two_factor_settings(&settings, &writes).await?;
        let mut changed = changed_fields(&before, &settings);
        changed.extend(replaced);
        changed.sort();
        changed.dedup();
        let detail = if changed.is_empty() {
            "nothing changed".to_string()
        } else {
            format!("changed: {}", changed.join(", "))
        };
        self.audit(Some(actor.id), "settings_changed", "success", remote, Some(&detail))
            .await;
        Ok(())
    }

    /// Checks a new or changed Duo integration with Duo itself (`/auth/v2/check`, or the
    /// Universal Prompt's health check) before it is saved: a refusal says which part Duo
    /// rejected, and nothing is saved. Each check also compares this server's clock with
    /// Duo's (a refused time asks `/auth/v2/ping`, which needs no signature).
    async fn check_duo(&self, before: &TwoFactorSettings, after: &TwoFactorSettings) -> Result<(), Error> {
        let (old, new) = (&before.services.duo.settings, &after.services.duo.settings);
        let changed = matches!(new.secret_key, WriteOnly::New(_))
            || (new.mode, &new.integration_key, &new.api_hostname)
                != (old.mode, &old.integration_key, &old.api_hostname);
        if !changed || !new.is_complete() {
            return Ok(());
        }
        let stored = self.setting_secrets(before, ServiceId::Duo).await?;
        let secret = match &new.secret_key {
            WriteOnly::New(secret) => secret.clone(),
            WriteOnly::Kept { .. } => stored.get("secret_key").map(SecretString::from).ok_or_else(|| {
                Error::Validation("services.duo.settings.secret_key has no value yet: send the value itself".into())
            })?,
        };
        let now = self.now();
        let duo = &self.outbound.duo;
        let checked = match new.mode {
            DuoMode::AuthApi => {
                let integration = Integration {
                    api_hostname: &new.api_hostname,
                    integration_key: &new.integration_key,
                    secret_key: &secret,
                };
                duo.check(&integration, now).await
            }
            DuoMode::UniversalPrompt => {
                let app = WebSdk {
                    api_hostname: &new.api_hostname,
                    client_id: &new.integration_key,
                    client_secret: &secret,
                };
                duo.health_check(&app, now).await
            }
        };
        let failure = match checked {
            Ok(duo_time) => {
                self.note_duo_clock(now, duo_time);
                return Ok(());
            }
            Err(failure) => failure,
        };
        if matches!(
            failure,
            DuoFailure::Refused {
                code: 40104 | 40105,
                ..
            }
        ) {
            if let Ok(duo_time) = duo.ping(&new.api_hostname).await {
                self.note_duo_clock(now, duo_time);
            }
        }
        tracing::warn!(?failure, "Duo refused the integration being saved");
        let diagnosis = diagnosis(&failure).unwrap_or("Invalid Integration: Duo refused it.");
        let said = match &failure {
            DuoFailure::Refused { code, message, .. } => format!(" (Duo: {code} {message})"),
            _ => String::new(),
        };
        Err(Error::Validation(format!("{diagnosis}{said} Nothing was saved.")))
    }

    /// Compares this server's clock with Duo's (`/auth/v2/ping`, which needs no key) when
    /// Duo is active: every few minutes, and after Duo refuses this server's configuration
    /// (its refusal of a request's time, 40105, among others). The admin area's banner
    /// shows the result.
    pub async fn check_duo_clock(&self) -> Result<Option<ClockReading>, Error> {
        let settings = self.two_factor_settings().await?;
        let duo = &settings.services.duo;
        if !duo.active || duo.settings.api_hostname.is_empty() {
            return Ok(None);
        }
        let now = self.now();
        match self.outbound.duo.ping(&duo.settings.api_hostname).await {
            Ok(duo_time) => Ok(Some(self.note_duo_clock(now, duo_time))),
            Err(failure) => {
                tracing::warn!(?failure, "could not read Duo's clock");
                Ok(None)
            }
        }
    }

    /// Remembers how far this server's clock is from Duo's.
    fn note_duo_clock(&self, now: i64, duo_time: i64) -> ClockReading {
        let reading = ClockReading {
            at: now,
            offset_secs: duo_time - now,
        };
        if reading.is_off() {
            tracing::warn!(
                offset_secs = reading.offset_secs,
                "this server's clock is off from Duo's"
            );
        }
        if let Ok(mut clock) = self.duo_clock.lock() {
            *clock = Some(reading);
        }
        reading
    }

    pub async fn list_accounts(&self, actor: &Account, kind: AccountKind) -> Result<Vec<AccountSummary>, Error> {
        require_admin(actor)?;
        Ok(self.store.list_accounts(kind, self.now(), &self.config.lockout).await?)
    }

    /// The account an administrator acts on, or 404.
    async fn existing_account(&self, account_id: i64) -> Result<Account, Error> {
        self.store
            .account(account_id)
            .await?
            .ok_or_else(|| Error::NotFound("No such account.".into()))
    }

    /// Operations that lower security need every factor proven recently: a session left
    /// open, or taken, is not enough. A refusal is audited.
    async fn require_recent_proof(
        &self,
        actor: &Account,
        session: &Session,
        operation: &str,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        let recent = session
            .verified_at
            .is_some_and(|at| self.now() - at <= RECENT_PROOF_SECS);
        if recent {
            return Ok(());
        }
        self.audit(Some(actor.id), operation, "reauthentication_required", remote, None)
            .await;
        Err(Error::ReauthenticationRequired)
    }

    /// A full administrator creates an account; a full administrator only from a recent
    /// login.
    pub async fn admin_create_account(
        &self,
        actor: &Account,
        actor_session: &Session,
        request: &AccountRequest<'_>,
        remote: Option<&str>,
    ) -> Result<i64, Error> {
        require_full_admin(actor)?;
        if request.kind == AccountKind::Admin && request.role == Some(Role::Full) {
            self.require_recent_proof(actor, actor_session, "account_created", remote)
                .await?;
        }
        self.create_account(request).await
    }

    /// A full administrator turns off another account's 2FA (never turns it on); another
    /// administrator's only from a recent login, and never one's own here (My Account asks
    /// for the password). The account's sessions end: whoever holds one must log in again.
    pub async fn admin_disable_two_factor(
        &self,
        actor: &Account,
        actor_session: &Session,
        account_id: i64,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        require_full_admin(actor)?;
        let account = self.existing_account(account_id).await?;
        if account.id == actor.id {
            return Err(Error::Conflict(
                "Turn off your own Two-Factor Authentication from My Account, with your password.".into(),
            ));
        }
        if account.kind == AccountKind::Admin {
            self.require_recent_proof(actor, actor_session, "two_factor_disabled", remote)
                .await?;
        }
        if !self
            .store
            .remove_two_factor(account_id, &actor_session.token_hash)
            .await?
        {
            return Err(Error::Conflict(
                "Two-factor authentication is not enabled for this account.".into(),
            ));
        }
        let detail = format!("by administrator {}", actor.id);
        self.audit(
            Some(account_id),
            "two_factor_disabled",
            "success",
            remote,
            Some(&detail),
        )
        .await;
        Ok(())
    }

    /// The account the command line names, or 404.
    async fn existing_account_named(&self, kind: AccountKind, name: &str) -> Result<Account, Error> {
        self.account_named(kind, name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("No {} account named {name}.", kind.as_str())))
    }

    /// The latest trouble with an outside service in the last week (a validation server
    /// unreachable, a wrong Secret Key), as the audit recorded it: when, and what.
    pub async fn latest_trouble(&self, service: ServiceId) -> Result<Option<(i64, String)>, Error> {
        const WEEK_SECS: i64 = 7 * 86_400;
        let mut latest: Option<(i64, String)> = None;
        for code in [
            "second_factor_service_misconfigured",
            "second_factor_service_unreachable",
        ] {
            let prefix = format!("{code}: {}: ", service.display_name());
            let found = self.store.latest_audit_detail(&prefix, self.now() - WEEK_SECS).await?;
            if let Some(event) = found.filter(|e| latest.as_ref().is_none_or(|(at, _)| e.at > *at)) {
                latest = Some((event.at, event.detail.unwrap_or_default()));
            }
        }
        Ok(latest)
    }

    /// The YubiKeys imported for the local mode.
    pub async fn list_imported_yubikeys(&self, by: Operator<'_>) -> Result<Vec<ImportedKeySummary>, Error> {
        by.authorize()?;
        Ok(self.store.imported_keys(ServiceId::Yubikey.as_str()).await?)
    }

    /// Imports the keys of a key file (see `core::yubikey_import`) for YubiKey's local mode,
    /// each AES key and private ID sealed under the master key; all assigned to the account
    /// named `assign_to`, or left for the first account that touches each. All or nothing.
    /// Returns how many keys were imported.
    pub async fn import_yubikeys(
        &self,
        file: &str,
        assign_to: Option<(AccountKind, &str)>,
        by: Operator<'_>,
        remote: Option<&str>,
    ) -> Result<usize, Error> {
        let by = by.authorize()?;
        let records = parse_key_file(file).map_err(Error::Validation)?;
        let account = match assign_to {
            Some((kind, name)) => Some(self.existing_account_named(kind, name).await?),
            None => None,
        };
        let mut sealed = Vec::with_capacity(records.len());
        for record in &records {
            let key = serde_json::to_vec(&LocalKey::new(&record.aes_key, &record.private_id))
                .map_err(|e| Error::Internal(e.to_string()))?;
            sealed.push(Sealer::for_imported_key(&self.master_key, ServiceId::Yubikey, &record.public_id).seal(&key)?);
        }
        let keys: Vec<NewImportedKey<'_>> = records
            .iter()
            .zip(&sealed)
            .map(|(record, sealed)| NewImportedKey {
                service: ServiceId::Yubikey.as_str(),
                external_id: &record.public_id,
                serial: record.serial.and_then(|serial| i64::try_from(serial).ok()),
                sealed,
                account_id: account.as_ref().map(|a| a.id),
            })
            .collect();
        if let Err(taken) = self.store.import_keys(&keys, self.now()).await? {
            return Err(Error::Conflict(format!(
                "Already imported, so nothing was: {}.",
                taken.join(", ")
            )));
        }
        let public_ids: Vec<&str> = records.iter().map(|r| r.public_id.as_str()).collect();
        let detail = format!("{} {by}: {}", keys.len(), public_ids.join(", "));
        self.audit(
            account.map(|a| a.id),
            "yubikeys_imported",
            "success",
            remote,
            Some(&detail),
        )
        .await;
        Ok(keys.len())
    }

    /// The break-glass path (`twofold user reset-2fa`): removes an account's 2FA and lifts
    /// its lockouts, for an operator with shell access to the server.
    pub async fn reset_two_factor_by_name(&self, kind: AccountKind, name: &str) -> Result<bool, Error> {
        let account = self.existing_account_named(kind, name).await?;
        let removed = self.store.remove_two_factor(account.id, &[]).await?;
        self.store.lift_lockouts(&lockout::account_subject(account.id)).await?;
        self.audit(
            Some(account.id),
            "two_factor_disabled",
            "success",
            None,
            Some("reset from the command line"),
        )
        .await;
        Ok(removed)
    }

    /// `twofold user unlock`: lifts an account's lockouts and, as the admin endpoint does,
    /// ends its sessions (a lockout may have come from someone holding one of them).
    pub async fn unlock_by_name(&self, kind: AccountKind, name: &str) -> Result<(), Error> {
        let account = self.existing_account_named(kind, name).await?;
        self.store.lift_lockouts(&lockout::account_subject(account.id)).await?;
        self.store.delete_other_sessions(account.id, &[]).await?;
        self.audit(
            Some(account.id),
            "unlocked",
            "success",
            None,
            Some("from the command line"),
        )
        .await;
        Ok(())
    }

    /// Lifts an account's lockouts. Its sessions end too: a lockout may have come from
    /// someone holding one of them.
    pub async fn unlock(
        &self,
        actor: &Account,
        actor_session: &Session,
        account_id: i64,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        require_full_admin(actor)?;
        self.existing_account(account_id).await?;
        self.store.lift_lockouts(&lockout::account_subject(account_id)).await?;
        self.store
            .delete_other_sessions(account_id, &actor_session.token_hash)
            .await?;
        let detail = format!("by administrator {}", actor.id);
        self.audit(Some(account_id), "unlocked", "success", remote, Some(&detail))
            .await;
        Ok(())
    }
}

/// Seals the write-only settings sent with a new value and turns each into `{"set": true}`.
/// Returns the writes for the secrets table (a new sealed value, or a clearing) and the
/// names of the settings given a new value. Claiming a value is set when none is, is refused.
fn seal_secret_settings(
    secrets: Vec<SecretSetting<'_>>,
    already_set: &[(String, String)],
    master_key: &MasterKey,
) -> Result<(Vec<SecretWrite<'static>>, Vec<String>), Error> {
    let mut writes = Vec::new();
    let mut replaced = Vec::new();
    for SecretSetting { service, name, value } in secrets {
        let path = format!("services.{}.settings.{name}", service.as_str());
        let is_set = already_set.iter().any(|(s, n)| s == service.as_str() && n == name);
        let sealed = match &*value {
            WriteOnly::New(secret) => {
                let sealer = Sealer::for_setting(master_key, service, name);
                replaced.push(path);
                Some(sealer.seal(secret.expose_secret().as_bytes())?)
            }
            WriteOnly::Kept { set: true } if !is_set => {
                return Err(Error::Validation(format!(
                    "{path} has no value yet: send the value itself"
                )))
            }
            WriteOnly::Kept { set: false } if is_set => None,
            WriteOnly::Kept { .. } => continue,
        };
        *value = WriteOnly::Kept { set: sealed.is_some() };
        writes.push(SecretWrite {
            service: service.as_str(),
            name,
            sealed,
        });
    }
    Ok((writes, replaced))
}

/// The dotted names of the settings that differ (`services.totp.settings.window`); a
/// write-only setting set or cleared is named as itself (`{"set": ...}` is its whole value).
fn changed_fields(before: &TwoFactorSettings, after: &TwoFactorSettings) -> Vec<String> {
    fn walk(path: &str, before: &serde_json::Value, after: &serde_json::Value, out: &mut Vec<String>) {
        let is_write_only =
            |v: &serde_json::Value| v.as_object().is_some_and(|o| o.len() == 1 && o.contains_key("set"));
        match (before, after) {
            (serde_json::Value::Object(old), serde_json::Value::Object(new)) if !is_write_only(after) => {
                for (key, value) in new {
                    let path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(&path, old.get(key).unwrap_or(&serde_json::Value::Null), value, out);
                }
            }
            (old, new) if old != new => out.push(path.to_string()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let as_json = |s: &TwoFactorSettings| serde_json::to_value(s).unwrap_or_default();
    walk("", &as_json(before), &as_json(after), &mut out);
    out
}

struct ValidatedAccount<'a> {
    kind: AccountKind,
    role: Option<Role>,
    username: &'a str,
    email: Option<&'a str>,
    password_hash: String,
}

impl<'a> ValidatedAccount<'a> {
    fn as_new(&self) -> NewAccount<'_> {
        NewAccount {
            kind: self.kind,
            role: self.role,
            username: self.username,
            email: self.email,
            password_hash: &self.password_hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::core::policy::ServiceId;

    fn set(names: &[&str]) -> Vec<(String, String)> {
        names.iter().map(|n| ("totp".to_string(), n.to_string())).collect()
    }

    // Time-Based Tokens has no write-only setting; these tests lend it some names.
    #[test]
    fn a_new_secret_setting_is_sealed_to_its_name_and_answered_only_as_set() {
        let key = MasterKey::from_bytes([7; 32]);
        let mut new = WriteOnly::New(SecretString::from("the-secret-value"));
        let mut kept = WriteOnly::Kept { set: true };
        let mut cleared = WriteOnly::Kept { set: false };
        let mut never_set = WriteOnly::Kept { set: false };
        let secrets = vec![
            SecretSetting {
                service: ServiceId::Totp,
                name: "new_key",
                value: &mut new,
            },
            SecretSetting {
                service: ServiceId::Totp,
                name: "kept_key",
                value: &mut kept,
            },
            SecretSetting {
                service: ServiceId::Totp,
                name: "cleared_key",
                value: &mut cleared,
            },
            SecretSetting {
                service: ServiceId::Totp,
                name: "never_set",
                value: &mut never_set,
            },
        ];
        let (writes, replaced) = seal_secret_settings(secrets, &set(&["kept_key", "cleared_key"]), &key).unwrap();
        assert_eq!(replaced, ["services.totp.settings.new_key"]);
        let written: Vec<(&str, bool)> = writes.iter().map(|w| (w.name, w.sealed.is_some())).collect();
        assert_eq!(
            written,
            [("new_key", true), ("cleared_key", false)],
            "kept values are not rewritten"
        );
        let sealed = writes[0].sealed.as_deref().unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"), "sealed, not stored as sent");
        let opened = Sealer::for_setting(&key, ServiceId::Totp, "new_key")
            .open(sealed)
            .unwrap();
        assert_eq!(opened, b"the-secret-value");
        assert!(
            Sealer::for_setting(&key, ServiceId::Totp, "kept_key")
                .open(sealed)
                .is_err(),
            "a sealed value moved to another setting does not open"
        );
        assert_eq!(
            new,
            WriteOnly::Kept { set: true },
            "the document keeps only that it is set"
        );
        assert_eq!(serde_json::to_string(&new).unwrap(), r#"{"set":true}"#);
        assert_eq!(
            (kept.is_set(), cleared.is_set(), never_set.is_set()),
            (true, false, false)
        );
    }

    #[test]
    fn claiming_a_secret_setting_is_set_when_it_has_no_value_is_refused() {
        let key = MasterKey::from_bytes([7; 32]);
        let mut claimed = WriteOnly::Kept { set: true };
        let secrets = vec![SecretSetting {
            service: ServiceId::Totp,
            name: "api_key",
            value: &mut claimed,
        }];
        match seal_secret_settings(secrets, &[], &key) {
            Err(Error::Validation(message)) => {
                assert_eq!(
                    message,
                    "services.totp.settings.api_key has no value yet: send the value itself"
                )
            }
            other => panic!("{:?}", other.map(|(_, replaced)| replaced)),
        }
    }
}
