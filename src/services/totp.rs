//! Time-Based Tokens: RFC 6238 codes from an authenticator app.

use async_trait::async_trait;
use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};

use super::{
    sealing_context, Answer, Challenge, Consumed, Context, EnrolmentSetup, Error, Judgement, NewEnrolment, ReplayState,
    SecondFactor,
};
use crate::app::App;
use crate::core::otpauth::KeyUri;
use crate::core::policy::ServiceId;
use crate::core::secretbox::NONCE_BYTES;
use crate::core::totp::{self, CredentialState, Rejection, TotpParams};
use crate::random;
use crate::store::TwoFactor;

/// 160-bit secrets, as RFC 4226 §4 recommends.
const SECRET_BYTES: usize = 20;

pub struct TotpService;

/// The sealed form of a TOTP credential.
#[derive(Serialize, Deserialize)]
struct Credential {
    secret: String,
    params: TotpParams,
}

impl Credential {
    fn seal(&self, app: &App, account_id: i64) -> Result<Vec<u8>, Error> {
        let json = serde_json::to_vec(self).map_err(|e| Error::Internal(e.to_string()))?;
        let nonce = random::bytes::<NONCE_BYTES>()?;
        Ok(app.master_key.seal(&json, &context(account_id), nonce))
    }

    fn open(app: &App, account_id: i64, sealed: &[u8]) -> Result<(Vec<u8>, TotpParams), Error> {
        let json = app
            .master_key
            .open(sealed, &context(account_id))
            .map_err(|e| Error::Internal(format!("TOTP credential of account {account_id}: {e}")))?;
        let credential: Credential =
            serde_json::from_slice(&json).map_err(|e| Error::Internal(format!("TOTP credential: {e}")))?;
        let secret = BASE32_NOPAD
            .decode(credential.secret.as_bytes())
            .map_err(|e| Error::Internal(format!("TOTP credential: {e}")))?;
        Ok((secret, credential.params))
    }
}

fn context(account_id: i64) -> String {
    sealing_context(ServiceId::Totp.as_str(), account_id)
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

/// What the enrolment page shows: the `otpauth://` URI (for the QR code) and the secret.
fn setup(app: &App, ctx: &Context<'_>, secret: &[u8], params: TotpParams) -> EnrolmentSetup {
    let uri = KeyUri {
        issuer: app.config.issuer.clone(),
        account: ctx.account.username.clone(),
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
impl SecondFactor for TotpService {
    fn id(&self) -> ServiceId {
        ServiceId::Totp
    }

    async fn begin_enrolment(&self, app: &App, ctx: &Context<'_>) -> Result<NewEnrolment, Error> {
        let secret = random::bytes::<SECRET_BYTES>()?;
        let params = ctx.settings.services.totp.settings.enrolment_params();
        let credential = Credential {
            secret: BASE32_NOPAD.encode(&secret),
            params,
        };
        Ok(NewEnrolment {
            sealed_credential: credential.seal(app, ctx.account.id)?,
            setup: setup(app, ctx, &secret, params),
        })
    }

    fn enrolment_setup(&self, app: &App, ctx: &Context<'_>, sealed_credential: &[u8]) -> Result<EnrolmentSetup, Error> {
        let (secret, params) = Credential::open(app, ctx.account.id, sealed_credential)?;
        Ok(setup(app, ctx, &secret, params))
    }

    async fn confirm_enrolment(
        &self,
        app: &App,
        ctx: &Context<'_>,
        sealed_credential: &[u8],
        answer: &Answer,
    ) -> Result<ReplayState, Error> {
        let (secret, params) = Credential::open(app, ctx.account.id, sealed_credential)?;
        let policy = ctx.settings.services.totp.settings.verify_policy();
        let accepted = totp::verify(
            &secret,
            params,
            code_of(answer)?,
            ctx.now,
            policy,
            CredentialState::default(),
        )?;
        Ok(ReplayState {
            last_used_step: Some(accepted.step),
            clock_offset: accepted.clock_offset,
        })
    }

    fn challenge(&self, app: &App, ctx: &Context<'_>, enrolled: &TwoFactor) -> Result<Challenge, Error> {
        let (_, params) = Credential::open(app, ctx.account.id, &enrolled.credential)?;
        Ok(Challenge::TypedCode { length: params.digits })
    }

    async fn verify(
        &self,
        app: &App,
        ctx: &Context<'_>,
        enrolled: &TwoFactor,
        answer: &Answer,
    ) -> Result<Judgement, Error> {
        let (secret, params) = Credential::open(app, ctx.account.id, &enrolled.credential)?;
        let policy = ctx.settings.services.totp.settings.verify_policy();
        let state = CredentialState {
            last_used_step: enrolled.last_used_step,
            clock_offset: enrolled.clock_offset,
        };
        let accepted = totp::verify(&secret, params, code_of(answer)?, ctx.now, policy, state)?;
        // Racing requests may all get here with the same code: the login's compare-and-set
        // on the used step lets exactly one of them through.
        Ok(Judgement::Accepted(Consumed::TotpStep {
            step: accepted.step,
            clock_offset: accepted.clock_offset,
        }))
    }
}
