//! The crate's one error type.

use std::net::{IpAddr, SocketAddr};

use crate::natpmp::ResultCode;
use crate::pcp::PcpResultCode;

/// Everything that can go wrong in lt-nat.
///
/// Peer faults (a gateway or LAN host sent something malformed or hostile) are kept apart from
/// local faults ([`Error::Io`]) and caller mistakes ([`Error::ApiMisuse`]). No variant holds
/// bytes a peer sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- NAT-PMP / PCP packets ----
    /// A NAT-PMP or PCP packet is shorter than its fixed layout.
    #[error("packet of {len} bytes is shorter than the {min} its opcode needs")]
    PacketTooShort {
        /// Received length.
        len: usize,
        /// Smallest valid length.
        min: usize,
    },
    /// A NAT-PMP or PCP packet is longer than allowed.
    #[error("packet of {len} bytes is longer than the {max} allowed")]
    PacketTooLong {
        /// Received length.
        len: usize,
        /// Largest valid length.
        max: usize,
    },
    /// A packet carries a protocol version we do not speak (NAT-PMP is 0, PCP is 2).
    #[error("unsupported NAT-PMP/PCP version {0}")]
    UnsupportedVersion(u8),
    /// A packet carries an opcode that is not a response we understand.
    #[error("unexpected opcode {0}")]
    UnexpectedOpcode(u8),
    /// A packet is a request where a response was expected (or the reverse).
    #[error("packet has the wrong direction (request/response bit)")]
    WrongDirection,
    /// A MAP packet names a transport protocol other than TCP or UDP.
    #[error("unknown transport protocol number {0}")]
    UnknownProtocol(u8),
    /// The NAT-PMP gateway refused a request.
    #[error("NAT-PMP gateway answered {0}")]
    NatPmpResult(ResultCode),
    /// The PCP server refused a request.
    #[error("PCP server answered {0}")]
    PcpResult(PcpResultCode),
    /// A datagram came from an address other than the gateway's.
    #[error("datagram from {from}, not from the gateway")]
    WrongSource {
        /// Where it came from.
        from: SocketAddr,
    },
    /// No answer after the whole retry schedule.
    #[error("no answer from the gateway after {attempts} attempts")]
    Timeout {
        /// Requests sent.
        attempts: u32,
    },

    // ---- SSDP / HTTP / XML / SOAP ----
    /// An SSDP datagram is not a well-formed HTTP-over-UDP response.
    #[error("malformed SSDP response")]
    SsdpMalformed,
    /// An SSDP response has no LOCATION header.
    #[error("SSDP response without LOCATION")]
    SsdpNoLocation,
    /// An SSDP response's LOCATION points to a host other than the responder (refused: a LAN
    /// host could otherwise make us fetch from anywhere).
    #[error("SSDP LOCATION host {location} differs from the responder {responder}")]
    LocationMismatch {
        /// Who sent the response.
        responder: IpAddr,
        /// The host LOCATION names.
        location: IpAddr,
    },
    /// A URL is not `http://<IP literal>[:port]/path`.
    #[error("unsupported or malformed URL")]
    BadUrl,
    /// An HTTP response's header section exceeds the limit.
    #[error("HTTP header longer than {max} bytes")]
    HttpHeaderTooLong {
        /// The limit.
        max: usize,
    },
    /// An HTTP response's body exceeds the limit.
    #[error("HTTP body of {len} bytes exceeds the limit of {max}")]
    HttpBodyTooLong {
        /// Declared or received length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An HTTP response is malformed.
    #[error("malformed HTTP response")]
    HttpMalformed,
    /// An HTTP response ended before its declared length.
    #[error("HTTP response truncated")]
    HttpTruncated,
    /// An HTTP response has an unexpected status (SOAP faults are [`Error::SoapFault`]).
    #[error("HTTP status {0}")]
    HttpStatus(u16),
    /// An XML document exceeds the size limit.
    #[error("XML document of {len} bytes exceeds the limit of {max}")]
    XmlTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An XML document does not parse (DTDs and entity declarations are refused, which stops
    /// entity-expansion bombs).
    #[error("XML does not parse: {0}")]
    XmlSyntax(String),
    /// A required element is missing from a device description or SOAP response.
    #[error("missing XML element <{0}>")]
    MissingElement(&'static str),
    /// An element's text has the wrong form.
    #[error("bad value in XML element <{0}>")]
    BadValue(&'static str),
    /// The device description has no WANIPConnection or WANPPPConnection service.
    #[error("no WANIPConnection/WANPPPConnection service in the device description")]
    NoIgdService,
    /// The gateway answered a SOAP action with a UPnP error code.
    #[error("UPnP error {code}")]
    SoapFault {
        /// The UPnPError errorCode (718 = ConflictInMappingEntry, 725 =
        /// OnlyPermanentLeasesSupported, ...).
        code: u16,
    },
    /// Every external port tried for a UPnP mapping was taken.
    #[error("every external port tried was taken")]
    PortConflict,
    /// No UPnP gateway answered the SSDP search.
    #[error("no UPnP gateway found")]
    NoGateway,

    // ---- local ----
    /// The caller used the API wrongly (unknown index, too many mappings, ...).
    #[error("API misuse: {0}")]
    ApiMisuse(&'static str),
    /// A local I/O failure (driver only).
    #[error("I/O error: {0}")]
    Io(std::io::ErrorKind),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.kind())
    }
}
