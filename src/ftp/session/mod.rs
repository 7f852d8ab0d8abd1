//! One control connection: RFC 959 §5.4 command-reply sequencing, RFC 4217 §4-§8 (AUTH TLS, PBSZ, PROT)
//! and the login, idle and shutdown rules.
//!
//! A [`Session`] owns its control stream and all its state and runs one `select!` loop: the next command,
//! the running transfer's end, the idle timer and the shutdown token. Transfers run as their own tasks; while
//! one runs, only ABOR, STAT, NOOP and QUIT are answered at once and any other command waits for it.
//!
//! What all sessions share is [`FtpContext`] (in `context.rs`); the running transfer's bookkeeping is in
//! `running.rs`.

mod context;
mod running;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;
use tracing::Instrument;

pub use self::context::{FtpContext, ProxyTrust};
use self::running::{transfer_event, TransferEvent};
pub(super) use self::running::{wait, Running};
use super::command::{self, Command, HashAlgorithm};
use super::control::Control;
use super::data::DataPlan;
use super::error;
use super::handlers;
use super::line::{Line, LineReader};
use super::listing::Facts;
use super::reply::Reply;
use crate::auth::Principal;
use crate::directory::Tenant;
use crate::ftp::data::AckingSocket;
use crate::ftp::policy::Policy;
use crate::sessions::Registration;
use crate::telemetry::metrics::Held;
use crate::tls::SessionOwner;
use crate::vfs::{UserView, ViewError, VirtualPath};

/// Commands queued behind a running transfer; beyond this the session stops reading until it ends.
const MAX_DEFERRED: usize = 16;

/// A logged-in user: its principal (whose user carries the permissions read at login, checked by
/// `Session::refusal` before each command) and its view of the tenant's storage (home and quotas).
pub(super) struct Login {
    pub principal: Principal,
    /// The only way handlers reach storage.
    pub view: UserView,
    /// The session's row among the live sessions; its token fires when an administrator disconnects it.
    pub live: Registration,
    /// Counts the session as logged in while the login lasts.
    pub _counted: Held,
}

/// What the loop does after a command.
pub(super) enum Flow {
    Continue,
    Close,
}

pub struct Session {
    pub(super) shared: Arc<FtpContext>,
    pub(super) control: Control,
    pub(super) lines: LineReader,
    pub(super) peer: SocketAddr,
    pub(super) local: SocketAddr,
    /// Who the TLS sessions issued on this connection and its data connections belong to.
    pub(super) owner: Arc<SessionOwner>,
    pub(super) sni: Option<String>,
    pub(super) host_tenant: Option<Tenant>,
    pub(super) pending_user: Option<String>,
    pub(super) login: Option<Login>,
    pub(super) failed_logins: u32,
    pub(super) cwd: VirtualPath,
    pub(super) pbsz: bool,
    pub(super) prot_private: bool,
    pub(super) ascii: bool,
    pub(super) rest: u64,
    /// The size announced by ALLO (RFC 959 §4.1.3) for the next upload, checked against the quotas first.
    pub(super) allo: Option<u64>,
    pub(super) rename_from: Option<VirtualPath>,
    pub(super) data: Option<DataPlan>,
    pub(super) epsv_all: bool,
    /// Whether the last command was PWD (see `params::curl_pause`).
    pub(super) after_pwd: bool,
    pub(super) facts: Facts,
    /// The algorithm HASH answers with (OPTS HASH).
    pub(super) hash: HashAlgorithm,
    pub(super) transfer: Option<Running>,
    /// Commands that arrived while a transfer ran; they run in order when it ends.
    deferred: VecDeque<Line>,
    /// When the current wait for a login began: connection or REIN.
    login_started: Instant,
    last_activity: Instant,
    /// The `ftp.session` span, which gains the tenant and user at login.
    pub(super) span: tracing::Span,
}

impl Session {
    /// The logged-in user, for handlers of commands that need a login: the dispatcher answers 530 to
    /// those before login, so a handler never runs without one.
    pub(super) fn login(&self) -> &Login {
        self.login.as_ref().expect("command needs login; checked before dispatch")
    }

    /// Serves one accepted connection to its end. `implicit` sessions start with a TLS handshake.
    pub async fn run(
        shared: Arc<FtpContext>,
        tcp: TcpStream,
        peer: SocketAddr,
        implicit: bool,
        shutdown: CancellationToken,
    ) {
        let _ = tcp.set_nodelay(true);
        let local = match tcp.local_addr() {
            Ok(addr) => addr,
            Err(_) => return,
        };
        let span = tracing::info_span!(
            target: "wharf::session",
            "ftp.session",
            "client.address" = %peer.ip(),
            "client.port" = peer.port(),
            "server.port" = local.port(),
            implicit,
            tenant = Empty,
            user = Empty,
            session = Empty,
        );
        let _open = shared.metrics.session_opened();
        let max_line = shared.config().ftp.max_line_bytes;
        let now = Instant::now();
        let session = Session {
            owner: SessionOwner::new(),
            control: Control::Plain(tcp),
            lines: LineReader::new(max_line),
            peer,
            local,
            sni: None,
            host_tenant: None,
            pending_user: None,
            login: None,
            failed_logins: 0,
            cwd: VirtualPath::root(),
            pbsz: false,
            allo: None,
            prot_private: false,
            ascii: false,
            rest: 0,
            rename_from: None,
            data: None,
            epsv_all: false,
            after_pwd: false,
            facts: Facts::default(),
            hash: HashAlgorithm::Sha256,
            transfer: None,
            deferred: VecDeque::new(),
            login_started: now,
            last_activity: now,
            span: span.clone(),
            shared,
        };
        session.serve_connection(implicit, shutdown).instrument(span).await;
    }

    async fn serve_connection(mut self, implicit: bool, shutdown: CancellationToken) {
        let peer = self.peer;
        if implicit {
            let timeout = Duration::from_secs(self.shared.config().ftp.login_timeout_secs);
            if let Err(e) = self.start_tls(timeout).await {
                tracing::debug!(%peer, error = %e, "implicit TLS handshake failed");
                return;
            }
        }
        let banner = Reply::new(220, self.shared.config().ftp.banner.clone());
        if self.send(&banner).await.is_ok() {
            if let Err(e) = self.serve(shutdown).await {
                tracing::debug!(%peer, error = %e, "control connection ended");
            }
        }
        self.finish().await;
    }

    async fn serve(&mut self, shutdown: CancellationToken) -> io::Result<()> {
        loop {
            while self.transfer.is_none() {
                let Some(line) = self.deferred.pop_front() else { break };
                if let Flow::Close = self.handle_line(line).await? {
                    return Ok(());
                }
            }
            let deadline = self.deadline();
            let disconnected = self.login.as_ref().map(|l| l.live.closed.clone());
            tokio::select! {
                biased;
                _ = async { disconnected.as_ref().expect("checked").cancelled().await }, if disconnected.is_some() => {
                    // Ended at once: a running upload is aborted and leaves nothing behind.
                    self.cancel_transfer().await?;
                    tracing::info!(peer = %self.peer, "session disconnected by an administrator");
                    self.send(&Reply::new(421, "Disconnected by an administrator; closing control connection")).await?;
                    return Ok(());
                }
                _ = shutdown.cancelled() => {
                    // Let a running transfer finish within the grace period; abort it after that.
                    let grace = Duration::from_secs(self.shared.config().ftp.shutdown_grace_secs);
                    if self.transfer.is_some() {
                        match tokio::time::timeout(grace, wait(&mut self.transfer)).await {
                            Ok(outcome) => self.transfer_done(outcome).await?,
                            Err(_) => {
                                self.cancel_transfer().await?;
                            }
                        }
                    }
                    self.send(&Reply::new(421, "Server shutting down; closing control connection")).await?;
                    return Ok(());
                }
                event = transfer_event(&mut self.transfer), if self.transfer.is_some() => match event {
                    TransferEvent::Opened(connected) => {
                        let (_, reply) = self.transfer.as_mut().and_then(|t| t.opening.take()).expect("opening");
                        if connected {
                            self.send(&reply).await?;
                        }
                    }
                    TransferEvent::Ended(outcome) => self.transfer_done(outcome).await?,
                },
                line = self.lines.read(&mut self.control), if self.deferred.len() < MAX_DEFERRED => {
                    self.last_activity = Instant::now();
                    let Some(line) = line? else {
                        return Ok(());
                    };
                    if self.transfer.is_some() && !self.answers_now(&line) {
                        self.deferred.push_back(line);
                    } else if let Flow::Close = self.handle_line(line).await? {
                        return Ok(());
                    }
                }
                _ = tokio::time::sleep_until(deadline), if self.transfer.is_none() => {
                    let text = if self.login.is_some() { "Idle timeout; closing control connection" } else { "Login timeout; closing control connection" };
                    self.send(&Reply::new(421, text)).await?;
                    return Ok(());
                }
            }
        }
    }

    /// Runs a command's storage or directory call while the control connection stays served, as during a
    /// transfer: NOOP and STAT are answered at once, ABOR too (there is no transfer to abort; the call ends
    /// by itself, within the store's operation timeout), and any other command waits its turn. A store that
    /// hangs thus never leaves a client without an answer. A control connection that breaks meanwhile is
    /// left for the session loop to find once the call is done.
    pub(super) async fn serving<T>(&mut self, call: impl std::future::Future<Output = T>) -> T {
        tokio::pin!(call);
        // During a transfer the session loop reads the control connection, and its ABOR is the transfer's.
        let mut open = self.transfer.is_none();
        loop {
            tokio::select! {
                biased;
                out = &mut call => return out,
                line = self.lines.read(&mut self.control), if open && self.deferred.len() < MAX_DEFERRED => {
                    self.last_activity = Instant::now();
                    let line = match line {
                        Ok(Some(line)) => line,
                        Ok(None) | Err(_) => {
                            open = false;
                            continue;
                        }
                    };
                    let command = match &line {
                        Line::Text(text) => command::parse(text).ok(),
                        Line::TooLong => None,
                    };
                    let reply = match command {
                        Some(Command::Noop) if self.deferred.is_empty() => Reply::new(200, "NOOP ok"),
                        Some(Command::Stat(None)) => handlers::status(self),
                        Some(Command::Abor) => {
                            self.data = None;
                            self.rest = 0;
                            Reply::new(225, "No transfer to abort; the command in progress ends by itself")
                        }
                        _ => {
                            self.deferred.push_back(line);
                            continue;
                        }
                    };
                    open = self.send(&reply).await.is_ok();
                }
            }
        }
    }

    fn deadline(&self) -> Instant {
        let config = self.shared.config();
        let ftp = &config.ftp;
        let idle = self.last_activity + Duration::from_secs(ftp.idle_timeout_secs);
        if self.login.is_some() {
            idle
        } else {
            idle.min(self.login_started + Duration::from_secs(ftp.login_timeout_secs))
        }
    }

    /// While a transfer runs, replies keep the order of the commands: a line is answered at once only if
    /// its command may run during a transfer and nothing is queued before it; ABOR and STAT always are.
    fn answers_now(&self, line: &Line) -> bool {
        let Line::Text(text) = line else {
            return false;
        };
        match command::parse(text) {
            Ok(Command::Abor | Command::Stat(_)) => true,
            Ok(command) => command.meta().during_transfer && self.deferred.is_empty(),
            Err(_) => false,
        }
    }

    async fn handle_line(&mut self, line: Line) -> io::Result<Flow> {
        let text = match line {
            Line::Text(text) => text,
            Line::TooLong => {
                let max = self.lines.max();
                self.send(&Reply::new(500, format!("Command line too long (limit {max} bytes)"))).await?;
                return Ok(Flow::Continue);
            }
        };
        let command = match command::parse(&text) {
            Ok(command) => command,
            Err(e) => {
                self.send(&error::parse_reply(&e)).await?;
                return Ok(Flow::Continue);
            }
        };
        if let Some(refusal) = self.refusal(&command) {
            // A refused command still ends what it would have consumed: the prepared data connection and a
            // pending REST, and the RNFR that only an immediately following RNTO may complete.
            if command.meta().opens_data {
                self.data = None;
                self.rest = 0;
            }
            if !matches!(command, Command::Rnto(_)) {
                self.rename_from = None;
            }
            self.send(&refusal).await?;
            return Ok(Flow::Continue);
        }
        let span = tracing::info_span!(
            target: "wharf::command",
            "ftp.command",
            "ftp.command" = command.verb(),
            "ftp.reply_code" = Empty,
        );
        handlers::dispatch(self, command).instrument(span).await
    }

    /// The one place where a command's metadata is checked against the session's state: TLS, login, and the
    /// user's permissions at the path the command touches (carried by the login; no query per command).
    fn refusal(&self, command: &Command) -> Option<Reply> {
        let meta = command.meta();
        // USER decides with the tenant it names (handlers::auth::user), and PASS follows an accepted USER.
        let user_decides = match command {
            Command::User(_) => true,
            Command::Pass(_) => self.pending_user.is_some(),
            _ => false,
        };
        if self.policy().require_tls_for_login && !self.control.is_tls() && !meta.before_tls && !user_decides {
            return Some(match command {
                Command::Pass(_) => Reply::new(530, "TLS required: send AUTH TLS before USER and PASS"),
                _ if meta.needs_login => Reply::new(530, "Not logged in; send AUTH TLS, then USER and PASS"),
                _ => Reply::new(503, "Send AUTH TLS first"),
            });
        }
        if meta.needs_login && self.login.is_none() {
            return Some(Reply::new(530, "Not logged in"));
        }
        if let (Some(login), Some(target)) = (&self.login, command.target()) {
            // A path that does not resolve is left to the handler, which answers 553 for it.
            let path = self.cwd.resolve(target).ok()?;
            let missing = meta.needs.missing_from(login.principal.user.access.at(&path));
            if !missing.is_empty() {
                return Some(error::view_reply(&ViewError::Denied { path, missing }, ""));
            }
        }
        None
    }

    /// The TLS policy in force: the server's, with the overrides of the tenant once it is known (logged in,
    /// else chosen by HOST).
    pub(super) fn policy(&self) -> Policy {
        let server = Policy::server(&self.shared.config().tls, self.shared.tls.resumption());
        let tenant = self.login.as_ref().map(|l| &l.principal.tenant).or(self.host_tenant.as_ref());
        match tenant {
            Some(tenant) => server.with_tenant(&tenant.tls),
            None => server,
        }
    }

    /// Writes a reply. A client that stops reading replies gets its connection closed after the stall
    /// timeout instead of holding the session forever.
    pub(super) async fn send(&mut self, reply: &Reply) -> io::Result<()> {
        // Inside a command this is its `ftp.command` span; elsewhere the field does not exist and nothing
        // is recorded.
        tracing::Span::current().record("ftp.reply_code", reply.code);
        let stall = Duration::from_secs(self.shared.config().ftp.stall_timeout_secs);
        let write = async {
            self.control.write_all(reply.encode().as_bytes()).await?;
            self.control.flush().await
        };
        match tokio::time::timeout(stall, write).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "client stopped reading replies")),
        }
    }

    /// Runs the TLS handshake on the control connection (AUTH TLS or implicit FTPS).
    pub(super) async fn start_tls(&mut self, timeout: Duration) -> io::Result<()> {
        let Control::Plain(tcp) = std::mem::replace(&mut self.control, Control::Closed) else {
            return Err(io::Error::other("control connection is not plain TCP"));
        };
        let acceptor = self.shared.tls.control_acceptor(&self.owner);
        let stream = tokio::time::timeout(timeout, acceptor.accept(AckingSocket::new(tcp)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        self.sni = stream.get_ref().1.server_name().map(str::to_owned);
        self.control = Control::Tls(Box::new(stream));
        Ok(())
    }

    /// Forgets the login and everything tied to it (REIN, RFC 959 §4.1.1).
    pub(super) fn reset(&mut self) {
        self.owner.log_out();
        self.login_started = Instant::now();
        self.pending_user = None;
        self.login = None;
        self.cwd = VirtualPath::root();
        self.ascii = false;
        self.rest = 0;
        self.allo = None;
        self.rename_from = None;
        self.data = None;
        self.epsv_all = false;
        self.facts = Facts::default();
    }

    async fn finish(&mut self) {
        let _ = self.cancel_transfer().await;
        if let Some(login) = self.login.take() {
            self.shared.sessions.end(login.live).await;
        }
        self.shared.tls.session_store().forget_anonymous(&self.owner);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.control.shutdown()).await;
    }
}
