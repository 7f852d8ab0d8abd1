//! Downloads: the GetObject body is read by the transfer itself, as the data connection takes it.
//!
//! No task of its own and no buffer of its own: the socket to S3 is the read-ahead. While the data
//! connection is being written, the kernel keeps receiving into that socket's buffer (TCP's window grows
//! to several MiB on a fast path), so S3 and the client still move at once; when the client is slow, the
//! window closes and S3 waits, and the bytes waiting stay in the kernel's socket memory instead of wharf's
//! heap. The read-ahead task this replaced (a channel holding up to 2 MiB per download) cost a task
//! hand-off per chunk: wharf's CPU for a 256 MiB RETR fell from 250 to 210 ms with no loss of throughput,
//! and a slow client no longer pins 2 MiB of wharf's memory (BENCHMARKS.md, "Issue 13, session 4").

use aws_sdk_s3::primitives::ByteStream;

/// The body as a reader for the data connection.
pub(super) fn body_reader(body: ByteStream) -> Box<dyn tokio::io::AsyncRead + Send + Unpin> {
    Box::new(body.into_async_read())
}
