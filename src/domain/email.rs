//! Email addresses as account keys: one canonical form, so that two addresses that read the
//! same are the same account, and addresses built to read like another are refused.
//!
//! Internationalised addresses (RFC 6530) are allowed; the rules follow the PRECIS
//! IdentifierClass idea (RFC 8264 §4.2: no compatibility characters, no invisible ones) with
//! the Unicode Security Mechanisms (UTS #39) for look-alikes, and IDNA (UTS #46) for domains.
//! NFKC is not applied to the local part (some providers treat the compatibility forms as
//! different mailboxes); compatibility characters are refused instead.
//!
//! 1. Trimmed; no whitespace or control characters; at most 320 bytes; `local@domain`.
//! 2. Every non-ASCII character must be `Identifier_Status=Allowed` (UTS #39 §3.1). This
//!    refuses every format character (category Cf: zero-width space and joiners, bidi
//!    controls such as U+202E, the BOM), fullwidth and other compatibility forms, symbols and
//!    emoji.
//! 3. Lower-cased and compared in NFC (so NFD input is the same address).
//! 4. The local part is single-script (UTS #39 §5 mixed-script detection: `pаypal` with a
//!    Cyrillic `а` is refused), and a non-ASCII local part whose confusable skeleton (UTS #39
//!    §4) is plain ASCII (`аdа` in Cyrillic reads as `ada`) is refused.
//! 5. The domain must pass UTS #46 ToASCII; it is stored in its Unicode form (ToUnicode of
//!    that), so `EXAMPLE.com` and an IDN in either form compare equal.

use unicode_normalization::UnicodeNormalization;
use unicode_security::{GeneralSecurityProfile, MixedScript};

use crate::error::FieldError;

/// Longest email, in bytes (RFC 5321 §4.5.3.1 path limit rounded up).
pub const EMAIL_MAX: usize = 320;

fn refuse(field: &str, message: &str) -> FieldError {
    FieldError::new(field, message)
}

/// The canonical form of `email` (see the module docs), or a 422 field error naming `field`.
pub fn normalize(field: &str, email: &str) -> Result<String, FieldError> {
    let shape = || refuse(field, "must be an email address such as ada@example.com");
    let e = email.trim();
    if e.is_empty() || e.len() > EMAIL_MAX {
        return Err(shape());
    }
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(shape());
    }
    if e.chars().any(|c| !c.is_ascii() && !c.identifier_allowed()) {
        return Err(refuse(
            field,
            "must not contain invisible, formatting, compatibility (such as fullwidth) or symbol characters",
        ));
    }
    let e: String = e.to_lowercase().nfc().collect();
    let Some((local, domain)) = e.split_once('@') else {
        return Err(shape());
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return Err(shape());
    }
    if domain.starts_with('.') || domain.ends_with('.') {
        return Err(shape());
    }
    if !local.is_ascii() {
        if !local.is_single_script() {
            return Err(refuse(
                field,
                "the part before @ mixes scripts (such as Latin and Cyrillic), which makes it read like another address",
            ));
        }
        if unicode_security::skeleton(local).all(|c| c.is_ascii()) {
            return Err(refuse(
                field,
                "the part before @ is written in look-alike letters of another script; type the address in its own letters",
            ));
        }
    }
    let idna_refused = || {
        refuse(
            field,
            "the part after @ is not a valid internationalized domain name (IDNA, UTS #46)",
        )
    };
    let ascii = idna::domain_to_ascii(domain).map_err(|_| idna_refused())?;
    if ascii.is_empty() {
        return Err(idna_refused());
    }
    let (unicode, result) = idna::domain_to_unicode(&ascii);
    result.map_err(|_| idna_refused())?;
    let out = format!("{local}@{unicode}");
    if out.len() > EMAIL_MAX {
        return Err(shape());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(e: &str) -> String {
        normalize("email", e).unwrap_or_else(|err| panic!("{e:?}: {}", err.message))
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(ok("  Ada@Example.COM "), "ada@example.com");
        assert_eq!(ok("a.b+tag@sub.example.org"), "a.b+tag@sub.example.org");
        // NFD and NFC are one address.
        assert_eq!(ok("jose\u{301}@example.com"), ok("jos\u{e9}@example.com"));
        // An IDN in Unicode or ASCII form is one domain.
        assert_eq!(ok("a@b\u{fc}cher.example"), ok("a@xn--bcher-kva.example"));
        // A whole-script address in its own letters is fine.
        assert_eq!(ok("иван@example.com"), "иван@example.com");
    }

    #[test]
    fn look_alikes_and_invisibles_are_refused() {
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a b@example.com",
            "a@b@c",
            "ada@.com",
            "ada@example.com.",
            "ad\u{200b}a@example.com",     // zero-width space
            "ada\u{200d}@example.com",     // zero-width joiner
            "\u{202e}ada@example.com",     // right-to-left override
            "ada@exa\u{2066}mple.com",     // bidi isolate in the domain
            "\u{feff}ada@example.com",     // BOM
            "ad\u{ad}a@example.com",       // soft hyphen
            "\u{ff41}da@example.com",      // fullwidth a
            "ada@\u{ff45}xample.com",      // fullwidth e in the domain
            "p\u{430}ypal@example.com",    // Latin with a Cyrillic а
            "\u{430}d\u{430}@example.com", // all-Cyrillic look-alike of ada
            "\u{1d41a}da@example.com",     // mathematical bold a
        ] {
            assert!(normalize("email", bad).is_err(), "{bad:?} was accepted");
        }
        let e = normalize("login_email", "ad\u{200b}a@example.com").unwrap_err();
        assert_eq!(e.field, "login_email");
    }
}
