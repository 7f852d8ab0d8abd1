//! The directory as a service that can fail: Postgres going away answers 421 (try later), never a false 530,
//! and wharf recovers by itself when it returns; pool and password settings from the configuration.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::postgres::Database;
use crate::support::raw::Ftp;
use crate::support::{Wharf, PASSWORD};

/// A TCP relay to Postgres that a test can cut (every connection closed, new ones refused) and restore.
struct Outage {
    port: u16,
    cut: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Outage {
    async fn start(upstream: String) -> Outage {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (is_cut, all) = (cut.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if is_cut.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let upstream = upstream.clone();
                all.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Outage { port, cut, links }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// `url` with its `host:port` replaced by the relay's.
fn through(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let (user, _) = authority.rsplit_once('@').map_or(("", authority), |(u, h)| (u, h));
    let user = if user.is_empty() { String::new() } else { format!("{user}@") };
    format!("{scheme}://{user}127.0.0.1:{port}{path}")
}

fn upstream_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let authority = &rest[..rest.find('/').unwrap()];
    authority.rsplit_once('@').map_or(authority, |(_, host)| host).to_owned()
}

#[tokio::test]
async fn postgres_going_away_is_421_and_wharf_recovers_when_it_returns() {
    let db = Database::create().await;
    let outage = Outage::start(upstream_of(&db.url)).await;
    let wharf = Wharf::start_with(|c| {
        c.database_url = Some(through(&db.url, outage.port));
        c.database.acquire_timeout_secs = 1;
    })
    .await;
    let mut session = wharf.login().await;

    outage.cut();
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    let reply = ftp.cmd(&format!("PASS {PASSWORD}")).await;
    assert_eq!(reply.code, 421, "the password may be right: try later, not 530: {reply:?}");
    assert_eq!(session.cmd("PWD").await.code, 257, "a logged-in session goes on without the database");

    outage.restore();
    let mut back = wharf.login().await;
    assert_eq!(back.cmd("NOOP").await.code, 200, "logins work again, with no restart");
    assert_eq!(back.store("STOR", "after.txt", b"back").await.code, 226);
    wharf.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn a_hash_made_with_other_parameters_is_replaced_at_login() {
    // The harness stores alice's hash with the defaults (m=19456); this server wants m=8192.
    let wharf = Wharf::start_with(|c| c.passwords.memory_kib = 8192).await;
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    let before = wharf.directory.login_record(acme.id, "alice").await.unwrap().unwrap().password_hash;
    assert!(before.contains("m=19456"), "{before}");
    wharf.login().await;
    let after = wharf.directory.login_record(acme.id, "alice").await.unwrap().unwrap().password_hash;
    assert!(after.starts_with("$argon2id$v=19$m=8192,t=2,p=1$"), "{after}");
    // And the new hash still takes the same password.
    Ftp::login(wharf.explicit, "alice@acme", PASSWORD).await;
}
