//! Finding the default gateway for NAT-PMP/PCP from Linux's `/proc/net/route`.
//!
//! Only the parsing is here (pure; the driver reads the file). RFC 6886 section 3.1: the
//! client sends to its default gateway.

use std::net::Ipv4Addr;

const RTF_UP: u32 = 0x1;
const RTF_GATEWAY: u32 = 0x2;
/// Lines of the file considered (a routing table longer than this is not searched further).
const MAX_ROUTES: usize = 4096;

/// The default IPv4 route's gateway and interface name in the text of `/proc/net/route`: the
/// up, gateway-flagged route to 0.0.0.0/0 with the lowest metric.
#[must_use]
pub fn default_gateway(proc_net_route: &str) -> Option<(Ipv4Addr, String)> {
    proc_net_route
        .lines()
        .skip(1)
        .take(MAX_ROUTES)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, gw, flags, metric, mask) = (
                f.first()?,
                f.get(1)?,
                f.get(2)?,
                f.get(3)?,
                f.get(6)?,
                f.get(7)?,
            );
            let flags = u32::from_str_radix(flags, 16).ok()?;
            if *dest != "00000000"
                || *mask != "00000000"
                || flags & (RTF_UP | RTF_GATEWAY) != (RTF_UP | RTF_GATEWAY)
            {
                return None;
            }
            // The kernel prints the address as a host-order u32 of network-order bytes.
            let gw = Ipv4Addr::from(u32::from_str_radix(gw, 16).ok()?.to_ne_bytes());
            let metric: u32 = metric.parse().ok()?;
            Some((metric, gw, (*iface).to_owned()))
        })
        .min_by_key(|(metric, ..)| *metric)
        .map(|(_, gw, iface)| (gw, iface))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_endian = "little")]
    fn finds_default_route() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            host0\t004DA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
            host0\t00000000\t014DA8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
        assert_eq!(
            default_gateway(table),
            Some((Ipv4Addr::new(192, 168, 77, 1), "host0".to_owned()))
        );
        assert_eq!(default_gateway("Iface\n"), None);
        assert_eq!(default_gateway("garbage\nx y z\n\u{0}"), None);
    }
}
