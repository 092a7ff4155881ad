//! Compact peer addresses: 4 or 16 address bytes followed by a big-endian port.
//!
//! The same 6-byte (IPv4, BEP 23) and 18-byte (IPv6, BEP 7) forms appear in tracker
//! replies, PEX messages (BEP 11), resume data and the DHT's `values` (BEP 5), so they live
//! here once.
//!
//! ```
//! use std::net::SocketAddr;
//! use lt_core::compact;
//!
//! let addr: SocketAddr = "127.0.0.1:6881".parse().unwrap();
//! let bytes = compact::encode(addr);
//! assert_eq!(bytes.as_ref(), &[127, 0, 0, 1, 0x1a, 0xe1]);
//! assert_eq!(compact::decode(bytes.as_ref()), Some(addr));
//! let list = [bytes.as_ref(), bytes.as_ref()].concat();
//! assert_eq!(compact::iter_v4(&list).count(), 2);
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Length of a compact IPv4 address and port.
pub const V4_LEN: usize = 6;
/// Length of a compact IPv6 address and port.
pub const V6_LEN: usize = 18;

/// The compact form of one address: 6 or 18 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compact {
    bytes: [u8; V6_LEN],
    len: usize,
}

impl AsRef<[u8]> for Compact {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The compact form of `addr` (6 bytes for IPv4, 18 for IPv6).
#[must_use]
pub fn encode(addr: SocketAddr) -> Compact {
    let mut bytes = [0u8; V6_LEN];
    let len = match addr.ip() {
        IpAddr::V4(ip) => {
            bytes[..4].copy_from_slice(&ip.octets());
            4
        }
        IpAddr::V6(ip) => {
            bytes[..16].copy_from_slice(&ip.octets());
            16
        }
    };
    bytes[len..len + 2].copy_from_slice(&addr.port().to_be_bytes());
    Compact {
        bytes,
        len: len + 2,
    }
}

/// Decodes one 6- or 18-byte compact address; `None` for any other length.
#[must_use]
pub fn decode(chunk: &[u8]) -> Option<SocketAddr> {
    let (ip, port): (IpAddr, &[u8]) = match chunk.len() {
        V4_LEN => {
            let octets: [u8; 4] = chunk.get(..4)?.try_into().ok()?;
            (Ipv4Addr::from(octets).into(), chunk.get(4..)?)
        }
        V6_LEN => {
            let octets: [u8; 16] = chunk.get(..16)?.try_into().ok()?;
            (Ipv6Addr::from(octets).into(), chunk.get(16..)?)
        }
        _ => return None,
    };
    Some(SocketAddr::new(
        ip,
        u16::from_be_bytes(port.try_into().ok()?),
    ))
}

/// The IPv4 addresses of a compact list; a trailing partial entry is ignored (callers that
/// must reject it check `buf.len() % V4_LEN`).
pub fn iter_v4(buf: &[u8]) -> impl Iterator<Item = SocketAddr> + '_ {
    buf.chunks_exact(V4_LEN).filter_map(decode)
}

/// The IPv6 addresses of a compact list, like [`iter_v4`].
pub fn iter_v6(buf: &[u8]) -> impl Iterator<Item = SocketAddr> + '_ {
    buf.chunks_exact(V6_LEN).filter_map(decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_both_families() {
        for s in ["1.2.3.4:65535", "[2001:db8::1]:1", "0.0.0.0:0"] {
            let addr: SocketAddr = s.parse().unwrap();
            let c = encode(addr);
            assert_eq!(
                c.as_ref().len(),
                if addr.is_ipv4() { V4_LEN } else { V6_LEN }
            );
            assert_eq!(decode(c.as_ref()), Some(addr));
        }
    }

    #[test]
    fn wrong_lengths_and_partial_entries() {
        assert_eq!(decode(&[1, 2, 3, 4, 5]), None);
        assert_eq!(decode(&[0; 7]), None);
        assert_eq!(iter_v4(&[1, 2, 3, 4, 0, 80, 9]).count(), 1);
        assert_eq!(iter_v6(&[0; 17]).count(), 0);
    }
}
