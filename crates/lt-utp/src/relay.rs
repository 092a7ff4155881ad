//! Datagrams through a SOCKS5 UDP relay (RFC 1928 section 7, the `UDP ASSOCIATE` command):
//! each datagram to the relay starts with a header naming its destination, and each one
//! from the relay with a header naming its source. The tokio driver uses it when
//! [`SocketConfig::relay`](crate::tokio::SocketConfig::relay) is set, so that uTP and the
//! DHT go through a proxy; the session uses it for UDP trackers.
//!
//! ```text
//! +-----+------+------+----------+----------+----------+
//! | RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
//! +-----+------+------+----------+----------+----------+
//! |  2  |  1   |  1   | Variable |    2     | Variable |
//! ```
//!
//! Fragments (`FRAG` other than 0) are not reassembled: such datagrams are dropped, as
//! the RFC allows.

use std::net::SocketAddr;

/// The longest header: IPv6 (4 + 16 + 2 bytes); a name may be longer (up to 4 + 1 + 255 +
/// 2).
pub const MAX_ADDR_HEADER: usize = 22;

/// Appends the header for a datagram to `dst`.
pub fn encode_header(dst: SocketAddr, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0, 0]);
    match dst {
        SocketAddr::V4(a) => {
            out.push(1);
            out.extend_from_slice(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
        }
    }
    out.extend_from_slice(&dst.port().to_be_bytes());
}

/// Appends the header for a datagram to the host `name` (resolved by the proxy) at `port`.
/// Returns `false`, appending nothing, when the name is empty or longer than 255 bytes.
pub fn encode_name_header(name: &str, port: u16, out: &mut Vec<u8>) -> bool {
    let Ok(len) = u8::try_from(name.len()) else {
        return false;
    };
    if len == 0 {
        return false;
    }
    out.extend_from_slice(&[0, 0, 0, 3, len]);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&port.to_be_bytes());
    true
}

/// The source and payload of a datagram from the relay, or `None` when it is not one
/// (too short, a fragment, a reserved field set, an unknown address type, or a name: the
/// relay reports sources as addresses).
#[must_use]
pub fn decode(datagram: &[u8]) -> Option<(SocketAddr, &[u8])> {
    let (head, rest) = datagram.split_at_checked(4)?;
    if head[0] != 0 || head[1] != 0 || head[2] != 0 {
        return None;
    }
    match head[3] {
        1 => {
            let (addr, rest) = rest.split_at_checked(6)?;
            let ip = [addr[0], addr[1], addr[2], addr[3]];
            let port = u16::from_be_bytes([addr[4], addr[5]]);
            Some((SocketAddr::from((ip, port)), rest))
        }
        4 => {
            let (addr, rest) = rest.split_at_checked(18)?;
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&addr[..16]);
            let port = u16::from_be_bytes([addr[16], addr[17]]);
            Some((SocketAddr::from((ip, port)), rest))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_families() {
        for dst in ["10.1.2.3:6881", "[2001:db8::7]:51413"] {
            let dst: SocketAddr = dst.parse().unwrap_or_else(|e| panic!("{e}"));
            let mut d = Vec::new();
            encode_header(dst, &mut d);
            assert!(d.len() <= MAX_ADDR_HEADER);
            d.extend_from_slice(b"payload");
            assert_eq!(decode(&d), Some((dst, &b"payload"[..])));
        }
    }

    #[test]
    fn names_are_bounded() {
        let mut d = Vec::new();
        assert!(encode_name_header("tracker.example", 80, &mut d));
        assert_eq!(&d[..5], &[0, 0, 0, 3, 15]);
        assert_eq!(&d[d.len() - 2..], &[0, 80]);
        let mut e = Vec::new();
        assert!(!encode_name_header(&"x".repeat(256), 80, &mut e));
        assert!(!encode_name_header("", 80, &mut e));
        assert!(e.is_empty());
        // A name as a source is not accepted.
        assert_eq!(decode(&d), None);
    }

    #[test]
    fn hostile_datagrams_are_refused() {
        let mut ok = Vec::new();
        encode_header(
            "1.2.3.4:5".parse().unwrap_or_else(|e| panic!("{e}")),
            &mut ok,
        );
        for cut in 0..ok.len() {
            assert_eq!(decode(&ok[..cut]), None, "{cut} bytes");
        }
        assert!(decode(&ok).is_some_and(|(_, p)| p.is_empty()));
        for (i, v) in [(0, 1), (1, 1), (2, 1), (3, 9)] {
            let mut bad = ok.clone();
            bad[i] = v;
            assert_eq!(decode(&bad), None, "byte {i} = {v}");
        }
    }
}
