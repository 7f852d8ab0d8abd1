//! The accept loop of an FTPS listener: reads the PROXY protocol header where one is expected, admits the
//! connection within the session limits and starts its session, or tells the client (421) why not.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::limits::Limits;
use crate::ftp::session::{FtpContext, Session};
use crate::tls;

/// Connections refused for a limit are told so (421) by short-lived tasks; beyond this many at once they
/// are simply closed, so a flood cannot turn refusals into work.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// Accepts the connections of one listener (explicit or implicit FTPS) until shutdown.
pub(super) struct Acceptor {
    pub(super) shared: Arc<FtpContext>,
    pub(super) limits: Arc<Limits>,
    pub(super) tracker: TaskTracker,
    pub(super) shutdown: CancellationToken,
    pub(super) implicit: bool,
}

impl Acceptor {
    pub(super) async fn run(self, listener: TcpListener) {
        let me = Arc::new(self);
        let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
        let proxy = match me.implicit {
            true => me.shared.proxy.implicit.clone(),
            false => me.shared.proxy.explicit.clone(),
        };
        loop {
            let accepted = tokio::select! {
                _ = me.shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (mut tcp, peer) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match &proxy {
                None => me.admit(tcp, peer, &refusals),
                Some(trust) => {
                    // The header comes after the accept: waiting for it must not hold up the next accept.
                    let (me, trust, refusals) = (me.clone(), trust.clone(), refusals.clone());
                    me.tracker.clone().spawn(async move {
                        match trust.client_of(&mut tcp, peer).await {
                            Ok(client) => me.admit(tcp, client, &refusals),
                            Err(e) => tracing::warn!(%peer, error = %e, "connection closed: bad PROXY protocol header"),
                        }
                    });
                }
            }
        }
    }

    /// Serves a connection from `peer` (the client, behind a balancer or not) if the limits allow it.
    fn admit(&self, tcp: TcpStream, peer: SocketAddr, refusals: &Arc<Semaphore>) {
        match self.limits.admit(peer.ip()) {
            Ok(permit) => {
                let shared = self.shared.clone();
                let shutdown = self.shutdown.clone();
                let implicit = self.implicit;
                self.tracker.spawn(async move {
                    let _permit = permit;
                    Session::run(shared, tcp, peer, implicit, shutdown).await;
                });
            }
            Err(why) => {
                tracing::warn!(%peer, "connection refused: {why}");
                if let Ok(slot) = refusals.clone().try_acquire_owned() {
                    tokio::spawn(refuse(self.shared.clone(), tcp, self.implicit, why, slot));
                }
            }
        }
    }
}

/// Tells a refused client why, in the protocol it expects, then closes.
async fn refuse(
    shared: Arc<FtpContext>,
    tcp: TcpStream,
    implicit: bool,
    why: &'static str,
    _slot: OwnedSemaphorePermit,
) {
    let text = format!("421 {why}; try again later\r\n");
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        if implicit {
            let owner = tls::SessionOwner::new();
            if let Ok(mut stream) = shared.tls.control_acceptor(&owner).accept(tcp).await {
                let _ = stream.write_all(text.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        } else {
            let mut tcp = tcp;
            let _ = tcp.write_all(text.as_bytes()).await;
            let _ = tcp.shutdown().await;
        }
    })
    .await;
}
