//! Charger password checks that stay affordable when thousands of chargers reconnect at once.
//!
//! argon2 costs tens of milliseconds and 19 MiB per check by design. Two measures keep a
//! reconnect storm from exhausting the machine:
//! - at most one argon2 computation per CPU runs at a time (the rest wait their turn), so memory
//!   stays bounded and the gateway's async threads keep serving traffic;
//! - a password once verified is remembered as a keyed SHA-256 digest next to the stored hash
//!   it was verified against; while that hash is unchanged, the same password is accepted
//!   without argon2. The key is random per process, so the cache is useless outside it. A
//!   wrong password is never cached: guessing always pays the full argon2 price.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::StoreError;
use crate::secrets;

pub(crate) struct Verifier {
    permits: Semaphore,
    key: [u8; 32],
    /// charger id → (PHC string verified against, keyed digest of the password).
    verified: Mutex<HashMap<String, (String, [u8; 32])>>,
}

impl Verifier {
    pub(crate) fn new() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            permits: Semaphore::new(cpus),
            key,
            verified: Mutex::new(HashMap::new()),
        }
    }

    fn digest(&self, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Whether `password` matches `phc`, the hash currently stored for charger `id`.
    pub(crate) async fn verify(
        &self,
        id: &str,
        password: &str,
        phc: String,
    ) -> Result<bool, StoreError> {
        let digest = self.digest(password);
        if let Some((known_phc, known)) = self.lock().get(id)
            && *known_phc == phc
        {
            // Constant-time comparison is not needed: an attacker who does not know the key
            // learns nothing from timing on a keyed digest.
            if *known == digest {
                return Ok(true);
            }
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| StoreError::PasswordHash(e.to_string()))?;
        let (pw, hash) = (password.to_owned(), phc.clone());
        let ok = tokio::task::spawn_blocking(move || secrets::verify_password(&pw, &hash))
            .await
            .map_err(|e| StoreError::PasswordHash(e.to_string()))??;
        if ok {
            self.lock().insert(id.to_owned(), (phc, digest));
        }
        Ok(ok)
    }

    /// Hashes a new password, under the same concurrency limit.
    pub(crate) async fn hash(&self, password: String) -> Result<String, StoreError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| StoreError::PasswordHash(e.to_string()))?;
        tokio::task::spawn_blocking(move || secrets::hash_password(&password))
            .await
            .map_err(|e| StoreError::PasswordHash(e.to_string()))?
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, [u8; 32])>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts).
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cache_follows_the_stored_hash() {
        let v = Verifier::new();
        let phc = v.hash("pw".into()).await.unwrap();
        assert!(!v.verify("CP1", "nope", phc.clone()).await.unwrap());
        assert!(v.lock().is_empty(), "failures are not cached");
        assert!(v.verify("CP1", "pw", phc.clone()).await.unwrap());
        assert!(v.verify("CP1", "pw", phc.clone()).await.unwrap());
        assert!(!v.verify("CP1", "nope", phc.clone()).await.unwrap());
        // Password changed: the cached digest belongs to the old hash and is not trusted.
        let new_phc = v.hash("other".into()).await.unwrap();
        assert!(!v.verify("CP1", "pw", new_phc.clone()).await.unwrap());
        assert!(v.verify("CP1", "other", new_phc).await.unwrap());
    }
}
