//! `ut_holepunch` (BEP 55): asking a relaying peer to introduce us to a peer behind a NAT.
//!
//! ```text
//! msg_type (1) | addr_type (1: 0 IPv4, 1 IPv6) | addr (4 or 16) | port (2) | err_code (4)
//! ```

use std::net::{IpAddr, SocketAddr};

use bytes::{BufMut, BytesMut};

use crate::Error;

/// What a holepunch message asks or reports.
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum HolepunchKind {
    /// Initiator to relay: connect me to `addr` (0).
    Rendezvous,
    /// Relay to both ends: connect (uTP) to `addr` now (1).
    Connect,
    /// Relay to initiator: the rendezvous failed (2).
    Error,
}

/// BEP 55 error codes (`err_code`, 0 in non-error messages).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct HolepunchError(pub u32);

impl HolepunchError {
    /// No error.
    pub const NONE: Self = Self(0);
    /// The target endpoint is invalid.
    pub const NO_SUCH_PEER: Self = Self(1);
    /// The relay is not connected to the target.
    pub const NOT_CONNECTED: Self = Self(2);
    /// The target does not support holepunching.
    pub const NO_SUPPORT: Self = Self(3);
    /// The target is the relay itself.
    pub const NO_SELF: Self = Self(4);
}

/// A ut_holepunch message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct HolepunchMessage {
    /// Message type.
    pub kind: HolepunchKind,
    /// The endpoint the message is about.
    pub addr: SocketAddr,
    /// The error (nonzero only for [`HolepunchKind::Error`]).
    pub error: HolepunchError,
}

impl HolepunchMessage {
    /// Parses a payload.
    ///
    /// # Errors
    /// [`Error::BadExtensionMessage`] for an unknown type or address type or a wrong length.
    pub fn decode(p: &[u8]) -> Result<Self, Error> {
        let bad = Error::BadExtensionMessage;
        let (&t, rest) = p.split_first().ok_or_else(|| bad("holepunch too short"))?;
        let kind = match t {
            0 => HolepunchKind::Rendezvous,
            1 => HolepunchKind::Connect,
            2 => HolepunchKind::Error,
            _ => return Err(bad("holepunch msg_type")),
        };
        let (&at, rest) = rest
            .split_first()
            .ok_or_else(|| bad("holepunch too short"))?;
        let (ip, rest): (IpAddr, &[u8]) = match at {
            0 if rest.len() == 4 + 6 => {
                let (a, r) = rest.split_at(4);
                (
                    <[u8; 4]>::try_from(a).map_err(|_| bad("holepunch"))?.into(),
                    r,
                )
            }
            1 if rest.len() == 16 + 6 => {
                let (a, r) = rest.split_at(16);
                (
                    <[u8; 16]>::try_from(a)
                        .map_err(|_| bad("holepunch"))?
                        .into(),
                    r,
                )
            }
            0 | 1 => return Err(bad("holepunch length")),
            _ => return Err(bad("holepunch addr_type")),
        };
        let port = u16::from_be_bytes([rest[0], rest[1]]);
        let error = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]);
        Ok(Self {
            kind,
            addr: SocketAddr::new(ip, port),
            error: HolepunchError(error),
        })
    }

    /// Writes the payload.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(match self.kind {
            HolepunchKind::Rendezvous => 0,
            HolepunchKind::Connect => 1,
            HolepunchKind::Error => 2,
        });
        match self.addr.ip() {
            IpAddr::V4(v4) => {
                out.put_u8(0);
                out.put_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                out.put_u8(1);
                out.put_slice(&v6.octets());
            }
        }
        out.put_u16(self.addr.port());
        out.put_u32(self.error.0);
    }
}

#[cfg(feature = "quickcheck")]
impl quickcheck::Arbitrary for HolepunchMessage {
    fn arbitrary(g: &mut quickcheck::Gen) -> Self {
        let kind = *g
            .choose(&[
                HolepunchKind::Rendezvous,
                HolepunchKind::Connect,
                HolepunchKind::Error,
            ])
            .unwrap_or(&HolepunchKind::Connect);
        Self {
            kind,
            addr: SocketAddr::arbitrary(g),
            error: HolepunchError(u32::arbitrary(g)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let m = HolepunchMessage {
            kind: HolepunchKind::Error,
            addr: "[::1]:6881".parse().unwrap(),
            error: HolepunchError::NOT_CONNECTED,
        };
        let mut out = BytesMut::new();
        m.encode(&mut out);
        assert_eq!(out.len(), 1 + 1 + 16 + 2 + 4);
        assert_eq!(HolepunchMessage::decode(&out), Ok(m));
        assert!(HolepunchMessage::decode(&[0, 0, 1, 2, 3]).is_err());
        assert!(HolepunchMessage::decode(&[3, 0, 1, 2, 3, 4, 0, 1, 0, 0, 0, 0]).is_err());
        assert!(HolepunchMessage::decode(&[0, 2, 1, 2, 3, 4, 0, 1, 0, 0, 0, 0]).is_err());
        assert!(HolepunchMessage::decode(&[]).is_err());
    }
}
