//! Failed-login counters and bans, proved on every backend (`directory::tests::login_failures::…`).

use chrono::{SubsecRound, TimeDelta};

use super::*;

on_every_backend!(
    failures_count_up_to_a_ban_that_ends_by_itself,
    a_window_or_a_ban_that_ended_restarts_the_count,
    repeat_bans_double_up_to_the_cap,
    counting_without_bans_never_bans,
    clearing_forgets_failures_but_keeps_a_running_ban,
    bans_are_listed_and_lifted,
    old_counters_are_forgotten_but_bans_are_not,
    concurrent_failures_are_all_counted,
);

/// 3 failures in a minute ban for 10 s, repeat bans up to 25 s.
fn policy() -> FailurePolicy {
    FailurePolicy {
        window: TimeDelta::minutes(1),
        ban_after: Some(3),
        ban: TimeDelta::seconds(10),
        max_ban: TimeDelta::seconds(25),
    }
}

/// Now, as every backend stores it (milliseconds).
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

async fn fail(dir: &Fresh, scope: &str, at: DateTime<Utc>) -> FailureCount {
    dir.record_login_failure(scope, &policy(), at).await.unwrap()
}

fn scopes(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

async fn failures_count_up_to_a_ban_that_ends_by_itself(dir: &Fresh) {
    let t = now();
    let ip = "ip:192.0.2.1";
    assert_eq!(fail(dir, ip, t).await, FailureCount { failures: 1, banned_until: None });
    assert_eq!(fail(dir, ip, t + secs(1)).await, FailureCount { failures: 2, banned_until: None });
    assert_eq!(dir.banned_until(&scopes(&[ip]), t + secs(1)).await.unwrap(), None);
    let banned = fail(dir, ip, t + secs(2)).await;
    assert_eq!(banned, FailureCount { failures: 3, banned_until: Some(t + secs(12)) });
    let both = scopes(&["user:1:alice", ip]);
    assert_eq!(dir.banned_until(&both, t + secs(3)).await.unwrap(), Some(t + secs(12)));
    assert_eq!(dir.banned_until(&scopes(&["user:1:alice"]), t + secs(3)).await.unwrap(), None, "only that scope");
    // A failure during the ban (another instance's race) is counted, and does not move the end.
    assert_eq!(fail(dir, ip, t + secs(4)).await, FailureCount { failures: 4, banned_until: Some(t + secs(12)) });
    assert_eq!(dir.banned_until(&both, t + secs(12)).await.unwrap(), None, "a ban past its end is no ban");
    assert_eq!(dir.active_bans(t + secs(12)).await.unwrap(), vec![]);
}

async fn a_window_or_a_ban_that_ended_restarts_the_count(dir: &Fresh) {
    let t = now();
    let ip = "ip:192.0.2.2";
    fail(dir, ip, t).await;
    fail(dir, ip, t + secs(30)).await;
    // The window started at t and ran for a minute: the next failure starts a new one.
    assert_eq!(fail(dir, ip, t + secs(61)).await, FailureCount { failures: 1, banned_until: None });
    assert_eq!(fail(dir, ip, t + secs(62)).await.failures, 2);
    let banned = fail(dir, ip, t + secs(63)).await;
    assert_eq!(banned.banned_until, Some(t + secs(73)));
    // Within the window still, but the ban ended: counting starts again rather than banning at once.
    let after = fail(dir, ip, t + secs(80)).await;
    assert_eq!(after, FailureCount { failures: 1, banned_until: None });
}

async fn repeat_bans_double_up_to_the_cap(dir: &Fresh) {
    let t = now();
    let user = "user:7:bob";
    let mut ends = Vec::new();
    let mut at = t;
    for _ in 0..3 {
        let mut last = None;
        for _ in 0..3 {
            last = fail(dir, user, at).await.banned_until;
            at += secs(1);
        }
        let until = last.expect("the third failure bans");
        ends.push((until - (at - secs(1))).num_seconds());
        at = until + secs(1);
    }
    assert_eq!(ends, [10, 20, 25], "10 s, doubled, then capped");
}

async fn counting_without_bans_never_bans(dir: &Fresh) {
    let t = now();
    let off = FailurePolicy { ban_after: None, ..policy() };
    for i in 1..=5 {
        let count = dir.record_login_failure("ip:192.0.2.3", &off, t).await.unwrap();
        assert_eq!(count, FailureCount { failures: i, banned_until: None });
    }
    assert_eq!(dir.active_bans(t).await.unwrap(), vec![]);
}

async fn clearing_forgets_failures_but_keeps_a_running_ban(dir: &Fresh) {
    let t = now();
    let (ip, user) = ("ip:192.0.2.4", "user:1:alice");
    fail(dir, user, t).await;
    fail(dir, user, t).await;
    for _ in 0..3 {
        fail(dir, ip, t).await;
    }
    dir.clear_login_failures(&scopes(&[ip, user]), t + secs(1)).await.unwrap();
    assert_eq!(fail(dir, user, t + secs(2)).await.failures, 1, "the user's count was forgotten");
    assert_eq!(dir.banned_until(&scopes(&[ip]), t + secs(2)).await.unwrap(), Some(t + secs(10)), "the ban stays");
    dir.clear_login_failures(&[], t).await.unwrap();
}

async fn bans_are_listed_and_lifted(dir: &Fresh) {
    let t = now();
    for _ in 0..3 {
        fail(dir, "ip:192.0.2.5", t).await;
    }
    for _ in 0..4 {
        fail(dir, "user:1:alice", t + secs(1)).await;
    }
    fail(dir, "ip:192.0.2.6", t).await;
    let bans = dir.active_bans(t + secs(2)).await.unwrap();
    let expected = vec![
        Ban { scope: "user:1:alice".into(), failures: 4, last_failure: t + secs(1), banned_until: t + secs(11) },
        Ban { scope: "ip:192.0.2.5".into(), failures: 3, last_failure: t, banned_until: t + secs(10) },
    ];
    assert_eq!(bans, expected, "running bans only, ending last first");

    let other = dir.reopen().await;
    assert!(other.lift_ban("ip:192.0.2.5", t + secs(2)).await.unwrap(), "lifted through another instance");
    assert!(!dir.lift_ban("ip:192.0.2.5", t + secs(2)).await.unwrap(), "nothing left to lift");
    assert!(!dir.lift_ban("ip:192.0.2.6", t + secs(2)).await.unwrap(), "counted, but not banned");
    assert_eq!(dir.banned_until(&scopes(&["ip:192.0.2.5"]), t + secs(2)).await.unwrap(), None);
    assert_eq!(fail(dir, "ip:192.0.2.5", t + secs(3)).await.failures, 1, "its failures went with the ban");
    assert_eq!(fail(dir, "ip:192.0.2.6", t + secs(3)).await.failures, 2, "an unbanned scope keeps its count");
}

async fn old_counters_are_forgotten_but_bans_are_not(dir: &Fresh) {
    let t = now();
    fail(dir, "ip:192.0.2.7", t).await;
    for _ in 0..3 {
        fail(dir, "ip:192.0.2.8", t).await;
    }
    fail(dir, "ip:192.0.2.9", t + secs(5)).await;
    assert_eq!(dir.forget_login_failures(t + secs(1), t + secs(2)).await.unwrap(), 1, "only the stale, unbanned one");
    assert_eq!(dir.active_bans(t + secs(2)).await.unwrap().len(), 1);
    assert_eq!(fail(dir, "ip:192.0.2.9", t + secs(6)).await.failures, 2, "a recent one stays");
    // Once its ban ended, a forgotten scope's next ban is a first ban again.
    assert_eq!(dir.forget_login_failures(t + secs(20), t + secs(20)).await.unwrap(), 2);
    let mut last = None;
    for _ in 0..3 {
        last = fail(dir, "ip:192.0.2.8", t + secs(30)).await.banned_until;
    }
    assert_eq!(last, Some(t + secs(40)));
}

async fn concurrent_failures_are_all_counted(dir: &Fresh) {
    let t = now();
    let lenient = FailurePolicy { ban_after: Some(1000), ..policy() };
    // Two instances, as two wharf processes on one database would be.
    let other = dir.reopen().await;
    let failures = (0..50).map(|i| {
        let instance: &dyn Directory = if i % 2 == 0 { &**dir } else { &*other };
        instance.record_login_failure("ip:192.0.2.10", &lenient, t)
    });
    let counts = futures_util::future::try_join_all(failures).await.unwrap();
    let mut seen: Vec<u32> = counts.iter().map(|c| c.failures).collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=50).collect::<Vec<u32>>(), "every failure saw its own count");
    let next = dir.record_login_failure("ip:192.0.2.10", &lenient, t).await.unwrap();
    assert_eq!(next.failures, 51);
}
