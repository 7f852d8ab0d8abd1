//! Interop with suppaftp, a Rust FTP client library, on tokio with rustls.
//!
//! suppaftp keeps the connector given to `into_secure` and uses it, with the same server name, for every
//! data connection, so they share the control connection's rustls session cache and resume its session.
//! That is why these tests run under the default policy (resumption enforced).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use ::suppaftp::list::{File, ListParser};
use ::suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream};
use ::suppaftp::types::FileType;
use ::suppaftp::{FtpError, Mode, Status};
use rustls::ClientConfig;
use tokio::io::AsyncReadExt as _;

use crate::support::{bytes, raw, sha256, Wharf, PASSWORD};
use crate::tls_policy::{verifying_config, TLS12, TLS13};

/// Connects, upgrades with AUTH TLS (suppaftp then sends PBSZ 0 and PROT P), logs in, binary type.
async fn login(wharf: &Wharf) -> AsyncRustlsFtpStream {
    login_with(wharf, raw::client_config()).await
}

async fn login_with(wharf: &Wharf, tls: Arc<ClientConfig>) -> AsyncRustlsFtpStream {
    let plain = AsyncRustlsFtpStream::connect(wharf.explicit).await.expect("connect");
    let connector = AsyncRustlsConnector::from(tokio_rustls::TlsConnector::from(tls));
    let mut ftp = plain.into_secure(connector, "127.0.0.1").await.expect("AUTH TLS");
    ftp.login("alice@acme", PASSWORD).await.expect("login");
    ftp.transfer_type(FileType::Binary).await.expect("TYPE I");
    ftp
}

async fn upload(ftp: &mut AsyncRustlsFtpStream, name: &str, data: &[u8]) {
    let mut reader = data;
    let sent = ftp.put_file(name, &mut reader).await.unwrap_or_else(|e| panic!("upload {name}: {e}"));
    assert_eq!(sent, data.len() as u64);
}

async fn download(ftp: &mut AsyncRustlsFtpStream, name: &str) -> Vec<u8> {
    let mut stream = ftp.retr_as_stream(name).await.unwrap_or_else(|e| panic!("RETR {name}: {e}"));
    let mut data = Vec::new();
    stream.read_to_end(&mut data).await.unwrap();
    stream.finish().await.unwrap_or_else(|e| panic!("RETR {name} completion: {e}"));
    data
}

fn status_of(err: FtpError) -> Status {
    match err {
        FtpError::UnexpectedResponse(response) => response.status,
        other => panic!("expected a refusal reply, got {other}"),
    }
}

#[tokio::test]
async fn explicit_ftps_login_greeting_and_pwd() {
    let wharf = Wharf::start().await;
    let mut ftp = login(&wharf).await;
    assert!(ftp.get_welcome_msg().unwrap_or_default().contains("wharf"));
    assert_eq!(ftp.pwd().await.unwrap(), "/");
    ftp.noop().await.unwrap();
    ftp.quit().await.unwrap();
}

#[tokio::test]
async fn without_tls_suppaftp_cannot_log_in() {
    let wharf = Wharf::start().await;
    let mut ftp = ::suppaftp::tokio::AsyncFtpStream::connect(wharf.explicit).await.unwrap();
    let err = ftp.login("alice@acme", PASSWORD).await.unwrap_err();
    assert_eq!(status_of(err), Status::NotLoggedIn);
}

#[tokio::test]
async fn upload_and_download_are_byte_exact_at_small_sizes() {
    let wharf = Wharf::start().await;
    let mut ftp = login(&wharf).await;
    for (len, seed) in [(0usize, 1u64), (1, 2), (1024 * 1024, 3)] {
        let name = format!("size-{len}.bin");
        let data = bytes(len, seed);
        upload(&mut ftp, &name, &data).await;
        assert_eq!(ftp.size(&name).await.unwrap(), len);
        assert_eq!(download(&mut ftp, &name).await, data, "{name}");
        assert_eq!(wharf.read_file(&name).await, data);
    }
}

#[tokio::test]
async fn large_upload_and_download_keep_their_sha256() {
    let wharf = Wharf::start().await;
    let mut ftp = login(&wharf).await;
    let data = bytes(64 * 1024 * 1024, 64);
    let digest = sha256(&data);
    upload(&mut ftp, "big.bin", &data).await;
    assert_eq!(ftp.size("big.bin").await.unwrap(), data.len());
    drop(data);
    let back = download(&mut ftp, "big.bin").await;
    assert_eq!(back.len(), 64 * 1024 * 1024);
    assert_eq!(sha256(&back), digest);
}

#[tokio::test]
async fn transfers_work_in_every_data_connection_mode() {
    let wharf = Wharf::start().await;
    let mut ftp = login(&wharf).await;
    let data = bytes(300_000, 9);
    for (name, mode) in [("pasv.bin", Mode::Passive), ("epsv.bin", Mode::ExtendedPassive)] {
        ftp.set_mode(mode);
        upload(&mut ftp, name, &data).await;
        assert_eq!(download(&mut ftp, name).await, data, "{mode:?}");
    }
    let mut ftp = ftp.active_mode(Duration::from_secs(10));
    upload(&mut ftp, "port.bin", &data).await;
    assert_eq!(download(&mut ftp, "port.bin").await, data, "active");
    assert_eq!(ftp.nlst(None).await.unwrap().len(), 3);
}

#[tokio::test]
async fn download_resumes_at_an_offset() {
    let wharf = Wharf::start().await;
    let mut ftp = login(&wharf).await;
    let data = bytes(500_000, 10);
    upload(&mut ftp, "resume.bin", &data).await;
    for offset in [1usize, 123_457, 499_999, 500_000] {
        ftp.resume_transfer(offset).await.unwrap();
        assert_eq!(download(&mut ftp, "resume.bin").await, &data[offset..], "offset {offset}");
    }
    // The offset applies to one transfer only.
    assert_eq!(download(&mut ftp, "resume.bin").await, data);
}

#[tokio::test]
async fn listings_list_nlst_and_mlsd() {
    let wharf = Wharf::start().await;
    let mut ftp = login(&wharf).await;
    ftp.mkdir("docs").await.unwrap();
    upload(&mut ftp, "docs/a.txt", b"alpha").await;
    upload(&mut ftp, "b.bin", &bytes(4096, 11)).await;

    let list = ftp.list(None).await.unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let b = list.iter().find(|l| l.ends_with(" b.bin")).expect("b.bin listed");
    assert!(b.starts_with('-') && b.contains(" 4096 "), "{b}");
    assert!(list.iter().any(|l| l.starts_with('d') && l.ends_with(" docs")), "{list:?}");
    // suppaftp's own parser understands the LIST format.
    let parsed: Vec<File> = list.iter().map(|l| ListParser::parse_posix(l).unwrap()).collect();
    let b = parsed.iter().find(|f| f.name() == "b.bin").unwrap();
    assert_eq!((b.size(), b.is_file()), (4096, true));
    assert!(parsed.iter().any(|f| f.name() == "docs" && f.is_directory()));

    let mut names = ftp.nlst(None).await.unwrap();
    names.sort();
    assert_eq!(names, ["b.bin", "docs"]);
    assert_eq!(ftp.nlst(Some("docs")).await.unwrap().len(), 1);

    let mlsd = ftp.mlsd(None).await.unwrap();
    let files: Vec<File> = mlsd.iter().map(|l| ListParser::parse_mlsd(l).unwrap()).collect();
    let b = files.iter().find(|f| f.name() == "b.bin").unwrap_or_else(|| panic!("{mlsd:?}"));
    assert_eq!((b.size(), b.is_file()), (4096, true));
    assert!(files.iter().any(|f| f.name() == "docs" && f.is_directory()), "{mlsd:?}");
    assert!(ftp.mlst(Some("b.bin")).await.unwrap().contains("size=4096"));
}

#[tokio::test]
async fn rename_delete_and_directories() {
    let wharf = Wharf::start().await;
    let mut ftp = login(&wharf).await;
    upload(&mut ftp, "old.txt", b"content").await;
    ftp.rename("old.txt", "new.txt").await.unwrap();
    assert_eq!(ftp.nlst(None).await.unwrap(), ["new.txt"]);
    assert_eq!(download(&mut ftp, "new.txt").await, b"content");
    assert_eq!(status_of(ftp.size("old.txt").await.unwrap_err()), Status::FileUnavailable);

    ftp.mkdir("dir").await.unwrap();
    ftp.mkdir("dir/sub").await.unwrap();
    ftp.cwd("dir").await.unwrap();
    assert_eq!(ftp.pwd().await.unwrap(), "/dir");
    ftp.cwd("sub").await.unwrap();
    assert_eq!(ftp.pwd().await.unwrap(), "/dir/sub");
    upload(&mut ftp, "inner.txt", b"deep").await;
    ftp.cdup().await.unwrap();
    assert_eq!(ftp.pwd().await.unwrap(), "/dir");
    assert_eq!(status_of(ftp.rmdir("sub").await.unwrap_err()), Status::FileUnavailable, "not empty");
    ftp.rm("sub/inner.txt").await.unwrap();
    ftp.rmdir("sub").await.unwrap();
    ftp.cwd("/").await.unwrap();
    ftp.rename("new.txt", "dir/moved.txt").await.unwrap();
    assert_eq!(ftp.nlst(Some("dir")).await.unwrap().len(), 1);
    ftp.rm("dir/moved.txt").await.unwrap();
    ftp.rmdir("dir").await.unwrap();
    assert!(ftp.nlst(None).await.unwrap().is_empty());
    assert_eq!(wharf.files_on_disk("acme").await, Vec::<String>::new());
    assert_eq!(status_of(ftp.rm("missing.txt").await.unwrap_err()), Status::FileUnavailable);
    assert_eq!(status_of(ftp.cwd("missing").await.unwrap_err()), Status::FileUnavailable);
}

#[tokio::test]
async fn size_and_mdtm_match_the_stored_file() {
    let wharf = Wharf::start().await;
    let mut ftp = login(&wharf).await;
    upload(&mut ftp, "m.bin", &bytes(12_345, 12)).await;
    assert_eq!(ftp.size("m.bin").await.unwrap(), 12_345);
    let mdtm = ftp.mdtm("m.bin").await.unwrap().and_utc().timestamp();
    // As stored: the file's mtime, or the object's Last-Modified (whole seconds either way).
    let stored = match &wharf.s3 {
        Some(bucket) => {
            let head = bucket.client.head_object().bucket(&bucket.name).key("acme/m.bin").send().await.unwrap();
            head.last_modified().unwrap().secs()
        }
        None => {
            let on_disk = std::fs::metadata(wharf.file("acme", "m.bin")).unwrap().modified().unwrap();
            on_disk.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
        }
    };
    assert_eq!(mdtm, stored);
}

#[tokio::test]
async fn unicode_names_with_spaces_round_trip() {
    let wharf = Wharf::start().await;
    let mut ftp = login(&wharf).await;
    let dir = "Dossier été";
    let name = "ファイル with  spaces ✓.txt";
    ftp.mkdir(dir).await.unwrap();
    ftp.cwd(dir).await.unwrap();
    assert_eq!(ftp.pwd().await.unwrap(), format!("/{dir}"));
    let data = "naïve café\n".as_bytes();
    upload(&mut ftp, name, data).await;
    assert_eq!(ftp.nlst(None).await.unwrap(), [name]);
    assert!(ftp.list(None).await.unwrap()[0].ends_with(name));
    assert_eq!(ftp.size(name).await.unwrap(), data.len());
    assert_eq!(download(&mut ftp, name).await, data);
    assert_eq!(wharf.read_file(&format!("{dir}/{name}")).await, data);
    ftp.rename(name, "renamed é.txt").await.unwrap();
    assert_eq!(ftp.nlst(None).await.unwrap(), ["renamed é.txt"]);
}

#[tokio::test]
async fn data_connections_resume_the_control_session_under_tls12_and_tls13() {
    let wharf = Wharf::start().await;
    for versions in [TLS12, TLS13] {
        // A config limited to one version that verifies wharf's own certificate.
        let mut ftp = login_with(&wharf, verifying_config(&wharf, versions)).await;
        let data = bytes(100_000, 13);
        for round in 0..4 {
            upload(&mut ftp, "v.bin", &data).await;
            assert_eq!(download(&mut ftp, "v.bin").await, data, "{versions:?} round {round}");
        }
    }
}

/// rustls clients use each TLS 1.3 ticket once and keep at most 8 per server. The control connection
/// sends 8, and a connection the client only writes to sends none unless the client is about to run
/// out, so a long run of uploads with no download in between must still resume every time.
#[tokio::test]
async fn a_hundred_uploads_in_a_row_resume_every_time_under_tls13() {
    let wharf = Wharf::start().await;
    let mut ftp = login_with(&wharf, verifying_config(&wharf, TLS13)).await;
    let data = bytes(10_000, 17);
    for i in 0..100 {
        upload(&mut ftp, &format!("run-{i}.bin"), &data).await;
    }
    ftp.quit().await.unwrap();
    for i in 0..100 {
        assert_eq!(wharf.read_file(&format!("run-{i}.bin")).await, data, "upload {i}");
    }
}
