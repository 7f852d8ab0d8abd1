//! RNFR/RNTO on S3: a file is copied then deleted; a directory moves key by key, up to a configured count,
//! and never ends up half in each place.

use super::{start, PART};
use crate::support::{bytes, sha256};

#[tokio::test]
async fn a_file_rename_copies_then_deletes() {
    let wharf = start(|_| {}).await;
    let big = bytes(PART + 17, 30);
    wharf.put_file("a.bin", &big).await;
    wharf.put_file("target.bin", b"replaced").await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("MKD sub").await.code, 257);
    assert_eq!(ftp.cmd("RNFR a.bin").await.code, 350);
    assert_eq!(ftp.cmd("RNTO sub/b.bin").await.code, 250);
    assert_eq!(sha256(&wharf.read_file("sub/b.bin").await), sha256(&big));
    assert!(!wharf.exists("a.bin").await);

    // Over an existing file: replaced, as on a folder.
    assert_eq!(ftp.cmd("RNFR sub/b.bin").await.code, 350);
    assert_eq!(ftp.cmd("RNTO target.bin").await.code, 250);
    assert_eq!(sha256(&wharf.read_file("target.bin").await), sha256(&big));
    // Into a missing directory, onto a directory, or from nothing: 550.
    assert_eq!(ftp.cmd("RNFR target.bin").await.code, 350);
    assert_eq!(ftp.cmd("RNTO missing/x.bin").await.code, 550);
    assert_eq!(ftp.cmd("RNFR target.bin").await.code, 350);
    assert_eq!(ftp.cmd("RNTO sub").await.code, 550);
    assert_eq!(ftp.cmd("RNFR nothing.bin").await.code, 550);
    assert!(wharf.exists("sub").await, "the emptied directory stays");
}

#[tokio::test]
async fn a_directory_rename_moves_the_whole_tree() {
    let wharf = start(|_| {}).await;
    let mut ftp = wharf.login().await;
    for dir in ["tree", "tree/empty", "tree/a", "tree/a/b"] {
        assert_eq!(ftp.cmd(&format!("MKD {dir}")).await.code, 257);
    }
    for (path, seed) in [("tree/top.txt", 1), ("tree/a/mid.txt", 2), ("tree/a/b/leaf.txt", 3)] {
        assert_eq!(ftp.store("STOR", path, &bytes(1000, seed)).await.code, 226);
    }
    let before = wharf.tree_digest("tree").await;
    assert_eq!(ftp.cmd("RNFR tree").await.code, 350);
    assert_eq!(ftp.cmd("RNTO moved").await.code, 250);
    assert_eq!(wharf.tree_digest("moved").await, before);
    assert_eq!(wharf.tree_dirs("moved").await, ["a", "a/b", "empty"]);
    assert!(!wharf.exists("tree").await);
    assert_eq!(wharf.s3.as_ref().unwrap().keys("acme/tree").await, Vec::<String>::new());

    // Into itself, or onto something that exists: refused, nothing moved.
    assert_eq!(ftp.cmd("RNFR moved").await.code, 350);
    assert_eq!(ftp.cmd("RNTO moved/a/inside").await.code, 550);
    assert_eq!(ftp.cmd("MKD other").await.code, 257);
    assert_eq!(ftp.cmd("RNFR moved").await.code, 350);
    assert_eq!(ftp.cmd("RNTO other").await.code, 550);
    assert_eq!(wharf.tree_digest("moved").await, before);
}

#[tokio::test]
async fn a_directory_above_the_rename_limit_is_refused_whole() {
    let wharf = start(|c| c.storage.s3.max_rename_objects = 3).await;
    for i in 0..4 {
        wharf.put_file(&format!("big/f{i}.txt"), b"x").await;
    }
    wharf.put_file("small/one.txt", b"1").await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("RNFR big").await.code, 350);
    let reply = ftp.cmd("RNTO big2").await;
    assert_eq!(reply.code, 550, "{reply:?}");
    assert!(reply.text.contains("more objects than the server allows"), "{reply:?}");
    assert_eq!(wharf.files_on_disk("acme").await.len(), 5, "nothing was copied or deleted");
    assert!(!wharf.exists("big2").await);

    assert_eq!(ftp.cmd("RNFR small").await.code, 350);
    assert_eq!(ftp.cmd("RNTO small2").await.code, 250, "within the limit");
    assert_eq!(wharf.read_file("small2/one.txt").await, b"1");
}
