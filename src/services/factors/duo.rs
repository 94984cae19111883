//! Duo Security, in either of its two modes.
//!
//! Through the Auth API, `preauth` says whether the user may answer and on which devices;
//! the user picks a push, a call or text-message passcodes on one of them, or types a
//! passcode. A push or a call is a Duo transaction answered later: its `txid` stays in the
//! sealed state the services keep for the session, polled by the server and never sent to
//! the client, so no client can point a login at another login's approval.
//!
//! Through the Universal Prompt, the browser leaves for Duo with a signed request and comes
//! back to `/login/duo/callback` with a `state` and a code: the state must be the one kept
//! for this session (single use, five minutes), and the `id_token` the code is exchanged
//! for must be Duo's, for this user and this login's nonce, and say `allow`.
//!
//! A credential is the account's enrolment with Duo, proved by one successful Duo
//! authentication (after activating Duo Mobile if Duo did not know the user). Its external
//! ID is the account's Duo username: one Duo user answers for one account only.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{
    Accepted, Answer, Challenge, Choice, EnrolmentSetup, FactorCx, NewCredential, Progress, ReplayGuard, SecondFactor,
    Step,
};
use crate::core::duo_api::{
    diagnosis, Activation, ActivationStatus, AuthResult, Capability, Device, DuoFailure, Preauth,
};
use crate::core::duo_oidc::{self, OidcError};
use crate::core::policy::{DuoMode, DuoUsername, FailMode, ServiceId};
use crate::outbound::duo::{AuthFactor, AuthStarted, Integration, WebSdk};
use crate::random;
use crate::services::Error;
use crate::store::Credential;

pub struct DuoFactor;

/// The most pushes, calls and text messages one login or enrolment step may start (ASVS
/// 5.0 §6.6.4, push bombing). Each is also counted against the account's lockout.
pub const MAX_STARTS_PER_STEP: u32 = 3;

/// How long an approved transaction id is remembered as used (Duo ends a transaction
/// within a minute or two).
const TXID_LEDGER_SECS: i64 = 86_400;

/// How long a Duo Mobile activation link stays valid.
const ACTIVATION_VALID_SECS: u32 = 3600;

/// How long a Universal Prompt's `state` and `nonce` stay valid.
const PROMPT_VALID_SECS: i64 = 300;

/// Where Duo sends the browser back after the Universal Prompt, under `public_url`.
pub const CALLBACK_PATH: &str = "/login/duo/callback";

/// What the services keep, sealed, between two requests.
#[derive(Serialize, Deserialize)]
enum State {
    /// The user's devices, as `preauth` gave them: choose a way, or type a passcode.
    Offered {
        devices: Vec<Offered>,
        started: u32,
        notice: Option<String>,
    },
    /// A push or a call waiting for the user.
    Waiting {
        txid: String,
        prompt: String,
        devices: Vec<Offered>,
        started: u32,
    },
    /// Duo Mobile being activated for a user new to Duo (enrolment).
    Activating { user_id: String, activation_code: String },
    /// Let in without a second factor (Duo's bypass, or Duo unreachable and the settings
    /// fail open), with what the audit records of it.
    Allowed { note: String },
    /// The browser was sent to the Universal Prompt at `url`: the callback must bring back
    /// `state`, and the `id_token` carry `nonce`.
    Prompt {
        url: String,
        state: String,
        nonce: String,
        issued_at: i64,
    },
}

/// A device and what it can do.
#[derive(Clone, Serialize, Deserialize)]
struct Offered {
    id: String,
    name: String,
    push: bool,
    phone: bool,
    sms: bool,
}

impl From<&Device> for Offered {
    fn from(device: &Device) -> Offered {
        let can = |capability| device.capabilities.contains(&capability);
        Offered {
            id: device.id.clone(),
            name: device.display_name.clone(),
            push: can(Capability::Push),
            phone: can(Capability::Phone),
            sms: can(Capability::Sms),
        }
    }
}

/// The ways a [`Challenge::Choose`] offers on each device; an option's id is its way and
/// the device's place in the list (`push:0`), checked against the kept state.
const WAYS: [(&str, &str); 3] = [
    ("push", "Send Me a Push"),
    ("phone", "Call Me"),
    ("sms", "Text Me Passcodes"),
];

fn choose(devices: &[Offered], notice: Option<String>) -> Challenge {
    let mut options = Vec::new();
    for (index, device) in devices.iter().enumerate() {
        for (way, label) in WAYS {
            let can = match way {
                "push" => device.push,
                "phone" => device.phone,
                _ => device.sms,
            };
            if can {
                options.push(Choice {
                    id: format!("{way}:{index}"),
                    label: label.into(),
                    device: device.name.clone(),
                    approval: way != "sms",
                });
            }
        }
    }
    Challenge::Choose {
        options,
        passcode: true,
        notice,
    }
}

/// What an answer led to, before it is a login or an enrolment.
enum Outcome {
    /// Duo authenticated the user: what it used up, and the audit's note.
    Authenticated {
        guard: ReplayGuard,
        note: Option<String>,
    },
    Pending,
    Refused {
        error: Error,
        keep: State,
    },
    Next {
        show: Challenge,
        keep: State,
    },
}

/// The account's name at Duo, as the settings choose it.
fn duo_username(cx: &FactorCx<'_>) -> Result<String, Error> {
    match cx.settings.services.duo.settings.username {
        DuoUsername::Username => Ok(cx.account.username.clone()),
        DuoUsername::Email => cx.account.email.clone().filter(|e| !e.is_empty()).ok_or_else(|| {
            Error::Denied(
                "Duo Security knows users here by their e-mail address, and your account has none: ask an administrator."
                    .into(),
            )
        }),
    }
}

/// Duo's failure as the user's and the administrator's error: never a wrong code.
fn failure(failure: DuoFailure) -> Error {
    let service = ServiceId::Duo.display_name();
    let advice = diagnosis(&failure).unwrap_or("Duo refused the request.");
    match failure {
        DuoFailure::Refused { code, message, .. } => Error::ServiceMisconfigured {
            service,
            detail: format!("Duo answered {code} {message}: {advice}"),
        },
        DuoFailure::RateLimited { retry_after_secs } => Error::ServiceUnreachable {
            service,
            detail: format!("{advice} (retry after {retry_after_secs:?} s)"),
        },
        DuoFailure::Unavailable { status } => Error::ServiceUnreachable {
            service,
            detail: format!("HTTP {status}: {advice}"),
        },
        DuoFailure::Garbled(detail) | DuoFailure::Unreachable(detail) => Error::ServiceUnreachable {
            service,
            detail: format!("{detail}: {advice}"),
        },
    }
}

/// A denied push or passcode, with the clock's part in it when the last check found one.
fn incorrect(cx: &FactorCx<'_>) -> Error {
    let clock_note = match cx.service_clock {
        Some(reading) if reading.is_off() => format!(
            " This server's clock is off from Duo's by {} seconds: tell an administrator.",
            reading.offset_secs
        ),
        _ => String::new(),
    };
    Error::SecondFactorIncorrect { clock_note }
}

/// The Auth API application of the settings, with its Secret Key opened.
struct Duo<'c, 'a> {
    cx: &'c FactorCx<'a>,
    secret_key: SecretString,
}

impl<'c, 'a> Duo<'c, 'a> {
    fn new(cx: &'c FactorCx<'a>) -> Result<Duo<'c, 'a>, Error> {
        let secret_key = cx
            .secrets
            .get("secret_key")
            .ok_or_else(|| Error::ServiceMisconfigured {
                service: ServiceId::Duo.display_name(),
                detail: "no Secret Key is set".into(),
            })?;
        Ok(Duo {
            cx,
            secret_key: SecretString::from(secret_key),
        })
    }

    fn web_sdk(&self) -> WebSdk<'_> {
        let settings = &self.cx.settings.services.duo.settings;
        WebSdk {
            api_hostname: &settings.api_hostname,
            client_id: &settings.integration_key,
            client_secret: &self.secret_key,
        }
    }

    fn oidc(&self) -> duo_oidc::Client<'_> {
        let settings = &self.cx.settings.services.duo.settings;
        duo_oidc::Client {
            client_id: &settings.integration_key,
            client_secret: self.secret_key.expose_secret(),
            api_host: &settings.api_hostname,
        }
    }

    /// Where a login or an enrolment starts, by the settings' mode.
    async fn begin(&self, username: &str) -> Result<Begun, Error> {
        match self.cx.settings.services.duo.settings.mode {
            DuoMode::UniversalPrompt => Ok(Begun::Prompt(self.prompt(username).await?)),
            DuoMode::AuthApi => Ok(Begun::Preauth(self.preauth(username).await?)),
        }
    }

    /// Sends the browser to the Universal Prompt, after Duo's health check.
    async fn prompt(&self, username: &str) -> Result<State, Error> {
        let api = &self.cx.outbound.duo;
        api.health_check(&self.web_sdk(), self.cx.now).await.map_err(failure)?;
        let (state, nonce) = (random::alphanumeric(36)?, random::alphanumeric(36)?);
        let url = self
            .oidc()
            .authorize_url(username, &state, &nonce, &callback_url(self.cx)?, self.cx.now)
            .ok_or_else(|| Error::Internal("the Universal Prompt's request could not be signed".into()))?;
        Ok(State::Prompt {
            url,
            state,
            nonce,
            issued_at: self.cx.now,
        })
    }

    /// Duo's answer through the browser: the code for the `id_token`, if `returned` is the
    /// kept `state`.
    async fn callback(
        &self,
        username: &str,
        kept: (&str, &str, i64),
        returned: &str,
        code: &str,
    ) -> Result<Outcome, Error> {
        let (state, nonce, issued_at) = kept;
        if !bool::from(state.as_bytes().ct_eq(returned.as_bytes())) {
            return Err(Error::Denied(
                "This answer from Duo Security is not for this login. Log in again.".into(),
            ));
        }
        if self.cx.now > issued_at + PROMPT_VALID_SECS {
            return Err(Error::Conflict("The Duo Security prompt expired. Log in again.".into()));
        }
        let api = &self.cx.outbound.duo;
        let token = api
            .exchange_code(&self.web_sdk(), code, &callback_url(self.cx)?, self.cx.now)
            .await
            .map_err(failure)?;
        match self.oidc().check_id_token(&token, username, nonce, self.cx.now) {
            Ok(_) => Ok(Outcome::Authenticated {
                guard: ReplayGuard::Token {
                    token_hash: Sha256::digest(format!("state:{state}").as_bytes()).to_vec(),
                    expires_at: self.cx.now + TXID_LEDGER_SECS,
                },
                note: None,
            }),
            Err(OidcError::NotAllowed(_)) => Err(incorrect(self.cx)),
            Err(OidcError::Time) => Err(Error::ServiceMisconfigured {
                service: ServiceId::Duo.display_name(),
                detail: format!("{}: synchronise this server with NTP", OidcError::Time),
            }),
            Err(refused) => Err(Error::ServiceMisconfigured {
                service: ServiceId::Duo.display_name(),
                detail: format!("Duo's id_token was refused: {refused}"),
            }),
        }
    }

    fn integration(&self) -> Integration<'_> {
        let settings = &self.cx.settings.services.duo.settings;
        Integration {
            api_hostname: &settings.api_hostname,
            integration_key: &settings.integration_key,
            secret_key: &self.secret_key,
        }
    }

    async fn preauth(&self, username: &str) -> Result<Preauth, Error> {
        let api = &self.cx.outbound.duo;
        api.preauth(&self.integration(), username, None, self.cx.now)
            .await
            .map_err(failure)
    }

    async fn auth(&self, username: &str, factor: &AuthFactor<'_>) -> Result<AuthStarted, Error> {
        let api = &self.cx.outbound.duo;
        api.auth(&self.integration(), username, factor, None, self.cx.now)
            .await
            .map_err(failure)
    }

    async fn auth_status(&self, txid: &str) -> Result<AuthResult, Error> {
        let api = &self.cx.outbound.duo;
        api.auth_status(&self.integration(), txid, self.cx.now)
            .await
            .map_err(failure)
    }

    async fn enroll(&self, username: &str) -> Result<Activation, Error> {
        let api = &self.cx.outbound.duo;
        api.enroll(&self.integration(), username, ACTIVATION_VALID_SECS, self.cx.now)
            .await
            .map_err(failure)
    }

    async fn enroll_status(&self, user_id: &str, activation_code: &str) -> Result<ActivationStatus, Error> {
        let api = &self.cx.outbound.duo;
        api.enroll_status(&self.integration(), user_id, activation_code, self.cx.now)
            .await
            .map_err(failure)
    }

    /// The user's answer to what `state` offered.
    async fn answer(&self, state: State, answer: &Answer) -> Result<Outcome, Error> {
        let username = duo_username(self.cx)?;
        match (state, answer) {
            (State::Allowed { note }, Answer::Poll) => Ok(Outcome::Authenticated {
                // Nothing of Duo's to use up: the step's kept challenge is consumed once.
                guard: ReplayGuard::ChallengeOnly,
                note: Some(note),
            }),
            (State::Offered { devices, started, .. } | State::Waiting { devices, started, .. }, Answer::Code(code)) => {
                let passcode = passcode(code)?;
                match self.auth(&username, &AuthFactor::Passcode(&passcode)).await? {
                    // Duo uses the passcode up itself; the step's challenge is consumed once.
                    AuthStarted::Done(AuthResult::Allow) => Ok(Outcome::Authenticated {
                        guard: ReplayGuard::ChallengeOnly,
                        note: None,
                    }),
                    _ => Ok(Outcome::Refused {
                        error: incorrect(self.cx),
                        keep: State::Offered {
                            devices,
                            started,
                            notice: None,
                        },
                    }),
                }
            }
            (State::Offered { devices, started, .. }, Answer::Choose { option }) => {
                self.start(&username, devices, started, option).await
            }
            (
                State::Waiting {
                    txid, devices, started, ..
                },
                Answer::Poll,
            ) => match self.auth_status(&txid).await? {
                AuthResult::Waiting { .. } => Ok(Outcome::Pending),
                AuthResult::Allow => Ok(Outcome::Authenticated {
                    guard: ReplayGuard::Token {
                        token_hash: Sha256::digest(format!("txid:{txid}").as_bytes()).to_vec(),
                        expires_at: self.cx.now + TXID_LEDGER_SECS,
                    },
                    note: None,
                }),
                AuthResult::Deny { status, .. } => Ok(Outcome::Refused {
                    error: match status.as_str() {
                        "timeout" => Error::NoAnswerInTime {
                            service: ServiceId::Duo.display_name(),
                        },
                        _ => incorrect(self.cx),
                    },
                    keep: State::Offered {
                        devices,
                        started,
                        notice: None,
                    },
                }),
            },
            (
                State::Activating {
                    user_id,
                    activation_code,
                },
                Answer::Poll,
            ) => {
                match self.enroll_status(&user_id, &activation_code).await? {
                    ActivationStatus::Waiting => Ok(Outcome::Pending),
                    ActivationStatus::Invalid => Err(Error::Conflict(
                        "The Duo Mobile activation expired. Start the enrolment again.".into(),
                    )),
                    ActivationStatus::Success => match self.preauth(&username).await? {
                        Preauth::Auth { devices } => {
                            let devices: Vec<Offered> = devices.iter().map(Offered::from).collect();
                            let notice = Some("Duo Mobile is activated. Now log in with it once.".to_string());
                            Ok(Outcome::Next {
                                show: choose(&devices, notice.clone()),
                                keep: State::Offered {
                                    devices,
                                    started: 0,
                                    notice,
                                },
                            })
                        }
                        // Duo may take a moment before the new device shows.
                        _ => Ok(Outcome::Pending),
                    },
                }
            }
            (
                State::Prompt {
                    state,
                    nonce,
                    issued_at,
                    ..
                },
                Answer::Callback { state: returned, code },
            ) => {
                self.callback(&username, (&state, &nonce, issued_at), returned, code)
                    .await
            }
            (State::Prompt { .. }, _) => Err(Error::Validation(
                "Continue at Duo Security: it sends you back here.".into(),
            )),
            (State::Waiting { .. } | State::Activating { .. } | State::Allowed { .. }, _) => Err(Error::Validation(
                "Duo Security is waiting: poll until it answers.".into(),
            )),
            (State::Offered { .. }, _) => Err(Error::Validation(
                "Choose how Duo Security should ask you, or type a passcode.".into(),
            )),
        }
    }

    /// Starts the way `option` names: a push or a call to wait for, or passcodes by text.
    async fn start(&self, username: &str, devices: Vec<Offered>, started: u32, option: &str) -> Result<Outcome, Error> {
        let no_such = || Error::Validation("That is not one of the ways offered.".into());
        let (way, index) = option.split_once(':').ok_or_else(no_such)?;
        let device = index
            .parse::<usize>()
            .ok()
            .and_then(|index| devices.get(index))
            .ok_or_else(no_such)?
            .clone();
        let (factor, prompt) = match way {
            "push" if device.push => (
                AuthFactor::Push { device: &device.id },
                format!("A push was sent to {}: approve it in Duo Mobile.", device.name),
            ),
            "phone" if device.phone => (
                AuthFactor::Phone { device: &device.id },
                format!("Calling {}: answer, and follow the instructions.", device.name),
            ),
            "sms" if device.sms => (AuthFactor::Sms { device: &device.id }, String::new()),
            _ => return Err(no_such()),
        };
        if started >= MAX_STARTS_PER_STEP {
            return Err(Error::Validation(format!(
                "Duo Security was asked {MAX_STARTS_PER_STEP} times for this login: type a passcode, or log in again."
            )));
        }
        let started = started + 1;
        match self.auth(username, &factor).await? {
            AuthStarted::Transaction(txid) => Ok(Outcome::Next {
                show: Challenge::Approval { prompt: prompt.clone() },
                keep: State::Waiting {
                    txid,
                    prompt,
                    devices,
                    started,
                },
            }),
            // Text messages: Duo answers `deny` with the status `sent`.
            AuthStarted::Done(_) => {
                let notice = Some(format!(
                    "Passcodes were sent by text message to {}: type one.",
                    device.name
                ));
                Ok(Outcome::Next {
                    show: choose(&devices, notice.clone()),
                    keep: State::Offered {
                        devices,
                        started,
                        notice,
                    },
                })
            }
        }
    }
}

/// A Duo passcode: 6 to 10 digits (Duo Mobile, a hardware token, a text message, a bypass
/// code), spaces ignored.
fn passcode(text: &str) -> Result<String, Error> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if (6..=10).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
        Ok(digits)
    } else {
        Err(Error::MalformedCode("A Duo passcode is 6 to 10 digits.".into()))
    }
}

fn seal(cx: &FactorCx<'_>, state: &State) -> Result<Vec<u8>, Error> {
    let json = serde_json::to_vec(state).map_err(|e| Error::Internal(e.to_string()))?;
    cx.sealer.seal(&json)
}

fn open(cx: &FactorCx<'_>, sealed: Option<&[u8]>) -> Result<State, Error> {
    let sealed = sealed
        .ok_or_else(|| Error::Conflict("This Duo Security step expired or was already used: start again.".into()))?;
    serde_json::from_slice(&cx.sealer.open(sealed)?).map_err(|e| Error::Internal(format!("a Duo state: {e}")))
}

/// What the state shows.
fn show(state: &State) -> Challenge {
    match state {
        State::Offered { devices, notice, .. } => choose(devices, notice.clone()),
        State::Waiting { prompt, .. } => Challenge::Approval { prompt: prompt.clone() },
        State::Activating { activation_code, .. } => Challenge::Activate {
            link: activation_code.clone(),
        },
        State::Allowed { .. } => Challenge::Approval {
            prompt: "Duo Security lets you in without a second factor.".into(),
        },
        State::Prompt { url, .. } => Challenge::Redirect { url: url.clone() },
    }
}

/// The absolute URL Duo sends the browser back to.
fn callback_url(cx: &FactorCx<'_>) -> Result<String, Error> {
    let base = cx.public_url.ok_or_else(|| Error::ServiceMisconfigured {
        service: ServiceId::Duo.display_name(),
        detail: "the Universal Prompt needs public_url, the address Duo sends the browser back to".into(),
    })?;
    Ok(format!("{}{CALLBACK_PATH}", base.trim_end_matches('/')))
}

/// Where a login or an enrolment starts.
enum Begun {
    /// The browser goes to the Universal Prompt.
    Prompt(State),
    /// What the Auth API's `preauth` says of the user.
    Preauth(Preauth),
}

fn step(cx: &FactorCx<'_>, state: State) -> Result<Step<Challenge>, Error> {
    Ok(Step {
        show: show(&state),
        state: Some(seal(cx, &state)?),
    })
}

fn enrolment_step(cx: &FactorCx<'_>, state: State) -> Result<Step<EnrolmentSetup>, Error> {
    let step = step(cx, state)?;
    Ok(Step {
        show: EnrolmentSetup::Challenge(step.show),
        state: step.state,
    })
}

/// Duo could not be reached: with `failmode: open`, the user is let in (audited as such).
fn fail_open(cx: &FactorCx<'_>, error: Error) -> Result<String, Error> {
    match (&error, cx.settings.services.duo.settings.failmode) {
        (Error::ServiceUnreachable { detail, .. }, FailMode::Open) => {
            Ok(format!("let in without Duo (failmode open): {detail}"))
        }
        _ => Err(error),
    }
}

#[async_trait]
impl SecondFactor for DuoFactor {
    fn id(&self) -> ServiceId {
        ServiceId::Duo
    }

    fn calls_out(&self, _cx: &FactorCx<'_>, answer: &Answer) -> bool {
        matches!(
            answer,
            Answer::Code(_) | Answer::Choose { .. } | Answer::Callback { .. }
        )
    }

    async fn begin_enrolment(&self, cx: &FactorCx<'_>) -> Result<Step<EnrolmentSetup>, Error> {
        let duo = Duo::new(cx)?;
        let username = duo_username(cx)?;
        let preauth = match duo.begin(&username).await? {
            // One round trip through the prompt enrols (at Duo too, if need be).
            Begun::Prompt(state) => return enrolment_step(cx, state),
            Begun::Preauth(preauth) => preauth,
        };
        let state = match preauth {
            Preauth::Auth { devices } => State::Offered {
                devices: devices.iter().map(Offered::from).collect(),
                started: 0,
                notice: None,
            },
            Preauth::Enroll { .. } => {
                let activation = duo.enroll(&username).await?;
                State::Activating {
                    user_id: activation.user_id,
                    activation_code: activation.activation_code,
                }
            }
            Preauth::Allow { .. } => {
                return Err(Error::Denied(
                    "Duo Security lets this account in without a second factor (a bypass), so there is nothing to enrol. Ask an administrator.".into(),
                ))
            }
            Preauth::Deny { message } => return Err(Error::Denied(format!("Duo Security refused: {message}"))),
        };
        enrolment_step(cx, state)
    }

    fn enrolment_setup(&self, cx: &FactorCx<'_>, state: &[u8]) -> Result<EnrolmentSetup, Error> {
        Ok(EnrolmentSetup::Challenge(show(&open(cx, Some(state))?)))
    }

    async fn finish_enrolment(
        &self,
        cx: &FactorCx<'_>,
        state: &[u8],
        answer: &Answer,
    ) -> Result<Progress<NewCredential>, Error> {
        let state = open(cx, Some(state))?;
        let outcome = Duo::new(cx)?.answer(state, answer).await?;
        let username = duo_username(cx)?;
        progress(cx, outcome, |_, _| {
            Ok(NewCredential {
                secret: cx.sealer.seal(username.as_bytes())?,
                counter: None,
                state: None,
                external_id: Some(username.clone()),
            })
        })
    }

    async fn start_login(&self, cx: &FactorCx<'_>, _credentials: &[Credential]) -> Result<Step<Challenge>, Error> {
        let begun = match Duo::new(cx) {
            Ok(duo) => duo.begin(&duo_username(cx)?).await,
            Err(error) => Err(error),
        };
        let state = match begun {
            Ok(Begun::Prompt(state)) => state,
            Ok(Begun::Preauth(Preauth::Auth { devices })) => State::Offered {
                devices: devices.iter().map(Offered::from).collect(),
                started: 0,
                notice: None,
            },
            Ok(Begun::Preauth(Preauth::Allow { message })) => State::Allowed {
                note: format!("Duo bypass: {message}"),
            },
            Ok(Begun::Preauth(Preauth::Deny { message })) => {
                return Err(Error::Denied(format!("Duo Security denied this login: {message}")))
            }
            Ok(Begun::Preauth(Preauth::Enroll { .. })) => {
                return Err(Error::Denied(
                    "Duo Security does not know your account, or it has no device: ask an administrator.".into(),
                ))
            }
            Err(error) => State::Allowed {
                note: fail_open(cx, error)?,
            },
        };
        step(cx, state)
    }

    async fn finish_login(
        &self,
        cx: &FactorCx<'_>,
        credentials: &[Credential],
        state: Option<&[u8]>,
        answer: &Answer,
    ) -> Result<Progress<Accepted>, Error> {
        let credential = credentials.first().ok_or(Error::InvalidCode)?;
        let state = open(cx, state)?;
        let outcome = match Duo::new(cx) {
            Ok(duo) => duo.answer(state, answer).await,
            Err(error) => Err(error),
        };
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => Outcome::Authenticated {
                guard: ReplayGuard::ChallengeOnly,
                note: Some(fail_open(cx, error)?),
            },
        };
        progress(cx, outcome, |guard, note| {
            Ok(Accepted {
                credential_id: credential.id,
                guard,
                note,
            })
        })
    }
}

/// An outcome as a factor's progress, `done` making what an authentication gives.
fn progress<T>(
    cx: &FactorCx<'_>,
    outcome: Outcome,
    done: impl FnOnce(ReplayGuard, Option<String>) -> Result<T, Error>,
) -> Result<Progress<T>, Error> {
    Ok(match outcome {
        Outcome::Authenticated { guard, note } => Progress::Done(done(guard, note)?),
        Outcome::Pending => Progress::Pending,
        Outcome::Refused { error, keep } => Progress::Refused {
            error,
            keep: seal(cx, &keep)?,
        },
        Outcome::Next { show, keep } => Progress::Next {
            show,
            keep: seal(cx, &keep)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(push: bool, phone: bool, sms: bool) -> Offered {
        Offered {
            id: "DPFZRS9FB0D46QFTM891".into(),
            name: "iOS (XXX-XXX-0100)".into(),
            push,
            phone,
            sms,
        }
    }

    #[test]
    fn only_what_a_device_can_do_is_offered() {
        let Challenge::Choose { options, passcode, .. } =
            choose(&[device(true, false, true), device(false, true, false)], None)
        else {
            panic!("not a choice");
        };
        let ids: Vec<&str> = options.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["push:0", "sms:0", "phone:1"]);
        assert_eq!(options[0].label, "Send Me a Push");
        assert!(passcode);
    }

    #[test]
    fn a_passcode_is_six_to_ten_digits() {
        assert_eq!(passcode(" 123 456 ").unwrap(), "123456");
        assert_eq!(passcode("1234567890").unwrap(), "1234567890");
        for bad in ["12345", "12345678901", "12345a", ""] {
            assert!(matches!(passcode(bad), Err(Error::MalformedCode(_))), "{bad}");
        }
    }

    #[test]
    fn duos_refusals_are_the_administrators_and_outages_are_unreachable() {
        let refused = failure(DuoFailure::Refused {
            status: 401,
            code: 40103,
            message: "Invalid signature in request credentials".into(),
            detail: None,
        });
        assert!(
            matches!(&refused, Error::ServiceMisconfigured { detail, .. } if detail.contains("40103") && detail.contains("secret key")),
            "{refused:?}"
        );
        let limited = failure(DuoFailure::RateLimited {
            retry_after_secs: Some(30),
        });
        assert!(matches!(limited, Error::ServiceUnreachable { .. }));
        assert!(matches!(
            failure(DuoFailure::Unavailable { status: 503 }),
            Error::ServiceUnreachable { .. }
        ));
    }
}
