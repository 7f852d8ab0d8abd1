//! Downloads: the GetObject body is read ahead of the client in its own task, so that S3 and the data
//! connection move at once, with a bounded number of bytes waiting.

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use futures_util::stream::{self, StreamExt};
use tokio::sync::Semaphore;

/// Bytes of GetObject body read ahead of the client, in KiB. Counted in bytes, not chunks: the HTTP
/// stack hands out chunks from a few KiB to a few hundred, and a count of chunks would either starve
/// the client of small ones or hold too many large ones.
const READ_AHEAD_KIB: usize = 2048;

/// Chunks of a GetObject body read ahead while the client's side is being written, so that S3 and the
/// data connection move at once; at most [`READ_AHEAD_KIB`] wait (plus the chunk being written).
pub(super) fn read_ahead(mut body: ByteStream) -> Box<dyn tokio::io::AsyncRead + Send + Unpin> {
    let room = Arc::new(Semaphore::new(READ_AHEAD_KIB));
    // Room, not the channel, bounds what waits; the channel only needs to hold as many chunks as fit.
    let (chunks, received) = tokio::sync::mpsc::channel(READ_AHEAD_KIB);
    tokio::spawn(async move {
        loop {
            let next = match body.next().await {
                None => return,
                Some(Ok(chunk)) => Ok(chunk),
                Some(Err(e)) => Err(std::io::Error::other(e)),
            };
            let kib = next.as_ref().map_or(0, |c| c.len().div_ceil(1024).min(READ_AHEAD_KIB)) as u32;
            let Ok(held) = room.clone().acquire_many_owned(kib).await else { return };
            let failed = next.is_err();
            // The reader was dropped (the transfer ended): stop reading from S3.
            if chunks.send((next, held)).await.is_err() || failed {
                return;
            }
        }
    });
    Box::new(tokio_util::io::StreamReader::new(receiver_stream(received)))
}

/// The chunks as the reader takes them; a chunk's room is given back as soon as the reader holds it.
fn receiver_stream(
    mut receiver: tokio::sync::mpsc::Receiver<(std::io::Result<bytes::Bytes>, tokio::sync::OwnedSemaphorePermit)>,
) -> futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>> {
    stream::poll_fn(move |cx| receiver.poll_recv(cx).map(|next| next.map(|(chunk, _room)| chunk))).boxed()
}
