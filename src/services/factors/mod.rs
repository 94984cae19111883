//! The second factors, each behind [`SecondFactor`].
//!
//! A factor sees only what it uses: the account, the settings, the time, a [`Sealer`] bound
//! to its own service and the account, and the account's credentials of its service. It
//! has no store and no server: it cannot write anything, and it is unit-tested alone. State
//! that must survive between two requests (a secret being enrolled, a Duo transaction, a
//! WebAuthn challenge) is returned sealed in a [`Step`]; the services keep it in the
//! database, bound to the session, and hand it back on the next request. Nothing the client
//! sends back is trusted as state.
//!
//! Verification writes nothing either: an accepted answer says what it uses up (a
//! [`ReplayGuard`]), and the login records it in the same transaction as the session's
//! upgrade, so every answer is accepted at most once, whatever the factor.
//!
//! Adding a factor: a [`ServiceId`] variant, a module here implementing the trait, and one
//! line in [`Factors::get`].

pub mod duo;
pub mod totp;
pub mod yubikey;

use async_trait::async_trait;

use super::{ClockReading, Error};
use crate::core::policy::{ServiceId, TwoFactorSettings};
use crate::core::secretbox::{MasterKey, NONCE_BYTES};
use crate::outbound::Outbound;
use crate::random;
pub use crate::store::ReplayGuard;
use crate::store::{Account, Credential};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

/// Every factor this build knows.
pub struct Factors {
    totp: totp::TotpFactor,
    duo: duo::DuoFactor,
    yubikey: yubikey::YubikeyFactor,
}

impl Factors {
    pub fn new() -> Factors {
        Factors {
            totp: totp::TotpFactor,
            duo: duo::DuoFactor,
            yubikey: yubikey::YubikeyFactor,
        }
    }

    /// The factor of a service.
    pub fn get(&self, id: ServiceId) -> &dyn SecondFactor {
        match id {
            ServiceId::Totp => &self.totp,
            ServiceId::Duo => &self.duo,
            ServiceId::Yubikey => &self.yubikey,
        }
    }
}

impl Default for Factors {
    fn default() -> Self {
        Factors::new()
    }
}

/// All a factor may see for one call.
pub struct FactorCx<'a> {
    pub account: &'a Account,
    pub settings: &'a TwoFactorSettings,
    pub now: i64,
    pub sealer: Sealer<'a>,
    /// The name authenticator apps show (`issuer` in the configuration).
    pub issuer: &'a str,
    /// The address users reach this server by (`public_url`), if configured.
    pub public_url: Option<&'a str>,
    /// The clients of the outside services a factor may call.
    pub outbound: &'a Outbound,
    /// The factor's own service's write-only settings that are set, opened.
    pub secrets: SettingSecrets,
    /// The key an enrolment's answer names, if an administrator imported it (see
    /// [`SecondFactor::external_id_of`]).
    pub imported: Option<ImportedSecret>,
    /// The last comparison of this server's clock with the service's (Duo's), if any.
    pub service_clock: Option<ClockReading>,
}

/// A key an administrator imported with its secret, opened for one enrolment.
pub struct ImportedSecret {
    pub secret: SecretSlice<u8>,
    /// The account it is assigned to, if any.
    pub account_id: Option<i64>,
}

/// A service's write-only settings (a Secret Key), opened for one call; never logged.
#[derive(Default)]
pub struct SettingSecrets(Vec<(&'static str, SecretString)>);

impl SettingSecrets {
    pub fn new(secrets: Vec<(&'static str, SecretString)>) -> SettingSecrets {
        SettingSecrets(secrets)
    }

    /// The value of the setting `name`, if it is set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value.expose_secret())
    }
}

/// Seals and opens secrets under the master key, bound to one service and one account, so
/// that a sealed value moved to another account or service does not open.
pub struct Sealer<'a> {
    key: &'a MasterKey,
    context: String,
}

impl<'a> Sealer<'a> {
    pub fn new(key: &'a MasterKey, service: ServiceId, account_id: i64) -> Sealer<'a> {
        Sealer {
            key,
            context: sealing_context(service.as_str(), account_id),
        }
    }

    /// The sealer of a key an administrator imported, by its service and external ID.
    pub fn for_imported_key(key: &'a MasterKey, service: ServiceId, external_id: &str) -> Sealer<'a> {
        Sealer {
            key,
            context: format!("imported:{}:{external_id}", service.as_str()),
        }
    }

    /// The sealer of one write-only setting of a service (a Duo Secret Key).
    pub fn for_setting(key: &'a MasterKey, service: ServiceId, name: &str) -> Sealer<'a> {
        Sealer {
            key,
            context: setting_sealing_context(service.as_str(), name),
        }
    }

    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let nonce = random::bytes::<NONCE_BYTES>()?;
        Ok(self.key.seal(plaintext, &self.context, nonce))
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        self.key
            .open(sealed, &self.context)
            .map_err(|e| Error::Internal(format!("a sealed {} secret: {e}", self.context)))
    }
}

/// The associated data a secret is sealed with: its service and owner.
pub fn sealing_context(service: &str, account_id: i64) -> String {
    format!("{service}:{account_id}")
}

/// The associated data a write-only setting is sealed with: its service and name.
pub fn setting_sealing_context(service: &str, name: &str) -> String {
    format!("setting:{service}:{name}")
}

/// What the user is asked to do, at enrolment or at login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// Type (or touch a key that types) a code of this many characters.
    TypedCode { length: u32 },
    /// Approve on another device (`prompt` says which and how); poll with [`Answer::Poll`]
    /// until it resolves.
    Approval { prompt: String },
    /// Pick one of these ways to be asked ([`Answer::Choose`]), or type a passcode
    /// ([`Answer::Code`]) if `passcode` (Duo Security). `notice`: what the last choice did
    /// ("passcodes were sent").
    Choose {
        options: Vec<Choice>,
        passcode: bool,
        notice: Option<String>,
    },
    /// Activate an app by opening this link (or scanning it as a QR code); poll with
    /// [`Answer::Poll`] until it is done (Duo Mobile's activation).
    Activate { link: String },
    /// Follow this URL; the provider sends the browser back with [`Answer::Callback`].
    Redirect { url: String },
    /// Let the browser answer this challenge (a JSON document), as in WebAuthn.
    Browser { options: String },
}

/// One way a [`Challenge::Choose`] offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// What [`Answer::Choose`] sends back.
    pub id: String,
    /// What the button says ("Send Me a Push", "Call Me", "Text Me Passcodes").
    pub label: String,
    /// The device it goes to, as the service names it.
    pub device: String,
    /// Whether the user answers it on the device (a push, a call), while the server polls
    /// ([`Answer::Poll`]); otherwise the user types what it sends.
    pub approval: bool,
}

/// The user's answer to a [`Challenge`]. It carries only what the user produced: the
/// transaction or challenge it answers is the one the server kept for the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Code(String),
    /// One of a [`Challenge::Choose`]'s options, by its id.
    Choose {
        option: String,
    },
    Poll,
    Callback {
        state: String,
        code: String,
    },
    Browser {
        response: String,
    },
}

/// What a factor shows, and the state (sealed by the factor) to keep until the next step.
pub struct Step<V> {
    pub show: V,
    pub state: Option<Vec<u8>>,
}

/// An answer that is right, one still waiting (an approval not given yet), or one refused
/// that leaves something for the next answer to build on (sealed by the factor; the services
/// keep it with the session's challenge).
pub enum Progress<T> {
    Done(T),
    Pending,
    Refused {
        error: Error,
        keep: Vec<u8>,
    },
    /// The answer started something (a push, a text message, an activation): show this,
    /// and keep this state instead of the last.
    Next {
        show: Challenge,
        keep: Vec<u8>,
    },
}

/// What an enrolment shows the user.
pub enum EnrolmentSetup {
    /// An authenticator app to scan: the `otpauth://` URI and its secret in base32.
    Totp {
        otpauth_uri: String,
        secret: String,
        digits: u32,
    },
    /// A key to touch (it types its OTP).
    Yubikey,
    /// A challenge to answer as at a login (Duo Security: an activation, then a push).
    Challenge(Challenge),
}

/// A credential that an enrolment proved works, ready to be stored.
pub struct NewCredential {
    /// Sealed by the factor's [`Sealer`].
    pub secret: Vec<u8>,
    pub counter: Option<i64>,
    pub state: Option<String>,
    /// The name it is known by outside (a YubiKey's public ID), unique per service.
    pub external_id: Option<String>,
}

/// An accepted login answer: which credential, and what it uses up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub credential_id: i64,
    pub guard: ReplayGuard,
    /// What the audit records of it beyond success (a Duo bypass, a login let in because
    /// Duo could not be reached).
    pub note: Option<String>,
}

/// A kind of second factor.
#[async_trait]
pub trait SecondFactor: Send + Sync {
    fn id(&self) -> ServiceId;

    /// Whether checking `answer` calls an outside service. Such an answer is counted
    /// before the call, so that a locked-out guesser never reaches the service. (A poll is
    /// never counted: what it waits on was counted when it started.)
    fn calls_out(&self, _cx: &FactorCx<'_>, _answer: &Answer) -> bool {
        false
    }

    /// The outside name of the device an answer comes from (a YubiKey's public ID), for
    /// the services to find a key an administrator imported for it.
    fn external_id_of(&self, _answer: &Answer) -> Option<String> {
        None
    }

    /// Starts an enrolment: what to show, and the state to keep until it is finished.
    async fn begin_enrolment(&self, cx: &FactorCx<'_>) -> Result<Step<EnrolmentSetup>, Error>;

    /// Shows again what `begin_enrolment` showed (a page reload, a wrong first code).
    fn enrolment_setup(&self, cx: &FactorCx<'_>, state: &[u8]) -> Result<EnrolmentSetup, Error>;

    /// Checks the answer that proves the user set the credential up.
    async fn finish_enrolment(
        &self,
        cx: &FactorCx<'_>,
        state: &[u8],
        answer: &Answer,
    ) -> Result<Progress<NewCredential>, Error>;

    /// What the login asks for, given the account's credentials of this service.
    async fn start_login(&self, cx: &FactorCx<'_>, credentials: &[Credential]) -> Result<Step<Challenge>, Error>;

    /// Checks a login answer against the credentials (and the state `start_login` kept).
    /// It writes nothing: what the answer uses up is in the [`Accepted`].
    async fn finish_login(
        &self,
        cx: &FactorCx<'_>,
        credentials: &[Credential],
        state: Option<&[u8]>,
        answer: &Answer,
    ) -> Result<Progress<Accepted>, Error>;
}
