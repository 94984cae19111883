//! The product's operations (log in, enrol, verify, disable, administer), shared by the
//! JSON API, the HTML pages and the command line, as methods of [`Services`].
//!
//! Every kind of second factor sits behind [`factors::SecondFactor`]; the services keep
//! what a factor may not touch (the store, the master key, the lockout, the audit) and call
//! it with exactly what it needs. Dependencies run one way: `app` builds `Services`; the
//! services use the store and the factors; the factors use neither.

pub mod admin;
pub mod applications;
pub mod credentials;
pub mod enrolment;
mod error;
pub mod factors;
pub mod login;
pub mod password_threads;
pub mod support;
pub mod transactions;
pub mod validate;

use std::sync::Arc;

use tokio::sync::Semaphore;

pub use error::Error;
pub use factors::{Answer, Challenge, EnrolmentSetup};

use crate::clock::Clock;
use crate::config::Config;
use crate::core::secretbox::MasterKey;
use crate::store::Store;

/// Everything the operations use, built once at start-up (see `app::App::start`).
pub struct Services {
    pub config: Config,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub master_key: MasterKey,
    /// Key of the HMAC that stores backup codes.
    pub backup_code_key: [u8; 32],
    /// Key of the HMAC that stores applications' API keys.
    pub application_key_hash_key: [u8; 32],
    /// Key of the HMAC that names the lockout counters of names no account has.
    pub name_key: [u8; 32],
    pub factors: factors::Factors,
    /// The clients of Duo and of Yubico validation servers.
    pub outbound: crate::outbound::Outbound,
    /// Bounds the argon2 computations running at once (each takes 19 MiB and a core).
    pub password_slots: Semaphore,
    /// Where they run: one thread per slot, at a lower priority than the rest.
    pub password_threads: password_threads::PasswordThreads,
    /// The networks of `trusted_proxies`, parsed once.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Their working memories, kept for the next computation.
    pub password_scratch_pool: std::sync::Mutex<Vec<crate::core::password::Scratch>>,
    /// The last comparison of this server's clock with Duo's (at a settings check, every
    /// few minutes while Duo is active, after Duo refuses a request), shown as a banner in
    /// the admin area when they differ by more than `ClockReading::TOLERANCE_SECS`.
    pub duo_clock: std::sync::Mutex<Option<ClockReading>>,
    /// Password verifications this node has run: an unknown name costs one, as a known
    /// name does (a test holds the login to it).
    pub password_checks: std::sync::atomic::AtomicU64,
}

/// This server's clock against an outside service's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockReading {
    /// This server's time when it compared.
    pub at: i64,
    /// The service's time minus this server's, in seconds.
    pub offset_secs: i64,
}

impl ClockReading {
    /// Beyond this, Duo refuses requests (and codes are checked against the wrong time).
    pub const TOLERANCE_SECS: i64 = 30;

    pub fn is_off(&self) -> bool {
        self.offset_secs.abs() > Self::TOLERANCE_SECS
    }
}

/// How a login's second step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Signed in, under a new session token (the old one no longer works).
    Accepted { session_token: String },
    /// Not decided yet (an approval still waiting): ask again later.
    Pending,
    /// Not decided yet: the answer started something (a push, passcodes by text message);
    /// answer this next.
    Next(factors::Challenge),
}
