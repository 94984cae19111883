//! Yubico OTP: what a YubiKey types when touched, read and checked with the key's AES
//! secret (protocol reference §5). `public ID (modhex) || modhex(AES-128-ECB(key, token))`,
//! the 16-byte token holding the key's private ID, its counters and a CRC-16.

use aes::cipher::{BlockDecrypt, KeyInit};
use subtle::ConstantTimeEq;

/// Modhex digits, by value: letters that sit on the same key on nearly every layout.
const MODHEX: &[u8; 16] = b"cbdefghijklnrtuv";
/// The same keys as a US-Dvorak layout types them, by value.
const DVORAK: &[u8; 16] = b"jxe.uidchtnbpygk";
/// What a CRC-16 over a whole good token leaves.
const CRC_OK_RESIDUE: u16 = 0xf0b8;
/// An OTP is 32 characters of ciphertext after a public ID of at most 16.
pub const MIN_LENGTH: usize = 32;
pub const MAX_LENGTH: usize = 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OtpError {
    #[error("A YubiKey code is 32 to 48 characters: touch the key once, in an empty field.")]
    Length,
    #[error("That is not a YubiKey code: it has characters a YubiKey never types.")]
    Alphabet,
    /// The CRC does not hold: another key's code, a wrong AES secret, or a mistyped code.
    #[error("That YubiKey code is not valid.")]
    Crc,
    /// The token decrypts, but holds another private ID.
    #[error("That YubiKey code is not valid.")]
    PrivateId,
}

/// An OTP as typed: the public ID that names the key, and the encrypted token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Otp {
    /// Lowercase modhex (a Dvorak typing mapped back).
    pub public_id: String,
    pub ciphertext: [u8; 16],
    /// The whole OTP in lowercase modhex, as a validation server expects it.
    pub text: String,
}

/// What the token says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub private_id: [u8; 6],
    /// Non-volatile, up by one at each power-up (the caps-lock flag masked off).
    pub use_counter: u16,
    /// About 8 Hz since power-up, from a random start; 24 bits.
    pub timestamp: u32,
    /// Volatile, up by one at each OTP since power-up.
    pub session_counter: u8,
    pub random: u16,
}

impl Token {
    /// The counters as one number that every later OTP of the key exceeds: the use counter,
    /// then the session counter (the replay rule of §5.4).
    pub fn counter(&self) -> i64 {
        (i64::from(self.use_counter) << 8) | i64::from(self.session_counter)
    }
}

fn digit(alphabet: &[u8; 16], c: u8) -> Option<u8> {
    alphabet.iter().position(|&d| d == c).and_then(|v| u8::try_from(v).ok())
}

/// The bytes of a modhex string (lowercase), or nothing.
pub fn modhex_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| Some((digit(MODHEX, pair[0])? << 4) | digit(MODHEX, pair[1])?))
        .collect()
}

pub fn modhex_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|b| [MODHEX[usize::from(b >> 4)], MODHEX[usize::from(b & 0x0f)]])
        .map(char::from)
        .collect()
}

/// Reads an OTP as typed: surrounding blanks ignored, upper case and a US-Dvorak layout's
/// typing accepted and mapped to lowercase modhex.
pub fn parse(input: &str) -> Result<Otp, OtpError> {
    let typed = input.trim().to_ascii_lowercase();
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&typed.len()) {
        return Err(OtpError::Length);
    }
    let is_modhex = typed.bytes().all(|c| digit(MODHEX, c).is_some());
    let text = if is_modhex {
        typed
    } else if typed.bytes().all(|c| digit(DVORAK, c).is_some()) {
        typed
            .bytes()
            .filter_map(|c| digit(DVORAK, c).map(|v| char::from(MODHEX[usize::from(v)])))
            .collect()
    } else {
        return Err(OtpError::Alphabet);
    };
    let split = text.len() - MIN_LENGTH;
    let ciphertext: [u8; 16] = modhex_decode(&text[split..])
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(OtpError::Alphabet)?;
    let public_id = text[..split].to_string();
    if modhex_decode(&public_id).is_none() {
        return Err(OtpError::Length);
    }
    Ok(Otp {
        public_id,
        ciphertext,
        text,
    })
}

/// The CRC-16 Yubico uses (ISO 13239: reflected 0x1021, initial 0xffff, no final XOR).
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xffff;
    for &byte in data {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x8408 } else { crc >> 1 };
        }
    }
    crc
}

/// Decrypts the token with the key's AES secret and checks its CRC and private ID
/// (compared in constant time).
pub fn open(otp: &Otp, aes_key: &[u8; 16], private_id: &[u8; 6]) -> Result<Token, OtpError> {
    let mut block = aes::Block::from(otp.ciphertext);
    aes::Aes128::new(aes_key.into()).decrypt_block(&mut block);
    let plain: [u8; 16] = block.into();
    if crc16(&plain) != CRC_OK_RESIDUE {
        return Err(OtpError::Crc);
    }
    let token = Token {
        private_id: [plain[0], plain[1], plain[2], plain[3], plain[4], plain[5]],
        use_counter: u16::from_le_bytes([plain[6], plain[7]]) & 0x7fff,
        timestamp: u32::from_le_bytes([plain[8], plain[9], plain[10], 0]),
        session_counter: plain[11],
        random: u16::from_le_bytes([plain[12], plain[13]]),
    };
    if !bool::from(token.private_id.ct_eq(private_id)) {
        return Err(OtpError::PrivateId);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    //! The worked vectors of the protocol reference §5.5 (recomputed there with `yubiotp`),
    //! and libyubikey's own example.
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 16] = [
        0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c,
    ];
    const PRIVATE_ID: [u8; 6] = [0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6];
    const OTP: &str = "vvcijgklnrbfchugidrdnbnenkbknvrnrfjdvjgjecbn";

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn modhex_is_hex_in_other_letters() {
        assert_eq!(modhex_encode(&[0xff, 0x07, 0x85, 0x9a, 0xbc, 0x14]), "vvcijgklnrbf");
        assert_eq!(modhex_decode("vvcijgklnrbf").unwrap(), hex("ff07859abc14"));
        assert_eq!(modhex_decode("cc").unwrap(), [0]);
        assert_eq!(modhex_decode("vva"), None);
        assert_eq!(modhex_decode("vx"), None);
    }

    #[test]
    fn the_crc_of_libyubikeys_example() {
        let plain = hex("8792ebfe26cc130030c20011c89f23c8");
        assert_eq!(!crc16(&plain[..14]), 0xc823);
        assert_eq!(crc16(&plain), CRC_OK_RESIDUE);
    }

    #[test]
    fn the_worked_vector_opens_to_its_fields() {
        let otp = parse(OTP).unwrap();
        assert_eq!(otp.public_id, "vvcijgklnrbf");
        assert_eq!(otp.ciphertext.to_vec(), hex("06e572c2b1b3b919bfcbc482f858301b"));
        let token = open(&otp, &KEY, &PRIVATE_ID).unwrap();
        assert_eq!(
            token,
            Token {
                private_id: PRIVATE_ID,
                use_counter: 1,
                timestamp: 0x123456,
                session_counter: 0,
                random: 0xbeef,
            }
        );
        assert_eq!(token.counter(), 256);
    }

    #[test]
    fn libyubikeys_example_with_a_short_public_id() {
        let key: [u8; 16] = hex("ecde18dbe76fbd0c33330f1c354871db").try_into().unwrap();
        let private_id: [u8; 6] = hex("8792ebfe26cc").try_into().unwrap();
        let otp = parse("dteffujehknhfjbrjnlnldnhcujvddbikngjrtgh").unwrap();
        assert_eq!(otp.public_id, "dteffuje");
        let token = open(&otp, &key, &private_id).unwrap();
        assert_eq!(
            (token.use_counter, token.timestamp, token.session_counter, token.random),
            (19, 0x00c230, 17, 0x9fc8)
        );
    }

    #[test]
    fn wrong_keys_private_ids_and_tampering_are_refused() {
        let otp = parse(OTP).unwrap();
        let mut other_key = KEY;
        other_key[0] ^= 1;
        assert_eq!(open(&otp, &other_key, &PRIVATE_ID), Err(OtpError::Crc));
        let mut other_id = PRIVATE_ID;
        other_id[5] ^= 1;
        assert_eq!(open(&otp, &KEY, &other_id), Err(OtpError::PrivateId));
        for position in 12..OTP.len() {
            let mut tampered = OTP.as_bytes().to_vec();
            tampered[position] = if tampered[position] == b'c' { b'b' } else { b'c' };
            let tampered = parse(std::str::from_utf8(&tampered).unwrap()).unwrap();
            assert!(open(&tampered, &KEY, &PRIVATE_ID).is_err(), "position {position}");
        }
    }

    #[test]
    fn typing_is_read_leniently_and_garbage_refused() {
        let expected = parse(OTP).unwrap();
        assert_eq!(parse(&format!("  {}\n", OTP.to_uppercase())).unwrap(), expected);
        let dvorak: String = OTP
            .bytes()
            .map(|c| char::from(DVORAK[MODHEX.iter().position(|&m| m == c).unwrap()]))
            .collect();
        assert_eq!(parse(&dvorak).unwrap(), expected);
        assert_eq!(parse(&OTP[..31]), Err(OtpError::Length));
        assert_eq!(parse(&format!("{OTP}cccccc")), Err(OtpError::Length));
        assert_eq!(parse(&format!("{}a", &OTP[..43])), Err(OtpError::Alphabet));
        assert_eq!(parse("123456"), Err(OtpError::Length));
        // An odd-length public ID is not a whole number of bytes.
        assert_eq!(parse(&OTP[1..]), Err(OtpError::Length));
    }

    proptest! {
        #[test]
        fn the_parser_never_panics_and_keeps_only_modhex(input in "\\PC{0,60}") {
            if let Ok(otp) = parse(&input) {
                prop_assert!(otp.text.bytes().all(|c| MODHEX.contains(&c)));
                prop_assert_eq!(otp.text.len(), otp.public_id.len() + 32);
            }
        }

        #[test]
        fn modhex_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            prop_assert_eq!(modhex_decode(&modhex_encode(&bytes)).unwrap(), bytes);
        }
    }
}
