//! Control-line parsing: RFC 959 §4.1 and §5.3, RFC 2228 (AUTH, PBSZ, PROT, CCC), RFC 2389 (FEAT, OPTS),
//! RFC 2428 (EPRT, EPSV), RFC 3659 (SIZE, MDTM, REST, MLST, MLSD), RFC 7151 (HOST) and the
//! draft-somers-ftp-mfxx MFMT command.
//!
//! This module holds the typed [`Command`] and what each command needs (login, permissions, TLS). [`parse`]
//! is pure: one line in (without its CR LF), one typed [`Command`] or a [`ParseError`] out. It never
//! allocates more than the line it is given and never panics, whatever the bytes.

mod parse;

use std::net::SocketAddr;

use chrono::NaiveDateTime;

use crate::access::{Permission, Permissions};

pub use parse::parse;

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
    /// The announced size of the next upload, if the argument gives one.
    Allo(Option<u64>),
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
    /// draft-bryan-ftpext-hash: the selected algorithm's checksum of a whole file.
    Hash(String),
    /// `XSHA256 path` and `XCRC path`: the older one-algorithm forms of HASH.
    XHash(HashAlgorithm, String),
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

/// The checksums HASH can answer from what an upload recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Sha256,
    Crc32,
}

impl HashAlgorithm {
    /// The name draft-bryan-ftpext-hash gives it.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "SHA-256",
            HashAlgorithm::Crc32 => "CRC32",
        }
    }

    pub fn from_name(name: &str) -> Option<HashAlgorithm> {
        [HashAlgorithm::Sha256, HashAlgorithm::Crc32].into_iter().find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opts {
    Utf8(bool),
    /// `OPTS HASH` asks for the selected algorithm; `OPTS HASH name` selects one (the name as sent).
    Hash(Option<String>),
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
    /// What the user must be allowed at the path of [`Command::target`] (550 otherwise).
    pub needs: Permissions,
    /// Uses the prepared data connection (dropped, with a pending REST, when the command is refused).
    pub opens_data: bool,
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
            Command::Allo(_) => "ALLO",
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
            Command::Hash(_) => "HASH",
            Command::XHash(HashAlgorithm::Sha256, _) => "XSHA256",
            Command::XHash(HashAlgorithm::Crc32, _) => "XCRC",
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
        use Permission as P;
        let needs = match self {
            // Seeing what a directory holds, on the data or the control connection.
            List(_) | Nlst(_) | Mlsd(_) | Mlst(_) | Stat(Some(_)) => Permissions::of(&[P::List]),
            // A file's content and the facts that only make sense for reading it.
            Retr(_) | Size(_) | Mdtm(_) | Hash(_) | XHash(..) => Permissions::of(&[P::Read]),
            Stor(_) | Stou(_) | Appe(_) | Mfmt(..) => Permissions::of(&[P::Write]),
            // Removing a directory removes things as DELE does.
            Dele(_) | Rmd(_) => Permissions::of(&[P::Delete]),
            Mkd(_) => Permissions::of(&[P::Mkdir]),
            Rnfr(_) => Permissions::of(&[P::Rename]),
            // The target gets a new entry: renaming there and creating there (RNFR checked the source).
            Rnto(_) => Permissions::of(&[P::Rename, P::Write]),
            // CWD, CDUP and PWD only move the session; what a directory holds still needs list.
            _ => Permissions::NONE,
        };
        let opens_data = matches!(self, List(_) | Nlst(_) | Mlsd(_) | Retr(_) | Stor(_) | Stou(_) | Appe(_));
        Meta { needs_login, during_transfer, before_tls, needs, opens_data }
    }

    /// The path, as the client wrote it, that [`Meta::needs`] applies to: the argument, or `.` (the working
    /// directory) for a listing without one and for STOU, which creates its file there.
    pub fn target(&self) -> Option<&str> {
        use Command::*;
        match self {
            List(p) | Nlst(p) | Mlsd(p) | Mlst(p) => Some(p.as_deref().unwrap_or(".")),
            // As the handler reads it: the base name trimmed, the new file in the working directory.
            Stou(base) => Some(base.as_deref().map(str::trim).filter(|b| !b.is_empty()).unwrap_or(".")),
            Stat(p) => p.as_deref(),
            Retr(p)
            | Size(p)
            | Mdtm(p)
            | Hash(p)
            | XHash(_, p)
            | Stor(p)
            | Appe(p)
            | Mfmt(_, p)
            | Dele(p)
            | Rmd(p)
            | Mkd(p)
            | Rnfr(p)
            | Rnto(p) => Some(p),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
