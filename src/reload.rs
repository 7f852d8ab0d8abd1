//! What SIGHUP does ([`Reloader`]): the configuration is read again and compared with the running one field
//! by field; the fields that can change live are taken from the new one, every other field keeps its
//! running value until a restart.
//!
//! ```text
//! running ──┐
//!           ├─▶ plan ──▶ applied (running + live fields of new)
//! new ──────┘        └─▶ names of changed live fields, names of changed restart-only fields
//! ```
//!
//! Only `live_fields_of` lists fields: anything it does not copy (including fields added later) is
//! restart-only by construction, so a new setting is never half-applied by a reload it was not written for.
//! Changes are found by comparing the serialized configurations, so the names are the config file's keys.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use crate::config::{Config, LoginDefenceConfig};
use crate::ftp::session::FtpContext;
use crate::server::Limits;
use crate::telemetry::Telemetry;

/// Reloads what can change without a restart (see "Reload" in [`Config`]'s documentation): the
/// configuration's live fields, the server's own certificate and key files (a renewed certificate) and, at
/// once rather than at the next poll, the tenants' certificates.
#[derive(Clone)]
pub struct Reloader {
    shared: Arc<FtpContext>,
    certificates: Arc<tokio::sync::Notify>,
    limits: Arc<Limits>,
    config_file: Option<PathBuf>,
    telemetry: Option<Telemetry>,
}

/// What a reload changed, by configuration key.
#[derive(Debug)]
pub struct Reloaded {
    /// Live fields now in force.
    pub live: Vec<String>,
    /// Fields that differ in the file but keep their running value until a restart.
    pub restart: Vec<String>,
}

impl Reloader {
    pub(crate) fn new(
        shared: Arc<FtpContext>,
        certificates: Arc<tokio::sync::Notify>,
        limits: Arc<Limits>,
        config_file: Option<PathBuf>,
        telemetry: Option<Telemetry>,
    ) -> Reloader {
        Reloader { shared, certificates, limits, config_file, telemetry }
    }

    /// Reads the configuration again and applies it. On any error (a file that does not parse, an invalid
    /// value, a certificate that does not load) nothing changes.
    pub fn reload(&self) -> anyhow::Result<Reloaded> {
        let new = Config::load(self.config_file.as_deref()).context("reading the configuration")?;
        let running = self.shared.config();
        let plan = plan(&running, &new);
        let applied = plan.applied;
        // Restart-only values kept beside new live ones must still make a valid whole.
        applied.validate().context("the new settings do not fit the ones kept until a restart")?;
        tracing_subscriber::EnvFilter::try_new(&applied.log.filter).with_context(|| {
            format!("configuration field `log.filter`: {:?} is not a valid filter", applied.log.filter)
        })?;
        self.shared.tls.reload_identity(&applied).context("reloading the server's certificate")?;
        // Nothing below fails: from here on the reload is applied whole.
        self.certificates.notify_one();
        if let Some(telemetry) = &self.telemetry {
            if let Err(e) = telemetry.set_filter(&applied.log.filter) {
                tracing::error!(error = format!("{e:#}"), "SIGHUP: the log filter stays");
            }
        }
        let ftp = &applied.ftp;
        self.limits.set(ftp.max_sessions, ftp.max_sessions_per_ip);
        self.shared.proxy.update(&ftp.proxy_protocol);
        self.shared.auth.set_failure_delay(Duration::from_millis(ftp.login_failure_delay_ms));
        self.shared.config.store(Arc::new(applied));
        Ok(Reloaded { live: plan.live, restart: plan.restart })
    }
}

/// Reloads on every SIGHUP until the process ends.
pub(crate) async fn on_hangup(mut hangups: tokio::signal::unix::Signal, reloader: Reloader) {
    while hangups.recv().await.is_some() {
        match reloader.reload() {
            Ok(reloaded) => {
                for field in &reloaded.restart {
                    tracing::warn!("SIGHUP: {field} changed; takes effect after a restart");
                }
                let changed = if reloaded.live.is_empty() { "nothing".to_owned() } else { reloaded.live.join(", ") };
                tracing::info!("SIGHUP: reloaded the configuration and the certificates; changed: {changed}");
            }
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "SIGHUP: reload failed; the configuration and the certificate in use stay"
            ),
        }
    }
}

/// What a reload does with a newly read configuration.
#[derive(Debug)]
pub struct Plan {
    /// The configuration to run with from now on: the running one with the live fields of the new one.
    pub applied: Config,
    /// Live fields whose value changes (dotted keys, e.g. `ftp.banner`).
    pub live: Vec<String>,
    /// Fields that differ in the new configuration but only take effect after a restart.
    pub restart: Vec<String>,
}

/// Compares `running` with `new`.
pub fn plan(running: &Config, new: &Config) -> Plan {
    let applied = live_fields_of(running, new);
    let live = changed_keys(running, &applied);
    let restart = changed_keys(running, new).into_iter().filter(|key| !live.contains(key)).collect();
    Plan { applied, live, restart }
}

/// `running` with the fields that take effect without a restart copied from `new`. Keep in step with the
/// "Reload" section of [`Config`]'s documentation.
fn live_fields_of(running: &Config, new: &Config) -> Config {
    let mut applied = running.clone();
    let (ftp, to) = (&new.ftp, &mut applied.ftp);
    to.max_line_bytes = ftp.max_line_bytes;
    to.idle_timeout_secs = ftp.idle_timeout_secs;
    to.data_connect_timeout_secs = ftp.data_connect_timeout_secs;
    to.stall_timeout_secs = ftp.stall_timeout_secs;
    to.login_timeout_secs = ftp.login_timeout_secs;
    to.max_sessions = ftp.max_sessions;
    to.max_sessions_per_ip = ftp.max_sessions_per_ip;
    to.login_failure_delay_ms = ftp.login_failure_delay_ms;
    to.max_login_attempts = ftp.max_login_attempts;
    to.banner.clone_from(&ftp.banner);
    to.shutdown_grace_secs = ftp.shutdown_grace_secs;
    to.passive_address = ftp.passive_address;
    to.proxy_protocol.trusted.clone_from(&ftp.proxy_protocol.trusted);
    to.proxy_protocol.header_timeout_secs = ftp.proxy_protocol.header_timeout_secs;

    let (tls, to) = (&new.tls, &mut applied.tls);
    to.cert_file.clone_from(&tls.cert_file);
    to.key_file.clone_from(&tls.key_file);
    to.require_tls_for_login = tls.require_tls_for_login;
    to.require_prot_p = tls.require_prot_p;
    to.require_same_ip_for_passive = tls.require_same_ip_for_passive;

    // The admin API writes ban scopes with the prefix length it started with, so that one stays.
    applied.login_defence =
        LoginDefenceConfig { ipv6_prefix_len: running.login_defence.ipv6_prefix_len, ..new.login_defence.clone() };
    applied.log.filter.clone_from(&new.log.filter);
    applied
}

/// The dotted keys whose values differ between `a` and `b`; arrays count as one value.
fn changed_keys(a: &Config, b: &Config) -> Vec<String> {
    let (a, b) = (serde_json::to_value(a).expect("a config serializes"), serde_json::to_value(b).expect("too"));
    let mut keys = Vec::new();
    diff("", &a, &b, &mut keys);
    keys
}

fn diff(prefix: &str, a: &Value, b: &Value, keys: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (name, value) in a {
                let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                diff(&key, value, b.get(name).unwrap_or(&Value::Null), keys);
            }
            for name in b.keys().filter(|name| !a.contains_key(*name)) {
                keys.push(if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") });
            }
        }
        (a, b) if a != b => keys.push(prefix.to_owned()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Backend, Secret};

    #[test]
    fn no_change_plans_nothing() {
        let c = Config::default();
        let plan = plan(&c, &c.clone());
        assert!(plan.live.is_empty() && plan.restart.is_empty(), "{plan:?}");
        assert_eq!(plan.applied, c);
    }

    #[test]
    fn live_fields_are_taken_and_named() {
        let running = Config::default();
        let mut new = running.clone();
        new.ftp.banner = "Welcome back".into();
        new.ftp.max_sessions_per_ip = 1;
        new.tls.require_prot_p = false;
        new.login_defence.ip.threshold = 3;
        new.log.filter = "info,wharf=debug".into();
        let plan = plan(&running, &new);
        let mut live = plan.live.clone();
        live.sort();
        assert_eq!(
            live,
            ["ftp.banner", "ftp.max_sessions_per_ip", "log.filter", "login_defence.ip.threshold", "tls.require_prot_p"]
        );
        assert!(plan.restart.is_empty(), "{:?}", plan.restart);
        assert_eq!(plan.applied, new);
    }

    #[test]
    fn restart_only_fields_are_named_and_keep_their_running_value() {
        let running = Config::default();
        let mut new = running.clone();
        new.ftp.explicit_listen = Some("127.0.0.1:2222".parse().unwrap());
        new.ftp.passive_ports.start = 40000;
        new.storage.backend = Backend::S3;
        new.storage.s3.bucket = Some("b".into());
        new.secret_key = Some(Secret::new("c2VjcmV0".into()));
        new.passwords.iterations = 3;
        new.login_defence.ipv6_prefix_len = 48;
        new.tls.data_session_resumption = crate::config::Resumption::Disabled;
        new.ftp.banner = "live too".into();
        let plan = plan(&running, &new);
        let mut restart = plan.restart.clone();
        restart.sort();
        assert_eq!(
            restart,
            [
                "ftp.explicit_listen",
                "ftp.passive_ports",
                "login_defence.ipv6_prefix_len",
                "passwords.iterations",
                "secret_key",
                "storage.backend",
                "storage.s3.bucket",
                "tls.data_session_resumption",
            ]
        );
        assert_eq!(plan.live, ["ftp.banner"]);
        let mut expected = running.clone();
        expected.ftp.banner = "live too".into();
        assert_eq!(plan.applied, expected, "only the live field is applied");
    }

    #[test]
    fn a_setting_appearing_or_vanishing_is_a_change() {
        let running = Config::default();
        let mut new = running.clone();
        new.database_url = Some("postgres://db/w".into());
        new.tls.cert_file = Some("cert.pem".into());
        let plan = plan(&running, &new);
        assert_eq!(plan.restart, ["database_url"]);
        assert_eq!(plan.live, ["tls.cert_file"]);
        let back = super::plan(&new, &running);
        assert_eq!(back.restart, ["database_url"]);
        assert_eq!(back.live, ["tls.cert_file"]);
    }
}
