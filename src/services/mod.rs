//! The product's operations (log in, enrol, verify, disable, administer), shared by the
//! JSON API, the HTML pages and the command line.
//!
//! Every kind of second factor sits behind [`SecondFactor`]. The trait's shape fits all the
//! kinds Twofold is built to take: a typed code (TOTP, YubiKey, a Duo passcode), an approval
//! polled until it resolves (Duo Push, a phone call), a browser redirect and callback (Duo
//! Universal Prompt) and a browser challenge-response (WebAuthn). A service starts with a
//! [`Challenge`] saying what the user must do, and is answered with an [`Answer`].

pub mod admin;
pub mod enrolment;
mod error;
pub mod login;
pub mod totp;

use async_trait::async_trait;

pub use error::Error;

use crate::core::policy::{ServiceId, TwoFactorSettings};
use crate::store::{Account, TwoFactor};

/// What the user is asked to do, at enrolment or at login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// Type (or touch a key that types) a code of this many characters.
    TypedCode { length: u32 },
    /// Approve on another device; poll with [`Answer::Poll`] until it resolves.
    Approval { transaction: String },
    /// Follow this URL; the provider sends the browser back with [`Answer::Callback`].
    Redirect { url: String },
    /// Let the browser answer this challenge (a JSON document), as in WebAuthn.
    Browser { options: String },
}

/// The user's answer to a [`Challenge`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Code(String),
    Poll { transaction: String },
    Callback { state: String, code: String },
    Browser { response: String },
}

/// How a login's second step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Not decided yet (an approval still waiting): ask again later.
    Pending,
}

/// How a service judged an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Right: the login completes when what it `Consumed` is recorded, in the same
    /// transaction as the session's upgrade (so it is accepted at most once).
    Accepted(Consumed),
    /// Not decided yet (an approval still waiting): ask again later.
    Pending,
}

/// What an accepted answer uses up, so that it is never accepted again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consumed {
    /// A TOTP step, and the device's clock offset it showed.
    TotpStep { step: i64, clock_offset: i64 },
}

/// An enrolment's new credential, sealed, and what the user must see to set it up.
pub struct NewEnrolment {
    pub sealed_credential: Vec<u8>,
    pub setup: EnrolmentSetup,
}

/// What an enrolment shows the user.
pub enum EnrolmentSetup {
    /// An authenticator app to scan: the `otpauth://` URI and its secret in base32.
    Totp {
        otpauth_uri: String,
        secret: String,
        digits: u32,
    },
}

/// Facts a service needs for one call.
pub struct Context<'a> {
    pub account: &'a Account,
    pub settings: &'a TwoFactorSettings,
    pub now: i64,
}

/// A kind of second factor.
#[async_trait]
pub trait SecondFactor: Send + Sync {
    fn id(&self) -> ServiceId;

    /// Creates a credential for the account, not active until confirmed.
    async fn begin_enrolment(&self, app: &crate::app::App, ctx: &Context<'_>) -> Result<NewEnrolment, Error>;

    /// Shows again what `begin_enrolment` showed, for a pending credential (a page reload,
    /// or a wrong code typed at the first attempt).
    fn enrolment_setup(
        &self,
        app: &crate::app::App,
        ctx: &Context<'_>,
        sealed_credential: &[u8],
    ) -> Result<EnrolmentSetup, Error>;

    /// Checks the answer that proves the user set the credential up. On success returns the
    /// credential's initial replay state (for TOTP, the step just used).
    async fn confirm_enrolment(
        &self,
        app: &crate::app::App,
        ctx: &Context<'_>,
        sealed_credential: &[u8],
        answer: &Answer,
    ) -> Result<ReplayState, Error>;

    /// What the login page asks for.
    fn challenge(&self, app: &crate::app::App, ctx: &Context<'_>, enrolled: &TwoFactor) -> Result<Challenge, Error>;

    /// Checks a login answer against the enrolled credential. It writes nothing: what the
    /// answer uses up is returned, and recorded by the login with the session's upgrade.
    async fn verify(
        &self,
        app: &crate::app::App,
        ctx: &Context<'_>,
        enrolled: &TwoFactor,
        answer: &Answer,
    ) -> Result<Judgement, Error>;
}

/// What a credential remembers to refuse replays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayState {
    pub last_used_step: Option<i64>,
    pub clock_offset: i64,
}

/// The associated data a credential is sealed with: its service and owner, so a sealed
/// secret moved to another account or service does not open.
pub fn sealing_context(service: &str, account_id: i64) -> String {
    format!("{service}:{account_id}")
}
