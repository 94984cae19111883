//! Backup codes, as the product documents describe them: one code per account, 16
//! characters in four groups of four, shown once, single use; using it issues the next.
//!
//! Alphabet: Crockford base32 (no I, L, O, U), so 16 characters carry 80 bits from the
//! CSPRNG — above NIST SP 800-63B's 64 bits, so a keyed fast hash (HMAC-SHA-256 under a
//! server key) is a safe way to store it. Input is forgiving: any case, with or without
//! dashes and spaces, and O/I/L read as 0/1/1 as Crockford decoding does.

use super::secretbox::keyed_hash;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
pub const RANDOM_BYTES: usize = 10;
const LENGTH: usize = 16;

/// A freshly generated code, to be shown to its owner once.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupCode(String);

impl std::fmt::Debug for BackupCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupCode(..)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a backup code is 16 letters and digits, such as K7Q2-9XMD-4HNP-Z0RT")]
pub struct MalformedBackupCode;

impl BackupCode {
    /// Encodes 80 random bits as 16 symbols of 5 bits.
    pub fn from_random(random: [u8; RANDOM_BYTES]) -> BackupCode {
        let mut bits: u128 = 0;
        for byte in random {
            bits = (bits << 8) | u128::from(byte);
        }
        let code = (0..LENGTH)
            .rev()
            .map(|i| char::from(ALPHABET[((bits >> (5 * i)) & 0x1f) as usize]))
            .collect();
        BackupCode(code)
    }

    /// Reads what a user typed.
    pub fn parse(input: &str) -> Result<BackupCode, MalformedBackupCode> {
        let mut code = String::with_capacity(LENGTH);
        for c in input.chars().filter(|c| !matches!(c, '-' | ' ' | '\t')) {
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                other => other,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
                return Err(MalformedBackupCode);
            }
            code.push(c);
        }
        if code.len() != LENGTH {
            return Err(MalformedBackupCode);
        }
        Ok(BackupCode(code))
    }

    /// `K7Q2-9XMD-4HNP-Z0RT`: how the code is shown.
    pub fn display(&self) -> String {
        let groups: Vec<&str> = (0..4).filter_map(|i| self.0.get(i * 4..i * 4 + 4)).collect();
        groups.join("-")
    }

    /// The only form that is stored: HMAC-SHA-256 under the server's backup-code key.
    pub fn hash(&self, key: &[u8; 32]) -> [u8; 32] {
        keyed_hash(key, self.0.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_80_bits_in_four_groups() {
        let code = BackupCode::from_random([0; 10]);
        assert_eq!(code.display(), "0000-0000-0000-0000");
        let code = BackupCode::from_random([0xff; 10]);
        assert_eq!(code.display(), "ZZZZ-ZZZZ-ZZZZ-ZZZZ");
        let code = BackupCode::from_random([0x08, 0x86, 0x42, 0x98, 0xe8, 0x4a, 0x96, 0xc6, 0xb9, 0xf0]);
        assert_eq!(code.display(), "1234-5678-9ABC-DEFG");
    }

    #[test]
    fn input_is_forgiving_but_strict_on_length_and_alphabet() {
        let code = BackupCode::parse("1234-5678-9ABC-DEFG").unwrap();
        assert_eq!(BackupCode::parse("1234 5678 9abc defg").unwrap(), code);
        assert_eq!(BackupCode::parse("l234-5678-9abc-defg").unwrap(), code);
        assert_eq!(
            BackupCode::parse("O000000000000000").unwrap().display(),
            "0000-0000-0000-0000"
        );
        assert_eq!(BackupCode::parse("1234-5678-9ABC-DEF"), Err(MalformedBackupCode));
        assert_eq!(BackupCode::parse("1234-5678-9ABC-DEFGH"), Err(MalformedBackupCode));
        assert_eq!(BackupCode::parse("1234-5678-9ABC-DEFU"), Err(MalformedBackupCode));
        assert_eq!(BackupCode::parse("1234-5678-9ABC-DEFé"), Err(MalformedBackupCode));
    }

    #[test]
    fn hash_depends_on_code_and_key() {
        let a = BackupCode::parse("1234-5678-9ABC-DEFG").unwrap();
        let b = BackupCode::parse("1234-5678-9ABC-DEFH").unwrap();
        assert_ne!(a.hash(&[1; 32]), b.hash(&[1; 32]));
        assert_ne!(a.hash(&[1; 32]), a.hash(&[2; 32]));
        assert_eq!(
            a.hash(&[1; 32]),
            BackupCode::parse("1234 5678 9abc defg").unwrap().hash(&[1; 32])
        );
    }

    #[test]
    fn debug_never_shows_the_code() {
        let code = BackupCode::from_random([7; 10]);
        assert!(!format!("{code:?}").contains(&code.display()[..4]));
    }

    proptest! {
        #[test]
        fn displayed_codes_parse_back(random in any::<[u8; 10]>()) {
            let code = BackupCode::from_random(random);
            let shown = code.display();
            prop_assert_eq!(shown.len(), 19);
            prop_assert_eq!(BackupCode::parse(&shown).unwrap(), code.clone());
            prop_assert_eq!(BackupCode::parse(&shown.to_lowercase().replace('-', " ")).unwrap(), code);
        }

        #[test]
        fn parse_never_panics(input in ".{0,40}") {
            let _ = BackupCode::parse(&input);
        }
    }
}
