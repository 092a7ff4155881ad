//! The BEP 29 packet format (version 1).
//!
//! ```text
//!  0       4       8               16              24              32
//! +-------+-------+---------------+---------------+---------------+
//! | type  | ver   | extension     | connection_id                 |
//! +-------+-------+---------------+---------------+---------------+
//! | timestamp_microseconds                                        |
//! +---------------+---------------+---------------+---------------+
//! | timestamp_difference_microseconds                             |
//! +---------------+---------------+---------------+---------------+
//! | wnd_size                                                      |
//! +---------------+---------------+---------------+---------------+
//! | seq_nr                        | ack_nr                        |
//! +---------------+---------------+---------------+---------------+
//! ```
//!
//! Extensions follow as a chain of `(next_extension, len, len bytes)`; type 1 is the
//! selective ACK. Unknown extensions are skipped (BEP 29: "extensions are linked").

use crate::Error;
use crate::limits::{HEADER_LEN, MAX_EXTENSIONS, MAX_SACK_BYTES};

/// BEP 29 packet type (the high nibble of the first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// ST_DATA (0): a packet with payload.
    Data,
    /// ST_FIN (1): the last packet; the sender sends no more data.
    Fin,
    /// ST_STATE (2): an acknowledgement without payload; does not consume a sequence number.
    State,
    /// ST_RESET (3): terminate the connection forcefully.
    Reset,
    /// ST_SYN (4): opens a connection.
    Syn,
}

impl PacketType {
    /// The type's wire value.
    #[must_use]
    pub const fn to_u8(self) -> u8 {
        match self {
            Self::Data => 0,
            Self::Fin => 1,
            Self::State => 2,
            Self::Reset => 3,
            Self::Syn => 4,
        }
    }

    /// The type for a wire value, if it is one.
    #[must_use]
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Data,
            1 => Self::Fin,
            2 => Self::State,
            3 => Self::Reset,
            4 => Self::Syn,
            _ => return None,
        })
    }
}

/// The uTP protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Extension id of the selective ACK (BEP 29).
pub const EXT_SACK: u8 = 1;
/// Extension id lt-utp pads path MTU probes with (zero bytes, skipped by every receiver
/// as an unknown extension; libtorrent uses ids 1 to 3).
pub const EXT_PADDING: u8 = 0x5a;

/// The fixed 20-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Packet type.
    pub ty: PacketType,
    /// Connection id: the receiver's id for this connection (the SYN carries the
    /// initiator's receive id).
    pub connection_id: u16,
    /// Sender's clock, microseconds, wrapping.
    pub timestamp_us: u32,
    /// The sender's clock minus the timestamp of the last packet it received, wrapping.
    pub timestamp_diff_us: u32,
    /// Bytes the sender can still receive.
    pub wnd_size: u32,
    /// This packet's sequence number.
    pub seq_nr: u16,
    /// The last sequence number the sender received in order.
    pub ack_nr: u16,
}

/// A selective ACK bitmask (BEP 29): bit `i` (LSB first in each byte) acknowledges
/// `ack_nr + 2 + i`. Ours are a multiple of 4 bytes long, as BEP 29 asks; received ones
/// may have any length (libtorrent 2.0 sends 3-byte masks), and only the first
/// [`MAX_SACK_BYTES`] are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SelectiveAck {
    bits: [u8; MAX_SACK_BYTES],
    len: u8,
}

impl std::fmt::Debug for SelectiveAck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.acked()).finish()
    }
}

impl SelectiveAck {
    /// A SACK of `bytes` bytes (rounded up to a multiple of 4, capped at [`MAX_SACK_BYTES`])
    /// with no bit set.
    #[must_use]
    pub fn new(bytes: usize) -> Self {
        let len = bytes
            .clamp(4, MAX_SACK_BYTES)
            .next_multiple_of(4)
            .min(MAX_SACK_BYTES);
        Self {
            bits: [0; MAX_SACK_BYTES],
            len: u8::try_from(len).unwrap_or(4),
        }
    }

    /// Parses a bitmask received from a peer. An empty one is an error; bytes past
    /// [`MAX_SACK_BYTES`] only acknowledge packets further out and are ignored, so the
    /// packet (and its payload) still counts.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.is_empty() {
            return Err(Error::BadSackLength(0));
        }
        let kept = &bytes[..bytes.len().min(MAX_SACK_BYTES)];
        let mut bits = [0; MAX_SACK_BYTES];
        bits[..kept.len()].copy_from_slice(kept);
        Ok(Self {
            bits,
            len: u8::try_from(kept.len()).unwrap_or(u8::MAX),
        })
    }

    /// The bitmask as sent on the wire.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits[..usize::from(self.len)]
    }

    /// Number of packets the mask covers (8 per byte).
    #[must_use]
    pub fn capacity(&self) -> usize {
        usize::from(self.len) * 8
    }

    /// Marks `ack_nr + 2 + i` as received; ignored past [`capacity`](Self::capacity).
    pub fn set(&mut self, i: usize) {
        if i < self.capacity() {
            self.bits[i / 8] |= 1 << (i % 8);
        }
    }

    /// Whether `ack_nr + 2 + i` is marked received.
    #[must_use]
    pub fn get(&self, i: usize) -> bool {
        i < self.capacity() && self.bits[i / 8] & (1 << (i % 8)) != 0
    }

    /// Offsets `i` (packet `ack_nr + 2 + i`) marked received, in increasing order.
    pub fn acked(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.capacity()).filter(|&i| self.get(i))
    }
}

/// A decoded packet, borrowing its payload from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The fixed header.
    pub header: Header,
    /// The selective ACK extension, if present.
    pub sack: Option<SelectiveAck>,
    /// Payload bytes (ST_DATA; other types normally carry none).
    pub payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Decodes one datagram. Unknown extensions are skipped (at most [`MAX_EXTENSIONS`]);
    /// everything after the extension chain is payload.
    pub fn decode(buf: &'a [u8]) -> Result<Self, Error> {
        let truncated = Error::Truncated { len: buf.len() };
        let Some((head, mut rest)) = buf.split_first_chunk::<HEADER_LEN>() else {
            return Err(truncated);
        };
        let version = head[0] & 0x0f;
        if version != VERSION {
            return Err(Error::BadVersion(version));
        }
        let ty = PacketType::from_u8(head[0] >> 4).ok_or(Error::BadType(head[0] >> 4))?;
        let u16_at = |i: usize| u16::from_be_bytes([head[i], head[i + 1]]);
        let u32_at =
            |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let header = Header {
            ty,
            connection_id: u16_at(2),
            timestamp_us: u32_at(4),
            timestamp_diff_us: u32_at(8),
            wnd_size: u32_at(12),
            seq_nr: u16_at(16),
            ack_nr: u16_at(18),
        };
        let mut sack = None;
        let mut next = head[1];
        let mut count = 0;
        while next != 0 {
            count += 1;
            if count > MAX_EXTENSIONS {
                return Err(Error::TooManyExtensions {
                    max: MAX_EXTENSIONS,
                });
            }
            let Some((&[following, len], tail)) = rest.split_first_chunk::<2>() else {
                return Err(truncated);
            };
            let len = usize::from(len);
            if tail.len() < len {
                return Err(truncated);
            }
            let (data, tail) = tail.split_at(len);
            if next == EXT_SACK {
                if sack.is_some() {
                    return Err(Error::DuplicateSack);
                }
                sack = Some(SelectiveAck::from_bytes(data)?);
            } else {
                tracing::trace!(ext = next, len, "skipping unknown uTP extension");
            }
            next = following;
            rest = tail;
        }
        Ok(Self {
            header,
            sack,
            payload: rest,
        })
    }

    /// Encoded length in bytes.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.sack.map_or(0, |s| 2 + s.as_bytes().len()) + self.payload.len()
    }

    /// Appends the encoded packet to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_padded(out, 0);
    }

    /// Appends the encoded packet followed by about `padding` bytes of [`EXT_PADDING`]
    /// extensions (each at most 257 bytes; a single left-over byte is not padded, and
    /// at most `MAX_EXTENSIONS - 1` padding extensions are written). Path MTU probes are
    /// padded this way: receivers skip unknown extensions (BEP 29), so the payload is a
    /// normal one and can be sent again unpadded when the probe is lost.
    pub fn encode_padded(&self, out: &mut Vec<u8>, padding: usize) {
        let h = &self.header;
        let mut pads = [0u8; MAX_EXTENSIONS];
        let mut count = 0;
        let mut rem = padding.min((MAX_EXTENSIONS - 1) * (2 + usize::from(u8::MAX)));
        while rem >= 2 && count < MAX_EXTENSIONS - 1 {
            let mut chunk = rem.min(2 + usize::from(u8::MAX));
            if rem - chunk == 1 {
                chunk -= 1;
            }
            pads[count] = u8::try_from(chunk - 2).unwrap_or(u8::MAX);
            count += 1;
            rem -= chunk;
        }
        let pads = &pads[..count];
        out.reserve(self.encoded_len() + padding);
        out.push(h.ty.to_u8() << 4 | VERSION);
        out.push(match (self.sack.is_some(), pads.is_empty()) {
            (true, _) => EXT_SACK,
            (false, false) => EXT_PADDING,
            (false, true) => 0,
        });
        out.extend_from_slice(&h.connection_id.to_be_bytes());
        out.extend_from_slice(&h.timestamp_us.to_be_bytes());
        out.extend_from_slice(&h.timestamp_diff_us.to_be_bytes());
        out.extend_from_slice(&h.wnd_size.to_be_bytes());
        out.extend_from_slice(&h.seq_nr.to_be_bytes());
        out.extend_from_slice(&h.ack_nr.to_be_bytes());
        if let Some(sack) = &self.sack {
            let bytes = sack.as_bytes();
            out.push(if pads.is_empty() { 0 } else { EXT_PADDING });
            // Length is at most MAX_SACK_BYTES (32), so it fits a byte.
            out.push(u8::try_from(bytes.len()).unwrap_or(0));
            out.extend_from_slice(bytes);
        }
        for (i, &len) in pads.iter().enumerate() {
            out.push(if i + 1 < pads.len() { EXT_PADDING } else { 0 });
            out.push(len);
            out.resize(out.len() + usize::from(len), 0);
        }
        out.extend_from_slice(self.payload);
    }
}

#[cfg(feature = "quickcheck")]
mod arbitrary {
    use super::{Header, PacketType, SelectiveAck};
    use quickcheck::{Arbitrary, Gen};

    impl Arbitrary for PacketType {
        fn arbitrary(g: &mut Gen) -> Self {
            Self::from_u8(u8::arbitrary(g) % 5).unwrap_or(Self::Data)
        }
    }

    impl Arbitrary for Header {
        fn arbitrary(g: &mut Gen) -> Self {
            Self {
                ty: PacketType::arbitrary(g),
                connection_id: u16::arbitrary(g),
                timestamp_us: u32::arbitrary(g),
                timestamp_diff_us: u32::arbitrary(g),
                wnd_size: u32::arbitrary(g),
                seq_nr: u16::arbitrary(g),
                ack_nr: u16::arbitrary(g),
            }
        }
    }

    impl Arbitrary for SelectiveAck {
        fn arbitrary(g: &mut Gen) -> Self {
            let mut s = Self::new((usize::arbitrary(g) % 8 + 1) * 4);
            for _ in 0..usize::arbitrary(g) % 64 {
                s.set(usize::arbitrary(g) % s.capacity());
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            ty: PacketType::Data,
            connection_id: 0x1234,
            timestamp_us: 0xdead_beef,
            timestamp_diff_us: 7,
            wnd_size: 65536,
            seq_nr: 9,
            ack_nr: 0xffff,
        }
    }

    #[test]
    fn golden_header() {
        let p = Packet {
            header: header(),
            sack: None,
            payload: b"hi",
        };
        let mut out = Vec::new();
        p.encode(&mut out);
        assert_eq!(
            out,
            [
                0x01, 0, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 7, 0, 1, 0, 0, 0, 9, 0xff,
                0xff, b'h', b'i'
            ]
        );
        assert_eq!(Packet::decode(&out), Ok(p));
    }

    #[test]
    fn sack_and_unknown_extension() {
        let mut out = Vec::new();
        let mut h = header();
        h.ty = PacketType::State;
        Packet {
            header: h,
            sack: None,
            payload: &[],
        }
        .encode(&mut out);
        // extension chain: unknown ext 7 (3 bytes) -> sack (4 bytes) -> end, then payload.
        out[1] = 7;
        out.extend_from_slice(&[EXT_SACK, 3, 9, 9, 9, 0, 4, 0b101, 0, 0, 0x80, b'x']);
        let p = Packet::decode(&out).expect("valid");
        let sack = p.sack.expect("sack");
        assert_eq!(sack.acked().collect::<Vec<_>>(), [0, 2, 31]);
        assert_eq!(p.payload, b"x");
    }

    #[test]
    fn rejects() {
        let mut out = Vec::new();
        Packet {
            header: header(),
            sack: None,
            payload: &[],
        }
        .encode(&mut out);
        assert_eq!(
            Packet::decode(&out[..19]),
            Err(Error::Truncated { len: 19 })
        );
        let mut v = out.clone();
        v[0] = 0x02;
        assert_eq!(Packet::decode(&v), Err(Error::BadVersion(2)));
        v[0] = 0x51;
        assert_eq!(Packet::decode(&v), Err(Error::BadType(5)));
        let mut v = out.clone();
        v[1] = EXT_SACK;
        v.extend_from_slice(&[0, 0]);
        assert_eq!(Packet::decode(&v), Err(Error::BadSackLength(0)));
        // libtorrent 2.0 sends masks of any length (3 bytes here): accepted.
        let mut v = out.clone();
        v[1] = EXT_SACK;
        v.extend_from_slice(&[0, 3, 0b11, 0, 0x80, b'p']);
        let p = Packet::decode(&v).unwrap();
        assert_eq!(p.sack.unwrap().acked().collect::<Vec<_>>(), [0, 1, 23]);
        assert_eq!(p.payload, &b"p"[..]);
        // Longer than we keep: the first 32 bytes count, the packet is not dropped.
        let mut v = out.clone();
        v[1] = EXT_SACK;
        v.extend_from_slice(&[0, 36]);
        v.extend_from_slice(&[0xff; 36]);
        let p = Packet::decode(&v).unwrap();
        assert_eq!(p.sack.unwrap().acked().count(), 256);
        let mut v = out.clone();
        v[1] = EXT_SACK;
        v.extend_from_slice(&[EXT_SACK, 4, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0]);
        assert_eq!(Packet::decode(&v), Err(Error::DuplicateSack));
        let mut v = out.clone();
        v[1] = 9;
        v.extend_from_slice(&[0, 200, 1]);
        assert_eq!(Packet::decode(&v), Err(Error::Truncated { len: 23 }));
        let mut v = out;
        v[1] = 9;
        for _ in 0..MAX_EXTENSIONS + 1 {
            v.extend_from_slice(&[9, 0]);
        }
        assert_eq!(
            Packet::decode(&v),
            Err(Error::TooManyExtensions {
                max: MAX_EXTENSIONS
            })
        );
    }

    #[quickcheck_macros::quickcheck]
    fn round_trip(header: Header, sack: Option<SelectiveAck>, payload: Vec<u8>) -> bool {
        let p = Packet {
            header,
            sack,
            payload: &payload,
        };
        let mut out = Vec::new();
        p.encode(&mut out);
        out.len() == p.encoded_len() && Packet::decode(&out) == Ok(p)
    }

    #[quickcheck_macros::quickcheck]
    fn arbitrary_bytes_never_panic(data: Vec<u8>) -> bool {
        if let Ok(p) = Packet::decode(&data) {
            // Whatever decodes re-encodes to at most the input's length (unknown
            // extensions are dropped).
            let mut out = Vec::new();
            p.encode(&mut out);
            return out.len() <= data.len() && Packet::decode(&out) == Ok(p);
        }
        true
    }

    #[quickcheck_macros::quickcheck]
    fn arbitrary_extensions_never_panic(header: Header, chain: Vec<u8>) -> bool {
        let mut out = Vec::new();
        Packet {
            header,
            sack: None,
            payload: &[],
        }
        .encode(&mut out);
        out[1] = chain.first().copied().unwrap_or(0);
        out.extend_from_slice(chain.get(1..).unwrap_or_default());
        let _ = Packet::decode(&out);
        true
    }
}
