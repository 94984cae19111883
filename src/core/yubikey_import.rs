//! The key files administrators import for YubiKey's local mode: the CSV line per key that
//! YubiKey Manager writes (`ykman otp yubiotp --config-output`) and the personalization
//! tool's "Yubico format" log: `serial,public ID (modhex),private ID (hex),AES key (hex),...`
//! (the access code, the time and anything after are ignored). Blank lines and lines
//! starting with `#` are skipped.

use super::yubico_otp::modhex_decode;

/// One key of a file.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key's serial number, when the file has one (0 or empty: none).
    pub serial: Option<u64>,
    /// Lowercase modhex, as the key types it before each OTP.
    pub public_id: String,
    pub private_id: [u8; 6],
    pub aes_key: [u8; 16],
}

/// Never shows the secrets.
impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("serial", &self.serial)
            .field("public_id", &self.public_id)
            .finish_non_exhaustive()
    }
}

fn hex<const N: usize>(text: &str, what: &str) -> Result<[u8; N], String> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(text.as_bytes())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| format!("the {what} is not {} hexadecimal characters", N * 2))
}

fn record(line: &str) -> Result<KeyRecord, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() < 4 {
        return Err("expected serial,public ID,private ID,AES key".into());
    }
    let serial = match fields[0] {
        "" | "0" => None,
        digits => Some(
            digits
                .parse()
                .map_err(|_| format!("the serial {digits:?} is not a number"))?,
        ),
    };
    let public_id = fields[1].to_ascii_lowercase();
    // A public ID is 0 to 16 bytes; Twofold needs one to tell keys apart.
    let public_bytes = modhex_decode(&public_id).ok_or("the public ID is not modhex (cbdefghijklnrtuv)")?;
    if public_bytes.is_empty() || public_bytes.len() > 16 {
        return Err("the public ID is 1 to 16 bytes (2 to 32 modhex characters)".into());
    }
    Ok(KeyRecord {
        serial,
        public_id,
        private_id: hex(fields[2], "private ID")?,
        aes_key: hex(fields[3], "AES key")?,
    })
}

/// Reads a key file. All or nothing: the first bad line is named, with why, and a public
/// ID that appears twice is refused.
pub fn parse_key_file(text: &str) -> Result<Vec<KeyRecord>, String> {
    let mut records: Vec<KeyRecord> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let found = record(line).map_err(|why| format!("line {}: {why}", number + 1))?;
        if records.iter().any(|r| r.public_id == found.public_id) {
            return Err(format!(
                "line {}: the public ID {} appears twice",
                number + 1,
                found.public_id
            ));
        }
        records.push(found);
    }
    if records.is_empty() {
        return Err("the file holds no key".into());
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ykman_lines_and_skips_comments() {
        let file = "# written by ykman\n\
                    12345678,vvcijgklnrbf,a1b2c3d4e5f6,2b7e151628aed2a6abf7158809cf4f3c,,2026-12-04T18:00:00,\n\
                    \n\
                    0,VVCCCCCCCCCB,000000000001,000102030405060708090A0B0C0D0E0F\n";
        let keys = parse_key_file(file).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].serial, Some(12_345_678));
        assert_eq!(keys[0].public_id, "vvcijgklnrbf");
        assert_eq!(keys[0].private_id, [0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6]);
        assert_eq!(keys[0].aes_key[0], 0x2b);
        assert_eq!((keys[1].serial, keys[1].public_id.as_str()), (None, "vvcccccccccb"));
        assert!(!format!("{keys:?}").contains("2b7e"), "Debug hides the AES key");
    }

    #[test]
    fn a_bad_line_is_named_and_nothing_is_read() {
        let cases = [
            ("1,vvcijgklnrbf,a1b2c3d4e5f6\n", "line 1: expected"),
            (
                "1,vvcijgklnrbf,a1b2c3d4e5,2b7e151628aed2a6abf7158809cf4f3c\n",
                "line 1: the private ID",
            ),
            ("\n1,vvcijgklnrbf,a1b2c3d4e5f6,2b7e15\n", "line 2: the AES key"),
            ("1,hello,a1b2c3d4e5f6,2b7e151628aed2a6abf7158809cf4f3c\n", "not modhex"),
            (
                "x,vvcijgklnrbf,a1b2c3d4e5f6,2b7e151628aed2a6abf7158809cf4f3c\n",
                "serial",
            ),
            (
                "1,vvcijgklnrbf,a1b2c3d4e5f6,2b7e151628aed2a6abf7158809cf4f3c\n\
                 2,vvcijgklnrbf,a1b2c3d4e5f6,2b7e151628aed2a6abf7158809cf4f3c\n",
                "line 2: the public ID vvcijgklnrbf appears twice",
            ),
            ("# nothing\n", "no key"),
        ];
        for (file, expected) in cases {
            let error = parse_key_file(file).unwrap_err();
            assert!(error.contains(expected), "{file:?}: {error}");
        }
    }
}
