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

/// Encodes an announce of `info_hashes` for `port`, sent to `host` (`239.192.152.143:6771`
/// or `[ff15::efc0:988f]:6771`). The first of them are written, at most
/// [`MAX_INFO_HASHES`] and no more than fit in [`MAX_DATAGRAM`] bytes (at least 24 with one
/// of those hosts and a cookie of up to 16 characters).
#[must_use]
pub fn encode(host: &str, port: u16, info_hashes: &[Sha1Hash], cookie: &str) -> Vec<u8> {
    /// `Infohash: ` and 40 hex digits and a line break.
    const HASH_LINE: usize = 52;
    let mut s = format!("BT-SEARCH * HTTP/1.1\r\nHost: {host}\r\nPort: {port}\r\n");
    let tail = format!("cookie: {cookie}\r\n\r\n\r\n");
    for h in info_hashes.iter().take(MAX_INFO_HASHES) {
        // parse refuses a datagram over MAX_DATAGRAM, and so may other clients.
        if s.len() + HASH_LINE + tail.len() > MAX_DATAGRAM {
            break;
        }
        s.push_str("Infohash: ");
        s.push_str(&h.to_hex());
        s.push_str("\r\n");
    }
    s.push_str(&tail);
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
            "cookie" => {
                // Trimmed again after the cut, so a cookie parses the same when sent again.
                let cut: String = value.chars().take(64).collect();
                cookie = Some(cut.trim_end().to_owned());
            }
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
    fn an_announce_of_many_hashes_fits_the_datagram_limit() {
        // Found by fuzz/lsd_message: 32 hashes made 1,700 bytes, which parse refuses.
        let hashes: Vec<Sha1Hash> = (0..40).map(|i| Sha1Hash::new([i; 20])).collect();
        for host in ["239.192.152.143:6771", "[ff15::efc0:988f]:6771"] {
            let msg = encode(host, 65535, &hashes, "0123456789abcdef");
            assert!(msg.len() <= MAX_DATAGRAM, "{} bytes", msg.len());
            let got = parse(&msg).unwrap();
            assert!(got.info_hashes.len() >= 24, "{}", got.info_hashes.len());
            assert_eq!(got.info_hashes, hashes[..got.info_hashes.len()]);
        }
    }

    #[test]
    fn a_cut_cookie_is_trimmed() {
        // Found by fuzz/lsd_message: the 64-character cut could end in a space, which the
        // next parse of the same cookie trims.
        let long = format!("{} {}", "a".repeat(63), "b".repeat(9));
        let a = Sha1Hash::new([1; 20]);
        let got = parse(&encode("h", 1, &[a], &long)).unwrap();
        assert_eq!(got.cookie.as_deref(), Some("a".repeat(63).as_str()));
        let again = parse(&encode("h", 1, &[a], got.cookie.as_deref().unwrap())).unwrap();
        assert_eq!(again, got);
    }

    #[test]
    fn never_panics_on_junk() {
        for len in 0..200 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let _ = parse(&junk);
        }
    }
}
