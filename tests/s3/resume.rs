//! Resumable uploads on immutable objects: an interrupted multipart upload is parked with its confirmed
//! parts; SIZE reports what was kept; REST n + STOR or APPE from the same user continues it; the sweeper
//! aborts it when its time runs out. APPE and REST + STOR on a finished object rebuild it from its first
//! bytes plus the new ones.

use std::time::Duration;

use super::{start, store_and_cut, PART};
use crate::support::{bytes, sha256, PASSWORD};

/// The kept length announced in a 426 reply ("… the first N bytes are kept …").
fn kept(text: &str) -> u64 {
    let after = text.split("first ").nth(1).unwrap_or_else(|| panic!("no kept length in {text:?}"));
    after.split(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_interrupted_upload_is_parked_and_rest_stor_finishes_it() {
    let wharf = start(|_| {}).await;
    let data = bytes(3 * PART + 4321, 20);
    let mut ftp = wharf.login().await;
    let reply = store_and_cut(&mut ftp, "resume.bin", &data[..2 * PART + 100]).await;
    assert_eq!(reply.code, 426, "{reply:?}");
    let n = kept(&reply.text);
    assert_eq!(n, 2 * PART as u64, "the two confirmed parts are kept, the unfinished one is not");
    assert!(!wharf.exists("resume.bin").await, "nothing is visible until the client finishes");
    assert_eq!(ftp.cmd("SIZE resume.bin").await.text, format!("213 {n}"), "SIZE tells where to resume");

    // A new session (as after a reconnect) continues from there.
    let mut again = wharf.login().await;
    assert_eq!(again.cmd(&format!("REST {n}")).await.code, 350);
    let reply = again.store("STOR", "resume.bin", &data[n as usize..]).await;
    assert_eq!(reply.code, 226, "{reply:?}");
    assert_eq!(sha256(&wharf.read_file("resume.bin").await), sha256(&data));
    assert_eq!(wharf.s3.as_ref().unwrap().open_uploads().await, 0);
    // The whole file's checksum survived the break.
    let hash = again.cmd("HASH resume.bin").await;
    assert!(hash.text.contains(&sha256(&data)), "{hash:?}");
}

#[tokio::test]
async fn appe_continues_a_parked_upload_too() {
    let wharf = start(|_| {}).await;
    let data = bytes(2 * PART + 99, 21);
    let mut ftp = wharf.login().await;
    let n = kept(&store_and_cut(&mut ftp, "log.bin", &data[..PART + 5]).await.text) as usize;
    assert_eq!(n, PART);
    assert_eq!(ftp.store("APPE", "log.bin", &data[n..]).await.code, 226);
    assert_eq!(sha256(&wharf.read_file("log.bin").await), sha256(&data));
}

#[tokio::test]
async fn a_parked_upload_belongs_to_its_user_and_a_new_stor_replaces_it() {
    let wharf = start(|_| {}).await;
    wharf.add_user("acme", "bob", PASSWORD).await;
    let data = bytes(2 * PART, 22);
    let mut alice = wharf.login().await;
    let n = kept(&store_and_cut(&mut alice, "shared.bin", &data[..PART + 1]).await.text);

    // Bob sees no upload to resume.
    let mut bob = crate::support::raw::Ftp::login(wharf.explicit, "bob@acme", PASSWORD).await;
    assert_eq!(bob.cmd("SIZE shared.bin").await.code, 550);
    assert_eq!(bob.cmd(&format!("REST {n}")).await.code, 350);
    assert_eq!(bob.store("STOR", "shared.bin", b"tail").await.code, 554, "nothing of Bob's to resume");

    // A plain STOR starts over, and its success drops the parked upload.
    assert_eq!(alice.store("STOR", "shared.bin", b"fresh").await.code, 226);
    assert_eq!(wharf.read_file("shared.bin").await, b"fresh");
    assert_eq!(wharf.s3.as_ref().unwrap().open_uploads().await, 0, "the parked upload was aborted");
    assert_eq!(alice.cmd("SIZE shared.bin").await.text, "213 5");
}

#[tokio::test]
async fn the_sweeper_aborts_parked_uploads_whose_time_ran_out() {
    let wharf = start(|c| c.storage.s3.park_secs = 1).await;
    let mut ftp = wharf.login().await;
    let reply = store_and_cut(&mut ftp, "stale.bin", &bytes(PART + 10, 23)).await;
    assert_eq!(kept(&reply.text), PART as u64);
    assert_eq!(wharf.s3.as_ref().unwrap().open_uploads().await, 1, "parked");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let aborted = wharf.server_s3.as_ref().unwrap().sweep().await.unwrap();
    assert_eq!(aborted, 1);
    assert_eq!(wharf.s3.as_ref().unwrap().open_uploads().await, 0, "no orphaned parts");
    assert_eq!(ftp.cmd("SIZE stale.bin").await.code, 550);
    assert_eq!(wharf.server_s3.as_ref().unwrap().sweep().await.unwrap(), 0, "nothing twice");
}

#[tokio::test]
async fn appe_to_a_small_finished_file_rebuilds_it_with_the_new_bytes() {
    let wharf = start(|_| {}).await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.store("STOR", "notes.txt", b"hello ").await.code, 226);
    assert_eq!(ftp.store("APPE", "notes.txt", b"world").await.code, 226);
    assert_eq!(wharf.read_file("notes.txt").await, b"hello world");
    let hash = ftp.cmd("HASH notes.txt").await;
    assert!(hash.text.contains(&sha256(b"hello world")), "checksums continue across APPE: {hash:?}");
    // APPE to a missing file creates it.
    assert_eq!(ftp.store("APPE", "new.txt", b"first").await.code, 226);
    assert_eq!(wharf.read_file("new.txt").await, b"first");
}

#[tokio::test]
async fn appe_to_a_large_finished_file_copies_it_inside_s3() {
    let wharf = start(|_| {}).await;
    let mut ftp = wharf.login().await;
    let head = bytes(PART + 123, 24);
    let tail = bytes(1000, 25);
    assert_eq!(ftp.store("STOR", "big.log", &head).await.code, 226);
    assert_eq!(ftp.store("APPE", "big.log", &tail).await.code, 226);
    let whole = [&head[..], &tail[..]].concat();
    assert_eq!(sha256(&wharf.read_file("big.log").await), sha256(&whole));
    assert!(super::etag(&wharf, "big.log").await.ends_with("-2"), "the old bytes became a copied part");
    let hash = ftp.cmd("HASH big.log").await;
    assert!(hash.text.contains(&sha256(&whole)), "{hash:?}");
    assert_eq!(wharf.s3.as_ref().unwrap().open_uploads().await, 0);
}

#[tokio::test]
async fn rest_stor_over_a_finished_file_keeps_its_first_bytes() {
    let wharf = start(|_| {}).await;
    let mut ftp = wharf.login().await;
    let old = bytes(PART + 5000, 26);
    assert_eq!(ftp.store("STOR", "f.bin", &old).await.code, 226);
    for keep in [100usize, PART + 10] {
        let new = bytes(777, keep as u64);
        assert_eq!(ftp.cmd(&format!("REST {keep}")).await.code, 350);
        assert_eq!(ftp.store("STOR", "f.bin", &new).await.code, 226, "REST {keep}");
        let expected = [&old[..keep], &new[..]].concat();
        assert_eq!(sha256(&wharf.read_file("f.bin").await), sha256(&expected), "REST {keep}");
        // Put the original back for the next round.
        assert_eq!(ftp.store("STOR", "f.bin", &old).await.code, 226);
    }
    assert_eq!(ftp.cmd(&format!("REST {}", old.len() + 1)).await.code, 350);
    assert_eq!(ftp.store("STOR", "f.bin", b"x").await.code, 554, "beyond the end");
    assert_eq!(sha256(&wharf.read_file("f.bin").await), sha256(&old), "unchanged");
}

#[tokio::test]
async fn an_interrupted_overwrite_resumes_from_what_was_kept_not_from_the_old_file() {
    let wharf = start(|_| {}).await;
    wharf.put_file("report.csv", &bytes(1000, 27)).await;
    let new = bytes(2 * PART + 500, 28);
    let mut ftp = wharf.login().await;
    let n = kept(&store_and_cut(&mut ftp, "report.csv", &new[..PART + 10]).await.text);
    assert_eq!(wharf.read_file("report.csv").await, bytes(1000, 27), "the old version stays until the new is done");
    // SIZE answers the kept length, so a client resuming does not splice the old file's bytes into the new.
    assert_eq!(ftp.cmd("SIZE report.csv").await.text, format!("213 {n}"));
    assert_eq!(ftp.cmd(&format!("REST {n}")).await.code, 350);
    assert_eq!(ftp.store("STOR", "report.csv", &new[n as usize..]).await.code, 226);
    assert_eq!(sha256(&wharf.read_file("report.csv").await), sha256(&new));
    assert_eq!(ftp.cmd("SIZE report.csv").await.text, format!("213 {}", new.len()));
}

#[tokio::test]
async fn another_users_later_parked_upload_neither_hides_nor_splices_this_users() {
    let wharf = start(|_| {}).await;
    wharf.add_user("acme", "bob", PASSWORD).await;
    wharf.put_file("shared.bin", &bytes(PART + 7, 30)).await;
    let mine = bytes(2 * PART + 300, 31);
    let mut alice = wharf.login().await;
    let n = kept(&store_and_cut(&mut alice, "shared.bin", &mine[..PART + 1]).await.text);
    // Bob parks an upload of the same name after Alice did.
    let mut bob = crate::support::raw::Ftp::login(wharf.explicit, "bob@acme", PASSWORD).await;
    let bobs = kept(&store_and_cut(&mut bob, "shared.bin", &bytes(PART + 50, 32)).await.text);
    assert_eq!(bobs, PART as u64);

    // Alice still sees and continues her own, not the stored file and not Bob's.
    assert_eq!(alice.cmd("SIZE shared.bin").await.text, format!("213 {n}"));
    assert_eq!(alice.cmd(&format!("REST {n}")).await.code, 350);
    assert_eq!(alice.store("STOR", "shared.bin", &mine[n as usize..]).await.code, 226);
    assert_eq!(sha256(&wharf.read_file("shared.bin").await), sha256(&mine));
}

#[tokio::test]
async fn the_sweeper_aborts_an_upload_in_the_store_it_began_in_after_the_tenant_moved() {
    let wharf = start(|c| c.storage.s3.park_secs = 1).await;
    let mut ftp = wharf.login().await;
    kept(&store_and_cut(&mut ftp, "moving.bin", &bytes(PART + 10, 33)).await.text);
    let bucket = wharf.s3.as_ref().unwrap();
    assert_eq!(bucket.open_uploads().await, 1);
    // The tenant now lives in a bucket of its own; the parked upload stays in the server's bucket.
    let own = crate::support::s3::Bucket::create().await;
    let tenant = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    let storage = wharf::directory::TenantStorage { bucket: Some(own.name.clone()), ..Default::default() };
    wharf.directory.set_tenant_storage(tenant.id, &storage).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(wharf.server_s3.as_ref().unwrap().sweep().await.unwrap(), 1);
    assert_eq!(bucket.open_uploads().await, 0, "aborted where it was, not looked for in the new bucket");
}
