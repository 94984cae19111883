//! YubiKey: the Yubico OTP a key types when touched, checked by the validation servers of
//! the settings (protocol 2.0). A credential is one key, named by its public ID (the OTP's
//! first characters), which belongs to one account only; an account may hold several keys.
//!
//! Twofold keeps its own replay ledger rather than trusting a validation server alone (one
//! that lost its counters answers OK to a replayed OTP): with `signed_counters`, the key's
//! counters as the server signed them must increase; without, every accepted OTP is
//! remembered for [`OTP_LEDGER_SECS`] and accepted once.
//!
//! In local mode nothing leaves the server: an administrator imports each key's AES key and
//! private ID; enrolling copies them into the credential (sealed for the account), and each
//! OTP must decrypt, pass its CRC, hold the private ID and move the key's counters forward.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    Accepted, Answer, Challenge, EnrolmentSetup, FactorCx, NewCredential, Progress, ReplayGuard, SecondFactor, Step,
};
use crate::core::policy::{api_key_bytes, ServiceId, YubikeyMode};
use crate::core::yubico_otp::{self, Otp, MAX_LENGTH};
use crate::core::yubico_validation::{Status, Verdict};
use crate::outbound::yubico::{ValidationFailure, ValidationService};
use crate::services::Error;
use crate::store::Credential;

/// How long an accepted OTP is remembered when the server's counters are not signed. A key
/// types a new OTP at each touch, so an OTP seen again within this time is a replay.
pub const OTP_LEDGER_SECS: i64 = 400 * 86_400;

pub struct YubikeyFactor;

/// The sealed part of a YubiKey credential, bound to its account: its public ID, and in
/// local mode the key's secrets.
#[derive(Serialize, Deserialize)]
struct Sealed {
    public_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    local: Option<LocalKey>,
}

/// What Twofold needs to check a key's OTPs itself, in hexadecimal.
#[derive(Serialize, Deserialize)]
pub struct LocalKey {
    pub aes_key: String,
    pub private_id: String,
}

impl LocalKey {
    pub fn new(aes_key: &[u8; 16], private_id: &[u8; 6]) -> LocalKey {
        LocalKey {
            aes_key: data_encoding::HEXLOWER.encode(aes_key),
            private_id: data_encoding::HEXLOWER.encode(private_id),
        }
    }

    fn bytes(&self) -> Result<([u8; 16], [u8; 6]), Error> {
        let decode = |text: &str| data_encoding::HEXLOWER.decode(text.as_bytes()).ok();
        decode(&self.aes_key)
            .and_then(|key| key.try_into().ok())
            .zip(decode(&self.private_id).and_then(|id| id.try_into().ok()))
            .ok_or_else(|| Error::Internal("a YubiKey's sealed AES key is malformed".into()))
    }

    /// Opens `otp` with this key: its counters, if the CRC and the private ID hold.
    fn counter_of(&self, otp: &Otp) -> Result<i64, Error> {
        let (aes_key, private_id) = self.bytes()?;
        let token = yubico_otp::open(otp, &aes_key, &private_id).map_err(|_| Error::InvalidCode)?;
        Ok(token.counter())
    }
}

fn open_credential(cx: &FactorCx<'_>, credential: &Credential) -> Result<Sealed, Error> {
    serde_json::from_slice(&cx.sealer.open(&credential.secret)?)
        .map_err(|e| Error::Internal(format!("YubiKey credential {}: {e}", credential.id)))
}

/// The key an administrator imported for `otp`'s public ID, checked against it: the key and
/// the OTP's counter. Unknown keys and keys assigned to another account are refused.
fn imported_key(cx: &FactorCx<'_>, otp: &Otp) -> Result<(LocalKey, i64), Error> {
    let imported = cx.imported.as_ref().ok_or_else(|| {
        Error::Validation("This server does not know that YubiKey: ask an administrator to import it.".into())
    })?;
    if imported.account_id.is_some_and(|owner| owner != cx.account.id) {
        return Err(Error::Conflict("That YubiKey is assigned to another account.".into()));
    }
    let key: LocalKey = serde_json::from_slice(imported.secret.expose_secret())
        .map_err(|e| Error::Internal(format!("an imported YubiKey: {e}")))?;
    let counter = key.counter_of(otp)?;
    Ok((key, counter))
}

fn otp_of(answer: &Answer) -> Result<Otp, Error> {
    match answer {
        Answer::Code(text) => yubico_otp::parse(text).map_err(|e| Error::MalformedCode(e.to_string())),
        _ => Err(Error::Validation("YubiKey expects the code the key types.".into())),
    }
}

fn misconfigured(detail: String) -> Error {
    Error::ServiceMisconfigured {
        service: ServiceId::Yubikey.display_name(),
        detail,
    }
}

fn unreachable(detail: String) -> Error {
    Error::ServiceUnreachable {
        service: ServiceId::Yubikey.display_name(),
        detail,
    }
}

/// What a validation server's verified status means for the user's OTP: only `Ok` accepts
/// it; the statuses that are the configuration's fault are the administrator's, never "a
/// wrong code".
fn judge(verdict: Verdict) -> Result<Verdict, Error> {
    match verdict.status {
        Status::Ok => Ok(verdict),
        Status::BadOtp | Status::DelayedOtp => Err(Error::InvalidCode),
        Status::ReplayedOtp => Err(Error::CodeAlreadyUsed),
        Status::BadSignature | Status::NoSuchClient => Err(misconfigured(format!(
            "the validation server answered {:?}: check the Client ID and the Secret Key",
            verdict.status
        ))),
        Status::OperationNotAllowed | Status::MissingParameter => Err(misconfigured(format!(
            "the validation server answered {:?}: this client may not verify OTPs there",
            verdict.status
        ))),
        Status::ReplayedRequest | Status::BackendError | Status::NotEnoughAnswers | Status::Unknown => Err(
            unreachable(format!("the validation server answered {:?}", verdict.status)),
        ),
    }
}

/// Asks the validation servers of the settings about `otp`.
async fn validate(cx: &FactorCx<'_>, otp: &Otp) -> Result<Verdict, Error> {
    let settings = &cx.settings.services.yubikey.settings;
    let api_key = cx
        .secrets
        .get("api_key")
        .ok_or_else(|| misconfigured("no Secret Key is set".into()))
        .and_then(|text| api_key_bytes(text).map_err(misconfigured))?;
    let service = ValidationService {
        urls: &settings.urls,
        client_id: &settings.client_id,
        api_key: &api_key,
        signed_counters: settings.signed_counters,
        sync_level: settings.sync_level,
        timeout: Duration::from_secs(u64::from(settings.timeout_secs)),
    };
    match cx.outbound.yubico.verify(&service, otp).await {
        Ok(verdict) => judge(verdict),
        Err(ValidationFailure::Unbelievable(problem)) => Err(misconfigured(format!(
            "{problem}: check the Secret Key (or someone alters the answers)"
        ))),
        Err(ValidationFailure::Unreachable(detail)) => Err(unreachable(detail)),
    }
}

/// What an accepted OTP uses up: the key's counters where the server signed them, else
/// the OTP itself.
fn guard_of(cx: &FactorCx<'_>, otp: &Otp, verdict: &Verdict) -> ReplayGuard {
    match verdict.counters {
        Some((use_counter, session_counter)) => ReplayGuard::Counter {
            value: (i64::from(use_counter & 0x7fff) << 8) | i64::from(session_counter),
            state: None,
        },
        None => ReplayGuard::Token {
            token_hash: Sha256::digest(otp.text.as_bytes()).to_vec(),
            expires_at: cx.now + OTP_LEDGER_SECS,
        },
    }
}

#[async_trait]
impl SecondFactor for YubikeyFactor {
    fn id(&self) -> ServiceId {
        ServiceId::Yubikey
    }

    fn calls_out(&self, cx: &FactorCx<'_>, _answer: &Answer) -> bool {
        cx.settings.services.yubikey.settings.mode == YubikeyMode::ValidationServer
    }

    fn external_id_of(&self, answer: &Answer) -> Option<String> {
        otp_of(answer).ok().map(|otp| otp.public_id)
    }

    async fn begin_enrolment(&self, cx: &FactorCx<'_>) -> Result<Step<EnrolmentSetup>, Error> {
        // Nothing to remember but that this session started it (the sealed value is unique).
        Ok(Step {
            show: EnrolmentSetup::Yubikey,
            state: Some(cx.sealer.seal(b"yubikey enrolment")?),
        })
    }

    fn enrolment_setup(&self, _cx: &FactorCx<'_>, _state: &[u8]) -> Result<EnrolmentSetup, Error> {
        Ok(EnrolmentSetup::Yubikey)
    }

    async fn finish_enrolment(
        &self,
        cx: &FactorCx<'_>,
        _state: &[u8],
        answer: &Answer,
    ) -> Result<Progress<NewCredential>, Error> {
        let otp = otp_of(answer)?;
        let (local, counter) = match cx.settings.services.yubikey.settings.mode {
            YubikeyMode::Local => {
                let (key, counter) = imported_key(cx, &otp)?;
                (Some(key), Some(counter))
            }
            YubikeyMode::ValidationServer => {
                let verdict = validate(cx, &otp).await?;
                let counter = match guard_of(cx, &otp, &verdict) {
                    ReplayGuard::Counter { value, .. } => Some(value),
                    _ => None,
                };
                (None, counter)
            }
        };
        let sealed = serde_json::to_vec(&Sealed {
            public_id: otp.public_id.clone(),
            local,
        })
        .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Progress::Done(NewCredential {
            secret: cx.sealer.seal(&sealed)?,
            counter,
            state: None,
            external_id: Some(otp.public_id),
        }))
    }

    async fn start_login(&self, _cx: &FactorCx<'_>, _credentials: &[Credential]) -> Result<Step<Challenge>, Error> {
        Ok(Step {
            show: Challenge::TypedCode {
                length: MAX_LENGTH as u32,
            },
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
        let otp = otp_of(answer)?;
        // Another key's OTP (another account's, or one never enrolled) is wrong here, and is
        // not sent anywhere: a validation server would consume it.
        let credential = credentials
            .iter()
            .find(|credential| credential.external_id.as_deref() == Some(otp.public_id.as_str()))
            .ok_or(Error::InvalidCode)?;
        let guard = match cx.settings.services.yubikey.settings.mode {
            YubikeyMode::Local => {
                let local = open_credential(cx, credential)?.local.ok_or_else(|| {
                    misconfigured(format!(
                        "the key {} was enrolled with a validation server: import its AES key, or use validation servers",
                        otp.public_id
                    ))
                })?;
                let counter = local.counter_of(&otp)?;
                // An older OTP is as used as a replayed one; the login's compare-and-set
                // settles racing answers.
                if credential.counter.is_some_and(|last| counter <= last) {
                    return Err(Error::CodeAlreadyUsed);
                }
                ReplayGuard::Counter {
                    value: counter,
                    state: None,
                }
            }
            YubikeyMode::ValidationServer => guard_of(cx, &otp, &validate(cx, &otp).await?),
        };
        Ok(Progress::Done(Accepted {
            credential_id: credential.id,
            guard,
            note: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(status: Status) -> Verdict {
        Verdict { status, counters: None }
    }

    #[test]
    fn only_ok_accepts_and_configuration_faults_are_never_a_wrong_code() {
        assert!(judge(verdict(Status::Ok)).is_ok());
        assert!(matches!(judge(verdict(Status::BadOtp)), Err(Error::InvalidCode)));
        assert!(matches!(
            judge(verdict(Status::ReplayedOtp)),
            Err(Error::CodeAlreadyUsed)
        ));
        for status in [
            Status::BadSignature,
            Status::NoSuchClient,
            Status::OperationNotAllowed,
            Status::MissingParameter,
        ] {
            assert!(
                matches!(judge(verdict(status)), Err(Error::ServiceMisconfigured { .. })),
                "{status:?}"
            );
        }
        for status in [Status::BackendError, Status::NotEnoughAnswers, Status::Unknown] {
            assert!(
                matches!(judge(verdict(status)), Err(Error::ServiceUnreachable { .. })),
                "{status:?}"
            );
        }
    }
}
