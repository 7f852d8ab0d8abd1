//! The harness: a real wharf in-process on ephemeral loopback ports, in its own temporary folder, plus a
//! small raw FTPS client for tests that need to see every reply.

#![allow(dead_code)]

pub mod clients;
pub mod raw;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use wharf::config::{Config, PortRange};
use wharf::directory::{password, Directory, NewUser};
use wharf::server::Server;

pub const PASSWORD: &str = "correct horse battery";

pub struct Wharf {
    pub explicit: SocketAddr,
    pub implicit: SocketAddr,
    pub config: Config,
    pub directory: Arc<dyn Directory>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Wharf {
    /// A wharf with the default (strict) policy and one user, `alice@acme`, password [`PASSWORD`].
    pub async fn start() -> Wharf {
        Wharf::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Wharf {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config { data_dir: dir.path().join("data"), ..Config::default() };
        config.ftp.explicit_listen = Some("127.0.0.1:0".parse().unwrap());
        config.ftp.implicit_listen = Some("127.0.0.1:0".parse().unwrap());
        config.ftp.passive_ports = PortRange { start: 0, end: 0 };
        config.ftp.login_failure_delay_ms = 100;
        config.ftp.data_connect_timeout_secs = 5;
        config.ftp.shutdown_grace_secs = 2;
        adjust(&mut config);
        let server = Server::bind(config.clone()).await.expect("wharf starts");
        let explicit = server.explicit_addr().expect("explicit listener");
        let implicit = server.implicit_addr().expect("implicit listener");
        let directory = server.directory();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        let wharf = Wharf { explicit, implicit, config, directory, shutdown, task: Some(task), _dir: dir };
        wharf.add_user("acme", "alice", PASSWORD).await;
        wharf
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

    /// Puts a file straight into acme's folder (the fs backend), for tests about reading it back.
    pub fn put_file(&self, path: &str, data: &[u8]) {
        let on_disk = self.file("acme", path);
        std::fs::create_dir_all(on_disk.parent().unwrap()).unwrap();
        std::fs::write(on_disk, data).unwrap();
    }

    /// A file of acme's folder, as stored.
    pub fn read_file(&self, path: &str) -> Vec<u8> {
        std::fs::read(self.file("acme", path)).unwrap()
    }

    /// Where the fs backend keeps `path` (relative to the tenant's root) on disk.
    pub fn file(&self, tenant: &str, path: &str) -> PathBuf {
        self.config.fs_root().join(tenant).join(path.trim_start_matches('/'))
    }

    /// Every file under the tenant's folder, hidden temporaries included, relative to it, sorted.
    pub fn files_on_disk(&self, tenant: &str) -> Vec<String> {
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
