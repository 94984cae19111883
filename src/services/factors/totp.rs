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

/// A login code that matched a step far from the server's (kept, sealed, with the session's
/// login challenge). Saying "out of sync" at once would tell a guesser that a guess matched
/// one of some forty nearby steps; it is said only when a later code of the same credential
/// matches at the same offset, which a real device gives and a guesser cannot.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
struct FarCode {
    credential_id: i64,
    step: i64,
    offset: i64,
}

impl FarCode {
    /// Whether `later` is the evidence: the same credential, the same offset, a later code.
    fn confirmed_by(&self, later: &FarCode) -> bool {
        later.credential_id == self.credential_id && later.offset == self.offset && later.step > self.step
    }
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
            Rejection::OutOfSync { .. } => Error::CodeOutOfSync,
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
        Rejection::OutOfSync { .. } => 2,
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
            external_id: None,
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
        state: Option<&[u8]>,
        answer: &Answer,
    ) -> Result<Progress<Accepted>, Error> {
        let code = code_of(answer)?;
        let policy = cx.settings.services.totp.settings.verify_policy();
        let earlier: Option<FarCode> = state
            .and_then(|sealed| cx.sealer.open(sealed).ok())
            .and_then(|json| serde_json::from_slice(&json).ok());
        let mut far = None;
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
                        note: None,
                    }))
                }
                Err(Rejection::OutOfSync { step, offset }) => {
                    far = far.or(Some(FarCode {
                        credential_id: credential.id,
                        step,
                        offset,
                    }));
                    rejections.push(Rejection::Invalid);
                }
                Err(rejection) => rejections.push(rejection),
            }
        }
        let Some(far) = far else {
            return Err(most_telling(rejections.into_iter()).into());
        };
        let error = match earlier.is_some_and(|earlier| earlier.confirmed_by(&far)) {
            true => Error::CodeOutOfSync,
            false => most_telling(rejections.into_iter()).into(),
        };
        let keep = serde_json::to_vec(&far).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Progress::Refused {
            error,
            keep: cx.sealer.seal(&keep)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::policy::{AccountKind, TwoFactorSettings};
    use crate::core::secretbox::MasterKey;
    use crate::core::totp::{code_at, step_at};
    use crate::outbound::Outbound;
    use crate::services::factors::Sealer;
    use crate::store::Account;

    const NOW: i64 = 1_800_000_010;

    fn account(id: i64) -> Account {
        Account {
            id,
            kind: AccountKind::Client,
            role: None,
            username: format!("user{id}"),
            email: None,
            password_hash: String::new(),
        }
    }

    fn cx<'a>(key: &'a MasterKey, account: &'a Account, settings: &'a TwoFactorSettings) -> FactorCx<'a> {
        FactorCx {
            account,
            settings,
            now: NOW,
            sealer: Sealer::new(key, ServiceId::Totp, account.id),
            issuer: "Twofold",
            public_url: None,
            outbound: outbound(),
            secrets: Default::default(),
            imported: None,
            service_clock: None,
        }
    }

    fn outbound() -> &'static Outbound {
        static OUTBOUND: std::sync::OnceLock<Outbound> = std::sync::OnceLock::new();
        OUTBOUND.get_or_init(|| Outbound::new(None).unwrap())
    }

    fn credential(cx: &FactorCx<'_>, id: i64, secret: &[u8], counter: Option<i64>) -> Credential {
        Credential {
            id,
            service: "totp".into(),
            label: format!("device {id}"),
            secret: seal(cx, secret, TotpParams::default()).unwrap(),
            counter,
            state: None,
            enrolled_at: 0,
            last_used_at: None,
            external_id: None,
        }
    }

    fn code(secret: &[u8], step: i64) -> Answer {
        Answer::Code(code_at(secret, TotpParams::default(), step).unwrap())
    }

    async fn login(cx: &FactorCx<'_>, credentials: &[Credential], answer: &Answer) -> Result<Accepted, Error> {
        match TotpFactor.finish_login(cx, credentials, None, answer).await? {
            Progress::Done(accepted) => Ok(accepted),
            Progress::Refused { error, .. } => Err(error),
            Progress::Pending | Progress::Next { .. } => panic!("TOTP never waits"),
        }
    }

    #[tokio::test]
    async fn a_far_code_is_wrong_until_a_later_code_confirms_its_offset() {
        let (key, owner, settings) = (MasterKey::from_bytes([1; 32]), account(1), TwoFactorSettings::default());
        let at = |account, now| FactorCx {
            now,
            ..cx(&key, account, &settings)
        };
        let now = at(&owner, NOW);
        let later = at(&owner, NOW + 30);
        let secret = b"phone phone phone ph";
        let credentials = [credential(&now, 7, secret, None)];
        let step = step_at(NOW, 30);
        let refused = |progress: Result<Progress<Accepted>, Error>| match progress {
            Ok(Progress::Refused { error, keep }) => (error, keep),
            _ => panic!("a far code is refused with something to keep"),
        };
        // Five steps ahead: wrong, as any guess would be told.
        let (error, keep) = refused(
            TotpFactor
                .finish_login(&now, &credentials, None, &code(secret, step + 5))
                .await,
        );
        assert!(matches!(error, Error::InvalidCode), "{error:?}");
        // Half a minute later the device shows its next code, at the same offset.
        let (error, _) = refused(
            TotpFactor
                .finish_login(&later, &credentials, Some(&keep), &code(secret, step + 6))
                .await,
        );
        assert!(matches!(error, Error::CodeOutOfSync), "{error:?}");
        // Another offset, or the same code again, is no evidence.
        let (error, _) = refused(
            TotpFactor
                .finish_login(&later, &credentials, Some(&keep), &code(secret, step + 8))
                .await,
        );
        assert!(matches!(error, Error::InvalidCode), "{error:?}");
        let (error, _) = refused(
            TotpFactor
                .finish_login(&now, &credentials, Some(&keep), &code(secret, step + 5))
                .await,
        );
        assert!(matches!(error, Error::InvalidCode), "{error:?}");
        // What is kept is sealed for this account: under another's it does not open, and
        // counts as nothing kept.
        let other = account(2);
        let theirs = FactorCx {
            now: NOW + 30,
            ..cx(&key, &other, &settings)
        };
        let their_credentials = [credential(&theirs, 7, secret, None)];
        let (error, _) = refused(
            TotpFactor
                .finish_login(&theirs, &their_credentials, Some(&keep), &code(secret, step + 6))
                .await,
        );
        assert!(matches!(error, Error::InvalidCode), "{error:?}");
    }

    #[tokio::test]
    async fn a_code_of_any_credential_is_accepted_for_that_credential() {
        let (key, account, settings) = (MasterKey::from_bytes([1; 32]), account(1), TwoFactorSettings::default());
        let cx = cx(&key, &account, &settings);
        let step = step_at(NOW, 30);
        let credentials = [
            credential(&cx, 7, b"phone phone phone ph", None),
            credential(&cx, 8, b"tablet tablet tablet", None),
        ];
        let accepted = login(&cx, &credentials, &code(b"tablet tablet tablet", step))
            .await
            .unwrap();
        assert_eq!(accepted.credential_id, 8);
        assert_eq!(
            accepted.guard,
            ReplayGuard::Counter {
                value: step,
                state: Some(r#"{"clock_offset":0}"#.into())
            }
        );
    }

    #[tokio::test]
    async fn a_used_step_is_refused_and_says_so_whichever_credential_it_matches() {
        let (key, account, settings) = (MasterKey::from_bytes([1; 32]), account(1), TwoFactorSettings::default());
        let cx = cx(&key, &account, &settings);
        let step = step_at(NOW, 30);
        let credentials = [
            credential(&cx, 7, b"phone phone phone ph", None),
            credential(&cx, 8, b"tablet tablet tablet", Some(step)),
        ];
        let replay = login(&cx, &credentials, &code(b"tablet tablet tablet", step)).await;
        assert!(matches!(replay, Err(Error::CodeAlreadyUsed)), "{replay:?}");
        let wrong = login(&cx, &credentials, &Answer::Code("000000".into())).await;
        assert!(
            matches!(wrong, Err(Error::InvalidCode | Error::CodeOutOfSync)),
            "{wrong:?}"
        );
    }

    #[tokio::test]
    async fn a_secret_sealed_for_one_account_does_not_open_for_another() {
        let (key, settings) = (MasterKey::from_bytes([1; 32]), TwoFactorSettings::default());
        let (owner, thief) = (account(1), account(2));
        let stolen = credential(&cx(&key, &owner, &settings), 7, b"phone phone phone ph", None);
        let step = step_at(NOW, 30);
        let answer = code(b"phone phone phone ph", step);
        let result = login(&cx(&key, &thief, &settings), &[stolen], &answer).await;
        assert!(matches!(result, Err(Error::Internal(_))), "{result:?}");
    }

    #[tokio::test]
    async fn an_enrolment_keeps_its_secret_sealed_and_proves_it_with_a_code() {
        let (key, account, settings) = (MasterKey::from_bytes([1; 32]), account(1), TwoFactorSettings::default());
        let cx = cx(&key, &account, &settings);
        let step = TotpFactor.begin_enrolment(&cx).await.unwrap();
        let state = step.state.unwrap();
        let EnrolmentSetup::Totp {
            secret, otpauth_uri, ..
        } = step.show
        else {
            panic!("a TOTP enrolment shows a QR code");
        };
        assert!(otpauth_uri.contains("issuer=Twofold"));
        let secret = BASE32_NOPAD.decode(secret.as_bytes()).unwrap();
        assert!(!state.windows(secret.len()).any(|w| w == secret.as_slice()), "sealed");
        let answer = code(&secret, step_at(NOW, 30));
        let Progress::Done(new) = TotpFactor.finish_enrolment(&cx, &state, &answer).await.unwrap() else {
            panic!("TOTP never waits")
        };
        assert_eq!((new.secret, new.counter), (state, Some(step_at(NOW, 30))));
    }
}
