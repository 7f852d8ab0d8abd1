//! The server under test: the release `wharf` binary as its own process, configured only through the
//! environment, with one tenant and one user made by its own CLI.

use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, ensure, Context as _};

pub const TENANT: &str = "bench";
pub const LOGIN: &str = "u@bench";
pub const PASSWORD: &str = "bench-password";

/// Sessions the memory measurement opens at once, from one IP; the default per-IP limit is 64.
pub const MAX_SESSIONS_PER_IP: usize = 512;

pub struct Wharf {
    child: Child,
    pub addr: SocketAddr,
    data_dir: PathBuf,
}

impl Wharf {
    /// Creates the tenant and user in `data_dir`, starts `wharf serve` (with `settings` added to its
    /// environment) and waits until it listens.
    pub fn start(data_dir: &Path, settings: &[(&str, &str)]) -> anyhow::Result<Wharf> {
        std::fs::create_dir_all(data_dir)?;
        run(command(data_dir).args(["tenant", "add", TENANT]), None)?;
        run(command(data_dir).args(["user", "add", LOGIN, "--password-stdin"]), Some(PASSWORD))?;
        let log = std::fs::File::create(data_dir.join("wharf.log"))?;
        let mut child = command(data_dir)
            .envs(settings.iter().copied())
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting wharf serve")?;
        // `serve` prints the addresses it bound (port 0 becomes a real port), then nothing more.
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if stdout.read_line(&mut line)? == 0 {
                let _ = child.wait();
                bail!("wharf serve exited; see {}", data_dir.join("wharf.log").display());
            }
            if let Some(addr) = line.trim().strip_prefix("explicit FTPS (AUTH TLS):") {
                break addr.trim().parse().with_context(|| format!("unreadable listen line {line:?}"))?;
            }
        };
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Ok(Wharf { child, addr, data_dir: data_dir.to_owned() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server process, from `/proc/<pid>/status`.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc/<pid>/status")
    }

    /// Where the fs backend keeps the file a logged-in bench user knows as `/name`.
    pub fn stored_path(&self, name: &str) -> PathBuf {
        self.data_dir.join("storage").join(TENANT).join(name)
    }
}

impl Drop for Wharf {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `wharf` with only the bench's configuration in its environment.
fn command(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
    // Every WHARF_* variable is configuration to wharf (and unknown keys are errors), including ours.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WHARF_") {
            command.env_remove(key);
        }
    }
    command
        .env_remove("RUST_LOG")
        .env("WHARF_DATA_DIR", data_dir)
        .env("WHARF_FTP__EXPLICIT_LISTEN", "127.0.0.1:0")
        .env("WHARF_FTP__IMPLICIT_LISTEN", "127.0.0.1:0")
        .env("WHARF_FTP__PASSIVE_PORTS", "0-0")
        .env("WHARF_FTP__MAX_SESSIONS_PER_IP", MAX_SESSIONS_PER_IP.to_string());
    // For experiments: `WHARF_BENCH_SERVER_ENV="WHARF_STORAGE__FSYNC=false MALLOC_ARENA_MAX=2"`.
    let extra = std::env::var("WHARF_BENCH_SERVER_ENV").unwrap_or_default();
    for (key, value) in extra.split_whitespace().filter_map(|pair| pair.split_once('=')) {
        command.env(key, value);
    }
    command
}

fn run(command: &mut Command, stdin: Option<&str>) -> anyhow::Result<()> {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    if let Some(text) = stdin {
        child.stdin.take().expect("piped").write_all(format!("{text}\n").as_bytes())?;
    }
    drop(child.stdin.take());
    let output = child.wait_with_output()?;
    ensure!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(())
}
