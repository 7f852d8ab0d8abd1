//! Live sessions (issue 5): every logged-in FTP session is listed in the directory, across instances,
//! and an administrator can disconnect one from any instance.

use std::time::Duration;

use chrono::Utc;
use tokio::io::AsyncWriteExt;
use wharf::config::Config;
use wharf::directory::admin::LiveSession;

use crate::support::postgres::Database;
use crate::support::{bytes, Wharf, PASSWORD};

/// The sessions of live instances, of every tenant.
async fn listed(wharf: &Wharf) -> Vec<LiveSession> {
    let alive_since = Utc::now() - wharf::sessions::ALIVE_WINDOW;
    wharf.directory.live_sessions(None, alive_since).await.unwrap()
}

/// Waits (bounded) until `done` holds for the listing; the listing changes after the client's reply.
async fn until_listed(wharf: &Wharf, done: impl Fn(&[LiveSession]) -> bool) -> Vec<LiveSession> {
    for _ in 0..100 {
        let now = listed(wharf).await;
        if done(&now) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the live sessions never reached the expected state: {:?}", listed(wharf).await);
}

#[tokio::test]
async fn a_login_is_listed_until_quit_or_rein() {
    let wharf = Wharf::start().await;
    assert!(listed(&wharf).await.is_empty(), "nobody logged in yet");
    let mut ftp = wharf.login().await;
    let sessions = until_listed(&wharf, |s| s.len() == 1).await;
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    assert_eq!((sessions[0].tenant_id, sessions[0].username.as_str()), (acme.id, "alice"));
    assert!(sessions[0].client.starts_with("127.0.0.1:"), "{sessions:?}");
    assert_eq!(sessions[0].instance, wharf.sessions.instance());

    assert_eq!(ftp.cmd("REIN").await.code, 220);
    until_listed(&wharf, |s| s.is_empty()).await;
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);
    let again = until_listed(&wharf, |s| s.len() == 1).await;
    assert_ne!(again[0].id, sessions[0].id, "a new login is a new session");
    assert_eq!(ftp.cmd("QUIT").await.code, 221);
    until_listed(&wharf, |s| s.is_empty()).await;
    // A client that just drops the connection is removed too.
    let ftp = wharf.login().await;
    until_listed(&wharf, |s| s.len() == 1).await;
    drop(ftp);
    until_listed(&wharf, |s| s.is_empty()).await;
}

#[tokio::test]
async fn a_disconnect_closes_the_session_with_421_and_aborts_its_upload() {
    let wharf = Wharf::start().await;
    let mut idle = wharf.login().await;
    let mut busy = wharf.login().await;
    let sessions = until_listed(&wharf, |s| s.len() == 2).await;
    let (first, second) = (sessions[0].id.clone(), sessions[1].id.clone());

    // The idle session (registered first) goes at once; the other is untouched.
    assert!(wharf.sessions.disconnect(&first).await.unwrap());
    let reply = tokio::time::timeout(Duration::from_secs(10), idle.reply()).await.expect("closed at once");
    assert_eq!(reply.code, 421, "{reply:?}");
    assert!(reply.text.contains("administrator"), "{reply:?}");
    assert!(idle.is_closed().await);
    assert_eq!(busy.cmd("NOOP").await.code, 200);

    // Disconnected in the middle of an upload: nothing is stored.
    let tcp = busy.epsv().await;
    assert_eq!(busy.cmd("STOR big.bin").await.code, 150);
    let mut tls = busy.secure(tcp).await.unwrap();
    tls.write_all(&bytes(1 << 20, 3)).await.unwrap();
    tls.flush().await.unwrap();
    assert!(wharf.sessions.disconnect(&second).await.unwrap());
    let mut reply = tokio::time::timeout(Duration::from_secs(10), busy.reply()).await.expect("closed at once");
    if reply.code == 426 {
        reply = busy.reply().await;
    }
    assert_eq!(reply.code, 421, "{reply:?}");
    drop(tls);
    until_listed(&wharf, |s| s.is_empty()).await;
    assert_eq!(wharf.files_on_disk("acme").await, Vec::<String>::new(), "no file and no temporary upload");
    assert!(!wharf.sessions.disconnect(&second).await.unwrap(), "already gone");
}

#[tokio::test]
async fn any_instance_lists_and_disconnects_another_instances_sessions() {
    let db = Database::create().await;
    let shared = |c: &mut Config| c.database_url = Some(db.url.clone());
    let a = Wharf::start_with(shared).await;
    let b = Wharf::start_with(shared).await;
    let mut on_a = a.login().await;
    // B's heartbeat may not have run yet: the session is listed as soon as A's instance is alive.
    let seen_by_b = until_listed(&b, |s| s.len() == 1).await;
    assert_eq!(seen_by_b[0].instance, a.sessions.instance());
    assert!(b.sessions.disconnect(&seen_by_b[0].id).await.unwrap());
    // A carries it out at its next heartbeat.
    let reply = tokio::time::timeout(wharf::sessions::HEARTBEAT * 5, on_a.reply()).await.expect("closed in time");
    assert_eq!(reply.code, 421, "{reply:?}");
    until_listed(&b, |s| s.is_empty()).await;
    drop((a, b));
    db.drop().await;
}

#[tokio::test]
async fn disabling_or_deleting_a_user_closes_its_open_sessions() {
    let wharf = Wharf::start().await;
    wharf.add_user("acme", "bob", PASSWORD).await;
    let mut alice = wharf.login().await;
    let mut bob = crate::support::raw::Ftp::login(wharf.explicit, "bob@acme", PASSWORD).await;
    until_listed(&wharf, |s| s.len() == 2).await;
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    let alice_id = wharf.directory.user_by_name(acme.id, "alice").await.unwrap().unwrap().id;

    // What `wharf user disable` (and the admin API) do.
    wharf.directory.set_user_enabled(acme.id, "alice", false).await.unwrap();
    assert_eq!(wharf.directory.request_disconnect_all(acme.id, Some(alice_id), Utc::now()).await.unwrap(), 1);
    let reply = tokio::time::timeout(wharf::sessions::HEARTBEAT * 5, alice.reply()).await.expect("closed in time");
    assert_eq!(reply.code, 421, "{reply:?}");
    assert_eq!(bob.cmd("NOOP").await.code, 200, "bob's session goes on");

    // Deleting bob removes his session's row: his instance notices and closes it.
    wharf.directory.delete_user(acme.id, "bob").await.unwrap();
    let reply = tokio::time::timeout(wharf::sessions::HEARTBEAT * 5, bob.reply()).await.expect("closed in time");
    assert_eq!(reply.code, 421, "{reply:?}");
    until_listed(&wharf, |s| s.is_empty()).await;
}
