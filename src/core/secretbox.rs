//! Secrets at rest: XChaCha20-Poly1305 under the server's master key.
//!
//! A sealed value is `version (1) || key id (4) || nonce (24) || ciphertext+tag`. The key id
//! lets a node tell "sealed under another master key" (a configuration error to refuse at
//! start-up) from "corrupted". The associated data binds each secret to its owner and
//! purpose (for example `totp:42`), so a ciphertext copied onto another account won't open.
//!
//! Purpose-specific keys (for hashing backup codes, say) are derived from the master key
//! with HMAC-SHA-256, so one configured secret covers every use.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
pub const NONCE_BYTES: usize = 24;
const HEADER_BYTES: usize = 1 + 4 + NONCE_BYTES;

/// The 256-bit master key. Its bytes never leave this type except to build the cipher.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(id {})", hex(&self.id()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the secret was sealed with a different master key")]
    WrongKey,
    #[error("the sealed secret is corrupted")]
    Corrupt,
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(bytes)
    }

    /// A short public fingerprint of the key, stored beside every ciphertext.
    pub fn id(&self) -> [u8; 4] {
        let digest = Sha256::new()
            .chain_update(b"twofold master key id\0")
            .chain_update(self.0)
            .finalize();
        [digest[0], digest[1], digest[2], digest[3]]
    }

    /// A key for one purpose, derived so that purposes never share a key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        keyed_hash(&self.0, purpose.as_bytes())
    }

    pub fn seal(&self, plaintext: &[u8], associated: &str, nonce: [u8; NONCE_BYTES]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        let payload = Payload {
            msg: plaintext,
            aad: associated.as_bytes(),
        };
        // Encryption only fails for messages beyond 256 GiB; ours are a few bytes.
        let ciphertext = cipher.encrypt(XNonce::from_slice(&nonce), payload).unwrap_or_default();
        let mut sealed = Vec::with_capacity(HEADER_BYTES + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&self.id());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open(&self, sealed: &[u8], associated: &str) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < HEADER_BYTES || sealed[0] != VERSION {
            return Err(OpenError::Corrupt);
        }
        if sealed[1..5] != self.id() {
            return Err(OpenError::WrongKey);
        }
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        let payload = Payload {
            msg: &sealed[HEADER_BYTES..],
            aad: associated.as_bytes(),
        };
        cipher
            .decrypt(XNonce::from_slice(&sealed[5..HEADER_BYTES]), payload)
            .map_err(|_| OpenError::Corrupt)
    }
}

/// HMAC-SHA-256 with a 32-byte key. The key is zero-padded to the 64-byte block, exactly as
/// HMAC itself pads short keys (RFC 2104 §2), which makes construction infallible.
pub fn keyed_hash(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as Mac>::new(&block.into());
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> MasterKey {
        MasterKey::from_bytes([n; 32])
    }

    #[test]
    fn seals_and_opens() {
        let sealed = key(1).seal(b"secret", "totp:1", [9; 24]);
        assert_eq!(key(1).open(&sealed, "totp:1").unwrap(), b"secret");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn another_key_is_named_as_such() {
        let sealed = key(1).seal(b"secret", "totp:1", [9; 24]);
        assert_eq!(key(2).open(&sealed, "totp:1"), Err(OpenError::WrongKey));
    }

    #[test]
    fn moved_or_tampered_secrets_do_not_open() {
        let sealed = key(1).seal(b"secret", "totp:1", [9; 24]);
        assert_eq!(key(1).open(&sealed, "totp:2"), Err(OpenError::Corrupt));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(key(1).open(&tampered, "totp:1"), Err(OpenError::Corrupt));
        assert_eq!(key(1).open(&sealed[..10], "totp:1"), Err(OpenError::Corrupt));
    }

    #[test]
    fn keyed_hash_is_hmac_sha256() {
        // RFC 4231 test case 2 uses a 4-byte key; with our padding, "Jefe" padded to 32
        // bytes must give the same MAC as HMAC with the bare 4-byte key.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = keyed_hash(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn derived_keys_differ_by_purpose() {
        assert_ne!(key(1).derive("backup codes"), key(1).derive("sessions"));
        assert_ne!(key(1).derive("backup codes"), key(2).derive("backup codes"));
    }

    #[test]
    fn debug_shows_only_the_key_id() {
        let shown = format!("{:?}", key(1));
        assert!(shown.starts_with("MasterKey(id "));
        assert!(!shown.contains("0101"));
    }
}
