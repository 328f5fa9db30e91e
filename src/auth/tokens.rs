//! Access tokens (JWT, HS256, RFC 9068 `typ: at+jwt`) and opaque refresh tokens.
//!
//! Access JWT claims: `iss`, `aud`, `sub` (user id), `exp`, `iat`, `jti`, and `gen`, the
//! user's access-token generation when it was issued (the principal resolver refuses a token
//! whose generation is no longer the account's: see `users.token_generation`); the algorithm is
//! pinned to HS256 and the header's `kid` selects the verification key, so a new signing key
//! can be rolled out while tokens signed by the previous ones stay valid
//! (`jwt_previous_signing_keys`). The `kid` is derived from the key (first 16 hex digits of its
//! SHA-256), so no separate key id needs configuring. Refresh tokens are `rt_` + 43 base64url
//! characters (256 random bits); only their SHA-256 is stored.

use std::path::Path;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{config::Config, error::AppError};

/// JWT header `typ` for access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer (`jwt_issuer`).
    pub iss: String,
    /// Audience (`jwt_audience`).
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Unique token id (UUIDv7).
    pub jti: String,
    /// The account's access-token generation at issue (`users.token_generation`); tokens of
    /// an older generation are refused. Absent (0) in tokens issued before it existed.
    #[serde(default, rename = "gen")]
    pub generation: i64,
}

struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Key {
    fn new(secret: &[u8]) -> Self {
        let kid = hex(&Sha256::digest(secret))[..16].to_owned();
        Self {
            kid,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }
}

/// Signs and verifies access tokens with the current key; verifies with retired ones too.
pub struct Keyring {
    current: Key,
    previous: Vec<Key>,
    validation: Validation,
    issuer: String,
    audience: String,
    /// Access token lifetime (s).
    pub access_ttl_s: u64,
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Random bytes from the OS-seeded CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    rand::rng().fill_bytes(&mut buf);
    buf
}

impl Keyring {
    /// Builds the keyring from config. Without `jwt_signing_key`, reads or creates
    /// `data_dir/jwt-signing-key` (mode 0600) and logs a warning: fine for one node, but
    /// production should configure its own key. Errors: unreadable/unwritable key file.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let secret = if config.jwt_signing_key.is_empty() {
            load_or_create_key_file(
                &config.data_dir.join("jwt-signing-key"),
                "AGENTDESK_JWT_SIGNING_KEY",
            )?
        } else {
            crate::config::decode_signing_key(&config.jwt_signing_key)
                .expect("validated jwt_signing_key")
        };
        let previous = config
            .jwt_previous_signing_keys
            .iter()
            .map(|k| {
                Key::new(
                    &crate::config::decode_signing_key(k)
                        .expect("validated jwt_previous_signing_keys"),
                )
            })
            .collect();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.jwt_issuer]);
        validation.set_audience(&[&config.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Ok(Self {
            current: Key::new(&secret),
            previous,
            validation,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            access_ttl_s: config.access_token_ttl_s,
        })
    }

    /// Issues an access token for `user_id` in access-token generation `generation`; returns
    /// the token and its lifetime (s).
    pub fn issue(&self, user_id: Uuid, generation: i64) -> Result<(String, u64), AppError> {
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id.to_string(),
            exp: now + self.access_ttl_s as i64,
            iat: now,
            jti: Uuid::now_v7().to_string(),
            generation,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        header.kid = Some(self.current.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.current.encoding)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("jwt encode: {e}")))?;
        Ok((token, self.access_ttl_s))
    }

    /// Verifies an access token: `kid` must name a known key, `alg` must be HS256, `typ` must
    /// be `at+jwt`, and `iss`, `aud`, `exp` must hold. Errors: 401 `invalid_token`.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, AppError> {
        let invalid =
            |why: &str| AppError::invalid_token(format!("the access token is invalid: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed"))?;
        if header.alg != Algorithm::HS256 {
            return Err(invalid("unexpected algorithm"));
        }
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
            return Err(invalid("not an access token"));
        }
        let kid = header.kid.ok_or_else(|| invalid("no key id"))?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.kid == kid)
            .ok_or_else(|| invalid("unknown key id"))?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => invalid("expired"),
                    ErrorKind::InvalidIssuer => invalid("wrong issuer"),
                    ErrorKind::InvalidAudience => invalid("wrong audience"),
                    ErrorKind::InvalidSignature => invalid("bad signature"),
                    _ => invalid("rejected"),
                }
            })?;
        Ok(data.claims)
    }
}

/// Reads the base64 key (≥ 32 bytes) in `path`, or creates it (32 random bytes, mode 0600)
/// and logs a warning naming `setting`, the environment variable production should set
/// instead. Errors: the file is unreadable, unwritable or holds no such key.
pub(crate) fn load_or_create_key_file(path: &Path, setting: &str) -> anyhow::Result<Vec<u8>> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return crate::config::decode_signing_key(&text).ok_or_else(|| {
            anyhow::anyhow!("{} does not hold base64 of ≥ 32 bytes", path.display())
        });
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let key = random_bytes::<32>();
    let text = base64::engine::general_purpose::STANDARD.encode(key);
    write_private(path, &text)?;
    tracing::warn!(
        path = %path.display(),
        setting,
        "no key configured: generated one and stored it in the data directory; configure \
         the setting in production (every node must share it)"
    );
    Ok(key.to_vec())
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// A new opaque refresh token and its storage hash.
pub fn new_refresh_token() -> (String, String) {
    let token = format!(
        "rt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    );
    let hash = hash_refresh_token(&token);
    (token, hash)
}

/// Hex SHA-256 of a refresh token. The token carries 256 random bits, so a fast hash is
/// enough, and lookups by hash leak nothing usable through timing.
pub fn hash_refresh_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(key: &str, previous: Vec<String>) -> Keyring {
        let config = Config {
            jwt_signing_key: key.into(),
            jwt_previous_signing_keys: previous,
            ..Config::default()
        };
        Keyring::from_config(&config).unwrap()
    }

    const K1: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    const K2: &str = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWY=";

    #[test]
    fn issue_then_verify_and_rotate() {
        let old = ring(K1, vec![]);
        let (token, ttl) = old.issue(Uuid::now_v7(), 0).unwrap();
        assert_eq!(ttl, 900);
        assert!(old.verify(&token).is_ok());
        // After rotation the old key verifies but no longer signs.
        let rotated = ring(K2, vec![K1.into()]);
        assert!(rotated.verify(&token).is_ok());
        // A node that does not know the old key refuses it.
        assert!(ring(K2, vec![]).verify(&token).is_err());
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, ha) = new_refresh_token();
        let (b, _) = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 46);
        assert_eq!(hash_refresh_token(&a), ha);
    }
}
