//! Checks of the whole configuration, run at start and on every reload; each error names its field. The
//! sections with many settings of their own (S3, login defence, telemetry) check them in their modules.

use super::{Backend, Config, ConfigError, PassiveMode};

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| Err(ConfigError::Invalid { field, message: message.to_owned() });
        let p = self.ftp.passive_ports;
        if p.start > p.end || (p.start == 0) != (p.end == 0) {
            return invalid("ftp.passive_ports", "must be START-END with 1 <= START <= END, or 0-0 for any port");
        }
        if self.ftp.passive_mode == PassiveMode::Shared && (p.is_any() || p.end - p.start >= 1024) {
            return invalid("ftp.passive_ports", "a shared pool needs a fixed range of at most 1024 ports");
        }
        let relay = &self.ftp.passive_relay;
        if let Some(listen) = relay.listen {
            if self.ftp.passive_mode != PassiveMode::Shared {
                return invalid("ftp.passive_relay.listen", "relaying needs passive_mode = \"shared\"");
            }
            // Without `advertise`, `listen` is announced with the port it was bound to (port 0 picks one).
            let unreachable = match relay.advertise {
                Some(advertise) => advertise.ip().is_unspecified() || advertise.port() == 0,
                None => listen.ip().is_unspecified(),
            };
            if unreachable {
                return invalid(
                    "ftp.passive_relay.advertise",
                    "must be an address and port the other replicas reach (needed when listen is 0.0.0.0 or [::])",
                );
            }
            if relay.trusted.is_empty() {
                return invalid("ftp.passive_relay.trusted", "must list the replicas' networks");
            }
        } else if relay.advertise.is_some() || !relay.trusted.is_empty() {
            return invalid("ftp.passive_relay.listen", "advertise and trusted need listen");
        }
        if self.ftp.max_line_bytes < 512 {
            return invalid("ftp.max_line_bytes", "must be at least 512 (RFC 959 lines plus a long path)");
        }
        if self.ftp.max_sessions == 0 || self.ftp.max_sessions_per_ip == 0 {
            return invalid("ftp.max_sessions", "session limits must be at least 1");
        }
        if self.ftp.idle_timeout_secs == 0
            || self.ftp.data_connect_timeout_secs == 0
            || self.ftp.stall_timeout_secs == 0
            || self.ftp.login_timeout_secs == 0
        {
            return invalid("ftp.*_timeout_secs", "timeouts must be at least one second");
        }
        if self.ftp.explicit_listen.is_none() && self.ftp.implicit_listen.is_none() {
            return invalid("ftp.explicit_listen", "at least one of explicit_listen and implicit_listen must be set");
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return invalid("tls.cert_file", "cert_file and key_file must be given together");
        }
        if self.admin.cert_file.is_some() != self.admin.key_file.is_some() {
            return invalid("admin.cert_file", "cert_file and key_file must be given together");
        }
        let admin = Some(self.admin.listen);
        if self.admin.enabled
            && self.admin.listen.port() != 0
            && (self.ftp.explicit_listen == admin || self.ftp.implicit_listen == admin)
        {
            return invalid("admin.listen", "must differ from the FTP listeners");
        }
        if self.database.max_connections == 0 || self.database.acquire_timeout_secs == 0 {
            return invalid("database.max_connections", "the pool needs at least one connection and a timeout of 1 s");
        }
        let p = &self.passwords;
        // argon2's own limits: at least 8 KiB per lane, 1 iteration, 1 to 2^24 - 1 lanes.
        if p.lanes == 0 || p.lanes > 0x00ff_ffff || p.iterations == 0 || p.memory_kib < 8 * p.lanes {
            return invalid(
                "passwords.memory_kib",
                "argon2id needs lanes >= 1, iterations >= 1, memory_kib >= 8 x lanes",
            );
        }
        if p.verify_concurrency == Some(0) {
            return invalid("passwords.verify_concurrency", "must be at least 1");
        }
        if p.remember_secs > 86_400 {
            return invalid("passwords.remember_secs", "must be at most 86400 seconds (one day)");
        }
        if self.ftp.max_login_attempts == 0 {
            return invalid("ftp.max_login_attempts", "must be at least 1");
        }
        if !(1..=3600).contains(&self.tls.certificate_poll_secs) {
            return invalid("tls.certificate_poll_secs", "must be 1 to 3600 seconds");
        }
        let proxy = &self.ftp.proxy_protocol;
        if !proxy.listeners.is_empty() && proxy.trusted.is_empty() {
            return invalid(
                "ftp.proxy_protocol.trusted",
                "name the load balancers' networks the headers may come from",
            );
        }
        if !(1..=60).contains(&proxy.header_timeout_secs) {
            return invalid("ftp.proxy_protocol.header_timeout_secs", "must be 1 to 60 seconds");
        }
        if self.storage.backend == Backend::S3 {
            self.storage.s3.validate()?;
        }
        self.login_defence.validate(self.ftp.login_failure_delay_ms)?;
        self.telemetry.validate()?;
        Ok(())
    }
}
