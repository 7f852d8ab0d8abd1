//! What every session of an instance shares: the configuration in force, the authenticator, storage,
//! quotas, TLS, the passive ports, the live sessions, the PROXY protocol trust and the metrics.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::ftp::data::PassivePorts;
use crate::ftp::proxy::Trust;
use crate::ftp::shared_passive::SharedPassive;
use crate::sessions::LiveSessions;
use crate::storage::StorageProvider;
use crate::telemetry::metrics::Metrics;
use crate::tls::Tls;
use crate::vfs::quota::QuotaStore;

/// What every session of an instance shares.
pub struct FtpContext {
    /// Swapped whole by a reload (SIGHUP); read it through [`FtpContext::config`].
    pub config: ArcSwap<Config>,
    pub auth: Authenticator,
    pub storage: Arc<dyn StorageProvider>,
    /// Where quotas and usage are kept (the directory).
    pub quotas: Arc<dyn QuotaStore>,
    pub tls: Tls,
    pub passive: PassivePorts,
    /// The shared passive ports, when `ftp.passive_mode` is `shared`.
    pub passive_pool: Option<Arc<SharedPassive>>,
    /// Every logged-in session is registered here, so the admin API lists and disconnects it.
    pub sessions: Arc<LiveSessions>,
    /// Which listeners' connections come through a load balancer that sends PROXY protocol headers.
    pub proxy: ProxyTrust,
    /// This instance's metrics: sessions, logins, transfers.
    pub metrics: Arc<Metrics>,
}

impl FtpContext {
    /// The configuration in force now. A reload swaps it, so a session reads it again for each command
    /// rather than keeping it.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }
}

/// [`Trust`] per listener; `None` where no header is expected.
#[derive(Debug, Clone, Default)]
pub struct ProxyTrust {
    pub explicit: Option<Arc<Trust>>,
    pub implicit: Option<Arc<Trust>>,
    pub passive: Option<Arc<Trust>>,
}

impl ProxyTrust {
    pub fn new(config: &crate::config::ProxyProtocolConfig) -> ProxyTrust {
        use crate::config::ProxyListener;
        let trust = |listener| Trust::for_listener(config, listener).map(Arc::new);
        ProxyTrust {
            explicit: trust(ProxyListener::Explicit),
            implicit: trust(ProxyListener::Implicit),
            passive: trust(ProxyListener::Passive),
        }
    }

    /// Takes the trusted balancers and the header timeout of a reloaded configuration. Which listeners
    /// expect headers (`listeners`) stays as bound.
    pub fn update(&self, config: &crate::config::ProxyProtocolConfig) {
        for trust in [&self.explicit, &self.implicit, &self.passive].into_iter().flatten() {
            trust.update(config);
        }
    }
}
