//! Many clients at once: 50 logged-in sessions, all open at the same time, each moving its own file both
//! ways, under the default per-IP session limit.

use std::sync::Arc;

use tokio::sync::Barrier;

use crate::support::clients::assert_no_temp_files;
use crate::support::raw::Ftp;
use crate::support::{bytes, sha256, Wharf, PASSWORD};

const SESSIONS: usize = 50;
const SIZE: usize = 256 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_sessions_upload_and_download_their_own_files() {
    let wharf = Wharf::start().await;
    let barrier = Arc::new(Barrier::new(SESSIONS));
    // One future per session, polled together (the raw client is not `Sync`, so not one task each).
    let sessions = (0..SESSIONS).map(|i| {
        let (server, barrier) = (wharf.explicit, barrier.clone());
        async move {
            let mut ftp = Ftp::login(server, "alice@acme", PASSWORD).await;
            // Every session is logged in before any transfer starts, so all 50 are open at once.
            barrier.wait().await;
            let data = bytes(SIZE + i, i as u64 + 1000);
            let name = format!("session-{i}.bin");
            let stored = ftp.store("STOR", &name, &data).await;
            assert_eq!(stored.code, 226, "session {i}: {stored:?}");
            let (back, reply) = ftp.retr(&name).await;
            assert_eq!(reply.code, 226, "session {i}: {reply:?}");
            assert_eq!(sha256(&back), sha256(&data), "session {i} downloaded other bytes");
            assert_eq!(ftp.cmd("QUIT").await.code, 221);
            i
        }
    });
    let work = futures_util::future::join_all(sessions);
    let done = tokio::time::timeout(std::time::Duration::from_secs(120), work).await.expect("50 sessions in 2 min");
    assert_eq!(done.len(), SESSIONS);

    for i in 0..SESSIONS {
        let on_disk = wharf.read_file(&format!("session-{i}.bin")).await;
        assert_eq!(sha256(&on_disk), sha256(&bytes(SIZE + i, i as u64 + 1000)), "session-{i}.bin as stored");
    }
    assert_eq!(wharf.files_on_disk("acme").await.len(), SESSIONS);
    assert_no_temp_files(&wharf, "acme").await;
}
