//! STOR on S3: one PutObject below a part, a multipart upload above; nothing visible and nothing left open
//! when the client goes away, aborts, or the budget makes it wait.

use std::time::Duration;

use super::{etag, start, store_and_cut, PART};
use crate::support::{bytes, sha256};

#[tokio::test]
async fn a_small_file_is_one_put_and_a_large_one_a_multipart_upload() {
    let wharf = start(|_| {}).await;
    let mut ftp = wharf.login().await;
    let small = bytes(PART - 1, 1);
    assert_eq!(ftp.store("STOR", "small.bin", &small).await.code, 226);
    assert!(!etag(&wharf, "small.bin").await.contains('-'), "a single PutObject");
    // It carried its SHA-256, which S3 checked and kept.
    let bucket = wharf.s3.as_ref().unwrap();
    let head = bucket
        .client
        .head_object()
        .bucket(&bucket.name)
        .key("acme/small.bin")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD.encode(hex::decode(sha256(&small)).unwrap());
    assert_eq!(head.checksum_sha256(), Some(expected.as_str()));

    // 12 MiB: two full parts and a short last one.
    let large = bytes(2 * PART + 2 * 1024 * 1024 + 5, 2);
    let reply = ftp.store("STOR", "large.bin", &large).await;
    assert_eq!(reply.code, 226, "{reply:?}");
    assert!(reply.text.contains(&format!("{} bytes", large.len())), "{reply:?}");
    assert!(etag(&wharf, "large.bin").await.ends_with("-3"), "three parts");
    assert_eq!(sha256(&wharf.read_file("large.bin").await), sha256(&large));

    // A file of exactly two parts has no empty third part.
    let exact = bytes(2 * PART, 3);
    assert_eq!(ftp.store("STOR", "exact.bin", &exact).await.code, 226);
    assert!(etag(&wharf, "exact.bin").await.ends_with("-2"));
    assert_eq!(wharf.read_file("exact.bin").await, exact);
    assert_eq!(wharf.s3.as_ref().unwrap().open_uploads().await, 0);
}

#[tokio::test]
async fn a_dropped_data_connection_leaves_no_object_and_no_open_upload() {
    let wharf = start(|c| c.storage.s3.park_secs = 0).await;
    let mut ftp = wharf.login().await;
    let reply = store_and_cut(&mut ftp, "cut.bin", &bytes(2 * PART + 1000, 4)).await;
    assert_eq!(reply.code, 426, "{reply:?}");
    assert!(reply.text.contains("nothing was stored"), "{reply:?}");
    assert!(!wharf.exists("cut.bin").await);
    assert_eq!(wharf.s3.as_ref().unwrap().open_uploads_settled().await, 0, "the multipart upload was aborted");
    assert_eq!(ftp.cmd("NOOP").await.code, 200, "the session goes on");
}

#[tokio::test]
async fn abor_mid_upload_is_426_then_226_and_aborts_the_multipart_upload() {
    use tokio::io::AsyncWriteExt;
    let wharf = start(|c| c.storage.s3.park_secs = 0).await;
    let mut ftp = wharf.login().await;
    let tcp = ftp.epsv().await;
    assert_eq!(ftp.cmd("STOR aborted.bin").await.code, 150);
    let mut tls = ftp.secure(tcp).await.unwrap();
    tls.write_all(&bytes(2 * PART + 10, 5)).await.unwrap();
    tls.flush().await.unwrap();
    ftp.send_raw(b"ABOR\r\n").await;
    assert_eq!(ftp.reply().await.code, 426);
    assert_eq!(ftp.reply().await.code, 226);
    drop(tls);
    assert!(!wharf.exists("aborted.bin").await);
    assert_eq!(wharf.s3.as_ref().unwrap().open_uploads_settled().await, 0);
}

#[tokio::test]
async fn a_failed_upload_keeps_the_old_file() {
    let wharf = start(|c| c.storage.s3.park_secs = 0).await;
    wharf.put_file("keep.bin", b"the old content").await;
    let mut ftp = wharf.login().await;
    assert_eq!(store_and_cut(&mut ftp, "keep.bin", &bytes(PART + 10, 6)).await.code, 426);
    assert_eq!(wharf.read_file("keep.bin").await, b"the old content");
}

#[tokio::test]
async fn shutdown_mid_upload_leaves_no_object_and_no_open_upload() {
    use tokio::io::AsyncWriteExt;
    let wharf = start(|c| c.storage.s3.park_secs = 0).await;
    let mut ftp = wharf.login().await;
    let tcp = ftp.epsv().await;
    assert_eq!(ftp.cmd("STOR shut.bin").await.code, 150);
    let mut tls = ftp.secure(tcp).await.unwrap();
    tls.write_all(&bytes(PART + 10, 7)).await.unwrap();
    tls.flush().await.unwrap();
    let bucket_client = wharf.s3.as_ref().unwrap().client.clone();
    let bucket_name = wharf.s3.as_ref().unwrap().name.clone();
    wharf.stop().await;
    drop(tls);
    let listed = bucket_client.list_objects_v2().bucket(&bucket_name).prefix("acme/shut").send().await.unwrap();
    assert!(listed.contents().is_empty(), "no object after shutdown");
    let uploads = bucket_client.list_multipart_uploads().bucket(&bucket_name).send().await.unwrap();
    assert!(uploads.uploads().is_empty(), "the multipart upload was aborted at shutdown");
}

/// A budget that holds one upload's parts at a time: four concurrent multipart uploads must take turns,
/// never deadlock, and all complete.
#[tokio::test]
async fn uploads_beyond_the_memory_budget_wait_their_turn_and_complete() {
    let per_upload = (PART * 2) as u64;
    let wharf = &start(|c| {
        c.storage.s3.parts_in_flight = 1;
        c.storage.s3.tenant_memory_budget = per_upload;
        c.storage.s3.memory_budget = per_upload + per_upload / 2;
    })
    .await;
    let uploads = (0..4u64).map(|i| async move {
        let mut ftp = crate::support::raw::Ftp::login(wharf.explicit, "alice@acme", crate::support::PASSWORD).await;
        let data = bytes(2 * PART + 100, 10 + i);
        let reply = ftp.store("STOR", &format!("budget-{i}.bin"), &data).await;
        (reply, sha256(&data))
    });
    let all = futures_util::future::join_all(uploads);
    let results = tokio::time::timeout(Duration::from_secs(120), all).await.expect("no deadlock");
    for (i, (reply, digest)) in results.into_iter().enumerate() {
        assert_eq!(reply.code, 226, "upload {i}: {reply:?}");
        assert_eq!(sha256(&wharf.read_file(&format!("budget-{i}.bin")).await), digest);
    }
    let s3 = wharf.server_s3.as_ref().unwrap();
    assert_eq!(s3.budget().available(), per_upload + per_upload / 2, "every byte of the budget came back");
}

#[tokio::test]
async fn a_ranged_download_of_a_multipart_object_sends_the_tail() {
    let wharf = start(|_| {}).await;
    let mut ftp = wharf.login().await;
    let data = bytes(2 * PART + 333, 8);
    assert_eq!(ftp.store("STOR", "big.bin", &data).await.code, 226);
    for offset in [0, 1, PART + 7, data.len() - 1, data.len()] {
        assert_eq!(ftp.cmd(&format!("REST {offset}")).await.code, 350);
        let (tail, reply) = ftp.retr("big.bin").await;
        assert_eq!(reply.code, 226, "REST {offset}: {reply:?}");
        assert_eq!(sha256(&tail), sha256(&data[offset..]), "REST {offset}");
    }
    assert_eq!(ftp.cmd(&format!("REST {}", data.len() + 1)).await.code, 350);
    assert_eq!(ftp.retr("big.bin").await.1.code, 554);
}

#[tokio::test]
async fn a_tenant_can_bring_its_own_bucket_and_prefix() {
    let wharf = start(|_| {}).await;
    let own = crate::support::s3::Bucket::create().await;
    let tenant = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    let storage = wharf::directory::TenantStorage {
        bucket: Some(own.name.clone()),
        prefix: Some("drop/zone".to_owned()),
        ..Default::default()
    };
    wharf.directory.set_tenant_storage(tenant.id, &storage).await.unwrap();
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.store("STOR", "mine.txt", b"in my bucket").await.code, 226);
    assert_eq!(own.get("drop/zone/mine.txt").await.as_deref(), Some(&b"in my bucket"[..]));
    assert!(!wharf.exists("mine.txt").await, "nothing in the server's bucket");
}

#[tokio::test]
async fn a_store_that_fails_answers_451_and_the_session_goes_on() {
    let wharf = start(|_| {}).await;
    let tenant = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    let missing =
        wharf::directory::TenantStorage { bucket: Some("no-such-bucket-for-wharf".to_owned()), ..Default::default() };
    wharf.directory.set_tenant_storage(tenant.id, &missing).await.unwrap();
    let mut ftp = wharf.login().await;
    let reply = ftp.store("STOR", "x.bin", b"data").await;
    assert_eq!(reply.code, 451, "{reply:?}");
    assert!(reply.text.contains("try again"), "{reply:?}");
    assert_eq!(ftp.cmd("NOOP").await.code, 200);
}
