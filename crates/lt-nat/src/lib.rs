//! UPnP IGD, NAT-PMP and PCP port mapping (under construction).
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
