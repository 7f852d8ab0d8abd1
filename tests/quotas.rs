//! Quotas per tenant and per user (bytes and files): 552 before any data when ALLO announced too much, 552
//! and nothing stored when an upload crosses the quota, DELE freeing room, usage exact under concurrent
//! uploads on two instances, and `usage recompute` repairing a count changed behind wharf's back.

use std::sync::Arc;

use chrono::Utc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wharf::directory::{Account, Quota, Usage};
use wharf::storage::fs::FsProvider;
use wharf::storage::StorageProvider;

use crate::support::postgres::Database;
use crate::support::raw::{Ftp, Reply};
use crate::support::{bytes, Wharf, PASSWORD};

async fn tenant_quota(wharf: &Wharf, max_bytes: Option<i64>, max_files: Option<i64>) {
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    wharf.directory.set_tenant_quota(acme.id, &Quota { max_bytes, max_files }).await.unwrap();
}

async fn tenant_account(wharf: &Wharf) -> Account {
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    wharf.directory.tenant_account(acme.id, Utc::now()).await.unwrap()
}

async fn user_account(wharf: &Wharf, user: &str) -> Account {
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    let record = wharf.directory.login_record(acme.id, user).await.unwrap().unwrap();
    wharf.directory.user_account(record.user.id, Utc::now()).await.unwrap()
}

/// STOR (or `verb`) that keeps going when the server stops the transfer early: the final reply.
async fn upload(ftp: &mut Ftp, verb: &str, path: &str, data: &[u8]) -> Reply {
    let tcp = ftp.epsv().await;
    let opening = ftp.cmd(&format!("{verb} {path}")).await;
    if opening.code != 150 {
        return opening;
    }
    if let Ok(mut tls) = ftp.secure(tcp).await {
        let sent = async {
            tls.write_all(data).await?;
            tls.shutdown().await?;
            let mut rest = Vec::new();
            tls.read_to_end(&mut rest).await
        };
        let _ = sent.await;
    }
    ftp.reply().await
}

fn usage(bytes: usize, files: i64) -> Usage {
    Usage { bytes: bytes as i64, files }
}

#[tokio::test]
async fn allo_over_the_quota_is_refused_with_552_before_any_data() {
    let wharf = Wharf::start().await;
    tenant_quota(&wharf, Some(1000), None).await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("ALLO 2000").await.code, 200);
    let _data = ftp.epsv().await;
    let refused = ftp.cmd("STOR big.bin").await;
    assert_eq!((refused.code, refused.text.as_str()), (552, "552 Storage quota exceeded"));
    // The size was for that upload only; a small one still fits.
    assert_eq!(upload(&mut ftp, "STOR", "small.bin", &bytes(600, 1)).await.code, 226);
    assert_eq!(ftp.cmd("ALLO 600").await.code, 200);
    assert_eq!(upload(&mut ftp, "APPE", "small.bin", &bytes(600, 2)).await.code, 552);
    assert_eq!(wharf.read_file("small.bin").await, bytes(600, 1));
    assert!(!wharf.exists("big.bin").await);
    let account = tenant_account(&wharf).await;
    assert_eq!((account.used, account.reserved), (usage(600, 1), Usage::default()));
}

#[tokio::test]
async fn an_upload_crossing_the_quota_is_stopped_with_552_and_nothing_is_stored() {
    let wharf = Wharf::start().await;
    tenant_quota(&wharf, Some(3 << 20), None).await;
    let mut ftp = wharf.login().await;
    assert_eq!(upload(&mut ftp, "STOR", "first.bin", &bytes(1 << 20, 1)).await.code, 226);
    let crossing = upload(&mut ftp, "STOR", "second.bin", &bytes(5 << 20, 2)).await;
    assert_eq!(crossing.code, 552, "{crossing:?}");
    assert!(!wharf.exists("second.bin").await);
    let account = tenant_account(&wharf).await;
    assert_eq!((account.used, account.reserved), (usage(1 << 20, 1), Usage::default()), "usage unchanged");
    // The room it held is free again.
    assert_eq!(upload(&mut ftp, "STOR", "third.bin", &bytes(2 << 20, 3)).await.code, 226);
    assert_eq!(tenant_account(&wharf).await.used, usage(3 << 20, 2));
}

#[tokio::test]
async fn dele_and_overwrites_free_room_and_the_file_count_is_a_quota_too() {
    let wharf = Wharf::start().await;
    tenant_quota(&wharf, Some(1000), Some(2)).await;
    let mut ftp = wharf.login().await;
    assert_eq!(upload(&mut ftp, "STOR", "a.bin", &bytes(800, 1)).await.code, 226);
    assert_eq!(upload(&mut ftp, "STOR", "b.bin", &bytes(800, 2)).await.code, 552);
    assert_eq!(ftp.cmd("DELE a.bin").await.code, 250);
    assert_eq!(tenant_account(&wharf).await.used, Usage::default());
    assert_eq!(upload(&mut ftp, "STOR", "b.bin", &bytes(800, 2)).await.code, 226);
    // Replacing a file counts the difference, not a new file.
    assert_eq!(upload(&mut ftp, "STOR", "b.bin", &bytes(100, 3)).await.code, 226);
    assert_eq!(tenant_account(&wharf).await.used, usage(100, 1));
    assert_eq!(upload(&mut ftp, "STOR", "c.bin", &bytes(10, 4)).await.code, 226);
    assert_eq!(upload(&mut ftp, "STOR", "d.bin", &bytes(10, 5)).await.code, 552, "two files at most");
    assert_eq!(tenant_account(&wharf).await.used, usage(110, 2));
    assert_eq!(user_account(&wharf, "alice").await.used, usage(110, 2));
}

// The servers on worker threads of their own, as in `wharf serve`: on the test's one thread, a reservation
// holding the tenant's row lock waits for every other session's turn before it can commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_uploads_on_two_instances_end_with_usage_exact_and_never_over() {
    const MAX: usize = 4 << 20;
    const FILE: usize = 100 << 10;
    let db = Database::create().await;
    let a = Arc::new(Wharf::start_with(|c| c.database_url = Some(db.url.clone())).await);
    let b = Arc::new(Wharf::start_with(|c| c.database_url = Some(db.url.clone())).await);
    tenant_quota(&a, Some(MAX as i64), None).await;
    let mut ftp = a.login().await;
    // Nearly full: room for ten of the twenty.
    assert_eq!(upload(&mut ftp, "STOR", "full.bin", &bytes(MAX - 10 * FILE, 0)).await.code, 226);

    let uploads: Vec<_> = (0..20)
        .map(|i| {
            let wharf = if i % 2 == 0 { a.clone() } else { b.clone() };
            async move {
                let mut ftp = wharf.login().await;
                // Half announce their size; the others reserve as their bytes arrive.
                if i % 4 < 2 {
                    assert_eq!(ftp.cmd(&format!("ALLO {FILE}")).await.code, 200);
                }
                let reply = upload(&mut ftp, "STOR", &format!("f{i:02}.bin"), &bytes(FILE, i)).await;
                let account = tenant_account(&wharf).await;
                assert!(account.used.bytes <= MAX as i64, "over the quota: {account:?}");
                reply
            }
        })
        .collect();
    // On one task (the raw client's TLS is not `Sync`), but twenty sessions at once on the servers.
    let mut stored = 0;
    for reply in futures_util::future::join_all(uploads).await {
        match reply.code {
            226 => stored += 1,
            552 => {}
            _ => panic!("unexpected reply {reply:?}"),
        }
    }
    assert!((1..=10).contains(&stored), "{stored} uploads stored");
    eprintln!("{stored} of 20 concurrent uploads stored");

    // Usage equals what the two instances' storage holds.
    let mut on_storage = usage(0, 0);
    for wharf in [&a, &b] {
        for name in wharf.files_on_disk("acme").await {
            let data = wharf.stored(&name).await.unwrap_or_else(|| panic!("{name} is not a finished file"));
            on_storage.bytes += data.len() as i64;
            on_storage.files += 1;
        }
    }
    let account = tenant_account(&a).await;
    assert_eq!(on_storage, usage(MAX - 10 * FILE + stored * FILE, 1 + stored as i64));
    assert_eq!((account.used, account.reserved), (on_storage, Usage::default()));
    assert_eq!(user_account(&a, "alice").await.used, on_storage);
    drop(ftp);
    for wharf in [a, b] {
        Arc::into_inner(wharf).expect("sessions ended").stop().await;
    }
    db.drop().await;
}

#[tokio::test]
async fn a_user_quota_holds_independently_of_the_tenants() {
    let wharf = Wharf::start().await;
    wharf.add_user("acme", "bob", PASSWORD).await;
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    let small = Quota { max_bytes: Some(1000), max_files: None };
    wharf.directory.set_user_quota(acme.id, "alice", &small).await.unwrap();
    let mut alice = wharf.login().await;
    let mut bob = Ftp::login(wharf.explicit, "bob@acme", PASSWORD).await;
    assert_eq!(upload(&mut alice, "STOR", "alice.bin", &bytes(2000, 1)).await.code, 552);
    assert_eq!(upload(&mut bob, "STOR", "bob.bin", &bytes(2000, 2)).await.code, 226, "the tenant is unlimited");
    assert_eq!(upload(&mut alice, "STOR", "alice.bin", &bytes(900, 3)).await.code, 226);
    assert_eq!(user_account(&wharf, "alice").await.used, usage(900, 1));
    assert_eq!(user_account(&wharf, "bob").await.used, usage(2000, 1));
    assert_eq!(tenant_account(&wharf).await.used, usage(2900, 2));
    // And the tenant's quota binds a user whose own is larger: at once for a new session (a running one
    // reads whether any quota applies every 15 s).
    tenant_quota(&wharf, Some(3000), None).await;
    let mut bob = Ftp::login(wharf.explicit, "bob@acme", PASSWORD).await;
    assert_eq!(upload(&mut bob, "STOR", "more.bin", &bytes(200, 4)).await.code, 552);
}

#[tokio::test]
async fn usage_recompute_repairs_a_count_changed_behind_wharfs_back() {
    let wharf = Wharf::start().await;
    wharf.add_user_with_home("acme", "bob", PASSWORD, "/in").await;
    let mut ftp = wharf.login().await;
    assert_eq!(upload(&mut ftp, "STOR", "up.bin", &bytes(500, 1)).await.code, 226);
    wharf.put_file("in/dropped.bin", &bytes(300, 2)).await;
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    wharf.directory.set_usage(acme.id, None, Usage { bytes: 123_456, files: 42 }).await.unwrap();

    let fs;
    let provider: &dyn StorageProvider = match &wharf.server_s3 {
        Some(s3) => &**s3,
        None => {
            fs = FsProvider::new(wharf.config.fs_root(), false).unwrap();
            &fs
        }
    };
    let found = wharf::usage::recompute(&*wharf.directory, provider, &acme).await.unwrap();
    assert_eq!(found.tenant, usage(800, 2));
    assert_eq!(tenant_account(&wharf).await.used, usage(800, 2));
    assert_eq!(user_account(&wharf, "alice").await.used, usage(800, 2), "alice's home is the root");
    assert_eq!(user_account(&wharf, "bob").await.used, usage(300, 1), "bob's home is /in");
}
