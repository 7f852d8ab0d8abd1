//! Live FTP sessions across instances: each logged-in session has a row in the directory, so the admin API
//! of any instance lists every instance's sessions and can ask for one to be closed.
//!
//! ```text
//! login ──register──▶ live_sessions row ◀──list / request_disconnect── admin API (any instance)
//!   │                        │
//!   │   every HEARTBEAT: instance_alive, instance_sessions ──▶ cancel the token of each session whose
//!   │                    disconnect was requested or whose row is gone (its user or tenant was deleted)
//!   └── close / REIN ──end_session──▶ row removed
//! ```
//!
//! An instance that dies leaves its rows behind; its heartbeat stops, so listings leave those sessions out
//! at once and [`LiveSessions::run`] of a surviving instance deletes them later. The one piece of state
//! kept in memory is which sessions this instance serves, with the token that closes each: a cache of
//! connections that exist only here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use crate::auth::Principal;
use crate::directory::admin::LiveSession;
use crate::directory::{AdminStore, DirectoryError};

/// How often an instance says it is alive and looks for disconnect requests: a disconnect takes effect
/// within this time on another instance, at once on this one.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Sessions of an instance not heard from for this long are left out of listings.
pub const ALIVE_WINDOW: TimeDelta = TimeDelta::seconds(30);
/// Rows of an instance not heard from for this long are deleted.
const FORGET_AFTER: TimeDelta = TimeDelta::minutes(10);

pub struct LiveSessions {
    directory: Arc<dyn AdminStore>,
    instance: String,
    /// The sessions this instance serves, by id.
    local: Mutex<HashMap<String, Local>>,
}

struct Local {
    /// Fires to close the session.
    closed: CancellationToken,
    /// Whether its row was written; until then a missing row means nothing.
    registered: bool,
}

/// A registered session; its token fires when an administrator disconnects it. End it with
/// [`LiveSessions::end`]; dropping it without that (a panicking session) still removes the row.
pub struct Registration {
    pub id: String,
    pub closed: CancellationToken,
    owner: Option<Arc<LiveSessions>>,
}

impl LiveSessions {
    /// `instance`: this process's name among the instances sharing the directory; made unique here.
    pub fn new(directory: Arc<dyn AdminStore>, instance: &str) -> Arc<LiveSessions> {
        let instance = format!("{instance}-{:08x}", rand::random::<u32>());
        Arc::new(LiveSessions { directory, instance, local: Mutex::new(HashMap::new()) })
    }

    /// The default instance name: the host's name (a pod's name on Kubernetes).
    pub fn default_instance_name() -> String {
        std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "wharf".to_owned())
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Records a session that just logged in.
    pub async fn register(
        self: &Arc<Self>,
        principal: &Principal,
        client: SocketAddr,
    ) -> Result<Registration, DirectoryError> {
        let id = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
        let row = LiveSession {
            id: id.clone(),
            instance: self.instance.clone(),
            tenant_id: principal.tenant.id,
            user_id: principal.user.id,
            username: principal.user.username.clone(),
            client: client.to_string(),
            started_at: Utc::now(),
        };
        // Known locally first, so that a disconnect issued right after the row appears is not missed.
        let closed = CancellationToken::new();
        let local = Local { closed: closed.clone(), registered: false };
        self.local.lock().expect("not poisoned").insert(id.clone(), local);
        let mut registered = self.directory.register_session(&row).await;
        if matches!(registered, Err(DirectoryError::NotFound)) {
            // This instance is not (or no longer) known: before its first heartbeat, or after an outage long
            // enough for another instance to forget it.
            registered = match self.directory.instance_alive(&self.instance, Utc::now()).await {
                Ok(()) => self.directory.register_session(&row).await,
                Err(e) => Err(e),
            };
        }
        if let Err(e) = registered {
            self.local.lock().expect("not poisoned").remove(&id);
            return Err(e);
        }
        if let Some(local) = self.local.lock().expect("not poisoned").get_mut(&id) {
            local.registered = true;
        }
        Ok(Registration { id, closed, owner: Some(self.clone()) })
    }

    /// Removes a session that logged out or closed.
    pub async fn end(&self, mut registration: Registration) {
        registration.owner = None;
        self.forget(&registration.id).await;
    }

    async fn forget(&self, id: &str) {
        self.local.lock().expect("not poisoned").remove(id);
        if let Err(e) = self.directory.end_session(id).await {
            // The row goes with this instance's others when its heartbeat stops; until then it is listed.
            tracing::warn!(session = id, error = %e, "could not remove a closed session from the directory");
        }
    }

    /// Asks for session `id` to be closed, wherever it runs; `false` if there is no such live session.
    /// A session of this instance closes at once; one of another instance within [`HEARTBEAT`].
    pub async fn disconnect(&self, id: &str) -> Result<bool, DirectoryError> {
        let found = self.directory.request_disconnect(id, Utc::now()).await?;
        if let Some(local) = self.local.lock().expect("not poisoned").get(id) {
            local.closed.cancel();
        }
        Ok(found)
    }

    /// How many sessions this instance serves.
    pub fn local_count(&self) -> usize {
        self.local.lock().expect("not poisoned").len()
    }

    /// The heartbeat: says this instance is alive, carries out disconnect requests for its sessions and now
    /// and then deletes dead instances' rows. Runs until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(HEARTBEAT);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beats = 0u64;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(e) = self.beat(beats).await {
                tracing::warn!(error = %e, "live-session heartbeat failed; retrying");
            }
            beats += 1;
        }
    }

    async fn beat(&self, beats: u64) -> Result<(), DirectoryError> {
        let now = Utc::now();
        self.directory.instance_alive(&self.instance, now).await?;
        // Taken before the query: a session registered meanwhile is not mistaken for one whose row is gone.
        let registered: Vec<String> = {
            let local = self.local.lock().expect("not poisoned");
            local.iter().filter(|(_, s)| s.registered).map(|(id, _)| id.clone()).collect()
        };
        let rows = self.directory.instance_sessions(&self.instance).await?;
        let rows: HashMap<String, bool> = rows.into_iter().collect();
        {
            let local = self.local.lock().expect("not poisoned");
            for id in registered {
                // Requested, or the row is gone with its user or tenant: either way the session must end.
                if rows.get(&id).is_none_or(|requested| *requested) {
                    if let Some(session) = local.get(&id) {
                        session.closed.cancel();
                    }
                }
            }
        }
        // About once a minute.
        if beats % 30 == 0 {
            let forgotten = self.directory.forget_dead_instances(now - FORGET_AFTER).await?;
            if forgotten > 0 {
                tracing::info!(forgotten, "forgot the sessions of instances that stopped without cleaning up");
            }
        }
        Ok(())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            let id = std::mem::take(&mut self.id);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { owner.forget(&id).await });
            } else {
                owner.local.lock().expect("not poisoned").remove(&id);
            }
        }
    }
}
