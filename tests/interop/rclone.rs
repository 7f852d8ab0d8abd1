//! rclone's ftp backend (Go crypto/tls) with explicit TLS at its default concurrency. rclone opens several
//! control connections at once and shares one TLS session cache between all of them, so a data connection
//! may resume a session that another control connection of the same user was issued: the default policy
//! binds resumption to the user for exactly this client.

use std::ffi::OsStr;

use crate::support::clients::{assert_no_temp_files, tree_digest, write_tree, Rclone};
use crate::support::{bytes, Wharf, PASSWORD};

/// About 30 files over nested folders, 0 B to 2 MiB.
fn make_tree(root: &std::path::Path) {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let sizes = [0usize, 1, 17, 1000, 4096, 65_536, 100_000, 333_333, 1024 * 1024, 2 * 1024 * 1024];
    for (i, dir) in ["", "a", "a/b", "c/d/e"].iter().enumerate() {
        for (j, len) in sizes.iter().enumerate().skip(i % 2).step_by(if i == 3 { 1 } else { 2 }) {
            let name = if dir.is_empty() { format!("f{j}.bin") } else { format!("{dir}/f{j}.bin") };
            files.push((name, bytes(*len, (i * 100 + j) as u64)));
        }
    }
    files.push(("a/Ünïcødé 文件 name.txt".into(), bytes(777, 999)));
    files.push(("c/with space.txt".into(), bytes(12, 998)));
    assert!((25..=35).contains(&files.len()), "{}", files.len());
    write_tree(root, files.iter().map(|(p, d)| (p.as_str(), d.as_slice())));
}

#[tokio::test]
async fn rclone_copies_checks_and_copies_back_a_tree() {
    let wharf = Wharf::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (src, back) = (dir.path().join("src"), dir.path().join("back"));
    make_tree(&src);
    let rclone = Rclone::explicit(&wharf, "alice@acme", PASSWORD, dir.path()).await;

    let remote = rclone.remote("tree");
    let copy = rclone.run([OsStr::new("copy"), src.as_os_str(), OsStr::new(&remote)]).await.ok();
    assert_eq!(wharf.tree_digest("tree").await, tree_digest(&src), "the tree as stored\n{}", copy.stderr);
    assert_no_temp_files(&wharf, "acme").await;

    // FTP offers no hash rclone knows, so check compares names and sizes (and says so).
    let check = rclone.run([OsStr::new("check"), src.as_os_str(), OsStr::new(&remote)]).await.ok();
    assert!(check.stderr.contains("0 differences found"), "{}", check.stderr);

    rclone.run([OsStr::new("copy"), OsStr::new(&remote), back.as_os_str()]).await.ok();
    assert_eq!(tree_digest(&back), tree_digest(&src), "the tree copied back");
}

#[tokio::test]
async fn rclone_lists_deletes_and_manages_directories() {
    let wharf = Wharf::start().await;
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in
        [("keep/one.txt", &b"1"[..]), ("keep/sub/two.txt", b"22"), ("junk/x.bin", b"x"), ("top.txt", b"t")]
    {
        wharf.put_file(path, content).await;
    }
    let rclone = Rclone::explicit(&wharf, "alice@acme", PASSWORD, dir.path()).await;

    let lsf = rclone.run(["lsf", "-R", &rclone.remote("")]).await.ok().stdout_text();
    let mut lines: Vec<&str> = lsf.lines().collect();
    lines.sort();
    assert_eq!(lines, ["junk/", "junk/x.bin", "keep/", "keep/one.txt", "keep/sub/", "keep/sub/two.txt", "top.txt"]);

    rclone.run(["delete", &rclone.remote("junk")]).await.ok();
    assert!(!wharf.exists("junk/x.bin").await, "delete removes the files");

    rclone.run(["mkdir", &rclone.remote("made/deeper")]).await.ok();
    assert!(wharf.is_dir("made/deeper").await, "mkdir makes the folder and its parents");
    rclone.run(["rmdir", &rclone.remote("made/deeper")]).await.ok();
    assert!(!wharf.exists("made/deeper").await && wharf.is_dir("made").await, "rmdir removes only the leaf");
    rclone.run(["rmdirs", &rclone.remote("")]).await.ok();
    assert!(!wharf.exists("made").await && !wharf.exists("junk").await, "rmdirs removes the empty folders");
    assert_eq!(wharf.files_on_disk("acme").await, ["keep/one.txt", "keep/sub/two.txt", "top.txt"]);
}
