//! Admin passwords: argon2id hashes in PHC form. Verification of an unknown
//! user still spends the time of one hash, so a login's timing does not
//! tell which usernames exist.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Shortest password `triage admin create` accepts.
pub const MIN_PASSWORD_CHARS: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AuthError::WeakPassword);
    }
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// True when `password` matches `hash`. With no hash (unknown user) a dummy
/// hash is checked, to take the same time, and the answer is false.
pub fn verify_password(password: &str, hash: Option<&str>) -> bool {
    // the hash of a random string: costs what a real check costs
    static DUMMY: LazyLock<String> = LazyLock::new(|| {
        let random: [u8; 16] = rand::random();
        hash_password(&hex::encode(random)).unwrap_or_default()
    });
    let Ok(parsed) = PasswordHash::new(hash.unwrap_or(&DUMMY)) else { return false };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && hash.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_per_salt() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password("correct horse battery", Some(&a)));
        assert!(!verify_password("correct horse batterY", Some(&a)));
        assert!(!verify_password("", Some(&a)));
    }

    #[test]
    fn unknown_users_and_bad_hashes_never_verify() {
        assert!(!verify_password("anything at all", None));
        assert!(!verify_password("anything at all", Some("not a hash")));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(matches!(hash_password("short"), Err(AuthError::WeakPassword)));
    }
}
