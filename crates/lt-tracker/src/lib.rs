//! BitTorrent trackers without I/O: HTTP announce and scrape, the BEP 15 UDP tracker
//! protocol as a state machine, BEP 12 tiers, and a small in-memory tracker server.
//!
//! ```text
//!  AnnounceRequest ─┬─ http::announce_url(base, &req) ──▶ URL ──(caller: GET, redirects,
//!                   │                                          gzip, TLS)──▶ body
//!                   │   body ──http::parse_announce / parse_scrape──▶ AnnounceResponse / [ScrapeEntry]
//!                   │
//!                   └─ UdpTracker::announce(now, &req) ─▶ poll_transmit() ─▶ datagram to tracker
//!                        datagram from tracker ─▶ handle_datagram(now, buf)
//!                        timer ─▶ handle_timeout(now)     poll_timeout() ─▶ next deadline
//!                        poll_event() ─▶ UdpEvent::{Announced, Scraped, Failed}
//!
//!  TrackerList (BEP 12): next_announce(now) ─▶ tracker ─▶ on_success / on_failure ─▶ AnnounceEntry state
//!
//!  TrackerServer (feature "server"):  datagram ─▶ handle_datagram(now, from, buf) ─▶ reply datagram
//!                                     GET target ─▶ handle_http(now, from, target) ─▶ HttpReply
//! ```
//!
//! BEPs: 3 (HTTP announce), 7 (IPv6 peers, `peers6`), 12 (multi-tracker tiers), 15 (UDP
//! trackers), 23 (compact peer lists), 41 (UDP URL data), 48 (scrape).
//!
//! This crate **performs no network I/O and reads no clock**: every method takes
//! `now: Instant`, randomness comes from RNGs seeded through the configs, and all
//! collections a tracker or client can grow are capped ([`limits`]). Fetching HTTP(S)
//! (redirects, gzip, rustls) and owning sockets is the driver's job (lt-session; the
//! `lt-tests` crate has a small tokio driver used by the interop tests). Nothing a tracker
//! sends can make it panic: malformed, oversized or over-deep replies are typed
//! [`Error`]s, and a silent tracker ends in [`Error::Timeout`].
//!
//! # Example: one UDP announce over `std::net`
//!
//! ```no_run
//! use std::net::UdpSocket;
//! use std::time::Instant;
//! use lt_core::{PeerId, Sha1Hash};
//! use lt_tracker::{AnnounceRequest, UdpConfig, UdpEvent, UdpTracker, UdpUrl};
//!
//! let url = UdpUrl::parse("udp://127.0.0.1:6969/announce")?;
//! let socket = UdpSocket::bind("127.0.0.1:0")?;
//! socket.connect((url.host.as_str(), url.port))?;
//! let config = UdpConfig { rng_seed: Some([7; 32]), ..Default::default() };
//! let mut tracker = UdpTracker::new(config, &url.url_data);
//! let req = AnnounceRequest::new(Sha1Hash::new([1; 20]), PeerId::new([2; 20]), 6881);
//! tracker.announce(Instant::now(), &req)?;
//! let mut buf = [0u8; 2048];
//! loop {
//!     while let Some(datagram) = tracker.poll_transmit() {
//!         socket.send(&datagram)?;
//!     }
//!     if let Some(event) = tracker.poll_event() {
//!         match event {
//!             UdpEvent::Announced(r) => println!("{} peers", r.peers.len()),
//!             other => println!("{other:?}"),
//!         }
//!         break;
//!     }
//!     let Some(deadline) = tracker.poll_timeout() else { break };
//!     socket.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(std::time::Duration::from_millis(1))))?;
//!     match socket.recv(&mut buf) {
//!         Ok(n) => tracker.handle_datagram(Instant::now(), &buf[..n]),
//!         Err(_) => tracker.handle_timeout(Instant::now()),
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod announce;
mod error;
pub mod http;
pub mod limits;
pub mod lsd;
mod peers;
#[cfg(feature = "server")]
pub mod server;
mod tiers;
pub mod udp;
mod udp_client;

pub use announce::{AnnounceRequest, AnnounceResponse, Event, ScrapeEntry};
pub use error::Error;
pub use peers::{
    COMPACT_V4_LEN, COMPACT_V6_LEN, Peer, decode_compact_v4, decode_compact_v6, encode_compact,
};
pub use tiers::{AnnounceEntry, MAX_TRACKERS, TrackerIndex, TrackerList, TrackerSource};
pub use udp_client::{UdpConfig, UdpEvent, UdpTracker};

/// A parsed `udp://host:port[/path][?query]` tracker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpUrl {
    /// Host name or address (brackets removed from IPv6 literals).
    pub host: String,
    /// Port.
    pub port: u16,
    /// BEP 41 URL data: the path and query, e.g. `/announce?passkey=x`; empty if none.
    pub url_data: Vec<u8>,
}

impl UdpUrl {
    /// Parses a UDP tracker URL. The port is required and non-zero; URL data longer than
    /// [`limits::MAX_URL_DATA_LEN`] is rejected.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let rest = url.strip_prefix("udp://").ok_or(Error::InvalidUrl)?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6.split_once("]:").ok_or(Error::InvalidUrl)?;
            (h, p)
        } else {
            authority.rsplit_once(':').ok_or(Error::InvalidUrl)?
        };
        let port: u16 = port.parse().map_err(|_| Error::InvalidUrl)?;
        if host.is_empty() || port == 0 || path.len() > limits::MAX_URL_DATA_LEN {
            return Err(Error::InvalidUrl);
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            url_data: path.as_bytes().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_urls() {
        let u = UdpUrl::parse("udp://tracker.example:6969/announce?k=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, &u.url_data[..]),
            ("tracker.example", 6969, &b"/announce?k=1"[..])
        );
        let u = UdpUrl::parse("udp://[::1]:80").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.url_data.len()), ("::1", 80, 0));
        for bad in [
            "http://a:1",
            "udp://a",
            "udp://a:0",
            "udp://:5",
            "udp://a:99999",
        ] {
            assert_eq!(UdpUrl::parse(bad), Err(Error::InvalidUrl), "{bad}");
        }
    }
}
