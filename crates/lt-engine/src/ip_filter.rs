//! The IP filter (the manual's `ip_filter`): address ranges with access flags, for IPv4
//! and IPv6; and the port filter (`port_filter`): port ranges that outgoing connections
//! are not made to. The last rule added wins where ranges overlap. A v4-mapped IPv6
//! address (`::ffff:a.b.c.d`) is its IPv4 address, in lookups and in rules alike, so an
//! IPv6 range covers only the other IPv6 addresses.

use std::net::IpAddr;

/// Flags of a range. `BLOCKED` refuses connections to and from its addresses.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct IpAccess(pub u32);

impl IpAccess {
    /// Connections are refused.
    pub const BLOCKED: Self = Self(1);

    /// Whether the blocked flag is set.
    #[must_use]
    pub const fn is_blocked(self) -> bool {
        self.0 & Self::BLOCKED.0 != 0
    }
}

/// Address ranges and their flags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpFilter {
    /// `(first, last, flags)`, in the order added.
    rules: Vec<(IpAddr, IpAddr, IpAccess)>,
}

/// Most rules kept; a filter loaded from a list of millions would be a different structure.
pub const MAX_IP_FILTER_RULES: usize = 100_000;

impl IpFilter {
    /// An empty filter (everything allowed).
    #[must_use]
    pub const fn new() -> Self {
        Self { rules: Vec::new() }
    }

    /// Gives `first..=last` the flags `access` (the manual's `add_rule`). Ranges mixing
    /// IPv4 and IPv6, or with `first > last`, are ignored; returns whether it was added.
    /// A v4-mapped end counts as IPv4, as in [`access`](Self::access).
    pub fn add_rule(&mut self, first: IpAddr, last: IpAddr, access: IpAccess) -> bool {
        // Lookups see a v4-mapped address as IPv4, so a range kept in that form would
        // never match, not even the address it names.
        let (first, last) = (first.to_canonical(), last.to_canonical());
        if first.is_ipv4() != last.is_ipv4()
            || first > last
            || self.rules.len() >= MAX_IP_FILTER_RULES
        {
            return false;
        }
        self.rules.push((first, last, access));
        true
    }

    /// The flags of `ip` (the manual's `access`).
    #[must_use]
    pub fn access(&self, ip: IpAddr) -> IpAccess {
        let ip = ip.to_canonical();
        self.rules
            .iter()
            .rev()
            .find(|(a, b, _)| *a <= ip && ip <= *b && a.is_ipv4() == ip.is_ipv4())
            .map_or_else(IpAccess::default, |r| r.2)
    }

    /// Whether the filter has no rules.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Port ranges with access flags (the manual's `port_filter`): no outgoing connection is
/// made to a peer whose port is `BLOCKED`. Incoming connections are not affected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortFilter {
    /// `(first, last, flags)`, in the order added.
    rules: Vec<(u16, u16, IpAccess)>,
}

impl PortFilter {
    /// An empty filter (every port allowed).
    #[must_use]
    pub const fn new() -> Self {
        Self { rules: Vec::new() }
    }

    /// Gives ports `first..=last` the flags `access`; a range with `first > last`, or past
    /// [`MAX_IP_FILTER_RULES`], is ignored. Returns whether it was added.
    pub fn add_rule(&mut self, first: u16, last: u16, access: IpAccess) -> bool {
        if first > last || self.rules.len() >= MAX_IP_FILTER_RULES {
            return false;
        }
        self.rules.push((first, last, access));
        true
    }

    /// The flags of `port`.
    #[must_use]
    pub fn access(&self, port: u16) -> IpAccess {
        self.rules
            .iter()
            .rev()
            .find(|&&(a, b, _)| a <= port && port <= b)
            .map_or_else(IpAccess::default, |r| r.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_last_rule_wins_v4_and_v6() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut f = IpFilter::new();
        assert!(f.add_rule(ip("10.0.0.0"), ip("10.255.255.255"), IpAccess::BLOCKED));
        assert!(f.add_rule(ip("10.1.0.0"), ip("10.1.255.255"), IpAccess(0)));
        assert!(f.add_rule(ip("2001:db8::"), ip("2001:db8::ffff"), IpAccess::BLOCKED));
        assert!(!f.add_rule(ip("10.0.0.0"), ip("::1"), IpAccess::BLOCKED));
        assert!(!f.add_rule(ip("10.0.0.9"), ip("10.0.0.1"), IpAccess::BLOCKED));
        assert!(f.access(ip("10.2.3.4")).is_blocked());
        assert!(!f.access(ip("10.1.3.4")).is_blocked());
        assert!(!f.access(ip("11.0.0.1")).is_blocked());
        assert!(f.access(ip("2001:db8::12")).is_blocked());
        assert!(!f.access(ip("2001:db9::12")).is_blocked());
        assert!(
            f.access(ip("::ffff:10.9.9.9")).is_blocked(),
            "v4-mapped addresses count as v4"
        );
    }

    #[test]
    fn a_range_of_v4_mapped_addresses_is_an_ipv4_range() {
        // Found by fuzz/ip_filter: lookups took ::ffff:1.2.3.4 as 1.2.3.4, so a rule
        // written in the v4-mapped form never matched, not even the address it names.
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut f = IpFilter::new();
        assert!(f.add_rule(
            ip("::ffff:1.2.3.0"),
            ip("::ffff:1.2.3.255"),
            IpAccess::BLOCKED
        ));
        assert!(f.access(ip("::ffff:1.2.3.4")).is_blocked());
        assert!(f.access(ip("1.2.3.4")).is_blocked());
        assert!(!f.access(ip("1.2.4.0")).is_blocked());
        // One end in each form is an IPv4 range too.
        assert!(f.add_rule(ip("9.0.0.0"), ip("::ffff:9.0.0.9"), IpAccess::BLOCKED));
        assert!(f.access(ip("9.0.0.5")).is_blocked());
        // Blocking all of IPv6 leaves IPv4 alone, v4-mapped or not.
        let mut f = IpFilter::new();
        assert!(f.add_rule(
            ip("::"),
            ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            IpAccess::BLOCKED
        ));
        assert!(f.access(ip("2001:db8::1")).is_blocked());
        assert!(!f.access(ip("8.8.8.8")).is_blocked());
        assert!(!f.access(ip("::ffff:8.8.8.8")).is_blocked());
    }

    #[test]
    fn port_ranges_last_rule_wins() {
        let mut f = PortFilter::new();
        assert!(!f.access(6881).is_blocked());
        assert!(f.add_rule(0, 1023, IpAccess::BLOCKED));
        assert!(f.add_rule(80, 80, IpAccess::default()));
        assert!(!f.add_rule(10, 9, IpAccess::BLOCKED));
        assert!(f.access(0).is_blocked() && f.access(1023).is_blocked());
        assert!(!f.access(80).is_blocked() && !f.access(1024).is_blocked());
    }
}
