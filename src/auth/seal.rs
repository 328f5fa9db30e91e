//! Sealing secrets at rest: ChaCha20-Poly1305 (RFC 8439, the RustCrypto `chacha20poly1305`
//! crate) under one 32-byte key per cluster (`secret_sealing_key`, or a key generated once
//! into `data_dir/secret-sealing-key`).
//!
//! A sealed value is `v1.<base64url(nonce ‖ ciphertext ‖ tag)>` with a random 96-bit nonce.
//! The caller binds it to its row with associated data (e.g. the session id), so a sealed
//! value copied into another row does not open. Used for the VNC passwords of desktops: any
//! node can open a desktop's link, none writes the passwords anywhere else.

use base64::Engine as _;
use chacha20poly1305::{
    ChaCha20Poly1305, Key, KeyInit, Nonce,
    aead::{Aead, Payload},
};

use crate::config::Config;

const PREFIX: &str = "v1.";
const NONCE_LEN: usize = 12;

/// The node's sealing key. Cheap to share (`Arc`).
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer under `key` (32 bytes).
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(&Key::from(*key)),
        }
    }

    /// The key from `secret_sealing_key`, else from (or newly into) the data directory.
    /// Errors: the key file is unreadable, unwritable or malformed.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let key = if config.secret_sealing_key.is_empty() {
            super::tokens::load_or_create_key_file(
                &config.data_dir.join("secret-sealing-key"),
                "AGENTDESK_SECRET_SEALING_KEY",
            )?
        } else {
            crate::config::decode_signing_key(&config.secret_sealing_key)
                .expect("validated secret_sealing_key")
        };
        let key: [u8; 32] = key
            .get(..32)
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| anyhow::anyhow!("the sealing key must be 32 bytes"))?;
        Ok(Self::new(&key))
    }

    /// Seals `plaintext`, bound to `aad` (not secret, not stored; the opener passes the same).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("ChaCha20-Poly1305 encrypts any input below 256 GiB");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )
    }

    /// Opens a value [`seal`](Self::seal) made with the same key and `aad`. Errors: not a
    /// sealed value, another key, other associated data, or tampered with.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> anyhow::Result<Vec<u8>> {
        let body = sealed
            .strip_prefix(PREFIX)
            .ok_or_else(|| anyhow::anyhow!("not a sealed value (expected the v1. prefix)"))?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| anyhow::anyhow!("a sealed value is not base64url"))?;
        if bytes.len() < NONCE_LEN + 16 {
            anyhow::bail!("a sealed value is too short");
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| {
                anyhow::anyhow!(
                    "a sealed value does not open: another secret_sealing_key, or tampered with"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_its_row() {
        let s = Sealer::new(&[7; 32]);
        let sealed = s.seal(b"hunter22", b"session-a");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("hunter22"));
        assert_eq!(s.open(&sealed, b"session-a").unwrap(), b"hunter22");
        // Two seals of the same secret differ (random nonce).
        assert_ne!(sealed, s.seal(b"hunter22", b"session-a"));
        // Another row, another key, a flipped bit: refused.
        assert!(s.open(&sealed, b"session-b").is_err());
        assert!(Sealer::new(&[8; 32]).open(&sealed, b"session-a").is_err());
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert!(
            s.open(&String::from_utf8(bytes).unwrap(), b"session-a")
                .is_err()
        );
        assert!(s.open("plain", b"x").is_err());
    }
}
