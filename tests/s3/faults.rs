//! The store fails: errors, resets, hangs and lost replies, injected by a proxy in front of the real store
//! (`support::faults`). Every file that got 226 reads back with its SHA-256, nothing partial is visible,
//! and the session goes on.

use std::time::Duration;

use wharf::config::Config;

use super::{start, PART};
use crate::support::faults::{Fault, FaultProxy, Op};
use crate::support::raw::Ftp;
use crate::support::{bytes, s3, sha256, Wharf, PASSWORD};

/// A wharf on S3 whose requests pass through a fault proxy; two attempts per request keep failures short.
async fn behind_proxy(adjust: impl FnOnce(&mut Config)) -> (Wharf, FaultProxy) {
    let proxy = FaultProxy::start(s3::endpoint()).await;
    let endpoint = proxy.endpoint.clone();
    let wharf = start(|c| {
        c.storage.s3.endpoint = Some(endpoint);
        c.storage.s3.max_attempts = 2;
        adjust(c);
    })
    .await;
    (wharf, proxy)
}

#[tokio::test]
async fn a_part_that_keeps_failing_parks_the_confirmed_parts_and_rest_stor_finishes_the_file() {
    let (wharf, proxy) = behind_proxy(|_| {}).await;
    let mut ftp = wharf.login().await;
    let data = bytes(4 * PART + 100, 41);
    // Parts 1 and 2 reach the store; every later part gets 500 until the store heals.
    proxy.inject(Op::UploadPart, Fault::Status(500), 2, u64::MAX);
    let reply = ftp.store("STOR", "big.bin", &data).await;
    assert_eq!(reply.code, 451, "{reply:?}");
    // Parts 1 and 2 are kept, or only part 1 when part 2 was still on its way after the short wait a
    // failing upload grants the parts in flight.
    let kept = kept_bytes(&reply.text);
    assert!(kept == 2 * PART || kept == PART, "{reply:?}");
    assert!(!wharf.exists("big.bin").await, "nothing partial is visible");
    assert_eq!(ftp.cmd("NOOP").await.code, 200, "the session goes on");

    proxy.heal();
    assert_eq!(ftp.cmd(&format!("REST {kept}")).await.code, 350);
    let reply = ftp.store("STOR", "big.bin", &data[kept..]).await;
    assert_eq!(reply.code, 226, "{reply:?}");
    assert_eq!(sha256(&wharf.read_file("big.bin").await), sha256(&data));
    assert_eq!(wharf.s3.as_ref().unwrap().open_uploads().await, 0);
}

/// The bytes a 4xx reply says were kept.
fn kept_bytes(text: &str) -> usize {
    let after = text.split("the first ").nth(1).unwrap_or_else(|| panic!("no bytes kept: {text}"));
    after.split(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_lost_complete_reply_is_checked_against_the_object_and_gets_226() {
    let (wharf, proxy) = behind_proxy(|_| {}).await;
    let mut ftp = wharf.login().await;
    let data = bytes(2 * PART + 5, 42);
    // The store completes the upload, and its reply never reaches wharf.
    proxy.inject(Op::CompleteMultipartUpload, Fault::DropReply, 0, 1);
    let reply = ftp.store("STOR", "complete.bin", &data).await;
    assert_eq!(reply.code, 226, "{reply:?}");
    assert_eq!(proxy.injected(), 1);
    assert!(proxy.calls(Op::HeadObject) >= 1, "the object was checked before 226");
    assert_eq!(sha256(&wharf.read_file("complete.bin").await), sha256(&data));
    assert_eq!(wharf.s3.as_ref().unwrap().open_uploads().await, 0);
}

#[tokio::test]
async fn a_complete_that_keeps_failing_parks_every_part_and_rest_stor_completes_it() {
    let (wharf, proxy) = behind_proxy(|_| {}).await;
    let mut ftp = wharf.login().await;
    let data = bytes(2 * PART + 7, 43);
    proxy.inject(Op::CompleteMultipartUpload, Fault::Status(503), 0, u64::MAX);
    let reply = ftp.store("STOR", "parked.bin", &data).await;
    assert_eq!(reply.code, 451, "{reply:?}");
    assert!(reply.text.contains(&format!("the first {} bytes are kept", data.len())), "{reply:?}");
    assert!(!wharf.exists("parked.bin").await);

    proxy.heal();
    assert_eq!(ftp.cmd(&format!("REST {}", data.len())).await.code, 350);
    let reply = ftp.store("STOR", "parked.bin", b"").await;
    assert_eq!(reply.code, 226, "{reply:?}");
    assert_eq!(sha256(&wharf.read_file("parked.bin").await), sha256(&data));
    assert_eq!(wharf.s3.as_ref().unwrap().open_uploads().await, 0);
}

#[tokio::test]
async fn throttling_is_retried_and_the_upload_succeeds() {
    let (wharf, proxy) = behind_proxy(|c| c.storage.s3.max_attempts = 3).await;
    let mut ftp = wharf.login().await;
    proxy.inject(Op::PutObject, Fault::Status(503), 0, 2);
    let reply = ftp.store("STOR", "small.txt", b"after two SlowDowns").await;
    assert_eq!(reply.code, 226, "{reply:?}");
    assert_eq!(proxy.injected(), 2);
    assert_eq!(wharf.read_file("small.txt").await, b"after two SlowDowns");
}

#[tokio::test]
async fn a_hung_store_fails_dele_with_451_within_its_timeout_while_the_control_connection_is_served() {
    let (wharf, proxy) = behind_proxy(|c| {
        c.storage.s3.attempt_timeout_secs = 1;
        c.storage.s3.operation_timeout_secs = 3;
    })
    .await;
    wharf.put_file("stays.txt", b"still here").await;
    proxy.inject(Op::DeleteObject, Fault::Hang(Duration::from_secs(120)), 0, u64::MAX);
    let hung = {
        let addr = wharf.explicit;
        tokio::spawn(async move {
            let mut ftp = Ftp::login(addr, "alice@acme", PASSWORD).await;
            // While the DELE waits on the store, NOOP, STAT and ABOR are answered at once.
            ftp.send_raw(b"DELE stays.txt\r\nNOOP\r\nSTAT\r\nABOR\r\n").await;
            let replies = [ftp.reply().await, ftp.reply().await, ftp.reply().await, ftp.reply().await];
            (replies, ftp.cmd("PWD").await)
        })
    };
    // Meanwhile another session of the same tenant is served.
    let mut other = wharf.login().await;
    assert_eq!(other.cmd("NOOP").await.code, 200);
    assert_eq!(other.cmd("SIZE stays.txt").await.code, 213);
    // A liveness bound only: without the store's timeouts the DELE would wait out the 120 s hang.
    let (replies, pwd) = tokio::time::timeout(Duration::from_secs(60), hung).await.expect("DELE answered").unwrap();
    let codes: Vec<u16> = replies.iter().map(|r| r.code).collect();
    assert_eq!(codes, [200, 211, 225, 451], "{replies:?}");
    assert_eq!(pwd.code, 257, "the session goes on");
    proxy.heal();
    assert_eq!(wharf.read_file("stays.txt").await, b"still here", "a failed DELE deletes nothing");
}

#[tokio::test]
async fn a_download_cut_by_the_store_is_451_and_a_retry_reads_the_whole_file() {
    let (wharf, proxy) = behind_proxy(|_| {}).await;
    let data = bytes(PART + 3, 44);
    wharf.put_file("read.bin", &data).await;
    let mut ftp = wharf.login().await;
    proxy.inject(Op::GetObject, Fault::CutBody, 0, 1);
    let (_, reply) = ftp.retr("read.bin").await;
    assert_eq!(reply.code, 451, "{reply:?}");
    assert_eq!(ftp.cmd("NOOP").await.code, 200);
    let (back, reply) = ftp.retr("read.bin").await;
    assert_eq!(reply.code, 226, "{reply:?}");
    assert_eq!(sha256(&back), sha256(&data));
}

/// A STOR that replaces a file while a rename of it is between its copy and its delete keeps its 226'd
/// file: the rename deletes its source only if it is still the object it copied (it looks again just
/// before, and sends the delete with `If-Match` for stores that honour it).
#[tokio::test]
async fn a_stor_racing_a_rename_keeps_its_file() {
    let (wharf, proxy) = behind_proxy(|_| {}).await;
    wharf.put_file("source.txt", b"the old version").await;
    let mut renamer = wharf.login().await;
    assert_eq!(renamer.cmd("RNFR source.txt").await.code, 350);
    // The rename looks at its source once before the copy and once before the delete; the second look
    // waits 2 s before it reaches the store: time for the STOR to land.
    proxy.inject_on(Op::HeadObject, "acme/source.txt", Fault::Hang(Duration::from_secs(2)), 1, 1);
    let renaming = tokio::spawn(async move { renamer.cmd("RNTO target.txt").await });
    for _ in 0..600 {
        if proxy.injected() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(proxy.injected(), 1, "the rename copied and looks at its source again");
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.store("STOR", "source.txt", b"the new version").await.code, 226);
    let reply = renaming.await.unwrap();
    assert_eq!(reply.code, 250, "{reply:?}");
    assert_eq!(wharf.read_file("target.txt").await, b"the old version");
    assert_eq!(wharf.read_file("source.txt").await, b"the new version", "the 226'd file was not deleted");
}

/// Open multipart uploads in `bucket`, waited for until there are `want` (a liveness bound of 60 s).
async fn open_uploads_reach(bucket: &s3::Bucket, want: usize) -> usize {
    for _ in 0..600 {
        if bucket.open_uploads().await == want {
            return want;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bucket.open_uploads().await
}

/// Rows of open multipart uploads in a SQLite directory.
async fn ledger_rows(db: &std::path::Path) -> i64 {
    use sqlx::Connection as _;
    let url = format!("sqlite://{}", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM parked_uploads").fetch_one(&mut conn).await.unwrap()
}

/// wharf killed with SIGKILL in the middle of a multipart upload leaves the upload open in the store and its
/// lease in the directory; the next instance's sweeper aborts it once the lease and the parking time are
/// out, and forgets it only then.
#[tokio::test]
async fn an_upload_whose_instance_was_killed_is_aborted_after_its_lease_and_park_time() {
    use tokio::io::AsyncWriteExt;

    use crate::cli::{run, serving, wharf};
    let (key_id, secret) = s3::credentials();
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3::Bucket::create().await;
    let serve = || {
        let mut cmd = wharf(dir.path());
        cmd.env("WHARF_STORAGE__BACKEND", "s3")
            .env("WHARF_STORAGE__S3__ENDPOINT", s3::endpoint())
            .env("WHARF_STORAGE__S3__BUCKET", &bucket.name)
            .env("WHARF_STORAGE__S3__FORCE_PATH_STYLE", "true")
            .env("WHARF_STORAGE__S3__PART_SIZE", PART.to_string())
            // Short times, for this test only: a lease of 3 s, parked for 2 s, swept every second.
            .env("WHARF_STORAGE__S3__LEASE_SECS", "3")
            .env("WHARF_STORAGE__S3__PARK_SECS", "2")
            .env("WHARF_STORAGE__S3__SWEEP_INTERVAL_SECS", "1")
            .env("AWS_REGION", s3::region())
            .env("AWS_ACCESS_KEY_ID", &key_id)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .arg("serve")
            .stderr(std::process::Stdio::null());
        cmd
    };
    assert!(run(dir.path(), &["tenant", "add", "acme"], None).await.0);
    assert!(run(dir.path(), &["user", "add", "alice@acme", "--password-stdin"], Some("kill me softly\n")).await.0);

    let mut first = serving(serve()).await;
    let mut ftp = Ftp::login(first.explicit, "alice@acme", "kill me softly").await;
    let tcp = ftp.epsv().await;
    assert_eq!(ftp.cmd("STOR killed.bin").await.code, 150);
    let mut tls = ftp.secure(tcp).await.unwrap();
    tls.write_all(&bytes(2 * PART + 10, 45)).await.unwrap();
    tls.flush().await.unwrap();
    assert_eq!(open_uploads_reach(&bucket, 1).await, 1, "the multipart upload started");
    first.child.kill().await.unwrap();
    drop(tls);
    let db = dir.path().join("wharf-data/wharf.db");
    assert_eq!(ledger_rows(&db).await, 1, "the killed instance's lease is still recorded");
    assert_eq!(bucket.open_uploads().await, 1, "and nobody aborted its upload");

    let mut second = serving(serve()).await;
    assert_eq!(open_uploads_reach(&bucket, 0).await, 0, "the sweeper aborted the orphan");
    for _ in 0..100 {
        if ledger_rows(&db).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ledger_rows(&db).await, 0, "and forgot it");
    assert!(bucket.keys("acme/").await.is_empty(), "nothing partial is visible");
    second.child.kill().await.unwrap();
}

/// A multipart upload that no row describes (its CreateMultipartUpload reply was lost, or its instance
/// died before recording it) is aborted by the sweeper once it is older than any running or parked upload
/// can be, and not before.
#[tokio::test]
async fn a_multipart_upload_nothing_recorded_is_aborted_once_older_than_any_upload_can_be() {
    let wharf = start(|c| {
        c.storage.s3.lease_secs = 3;
        c.storage.s3.park_secs = 0;
        c.storage.s3.sweep_interval_secs = 1;
    })
    .await;
    let bucket = wharf.s3.as_ref().unwrap();
    let created = bucket.client.create_multipart_upload().bucket(&bucket.name).key("acme/orphan.bin").send();
    created.await.unwrap();
    let s3 = wharf.server_s3.as_ref().unwrap();
    assert_eq!(s3.sweep().await.unwrap(), 0, "younger than a lease: it may be an upload being recorded");
    assert_eq!(bucket.open_uploads().await, 1);
    // Lease (3 s) + parking (0) + one sweep (1 s) later, the background sweeper takes it.
    assert_eq!(open_uploads_reach(bucket, 0).await, 0, "the orphan was aborted");
}
