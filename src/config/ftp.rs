//! `[ftp]`: the FTPS listeners, session limits and timeouts, the passive port pool (dedicated or shared),
//! the PROXY protocol and the relay of passive data connections between replicas.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FtpConfig {
    /// Explicit FTPS (AUTH TLS) listener. `None` disables it.
    pub explicit_listen: Option<SocketAddr>,
    /// Implicit FTPS listener (TLS from the first byte). `None` disables it.
    pub implicit_listen: Option<SocketAddr>,
    /// Passive data ports, inclusive. `0-0` lets the OS pick any free port.
    pub passive_ports: PortRange,
    /// `dedicated`: each EPSV/PASV binds a port of `passive_ports` of its own. `shared`: every port of
    /// `passive_ports` listens all the time and serves all sessions, each connection matched to its session
    /// by the client's address, so a handful of published ports serve thousands of sessions.
    pub passive_mode: PassiveMode,
    /// The address announced in PASV replies (for NAT). Default: the address the client connected to.
    pub passive_address: Option<IpAddr>,
    /// Longest control line accepted, in bytes, CR LF included.
    pub max_line_bytes: usize,
    /// An idle logged-in or anonymous session is closed with 421 after this long.
    pub idle_timeout_secs: u64,
    /// A data connection that has not arrived (passive) or connected (active) after this long gives 425.
    pub data_connect_timeout_secs: u64,
    /// A transfer that moves no byte for this long (a client that stopped reading or sending) is aborted
    /// with 426; a control connection whose client stops reading replies for this long is closed.
    pub stall_timeout_secs: u64,
    /// A client must finish its TLS handshake and log in within this long.
    pub login_timeout_secs: u64,
    /// Sessions across the whole instance; beyond it new connections get 421.
    pub max_sessions: usize,
    /// Sessions from one client IP; beyond it new connections get 421.
    pub max_sessions_per_ip: usize,
    /// Delay before a 530 for a failed login, the same for an unknown user and a wrong password.
    pub login_failure_delay_ms: u64,
    /// Failed logins after which the session is closed with 421.
    pub max_login_attempts: u32,
    /// Greeting text after `220 `.
    pub banner: String,
    /// How long running transfers may finish after a shutdown request.
    pub shutdown_grace_secs: u64,
    /// Connections relayed by a TCP load balancer that announces the client with the PROXY protocol.
    pub proxy_protocol: ProxyProtocolConfig,
    /// Replicas of a shared pool relaying passive data connections to one another, so that a data
    /// connection may reach any replica, not only the one holding its control connection.
    pub passive_relay: PassiveRelayConfig,
}

/// Relaying passive data connections between replicas (`passive_mode = "shared"` only). Every replica
/// records its claims on (client address, port) pairs in the directory; a replica that receives a data
/// connection claimed by another forwards it, prefixed with a PROXY v2 header naming the client, to that
/// replica's `listen` address, which accepts it from `trusted` peers only. TLS stays end to end.
///
/// Defaults: off (`listen` unset), so a data connection must reach the replica of its control connection
/// (client-IP affinity on the balancer).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PassiveRelayConfig {
    /// Where this replica accepts data connections relayed by the others.
    pub listen: Option<SocketAddr>,
    /// The address the other replicas reach `listen` at (a pod's IP). Default: `listen` itself, which must
    /// then name a specific address.
    pub advertise: Option<SocketAddr>,
    /// The replicas' networks; a relay connection from anywhere else is refused.
    pub trusted: Vec<crate::access::Network>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PassiveMode {
    Dedicated,
    Shared,
}

/// The PROXY protocol (v1 or v2) on wharf's listeners, so that bans, allowed networks, the passive-connection
/// check and logs see the real client behind a load balancer.
///
/// Defaults: no listener expects a header.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyProtocolConfig {
    /// The listeners whose connections from `trusted` addresses must begin with a header: `explicit`,
    /// `implicit`, `passive` (passive data connections).
    pub listeners: Vec<ProxyListener>,
    /// The balancers' addresses. Connections from anywhere else are served as direct ones (a header they
    /// send is never believed), so a client cannot claim another address.
    pub trusted: Vec<crate::access::Network>,
    /// How long a balancer may take to send the header before the connection is closed.
    pub header_timeout_secs: u64,
}

impl Default for ProxyProtocolConfig {
    fn default() -> Self {
        ProxyProtocolConfig { listeners: Vec::new(), trusted: Vec::new(), header_timeout_secs: 5 }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProxyListener {
    Explicit,
    Implicit,
    Passive,
}

impl Default for FtpConfig {
    fn default() -> Self {
        FtpConfig {
            explicit_listen: Some(SocketAddr::from(([127, 0, 0, 1], 2121))),
            implicit_listen: Some(SocketAddr::from(([127, 0, 0, 1], 2990))),
            passive_ports: PortRange { start: 50000, end: 50999 },
            passive_mode: PassiveMode::Dedicated,
            passive_address: None,
            max_line_bytes: 8192,
            idle_timeout_secs: 600,
            data_connect_timeout_secs: 30,
            stall_timeout_secs: 120,
            login_timeout_secs: 60,
            max_sessions: 2000,
            max_sessions_per_ip: 64,
            login_failure_delay_ms: 1000,
            max_login_attempts: 5,
            banner: "wharf FTPS ready".to_owned(),
            shutdown_grace_secs: 30,
            proxy_protocol: ProxyProtocolConfig::default(),
            passive_relay: PassiveRelayConfig::default(),
        }
    }
}

/// An inclusive port range written `start-end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn is_any(&self) -> bool {
        self.start == 0 && self.end == 0
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}-{}", self.start, self.end))
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parse = || -> Option<PortRange> {
            let (a, b) = text.split_once('-')?;
            Some(PortRange { start: a.trim().parse().ok()?, end: b.trim().parse().ok()? })
        };
        parse().ok_or_else(|| serde::de::Error::custom(format!("port range {text:?} is not of the form START-END")))
    }
}
