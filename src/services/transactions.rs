//! Challenges an application starts and then polls: a Duo push (or call) that the user
//! answers on a phone while the application waits. The factor's state stays here, sealed,
//! under the hash of a random transaction id that only the starting application can poll;
//! the application never holds it. A transaction ends at its first final answer: accepted
//! at most once (its row is taken in the same commit as the accepted answer), then gone.

use serde::Serialize;
use utoipa::ToSchema;

use super::applications::AppCaller;
use super::factors::{Accepted, Answer, Challenge, Progress};
use super::login::{of_service, session_token_hash, Checked};
use super::support::Attempt;
use super::validate::{audit_text, reported_address, user_address, Method, Subject};
use super::{Error, Services};
use crate::core::applications::Scope;
use crate::core::lockout::Guess;
use crate::core::policy::{AccountKind, ServiceId};
use crate::store::{Account, Consumption, Kept, NewTransaction};

/// What `/validate/challenge` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ChallengeResult {
    /// The user was asked (a push was sent, or a call placed): poll
    /// `GET /api/v1/validate/transactions/{transaction_id}` until it is no longer
    /// `pending`, every two seconds or so. `prompt` says what the user should do.
    Pending {
        transaction_id: String,
        /// Unix seconds after which the transaction is `expired`.
        expires_at: i64,
        prompt: String,
    },
    /// The service let the user in without asking (Duo's bypass for this user, or Duo
    /// unreachable while the settings fail open; the audit says which).
    Accept { method: Method, backup_codes_left: u32 },
    /// No such user, no such second factor for the user, or the service refused the user.
    Reject,
    /// Too many attempts: as for `check`.
    Locked {
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<i64>,
    },
}

/// What polling a transaction answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum TransactionResult {
    /// Not answered yet: poll again.
    Pending,
    /// Approved; the transaction has ended (this is said once).
    Accept { method: Method, backup_codes_left: u32 },
    /// Denied by the user (or the factor refused the answer); the transaction has ended.
    Reject,
    /// Nobody answered in time; the transaction has ended.
    Expired,
}

impl Services {
    /// An application asks that `user` be challenged with `method` (a Duo push, or a call
    /// when the user's device takes no push). Counted as one attempt, against the same
    /// lockout as the login page, before the service is called.
    pub async fn validate_challenge(
        &self,
        app: &AppCaller,
        kind: AccountKind,
        user: Subject<'_>,
        method: Method,
        client_ip: Option<&str>,
    ) -> Result<ChallengeResult, Error> {
        app.require(Scope::Challenge, kind)?;
        let service = match method {
            Method::Duo => ServiceId::Duo,
            other => {
                return Err(Error::Validation(format!(
                    "{} needs no challenge: send the user's code to /api/v1/validate/check.",
                    other.as_str()
                )))
            }
        };
        let client_ip = reported_address(client_ip)?;
        let remote = user_address(app, client_ip);
        let remote = remote.as_deref();
        let said = |result: &str| audit_text(app, kind, user, result);
        let Some(account) = self.account_of(app, kind, user).await? else {
            let name = user.key(app);
            let attempt = Attempt::on_unknown_name(&self.name_key, kind, &name, Guess::SecondFactor, remote);
            let result = match self.count_attempt(&attempt).await {
                Ok(()) => ChallengeResult::Reject,
                Err(error) => locked(error)?,
            };
            self.audit(
                None,
                "validate_challenge",
                "failure",
                remote,
                Some(&said("reject: unknown user")),
            )
            .await;
            return Ok(result);
        };
        let attempt = Attempt::on_account(account.id, Guess::SecondFactor, remote);
        let result = match self.count_attempt(&attempt).await {
            Ok(()) => self.start_transaction(app, &account, service, &attempt).await,
            Err(error) => locked(error).map(|locked| (locked, "locked".to_string())),
        };
        let (outcome, detail) = match &result {
            Ok((ChallengeResult::Reject | ChallengeResult::Locked { .. }, why)) => ("failure", said(why)),
            Ok((_, why)) => ("success", said(why)),
            Err(error) => ("failure", said(&error.audit_detail())),
        };
        self.audit(Some(account.id), "validate_challenge", outcome, remote, Some(&detail))
            .await;
        result.map(|(result, _)| result)
    }

    /// Starts `service`'s login for the account, already counted as `attempt`, and picks
    /// the first way that is answered on the user's device; what it answers, and why.
    async fn start_transaction(
        &self,
        app: &AppCaller,
        account: &Account,
        service: ServiceId,
        attempt: &Attempt<'_>,
    ) -> Result<(ChallengeResult, String), Error> {
        let credentials = of_service(self.store.credentials(account.id).await?, service);
        if credentials.is_empty() {
            return Ok((
                ChallengeResult::Reject,
                format!("reject: no {} credential", service.as_str()),
            ));
        }
        let event = format!("validate_{}", service.as_str());
        let settings = self.two_factor_settings().await?;
        let cx = self.factor_cx(account, &settings, service).await?;
        let factor = self.factor(service);
        let started = match factor.start_login(&cx, &credentials).await {
            Ok(step) => step,
            Err(error) => return self.refused_start(attempt, &event, error).await,
        };
        let answer = match &started.show {
            Challenge::Choose { options, .. } => match options.iter().find(|option| option.approval) {
                Some(option) => Answer::Choose {
                    option: option.id.clone(),
                },
                None => {
                    let why = "reject: no device that takes a push or a call".to_string();
                    return Ok((ChallengeResult::Reject, why));
                }
            },
            // Let in without asking (a bypass, or fail-open): settled at once.
            Challenge::Approval { .. } => Answer::Poll,
            _ => {
                // The settings' doing, not the user's: the attempt is taken back.
                self.store.refund_attempt(attempt.counters()).await?;
                return Err(Error::Validation(format!(
                    "{} is set up here in a way that needs the user's browser (Duo's Universal Prompt): \
                     an application can start a challenge only with Duo's Auth API.",
                    service.display_name()
                )));
            }
        };
        let judged = factor
            .finish_login(&cx, &credentials, started.state.as_deref(), &answer)
            .await;
        match judged {
            Ok(Progress::Next {
                show: Challenge::Approval { prompt },
                keep,
            }) => {
                let (transaction_id, id_hash) = self.new_session_token()?;
                let expires_at = cx.now + self.config.login_step_ttl_secs;
                let transaction = NewTransaction {
                    id_hash: &id_hash,
                    application_id: app.id,
                    account_id: account.id,
                    service: service.as_str(),
                    sealed: &keep,
                    remote_addr: attempt.remote,
                    expires_at,
                };
                self.store.create_transaction(&transaction, cx.now).await?;
                let result = ChallengeResult::Pending {
                    transaction_id,
                    expires_at,
                    prompt,
                };
                Ok((result, "pending".into()))
            }
            Ok(Progress::Done(accepted)) => {
                let (method, backup_codes_left) =
                    self.accept(account, service, attempt, &event, &accepted, None).await?;
                let result = ChallengeResult::Accept {
                    method,
                    backup_codes_left,
                };
                Ok((result, "accept without asking".into()))
            }
            Ok(Progress::Refused { error, .. }) => self.refused_start(attempt, &event, error).await,
            Ok(Progress::Pending | Progress::Next { .. }) => {
                Err(Error::Internal(format!("{} started no approval", service.as_str())))
            }
            Err(error) => self.refused_start(attempt, &event, error).await,
        }
    }

    /// A challenge the service refused to start: the service's trouble is the caller's
    /// error (and the attempt is taken back); the user's refusal is a reject.
    async fn refused_start(
        &self,
        attempt: &Attempt<'_>,
        event: &str,
        error: Error,
    ) -> Result<(ChallengeResult, String), Error> {
        match error {
            Error::Internal(_) | Error::Unavailable(_) => Err(error),
            Error::ServiceUnreachable { .. } | Error::ServiceMisconfigured { .. } => {
                self.outside_trouble(attempt, event, &error, true).await?;
                Err(error)
            }
            error => Ok((ChallengeResult::Reject, format!("reject: {}", error.code()))),
        }
    }

    /// An application polls its transaction `id`: `NotFound` when it is not the
    /// application's, never was, or has ended.
    pub async fn validate_transaction(&self, app: &AppCaller, id: &str) -> Result<TransactionResult, Error> {
        let gone = || Error::NotFound("No such transaction: it never existed, has ended, or is not yours.".into());
        let id_hash = session_token_hash(id);
        let Some(transaction) = self.store.transaction(&id_hash, app.id).await? else {
            return Err(gone());
        };
        let account = self.store.account(transaction.account_id).await?.ok_or_else(gone)?;
        app.require(Scope::Challenge, account.kind)?;
        // The user's address the application reported when it started the challenge.
        let remote = transaction.remote_addr.as_deref();
        let said = |result: &str| audit_text(app, account.kind, Subject::Name(&account.username), result);
        let service = ServiceId::parse(&transaction.service)
            .ok_or_else(|| Error::Internal(format!("a transaction of unknown service {:?}", transaction.service)))?;
        let event = format!("validate_{}", service.as_str());
        let attempt = Attempt::on_account(account.id, Guess::SecondFactor, remote);
        let now = self.now();
        if transaction.expires_at <= now {
            if !self.store.end_transaction(&id_hash).await? {
                return Err(gone());
            }
            self.audit(
                Some(account.id),
                "validate_transaction",
                "failure",
                remote,
                Some(&said("expired")),
            )
            .await;
            return Ok(TransactionResult::Expired);
        }
        let credentials = of_service(self.store.credentials(account.id).await?, service);
        let settings = self.two_factor_settings().await?;
        let cx = self.factor_cx(&account, &settings, service).await?;
        let judged = self
            .factor(service)
            .finish_login(&cx, &credentials, Some(&transaction.sealed), &Answer::Poll)
            .await;
        let refusal = match judged {
            Ok(Progress::Pending) => return Ok(TransactionResult::Pending),
            Ok(Progress::Done(accepted)) => {
                let (method, backup_codes_left) = match self
                    .accept(&account, service, &attempt, &event, &accepted, Some(&id_hash))
                    .await
                {
                    Ok(accepted) => accepted,
                    // Another poll ended it first.
                    Err(Error::CodeAlreadyUsed) => return Err(gone()),
                    Err(error) => return Err(error),
                };
                self.audit(
                    Some(account.id),
                    "validate_transaction",
                    "success",
                    remote,
                    Some(&said("accept")),
                )
                .await;
                return Ok(TransactionResult::Accept {
                    method,
                    backup_codes_left,
                });
            }
            Ok(Progress::Refused { error, .. }) => error,
            Ok(Progress::Next { .. }) => Error::Internal(format!("{} asked again while polled", service.as_str())),
            // The service's trouble ends nothing: the application polls again.
            Err(error @ (Error::Internal(_) | Error::Unavailable(_))) => return Err(error),
            Err(error @ (Error::ServiceUnreachable { .. } | Error::ServiceMisconfigured { .. })) => {
                self.outside_trouble(&attempt, &event, &error, false).await?;
                return Err(error);
            }
            Err(error) => error,
        };
        if !self.store.end_transaction(&id_hash).await? {
            return Err(gone());
        }
        let result = match refusal {
            Error::NoAnswerInTime { .. } => TransactionResult::Expired,
            _ => TransactionResult::Reject,
        };
        // Audited (never counted again: the challenge was counted when it started).
        let wrong = Checked::Wrong {
            error: refusal,
            keep: None,
        };
        if let Err(error @ (Error::Internal(_) | Error::Unavailable(_))) =
            self.settle(account.id, None, &attempt, wrong, &event, None, true).await
        {
            return Err(error);
        }
        let said = said(if result == TransactionResult::Expired {
            "expired"
        } else {
            "reject"
        });
        self.audit(Some(account.id), "validate_transaction", "failure", remote, Some(&said))
            .await;
        Ok(result)
    }

    /// Settles an accepted answer of `service` (the transaction `id_hash` ended with it,
    /// if there is one): its method, and how many backup codes the account holds.
    async fn accept(
        &self,
        account: &Account,
        service: ServiceId,
        attempt: &Attempt<'_>,
        event: &str,
        accepted: &Accepted,
        id_hash: Option<&[u8]>,
    ) -> Result<(Method, u32), Error> {
        let right = Checked::Right(Consumption::Credential {
            id: accepted.credential_id,
            service: service.as_str(),
            guard: &accepted.guard,
            kept: id_hash.map(Kept::Transaction),
        });
        self.settle(account.id, None, attempt, right, event, accepted.note.as_deref(), true)
            .await?;
        let backup_codes_left = u32::from(self.store.backup_code(account.id).await?.is_some());
        Ok((Method::from(service), backup_codes_left))
    }
}

/// A refused count as the answer that says so.
fn locked(error: Error) -> Result<ChallengeResult, Error> {
    match error {
        Error::LockedOut { retry_after_secs } => Ok(ChallengeResult::Locked {
            retry_after: Some(retry_after_secs),
        }),
        Error::SecondFactorLocked => Ok(ChallengeResult::Locked { retry_after: None }),
        other => Err(other),
    }
}
