//! `[login_defence]`: counting failed logins, banning addresses and users, and the growing delay before a
//! 530.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Brute-force defence. Failed logins are counted in the directory per client address and per user, so
/// every instance on the same database sees the same counts and honours the same bans.
///
/// # Defaults
/// 20 failures from one address, or 10 against one user, within 15 minutes ban that address or user for
/// 15 minutes; each further ban of the same address or user lasts twice as long, up to a day. Each failed
/// login's 530 waits `ftp.login_failure_delay_ms`, doubled for every recent failure from the same address,
/// up to 8 seconds. IPv6 clients are counted per /64.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoginDefenceConfig {
    /// Ban addresses and users that fail too often. `false` still counts failures (for the growing delay)
    /// but bans nobody, and ignores bans already recorded.
    pub bans: bool,
    /// Failures from one client address (an IPv4 address, an IPv6 network of `ipv6_prefix_len` bits).
    pub ip: BanRule,
    /// Failures against one existing user of a tenant, from any address.
    pub user: BanRule,
    /// The longest a repeat ban may grow to.
    pub max_ban_secs: u64,
    /// An address or user with no failure for this long (and no running ban) is forgotten, with its count
    /// of earlier bans.
    pub forget_after_secs: u64,
    /// The longest delay before a 530.
    pub max_delay_ms: u64,
    /// IPv6 clients are counted per network of this many bits, since one client usually holds a whole /64.
    pub ipv6_prefix_len: u8,
}

/// Failures that, within one window, ban an address or a user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BanRule {
    /// Failures within `window_secs` that ban.
    pub threshold: u32,
    /// Failures count together while they fall within this long of the first one.
    pub window_secs: u64,
    /// Length of the first ban.
    pub ban_secs: u64,
}

impl Default for LoginDefenceConfig {
    fn default() -> Self {
        LoginDefenceConfig {
            bans: true,
            ip: BanRule { threshold: 20, window_secs: 900, ban_secs: 900 },
            user: BanRule { threshold: 10, window_secs: 900, ban_secs: 900 },
            max_ban_secs: 24 * 3600,
            forget_after_secs: 24 * 3600,
            max_delay_ms: 8000,
            ipv6_prefix_len: 64,
        }
    }
}

impl Default for BanRule {
    fn default() -> Self {
        BanRule { threshold: 10, window_secs: 900, ban_secs: 900 }
    }
}

/// The longest time any setting below may name: ten years, far from chrono's limits.
const MAX_SECS: u64 = 10 * 365 * 24 * 3600;

impl LoginDefenceConfig {
    pub(super) fn validate(&self, base_delay_ms: u64) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| Err(ConfigError::Invalid { field, message: message.to_owned() });
        for (rule, threshold, times) in [
            (&self.ip, "login_defence.ip.threshold", "login_defence.ip.window_secs"),
            (&self.user, "login_defence.user.threshold", "login_defence.user.window_secs"),
        ] {
            if rule.threshold == 0 {
                return invalid(threshold, "must be at least 1");
            }
            if !(1..=MAX_SECS).contains(&rule.window_secs) || !(1..=MAX_SECS).contains(&rule.ban_secs) {
                return invalid(times, "window_secs and ban_secs must be between 1 second and 10 years");
            }
        }
        if self.max_ban_secs < self.ip.ban_secs.max(self.user.ban_secs) || self.max_ban_secs > MAX_SECS {
            return invalid("login_defence.max_ban_secs", "must be at least ip.ban_secs and user.ban_secs");
        }
        if self.forget_after_secs < self.ip.window_secs.max(self.user.window_secs) || self.forget_after_secs > MAX_SECS
        {
            return invalid("login_defence.forget_after_secs", "must be at least ip.window_secs and user.window_secs");
        }
        if self.max_delay_ms < base_delay_ms || self.max_delay_ms > 60_000 {
            return invalid(
                "login_defence.max_delay_ms",
                "must be at least ftp.login_failure_delay_ms and at most 60000 (one minute)",
            );
        }
        if !(32..=128).contains(&self.ipv6_prefix_len) {
            return invalid("login_defence.ipv6_prefix_len", "must be between 32 and 128");
        }
        Ok(())
    }
}
