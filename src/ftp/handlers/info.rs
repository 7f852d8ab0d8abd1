//! Capabilities and status: RFC 2389 (FEAT, OPTS), RFC 2640 §3.2 (OPTS UTF8), RFC 3659 §7.9 (OPTS MLST),
//! RFC 959 §4.1.3 (SYST, STAT, HELP).

use crate::ftp::command::{HashAlgorithm, Opts};
use crate::ftp::listing::Facts;
use crate::ftp::reply::Reply;
use crate::ftp::session::Session;

/// MFMT is offered only where files keep a settable time: S3 objects carry the time they were stored.
pub(super) fn feat(s: &Session) -> Reply {
    let mfmt = s.shared.config().storage.backend == crate::config::Backend::Fs;
    let lines = [
        "Features:",
        "AUTH TLS",
        "PBSZ",
        "PROT",
        "UTF8",
        "EPRT",
        "EPSV",
        "HOST",
        "SIZE",
        "MDTM",
        if mfmt { "MFMT" } else { "" },
        "HASH SHA-256*;CRC32",
        "REST STREAM",
        "TVFS",
        &Facts::default().feat_line(),
        "End",
    ];
    Reply::multi(211, lines.iter().filter(|l| !l.is_empty()).map(|l| l.to_string()).collect())
}

pub(super) fn opts(s: &mut Session, opts: Opts) -> Reply {
    match opts {
        Opts::Utf8(true) => Reply::new(200, "UTF8 set to on"),
        Opts::Utf8(false) => Reply::new(504, "Names are always UTF-8"),
        Opts::Hash(None) => Reply::new(200, s.hash.name()),
        Opts::Hash(Some(name)) => match HashAlgorithm::from_name(&name) {
            Some(algorithm) => {
                s.hash = algorithm;
                Reply::new(200, algorithm.name())
            }
            None => Reply::new(504, "Unknown algorithm; choose SHA-256 or CRC32"),
        },
        Opts::Mlst(names) => {
            s.facts = Facts::from_names(&names);
            Reply::new(200, format!("MLST OPTS {}", s.facts.selected()))
        }
        Opts::Other(_) => Reply::new(501, "Option not understood"),
    }
}

pub(super) fn help() -> Reply {
    let lines = vec![
        "The following commands are recognized:".to_owned(),
        "ABOR ALLO APPE AUTH CCC CDUP CWD DELE EPRT EPSV FEAT HASH HELP HOST LIST MDTM MFMT MKD MLSD".to_owned(),
        "MLST MODE NLST NOOP OPTS PASS PASV PBSZ PORT PROT PWD QUIT REIN REST RETR RMD RNFR RNTO SIZE".to_owned(),
        "STAT STOR STOU STRU SYST TYPE USER XCRC XCUP XCWD XMKD XPWD XRMD XSHA256".to_owned(),
        "Help OK".to_owned(),
    ];
    Reply::multi(214, lines)
}

/// STAT without an argument: the session's state (RFC 959 §4.1.3).
pub(super) fn status(s: &Session) -> Reply {
    let mut lines =
        vec![format!("wharf {} status:", env!("CARGO_PKG_VERSION")), format!("Connected from {}", s.peer.ip())];
    match &s.login {
        Some(login) => {
            lines.push(format!("Logged in as {}@{}", login.principal.user.username, login.principal.tenant.name))
        }
        None => lines.push("Not logged in".to_owned()),
    }
    lines.push(format!("TYPE: {}, STRUcture: File, MODE: Stream", super::type_name(s)));
    lines.push(format!(
        "Control connection: {}; data protection: {}",
        if s.control.is_tls() { "TLS" } else { "plaintext" },
        if s.prot_private { "Private" } else { "Clear" }
    ));
    match &s.transfer {
        Some(running) => lines.push(format!("Transfer in progress: {} {}", running.what, running.path)),
        None => lines.push("No data connection".to_owned()),
    }
    lines.push("End of status".to_owned());
    Reply::multi(211, lines)
}
