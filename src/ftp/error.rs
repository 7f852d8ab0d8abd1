//! The one place where errors of the lower layers become FTP replies (RFC 959 §4.2.1 codes, RFC 4217 §10
//! for TLS). Internal details go to the log; the client gets a short, stable text.

use super::command::ParseError;
use super::data::DataError;
use super::reply::Reply;
use crate::directory::DirectoryError;
use crate::storage::{ErrorKind, StorageError};
use crate::vfs::{VfsError, ViewError};

pub fn parse_reply(err: &ParseError) -> Reply {
    match err {
        ParseError::Syntax => Reply::new(500, "Syntax error, command unrecognized"),
        ParseError::Unknown(verb) => Reply::new(502, format!("Command {verb} not implemented")),
        ParseError::BadArgument(why) => Reply::new(501, *why),
        ParseError::UnsupportedParameter(why) => Reply::new(504, *why),
        ParseError::Encoding => Reply::new(501, "Argument is not valid UTF-8"),
    }
}

/// `doing` names the operation for the log and for replies that need context ("renaming", "listing").
pub fn storage_reply(err: &StorageError, doing: &str) -> Reply {
    let reply = kind_reply(err, doing);
    match err.kept() {
        Some(bytes) => kept_reply(reply.code, reply.lines[0].trim_end_matches("; try again"), bytes),
        None => reply,
    }
}

/// A failed upload that kept its first `bytes`: the reply says how to continue it.
pub fn kept_reply(code: u16, what: &str, bytes: u64) -> Reply {
    Reply::new(
        code,
        format!("{what}; not stored, but the first {bytes} bytes are kept: resume with REST {bytes} + STOR or APPE"),
    )
}

fn kind_reply(err: &StorageError, doing: &str) -> Reply {
    let kind = err.kind();
    match kind {
        ErrorKind::Internal | ErrorKind::Transient => tracing::warn!(error = %err, "storage failed while {doing}"),
        _ => tracing::debug!(error = %err, "storage refused {doing}"),
    }
    match kind {
        ErrorKind::NotFound => Reply::new(550, "No such file or directory"),
        ErrorKind::AlreadyExists => Reply::new(550, "File or directory already exists"),
        ErrorKind::NotADirectory => Reply::new(550, "Not a directory"),
        ErrorKind::IsADirectory => Reply::new(550, "Is a directory"),
        ErrorKind::NotEmpty => Reply::new(550, "Directory not empty"),
        ErrorKind::Denied => Reply::new(550, "Permission denied"),
        ErrorKind::LimitExceeded => {
            Reply::new(550, format!("Refused: {doing} involves more objects than the server allows at once"))
        }
        ErrorKind::QuotaExceeded => Reply::new(552, "Storage quota exceeded"),
        ErrorKind::InvalidOffset => Reply::new(554, "Restart offset is beyond the end of the file"),
        ErrorKind::Transient => Reply::new(451, format!("Temporary storage failure while {doing}; try again")),
        ErrorKind::Unsupported => Reply::new(504, "Not supported by this storage"),
        // No claim about what was or was not changed: a failure can come after the last visible step
        // (the folder fsync after an upload's rename).
        ErrorKind::Internal => Reply::new(451, format!("Local error while {doing}; try again")),
    }
}

pub fn vfs_reply(err: &VfsError) -> Reply {
    match err {
        VfsError::InvalidName => Reply::new(553, "File name not allowed"),
        VfsError::TooLong => Reply::new(553, "File name too long"),
    }
}

/// A failure of the user's view: a path that cannot be stored (553) or the storage's answer.
pub fn view_reply(err: &ViewError, doing: &str) -> Reply {
    match err {
        ViewError::Path(e) => vfs_reply(e),
        ViewError::Storage(e) => storage_reply(e, doing),
        ViewError::Denied { .. } => Reply::new(550, format!("Permission denied: {err}")),
    }
}

pub fn data_reply(err: &DataError) -> Reply {
    match err {
        DataError::Timeout(_) => Reply::new(425, "Can't open data connection: none arrived in time"),
        DataError::Refused(why) => Reply::new(425, format!("Can't open data connection: {why}")),
        DataError::Io(_) => Reply::new(425, "Can't open data connection"),
        DataError::Handshake(_) => Reply::new(522, "TLS negotiation on the data connection failed"),
        DataError::NotResumed => {
            Reply::new(522, "Data connection must resume the TLS session of your control connection")
        }
    }
}

/// Directory failures outside the login path (which answers 530/421 itself).
pub fn directory_reply(err: &DirectoryError) -> Reply {
    match err {
        DirectoryError::Unavailable(e) => {
            tracing::warn!(error = %e, "directory unavailable");
            Reply::new(421, "Service temporarily unavailable; try again later")
        }
        other => {
            tracing::warn!(error = ?other, "directory error");
            Reply::new(451, "Local error; try again later")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_kinds_map_to_documented_codes() {
        let table = [
            (ErrorKind::NotFound, 550),
            (ErrorKind::AlreadyExists, 550),
            (ErrorKind::NotADirectory, 550),
            (ErrorKind::IsADirectory, 550),
            (ErrorKind::NotEmpty, 550),
            (ErrorKind::Denied, 550),
            (ErrorKind::QuotaExceeded, 552),
            (ErrorKind::InvalidOffset, 554),
            (ErrorKind::Transient, 451),
            (ErrorKind::Unsupported, 504),
            (ErrorKind::Internal, 451),
        ];
        for (kind, code) in table {
            assert_eq!(storage_reply(&StorageError::new(kind), "testing").code, code, "{kind:?}");
        }
    }

    #[test]
    fn internal_details_never_reach_the_client() {
        let err = StorageError::with_source(ErrorKind::Internal, "disk /dev/sda1 at /srv/secret failed");
        let reply = storage_reply(&err, "storing the file");
        assert!(!reply.encode().contains("/srv/secret"));
    }

    #[test]
    fn parse_and_data_errors() {
        assert_eq!(parse_reply(&ParseError::Unknown("XYZ".into())).code, 502);
        assert_eq!(parse_reply(&ParseError::BadArgument("bad")).code, 501);
        assert_eq!(parse_reply(&ParseError::UnsupportedParameter("no")).code, 504);
        assert_eq!(parse_reply(&ParseError::Syntax).code, 500);
        assert_eq!(data_reply(&DataError::NotResumed).code, 522);
        assert_eq!(data_reply(&DataError::Timeout(std::time::Duration::from_secs(1))).code, 425);
        assert_eq!(data_reply(&DataError::Refused("x")).code, 425);
        assert_eq!(vfs_reply(&VfsError::InvalidName).code, 553);
    }
}
