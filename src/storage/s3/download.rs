//! Downloads: the GetObject body is read ahead of the client in its own task, so that S3 and the data
//! connection move at once, with a bounded number of chunks waiting.

use aws_sdk_s3::primitives::ByteStream;
use futures_util::stream::{self, StreamExt};

/// GetObject chunks read ahead of the client.
const READ_AHEAD: usize = 8;

/// Chunks of a GetObject body read ahead while the client's side is being written, so that S3 and the
/// data connection move at once; at most [`READ_AHEAD`] chunks (each one network read) wait.
pub(super) fn read_ahead(mut body: ByteStream) -> Box<dyn tokio::io::AsyncRead + Send + Unpin> {
    let (chunks, received) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(READ_AHEAD);
    tokio::spawn(async move {
        loop {
            let next = match body.next().await {
                None => return,
                Some(Ok(chunk)) => Ok(chunk),
                Some(Err(e)) => Err(std::io::Error::other(e)),
            };
            let failed = next.is_err();
            // The reader was dropped (the transfer ended): stop reading from S3.
            if chunks.send(next).await.is_err() || failed {
                return;
            }
        }
    });
    Box::new(tokio_util::io::StreamReader::new(receiver_stream(received)))
}

fn receiver_stream<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::Receiver<T>,
) -> futures_util::stream::BoxStream<'static, T> {
    stream::poll_fn(move |cx| receiver.poll_recv(cx)).boxed()
}
