//! What an announce says and what a tracker answers, shared by HTTP and UDP.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use lt_core::{PeerId, Sha1Hash};

use crate::Peer;

/// The announce `event` (BEP 3; BEP 15 numbers them 0..=3).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Event {
    /// A regular announce (no `event` key; UDP 0).
    #[default]
    None,
    /// The download finished (UDP 1).
    Completed,
    /// The first announce of this torrent (UDP 2).
    Started,
    /// The torrent is stopping (UDP 3).
    Stopped,
}

impl Event {
    /// The BEP 15 number of the event.
    pub const fn to_udp(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Completed => 1,
            Self::Started => 2,
            Self::Stopped => 3,
        }
    }

    /// The event for a BEP 15 number; unknown numbers are [`Event::None`].
    pub const fn from_udp(n: u32) -> Self {
        match n {
            1 => Self::Completed,
            2 => Self::Started,
            3 => Self::Stopped,
            _ => Self::None,
        }
    }

    /// The HTTP `event` value, if the event is sent at all.
    pub const fn as_http(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Completed => Some("completed"),
            Self::Started => Some("started"),
            Self::Stopped => Some("stopped"),
        }
    }

    /// The event for an HTTP `event` value; unknown values (and `empty`) are [`Event::None`].
    pub fn from_http(s: &[u8]) -> Self {
        match s {
            b"completed" => Self::Completed,
            b"started" => Self::Started,
            b"stopped" => Self::Stopped,
            _ => Self::None,
        }
    }
}

/// The parameters of one announce, for HTTP ([`crate::http::announce_url`]) or UDP
/// ([`crate::UdpTracker::announce`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// The torrent's (v1 or truncated v2) info-hash.
    pub info_hash: Sha1Hash,
    /// Our peer id.
    pub peer_id: PeerId,
    /// The port we accept peers on.
    pub port: u16,
    /// Bytes uploaded since `started`.
    pub uploaded: u64,
    /// Bytes downloaded since `started`.
    pub downloaded: u64,
    /// Bytes left to download.
    pub left: u64,
    /// The event, if any.
    pub event: Event,
    /// A random key that identifies us across IP changes (`key`).
    pub key: u32,
    /// How many peers we want; `None` lets the tracker choose (UDP sends -1).
    pub num_want: Option<u32>,
    /// HTTP: ask for the BEP 23 compact form (`compact=1`). Default true.
    pub compact: bool,
    /// HTTP: ask the tracker to omit peer ids (`no_peer_id=1`). Default true.
    pub no_peer_id: bool,
    /// HTTP: advertise that we support MSE/PE (`supportcrypto=1`).
    pub support_crypto: bool,
    /// HTTP: our IPv4 address to report (`ipv4=`), for dual-stack announces.
    pub ipv4: Option<Ipv4Addr>,
    /// HTTP: our IPv6 address to report (`ipv6=`, BEP 7).
    pub ipv6: Option<Ipv6Addr>,
    /// The `tracker id` a previous reply gave us, sent back as `trackerid`.
    pub tracker_id: Option<Vec<u8>>,
}

impl AnnounceRequest {
    /// An announce with the given identity and everything else at its default:
    /// zero counters, no event, compact, no peer ids, tracker's choice of `numwant`.
    pub const fn new(info_hash: Sha1Hash, peer_id: PeerId, port: u16) -> Self {
        Self {
            info_hash,
            peer_id,
            port,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: Event::None,
            key: 0,
            num_want: None,
            compact: true,
            no_peer_id: true,
            support_crypto: false,
            ipv4: None,
            ipv6: None,
            tracker_id: None,
        }
    }
}

/// A successful announce reply (HTTP or UDP).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    /// Seconds to wait before the next regular announce (`interval`).
    pub interval: Duration,
    /// The tracker's minimum re-announce interval (`min interval`), if sent.
    pub min_interval: Option<Duration>,
    /// Peers, IPv4 and IPv6 together, at most the configured cap.
    pub peers: Vec<Peer>,
    /// Seeds in the swarm (`complete`; UDP `seeders`).
    pub complete: Option<u32>,
    /// Leechers in the swarm (`incomplete`; UDP `leechers`).
    pub incomplete: Option<u32>,
    /// Completed downloads (`downloaded`), if sent.
    pub downloaded: Option<u32>,
    /// The `warning message`, if any.
    pub warning: Option<String>,
    /// The `tracker id` to send back on later announces.
    pub tracker_id: Option<Vec<u8>>,
    /// Our address as the tracker sees it (`external ip`, 4 or 16 bytes).
    pub external_ip: Option<std::net::IpAddr>,
}

/// One torrent's counts in a scrape reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeEntry {
    /// The torrent.
    pub info_hash: Sha1Hash,
    /// Seeds (`complete`).
    pub complete: u32,
    /// Leechers (`incomplete`).
    pub incomplete: u32,
    /// Completed downloads (`downloaded`).
    pub downloaded: u32,
}
