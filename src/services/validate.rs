//! The validate API's operations, for applications authenticated by a key: is this code
//! the user's second factor (`check`, and `radius` for FreeRADIUS), and what should the
//! application do with this user (`preauth`: ask for the code, send the user to enrol with a
//! one-time link, let the user pass, or not).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::{validate_email, validate_username};
use super::applications::AppCaller;
use super::factors::Answer;
use super::login::{session_token_hash, Answered};
use super::support::Attempt;
use super::{Error, Services};
use crate::core::applications::{check_external_id, radius_user, Scope};
use crate::core::backup_codes::BackupCode;
use crate::core::lockout::Guess;
use crate::core::password;
use crate::core::policy::{AccountKind, NextStep, Role, ServiceId};
use crate::random;
use crate::store::{Account, LinkSession, NewAccount, Stage};

/// The calling application and key, as the audit names them (never the secret).
fn caller_text(app: &AppCaller) -> String {
    format!("application {} ({}) key {}", app.id, app.name, app.key_id)
}

/// What the audit says of a call about `user`: the caller, the user, and `result`.
pub(super) fn audit_text(app: &AppCaller, kind: AccountKind, user: Subject<'_>, result: &str) -> String {
    format!("{}: {} {user}: {result}", caller_text(app), kind.as_str())
}

/// The user's address: as the application reports it, else the application's own.
pub(super) fn user_address(app: &AppCaller, client_ip: Option<IpAddr>) -> Option<String> {
    client_ip.map(|ip| ip.to_string()).or_else(|| app.remote.clone())
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A code from an authenticator app.
    Totp,
    /// A YubiKey's OTP.
    Yubikey,
    /// Duo Security: a push or a call, through `challenge` (`check` does not take Duo
    /// passcodes).
    Duo,
    BackupCode,
}

impl From<ServiceId> for Method {
    fn from(service: ServiceId) -> Method {
        match service {
            ServiceId::Totp => Method::Totp,
            ServiceId::Yubikey => Method::Yubikey,
            ServiceId::Duo => Method::Duo,
        }
    }
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

    /// The service whose credential answers it; `None` for a backup code.
    fn service(self) -> Option<ServiceId> {
        match self {
            Method::Totp => Some(ServiceId::Totp),
            Method::Yubikey => Some(ServiceId::Yubikey),
            Method::Duo => Some(ServiceId::Duo),
            Method::BackupCode => None,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        self.service().map_or("backup_code", ServiceId::as_str)
    }
}

impl Services {
    /// An application asks whether `code` is `user`'s second factor: a TOTP code, a
    /// YubiKey OTP or a backup code, single use and counted against the same lockout as the
    /// login page (`client_ip`: the user's address as the application saw it).
    pub async fn validate_check(
        &self,
        app: &AppCaller,
        kind: AccountKind,
        user: Subject<'_>,
        code: &str,
        client_ip: Option<&str>,
    ) -> Result<CheckResult, Error> {
        let client_ip = reported_address(client_ip)?;
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
        self.check_code(app, kind, Subject::Name(user), code, client_ip, "validate_radius")
            .await
    }

    /// Judges a code an application sends, audited as `event`.
    async fn check_code(
        &self,
        app: &AppCaller,
        kind: AccountKind,
        user: Subject<'_>,
        code: &str,
        client_ip: Option<IpAddr>,
        event: &str,
    ) -> Result<CheckResult, Error> {
        app.require(Scope::Check, kind)?;
        let remote = user_address(app, client_ip);
        let remote = remote.as_deref();
        let said = |result: &str| audit_text(app, kind, user, result);
        let Some(account) = self.account_of(app, kind, user).await? else {
            let name = user.key(app);
            let attempt = Attempt::on_unknown_name(&self.name_key, kind, &name, Guess::SecondFactor, remote);
            self.count_attempt(&attempt).await?;
            self.audit(None, event, "failure", remote, Some(&said("reject: unknown user")))
                .await;
            return Ok(CheckResult::Reject);
        };
        let method = Method::of(code);
        let used = match method.service() {
            None => {
                let attempt = Attempt::on_account(account.id, Guess::BackupCode, remote);
                self.use_backup_code(account.id, None, code, &attempt, "validate_backup_code")
                    .await
                    .map(|(next, _)| Some(next))
            }
            Some(service) => self.use_code(&account, service, code, remote).await.map(|()| None),
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
            .answer_second_factor(
                account,
                None,
                credentials,
                &self.two_factor_settings().await?,
                service,
                &answer,
                &attempt,
                "validate",
            )
            .await?
        {
            Answered::Accepted(_) => Ok(()),
            Answered::Pending | Answered::Next(_) => Err(Error::InvalidCode),
        }
    }
}

/// How long an enrolment link can be used.
pub const ENROLMENT_LINK_TTL_SECS: i64 = 600;

/// What `/validate/preauth` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum PreauthResult {
    /// The user has a second factor: ask for one of these, then `check` it.
    Auth { methods: Vec<Method> },
    /// The user must enrol first. With the application's `accounts` scope, `enroll_url` is
    /// a one-time link (single use, until `expires_at`, Unix seconds) where the user sets up
    /// a second factor without a Twofold password: absolute when Twofold's `public_url` is
    /// configured, otherwise a path on Twofold's address.
    Enroll {
        #[serde(skip_serializing_if = "Option::is_none")]
        enroll_url: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        expires_at: Option<i64>,
    },
    /// The user has no second factor, and the application lets such users pass.
    Allow,
    /// The user cannot pass: `reason` says why (no such user; no second factor can be set
    /// up for this kind of account).
    Deny { reason: String },
}

impl Services {
    /// What the application should do with `user` after its own password check: ask for
    /// the second factor, send the user to enrol, let the user pass (only by the
    /// application's explicit policy), or refuse.
    pub async fn validate_preauth(
        &self,
        app: &AppCaller,
        kind: AccountKind,
        user: Subject<'_>,
        client_ip: Option<&str>,
    ) -> Result<PreauthResult, Error> {
        app.require(Scope::Check, kind)?;
        let client_ip = reported_address(client_ip)?;
        let remote = user_address(app, client_ip);
        let said = |result: &str| audit_text(app, kind, user, result);
        let Some(account) = self.account_of(app, kind, user).await? else {
            self.audit(
                None,
                "validate_preauth",
                "failure",
                remote.as_deref(),
                Some(&said("deny: unknown user")),
            )
            .await;
            return Ok(PreauthResult::Deny {
                reason: "no such user".into(),
            });
        };
        let credentials = self.store.credentials(account.id).await?;
        let (result, why) = if credentials.is_empty() {
            let settings = self.two_factor_settings().await?;
            let forced = matches!(settings.next_step(kind, None), NextStep::Enrolment(_));
            let offered = !settings.enabled_for(kind).is_empty();
            if app.allow_unenrolled && !forced {
                (
                    PreauthResult::Allow,
                    "allow: no second factor, by the application's policy",
                )
            } else if offered {
                let (enroll_url, expires_at) = match app.scopes.contains(&Scope::Accounts) {
                    true => {
                        let (url, expires_at) = self.enrolment_link(app, &account).await?;
                        (Some(url), Some(expires_at))
                    }
                    false => (None, None),
                };
                let why = match enroll_url {
                    Some(_) => "enroll: enrolment link issued",
                    None => "enroll: no link without the accounts scope",
                };
                (PreauthResult::Enroll { enroll_url, expires_at }, why)
            } else {
                let reason = "no second factor can be set up for this kind of account".to_string();
                (PreauthResult::Deny { reason }, "deny: no second factor offered")
            }
        } else {
            let mut methods: Vec<Method> = Vec::new();
            for credential in &credentials {
                let service = ServiceId::parse(&credential.service)
                    .ok_or_else(|| Error::Internal(format!("unknown service {:?}", credential.service)))?;
                if !methods.contains(&Method::from(service)) {
                    methods.push(Method::from(service));
                }
            }
            if self.store.backup_code(account.id).await?.is_some() {
                methods.push(Method::BackupCode);
            }
            (PreauthResult::Auth { methods }, "auth")
        };
        let outcome = match result {
            PreauthResult::Deny { .. } => "failure",
            _ => "success",
        };
        self.audit(
            Some(account.id),
            "validate_preauth",
            outcome,
            remote.as_deref(),
            Some(&said(why)),
        )
        .await;
        Ok(result)
    }

    /// A one-time link for `account` to enrol: its URL and when it expires.
    async fn enrolment_link(&self, app: &AppCaller, account: &Account) -> Result<(String, i64), Error> {
        // A random token, kept hashed as a session's is.
        let (token, token_hash) = self.new_session_token()?;
        let now = self.now();
        let expires_at = now + ENROLMENT_LINK_TTL_SECS;
        self.store
            .create_enrolment_link(&token_hash, app.id, account.id, now, expires_at)
            .await?;
        let path = format!("/enroll/{token}");
        let url = match &self.config.public_url {
            Some(base) => format!("{}{path}", base.trim_end_matches('/')),
            None => path,
        };
        Ok((url, expires_at))
    }

    /// The account an enrolment link is for, and the application that sent it, if the
    /// link can still be used.
    pub async fn enrolment_link_for(&self, token: &str) -> Result<Option<(Account, String)>, Error> {
        let Some(link) = self
            .store
            .live_enrolment_link(&session_token_hash(token), self.now())
            .await?
        else {
            return Ok(None);
        };
        let account = self.store.account(link.account_id).await?;
        Ok(account.map(|account| (account, link.application_name)))
    }

    /// Uses an enrolment link, once: opens a session that may only enrol (and ends when it
    /// has); returns its token and the account.
    pub async fn use_enrolment_link(&self, token: &str, remote: Option<&str>) -> Result<(String, Account), Error> {
        let gone = || {
            Error::NotFound(
                "This enrolment link cannot be used: it was used already, it expired, or it never existed. \
                 Ask the application that sent you here for a new one."
                    .into(),
            )
        };
        let link_hash = session_token_hash(token);
        let (session_token, session_hash) = self.new_session_token()?;
        let csrf_token = random::token()?;
        let now = self.now();
        let session = LinkSession {
            token_hash: &session_hash,
            csrf_token: &csrf_token,
            expires_at: now + self.stage_ttl(Stage::LinkEnrolment),
        };
        let Some(account_id) = self.store.use_enrolment_link(&link_hash, &session, now).await? else {
            self.audit(
                None,
                "enrolment_link_used",
                "failure",
                remote,
                Some("unknown, used or expired"),
            )
            .await;
            return Err(gone());
        };
        let account = self.store.account(account_id).await?.ok_or_else(gone)?;
        self.audit(Some(account_id), "enrolment_link_used", "success", remote, None)
            .await;
        Ok((session_token, account))
    }
}

/// How an application names an account: by its username (or e-mail address), or by the
/// application's own identifier for an account it made (`external_id`).
#[derive(Clone, Copy, Debug)]
pub enum Subject<'a> {
    Name(&'a str),
    ExternalId(&'a str),
}

impl Subject<'_> {
    /// A name no two subjects of different applications share (for the count of attempts
    /// on unknown names).
    pub(super) fn key(self, app: &AppCaller) -> String {
        match self {
            Subject::Name(name) => name.to_string(),
            Subject::ExternalId(id) => format!("application {} external_id {id}", app.id),
        }
    }
}

impl std::fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Name(name) => write!(f, "{name:?}"),
            Subject::ExternalId(id) => write!(f, "external_id {id:?}"),
        }
    }
}

/// An account an application made, without a Twofold password.
pub struct NewAppAccount<'a> {
    pub kind: AccountKind,
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub external_id: &'a str,
}

impl Services {
    pub(super) async fn account_of(
        &self,
        app: &AppCaller,
        kind: AccountKind,
        user: Subject<'_>,
    ) -> Result<Option<Account>, Error> {
        match user {
            Subject::Name(name) => self.account_named(kind, name).await,
            Subject::ExternalId(id) => Ok(self.store.account_by_external_id(app.id, kind, id).await?),
        }
    }

    /// An application makes an account, known to it as `external_id`. It has no Twofold
    /// password, so it cannot sign in to Twofold's own areas; its second factor is set up
    /// through enrolment links, and administrators manage it as any other.
    pub async fn validate_create_account(&self, app: &AppCaller, new: &NewAppAccount<'_>) -> Result<i64, Error> {
        app.require(Scope::Accounts, new.kind)?;
        validate_username(new.username)?;
        if let Some(email) = new.email {
            validate_email(email)?;
        }
        let external_id = check_external_id(new.external_id).map_err(Error::Validation)?;
        let account = NewAccount {
            kind: new.kind,
            role: (new.kind == AccountKind::Admin).then_some(Role::Staff),
            username: new.username,
            email: new.email,
            password_hash: password::NO_PASSWORD,
        };
        let id = self
            .store
            .create_application_account(account, app.id, external_id, self.now())
            .await
            .map_err(|error| match Error::from(error) {
                Error::Conflict(_) => {
                    Error::Conflict("That username or e-mail address, or that external_id, is already in use.".into())
                }
                other => other,
            })?;
        let detail = format!(
            "{}: {} {:?}, external_id {external_id:?}, without a password",
            caller_text(app),
            new.kind.as_str(),
            new.username
        );
        self.audit(
            Some(id),
            "account_created",
            "success",
            app.remote.as_deref(),
            Some(&detail),
        )
        .await;
        Ok(id)
    }
}

/// The user's address as the application reports it: an IP address, or nothing.
pub(super) fn reported_address(client_ip: Option<&str>) -> Result<Option<IpAddr>, Error> {
    match client_ip.map(str::parse::<IpAddr>) {
        Some(Err(_)) => Err(Error::Validation("client_ip must be an IP address.".into())),
        parsed => Ok(parsed.and_then(Result::ok)),
    }
}
