//! Tests of the control-line parser: a table of lines and their commands, plus properties on arbitrary bytes.

use std::net::Ipv6Addr;

use chrono::NaiveDate;
use proptest::prelude::*;

use super::*;

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
        (b"ALLO 1024", Ok(Allo(Some(1024)))),
        (b"ALLO 1024 R 10", Ok(Allo(Some(1024)))),
        (b"ALLO", Ok(Allo(None))),
        (b"ALLO x", Err(BadArgument("ALLO takes a size in bytes"))),
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
        (b"3USR a", Err(Syntax)),
        (b"HASH a b.txt", Ok(Hash(s("a b.txt")))),
        (b"HASH", Err(BadArgument("command requires an argument"))),
        (b"xsha256 f", Ok(XHash(HashAlgorithm::Sha256, s("f")))),
        (b"XCRC f", Ok(XHash(HashAlgorithm::Crc32, s("f")))),
        (b"XSHA512 f", Err(Unknown(s("XSHA512")))),
        (b"OPTS HASH", Ok(Opts(super::Opts::Hash(None)))),
        (b"OPTS HASH crc32", Ok(Opts(super::Opts::Hash(Some(s("crc32")))))),
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
    let meta = |(needs_login, during_transfer, before_tls)| Meta {
        needs_login,
        during_transfer,
        before_tls,
        needs: crate::access::Permissions::NONE,
        opens_data: false,
    };
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
        let Meta { needs_login, during_transfer, before_tls, .. } = parse(line).unwrap().meta();
        assert_eq!(
            Meta { needs_login, during_transfer, before_tls, ..expected },
            expected,
            "line {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn what_each_command_needs_and_where() {
    // (line, permissions needed, at which path, uses the data connection)
    let cases: &[(&str, &str, Option<&str>, bool)] = &[
        ("LIST", "list", Some("."), true),
        ("LIST -la /in", "list", Some("/in"), true),
        ("NLST d", "list", Some("d"), true),
        ("MLSD", "list", Some("."), true),
        ("MLST f", "list", Some("f"), false),
        ("STAT f", "list", Some("f"), false),
        ("STAT", "none", None, false),
        ("RETR f", "read", Some("f"), true),
        ("SIZE f", "read", Some("f"), false),
        ("MDTM f", "read", Some("f"), false),
        ("HASH f", "read", Some("f"), false),
        ("XCRC f", "read", Some("f"), false),
        ("STOR f", "write", Some("f"), true),
        ("APPE f", "write", Some("f"), true),
        ("STOU", "write", Some("."), true),
        ("STOU base", "write", Some("base"), true),
        ("STOU  base ", "write", Some("base"), true),
        ("MFMT 20240102030405 f", "write", Some("f"), false),
        ("MDTM 20240102030405 f", "write", Some("f"), false),
        ("DELE f", "delete", Some("f"), false),
        ("RMD d", "delete", Some("d"), false),
        ("MKD d", "mkdir", Some("d"), false),
        ("RNFR f", "rename", Some("f"), false),
        ("RNTO g", "write,rename", Some("g"), false),
        ("CWD d", "none", None, false),
        ("CDUP", "none", None, false),
        ("PWD", "none", None, false),
        ("NOOP", "none", None, false),
        ("PASV", "none", None, false),
    ];
    for &(line, needs, target, opens_data) in cases {
        let command = parse(line.as_bytes()).unwrap();
        let meta = command.meta();
        assert_eq!(
            (meta.needs.to_string().as_str(), command.target(), meta.opens_data),
            (needs, target, opens_data),
            "{line}"
        );
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
