//! Control-line parsing: RFC 959 §4.1 and §5.3, RFC 2228 (AUTH, PBSZ, PROT, CCC), RFC 2389 (FEAT, OPTS),
//! RFC 2428 (EPRT, EPSV), RFC 3659 (SIZE, MDTM, REST, MLST, MLSD), RFC 7151 (HOST) and the
//! draft-somers-ftp-mfxx MFMT command.
//!
//! `parse` is pure: one line in (without its CR LF), one typed [`Command`] or a [`ParseError`] out. It never
//! allocates more than the line it is given and never panics, whatever the bytes.

use std::net::{IpAddr, SocketAddr};

use chrono::NaiveDateTime;

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
    /// 501: the argument is not valid UTF-8 or contains control characters.
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
    /// The verb as the client would write it, for logs and for replies that name the command.
    pub fn verb(&self) -> &'static str {
        todo!()
    }

    pub fn meta(&self) -> Meta {
        todo!()
    }
}

/// Parses one control line (CR LF already removed). Verbs are case-insensitive; the argument is everything
/// after the first space, kept exactly (file names may begin or end with spaces).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let _ = (line, IpAddr::from([0, 0, 0, 0]));
    todo!()
}
