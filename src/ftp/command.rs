//! Control-line parsing: RFC 959 §4.1 and §5.3, RFC 2228 (AUTH, PBSZ, PROT, CCC), RFC 2389 (FEAT, OPTS),
//! RFC 2428 (EPRT, EPSV), RFC 3659 (SIZE, MDTM, REST, MLST, MLSD), RFC 7151 (HOST) and the
//! draft-somers-ftp-mfxx MFMT command.
//!
//! `parse` is pure: one line in (without its CR LF), one typed [`Command`] or a [`ParseError`] out. It never
//! allocates more than the line it is given and never panics, whatever the bytes.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use chrono::{NaiveDate, NaiveDateTime};

/// One parsed control command. Path arguments are the raw UTF-8 text the client sent; the session turns
/// them into [`crate::vfs::VirtualPath`]s relative to its working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    Pass(String),
    Auth(AuthMechanism),
    Pbsz(u64),
    Prot(Prot),
    Ccc,
    Feat,
    Opts(Opts),
    Syst,
    Noop,
    Quit,
    Rein,
    Help(Option<String>),
    /// `STAT` without an argument reports on the session; with one it lists that path on the control channel.
    Stat(Option<String>),
    Pwd,
    Cwd(String),
    Cdup,
    Mkd(String),
    Rmd(String),
    Dele(String),
    Rnfr(String),
    Rnto(String),
    Type(TransferType),
    Mode(TransferMode),
    Stru(FileStructure),
    Allo,
    Pasv,
    Epsv(EpsvArg),
    Port(SocketAddr),
    Eprt(SocketAddr),
    /// LIST's argument may carry `ls` flags such as `-a` or `-la`; they are stripped by the parser and the
    /// remainder (if any) is the path.
    List(Option<String>),
    Nlst(Option<String>),
    Mlsd(Option<String>),
    Mlst(Option<String>),
    Size(String),
    Mdtm(String),
    Mfmt(NaiveDateTime, String),
    Rest(u64),
    Retr(String),
    Stor(String),
    Stou(Option<String>),
    Appe(String),
    Abor,
    Host(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMechanism {
    /// `AUTH TLS`, and `AUTH SSL`/`TLS-C`/`TLS-P` which old clients send for the same thing.
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prot {
    Clear,
    Private,
    /// `S` and `E` are defined by RFC 2228 but meaningless over TLS (RFC 4217 §9); they get 536.
    Safe,
    Confidential,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opts {
    Utf8(bool),
    /// `OPTS MLST fact;fact;` — the requested facts, lower-cased, unknown ones dropped by the session.
    Mlst(Vec<String>),
    /// Anything else: answered with 501.
    Other(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferType {
    Ascii,
    Image,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    Stream,
    Block,
    Compressed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStructure {
    File,
    Record,
    Page,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpsvArg {
    /// Plain `EPSV`.
    Any,
    /// `EPSV 1` or `EPSV 2`: the client insists on one protocol family.
    Family(u8),
    /// `EPSV ALL`: from now on PORT, EPRT and PASV are refused (RFC 2428 §4).
    All,
}

/// Why a line could not be parsed; each maps to one reply in [`crate::ftp::error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// 500: empty line or a verb that is not letters.
    #[error("syntax error")]
    Syntax,
    /// 502: a well-formed verb we do not implement.
    #[error("command {0} not implemented")]
    Unknown(String),
    /// 501: the verb is known but its argument is missing or malformed.
    #[error("{0}")]
    BadArgument(&'static str),
    /// 504: the verb is known, the argument parses, but that parameter is not supported (e.g. `TYPE E`).
    #[error("{0}")]
    UnsupportedParameter(&'static str),
    /// 501: the argument is not valid UTF-8 or contains NUL. Other control characters pass; `vfs` refuses
    /// them in paths (553).
    #[error("argument is not valid UTF-8 text")]
    Encoding,
}

/// What the session must check before dispatching a command; see [`Command::meta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// 530 before login when true.
    pub needs_login: bool,
    /// Handled while a data transfer is running (ABOR, STAT, NOOP, QUIT); other commands wait for the
    /// transfer to finish.
    pub during_transfer: bool,
    /// Allowed on the explicit port before `AUTH TLS` when TLS is required for login.
    pub before_tls: bool,
}

impl Command {
    /// The verb as the client would write it, for logs and for replies that name the command. X-variants
    /// report their RFC 959 name (`XPWD` is `PWD`), and `MDTM` with a time argument reports `MFMT`.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Auth(_) => "AUTH",
            Command::Pbsz(_) => "PBSZ",
            Command::Prot(_) => "PROT",
            Command::Ccc => "CCC",
            Command::Feat => "FEAT",
            Command::Opts(_) => "OPTS",
            Command::Syst => "SYST",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::Rein => "REIN",
            Command::Help(_) => "HELP",
            Command::Stat(_) => "STAT",
            Command::Pwd => "PWD",
            Command::Cwd(_) => "CWD",
            Command::Cdup => "CDUP",
            Command::Mkd(_) => "MKD",
            Command::Rmd(_) => "RMD",
            Command::Dele(_) => "DELE",
            Command::Rnfr(_) => "RNFR",
            Command::Rnto(_) => "RNTO",
            Command::Type(_) => "TYPE",
            Command::Mode(_) => "MODE",
            Command::Stru(_) => "STRU",
            Command::Allo => "ALLO",
            Command::Pasv => "PASV",
            Command::Epsv(_) => "EPSV",
            Command::Port(_) => "PORT",
            Command::Eprt(_) => "EPRT",
            Command::List(_) => "LIST",
            Command::Nlst(_) => "NLST",
            Command::Mlsd(_) => "MLSD",
            Command::Mlst(_) => "MLST",
            Command::Size(_) => "SIZE",
            Command::Mdtm(_) => "MDTM",
            Command::Mfmt(..) => "MFMT",
            Command::Rest(_) => "REST",
            Command::Retr(_) => "RETR",
            Command::Stor(_) => "STOR",
            Command::Stou(_) => "STOU",
            Command::Appe(_) => "APPE",
            Command::Abor => "ABOR",
            Command::Host(_) => "HOST",
        }
    }

    pub fn meta(&self) -> Meta {
        use Command::*;
        let needs_login = !matches!(
            self,
            User(_)
                | Pass(_)
                | Auth(_)
                | Pbsz(_)
                | Prot(_)
                | Feat
                | Opts(_)
                | Syst
                | Noop
                | Quit
                | Rein
                | Help(_)
                | Host(_)
                | Ccc
        );
        let during_transfer = matches!(self, Abor | Stat(_) | Noop | Quit);
        let before_tls = matches!(self, Auth(_) | Feat | Syst | Noop | Quit | Help(_) | Host(_) | Opts(_));
        Meta { needs_login, during_transfer, before_tls }
    }
}

/// Parses one control line (CR LF already removed). Verbs are case-insensitive; the argument is everything
/// after the first space, kept exactly (file names may begin or end with spaces).
///
/// Leading Telnet command bytes (0xF0–0xFF) are skipped: clients send `IAC IP IAC DM` before `ABOR`
/// (RFC 959 §4.1.3) and the DM byte, sent as urgent data, may or may not reach us. Arguments of commands
/// that take none are ignored unread, so sloppy clients (`PWD ` or `NOOP x`) are served.
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let start = line.iter().position(|&b| b < 0xF0).unwrap_or(line.len());
    let line = &line[start..];
    let (verb, raw_arg) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &line[line.len()..]),
    };
    if verb.is_empty() || !verb.iter().all(u8::is_ascii_alphabetic) {
        return Err(ParseError::Syntax);
    }
    // Decoded only by the verbs that read it, so an unknown verb is reported as unknown whatever follows.
    let arg = || -> Result<&str, ParseError> {
        if raw_arg.contains(&0) {
            return Err(ParseError::Encoding);
        }
        std::str::from_utf8(raw_arg).map_err(|_| ParseError::Encoding)
    };
    let required = || -> Result<String, ParseError> {
        match arg()? {
            "" => Err(ParseError::BadArgument("command requires an argument")),
            a => Ok(a.to_owned()),
        }
    };
    let optional =
        || -> Result<Option<String>, ParseError> { Ok(Some(arg()?).filter(|a| !a.is_empty()).map(str::to_owned)) };
    // Parameters that are keywords or numbers, not names: surrounding blanks carry no meaning.
    let word = || -> Result<&str, ParseError> {
        match arg()?.trim_ascii() {
            "" => Err(ParseError::BadArgument("command requires an argument")),
            w => Ok(w),
        }
    };

    let mut upper = [0u8; 4];
    if verb.len() > upper.len() {
        return Err(unknown(verb));
    }
    let upper = &mut upper[..verb.len()];
    upper.copy_from_slice(verb);
    upper.make_ascii_uppercase();

    let command = match &*upper {
        b"USER" => Command::User(required()?),
        b"PASS" => Command::Pass(arg()?.to_owned()),
        b"AUTH" => Command::Auth(auth_mechanism(word()?)?),
        b"PBSZ" => Command::Pbsz(decimal(word()?).ok_or(ParseError::BadArgument("PBSZ takes a decimal number"))?),
        b"PROT" => Command::Prot(prot(word()?)?),
        b"CCC" => Command::Ccc,
        b"FEAT" => Command::Feat,
        b"OPTS" => Command::Opts(opts(arg()?)),
        b"SYST" => Command::Syst,
        b"NOOP" => Command::Noop,
        b"QUIT" => Command::Quit,
        b"REIN" => Command::Rein,
        b"HELP" => Command::Help(optional()?),
        b"STAT" => Command::Stat(optional()?),
        b"PWD" | b"XPWD" => Command::Pwd,
        b"CWD" | b"XCWD" => Command::Cwd(required()?),
        b"CDUP" | b"XCUP" => Command::Cdup,
        b"MKD" | b"XMKD" => Command::Mkd(required()?),
        b"RMD" | b"XRMD" => Command::Rmd(required()?),
        b"DELE" => Command::Dele(required()?),
        b"RNFR" => Command::Rnfr(required()?),
        b"RNTO" => Command::Rnto(required()?),
        b"TYPE" => Command::Type(transfer_type(word()?)?),
        b"MODE" => Command::Mode(transfer_mode(word()?)?),
        b"STRU" => Command::Stru(file_structure(word()?)?),
        b"ALLO" => Command::Allo,
        b"PASV" => Command::Pasv,
        b"EPSV" => Command::Epsv(epsv(arg()?)?),
        b"PORT" => Command::Port(port(word()?).ok_or(ParseError::BadArgument("PORT takes h1,h2,h3,h4,p1,p2"))?),
        b"EPRT" => Command::Eprt(eprt(word()?).ok_or(ParseError::BadArgument("EPRT takes |af|address|port|"))?),
        b"LIST" => Command::List(strip_ls_flags(arg()?)),
        b"NLST" => Command::Nlst(strip_ls_flags(arg()?)),
        b"MLSD" => Command::Mlsd(optional()?),
        b"MLST" => Command::Mlst(optional()?),
        b"SIZE" => Command::Size(required()?),
        b"MDTM" => {
            let path = required()?;
            // Some clients set the time with `MDTM YYYYMMDDHHMMSS path`. A file literally named like that is
            // the price of supporting them; anything that is not a valid time stays a plain MDTM.
            let set = path.split_once(' ').filter(|(_, rest)| !rest.is_empty());
            match set.and_then(|(time, rest)| Some((mfmt_time(time)?, rest))) {
                Some((time, rest)) => Command::Mfmt(time, rest.to_owned()),
                None => Command::Mdtm(path),
            }
        }
        b"MFMT" => {
            let (time, path) = arg()?.split_once(' ').ok_or(ParseError::BadArgument("MFMT takes a time and a path"))?;
            let time = mfmt_time(time).ok_or(ParseError::BadArgument("time must be YYYYMMDDHHMMSS"))?;
            if path.is_empty() {
                return Err(ParseError::BadArgument("MFMT takes a time and a path"));
            }
            Command::Mfmt(time, path.to_owned())
        }
        b"REST" => Command::Rest(decimal(word()?).ok_or(ParseError::BadArgument("REST takes a decimal offset"))?),
        b"RETR" => Command::Retr(required()?),
        b"STOR" => Command::Stor(required()?),
        b"STOU" => Command::Stou(optional()?),
        b"APPE" => Command::Appe(required()?),
        b"ABOR" => Command::Abor,
        b"HOST" => Command::Host(word()?.to_owned()),
        _ => return Err(unknown(verb)),
    };
    Ok(command)
}

fn unknown(verb: &[u8]) -> ParseError {
    // The caller checked that the verb is ASCII letters.
    ParseError::Unknown(String::from_utf8_lossy(verb).to_ascii_uppercase())
}

/// Digits only: `u64::from_str` would also take a leading `+`.
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn auth_mechanism(s: &str) -> Result<AuthMechanism, ParseError> {
    if ["TLS", "SSL", "TLS-C", "TLS-P"].iter().any(|m| s.eq_ignore_ascii_case(m)) {
        Ok(AuthMechanism::Tls)
    } else {
        Err(ParseError::UnsupportedParameter("only AUTH TLS is supported"))
    }
}

fn prot(s: &str) -> Result<Prot, ParseError> {
    match s.to_ascii_uppercase().as_str() {
        "C" => Ok(Prot::Clear),
        "P" => Ok(Prot::Private),
        "S" => Ok(Prot::Safe),
        "E" => Ok(Prot::Confidential),
        _ => Err(ParseError::BadArgument("PROT takes C, P, S or E")),
    }
}

/// RFC 2389 §4 and RFC 2640 §3.3 / RFC 3659 §7.9. `OPTS UTF-8 ON` is not in any RFC but clients send it.
fn opts(arg: &str) -> Opts {
    let arg = arg.trim_ascii();
    let (name, rest) = arg.split_once(' ').unwrap_or((arg, ""));
    let rest = rest.trim_ascii();
    if name.eq_ignore_ascii_case("UTF8") || name.eq_ignore_ascii_case("UTF-8") {
        if rest.eq_ignore_ascii_case("ON") {
            return Opts::Utf8(true);
        }
        if rest.eq_ignore_ascii_case("OFF") {
            return Opts::Utf8(false);
        }
    } else if name.eq_ignore_ascii_case("MLST") && !rest.contains(' ') {
        return Opts::Mlst(rest.split(';').filter(|f| !f.is_empty()).map(str::to_ascii_lowercase).collect());
    }
    Opts::Other(arg.to_owned())
}

/// RFC 959 §5.3.2: `A [N]`, `I`, `L 8`; the other legal forms (EBCDIC, Telnet and ASA format effectors,
/// other byte sizes) are recognised and refused with 504.
fn transfer_type(s: &str) -> Result<TransferType, ParseError> {
    let unsupported = ParseError::UnsupportedParameter("only TYPE A and TYPE I are supported");
    let mut parts = s.split_ascii_whitespace();
    let (first, second, extra) = (parts.next().unwrap_or(""), parts.next(), parts.next());
    if extra.is_some() {
        return Err(ParseError::BadArgument("TYPE takes A, I or L 8"));
    }
    let format = |f: Option<&str>| f.map(str::to_ascii_uppercase);
    match (first.to_ascii_uppercase().as_str(), format(second).as_deref()) {
        ("A", None | Some("N")) => Ok(TransferType::Ascii),
        ("I", None) => Ok(TransferType::Image),
        ("L", Some("8")) => Ok(TransferType::Image),
        ("A" | "E", Some("T" | "C")) | ("E", None | Some("N")) => Err(unsupported),
        ("L", Some(size)) if decimal(size).is_some() => Err(unsupported),
        _ => Err(ParseError::BadArgument("TYPE takes A, I or L 8")),
    }
}

fn transfer_mode(s: &str) -> Result<TransferMode, ParseError> {
    match s.to_ascii_uppercase().as_str() {
        "S" => Ok(TransferMode::Stream),
        "B" => Ok(TransferMode::Block),
        "C" => Ok(TransferMode::Compressed),
        _ => Err(ParseError::BadArgument("MODE takes S, B or C")),
    }
}

fn file_structure(s: &str) -> Result<FileStructure, ParseError> {
    match s.to_ascii_uppercase().as_str() {
        "F" => Ok(FileStructure::File),
        "R" => Ok(FileStructure::Record),
        "P" => Ok(FileStructure::Page),
        _ => Err(ParseError::BadArgument("STRU takes F, R or P")),
    }
}

/// RFC 2428 §3.
fn epsv(arg: &str) -> Result<EpsvArg, ParseError> {
    match arg.trim_ascii() {
        "" => Ok(EpsvArg::Any),
        "1" => Ok(EpsvArg::Family(1)),
        "2" => Ok(EpsvArg::Family(2)),
        a if a.eq_ignore_ascii_case("ALL") => Ok(EpsvArg::All),
        _ => Err(ParseError::BadArgument("EPSV takes 1, 2 or ALL")),
    }
}

/// RFC 959 §4.1.2: `h1,h2,h3,h4,p1,p2`, each a decimal byte. Port 0 cannot be connected to and is refused.
fn port(s: &str) -> Option<SocketAddr> {
    let mut bytes = [0u8; 6];
    let mut fields = s.split(',');
    for byte in &mut bytes {
        let n = decimal(fields.next()?.trim_ascii())?;
        *byte = u8::try_from(n).ok()?;
    }
    if fields.next().is_some() {
        return None;
    }
    let [h1, h2, h3, h4, p1, p2] = bytes;
    let port = u16::from_be_bytes([p1, p2]);
    (port != 0).then(|| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(h1, h2, h3, h4), port)))
}

/// RFC 2428 §2: `<d><af><d><address><d><port><d>` where `d` is any printable ASCII character.
fn eprt(s: &str) -> Option<SocketAddr> {
    let delimiter = s.chars().next().filter(|c| ('!'..='~').contains(c))?;
    let mut fields = s.split(delimiter);
    let (empty, af, address, port, end) =
        (fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?);
    if !empty.is_empty() || !end.is_empty() || fields.next().is_some() {
        return None;
    }
    let ip = match af {
        "1" => address.parse::<Ipv4Addr>().ok()?.into(),
        "2" => address.parse::<Ipv6Addr>().ok()?.into(),
        _ => return None,
    };
    let port = u16::try_from(decimal(port)?).ok().filter(|&p| p != 0)?;
    Some(SocketAddr::new(ip, port))
}

/// `LIST` and `NLST` arguments may begin with `ls` option groups (`-a`, `-la`, `-l -a`), which many clients
/// send whatever the server; they are dropped. A file whose name looks like an option cannot be listed by
/// name, as with `ls` itself.
fn strip_ls_flags(mut arg: &str) -> Option<String> {
    loop {
        let (token, rest) = arg.split_once(' ').unwrap_or((arg, ""));
        let is_flag = token.len() > 1 && token.starts_with('-') && token[1..].bytes().all(|b| b.is_ascii_alphabetic());
        if !is_flag {
            break;
        }
        arg = rest;
    }
    Some(arg).filter(|a| !a.is_empty()).map(str::to_owned)
}

fn looks_like_time(s: &str) -> bool {
    let digits = s.split_once('.').map_or(s, |(whole, _)| whole);
    digits.len() == 14 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYYMMDDHHMMSS[.sss]` in UTC (RFC 3659 §2.3).
fn mfmt_time(s: &str) -> Option<NaiveDateTime> {
    let (whole, fraction) = match s.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (s, None),
    };
    if !looks_like_time(whole) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| whole[range].parse::<u32>().ok();
    let year = i32::try_from(num(0..4)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, num(4..6)?, num(6..8)?)?;
    let nanos = match fraction {
        None => 0,
        Some(f) if (1..=9).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<u32>().ok()? * 10u32.pow(9 - f.len() as u32)
        }
        Some(_) => return None,
    };
    date.and_hms_nano_opt(num(8..10)?, num(10..12)?, num(12..14)?, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(text: &str) -> String {
        text.to_owned()
    }

    fn time(y: i32, mo: u32, d: u32, h: u32, mi: u32, se: u32, milli: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d).unwrap().and_hms_milli_opt(h, mi, se, milli).unwrap()
    }

    fn v4(a: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((a, port))
    }

    #[test]
    fn parses_the_table() {
        use Command::*;
        use ParseError::*;
        let missing = BadArgument("command requires an argument");
        let cases: Vec<(&[u8], Result<Command, ParseError>)> = vec![
            // Verbs are case-insensitive; arguments are kept byte for byte.
            (b"USER alice", Ok(User(s("alice")))),
            (b"user alice@acme", Ok(User(s("alice@acme")))),
            (b"uSeR alice", Ok(User(s("alice")))),
            (b"USER", Err(missing.clone())),
            (b"USER ", Err(missing.clone())),
            (b"PASS secret words ", Ok(Pass(s("secret words ")))),
            (b"PASS", Ok(Pass(s("")))),
            (b"PASS ", Ok(Pass(s("")))),
            (b"RETR  two leading", Ok(Retr(s(" two leading")))),
            (b"STOR trailing  ", Ok(Stor(s("trailing  ")))),
            (b"STOR a  b", Ok(Stor(s("a  b")))),
            (b"RETR \t", Ok(Retr(s("\t")))),
            (b"CWD /", Ok(Cwd(s("/")))),
            (b"CWD", Err(missing.clone())),
            (b"DELE", Err(missing.clone())),
            (b"RNFR old", Ok(Rnfr(s("old")))),
            (b"RNTO new", Ok(Rnto(s("new")))),
            (b"APPE log", Ok(Appe(s("log")))),
            (b"SIZE f", Ok(Size(s("f")))),
            (b"MDTM f", Ok(Mdtm(s("f")))),
            ("RETR Ünïcødé 文件.txt".as_bytes(), Ok(Retr(s("Ünïcødé 文件.txt")))),
            // X-variants (RFC 775).
            (b"XPWD", Ok(Pwd)),
            (b"XCWD d", Ok(Cwd(s("d")))),
            (b"XCUP", Ok(Cdup)),
            (b"XMKD d", Ok(Mkd(s("d")))),
            (b"XRMD d", Ok(Rmd(s("d")))),
            (b"MKD d", Ok(Mkd(s("d")))),
            (b"RMD d", Ok(Rmd(s("d")))),
            // Commands without an argument tolerate one.
            (b"PWD", Ok(Pwd)),
            (b"PWD ", Ok(Pwd)),
            (b"pwd extra", Ok(Pwd)),
            (b"CDUP ", Ok(Cdup)),
            (b"QUIT bye", Ok(Quit)),
            (b"NOOP \xff", Ok(Noop)),
            (b"SYST", Ok(Syst)),
            (b"FEAT", Ok(Feat)),
            (b"PASV ", Ok(Pasv)),
            (b"ABOR", Ok(Abor)),
            (b"REIN", Ok(Rein)),
            (b"CCC", Ok(Ccc)),
            (b"ALLO 1024", Ok(Allo)),
            (b"ALLO 1024 R 10", Ok(Allo)),
            // Telnet IP / DM before ABOR, with or without the urgent DM byte.
            (b"\xff\xf4\xff\xf2ABOR", Ok(Abor)),
            (b"\xff\xf4\xffABOR", Ok(Abor)),
            // Optional arguments.
            (b"HELP", Ok(Help(None))),
            (b"HELP SITE", Ok(Help(Some(s("SITE"))))),
            (b"STAT", Ok(Stat(None))),
            (b"STAT ", Ok(Stat(None))),
            (b"STAT /dir", Ok(Stat(Some(s("/dir"))))),
            (b"STOU", Ok(Stou(None))),
            (b"STOU hint", Ok(Stou(Some(s("hint"))))),
            (b"MLSD", Ok(Mlsd(None))),
            (b"MLSD -a", Ok(Mlsd(Some(s("-a"))))),
            (b"MLST file", Ok(Mlst(Some(s("file"))))),
            // LIST and NLST drop `ls` flags.
            (b"LIST", Ok(List(None))),
            (b"LIST -a", Ok(List(None))),
            (b"LIST -la /dir", Ok(List(Some(s("/dir"))))),
            (b"LIST -l -a /dir x", Ok(List(Some(s("/dir x"))))),
            (b"LIST -al", Ok(List(None))),
            (b"LIST -la ", Ok(List(None))),
            (b"LIST dir", Ok(List(Some(s("dir"))))),
            (b"LIST -", Ok(List(Some(s("-"))))),
            (b"LIST -1", Ok(List(Some(s("-1"))))),
            (b"LIST a -l", Ok(List(Some(s("a -l"))))),
            (b"NLST -a sub", Ok(Nlst(Some(s("sub"))))),
            (b"NLST", Ok(Nlst(None))),
            // Security (RFC 2228, RFC 4217).
            (b"AUTH TLS", Ok(Auth(AuthMechanism::Tls))),
            (b"auth tls", Ok(Auth(AuthMechanism::Tls))),
            (b"AUTH SSL", Ok(Auth(AuthMechanism::Tls))),
            (b"AUTH TLS-C", Ok(Auth(AuthMechanism::Tls))),
            (b"AUTH tls-p", Ok(Auth(AuthMechanism::Tls))),
            (b"AUTH TLS ", Ok(Auth(AuthMechanism::Tls))),
            (b"AUTH KERBEROS_V4", Err(UnsupportedParameter("only AUTH TLS is supported"))),
            (b"AUTH", Err(missing.clone())),
            (b"PBSZ 0", Ok(Pbsz(0))),
            (b"PBSZ 18446744073709551615", Ok(Pbsz(u64::MAX))),
            (b"PBSZ 18446744073709551616", Err(BadArgument("PBSZ takes a decimal number"))),
            (b"PBSZ +1", Err(BadArgument("PBSZ takes a decimal number"))),
            (b"PBSZ x", Err(BadArgument("PBSZ takes a decimal number"))),
            (b"PROT P", Ok(Prot(super::Prot::Private))),
            (b"PROT c", Ok(Prot(super::Prot::Clear))),
            (b"PROT S", Ok(Prot(super::Prot::Safe))),
            (b"PROT e", Ok(Prot(super::Prot::Confidential))),
            (b"PROT X", Err(BadArgument("PROT takes C, P, S or E"))),
            (b"PROT", Err(missing.clone())),
            (b"HOST ftp.example.com", Ok(Host(s("ftp.example.com")))),
            (b"HOST", Err(missing.clone())),
            // OPTS.
            (b"OPTS UTF8 ON", Ok(Opts(super::Opts::Utf8(true)))),
            (b"opts utf8 on", Ok(Opts(super::Opts::Utf8(true)))),
            (b"OPTS UTF-8 ON", Ok(Opts(super::Opts::Utf8(true)))),
            (b"OPTS UTF8 OFF", Ok(Opts(super::Opts::Utf8(false)))),
            (b"OPTS UTF8", Ok(Opts(super::Opts::Other(s("UTF8"))))),
            (b"OPTS MLST type;Size;;modify;", Ok(Opts(super::Opts::Mlst(vec![s("type"), s("size"), s("modify")])))),
            (b"OPTS MLST", Ok(Opts(super::Opts::Mlst(vec![])))),
            (b"OPTS MLST ", Ok(Opts(super::Opts::Mlst(vec![])))),
            (b"OPTS MODE Z LEVEL 9", Ok(Opts(super::Opts::Other(s("MODE Z LEVEL 9"))))),
            (b"OPTS", Ok(Opts(super::Opts::Other(s(""))))),
            // TYPE, MODE, STRU.
            (b"TYPE A", Ok(Type(TransferType::Ascii))),
            (b"type a n", Ok(Type(TransferType::Ascii))),
            (b"TYPE I", Ok(Type(TransferType::Image))),
            (b"TYPE i", Ok(Type(TransferType::Image))),
            (b"TYPE L 8", Ok(Type(TransferType::Image))),
            (b"TYPE E", Err(UnsupportedParameter("only TYPE A and TYPE I are supported"))),
            (b"TYPE A T", Err(UnsupportedParameter("only TYPE A and TYPE I are supported"))),
            (b"TYPE A C", Err(UnsupportedParameter("only TYPE A and TYPE I are supported"))),
            (b"TYPE L 16", Err(UnsupportedParameter("only TYPE A and TYPE I are supported"))),
            (b"TYPE X", Err(BadArgument("TYPE takes A, I or L 8"))),
            (b"TYPE I N", Err(BadArgument("TYPE takes A, I or L 8"))),
            (b"TYPE A N X", Err(BadArgument("TYPE takes A, I or L 8"))),
            (b"TYPE L", Err(BadArgument("TYPE takes A, I or L 8"))),
            (b"TYPE", Err(missing.clone())),
            (b"MODE S", Ok(Mode(TransferMode::Stream))),
            (b"MODE b", Ok(Mode(TransferMode::Block))),
            (b"MODE C", Ok(Mode(TransferMode::Compressed))),
            (b"MODE Z", Err(BadArgument("MODE takes S, B or C"))),
            (b"STRU F", Ok(Stru(FileStructure::File))),
            (b"STRU r", Ok(Stru(FileStructure::Record))),
            (b"STRU P", Ok(Stru(FileStructure::Page))),
            (b"STRU X", Err(BadArgument("STRU takes F, R or P"))),
            // EPSV, PORT, EPRT.
            (b"EPSV", Ok(Epsv(EpsvArg::Any))),
            (b"EPSV 1", Ok(Epsv(EpsvArg::Family(1)))),
            (b"EPSV 2", Ok(Epsv(EpsvArg::Family(2)))),
            (b"EPSV all", Ok(Epsv(EpsvArg::All))),
            (b"EPSV 3", Err(BadArgument("EPSV takes 1, 2 or ALL"))),
            (b"PORT 192,168,1,2,4,1", Ok(Port(v4([192, 168, 1, 2], 1025)))),
            (b"PORT 127,0,0,1,255,255", Ok(Port(v4([127, 0, 0, 1], 65535)))),
            (b"PORT 127,0,0,1,0,0", Err(BadArgument("PORT takes h1,h2,h3,h4,p1,p2"))),
            (b"PORT 127,0,0,1,4", Err(BadArgument("PORT takes h1,h2,h3,h4,p1,p2"))),
            (b"PORT 127,0,0,1,4,1,1", Err(BadArgument("PORT takes h1,h2,h3,h4,p1,p2"))),
            (b"PORT 256,0,0,1,4,1", Err(BadArgument("PORT takes h1,h2,h3,h4,p1,p2"))),
            (b"PORT 127,0,0,-1,4,1", Err(BadArgument("PORT takes h1,h2,h3,h4,p1,p2"))),
            (b"PORT 127,0,0,,4,1", Err(BadArgument("PORT takes h1,h2,h3,h4,p1,p2"))),
            (b"PORT", Err(missing.clone())),
            (b"EPRT |1|132.235.1.2|6275|", Ok(Eprt(v4([132, 235, 1, 2], 6275)))),
            (b"EPRT |2|::1|5282|", Ok(Eprt(SocketAddr::from((Ipv6Addr::LOCALHOST, 5282))))),
            (b"EPRT !2!1080::8:800:200C:417A!5282!", Ok(Eprt("[1080::8:800:200c:417a]:5282".parse().unwrap()))),
            (b"EPRT |1|::1|5282|", Err(BadArgument("EPRT takes |af|address|port|"))),
            (b"EPRT |2|132.235.1.2|6275|", Err(BadArgument("EPRT takes |af|address|port|"))),
            (b"EPRT |3|132.235.1.2|6275|", Err(BadArgument("EPRT takes |af|address|port|"))),
            (b"EPRT |1|132.235.1.2|0|", Err(BadArgument("EPRT takes |af|address|port|"))),
            (b"EPRT |1|132.235.1.2|65536|", Err(BadArgument("EPRT takes |af|address|port|"))),
            (b"EPRT |1|132.235.1.2|6275", Err(BadArgument("EPRT takes |af|address|port|"))),
            (b"EPRT |1|132.235.1.2|6275|x", Err(BadArgument("EPRT takes |af|address|port|"))),
            (b"EPRT 1|132.235.1.2|6275|", Err(BadArgument("EPRT takes |af|address|port|"))),
            // REST, MFMT, MDTM setting a time.
            (b"REST 0", Ok(Rest(0))),
            (b"REST 1048576", Ok(Rest(1_048_576))),
            (b"REST -1", Err(BadArgument("REST takes a decimal offset"))),
            (b"REST", Err(missing.clone())),
            (b"MFMT 20240304123000 a file.txt", Ok(Mfmt(time(2024, 3, 4, 12, 30, 0, 0), s("a file.txt")))),
            (b"MFMT 20240304123000.250  lead", Ok(Mfmt(time(2024, 3, 4, 12, 30, 0, 250), s(" lead")))),
            (b"MFMT 20241304123000 f", Err(BadArgument("time must be YYYYMMDDHHMMSS"))),
            (b"MFMT 20240230000000 f", Err(BadArgument("time must be YYYYMMDDHHMMSS"))),
            (b"MFMT 2024030412300 f", Err(BadArgument("time must be YYYYMMDDHHMMSS"))),
            (b"MFMT 20240304123000. f", Err(BadArgument("time must be YYYYMMDDHHMMSS"))),
            (b"MFMT 20240304123000", Err(BadArgument("MFMT takes a time and a path"))),
            (b"MFMT 20240304123000 ", Err(BadArgument("MFMT takes a time and a path"))),
            (b"MFMT", Err(BadArgument("MFMT takes a time and a path"))),
            (b"MDTM 20240304123000 f g", Ok(Mfmt(time(2024, 3, 4, 12, 30, 0, 0), s("f g")))),
            (b"MDTM 20240304123000", Ok(Mdtm(s("20240304123000")))),
            (b"MDTM 20241399999999 f", Ok(Mdtm(s("20241399999999 f")))),
            (b"MDTM notes 2024.txt", Ok(Mdtm(s("notes 2024.txt")))),
            // Syntax, unknown verbs and encoding.
            (b"", Err(Syntax)),
            (b" ", Err(Syntax)),
            (b" USER a", Err(Syntax)),
            (b"US3R a", Err(Syntax)),
            (b"USER\ta", Err(Syntax)),
            (b"\xff\xfe", Err(Syntax)),
            (b"\0", Err(Syntax)),
            (b"SITE CHMOD 755 f", Err(Unknown(s("SITE")))),
            (b"xyzzy", Err(Unknown(s("XYZZY")))),
            (b"LONGVERB", Err(Unknown(s("LONGVERB")))),
            (b"XYZ \xff", Err(Unknown(s("XYZ")))),
            (b"RETR \xff\xfe", Err(Encoding)),
            (b"RETR a\0b", Err(Encoding)),
            (b"USER \xc3", Err(Encoding)),
            (b"RETR a\x01b", Ok(Retr(s("a\x01b")))),
        ];
        for (line, expected) in cases {
            assert_eq!(parse(line), expected, "line {:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn verbs_are_canonical() {
        assert_eq!(parse(b"XPWD").unwrap().verb(), "PWD");
        assert_eq!(parse(b"xmkd d").unwrap().verb(), "MKD");
        assert_eq!(parse(b"MDTM 20240304123000 f").unwrap().verb(), "MFMT");
        assert_eq!(parse(b"list -la").unwrap().verb(), "LIST");
    }

    #[test]
    fn meta_of_commands() {
        // (needs_login, during_transfer, before_tls)
        let meta = |(needs_login, during_transfer, before_tls)| Meta { needs_login, during_transfer, before_tls };
        let cases: Vec<(&[u8], Meta)> = vec![
            (b"USER a", meta((false, false, false))),
            (b"PASS a", meta((false, false, false))),
            (b"AUTH TLS", meta((false, false, true))),
            (b"PBSZ 0", meta((false, false, false))),
            (b"PROT P", meta((false, false, false))),
            (b"CCC", meta((false, false, false))),
            (b"FEAT", meta((false, false, true))),
            (b"OPTS UTF8 ON", meta((false, false, true))),
            (b"SYST", meta((false, false, true))),
            (b"NOOP", meta((false, true, true))),
            (b"QUIT", meta((false, true, true))),
            (b"REIN", meta((false, false, false))),
            (b"HELP", meta((false, false, true))),
            (b"HOST h", meta((false, false, true))),
            (b"ABOR", meta((true, true, false))),
            (b"STAT", meta((true, true, false))),
            (b"STAT f", meta((true, true, false))),
            (b"RETR f", meta((true, false, false))),
            (b"LIST", meta((true, false, false))),
            (b"PWD", meta((true, false, false))),
            (b"PASV", meta((true, false, false))),
        ];
        for (line, expected) in cases {
            assert_eq!(parse(line).unwrap().meta(), expected, "line {:?}", String::from_utf8_lossy(line));
        }
    }

    const PATH_VERBS: &[&str] = &[
        "CWD", "XCWD", "MKD", "XMKD", "RMD", "XRMD", "DELE", "RNFR", "RNTO", "SIZE", "RETR", "STOR", "APPE", "STOU",
        "STAT", "MLSD", "MLST",
    ];

    fn path_of(command: Command) -> Option<String> {
        use Command::*;
        match command {
            Cwd(p) | Mkd(p) | Rmd(p) | Dele(p) | Rnfr(p) | Rnto(p) | Size(p) | Retr(p) | Stor(p) | Appe(p) => Some(p),
            Stou(p) | Stat(p) | Mlsd(p) | Mlst(p) => p,
            _ => None,
        }
    }

    proptest! {
        #[test]
        fn never_panics(line in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(&line);
        }

        #[test]
        fn never_panics_on_known_verbs(verb in "(?i)[a-z]{3,4}", arg in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut line = verb.into_bytes();
            line.push(b' ');
            line.extend_from_slice(&arg);
            let _ = parse(&line);
        }

        #[test]
        fn path_arguments_are_kept_exactly(
            verb in proptest::sample::select(PATH_VERBS),
            lower in any::<bool>(),
            arg in "[^\r\n\0]+",
        ) {
            let verb = if lower { verb.to_ascii_lowercase() } else { verb.to_owned() };
            let parsed = parse(format!("{verb} {arg}").as_bytes()).unwrap();
            prop_assert_eq!(path_of(parsed), Some(arg));
        }
    }
}
