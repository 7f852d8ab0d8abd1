//! Tests of password hashing, verification slots and the hash memory pool.

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

/// A verification that hashes needs a permit; with the only one held, it cannot finish at once.
fn answered_without_hashing(verifier: &Verifier, stored: &str, password: &str) -> Option<Verdict> {
    use futures_util::FutureExt as _;
    let _held = verifier.permits.try_acquire().expect("the only permit is free");
    verifier.verify(Some(stored), password).now_or_never()
}

#[tokio::test]
async fn a_remembered_password_is_accepted_without_hashing_and_a_wrong_one_still_hashes() {
    let verifier = Verifier::with_concurrency(SMALL, 1).unwrap().remembering(Duration::from_secs(60));
    let stored = hash("correct horse", &SMALL).unwrap();
    assert_eq!(answered_without_hashing(&verifier, &stored, "correct horse"), None, "nothing remembered yet");
    assert!(verifier.verify(Some(&stored), "correct horse").await.ok);
    let hit = answered_without_hashing(&verifier, &stored, "correct horse");
    assert_eq!(hit, Some(Verdict { ok: true, rehash: None }));
    for wrong in ["correct horsf", "", "correct horse "] {
        assert_eq!(answered_without_hashing(&verifier, &stored, wrong), None, "{wrong:?} skipped the hash");
        assert!(!verifier.verify(Some(&stored), wrong).await.ok, "{wrong:?}");
    }
    // A new password is a new stored hash: the old password is hashed against it, and fails.
    let changed = hash("battery staple", &SMALL).unwrap();
    assert_eq!(answered_without_hashing(&verifier, &changed, "correct horse"), None);
    assert!(!verifier.verify(Some(&changed), "correct horse").await.ok);
    // Without remembering, every verification hashes.
    let plain = Verifier::with_concurrency(SMALL, 1).unwrap();
    assert!(plain.verify(Some(&stored), "correct horse").await.ok);
    assert_eq!(answered_without_hashing(&plain, &stored, "correct horse"), None);
    let off = Verifier::with_concurrency(SMALL, 1).unwrap().remembering(Duration::ZERO);
    assert!(off.verify(Some(&stored), "correct horse").await.ok);
    assert_eq!(answered_without_hashing(&off, &stored, "correct horse"), None);
}

#[tokio::test]
async fn a_hash_due_for_an_upgrade_is_not_remembered() {
    let verifier = Verifier::with_concurrency(SMALL, 1).unwrap().remembering(Duration::from_secs(60));
    let old = hash("correct horse", &Params { m_kib: 32, t: 1, p: 1 }).unwrap();
    assert!(verifier.verify(Some(&old), "correct horse").await.rehash.is_some());
    assert_eq!(answered_without_hashing(&verifier, &old, "correct horse"), None);
    assert!(verifier.verify(Some(&old), "correct horse").await.rehash.is_some(), "the upgrade is offered again");
}

#[test]
fn remembered_verifications_expire_and_are_bounded() {
    let recent = Recent::new(Duration::from_secs(10));
    let now = Instant::now();
    recent.remember("$stored-a", "pw", now);
    assert!(recent.knows("$stored-a", "pw", now + Duration::from_secs(9)));
    assert!(!recent.knows("$stored-a", "pw", now + Duration::from_secs(10)));
    assert!(!recent.knows("$stored-b", "pw", now), "another stored hash");
    // The length prefix keeps the split between stored hash and password.
    assert!(!recent.knows("$stored-", "apw", now));

    for i in 0..RECENT_LIMIT {
        recent.remember(&format!("$filler-{i}"), "pw", now);
    }
    recent.remember("$late", "pw", now + Duration::from_secs(1));
    assert!(!recent.knows("$late", "pw", now + Duration::from_secs(1)), "full of live entries");
    // Once the old ones have expired, a new one takes their place, and they are gone.
    recent.remember("$late", "pw", now + Duration::from_secs(11));
    assert!(recent.knows("$late", "pw", now + Duration::from_secs(11)));
    assert_eq!(recent.entries().len(), 1);
}

#[test]
fn invalid_params_are_an_error_not_a_panic() {
    assert!(hash("pw", &Params { m_kib: 1, t: 0, p: 0 }).is_err());
    assert!(Verifier::new(Params { m_kib: 1, t: 0, p: 0 }).is_err());
}

/// A PHC string of `password` made by the argon2 crate itself, with any variant and parameters.
fn phc(algorithm: Algorithm, version: Version, (m, t, p): (u32, u32, u32), output_len: usize, pw: &str) -> String {
    let params = argon2::Params::new(m, t, p, Some(output_len)).unwrap();
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::new(algorithm, version, params).hash_password(pw.as_bytes(), &salt).unwrap().to_string()
}

/// What the argon2 crate's own verification (a fresh buffer per call) says.
fn reference(stored: &str, password: &str) -> bool {
    use argon2::password_hash::PasswordVerifier as _;
    Argon2::default().verify_password(password.as_bytes(), &PasswordHash::new(stored).unwrap()).is_ok()
}

/// Stored hashes that need less, as much and more working memory than [`SMALL`], of every variant; the
/// last needs more.
fn mixed_hashes(password: &str) -> Vec<String> {
    let v13 = Version::V0x13;
    vec![
        phc(Algorithm::Argon2id, v13, (32, 1, 1), 32, password),
        phc(Algorithm::Argon2id, v13, (64, 1, 1), 32, password),
        phc(Algorithm::Argon2id, v13, (256, 2, 1), 32, password),
        phc(Algorithm::Argon2id, v13, (64, 3, 3), 16, password),
        phc(Algorithm::Argon2id, v13, (96, 1, 4), 64, password),
        phc(Algorithm::Argon2i, v13, (48, 2, 1), 32, password),
        phc(Algorithm::Argon2d, Version::V0x10, (128, 1, 2), 24, password),
    ]
}

#[tokio::test]
async fn hashes_needing_less_or_more_memory_verify_in_one_reused_buffer() {
    let verifier = Verifier::with_concurrency(SMALL, 1).unwrap();
    let hashes = mixed_hashes("correct horse");
    // Twice round, so every hash also runs in a buffer that another hash used last.
    for stored in hashes.iter().chain(&hashes) {
        for (password, right) in [("correct horse", true), ("correct horsf", false), ("", false)] {
            assert_eq!(reference(stored, password), right, "{stored}");
            assert_eq!(verifier.verify(Some(stored), password).await.ok, right, "{stored} with {password:?}");
        }
    }
    // The last hash needed more than a kept buffer: its own took the kept one's place, and went.
    assert_eq!(verifier.memory.census().alive, 0);
    assert!(verifier.verify(Some(&hashes[1]), "correct horse").await.ok);
    let census = verifier.memory.census();
    assert_eq!((census.alive, census.peak), (1, 1), "{census:?}");
    assert_eq!(census.idle_blocks, [64], "{census:?}");
    assert!(census.idle_zeroed, "a kept buffer still holds the last verification's blocks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifications_are_all_right_with_no_more_buffers_than_permits() {
    let verifier = Arc::new(Verifier::with_concurrency(SMALL, 2).unwrap());
    let hashes = Arc::new(mixed_hashes("pw"));
    let tasks: Vec<_> = (0..28)
        .map(|i| {
            let (verifier, hashes) = (verifier.clone(), hashes.clone());
            tokio::spawn(async move {
                let stored = &hashes[i % hashes.len()];
                let (password, right) = if i % 4 == 0 { ("pw!", false) } else { ("pw", true) };
                (verifier.verify(Some(stored), password).await.ok, right, stored.clone())
            })
        })
        .collect();
    for task in tasks {
        let (ok, right, stored) = task.await.unwrap();
        assert_eq!(ok, right, "{stored}");
    }
    let census = verifier.memory.census();
    assert!(census.peak <= 2 && census.alive <= 2, "{census:?}");
    assert!(census.idle_blocks.iter().all(|&blocks| blocks == 64), "{census:?}");
}

#[tokio::test]
async fn idle_buffers_are_freed_after_a_quiet_spell_and_made_again() {
    let verifier = Verifier::with_concurrency(SMALL, 2).unwrap();
    let stored = hash("pw", &SMALL).unwrap();
    assert!(verifier.verify(Some(&stored), "pw").await.ok);
    let given_back = Instant::now();
    assert_eq!(verifier.memory.census().alive, 1);

    // Still fresh just before its time, gone at it.
    let (expired, next) = verifier.memory.expire(given_back - Duration::from_millis(1));
    assert!(expired.is_empty() && next.is_some());
    let (expired, next) = verifier.memory.expire(given_back + KEEP_IDLE);
    assert_eq!((expired.len(), next), (1, None));
    drop(expired);
    assert_eq!(verifier.memory.census().alive, 0);

    // The next login makes one again, and the trimmer frees it on its own.
    assert!(verifier.verify(Some(&stored), "pw").await.ok);
    assert_eq!(verifier.memory.census().alive, 1);
    let deadline = Instant::now() + 20 * KEEP_IDLE;
    while verifier.memory.census().alive > 0 {
        assert!(Instant::now() < deadline, "an idle buffer outlived {:?}", 20 * KEEP_IDLE);
        tokio::time::sleep(KEEP_IDLE / 5).await;
    }
}

impl Memory {
    fn census(&self) -> Census {
        let pool = self.pool();
        Census {
            alive: pool.alive,
            peak: pool.peak,
            idle_blocks: pool.idle.iter().map(|(blocks, _)| blocks.len()).collect(),
            idle_zeroed: pool.idle.iter().flat_map(|(blocks, _)| blocks).all(|b| b.as_ref().iter().all(|&w| w == 0)),
        }
    }
}

#[derive(Debug)]
struct Census {
    alive: usize,
    peak: usize,
    idle_blocks: Vec<usize>,
    idle_zeroed: bool,
}
