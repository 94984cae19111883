use crate::core::lockout::Refusal;
use crate::store::StoreError;

/// What can go wrong in a product operation; `web::error` maps each to one HTTP answer.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    #[error("Invalid username or password.")]
    InvalidCredentials,
    /// A signed-in user's password, asked again before a sensitive change, is wrong.
    #[error("The password is incorrect.")]
    WrongPassword,
    #[error("The code you entered is incorrect. Please try again.")]
    InvalidCode,
    /// Duo refused the user's push, call or passcode; `clock_note` says, when it is, that
    /// this server's clock is off from Duo's.
    #[error("The second factor you supplied was incorrect. Please try again.{clock_note}")]
    SecondFactorIncorrect { clock_note: String },
    /// The service refuses this user a second factor altogether (Duo's `deny` or `enroll`):
    /// its words, and what to do.
    #[error("{0}")]
    Denied(String),
    /// The user did not answer a push or a call before the service gave up waiting.
    #[error("{service} had no answer in time. Choose a way to be asked again.")]
    NoAnswerInTime { service: &'static str },
    #[error("That backup code is not valid. A backup code works once; the next one is shown when you use it.")]
    InvalidBackupCode,
    #[error("That code has already been used. Use a new one: the next code of your authenticator app, or touch your key again.")]
    CodeAlreadyUsed,
    #[error("That code is not valid at the current time. The time on your device, or on the server, may be wrong: check that both are set automatically.")]
    CodeOutOfSync,
    #[error("{0}")]
    MalformedCode(String),
    #[error("Too many failed attempts. Try again in {} minute(s).", (retry_after_secs + 59) / 60)]
    LockedOut { retry_after_secs: i64 },
    /// Too many wrong second factors in a row (`core::lockout`'s hard lock).
    #[error("Too many wrong codes in a row: your second factor is locked. Use your backup code, or ask an administrator to unlock your account.")]
    SecondFactorLocked,
    #[error("Log in first.")]
    Unauthenticated,
    /// An application's key is missing, unknown, wrong, revoked or expired, or its
    /// application is suspended (the audit says which; the caller is not told).
    #[error("The API key is not valid.")]
    InvalidApiKey,
    /// More than one session cookie came with the request (one may have been planted).
    #[error("Your browser sent two sessions for this site. Clear this site's cookies, then log in again.")]
    AmbiguousSession,
    #[error("Complete the second step of your login first.")]
    SecondFactorRequired,
    #[error("Set up two-factor authentication first.")]
    EnrollmentRequired,
    #[error("You are not allowed to do that.")]
    Forbidden,
    /// An operation that lowers security, from a login older than `RECENT_PROOF_SECS`.
    #[error("For this, log out and log in again: it needs a login of the last 10 minutes.")]
    ReauthenticationRequired,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Validation(String),
    #[error("The service is temporarily unavailable. Please try again shortly.")]
    Unavailable(String),
    /// An outside service a factor relies on (a validation server, Duo) did not answer in
    /// time or at all: the user's answer was not judged. `detail` is for the log and audit.
    #[error("{service} cannot be reached right now, so your code was not checked. Please try again shortly, or use your backup code.")]
    ServiceUnreachable { service: &'static str, detail: String },
    /// An outside service refused this server's configuration (a wrong key, client or
    /// host): the administrator's to fix, never the user's wrong code.
    #[error("{service} is not set up correctly on this server, so your code was not checked. Please tell an administrator, or use your backup code.")]
    ServiceMisconfigured { service: &'static str, detail: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// What the log and the audit record of an error: its code, and for an outside
    /// service's trouble, which service and what went wrong (never a secret); the settings
    /// page finds the latest trouble of a service by this (see `Services::latest_trouble`).
    pub fn audit_detail(&self) -> String {
        match self {
            Error::ServiceUnreachable { service, detail } | Error::ServiceMisconfigured { service, detail } => {
                format!("{}: {service}: {detail}", self.code())
            }
            other => other.code().to_string(),
        }
    }

    /// The stable, machine-readable name of the error: what API clients match on, and what
    /// the audit log records.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidCredentials | Error::WrongPassword => "invalid_credentials",
            Error::InvalidCode | Error::InvalidBackupCode | Error::SecondFactorIncorrect { .. } => "invalid_code",
            Error::Denied(_) => "second_factor_denied",
            Error::NoAnswerInTime { .. } => "no_answer_in_time",
            Error::CodeAlreadyUsed => "code_already_used",
            Error::CodeOutOfSync => "code_out_of_sync",
            Error::MalformedCode(_) => "invalid_code_format",
            Error::LockedOut { .. } => "locked_out",
            Error::SecondFactorLocked => "second_factor_locked",
            Error::Unauthenticated => "unauthenticated",
            Error::InvalidApiKey => "invalid_api_key",
            Error::AmbiguousSession => "ambiguous_session",
            Error::SecondFactorRequired => "second_factor_required",
            Error::EnrollmentRequired => "enrollment_required",
            Error::Forbidden => "forbidden",
            Error::ReauthenticationRequired => "reauthentication_required",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Validation(_) => "validation_error",
            Error::Unavailable(_) => "service_unavailable",
            Error::ServiceUnreachable { .. } => "second_factor_service_unreachable",
            Error::ServiceMisconfigured { .. } => "second_factor_service_misconfigured",
            Error::Internal(_) => "internal_error",
        }
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Locked { retry_after_secs } => Error::LockedOut { retry_after_secs },
            Refusal::HardLocked => Error::SecondFactorLocked,
        }
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(detail) => Error::Unavailable(detail),
            StoreError::Conflict => Error::Conflict("That already exists.".into()),
            StoreError::NotEmpty => Error::Conflict("The target database is not empty.".into()),
            StoreError::Internal(detail) => Error::Internal(detail),
        }
    }
}

impl From<crate::random::RandomError> for Error {
    fn from(error: crate::random::RandomError) -> Self {
        Error::Internal(error.to_string())
    }
}
