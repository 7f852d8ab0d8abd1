//! Brute-force defence: failed logins counted per client address and per user in the directory, temporary
//! bans past a threshold, shared by every instance on the same database, and lifted by an operator.

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use wharf::config::{BanRule, Config};

use crate::support::postgres::Database;
use crate::support::raw::{Ftp, Reply};
use crate::support::{Wharf, PASSWORD};

/// Bans after `ip` failures from one address or `user` failures against one user, for `ban_secs`; delays
/// of 100 ms (the harness's) growing to 200 ms.
fn defence(cfg: &mut Config, ip: u32, user: u32, ban_secs: u64) {
    let d = &mut cfg.login_defence;
    d.ip = BanRule { threshold: ip, window_secs: 60, ban_secs };
    d.user = BanRule { threshold: user, window_secs: 60, ban_secs };
    d.max_delay_ms = 200;
}

fn addr(ip: &str) -> IpAddr {
    ip.parse().unwrap()
}

/// One login on a connection of its own from `from`: the reply to PASS.
async fn login_from(wharf: &Wharf, from: &str, login: &str, password: &str) -> Reply {
    let (mut ftp, greeting) = Ftp::connect_from(wharf.explicit, addr(from)).await;
    assert_eq!(greeting.code, 220, "{greeting:?}");
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd(&format!("USER {login}")).await.code, 331);
    ftp.cmd(&format!("PASS {password}")).await
}

async fn fail_from(wharf: &Wharf, from: &str, login: &str, times: usize) -> Reply {
    let mut last = None;
    for _ in 0..times {
        let reply = login_from(wharf, from, login, "not the password").await;
        assert_eq!(reply.code, 530, "{reply:?}");
        last = Some(reply);
    }
    last.expect("at least one failure")
}

async fn banned_scopes(wharf: &Wharf) -> Vec<String> {
    wharf.directory.active_bans(Utc::now()).await.unwrap().into_iter().map(|b| b.scope).collect()
}

#[tokio::test]
async fn an_address_that_fails_too_often_is_refused_even_the_right_password_until_lifted_or_expired() {
    let wharf = Wharf::start_with(|cfg| defence(cfg, 3, 100, 1)).await;
    let wrong = fail_from(&wharf, "127.0.0.1", "alice@acme", 3).await;
    let refused = login_from(&wharf, "127.0.0.1", "alice@acme", PASSWORD).await;
    assert_eq!((refused.code, &refused.text), (530, &wrong.text), "banned: the answer of any failure");
    assert_eq!(banned_scopes(&wharf).await, ["ip:127.0.0.1"]);
    assert!(wharf.directory.lift_ban("ip:127.0.0.1", Utc::now()).await.unwrap());
    assert_eq!(login_from(&wharf, "127.0.0.1", "alice@acme", PASSWORD).await.code, 230, "lifted");

    // Another address earns a ban of its own, and waits it out.
    fail_from(&wharf, "127.0.0.2", "alice@acme", 3).await;
    assert_eq!(login_from(&wharf, "127.0.0.2", "alice@acme", PASSWORD).await.code, 530);
    let until = wharf.directory.banned_until(&["ip:127.0.0.2".to_owned()], Utc::now()).await.unwrap();
    let left = until.expect("banned") - Utc::now();
    tokio::time::sleep(left.to_std().unwrap_or_default() + Duration::from_millis(50)).await;
    assert_eq!(login_from(&wharf, "127.0.0.2", "alice@acme", PASSWORD).await.code, 230, "expired");
}

#[tokio::test]
async fn a_ban_earned_on_one_instance_holds_on_another_sharing_the_database() {
    let db = Database::create().await;
    let shared = |cfg: &mut Config| {
        cfg.database_url = Some(db.url.clone());
        defence(cfg, 3, 100, 60);
    };
    let a = Wharf::start_with(shared).await;
    let b = Wharf::start_with(shared).await;
    assert_eq!(login_from(&b, "127.0.0.1", "alice@acme", PASSWORD).await.code, 230, "b sees a's users");

    fail_from(&a, "127.0.0.1", "alice@acme", 3).await;
    assert_eq!(login_from(&b, "127.0.0.1", "alice@acme", PASSWORD).await.code, 530, "banned on b too");
    assert_eq!(banned_scopes(&b).await, ["ip:127.0.0.1"]);
    // What `wharf ban lift` does, through the other instance's directory.
    assert!(b.directory.lift_ban("ip:127.0.0.1", Utc::now()).await.unwrap());
    assert_eq!(login_from(&b, "127.0.0.1", "alice@acme", PASSWORD).await.code, 230, "lifted for b");
    assert_eq!(login_from(&a, "127.0.0.1", "alice@acme", PASSWORD).await.code, 230, "and for a");

    a.stop().await;
    b.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn a_successful_login_clears_the_users_failures() {
    let wharf = Wharf::start_with(|cfg| defence(cfg, 100, 3, 60)).await;
    fail_from(&wharf, "127.0.0.1", "alice@acme", 2).await;
    assert_eq!(login_from(&wharf, "127.0.0.1", "alice@acme", PASSWORD).await.code, 230);
    // Had the success not cleared them, the third failure would ban alice.
    fail_from(&wharf, "127.0.0.1", "alice@acme", 2).await;
    assert_eq!(login_from(&wharf, "127.0.0.1", "alice@acme", PASSWORD).await.code, 230);
    assert_eq!(banned_scopes(&wharf).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_valid_login_does_not_reset_the_addresss_count() {
    let wharf = Wharf::start_with(|cfg| defence(cfg, 3, 100, 60)).await;
    wharf.add_user("acme", "bob", PASSWORD).await;
    // Guesses at bob, with alice's valid logins in between, still add up against the address.
    for _ in 0..3 {
        fail_from(&wharf, "127.0.0.1", "bob@acme", 1).await;
        if banned_scopes(&wharf).await.is_empty() {
            assert_eq!(login_from(&wharf, "127.0.0.1", "alice@acme", PASSWORD).await.code, 230);
        }
    }
    assert_eq!(banned_scopes(&wharf).await, ["ip:127.0.0.1"]);
    assert_eq!(login_from(&wharf, "127.0.0.1", "alice@acme", PASSWORD).await.code, 530, "the address is banned");
}

#[tokio::test]
async fn a_banned_user_is_refused_from_everywhere_but_does_not_lock_out_others() {
    let wharf = Wharf::start_with(|cfg| defence(cfg, 100, 2, 60)).await;
    wharf.add_user("acme", "bob", PASSWORD).await;
    fail_from(&wharf, "127.0.0.1", "alice@acme", 2).await;
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    assert_eq!(banned_scopes(&wharf).await, [format!("user:{}:alice", acme.id)]);
    assert_eq!(login_from(&wharf, "127.0.0.2", "alice@acme", PASSWORD).await.code, 530, "from another address");
    assert_eq!(login_from(&wharf, "127.0.0.3", "bob@acme", PASSWORD).await.code, 230, "bob is not alice");
    assert_eq!(login_from(&wharf, "127.0.0.1", "bob@acme", PASSWORD).await.code, 230, "nor is the address banned");
}

#[tokio::test]
async fn unknown_users_are_counted_only_against_the_address() {
    let wharf = Wharf::start_with(|cfg| defence(cfg, 100, 1, 60)).await;
    fail_from(&wharf, "127.0.0.1", "mallory@acme", 2).await;
    fail_from(&wharf, "127.0.0.1", "alice@nowhere", 1).await;
    assert_eq!(banned_scopes(&wharf).await, Vec::<String>::new(), "no rows for names that do not exist");
}

#[tokio::test]
async fn with_bans_off_failures_only_slow_down() {
    let wharf = Wharf::start_with(|cfg| {
        defence(cfg, 2, 2, 60);
        cfg.login_defence.bans = false;
    })
    .await;
    fail_from(&wharf, "127.0.0.1", "alice@acme", 3).await;
    assert_eq!(login_from(&wharf, "127.0.0.1", "alice@acme", PASSWORD).await.code, 230);
}

/// `wharf ban list` and `wharf ban lift`, run as an operator would against the running server's database.
#[tokio::test]
async fn operators_list_and_lift_bans_with_the_cli() {
    let wharf = Wharf::start_with(|cfg| defence(cfg, 2, 100, 60)).await;
    fail_from(&wharf, "127.0.0.1", "alice@acme", 2).await;
    let (ok, out, _) = cli(&wharf, &["ban", "list"]).await;
    assert!(ok);
    let row = out.lines().find(|l| l.starts_with("ip:127.0.0.1")).unwrap_or_else(|| panic!("{out}"));
    assert_eq!(row.split_whitespace().nth(2), Some("2"), "failures: {out}");

    let (ok, out, err) = cli(&wharf, &["ban", "lift", "127.0.0.1"]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "ban of ip:127.0.0.1 lifted");
    let (ok, _, err) = cli(&wharf, &["ban", "lift", "ip:127.0.0.1"]).await;
    assert!(!ok && err.contains("ip:127.0.0.1 is not banned"), "{err}");
    let (_, out, _) = cli(&wharf, &["ban", "list"]).await;
    assert_eq!(out.trim(), "no bans");
    assert_eq!(login_from(&wharf, "127.0.0.1", "alice@acme", PASSWORD).await.code, 230);
}

async fn cli(wharf: &Wharf, args: &[&str]) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WHARF_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .env_remove("RUST_LOG")
        .env("WHARF_DATABASE_URL", wharf.config.database_url())
        .env("WHARF_DATA_DIR", &wharf.config.data_dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (out.status.success(), text(out.stdout), text(out.stderr))
}
