//! Directories on a flat namespace: markers, directories implied by the objects below them, listings that
//! page through ListObjectsV2, and the fs backend's rules for MKD, RMD and DELE.

use futures_util::stream::{self, StreamExt};

use super::start;
use crate::support::bytes;

#[tokio::test]
async fn ten_thousand_keys_list_completely() {
    let wharf = start(|_| {}).await;
    let bucket = wharf.s3.as_ref().unwrap();
    const COUNT: usize = 10_000;
    stream::iter(0..COUNT)
        .map(|i| async move { bucket.put(&format!("acme/many/f{i:05}.txt"), b"").await })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    bucket.put("acme/many/sub/inner.txt", b"x").await;
    let mut ftp = wharf.login().await;

    let (names, reply) = ftp.listing("NLST /many").await;
    assert_eq!(reply.code, 226, "{reply:?}");
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names.len(), COUNT + 1, "every key of every page, and the subdirectory once");
    assert_eq!(names[0], "f00000.txt");
    assert_eq!(names[COUNT - 1], "f09999.txt");
    assert_eq!(names[COUNT], "sub");

    let (facts, reply) = ftp.listing("MLSD /many").await;
    assert_eq!(reply.code, 226);
    assert_eq!(facts.lines().count(), COUNT + 1);
    assert!(
        facts.lines().any(|l| l.to_ascii_lowercase().contains("type=dir") && l.ends_with(" sub")),
        "{}",
        &facts[..200]
    );
}

#[tokio::test]
async fn directories_exist_as_markers_or_through_what_lies_below_them() {
    let wharf = start(|_| {}).await;
    wharf.put_file("implied/deep/file.txt", b"x").await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("MKD made").await.code, 257);
    assert!(wharf.s3.as_ref().unwrap().get("acme/made/").await.is_some(), "MKD writes a made/ marker");

    let (names, _) = ftp.listing("NLST /").await;
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["implied", "made"], "an empty marked directory lists like any other");
    assert_eq!(ftp.cmd("CWD /implied/deep").await.code, 250);
    assert_eq!(ftp.cmd("CWD /").await.code, 250);
    assert_eq!(ftp.cmd("MKD implied").await.code, 550, "exists");
    assert_eq!(ftp.cmd("MKD nowhere/sub").await.code, 550, "no parent");
    assert_eq!(ftp.cmd("MKD implied/deep/file.txt/x").await.code, 550, "a file is no parent");
    assert_eq!(ftp.store("STOR", "implied/deep", b"x").await.code, 550, "a directory is no file");
    assert_eq!(ftp.cmd("CWD implied/deep/file.txt").await.code, 550);
    let (_, reply) = ftp.listing("LIST /implied/deep/file.txt/..").await;
    assert!(reply.code == 226 || reply.code == 550, "{reply:?}");
}

#[tokio::test]
async fn rmd_refuses_a_non_empty_directory_and_dele_keeps_the_directory() {
    let wharf = start(|_| {}).await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("MKD d").await.code, 257);
    assert_eq!(ftp.store("STOR", "d/f.txt", b"x").await.code, 226);
    assert_eq!(ftp.cmd("RMD d").await.code, 550, "not empty");
    assert_eq!(ftp.cmd("DELE d").await.code, 550, "a directory is no file");
    assert_eq!(ftp.cmd("DELE d/f.txt").await.code, 250);
    assert_eq!(ftp.cmd("CWD d").await.code, 250, "the directory outlives its last file");
    assert_eq!(ftp.cmd("CWD /").await.code, 250);
    assert_eq!(ftp.cmd("RMD d").await.code, 250);
    assert!(!wharf.exists("d").await);
    assert_eq!(ftp.cmd("RMD d").await.code, 550, "gone");

    // A directory that exists only through its files keeps existing when the last one goes.
    wharf.put_file("only/child.txt", &bytes(10, 1)).await;
    assert_eq!(ftp.cmd("DELE only/child.txt").await.code, 250);
    assert_eq!(ftp.cmd("CWD only").await.code, 250, "a marker now keeps it");
    assert_eq!(ftp.cmd("RMD /only").await.code, 250);
    assert_eq!(wharf.files_on_disk("acme").await, Vec::<String>::new());
}
