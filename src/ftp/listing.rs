//! Directory listings: LIST in the `ls -l` form FileZilla and WinSCP parse, NLST names, and the RFC 3659
//! §7 MLSx fact lines.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeDelta, Utc};

use crate::access::{Permission, Permissions};
use crate::storage::{Entry, Metadata};

/// Which MLSx facts a client asked for (`OPTS MLST`); all on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub kind: bool,
    pub size: bool,
    pub modify: bool,
    pub perm: bool,
}

impl Default for Facts {
    fn default() -> Self {
        Facts { kind: true, size: true, modify: true, perm: true }
    }
}

impl Facts {
    /// The facts named in `OPTS MLST` (RFC 3659 §7.9); unknown names are ignored, an empty list turns all off.
    pub fn from_names(names: &[String]) -> Facts {
        let has = |fact: &str| names.iter().any(|n| n.eq_ignore_ascii_case(fact));
        Facts { kind: has("type"), size: has("size"), modify: has("modify"), perm: has("perm") }
    }

    /// The FEAT line advertising every supported fact, `*` marking the enabled ones:
    /// `MLST type*;size*;modify*;perm*;`.
    pub fn feat_line(&self) -> String {
        let mut line = String::from("MLST ");
        for (name, on) in self.names() {
            line.push_str(name);
            if on {
                line.push('*');
            }
            line.push(';');
        }
        line
    }

    /// The enabled facts as `OPTS MLST` confirms them (`200 MLST OPTS type;size;`): names only, each
    /// followed by `;`, empty when none is enabled.
    pub fn selected(&self) -> String {
        self.names().filter(|&(_, on)| on).map(|(name, _)| format!("{name};")).collect()
    }

    fn names(&self) -> impl Iterator<Item = (&'static str, bool)> {
        [("type", self.kind), ("size", self.size), ("modify", self.modify), ("perm", self.perm)].into_iter()
    }
}

/// The MLSx `perm` fact (RFC 3659 §7.5.5) of an entry the user has `perms` on, for a file (`rwadf`) or a
/// directory (`elcmdfp`).
fn perm_fact(perms: Permissions, is_dir: bool) -> String {
    use Permission as P;
    let letters: &[(char, Permission)] = if is_dir {
        &[
            ('e', P::List),
            ('l', P::List),
            ('c', P::Write),
            ('m', P::Mkdir),
            ('d', P::Delete),
            ('f', P::Rename),
            ('p', P::Delete),
        ]
    } else {
        &[('r', P::Read), ('w', P::Write), ('a', P::Write), ('d', P::Delete), ('f', P::Rename)]
    };
    letters.iter().filter(|&&(_, p)| perms.has(p)).map(|&(letter, _)| letter).collect()
}

/// One LIST line (no CR LF), e.g. `-rw-r--r-- 1 ftp ftp 1048576 Mar 04 12:30 report.csv`. `now` decides
/// between the time and the year form, as `ls` does (older than six months or in the future: year).
/// An entry without a modification time is shown as modified `now`.
pub fn list_line(entry: &Entry, now: SystemTime) -> String {
    let meta = &entry.meta;
    let (mode, size) = if meta.is_dir() { ("drwxr-xr-x", 0) } else { ("-rw-r--r--", meta.size) };
    let now = utc(now).unwrap_or_default();
    let modified = meta.modified.and_then(utc).unwrap_or(now);
    let recent = modified > now - TimeDelta::days(182) && modified <= now + TimeDelta::days(1);
    // Two spaces before the year keep the column as wide as `HH:MM`.
    let time = if recent { modified.format("%b %d %H:%M") } else { modified.format("%b %d  %Y") };
    format!("{mode} 1 ftp ftp {size} {time} {}", entry.name)
}

/// One MLSD line or MLST fact line (no CR LF, no leading space):
/// `type=file;size=3;modify=20240304123000;perm=rwadf; name`.
///
/// Only the facts enabled in `facts` are written, in the order type, size, modify, perm. `size` is given for
/// files only, `modify` only when the backend knows it, in whole seconds UTC. MLSD lists no `cdir`/`pdir`
/// entries, which RFC 3659 makes optional.
pub fn mlsx_line(name: &str, meta: &Metadata, facts: Facts, perms: Permissions) -> String {
    let mut line = String::new();
    if facts.kind {
        line.push_str(if meta.is_dir() { "type=dir;" } else { "type=file;" });
    }
    if facts.size && !meta.is_dir() {
        let _ = write!(line, "size={};", meta.size);
    }
    if let Some(modified) = meta.modified.and_then(utc).filter(|_| facts.modify) {
        let _ = write!(line, "modify={};", modified.format("%Y%m%d%H%M%S"));
    }
    if facts.perm {
        let _ = write!(line, "perm={};", perm_fact(perms, meta.is_dir()));
    }
    line.push(' ');
    line.push_str(name);
    line
}

/// `SystemTime` to UTC without the panic `From` has for times chrono cannot represent.
pub(crate) fn utc(time: SystemTime) -> Option<DateTime<Utc>> {
    let (secs, nanos) = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => (i64::try_from(after.as_secs()).ok()?, after.subsec_nanos()),
        Err(before) => {
            let before = before.duration();
            let secs = -i64::try_from(before.as_secs()).ok()?;
            match before.subsec_nanos() {
                0 => (secs, 0),
                n => (secs - 1, 1_000_000_000 - n),
            }
        }
    };
    DateTime::from_timestamp(secs, nanos)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::NaiveDate;

    use super::*;
    use crate::storage::EntryKind;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> SystemTime {
        let secs = NaiveDate::from_ymd_opt(y, mo, d).unwrap().and_hms_opt(h, mi, s).unwrap().and_utc().timestamp();
        UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap())
    }

    fn file(size: u64, modified: Option<SystemTime>) -> Metadata {
        Metadata { kind: EntryKind::File, size, modified }
    }

    fn dir(modified: Option<SystemTime>) -> Metadata {
        Metadata { kind: EntryKind::Dir, size: 0, modified }
    }

    #[test]
    fn list_lines() {
        let now = at(2024, 6, 15, 12, 0, 0);
        let day = Duration::from_secs(86_400);
        let cases = [
            (
                "report.csv",
                file(1_048_576, Some(at(2024, 3, 4, 12, 30, 0))),
                "-rw-r--r-- 1 ftp ftp 1048576 Mar 04 12:30 report.csv",
            ),
            ("old.txt", file(5, Some(at(2023, 6, 15, 8, 0, 0))), "-rw-r--r-- 1 ftp ftp 5 Jun 15  2023 old.txt"),
            ("edge", file(1, Some(now - 181 * day)), "-rw-r--r-- 1 ftp ftp 1 Dec 17 12:00 edge"),
            ("edge", file(1, Some(now - 182 * day)), "-rw-r--r-- 1 ftp ftp 1 Dec 16  2023 edge"),
            ("soon", file(1, Some(now + Duration::from_secs(7200))), "-rw-r--r-- 1 ftp ftp 1 Jun 15 14:00 soon"),
            ("later", file(1, Some(now + 2 * day)), "-rw-r--r-- 1 ftp ftp 1 Jun 17  2024 later"),
            ("photos", dir(Some(at(2024, 3, 4, 12, 30, 0))), "drwxr-xr-x 1 ftp ftp 0 Mar 04 12:30 photos"),
            ("prefix", dir(None), "drwxr-xr-x 1 ftp ftp 0 Jun 15 12:00 prefix"),
            ("empty", file(0, None), "-rw-r--r-- 1 ftp ftp 0 Jun 15 12:00 empty"),
            (
                "Ünïcødé 文件.txt",
                file(7, Some(at(2024, 6, 1, 0, 5, 0))),
                "-rw-r--r-- 1 ftp ftp 7 Jun 01 00:05 Ünïcødé 文件.txt",
            ),
            (
                " lead  trail ",
                file(2, Some(at(2024, 6, 1, 0, 5, 0))),
                "-rw-r--r-- 1 ftp ftp 2 Jun 01 00:05  lead  trail ",
            ),
            (
                "ancient",
                file(3, Some(UNIX_EPOCH - Duration::from_millis(500))),
                "-rw-r--r-- 1 ftp ftp 3 Dec 31  1969 ancient",
            ),
        ];
        for (name, meta, expected) in cases {
            let entry = Entry { name: name.to_owned(), meta };
            assert_eq!(list_line(&entry, now), expected);
        }
    }

    #[test]
    fn mlsx_lines() {
        let when = Some(at(2024, 3, 4, 12, 30, 0));
        let all = Facts::default();
        let read_only: Permissions = "list,read".parse().unwrap();
        let names = |names: &[&str]| Facts::from_names(&names.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        let cases = [
            ("a.txt", file(3, when), all, Permissions::ALL, "type=file;size=3;modify=20240304123000;perm=rwadf; a.txt"),
            ("photos", dir(when), all, Permissions::ALL, "type=dir;modify=20240304123000;perm=elcmdfp; photos"),
            ("prefix", dir(None), all, Permissions::ALL, "type=dir;perm=elcmdfp; prefix"),
            ("a.txt", file(3, None), all, Permissions::ALL, "type=file;size=3;perm=rwadf; a.txt"),
            ("a.txt", file(3, when), all, read_only, "type=file;size=3;modify=20240304123000;perm=r; a.txt"),
            ("photos", dir(when), all, read_only, "type=dir;modify=20240304123000;perm=el; photos"),
            ("a.txt", file(3, when), all, Permissions::NONE, "type=file;size=3;modify=20240304123000;perm=; a.txt"),
            ("a.txt", file(3, when), names(&["size", "type"]), Permissions::ALL, "type=file;size=3; a.txt"),
            (
                "a.txt",
                file(3, when),
                names(&["modify", "perm"]),
                Permissions::ALL,
                "modify=20240304123000;perm=rwadf; a.txt",
            ),
            ("a.txt", file(3, when), names(&[]), Permissions::ALL, " a.txt"),
            (" two  spaces ", file(0, when), names(&["type"]), Permissions::ALL, "type=file;  two  spaces "),
            ("Ünïcødé 文件.txt", file(9, when), names(&["size"]), Permissions::ALL, "size=9; Ünïcødé 文件.txt"),
            (
                "frac",
                file(1, when.map(|t| t + Duration::from_millis(999))),
                names(&["modify"]),
                Permissions::ALL,
                "modify=20240304123000; frac",
            ),
        ];
        for (name, meta, facts, perms, expected) in cases {
            assert_eq!(mlsx_line(name, &meta, facts, perms), expected);
        }
    }

    #[test]
    fn facts_for_feat_and_opts() {
        let all = Facts::default();
        assert_eq!(all.feat_line(), "MLST type*;size*;modify*;perm*;");
        assert_eq!(all.selected(), "type;size;modify;perm;");
        let some = Facts::from_names(&["TYPE".to_owned(), "modify".to_owned(), "unique".to_owned()]);
        assert_eq!(some, Facts { kind: true, size: false, modify: true, perm: false });
        assert_eq!(some.feat_line(), "MLST type*;size;modify*;perm;");
        assert_eq!(some.selected(), "type;modify;");
        assert_eq!(Facts::from_names(&[]).selected(), "");
    }
}
