//! Logging in: the password, then a second factor or a backup code, then a session.
//!
//! A session is only `Authenticated` after both factors. Until then it is half-logged-in:
//! its stage allows the next step of the login and nothing else (the web layer refuses
//! every other call, and these functions check the stage again).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::factors::{Accepted, Answer, Challenge, Progress};
use super::support::{settings_of, Attempt, SETTINGS_KEY};
use super::{Error, Services, Verdict};
use crate::core::backup_codes::{self, BackupCode};
use crate::core::lockout::Guess;
use crate::core::policy::{AccountKind, NextStep, ServiceId, TwoFactorSettings};
use crate::random;
use crate::store::{
    Account, Consumption, Counting, Credential, Judged, Kept, KeptChallenge, LiveSession, Purpose, SecondStep, Session,
    SessionUpgrade, Settled, Stage, StoredChallenge,
};

/// A new session and what the login must do next.
pub struct LoginOutcome {
    pub session_token: String,
    pub next: NextStep,
    /// For `NextStep::SecondFactor`: every credential the account can answer with.
    pub methods: Vec<Method>,
    /// For `NextStep::SecondFactor`: what the first method asks for, or why it cannot be
    /// used now (Duo denies the user, or cannot be reached): the others still can.
    pub challenge: Option<Result<Challenge, Error>>,
}

/// A credential offered at the second step.
#[derive(Clone, Debug)]
pub struct Method {
    pub service: ServiceId,
    pub credential_id: i64,
    pub label: String,
}

/// The hash under which a session token is stored; the token itself is only in the cookie.
/// (Also an application's transaction id and an enrolment link's token.) A token made by
/// [`Services::new_session_token`] begins with the time it was made, and its hash keeps
/// that beginning before the SHA-256: new keys land together at the end of their index,
/// where a login's two writes to the sessions' index find their pages already at hand,
/// instead of on two random pages of a large index. A token of an earlier release (32
/// random bytes) hashes as it did.
pub fn session_token_hash(token: &str) -> Vec<u8> {
    let digest = Sha256::digest(token.as_bytes());
    match data_encoding::BASE64URL_NOPAD.decode(token.as_bytes()) {
        Ok(bytes) if bytes.len() == TIME_BYTES + TOKEN_RANDOM_BYTES => [&bytes[..TIME_BYTES], &digest[..]].concat(),
        _ => digest.to_vec(),
    }
}

/// A session token's beginning: the time it was made (seconds, big-endian, so that keys
/// sort by it).
const TIME_BYTES: usize = 8;
const TOKEN_RANDOM_BYTES: usize = 32;

/// A new session token, made at `made_at`, and the hash the database keeps of it.
fn new_session_token_at(made_at: i64) -> Result<(String, Vec<u8>), Error> {
    let random = random::bytes::<TOKEN_RANDOM_BYTES>()?;
    let token = data_encoding::BASE64URL_NOPAD.encode(&[&made_at.to_be_bytes()[..], &random[..]].concat());
    let hash = session_token_hash(&token);
    Ok((token, hash))
}

impl Services {
    /// A new session token, and the hash the database keeps of it.
    pub(crate) fn new_session_token(&self) -> Result<(String, Vec<u8>), Error> {
        new_session_token_at(self.now())
    }
}

/// The service of a stored credential; an unknown one is an error, never "no 2FA".
fn service_of(account: &Account, credential: &Credential) -> Result<ServiceId, Error> {
    ServiceId::parse(&credential.service).ok_or_else(|| {
        Error::Internal(format!(
            "account {} uses unknown service {}",
            account.id, credential.service
        ))
    })
}

/// The account's credentials as login methods. Fails closed: a credential of a service this
/// build does not know still blocks the login.
fn methods_of(account: &Account, credentials: &[Credential]) -> Result<Vec<Method>, Error> {
    credentials
        .iter()
        .map(|credential| {
            Ok(Method {
                service: service_of(account, credential)?,
                credential_id: credential.id,
                label: credential.label.clone(),
            })
        })
        .collect()
}

pub(crate) fn of_service(credentials: Vec<Credential>, service: ServiceId) -> Vec<Credential> {
    credentials
        .into_iter()
        .filter(|credential| credential.service == service.as_str())
        .collect()
}

impl Services {
    /// Step one: the password. Unknown names cost the same time as known ones.
    pub async fn login(
        &self,
        kind: AccountKind,
        username: &str,
        password: &str,
        remote: Option<&str>,
    ) -> Result<LoginOutcome, Error> {
        let Some(account) = self.account_named(kind, username).await? else {
            let attempt = Attempt::on_unknown_name(&self.name_key, kind, username, Guess::Password, remote);
            self.count_attempt(&attempt).await?;
            let _ = self.check_password(password, dummy_password_hash()).await;
            self.audit(None, "login_password", "unknown_account", remote, Some(kind.as_str()))
                .await;
            return Err(Error::InvalidCredentials);
        };
        let attempt = Attempt::on_account(account.id, Guess::Password, remote);
        self.count_attempt(&attempt).await?;
        if !self.check_password(password, &account.password_hash).await? {
            self.audit(Some(account.id), "login_password", "failure", remote, None)
                .await;
            return Err(Error::InvalidCredentials);
        }
        self.clear_attempts(&attempt).await?;
        self.audit(Some(account.id), "login_password", "success", remote, None)
            .await;

        let settings = self.two_factor_settings().await?;
        let credentials = self.store.credentials(account.id).await?;
        let methods = methods_of(&account, &credentials)?;
        let next = settings.next_step(account.kind, methods.first().map(|m| m.service));
        let stage = match next {
            NextStep::Authenticated => Stage::Authenticated,
            NextStep::SecondFactor(_) => Stage::SecondFactor,
            NextStep::Enrolment(_) => Stage::Enrolment,
        };
        let (session_token, session_hash) = self.create_session(account.id, stage).await?;
        let challenge = match next {
            NextStep::SecondFactor(service) => Some(
                self.start_second_factor(&session_hash, &account, &settings, service, credentials, remote)
                    .await?,
            ),
            _ => None,
        };
        Ok(LoginOutcome {
            session_token,
            next,
            methods,
            challenge,
        })
    }

    /// Asks `service`'s factor what the second step needs, and keeps what it must remember
    /// for this session. The factor's refusal (Duo denies the user, or cannot be reached) is
    /// audited and given back as the challenge's place: the login goes on with the others.
    async fn start_second_factor(
        &self,
        session_hash: &[u8],
        account: &Account,
        settings: &TwoFactorSettings,
        service: ServiceId,
        credentials: Vec<Credential>,
        remote: Option<&str>,
    ) -> Result<Result<Challenge, Error>, Error> {
        let cx = self.factor_cx(account, settings, service).await?;
        let started = self
            .factor(service)
            .start_login(&cx, &of_service(credentials, service))
            .await;
        let step = match started {
            Ok(step) => step,
            Err(error @ (Error::Internal(_) | Error::Unavailable(_))) => return Err(error),
            Err(error) => {
                let event = format!("login_{}", service.as_str());
                self.audit(Some(account.id), &event, "failure", remote, Some(&error.audit_detail()))
                    .await;
                self.recheck_clock(&error).await;
                return Ok(Err(error));
            }
        };
        if let Some(sealed) = step.state {
            let kept = StoredChallenge {
                service: service.as_str().into(),
                label: None,
                sealed,
            };
            let expires_at = cx.now + self.config.login_step_ttl_secs;
            self.store
                .put_challenge(session_hash, Purpose::Login, &kept, expires_at)
                .await?;
        }
        Ok(Ok(step.show))
    }

    /// The methods the second-factor page offers, and what `service` (by default the first
    /// method's) asks for; no methods without a second factor.
    pub async fn second_factor_methods(
        &self,
        session: &Session,
        account: &Account,
        service: Option<ServiceId>,
        remote: Option<&str>,
    ) -> Result<(Vec<Method>, Option<Result<Challenge, Error>>), Error> {
        let credentials = self.store.credentials(account.id).await?;
        let methods = methods_of(account, &credentials)?;
        let Some(service) = service.or(methods.first().map(|m| m.service)) else {
            return Ok((methods, None));
        };
        if !methods.iter().any(|m| m.service == service) {
            return Err(not_a_method(service));
        }
        let settings = self.two_factor_settings().await?;
        let challenge = self
            .start_second_factor(&session.token_hash, account, &settings, service, credentials, remote)
            .await?;
        Ok((methods, Some(challenge)))
    }

    /// The credentials the account can answer the second step with.
    pub async fn login_methods(&self, account: &Account) -> Result<Vec<Method>, Error> {
        methods_of(account, &self.store.credentials(account.id).await?)
    }

    /// Creates a session; returns its token (for the cookie) and the token's hash.
    async fn create_session(&self, account_id: i64, stage: Stage) -> Result<(String, Vec<u8>), Error> {
        let (token, token_hash) = self.new_session_token()?;
        let now = self.now();
        let session = Session {
            token_hash,
            account_id,
            stage,
            csrf_token: random::token()?,
            expires_at: now + self.stage_ttl(stage),
            // A login without a second factor has proven all the account has.
            verified_at: (stage == Stage::Authenticated).then_some(now),
        };
        self.store.create_session(&session, now).await?;
        Ok((token, session.token_hash))
    }

    pub(crate) fn stage_ttl(&self, stage: Stage) -> i64 {
        match stage {
            Stage::Authenticated => self.config.session_ttl_secs,
            Stage::SecondFactor | Stage::Enrolment | Stage::LinkEnrolment => self.config.login_step_ttl_secs,
        }
    }

    /// The live session a cookie names, with its account (and what its second step reads,
    /// if it is at it).
    pub async fn session(&self, token: &str) -> Result<Option<LiveSession>, Error> {
        Ok(self
            .store
            .session(&session_token_hash(token), SETTINGS_KEY, self.now())
            .await?)
    }

    /// Step two: the answer to one of the account's second factors (`service`, or the first
    /// one enrolled). `step`: what the step reads, read with the session.
    pub async fn verify_second_factor(
        &self,
        session: &Session,
        account: &Account,
        step: Option<SecondStep>,
        service: Option<ServiceId>,
        answer: &Answer,
        remote: Option<&str>,
    ) -> Result<Verdict, Error> {
        require_stage(session, Stage::SecondFactor)?;
        let step = step.ok_or_else(|| Error::Internal("a session at the second step was read without it".into()))?;
        let methods = methods_of(account, &step.credentials)?;
        let service = service
            .or(methods.first().map(|m| m.service))
            .ok_or(Error::Unauthenticated)?;
        let attempt = Attempt::on_account(account.id, Guess::SecondFactor, remote);
        let answered = self
            .answer_second_factor(
                account,
                Some((session, step.kept)),
                step.credentials,
                &settings_of(step.setting)?,
                service,
                answer,
                &attempt,
                "login",
            )
            .await?;
        Ok(match answered {
            Answered::Accepted(session_token) => Verdict::Accepted {
                session_token: session_token
                    .ok_or_else(|| Error::Internal("a completed login without a new session token".into()))?,
            },
            Answered::Pending => Verdict::Pending,
            Answered::Next(challenge) => Verdict::Next(challenge),
        })
    }

    /// Judges an answer to `service` (a login's, whose `session` it completes, with the
    /// challenge kept for it; or an application's, without a session), counted and
    /// single-use as at every login; its audit event is `<origin>_<service>`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn answer_second_factor(
        &self,
        account: &Account,
        login: Option<(&Session, Option<StoredChallenge>)>,
        credentials: Vec<Credential>,
        settings: &TwoFactorSettings,
        service: ServiceId,
        answer: &Answer,
        attempt: &Attempt<'_>,
        origin: &str,
    ) -> Result<Answered, Error> {
        let credentials = of_service(credentials, service);
        if credentials.is_empty() {
            return Err(not_a_method(service));
        }
        let cx = self.factor_cx(account, settings, service).await?;
        let (session, kept) = match login {
            Some((session, kept)) => (Some(session), kept.filter(|kept| kept.service == service.as_str())),
            None => (None, None),
        };
        let factor = self.factor(service);
        let event = format!("{origin}_{}", service.as_str());
        // An answer checked by an outside service is counted before it is sent, so that a
        // locked-out guesser never reaches the service (and taken back if the service could
        // not judge it: see `outside_trouble`). A poll is no new answer: what it waits on
        // was counted when it started.
        let polling = *answer == Answer::Poll;
        let counted_now = !polling && factor.calls_out(&cx, answer);
        if counted_now {
            self.count_attempt(attempt).await?;
        }
        let judged = factor
            .finish_login(&cx, &credentials, kept.as_ref().map(|k| k.sealed.as_slice()), answer)
            .await;
        let guard;
        let mut note = None;
        let checked = match judged {
            Ok(Progress::Done(Accepted {
                credential_id,
                guard: used,
                note: said,
            })) => {
                guard = used;
                note = said;
                Checked::Right(Consumption::Credential {
                    id: credential_id,
                    service: service.as_str(),
                    guard: &guard,
                    kept: kept
                        .as_ref()
                        .zip(session)
                        .map(|(_, session)| Kept::Session(&session.token_hash)),
                })
            }
            Ok(Progress::Pending) => return Ok(Answered::Pending),
            Ok(Progress::Next { show, keep }) => {
                let session = session.ok_or_else(|| Error::Validation("This needs a login session.".into()))?;
                let kept = StoredChallenge {
                    service: service.as_str().into(),
                    label: None,
                    sealed: keep,
                };
                let expires_at = cx.now + self.config.login_step_ttl_secs;
                self.store
                    .put_challenge(&session.token_hash, Purpose::Login, &kept, expires_at)
                    .await?;
                return Ok(Answered::Next(show));
            }
            Ok(Progress::Refused { error, keep }) => Checked::Wrong {
                error,
                keep: Some(StoredChallenge {
                    service: service.as_str().into(),
                    label: None,
                    sealed: keep,
                }),
            },
            // The server's trouble is no answer of the user's: nothing to count.
            Err(error @ (Error::Internal(_) | Error::Unavailable(_))) => return Err(error),
            Err(error @ (Error::ServiceUnreachable { .. } | Error::ServiceMisconfigured { .. })) => {
                self.outside_trouble(attempt, &event, &error, counted_now).await?;
                return Err(error);
            }
            Err(error) => Checked::Wrong { error, keep: None },
        };
        let session_token = self
            .settle(
                account.id,
                session,
                attempt,
                checked,
                &event,
                note.as_deref(),
                counted_now || polling,
            )
            .await?;
        Ok(Answered::Accepted(session_token))
    }

    /// Counts a checked answer, and consumes it and completes the login (of `session`, if
    /// there is one) if it is right and the count allows, with its audit event, in one
    /// transaction (see `Store::settle_second_factor`). Returns the session's new token.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn settle(
        &self,
        account_id: i64,
        session: Option<&Session>,
        attempt: &Attempt<'_>,
        checked: Checked<'_>,
        event: &str,
        success_detail: Option<&str>,
        counted_before: bool,
    ) -> Result<Option<String>, Error> {
        let now = self.now();
        let renewed = session.map(|_| self.new_session_token()).transpose()?;
        let (judged, wrong, already_used) = match &checked {
            Checked::Right(consumption) => {
                let upgrade = session
                    .zip(renewed.as_ref())
                    .map(|(session, (_, new_token_hash))| SessionUpgrade {
                        token_hash: &session.token_hash,
                        new_token_hash,
                        from: session.stage,
                        expires_at: now + self.stage_ttl(Stage::Authenticated),
                        verified_at: now,
                    });
                let already_used = match consumption {
                    Consumption::Credential { .. } => Error::CodeAlreadyUsed,
                    Consumption::BackupCode { .. } => Error::InvalidBackupCode,
                };
                let right = Judged::Right {
                    consumption: *consumption,
                    session: upgrade,
                };
                (right, None, Some(already_used))
            }
            Checked::Wrong { error, keep } => {
                let keep = keep.as_ref().zip(session).map(|(challenge, session)| KeptChallenge {
                    session_hash: &session.token_hash,
                    challenge,
                    expires_at: now + self.config.login_step_ttl_secs,
                });
                (Judged::Wrong { keep }, Some(error), None)
            }
        };
        let error_of = |settled: &Settled| match settled {
            Settled::Completed => None,
            Settled::Refused(refusal) => Some(Error::from(*refusal)),
            Settled::Wrong => Some(wrong.cloned().unwrap_or(Error::InvalidCode)),
            Settled::AlreadyUsed => Some(already_used.clone().unwrap_or(Error::CodeAlreadyUsed)),
            Settled::SessionGone => Some(Error::Unauthenticated),
        };
        let audit = |settled: &Settled| {
            let account_id = Some(account_id);
            match (settled, error_of(settled)) {
                (_, None) => self.audit_record(account_id, event, "success", attempt.remote, success_detail),
                (Settled::Refused(_), Some(error)) => self.refusal_record(attempt, &error),
                (_, Some(error)) => self.audit_record(account_id, event, "failure", attempt.remote, Some(error.code())),
            }
        };
        let counting = (!counted_before).then_some(Counting {
            policy: &self.config.lockout,
            hard_lock: attempt.guess.hard_lock_applies(),
        });
        let settled = self
            .store
            .settle_second_factor(account_id, counting, attempt.counters(), judged, audit, now)
            .await?;
        match error_of(&settled) {
            None => Ok(renewed.map(|(token, _)| token)),
            Some(error) => Err(error),
        }
    }

    /// Step two with the backup code: consumed, and the next one returned to be shown, with
    /// the new session token.
    pub async fn login_with_backup_code(
        &self,
        session: &Session,
        account: &Account,
        input: &str,
        remote: Option<&str>,
    ) -> Result<(BackupCode, String), Error> {
        require_stage(session, Stage::SecondFactor)?;
        let attempt = Attempt::on_account(account.id, Guess::BackupCode, remote);
        let (next, session_token) = self
            .use_backup_code(account.id, Some(session), input, &attempt, "login_backup_code")
            .await?;
        let session_token =
            session_token.ok_or_else(|| Error::Internal("a completed login without a new session token".into()))?;
        Ok((next, session_token))
    }

    /// A backup code, counted as `attempt`: if right (and the count allows), consumed and
    /// replaced by the next one, which is returned to be shown once, with the session's new
    /// token if there is a session to complete. Audited as `event`.
    pub(crate) async fn use_backup_code(
        &self,
        account_id: i64,
        session: Option<&Session>,
        input: &str,
        attempt: &Attempt<'_>,
        event: &str,
    ) -> Result<(BackupCode, Option<String>), Error> {
        let code = BackupCode::parse(input).map_err(|e| Error::MalformedCode(e.to_string()))?;
        let used = code.hash(&self.backup_code_key);
        let stored = self.store.backup_code(account_id).await?;
        let matches = stored.is_some_and(|(stored, _)| bool::from(stored.as_slice().ct_eq(&used)));
        let next = BackupCode::from_random(random::bytes::<{ backup_codes::RANDOM_BYTES }>()?);
        let next_hash = next.hash(&self.backup_code_key);
        let checked = if matches {
            Checked::Right(Consumption::BackupCode {
                used: &used,
                next: &next_hash,
            })
        } else {
            Checked::Wrong {
                error: Error::InvalidBackupCode,
                keep: None,
            }
        };
        let session_token = self
            .settle(
                account_id,
                session,
                attempt,
                checked,
                event,
                Some("new backup code issued"),
                false,
            )
            .await?;
        Ok((next, session_token))
    }

    pub async fn logout(&self, session: &Session, remote: Option<&str>) -> Result<(), Error> {
        self.store.delete_session(&session.token_hash).await?;
        self.audit(Some(session.account_id), "logout", "success", remote, None)
            .await;
        Ok(())
    }
}

/// How an answer to a second factor ended (see `Services::answer_second_factor`).
pub(crate) enum Answered {
    /// Right: the session's new token, if there was a session.
    Accepted(Option<String>),
    Pending,
    Next(Challenge),
}

/// What the check of an answer found, before it is settled.
pub(crate) enum Checked<'a> {
    Right(Consumption<'a>),
    Wrong {
        error: Error,
        /// What the factor remembers of it for the session's next answer.
        keep: Option<StoredChallenge>,
    },
}

fn not_a_method(service: ServiceId) -> Error {
    Error::Validation(format!("{} is not one of your second factors.", service.display_name()))
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
pub(crate) fn dummy_password_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Gz5Bq7Jb0iFq8JyAq4H2mQ1m7eV8w3pXyC0f6k2dL9s"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::password;

    #[test]
    fn the_dummy_hash_costs_a_real_verification_and_never_matches() {
        let scratch = &mut password::Scratch::default();
        assert_eq!(password::verify("anything", dummy_password_hash(), scratch), Ok(false));
        assert_eq!(password::verify("", dummy_password_hash(), scratch), Ok(false));
    }

    #[test]
    fn session_keys_sort_by_the_time_their_token_was_made() {
        let (early, early_hash) = new_session_token_at(1_800_000_000).unwrap();
        let (late, late_hash) = new_session_token_at(1_800_000_001).unwrap();
        let (same_second, same_second_hash) = new_session_token_at(1_800_000_000).unwrap();
        assert!(early_hash < late_hash && same_second_hash < late_hash);
        assert_ne!(early_hash, same_second_hash);
        for (token, hash) in [
            (&early, &early_hash),
            (&late, &late_hash),
            (&same_second, &same_second_hash),
        ] {
            assert_eq!(token.len(), 54, "{token}");
            assert_eq!(
                hash[8..],
                Sha256::digest(token.as_bytes())[..],
                "the key holds the whole token's digest"
            );
        }
        assert_eq!(early_hash[..8], 1_800_000_000_i64.to_be_bytes());
    }

    #[test]
    fn a_token_of_an_earlier_release_keeps_its_hash() {
        let old = random::token().unwrap();
        assert_eq!(session_token_hash(&old), Sha256::digest(old.as_bytes()).to_vec());
        assert_eq!(
            session_token_hash("not base64!"),
            Sha256::digest(b"not base64!").to_vec()
        );
    }
}
