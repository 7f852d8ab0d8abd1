//! Replies and their wire format: RFC 959 §4.2 (single and multi-line replies).

use std::fmt::Write as _;

/// One reply: a three-digit code and one or more lines of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        Reply { code, lines: vec![text.into()] }
    }

    /// A multi-line reply. The first and last lines carry the code; the lines between are sent as given,
    /// indented by one space so that none of them can be mistaken for the end of the reply.
    pub fn multi(code: u16, lines: Vec<String>) -> Self {
        debug_assert!(!lines.is_empty());
        Reply { code, lines }
    }

    /// The bytes sent on the control connection. CR and LF inside a line are replaced so that text taken
    /// from a client (a file name, say) can never forge an extra reply line.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(64);
        let clean = |s: &str| s.replace(['\r', '\n'], " ");
        match self.lines.as_slice() {
            [] => {
                let _ = write!(out, "{} \r\n", self.code);
            }
            [one] => {
                let _ = write!(out, "{} {}\r\n", self.code, clean(one));
            }
            [first, middle @ .., last] => {
                let _ = write!(out, "{}-{}\r\n", self.code, clean(first));
                for line in middle {
                    let _ = write!(out, " {}\r\n", clean(line));
                }
                let _ = write!(out, "{} {}\r\n", self.code, clean(last));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line() {
        assert_eq!(Reply::new(200, "OK").encode(), "200 OK\r\n");
    }

    #[test]
    fn multi_line_indents_middle_lines() {
        let r =
            Reply::multi(211, vec!["Features:".into(), "UTF8".into(), "123 looks like a code".into(), "End".into()]);
        assert_eq!(r.encode(), "211-Features:\r\n UTF8\r\n 123 looks like a code\r\n211 End\r\n");
    }

    #[test]
    fn line_breaks_in_text_cannot_forge_replies() {
        let r = Reply::new(550, "a\r\n230 b: not found");
        assert_eq!(r.encode(), "550 a  230 b: not found\r\n");
    }
}
