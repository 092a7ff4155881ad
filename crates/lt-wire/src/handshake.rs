//! The BEP 3 handshake: protocol string, reserved bits, info-hash, peer id.
//!
//! ```text
//! 19 "BitTorrent protocol" | reserved (8) | info-hash (20) | peer id (20)   = 68 bytes
//! ```
//!
//! The incoming side learns the info-hash from the first 48 bytes, before the peer id, so it
//! can pick the torrent (and answer with its own handshake) before the peer sends its id:
//! [`HandshakeDecoder`] yields the two parts as separate frames.

use bytes::{Buf, BufMut, BytesMut};
use lt_core::{InfoHash, PeerId, Sha1Hash};

use crate::Error;

/// The 20-byte prefix: length 19 and `BitTorrent protocol`.
pub const PROTOCOL: &[u8; 20] = b"\x13BitTorrent protocol";
/// Length of a whole handshake.
pub const HANDSHAKE_LEN: usize = 68;
/// Length of the part before the peer id.
pub const HANDSHAKE_HEAD_LEN: usize = 48;

/// The 8 reserved bytes of the handshake, where peers announce optional features.
///
/// ```
/// use lt_wire::Reserved;
/// let r = Reserved::default().with_dht(true).with_fast(true).with_extensions(true);
/// assert_eq!(r.0, [0, 0, 0, 0, 0, 0x10, 0, 0x05]);
/// assert!(r.fast() && r.extensions() && !r.v2_upgrade());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct Reserved(pub [u8; 8]);

macro_rules! reserved_bit {
    ($get:ident, $with:ident, $byte:literal, $mask:literal, $doc:literal) => {
        #[doc = concat!("Whether the peer supports ", $doc, ".")]
        #[must_use]
        pub const fn $get(&self) -> bool {
            self.0[$byte] & $mask != 0
        }

        #[doc = concat!("Sets or clears the bit for ", $doc, ".")]
        #[must_use]
        pub const fn $with(mut self, on: bool) -> Self {
            if on {
                self.0[$byte] |= $mask;
            } else {
                self.0[$byte] &= !$mask;
            }
            self
        }
    };
}

impl Reserved {
    reserved_bit!(
        dht,
        with_dht,
        7,
        0x01,
        "the DHT and the PORT message (BEP 5)"
    );
    reserved_bit!(fast, with_fast, 7, 0x04, "the fast extension (BEP 6)");
    reserved_bit!(
        extensions,
        with_extensions,
        5,
        0x10,
        "the extension protocol (BEP 10)"
    );
    reserved_bit!(
        v2_upgrade,
        with_v2_upgrade,
        7,
        0x10,
        "BitTorrent v2 on a hybrid torrent (BEP 52 upgrade bit)"
    );
}

/// A complete handshake.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Handshake {
    /// Feature bits.
    pub reserved: Reserved,
    /// The torrent: a v1 info-hash, or a v2 one truncated to 20 bytes (BEP 52).
    pub info_hash: Sha1Hash,
    /// The sender's peer id.
    pub peer_id: PeerId,
}

impl Handshake {
    /// Our handshake for `torrent`. For a v2-only torrent the info-hash is the SHA-256
    /// truncated to 20 bytes; for a hybrid one it is the v1 hash and, when `reserved` does
    /// not already say so, the v2 upgrade bit is set (BEP 52).
    #[must_use]
    pub fn for_torrent(torrent: &InfoHash, reserved: Reserved, peer_id: PeerId) -> Self {
        let reserved = if torrent.is_hybrid() {
            reserved.with_v2_upgrade(true)
        } else {
            reserved
        };
        Self {
            reserved,
            info_hash: torrent.best(),
            peer_id,
        }
    }

    /// Writes the 68 bytes.
    pub fn encode<B: BufMut + ?Sized>(&self, out: &mut B) {
        out.put_slice(PROTOCOL);
        out.put_slice(&self.reserved.0);
        out.put_slice(self.info_hash.as_bytes());
        out.put_slice(self.peer_id.as_bytes());
    }

    /// The 68 bytes as an array.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        self.encode(&mut &mut out[..]);
        out
    }

    /// Parses exactly one handshake.
    ///
    /// # Errors
    /// [`Error::BadProtocol`] if the prefix is wrong or the length is not 68.
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        if buf.len() != HANDSHAKE_LEN || !buf.starts_with(PROTOCOL) {
            return Err(Error::BadProtocol);
        }
        let (head, id) = buf.split_at(HANDSHAKE_HEAD_LEN);
        let (reserved, info_hash) = parse_head(head);
        let peer_id = PeerId::from_slice(id).ok_or(Error::BadProtocol)?;
        Ok(Self {
            reserved,
            info_hash,
            peer_id,
        })
    }
}

/// One part of a handshake as [`HandshakeDecoder`] yields it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HandshakeFrame {
    /// The first 48 bytes: enough to pick the torrent.
    Head {
        /// Feature bits.
        reserved: Reserved,
        /// The torrent.
        info_hash: Sha1Hash,
    },
    /// The last 20 bytes.
    PeerId(PeerId),
}

/// Streaming decoder of an incoming handshake, in two frames (head, then peer id).
///
/// It follows tokio-util's contract: `Ok(None)` means "need more bytes". A wrong protocol
/// string is reported as soon as the first wrong byte arrives.
///
/// ```
/// use bytes::BytesMut;
/// use lt_wire::{Handshake, HandshakeDecoder, HandshakeFrame, Reserved};
/// let hs = Handshake { reserved: Reserved::default(), info_hash: [1; 20].into(), peer_id: [2; 20].into() };
/// let mut buf = BytesMut::from(&hs.to_bytes()[..]);
/// let mut dec = HandshakeDecoder::new();
/// assert!(matches!(dec.decode(&mut buf)?, Some(HandshakeFrame::Head { .. })));
/// assert_eq!(dec.decode(&mut buf)?, Some(HandshakeFrame::PeerId([2; 20].into())));
/// assert_eq!(dec.decode(&mut buf)?, None);
/// # Ok::<(), lt_wire::Error>(())
/// ```
#[derive(Debug, Default, Clone)]
pub struct HandshakeDecoder {
    state: HsState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum HsState {
    #[default]
    Head,
    PeerId,
    Done,
}

impl HandshakeDecoder {
    /// A decoder waiting for the head.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether both frames have been decoded.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == HsState::Done
    }

    /// Decodes the next frame from the front of `buf`, consuming its bytes.
    ///
    /// # Errors
    /// [`Error::BadProtocol`] when the protocol prefix is wrong.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<HandshakeFrame>, Error> {
        match self.state {
            HsState::Head => {
                let n = buf.len().min(PROTOCOL.len());
                if buf[..n] != PROTOCOL[..n] {
                    return Err(Error::BadProtocol);
                }
                if buf.len() < HANDSHAKE_HEAD_LEN {
                    return Ok(None);
                }
                let head = buf.split_to(HANDSHAKE_HEAD_LEN);
                let (reserved, info_hash) = parse_head(&head);
                self.state = HsState::PeerId;
                Ok(Some(HandshakeFrame::Head {
                    reserved,
                    info_hash,
                }))
            }
            HsState::PeerId => {
                if buf.len() < PeerId::LEN {
                    return Ok(None);
                }
                let mut id = [0u8; PeerId::LEN];
                buf.copy_to_slice(&mut id);
                self.state = HsState::Done;
                Ok(Some(HandshakeFrame::PeerId(PeerId::new(id))))
            }
            HsState::Done => Ok(None),
        }
    }
}

/// Splits a 48-byte head (prefix already checked) into reserved bits and info-hash.
fn parse_head(head: &[u8]) -> (Reserved, Sha1Hash) {
    let mut reserved = [0u8; 8];
    let mut info_hash = [0u8; 20];
    if let (Some(r), Some(h)) = (head.get(20..28), head.get(28..48)) {
        reserved.copy_from_slice(r);
        info_hash.copy_from_slice(h);
    }
    (Reserved(reserved), Sha1Hash::new(info_hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_at_a_time() {
        let hs = Handshake {
            reserved: Reserved::default().with_fast(true),
            info_hash: Sha1Hash::new([7; 20]),
            peer_id: PeerId::new([9; 20]),
        };
        let bytes = hs.to_bytes();
        let mut dec = HandshakeDecoder::new();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for b in bytes {
            buf.extend_from_slice(&[b]);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(
            frames,
            [
                HandshakeFrame::Head {
                    reserved: hs.reserved,
                    info_hash: hs.info_hash
                },
                HandshakeFrame::PeerId(hs.peer_id)
            ]
        );
        assert_eq!(Handshake::decode(&bytes), Ok(hs));
    }

    #[test]
    fn wrong_protocol_fails_on_first_byte() {
        let mut dec = HandshakeDecoder::new();
        let mut buf = BytesMut::from(&b"\x14"[..]);
        assert_eq!(dec.decode(&mut buf), Err(Error::BadProtocol));
        assert_eq!(Handshake::decode(&[0; 68]), Err(Error::BadProtocol));
    }

    #[test]
    fn hybrid_sets_upgrade_bit() {
        let ih = InfoHash::hybrid(Sha1Hash::new([1; 20]), lt_core::Sha256Hash::new([2; 32]));
        let hs = Handshake::for_torrent(&ih, Reserved::default(), PeerId::new([0; 20]));
        assert!(hs.reserved.v2_upgrade());
        assert_eq!(hs.info_hash, Sha1Hash::new([1; 20]));
        let v2 = InfoHash::v2(lt_core::Sha256Hash::new([3; 32]));
        let hs = Handshake::for_torrent(&v2, Reserved::default(), PeerId::new([0; 20]));
        assert_eq!(hs.info_hash, Sha1Hash::new([3; 20]));
    }
}
