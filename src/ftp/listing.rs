//! Directory listings: LIST in the `ls -l` form FileZilla and WinSCP parse, NLST names, and the RFC 3659
//! §7 MLSx fact lines.

use std::time::SystemTime;

use crate::storage::{Entry, Metadata};

/// Which MLSx facts a client asked for (`OPTS MLST`); all on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub kind: bool,
    pub size: bool,
    pub modify: bool,
    pub perm: bool,
}

/// Rights of the current user on an entry, rendered as the MLSx `perm` fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub delete: bool,
    pub rename: bool,
    pub mkdir: bool,
    pub list: bool,
}

/// One LIST line (no CR LF), e.g. `-rw-r--r-- 1 ftp ftp 1048576 Mar 04 12:30 report.csv`. `now` decides
/// between the time and the year form, as `ls` does (older than six months or in the future: year).
pub fn list_line(entry: &Entry, now: SystemTime) -> String {
    let _ = (entry, now);
    todo!()
}

/// One MLSD line or MLST fact line (no CR LF, no leading space): `type=file;size=3;modify=20240304123000;perm=rwdf; name`.
/// `kind_override` lets MLSD report `cdir` for `.` of the listed directory.
pub fn mlsx_line(name: &str, meta: &Metadata, facts: Facts, perms: Perms) -> String {
    let _ = (name, meta, facts, perms);
    todo!()
}
