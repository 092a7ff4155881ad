//! Port mapping for BitTorrent clients: UPnP IGD, NAT-PMP (RFC 6886) and PCP (RFC 6887),
//! as sans-IO state machines plus an optional tokio driver.
//!
//! # What it does
//!
//! - [`UpnpClient`]: SSDP M-SEARCH discovery (a response whose LOCATION is not on the
//!   responder is refused), the device description (parsed with roxmltree: DTDs refused, so no
//!   entity bombs; size and node caps), the best of WANIPConnection:2, WANIPConnection:1 and
//!   WANPPPConnection:1, then SOAP `GetExternalIPAddress`, `AddPortMapping` (lease renewed at
//!   half its duration; conflicts resolved on other ports; permanent leases when the gateway
//!   insists), `GetSpecificPortMappingEntry` and `DeletePortMapping`.
//! - [`PmpClient`]: PCP MAP first, falling back to NAT-PMP when the gateway answers
//!   "unsupported version" or stays silent; external address, TCP and UDP map/unmap,
//!   renewal at half the granted lifetime, RFC 6886's retry schedule (250 ms doubling, 9
//!   sends), and epoch checks that re-map everything after a gateway reboot.
//! - `driver::PortMapper` (feature `tokio`): both clients on real sockets with one
//!   `add_mapping(protocol, external port, local port) -> index` / `delete_mapping(index)`
//!   API, events on a tokio mpsc channel, and a `shutdown` that deletes the mappings within a
//!   bounded time. It does the SOAP HTTP itself over `TcpStream`: plain HTTP/1.1 to a gateway
//!   on the LAN, one request per connection, with a timeout and the caps of [`limits`], so no
//!   HTTP client crate is pulled in. The NAT-PMP gateway is the default route's, from
//!   `/proc/net/route` ([`route`]), unless the caller names it.
//!
//! Events follow libtorrent's alerts: [`Event::Mapped`] (`portmap_alert`),
//! [`Event::MapFailed`] (`portmap_error_alert`), [`Event::Log`] (`portmap_log_alert`),
//! [`Event::ExternalIp`] (`external_ip_alert`), plus [`Event::Unmapped`] and
//! [`Event::MappingEntry`].
//!
//! # What it does not do
//!
//! Without the `tokio` feature the crate performs no network I/O, reads no clock (time is a
//! `now: Instant` argument) and draws randomness only from a seeded ChaCha RNG
//! (`rng_seed` in the configs). It does not do IPv6 pinholes (WANIPv6FirewallControl), PCP
//! PEER or third-party mappings, UPnP eventing, or HTTPS.
//!
//! ```text
//!              add_mapping / delete_mapping / lookup_mapping (now)
//!                                  |
//!   datagrams from the gateway --> +-------------------+ --> poll_transmit(): datagrams to send
//!   (handle_datagram, now)         | UpnpClient        | --> poll_http(): HTTP exchanges (UPnP)
//!   HTTP results (UPnP)       ---> | PmpClient         | --> poll_event(): Mapped, ExternalIp, ...
//!   timers (handle_timeout)   ---> +-------------------+ --> poll_timeout(): next deadline
//! ```
//!
//! Driver rule for both state machines: after any input, drain `poll_transmit` (and
//! `poll_http`), then `poll_event`, then re-arm one timer from `poll_timeout`.
//!
//! # Example: NAT-PMP/PCP over `std::net`
//!
//! ```no_run
//! use std::net::{Ipv4Addr, UdpSocket};
//! use std::time::{Duration, Instant};
//! use lt_nat::{Event, PmpClient, PmpConfig, Protocol};
//!
//! # fn main() -> std::io::Result<()> {
//! let gateway = Ipv4Addr::new(192, 168, 1, 1);
//! let socket = UdpSocket::bind("0.0.0.0:0")?;
//! socket.connect((gateway, 5351))?;
//! let local = match socket.local_addr()?.ip() {
//!     std::net::IpAddr::V4(a) => a,
//!     std::net::IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
//! };
//! let config = PmpConfig { rng_seed: Some([7; 32]), ..PmpConfig::default() };
//! let mut client = PmpClient::new(config, gateway, local);
//! client
//!     .add_mapping(Instant::now(), Protocol::Tcp, 6881, 6881)
//!     .map_err(std::io::Error::other)?;
//! let mut buf = [0u8; 1100];
//! loop {
//!     while let Some(t) = client.poll_transmit() {
//!         socket.send(&t.contents)?;
//!     }
//!     while let Some(event) = client.poll_event() {
//!         if let Event::Mapped { external_port, .. } = event {
//!             println!("mapped external port {external_port}");
//!             return Ok(());
//!         }
//!     }
//!     let now = Instant::now();
//!     let wait = client.poll_timeout().map_or(Duration::from_secs(1), |t| t - now);
//!     socket.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
//!     match socket.recv_from(&mut buf) {
//!         Ok((n, from)) => client.handle_datagram(Instant::now(), from, &buf[..n]),
//!         Err(_) => client.handle_timeout(Instant::now()),
//!     }
//! }
//! # }
//! ```
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};

#[cfg(feature = "tokio")]
pub mod driver;
pub mod error;
pub mod http;
pub mod igd;
pub mod limits;
pub mod natpmp;
pub mod pcp;
pub mod pmp;
pub mod route;
pub mod soap;
pub mod ssdp;
pub mod upnp;

pub use error::Error;
pub use pmp::{PmpClient, PmpConfig};
pub use upnp::{UpnpClient, UpnpConfig};

/// A transport protocol to map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `"TCP"` or `"UDP"`, as UPnP spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
        }
    }
}

/// The handle of one mapping, returned by `add_mapping` (libtorrent's port mapping index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MappingIndex(pub usize);

/// Which mechanism an event is about (libtorrent's `portmap_transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// NAT-PMP (RFC 6886).
    NatPmp,
    /// PCP (RFC 6887).
    Pcp,
    /// UPnP IGD.
    Upnp,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// The payload.
    pub contents: Vec<u8>,
}

/// What the state machines report (the session turns them into libtorrent-style alerts).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A mapping exists on the gateway (libtorrent's `portmap_alert`). Reported again only
    /// when the external port changes.
    Mapped {
        /// The mapping.
        index: MappingIndex,
        /// By which mechanism.
        transport: Transport,
        /// TCP or UDP.
        protocol: Protocol,
        /// The external port the gateway forwards.
        external_port: u16,
        /// The local port it forwards to.
        local_port: u16,
    },
    /// A mapping could not be made (libtorrent's `portmap_error_alert`).
    MapFailed {
        /// The mapping.
        index: MappingIndex,
        /// By which mechanism.
        transport: Transport,
        /// Why.
        error: Error,
    },
    /// A mapping was removed (after `delete_mapping`); its index is free again.
    Unmapped {
        /// The mapping.
        index: MappingIndex,
        /// By which mechanism.
        transport: Transport,
    },
    /// The gateway reported its external address (libtorrent's `external_ip_alert`).
    ExternalIp {
        /// The address.
        address: IpAddr,
        /// Who said so.
        transport: Transport,
    },
    /// The gateway's entry for a mapping (UPnP GetSpecificPortMappingEntry), after
    /// [`upnp::UpnpClient::lookup_mapping`].
    MappingEntry {
        /// The mapping.
        index: MappingIndex,
        /// The entry, or why there is none ([`Error::SoapFault`] 714 = no such entry).
        entry: Result<soap::PortMappingEntry, Error>,
    },
    /// Diagnostic text (libtorrent's `portmap_log_alert`).
    Log {
        /// By which mechanism.
        transport: Transport,
        /// What happened.
        message: String,
    },
}

/// `now + delay`, saturating at a day later (or `now`) when the sum would overflow: delays come
/// from configs and gateways (a granted lifetime of `u32::MAX` seconds) and must not panic.
pub(crate) fn later(now: std::time::Instant, delay: std::time::Duration) -> std::time::Instant {
    now.checked_add(delay)
        .or_else(|| now.checked_add(std::time::Duration::from_secs(86_400)))
        .unwrap_or(now)
}
