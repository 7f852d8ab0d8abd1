//! Limits and bad input: over-long lines, timeouts, session limits, junk on the control connection, TLS
//! where plaintext is expected (and the reverse), clients that stall, and paths that try to leave the root.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::support::raw::{client_config, connector, server_name, Ftp};
use crate::support::{bytes, Wharf, PASSWORD};

/// Anything that should happen "soon" happens well within this; a hang fails the test instead.
const PATIENCE: Duration = Duration::from_secs(15);

/// A full session that logs in and moves a file both ways: proof that the server still serves.
async fn serves_another_session(wharf: &Wharf, seed: u64) {
    let check = async {
        let mut ftp = wharf.login().await;
        let data = bytes(300_000, seed);
        let name = format!("alive-{seed}.bin");
        assert_eq!(ftp.store("STOR", &name, &data).await.code, 226);
        let (back, reply) = ftp.retr(&name).await;
        assert_eq!(reply.code, 226);
        assert_eq!(back, data);
        assert_eq!(ftp.cmd(&format!("DELE {name}")).await.code, 250);
    };
    timeout(PATIENCE, check).await.expect("another session was stalled");
}

/// Connects until the server admits the session (its count drops a moment after a client sees EOF).
async fn connect_when_admitted(addr: SocketAddr) -> Ftp {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (ftp, greeting) = Ftp::connect(addr).await;
        if greeting.code == 220 {
            return ftp;
        }
        assert_eq!(greeting.code, 421, "{greeting:?}");
        assert!(Instant::now() < deadline, "a freed session slot was never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads replies until the server closes; returns their codes.
async fn codes_until_closed(ftp: &mut Ftp) -> Vec<u16> {
    let mut codes = Vec::new();
    let read = async {
        while let Some(reply) = ftp.try_reply().await {
            codes.push(reply.code);
        }
    };
    timeout(PATIENCE, read).await.expect("the server neither answered nor closed");
    codes
}

// --- Control line length -------------------------------------------------------------------------------

#[tokio::test]
async fn a_line_over_the_default_limit_gets_500_and_the_session_goes_on() {
    let wharf = Wharf::start().await;
    let mut ftp = wharf.login().await;
    let long = format!("NOOP {}", "A".repeat(9_000));
    let reply = ftp.cmd(&long).await;
    assert_eq!(reply.code, 500, "{reply:?}");
    assert!(reply.text.contains("8192"), "{reply:?}");
    assert_eq!(ftp.cmd("NOOP").await.code, 200);
    assert!(ftp.cmd("PWD").await.text.starts_with("257 \"/\""));
}

#[tokio::test]
async fn a_custom_line_limit_holds_on_both_sides() {
    let wharf = Wharf::start_with(|cfg| cfg.ftp.max_line_bytes = 1024).await;
    let mut ftp = wharf.login().await;
    // 1022 bytes + CR LF is exactly the limit; one more is over.
    let at_limit = format!("NOOP {}", "x".repeat(1022 - 5));
    assert_eq!(ftp.cmd(&at_limit).await.code, 200);
    let over = format!("NOOP {}", "x".repeat(1023 - 5));
    let reply = ftp.cmd(&over).await;
    assert_eq!(reply.code, 500, "{reply:?}");
    assert!(reply.text.contains("1024"), "{reply:?}");
    assert_eq!(ftp.cmd("NOOP").await.code, 200);
}

#[tokio::test]
async fn a_10_mib_line_without_newline_is_discarded_and_nobody_suffers() {
    let wharf = Wharf::start().await;
    let (mut flood, greeting) = Ftp::connect(wharf.explicit).await;
    assert_eq!(greeting.code, 220);
    let writer = async {
        flood.send_raw(&vec![b'x'; 10 << 20]).await;
        flood
    };
    let (mut flood, ()) = tokio::join!(writer, serves_another_session(&wharf, 1));
    flood.send_raw(b"\r\nNOOP\r\n").await;
    assert_eq!(flood.reply().await.code, 500);
    assert_eq!(flood.reply().await.code, 200, "the flooding session itself survives");
}

// --- Timeouts ------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_idle_session_is_closed_with_421() {
    let wharf = Wharf::start_with(|cfg| cfg.ftp.idle_timeout_secs = 1).await;
    let mut ftp = wharf.login().await;
    let started = Instant::now();
    let reply = timeout(PATIENCE, ftp.reply()).await.expect("idle session was never closed");
    assert_eq!(reply.code, 421, "{reply:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(ftp.is_closed().await);
}

#[tokio::test]
async fn a_session_that_never_logs_in_is_closed_with_421() {
    let wharf = Wharf::start_with(|cfg| cfg.ftp.login_timeout_secs = 1).await;
    let started = Instant::now();
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    // Activity does not extend the login deadline.
    assert_eq!(ftp.cmd("NOOP").await.code, 200);
    let codes = codes_until_closed(&mut ftp).await;
    assert_eq!(codes, vec![421]);
    assert!(started.elapsed() >= Duration::from_millis(900), "closed after {:?}", started.elapsed());

    // Also after AUTH TLS, over TLS.
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    ftp.auth_tls().await;
    assert_eq!(codes_until_closed(&mut ftp).await, vec![421]);
}

#[tokio::test]
async fn rein_restarts_the_login_clock() {
    let wharf = Wharf::start_with(|cfg| cfg.ftp.login_timeout_secs = 2).await;
    let mut ftp = wharf.login().await;
    // Logged in, the login deadline no longer applies; let it pass.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(ftp.cmd("NOOP").await.code, 200);
    assert_eq!(ftp.cmd("REIN").await.code, 220);
    // A fresh login gets a fresh login timeout, not one that expired before REIN.
    let early = timeout(Duration::from_millis(700), ftp.try_reply()).await;
    assert!(early.is_err(), "right after REIN the server sent {early:?}");
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);
}

#[tokio::test]
async fn a_tls_handshake_that_never_starts_is_dropped_at_the_login_timeout() {
    let wharf = Wharf::start_with(|cfg| cfg.ftp.login_timeout_secs = 1).await;
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    assert_eq!(ftp.cmd("AUTH TLS").await.code, 234);
    assert!(timeout(PATIENCE, ftp.is_closed()).await.expect("never closed"));

    let mut implicit = TcpStream::connect(wharf.implicit).await.unwrap();
    let mut sink = Vec::new();
    let _ = timeout(PATIENCE, implicit.read_to_end(&mut sink)).await.expect("implicit port never closed");
    assert!(sink.is_empty(), "the implicit port sent {sink:?} before any handshake");
}

#[tokio::test]
async fn a_data_connection_that_never_arrives_gets_425() {
    let wharf = Wharf::start_with(|cfg| cfg.ftp.data_connect_timeout_secs = 1).await;
    wharf.put_file("f.bin", b"data").await;
    let mut ftp = wharf.login().await;

    assert_eq!(ftp.cmd("EPSV").await.code, 229);
    let started = Instant::now();
    let reply = timeout(PATIENCE, ftp.cmd("RETR f.bin")).await.unwrap();
    assert_eq!(reply.code, 425, "{reply:?}");
    assert!(started.elapsed() >= Duration::from_millis(900), "gave up after {:?}", started.elapsed());

    assert_eq!(ftp.cmd("EPSV").await.code, 229);
    let reply = timeout(PATIENCE, ftp.cmd("STOR up.bin")).await.unwrap();
    assert_eq!(reply.code, 425, "{reply:?}");
    assert_eq!(wharf.files_on_disk("acme").await, vec!["f.bin"], "no file and no temporary upload");
    assert_eq!(ftp.cmd("NOOP").await.code, 200);
}

#[tokio::test]
async fn a_download_the_client_stops_reading_is_aborted_at_the_stall_timeout() {
    let wharf = Wharf::start_with(|cfg| cfg.ftp.stall_timeout_secs = 1).await;
    wharf.put_file("big.bin", &bytes(32 << 20, 12)).await;
    let mut ftp = wharf.login().await;
    let tcp = ftp.epsv().await;
    assert_eq!(ftp.cmd("RETR big.bin").await.code, 150);
    let _unread = ftp.secure(tcp).await.unwrap();
    let reply = timeout(PATIENCE, ftp.reply()).await.expect("a stalled download was never aborted");
    assert_eq!(reply.code, 426, "{reply:?}");
    assert_eq!(ftp.cmd("NOOP").await.code, 200, "the control connection goes on");
}

#[tokio::test]
async fn an_upload_the_client_stops_sending_is_aborted_at_the_stall_timeout_and_leaves_nothing() {
    let wharf = Wharf::start_with(|cfg| cfg.ftp.stall_timeout_secs = 1).await;
    let mut ftp = wharf.login().await;
    let tcp = ftp.epsv().await;
    assert_eq!(ftp.cmd("STOR stalled.bin").await.code, 150);
    let mut tls = ftp.secure(tcp).await.unwrap();
    tls.write_all(&bytes(100_000, 13)).await.unwrap();
    tls.flush().await.unwrap();
    let reply = timeout(PATIENCE, ftp.reply()).await.expect("a stalled upload was never aborted");
    assert_eq!(reply.code, 426, "{reply:?}");
    assert_eq!(wharf.files_on_disk("acme").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_control_connection_that_stops_reading_replies_is_closed_at_the_stall_timeout() {
    let wharf = Wharf::start_with(|cfg| cfg.ftp.stall_timeout_secs = 1).await;
    let mut tcp = TcpStream::connect(wharf.explicit).await.unwrap();
    let flood = b"NOOP\r\n".repeat(4 << 20);
    // Replies pile up unread until the server gives up and closes; then our writes fail.
    let written = timeout(PATIENCE, tcp.write_all(&flood)).await.expect("the flooding connection was never closed");
    assert!(written.is_err(), "24 MiB of commands went through without the replies being read");
    serves_another_session(&wharf, 14).await;
}

// --- Session limits -------------------------------------------------------------------------------------

#[tokio::test]
async fn the_per_ip_limit_refuses_with_421_and_frees_slots() {
    let wharf = Wharf::start_with(|cfg| cfg.ftp.max_sessions_per_ip = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let (ftp, greeting) = Ftp::connect(wharf.explicit).await;
        assert_eq!(greeting.code, 220);
        held.push(ftp);
    }
    let (mut refused, greeting) = Ftp::connect(wharf.explicit).await;
    assert_eq!(greeting.code, 421, "{greeting:?}");
    assert!(refused.is_closed().await);

    let mut leaving = held.pop().unwrap();
    assert_eq!(leaving.cmd("QUIT").await.code, 221);
    assert!(leaving.is_closed().await);
    let mut admitted = connect_when_admitted(wharf.explicit).await;
    assert_eq!(admitted.cmd("NOOP").await.code, 200);
    for ftp in &mut held {
        assert_eq!(ftp.cmd("NOOP").await.code, 200, "held sessions are untouched");
    }
}

#[tokio::test]
async fn the_global_limit_refuses_with_421_and_frees_slots() {
    let wharf = Wharf::start_with(|cfg| cfg.ftp.max_sessions = 2).await;
    let (mut first, _) = Ftp::connect(wharf.explicit).await;
    let (_second, greeting) = Ftp::connect_implicit(wharf.implicit).await;
    assert_eq!(greeting.code, 220);
    let (mut refused, greeting) = Ftp::connect(wharf.explicit).await;
    assert_eq!(greeting.code, 421, "{greeting:?}");
    assert!(refused.is_closed().await);

    assert_eq!(first.cmd("QUIT").await.code, 221);
    assert!(first.is_closed().await);
    let mut admitted = connect_when_admitted(wharf.explicit).await;
    assert_eq!(admitted.cmd("NOOP").await.code, 200);
}

#[tokio::test]
async fn on_the_implicit_port_the_refusal_arrives_over_tls() {
    let wharf = Wharf::start_with(|cfg| cfg.ftp.max_sessions_per_ip = 1).await;
    let (_held, greeting) = Ftp::connect(wharf.explicit).await;
    assert_eq!(greeting.code, 220);
    // connect_implicit does the TLS handshake first and reads the greeting through it.
    let (mut refused, greeting) = Ftp::connect_implicit(wharf.implicit).await;
    assert_eq!(greeting.code, 421, "{greeting:?}");
    assert!(refused.is_closed().await);
}

// --- Junk and the wrong protocol -------------------------------------------------------------------------

/// Random bytes with NUL, 0xFF (Telnet IAC), lone CRs and some line ends in between.
fn junk() -> Vec<u8> {
    let mut junk = bytes(4096, 42);
    junk.extend_from_slice(b"\0\0\r\n\xff\xff\xff\r\n\xff\xfb\r\nNO\rOP\r\n\r\n\x80\x81 \xfe\r\n\r\r\r\n");
    junk
}

async fn junk_is_refused_line_by_line(ftp: &mut Ftp) {
    let junk = junk();
    let lines = junk.iter().filter(|&&b| b == b'\n').count();
    ftp.send_raw(&junk).await;
    ftp.send_raw(b"NOOP\r\n").await;
    for i in 0..lines {
        let reply = timeout(PATIENCE, ftp.reply()).await.expect("no reply to a junk line");
        assert!(matches!(reply.code, 500..=502), "junk line {i}: {reply:?}");
    }
    assert_eq!(ftp.reply().await.code, 200, "NOOP after the junk");
}

#[tokio::test]
async fn binary_junk_gets_500_to_502_and_harms_nothing() {
    let wharf = Wharf::start().await;
    let (mut plain, _) = Ftp::connect(wharf.explicit).await;
    junk_is_refused_line_by_line(&mut plain).await;
    let mut secure = wharf.login().await;
    junk_is_refused_line_by_line(&mut secure).await;
    assert!(secure.cmd("PWD").await.text.starts_with("257 \"/\""));
    serves_another_session(&wharf, 2).await;
}

#[tokio::test]
async fn a_tls_client_hello_on_the_plain_port_gets_an_ftp_error_or_a_close() {
    let wharf = Wharf::start_with(|cfg| cfg.ftp.login_timeout_secs = 1).await;
    let mut hello = Vec::new();
    let mut client = rustls::ClientConnection::new(client_config(), server_name()).unwrap();
    client.write_tls(&mut hello).unwrap();
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    ftp.send_raw(&hello).await;
    let codes = codes_until_closed(&mut ftp).await;
    assert!(codes.iter().all(|c| matches!(c, 500..=502 | 421)), "{codes:?}");
    serves_another_session(&wharf, 3).await;
}

#[tokio::test]
async fn plaintext_on_the_implicit_port_gets_no_ftp_answer() {
    let wharf = Wharf::start().await;
    let mut tcp = TcpStream::connect(wharf.implicit).await.unwrap();
    tcp.write_all(b"USER x\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = timeout(PATIENCE, tcp.read_to_end(&mut answer)).await.expect("implicit port neither answered nor closed");
    assert!(!answer.first().is_some_and(u8::is_ascii_digit), "an FTP reply in plaintext: {answer:?}");
    let (_, greeting) = Ftp::connect_implicit(wharf.implicit).await;
    assert_eq!(greeting.code, 220);
}

#[tokio::test]
async fn plaintext_pipelined_behind_auth_tls_is_not_taken_as_sent_under_tls() {
    let wharf = Wharf::start().await;
    let mut plain = BufReader::new(TcpStream::connect(wharf.explicit).await.unwrap());
    let mut line = String::new();
    plain.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("220 "), "{line:?}");
    // An attacker in the path appends a USER to the client's AUTH TLS (the STARTTLS injection).
    plain.get_mut().write_all(b"AUTH TLS\r\nUSER alice@acme\r\n").await.unwrap();
    line.clear();
    plain.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("234 "), "{line:?}");
    let Ok(tls) = connector(&client_config()).connect(server_name(), plain.into_inner()).await else {
        return; // The injected bytes broke the handshake: refused too.
    };
    let mut secure = BufReader::new(tls);
    secure.get_mut().write_all(format!("PASS {PASSWORD}\r\n").as_bytes()).await.unwrap();
    line.clear();
    secure.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("503 "), "the injected USER took effect: {line:?}");
}

#[tokio::test]
async fn user_and_pass_before_tls_are_refused_with_530_naming_tls() {
    let wharf = Wharf::start().await;
    let (mut ftp, _) = Ftp::connect(wharf.explicit).await;
    for line in ["USER alice@acme".to_owned(), format!("PASS {PASSWORD}")] {
        let reply = ftp.cmd(&line).await;
        assert_eq!(reply.code, 530, "{reply:?}");
        assert!(reply.text.contains("TLS"), "{reply:?}");
    }
    for line in ["PWD", "LIST", "RETR f", "TYPE I", "EPSV", "PBSZ 0", "PROT P", "REIN", "CCC"] {
        let reply = ftp.cmd(line).await;
        assert!(matches!(reply.code, 530 | 503), "{line}: {reply:?}");
    }
    // The same session can still do it right.
    ftp.auth_tls().await;
    assert_eq!(ftp.cmd("USER alice@acme").await.code, 331);
    assert_eq!(ftp.cmd(&format!("PASS {PASSWORD}")).await.code, 230);
}

// --- Clients that stall -----------------------------------------------------------------------------------

#[tokio::test]
async fn half_open_connections_do_not_stall_others() {
    let wharf = Wharf::start().await;
    let _silent_plain = TcpStream::connect(wharf.explicit).await.unwrap();
    let _silent_implicit = TcpStream::connect(wharf.implicit).await.unwrap();
    let (mut stuck_in_auth, _) = Ftp::connect(wharf.explicit).await;
    assert_eq!(stuck_in_auth.cmd("AUTH TLS").await.code, 234);
    serves_another_session(&wharf, 4).await;
}

#[tokio::test]
async fn a_client_that_never_reads_its_download_does_not_stall_others() {
    let wharf = Wharf::start().await;
    wharf.put_file("big.bin", &bytes(32 << 20, 5)).await;
    let mut slow = wharf.login().await;
    let tcp = slow.epsv().await;
    assert_eq!(slow.cmd("RETR big.bin").await.code, 150);
    let _unread = slow.secure(tcp).await.unwrap();
    serves_another_session(&wharf, 6).await;
    // Its own control connection still answers what may run during a transfer.
    assert_eq!(slow.cmd("NOOP").await.code, 200);
    let status = slow.cmd("STAT").await;
    assert_eq!(status.code, 211);
    assert!(status.text.contains("big.bin"), "{status:?}");
}

#[tokio::test]
async fn a_client_that_floods_commands_without_reading_does_not_stall_others() {
    let wharf = Wharf::start().await;
    let mut flooder = wharf.login().await;
    let flood = b"NOOP\r\n".repeat(1 << 20);
    // Never awaited: once both socket buffers fill, this write blocks for good.
    let _flooding = tokio::spawn(async move {
        flooder.send_raw(&flood).await;
        flooder
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    serves_another_session(&wharf, 7).await;
}

// --- Paths that try to leave the root ---------------------------------------------------------------------

/// Every path under the test's temporary folder, except the tenant's own tree and the SQLite files.
fn outside_the_tenant(wharf: &Wharf) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, skip: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path == skip || name.starts_with("wharf.db") {
                continue;
            }
            out.insert(path.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if entry.file_type().unwrap().is_dir() {
                walk(base, &path, skip, out);
            }
        }
    }
    let base = wharf.config.data_dir.parent().unwrap().to_owned();
    let mut out = BTreeSet::new();
    walk(&base, &base, &wharf.file("acme", ""), &mut out);
    out
}

#[tokio::test]
async fn no_path_escapes_the_users_root() {
    let wharf = Wharf::start().await;
    wharf.put_file("inside.txt", b"mine").await;
    let before = outside_the_tenant(&wharf);
    let mut ftp = wharf.login().await;

    assert_eq!(ftp.cmd("CWD ../../..").await.code, 250);
    assert!(ftp.cmd("PWD").await.text.starts_with("257 \"/\" "));
    assert_eq!(ftp.cmd("CWD /../../..").await.code, 250);
    assert!(ftp.cmd("PWD").await.text.starts_with("257 \"/\" "));
    let (names, reply) = ftp.listing("NLST ../../..").await;
    assert_eq!(reply.code, 226);
    assert_eq!(names.lines().collect::<Vec<_>>(), vec!["inside.txt"], "the root is the tenant's");

    for path in ["../../../etc/passwd", "/etc/passwd", "/../../../../etc/passwd"] {
        let (data, reply) = ftp.retr(path).await;
        assert_eq!(reply.code, 550, "RETR {path}: {reply:?}");
        assert!(data.is_empty());
    }
    for line in ["MKD ..\\escape", "CWD ..\\..", "DELE ..\\inside.txt", "SIZE ..\\..\\etc\\passwd"] {
        let reply = ftp.cmd(line).await;
        assert_eq!(reply.code, 553, "{line}: {reply:?}");
    }
    for path in ["..\\inside.txt", "..\\..\\..\\etc\\passwd"] {
        let (_, reply) = ftp.retr(path).await;
        assert_eq!(reply.code, 553, "RETR {path}: {reply:?}");
    }
    for raw in [&b"MKD ..\0escape\r\n"[..], b"CWD ..\0\r\n", b"RETR inside.txt\0.jpg\r\n", b"DELE \0\r\n"] {
        ftp.send_raw(raw).await;
        let reply = ftp.reply().await;
        assert_eq!(reply.code, 501, "{:?}: {reply:?}", String::from_utf8_lossy(raw));
    }

    // `%2e%2e` is a name like any other, not `..`.
    assert_eq!(ftp.cmd("MKD %2e%2e").await.code, 257);
    assert!(wharf.file("acme", "%2e%2e").is_dir());
    assert_eq!(ftp.store("STOR", "%2e%2e/%2e%2e/x.txt", b"x").await.code, 550);
    assert_eq!(ftp.store("STOR", "%2e%2e/x.txt", b"x").await.code, 226);
    assert!(wharf.file("acme", "%2e%2e/x.txt").is_file());
    assert_eq!(ftp.store("STOR", "%2E%2E%2F%2E%2E%2Fy.txt", b"y").await.code, 226);
    assert!(wharf.file("acme", "%2E%2E%2F%2E%2E%2Fy.txt").is_file());

    // `..` clamps at the root: this lands inside, at `/escape.txt`.
    assert_eq!(ftp.store("STOR", "../../../escape.txt", b"e").await.code, 226);
    assert!(wharf.file("acme", "escape.txt").is_file());
    assert_eq!(ftp.cmd("MKD ../../up").await.code, 257);
    assert!(wharf.file("acme", "up").is_dir());

    assert_eq!(outside_the_tenant(&wharf), before, "something was created outside the tenant's folder");
}

#[tokio::test]
async fn a_user_with_a_home_sees_and_touches_only_that_home() {
    let wharf = Wharf::start().await;
    wharf.add_user_with_home("acme", "bob", PASSWORD, "/in").await;
    wharf.put_file("secret.txt", b"top secret").await;
    wharf.put_file("in/mine.txt", b"bob's").await;
    let mut bob = Ftp::login(wharf.explicit, "bob@acme", PASSWORD).await;

    assert!(bob.cmd("PWD").await.text.starts_with("257 \"/\" "));
    let (names, _) = bob.listing("NLST").await;
    assert_eq!(names.lines().collect::<Vec<_>>(), vec!["mine.txt"]);
    let (names, _) = bob.listing("NLST ..").await;
    assert_eq!(names.lines().collect::<Vec<_>>(), vec!["mine.txt"]);
    assert_eq!(bob.cmd("CWD ..").await.code, 250);
    assert!(bob.cmd("PWD").await.text.starts_with("257 \"/\" "));
    assert_eq!(bob.cmd("CWD /in").await.code, 550, "the tenant's /in is bob's /; there is no /in/in");

    for path in ["/secret.txt", "../secret.txt", "../../secret.txt"] {
        let (data, reply) = bob.retr(path).await;
        assert_eq!(reply.code, 550, "RETR {path}");
        assert!(data.is_empty());
        for verb in ["SIZE", "MDTM", "DELE", "RNFR", "MLST"] {
            let reply = bob.cmd(&format!("{verb} {path}")).await;
            assert_eq!(reply.code, 550, "{verb} {path}: {reply:?}");
        }
    }
    assert_eq!(bob.cmd("MFMT 20200101000000 ../secret.txt").await.code, 550);

    // What bob writes lands inside his home, whatever the path says.
    assert_eq!(bob.store("STOR", "../../secret.txt", b"overwritten?").await.code, 226);
    assert_eq!(std::fs::read(wharf.file("acme", "secret.txt")).unwrap(), b"top secret");
    assert_eq!(std::fs::read(wharf.file("acme", "in/secret.txt")).unwrap(), b"overwritten?");
    assert_eq!(bob.cmd("RNFR mine.txt").await.code, 350);
    assert_eq!(bob.cmd("RNTO ../../stolen.txt").await.code, 250);
    assert!(wharf.file("acme", "in/stolen.txt").is_file());
    assert_eq!(bob.cmd("MKD ../out").await.code, 257);
    assert!(wharf.file("acme", "in/out").is_dir());
    assert!(!wharf.file("acme", "stolen.txt").exists() && !wharf.file("acme", "out").exists());
    assert_eq!(bob.cmd("RMD /").await.code, 550);
    assert_eq!(bob.cmd("RNFR /").await.code, 550);

    let mut files = wharf.files_on_disk("acme").await;
    files.sort();
    assert_eq!(files, vec!["in/secret.txt", "in/stolen.txt", "secret.txt"]);
}
