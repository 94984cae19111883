//! The `otpauth://` Key URI (Google Authenticator's "Key Uri Format", the de-facto spec):
//! `otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER[&algorithm=..&digits=..&period=..]`.
//! Label parts are percent-encoded per RFC 3986 (a space is `%20`, never `+`); the secret is
//! upper-case base32 without padding; defaults (SHA1, 6, 30) are left out, as apps expect.

use data_encoding::BASE32_NOPAD;

use super::hotp::Algorithm;
use super::totp::TotpParams;

/// A TOTP credential as an authenticator app sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUri {
    pub issuer: String,
    pub account: String,
    pub secret: Vec<u8>,
    pub params: TotpParams,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not an otpauth://totp/ URI")]
    NotTotp,
    #[error("the secret is missing or not base32")]
    BadSecret,
    #[error("unsupported parameter value: {0}")]
    BadParameter(String),
    #[error("bad percent-encoding")]
    BadEncoding,
}

impl KeyUri {
    pub fn to_uri(&self) -> String {
        let issuer = percent_encode(&self.issuer);
        let mut uri = format!(
            "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}",
            percent_encode(&self.account),
            BASE32_NOPAD.encode(&self.secret)
        );
        let defaults = TotpParams::default();
        if self.params.algorithm != defaults.algorithm {
            uri.push_str(&format!("&algorithm={}", self.params.algorithm.name()));
        }
        if self.params.digits != defaults.digits {
            uri.push_str(&format!("&digits={}", self.params.digits));
        }
        if self.params.period != defaults.period {
            uri.push_str(&format!("&period={}", self.params.period));
        }
        uri
    }

    pub fn parse(uri: &str) -> Result<KeyUri, ParseError> {
        let rest = uri.strip_prefix("otpauth://totp/").ok_or(ParseError::NotTotp)?;
        let (label, query) = rest.split_once('?').unwrap_or((rest, ""));
        let label = percent_decode(label)?;
        let (label_issuer, account) = match label.split_once(':') {
            Some((issuer, account)) => (Some(issuer.to_string()), account.trim_start().to_string()),
            None => (None, label),
        };
        let mut key = KeyUri {
            issuer: label_issuer.unwrap_or_default(),
            account,
            secret: Vec::new(),
            params: TotpParams::default(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)?;
            match name {
                "secret" => {
                    let cleaned = value.to_ascii_uppercase().replace(['=', ' '], "");
                    key.secret = BASE32_NOPAD
                        .decode(cleaned.as_bytes())
                        .map_err(|_| ParseError::BadSecret)?;
                }
                "issuer" => key.issuer = value,
                "algorithm" => {
                    key.params.algorithm = Algorithm::from_name(&value).ok_or(ParseError::BadParameter(value))?
                }
                "digits" => key.params.digits = parse_in(&value, 6..=8)?,
                "period" => key.params.period = parse_in(&value, 1..=300)?,
                _ => {}
            }
        }
        if key.secret.is_empty() {
            return Err(ParseError::BadSecret);
        }
        Ok(key)
    }
}

fn parse_in(value: &str, range: std::ops::RangeInclusive<u32>) -> Result<u32, ParseError> {
    value
        .parse()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| ParseError::BadParameter(value.to_string()))
}

/// The base32 secret as a person types it: in groups of four (`ABCD EFGH ...`).
pub fn grouped_secret(base32: &str) -> String {
    let groups: Vec<&str> = base32
        .as_bytes()
        .chunks(4)
        .filter_map(|chunk| std::str::from_utf8(chunk).ok())
        .collect();
    groups.join(" ")
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> Result<String, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or(ParseError::BadEncoding)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ParseError::BadEncoding)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ParseError::BadEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn builds_the_documented_example() {
        let key = KeyUri {
            issuer: "ACME Co".into(),
            account: "alice@example.com".into(),
            secret: BASE32_NOPAD.decode(b"L3UNWXMMHNVP7QD3VMSLMJEYX5FDVCQ3").unwrap(),
            params: TotpParams::default(),
        };
        assert_eq!(
            key.to_uri(),
            "otpauth://totp/ACME%20Co:alice%40example.com?secret=L3UNWXMMHNVP7QD3VMSLMJEYX5FDVCQ3&issuer=ACME%20Co"
        );
    }

    #[test]
    fn non_default_parameters_are_written() {
        let key = KeyUri {
            issuer: "T".into(),
            account: "a".into(),
            secret: vec![1; 20],
            params: TotpParams {
                algorithm: Algorithm::Sha256,
                digits: 8,
                period: 60,
            },
        };
        assert!(key.to_uri().ends_with("&algorithm=SHA256&digits=8&period=60"));
    }

    #[test]
    fn parses_other_issuers_uris() {
        let key = KeyUri::parse("otpauth://totp/Big%20Corporation%3A%20alice%40bigco.com?secret=gezdgnbvgy3tqojqgezdgnbvgy3tqojq&issuer=Big%20Corporation&digits=8").unwrap();
        assert_eq!(key.issuer, "Big Corporation");
        assert_eq!(key.account, "alice@bigco.com");
        assert_eq!(key.secret, b"12345678901234567890");
        assert_eq!(key.params.digits, 8);
        assert!(KeyUri::parse("otpauth://hotp/x?secret=GEZDGNBV").is_err());
        assert!(KeyUri::parse("otpauth://totp/x?digits=6").is_err());
        assert!(KeyUri::parse("otpauth://totp/x?secret=GEZDGNBV&digits=12").is_err());
    }

    #[test]
    fn groups_the_secret_by_four() {
        assert_eq!(
            grouped_secret("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
        );
    }

    proptest! {
        #[test]
        fn uri_round_trips(issuer in "[^:]{1,20}", account in "[^:]{1,30}",
                           secret in proptest::collection::vec(any::<u8>(), 16..40),
                           digits in 6u32..=8, period in prop::sample::select(vec![30u32, 60])) {
            let key = KeyUri { issuer, account, secret,
                params: TotpParams { algorithm: Algorithm::Sha512, digits, period } };
            let uri = key.to_uri();
            prop_assert!(!uri.contains(' '));
            let parsed = KeyUri::parse(&uri).unwrap();
            prop_assert_eq!(parsed.account.trim_start(), key.account.trim_start());
            prop_assert_eq!(parsed.secret, key.secret);
            prop_assert_eq!(parsed.params, key.params);
            prop_assert_eq!(parsed.issuer, key.issuer);
        }
    }
}
