//! The BEP 15 UDP tracker packet codec (with BEP 41 URL data).
//!
//! All integers are big-endian. Requests carry a 64-bit connection id (the magic
//! [`PROTOCOL_ID`] for `connect`), a 32-bit action and a 32-bit transaction id; replies
//! start with the action and the transaction id. Announce replies hold 6-byte peers when
//! the tracker was reached over IPv4 and 18-byte peers over IPv6, so decoding a reply takes
//! the address family of the socket.

use std::net::SocketAddr;

use bytes::{Buf, BufMut};
use lt_core::{PeerId, Sha1Hash};

use crate::peers::{COMPACT_V4_LEN, COMPACT_V6_LEN, compact_addr, encode_compact};
use crate::{Error, Event, limits};

/// The magic connection id of a `connect` request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

/// BEP 41 option types.
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_URL_DATA: u8 = 2;

/// The body of a UDP announce request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpAnnounce {
    /// The torrent.
    pub info_hash: Sha1Hash,
    /// The announcing peer.
    pub peer_id: PeerId,
    /// Bytes downloaded.
    pub downloaded: u64,
    /// Bytes left.
    pub left: u64,
    /// Bytes uploaded.
    pub uploaded: u64,
    /// The event.
    pub event: Event,
    /// IPv4 address to use instead of the source, 0 for the source address.
    pub ip: u32,
    /// The client's key.
    pub key: u32,
    /// Peers wanted, -1 for the tracker's default.
    pub num_want: i32,
    /// The port the peer listens on.
    pub port: u16,
    /// BEP 41 URL data (the announce URL's path and query), empty if none.
    pub url_data: Vec<u8>,
}

/// A UDP tracker request (client to tracker).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpRequest {
    /// Ask for a connection id.
    Connect {
        /// Transaction id.
        transaction_id: u32,
    },
    /// Announce.
    Announce {
        /// The connection id from a `connect` reply.
        connection_id: u64,
        /// Transaction id.
        transaction_id: u32,
        /// The announce.
        announce: UdpAnnounce,
    },
    /// Scrape up to [`limits::MAX_UDP_SCRAPE_HASHES`] torrents.
    Scrape {
        /// The connection id from a `connect` reply.
        connection_id: u64,
        /// Transaction id.
        transaction_id: u32,
        /// The torrents.
        info_hashes: Vec<Sha1Hash>,
    },
}

/// One torrent's counts in a UDP scrape reply, in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UdpScrapeCounts {
    /// Seeds.
    pub seeders: u32,
    /// Completed downloads.
    pub completed: u32,
    /// Leechers.
    pub leechers: u32,
}

/// A UDP tracker reply (tracker to client).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpResponse {
    /// A connection id, valid for one minute at the client.
    Connect {
        /// Transaction id.
        transaction_id: u32,
        /// The connection id.
        connection_id: u64,
    },
    /// Announce reply.
    Announce {
        /// Transaction id.
        transaction_id: u32,
        /// Seconds until the next announce.
        interval: u32,
        /// Leechers.
        leechers: u32,
        /// Seeds.
        seeders: u32,
        /// Peers, all of the socket's address family; entries are kept as sent (port 0
        /// included), and [`crate::UdpTracker`] filters them.
        peers: Vec<SocketAddr>,
    },
    /// Scrape reply, one entry per requested hash in order.
    Scrape {
        /// Transaction id.
        transaction_id: u32,
        /// The counts.
        entries: Vec<UdpScrapeCounts>,
    },
    /// The error action with the tracker's message.
    Error {
        /// Transaction id.
        transaction_id: u32,
        /// The message bytes as sent.
        message: Vec<u8>,
    },
}

impl UdpRequest {
    /// The transaction id.
    pub const fn transaction_id(&self) -> u32 {
        match self {
            Self::Connect { transaction_id }
            | Self::Announce { transaction_id, .. }
            | Self::Scrape { transaction_id, .. } => *transaction_id,
        }
    }

    /// Appends the packet to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        match self {
            Self::Connect { transaction_id } => {
                out.put_u64(PROTOCOL_ID);
                out.put_u32(ACTION_CONNECT);
                out.put_u32(*transaction_id);
            }
            Self::Announce {
                connection_id,
                transaction_id,
                announce: a,
            } => {
                out.put_u64(*connection_id);
                out.put_u32(ACTION_ANNOUNCE);
                out.put_u32(*transaction_id);
                out.put_slice(a.info_hash.as_bytes());
                out.put_slice(a.peer_id.as_bytes());
                out.put_u64(a.downloaded);
                out.put_u64(a.left);
                out.put_u64(a.uploaded);
                out.put_u32(a.event.to_udp());
                out.put_u32(a.ip);
                out.put_u32(a.key);
                out.put_i32(a.num_want);
                out.put_u16(a.port);
                // BEP 41: URL data in options of at most 255 bytes each, then end-of-options.
                if !a.url_data.is_empty() {
                    for chunk in a.url_data.chunks(usize::from(u8::MAX)) {
                        out.put_u8(OPT_URL_DATA);
                        out.put_u8(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
                        out.put_slice(chunk);
                    }
                    out.put_u8(OPT_END);
                }
            }
            Self::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            } => {
                out.put_u64(*connection_id);
                out.put_u32(ACTION_SCRAPE);
                out.put_u32(*transaction_id);
                for h in info_hashes {
                    out.put_slice(h.as_bytes());
                }
            }
        }
    }

    /// The packet as a new buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(128);
        self.encode(&mut v);
        v
    }

    /// Decodes a request (tracker side). Rejects wrong lengths, unknown actions, a
    /// `connect` without the magic id and malformed BEP 41 options.
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        if buf.len() < 16 || buf.len() > limits::MAX_DATAGRAM_LEN {
            return Err(Error::MalformedPacket);
        }
        let mut b = buf;
        let connection_id = b.get_u64();
        let action = b.get_u32();
        let transaction_id = b.get_u32();
        match action {
            ACTION_CONNECT if connection_id == PROTOCOL_ID && b.is_empty() => {
                Ok(Self::Connect { transaction_id })
            }
            ACTION_ANNOUNCE if b.len() >= 82 => {
                let info_hash = take_hash(&mut b)?;
                let peer_id = PeerId::from_slice(b.get(..20).ok_or(Error::MalformedPacket)?)
                    .ok_or(Error::MalformedPacket)?;
                b.advance(20);
                let announce = UdpAnnounce {
                    info_hash,
                    peer_id,
                    downloaded: b.get_u64(),
                    left: b.get_u64(),
                    uploaded: b.get_u64(),
                    event: Event::from_udp(b.get_u32()),
                    ip: b.get_u32(),
                    key: b.get_u32(),
                    num_want: b.get_i32(),
                    port: b.get_u16(),
                    url_data: parse_options(b)?,
                };
                Ok(Self::Announce {
                    connection_id,
                    transaction_id,
                    announce,
                })
            }
            ACTION_SCRAPE
                if b.len().is_multiple_of(20) && b.len() / 20 <= limits::MAX_UDP_SCRAPE_HASHES =>
            {
                let mut info_hashes = Vec::with_capacity(b.len() / 20);
                while !b.is_empty() {
                    info_hashes.push(take_hash(&mut b)?);
                }
                Ok(Self::Scrape {
                    connection_id,
                    transaction_id,
                    info_hashes,
                })
            }
            _ => Err(Error::MalformedPacket),
        }
    }
}

impl UdpResponse {
    /// The transaction id.
    pub const fn transaction_id(&self) -> u32 {
        match self {
            Self::Connect { transaction_id, .. }
            | Self::Announce { transaction_id, .. }
            | Self::Scrape { transaction_id, .. }
            | Self::Error { transaction_id, .. } => *transaction_id,
        }
    }

    /// Appends the packet to `out`. Announce peers are written in their own family's
    /// compact form; a tracker must only put peers of the socket's family in one reply.
    pub fn encode(&self, out: &mut impl BufMut) {
        match self {
            Self::Connect {
                transaction_id,
                connection_id,
            } => {
                out.put_u32(ACTION_CONNECT);
                out.put_u32(*transaction_id);
                out.put_u64(*connection_id);
            }
            Self::Announce {
                transaction_id,
                interval,
                leechers,
                seeders,
                peers,
            } => {
                out.put_u32(ACTION_ANNOUNCE);
                out.put_u32(*transaction_id);
                out.put_u32(*interval);
                out.put_u32(*leechers);
                out.put_u32(*seeders);
                for p in peers {
                    encode_compact(*p, out);
                }
            }
            Self::Scrape {
                transaction_id,
                entries,
            } => {
                out.put_u32(ACTION_SCRAPE);
                out.put_u32(*transaction_id);
                for e in entries {
                    out.put_u32(e.seeders);
                    out.put_u32(e.completed);
                    out.put_u32(e.leechers);
                }
            }
            Self::Error {
                transaction_id,
                message,
            } => {
                out.put_u32(ACTION_ERROR);
                out.put_u32(*transaction_id);
                out.put_slice(message);
            }
        }
    }

    /// The packet as a new buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64);
        self.encode(&mut v);
        v
    }

    /// Decodes a reply (client side). `ipv6` says whether the socket talks IPv6, which
    /// sets the peer entry size to 18 bytes instead of 6.
    pub fn decode(buf: &[u8], ipv6: bool) -> Result<Self, Error> {
        if buf.len() < 8 || buf.len() > limits::MAX_DATAGRAM_LEN {
            return Err(Error::MalformedPacket);
        }
        let mut b = buf;
        let action = b.get_u32();
        let transaction_id = b.get_u32();
        match action {
            ACTION_CONNECT if b.len() == 8 => Ok(Self::Connect {
                transaction_id,
                connection_id: b.get_u64(),
            }),
            ACTION_ANNOUNCE if b.len() >= 12 => {
                let interval = b.get_u32();
                let leechers = b.get_u32();
                let seeders = b.get_u32();
                let entry = if ipv6 { COMPACT_V6_LEN } else { COMPACT_V4_LEN };
                if !b.len().is_multiple_of(entry) {
                    return Err(Error::TrailingPeerBytes {
                        len: b.len(),
                        entry,
                    });
                }
                let peers = b.chunks_exact(entry).filter_map(compact_addr).collect();
                Ok(Self::Announce {
                    transaction_id,
                    interval,
                    leechers,
                    seeders,
                    peers,
                })
            }
            ACTION_SCRAPE if b.len().is_multiple_of(12) => {
                let mut entries = Vec::with_capacity(b.len() / 12);
                while b.len() >= 12 {
                    entries.push(UdpScrapeCounts {
                        seeders: b.get_u32(),
                        completed: b.get_u32(),
                        leechers: b.get_u32(),
                    });
                }
                Ok(Self::Scrape {
                    transaction_id,
                    entries,
                })
            }
            ACTION_ERROR => Ok(Self::Error {
                transaction_id,
                message: b.to_vec(),
            }),
            _ => Err(Error::MalformedPacket),
        }
    }
}

fn take_hash(b: &mut &[u8]) -> Result<Sha1Hash, Error> {
    let h = Sha1Hash::from_slice(b.get(..20).ok_or(Error::MalformedPacket)?)
        .ok_or(Error::MalformedPacket)?;
    b.advance(20);
    Ok(h)
}

/// BEP 41 options: `0` ends them, `1` is a one-byte no-op, others are type, length, data;
/// type `2` (URL data) is concatenated, unknown types are skipped.
fn parse_options(mut b: &[u8]) -> Result<Vec<u8>, Error> {
    let mut url_data = Vec::new();
    while let Some((&kind, rest)) = b.split_first() {
        b = rest;
        match kind {
            OPT_END => break,
            OPT_NOP => {}
            _ => {
                let (&len, rest) = b.split_first().ok_or(Error::MalformedPacket)?;
                let data = rest.get(..usize::from(len)).ok_or(Error::MalformedPacket)?;
                if kind == OPT_URL_DATA {
                    url_data.extend_from_slice(data);
                }
                b = rest.get(usize::from(len)..).unwrap_or_default();
            }
        }
    }
    Ok(url_data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_bytes() {
        let p = UdpRequest::Connect {
            transaction_id: 0x0102_0304,
        }
        .to_vec();
        assert_eq!(
            p,
            [
                0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 1, 2, 3, 4
            ]
        );
        assert_eq!(
            UdpRequest::decode(&p).unwrap(),
            UdpRequest::Connect {
                transaction_id: 0x0102_0304
            }
        );
    }

    #[test]
    fn announce_with_url_data() {
        let req = UdpRequest::Announce {
            connection_id: 9,
            transaction_id: 1,
            announce: UdpAnnounce {
                info_hash: Sha1Hash::new([1; 20]),
                peer_id: PeerId::new([2; 20]),
                downloaded: 3,
                left: 4,
                uploaded: 5,
                event: Event::Started,
                ip: 0,
                key: 6,
                num_want: -1,
                port: 6881,
                url_data: vec![b'a'; 300],
            },
        };
        let bytes = req.to_vec();
        assert_eq!(bytes.len(), 98 + 2 + 255 + 2 + 45 + 1);
        assert_eq!(UdpRequest::decode(&bytes).unwrap(), req);
        assert_eq!(
            UdpRequest::decode(&bytes[..100]),
            Err(Error::MalformedPacket)
        );
    }

    #[test]
    fn replies() {
        let mut v = vec![0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 60, 0, 0, 0, 1, 0, 0, 0, 2];
        v.extend([127, 0, 0, 1, 0x1a, 0xe1]);
        let r = UdpResponse::decode(&v, false).unwrap();
        assert_eq!(r.to_vec(), v);
        assert!(matches!(
            UdpResponse::decode(&v, true),
            Err(Error::TrailingPeerBytes { .. })
        ));
        v.push(0);
        assert!(UdpResponse::decode(&v, false).is_err());
        let e = UdpResponse::decode(b"\0\0\0\x03\0\0\0\x07bad", false).unwrap();
        assert_eq!(
            e,
            UdpResponse::Error {
                transaction_id: 7,
                message: b"bad".to_vec()
            }
        );
        assert!(UdpResponse::decode(b"\0\0\0\x09\0\0\0\x07", false).is_err());
    }
}
