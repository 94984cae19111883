//! Randomness from the operating system's CSPRNG (ASVS 5.0 §6.5.3), for secrets, codes,
//! tokens, salts and nonces. The pure core takes these bytes as arguments.

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(getrandom::Error);

pub fn bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut buffer = [0u8; N];
    getrandom::getrandom(&mut buffer).map_err(RandomError)?;
    Ok(buffer)
}

/// A URL-safe token of 256 random bits (sessions, CSRF, setup).
pub fn token() -> Result<String, RandomError> {
    Ok(data_encoding::BASE64URL_NOPAD.encode(&bytes::<32>()?))
}
