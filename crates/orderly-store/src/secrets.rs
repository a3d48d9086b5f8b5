//! Password and token hashing.
//!
//! Charger passwords are chosen by people and may be weak, so they get argon2id (slow on purpose,
//! run on the blocking pool). API tokens are 256 random bits generated here, so SHA-256 is enough
//! and keeps the per-request check a single indexed lookup.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::StoreError;

/// Hashes a password to a PHC string (`$argon2id$v=19$…`) with a fresh random salt.
pub(crate) fn hash_password(password: &str) -> Result<String, StoreError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| StoreError::PasswordHash(e.to_string()))
}

/// Checks a password against a stored PHC string. A hash that does not parse counts as corrupt
/// data rather than a wrong password, so it shows up in logs instead of locking a charger out
/// silently.
pub(crate) fn verify_password(password: &str, phc: &str) -> Result<bool, StoreError> {
    let parsed =
        PasswordHash::new(phc).map_err(|e| StoreError::Corrupt(format!("password hash: {e}")))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// A new API token: 32 random bytes, hex-encoded.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

/// SHA-256 of a token, hex-encoded: what the admin_tokens table stores.
pub(crate) fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip() {
        let phc = hash_password("s3cret").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &phc).unwrap());
        assert!(!verify_password("S3cret", &phc).unwrap());
        assert!(verify_password("x", "not a hash").is_err());
    }

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
        // Known vector: SHA-256("abc").
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
