//! The pure core of Twofold: one-time passwords, backup codes, sealing secrets,
//! password hashing, lockout and enrolment policy.
//!
//! Rule enforced here (and by `tests/it/architecture.rs`): nothing in `core/` does I/O,
//! awaits, reads the clock or draws randomness. Time and random bytes come in as
//! arguments, so every rule is a plain function with unit tests beside it.

pub mod applications;
pub mod backup_codes;
pub mod duo_api;
pub mod duo_oidc;
pub mod duo_sign;
pub mod hotp;
pub mod lockout;
pub mod otpauth;
pub mod password;
pub mod policy;
pub mod secretbox;
pub mod totp;
pub mod yubico_otp;
pub mod yubico_validation;
pub mod yubikey_import;
