//! Reading control lines (RFC 959 §4.1.3: a line ends in CR LF; bare LF is accepted too) with a hard cap on
//! the bytes held, whatever the client sends.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes read from the socket at most per call.
const READ_CHUNK: usize = 4096;

#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// One line without its terminator and without Telnet IAC sequences.
    Text(Vec<u8>),
    /// A line longer than the limit; its bytes were discarded up to and including its end.
    TooLong,
}

/// Splits a control stream into lines. Holds at most `max` + one read chunk, and is cancellation safe: a
/// `read` dropped mid-way loses nothing, so it can sit in a `select!`.
pub struct LineReader {
    buf: BytesMut,
    max: usize,
    /// Inside an over-long line: drop bytes until its end.
    discarding: bool,
}

impl LineReader {
    pub fn new(max: usize) -> Self {
        LineReader { buf: BytesMut::new(), max, discarding: false }
    }

    /// The longest line accepted: the `ftp.max_line_bytes` of when the session began.
    pub fn max(&self) -> usize {
        self.max
    }

    /// True when bytes after the last returned line are waiting. After `AUTH TLS` this must be false: bytes
    /// sent in plaintext behind the command would otherwise be taken as if they came over TLS.
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    pub fn clear(&mut self) {
        self.buf = BytesMut::new();
        self.discarding = false;
    }

    /// The next line, or `None` at end of stream (a partial last line is dropped).
    pub async fn read<R: AsyncRead + Unpin + ?Sized>(&mut self, stream: &mut R) -> std::io::Result<Option<Line>> {
        loop {
            if let Some(line) = self.take_line() {
                return Ok(Some(line));
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK {
                self.buf.reserve(READ_CHUNK);
            }
            if stream.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    fn take_line(&mut self) -> Option<Line> {
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let raw = self.buf.split_to(end + 1);
                if std::mem::take(&mut self.discarding) || raw.len() > self.max {
                    self.shrink();
                    return Some(Line::TooLong);
                }
                self.shrink();
                Some(Line::Text(clean(&raw[..end])))
            }
            None => {
                if self.buf.len() > self.max {
                    self.discarding = true;
                    self.buf.clear();
                }
                None
            }
        }
    }

    /// Gives memory back once a long line is gone, so idle sessions stay small.
    fn shrink(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > READ_CHUNK * 2 {
            self.buf = BytesMut::new();
        }
    }
}

/// Drops the trailing CR and Telnet IAC sequences (IAC IP, IAC DM that some clients send before ABOR).
fn clean(line: &[u8]) -> Vec<u8> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut out = Vec::with_capacity(line.len());
    let mut bytes = line.iter().copied();
    while let Some(b) = bytes.next() {
        if b == 0xff {
            match bytes.next() {
                Some(0xff) => out.push(0xff),
                // WILL/WONT/DO/DONT carry an option byte.
                Some(0xfb..=0xfe) => {
                    bytes.next();
                }
                _ => {}
            }
        } else {
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<Line> {
        let mut reader = LineReader::new(max);
        let mut stream = input;
        let mut out = Vec::new();
        while let Some(line) = reader.read(&mut stream).await.unwrap() {
            out.push(line);
        }
        out
    }

    fn text(s: &str) -> Line {
        Line::Text(s.as_bytes().to_vec())
    }

    #[tokio::test]
    async fn splits_on_crlf_and_bare_lf() {
        assert_eq!(lines(b"USER a\r\nPASS b\nNOOP\r\n", 512).await, vec![text("USER a"), text("PASS b"), text("NOOP")]);
    }

    #[tokio::test]
    async fn keeps_bare_cr_and_spaces_inside_a_line() {
        assert_eq!(lines(b"STOR  a\rb \r\n", 512).await, vec![text("STOR  a\rb ")]);
    }

    #[tokio::test]
    async fn strips_telnet_interrupt_before_abor() {
        assert_eq!(lines(b"\xff\xf4\xff\xf2ABOR\r\n", 512).await, vec![text("ABOR")]);
    }

    #[tokio::test]
    async fn partial_last_line_is_dropped() {
        assert_eq!(lines(b"NOOP\r\nQU", 512).await, vec![text("NOOP")]);
    }

    #[tokio::test]
    async fn over_long_line_is_reported_once_and_the_next_line_survives() {
        let mut input = vec![b'A'; 100_000];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        assert_eq!(lines(&input, 1024).await, vec![Line::TooLong, text("NOOP")]);
    }

    #[tokio::test]
    async fn memory_stays_bounded_without_a_newline() {
        let mut reader = LineReader::new(1024);
        let input = vec![b'x'; 10_000_000];
        let mut stream = &input[..];
        assert_eq!(reader.read(&mut stream).await.unwrap(), None);
        assert!(reader.buf.capacity() <= 1024 + 2 * READ_CHUNK, "capacity {}", reader.buf.capacity());
    }

    #[tokio::test]
    async fn line_at_exactly_the_limit_is_accepted() {
        let mut input = vec![b'N'; 510];
        input.extend_from_slice(b"\r\n");
        let got = lines(&input, 512).await;
        assert!(matches!(&got[..], [Line::Text(t)] if t.len() == 510));
        input.insert(0, b'N');
        assert_eq!(lines(&input, 512).await, vec![Line::TooLong]);
    }
}
