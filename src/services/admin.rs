//! What administrators do: the Two-Factor Authentication settings (full administrators),
//! the account lists, disabling a user's 2FA and lifting a lockout; creating accounts and
//! the first administrator.

use subtle::ConstantTimeEq;

use super::Error;
use super::Services;
use crate::core::policy::{AccountKind, Role, TwoFactorSettings};
use crate::store::{Account, AccountSummary, NewAccount};

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

pub fn require_admin(actor: &Account) -> Result<(), Error> {
    if actor.kind == AccountKind::Admin {
        Ok(())
    } else {
        Err(Error::Forbidden)
    }
}

/// Usernames: 1 to 64 of letters, digits and `. _ @ + -` (no `:`, which the otpauth label
/// reserves, and nothing that could be confused when shown).
fn validate_username(username: &str) -> Result<(), Error> {
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

fn validate_email(email: &str) -> Result<(), Error> {
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

    pub async fn save_two_factor_settings(
        &self,
        actor: &Account,
        settings: &TwoFactorSettings,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        require_full_admin(actor)?;
        settings.validate().map_err(Error::Validation)?;
        let before = self.two_factor_settings().await?;
        self.store_two_factor_settings(settings).await?;
        // The audit names what changed, never the values (some will be secrets).
        let changed = changed_fields(&before, settings);
        let detail = if changed.is_empty() {
            "nothing changed".to_string()
        } else {
            format!("changed: {}", changed.join(", "))
        };
        self.audit(Some(actor.id), "settings_changed", "success", remote, Some(&detail))
            .await;
        Ok(())
    }

    pub async fn list_accounts(&self, actor: &Account, kind: AccountKind) -> Result<Vec<AccountSummary>, Error> {
        require_admin(actor)?;
        let policy = self.config.lockout;
        Ok(self
            .store
            .list_accounts(kind, self.now(), policy.window_secs, i64::from(policy.max_failures))
            .await?)
    }

    /// A full administrator turns off another account's 2FA (never turns it on).
    pub async fn admin_disable_two_factor(
        &self,
        actor: &Account,
        account_id: i64,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        require_full_admin(actor)?;
        self.store
            .account(account_id)
            .await?
            .ok_or_else(|| Error::NotFound("No such account.".into()))?;
        if !self.store.remove_two_factor(account_id).await? {
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

    /// The break-glass path (`twofold user reset-2fa`): removes an account's 2FA and lifts
    /// its lockouts, for an operator with shell access to the server.
    pub async fn reset_two_factor_by_name(&self, kind: AccountKind, name: &str) -> Result<bool, Error> {
        let account = self
            .store
            .find_account(kind, name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("No {} account named {name}.", kind.as_str())))?;
        let removed = self.store.remove_two_factor(account.id).await?;
        self.store.clear_attempts(account.id, None).await?;
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

    pub async fn unlock(&self, actor: &Account, account_id: i64, remote: Option<&str>) -> Result<(), Error> {
        require_full_admin(actor)?;
        self.store
            .account(account_id)
            .await?
            .ok_or_else(|| Error::NotFound("No such account.".into()))?;
        self.store.clear_attempts(account_id, None).await?;
        let detail = format!("by administrator {}", actor.id);
        self.audit(Some(account_id), "unlocked", "success", remote, Some(&detail))
            .await;
        Ok(())
    }
}

/// The dotted names of the settings that differ (`services.totp.settings.window`).
fn changed_fields(before: &TwoFactorSettings, after: &TwoFactorSettings) -> Vec<String> {
    fn walk(path: &str, before: &serde_json::Value, after: &serde_json::Value, out: &mut Vec<String>) {
        match (before, after) {
            (serde_json::Value::Object(old), serde_json::Value::Object(new)) => {
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
