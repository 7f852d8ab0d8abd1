//! Real FTP clients (curl, lftp, rclone, Python's ftplib) run as subprocesses against a [`Wharf`], each
//! under a deadline so that a hung client fails its test instead of blocking the run, plus the file-tree
//! helpers the interop tests compare with.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::Command;

use super::{sha256, Wharf};

/// How long one client invocation may take unless a test says otherwise.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// What a finished client process left behind.
#[derive(Debug)]
pub struct Run {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn stdout_text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("client output is UTF-8")
    }

    /// The run itself when the client exited with 0; otherwise a panic that shows what it said.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert!(
            self.status.success(),
            "{} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.status,
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        );
        self
    }
}

/// Runs `command` to its end with no stdin. Past `limit` the process is killed and the test fails.
pub async fn run(mut command: Command, limit: Duration) -> Run {
    let what = format!("{:?}", command.as_std());
    command.kill_on_drop(true).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            Run { what, status: out.status, stdout: out.stdout, stderr: String::from_utf8_lossy(&out.stderr).into() }
        }
        Ok(Err(e)) => panic!("waiting for {what}: {e}"),
        Err(_) => panic!("{what} did not finish within {limit:?} (killed)"),
    }
}

/// curl against the explicit (`ftp://` + AUTH TLS) or implicit (`ftps://`) listener.
pub struct Curl {
    base: String,
    credentials: String,
}

impl Curl {
    pub fn explicit(wharf: &Wharf, user: &str, password: &str) -> Curl {
        Curl { base: format!("ftp://{}", wharf.explicit), credentials: format!("{user}:{password}") }
    }

    pub fn implicit(wharf: &Wharf, user: &str, password: &str) -> Curl {
        Curl { base: format!("ftps://{}", wharf.implicit), credentials: format!("{user}:{password}") }
    }

    /// The URL of a server path, each segment percent-encoded (a trailing `/` asks for a listing).
    pub fn url(&self, path: &str) -> String {
        let encoded: Vec<String> = path.trim_start_matches('/').split('/').map(percent_encode).collect();
        format!("{}/{}", self.base, encoded.join("/"))
    }

    /// Runs curl with TLS required on control and data, any certificate accepted, and `args`.
    pub async fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new("curl");
        // -q first: no ~/.curlrc.
        command.args(["-q", "--silent", "--show-error", "--ssl-reqd", "--insecure", "--max-time", "120"]);
        command.arg("--user").arg(&self.credentials).args(args);
        run(command, CLIENT_TIMEOUT).await
    }

    pub async fn upload(&self, local: &Path, remote: &str) -> Run {
        self.run([OsStr::new("--upload-file"), local.as_os_str(), OsStr::new(&self.url(remote))]).await.ok()
    }

    pub async fn download(&self, remote: &str, local: &Path) -> Run {
        self.run([OsStr::new("--output"), local.as_os_str(), OsStr::new(&self.url(remote))]).await.ok()
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// lftp with TLS forced on control and data, no certificate check, and failures ending the script.
pub struct Lftp {
    url: String,
    user: String,
    password: String,
    home: PathBuf,
}

impl Lftp {
    /// `password` must not need lftp quoting (no spaces, commas or quotes): make a user for lftp.
    pub fn explicit(wharf: &Wharf, user: &str, password: &str, home: &Path) -> Lftp {
        Lftp::new(format!("ftp://{}", wharf.explicit), user, password, home)
    }

    pub fn implicit(wharf: &Wharf, user: &str, password: &str, home: &Path) -> Lftp {
        Lftp::new(format!("ftps://{}", wharf.implicit), user, password, home)
    }

    fn new(url: String, user: &str, password: &str, home: &Path) -> Lftp {
        assert!(!password.contains([' ', ',', '"', '\'', '\\']), "lftp would need this password quoted");
        Lftp { url, user: user.into(), password: password.into(), home: home.into() }
    }

    /// Runs `script` (lftp commands separated by `;` or newlines) in `cwd` after logging in.
    pub async fn run(&self, cwd: &Path, script: &str) -> Run {
        let settings = [
            "set cmd:fail-exit yes",
            "set net:max-retries 1",
            "set net:timeout 20",
            "set net:reconnect-interval-base 1",
            "set ftp:ssl-force true",
            "set ftp:ssl-protect-data true",
            "set ftp:ssl-protect-list true",
            "set ssl:verify-certificate no",
            "set file:charset UTF-8",
            "set xfer:clobber yes",
        ];
        let full = format!("{}; open -u {},{} {}; {script}", settings.join("; "), self.user, self.password, self.url);
        let mut command = Command::new("lftp");
        command.arg("-c").arg(full).current_dir(cwd);
        // Its own HOME (lftp keeps history and bookmarks there) and a UTF-8 locale for non-ASCII names.
        command.env("HOME", &self.home).env("LC_ALL", "C.UTF-8").env_remove("LFTP_HOME");
        run(command, CLIENT_TIMEOUT).await
    }
}

/// rclone's ftp backend through an on-the-fly remote with explicit TLS, and no config file of its own.
pub struct Rclone {
    remote: String,
    home: PathBuf,
}

impl Rclone {
    pub async fn explicit(wharf: &Wharf, user: &str, password: &str, home: &Path) -> Rclone {
        let mut command = Command::new("rclone");
        command.arg("obscure").arg(password);
        let obscured = run(command, CLIENT_TIMEOUT).await.ok().stdout_text().trim().to_owned();
        let addr = wharf.explicit;
        let remote = format!(
            ":ftp,host={},port={},user={user},pass={obscured},explicit_tls=true,no_check_certificate=true:",
            addr.ip(),
            addr.port()
        );
        std::fs::write(home.join("rclone.conf"), "").unwrap();
        Rclone { remote, home: home.into() }
    }

    /// The remote spelling of a server path.
    pub fn remote(&self, path: &str) -> String {
        format!("{}{}", self.remote, path.trim_start_matches('/'))
    }

    pub async fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new("rclone");
        command.args(args).arg("--retries").arg("1").arg("--low-level-retries").arg("1");
        command.env("RCLONE_CONFIG", self.home.join("rclone.conf")).env("HOME", &self.home);
        command.env("XDG_CACHE_HOME", self.home.join("cache")).env("XDG_CONFIG_HOME", self.home.join("config"));
        run(command, CLIENT_TIMEOUT).await
    }
}

/// `tests/clients/<script>` run by python3 with `args`.
pub async fn python(script: &str, args: &[&OsStr]) -> Run {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients").join(script);
    let mut command = Command::new("python3");
    command.arg(path).args(args).env("PYTHONIOENCODING", "utf-8").env("PYTHONDONTWRITEBYTECODE", "1");
    run(command, CLIENT_TIMEOUT).await
}

/// Fails when an upload left one of the fs backend's hidden temporaries behind.
pub async fn assert_no_temp_files(wharf: &Wharf, tenant: &str) {
    let files = wharf.files_on_disk(tenant).await;
    let temps: Vec<&String> = files.iter().filter(|f| f.contains(".wharf-")).collect();
    assert!(temps.is_empty(), "temporary upload files remain: {temps:?} (all files: {files:?})");
    if let Some(bucket) = &wharf.s3 {
        assert_eq!(bucket.open_uploads_settled().await, 0, "multipart uploads left open on the S3 server");
    }
}

/// Writes `files` (relative path → content) under `root`, making folders as needed.
pub fn write_tree<'a>(root: &Path, files: impl IntoIterator<Item = (&'a str, &'a [u8])>) {
    for (path, content) in files {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
}

/// Every file under `root` (relative path → SHA-256), so two trees compare byte for byte with a short diff.
pub fn tree_digest(root: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                out.insert(rel, sha256(&std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Every folder under `root`, relative to it.
pub fn tree_dirs(root: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.push(path.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}
