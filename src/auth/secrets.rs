//! One-time and long-lived bearer secrets other than JWTs: API keys (`ad_<prefix>_<secret>`),
//! invitation tokens and the one-time codes of the OIDC login. Each carries at least 190
//! random bits, so a fast SHA-256 is the right storage hash (argon2 buys nothing against
//! guessing such secrets, and would put ~50 ms on every API-key request); comparisons of
//! stored hashes are constant-time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::tokens::hex;

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LOWER_ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Length of an API key's public prefix (characters, `[a-z0-9]`).
pub const KEY_PREFIX_LEN: usize = 12;
/// Length of an API key's secret part (characters, `[A-Za-z0-9]`: 190 bits).
pub const KEY_SECRET_LEN: usize = 32;

fn random_string(alphabet: &[u8], len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// Hex SHA-256 of a secret.
pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Constant-time equality of two stored hashes (or any two strings of public length).
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A new API key: `(full key shown once, prefix, hash of the secret part)`.
pub fn new_api_key() -> (String, String, String) {
    let prefix = random_string(LOWER_ALPHANUMERIC, KEY_PREFIX_LEN);
    let secret = random_string(ALPHANUMERIC, KEY_SECRET_LEN);
    let full = format!("ad_{prefix}_{secret}");
    let secret_hash = hash(&secret);
    (full, prefix, secret_hash)
}

/// Splits `ad_<prefix>_<secret>` into `(prefix, secret)`; `None` when it is not shaped like
/// an API key.
pub fn parse_api_key(key: &str) -> Option<(&str, &str)> {
    let (prefix, secret) = key.strip_prefix("ad_")?.split_once('_')?;
    let ok = prefix.len() == KEY_PREFIX_LEN
        && secret.len() == KEY_SECRET_LEN
        && prefix.bytes().all(|b| LOWER_ALPHANUMERIC.contains(&b))
        && secret.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then_some((prefix, secret))
}

/// Whether a bearer credential looks like an API key (it is checked as one, never as a JWT).
pub fn looks_like_api_key(credential: &str) -> bool {
    credential.starts_with("ad_")
}

/// A new one-time token (`<kind>_` + 43 base64url characters, 256 bits) and its hash; used
/// for invitation tokens (`inv`) and OIDC login codes (`lc`), and OIDC `state` (`st`).
pub fn new_token(kind: &str) -> (String, String) {
    use base64::Engine;
    let token = format!(
        "{kind}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(super::tokens::random_bytes::<32>())
    );
    let h = hash(&token);
    (token, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_round_trip_and_reject_lookalikes() {
        let (full, prefix, secret_hash) = new_api_key();
        let (p, s) = parse_api_key(&full).unwrap();
        assert_eq!(p, prefix);
        assert!(hashes_equal(&hash(s), &secret_hash));
        let (other, _, _) = new_api_key();
        assert_ne!(full, other);
        assert!(parse_api_key("ad_short_secret").is_none());
        assert!(parse_api_key(&full.replace("ad_", "xx_")).is_none());
        assert!(parse_api_key(&format!("{full}!")).is_none());
        assert!(!hashes_equal("ab", "abc"));
    }

    #[test]
    fn tokens_are_random_and_prefixed() {
        let (a, ha) = new_token("inv");
        let (b, _) = new_token("inv");
        assert!(a.starts_with("inv_"));
        assert_ne!(a, b);
        assert_eq!(hash(&a), ha);
    }
}
