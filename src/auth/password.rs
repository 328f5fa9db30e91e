//! Password hashing with argon2id (argon2 crate defaults: m = 19 MiB, t = 2, p = 1, the
//! OWASP baseline) and the password rules of `auth.register` / `me.update`.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use std::sync::LazyLock;

use crate::error::{AppError, FieldError};

/// Shortest accepted password, in characters.
pub const MIN_LEN: usize = 10;
/// Longest accepted password, in characters.
pub const MAX_LEN: usize = 256;

/// A hash of a random password, verified against when the email is unknown so that a wrong
/// email and a wrong password take the same time.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hash(&crate::auth::tokens::hex(
        &crate::auth::tokens::random_bytes::<16>(),
    ))
    .expect("argon2 hashing with default params")
});

/// Checks the password rules; errors name `field`.
pub fn validate(field: &str, password: &str, email: &str) -> Result<(), FieldError> {
    let len = password.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&len) {
        return Err(FieldError::new(
            field,
            format!("must be {MIN_LEN} to {MAX_LEN} characters long"),
        ));
    }
    if password.trim().eq_ignore_ascii_case(email.trim()) {
        return Err(FieldError::new(field, "must not be the email address"));
    }
    Ok(())
}

/// Hashes a password to a PHC string (`$argon2id$v=19$…`). CPU-bound (~tens of ms):
/// call from `spawn_blocking`.
pub fn hash(password: &str) -> Result<String, AppError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("argon2 hash: {e}")))
}

/// Verifies `password` against a PHC hash, or against a dummy hash when `hash` is `None`
/// (always false then), so both paths cost one argon2 verification.
pub fn verify(password: &str, hash: Option<&str>) -> bool {
    let argon = Argon2::default();
    match hash {
        Some(h) => argon.verify_password(password.as_bytes(), h).is_ok(),
        None => {
            let _ = argon.verify_password(password.as_bytes(), DUMMY_HASH.as_str());
            false
        }
    }
}

/// [`hash`] on the blocking pool.
pub async fn hash_async(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| AppError::Internal(e.into()))?
}

/// [`verify`] on the blocking pool.
pub async fn verify_async(password: String, hash: Option<String>) -> Result<bool, AppError> {
    tokio::task::spawn_blocking(move || verify(&password, hash.as_deref()))
        .await
        .map_err(|e| AppError::Internal(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(validate("password", "short", "a@b.c").is_err());
        assert!(validate("password", &"x".repeat(257), "a@b.c").is_err());
        assert!(validate("password", "alice@example.com", "Alice@Example.com").is_err());
        assert!(validate("password", "correct horse battery", "a@b.c").is_ok());
    }

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", Some(&h)));
        assert!(!verify("wrong horse battery", Some(&h)));
        assert!(!verify("correct horse battery", None));
    }
}
