//! curl (OpenSSL) with `--ssl-reqd`: explicit FTPS on `ftp://` and implicit FTPS on `ftps://`.

use std::ffi::OsStr;
use std::path::Path;

use crate::support::clients::{assert_no_temp_files, Curl};
use crate::support::{bytes, sha256, Wharf, PASSWORD};

const USER: &str = "alice@acme";
const MIB: usize = 1024 * 1024;

/// Uploads each size, checks the stored file, downloads it again and checks the copy.
async fn round_trips(wharf: &Wharf, curl: &Curl, dir: &Path, sizes: &[usize]) {
    for (i, &len) in sizes.iter().enumerate() {
        let data = bytes(len, i as u64 + 1);
        let name = format!("file-{len}.bin");
        let local = dir.join(&name);
        std::fs::write(&local, &data).unwrap();
        curl.upload(&local, &name).await;
        let stored = wharf.read_file(&name).await;
        assert_eq!(sha256(&stored), sha256(&data), "{name} as stored");

        let back = dir.join(format!("{name}.back"));
        curl.download(&name, &back).await;
        let fetched = std::fs::read(&back).unwrap_or_else(|e| panic!("curl wrote no {}: {e}", back.display()));
        assert_eq!(sha256(&fetched), sha256(&data), "{name} as downloaded");
    }
    assert_no_temp_files(wharf, "acme").await;
}

#[tokio::test]
async fn curl_explicit_uploads_and_downloads_are_byte_exact() {
    let wharf = Wharf::start().await;
    let dir = tempfile::tempdir().unwrap();
    let curl = Curl::explicit(&wharf, USER, PASSWORD);
    round_trips(&wharf, &curl, dir.path(), &[0, 1, MIB]).await;
}

#[tokio::test]
async fn curl_implicit_uploads_and_downloads_are_byte_exact() {
    let wharf = Wharf::start().await;
    let dir = tempfile::tempdir().unwrap();
    let curl = Curl::implicit(&wharf, USER, PASSWORD);
    round_trips(&wharf, &curl, dir.path(), &[0, 1, MIB]).await;
}

#[tokio::test]
async fn curl_moves_64_mib_both_ways_byte_exact() {
    let wharf = Wharf::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(64 * MIB, 64);
    let digest = sha256(&data);
    let local = dir.path().join("big.bin");
    std::fs::write(&local, &data).unwrap();
    drop(data);

    Curl::explicit(&wharf, USER, PASSWORD).upload(&local, "big.bin").await;
    assert_eq!(sha256(&wharf.read_file("big.bin").await), digest, "as stored");
    assert_no_temp_files(&wharf, "acme").await;

    for (curl, name) in
        [(Curl::explicit(&wharf, USER, PASSWORD), "explicit"), (Curl::implicit(&wharf, USER, PASSWORD), "implicit")]
    {
        let back = dir.path().join(format!("big.{name}"));
        curl.download("big.bin", &back).await;
        assert_eq!(sha256(&std::fs::read(&back).unwrap()), digest, "downloaded over {name} FTPS");
    }
}

/// Many small uploads in a row: each must end in 226. An upload whose client closes the data connection
/// with unread bytes from the server in its socket buffer (TLS 1.3 session tickets sent on the data
/// connection) makes the client's kernel send RST, which can discard data the server has not read yet.
#[tokio::test]
async fn curl_uploads_succeed_every_time_in_a_row() {
    let wharf = Wharf::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(400_000, 11);
    let local = dir.path().join("repeat.bin");
    std::fs::write(&local, &data).unwrap();
    let curl = Curl::explicit(&wharf, USER, PASSWORD);
    let mut failures = Vec::new();
    for i in 0..20 {
        let url = curl.url(&format!("repeat-{i}.bin"));
        let run = curl.run([OsStr::new("--upload-file"), local.as_os_str(), OsStr::new(&url)]).await;
        if !run.status.success() {
            failures.push(format!("upload {i}: {}", run.stderr.trim()));
        }
    }
    assert!(failures.is_empty(), "{} of 20 uploads failed: {failures:#?}", failures.len());
    for i in 0..20 {
        assert_eq!(sha256(&wharf.read_file(&format!("repeat-{i}.bin")).await), sha256(&data));
    }
    assert_no_temp_files(&wharf, "acme").await;
}

/// The partial files hold other bytes than the source, so the result shows that only the rest moved.
#[tokio::test]
async fn curl_resumes_a_download_at_an_offset() {
    let wharf = Wharf::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(MIB + 123, 7);
    let other = bytes(300_000, 70);
    wharf.put_file("resume.bin", &data).await;
    let curl = Curl::explicit(&wharf, USER, PASSWORD);
    let url = curl.url("resume.bin");
    let local = dir.path().join("resume.bin");

    // REST 300000, RETR, and curl appends the rest to the partial copy.
    std::fs::write(&local, &other).unwrap();
    curl.run(["--continue-at", "300000", "--output", local.to_str().unwrap(), &url]).await.ok();
    assert_eq!(sha256(&std::fs::read(&local).unwrap()), sha256(&[&other[..], &data[300_000..]].concat()));

    // `-C -` takes the offset from the local file's size.
    std::fs::write(&local, &other[..5]).unwrap();
    curl.run(["--continue-at", "-", "--output", local.to_str().unwrap(), &url]).await.ok();
    assert_eq!(sha256(&std::fs::read(&local).unwrap()), sha256(&[&other[..5], &data[5..]].concat()));
}

#[tokio::test]
async fn curl_resumes_an_upload_with_size_and_append() {
    let wharf = Wharf::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(MIB + 77, 8);
    let other = bytes(400_000, 80);
    // An interrupted upload left 400 000 bytes; `-C -` asks SIZE and sends the rest with APPE.
    wharf.put_file("upload.bin", &other).await;
    let curl = Curl::explicit(&wharf, USER, PASSWORD);
    let local = dir.path().join("upload.bin");
    std::fs::write(&local, &data).unwrap();
    let url = curl.url("upload.bin");
    curl.run(["--continue-at", "-", "--upload-file", local.to_str().unwrap(), &url]).await.ok();

    let stored = wharf.read_file("upload.bin").await;
    assert_eq!(stored.len(), data.len());
    assert_eq!(sha256(&stored), sha256(&[&other[..], &data[400_000..]].concat()), "only the rest was sent");
    assert_no_temp_files(&wharf, "acme").await;
}

#[tokio::test]
async fn curl_lists_names_and_long_format() {
    let wharf = Wharf::start().await;
    wharf.put_dir("docs").await;
    wharf.put_file("a.txt", b"hello").await;
    wharf.put_file("b.bin", &bytes(4096, 2)).await;
    let curl = Curl::explicit(&wharf, USER, PASSWORD);

    let names = curl.run(["--list-only", &curl.url("/")]).await.ok().stdout_text();
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["a.txt", "b.bin", "docs"]);

    let long = curl.run([curl.url("/")]).await.ok().stdout_text();
    let lines: Vec<&str> = long.lines().collect();
    assert_eq!(lines.len(), 3, "{long}");
    let line =
        |name: &str| *lines.iter().find(|l| l.ends_with(&format!(" {name}"))).unwrap_or_else(|| panic!("{long}"));
    assert!(line("docs").starts_with('d'), "{long}");
    assert!(line("a.txt").starts_with('-') && line("a.txt").contains(" 5 "), "{long}");
    assert!(line("b.bin").contains(" 4096 "), "{long}");
}

#[tokio::test]
async fn curl_quote_commands_delete_and_rename() {
    let wharf = Wharf::start().await;
    wharf.put_file("gone.txt", b"x").await;
    wharf.put_file("old name.txt", b"keep me").await;
    let curl = Curl::explicit(&wharf, USER, PASSWORD);

    // `-Q -CMD` runs after the transfer (here a listing of the root, which must still show both).
    let listing = curl
        .run([
            "--list-only",
            "-Q",
            "-DELE gone.txt",
            "-Q",
            "-RNFR old name.txt",
            "-Q",
            "-RNTO new name.txt",
            &curl.url("/"),
        ])
        .await
        .ok()
        .stdout_text();
    assert!(listing.contains("gone.txt") && listing.contains("old name.txt"), "{listing}");
    assert_eq!(wharf.files_on_disk("acme").await, ["new name.txt"]);
    assert_eq!(wharf.read_file("new name.txt").await, b"keep me");

    // A refused quote command fails the run.
    let refused = curl.run(["--list-only", "-Q", "-DELE gone.txt", &curl.url("/")]).await;
    assert!(!refused.status.success(), "DELE of a missing file must fail: {refused:?}");
}

#[tokio::test]
async fn curl_creates_missing_directories() {
    let wharf = Wharf::start().await;
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("leaf.txt");
    std::fs::write(&local, b"deep").unwrap();
    let curl = Curl::explicit(&wharf, USER, PASSWORD);

    let url = curl.url("one/two/three/leaf.txt");
    let without = curl.run([OsStr::new("--upload-file"), local.as_os_str(), OsStr::new(&url)]).await;
    assert!(!without.status.success(), "upload into a missing directory must fail without --ftp-create-dirs");

    curl.run([OsStr::new("--ftp-create-dirs"), OsStr::new("--upload-file"), local.as_os_str(), OsStr::new(&url)])
        .await
        .ok();
    assert_eq!(wharf.read_file("one/two/three/leaf.txt").await, b"deep");
    assert!(wharf.is_dir("one/two").await);
    assert_no_temp_files(&wharf, "acme").await;
}

#[tokio::test]
async fn curl_round_trips_a_unicode_name_with_spaces() {
    let wharf = Wharf::start().await;
    let dir = tempfile::tempdir().unwrap();
    let name = "Ünïcødé 文件 name.txt";
    let data = bytes(10_000, 9);
    let local = dir.path().join("local.txt");
    std::fs::write(&local, &data).unwrap();
    let curl = Curl::explicit(&wharf, USER, PASSWORD);

    curl.upload(&local, name).await;
    assert_eq!(wharf.files_on_disk("acme").await, [name], "the name on disk is exactly the UTF-8 name");
    assert_eq!(wharf.read_file(name).await, data);

    let names = curl.run(["--list-only", &curl.url("/")]).await.ok().stdout_text();
    assert_eq!(names.lines().collect::<Vec<_>>(), [name]);

    let back = dir.path().join("back.txt");
    curl.download(name, &back).await;
    assert_eq!(std::fs::read(&back).unwrap(), data);
    assert_no_temp_files(&wharf, "acme").await;
}

/// One curl command with several URLs keeps its control connection. curl keeps one TLS session and uses it
/// once, and it starts each data handshake before it sends RETR: every download must leave it a new session
/// for the next, or the next data connection cannot resume and gets 522 under `enforced`.
#[tokio::test]
async fn curl_downloads_and_lists_several_urls_in_one_command() {
    let wharf = Wharf::start().await;
    let dir = tempfile::tempdir().unwrap();
    let curl = Curl::explicit(&wharf, USER, PASSWORD);
    let files: Vec<(String, Vec<u8>)> =
        (0..4).map(|i| (format!("multi-{i}.bin"), bytes(200_000 + i, 40 + i as u64))).collect();
    let mut args = vec![curl.url("/"), "--output".to_owned(), dir.path().join("listing").to_str().unwrap().to_owned()];
    for (name, data) in &files {
        wharf.put_file(name, data).await;
        let back = dir.path().join(format!("{name}.back"));
        args.extend([curl.url(name), "--output".to_owned(), back.to_str().unwrap().to_owned()]);
    }
    let run = curl.run(&args).await;
    assert!(run.status.success(), "curl: {}", run.stderr);
    let listing = std::fs::read_to_string(dir.path().join("listing")).unwrap();
    for (name, data) in &files {
        assert!(listing.contains(name.as_str()), "{name} missing from the listing: {listing}");
        let back = std::fs::read(dir.path().join(format!("{name}.back"))).unwrap();
        assert_eq!(sha256(&back), sha256(data), "{name} as downloaded");
    }
}
