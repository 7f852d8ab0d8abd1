//! Who may do what, and from where: a user's [`Permissions`] (optionally narrowed or widened per sub-path
//! by [`Access`]) and the client [`Networks`] a tenant or user may log in from.
//!
//! Pure types, each with one text form that the CLI parses, the directory stores and `user list` prints.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::vfs::VirtualPath;

/// One thing a user may do to a path. The FTP commands each need some of them (see
/// [`crate::ftp::command::Command::meta`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// See what a directory holds (LIST, NLST, MLSD, MLST, STAT path).
    List,
    /// Read a file's content or facts about it (RETR, SIZE, MDTM, HASH).
    Read,
    /// Create or change files (STOR, STOU, APPE, MFMT; and the target of RNTO).
    Write,
    /// Remove files and directories (DELE, RMD).
    Delete,
    /// Rename or move (RNFR, RNTO).
    Rename,
    /// Create directories (MKD).
    Mkdir,
}

impl Permission {
    pub const ALL: [Permission; 6] = [
        Permission::List,
        Permission::Read,
        Permission::Write,
        Permission::Delete,
        Permission::Rename,
        Permission::Mkdir,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Permission::List => "list",
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Delete => "delete",
            Permission::Rename => "rename",
            Permission::Mkdir => "mkdir",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`Permission`]s. Text form: `all`, `none`, or names joined by `,` (`list,read`), always printed
/// in the order of [`Permission::ALL`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permissions(u8);

impl Permissions {
    pub const NONE: Permissions = Permissions(0);
    pub const ALL: Permissions = Permissions(0b11_1111);

    pub fn of(permissions: &[Permission]) -> Permissions {
        Permissions(permissions.iter().fold(0, |bits, p| bits | p.bit()))
    }

    pub fn has(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn with(self, permission: Permission) -> Permissions {
        Permissions(self.0 | permission.bit())
    }

    /// What `self` needs that `granted` lacks.
    pub fn missing_from(self, granted: Permissions) -> Permissions {
        Permissions(self.0 & !granted.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.has(*p))
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Permissions::ALL => f.write_str("all"),
            Permissions::NONE => f.write_str("none"),
            set => f.write_str(&set.iter().map(Permission::name).collect::<Vec<_>>().join(",")),
        }
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permissions({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("unknown permission {0:?}: expected all, none, or a list of list, read, write, delete, rename, mkdir")]
    UnknownPermission(String),
    #[error("network {0:?} must be an address or CIDR block, e.g. 203.0.113.0/24 or 2001:db8::/32")]
    BadNetwork(String),
    #[error("network {given:?} has bits set beyond its /{len} prefix; did you mean {meant}?")]
    HostBits { given: String, len: u8, meant: String },
}

impl FromStr for Permissions {
    type Err = AccessError;

    /// Names are case-insensitive and may be surrounded by blanks; `all` and `none` stand alone.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("all") {
            return Ok(Permissions::ALL);
        }
        if text.eq_ignore_ascii_case("none") {
            return Ok(Permissions::NONE);
        }
        text.split(',').try_fold(Permissions::NONE, |set, name| {
            let name = name.trim();
            Permission::ALL
                .into_iter()
                .find(|p| p.name().eq_ignore_ascii_case(name))
                .map(|p| set.with(p))
                .ok_or_else(|| AccessError::UnknownPermission(name.to_owned()))
        })
    }
}

/// A user's permissions: one set for its whole tree, and sets for sub-paths (as the user sees them, below
/// its home). The rule with the longest path that is the path itself or one of its parents wins; without
/// one, the tree-wide set applies. A rule for `/in` covers `/in` and `/in/a/b`, not `/inbox`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub permissions: Permissions,
    /// Sorted by path, no duplicates, never the root (that is `permissions`).
    rules: Vec<(VirtualPath, Permissions)>,
}

impl Default for Access {
    fn default() -> Self {
        Access::uniform(Permissions::ALL)
    }
}

impl Access {
    pub fn uniform(permissions: Permissions) -> Access {
        Access { permissions, rules: Vec::new() }
    }

    /// `rules` in any order; a later rule for the same path replaces an earlier one, and a rule for the root
    /// replaces `permissions`.
    pub fn new(permissions: Permissions, rules: impl IntoIterator<Item = (VirtualPath, Permissions)>) -> Access {
        let mut access = Access::uniform(permissions);
        for (path, set) in rules {
            if path.is_root() {
                access.permissions = set;
                continue;
            }
            match access.rules.binary_search_by(|(p, _)| p.as_str().cmp(path.as_str())) {
                Ok(i) => access.rules[i].1 = set,
                Err(i) => access.rules.insert(i, (path, set)),
            }
        }
        access
    }

    /// The per-path rules, sorted by path.
    pub fn rules(&self) -> &[(VirtualPath, Permissions)] {
        &self.rules
    }

    /// What the user may do at `path`.
    pub fn at(&self, path: &VirtualPath) -> Permissions {
        self.rules
            .iter()
            .filter(|(rule, _)| covers(rule, path))
            .max_by_key(|(rule, _)| rule.as_str().len())
            .map_or(self.permissions, |(_, set)| *set)
    }
}

/// Whether `rule` is `path` or one of its parents, segment by segment.
fn covers(rule: &VirtualPath, path: &VirtualPath) -> bool {
    let mut path = path.segments();
    rule.segments().all(|segment| path.next() == Some(segment))
}

impl fmt::Display for Access {
    /// `all`, or `list,read; /in=list,read,write`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.permissions)?;
        for (path, set) in &self.rules {
            write!(f, "; {path}={set}")?;
        }
        Ok(())
    }
}

/// An IPv4 or IPv6 address block (`203.0.113.0/24`, `2001:db8::/32`); a bare address is a block of one.
/// An IPv4-mapped IPv6 block (`::ffff:192.0.2.0/120`) is kept as the IPv4 block it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Network {
    addr: IpAddr,
    len: u8,
}

impl Network {
    /// Whether `ip` lies in the block. An IPv4-mapped IPv6 client address (`::ffff:192.0.2.7`, as a
    /// dual-stack listener reports IPv4 clients) is matched as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(u32::from(net).into(), u32::from(ip).into(), 32, self.len),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(u128::from(net), u128::from(ip), 128, self.len),
            _ => false,
        }
    }
}

/// Whether the first `len` of `width` bits of `a` and `b` agree.
fn prefix_eq(a: u128, b: u128, width: u8, len: u8) -> bool {
    len == 0 || (a ^ b) >> (width - len) == 0
}

impl TryFrom<String> for Network {
    type Error = AccessError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Network> for String {
    fn from(network: Network) -> String {
        network.to_string()
    }
}

impl FromStr for Network {
    type Err = AccessError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let bad = || AccessError::BadNetwork(text.to_owned());
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => {
                // Digits only: `u8::from_str` would take `+8`.
                if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                (addr.parse::<IpAddr>().map_err(|_| bad())?, Some(len.parse::<u8>().map_err(|_| bad())?))
            }
            None => (text.parse::<IpAddr>().map_err(|_| bad())?, None),
        };
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let len = len.unwrap_or(width);
        if len > width {
            return Err(bad());
        }
        let (addr, len) = match addr {
            IpAddr::V6(v6) if len >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), len - 96),
                None => (addr, len),
            },
            _ => (addr, len),
        };
        let network = Network { addr: masked(addr, len), len };
        if network.addr != addr {
            return Err(AccessError::HostBits { given: text.to_owned(), len, meant: network.to_string() });
        }
        Ok(network)
    }
}

/// `addr` with every bit past the first `len` cleared.
fn masked(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Where logins may come from: empty means anywhere. Text form: blocks joined by `,` (empty: anywhere).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<Network>);

impl Networks {
    /// Most blocks one tenant or user may list; more is a sign of a mistake, and every login checks them.
    pub const MAX: usize = 64;

    /// Duplicates are dropped, the order kept.
    pub fn new(networks: impl IntoIterator<Item = Network>) -> Networks {
        let mut out: Vec<Network> = Vec::new();
        for network in networks {
            if !out.contains(&network) {
                out.push(network);
            }
        }
        Networks(out)
    }

    pub fn anywhere() -> Networks {
        Networks(Vec::new())
    }

    pub fn is_anywhere(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[Network] {
        &self.0
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|n| n.contains(ip))
    }
}

impl fmt::Display for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.iter().map(Network::to_string).collect::<Vec<_>>().join(","))
    }
}

impl FromStr for Networks {
    type Err = AccessError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts = text.split(',').map(str::trim).filter(|p| !p.is_empty());
        Ok(Networks::new(parts.map(str::parse).collect::<Result<Vec<Network>, _>>()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> VirtualPath {
        VirtualPath::root().resolve(p).unwrap()
    }

    #[test]
    fn permissions_parse_and_print() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("all", Ok("all")),
            ("ALL", Ok("all")),
            ("none", Ok("none")),
            ("list,read", Ok("list,read")),
            ("read,list", Ok("list,read")),
            (" Read , LIST ", Ok("list,read")),
            ("list,read,write,delete,rename,mkdir", Ok("all")),
            ("mkdir,mkdir", Ok("mkdir")),
            ("write", Ok("write")),
            ("", Err("")),
            ("list,", Err("")),
            ("wirte", Err("wirte")),
            ("all,list", Err("all")),
            ("none,read", Err("none")),
        ];
        for &(text, expected) in cases {
            let parsed = text.parse::<Permissions>();
            match expected {
                Ok(printed) => assert_eq!(parsed.map(|p| p.to_string()).as_deref(), Ok(printed), "{text:?}"),
                Err(name) => assert_eq!(parsed, Err(AccessError::UnknownPermission(name.into())), "{text:?}"),
            }
        }
        let read_list: Permissions = "list,read".parse().unwrap();
        let needs = Permissions::of(&[Permission::Rename, Permission::Write, Permission::Read]);
        assert_eq!(needs.missing_from(read_list).to_string(), "write,rename");
        assert!(needs.missing_from(Permissions::ALL).is_empty());
    }

    #[test]
    fn the_longest_matching_rule_wins() {
        let p = |s: &str| s.parse::<Permissions>().unwrap();
        let access = Access::new(
            p("list,read"),
            [(path("/in"), p("list,write")), (path("/in/archive"), p("none")), (path("/out/x"), p("read"))],
        );
        let cases = [
            ("/", "list,read"),
            ("/a.txt", "list,read"),
            ("/in", "list,write"),
            ("/in/new.txt", "list,write"),
            ("/in/archive", "none"),
            ("/in/archive/old.txt", "none"),
            ("/in/archived", "list,write"),
            ("/inbox", "list,read"),
            ("/out", "list,read"),
            ("/out/x", "read"),
            ("/out/x/y", "read"),
            ("/out/xy", "list,read"),
        ];
        for (at, expected) in cases {
            assert_eq!(access.at(&path(at)).to_string(), expected, "{at}");
        }
        assert_eq!(access.to_string(), "list,read; /in=list,write; /in/archive=none; /out/x=read");
        let replaced =
            Access::new(p("all"), [(path("/"), p("read")), (path("/a"), p("list")), (path("/a"), p("none"))]);
        assert_eq!(replaced.to_string(), "read; /a=none");
        assert_eq!(Access::default().at(&path("/any")), Permissions::ALL);
    }

    #[test]
    fn networks_parse_to_their_canonical_form() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("203.0.113.0/24", Ok("203.0.113.0/24")),
            ("203.0.113.7", Ok("203.0.113.7/32")),
            (" 10.0.0.0/8 ", Ok("10.0.0.0/8")),
            ("0.0.0.0/0", Ok("0.0.0.0/0")),
            ("2001:db8::/32", Ok("2001:db8::/32")),
            ("2001:DB8::1", Ok("2001:db8::1/128")),
            ("::/0", Ok("::/0")),
            ("::ffff:192.0.2.0/120", Ok("192.0.2.0/24")),
            ("::ffff:192.0.2.7", Ok("192.0.2.7/32")),
            ("203.0.113.7/24", Err("did you mean 203.0.113.0/24?")),
            ("2001:db8::1/32", Err("did you mean 2001:db8::/32?")),
            ("10.0.0.0/33", Err("must be an address")),
            ("2001:db8::/129", Err("must be an address")),
            ("10.0.0.0/", Err("must be an address")),
            ("10.0.0.0/+8", Err("must be an address")),
            ("10.0.0/8", Err("must be an address")),
            ("example.com", Err("must be an address")),
            ("", Err("must be an address")),
        ];
        for &(text, expected) in cases {
            let parsed = text.parse::<Network>();
            match expected {
                Ok(printed) => assert_eq!(parsed.map(|n| n.to_string()).as_deref(), Ok(printed), "{text:?}"),
                Err(why) => {
                    let error = parsed.expect_err(text).to_string();
                    assert!(error.contains(why), "{text:?}: {error}");
                }
            }
        }
    }

    #[test]
    fn networks_contain_their_addresses_ipv4_mapped_as_ipv4() {
        let cases = [
            ("203.0.113.0/24", "203.0.113.0", true),
            ("203.0.113.0/24", "203.0.113.255", true),
            ("203.0.113.0/24", "203.0.114.0", false),
            ("203.0.113.0/24", "::ffff:203.0.113.9", true),
            ("203.0.113.0/24", "::ffff:203.0.114.9", false),
            ("127.0.0.2/32", "127.0.0.2", true),
            ("127.0.0.2/32", "127.0.0.1", false),
            ("0.0.0.0/0", "198.51.100.1", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("2001:db8::/32", "203.0.113.1", false),
            ("::/0", "2001:db8::1", true),
            ("::/0", "::ffff:203.0.113.1", false),
            ("::ffff:203.0.113.0/120", "203.0.113.5", true),
            ("2001:db8::1", "2001:db8::1", true),
            ("2001:db8::1", "2001:db8::2", false),
            ("10.1.2.2/31", "10.1.2.3", true),
            ("10.1.2.2/31", "10.1.2.4", false),
        ];
        for (network, ip, inside) in cases {
            let network: Network = network.parse().unwrap();
            assert_eq!(network.contains(ip.parse().unwrap()), inside, "{network} contains {ip}");
        }
    }

    #[test]
    fn an_empty_network_list_allows_anywhere() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let anywhere: Networks = "".parse().unwrap();
        assert!(anywhere.is_anywhere() && anywhere.allows(ip("192.0.2.1")) && anywhere.allows(ip("2001:db8::1")));
        let some: Networks = "10.0.0.0/8, 2001:db8::/32,10.0.0.0/8".parse().unwrap();
        assert_eq!(some.to_string(), "10.0.0.0/8,2001:db8::/32");
        assert!(some.allows(ip("10.9.9.9")) && some.allows(ip("2001:db8::5")) && !some.allows(ip("192.0.2.1")));
        assert!("10.0.0.0/8,bogus".parse::<Networks>().is_err());
    }
}
