//! Working directory: RFC 959 §4.1.1 (CWD, CDUP) and §4.1.3 (PWD), with the X-variants of RFC 775.

use super::{error, quote, resolve, view};
use crate::ftp::reply::Reply;
use crate::ftp::session::Session;

pub(super) fn pwd(s: &Session) -> Reply {
    Reply::new(257, format!("{} is the current directory", quote(&s.cwd)))
}

pub(super) async fn cwd(s: &mut Session, input: &str) -> Reply {
    let path = match resolve(s, input) {
        Ok(path) => path,
        Err(reply) => return reply,
    };
    let view = view(s);
    match s.serving(view.stat(&path)).await {
        Ok(meta) if meta.is_dir() => {
            let reply = Reply::new(250, format!("Directory changed to {path}"));
            s.cwd = path;
            reply
        }
        Ok(_) => Reply::new(550, "Not a directory"),
        Err(e) => error::view_reply(&e, "changing directory"),
    }
}
