//! What a SIGHUP may change: the running configuration and a newly read one are compared field by field;
//! the fields that can change live are taken from the new one, every other field keeps its running value.
//!
//! ```text
//! running ──┐
//!           ├─▶ plan ──▶ applied (running + live fields of new)
//! new ──────┘        └─▶ names of changed live fields, names of changed restart-only fields
//! ```
//!
//! Only [`live_fields_of`] lists fields: anything it does not copy (including fields added later) is
//! restart-only by construction, so a new setting is never half-applied by a reload it was not written for.
//! Changes are found by comparing the serialized configurations, so the names are the config file's keys.

use serde_json::Value;

use crate::config::{Config, LoginDefenceConfig};

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
