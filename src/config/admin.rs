//! `[admin]`: the admin REST API's listener, its HTTPS certificate and who may read `/metrics`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The admin REST API (`/api/v1`, with `/healthz` and `/readyz`) on a listener of its own.
///
/// # Defaults
/// Off: a bare `wharf serve` opens no HTTP port that nobody asked for (and without an API token there is
/// nothing to do on it). With `enabled = true` it listens on 127.0.0.1:8080 in plain HTTP; give `cert_file`
/// and `key_file` (PEM) to serve HTTPS, which any address beyond loopback should use since bearer tokens
/// travel in every request.
///
/// `GET /metrics` on the same listener serves the Prometheus text format. By default (`metrics_auth =
/// "token"`) it needs an operator token like the rest of the API; `metrics_auth = "none"` opens it to anyone
/// who reaches the listener, for scrapers on a private network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// PEM certificate chain for HTTPS; with `key_file`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Who may read `/metrics`.
    pub metrics_auth: MetricsAuth,
}

/// Who may read `/metrics` (see [`AdminConfig`]).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAuth {
    /// An operator bearer token, as for the rest of the API.
    #[default]
    Token,
    /// Anyone who can reach the admin listener.
    None,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            cert_file: None,
            key_file: None,
            metrics_auth: MetricsAuth::Token,
        }
    }
}
