//! SIGHUP on the real binary: the configuration file is read again, live settings take effect, restart-only
//! ones are named and kept, and a broken file changes nothing.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout};

use crate::cli::{serving, wharf, Serving};
use crate::support::raw::Ftp;

/// A `wharf serve` running from `wharf.toml` in a temporary folder, with its log at hand.
struct Served {
    _dir: tempfile::TempDir,
    file: PathBuf,
    child: Child,
    /// Kept open: wharf prints to it after start, and a closed pipe would end it.
    _stdout: Lines<BufReader<ChildStdout>>,
    explicit: SocketAddr,
    log: Log,
}

/// The lines wharf logged, read as they come.
struct Log {
    lines: Lines<BufReader<ChildStderr>>,
    seen: Vec<String>,
}

impl Log {
    /// Reads up to the first line containing `what`, and returns it.
    async fn until(&mut self, what: &str) -> String {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let line = self.lines.next_line().await.unwrap().expect("wharf is still running");
                self.seen.push(line.clone());
                if line.contains(what) {
                    return line;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no log line with {what:?} in:\n{}", self.seen.join("\n")))
    }
}

/// Starts `wharf serve` with `config` in its file (the explicit listener's address from the file when it names
/// one, else the harness's port 0).
async fn serve(config: &str) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wharf.toml");
    std::fs::write(&file, config).unwrap();
    let mut cmd = wharf(dir.path());
    if config.contains("explicit_listen") {
        cmd.env_remove("WHARF_FTP__EXPLICIT_LISTEN");
    }
    cmd.args(["--config", file.to_str().unwrap(), "serve"]).stderr(Stdio::piped());
    let Serving { mut child, stdout, explicit } = serving(cmd).await;
    let log = Log { lines: BufReader::new(child.stderr.take().unwrap()).lines(), seen: Vec::new() };
    Served { _dir: dir, file, child, _stdout: stdout, explicit, log }
}

impl Served {
    /// Writes `config` to the file and sends SIGHUP; returns the reload's outcome line.
    async fn reload(&mut self, config: &str) -> String {
        std::fs::write(&self.file, config).unwrap();
        let pid = i32::try_from(self.child.id().unwrap()).unwrap();
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
        self.log.until("SIGHUP: re").await
    }
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

#[tokio::test]
async fn sighup_applies_a_new_banner_and_session_limit_to_new_connections() {
    let mut wharf = serve("[ftp]\nbanner = \"Old greeting\"\nmax_sessions_per_ip = 10\n").await;
    let (mut open, greeting) = Ftp::connect_from(wharf.explicit, loopback(2)).await;
    assert!(greeting.text.contains("Old greeting"), "{}", greeting.text);

    let outcome = wharf.reload("[ftp]\nbanner = \"New greeting\"\nmax_sessions_per_ip = 1\n").await;
    assert!(outcome.contains("changed: ftp.banner, ftp.max_sessions_per_ip"), "{outcome}");
    let (_first, greeting) = Ftp::connect_from(wharf.explicit, loopback(3)).await;
    assert_eq!(greeting.code, 220);
    assert!(greeting.text.contains("New greeting"), "{}", greeting.text);
    let (_, refused) = Ftp::connect_from(wharf.explicit, loopback(3)).await;
    assert_eq!(refused.code, 421, "a second session from the same address: {}", refused.text);
    let (_, refused) = Ftp::connect_from(wharf.explicit, loopback(2)).await;
    assert_eq!(refused.code, 421, "the session open before the reload counts: {}", refused.text);
    assert_eq!(open.cmd("NOOP").await.code, 200, "the session open before the reload goes on");
    wharf.child.kill().await.unwrap();
}

#[tokio::test]
async fn sighup_with_a_broken_file_logs_why_and_changes_nothing() {
    let mut wharf = serve("[ftp]\nbanner = \"Still here\"\n").await;
    let outcome = wharf.reload("[ftp]\nbanner = \"Half\"\nmax_login_attempts = 0\n").await;
    assert!(outcome.contains("reload failed") && outcome.contains("ftp.max_login_attempts"), "{outcome}");
    let outcome = wharf.reload("[ftp\nbanner = \"Broken\"\n").await;
    assert!(outcome.contains("reload failed"), "{outcome}");

    let (_, greeting) = Ftp::connect(wharf.explicit).await;
    assert!(greeting.text.contains("Still here"), "{}", greeting.text);
    assert!(wharf.child.try_wait().unwrap().is_none(), "still running");
    wharf.child.kill().await.unwrap();
}

#[tokio::test]
async fn sighup_names_a_changed_listen_address_and_keeps_listening_where_it_was() {
    let mut wharf = serve("[ftp]\nexplicit_listen = \"127.0.0.1:0\"\n").await;
    let outcome = wharf.reload("[ftp]\nexplicit_listen = \"127.0.0.1:1\"\n").await;
    assert!(outcome.contains("changed: nothing"), "{outcome}");
    let warned = wharf.log.seen.iter().find(|l| l.contains("ftp.explicit_listen")).cloned().unwrap_or_default();
    assert!(warned.contains("WARN") && warned.contains("takes effect after a restart"), "{:?}", wharf.log.seen);
    let (_, greeting) = Ftp::connect(wharf.explicit).await;
    assert_eq!(greeting.code, 220, "still served on the address it was bound to");
    wharf.child.kill().await.unwrap();
}

#[tokio::test]
async fn sighup_applies_a_new_log_filter() {
    let quiet = "[log]\nfilter = \"warn\"\n[ftp]\nlogin_failure_delay_ms = 10\n";
    let mut wharf = serve(quiet).await;
    let failed_login = |explicit| async move {
        let (mut ftp, _) = Ftp::connect(explicit).await;
        ftp.auth_tls().await;
        ftp.cmd("USER nobody@nowhere").await;
        assert_eq!(ftp.cmd("PASS wrong").await.code, 530);
    };
    failed_login(wharf.explicit).await;

    let outcome = wharf.reload(&quiet.replace("\"warn\"", "\"info,wharf=debug\"")).await;
    assert!(outcome.contains("changed: log.filter"), "{outcome}");
    failed_login(wharf.explicit).await;
    wharf.log.until("wharf::login").await;
    let logins = wharf.log.seen.iter().filter(|l| l.contains("wharf::login")).count();
    assert_eq!(logins, 1, "only the login after the reload is logged: {:?}", wharf.log.seen);
    wharf.child.kill().await.unwrap();
}
