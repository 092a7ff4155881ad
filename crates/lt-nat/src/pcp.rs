//! PCP (RFC 6887) packet codec: the MAP opcode, plus enough of the common header to recognise
//! ANNOUNCE and error responses.
//!
//! Addresses are carried as 16 bytes; IPv4 addresses as IPv4-mapped IPv6 (`::ffff:a.b.c.d`,
//! RFC 6887 section 5).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use crate::Protocol;
use crate::error::Error;
use crate::natpmp::Reader;

/// The PCP version number (RFC 6887 section 7).
pub const VERSION: u8 = 2;
/// Length of a MAP request or response without options.
pub const MAP_LEN: usize = 60;
/// Length of the common response header.
pub const HEADER_LEN: usize = 24;

const OP_ANNOUNCE: u8 = 0;
const OP_MAP: u8 = 1;
const RESPONSE_BIT: u8 = 0x80;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// A PCP MAP request (RFC 6887 section 11.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRequest {
    /// Requested lifetime in seconds; 0 deletes the mapping.
    pub lifetime: u32,
    /// This host's address as the server sees it.
    pub client_addr: IpAddr,
    /// Random nonce that ties responses (and later renewals and deletion) to this mapping.
    pub nonce: [u8; 12],
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The port on this host.
    pub internal_port: u16,
    /// The external port wanted (0 = any).
    pub suggested_external_port: u16,
    /// The external address wanted (unspecified = any).
    pub suggested_external_addr: IpAddr,
}

/// A PCP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// A MAP response with result SUCCESS.
    Map(MapResponse),
    /// An ANNOUNCE (the server restarted; RFC 6887 section 14.1).
    Announce {
        /// Seconds since the server's state began.
        epoch: u32,
    },
    /// Any response with a non-zero result code.
    Failure {
        /// The opcode answered.
        opcode: u8,
        /// Why.
        result: PcpResultCode,
        /// For errors, how long the client should wait before retrying (seconds).
        lifetime: u32,
        /// Seconds since the server's state began.
        epoch: u32,
        /// The nonce of the MAP request answered, when the response carries one.
        nonce: Option<[u8; 12]>,
    },
}

/// A successful MAP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapResponse {
    /// Granted lifetime in seconds.
    pub lifetime: u32,
    /// Seconds since the server's state began.
    pub epoch: u32,
    /// The request's nonce.
    pub nonce: [u8; 12],
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The request's internal port.
    pub internal_port: u16,
    /// The external port assigned.
    pub external_port: u16,
    /// The external address assigned.
    pub external_addr: IpAddr,
}

/// A PCP result code (RFC 6887 section 7.4); never 0 (success).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PcpResultCode {
    /// 1: the server does not speak this version.
    UnsupportedVersion,
    /// 2: not authorized.
    NotAuthorized,
    /// 3: malformed request.
    MalformedRequest,
    /// 4: unsupported opcode.
    UnsupportedOpcode,
    /// 8: no resources.
    NoResources,
    /// 9: unsupported protocol.
    UnsupportedProtocol,
    /// 11: cannot provide the external port or address.
    CannotProvideExternal,
    /// 12: the client address in the request is not the packet's source.
    AddressMismatch,
    /// Any other non-zero code.
    Other(u8),
}

impl PcpResultCode {
    /// The code for `value`, or `None` for 0 (success).
    #[must_use]
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0 => return None,
            1 => Self::UnsupportedVersion,
            2 => Self::NotAuthorized,
            3 => Self::MalformedRequest,
            4 => Self::UnsupportedOpcode,
            8 => Self::NoResources,
            9 => Self::UnsupportedProtocol,
            11 => Self::CannotProvideExternal,
            12 => Self::AddressMismatch,
            other => Self::Other(other),
        })
    }

    /// The wire value.
    #[must_use]
    pub fn to_u8(self) -> u8 {
        match self {
            Self::UnsupportedVersion => 1,
            Self::NotAuthorized => 2,
            Self::MalformedRequest => 3,
            Self::UnsupportedOpcode => 4,
            Self::NoResources => 8,
            Self::UnsupportedProtocol => 9,
            Self::CannotProvideExternal => 11,
            Self::AddressMismatch => 12,
            Self::Other(v) => v,
        }
    }
}

impl fmt::Display for PcpResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::UnsupportedVersion => "UNSUPP_VERSION",
            Self::NotAuthorized => "NOT_AUTHORIZED",
            Self::MalformedRequest => "MALFORMED_REQUEST",
            Self::UnsupportedOpcode => "UNSUPP_OPCODE",
            Self::NoResources => "NO_RESOURCES",
            Self::UnsupportedProtocol => "UNSUPP_PROTOCOL",
            Self::CannotProvideExternal => "CANNOT_PROVIDE_EXTERNAL",
            Self::AddressMismatch => "ADDRESS_MISMATCH",
            Self::Other(_) => "unknown result",
        };
        write!(f, "{name} ({})", self.to_u8())
    }
}

impl MapRequest {
    /// Encodes the request (60 bytes, no options).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAP_LEN);
        out.extend_from_slice(&[VERSION, OP_MAP, 0, 0]);
        out.extend_from_slice(&self.lifetime.to_be_bytes());
        out.extend_from_slice(&to_v6(self.client_addr).octets());
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&[ip_proto(self.protocol), 0, 0, 0]);
        out.extend_from_slice(&self.internal_port.to_be_bytes());
        out.extend_from_slice(&self.suggested_external_port.to_be_bytes());
        out.extend_from_slice(&to_v6(self.suggested_external_addr).octets());
        out
    }

    /// Decodes a MAP request (a server's side; used by tests and fuzzing). Options are
    /// refused.
    ///
    /// # Errors
    /// On a wrong length, version, direction or opcode.
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(buf)?;
        let version = r.u8()?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let op = r.u8()?;
        if op & RESPONSE_BIT != 0 {
            return Err(Error::WrongDirection);
        }
        if op != OP_MAP {
            return Err(Error::UnexpectedOpcode(op));
        }
        let _reserved = r.u16()?;
        let lifetime = r.u32()?;
        let client_addr = from_v6(r.bytes()?);
        let nonce = r.bytes()?;
        let protocol = protocol_of(r.u8()?)?;
        let _reserved: [u8; 3] = r.bytes()?;
        let internal_port = r.u16()?;
        let suggested_external_port = r.u16()?;
        let suggested_external_addr = from_v6(r.bytes()?);
        r.finish()?;
        Ok(Self {
            lifetime,
            client_addr,
            nonce,
            protocol,
            internal_port,
            suggested_external_port,
            suggested_external_addr,
        })
    }
}

impl Response {
    /// Encodes the response (a server's side; used by tests and fuzzing).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAP_LEN);
        match *self {
            Self::Map(m) => {
                header(&mut out, OP_MAP, 0, m.lifetime, m.epoch);
                out.extend_from_slice(&m.nonce);
                out.extend_from_slice(&[ip_proto(m.protocol), 0, 0, 0]);
                out.extend_from_slice(&m.internal_port.to_be_bytes());
                out.extend_from_slice(&m.external_port.to_be_bytes());
                out.extend_from_slice(&to_v6(m.external_addr).octets());
            }
            Self::Announce { epoch } => header(&mut out, OP_ANNOUNCE, 0, 0, epoch),
            Self::Failure {
                opcode,
                result,
                lifetime,
                epoch,
                nonce,
            } => {
                header(&mut out, opcode & 0x7f, result.to_u8(), lifetime, epoch);
                if let Some(nonce) = nonce {
                    out.extend_from_slice(&nonce);
                    out.extend_from_slice(&[0; 24]);
                }
            }
        }
        out
    }

    /// Decodes a server's response. Options after a MAP body are skipped (bounded by the
    /// datagram limit).
    ///
    /// # Errors
    /// On a wrong length, version, direction, opcode or protocol. A non-zero result code
    /// decodes as [`Response::Failure`].
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(buf)?;
        let version = r.u8()?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let op = r.u8()?;
        if op & RESPONSE_BIT == 0 {
            return Err(Error::WrongDirection);
        }
        let opcode = op & !RESPONSE_BIT;
        let _reserved = r.u8()?;
        let result = r.u8()?;
        let lifetime = r.u32()?;
        let epoch = r.u32()?;
        let _reserved: [u8; 12] = r.bytes()?;
        if let Some(result) = PcpResultCode::from_u8(result) {
            let nonce = if opcode == OP_MAP && r.remaining() >= 36 {
                Some(r.bytes()?)
            } else {
                None
            };
            return Ok(Self::Failure {
                opcode,
                result,
                lifetime,
                epoch,
                nonce,
            });
        }
        match opcode {
            OP_ANNOUNCE => Ok(Self::Announce { epoch }),
            OP_MAP => {
                let nonce = r.bytes()?;
                let protocol = protocol_of(r.u8()?)?;
                let _reserved: [u8; 3] = r.bytes()?;
                let internal_port = r.u16()?;
                let external_port = r.u16()?;
                let external_addr = from_v6(r.bytes()?);
                // Options (RFC 6887 section 7.3) follow; we send none and ignore any.
                Ok(Self::Map(MapResponse {
                    lifetime,
                    epoch,
                    nonce,
                    protocol,
                    internal_port,
                    external_port,
                    external_addr,
                }))
            }
            other => Err(Error::UnexpectedOpcode(other)),
        }
    }
}

fn header(out: &mut Vec<u8>, opcode: u8, result: u8, lifetime: u32, epoch: u32) {
    out.extend_from_slice(&[VERSION, RESPONSE_BIT | opcode, 0, result]);
    out.extend_from_slice(&lifetime.to_be_bytes());
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&[0; 12]);
}

fn ip_proto(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
    }
}

fn protocol_of(value: u8) -> Result<Protocol, Error> {
    match value {
        IPPROTO_TCP => Ok(Protocol::Tcp),
        IPPROTO_UDP => Ok(Protocol::Udp),
        other => Err(Error::UnknownProtocol(other)),
    }
}

fn to_v6(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// IPv4-mapped addresses come back as IPv4.
fn from_v6(octets: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(octets);
    v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen};
    use quickcheck_macros::quickcheck;
    use std::net::Ipv4Addr;

    fn addr(g: &mut Gen) -> IpAddr {
        if bool::arbitrary(g) {
            IpAddr::V4(Ipv4Addr::from(u32::arbitrary(g)))
        } else {
            // Not IPv4-mapped, which would decode as IPv4.
            let mut o = <[u8; 16]>::arbitrary(g);
            o[0] |= 0x20;
            IpAddr::V6(Ipv6Addr::from(o))
        }
    }

    fn nonce(g: &mut Gen) -> [u8; 12] {
        let mut n = [0u8; 12];
        for b in &mut n {
            *b = u8::arbitrary(g);
        }
        n
    }

    impl Arbitrary for MapRequest {
        fn arbitrary(g: &mut Gen) -> Self {
            Self {
                lifetime: u32::arbitrary(g),
                client_addr: addr(g),
                nonce: nonce(g),
                protocol: Protocol::arbitrary(g),
                internal_port: u16::arbitrary(g),
                suggested_external_port: u16::arbitrary(g),
                suggested_external_addr: addr(g),
            }
        }
    }

    impl Arbitrary for Response {
        fn arbitrary(g: &mut Gen) -> Self {
            match u8::arbitrary(g) % 3 {
                0 => Self::Map(MapResponse {
                    lifetime: u32::arbitrary(g),
                    epoch: u32::arbitrary(g),
                    nonce: nonce(g),
                    protocol: Protocol::arbitrary(g),
                    internal_port: u16::arbitrary(g),
                    external_port: u16::arbitrary(g),
                    external_addr: addr(g),
                }),
                1 => Self::Announce {
                    epoch: u32::arbitrary(g),
                },
                _ => {
                    let map = bool::arbitrary(g);
                    Self::Failure {
                        opcode: if map { OP_MAP } else { u8::arbitrary(g) & 0x7f },
                        result: PcpResultCode::from_u8(u8::arbitrary(g).max(1))
                            .unwrap_or(PcpResultCode::NotAuthorized),
                        lifetime: u32::arbitrary(g),
                        epoch: u32::arbitrary(g),
                        nonce: map.then(|| nonce(g)),
                    }
                }
            }
        }
    }

    #[quickcheck]
    fn map_request_round_trips(req: MapRequest) -> bool {
        let bytes = req.encode();
        bytes.len() == MAP_LEN && MapRequest::decode(&bytes) == Ok(req)
    }

    #[quickcheck]
    fn response_round_trips(resp: Response) -> bool {
        Response::decode(&resp.encode()) == Ok(resp)
    }

    #[quickcheck]
    fn decode_never_panics(data: Vec<u8>) -> bool {
        let _ = Response::decode(&data);
        let _ = MapRequest::decode(&data);
        true
    }

    #[test]
    fn miniupnpd_captures() {
        let read = |name: &str| {
            std::fs::read(format!(
                "{}/testdata/miniupnpd-2.3.1-{name}.bin",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        let nonce = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let map = |lifetime| {
            Ok(Response::Map(MapResponse {
                lifetime,
                epoch: 2,
                nonce,
                protocol: Protocol::Udp,
                internal_port: 6882,
                external_port: 6882,
                external_addr: IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)),
            }))
        };
        assert_eq!(Response::decode(&read("pcp-map-udp")), map(3600));
        assert_eq!(Response::decode(&read("pcp-unmap-udp")), map(0));
    }

    #[test]
    fn fixture_map_response() {
        let mut bytes = vec![2, 0x81, 0, 0, 0, 0, 0x0e, 0x10, 0, 0, 0, 5];
        bytes.extend_from_slice(&[0; 12]);
        bytes.extend_from_slice(&[7; 12]);
        bytes.extend_from_slice(&[6, 0, 0, 0, 0x1a, 0xe1, 0x1a, 0xe2]);
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 9]);
        assert_eq!(
            Response::decode(&bytes),
            Ok(Response::Map(MapResponse {
                lifetime: 3600,
                epoch: 5,
                nonce: [7; 12],
                protocol: Protocol::Tcp,
                internal_port: 6881,
                external_port: 6882,
                external_addr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
            }))
        );
        bytes[24 + 12] = 1; // ICMP
        assert_eq!(Response::decode(&bytes), Err(Error::UnknownProtocol(1)));
        // A NAT-PMP gateway's answer to PCP: version 0, result 1.
        assert_eq!(
            Response::decode(&[0, 129, 0, 1, 0, 0, 0, 0]),
            Err(Error::UnsupportedVersion(0))
        );
        assert!(matches!(
            Response::decode(&bytes[..30]),
            Err(Error::PacketTooShort { .. })
        ));
    }
}
