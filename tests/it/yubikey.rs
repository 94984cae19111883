//! Twofold reads Yubico OTPs as Yubico's tools make them: 500 OTPs of random keys, IDs and
//! counters made by `yubiotp` (PyPI) open to the same fields in `core::yubico_otp`.

use serde_json::json;
use twofold::core::yubico_otp::{open, parse};

use crate::duo_client::run_python;

fn bytes<const N: usize>(hex: &str) -> [u8; N] {
    data_encoding::HEXLOWER
        .decode(hex.as_bytes())
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn otps_made_by_yubiotp_open_to_their_fields() {
    let vectors = run_python("yubiotp_vectors.py", &json!({"count": 500, "seed": 7}));
    let vectors = vectors.as_array().unwrap();
    assert_eq!(vectors.len(), 500);
    for vector in vectors {
        let text = vector["otp"].as_str().unwrap();
        let otp = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(otp.public_id, vector["public_id"].as_str().unwrap(), "{text}");
        let token = open(
            &otp,
            &bytes(vector["aes_key"].as_str().unwrap()),
            &bytes(vector["private_id"].as_str().unwrap()),
        )
        .unwrap_or_else(|e| panic!("{text}: {e}"));
        let field = |name: &str| vector[name].as_u64().unwrap();
        assert_eq!(
            (
                u64::from(token.use_counter),
                u64::from(token.session_counter),
                u64::from(token.timestamp),
                u64::from(token.random)
            ),
            (
                field("use_counter"),
                field("session_counter"),
                field("timestamp"),
                field("random")
            ),
            "{text}"
        );
    }
}
