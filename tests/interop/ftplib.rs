//! Python's `ftplib.FTP_TLS` (OpenSSL), driven by `tests/clients/ftplib_client.py`.

use std::ffi::OsStr;

use crate::support::clients::{assert_no_temp_files, python, tree_digest, write_tree};
use crate::support::{bytes, Wharf, PASSWORD};

const SCRIPT: &str = "ftplib_client.py";
const UNICODE_NAME: &str = "Ünïcødé 文件 name.txt";

async fn scenario(wharf: &Wharf, name: &str, extra: &[&OsStr]) -> String {
    let port = wharf.explicit.port().to_string();
    let mut args: Vec<&OsStr> =
        vec![name.as_ref(), "127.0.0.1".as_ref(), port.as_ref(), "alice@acme".as_ref(), PASSWORD.as_ref()];
    args.extend_from_slice(extra);
    python(SCRIPT, &args).await.ok().stdout_text().trim().to_owned()
}

#[tokio::test]
async fn ftplib_with_session_reuse_transfers_lists_and_manages_files() {
    let wharf = Wharf::start().await;
    let local = tempfile::tempdir().unwrap();
    let big = bytes(1024 * 1024, 21);
    let small = bytes(1000, 22);
    let named = bytes(5000, 23);
    write_tree(local.path(), [("big.bin", &big[..]), ("small.bin", &small[..]), (UNICODE_NAME, &named[..])]);

    assert_eq!(scenario(&wharf, "full", &[local.path().as_os_str()]).await, "ok");

    // The script renamed and deleted small.bin; the others stay, byte for byte and under their exact names.
    std::fs::remove_file(local.path().join("small.bin")).unwrap();
    assert_eq!(wharf.tree_digest("dir").await, tree_digest(local.path()));
    assert_eq!(wharf.files_on_disk("acme").await, ["dir/big.bin", &format!("dir/{UNICODE_NAME}")]);
    assert!(!wharf.exists("empty").await, "RMD removed /empty");
    assert_no_temp_files(&wharf, "acme").await;
}

#[tokio::test]
async fn ftplib_without_session_reuse_is_refused_with_522() {
    let wharf = Wharf::start().await;
    let outcome = scenario(&wharf, "plain", &[]).await;
    assert!(outcome.starts_with("refused 522"), "{outcome}");
    assert!(wharf.files_on_disk("acme").await.is_empty(), "a refused upload stores nothing");
}

#[tokio::test]
async fn ftplib_without_session_reuse_works_when_resumption_is_optional() {
    let wharf = Wharf::start_with(|cfg| cfg.tls.data_session_resumption = wharf::config::Resumption::Enabled).await;
    assert_eq!(scenario(&wharf, "plain", &[]).await, "ok");
    assert_eq!(wharf.files_on_disk("acme").await, ["plain.txt"]);
    assert_no_temp_files(&wharf, "acme").await;
}
