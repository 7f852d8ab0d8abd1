//! Command handlers, grouped by concern. [`dispatch`] is the one `match` from a parsed [`Command`] to its
//! handler; checks that depend only on the command's metadata already ran in the session.

mod auth;
mod dirs;
mod files;
mod info;
mod nav;
mod params;

use std::io;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::Instrument;

use super::command::Command;
use super::data::DataTls;
use super::error;
use super::reply::Reply;
use super::session::{wait, Flow, Running, Session};
use super::transfer::{self, Job};
use crate::telemetry::metrics::Direction;
use crate::tls::DataDirection;
use crate::vfs::{UserView, VirtualPath};

pub(super) async fn dispatch(s: &mut Session, command: Command) -> io::Result<Flow> {
    // RNTO must directly follow RNFR (RFC 959 §4.1.3).
    if !matches!(command, Command::Rnfr(_) | Command::Rnto(_)) {
        s.rename_from = None;
    }
    let after_pwd = std::mem::replace(&mut s.after_pwd, matches!(command, Command::Pwd));
    let reply = match command {
        Command::User(name) => return auth::user(s, name).await,
        Command::Pass(password) => return auth::pass(s, password).await,
        Command::Auth(_) => return auth::auth_tls(s).await,
        Command::Pbsz(_) => auth::pbsz(s),
        Command::Prot(level) => auth::prot(s, level),
        Command::Ccc => Reply::new(534, "CCC refused: the control connection stays encrypted"),
        Command::Rein => auth::rein(s),
        Command::Host(host) => auth::host(s, &host).await,
        Command::Quit => return quit(s).await,
        Command::Feat => info::feat(s),
        Command::Opts(opts) => info::opts(s, opts),
        Command::Syst => Reply::new(215, "UNIX Type: L8"),
        Command::Noop => Reply::new(200, "NOOP ok"),
        Command::Help(_) => info::help(),
        Command::Stat(None) => info::status(s),
        Command::Stat(Some(path)) => dirs::stat_path(s, &path).await,
        Command::Pwd => nav::pwd(s),
        Command::Cwd(path) => nav::cwd(s, &path).await,
        Command::Cdup => nav::cwd(s, "..").await,
        Command::Mkd(path) => dirs::mkd(s, &path).await,
        Command::Rmd(path) => dirs::rmd(s, &path).await,
        Command::Dele(path) => files::dele(s, &path).await,
        Command::Rnfr(path) => files::rnfr(s, &path).await,
        Command::Rnto(path) => files::rnto(s, &path).await,
        Command::Type(kind) => params::transfer_type(s, kind),
        Command::Mode(mode) => params::mode(mode),
        Command::Stru(structure) => params::structure(structure),
        Command::Allo(size) => params::allo(s, size),
        Command::Pasv => params::pasv(s, after_pwd).await,
        Command::Epsv(arg) => params::epsv(s, arg, after_pwd).await,
        Command::Port(addr) => params::port(s, addr, "PORT"),
        Command::Eprt(addr) => params::port(s, addr, "EPRT"),
        Command::List(path) => return dirs::list(s, path, dirs::Format::List).await,
        Command::Nlst(path) => return dirs::list(s, path, dirs::Format::Names).await,
        Command::Mlsd(path) => return dirs::list(s, path, dirs::Format::Mlsd).await,
        Command::Mlst(path) => dirs::mlst(s, path).await,
        Command::Size(path) => files::size(s, &path).await,
        Command::Mdtm(path) => files::mdtm(s, &path).await,
        Command::Hash(path) => files::hash(s, s.hash, &path, false).await,
        Command::XHash(algorithm, path) => files::hash(s, algorithm, &path, true).await,
        Command::Mfmt(time, path) => files::mfmt(s, time, &path).await,
        Command::Rest(offset) => files::rest(s, offset),
        Command::Retr(path) => return files::retr(s, &path).await,
        Command::Stor(path) => return files::store(s, &path, files::Store::Replace).await,
        Command::Appe(path) => return files::store(s, &path, files::Store::Append).await,
        Command::Stou(base) => return files::store_unique(s, base.as_deref()).await,
        Command::Abor => return abort(s).await,
    };
    s.send(&reply).await?;
    // 421 means the server is closing the control connection (RFC 959 §4.2.2).
    Ok(if reply.code == 421 { Flow::Close } else { Flow::Continue })
}

/// QUIT (RFC 959 §4.1.1): a running transfer finishes and gets its reply first.
async fn quit(s: &mut Session) -> io::Result<Flow> {
    if s.transfer.is_some() {
        let outcome = wait(&mut s.transfer).await;
        s.transfer_done(outcome).await?;
    }
    s.send(&Reply::new(221, "Goodbye")).await?;
    Ok(Flow::Close)
}

/// ABOR (RFC 959 §4.1.3): 426 for the interrupted transfer, then 226; 225 when nothing ran.
async fn abort(s: &mut Session) -> io::Result<Flow> {
    s.data = None;
    s.rest = 0;
    if s.cancel_transfer().await? {
        s.send(&Reply::new(226, "ABOR successful")).await?;
    } else {
        s.send(&Reply::new(225, "No transfer to abort")).await?;
    }
    Ok(Flow::Continue)
}

/// STAT without a path: the session's status.
pub(in crate::ftp) fn status(s: &Session) -> Reply {
    info::status(s)
}

/// The user's view of the tenant's storage; only called after login (the session checked).
fn view(s: &Session) -> UserView {
    s.login().view.clone()
}

/// Resolves a client path against the working directory.
fn resolve(s: &Session, input: &str) -> Result<VirtualPath, Reply> {
    s.cwd.resolve(input).map_err(|e| error::vfs_reply(&e))
}

/// Refuses a transfer before any storage work when the data channel cannot be used.
fn check_data_ready(s: &Session) -> Option<Reply> {
    if s.policy().require_prot_p && !s.prot_private {
        return Some(Reply::new(521, "Data connections must be encrypted: send PBSZ 0 and PROT P first"));
    }
    if s.data.is_none() {
        return Some(Reply::new(425, "Use PASV, EPSV, PORT or EPRT first"));
    }
    None
}

/// Starts the transfer task: it waits for the data connection, reports it (the session then sends
/// `opening` as the 150 reply) and moves the data. The job is ready, so a storage error has already been
/// answered without touching the data connection. Meanwhile the session keeps reading commands, so ABOR
/// works even while the data connection is awaited.
async fn start_transfer(
    s: &mut Session,
    what: &'static str,
    path: &VirtualPath,
    job: Job,
    opening: String,
) -> io::Result<Flow> {
    let plan = s.data.take().expect("checked by check_data_ready");
    let policy = s.policy();
    let config = s.shared.config();
    let ftp = &config.ftp;
    let connect =
        transfer::Connect { plan, peer: s.peer.ip(), timeout: Duration::from_secs(ftp.data_connect_timeout_secs) };
    let stall = Duration::from_secs(ftp.stall_timeout_secs);
    let (direction, flow) = match job {
        Job::Receive { .. } => (DataDirection::FromClient, Direction::In),
        Job::Send { .. } => (DataDirection::ToClient, Direction::Out),
        Job::List { .. } => (DataDirection::ToClient, Direction::List),
    };
    let tls = s
        .prot_private
        .then(|| DataTls { acceptor: s.shared.tls.data_acceptor(&s.owner, direction), resumption: policy.resumption });
    let cancel = tokio_util::sync::CancellationToken::new();
    let (connected, opened) = oneshot::channel();
    let span = transfer_span(s, what, path);
    let handle =
        tokio::spawn(transfer::run(connect, tls, stall, job, cancel.clone(), connected).instrument(span.clone()));
    let opening = Some((opened, Reply::new(150, opening)));
    s.transfer = Some(Running { handle, cancel, what, direction: flow, path: path.to_string(), opening, span });
    Ok(Flow::Continue)
}

/// The `ftp.transfer` span, a child of the command that started it. It names the tenant, user and client
/// itself, because trace back ends do not carry attributes down from the session.
fn transfer_span(s: &Session, what: &'static str, path: &VirtualPath) -> tracing::Span {
    let (tenant, user) = match &s.login {
        Some(login) => (login.principal.tenant.name.as_str(), login.principal.user.username.as_str()),
        None => ("", ""),
    };
    tracing::info_span!(
        target: "wharf::transfer",
        "ftp.transfer",
        "ftp.command" = what,
        path = %path,
        tenant,
        user,
        "client.address" = %s.peer.ip(),
        bytes = tracing::field::Empty,
        result = tracing::field::Empty,
        "ftp.reply_code" = tracing::field::Empty,
    )
}

/// Answers a transfer command that cannot start; the prepared data connection is dropped with it.
async fn refuse(s: &mut Session, reply: Reply) -> io::Result<Flow> {
    s.data = None;
    s.send(&reply).await?;
    Ok(Flow::Continue)
}

fn type_name(s: &Session) -> &'static str {
    if s.ascii {
        "ASCII"
    } else {
        "BINARY"
    }
}

/// Quotes a path for a 257 reply: embedded double quotes are doubled (RFC 959 Appendix II).
fn quote(path: &VirtualPath) -> String {
    format!("\"{}\"", path.as_str().replace('"', "\"\""))
}
