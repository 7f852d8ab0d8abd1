//! The control-line parser and the parsers of each command's argument (addresses, types, OPTS, MFMT
//! times). Pure: no I/O, no allocation beyond the line, no panic whatever the bytes.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use chrono::{NaiveDate, NaiveDateTime};

use super::{
    AuthMechanism, Command, EpsvArg, FileStructure, HashAlgorithm, Opts, ParseError, Prot, TransferMode, TransferType,
};

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
    // Letters, then optionally digits (XSHA256).
    let letters = verb.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    if letters == 0 || !verb[letters..].iter().all(u8::is_ascii_digit) {
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

    let mut upper = [0u8; 7];
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
        // `ALLO n [R m]`: only the size matters; a record size is accepted and ignored.
        b"ALLO" => Command::Allo(allocation(arg()?)?),
        b"PASV" => Command::Pasv,
        b"EPSV" => Command::Epsv(epsv(arg()?)?),
        b"PORT" => Command::Port(port(word()?).ok_or(ParseError::BadArgument("PORT takes h1,h2,h3,h4,p1,p2"))?),
        b"EPRT" => Command::Eprt(eprt(word()?).ok_or(ParseError::BadArgument("EPRT takes |af|address|port|"))?),
        b"LIST" => Command::List(strip_ls_flags(arg()?)),
        b"NLST" => Command::Nlst(strip_ls_flags(arg()?)),
        b"MLSD" => Command::Mlsd(optional()?),
        b"MLST" => Command::Mlst(optional()?),
        b"SIZE" => Command::Size(required()?),
        b"HASH" => Command::Hash(required()?),
        b"XSHA256" => Command::XHash(HashAlgorithm::Sha256, required()?),
        b"XCRC" => Command::XHash(HashAlgorithm::Crc32, required()?),
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
    } else if name.eq_ignore_ascii_case("HASH") && !rest.contains(' ') {
        return Opts::Hash((!rest.is_empty()).then(|| rest.to_owned()));
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

/// RFC 959 §4.1.3: `ALLO n [R m]`; the size of the next upload (none when the argument is empty).
fn allocation(arg: &str) -> Result<Option<u64>, ParseError> {
    match arg.split_ascii_whitespace().next() {
        None => Ok(None),
        Some(n) => n.parse().map(Some).map_err(|_| ParseError::BadArgument("ALLO takes a size in bytes")),
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
