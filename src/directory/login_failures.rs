//! Failed-login counters and temporary bans, kept in the directory so that every instance on the same
//! database counts the same failures and honours the same bans.
//!
//! A counter belongs to a *scope*: a client address ([`ip_scope`]) or a user of a tenant ([`user_scope`]).
//! The directory treats scopes as opaque keys; what they mean and when they are counted is the login path's
//! business (`crate::auth`).

use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};

/// How failures of one kind of scope turn into a ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicy {
    /// Failures count together while they fall within this long of the first one.
    pub window: TimeDelta,
    /// Failures within one window that ban the scope; `None` counts without ever banning.
    pub ban_after: Option<u32>,
    /// The first ban's length; each further ban of the same scope lasts twice as long as the one before…
    pub ban: TimeDelta,
    /// …up to this.
    pub max_ban: TimeDelta,
}

/// A scope's state right after a failure was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    /// Failures in the current window, this one included.
    pub failures: u32,
    /// The end of the scope's ban, when it is banned.
    pub banned_until: Option<DateTime<Utc>>,
}

/// A ban that is running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub scope: String,
    /// Failures in the scope's current window.
    pub failures: u32,
    pub last_failure: DateTime<Utc>,
    pub banned_until: DateTime<Utc>,
}

/// The scope of a client address: `ip:203.0.113.7`, or for IPv6 the network of `v6_prefix` bits that holds
/// it (`ip:2001:db8:1:2::/64`), since one client usually holds a whole /64. IPv4-mapped IPv6 addresses count
/// as the IPv4 address they carry.
pub fn ip_scope(ip: IpAddr, v6_prefix: u8) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let bits = u32::from(v6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            let network = std::net::Ipv6Addr::from(u128::from(v6) & mask);
            format!("ip:{network}/{bits}")
        }
    }
}

/// The scope of a user: `user:<tenant id>:<username>` (the id, so that a tenant created again under an old
/// name starts clean).
pub fn user_scope(tenant_id: i64, username: &str) -> String {
    format!("user:{tenant_id}:{username}")
}

/// The tenant id and username of a user scope.
pub fn parse_user_scope(scope: &str) -> Option<(i64, &str)> {
    let (tenant, username) = scope.strip_prefix("user:")?.split_once(':')?;
    Some((tenant.parse().ok()?, username))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_grouped_into_scopes() {
        let scope = |ip: &str, prefix| ip_scope(ip.parse().unwrap(), prefix);
        assert_eq!(scope("203.0.113.7", 64), "ip:203.0.113.7");
        assert_eq!(scope("::ffff:203.0.113.7", 64), "ip:203.0.113.7");
        assert_eq!(scope("2001:db8:1:2:aaaa::1", 64), "ip:2001:db8:1:2::/64");
        assert_eq!(scope("2001:db8:1:2:bbbb::9", 64), "ip:2001:db8:1:2::/64");
        assert_eq!(scope("2001:db8:1:2:bbbb::9", 128), "ip:2001:db8:1:2:bbbb::9/128");
        assert_eq!(scope("2001:db8:1:2:bbbb::9", 48), "ip:2001:db8:1::/48");
    }

    #[test]
    fn user_scopes_round_trip() {
        assert_eq!(user_scope(3, "a:b"), "user:3:a:b");
        assert_eq!(parse_user_scope("user:3:a:b"), Some((3, "a:b")));
        assert_eq!(parse_user_scope("ip:1.2.3.4"), None);
        assert_eq!(parse_user_scope("user:x:alice"), None);
    }
}
