//! Files: RFC 959 §4.1.3 (RETR, STOR, STOU, APPE, DELE, RNFR, RNTO, REST), RFC 3659 §3-§5 (MDTM, SIZE,
//! REST STREAM) and draft-somers-ftp-mfxx (MFMT).

use std::io;
use std::time::SystemTime;

use chrono::NaiveDateTime;

use crate::ftp::command::HashAlgorithm;

use super::{check_data_ready, error, refuse, resolve, start_transfer, type_name, view};
use crate::ftp::listing;
use crate::ftp::reply::Reply;
use crate::ftp::session::{Flow, Session};
use crate::ftp::transfer::Job;
use crate::storage::{ErrorKind, WriteMode};
use crate::vfs::{ViewError, VirtualPath};

pub(super) async fn dele(s: &mut Session, input: &str) -> Reply {
    let path = match resolve(s, input) {
        Ok(path) => path,
        Err(reply) => return reply,
    };
    let view = view(s);
    match s.serving(view.delete(&path)).await {
        Ok(()) => Reply::new(250, "File deleted"),
        Err(e) => error::view_reply(&e, "deleting the file"),
    }
}

pub(super) async fn rnfr(s: &mut Session, input: &str) -> Reply {
    let path = match resolve(s, input) {
        Ok(path) => path,
        Err(reply) => return reply,
    };
    if path.is_root() {
        return Reply::new(550, "The root directory cannot be renamed");
    }
    let view = view(s);
    match s.serving(view.stat(&path)).await {
        Ok(_) => {
            s.rename_from = Some(path);
            Reply::new(350, "Ready for RNTO")
        }
        Err(e) => error::view_reply(&e, "renaming"),
    }
}

pub(super) async fn rnto(s: &mut Session, input: &str) -> Reply {
    let Some(from) = s.rename_from.take() else {
        return Reply::new(503, "Send RNFR first");
    };
    let to = match resolve(s, input) {
        Ok(path) => path,
        Err(reply) => return reply,
    };
    if to.is_root() {
        return Reply::new(553, "Cannot rename onto the root directory");
    }
    let view = view(s);
    match s.serving(view.rename(&from, &to)).await {
        Ok(()) => {
            // A renamed working directory would leave the session somewhere that no longer exists.
            if s.cwd == from || s.cwd.as_str().starts_with(&format!("{}/", from.as_str())) {
                s.cwd = VirtualPath::root();
            }
            Reply::new(250, "Rename successful")
        }
        Err(e) => error::view_reply(&e, "renaming"),
    }
}

pub(super) async fn size(s: &mut Session, input: &str) -> Reply {
    let path = match resolve(s, input) {
        Ok(path) => path,
        Err(reply) => return reply,
    };
    let view = view(s);
    // This user's interrupted upload of the file, kept for resuming, wins over an older stored version:
    // a client asks SIZE to learn where to continue, and the old file's length would splice old and new.
    match s.serving(view.resumable_size(&path)).await {
        Ok(Some(size)) => return Reply::new(213, size.to_string()),
        Ok(None) => {}
        Err(e) => return error::view_reply(&e, "reading the size"),
    }
    match s.serving(view.stat(&path)).await {
        Ok(meta) if !meta.is_dir() => Reply::new(213, meta.size.to_string()),
        Ok(_) => Reply::new(550, "Not a plain file"),
        Err(e) => error::view_reply(&e, "reading the size"),
    }
}

/// HASH (draft-bryan-ftpext-hash §3) and its older forms XSHA256 and XCRC (`legacy`), answered from the
/// checksums recorded when the file was stored.
pub(super) async fn hash(s: &mut Session, algorithm: HashAlgorithm, input: &str, legacy: bool) -> Reply {
    let path = match resolve(s, input) {
        Ok(path) => path,
        Err(reply) => return reply,
    };
    let view = view(s);
    let digest = match s.serving(view.digest(&path)).await {
        Ok(Some(digest)) => digest,
        Ok(None) => return Reply::new(550, "No checksum is recorded for this file (it was not stored through wharf)"),
        Err(e) => return error::view_reply(&e, "reading the checksum"),
    };
    let value = match algorithm {
        HashAlgorithm::Sha256 => digest.sha256().iter().map(|b| format!("{b:02x}")).collect::<String>(),
        HashAlgorithm::Crc32 => format!("{:08x}", digest.crc32),
    };
    match (legacy, algorithm) {
        (true, HashAlgorithm::Sha256) => Reply::new(213, value),
        (true, HashAlgorithm::Crc32) => Reply::new(250, value.to_ascii_uppercase()),
        (false, _) => {
            let end = digest.len.saturating_sub(1);
            let name = path.file_name().unwrap_or("/");
            Reply::new(213, format!("{} 0-{end} {value} {name}", algorithm.name()))
        }
    }
}

pub(super) async fn mdtm(s: &mut Session, input: &str) -> Reply {
    let path = match resolve(s, input) {
        Ok(path) => path,
        Err(reply) => return reply,
    };
    let view = view(s);
    match s.serving(view.stat(&path)).await {
        Ok(meta) if !meta.is_dir() => match meta.modified {
            Some(time) => Reply::new(213, timeval(time)),
            None => Reply::new(550, "Modification time unknown"),
        },
        Ok(_) => Reply::new(550, "Not a plain file"),
        Err(e) => error::view_reply(&e, "reading the modification time"),
    }
}

pub(super) async fn mfmt(s: &mut Session, time: NaiveDateTime, input: &str) -> Reply {
    let path = match resolve(s, input) {
        Ok(path) => path,
        Err(reply) => return reply,
    };
    let when: SystemTime = time.and_utc().into();
    let view = view(s);
    match s.serving(view.set_modified(&path, when)).await {
        Ok(()) => Reply::new(213, format!("Modify={}; {path}", timeval(when))),
        Err(e) => error::view_reply(&e, "setting the modification time"),
    }
}

/// RFC 3659 §2.3 time-val: `YYYYMMDDHHMMSS` in UTC (the epoch for a time chrono cannot represent).
fn timeval(time: SystemTime) -> String {
    listing::utc(time).unwrap_or_default().format("%Y%m%d%H%M%S").to_string()
}

pub(super) fn rest(s: &mut Session, offset: u64) -> Reply {
    s.rest = offset;
    Reply::new(350, format!("Restarting at {offset}; send RETR, STOR or APPE"))
}

pub(super) async fn retr(s: &mut Session, input: &str) -> io::Result<Flow> {
    let offset = std::mem::take(&mut s.rest);
    if let Some(reply) = check_data_ready(s) {
        s.send(&reply).await?;
        return Ok(Flow::Continue);
    }
    let prepared = match resolve(s, input) {
        Ok(path) => {
            let view = view(s);
            match s.serving(view.get(&path, offset)).await {
                Ok(download) => Ok((path, download)),
                Err(e) => Err(error::view_reply(&e, "opening the file")),
            }
        }
        Err(reply) => Err(reply),
    };
    match prepared {
        Ok((path, download)) => {
            let opening = format!("Opening {} mode data connection for {path} ({} bytes)", type_name(s), download.size);
            let job = Job::Send { download, ascii: s.ascii };
            start_transfer(s, "RETR", &path, job, opening).await
        }
        Err(reply) => refuse(s, reply).await,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Store {
    Replace,
    Append,
}

/// STOR (with REST: resume) and APPE.
pub(super) async fn store(s: &mut Session, input: &str, how: Store) -> io::Result<Flow> {
    let offset = std::mem::take(&mut s.rest);
    let announced = s.allo.take();
    if let Some(reply) = check_data_ready(s) {
        s.send(&reply).await?;
        return Ok(Flow::Continue);
    }
    let mode = match (how, offset) {
        (Store::Append, _) => WriteMode::Append,
        (Store::Replace, 0) => WriteMode::Create,
        (Store::Replace, n) => WriteMode::Resume(n),
    };
    let path = match resolve(s, input) {
        Ok(path) => path,
        Err(reply) => return refuse(s, reply).await,
    };
    if path.is_root() {
        return refuse(s, Reply::new(553, "Cannot store onto the root directory")).await;
    }
    let view = view(s);
    match s.serving(view.put(&path, mode, announced)).await {
        Ok(upload) => {
            let name = path.file_name().unwrap_or_default().to_owned();
            let opening = format!("Opening {} mode data connection for {path}", type_name(s));
            let job = Job::Receive { upload, ascii: s.ascii, name };
            let verb = if how == Store::Append { "APPE" } else { "STOR" };
            start_transfer(s, verb, &path, job, opening).await
        }
        Err(e) => refuse(s, error::view_reply(&e, "starting the upload")).await,
    }
}

/// STOU (RFC 959 §4.1.3, RFC 1123 §4.1.2.9): stores under a new name and reports it as `150 FILE: name`.
pub(super) async fn store_unique(s: &mut Session, base: Option<&str>) -> io::Result<Flow> {
    s.rest = 0;
    let announced = s.allo.take();
    if let Some(reply) = check_data_ready(s) {
        s.send(&reply).await?;
        return Ok(Flow::Continue);
    }
    let view = view(s);
    let base = base.map(str::trim).filter(|b| !b.is_empty()).unwrap_or("file");
    for attempt in 0..16u32 {
        let candidate = if attempt == 0 && base != "file" {
            base.to_owned()
        } else {
            format!("{base}.{:08x}", rand::random::<u32>())
        };
        let path = match s.cwd.resolve(&candidate) {
            Ok(path) => path,
            Err(e) => return refuse(s, error::vfs_reply(&e)).await,
        };
        match s.serving(view.stat(&path)).await {
            Ok(_) => continue,
            Err(ViewError::Storage(e)) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return refuse(s, error::view_reply(&e, "choosing a unique name")).await,
        }
        return match s.serving(view.put(&path, WriteMode::Create, announced)).await {
            Ok(upload) => {
                let name = path.file_name().unwrap_or_default().to_owned();
                let opening = format!("FILE: {name}");
                let job = Job::Receive { upload, ascii: s.ascii, name };
                start_transfer(s, "STOU", &path, job, opening).await
            }
            Err(e) => refuse(s, error::view_reply(&e, "starting the upload")).await,
        };
    }
    refuse(s, Reply::new(553, "Could not find a unique name")).await
}
