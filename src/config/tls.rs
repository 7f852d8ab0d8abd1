//! `[tls]`: the default certificate and the TLS policy (TLS before login, PROT P, data-session resumption,
//! same IP for passive connections).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain; with `key_file`. Default: a self-signed certificate kept in `<data_dir>/tls`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Refuse USER/PASS (530) until AUTH TLS.
    pub require_tls_for_login: bool,
    /// Refuse data transfers (521) unless PROT P.
    pub require_prot_p: bool,
    /// TLS session resumption on data connections.
    pub data_session_resumption: Resumption,
    /// Refuse a passive data connection from another IP than the control connection's.
    pub require_same_ip_for_passive: bool,
    /// How often each instance looks for tenant certificates added or removed through another instance.
    pub certificate_poll_secs: u64,
}

/// How data connections must relate to the control connection's TLS session.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Resumption {
    /// Wharf issues no session tickets or IDs; every data connection does a full handshake.
    Disabled,
    /// Resumption is offered but a full handshake is accepted too.
    Enabled,
    /// The data connection must resume a session wharf issued to a control connection of the same logged-in
    /// user; anything else gets 522.
    Enforced,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            require_tls_for_login: true,
            require_prot_p: true,
            data_session_resumption: Resumption::Enforced,
            require_same_ip_for_passive: true,
            certificate_poll_secs: 5,
        }
    }
}
