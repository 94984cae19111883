//! HOTP, RFC 4226: `Truncate(HMAC(K, C)) mod 10^digits` with an 8-byte big-endian counter.
//! The same truncation serves TOTP (RFC 6238 §4) with HMAC-SHA-1, -SHA-256 or -SHA-512.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

/// The HMAC hash of an OTP credential (RFC 6238 §1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The name used by `otpauth://` URIs and `oathtool --totp=`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "SHA1" => Some(Algorithm::Sha1),
            "SHA256" => Some(Algorithm::Sha256),
            "SHA512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// An empty key: HMAC itself accepts any length, but an OTP secret never is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the OTP secret is empty")]
pub struct EmptyKey;

/// The HOTP value for `counter`, before it is written with leading zeros.
pub fn hotp_value(algorithm: Algorithm, key: &[u8], counter: u64, digits: u32) -> Result<u32, EmptyKey> {
    if key.is_empty() {
        return Err(EmptyKey);
    }
    let message = counter.to_be_bytes();
    let truncated = match algorithm {
        Algorithm::Sha1 => truncate(&mac::<Hmac<Sha1>>(key, &message)?),
        Algorithm::Sha256 => truncate(&mac::<Hmac<Sha256>>(key, &message)?),
        Algorithm::Sha512 => truncate(&mac::<Hmac<Sha512>>(key, &message)?),
    };
    Ok(truncated % 10u32.pow(digits))
}

/// The HOTP code as the user types it: `digits` characters, zero-padded.
pub fn format_code(value: u32, digits: u32) -> String {
    format!("{value:0width$}", width = digits as usize)
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Result<Vec<u8>, EmptyKey> {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).map_err(|_| EmptyKey)?;
    mac.update(message);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Dynamic truncation, RFC 4226 §5.3: four bytes at the offset given by the low nibble
/// of the last byte, top bit masked.
fn truncate(hs: &[u8]) -> u32 {
    let offset = usize::from(hs[hs.len() - 1] & 0x0f);
    let bytes = [hs[offset], hs[offset + 1], hs[offset + 2], hs[offset + 3]];
    u32::from_be_bytes(bytes) & 0x7fff_ffff
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC4226_KEY: &[u8] = b"12345678901234567890";

    /// RFC 4226 Appendix D.
    #[test]
    fn rfc4226_appendix_d_vectors() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.into_iter().enumerate() {
            let got = hotp_value(Algorithm::Sha1, RFC4226_KEY, counter as u64, 6).unwrap();
            assert_eq!(got, want, "counter {counter}");
        }
    }

    #[test]
    fn rfc4226_intermediate_truncation_values() {
        // Appendix D "Truncated" column, before the modulo.
        let got = hotp_value(Algorithm::Sha1, RFC4226_KEY, 0, 9).unwrap();
        assert_eq!(got, 1284755224 % 1_000_000_000);
        let got = hotp_value(Algorithm::Sha1, RFC4226_KEY, 7, 8).unwrap();
        assert_eq!(got, 82162583);
    }

    #[test]
    fn leading_zeros_are_kept() {
        let value = hotp_value(Algorithm::Sha1, RFC4226_KEY, 7, 8).unwrap();
        assert_eq!(format_code(value, 8), "82162583");
        assert_eq!(format_code(5924, 6), "005924");
    }

    #[test]
    fn empty_key_is_refused() {
        assert_eq!(hotp_value(Algorithm::Sha1, b"", 0, 6), Err(EmptyKey));
    }

    #[test]
    fn algorithm_names_round_trip() {
        for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
        assert_eq!(Algorithm::from_name("sha256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::from_name("MD5"), None);
    }
}
