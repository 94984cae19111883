//! Applications that ask Twofold for the second factor (a web product with its own login, a
//! VPN through RADIUS): a full administrator (or the command line) registers them and
//! their keys; each call of the validate API is authenticated by a key.

use std::net::IpAddr;

use serde::Serialize;
use utoipa::ToSchema;

use super::admin::Operator;
use super::factors::Answer;
use super::login::Answered;
use super::support::Attempt;
use super::{Error, Services};
use crate::core::applications::{
    check_name, key_text, network_allows, parse_networks, parse_scopes, radius_user, scopes_text, secret_hash,
    secret_matches, Kinds, Scope, KEY_ID_LENGTH,
};
use crate::core::backup_codes::BackupCode;
use crate::core::lockout::Guess;
use crate::core::policy::{AccountKind, ServiceId};
use crate::random;
use crate::store::{Account, ApplicationRow, KeyRow, NewKey};

/// What an administrator registers.
pub struct NewApplication {
    pub name: String,
    pub kinds: Kinds,
    pub scopes: Vec<Scope>,
    /// CIDR (or addresses) it may call from; none: anywhere.
    pub networks: Vec<String>,
}

/// An application as the administrators' list shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ApplicationSummary {
    pub id: i64,
    pub name: String,
    pub kinds: Kinds,
    pub scopes: Vec<Scope>,
    pub networks: Vec<String>,
    pub active: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub keys: Vec<KeySummary>,
}

/// One of its keys, never with its secret.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct KeySummary {
    pub key_id: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A new key, shown this once: only its hash is kept.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct IssuedKey {
    pub key_id: String,
    /// `tfk_<key id>_<secret>`: send it as `Authorization: Bearer ...`.
    pub key: String,
}

/// An application authenticated by one of its keys, for one call.
#[derive(Clone, Debug)]
pub struct AppCaller {
    pub id: i64,
    pub name: String,
    pub key_id: String,
    pub kinds: Kinds,
    pub scopes: Vec<Scope>,
    /// The caller's address, as the connection (or a trusted proxy) gives it.
    pub remote: Option<String>,
}

impl AppCaller {
    /// Whether it may do `scope` for an account of `kind`.
    pub fn require(&self, scope: Scope, kind: AccountKind) -> Result<(), Error> {
        if self.scopes.contains(&scope) && self.kinds.allows(kind) {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }
}

fn summary(app: ApplicationRow, keys: &[KeyRow]) -> Result<ApplicationSummary, Error> {
    Ok(ApplicationSummary {
        id: app.id,
        kinds: Kinds::parse(&app.kinds)
            .ok_or_else(|| Error::Internal(format!("application {} has kinds {:?}", app.id, app.kinds)))?,
        scopes: parse_scopes(&app.scopes),
        networks: network_list(&app.networks),
        active: app.suspended_at.is_none(),
        created_at: app.created_at,
        name: app.name,
        keys: keys
            .iter()
            .filter(|key| key.application_id == app.id)
            .map(|key| KeySummary {
                key_id: key.key_id.clone(),
                created_at: key.created_at,
                last_used_at: key.last_used_at,
                expires_at: key.expires_at,
                revoked_at: key.revoked_at,
            })
            .collect(),
    })
}

impl Services {
    /// A new key's id and secret, and what the database keeps of it.
    fn new_key(&self, expires_in_days: Option<u32>) -> Result<(IssuedKey, Vec<u8>, Option<i64>), Error> {
        let key_id = random::alphanumeric(KEY_ID_LENGTH)?;
        let secret = random::token()?;
        let hash = secret_hash(&self.application_key_hash_key, &key_id, &secret);
        let expires_at = expires_in_days.map(|days| self.now() + i64::from(days) * 86_400);
        let key = key_text(&key_id, &secret);
        Ok((IssuedKey { key_id, key }, hash, expires_at))
    }

    /// Registers an application with its first key (shown once).
    pub async fn create_application(
        &self,
        new: &NewApplication,
        by: Operator<'_>,
        remote: Option<&str>,
    ) -> Result<(i64, IssuedKey), Error> {
        let by = by.authorize()?;
        let name = check_name(&new.name).map_err(Error::Validation)?;
        let networks = parse_networks(&new.networks).map_err(Error::Validation)?;
        if new.scopes.is_empty() {
            return Err(Error::Validation(
                "scopes: give at least one of check, challenge, accounts".into(),
            ));
        }
        let row = ApplicationRow {
            id: 0,
            name: name.to_string(),
            kinds: new.kinds.as_str().into(),
            scopes: scopes_text(&new.scopes),
            networks: networks.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
            suspended_at: None,
            created_at: self.now(),
        };
        let (issued, hash, expires_at) = self.new_key(None)?;
        let key = NewKey {
            key_id: &issued.key_id,
            secret_hash: &hash,
            expires_at,
        };
        let id = self
            .store
            .create_application(&row, &key, self.now())
            .await
            .map_err(|error| match Error::from(error) {
                Error::Conflict(_) => Error::Conflict(format!("An application is already named {name:?}.")),
                other => other,
            })?;
        let detail = format!("application {id} {name:?}, key {}, {by}", issued.key_id);
        self.audit(None, "application_created", "success", remote, Some(&detail))
            .await;
        Ok((id, issued))
    }

    /// Adds a key to an application (rotation: the old ones keep working until revoked).
    pub async fn issue_application_key(
        &self,
        application_id: i64,
        expires_in_days: Option<u32>,
        by: Operator<'_>,
        remote: Option<&str>,
    ) -> Result<IssuedKey, Error> {
        let by = by.authorize()?;
        let (issued, hash, expires_at) = self.new_key(expires_in_days)?;
        let key = NewKey {
            key_id: &issued.key_id,
            secret_hash: &hash,
            expires_at,
        };
        if !self.store.add_application_key(application_id, &key, self.now()).await? {
            return Err(no_such_application());
        }
        let detail = format!("application {application_id}, key {}, {by}", issued.key_id);
        self.audit(None, "application_key_issued", "success", remote, Some(&detail))
            .await;
        Ok(issued)
    }

    /// Revokes a key at once, on every node (each call reads the key).
    pub async fn revoke_application_key(
        &self,
        application_id: i64,
        key_id: &str,
        by: Operator<'_>,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        let by = by.authorize()?;
        if !self
            .store
            .revoke_application_key(application_id, key_id, self.now())
            .await?
        {
            return Err(Error::NotFound("No such key, or it is already revoked.".into()));
        }
        let detail = format!("application {application_id}, key {key_id}, {by}");
        self.audit(None, "application_key_revoked", "success", remote, Some(&detail))
            .await;
        Ok(())
    }

    /// Suspends an application (its keys stop working at once) or makes it active again.
    pub async fn set_application_active(
        &self,
        application_id: i64,
        active: bool,
        by: Operator<'_>,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        let by = by.authorize()?;
        let suspended_at = (!active).then(|| self.now());
        if !self
            .store
            .set_application_suspended(application_id, suspended_at)
            .await?
        {
            return Err(no_such_application());
        }
        let event = if active {
            "application_resumed"
        } else {
            "application_suspended"
        };
        let detail = format!("application {application_id}, {by}");
        self.audit(None, event, "success", remote, Some(&detail)).await;
        Ok(())
    }

    pub async fn applications(&self, by: Operator<'_>) -> Result<Vec<ApplicationSummary>, Error> {
        by.authorize()?;
        let (apps, keys) = self.store.applications().await?;
        apps.into_iter().map(|app| summary(app, &keys)).collect()
    }

    /// The application whose key `authorization` carries (`Bearer tfk_...`, or Basic
    /// `key_id:secret`), if the key is live, its application active, and `remote` in its
    /// networks. Every refusal is a bare 401 (403 for a network) to the caller; the audit
    /// says which.
    pub async fn authenticate_application(
        &self,
        authorization: Option<&str>,
        remote: Option<&str>,
    ) -> Result<AppCaller, Error> {
        let refuse = |key_id: Option<&str>, why: &str| {
            let detail = format!("key {}: {why}", key_id.unwrap_or("(none)"));
            async move {
                self.audit(None, "application_auth", "failure", remote, Some(&detail))
                    .await;
                Error::InvalidApiKey
            }
        };
        let Some((key_id, secret)) = authorization.and_then(crate::core::applications::from_authorization) else {
            return Err(refuse(None, "no key, or not a key").await);
        };
        let Some(found) = self.store.application_key(&key_id).await? else {
            return Err(refuse(Some(&key_id), "unknown key").await);
        };
        let now = self.now();
        if !secret_matches(&self.application_key_hash_key, &key_id, &secret, &found.secret_hash) {
            return Err(refuse(Some(&key_id), "wrong secret").await);
        }
        if found.key.revoked_at.is_some() {
            return Err(refuse(Some(&key_id), "revoked").await);
        }
        if found.key.expires_at.is_some_and(|at| at <= now) {
            return Err(refuse(Some(&key_id), "expired").await);
        }
        let app = found.application;
        if app.suspended_at.is_some() {
            return Err(refuse(Some(&key_id), "application suspended").await);
        }
        let networks = parse_networks(&network_list(&app.networks)).map_err(Error::Internal)?;
        let address = remote.and_then(|r| r.parse().ok());
        if !network_allows(&networks, address) {
            refuse(Some(&key_id), "outside the application's networks").await;
            return Err(Error::Forbidden);
        }
        // A key's last use is kept to the minute: a busy key costs no write per call.
        if found.key.last_used_at.is_none_or(|at| at < now - 60) {
            self.store.note_application_key_used(&key_id, now).await?;
        }
        Ok(AppCaller {
            id: app.id,
            kinds: Kinds::parse(&app.kinds).ok_or_else(|| Error::Internal(format!("application {}", app.id)))?,
            scopes: parse_scopes(&app.scopes),
            name: app.name,
            key_id,
            remote: remote.map(str::to_string),
        })
    }
}

/// The calling application and key, as the audit names them (never the secret).
fn caller_text(app: &AppCaller) -> String {
    format!("application {} ({}) key {}", app.id, app.name, app.key_id)
}

/// The user's address: as the application reports it, else the application's own.
fn user_address(app: &AppCaller, client_ip: Option<IpAddr>) -> Option<String> {
    client_ip.map(|ip| ip.to_string()).or_else(|| app.remote.clone())
}

/// The networks as stored: comma-separated.
fn network_list(text: &str) -> Vec<String> {
    text.split(',').filter(|n| !n.is_empty()).map(str::to_string).collect()
}

fn no_such_application() -> Error {
    Error::NotFound("No such application.".into())
}

/// What `/validate/check` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CheckResult {
    /// The code is right, and now used up.
    Accept {
        method: Method,
        /// How many unused backup codes the account holds (one at most: each use issues
        /// the next).
        backup_codes_left: u32,
        /// After a backup code: the next one, shown this once; the application shows it
        /// to the user, who keeps it in a safe place.
        #[serde(skip_serializing_if = "Option::is_none")]
        backup_code: Option<String>,
    },
    /// Wrong, already used, or for a user who does not exist or has no such second factor:
    /// the same answer for each.
    Reject,
    /// Too many wrong answers: the account is locked out, for `retry_after` seconds (also
    /// in the `Retry-After` header), or until an administrator unlocks it when absent.
    Locked {
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<i64>,
    },
}

/// What an accepted code was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A code from an authenticator app.
    Totp,
    /// A YubiKey's OTP.
    Yubikey,
    BackupCode,
}

impl Method {
    /// What `code` is, by its form: a backup code (16 letters and digits, dashes
    /// optional), digits (an authenticator app's code), or else a YubiKey's OTP.
    fn of(code: &str) -> Method {
        if BackupCode::parse(code).is_ok() {
            Method::BackupCode
        } else if code.chars().all(|c| c.is_ascii_digit() || c.is_whitespace()) {
            Method::Totp
        } else {
            Method::Yubikey
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::Yubikey => "yubikey",
            Method::BackupCode => "backup_code",
        }
    }
}

impl Services {
    /// An application asks whether `code` is `user`'s second factor: a TOTP code or a
    /// YubiKey OTP, single use and counted against the same lockout as the login page
    /// (`client_ip`: the user's address as the application saw it).
    pub async fn validate_check(
        &self,
        app: &AppCaller,
        kind: AccountKind,
        user: &str,
        code: &str,
        client_ip: Option<&str>,
    ) -> Result<CheckResult, Error> {
        let client_ip = match client_ip.map(str::parse::<IpAddr>) {
            Some(Err(_)) => return Err(Error::Validation("client_ip must be an IP address.".into())),
            parsed => parsed.and_then(Result::ok),
        };
        self.check_code(app, kind, user, code, client_ip, "validate_check")
            .await
    }

    /// A RADIUS server (FreeRADIUS's `rlm_rest`) asks the same for the `User-Name` and
    /// `User-Password` of an Access-Request: the name chooses the kind of account (see
    /// `radius_user`), the password is the code. `client_ip` is used only if it is an IP
    /// address (a `Calling-Station-Id` may be empty, or a MAC address).
    pub async fn validate_radius(
        &self,
        app: &AppCaller,
        user_name: &str,
        code: &str,
        client_ip: Option<&str>,
    ) -> Result<CheckResult, Error> {
        let client_ip = client_ip.and_then(|text| text.parse::<IpAddr>().ok());
        let Some((kind, user)) = radius_user(user_name, app.kinds) else {
            let remote = user_address(app, client_ip);
            let detail = format!(
                "{}: {user_name:?}: reject: a name for both kinds of account needs @client or @admin",
                caller_text(app)
            );
            self.audit(None, "validate_radius", "failure", remote.as_deref(), Some(&detail))
                .await;
            return Ok(CheckResult::Reject);
        };
        self.check_code(app, kind, user, code, client_ip, "validate_radius")
            .await
    }

    /// Judges a code an application sends, audited as `event`.
    async fn check_code(
        &self,
        app: &AppCaller,
        kind: AccountKind,
        user: &str,
        code: &str,
        client_ip: Option<IpAddr>,
        event: &str,
    ) -> Result<CheckResult, Error> {
        app.require(Scope::Check, kind)?;
        let remote = user_address(app, client_ip);
        let remote = remote.as_deref();
        let said = |result: &str| format!("{}: {} {user:?}: {result}", caller_text(app), kind.as_str());
        let Some(account) = self.account_named(kind, user).await? else {
            let attempt = Attempt::on_unknown_name(&self.name_key, kind, user, Guess::SecondFactor, remote);
            self.count_attempt(&attempt).await?;
            self.audit(None, event, "failure", remote, Some(&said("reject: unknown user")))
                .await;
            return Ok(CheckResult::Reject);
        };
        let method = Method::of(code);
        let used = match method {
            Method::BackupCode => {
                let attempt = Attempt::on_account(account.id, Guess::BackupCode, remote);
                self.use_backup_code(account.id, None, code, &attempt, "validate_backup_code")
                    .await
                    .map(|(next, _)| Some(next))
            }
            Method::Totp | Method::Yubikey => {
                let service = match method {
                    Method::Totp => ServiceId::Totp,
                    _ => ServiceId::Yubikey,
                };
                self.use_code(&account, service, code, remote).await.map(|()| None)
            }
        };
        let result = match used {
            Ok(next) => {
                let backup_codes_left = match next {
                    Some(_) => 1,
                    None => u32::from(self.store.backup_code(account.id).await?.is_some()),
                };
                Ok(CheckResult::Accept {
                    method,
                    backup_codes_left,
                    backup_code: next.map(|code| code.display()),
                })
            }
            Err(Error::LockedOut { retry_after_secs }) => Ok(CheckResult::Locked {
                retry_after: Some(retry_after_secs),
            }),
            Err(Error::SecondFactorLocked) => Ok(CheckResult::Locked { retry_after: None }),
            Err(
                error @ (Error::Internal(_)
                | Error::Unavailable(_)
                | Error::ServiceUnreachable { .. }
                | Error::ServiceMisconfigured { .. }),
            ) => Err(error),
            Err(_) => Ok(CheckResult::Reject),
        };
        let (outcome, detail) = match &result {
            Ok(CheckResult::Accept { method, .. }) => ("success", said(&format!("accept {}", method.as_str()))),
            Ok(CheckResult::Reject) => ("failure", said("reject")),
            Ok(CheckResult::Locked { .. }) => ("failure", said("locked")),
            Err(error) => ("failure", said(&error.audit_detail())),
        };
        self.audit(Some(account.id), event, outcome, remote, Some(&detail))
            .await;
        result
    }

    /// A code or OTP of `service`, single use and counted as at the login page.
    async fn use_code(
        &self,
        account: &Account,
        service: ServiceId,
        code: &str,
        remote: Option<&str>,
    ) -> Result<(), Error> {
        let attempt = Attempt::on_account(account.id, Guess::SecondFactor, remote);
        let credentials = self.store.credentials(account.id).await?;
        if !credentials.iter().any(|c| c.service == service.as_str()) {
            self.count_attempt(&attempt).await?;
            return Err(Error::Validation(format!("no {} credential", service.as_str())));
        }
        let answer = Answer::Code(code.to_string());
        match self
            .answer_second_factor(account, None, credentials, service, &answer, &attempt, "validate")
            .await?
        {
            Answered::Accepted(_) => Ok(()),
            Answered::Pending | Answered::Next(_) => Err(Error::InvalidCode),
        }
    }
}
