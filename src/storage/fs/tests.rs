//! Tests of the fs backend: atomic uploads, resume, listings, symlink safety, error mapping.

use std::os::unix::fs::symlink;
use std::time::Duration;

use futures_util::TryStreamExt;
use tokio::io::AsyncReadExt;

use super::*;

fn key(s: &str) -> StorageKey {
    StorageKey::from_normalised(s.to_owned())
}

fn storage(fsync: bool) -> (tempfile::TempDir, FsStorage) {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path().join("tenant"), fsync).unwrap();
    (dir, storage)
}

async fn put(storage: &FsStorage, k: &str, mode: WriteMode, data: &[u8]) -> Result<u64, StorageError> {
    let mut upload = storage.put(&key(k), mode).await?;
    for chunk in data.chunks(100_000) {
        upload.write(chunk).await?;
    }
    upload.commit().await
}

async fn read(storage: &FsStorage, k: &str, offset: u64) -> Result<(u64, Vec<u8>), StorageError> {
    let mut download = storage.get(&key(k), offset).await?;
    let mut data = Vec::new();
    download.reader.read_to_end(&mut data).await.unwrap();
    Ok((download.size, data))
}

async fn listed(storage: &FsStorage, k: &str) -> Result<Vec<(String, EntryKind, u64)>, StorageError> {
    let mut entries: Vec<_> =
        storage.list(&key(k)).await?.map_ok(|e| (e.name, e.meta.kind, e.meta.size)).try_collect().await?;
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// What is really on disk, hidden names included.
fn on_disk(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

fn kind<T>(result: Result<T, StorageError>) -> ErrorKind {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.kind(),
    }
}

#[tokio::test]
async fn put_then_get_from_offsets() {
    for fsync in [false, true] {
        let (_dir, s) = storage(fsync);
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(put(&s, "big.bin", WriteMode::Create, &data).await.unwrap(), 700_000);
        assert_eq!(read(&s, "big.bin", 0).await.unwrap(), (700_000, data.clone()));
        assert_eq!(read(&s, "big.bin", 300_001).await.unwrap(), (700_000, data[300_001..].to_vec()));
        assert_eq!(read(&s, "big.bin", 700_000).await.unwrap(), (700_000, Vec::new()));
        assert_eq!(kind(s.get(&key("big.bin"), 700_001).await), ErrorKind::InvalidOffset);
        let meta = s.stat(&key("big.bin")).await.unwrap();
        assert_eq!((meta.kind, meta.size), (EntryKind::File, 700_000));
        assert!(meta.modified.is_some());
    }
}

#[tokio::test]
async fn create_replaces_only_on_commit() {
    let (_dir, s) = storage(false);
    put(&s, "f", WriteMode::Create, b"old").await.unwrap();
    let mut upload = s.put(&key("f"), WriteMode::Create).await.unwrap();
    upload.write(b"new content").await.unwrap();
    assert_eq!(read(&s, "f", 0).await.unwrap().1, b"old");
    assert_eq!(on_disk(&s.root).len(), 2, "the upload's temp file sits next to its target");
    assert_eq!(listed(&s, "").await.unwrap(), [("f".to_owned(), EntryKind::File, 3)]);
    assert_eq!(upload.commit().await.unwrap(), 11);
    assert_eq!(read(&s, "f", 0).await.unwrap().1, b"new content");
    assert_eq!(on_disk(&s.root), ["f"]);
}

#[tokio::test]
async fn abort_drop_and_cancel_leave_nothing() {
    let (_dir, s) = storage(false);
    let mut upload = s.put(&key("a"), WriteMode::Create).await.unwrap();
    upload.write(b"data").await.unwrap();
    upload.abort().await;
    assert!(on_disk(&s.root).is_empty());

    let mut upload = s.put(&key("a"), WriteMode::Create).await.unwrap();
    upload.write(&[7; 300_000]).await.unwrap();
    drop(upload);
    assert!(on_disk(&s.root).is_empty());

    put(&s, "kept", WriteMode::Create, b"old").await.unwrap();
    let s = Arc::new(s);
    let (started, wait) = tokio::sync::oneshot::channel();
    let task = tokio::spawn({
        let s = s.clone();
        async move {
            let mut upload = s.put(&key("kept"), WriteMode::Append).await.unwrap();
            upload.write(b"more").await.unwrap();
            started.send(()).unwrap();
            std::future::pending::<()>().await;
        }
    });
    wait.await.unwrap();
    assert_eq!(on_disk(&s.root).len(), 2);
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(on_disk(&s.root), ["kept"]);
    assert_eq!(read(&s, "kept", 0).await.unwrap().1, b"old");
}

#[tokio::test]
async fn append_and_resume() {
    let (_dir, s) = storage(false);
    put(&s, "log", WriteMode::Append, b"one ").await.unwrap();
    assert_eq!(put(&s, "log", WriteMode::Append, b"two").await.unwrap(), 7);
    assert_eq!(read(&s, "log", 0).await.unwrap().1, b"one two");

    put(&s, "r", WriteMode::Create, b"abcdef").await.unwrap();
    assert_eq!(put(&s, "r", WriteMode::Resume(3), b"XY").await.unwrap(), 5);
    assert_eq!(read(&s, "r", 0).await.unwrap().1, b"abcXY");
    assert_eq!(put(&s, "r", WriteMode::Resume(5), b"Z").await.unwrap(), 6);
    assert_eq!(read(&s, "r", 0).await.unwrap().1, b"abcXYZ");
    assert_eq!(kind(s.put(&key("r"), WriteMode::Resume(7)).await), ErrorKind::InvalidOffset);
    assert_eq!(read(&s, "r", 0).await.unwrap().1, b"abcXYZ");

    assert_eq!(kind(s.put(&key("missing"), WriteMode::Resume(1)).await), ErrorKind::InvalidOffset);
    assert_eq!(put(&s, "fresh", WriteMode::Resume(0), b"new").await.unwrap(), 3);
    assert_eq!(on_disk(&s.root), ["fresh", "log", "r"]);
}

#[tokio::test]
async fn put_and_get_refuse_the_wrong_kind_of_entry() {
    let (_dir, s) = storage(false);
    s.make_dir(&key("d")).await.unwrap();
    put(&s, "f", WriteMode::Create, b"x").await.unwrap();
    assert_eq!(kind(s.get(&key("d"), 0).await), ErrorKind::IsADirectory);
    assert_eq!(kind(s.get(&key(""), 0).await), ErrorKind::IsADirectory);
    assert_eq!(kind(s.get(&key("nope"), 0).await), ErrorKind::NotFound);
    assert_eq!(kind(s.put(&key("d"), WriteMode::Create).await), ErrorKind::IsADirectory);
    assert_eq!(kind(s.put(&key("nope/f"), WriteMode::Create).await), ErrorKind::NotFound);
    assert_eq!(kind(s.put(&key("f/g"), WriteMode::Create).await), ErrorKind::NotFound);
    assert_eq!(kind(s.stat(&key("f/g")).await), ErrorKind::NotFound);
    assert_eq!(kind(s.delete(&key("d")).await), ErrorKind::IsADirectory);
    assert_eq!(kind(s.delete(&key("nope")).await), ErrorKind::NotFound);
    assert_eq!(kind(s.list(&key("f")).await), ErrorKind::NotADirectory);
    assert_eq!(kind(s.list(&key("nope")).await), ErrorKind::NotFound);
    assert_eq!(s.delete(&key("f")).await.unwrap(), 1, "DELE learns the size it freed");
    assert_eq!(on_disk(&s.root), ["d"]);
    let root = s.stat(&key("")).await.unwrap();
    assert_eq!((root.kind, root.size), (EntryKind::Dir, 0));
}

#[tokio::test]
async fn wharf_names_are_hidden_and_unaddressable() {
    let (_dir, s) = storage(false);
    fs::write(s.root.join(".wharf-upload-0123"), b"crash leftover").unwrap();
    for k in [".wharf-upload-0123", ".wharf-x", ".wharf-x/y"] {
        assert_eq!(kind(s.stat(&key(k)).await), ErrorKind::Denied, "{k}");
        assert_eq!(kind(s.get(&key(k), 0).await), ErrorKind::Denied, "{k}");
        assert_eq!(kind(s.put(&key(k), WriteMode::Create).await), ErrorKind::Denied, "{k}");
        assert_eq!(kind(s.delete(&key(k)).await), ErrorKind::Denied, "{k}");
        assert_eq!(kind(s.make_dir(&key(k)).await), ErrorKind::Denied, "{k}");
    }
    assert_eq!(listed(&s, "").await.unwrap(), []);
}

#[tokio::test]
async fn list_streams_visible_entries_only() {
    let (_dir, s) = storage(false);
    s.make_dir(&key("sub")).await.unwrap();
    for i in 0..300 {
        fs::write(s.root.join(format!("f{i:03}")), vec![0; i]).unwrap();
    }
    fs::write(s.root.join(".wharf-upload-leftover"), b"x").unwrap();
    fs::write(s.root.join("bad\r\nname"), b"x").unwrap();
    symlink(s.root.join("f001"), s.root.join("link-to-file")).unwrap();
    symlink(s.root.join("sub"), s.root.join("link-to-dir")).unwrap();
    let _upload = s.put(&key("in-progress"), WriteMode::Create).await.unwrap();

    let entries = listed(&s, "").await.unwrap();
    assert_eq!(entries.len(), 301);
    assert_eq!(entries[0], ("f000".to_owned(), EntryKind::File, 0));
    assert_eq!(entries[299], ("f299".to_owned(), EntryKind::File, 299));
    assert_eq!(entries[300], ("sub".to_owned(), EntryKind::Dir, 0));
    assert_eq!(listed(&s, "sub").await.unwrap(), []);
}

#[tokio::test]
async fn symlinks_never_lead_outside_the_root() {
    let (_dir, s) = storage(false);
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"secret").unwrap();
    symlink(outside.path(), s.root.join("dirlink")).unwrap();
    symlink(outside.path().join("secret"), s.root.join("filelink")).unwrap();
    put(&s, "mine", WriteMode::Create, b"mine").await.unwrap();

    for k in ["dirlink", "dirlink/secret", "filelink"] {
        assert_eq!(kind(s.stat(&key(k)).await), ErrorKind::Denied, "{k}");
        assert_eq!(kind(s.get(&key(k), 0).await), ErrorKind::Denied, "{k}");
        assert_eq!(kind(s.list(&key(k)).await), ErrorKind::Denied, "{k}");
        assert_eq!(kind(s.delete(&key(k)).await), ErrorKind::Denied, "{k}");
        assert_eq!(kind(s.remove_dir(&key(k)).await), ErrorKind::Denied, "{k}");
        assert_eq!(kind(s.set_modified(&key(k), SystemTime::UNIX_EPOCH).await), ErrorKind::Denied, "{k}");
        assert_eq!(kind(s.rename(&key(k), &key("moved")).await), ErrorKind::Denied, "{k}");
    }
    for k in ["dirlink/new", "dirlink/secret", "filelink"] {
        assert_eq!(kind(s.put(&key(k), WriteMode::Create).await), ErrorKind::Denied, "{k}");
    }
    assert_eq!(kind(s.make_dir(&key("dirlink/new")).await), ErrorKind::Denied);
    assert_eq!(kind(s.rename(&key("mine"), &key("dirlink/mine")).await), ErrorKind::Denied);
    assert_eq!(kind(s.rename(&key("mine"), &key("filelink")).await), ErrorKind::Denied);

    assert_eq!(on_disk(outside.path()), ["secret"]);
    assert_eq!(fs::read(outside.path().join("secret")).unwrap(), b"secret");
    assert_eq!(on_disk(&s.root), ["dirlink", "filelink", "mine"]);
    assert_eq!(listed(&s, "").await.unwrap(), [("mine".to_owned(), EntryKind::File, 4)]);
}

#[tokio::test]
async fn rename_files_and_directories() {
    for fsync in [false, true] {
        let (_dir, s) = storage(fsync);
        put(&s, "a", WriteMode::Create, b"a").await.unwrap();
        put(&s, "b", WriteMode::Create, b"bb").await.unwrap();
        s.make_dir(&key("d")).await.unwrap();
        s.make_dir(&key("d/inner")).await.unwrap();
        s.make_dir(&key("e")).await.unwrap();

        s.rename(&key("a"), &key("d/inner/a2")).await.unwrap();
        assert_eq!(read(&s, "d/inner/a2", 0).await.unwrap().1, b"a");
        s.rename(&key("b"), &key("d/inner/a2")).await.unwrap();
        assert_eq!(read(&s, "d/inner/a2", 0).await.unwrap().1, b"bb");
        s.rename(&key("d/inner/a2"), &key("d/inner/a2")).await.unwrap();

        assert_eq!(kind(s.rename(&key("d"), &key("d/inner/d")).await), ErrorKind::Denied);
        assert_eq!(kind(s.rename(&key("d"), &key("d/x")).await), ErrorKind::Denied);
        assert_eq!(kind(s.rename(&key("d"), &key("e")).await), ErrorKind::AlreadyExists);
        assert_eq!(kind(s.rename(&key("d/inner/a2"), &key("e")).await), ErrorKind::AlreadyExists);
        assert_eq!(kind(s.rename(&key("e"), &key("d/inner/a2")).await), ErrorKind::AlreadyExists);
        assert_eq!(kind(s.rename(&key("nope"), &key("x")).await), ErrorKind::NotFound);
        assert_eq!(kind(s.rename(&key("e"), &key("nope/e")).await), ErrorKind::NotFound);
        assert_eq!(kind(s.rename(&key(""), &key("x")).await), ErrorKind::Denied);

        s.rename(&key("d"), &key("e/d2")).await.unwrap();
        s.rename(&key("e"), &key("dd")).await.unwrap();
        assert_eq!(read(&s, "dd/d2/inner/a2", 0).await.unwrap().1, b"bb");
        assert_eq!(on_disk(&s.root), ["dd"]);
    }
}

#[tokio::test]
async fn make_and_remove_directories() {
    let (_dir, s) = storage(true);
    s.make_dir(&key("d")).await.unwrap();
    assert_eq!(kind(s.make_dir(&key("d")).await), ErrorKind::AlreadyExists);
    assert_eq!(kind(s.make_dir(&key("")).await), ErrorKind::AlreadyExists);
    assert_eq!(kind(s.make_dir(&key("nope/d")).await), ErrorKind::NotFound);
    put(&s, "d/f", WriteMode::Create, b"x").await.unwrap();
    assert_eq!(kind(s.make_dir(&key("d/f")).await), ErrorKind::AlreadyExists);

    assert_eq!(kind(s.remove_dir(&key("d")).await), ErrorKind::NotEmpty);
    assert_eq!(kind(s.remove_dir(&key("d/f")).await), ErrorKind::NotADirectory);
    assert_eq!(kind(s.remove_dir(&key("nope")).await), ErrorKind::NotFound);
    assert_eq!(kind(s.remove_dir(&key("")).await), ErrorKind::Denied);
    s.delete(&key("d/f")).await.unwrap();

    // A crash left an upload behind: the directory still counts as empty.
    fs::write(s.root.join("d/.wharf-upload-00ff"), b"partial").unwrap();
    s.remove_dir(&key("d")).await.unwrap();

    // Other hidden names are not leftovers of ours to delete.
    s.make_dir(&key("d")).await.unwrap();
    fs::write(s.root.join("d/.wharf-other"), b"x").unwrap();
    fs::write(s.root.join("d/.wharf-upload-1"), b"x").unwrap();
    assert_eq!(kind(s.remove_dir(&key("d")).await), ErrorKind::NotEmpty);
    assert_eq!(on_disk(&s.root.join("d")), [".wharf-other", ".wharf-upload-1"]);
    assert_eq!(on_disk(&s.root), ["d"]);
}

#[tokio::test]
async fn modification_time_is_set_and_read_back() {
    let (_dir, s) = storage(false);
    put(&s, "f", WriteMode::Create, b"x").await.unwrap();
    s.make_dir(&key("d")).await.unwrap();
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for k in ["f", "d"] {
        s.set_modified(&key(k), time).await.unwrap();
        assert_eq!(s.stat(&key(k)).await.unwrap().modified, Some(time), "{k}");
    }
    let listed: Vec<_> = s.list(&key("")).await.unwrap().map_ok(|e| e.meta.modified).try_collect().await.unwrap();
    assert_eq!(listed, [Some(time), Some(time)]);
    assert_eq!(kind(s.set_modified(&key("nope"), time).await), ErrorKind::NotFound);
}

#[tokio::test]
async fn provider_gives_each_tenant_its_own_folder() {
    let dir = tempfile::tempdir().unwrap();
    let provider = FsProvider::new(dir.path().join("data"), false).unwrap();
    let tenant = |name: &str| StorageOwner { tenant_id: 1, tenant_name: name.to_owned(), settings: Default::default() };
    let acme = provider.open(&tenant("acme-1"), 1).await.unwrap();
    acme.make_dir(&key("in")).await.unwrap();
    assert!(dir.path().join("data/acme-1/in").is_dir());
    provider.ready().await.unwrap();
    for bad in ["", "..", "a/b", "Acme", ".wharf"] {
        assert_eq!(kind(provider.open(&tenant(bad), 1).await), ErrorKind::Denied, "{bad:?}");
    }
}

#[test]
fn io_errors_map_to_kinds() {
    let cases = [
        (io::Error::from(io::ErrorKind::NotFound), ErrorKind::NotFound),
        (io::Error::from(io::ErrorKind::PermissionDenied), ErrorKind::Denied),
        (io::Error::from(io::ErrorKind::AlreadyExists), ErrorKind::AlreadyExists),
        (io::Error::from_raw_os_error(2), ErrorKind::NotFound),
        (io::Error::from_raw_os_error(13), ErrorKind::Denied),
        (io::Error::from_raw_os_error(1), ErrorKind::Denied),
        (io::Error::from_raw_os_error(17), ErrorKind::AlreadyExists),
        (io::Error::from_raw_os_error(20), ErrorKind::NotADirectory),
        (io::Error::from_raw_os_error(21), ErrorKind::IsADirectory),
        (io::Error::from_raw_os_error(28), ErrorKind::QuotaExceeded),
        (io::Error::from_raw_os_error(30), ErrorKind::Denied),
        (io::Error::from_raw_os_error(39), ErrorKind::NotEmpty),
        (io::Error::from_raw_os_error(122), ErrorKind::QuotaExceeded),
        (io::Error::from_raw_os_error(5), ErrorKind::Internal),
        (io::Error::other("odd"), ErrorKind::Internal),
    ];
    for (error, want) in cases {
        assert_eq!(io_kind(&error), want, "{error}");
    }
    let error = io_error(io::Error::from_raw_os_error(28));
    assert_eq!(error.kind(), ErrorKind::QuotaExceeded);
    assert!(std::error::Error::source(&error).is_some());
}
