//! Time-Based Tokens: RFC 6238 codes from an authenticator app. An account may have several
//! (a phone and a tablet): a code is checked against each, and the replay counter is the
//! time step, which must increase for each credential (RFC 6238 §5.2).

use async_trait::async_trait;
use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};

use super::{
    Accepted, Answer, Challenge, EnrolmentSetup, FactorCx, NewCredential, Progress, ReplayGuard, SecondFactor, Step,
};
use crate::core::otpauth::KeyUri;
use crate::core::policy::ServiceId;
use crate::core::totp::{self, CredentialState, Rejection, TotpParams};
use crate::random;
use crate::services::Error;
use crate::store::Credential;

/// 160-bit secrets, as RFC 4226 §4 recommends.
const SECRET_BYTES: usize = 20;

pub struct TotpFactor;

/// The sealed form of a TOTP secret.
#[derive(Serialize, Deserialize)]
struct Secret {
    secret: String,
    params: TotpParams,
}

/// The non-secret state of a TOTP credential: the device's clock offset, in steps.
#[derive(Serialize, Deserialize, Default)]
struct State {
    clock_offset: i64,
}

fn seal(cx: &FactorCx<'_>, secret: &[u8], params: TotpParams) -> Result<Vec<u8>, Error> {
    let json = serde_json::to_vec(&Secret {
        secret: BASE32_NOPAD.encode(secret),
        params,
    })
    .map_err(|e| Error::Internal(e.to_string()))?;
    cx.sealer.seal(&json)
}

fn open(cx: &FactorCx<'_>, sealed: &[u8]) -> Result<(Vec<u8>, TotpParams), Error> {
    let json = cx.sealer.open(sealed)?;
    let stored: Secret = serde_json::from_slice(&json).map_err(|e| Error::Internal(format!("TOTP secret: {e}")))?;
    let secret = BASE32_NOPAD
        .decode(stored.secret.as_bytes())
        .map_err(|e| Error::Internal(format!("TOTP secret: {e}")))?;
    Ok((secret, stored.params))
}

fn state_text(clock_offset: i64) -> Option<String> {
    serde_json::to_string(&State { clock_offset }).ok()
}

fn code_of(answer: &Answer) -> Result<&str, Error> {
    match answer {
        Answer::Code(code) => Ok(code),
        _ => Err(Error::Validation("Time-Based Tokens expects a code.".into())),
    }
}

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Malformed(digits) => {
                Error::MalformedCode(format!("Enter the {digits}-digit code from your authenticator app."))
            }
            Rejection::Invalid => Error::InvalidCode,
            Rejection::AlreadyUsed => Error::CodeAlreadyUsed,
            Rejection::OutOfSync => Error::CodeOutOfSync,
            Rejection::EmptyKey(e) => Error::Internal(e.to_string()),
        }
    }
}

/// Of the rejections by each credential, the one that tells the user most: a code that
/// matched one of them (used, or out of sync) over a wrong one, over one of the wrong length.
fn most_telling(rejections: impl Iterator<Item = Rejection>) -> Rejection {
    let rank = |r: &Rejection| match r {
        Rejection::EmptyKey(_) => 4,
        Rejection::AlreadyUsed => 3,
        Rejection::OutOfSync => 2,
        Rejection::Invalid => 1,
        Rejection::Malformed(_) => 0,
    };
    rejections.max_by_key(rank).unwrap_or(Rejection::Invalid)
}

/// What the enrolment page shows: the `otpauth://` URI (for the QR code) and the secret.
fn setup(cx: &FactorCx<'_>, secret: &[u8], params: TotpParams) -> EnrolmentSetup {
    let uri = KeyUri {
        issuer: cx.issuer.to_string(),
        account: cx.account.username.clone(),
        secret: secret.to_vec(),
        params,
    };
    EnrolmentSetup::Totp {
        otpauth_uri: uri.to_uri(),
        secret: BASE32_NOPAD.encode(secret),
        digits: params.digits,
    }
}

#[async_trait]
impl SecondFactor for TotpFactor {
    fn id(&self) -> ServiceId {
        ServiceId::Totp
    }

    async fn begin_enrolment(&self, cx: &FactorCx<'_>) -> Result<Step<EnrolmentSetup>, Error> {
        let secret = random::bytes::<SECRET_BYTES>()?;
        let params = cx.settings.services.totp.settings.enrolment_params();
        Ok(Step {
            show: setup(cx, &secret, params),
            state: Some(seal(cx, &secret, params)?),
        })
    }

    fn enrolment_setup(&self, cx: &FactorCx<'_>, state: &[u8]) -> Result<EnrolmentSetup, Error> {
        let (secret, params) = open(cx, state)?;
        Ok(setup(cx, &secret, params))
    }

    async fn finish_enrolment(
        &self,
        cx: &FactorCx<'_>,
        state: &[u8],
        answer: &Answer,
    ) -> Result<Progress<NewCredential>, Error> {
        let (secret, params) = open(cx, state)?;
        let policy = cx.settings.services.totp.settings.verify_policy();
        let accepted = totp::verify(
            &secret,
            params,
            code_of(answer)?,
            cx.now,
            policy,
            CredentialState::default(),
        )?;
        Ok(Progress::Done(NewCredential {
            // The sealed secret being enrolled becomes the credential's secret as it is.
            secret: state.to_vec(),
            counter: Some(accepted.step),
            state: state_text(accepted.clock_offset),
        }))
    }

    async fn start_login(&self, cx: &FactorCx<'_>, credentials: &[Credential]) -> Result<Step<Challenge>, Error> {
        let digits = match credentials.first() {
            Some(credential) => open(cx, &credential.secret)?.1.digits,
            None => TotpParams::default().digits,
        };
        Ok(Step {
            show: Challenge::TypedCode { length: digits },
            state: None,
        })
    }

    async fn finish_login(
        &self,
        cx: &FactorCx<'_>,
        credentials: &[Credential],
        _state: Option<&[u8]>,
        answer: &Answer,
    ) -> Result<Progress<Accepted>, Error> {
        let code = code_of(answer)?;
        let policy = cx.settings.services.totp.settings.verify_policy();
        let mut rejections = Vec::with_capacity(credentials.len());
        for credential in credentials {
            let (secret, params) = open(cx, &credential.secret)?;
            let remembered = CredentialState {
                last_used_step: credential.counter,
                clock_offset: credential
                    .state
                    .as_deref()
                    .and_then(|text| serde_json::from_str::<State>(text).ok())
                    .unwrap_or_default()
                    .clock_offset,
            };
            match totp::verify(&secret, params, code, cx.now, policy, remembered) {
                // Racing requests may all get here with the same code: the login's
                // compare-and-set on the counter lets exactly one of them through.
                Ok(accepted) => {
                    return Ok(Progress::Done(Accepted {
                        credential_id: credential.id,
                        guard: ReplayGuard::Counter {
                            value: accepted.step,
                            state: state_text(accepted.clock_offset),
                        },
                    }))
                }
                Err(rejection) => rejections.push(rejection),
            }
        }
        Err(most_telling(rejections.into_iter()).into())
    }
}
