//! Local service discovery (BEP 14): the `BT-SEARCH` multicast announce, encoded and
//! parsed without I/O.
//!
//! ```text
//! BT-SEARCH * HTTP/1.1\r\n
//! Host: 239.192.152.143:6771\r\n
//! Port: 6881\r\n
//! Infohash: 0123456789abcdef0123456789abcdef01234567\r\n   (one or more)
//! cookie: 1f2e3d4c\r\n                                     (to recognise our own)
//! \r\n\r\n
//! ```
//!
//! The driver (lt-session) joins the group on UDP port 6771, sends an announce per torrent
//! every few minutes and hands received datagrams to [`parse`]. A datagram is bounded by
//! [`MAX_DATAGRAM`] and its info-hashes by [`MAX_INFO_HASHES`]; anything else is an error.

use std::net::{Ipv4Addr, Ipv6Addr};

use lt_core::Sha1Hash;

use crate::Error;

/// BEP 14's IPv4 multicast group.
pub const LSD_GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 192, 152, 143);
/// BEP 14's IPv6 multicast group.
pub const LSD_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0xefc0, 0x988f);
/// BEP 14's UDP port.
pub const LSD_PORT: u16 = 6771;
/// Largest announce accepted.
pub const MAX_DATAGRAM: usize = 1400;
/// Most info-hashes read from one announce.
pub const MAX_INFO_HASHES: usize = 32;

/// A parsed announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LsdAnnounce {
    /// The sender's BitTorrent listen port.
    pub port: u16,
    /// The torrents it announces.
    pub info_hashes: Vec<Sha1Hash>,
    /// Its cookie, if any (ours means the datagram is our own, looped back).
    pub cookie: Option<String>,
}

/// Encodes an announce of `info_hashes` (at most [`MAX_INFO_HASHES`] are written) for
/// `port`, sent to `host` (`239.192.152.143:6771` or `[ff15::efc0:988f]:6771`).
#[must_use]
pub fn encode(host: &str, port: u16, info_hashes: &[Sha1Hash], cookie: &str) -> Vec<u8> {
    let mut s = format!("BT-SEARCH * HTTP/1.1\r\nHost: {host}\r\nPort: {port}\r\n");
    for h in info_hashes.iter().take(MAX_INFO_HASHES) {
        s.push_str("Infohash: ");
        s.push_str(&h.to_hex());
        s.push_str("\r\n");
    }
    s.push_str("cookie: ");
    s.push_str(cookie);
    s.push_str("\r\n\r\n\r\n");
    s.into_bytes()
}

/// Parses an announce.
///
/// # Errors
/// [`Error::MalformedPacket`] for anything that is not a `BT-SEARCH` announce with a port
/// and at least one valid info-hash, or is longer than [`MAX_DATAGRAM`].
pub fn parse(buf: &[u8]) -> Result<LsdAnnounce, Error> {
    if buf.len() > MAX_DATAGRAM {
        return Err(Error::MalformedPacket);
    }
    let text = std::str::from_utf8(buf).map_err(|_| Error::MalformedPacket)?;
    let mut lines = text.split("\r\n");
    if lines.next() != Some("BT-SEARCH * HTTP/1.1") {
        return Err(Error::MalformedPacket);
    }
    let mut port = None;
    let mut info_hashes = Vec::new();
    let mut cookie = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "port" => port = value.parse::<u16>().ok().filter(|&p| p != 0),
            "infohash" => {
                if info_hashes.len() < MAX_INFO_HASHES
                    && let Ok(h) = Sha1Hash::from_hex(value)
                {
                    info_hashes.push(h);
                }
            }
            "cookie" => cookie = Some(value.chars().take(64).collect()),
            _ => {}
        }
    }
    let port = port.ok_or(Error::MalformedPacket)?;
    if info_hashes.is_empty() {
        return Err(Error::MalformedPacket);
    }
    Ok(LsdAnnounce {
        port,
        info_hashes,
        cookie,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let a = Sha1Hash::new([1; 20]);
        let b = Sha1Hash::new([0xab; 20]);
        let msg = encode("239.192.152.143:6771", 6881, &[a, b], "c00k1e");
        let got = parse(&msg).unwrap();
        assert_eq!(got.port, 6881);
        assert_eq!(got.info_hashes, vec![a, b]);
        assert_eq!(got.cookie.as_deref(), Some("c00k1e"));
        assert!(parse(b"M-SEARCH * HTTP/1.1\r\n\r\n").is_err());
        assert!(parse(b"BT-SEARCH * HTTP/1.1\r\nPort: 0\r\nInfohash: 00\r\n\r\n").is_err());
        assert!(parse(&vec![b'a'; MAX_DATAGRAM + 1]).is_err());
        // libtorrent writes upper-case hex and lower-case header names sometimes.
        let odd = format!(
            "BT-SEARCH * HTTP/1.1\r\nhost: x\r\nport: 7000\r\ninfohash: {}\r\n\r\n",
            a.to_hex().to_uppercase()
        );
        assert_eq!(parse(odd.as_bytes()).unwrap().info_hashes, vec![a]);
    }

    #[test]
    fn never_panics_on_junk() {
        for len in 0..200 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = parse(&junk);
        }
    }
}
