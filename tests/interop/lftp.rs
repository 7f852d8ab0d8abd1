//! lftp (GnuTLS) with `ftp:ssl-force` and `ftp:ssl-protect-data`, on explicit and implicit FTPS.
//! lftp's `open -u user,password` needs a password without spaces or commas, so these tests use their own
//! user.

use std::path::Path;

use crate::support::clients::{assert_no_temp_files, tree_digest, tree_dirs, write_tree, Lftp};
use crate::support::{bytes, sha256, Wharf};

const USER: &str = "bob";
const LOGIN: &str = "bob@acme";
const PASS: &str = "lftp-Secret-42";

async fn start() -> (Wharf, tempfile::TempDir) {
    let wharf = Wharf::start().await;
    wharf.add_user("acme", USER, PASS).await;
    (wharf, tempfile::tempdir().unwrap())
}

fn home(dir: &Path) -> std::path::PathBuf {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    home
}

/// put then get for each size; the stored file and the fetched copy both match.
async fn put_and_get(wharf: &Wharf, lftp: &Lftp, work: &Path) {
    let sizes = [0usize, 1, 1024 * 1024];
    let mut script = Vec::new();
    for (i, len) in sizes.iter().enumerate() {
        std::fs::write(work.join(format!("f{len}")), bytes(*len, 30 + i as u64)).unwrap();
        script.push(format!("put f{len} -o f{len}.bin; get f{len}.bin -o back{len}"));
    }
    lftp.run(work, &script.join("; ")).await.ok();
    for (i, len) in sizes.iter().enumerate() {
        let data = bytes(*len, 30 + i as u64);
        assert_eq!(sha256(&wharf.read_file(&format!("f{len}.bin")).await), sha256(&data));
        assert_eq!(sha256(&std::fs::read(work.join(format!("back{len}"))).unwrap()), sha256(&data));
    }
    assert_no_temp_files(wharf, "acme").await;
}

#[tokio::test]
async fn lftp_put_and_get_are_byte_exact() {
    let (wharf, dir) = start().await;
    let lftp = Lftp::explicit(&wharf, LOGIN, PASS, &home(dir.path()));
    put_and_get(&wharf, &lftp, dir.path()).await;
}

#[tokio::test]
async fn lftp_works_over_implicit_ftps() {
    let (wharf, dir) = start().await;
    let lftp = Lftp::implicit(&wharf, LOGIN, PASS, &home(dir.path()));
    put_and_get(&wharf, &lftp, dir.path()).await;
    let listing = lftp.run(dir.path(), "cls -1").await.ok().stdout_text();
    assert_eq!(listing.lines().collect::<Vec<_>>(), ["f0.bin", "f1.bin", "f1048576.bin"]);
}

#[tokio::test]
async fn lftp_mirror_round_trips_a_tree() {
    let (wharf, dir) = start().await;
    let work = dir.path();
    let src = work.join("src");
    let (big, small, named, spaced) = (bytes(700_000, 41), bytes(100, 42), bytes(3000, 43), bytes(1, 44));
    write_tree(
        &src,
        [
            ("top.txt", &small[..]),
            ("empty.txt", &[][..]),
            ("nested/deeper/big.bin", &big[..]),
            ("nested/Ünïcødé 文件.txt", &named[..]),
            ("nested/sp ace/file with spaces.txt", &spaced[..]),
        ],
    );
    std::fs::create_dir_all(src.join("emptydir")).unwrap();
    let lftp = Lftp::explicit(&wharf, LOGIN, PASS, &home(work));

    lftp.run(work, "mirror -R src tree").await.ok();
    assert_eq!(wharf.tree_digest("tree").await, tree_digest(&src), "the tree as stored");
    assert_eq!(wharf.tree_dirs("tree").await, tree_dirs(&src), "folders as stored");
    assert_no_temp_files(&wharf, "acme").await;

    lftp.run(work, "mirror tree back").await.ok();
    assert_eq!(tree_digest(&work.join("back")), tree_digest(&src), "the tree mirrored back");
    assert_eq!(tree_dirs(&work.join("back")), tree_dirs(&src), "folders mirrored back");
}

#[tokio::test]
async fn lftp_manages_files_and_directories() {
    let (wharf, dir) = start().await;
    wharf.put_file("old.txt", b"moving").await;
    wharf.put_file("gone.txt", b"x").await;
    let lftp = Lftp::explicit(&wharf, LOGIN, PASS, &home(dir.path()));

    let out = lftp
        .run(dir.path(), "mkdir newdir; mkdir -p deep/er; mv old.txt newdir/moved.txt; rm gone.txt; rmdir deep/er; cls -1 newdir; ls")
        .await
        .ok()
        .stdout_text();
    assert_eq!(wharf.files_on_disk("acme").await, ["newdir/moved.txt"]);
    assert_eq!(wharf.read_file("newdir/moved.txt").await, b"moving");
    assert!(wharf.is_dir("deep").await && !wharf.exists("deep/er").await);

    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("newdir/moved.txt"), "cls -1 newdir first:\n{out}");
    let mut long: Vec<&str> = lines.collect();
    long.sort_by_key(|l| l.rsplit(' ').next());
    assert_eq!(long.len(), 2, "ls shows deep and newdir:\n{out}");
    assert!(long.iter().all(|l| l.starts_with('d')), "{out}");
    assert!(long[0].ends_with(" deep") && long[1].ends_with(" newdir"), "{out}");

    let refused = lftp.run(dir.path(), "rm no-such-file").await;
    assert!(!refused.status.success(), "rm of a missing file fails: {refused:?}");
}

/// The partial files hold other bytes than the source, so the result shows that only the rest moved.
#[tokio::test]
async fn lftp_resumes_get_and_put() {
    let (wharf, dir) = start().await;
    let work = dir.path();
    let data = bytes(1024 * 1024 + 5, 50);
    let other = bytes(300_000, 51);
    let resumed = |n: usize| sha256(&[&other[..n], &data[n..]].concat());
    wharf.put_file("down.bin", &data).await;
    std::fs::write(work.join("down.bin"), &other[..300_000]).unwrap();
    // Interrupted uploads left 200 000 and 1 bytes; `put -c` and `reput` continue with REST + STOR.
    wharf.put_file("up.bin", &other[..200_000]).await;
    wharf.put_file("up2.bin", &other[..1]).await;
    std::fs::write(work.join("up.bin"), &data).unwrap();
    let lftp = Lftp::explicit(&wharf, LOGIN, PASS, &home(work));

    lftp.run(work, "get -c down.bin; put -c up.bin; reput up.bin -o up2.bin").await.ok();
    assert_eq!(sha256(&std::fs::read(work.join("down.bin")).unwrap()), resumed(300_000), "get -c");
    assert_eq!(sha256(&wharf.read_file("up.bin").await), resumed(200_000), "put -c");
    assert_eq!(sha256(&wharf.read_file("up2.bin").await), resumed(1), "reput");
    assert_no_temp_files(&wharf, "acme").await;
}
