//! NAT-PMP (RFC 6886) packet codec.
//!
//! Requests are what a client sends to UDP port 5351 of its gateway; responses are what the
//! gateway sends back. Decoding checks every length before reading and never panics.

use std::fmt;
use std::net::Ipv4Addr;

use crate::Protocol;
use crate::error::Error;
use crate::limits::MAX_PMP_PACKET;

/// The UDP port NAT-PMP and PCP servers listen on (RFC 6886 section 3.1, RFC 6887 section 19).
pub const SERVER_PORT: u16 = 5351;
/// The NAT-PMP version number (RFC 6886 section 3.2).
pub const VERSION: u8 = 0;

const OP_EXTERNAL_ADDRESS: u8 = 0;
const OP_MAP_UDP: u8 = 1;
const OP_MAP_TCP: u8 = 2;
const RESPONSE_BIT: u8 = 128;

/// A NAT-PMP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Opcode 0: what is the external address?
    ExternalAddress,
    /// Opcode 1 (UDP) or 2 (TCP): create, renew or (lifetime 0) delete a mapping.
    Map {
        /// TCP or UDP.
        protocol: Protocol,
        /// The port on this host.
        internal_port: u16,
        /// The external port wanted (0 = any; must be 0 to delete, RFC 6886 section 3.4).
        suggested_external_port: u16,
        /// Seconds; 0 deletes the mapping.
        lifetime: u32,
    },
}

/// A NAT-PMP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Successful answer to [`Request::ExternalAddress`].
    ExternalAddress {
        /// Seconds since the gateway's port-mapping table was (re)initialised.
        epoch: u32,
        /// The gateway's external IPv4 address.
        address: Ipv4Addr,
    },
    /// Successful answer to [`Request::Map`].
    Map {
        /// TCP or UDP.
        protocol: Protocol,
        /// Seconds since start of epoch.
        epoch: u32,
        /// The internal port of the request.
        internal_port: u16,
        /// The external port the gateway assigned.
        external_port: u16,
        /// Granted lifetime in seconds.
        lifetime: u32,
    },
    /// A non-zero result code (the other fields are undefined, RFC 6886 section 3.5).
    Failure {
        /// The request's opcode (0, 1 or 2).
        opcode: u8,
        /// Why.
        result: ResultCode,
        /// Seconds since start of epoch.
        epoch: u32,
    },
}

/// A NAT-PMP result code (RFC 6886 section 3.5); never 0 (success).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResultCode {
    /// 1: the gateway does not speak this version (a NAT-PMP gateway's answer to PCP).
    UnsupportedVersion,
    /// 2: not authorized or refused (mapping disabled by the administrator).
    NotAuthorized,
    /// 3: network failure (the gateway has no external address yet).
    NetworkFailure,
    /// 4: out of resources.
    OutOfResources,
    /// 5: unsupported opcode.
    UnsupportedOpcode,
    /// Any other non-zero code.
    Other(u16),
}

impl ResultCode {
    /// The code for `value`, or `None` for 0 (success).
    #[must_use]
    pub fn from_u16(value: u16) -> Option<Self> {
        Some(match value {
            0 => return None,
            1 => Self::UnsupportedVersion,
            2 => Self::NotAuthorized,
            3 => Self::NetworkFailure,
            4 => Self::OutOfResources,
            5 => Self::UnsupportedOpcode,
            other => Self::Other(other),
        })
    }

    /// The wire value.
    #[must_use]
    pub fn to_u16(self) -> u16 {
        match self {
            Self::UnsupportedVersion => 1,
            Self::NotAuthorized => 2,
            Self::NetworkFailure => 3,
            Self::OutOfResources => 4,
            Self::UnsupportedOpcode => 5,
            Self::Other(v) => v,
        }
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::UnsupportedVersion => "unsupported version",
            Self::NotAuthorized => "not authorized/refused",
            Self::NetworkFailure => "network failure",
            Self::OutOfResources => "out of resources",
            Self::UnsupportedOpcode => "unsupported opcode",
            Self::Other(_) => "unknown result",
        };
        write!(f, "{name} ({})", self.to_u16())
    }
}

impl Request {
    /// Encodes the request (2 or 12 bytes).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            Self::ExternalAddress => vec![VERSION, OP_EXTERNAL_ADDRESS],
            Self::Map {
                protocol,
                internal_port,
                suggested_external_port,
                lifetime,
            } => {
                let mut out = Vec::with_capacity(12);
                out.extend_from_slice(&[VERSION, map_opcode(protocol), 0, 0]);
                out.extend_from_slice(&internal_port.to_be_bytes());
                out.extend_from_slice(&suggested_external_port.to_be_bytes());
                out.extend_from_slice(&lifetime.to_be_bytes());
                out
            }
        }
    }

    /// Decodes a request (what a gateway receives); used by tests and fuzzing.
    ///
    /// # Errors
    /// On a wrong length, version or opcode.
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(buf)?;
        let version = r.u8()?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let opcode = r.u8()?;
        let req = match opcode {
            OP_EXTERNAL_ADDRESS => Self::ExternalAddress,
            OP_MAP_UDP | OP_MAP_TCP => {
                let _reserved = r.u16()?;
                Self::Map {
                    protocol: protocol_of(opcode)?,
                    internal_port: r.u16()?,
                    suggested_external_port: r.u16()?,
                    lifetime: r.u32()?,
                }
            }
            op if op & RESPONSE_BIT != 0 => return Err(Error::WrongDirection),
            op => return Err(Error::UnexpectedOpcode(op)),
        };
        r.finish()?;
        Ok(req)
    }
}

impl Response {
    /// Encodes the response (a gateway's side; used by tests and fuzzing).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        match *self {
            Self::ExternalAddress { epoch, address } => {
                out.extend_from_slice(&[VERSION, RESPONSE_BIT | OP_EXTERNAL_ADDRESS, 0, 0]);
                out.extend_from_slice(&epoch.to_be_bytes());
                out.extend_from_slice(&address.octets());
            }
            Self::Map {
                protocol,
                epoch,
                internal_port,
                external_port,
                lifetime,
            } => {
                out.extend_from_slice(&[VERSION, RESPONSE_BIT | map_opcode(protocol), 0, 0]);
                out.extend_from_slice(&epoch.to_be_bytes());
                out.extend_from_slice(&internal_port.to_be_bytes());
                out.extend_from_slice(&external_port.to_be_bytes());
                out.extend_from_slice(&lifetime.to_be_bytes());
            }
            Self::Failure {
                opcode,
                result,
                epoch,
            } => {
                out.extend_from_slice(&[VERSION, RESPONSE_BIT | (opcode & 0x7f)]);
                out.extend_from_slice(&result.to_u16().to_be_bytes());
                out.extend_from_slice(&epoch.to_be_bytes());
            }
        }
        out
    }

    /// Decodes a gateway's response.
    ///
    /// Successful responses must have their exact length (12 or 16 bytes). A failure needs
    /// only the 8-byte common header: RFC 6886 leaves the other fields undefined.
    ///
    /// # Errors
    /// On a wrong length, version, direction or opcode. A non-zero result code is not an
    /// error here: it decodes as [`Response::Failure`].
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
        if opcode > OP_MAP_TCP {
            return Err(Error::UnexpectedOpcode(op));
        }
        let result = r.u16()?;
        let epoch = r.u32()?;
        if let Some(result) = ResultCode::from_u16(result) {
            // The rest is undefined; accept and ignore it (bounded by MAX_PMP_PACKET).
            return Ok(Self::Failure {
                opcode,
                result,
                epoch,
            });
        }
        let resp = if opcode == OP_EXTERNAL_ADDRESS {
            Self::ExternalAddress {
                epoch,
                address: Ipv4Addr::from(r.u32()?),
            }
        } else {
            Self::Map {
                protocol: protocol_of(opcode)?,
                epoch,
                internal_port: r.u16()?,
                external_port: r.u16()?,
                lifetime: r.u32()?,
            }
        };
        r.finish()?;
        Ok(resp)
    }

    /// The epoch every response carries.
    #[must_use]
    pub fn epoch(&self) -> u32 {
        match *self {
            Self::ExternalAddress { epoch, .. }
            | Self::Map { epoch, .. }
            | Self::Failure { epoch, .. } => epoch,
        }
    }
}

fn map_opcode(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Udp => OP_MAP_UDP,
        Protocol::Tcp => OP_MAP_TCP,
    }
}

fn protocol_of(opcode: u8) -> Result<Protocol, Error> {
    match opcode {
        OP_MAP_UDP => Ok(Protocol::Udp),
        OP_MAP_TCP => Ok(Protocol::Tcp),
        other => Err(Error::UnexpectedOpcode(other)),
    }
}

/// A bounded big-endian reader over a datagram.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Refuses datagrams longer than [`MAX_PMP_PACKET`].
    pub(crate) fn new(buf: &'a [u8]) -> Result<Self, Error> {
        if buf.len() > MAX_PMP_PACKET {
            return Err(Error::PacketTooLong {
                len: buf.len(),
                max: MAX_PMP_PACKET,
            });
        }
        Ok(Self { buf, pos: 0 })
    }

    pub(crate) fn bytes<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let end = self.pos.saturating_add(N);
        let slice = self.buf.get(self.pos..end).ok_or(Error::PacketTooShort {
            len: self.buf.len(),
            min: end,
        })?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.bytes::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.bytes()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.bytes()?))
    }

    /// Rejects trailing bytes.
    pub(crate) fn finish(self) -> Result<(), Error> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(Error::PacketTooLong {
                len: self.buf.len(),
                max: self.pos,
            })
        }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen};
    use quickcheck_macros::quickcheck;

    impl Arbitrary for Protocol {
        fn arbitrary(g: &mut Gen) -> Self {
            if bool::arbitrary(g) {
                Self::Tcp
            } else {
                Self::Udp
            }
        }
    }

    impl Arbitrary for Request {
        fn arbitrary(g: &mut Gen) -> Self {
            if u8::arbitrary(g) % 4 == 0 {
                Self::ExternalAddress
            } else {
                Self::Map {
                    protocol: Protocol::arbitrary(g),
                    internal_port: u16::arbitrary(g),
                    suggested_external_port: u16::arbitrary(g),
                    lifetime: u32::arbitrary(g),
                }
            }
        }
    }

    impl Arbitrary for Response {
        fn arbitrary(g: &mut Gen) -> Self {
            match u8::arbitrary(g) % 3 {
                0 => Self::ExternalAddress {
                    epoch: u32::arbitrary(g),
                    address: Ipv4Addr::from(u32::arbitrary(g)),
                },
                1 => Self::Map {
                    protocol: Protocol::arbitrary(g),
                    epoch: u32::arbitrary(g),
                    internal_port: u16::arbitrary(g),
                    external_port: u16::arbitrary(g),
                    lifetime: u32::arbitrary(g),
                },
                _ => Self::Failure {
                    opcode: u8::arbitrary(g) % 3,
                    result: ResultCode::from_u16(u16::arbitrary(g).max(1))
                        .unwrap_or(ResultCode::NotAuthorized),
                    epoch: u32::arbitrary(g),
                },
            }
        }
    }

    #[quickcheck]
    fn request_round_trips(req: Request) -> bool {
        Request::decode(&req.encode()) == Ok(req)
    }

    #[quickcheck]
    fn response_round_trips(resp: Response) -> bool {
        Response::decode(&resp.encode()) == Ok(resp)
    }

    #[quickcheck]
    fn decode_never_panics(data: Vec<u8>) -> bool {
        let _ = Response::decode(&data);
        let _ = Request::decode(&data);
        true
    }

    #[quickcheck]
    fn strict_prefixes_of_success_fail(resp: Response) -> bool {
        let bytes = resp.encode();
        // A prefix of a success with 8+ bytes is never a Failure (its result is 0).
        (0..bytes.len()).all(|n| Response::decode(&bytes[..n]).is_err())
    }

    #[test]
    fn fixtures() {
        // External address answer: epoch 1234, 203.0.113.7.
        let ext = [0, 128, 0, 0, 0, 0, 4, 210, 203, 0, 113, 7];
        assert_eq!(
            Response::decode(&ext),
            Ok(Response::ExternalAddress {
                epoch: 1234,
                address: Ipv4Addr::new(203, 0, 113, 7)
            })
        );
        // TCP map answer: 6881 -> 6881, 7200 s.
        let map = [
            0, 130, 0, 0, 0, 0, 0, 9, 0x1a, 0xe1, 0x1a, 0xe1, 0, 0, 0x1c, 0x20,
        ];
        assert_eq!(
            Response::decode(&map),
            Ok(Response::Map {
                protocol: Protocol::Tcp,
                epoch: 9,
                internal_port: 6881,
                external_port: 6881,
                lifetime: 7200
            })
        );
        // Refused.
        let refused = [0, 129, 0, 2, 0, 0, 0, 1];
        assert_eq!(
            Response::decode(&refused),
            Ok(Response::Failure {
                opcode: 1,
                result: ResultCode::NotAuthorized,
                epoch: 1
            })
        );
        assert_eq!(
            Request::Map {
                protocol: Protocol::Udp,
                internal_port: 6881,
                suggested_external_port: 6881,
                lifetime: 3600
            }
            .encode(),
            [0, 1, 0, 0, 0x1a, 0xe1, 0x1a, 0xe1, 0, 0, 0x0e, 0x10]
        );
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
        assert_eq!(
            Response::decode(&read("natpmp-external-address")),
            Ok(Response::ExternalAddress {
                epoch: 2,
                address: Ipv4Addr::new(93, 184, 216, 34)
            })
        );
        assert_eq!(
            Response::decode(&read("natpmp-map-tcp")),
            Ok(Response::Map {
                protocol: Protocol::Tcp,
                epoch: 2,
                internal_port: 6881,
                external_port: 6881,
                lifetime: 3600
            })
        );
        assert_eq!(
            Response::decode(&read("natpmp-unmap-tcp")),
            Ok(Response::Map {
                protocol: Protocol::Tcp,
                epoch: 2,
                internal_port: 6881,
                external_port: 0,
                lifetime: 0
            })
        );
    }

    #[test]
    fn malformed_replies_are_typed_errors() {
        assert_eq!(
            Response::decode(&[]),
            Err(Error::PacketTooShort { len: 0, min: 1 })
        );
        assert_eq!(
            Response::decode(&[2, 129, 0, 0]),
            Err(Error::UnsupportedVersion(2))
        );
        assert_eq!(
            Response::decode(&[0, 1, 0, 0, 0, 0, 0, 0]),
            Err(Error::WrongDirection)
        );
        assert_eq!(
            Response::decode(&[0, 131, 0, 0, 0, 0, 0, 0]),
            Err(Error::UnexpectedOpcode(131))
        );
        let mut long = vec![0, 128, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5];
        assert!(matches!(
            Response::decode(&long),
            Err(Error::PacketTooLong { .. })
        ));
        long.resize(5000, 0);
        assert_eq!(
            Response::decode(&long),
            Err(Error::PacketTooLong {
                len: 5000,
                max: MAX_PMP_PACKET
            })
        );
    }
}
