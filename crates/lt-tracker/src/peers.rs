//! Peer lists: BEP 23 compact (6 bytes per IPv4 peer), BEP 7 `peers6` (18 bytes per IPv6
//! peer) and the original BEP 3 list of dictionaries.

use std::net::SocketAddr;

use bytes::BufMut;
use lt_core::PeerId;

use crate::Error;

/// A peer returned by a tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The peer id, when the tracker sent the non-compact form with one.
    pub peer_id: Option<PeerId>,
}

impl Peer {
    /// A peer known by address only.
    pub const fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            peer_id: None,
        }
    }
}

/// Size of one compact IPv4 peer (BEP 23).
pub const COMPACT_V4_LEN: usize = lt_core::compact::V4_LEN;
/// Size of one compact IPv6 peer (BEP 7).
pub const COMPACT_V6_LEN: usize = lt_core::compact::V6_LEN;

/// Decodes a compact IPv4 peer list (BEP 23), appending at most `max - out.len()` peers.
///
/// A length that is not a multiple of 6 is an error ([`Error::TrailingPeerBytes`]); peers
/// with port 0 are skipped, since nobody can connect to them.
pub fn decode_compact_v4(buf: &[u8], max: usize, out: &mut Vec<Peer>) -> Result<(), Error> {
    decode_compact(buf, COMPACT_V4_LEN, max, out)
}

/// Decodes a compact IPv6 peer list (BEP 7 `peers6`), like [`decode_compact_v4`].
pub fn decode_compact_v6(buf: &[u8], max: usize, out: &mut Vec<Peer>) -> Result<(), Error> {
    decode_compact(buf, COMPACT_V6_LEN, max, out)
}

/// Appends the compact form of `addr` (6 or 18 bytes, by address family).
pub fn encode_compact(addr: SocketAddr, out: &mut impl BufMut) {
    out.put_slice(lt_core::compact::encode(addr).as_ref());
}

fn decode_compact(buf: &[u8], entry: usize, max: usize, out: &mut Vec<Peer>) -> Result<(), Error> {
    if !buf.len().is_multiple_of(entry) {
        return Err(Error::TrailingPeerBytes {
            len: buf.len(),
            entry,
        });
    }
    for chunk in buf.chunks_exact(entry) {
        if out.len() >= max {
            break;
        }
        let Some(addr) = compact_addr(chunk) else {
            continue;
        };
        if addr.port() == 0 {
            continue;
        }
        out.push(Peer::new(addr));
    }
    Ok(())
}

/// Parses one 6- or 18-byte compact address.
pub(crate) fn compact_addr(chunk: &[u8]) -> Option<SocketAddr> {
    lt_core::compact::decode(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_round_trip_and_port_zero_skipped() {
        let mut buf = Vec::new();
        encode_compact("1.2.3.4:6881".parse().unwrap(), &mut buf);
        encode_compact("5.6.7.8:0".parse().unwrap(), &mut buf);
        let mut out = Vec::new();
        decode_compact_v4(&buf, 10, &mut out).unwrap();
        assert_eq!(out, vec![Peer::new("1.2.3.4:6881".parse().unwrap())]);
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut out = Vec::new();
        assert_eq!(
            decode_compact_v4(&[1, 2, 3, 4, 0, 1, 9], 10, &mut out),
            Err(Error::TrailingPeerBytes { len: 7, entry: 6 })
        );
        assert!(decode_compact_v6(&[0; 19], 10, &mut out).is_err());
    }

    #[test]
    fn cap_respected() {
        let buf = [1u8; 60];
        let mut out = Vec::new();
        decode_compact_v4(&buf, 3, &mut out).unwrap();
        assert_eq!(out.len(), 3);
    }
}
