//! The directory's behaviour, proved on every backend: each test runs once on SQLite (`tests::sqlite::…`)
//! and once on Postgres (`tests::postgres::…`). A Postgres test gets a database of its own on the server
//! named by `DATABASE_URL` (default: the local one, see [`postgres_server_url`]) and fails, rather than
//! skips, when that server is unreachable.

use std::ops::Deref;

use sqlx::Connection;

use super::*;

/// Runs each named `async fn(&Fresh)` once per backend, each on a fresh database.
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let fresh = super::Fresh::sqlite().await;
                    super::$test(&fresh).await;
                    fresh.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let fresh = super::Fresh::postgres().await;
                    super::$test(&fresh).await;
                    fresh.finish().await;
                }
            )*
        }
    };
}

on_every_backend!(
    tenants_are_created_listed_and_found_by_name,
    duplicate_or_invalid_tenant_names_are_refused,
    hostnames_are_looked_up_case_insensitively,
    users_are_created_and_listed_per_tenant,
    names_are_listed_in_byte_order,
    duplicate_invalid_or_orphan_users_are_refused,
    homes_are_normalised_or_refused,
    set_password_replaces_the_hash,
    login_record_joins_user_and_tenant,
    record_login_stamps_the_time_and_stores_a_rehash,
    delete_user_removes_only_that_user,
    deleting_a_tenant_cascades_to_its_users_and_hostnames,
    tenants_and_users_are_disabled_and_enabled,
    a_second_instance_sees_the_same_data,
    tenant_storage_is_stored_validated_and_found_everywhere,
    open_uploads_are_leased_parked_taken_once_and_expire,
    object_digests_are_recorded_replaced_and_forgotten,
    users_may_do_everything_from_anywhere_until_told_otherwise,
    permissions_and_path_rules_are_stored_and_found_at_login,
    invalid_path_rules_are_refused_naming_the_rule,
    allowed_networks_are_stored_per_user_and_tenant,
    access_settings_of_missing_users_or_tenants_are_not_found,
    tenant_tls_policy_is_stored_found_at_login_and_reset,
    passive_claims_are_held_by_one_instance_until_released_or_expired,
);

/// Failed-login counters and bans, on every backend too.
#[path = "login_failures_tests.rs"]
mod login_failures;

/// Quotas, usage and reservations, on every backend too.
#[path = "quota_tests.rs"]
mod quota;

/// What the admin API keeps (tokens, audit log, certificates, live sessions), on every backend too.
#[path = "admin_tests.rs"]
mod admin;

/// A directory opened through [`open`] on a database of its own; derefs to the directory.
struct Fresh {
    dir: Arc<dyn Directory>,
    url: String,
    database: Database,
}

enum Database {
    /// The file lives in this temp dir, removed with it.
    Sqlite { _tmp: tempfile::TempDir },
    /// A database created on the test server, dropped by [`Fresh::finish`].
    Postgres(String),
}

impl Deref for Fresh {
    type Target = dyn Directory;

    fn deref(&self) -> &Self::Target {
        &*self.dir
    }
}

impl Fresh {
    async fn sqlite() -> Fresh {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", tmp.path().join("wharf.db").display());
        let dir = open(&url).await.unwrap();
        Fresh { dir, url, database: Database::Sqlite { _tmp: tmp } }
    }

    async fn postgres() -> Fresh {
        let (url, name) = create_postgres_database().await;
        let dir = open(&url).await.unwrap_or_else(|e| panic!("opening the Postgres directory {name}: {e:?}"));
        Fresh { dir, url, database: Database::Postgres(name) }
    }

    /// Another directory on the same database, as a second instance (or a restart) opens it.
    async fn reopen(&self) -> Arc<dyn Directory> {
        open(&self.url).await.unwrap()
    }

    /// Drops a Postgres test database once its test passed (a failed test leaves it for inspection).
    async fn finish(self) {
        let Fresh { dir, database, .. } = self;
        drop(dir);
        if let Database::Postgres(name) = database {
            drop_postgres_database(&name).await;
        }
    }
}

/// The Postgres server the tests create their databases on: `DATABASE_URL`, or the local one.
pub(super) fn postgres_server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Creates an empty database `wharf_test_<random hex>` on the test server; returns its URL and name.
/// Panics, naming the server, when it cannot be reached: Postgres tests fail rather than skip.
pub(super) async fn create_postgres_database() -> (String, String) {
    let server = postgres_server_url();
    let name = format!("wharf_test_{:016x}", rand::random::<u64>());
    let mut admin = sqlx::PgConnection::connect(&server).await.unwrap_or_else(|e| {
        panic!("Postgres at {} (DATABASE_URL) is unreachable: {e}", crate::config::redact_url(&server))
    });
    sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();
    (url_with_database(&server, &name), name)
}

pub(super) async fn drop_postgres_database(name: &str) {
    let mut admin = sqlx::PgConnection::connect(&postgres_server_url()).await.unwrap();
    sqlx::raw_sql(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();
}

/// `postgres://user@host:port/db?params` with `db` replaced by `database`.
fn url_with_database(url: &str, database: &str) -> String {
    let (base, params) = url.split_once('?').map_or((url, ""), |(base, params)| (base, params));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let server = base[authority..].find('/').map_or(base, |slash| &base[..authority + slash]);
    if params.is_empty() {
        format!("{server}/{database}")
    } else {
        format!("{server}/{database}?{params}")
    }
}

#[test]
fn test_database_urls_keep_server_and_parameters() {
    for (url, expected) in [
        ("postgres://postgres@127.0.0.1:5432/postgres", "postgres://postgres@127.0.0.1:5432/t"),
        ("postgresql://u:p@db", "postgresql://u:p@db/t"),
        ("postgres://u@db/x?sslmode=require", "postgres://u@db/t?sslmode=require"),
    ] {
        assert_eq!(url_with_database(url, "t"), expected, "{url}");
    }
}

fn new_user(username: &str, home: &str) -> NewUser {
    NewUser { username: username.to_owned(), password_hash: format!("hash-of-{username}"), home: home.to_owned() }
}

async fn tenants_are_created_listed_and_found_by_name(dir: &Fresh) {
    let beta = dir.create_tenant("beta").await.unwrap();
    let acme = dir.create_tenant("acme").await.unwrap();
    assert!(acme.enabled);
    assert_ne!(acme.id, beta.id);
    assert_eq!(dir.tenant_by_name("acme").await.unwrap(), Some(acme.clone()));
    assert_eq!(dir.tenant_by_name("nope").await.unwrap(), None);
    assert_eq!(dir.list_tenants().await.unwrap(), vec![acme, beta]);
}

async fn duplicate_or_invalid_tenant_names_are_refused(dir: &Fresh) {
    dir.create_tenant("acme").await.unwrap();
    assert!(matches!(dir.create_tenant("acme").await, Err(DirectoryError::Conflict("tenant"))));
    for bad in ["", "Acme", "-acme", "ac me", "acme@x"] {
        assert!(matches!(dir.create_tenant(bad).await, Err(DirectoryError::Invalid(_))), "{bad:?}");
    }
}

async fn hostnames_are_looked_up_case_insensitively(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    dir.add_hostname(acme.id, "FTP.Acme.example").await.unwrap();
    dir.add_hostname(acme.id, "files.acme.example.").await.unwrap();
    assert_eq!(dir.hostnames(acme.id).await.unwrap(), ["files.acme.example", "ftp.acme.example"]);
    assert_eq!(dir.tenant_by_hostname("ftp.ACME.example").await.unwrap(), Some(acme.clone()));
    assert_eq!(dir.tenant_by_hostname("files.acme.example").await.unwrap(), Some(acme.clone()));
    assert_eq!(dir.tenant_by_hostname("other.example").await.unwrap(), None);

    let other = dir.create_tenant("other").await.unwrap();
    assert!(matches!(dir.add_hostname(other.id, "ftp.acme.EXAMPLE").await, Err(DirectoryError::Conflict("hostname"))));
    assert!(matches!(dir.add_hostname(999, "x.example").await, Err(DirectoryError::NotFound)));
    assert!(matches!(dir.add_hostname(acme.id, "bad host").await, Err(DirectoryError::Invalid(_))));
}

async fn users_are_created_and_listed_per_tenant(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let beta = dir.create_tenant("beta").await.unwrap();
    let bob = dir.create_user(acme.id, new_user("bob", "/")).await.unwrap();
    let alice = dir.create_user(acme.id, new_user("alice", "/in")).await.unwrap();
    let carol = dir.create_user(beta.id, new_user("carol", "/")).await.unwrap();
    assert_eq!((alice.tenant_id, alice.home.as_str(), alice.enabled), (acme.id, "/in", true));
    assert_eq!(alice.last_login_at, None);
    assert_eq!(dir.list_users(Some(acme.id)).await.unwrap(), vec![alice.clone(), bob.clone()]);
    assert_eq!(dir.list_users(None).await.unwrap(), vec![alice, bob, carol]);
}

/// Postgres would sort by the database's locale (where `a-c` follows `ab`); the schema asks for bytes,
/// which is what SQLite does.
async fn names_are_listed_in_byte_order(dir: &Fresh) {
    let hyphen = dir.create_tenant("a-c").await.unwrap();
    let plain = dir.create_tenant("ab").await.unwrap();
    let names = |tenants: Vec<Tenant>| tenants.into_iter().map(|t| t.name).collect::<Vec<_>>();
    assert_eq!(names(dir.list_tenants().await.unwrap()), ["a-c", "ab"]);
    for username in ["bob", "alice", "_x", "Bob"] {
        dir.create_user(plain.id, new_user(username, "/")).await.unwrap();
    }
    let users = dir.list_users(Some(plain.id)).await.unwrap();
    assert_eq!(users.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), ["Bob", "_x", "alice", "bob"]);
    dir.add_hostname(hyphen.id, "b.example").await.unwrap();
    dir.add_hostname(hyphen.id, "a-c.example").await.unwrap();
    dir.add_hostname(hyphen.id, "ab.example").await.unwrap();
    assert_eq!(dir.hostnames(hyphen.id).await.unwrap(), ["a-c.example", "ab.example", "b.example"]);
}

async fn a_second_instance_sees_the_same_data(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    // Opening again runs the migrations again, which must change nothing.
    let second = dir.reopen().await;
    assert_eq!(second.tenant_by_name("acme").await.unwrap(), Some(acme.clone()));
    second.create_user(acme.id, new_user("alice", "/")).await.unwrap();
    assert!(dir.login_record(acme.id, "alice").await.unwrap().is_some());
}

async fn duplicate_invalid_or_orphan_users_are_refused(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let beta = dir.create_tenant("beta").await.unwrap();
    dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
    assert!(matches!(dir.create_user(acme.id, new_user("alice", "/")).await, Err(DirectoryError::Conflict("user"))));
    // The same name in another tenant is a different user.
    dir.create_user(beta.id, new_user("alice", "/")).await.unwrap();
    for bad in ["", "a@b", "a b", "tab\t"] {
        assert!(matches!(dir.create_user(acme.id, new_user(bad, "/")).await, Err(DirectoryError::Invalid(_))));
    }
    assert!(matches!(dir.create_user(999, new_user("zed", "/")).await, Err(DirectoryError::NotFound)));
}

async fn homes_are_normalised_or_refused(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let u = dir.create_user(acme.id, new_user("alice", "//in//box/")).await.unwrap();
    assert_eq!(u.home, "/in/box");

    for (input, expected) in [("/", "/"), ("///", "/"), ("/a/b/", "/a/b"), ("/a b/ü", "/a b/ü")] {
        assert_eq!(normalize_home(input).unwrap(), expected, "{input:?}");
    }
    let long = format!("/{}", "x".repeat(256));
    for bad in ["", "in", "/a/../b", "/./a", "/a/..", "/a\nb", "/a\0", "/in\\box", &long] {
        assert!(matches!(normalize_home(bad), Err(DirectoryError::Invalid(_))), "{bad:?}");
    }
    assert!(matches!(dir.create_user(acme.id, new_user("bob", "../etc")).await, Err(DirectoryError::Invalid(_))));
}

async fn set_password_replaces_the_hash(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
    dir.set_password(acme.id, "alice", "new-hash").await.unwrap();
    let record = dir.login_record(acme.id, "alice").await.unwrap().unwrap();
    assert_eq!(record.password_hash, "new-hash");
    assert!(matches!(dir.set_password(acme.id, "nobody", "h").await, Err(DirectoryError::NotFound)));
}

async fn login_record_joins_user_and_tenant(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let beta = dir.create_tenant("beta").await.unwrap();
    let alice = dir.create_user(acme.id, new_user("alice", "/in")).await.unwrap();
    let record = dir.login_record(acme.id, "alice").await.unwrap().unwrap();
    assert_eq!(record.tenant, acme);
    assert_eq!(record.user, alice);
    assert_eq!(record.password_hash, "hash-of-alice");
    assert!(dir.login_record(beta.id, "alice").await.unwrap().is_none());
    assert!(dir.login_record(acme.id, "bob").await.unwrap().is_none());
}

async fn record_login_stamps_the_time_and_stores_a_rehash(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let alice = dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();

    let before = Utc::now() - chrono::Duration::seconds(1);
    dir.record_login(alice.id, None).await.unwrap();
    let record = dir.login_record(acme.id, "alice").await.unwrap().unwrap();
    assert!(record.user.last_login_at.unwrap() >= before);
    assert_eq!(record.password_hash, "hash-of-alice");

    dir.record_login(alice.id, Some("rehashed")).await.unwrap();
    assert_eq!(dir.login_record(acme.id, "alice").await.unwrap().unwrap().password_hash, "rehashed");
    assert!(matches!(dir.record_login(999, None).await, Err(DirectoryError::NotFound)));
}

async fn delete_user_removes_only_that_user(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
    let bob = dir.create_user(acme.id, new_user("bob", "/")).await.unwrap();
    dir.delete_user(acme.id, "alice").await.unwrap();
    assert_eq!(dir.list_users(None).await.unwrap(), vec![bob]);
    assert!(matches!(dir.delete_user(acme.id, "alice").await, Err(DirectoryError::NotFound)));
}

async fn deleting_a_tenant_cascades_to_its_users_and_hostnames(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let beta = dir.create_tenant("beta").await.unwrap();
    dir.add_hostname(acme.id, "ftp.acme.example").await.unwrap();
    dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
    let carol = dir.create_user(beta.id, new_user("carol", "/")).await.unwrap();

    let minute = chrono::TimeDelta::seconds(60);
    let policy = FailurePolicy { window: minute, ban_after: Some(1), ban: minute, max_ban: minute };
    dir.record_login_failure(&crate::directory::login_failures::user_scope(acme.id, "alice"), &policy, Utc::now())
        .await
        .unwrap();
    dir.record_login_failure(&crate::directory::login_failures::user_scope(beta.id, "carol"), &policy, Utc::now())
        .await
        .unwrap();

    dir.delete_tenant(acme.id).await.unwrap();
    assert_eq!(dir.list_users(None).await.unwrap(), vec![carol]);
    assert!(dir.hostnames(acme.id).await.unwrap().is_empty());
    assert_eq!(dir.tenant_by_hostname("ftp.acme.example").await.unwrap(), None);
    let left: Vec<String> = dir.active_bans(Utc::now()).await.unwrap().into_iter().map(|b| b.scope).collect();
    assert_eq!(
        left,
        [crate::directory::login_failures::user_scope(beta.id, "carol")],
        "the deleted tenant's counters went with it"
    );
    assert!(matches!(dir.delete_tenant(acme.id).await, Err(DirectoryError::NotFound)));
}

async fn tenants_and_users_are_disabled_and_enabled(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
    dir.set_tenant_enabled(acme.id, false).await.unwrap();
    dir.set_user_enabled(acme.id, "alice", false).await.unwrap();
    let record = dir.login_record(acme.id, "alice").await.unwrap().unwrap();
    assert!(!record.tenant.enabled && !record.user.enabled);
    dir.set_tenant_enabled(acme.id, true).await.unwrap();
    dir.set_user_enabled(acme.id, "alice", true).await.unwrap();
    let record = dir.login_record(acme.id, "alice").await.unwrap().unwrap();
    assert!(record.tenant.enabled && record.user.enabled);
    assert!(matches!(dir.set_user_enabled(acme.id, "nobody", false).await, Err(DirectoryError::NotFound)));
    assert!(matches!(dir.set_tenant_enabled(acme.id + 100, false).await, Err(DirectoryError::NotFound)));
}

async fn tenant_storage_is_stored_validated_and_found_everywhere(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    assert_eq!(acme.storage, TenantStorage::default());
    let own = TenantStorage {
        bucket: Some("acme-files".into()),
        prefix: Some("/in//".into()),
        endpoint: Some("https://s3.example".into()),
        region: Some("eu-west-1".into()),
        path_style: Some(true),
        access_key_id: Some("AKID".into()),
        secret_ref: Some("env:ACME_SECRET".into()),
    };
    assert!(matches!(dir.set_tenant_storage(acme.id, &own).await, Err(DirectoryError::Invalid(_))), "leading /");
    let own = TenantStorage { prefix: Some("in//".into()), ..own };
    assert!(matches!(dir.set_tenant_storage(acme.id, &own).await, Err(DirectoryError::Invalid(_))), "double /");
    let own = TenantStorage { prefix: Some("in/box".into()), ..own };
    dir.set_tenant_storage(acme.id, &own).await.unwrap();
    let stored = dir.tenant_by_id(acme.id).await.unwrap().unwrap().storage;
    assert_eq!(stored, TenantStorage { prefix: Some("in/box/".into()), ..own.clone() });
    dir.add_hostname(acme.id, "ftp.acme.example").await.unwrap();
    assert_eq!(dir.tenant_by_hostname("ftp.acme.example").await.unwrap().unwrap().storage, stored);
    assert_eq!(dir.tenant_by_name("acme").await.unwrap().unwrap().storage, stored);
    let hash = "hash".to_owned();
    let user = dir.create_user(acme.id, NewUser { username: "u".into(), password_hash: hash, home: "/".into() });
    user.await.unwrap();
    assert_eq!(dir.login_record(acme.id, "u").await.unwrap().unwrap().tenant.storage, stored);

    for bad in [
        TenantStorage { bucket: Some("UPPER".into()), ..Default::default() },
        TenantStorage { prefix: Some("/".into()), ..Default::default() },
        TenantStorage { endpoint: Some("s3.example".into()), ..Default::default() },
        TenantStorage { access_key_id: Some("AK".into()), ..Default::default() },
        TenantStorage { access_key_id: Some("AK".into()), secret_ref: Some("hunter2".into()), ..Default::default() },
    ] {
        assert!(matches!(dir.set_tenant_storage(acme.id, &bad).await, Err(DirectoryError::Invalid(_))), "{bad:?}");
    }
}

async fn open_uploads_are_leased_parked_taken_once_and_expire(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    // Stored with microseconds.
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    let upload = |id: &str, resumable: bool, expires_in: i64| ParkedUpload {
        location: "aws/bucket".into(),
        key: "acme/f.bin".into(),
        tenant_id: acme.id,
        user_id: 7,
        upload_id: id.into(),
        resumable,
        state: "{}".into(),
        parked_at: now,
        expires_at: now + chrono::TimeDelta::seconds(expires_in),
    };
    let resumable = |user_id: i64| dir.resumable_upload("aws/bucket", "acme/f.bin", user_id, now);
    dir.save_upload(&upload("running", false, 3600)).await.unwrap();
    assert_eq!(resumable(7).await.unwrap(), None, "a lease is not resumable");
    dir.save_upload(&upload("parked", true, 60)).await.unwrap();
    assert_eq!(resumable(7).await.unwrap(), Some(upload("parked", true, 60)));
    assert_eq!(resumable(8).await.unwrap(), None, "only its own user's");
    assert_eq!(dir.resumable_uploads("other/bucket", "acme/f.bin").await.unwrap(), vec![]);
    // A later parked upload of another user does not hide this one.
    dir.save_upload(&ParkedUpload { user_id: 8, upload_id: "bobs".into(), ..upload("x", true, 60) }).await.unwrap();
    assert_eq!(resumable(7).await.unwrap().map(|u| u.upload_id), Some("parked".into()));
    let later = now + chrono::TimeDelta::seconds(61);
    let expired = dir.resumable_upload("aws/bucket", "acme/f.bin", 7, later).await.unwrap();
    assert_eq!(expired, None, "an expired one is not continued, even before the sweeper came");
    assert!(dir.remove_upload("aws/bucket", "acme/f.bin", "bobs").await.unwrap());

    assert!(dir.remove_upload("aws/bucket", "acme/f.bin", "parked").await.unwrap());
    assert!(!dir.remove_upload("aws/bucket", "acme/f.bin", "parked").await.unwrap(), "taken only once");

    dir.save_upload(&upload("stale", true, -5)).await.unwrap();
    let expired = dir.expired_uploads(now, 10).await.unwrap();
    assert_eq!(expired.iter().map(|u| u.upload_id.as_str()).collect::<Vec<_>>(), ["stale"]);
}

async fn object_digests_are_recorded_replaced_and_forgotten(dir: &Fresh) {
    assert_eq!(dir.digest("aws/b", "k").await.unwrap(), None);
    dir.record_digest("aws/b", "k", "\"e1\"", "d1").await.unwrap();
    dir.record_digest("aws/b", "k", "\"e2\"", "d2").await.unwrap();
    assert_eq!(dir.digest("aws/b", "k").await.unwrap(), Some(("\"e2\"".into(), "d2".into())));
    dir.forget_digest("aws/b", "k").await.unwrap();
    assert_eq!(dir.digest("aws/b", "k").await.unwrap(), None);
}

fn permissions(text: &str) -> crate::access::Permissions {
    text.parse().unwrap()
}

fn networks(text: &str) -> crate::access::Networks {
    text.parse().unwrap()
}

async fn users_may_do_everything_from_anywhere_until_told_otherwise(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let alice = dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
    assert_eq!(alice.access, crate::access::Access::default());
    assert!(alice.allowed_networks.is_anywhere() && acme.allowed_networks.is_anywhere());
    assert_eq!(dir.login_record(acme.id, "alice").await.unwrap().unwrap().user.access.to_string(), "all");
}

async fn permissions_and_path_rules_are_stored_and_found_at_login(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
    dir.create_user(acme.id, new_user("bob", "/")).await.unwrap();
    dir.set_permissions(acme.id, "alice", permissions("list,read")).await.unwrap();
    let rules = [("//in/".to_owned(), permissions("list,read,write")), ("/in/old".to_owned(), permissions("none"))];
    dir.set_path_permissions(acme.id, "alice", &rules).await.unwrap();

    let record = dir.login_record(acme.id, "alice").await.unwrap().unwrap();
    assert_eq!(record.user.access.to_string(), "list,read; /in=list,read,write; /in/old=none");
    let at = |p: &str| record.user.access.at(&crate::vfs::VirtualPath::root().resolve(p).unwrap()).to_string();
    assert_eq!((at("/a"), at("/in/b"), at("/in/old/c")), ("list,read".into(), "list,read,write".into(), "none".into()));
    let listed = dir.list_users(Some(acme.id)).await.unwrap();
    assert_eq!(listed[0], record.user, "list_users reads the same");
    assert_eq!(listed[1].access.to_string(), "all", "bob untouched");

    // Setting the tree-wide set keeps the rules; setting the rules keeps the set.
    dir.set_permissions(acme.id, "alice", permissions("none")).await.unwrap();
    let user = &dir.list_users(Some(acme.id)).await.unwrap()[0];
    assert_eq!(user.access.to_string(), "none; /in=list,read,write; /in/old=none");
    dir.set_path_permissions(acme.id, "alice", &[]).await.unwrap();
    assert_eq!(dir.list_users(Some(acme.id)).await.unwrap()[0].access.to_string(), "none");
}

async fn invalid_path_rules_are_refused_naming_the_rule(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
    let all = permissions("all");
    let many: Vec<(String, crate::access::Permissions)> =
        (0..=MAX_PATH_RULES).map(|i| (format!("/d{i}"), all)).collect();
    let cases: Vec<(Vec<(String, crate::access::Permissions)>, &str)> = vec![
        (vec![("in".into(), all)], "path rule \"in\" must be an absolute path"),
        (vec![("/in/../x".into(), all)], "path rule \"/in/../x\" must not contain '.' or '..'"),
        (vec![("/a\nb".into(), all)], "path rule \"/a\\nb\" must not contain control characters"),
        (vec![("/".into(), all)], "path rule \"/\" covers the user's whole tree"),
        (vec![("/in".into(), all), ("/in/".into(), all)], "path rule \"/in/\" is given twice"),
        (many, "at most 64 path rules"),
    ];
    for (rules, expected) in cases {
        match dir.set_path_permissions(acme.id, "alice", &rules).await {
            Err(DirectoryError::Invalid(why)) => assert!(why.starts_with(expected), "{why:?} vs {expected:?}"),
            other => panic!("{rules:?}: {other:?}"),
        }
    }
    assert_eq!(dir.login_record(acme.id, "alice").await.unwrap().unwrap().user.access.to_string(), "all");
}

async fn allowed_networks_are_stored_per_user_and_tenant(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
    dir.set_user_networks(acme.id, "alice", &networks("127.0.0.2/32, 2001:db8::/32")).await.unwrap();
    dir.set_tenant_networks(acme.id, &networks("10.0.0.0/8,::ffff:127.0.0.0/104")).await.unwrap();
    let record = dir.login_record(acme.id, "alice").await.unwrap().unwrap();
    assert_eq!(record.user.allowed_networks.to_string(), "127.0.0.2/32,2001:db8::/32");
    assert_eq!(record.tenant.allowed_networks.to_string(), "10.0.0.0/8,127.0.0.0/8");
    let tenant = dir.tenant_by_name("acme").await.unwrap().unwrap();
    assert_eq!(tenant, record.tenant);
    dir.add_hostname(acme.id, "ftp.acme.example").await.unwrap();
    assert_eq!(dir.tenant_by_hostname("ftp.acme.example").await.unwrap().unwrap(), tenant);
    assert_eq!(dir.list_tenants().await.unwrap(), vec![tenant.clone()]);
    assert_eq!(dir.tenant_by_id(acme.id).await.unwrap().unwrap(), tenant);

    let too_many = crate::access::Networks::new((0..=64u8).map(|i| format!("10.0.{i}.0/24").parse().unwrap()));
    let refused = dir.set_user_networks(acme.id, "alice", &too_many).await;
    assert!(matches!(&refused, Err(DirectoryError::Invalid(why)) if why.contains("at most 64")), "{refused:?}");
    assert!(matches!(dir.set_tenant_networks(acme.id, &too_many).await, Err(DirectoryError::Invalid(_))));

    // Empty again: anywhere.
    dir.set_user_networks(acme.id, "alice", &crate::access::Networks::anywhere()).await.unwrap();
    dir.set_tenant_networks(acme.id, &crate::access::Networks::anywhere()).await.unwrap();
    let record = dir.login_record(acme.id, "alice").await.unwrap().unwrap();
    assert!(record.user.allowed_networks.is_anywhere() && record.tenant.allowed_networks.is_anywhere());
}

async fn access_settings_of_missing_users_or_tenants_are_not_found(dir: &Fresh) {
    let acme = dir.create_tenant("acme").await.unwrap();
    let none = crate::access::Networks::anywhere();
    assert!(matches!(dir.set_permissions(acme.id, "nobody", permissions("all")).await, Err(DirectoryError::NotFound)));
    assert!(matches!(dir.set_path_permissions(acme.id, "nobody", &[]).await, Err(DirectoryError::NotFound)));
    assert!(matches!(dir.set_user_networks(acme.id, "nobody", &none).await, Err(DirectoryError::NotFound)));
    assert!(matches!(dir.set_tenant_networks(999, &none).await, Err(DirectoryError::NotFound)));
}

async fn tenant_tls_policy_is_stored_found_at_login_and_reset(dir: &Fresh) {
    use crate::config::Resumption;
    let acme = dir.create_tenant("acme").await.unwrap();
    assert_eq!(acme.tls, TenantTlsPolicy::default());
    dir.create_user(acme.id, new_user("alice", "/")).await.unwrap();
    let policy = TenantTlsPolicy {
        require_tls_for_login: Some(false),
        require_prot_p: None,
        data_session_resumption: Some(Resumption::Enabled),
        require_same_ip_for_passive: Some(true),
        min_tls_version: Some(TlsVersion::Tls13),
    };
    dir.set_tenant_tls(acme.id, &policy).await.unwrap();
    assert_eq!(dir.login_record(acme.id, "alice").await.unwrap().unwrap().tenant.tls, policy);
    dir.add_hostname(acme.id, "ftp.acme.example").await.unwrap();
    assert_eq!(dir.tenant_by_hostname("ftp.acme.example").await.unwrap().unwrap().tls, policy);
    assert_eq!(dir.tenant_by_name("acme").await.unwrap().unwrap().tls, policy);

    let disabled = TenantTlsPolicy { data_session_resumption: Some(Resumption::Disabled), ..Default::default() };
    let refused = dir.set_tenant_tls(acme.id, &disabled).await;
    assert!(matches!(&refused, Err(DirectoryError::Invalid(why)) if why.contains("server-wide")), "{refused:?}");
    assert!(matches!(dir.set_tenant_tls(999, &policy).await, Err(DirectoryError::NotFound)));

    dir.set_tenant_tls(acme.id, &TenantTlsPolicy::default()).await.unwrap();
    assert_eq!(dir.tenant_by_id(acme.id).await.unwrap().unwrap().tls, TenantTlsPolicy::default());
}

async fn passive_claims_are_held_by_one_instance_until_released_or_expired(dir: &Fresh) {
    // Stored to the millisecond on SQLite.
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
    let client: std::net::IpAddr = "203.0.113.7".parse().unwrap();
    let claim = |instance: &str, ticket: i64, expires_in: i64| PassiveClaim {
        client,
        port: 50001,
        instance: instance.into(),
        relay: format!("10.0.0.{}:2122", ticket % 200).parse().unwrap(),
        ticket,
        expires_at: now + chrono::TimeDelta::seconds(expires_in),
    };
    assert!(dir.claim_passive(&claim("a", 1, 30), now).await.unwrap());
    assert_eq!(dir.passive_claim(client, 50001, now).await.unwrap(), Some(claim("a", 1, 30)));
    // Another instance cannot take the pair while it is held; its owner can renew it.
    assert!(!dir.claim_passive(&claim("b", 2, 30), now).await.unwrap());
    assert!(dir.claim_passive(&claim("a", 3, 30), now).await.unwrap());
    assert_eq!(dir.passive_claim(client, 50001, now).await.unwrap().unwrap().ticket, 3);
    // Other pairs are independent.
    assert_eq!(dir.passive_claim(client, 50002, now).await.unwrap(), None);
    assert_eq!(dir.passive_claim("203.0.113.8".parse().unwrap(), 50001, now).await.unwrap(), None);
    // A stale release (an older ticket, another instance) leaves the claim alone.
    dir.release_passive(client, 50001, "a", 1).await.unwrap();
    dir.release_passive(client, 50001, "b", 3).await.unwrap();
    assert!(dir.passive_claim(client, 50001, now).await.unwrap().is_some());
    dir.release_passive(client, 50001, "a", 3).await.unwrap();
    assert_eq!(dir.passive_claim(client, 50001, now).await.unwrap(), None);
    // An expired claim is invisible and taken over, then forgotten.
    assert!(dir.claim_passive(&claim("a", 4, 5), now).await.unwrap());
    let later = now + chrono::TimeDelta::seconds(5);
    assert_eq!(dir.passive_claim(client, 50001, later).await.unwrap(), None);
    assert!(dir.claim_passive(&claim("b", 5, 30), later).await.unwrap());
    assert_eq!(dir.passive_claim(client, 50001, later).await.unwrap().unwrap().instance, "b");
    assert_eq!(dir.forget_passive_claims(now + chrono::TimeDelta::seconds(30)).await.unwrap(), 0);
    assert_eq!(dir.forget_passive_claims(now + chrono::TimeDelta::seconds(31)).await.unwrap(), 1);
}
