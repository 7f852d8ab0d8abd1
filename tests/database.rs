//! The directory as a service that can fail: Postgres going away answers 421 (try later), never a false 530,
//! and wharf recovers by itself when it returns; pool and password settings from the configuration.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::postgres::Database;
use crate::support::raw::Ftp;
use crate::support::{bytes, sha256, Wharf, PASSWORD};

/// The smallest S3 part, so that multipart paths are taken with small files.
const PART: usize = 5 * 1024 * 1024;

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

/// On S3 with a Postgres directory: a multipart upload that began before Postgres went away finishes during
/// the outage, and so does one that reaches its first part only during it (its row is written once the
/// directory is back); the instance stays ready, reporting the directory down.
#[tokio::test]
async fn uploads_begun_before_a_postgres_outage_finish_during_it() {
    use tokio::io::AsyncWriteExt;

    let db = Database::create().await;
    let outage = Outage::start(upstream_of(&db.url)).await;
    let wharf = Wharf::start_s3_with(|c| {
        c.database_url = Some(through(&db.url, outage.port));
        c.database.acquire_timeout_secs = 1;
        c.storage.s3.part_size = PART as u64;
        c.admin.enabled = true;
    })
    .await;
    let bucket = wharf.s3.as_ref().unwrap();
    let (first, second) = (bytes(3 * PART + 11, 51), bytes(2 * PART + 7, 52));
    let mut ftp = wharf.login().await;
    let mut other = wharf.login().await;
    // The first upload is a multipart upload, recorded in the directory, when Postgres goes away.
    let tcp = ftp.epsv().await;
    assert_eq!(ftp.cmd("STOR first.bin").await.code, 150);
    let mut one = ftp.secure(tcp).await.unwrap();
    one.write_all(&first[..PART + 1]).await.unwrap();
    for _ in 0..600 {
        if bucket.open_uploads().await > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(bucket.open_uploads().await, 1);
    // The second has sent less than a part.
    let tcp = other.epsv().await;
    assert_eq!(other.cmd("STOR second.bin").await.code, 150);
    let mut two = other.secure(tcp).await.unwrap();
    two.write_all(&second[..1000]).await.unwrap();

    outage.cut();
    one.write_all(&first[PART + 1..]).await.unwrap();
    one.shutdown().await.unwrap();
    let reply = ftp.reply().await;
    assert_eq!(reply.code, 226, "{reply:?}");
    two.write_all(&second[1000..]).await.unwrap();
    two.shutdown().await.unwrap();
    let reply = other.reply().await;
    assert_eq!(reply.code, 226, "{reply:?}");
    assert_eq!(sha256(&bucket.get("acme/first.bin").await.unwrap()), sha256(&first));
    assert_eq!(sha256(&bucket.get("acme/second.bin").await.unwrap()), sha256(&second));

    // Ready all the same: every replica shares this outage.
    let admin = format!("http://{}", wharf.admin.unwrap());
    let ready = reqwest::get(format!("{admin}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["directory"], "down", "{body}");
    assert_eq!(reqwest::get(format!("{admin}/readyz?strict=true")).await.unwrap().status(), 503);

    outage.restore();
    let mut back = wharf.login().await;
    assert_eq!(back.cmd("NOOP").await.code, 200, "logins work again, with no restart");
    assert_eq!(bucket.open_uploads().await, 0, "nothing left open in the store");
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
