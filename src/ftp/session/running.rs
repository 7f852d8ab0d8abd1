//! The session's running transfer: the task and its cancellation, the 150 sent once the data connection is
//! there, and the final reply, log record and metrics when it ends.

use std::io;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Session;
use crate::ftp::reply::Reply;
use crate::ftp::transfer::Outcome;
use crate::telemetry::metrics::{Direction, TransferResult};

/// A transfer running as its own task.
pub(in crate::ftp) struct Running {
    pub handle: JoinHandle<Outcome>,
    pub cancel: CancellationToken,
    pub what: &'static str,
    /// Which way the data goes, for the metrics.
    pub direction: Direction,
    pub path: String,
    /// The 150 reply, sent once the task reports that the data connection is there.
    pub opening: Option<(oneshot::Receiver<()>, Reply)>,
    /// The `ftp.transfer` span; its result is recorded when the session learns it.
    pub span: tracing::Span,
}

impl Drop for Running {
    /// A transfer never outlives its session: if the session ends in any way, the transfer is cancelled and
    /// cleans up (an upload is aborted, nothing becomes visible).
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Session {
    /// Sends what a finished transfer has to say: the 150 if it connected and that is not yet sent, then its
    /// final reply.
    pub(in crate::ftp) async fn transfer_done(&mut self, outcome: io::Result<Outcome>) -> io::Result<()> {
        let mut running = self.transfer.take().expect("a transfer was running");
        let outcome = outcome.unwrap_or_else(|e| {
            tracing::error!(error = %e, "transfer task failed");
            Outcome { reply: Reply::new(451, "Transfer failed"), bytes: 0, duration: Duration::ZERO }
        });
        self.log_transfer(&running, &outcome);
        let result = TransferResult::from_code(outcome.reply.code);
        running.span.record("bytes", outcome.bytes);
        running.span.record("ftp.reply_code", outcome.reply.code);
        running.span.record("result", result.as_str());
        if let Some(login) = &self.login {
            let tenant = &login.principal.tenant.name;
            self.shared.metrics.transfer(tenant, running.direction, result, outcome.bytes, outcome.duration);
        }
        self.last_activity = Instant::now();
        if let Some((mut connected, opening)) = running.opening.take() {
            if connected.try_recv().is_ok() {
                self.send(&opening).await?;
            }
        }
        self.send(&outcome.reply).await
    }

    fn log_transfer(&self, running: &Running, outcome: &Outcome) {
        let (tenant, user, session) = match &self.login {
            Some(l) => (l.principal.tenant.name.as_str(), l.principal.user.username.as_str(), l.live.id.as_str()),
            None => ("", "", ""),
        };
        tracing::info!(
            target: "wharf::transfer",
            session,
            peer = %self.peer,
            tenant,
            user,
            command = running.what,
            path = %running.path,
            bytes = outcome.bytes,
            millis = outcome.duration.as_millis() as u64,
            code = outcome.reply.code,
            "transfer"
        );
    }

    /// Stops the running transfer, waits until it has cleaned up and sends its replies. False when no
    /// transfer was running.
    pub(in crate::ftp) async fn cancel_transfer(&mut self) -> io::Result<bool> {
        let Some(running) = &self.transfer else {
            return Ok(false);
        };
        running.cancel.cancel();
        let outcome = wait(&mut self.transfer).await;
        self.transfer_done(outcome).await?;
        Ok(true)
    }
}

/// Resolves when the running transfer has ended.
pub(in crate::ftp) async fn wait(running: &mut Option<Running>) -> io::Result<Outcome> {
    match running {
        Some(r) => (&mut r.handle).await.map_err(io::Error::other),
        None => std::future::pending().await,
    }
}

pub(super) enum TransferEvent {
    /// The task reported its data connection (true) or gave up before it came (false).
    Opened(bool),
    Ended(io::Result<Outcome>),
}

/// The running transfer's next event; the report of its data connection always comes before its end.
pub(super) async fn transfer_event(running: &mut Option<Running>) -> TransferEvent {
    let Some(running) = running else {
        return std::future::pending().await;
    };
    let ended =
        |joined: Result<Outcome, tokio::task::JoinError>| TransferEvent::Ended(joined.map_err(io::Error::other));
    match running.opening.as_mut() {
        Some((connected, _)) => tokio::select! {
            biased;
            report = connected => TransferEvent::Opened(report.is_ok()),
            joined = &mut running.handle => ended(joined),
        },
        None => ended((&mut running.handle).await),
    }
}
