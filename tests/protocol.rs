//! The FTP protocol as a client sees it: every command wharf implements, with its exact reply codes
//! (RFC 959, RFC 2228/4217, RFC 2389, RFC 2428, RFC 3659, RFC 2640, RFC 7151), driven over real sockets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::support::raw::{connector, server_name, Ftp, Reply};
use crate::support::{bytes, Wharf, PASSWORD};

fn reply_lines(reply: &Reply) -> Vec<&str> {
    reply.text.lines().collect()
}

/// Asserts the RFC 959 multi-line shape: `ccc-` first, `ccc ` last, and nothing between that could be
/// taken for the end of the reply.
fn assert_multi_line(reply: &Reply, code: u16) {
    let lines = reply_lines(reply);
    assert!(lines.len() >= 2, "{reply:?}");
    assert!(lines[0].starts_with(&format!("{code}-")), "{reply:?}");
    assert!(lines[lines.len() - 1].starts_with(&format!("{code} ")), "{reply:?}");
    for middle in &lines[1..lines.len() - 1] {
        assert!(!middle.starts_with(&format!("{code} ")), "{reply:?}");
    }
}

/// The listing's lines (CR LF stripped).
fn listing_lines(listing: &str) -> Vec<&str> {
    listing.lines().collect()
}

fn pasv_port(reply: &Reply) -> (String, u16) {
    let inner = reply.text.split('(').nth(1).and_then(|s| s.split(')').next()).expect("PASV address");
    let parts: Vec<u16> = inner.split(',').map(|n| n.trim().parse().unwrap()).collect();
    assert_eq!(parts.len(), 6, "{reply:?}");
    let host = format!("{}.{}.{}.{}", parts[0], parts[1], parts[2], parts[3]);
    (host, parts[4] * 256 + parts[5])
}

/// Reads a plain (PROT C) data connection to its end.
async fn read_plain(mut tcp: TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    tcp.read_to_end(&mut data).await.unwrap();
    data
}

// --- Login and security (RFC 959 §4.1.1, RFC 4217) ---------------------------------------------------

#[tokio::test]
async fn user_pass_after_auth_tls_logs_in() {
    let wharf = Wharf::start().await;
    let (mut ftp, greeting) = Ftp::connect(wharf.explicit).await;
    assert_eq!(greeting.code, 220);
    ftp.auth_tls().await;
    let user = ftp.cmd("USER alice@acme").await;
    assert_eq!(user.code, 331, "{user:?}");
    let pass = ftp.cmd(&format!("PASS {PASSWORD}")).await;
    assert_eq!(pass.code, 230, "{pass:?}");
    assert_eq!(ftp.cmd("PWD").await.code, 257);
}

#[tokio::test]
async fn auth_ssl_is_an_alias_of_auth_tls() {
    let wharf = Wharf::start().await;
    let tcp = TcpStream::connect(wharf.explicit).await.unwrap();
    let mut plain = BufReader::new(tcp);
    let mut line = String::new();
    plain.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("220 "), "{line:?}");
    plain.get_mut().write_all(b"AUTH SSL\r\n").await.unwrap();
    line.clear();
    plain.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("234 "), "{line:?}");
    let tls = connector(&crate::support::raw::client_config())
        .connect(server_name(), plain.into_inner())
        .await
        .expect("TLS handshake after AUTH SSL");
    let mut secure = BufReader::new(tls);
    secure.get_mut().write_all(b"PBSZ 0\r\n").await.unwrap();
    line.clear();
    secure.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("200 "), "{line:?}");
}

#[tokio::test]
async fn auth_tls_twice_is_refused() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("AUTH TLS").await.code, 503);
}

#[tokio::test]
async fn pbsz_and_prot_need_tls_and_prot_c_is_refused_by_default() {
    let wharf = Wharf::start().await;
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    assert_eq!(ftp.cmd("PBSZ 0").await.code, 503);
    assert_eq!(ftp.cmd("PROT P").await.code, 503);
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd("PBSZ 0").await.code, 200);
    let clear = ftp.cmd("PROT C").await;
    assert_eq!(clear.code, 534, "{clear:?}");
    assert_eq!(ftp.cmd("PROT P").await.code, 200);
    assert_eq!(ftp.cmd("CCC").await.code, 534);
}

#[tokio::test]
async fn transfer_without_prot_p_is_refused_with_521() {
    let wharf = Wharf::start().await;
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);
    assert_eq!(ftp.cmd("LIST").await.code, 521);
}

#[tokio::test]
async fn prot_c_is_allowed_when_policy_relaxed_and_data_flows_in_clear() {
    let wharf = Wharf::start_with(|cfg| cfg.tls.require_prot_p = false).await;
    wharf.put_file("clear.txt", b"in the clear").await;
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd("PBSZ 0").await.code, 200);
    assert_eq!(ftp.cmd("PROT C").await.code, 200);
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);
    let tcp = ftp.epsv().await;
    assert_eq!(ftp.cmd("RETR clear.txt").await.code, 150);
    assert_eq!(read_plain(tcp).await, b"in the clear");
    assert_eq!(ftp.reply().await.code, 226);
}

#[tokio::test]
async fn pass_without_user_is_a_sequence_error() {
    let wharf = Wharf::start().await;
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 503);
}

#[tokio::test]
async fn commands_before_login_get_530() {
    let wharf = Wharf::start().await;
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    ftp.auth_tls().await;
    for command in ["PWD", "LIST", "CWD /", "RETR x", "STOR x", "MKD d", "SIZE x", "PASV", "EPSV", "TYPE I"] {
        let reply = ftp.cmd(command).await;
        assert_eq!(reply.code, 530, "{command}: {reply:?}");
    }
}

async fn timed_login(ftp: &mut Ftp, user: &str, password: &str) -> (Reply, Duration) {
    assert_eq!(ftp.cmd(&format!("USER {user}")).await.code, 331);
    let started = Instant::now();
    let reply = ftp.cmd(&format!("PASS {password}")).await;
    (reply, started.elapsed())
}

#[tokio::test]
async fn failed_logins_look_alike_and_take_the_configured_delay() {
    let delay = Duration::from_millis(300);
    let wharf = Wharf::start_with(|cfg| {
        cfg.ftp.login_failure_delay_ms = 300;
        cfg.ftp.max_login_attempts = 10;
    })
    .await;
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    ftp.auth_tls().await;
    let (wrong_password, t1) = timed_login(&mut ftp, "alice@acme", "not the password").await;
    let (unknown_user, t2) = timed_login(&mut ftp, "mallory@acme", PASSWORD).await;
    let (unknown_tenant, t3) = timed_login(&mut ftp, "alice@nowhere", PASSWORD).await;
    let (no_tenant, t4) = timed_login(&mut ftp, "alice", PASSWORD).await;
    for (reply, took) in [(&wrong_password, t1), (&unknown_user, t2), (&unknown_tenant, t3), (&no_tenant, t4)] {
        assert_eq!(reply.code, 530, "{reply:?}");
        assert!(took >= delay, "a failed login answered after {took:?}, before the {delay:?} delay");
    }
    assert_eq!(wrong_password.text, unknown_user.text);
    assert_eq!(wrong_password.text, unknown_tenant.text);
    assert_eq!(wrong_password.text, no_tenant.text);
}

#[tokio::test]
async fn too_many_failed_logins_get_421_and_a_closed_connection() {
    let wharf = Wharf::start_with(|cfg| cfg.ftp.max_login_attempts = 3).await;
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    ftp.auth_tls().await;
    for _ in 0..2 {
        assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
        assert_eq!(ftp.cmd("PASS wrong").await.code, 530);
    }
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    assert_eq!(ftp.cmd("PASS wrong").await.code, 421);
    assert!(ftp.is_closed().await);
}

#[tokio::test]
async fn rein_forgets_the_login() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("REIN").await.code, 220);
    assert_eq!(ftp.cmd("PWD").await.code, 530);
    // The control connection stays encrypted, so a new user can log in at once.
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);
}

#[tokio::test]
async fn quit_says_goodbye_and_closes() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("QUIT").await.code, 221);
    assert!(ftp.is_closed().await);
}

// --- HOST (RFC 7151) ------------------------------------------------------------------------------------

#[tokio::test]
async fn host_selects_the_tenant_so_a_bare_user_name_logs_in() {
    let wharf = Wharf::start().await;
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    wharf.directory.add_hostname(acme.id, "files.acme.test").await.unwrap();
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    assert_eq!(ftp.cmd("HOST files.acme.test").await.code, 220);
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd("PBSZ 0").await.code, 200);
    assert_eq!(ftp.cmd("PROT P").await.code, 200);
    assert_eq!(ftp.cmd("USER alice").await.code, 331);
    let pass = ftp.cmd(&format!("PASS {PASSWORD}")).await;
    assert_eq!(pass.code, 230, "{pass:?}");
    assert_eq!(ftp.cmd("HOST files.acme.test").await.code, 503);
}

#[tokio::test]
async fn sni_name_selects_the_tenant_so_a_bare_user_name_logs_in() {
    let wharf = Wharf::start().await;
    let acme = wharf.directory.tenant_by_name("acme").await.unwrap().unwrap();
    wharf.directory.add_hostname(acme.id, "files.acme.test").await.unwrap();
    wharf.add_user("globex", "alice", "globex's own password").await;
    let sni = || rustls::pki_types::ServerName::try_from("files.acme.test").unwrap();

    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    ftp.auth_tls_as(sni()).await;
    assert_eq!(ftp.cmd("USER alice").await.code, 331);
    let pass = ftp.cmd(&format!("PASS {PASSWORD}")).await;
    assert_eq!(pass.code, 230, "{pass:?}");
    assert!(ftp.cmd("STAT").await.text.contains("alice@acme"));

    // A login naming another tenant than the SNI name's is refused, not rerouted.
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    ftp.auth_tls_as(sni()).await;
    assert_eq!(ftp.cmd("USER alice@globex").await.code, 331);
    assert_eq!(ftp.cmd("PASS globex's own password").await.code, 530);

    // Without SNI or HOST a bare user name names no tenant.
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd("USER alice").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 530);
}

#[tokio::test]
async fn host_unknown_is_504() {
    let wharf = Wharf::start().await;
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    assert_eq!(ftp.cmd("HOST nobody.example").await.code, 504);
}

// --- Capabilities and status (RFC 2389, RFC 2640, RFC 3659 §7.9, RFC 959 §4.1.3) ---------------------

#[tokio::test]
async fn feat_lists_every_extension_in_rfc_2389_form() {
    let wharf = Wharf::start().await;
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    let feat = ftp.cmd("FEAT").await;
    assert_eq!(feat.code, 211);
    assert_multi_line(&feat, 211);
    let lines = reply_lines(&feat);
    assert_eq!(lines[lines.len() - 1], "211 End");
    let middle = &lines[1..lines.len() - 1];
    for line in middle {
        assert!(line.starts_with(' '), "feature line without the leading space: {line:?}");
    }
    let features: Vec<&str> = middle.iter().map(|l| l.trim()).collect();
    for wanted in ["AUTH TLS", "PBSZ", "PROT", "UTF8", "EPSV", "EPRT", "SIZE", "MDTM", "REST STREAM", "HOST", "TVFS"] {
        assert!(features.contains(&wanted), "FEAT lacks {wanted}: {features:?}");
    }
    assert!(features.contains(&"HASH SHA-256*;CRC32"), "{features:?}");
    // MFMT only where a file's time can be set (not on S3).
    assert_eq!(features.contains(&"MFMT"), wharf.s3.is_none(), "{features:?}");
    let mlst = features.iter().find(|f| f.starts_with("MLST ")).expect("MLST in FEAT");
    for fact in ["type", "size", "modify", "perm"] {
        assert!(mlst.contains(fact), "{mlst}");
    }
}

#[tokio::test]
async fn opts_utf8_on_is_accepted() {
    let wharf = Wharf::start().await;
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    assert_eq!(ftp.cmd("OPTS UTF8 ON").await.code, 200);
}

#[tokio::test]
async fn opts_mlst_selects_the_facts_mlsd_shows() {
    let wharf = Wharf::start().await;
    wharf.put_file("f.txt", b"12345").await;
    let mut ftp = wharf.login().await;
    let opts = ftp.cmd("OPTS MLST type;size;").await;
    assert_eq!(opts.code, 200, "{opts:?}");
    let (listing, reply) = ftp.listing("MLSD").await;
    assert_eq!(reply.code, 226);
    assert_eq!(listing_lines(&listing), vec!["type=file;size=5; f.txt"]);
}

#[tokio::test]
async fn syst_noop_help_allo() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("SYST").await.code, 215);
    assert_eq!(ftp.cmd("NOOP").await.code, 200);
    assert_eq!(ftp.cmd("ALLO 1024").await.code, 200);
    assert_eq!(ftp.cmd("ALLO").await.code, 202);
    let help = ftp.cmd("HELP").await;
    assert_eq!(help.code, 214);
    assert_multi_line(&help, 214);
    assert!(help.text.contains("RETR"), "{help:?}");
}

#[tokio::test]
async fn stat_shows_the_session_and_stat_path_lists() {
    let wharf = Wharf::start().await;
    wharf.put_file("f.txt", b"12345").await;
    let mut ftp = wharf.login().await;
    let status = ftp.cmd("STAT").await;
    assert_eq!(status.code, 211);
    assert_multi_line(&status, 211);
    assert!(status.text.contains("alice@acme"), "{status:?}");
    let listing = ftp.cmd("STAT /").await;
    assert_eq!(listing.code, 212, "directory status");
    assert_multi_line(&listing, 212);
    assert_eq!(ftp.cmd("STAT /f.txt").await.code, 213, "file status");
    let line = reply_lines(&listing).into_iter().find(|l| l.ends_with(" f.txt")).expect("f.txt in STAT /");
    assert!(line.trim_start().starts_with("-rw") && line.contains(" 5 "), "{line:?}");
    assert_eq!(ftp.cmd("STAT /missing").await.code, 550);
}

// --- Navigation and directories (RFC 959 §4.1.1, §4.1.3; RFC 775) ---------------------------------------

#[tokio::test]
async fn pwd_cwd_cdup_and_their_x_variants() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("PWD").await.text, "257 \"/\" is the current directory");
    assert_eq!(ftp.cmd("MKD a").await.code, 257);
    assert_eq!(ftp.cmd("XMKD a/b").await.code, 257);
    assert_eq!(ftp.cmd("CWD a").await.code, 250);
    assert_eq!(ftp.cmd("XCWD b").await.code, 250);
    assert!(ftp.cmd("XPWD").await.text.starts_with("257 \"/a/b\""));
    assert_eq!(ftp.cmd("CDUP").await.code, 250);
    assert!(ftp.cmd("PWD").await.text.starts_with("257 \"/a\""));
    assert_eq!(ftp.cmd("XCUP").await.code, 250);
    assert!(ftp.cmd("PWD").await.text.starts_with("257 \"/\""));
    assert_eq!(ftp.cmd("CWD missing").await.code, 550);
    wharf.put_file("file.txt", b"x").await;
    assert_eq!(ftp.cmd("CWD file.txt").await.code, 550);
}

#[tokio::test]
async fn a_quote_in_a_directory_name_is_doubled_in_257() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    let mkd = ftp.cmd("MKD say \"hi\"").await;
    assert_eq!(mkd.code, 257);
    assert!(mkd.text.starts_with("257 \"/say \"\"hi\"\"\""), "{mkd:?}");
    assert_eq!(ftp.cmd("CWD say \"hi\"").await.code, 250);
    let pwd = ftp.cmd("PWD").await;
    assert!(pwd.text.starts_with("257 \"/say \"\"hi\"\"\" "), "{pwd:?}");
    assert!(wharf.is_dir("say \"hi\"").await);
}

#[tokio::test]
async fn mkd_rmd_and_their_errors() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    let mkd = ftp.cmd("MKD d").await;
    assert_eq!(mkd.code, 257);
    assert!(mkd.text.contains("\"/d\""), "{mkd:?}");
    assert_eq!(ftp.cmd("MKD d").await.code, 550, "exists already");
    assert_eq!(ftp.cmd("MKD no/such/parent").await.code, 550);
    wharf.put_file("d/inside.txt", b"x").await;
    assert_eq!(ftp.cmd("RMD d").await.code, 550, "not empty");
    assert_eq!(ftp.cmd("DELE d/inside.txt").await.code, 250);
    assert_eq!(ftp.cmd("RMD d").await.code, 250);
    assert!(!wharf.exists("d").await);
    assert_eq!(ftp.cmd("XMKD e").await.code, 257);
    assert_eq!(ftp.cmd("XRMD e").await.code, 250);
    assert_eq!(ftp.cmd("RMD e").await.code, 550, "gone");
}

#[tokio::test]
async fn dele_removes_a_file_and_a_missing_one_is_550() {
    let wharf = Wharf::start().await;
    wharf.put_file("f.txt", b"x").await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("DELE f.txt").await.code, 250);
    assert!(!wharf.exists("f.txt").await);
    assert_eq!(ftp.cmd("DELE f.txt").await.code, 550);
}

#[tokio::test]
async fn rename_files_and_directories() {
    let wharf = Wharf::start().await;
    wharf.put_file("old.txt", b"content").await;
    wharf.put_file("dir/inner.txt", b"inner").await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("RNFR old.txt").await.code, 350);
    assert_eq!(ftp.cmd("RNTO new.txt").await.code, 250);
    assert_eq!(wharf.read_file("new.txt").await, b"content");
    assert!(!wharf.exists("old.txt").await);
    assert_eq!(ftp.cmd("RNFR dir").await.code, 350);
    assert_eq!(ftp.cmd("RNTO moved").await.code, 250);
    assert_eq!(wharf.read_file("moved/inner.txt").await, b"inner");
    assert_eq!(ftp.cmd("RNFR missing").await.code, 550);
    assert_eq!(ftp.cmd("RNTO anything").await.code, 503);
    // RNTO must follow RNFR directly.
    assert_eq!(ftp.cmd("RNFR new.txt").await.code, 350);
    assert_eq!(ftp.cmd("NOOP").await.code, 200);
    assert_eq!(ftp.cmd("RNTO newer.txt").await.code, 503);
}

// --- Transfer parameters (RFC 959 §4.1.2) ----------------------------------------------------------------

#[tokio::test]
async fn type_mode_stru_accept_what_wharf_does_and_refuse_the_rest() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("TYPE A").await.code, 200);
    assert_eq!(ftp.cmd("TYPE I").await.code, 200);
    assert_eq!(ftp.cmd("TYPE E").await.code, 504);
    assert_eq!(ftp.cmd("TYPE Z").await.code, 501);
    assert_eq!(ftp.cmd("MODE S").await.code, 200);
    assert_eq!(ftp.cmd("MODE B").await.code, 504);
    assert_eq!(ftp.cmd("STRU F").await.code, 200);
    assert_eq!(ftp.cmd("STRU R").await.code, 504);
}

#[tokio::test]
async fn type_a_converts_line_ends_both_ways() {
    let wharf = Wharf::start().await;
    wharf.put_file("unix.txt", b"one\ntwo\n").await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("TYPE A").await.code, 200);
    let (data, reply) = ftp.retr("unix.txt").await;
    assert_eq!(reply.code, 226);
    assert_eq!(data, b"one\r\ntwo\r\n");
    assert_eq!(ftp.store("STOR", "up.txt", b"three\r\nfour\r\n").await.code, 226);
    assert_eq!(wharf.read_file("up.txt").await, b"three\nfour\n");
    assert_eq!(ftp.cmd("TYPE I").await.code, 200);
    let (data, _) = ftp.retr("unix.txt").await;
    assert_eq!(data, b"one\ntwo\n", "TYPE I sends bytes unchanged");
}

// --- Data connections (RFC 959 §4.1.2, RFC 2428, RFC 4217 §9) ---------------------------------------

#[tokio::test]
async fn pasv_announces_loopback_and_its_port_works() {
    let wharf = Wharf::start().await;
    wharf.put_file("f.bin", &bytes(10_000, 3)).await;
    let mut ftp = wharf.login().await;
    let pasv = ftp.cmd("PASV").await;
    assert_eq!(pasv.code, 227, "{pasv:?}");
    let (host, port) = pasv_port(&pasv);
    assert_eq!(host, "127.0.0.1");
    let tcp = TcpStream::connect((host.as_str(), port)).await.unwrap();
    assert_eq!(ftp.cmd("RETR f.bin").await.code, 150);
    let mut tls = ftp.secure(tcp).await.unwrap();
    let mut data = Vec::new();
    tls.read_to_end(&mut data).await.unwrap();
    drop(tls);
    assert_eq!(data, bytes(10_000, 3));
    assert_eq!(ftp.reply().await.code, 226);
}

#[tokio::test]
async fn epsv_for_the_other_address_family_is_522() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("EPSV 1").await.code, 229);
    let reply = ftp.cmd("EPSV 2").await;
    assert_eq!(reply.code, 522, "{reply:?}");
    assert!(reply.text.contains("(1)"), "names the supported family: {reply:?}");
}

#[tokio::test]
async fn epsv_all_locks_out_pasv_and_port() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    assert!(ftp.cmd("EPSV").await.text.starts_with("229 "));
    assert_eq!(ftp.cmd("EPSV ALL").await.code, 200);
    assert_eq!(ftp.cmd("PASV").await.code, 503);
    assert_eq!(ftp.cmd("PORT 127,0,0,1,200,10").await.code, 503);
    assert_eq!(ftp.cmd("EPRT |1|127.0.0.1|51210|").await.code, 503);
    let (listing, reply) = ftp.listing("LIST").await;
    assert_eq!(reply.code, 226, "EPSV still works");
    assert_eq!(listing, "");
}

/// Active mode: the server connects to a listener of ours and is the TLS *server* on that connection.
async fn active_retr(ftp: &mut Ftp, command: impl FnOnce(SocketAddr) -> String, path: &str) -> (Vec<u8>, Reply) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reply = ftp.cmd(&command(addr)).await;
    assert_eq!(reply.code, 200, "{reply:?}");
    assert_eq!(ftp.cmd(&format!("RETR {path}")).await.code, 150);
    let (tcp, _) = listener.accept().await.unwrap();
    let mut tls = connector(&ftp.tls).connect(server_name(), tcp).await.expect("TLS on the active connection");
    let mut data = Vec::new();
    tls.read_to_end(&mut data).await.unwrap();
    drop(tls);
    (data, ftp.reply().await)
}

#[tokio::test]
async fn port_active_mode_transfers_over_tls() {
    let wharf = Wharf::start().await;
    wharf.put_file("f.bin", &bytes(50_000, 4)).await;
    let mut ftp = wharf.login().await;
    let port = |addr: SocketAddr| format!("PORT 127,0,0,1,{},{}", addr.port() >> 8, addr.port() & 0xff);
    let (data, reply) = active_retr(&mut ftp, port, "f.bin").await;
    assert_eq!(reply.code, 226, "{reply:?}");
    assert_eq!(data, bytes(50_000, 4));
}

#[tokio::test]
async fn eprt_active_mode_transfers_over_tls() {
    let wharf = Wharf::start().await;
    wharf.put_file("f.bin", &bytes(50_000, 5)).await;
    let mut ftp = wharf.login().await;
    let eprt = |addr: SocketAddr| format!("EPRT |1|127.0.0.1|{}|", addr.port());
    let (data, reply) = active_retr(&mut ftp, eprt, "f.bin").await;
    assert_eq!(reply.code, 226, "{reply:?}");
    assert_eq!(data, bytes(50_000, 5));
}

#[tokio::test]
async fn port_to_another_host_or_a_privileged_port_is_refused() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("PORT 10,1,2,3,200,10").await.code, 504);
    assert_eq!(ftp.cmd("PORT 127,0,0,1,0,21").await.code, 504);
    assert_eq!(ftp.cmd("EPRT |1|10.1.2.3|51210|").await.code, 504);
}

/// How long a test waits for a data-connection handshake that wharf should answer at once; only a wharf
/// that leaves the handshake until the transfer command hits it.
const EARLY_HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// The data connection's TLS handshake, before any transfer command; fails if wharf leaves it waiting.
async fn early_handshake(ftp: &Ftp, tcp: TcpStream) -> tokio_rustls::client::TlsStream<TcpStream> {
    tokio::time::timeout(EARLY_HANDSHAKE_LIMIT, ftp.secure(tcp))
        .await
        .expect("the data handshake waited for the transfer command")
        .expect("data handshake")
}

/// curl starts the TLS handshake on a passive data connection as soon as it has connected, and reads the
/// replies to TYPE, SIZE and the transfer command only once that handshake is done: no reply may wait for
/// the transfer command to arrive first.
#[tokio::test]
async fn a_data_handshake_begun_before_the_transfer_command_is_answered_without_it() {
    let wharf = Wharf::start().await;
    let data = bytes(300_000, 21);
    wharf.put_file("early.bin", &data).await;
    let mut ftp = wharf.login().await;

    let tcp = ftp.epsv().await;
    let mut tls = early_handshake(&ftp, tcp).await;
    assert_eq!(ftp.cmd("TYPE I").await.code, 200);
    assert_eq!(ftp.cmd("SIZE early.bin").await.text, format!("213 {}", data.len()));
    assert_eq!(ftp.cmd("RETR early.bin").await.code, 150);
    let mut back = Vec::new();
    tls.read_to_end(&mut back).await.unwrap();
    drop(tls);
    assert!(back == data, "download through an early handshake differs");
    assert_eq!(ftp.reply().await.code, 226);

    // The same for an upload.
    let tcp = ftp.epsv().await;
    let mut tls = early_handshake(&ftp, tcp).await;
    assert_eq!(ftp.cmd("STOR up.bin").await.code, 150);
    tls.write_all(&data).await.unwrap();
    tls.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest).await;
    let reply = ftp.reply().await;
    assert_eq!(reply.code, 226, "{reply:?}");
    assert!(wharf.read_file("up.bin").await == data, "upload through an early handshake differs");
}

/// Under TLS 1.3 wharf holds back reading an early handshake's last message until the transfer command
/// names the direction; under TLS 1.2 the client waits for the server's Finished, so nothing may be held
/// back. Several downloads in a row, each through an early handshake, under both versions.
#[tokio::test]
async fn early_data_handshakes_complete_under_tls12_and_tls13_and_keep_resuming() {
    let wharf = Wharf::start().await;
    let data = bytes(70_000, 23);
    wharf.put_file("early.bin", &data).await;
    for versions in [crate::tls_policy::TLS12, crate::tls_policy::TLS13] {
        let (mut ftp, greeting) =
            Ftp::connect_with(wharf.explicit, crate::tls_policy::verifying_config(&wharf, versions)).await;
        assert_eq!(greeting.code, 220);
        ftp.auth_tls().await;
        assert_eq!(ftp.cmd("PBSZ 0").await.code, 200);
        assert_eq!(ftp.cmd("PROT P").await.code, 200);
        assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
        assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);
        for round in 0..12 {
            let tcp = ftp.epsv().await;
            let mut tls = early_handshake(&ftp, tcp).await;
            let opening = ftp.cmd("RETR early.bin").await;
            assert_eq!(opening.code, 150, "{versions:?} round {round}: {opening:?}");
            let mut back = Vec::new();
            tls.read_to_end(&mut back).await.unwrap();
            drop(tls);
            assert!(back == data, "{versions:?} round {round}: the download differs");
            assert_eq!(ftp.reply().await.code, 226, "{versions:?} round {round}");
        }
    }
}

/// A client that starts its data handshake early and names the transfer only later than
/// `data_connect_timeout_secs` (here 1 s) still gets it: the wait for the command is not the handshake's.
#[tokio::test]
async fn an_early_data_handshake_waits_for_a_late_transfer_command() {
    let wharf = Wharf::start_with(|c| c.ftp.data_connect_timeout_secs = 1).await;
    let data = bytes(10_000, 24);
    wharf.put_file("late.bin", &data).await;
    let mut ftp = wharf.login().await;
    let tcp = ftp.epsv().await;
    let mut tls = early_handshake(&ftp, tcp).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let opening = ftp.cmd("RETR late.bin").await;
    assert_eq!(opening.code, 150, "{opening:?}");
    let mut back = Vec::new();
    tls.read_to_end(&mut back).await.unwrap();
    assert!(back == data, "the late download differs");
    assert_eq!(ftp.reply().await.code, 226);
}

/// An early handshake is held to the same resumption policy as one after the 150: a data connection that
/// does not resume the control connection's session gets 522, however early it came.
#[tokio::test]
async fn an_early_data_handshake_that_does_not_resume_is_refused_with_522() {
    let wharf = Wharf::start().await;
    wharf.put_file("f.bin", &bytes(1000, 22)).await;
    let mut ftp = wharf.login().await;
    let tcp = ftp.epsv().await;
    let stranger = crate::support::raw::client_config_without_resumption();
    // Whether the server finishes the handshake or closes it first, the transfer must not happen.
    let early = tokio::spawn(async move {
        let mut data = Vec::new();
        if let Ok(mut tls) = connector(&stranger).connect(server_name(), tcp).await {
            let _ = tls.read_to_end(&mut data).await;
        }
        data
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let opening = ftp.cmd("RETR f.bin").await;
    let reply = if opening.code == 150 { ftp.reply().await } else { opening };
    assert_eq!(reply.code, 522, "{reply:?}");
    assert!(early.await.unwrap().is_empty(), "no file bytes on a connection that did not resume");
    // The session goes on.
    let (back, reply) = ftp.retr("f.bin").await;
    assert_eq!(reply.code, 226, "{reply:?}");
    assert_eq!(back, bytes(1000, 22));
}

// --- Listings (RFC 959 §4.1.3, RFC 3659 §7) ---------------------------------------------------------

#[tokio::test]
async fn list_nlst_mlsd_mlst() {
    let wharf = Wharf::start().await;
    wharf.put_file("f.txt", b"12345").await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("MKD sub").await.code, 257);

    let (list, reply) = ftp.listing("LIST").await;
    assert_eq!(reply.code, 226);
    let lines = listing_lines(&list);
    assert_eq!(lines.len(), 2, "{list:?}");
    let file = lines.iter().find(|l| l.ends_with(" f.txt")).expect("f.txt listed");
    assert!(file.starts_with("-rw") && file.contains(" 5 "), "{file:?}");
    let dir = lines.iter().find(|l| l.ends_with(" sub")).expect("sub listed");
    assert!(dir.starts_with("drwx"), "{dir:?}");
    assert!(list.ends_with("\r\n"), "lines end in CR LF");

    let (names, reply) = ftp.listing("NLST").await;
    assert_eq!(reply.code, 226);
    let mut names = listing_lines(&names);
    names.sort();
    assert_eq!(names, vec!["f.txt", "sub"]);

    let (mlsd, reply) = ftp.listing("MLSD").await;
    assert_eq!(reply.code, 226);
    let lines = listing_lines(&mlsd);
    let file = lines.iter().find(|l| l.ends_with("; f.txt")).expect("f.txt in MLSD");
    let (facts, _) = file.split_once(' ').unwrap();
    let facts: Vec<&str> = facts.split(';').filter(|f| !f.is_empty()).collect();
    assert_eq!(facts[0], "type=file");
    assert_eq!(facts[1], "size=5");
    let modify = facts[2].strip_prefix("modify=").expect("modify fact");
    assert!(modify.len() == 14 && modify.bytes().all(|b| b.is_ascii_digit()), "{file:?}");
    assert!(facts[3].starts_with("perm="), "{file:?}");
    assert!(lines.iter().any(|l| l.starts_with("type=dir;") && l.ends_with("; sub")), "{mlsd:?}");

    let mlst = ftp.cmd("MLST f.txt").await;
    assert_eq!(mlst.code, 250);
    assert_multi_line(&mlst, 250);
    let fact_line = reply_lines(&mlst)[1];
    assert!(fact_line.starts_with(" type=file;size=5;"), "{mlst:?}");
    assert!(fact_line.ends_with("f.txt"), "{mlst:?}");
    assert_eq!(ftp.cmd("MLST missing").await.code, 550);
}

#[tokio::test]
async fn list_of_a_missing_path_is_550() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    let (_, reply) = ftp.listing("LIST /nope").await;
    assert_eq!(reply.code, 550);
}

// --- File facts and times (RFC 3659 §3-§4, MFMT) ---------------------------------------------------

#[tokio::test]
async fn size_mdtm_mfmt() {
    let wharf = Wharf::start().await;
    wharf.put_file("f.bin", &bytes(1234, 6)).await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("MKD d").await.code, 257);
    assert_eq!(ftp.cmd("SIZE f.bin").await.text, "213 1234");
    assert_eq!(ftp.cmd("SIZE d").await.code, 550);
    assert_eq!(ftp.cmd("SIZE missing").await.code, 550);
    let mdtm = ftp.cmd("MDTM f.bin").await;
    assert_eq!(mdtm.code, 213);
    let stamp = mdtm.text.strip_prefix("213 ").unwrap();
    assert!(stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()), "{mdtm:?}");
    let mfmt = ftp.cmd("MFMT 20200102030405 f.bin").await;
    if wharf.s3.is_some() {
        // An object's time is when it was stored; S3 cannot change it without rewriting the object.
        assert_eq!(mfmt.code, 504, "{mfmt:?}");
        assert_eq!(ftp.cmd("MDTM f.bin").await.text, format!("213 {stamp}"));
        return;
    }
    assert_eq!(mfmt.code, 213, "{mfmt:?}");
    assert_eq!(ftp.cmd("MDTM f.bin").await.text, "213 20200102030405");
    assert_eq!(ftp.cmd("MFMT 20200102030405 missing").await.code, 550);
}

// --- Transfers (RFC 959 §4.1.3, RFC 3659 §5) ---------------------------------------------------------

#[tokio::test]
async fn rest_then_retr_sends_the_tail() {
    let wharf = Wharf::start().await;
    let data = bytes(100_000, 7);
    wharf.put_file("f.bin", &data).await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("REST 60000").await.code, 350);
    let (tail, reply) = ftp.retr("f.bin").await;
    assert_eq!(reply.code, 226);
    assert_eq!(tail, &data[60_000..]);
    // The offset applies to one transfer only.
    let (whole, _) = ftp.retr("f.bin").await;
    assert_eq!(whole, data);
}

#[tokio::test]
async fn rest_beyond_the_end_of_the_file_is_554() {
    let wharf = Wharf::start().await;
    wharf.put_file("f.bin", b"0123456789").await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("REST 11").await.code, 350);
    let (data, reply) = ftp.retr("f.bin").await;
    assert_eq!(reply.code, 554, "{reply:?}");
    assert!(data.is_empty());
    assert_eq!(ftp.cmd("REST 10").await.code, 350);
    let (data, reply) = ftp.retr("f.bin").await;
    assert_eq!(reply.code, 226, "{reply:?}");
    assert!(data.is_empty(), "REST at the end sends nothing");
}

#[tokio::test]
async fn rest_then_stor_resumes_an_upload() {
    let wharf = Wharf::start().await;
    let data = bytes(250, 8);
    wharf.put_file("partial.bin", &data[..100]).await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("REST 100").await.code, 350);
    assert_eq!(ftp.store("STOR", "partial.bin", &data[100..]).await.code, 226);
    assert_eq!(wharf.read_file("partial.bin").await, data);
}

#[tokio::test]
async fn appe_appends() {
    let wharf = Wharf::start().await;
    wharf.put_file("log.txt", b"hello ").await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.store("APPE", "log.txt", b"world").await.code, 226);
    assert_eq!(wharf.read_file("log.txt").await, b"hello world");
    assert_eq!(ftp.store("APPE", "new.txt", b"first").await.code, 226);
    assert_eq!(wharf.read_file("new.txt").await, b"first");
}

#[tokio::test]
async fn stou_stores_under_the_name_it_announces() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    let tcp = ftp.epsv().await;
    let opening = ftp.cmd("STOU").await;
    assert_eq!(opening.code, 150, "{opening:?}");
    let name = opening.text.split("FILE: ").nth(1).expect("150 FILE: name").trim().to_owned();
    let mut tls = ftp.secure(tcp).await.unwrap();
    tls.write_all(b"unique").await.unwrap();
    tls.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest).await;
    assert_eq!(ftp.reply().await.code, 226);
    assert_eq!(wharf.read_file(&name).await, b"unique");
    assert_eq!(wharf.files_on_disk("acme").await, vec![name]);
}

#[tokio::test]
async fn abor_during_an_upload_gives_426_then_226_and_stores_nothing() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    let tcp = ftp.epsv().await;
    assert_eq!(ftp.cmd("STOR big.bin").await.code, 150);
    let mut tls = ftp.secure(tcp).await.unwrap();
    tls.write_all(&bytes(2 << 20, 9)).await.unwrap();
    tls.flush().await.unwrap();
    // Telnet IP + DM before ABOR, as RFC 959 §4.1.3 has clients do.
    ftp.send_raw(b"\xff\xf4\xff\xf2ABOR\r\n").await;
    let first = ftp.reply().await;
    assert_eq!(first.code, 426, "{first:?}");
    let second = ftp.reply().await;
    assert_eq!(second.code, 226, "{second:?}");
    drop(tls);
    assert_eq!(wharf.files_on_disk("acme").await, Vec::<String>::new(), "no file and no temporary upload");
    assert_eq!(ftp.cmd("NOOP").await.code, 200);
}

#[tokio::test]
async fn abor_is_answered_at_once_even_behind_a_command_that_waits_for_the_transfer() {
    let wharf = Wharf::start().await;
    wharf.put_file("big.bin", &bytes(32 << 20, 11)).await;
    let mut ftp = wharf.login().await;
    let tcp = ftp.epsv().await;
    assert_eq!(ftp.cmd("RETR big.bin").await.code, 150);
    // The client reads nothing, so the download cannot finish by itself.
    let _unread = ftp.secure(tcp).await.unwrap();
    // PWD must wait for the transfer; the ABOR behind it must not.
    ftp.send_raw(b"PWD\r\nABOR\r\n").await;
    let mut codes = Vec::new();
    for _ in 0..3 {
        let reply = tokio::time::timeout(Duration::from_secs(10), ftp.reply())
            .await
            .unwrap_or_else(|_| panic!("ABOR was not answered while PWD waited; replies so far: {codes:?}"));
        codes.push(reply.code);
    }
    codes.sort();
    assert_eq!(codes, vec![226, 257, 426]);
}

#[tokio::test]
async fn abor_without_a_transfer_is_225() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("ABOR").await.code, 225);
}

#[tokio::test]
async fn an_upload_cut_without_close_notify_is_426_and_leaves_nothing() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    let tcp = ftp.epsv().await;
    assert_eq!(ftp.cmd("STOR cut.bin").await.code, 150);
    let mut tls = ftp.secure(tcp).await.unwrap();
    tls.write_all(&bytes(500_000, 10)).await.unwrap();
    tls.flush().await.unwrap();
    // Close the TCP connection under TLS, without close_notify: the upload may be truncated.
    let (mut tcp, _) = tls.into_inner();
    tcp.shutdown().await.unwrap();
    let reply = ftp.reply().await;
    assert_eq!(reply.code, 426, "{reply:?}");
    drop(tcp);
    assert_eq!(wharf.files_on_disk("acme").await, Vec::<String>::new());
    assert_eq!(ftp.cmd("SIZE cut.bin").await.code, 550);
}

#[tokio::test]
async fn a_unicode_name_with_spaces_round_trips_exactly() {
    let wharf = Wharf::start().await;
    let name = "Ünïcødé 文件 with  spaces .txt";
    let data = "contenu ünïcødé".as_bytes();
    let mut ftp = wharf.login().await;
    assert_eq!(ftp.cmd("OPTS UTF8 ON").await.code, 200);
    assert_eq!(ftp.store("STOR", name, data).await.code, 226);
    assert_eq!(wharf.files_on_disk("acme").await, vec![name.to_owned()]);
    let (names, _) = ftp.listing("NLST").await;
    assert_eq!(listing_lines(&names), vec![name]);
    let (list, _) = ftp.listing("LIST").await;
    assert!(list.trim_end_matches("\r\n").ends_with(&format!(" {name}")), "{list:?}");
    let (mlsd, _) = ftp.listing("MLSD").await;
    assert!(mlsd.trim_end_matches("\r\n").ends_with(&format!("; {name}")), "{mlsd:?}");
    let (back, reply) = ftp.retr(name).await;
    assert_eq!(reply.code, 226);
    assert_eq!(back, data);
    assert_eq!(ftp.cmd(&format!("SIZE {name}")).await.text, format!("213 {}", data.len()));
}

// --- Error classes (RFC 959 §4.2) ------------------------------------------------------------------

#[tokio::test]
async fn unknown_commands_bad_arguments_and_bad_sequences() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    let cases = [
        ("XYZZY", 502),
        ("SITE CHMOD 755 f", 502),
        ("PORT 1,2,3", 501),
        ("REST abc", 501),
        ("TYPE Z", 501),
        ("MODE Z", 501),
        ("EPSV 3", 501),
        ("EPRT |9|x|1|", 501),
        ("MFMT 2024 f", 501),
        ("AUTH KERBEROS_V4", 504),
        ("RNTO x", 503),
        ("PASS again", 503),
        ("CWD", 501),
    ];
    for (line, code) in cases {
        let reply = ftp.cmd(line).await;
        assert_eq!(reply.code, code, "{line}: {reply:?}");
    }
    assert_eq!(ftp.cmd("NOOP").await.code, 200);
}
