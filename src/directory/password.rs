//! argon2id password hashes (PHC strings).
//!
//! Hashing is deliberately slow, so the login path verifies through a [`Verifier`]: off the async runtime,
//! with bounded concurrency, at the same cost whether or not the user exists, and with a fresh hash when the
//! stored one was made with other parameters.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Version};
use tokio::sync::Semaphore;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for Params {
    /// The OWASP recommendation for argon2id: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        Params { m_kib: 19 * 1024, t: 2, p: 1 }
    }
}

impl Params {
    fn argon2(&self) -> Result<Argon2<'static>, HashError> {
        let params =
            argon2::Params::new(self.m_kib, self.t, self.p, None).map_err(argon2::password_hash::Error::from)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Whether `hash` was made by argon2id v1.3 with exactly these parameters.
    fn made(&self, hash: &PasswordHash<'_>) -> bool {
        let same_kind = hash.algorithm == Algorithm::Argon2id.ident() && hash.version == Some(Version::V0x13.into());
        same_kind
            && argon2::Params::try_from(hash)
                .is_ok_and(|p| (p.m_cost(), p.t_cost(), p.p_cost()) == (self.m_kib, self.t, self.p))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(#[from] argon2::password_hash::Error);

/// Hashes `password` with a random salt into a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
///
/// This is CPU-heavy: from async code, call it inside `tokio::task::spawn_blocking`.
pub fn hash(password: &str, params: &Params) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Ok(params.argon2()?.hash_password(password.as_bytes(), &salt)?.to_string())
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    /// A hash of the same password with the current parameters, when the stored one used others. The caller
    /// stores it (see `Directory::record_login`).
    pub rehash: Option<String>,
}

/// Verifies passwords off the async runtime, at most `concurrency` at a time.
pub struct Verifier {
    params: Params,
    permits: Arc<Semaphore>,
    /// Verified against when the user does not exist, so that costs as much as a wrong password.
    dummy: Arc<str>,
}

impl Verifier {
    /// A verifier allowing one verification per CPU at a time.
    pub fn new(params: Params) -> Result<Self, HashError> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_concurrency(params, cpus)
    }

    pub fn with_concurrency(params: Params, concurrency: usize) -> Result<Self, HashError> {
        // A random password nobody knows; the hash is never reported as a match anyway.
        let secret = SaltString::generate(&mut rand::rngs::OsRng);
        let dummy = hash(secret.as_str(), &params)?;
        Ok(Verifier { params, permits: Arc::new(Semaphore::new(concurrency.max(1))), dummy: dummy.into() })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Checks `password` against `stored`, or against a dummy hash of the same cost when there is no user.
    pub async fn verify(&self, stored: Option<&str>, password: &str) -> Verdict {
        let refused = Verdict { ok: false, rehash: None };
        // The semaphore is never closed, so acquiring only fails if that changes.
        let Ok(permit) = self.permits.clone().acquire_owned().await else { return refused };
        let known = stored.is_some();
        let stored: Arc<str> = stored.map_or_else(|| self.dummy.clone(), Arc::from);
        let password = password.to_owned();
        let params = self.params;
        let task = tokio::task::spawn_blocking(move || {
            // The permit moves here so it is held for as long as the work runs, even if the caller gives up.
            let _permit = permit;
            check(&stored, &password, &params)
        });
        match task.await {
            Ok(verdict) if known => verdict,
            Ok(_) => refused,
            Err(e) => {
                tracing::warn!(error = %e, "password verification task failed");
                refused
            }
        }
    }
}

fn check(stored: &str, password: &str, params: &Params) -> Verdict {
    let refused = Verdict { ok: false, rehash: None };
    let parsed = match PasswordHash::new(stored) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(error = %e, "stored password hash is malformed; refusing the login");
            return refused;
        }
    };
    // The stored hash carries its own parameters; the hasher's are used only for a rehash.
    let ok = match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => true,
        Err(argon2::password_hash::Error::Password) => false,
        Err(e) => {
            tracing::warn!(error = %e, "stored password hash cannot be verified; refusing the login");
            false
        }
    };
    let rehash = if ok && !params.made(&parsed) {
        hash(password, params).map_err(|e| tracing::warn!(error = %e, "rehashing a password failed")).ok()
    } else {
        None
    };
    Verdict { ok, rehash }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Params = Params { m_kib: 64, t: 1, p: 1 };

    #[test]
    fn hashes_are_salted_argon2id_phc_strings() {
        let a = hash("correct horse", &SMALL).unwrap();
        let b = hash("correct horse", &SMALL).unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{a}");
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn the_right_password_verifies_and_a_wrong_one_does_not() {
        let verifier = Verifier::new(SMALL).unwrap();
        let stored = hash("correct horse", &SMALL).unwrap();
        assert_eq!(verifier.verify(Some(&stored), "correct horse").await, Verdict { ok: true, rehash: None });
        assert!(!verifier.verify(Some(&stored), "correct horsf").await.ok);
        assert!(!verifier.verify(Some(&stored), "").await.ok);
    }

    #[tokio::test]
    async fn default_params_round_trip() {
        let verifier = Verifier::new(Params::default()).unwrap();
        let stored = hash("s3cret-password", &Params::default()).unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert_eq!(verifier.verify(Some(&stored), "s3cret-password").await, Verdict { ok: true, rehash: None });
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let verifier = Verifier::new(SMALL).unwrap();
        assert_eq!(verifier.verify(None, "").await, Verdict { ok: false, rehash: None });
        assert_eq!(verifier.verify(None, "anything").await, Verdict { ok: false, rehash: None });
    }

    #[tokio::test]
    async fn a_hash_with_other_params_is_upgraded_on_success_only() {
        let old = Params { m_kib: 32, t: 1, p: 1 };
        let stored = hash("correct horse", &old).unwrap();
        let verifier = Verifier::new(SMALL).unwrap();

        let verdict = verifier.verify(Some(&stored), "correct horse").await;
        assert!(verdict.ok);
        let rehash = verdict.rehash.expect("a rehash with the new params");
        assert!(rehash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{rehash}");
        assert_eq!(verifier.verify(Some(&rehash), "correct horse").await, Verdict { ok: true, rehash: None });

        assert_eq!(verifier.verify(Some(&stored), "wrong").await, Verdict { ok: false, rehash: None });
    }

    #[tokio::test]
    async fn malformed_hashes_are_refused_without_panicking() {
        let verifier = Verifier::new(SMALL).unwrap();
        let argon2i = {
            let params = argon2::Params::new(64, 1, 1, None).unwrap();
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            Argon2::new(Algorithm::Argon2i, Version::V0x13, params).hash_password(b"pw", &salt).unwrap().to_string()
        };
        for stored in ["", "plain", "$argon2id$v=19$m=64,t=1,p=1$", "$argon2id$v=19$m=0,t=0,p=0$AAAA$AAAA", "$md5$x"] {
            assert!(!verifier.verify(Some(stored), "pw").await.ok, "{stored:?}");
        }
        // A well-formed hash of another argon2 variant still verifies, and is upgraded to argon2id.
        let verdict = verifier.verify(Some(&argon2i), "pw").await;
        assert!(verdict.ok && verdict.rehash.is_some_and(|h| h.starts_with("$argon2id$")));
    }

    #[test]
    fn invalid_params_are_an_error_not_a_panic() {
        assert!(hash("pw", &Params { m_kib: 1, t: 0, p: 0 }).is_err());
        assert!(Verifier::new(Params { m_kib: 1, t: 0, p: 0 }).is_err());
    }
}
