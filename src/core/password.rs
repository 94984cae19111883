//! Passwords: argon2id with the OWASP-recommended parameters (19 MiB, 2 passes, 1 lane),
//! as PHC strings, so parameters can be raised later without breaking stored hashes.
//! Hashing is CPU-bound by design: callers run it off the async runtime.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;

pub const MIN_LENGTH: usize = 10;
pub const MAX_LENGTH: usize = 1024;
pub const SALT_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_LENGTH} characters")]
    TooShort,
    #[error("the password must be at most {MAX_LENGTH} characters")]
    TooLong,
    #[error("the stored password hash is unreadable")]
    BadHash,
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks a new password against the length rules (NIST SP 800-63B: length, not
/// composition, is what matters).
pub fn check_new(password: &str) -> Result<(), PasswordError> {
    match password.chars().count() {
        n if n < MIN_LENGTH => Err(PasswordError::TooShort),
        n if n > MAX_LENGTH => Err(PasswordError::TooLong),
        _ => Ok(()),
    }
}

/// What an account without a password stores (one an application made through the validate
/// API): not a hash, so that no password ever verifies against it.
pub const NO_PASSWORD: &str = "!no-password";

pub fn hash(password: &str, salt: [u8; SALT_BYTES]) -> Result<String, PasswordError> {
    let salt = SaltString::encode_b64(&salt).map_err(|_| PasswordError::BadHash)?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| PasswordError::BadHash)
}

/// The working memory of one argon2id computation (19 MiB), kept and reused: allocating it
/// for every hash leaves the allocator holding hundreds of megabytes after a burst of logins.
pub struct Scratch(Vec<Block>);

impl Default for Scratch {
    fn default() -> Self {
        Scratch(vec![Block::default(); hasher().params().block_count()])
    }
}

/// True when `password` matches the PHC string `stored` (compared in constant time),
/// computed in `scratch` (which grows if `stored` asks for more memory).
pub fn verify(password: &str, stored: &str, scratch: &mut Scratch) -> Result<bool, PasswordError> {
    let bad = |_: argon2::password_hash::Error| PasswordError::BadHash;
    let parsed = PasswordHash::new(stored).map_err(bad)?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(bad)?;
    let version = match parsed.version {
        Some(version) => Version::try_from(version).map_err(|_| PasswordError::BadHash)?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(bad)?;
    let expected = parsed.hash.ok_or(PasswordError::BadHash)?;
    let mut salt = [0u8; 64];
    let salt = parsed
        .salt
        .ok_or(PasswordError::BadHash)?
        .decode_b64(&mut salt)
        .map_err(bad)?;
    let blocks = params.block_count();
    if scratch.0.len() < blocks {
        scratch.0.resize(blocks, Block::default());
    }
    let mut computed = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut computed, &mut scratch.0[..blocks])
        .map_err(|_| PasswordError::BadHash)?;
    Ok(bool::from(computed.ct_eq(expected.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_with_argon2id_and_verifies() {
        let stored = hash("correct horse battery", [3; SALT_BYTES]).unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let scratch = &mut Scratch::default();
        assert!(verify("correct horse battery", &stored, scratch).unwrap());
        assert!(!verify("correct horse batterY", &stored, scratch).unwrap());
        assert_eq!(verify("x", "not a hash", scratch), Err(PasswordError::BadHash));
        // A hash with other parameters (stronger, older) still verifies, in grown scratch.
        let stronger = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(32 * 1024, 3, 1, None).unwrap(),
        )
        .hash_password(
            b"correct horse battery",
            &SaltString::encode_b64(&[5; SALT_BYTES]).unwrap(),
        )
        .unwrap()
        .to_string();
        assert!(verify("correct horse battery", &stronger, scratch).unwrap());
        assert!(!verify("correct horse batter", &stronger, scratch).unwrap());
        assert!(verify("correct horse battery", &stored, scratch).unwrap(), "and back");
    }

    #[test]
    fn length_rules() {
        assert_eq!(check_new("short"), Err(PasswordError::TooShort));
        assert_eq!(check_new(&"x".repeat(MAX_LENGTH + 1)), Err(PasswordError::TooLong));
        assert!(check_new("ten chars!").is_ok());
    }
}
