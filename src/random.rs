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

/// A URL-safe token of 256 random bits (CSRF, setup).
pub fn token() -> Result<String, RandomError> {
    Ok(data_encoding::BASE64URL_NOPAD.encode(&bytes::<32>()?))
}

/// `length` characters drawn uniformly from `[A-Za-z0-9]` (the form Duo's clients give a
/// JWT's `jti` and a Universal Prompt `state` or `nonce`).
pub fn alphanumeric(length: usize) -> Result<String, RandomError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(length);
    while out.len() < length {
        for byte in bytes::<64>()? {
            // 62 * 4 = 248: bytes beyond it are dropped, so every character is equally likely.
            if byte < 248 && out.len() < length {
                out.push(char::from(ALPHABET[usize::from(byte % 62)]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn alphanumeric_strings_have_the_length_and_alphabet_asked() {
        let drawn = super::alphanumeric(36).unwrap();
        assert_eq!(drawn.len(), 36);
        assert!(drawn.chars().all(|c| c.is_ascii_alphanumeric()), "{drawn}");
        assert_ne!(drawn, super::alphanumeric(36).unwrap());
    }
}
