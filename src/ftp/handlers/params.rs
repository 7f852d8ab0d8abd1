//! Transfer parameters and data-connection setup: RFC 959 §4.1.2 (TYPE, MODE, STRU, PORT, PASV) and
//! RFC 2428 (EPRT, EPSV, EPSV ALL).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::ftp::command::{EpsvArg, FileStructure, TransferMode, TransferType};
use crate::ftp::data::{pasv_address, same_address, DataPlan, DataTls, Passive, PassiveRules, PassiveSource};
use crate::ftp::reply::Reply;
use crate::ftp::session::Session;

pub(super) fn transfer_type(s: &mut Session, kind: TransferType) -> Reply {
    s.ascii = kind == TransferType::Ascii;
    match kind {
        TransferType::Ascii => Reply::new(200, "Type set to A"),
        TransferType::Image => Reply::new(200, "Type set to I"),
    }
}

pub(super) fn mode(mode: TransferMode) -> Reply {
    match mode {
        TransferMode::Stream => Reply::new(200, "Mode set to S"),
        _ => Reply::new(504, "Only MODE S is supported"),
    }
}

pub(super) fn structure(structure: FileStructure) -> Reply {
    match structure {
        FileStructure::File => Reply::new(200, "Structure set to F"),
        _ => Reply::new(504, "Only STRU F is supported"),
    }
}

/// How long the reply to a PASV or EPSV that directly follows PWD is held back: see [`curl_pause`].
const CURL_PAUSE: Duration = Duration::from_millis(1);

/// Holds back the 227 or 229 of a PASV or EPSV sent right after PWD, which is where curl 7.87 to 8.3 sends
/// it: at the start of each transfer, after its login's PWD. Those versions read the control connection
/// once, without waiting, right after sending EPSV; if the reply is already there, they move on to
/// connecting the data connection but first sleep until a 200 ms timer (up to 1 s) expires, with no socket
/// to wake them (fixed in curl 8.4.0, commit 6dd6654f7551, curl/curl#12042). A reply that arrives even a
/// fraction of a millisecond later is read while curl waits on the control connection, and the transfer
/// goes on at once. Measured with curl 7.88.1 on a busy 2-core machine (the race needs wharf to answer
/// before curl gets the CPU back): 17 to 48 of 60 transfers stalled ~200 ms without the pause, none of 300
/// with it. Other clients send TYPE, SIZE, MDTM or CWD before PASV/EPSV, so they never pay it; curl pays 1
/// to 2 ms for a transfer that could otherwise take 200.
async fn curl_pause(after_pwd: bool) {
    if after_pwd {
        tokio::time::sleep(CURL_PAUSE).await;
    }
}

/// PASV: an IPv4 passive listener; the announced address is configurable for NAT.
pub(super) async fn pasv(s: &mut Session, after_pwd: bool) -> Reply {
    if s.epsv_all {
        return Reply::new(503, "EPSV ALL is in effect; use EPSV");
    }
    let local = s.local.ip().to_canonical();
    let announced = match (s.shared.config().ftp.passive_address, local) {
        (Some(IpAddr::V4(ip)), _) | (None, IpAddr::V4(ip)) => ip,
        _ => return Reply::new(425, "PASV needs IPv4; use EPSV"),
    };
    match listen(s).await {
        Ok(port) => {
            curl_pause(after_pwd).await;
            Reply::new(227, format!("Entering Passive Mode ({})", pasv_address(announced, port)))
        }
        Err(reply) => reply,
    }
}

/// EPSV (RFC 2428 §3): the port only; the client reuses the control connection's address.
pub(super) async fn epsv(s: &mut Session, arg: EpsvArg, after_pwd: bool) -> Reply {
    let family = if s.local.ip().to_canonical().is_ipv4() { 1 } else { 2 };
    match arg {
        EpsvArg::All => {
            s.epsv_all = true;
            return Reply::new(200, "EPSV ALL accepted");
        }
        EpsvArg::Family(f) if f != family => {
            return Reply::new(522, format!("Network protocol not supported, use ({family})"))
        }
        _ => {}
    }
    match listen(s).await {
        Ok(port) => {
            curl_pause(after_pwd).await;
            Reply::new(229, format!("Entering Extended Passive Mode (|||{port}|)"))
        }
        Err(reply) => reply,
    }
}

/// How long EPSV or PASV waits for a port of the shared pool when all are claimed by this client.
const SHARED_PORT_PATIENCE: Duration = Duration::from_secs(5);

/// Binds a passive listener on the address the client connected to, or claims a port of the shared pool;
/// it becomes the next data plan.
async fn listen(s: &mut Session) -> Result<u16, Reply> {
    // The old plan's claim goes first: it may hold the very pair this one needs.
    s.data = None;
    let source = match &s.shared.passive_pool {
        Some(pool) => {
            let Some(ticket) = pool.reserve(s.peer.ip(), SHARED_PORT_PATIENCE).await else {
                tracing::warn!(peer = %s.peer, "every shared passive port is awaiting a connection from this client");
                return Err(Reply::new(425, "Too many data connections pending from your address; try again"));
            };
            PassiveSource::Shared(ticket)
        }
        None => PassiveSource::Listener(s.shared.passive.bind(s.local.ip()).map_err(|e| {
            tracing::warn!(error = %e, "no passive port available");
            Reply::new(425, "No passive port available; try again")
        })?),
    };
    let policy = s.policy();
    let early_tls = s.prot_private.then(|| {
        let (shared, owner, resumption) = (s.shared.clone(), s.owner.clone(), policy.resumption);
        Box::new(move || DataTls { acceptor: shared.tls.early_data_acceptor(&owner), resumption })
            as Box<dyn FnOnce() -> DataTls + Send>
    });
    let rules = PassiveRules {
        peer_ip: s.peer.ip(),
        same_ip: policy.require_same_ip_for_passive,
        proxy: s.shared.proxy.passive.clone(),
        early_tls,
        timeout: Duration::from_secs(s.shared.config().ftp.data_connect_timeout_secs),
    };
    let passive = Passive::start(source, rules);
    let port = passive.port();
    s.data = Some(DataPlan::Passive(passive));
    Ok(port)
}

/// PORT and EPRT: only to the client's own address and an unprivileged port, so wharf cannot be used to
/// reach a third host (the FTP bounce attack, RFC 2577 §3).
pub(super) fn port(s: &mut Session, addr: SocketAddr, verb: &str) -> Reply {
    if s.epsv_all {
        return Reply::new(503, "EPSV ALL is in effect; use EPSV");
    }
    if !same_address(addr.ip(), s.peer.ip()) {
        tracing::warn!(peer = %s.peer, target = %addr, "refused {verb} to a foreign address");
        return Reply::new(504, format!("{verb} refused: the address must be your own"));
    }
    if addr.port() < 1024 {
        tracing::warn!(peer = %s.peer, target = %addr, "refused {verb} to a privileged port");
        return Reply::new(504, format!("{verb} refused: the port must be 1024 or higher"));
    }
    s.data = Some(DataPlan::Active(addr));
    Reply::new(200, format!("{verb} command successful"))
}

/// ALLO (RFC 959 §4.1.3): remembers the size for the next STOR, APPE or STOU, which reserves it against the
/// quotas before any data flows (552 when it does not fit).
pub(super) fn allo(s: &mut Session, size: Option<u64>) -> Reply {
    s.allo = size;
    match size {
        Some(n) => Reply::new(200, format!("ALLO {n} bytes noted for the next upload")),
        None => Reply::new(202, "ALLO not needed"),
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

    use super::*;

    #[tokio::test]
    async fn only_a_passive_reply_right_after_pwd_is_held_back() {
        assert_eq!(curl_pause(false).now_or_never(), Some(()), "no pause elsewhere");
        assert_eq!(curl_pause(true).now_or_never(), None, "a pause after PWD");
        let start = tokio::time::Instant::now();
        curl_pause(true).await;
        assert!(start.elapsed() >= CURL_PAUSE, "{:?}", start.elapsed());
    }
}
