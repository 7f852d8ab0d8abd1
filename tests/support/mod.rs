//! The harness: a real wharf in-process on ephemeral loopback ports, in its own temporary folder, plus a
//! small raw FTPS client for tests that need to see every reply.

#![allow(dead_code)]

pub mod admin;
pub mod clients;
pub mod faults;
pub mod postgres;
pub mod raw;
pub mod s3;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use wharf::auth::password;
use wharf::config::{Backend, Config, PortRange, Secret};
use wharf::directory::{Directory, NewUser};
use wharf::server::Server;

pub const PASSWORD: &str = "correct horse battery";

/// The backend `Wharf::start` uses: `WHARF_TEST_BACKEND=s3` runs the same tests on S3 (scripts/test.sh
/// runs the protocol and interop suites both ways).
pub fn backend() -> Backend {
    match std::env::var("WHARF_TEST_BACKEND").as_deref() {
        Ok("s3") => Backend::S3,
        Ok("fs") | Err(_) => Backend::Fs,
        Ok(other) => panic!("WHARF_TEST_BACKEND={other:?}: expected fs or s3"),
    }
}

pub struct Wharf {
    pub explicit: SocketAddr,
    pub implicit: SocketAddr,
    /// The admin API, when the test enabled it (`config.admin.enabled`).
    pub admin: Option<SocketAddr>,
    /// The passive relay listener, when the test configured one (`config.ftp.passive_relay`).
    pub relay: Option<SocketAddr>,
    /// What the instance's `/metrics` shows.
    pub metrics: Arc<wharf::telemetry::metrics::Metrics>,
    pub config: Config,
    pub directory: Arc<dyn Directory>,
    /// The instance's live sessions (what the admin API lists and disconnects).
    pub sessions: Arc<wharf::sessions::LiveSessions>,
    /// The bucket behind wharf on the S3 backend.
    pub s3: Option<s3::Bucket>,
    pub server_s3: Option<Arc<wharf::storage::s3::S3Provider>>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The database of its own this instance runs on, with `WHARF_TEST_DIRECTORY=postgres`.
    database: Option<postgres::Database>,
    _dir: tempfile::TempDir,
}

/// Whether `Wharf::start` runs on a fresh Postgres database instead of the SQLite default:
/// `WHARF_TEST_DIRECTORY=postgres` (scripts/test.sh runs the S3 pass that way, the production pairing).
fn on_postgres() -> bool {
    match std::env::var("WHARF_TEST_DIRECTORY").as_deref() {
        Err(_) | Ok("sqlite") => false,
        Ok("postgres") => true,
        Ok(other) => panic!("WHARF_TEST_DIRECTORY={other:?}: expected sqlite or postgres"),
    }
}

impl Wharf {
    /// A wharf with the default (strict) policy and one user, `alice@acme`, password [`PASSWORD`].
    pub async fn start() -> Wharf {
        Wharf::start_with(|_| {}).await
    }

    /// On the backend [`backend`] selects.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Wharf {
        Wharf::start_on(backend(), adjust).await
    }

    /// On S3 whatever the environment says, for the S3 backend's own tests.
    pub async fn start_s3_with(adjust: impl FnOnce(&mut Config)) -> Wharf {
        Wharf::start_on(Backend::S3, adjust).await
    }

    pub async fn start_on(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Wharf {
        // `RUST_LOG=wharf=debug cargo test … -- --nocapture` shows the server's log next to a failure.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config { data_dir: dir.path().join("data"), ..Config::default() };
        config.ftp.explicit_listen = Some("127.0.0.1:0".parse().unwrap());
        config.ftp.implicit_listen = Some("127.0.0.1:0".parse().unwrap());
        config.ftp.passive_ports = PortRange { start: 0, end: 0 };
        config.ftp.login_failure_delay_ms = 100;
        config.ftp.data_connect_timeout_secs = 5;
        config.ftp.shutdown_grace_secs = 2;
        config.admin.listen = "127.0.0.1:0".parse().unwrap();
        let s3 = match backend {
            Backend::S3 => Some(s3::Bucket::create().await),
            Backend::Fs => None,
        };
        if let Some(bucket) = &s3 {
            config.storage.backend = Backend::S3;
            let c = &mut config.storage.s3;
            c.endpoint = Some(s3::endpoint().to_owned());
            c.bucket = Some(bucket.name.clone());
            c.region = Some(s3::region());
            c.force_path_style = true;
            let (id, secret) = s3::credentials();
            c.access_key_id = Some(id);
            c.secret_access_key = Some(Secret::new(secret));
        }
        adjust(&mut config);
        // Tests that choose their database (instances sharing one) keep it.
        let database = match config.database_url.is_none() && on_postgres() {
            true => Some(postgres::Database::create().await),
            false => None,
        };
        if let Some(db) = &database {
            config.database_url = Some(db.url.clone());
        }
        let server = Server::bind(config.clone()).await.expect("wharf starts");
        let explicit = server.explicit_addr().expect("explicit listener");
        let implicit = server.implicit_addr().expect("implicit listener");
        let admin = server.admin_addr();
        let relay = server.relay_addr();
        let metrics = server.metrics();
        let directory = server.directory();
        let sessions = server.sessions();
        let server_s3 = server.s3();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        let wharf = Wharf {
            explicit,
            implicit,
            admin,
            relay,
            metrics,
            config,
            directory,
            sessions,
            s3,
            server_s3,
            shutdown,
            task: Some(task),
            database,
            _dir: dir,
        };
        // A second instance on a shared database finds alice already there.
        if !wharf.has_user("acme", "alice").await {
            wharf.add_user("acme", "alice", PASSWORD).await;
        }
        wharf
    }

    pub async fn has_user(&self, tenant: &str, user: &str) -> bool {
        match self.directory.tenant_by_name(tenant).await.unwrap() {
            Some(t) => self.directory.login_record(t.id, user).await.unwrap().is_some(),
            None => false,
        }
    }

    /// Creates the tenant if needed, then the user (home `/`).
    pub async fn add_user(&self, tenant: &str, user: &str, password: &str) {
        self.add_user_with_home(tenant, user, password, "/").await
    }

    pub async fn add_user_with_home(&self, tenant: &str, user: &str, password: &str, home: &str) {
        let t = match self.directory.tenant_by_name(tenant).await.unwrap() {
            Some(t) => t,
            None => self.directory.create_tenant(tenant).await.unwrap(),
        };
        let hash = password::hash(password, &password::Params::default()).unwrap();
        self.directory
            .create_user(t.id, NewUser { username: user.into(), password_hash: hash, home: home.into() })
            .await
            .unwrap();
    }

    /// A session of `alice@acme` after AUTH TLS, PBSZ, PROT P and login.
    pub async fn login(&self) -> raw::Ftp {
        raw::Ftp::login(self.explicit, "alice@acme", PASSWORD).await
    }

    /// Puts a file straight into acme's storage (its folder, or its prefix in the bucket).
    pub async fn put_file(&self, path: &str, data: &[u8]) {
        self.put_file_in("acme", path, data).await
    }

    pub async fn put_file_in(&self, tenant: &str, path: &str, data: &[u8]) {
        let path = path.trim_start_matches('/');
        match &self.s3 {
            Some(bucket) => bucket.put(&format!("{tenant}/{path}"), data).await,
            None => {
                let on_disk = self.file(tenant, path);
                std::fs::create_dir_all(on_disk.parent().unwrap()).unwrap();
                std::fs::write(on_disk, data).unwrap();
            }
        }
    }

    /// Makes a directory straight in acme's storage (a folder, or a `dir/` marker object).
    pub async fn put_dir(&self, path: &str) {
        let path = path.trim_matches('/');
        match &self.s3 {
            Some(bucket) => bucket.put(&format!("acme/{path}/"), b"").await,
            None => std::fs::create_dir_all(self.file("acme", path)).unwrap(),
        }
    }

    /// A file of acme's storage, as stored; panics when there is none.
    pub async fn read_file(&self, path: &str) -> Vec<u8> {
        self.stored(path).await.unwrap_or_else(|| panic!("{path} is not stored"))
    }

    /// A file of acme's storage, as stored.
    pub async fn stored(&self, path: &str) -> Option<Vec<u8>> {
        let path = path.trim_start_matches('/');
        match &self.s3 {
            Some(bucket) => bucket.get(&format!("acme/{path}")).await,
            None => std::fs::read(self.file("acme", path)).ok().filter(|_| self.file("acme", path).is_file()),
        }
    }

    /// Whether acme's storage holds a directory at `path` (a folder; a marker or objects below it).
    pub async fn is_dir(&self, path: &str) -> bool {
        let path = path.trim_matches('/');
        match &self.s3 {
            Some(bucket) => !bucket.keys(&format!("acme/{path}/")).await.is_empty(),
            None => self.file("acme", path).is_dir(),
        }
    }

    /// Whether anything (file or directory) is stored at `path` in acme's storage.
    pub async fn exists(&self, path: &str) -> bool {
        self.stored(path).await.is_some() || self.is_dir(path).await
    }

    /// Where the fs backend keeps `path` (relative to the tenant's root) on disk.
    pub fn file(&self, tenant: &str, path: &str) -> PathBuf {
        assert!(self.s3.is_none(), "fs-only test helper used on the S3 backend");
        self.config.fs_root().join(tenant).join(path.trim_start_matches('/'))
    }

    /// Every file in the tenant's storage (relative paths, sorted): on fs hidden temporaries included; on S3
    /// every object except directory markers.
    pub async fn files_on_disk(&self, tenant: &str) -> Vec<String> {
        if let Some(bucket) = &self.s3 {
            let prefix = format!("{tenant}/");
            let keys = bucket.keys(&prefix).await;
            return keys.into_iter().filter(|k| !k.ends_with('/')).map(|k| k[prefix.len()..].to_owned()).collect();
        }
        fn walk(base: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if entry.file_type().unwrap().is_dir() {
                    walk(base, &path, out);
                } else {
                    out.push(path.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        let base = self.config.fs_root().join(tenant);
        let mut out = Vec::new();
        walk(&base, &base, &mut out);
        out.sort();
        out
    }

    /// Every file below `dir` of acme's storage (relative path → SHA-256), comparable with
    /// [`clients::tree_digest`] of a local folder.
    pub async fn tree_digest(&self, dir: &str) -> std::collections::BTreeMap<String, String> {
        let dir = dir.trim_matches('/');
        let Some(bucket) = &self.s3 else { return clients::tree_digest(&self.file("acme", dir)) };
        let prefix = format!("acme/{dir}/");
        let mut out = std::collections::BTreeMap::new();
        for key in bucket.keys(&prefix).await.into_iter().filter(|k| !k.ends_with('/')) {
            let data = bucket.get(&key).await.unwrap();
            out.insert(key[prefix.len()..].to_owned(), sha256(&data));
        }
        out
    }

    /// Every directory below `dir` of acme's storage, relative to it, sorted: comparable with
    /// [`clients::tree_dirs`] of a local folder.
    pub async fn tree_dirs(&self, dir: &str) -> Vec<String> {
        let dir = dir.trim_matches('/');
        let Some(bucket) = &self.s3 else { return clients::tree_dirs(&self.file("acme", dir)) };
        let prefix = format!("acme/{dir}/");
        let mut dirs = std::collections::BTreeSet::new();
        for key in bucket.keys(&prefix).await {
            let rel = &key[prefix.len()..];
            let mut parts: Vec<&str> = rel.split('/').collect();
            parts.pop();
            for i in 1..=parts.len() {
                dirs.insert(parts[..i].join("/"));
            }
        }
        dirs.into_iter().filter(|d| !d.is_empty()).collect()
    }

    /// What SIGTERM does: stop accepting, let transfers finish within the grace period.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits for the server to have stopped after [`Wharf::begin_shutdown`].
    pub async fn stopped(&mut self) {
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Stops the server and waits for it, as a clean shutdown would.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for Wharf {
    fn drop(&mut self) {
        self.shutdown.cancel();
        // Dropped inside a test's runtime, which cannot be blocked on: the database goes on a thread of its own
        // (DROP … WITH (FORCE) ends the connections the stopping server still holds).
        if let Some(db) = self.database.take() {
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(db.drop());
            });
            let _ = dropped.join();
        }
    }
}

/// Deterministic pseudo-random bytes, so failures reproduce.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}
