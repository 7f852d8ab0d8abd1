//! Directories and listings: RFC 959 §4.1.3 (MKD, RMD, LIST, NLST, STAT path) and RFC 3659 §7 (MLST, MLSD).

use std::io;
use std::time::SystemTime;

use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt as _, TryStreamExt as _};

use super::{check_data_ready, error, quote, refuse, resolve, start_transfer, view};
use crate::access::Access;
use crate::ftp::listing::{self, Facts};
use crate::ftp::reply::Reply;
use crate::ftp::session::{Flow, Session};
use crate::ftp::transfer::Job;
use crate::storage::{Entry, StorageError};
use crate::vfs::{UserView, VirtualPath};

/// Lines beyond this in a STAT listing on the control connection are cut; LIST has no limit.
const STAT_MAX_LINES: usize = 10_000;

pub(super) async fn mkd(s: &mut Session, input: &str) -> Reply {
    let path = match resolve(s, input) {
        Ok(path) => path,
        Err(reply) => return reply,
    };
    if path.is_root() {
        return Reply::new(550, "The root directory always exists");
    }
    let view = view(s);
    match s.serving(view.make_dir(&path)).await {
        Ok(()) => Reply::new(257, format!("{} created", quote(&path))),
        Err(e) => error::view_reply(&e, "creating the directory"),
    }
}

pub(super) async fn rmd(s: &mut Session, input: &str) -> Reply {
    let path = match resolve(s, input) {
        Ok(path) => path,
        Err(reply) => return reply,
    };
    if path.is_root() {
        return Reply::new(550, "The root directory cannot be removed");
    }
    let view = view(s);
    match s.serving(view.remove_dir(&path)).await {
        Ok(()) => Reply::new(250, "Directory removed"),
        Err(e) => error::view_reply(&e, "removing the directory"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    List,
    Names,
    Mlsd,
}

/// LIST, NLST, MLSD: entries stream from storage to the data connection as they arrive.
pub(super) async fn list(s: &mut Session, input: Option<String>, format: Format) -> io::Result<Flow> {
    if let Some(reply) = check_data_ready(s) {
        s.send(&reply).await?;
        return Ok(Flow::Continue);
    }
    match listing_lines(s, input.as_deref().unwrap_or("."), format).await {
        Ok((path, lines)) => {
            let opening = format!("Opening {} mode data connection for the listing of {path}", super::type_name(s));
            let verb = match format {
                Format::List => "LIST",
                Format::Names => "NLST",
                Format::Mlsd => "MLSD",
            };
            start_transfer(s, verb, &path, Job::List { lines }, opening).await
        }
        Err(reply) => refuse(s, reply).await,
    }
}

type Lines = BoxStream<'static, Result<String, StorageError>>;

/// The listing of `input` as lines: the stat and the start of the listing run with the control connection
/// served (`Session::serving`).
async fn listing_lines(s: &mut Session, input: &str, format: Format) -> Result<(VirtualPath, Lines), Reply> {
    let path = resolve(s, input)?;
    let (view, facts, access) = (view(s), s.facts, view_access(s));
    s.serving(lines_of(view, path, facts, access, format)).await
}

async fn lines_of(
    view: UserView,
    path: VirtualPath,
    facts: Facts,
    access: Access,
    format: Format,
) -> Result<(VirtualPath, Lines), Reply> {
    let meta = view.stat(&path).await.map_err(|e| error::view_reply(&e, "listing"))?;
    let now = SystemTime::now();
    let dir = path.clone();
    // The perm fact tells what this user may do with each entry (a path rule may cover some entries only).
    let render = move |entry: &Entry| match format {
        Format::List => listing::list_line(entry, now),
        Format::Names => entry.name.clone(),
        Format::Mlsd => {
            // A name that is no valid path segment (the client cannot address it) falls under its folder's.
            let perms = dir.join(&entry.name).map_or_else(|_| access.at(&dir), |p| access.at(&p));
            listing::mlsx_line(&entry.name, &entry.meta, facts, perms)
        }
    };
    if !meta.is_dir() {
        if format == Format::Mlsd {
            return Err(Reply::new(501, "MLSD needs a directory; use MLST for a file"));
        }
        let name = path.file_name().unwrap_or_default().to_owned();
        let line = render(&Entry { name, meta });
        return Ok((path, stream::once(async move { Ok(line) }).boxed()));
    }
    let entries = view.list(&path).await.map_err(|e| error::view_reply(&e, "listing"))?;
    Ok((path, entries.map_ok(move |entry| render(&entry)).boxed()))
}

/// What the logged-in user may do where (the session checked the login).
fn view_access(s: &Session) -> Access {
    s.login().principal.user.access.clone()
}

/// MLST on the control connection (RFC 3659 §7.2): one fact line for the path itself.
pub(super) async fn mlst(s: &mut Session, input: Option<String>) -> Reply {
    let path = match resolve(s, input.as_deref().unwrap_or(".")) {
        Ok(path) => path,
        Err(reply) => return reply,
    };
    let view = view(s);
    match s.serving(view.stat(&path)).await {
        Ok(meta) => {
            let perms = view_access(s).at(&path);
            let facts = listing::mlsx_line(path.as_str(), &meta, s.facts, perms);
            Reply::multi(250, vec![format!("Listing {path}"), facts, "End".to_owned()])
        }
        Err(e) => error::view_reply(&e, "reading the entry"),
    }
}

/// STAT with a path (RFC 959 §4.1.3): the LIST output over the control connection, as 213.
pub(super) async fn stat_path(s: &mut Session, input: &str) -> Reply {
    if s.transfer.is_some() {
        return Reply::new(450, "A transfer is running; STAT with a path must wait");
    }
    let (path, mut lines) = match listing_lines(s, input, Format::List).await {
        Ok(listing) => listing,
        Err(reply) => return reply,
    };
    // RFC 959 §4.2: 212 for a directory's status, 213 for a file's.
    let is_dir = match resolve(s, input) {
        Ok(path) => {
            let view = view(s);
            s.serving(view.stat(&path)).await.is_ok_and(|meta| meta.is_dir())
        }
        Err(reply) => return reply,
    };
    let code = if is_dir { 212 } else { 213 };
    let mut out = vec![format!("Status of {path}:")];
    while let Some(line) = lines.next().await {
        match line {
            Ok(line) if out.len() <= STAT_MAX_LINES => out.push(line),
            Ok(_) => {
                out.push(format!("(listing cut after {STAT_MAX_LINES} entries; use LIST)"));
                break;
            }
            Err(e) => return error::storage_reply(&e, "listing"),
        }
    }
    out.push("End of status".to_owned());
    Reply::multi(code, out)
}
