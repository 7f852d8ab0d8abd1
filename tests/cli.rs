//! The binary as a newcomer meets it: `wharf serve` with no configuration, and the tenant/user CLI.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::support::raw::Ftp;

pub(crate) fn wharf(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf"));
    // Every WHARF_* variable is configuration to wharf, including the test harness's own.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WHARF_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .env("WHARF_FTP__EXPLICIT_LISTEN", "127.0.0.1:0")
        .env("WHARF_FTP__IMPLICIT_LISTEN", "127.0.0.1:0")
        .env("WHARF_FTP__PASSIVE_PORTS", "0-0")
        .kill_on_drop(true);
    cmd
}

pub(crate) async fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut cmd = wharf(dir);
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What `wharf serve` prints up to the first line `last` accepts.
pub(crate) async fn printed_until(
    stdout: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    last: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut printed = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let line = stdout.next_line().await.unwrap().expect("wharf serve exited early");
            let done = last(&line);
            printed.push(line);
            if done {
                break;
            }
        }
    })
    .await
    .expect("wharf serve prints its addresses and the first steps");
    printed
}

/// A `wharf serve` child, once it has printed its explicit FTPS address (the caller chooses stderr).
pub(crate) struct Serving {
    pub child: tokio::process::Child,
    pub stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pub explicit: std::net::SocketAddr,
}

pub(crate) async fn serving(mut cmd: Command) -> Serving {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let explicit = explicit_address(&printed_until(&mut stdout, |line| line.contains("explicit FTPS")).await);
    Serving { child, stdout, explicit }
}

pub(crate) fn explicit_address(printed: &[String]) -> std::net::SocketAddr {
    let line = printed.iter().find(|l| l.contains("explicit FTPS")).expect("an explicit FTPS line");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn first_start_creates_everything_and_the_cli_makes_a_working_login() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = wharf(dir.path()).arg("serve").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let printed = printed_until(&mut stdout, |line| line.contains("curl --ssl-reqd")).await;
    let explicit = explicit_address(&printed);
    let text = printed.join("\n");
    assert!(text.contains("wharf tenant add"), "{text}");
    assert!(text.contains("wharf user add"), "{text}");
    let data = dir.path().join("wharf-data");
    assert!(data.join("wharf.db").is_file());
    assert!(data.join("tls/cert.pem").is_file() && data.join("tls/key.pem").is_file());
    let cert = std::fs::read(data.join("tls/cert.pem")).unwrap();

    let (ok, out, err) = run(dir.path(), &["tenant", "add", "acme"], None).await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) =
        run(dir.path(), &["user", "add", "alice@acme", "--password-stdin"], Some("first password\n")).await;
    assert!(ok, "{out}{err}");
    let (ok, _, err) =
        run(dir.path(), &["user", "add", "bob@nosuch", "--password-stdin"], Some("some password\n")).await;
    assert!(!ok && err.contains("nosuch"), "{err}");
    let (ok, _, err) = run(dir.path(), &["user", "add", "carol@acme", "--password-stdin"], Some("short\n")).await;
    assert!(!ok && err.contains("password"), "{err}");

    // The running server sees the new user at once.
    Ftp::login(explicit, "alice@acme", "first password").await;

    let (ok, out, err) =
        run(dir.path(), &["user", "passwd", "alice@acme", "--password-stdin"], Some("second password\n")).await;
    assert!(ok, "{out}{err}");
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, "third password\n").unwrap();
    let (ok, out, err) =
        run(dir.path(), &["user", "passwd", "alice@acme", "--password-file", pw_file.to_str().unwrap()], None).await;
    assert!(ok, "{out}{err}");
    Ftp::login(explicit, "alice@acme", "third password").await;
    let (mut ftp, _) = Ftp::connect(explicit).await;
    ftp.auth_tls().await;
    ftp.cmd("USER alice@acme").await;
    assert_eq!(ftp.cmd("PASS first password").await.code, 530);

    let (ok, out, _) = run(dir.path(), &["user", "list"], None).await;
    assert!(ok && out.contains("alice@acme"), "{out}");
    assert!(!out.contains("argon2"), "hashes never shown: {out}");
    let (ok, out, _) = run(dir.path(), &["tenant", "list"], None).await;
    assert!(ok && out.contains("acme"), "{out}");

    // A restart keeps the certificate and the users.
    child.kill().await.unwrap();
    let mut again = wharf(dir.path()).arg("serve").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut stdout = BufReader::new(again.stdout.take().unwrap()).lines();
    let explicit = explicit_address(&printed_until(&mut stdout, |line| line.contains("explicit FTPS")).await);
    Ftp::login(explicit, "alice@acme", "third password").await;
    assert_eq!(std::fs::read(data.join("tls/cert.pem")).unwrap(), cert);
    again.kill().await.unwrap();
}

/// `wharf serve` on S3 configured only through the environment, with credentials from AWS's standard
/// variables; a tenant with a prefix of its own set from the CLI; secrets in no output.
#[tokio::test]
async fn serve_on_s3_from_the_environment_with_a_tenant_prefix_from_the_cli() {
    let (key_id, secret) = crate::support::s3::credentials();
    let dir = tempfile::tempdir().unwrap();
    let bucket = crate::support::s3::Bucket::create().await;
    let s3_env = |cmd: &mut Command| {
        cmd.env("WHARF_STORAGE__BACKEND", "s3")
            .env("WHARF_STORAGE__S3__ENDPOINT", crate::support::s3::endpoint())
            .env("WHARF_STORAGE__S3__BUCKET", &bucket.name)
            .env("WHARF_STORAGE__S3__FORCE_PATH_STYLE", "true")
            .env("AWS_REGION", crate::support::s3::region())
            .env("AWS_ACCESS_KEY_ID", &key_id)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("RUST_LOG", "debug");
    };
    let (ok, out, err) = run(dir.path(), &["tenant", "add", "acme", "--prefix", "drops/acme"], None).await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(dir.path(), &["tenant", "add", "bad", "--secret-ref", "plain-text"], None).await;
    assert!(!ok && err.contains("secret reference"), "{out}{err}");
    let (ok, out, err) =
        run(dir.path(), &["user", "add", "alice@acme", "--password-stdin"], Some("first password\n")).await;
    assert!(ok, "{out}{err}");
    let (ok, out, _) = run(dir.path(), &["tenant", "list"], None).await;
    assert!(ok && out.contains("s3://(default)/drops/acme/"), "{out}");

    let mut cmd = wharf(dir.path());
    s3_env(&mut cmd);
    let log = dir.path().join("serve.log");
    let mut child =
        cmd.arg("serve").stdout(Stdio::piped()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let printed = printed_until(&mut stdout, |line| line.contains("explicit FTPS")).await;
    let explicit = explicit_address(&printed);
    let mut ftp = Ftp::login(explicit, "alice@acme", "first password").await;
    assert_eq!(ftp.store("STOR", "hello.txt", b"to the bucket").await.code, 226);
    assert_eq!(bucket.get("drops/acme/hello.txt").await.as_deref(), Some(&b"to the bucket"[..]));
    child.kill().await.unwrap();
    let mut rest = String::new();
    while let Ok(Some(line)) = stdout.next_line().await {
        rest.push_str(&line);
    }
    let everything = format!("{}{rest}{}", printed.join("\n"), std::fs::read_to_string(&log).unwrap());
    assert!(everything.contains(&format!("S3 bucket {}", bucket.name)), "{everything}");
    assert!(!everything.contains(&secret), "the secret key appeared in wharf's output");
}

#[tokio::test]
async fn quotas_are_set_shown_and_usage_recomputed_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(dir.path(), &["tenant", "add", "acme"], None).await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) =
        run(dir.path(), &["user", "add", "alice@acme", "--password-stdin"], Some("first password\n")).await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(dir.path(), &["tenant", "quota", "acme", "--max-bytes", "1000"], None).await;
    assert!(ok && out.contains("max bytes 1000, max files unlimited"), "{out}{err}");
    let (ok, out, err) = run(dir.path(), &["user", "quota", "alice@acme", "--max-files", "3"], None).await;
    assert!(ok && out.contains("max bytes unlimited, max files 3"), "{out}{err}");
    let (ok, _, err) = run(dir.path(), &["tenant", "quota", "acme"], None).await;
    assert!(!ok && err.contains("required"), "a change is required: {err}");
    let (ok, _, err) =
        run(dir.path(), &["tenant", "quota", "acme", "--max-bytes", "5", "--unlimited-bytes"], None).await;
    assert!(!ok && err.contains("cannot be used with"), "{err}");

    let files = dir.path().join("wharf-data/storage/acme/in");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("a.txt"), b"12345").unwrap();
    let (ok, out, err) = run(dir.path(), &["usage", "recompute", "acme"], None).await;
    assert!(ok && out.contains("acme: 5 bytes in 1 files") && out.contains("alice@acme: 5 bytes"), "{out}{err}");
    let (ok, out, err) = run(dir.path(), &["usage", "show"], None).await;
    assert!(ok, "{out}{err}");
    let acme = out.lines().find(|l| l.starts_with("acme")).unwrap_or_else(|| panic!("{out}"));
    assert_eq!(acme.split_whitespace().collect::<Vec<_>>(), ["acme", "5", "1000", "1", "unlimited", "0"]);
}

#[tokio::test]
async fn a_tenants_tls_policy_is_overridden_shown_and_reset_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(dir.path(), &["tenant", "add", "acme"], None).await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(dir.path(), &["tenant", "tls", "acme"], None).await;
    assert!(ok && out.contains("follows TLS policy the server's"), "{out}{err}");
    let args = ["tenant", "tls", "acme", "--require-prot-p", "no", "--min-tls-version", "1.3"];
    let (ok, out, err) = run(dir.path(), &args, None).await;
    assert!(ok && out.contains(r#"{"require_prot_p":false,"min_tls_version":"1.3"}"#), "{out}{err}");
    // Options left out keep their value; `default` clears one.
    let (ok, out, err) = run(dir.path(), &["tenant", "tls", "acme", "--require-prot-p", "default"], None).await;
    assert!(ok && out.contains(r#"{"min_tls_version":"1.3"}"#), "{out}{err}");
    let (ok, _, err) = run(dir.path(), &["tenant", "tls", "acme", "--data-session-resumption", "disabled"], None).await;
    assert!(!ok && err.contains("server-wide"), "{err}");
    let (ok, _, err) = run(dir.path(), &["tenant", "tls", "nowhere", "--require-prot-p", "no"], None).await;
    assert!(!ok && err.contains("nowhere"), "{err}");
}

/// `tenant disable/enable/delete` and `user disable/enable`, seen through the directory they change.
#[tokio::test]
async fn tenants_and_users_are_disabled_enabled_and_deleted_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["tenant", "add", "acme"][..], &["tenant", "add", "beta"]] {
        let (ok, out, err) = run(dir.path(), args, None).await;
        assert!(ok, "{out}{err}");
    }
    let (ok, out, err) =
        run(dir.path(), &["user", "add", "alice@acme", "--password-stdin"], Some("long password\n")).await;
    assert!(ok, "{out}{err}");
    let url = format!("sqlite://{}", dir.path().join("wharf-data/wharf.db").display());
    let directory = wharf::directory::open(&url).await.unwrap();
    let acme = directory.tenant_by_name("acme").await.unwrap().unwrap();
    let enabled = |record: wharf::directory::LoginRecord| (record.tenant.enabled, record.user.enabled);

    for (args, expected) in [
        (&["user", "disable", "alice@acme"][..], (true, false)),
        (&["tenant", "disable", "acme"], (false, false)),
        (&["user", "enable", "alice@acme"], (false, true)),
        (&["tenant", "enable", "acme"], (true, true)),
    ] {
        let (ok, out, err) = run(dir.path(), args, None).await;
        assert!(ok, "{args:?}: {out}{err}");
        let record = directory.login_record(acme.id, "alice").await.unwrap().unwrap();
        assert_eq!(enabled(record), expected, "after {args:?}");
    }
    let (ok, _, err) = run(dir.path(), &["user", "disable", "nobody@acme"], None).await;
    assert!(!ok && !err.is_empty(), "an unknown user is an error: {err}");

    let (ok, out, err) = run(dir.path(), &["tenant", "delete", "acme"], None).await;
    assert!(ok && out.contains("files stay"), "{out}{err}");
    assert_eq!(directory.tenant_by_name("acme").await.unwrap(), None);
    assert!(directory.list_users(None).await.unwrap().is_empty(), "its users went with it");
    assert!(directory.tenant_by_name("beta").await.unwrap().is_some(), "other tenants stay");
    let (ok, _, err) = run(dir.path(), &["tenant", "delete", "acme"], None).await;
    assert!(!ok && err.contains("acme"), "deleting it twice is an error naming it: {err}");
}

/// The leaf certificate (DER) the server presents on its implicit FTPS port.
async fn served_certificate(implicit: std::net::SocketAddr) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(implicit).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(crate::support::raw::client_config());
    let name = crate::support::raw::server_name();
    let stream = connector.connect(name, tcp).await.unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn sighup_reloads_a_renewed_certificate_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = wharf(dir.path()).arg("serve").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let printed = printed_until(&mut stdout, |line| line.contains("curl --ssl-reqd")).await;
    let line = printed.iter().find(|l| l.contains("implicit FTPS")).unwrap();
    let implicit: std::net::SocketAddr = line.rsplit(' ').next().unwrap().parse().unwrap();
    let tls = dir.path().join("wharf-data/tls");
    let first = served_certificate(implicit).await;

    // The operator drops renewed files in place and sends SIGHUP.
    let renewed = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(tls.join("cert.pem"), renewed.cert.pem()).unwrap();
    std::fs::write(tls.join("key.pem"), renewed.key_pair.serialize_pem()).unwrap();
    assert_eq!(served_certificate(implicit).await, first, "nothing changes before the signal");
    let pid = i32::try_from(child.id().unwrap()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let mut served = first.clone();
    for _ in 0..100 {
        served = served_certificate(implicit).await;
        if served != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served, renewed.cert.der().to_vec(), "the renewed certificate is served");

    // A broken file on the next SIGHUP keeps the working certificate.
    std::fs::write(tls.join("cert.pem"), "not a certificate").unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(served_certificate(implicit).await, renewed.cert.der().to_vec());
    assert!(child.try_wait().unwrap().is_none(), "still running");
    child.kill().await.unwrap();
}

/// `log.format = "json"`: one JSON object per line; each login and each transfer is a record of its own
/// with the facts a log pipeline needs.
#[tokio::test]
async fn json_logs_carry_one_record_per_login_and_per_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(dir.path(), &["tenant", "add", "acme"], None).await;
    assert!(ok, "{out}{err}");
    let (ok, out, err) =
        run(dir.path(), &["user", "add", "alice@acme", "--password-stdin"], Some("first password\n")).await;
    assert!(ok, "{out}{err}");
    let mut cmd = wharf(dir.path());
    cmd.arg("serve").env("WHARF_LOG__FORMAT", "json").stderr(Stdio::piped());
    let Serving { mut child, explicit, stdout: _stdout } = serving(cmd).await;
    let mut ftp = Ftp::login(explicit, "alice@acme", "first password").await;
    assert_eq!(ftp.store("STOR", "report.csv", b"a,b\n1,2\n").await.code, 226);

    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut records: Vec<serde_json::Value> = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while !records.iter().any(|r| r["target"] == "wharf::transfer") {
            let line = stderr.next_line().await.unwrap().expect("wharf is still running");
            let record = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            records.push(record);
        }
    })
    .await
    .expect("a transfer record");
    let login = records.iter().find(|r| r["target"] == "wharf::login").expect("a login record");
    assert_eq!(
        (login["tenant"].as_str(), login["user"].as_str(), login["result"].as_str()),
        (Some("acme"), Some("alice"), Some("ok"))
    );
    let transfer = records.iter().find(|r| r["target"] == "wharf::transfer").unwrap();
    assert_eq!(transfer["command"], "STOR");
    assert_eq!(transfer["path"], "/report.csv");
    assert_eq!(transfer["bytes"], 8);
    assert_eq!(transfer["code"], 226);
    assert_eq!(transfer["session"], login["session"], "both records name the same session");
    assert!(transfer["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    child.kill().await.unwrap();
}

/// `wharf token create` bootstraps the admin API: its secret works at once on a running server, the list
/// never shows secrets, and a revoked token gets 401.
#[tokio::test]
async fn the_first_operator_token_comes_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = wharf(dir.path())
        .arg("serve")
        .env("WHARF_ADMIN__ENABLED", "true")
        .env("WHARF_ADMIN__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let printed = printed_until(&mut stdout, |line| line.contains("admin API")).await;
    let line = printed.iter().find(|l| l.contains("admin API")).unwrap();
    let base = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned();

    let (ok, out, err) = run(dir.path(), &["token", "create", "ops", "--operator"], None).await;
    assert!(ok, "{out}{err}");
    let secret = out.lines().last().unwrap().trim().to_owned();
    let (ok, _, err) = run(dir.path(), &["token", "create", "ops", "--operator"], None).await;
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = run(dir.path(), &["token", "create", "x", "--tenant", "nosuch"], None).await;
    assert!(!ok && err.contains("nosuch"), "{err}");
    let (ok, out, _) = run(dir.path(), &["token", "list"], None).await;
    assert!(ok && out.contains("ops") && out.contains("operator") && !out.contains(&secret), "{out}");

    let http = reqwest::Client::new();
    let tenants = format!("{base}/tenants");
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(http.get(&tenants).bearer_auth(&secret).send().await.unwrap()), 200);
    assert_eq!(status(http.get(&tenants).send().await.unwrap()), 401);
    let id = out.lines().find(|l| l.contains("ops")).unwrap().split_whitespace().next().unwrap().to_owned();
    let (ok, out, err) = run(dir.path(), &["token", "revoke", &id], None).await;
    assert!(ok, "{out}{err}");
    assert_eq!(status(http.get(&tenants).bearer_auth(&secret).send().await.unwrap()), 401);
    child.kill().await.unwrap();
}
