//! Peer wire messages (BEP 3, BEP 6 fast extension, BEP 10 envelope, BEP 52 hashes) and
//! their length-prefixed framing.
//!
//! ```text
//! <len: u32 BE> <id: u8> <payload: len - 1 bytes>      (len 0 is a keep-alive)
//! ```
//!
//! [`MessageDecoder`] checks the length prefix against [`Limits::max_message_len`] and the
//! payload size each id requires *before* it waits for the body, so a peer cannot make it
//! buffer more than the limit. A PIECE's block is split off the receive buffer as
//! [`Bytes`] without copying.
//!
//! [`Limits::max_message_len`]: crate::Limits::max_message_len

use bytes::{Buf, BufMut, Bytes, BytesMut};
use lt_core::{PieceIndex, Sha256Hash};

use crate::Error;

/// Message ids.
pub mod id {
    /// BEP 3 `choke`.
    pub const CHOKE: u8 = 0;
    /// BEP 3 `unchoke`.
    pub const UNCHOKE: u8 = 1;
    /// BEP 3 `interested`.
    pub const INTERESTED: u8 = 2;
    /// BEP 3 `not interested`.
    pub const NOT_INTERESTED: u8 = 3;
    /// BEP 3 `have`.
    pub const HAVE: u8 = 4;
    /// BEP 3 `bitfield`.
    pub const BITFIELD: u8 = 5;
    /// BEP 3 `request`.
    pub const REQUEST: u8 = 6;
    /// BEP 3 `piece`.
    pub const PIECE: u8 = 7;
    /// BEP 3 `cancel`.
    pub const CANCEL: u8 = 8;
    /// BEP 5 `port`.
    pub const PORT: u8 = 9;
    /// BEP 6 `suggest piece`.
    pub const SUGGEST: u8 = 13;
    /// BEP 6 `have all`.
    pub const HAVE_ALL: u8 = 14;
    /// BEP 6 `have none`.
    pub const HAVE_NONE: u8 = 15;
    /// BEP 6 `reject request`.
    pub const REJECT: u8 = 16;
    /// BEP 6 `allowed fast`.
    pub const ALLOWED_FAST: u8 = 17;
    /// BEP 10 extended message.
    pub const EXTENDED: u8 = 20;
    /// BEP 52 `hash request`.
    pub const HASH_REQUEST: u8 = 21;
    /// BEP 52 `hashes`.
    pub const HASHES: u8 = 22;
    /// BEP 52 `hash reject`.
    pub const HASH_REJECT: u8 = 23;
}

/// A block: `len` bytes at offset `begin` of piece `piece` (REQUEST, CANCEL, REJECT REQUEST).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct BlockRequest {
    /// The piece.
    pub piece: PieceIndex,
    /// Byte offset in the piece.
    pub begin: u32,
    /// Length in bytes.
    pub len: u32,
}

impl BlockRequest {
    /// A request for `len` bytes at `begin` of `piece`.
    #[must_use]
    pub const fn new(piece: PieceIndex, begin: u32, len: u32) -> Self {
        Self { piece, begin, len }
    }
}

/// The fields of a BEP 52 `hash request`, `hashes` and `hash reject` message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct HashRequest {
    /// The file's Merkle root.
    pub pieces_root: Sha256Hash,
    /// The layer the hashes are taken from (0 = 16 KiB leaves).
    pub base_layer: u32,
    /// Index of the first hash in the base layer.
    pub index: u32,
    /// Number of hashes from the base layer.
    pub length: u32,
    /// Number of uncle-hash layers to add as a proof.
    pub proof_layers: u32,
}

/// One peer wire message.
///
/// Payloads that can be large (bitfield, block, extended payload, hashes) are [`Bytes`]
/// views of the receive buffer.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// A zero-length message.
    KeepAlive,
    /// `choke` (0).
    Choke,
    /// `unchoke` (1).
    Unchoke,
    /// `interested` (2).
    Interested,
    /// `not interested` (3).
    NotInterested,
    /// `have` (4).
    Have(PieceIndex),
    /// `bitfield` (5): the raw bytes; [`lt_core::Bitfield::from_bytes`] checks them against
    /// the piece count.
    Bitfield(Bytes),
    /// `request` (6).
    Request(BlockRequest),
    /// `piece` (7): a block of data.
    Piece {
        /// The piece.
        piece: PieceIndex,
        /// Byte offset in the piece.
        begin: u32,
        /// The block, zero-copy.
        data: Bytes,
    },
    /// `cancel` (8).
    Cancel(BlockRequest),
    /// `port` (9): the sender's DHT port (BEP 5).
    Port(u16),
    /// `suggest piece` (13, BEP 6).
    Suggest(PieceIndex),
    /// `have all` (14, BEP 6).
    HaveAll,
    /// `have none` (15, BEP 6).
    HaveNone,
    /// `reject request` (16, BEP 6).
    Reject(BlockRequest),
    /// `allowed fast` (17, BEP 6).
    AllowedFast(PieceIndex),
    /// An extended message (20, BEP 10): the extension id and its payload; see
    /// [`ExtensionMessage`](crate::ExtensionMessage).
    Extended {
        /// 0 for the extended handshake, otherwise an id from an `m` dictionary.
        id: u8,
        /// The payload after the id byte.
        payload: Bytes,
    },
    /// `hash request` (21, BEP 52).
    HashRequest(HashRequest),
    /// `hashes` (22, BEP 52): the request fields and the hashes, 32 bytes each.
    Hashes {
        /// What the hashes answer.
        request: HashRequest,
        /// `32 * n` bytes of SHA-256 hashes.
        hashes: Bytes,
    },
    /// `hash reject` (23, BEP 52).
    HashReject(HashRequest),
    /// A message id this crate does not know, kept for forward compatibility.
    Unknown {
        /// The id (never one of the ids above).
        id: u8,
        /// The payload.
        payload: Bytes,
    },
}

/// Bytes in a hash request's fixed part: root (32) and four u32s.
const HASH_REQUEST_LEN: usize = 48;

impl Message {
    /// The message id, or `None` for a keep-alive.
    #[must_use]
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Self::KeepAlive => return None,
            Self::Choke => id::CHOKE,
            Self::Unchoke => id::UNCHOKE,
            Self::Interested => id::INTERESTED,
            Self::NotInterested => id::NOT_INTERESTED,
            Self::Have(_) => id::HAVE,
            Self::Bitfield(_) => id::BITFIELD,
            Self::Request(_) => id::REQUEST,
            Self::Piece { .. } => id::PIECE,
            Self::Cancel(_) => id::CANCEL,
            Self::Port(_) => id::PORT,
            Self::Suggest(_) => id::SUGGEST,
            Self::HaveAll => id::HAVE_ALL,
            Self::HaveNone => id::HAVE_NONE,
            Self::Reject(_) => id::REJECT,
            Self::AllowedFast(_) => id::ALLOWED_FAST,
            Self::Extended { .. } => id::EXTENDED,
            Self::HashRequest(_) => id::HASH_REQUEST,
            Self::Hashes { .. } => id::HASHES,
            Self::HashReject(_) => id::HASH_REJECT,
            Self::Unknown { id, .. } => *id,
        })
    }

    /// The number of bytes after the id byte.
    #[must_use]
    pub fn payload_len(&self) -> usize {
        match self {
            Self::KeepAlive
            | Self::Choke
            | Self::Unchoke
            | Self::Interested
            | Self::NotInterested
            | Self::HaveAll
            | Self::HaveNone => 0,
            Self::Have(_) | Self::Suggest(_) | Self::AllowedFast(_) => 4,
            Self::Bitfield(b) => b.len(),
            Self::Request(_) | Self::Cancel(_) | Self::Reject(_) => 12,
            Self::Piece { data, .. } => 8 + data.len(),
            Self::Port(_) => 2,
            Self::Extended { payload, .. } => 1 + payload.len(),
            Self::HashRequest(_) | Self::HashReject(_) => HASH_REQUEST_LEN,
            Self::Hashes { hashes, .. } => HASH_REQUEST_LEN + hashes.len(),
            Self::Unknown { payload, .. } => payload.len(),
        }
    }

    /// The whole encoded length, length prefix included.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::KeepAlive => 4,
            _ => 5 + self.payload_len(),
        }
    }

    /// Writes the message with its length prefix.
    ///
    /// A payload too large for the 32-bit length prefix (over 4 GiB) is a caller bug: it
    /// asserts in debug builds and writes a truncated length in release builds.
    pub fn encode<B: BufMut + ?Sized>(&self, out: &mut B) {
        let Some(id) = self.id() else {
            out.put_u32(0);
            return;
        };
        let len = self.payload_len().saturating_add(1);
        debug_assert!(u32::try_from(len).is_ok(), "message longer than 4 GiB");
        out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        out.put_u8(id);
        match self {
            Self::Have(p) | Self::Suggest(p) | Self::AllowedFast(p) => out.put_u32(p.get()),
            Self::Bitfield(b) => out.put_slice(b),
            Self::Request(r) | Self::Cancel(r) | Self::Reject(r) => put_request(out, r),
            Self::Piece { piece, begin, data } => {
                out.put_u32(piece.get());
                out.put_u32(*begin);
                out.put_slice(data);
            }
            Self::Port(p) => out.put_u16(*p),
            Self::Extended { id, payload } => {
                out.put_u8(*id);
                out.put_slice(payload);
            }
            Self::HashRequest(r) | Self::HashReject(r) => put_hash_request(out, r),
            Self::Hashes { request, hashes } => {
                put_hash_request(out, request);
                out.put_slice(hashes);
            }
            Self::Unknown { payload, .. } => out.put_slice(payload),
            _ => {}
        }
    }

    /// The encoded message as a fresh buffer.
    #[must_use]
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out.freeze()
    }

    /// Parses one message without its length prefix (`frame` starts with the id byte;
    /// empty means keep-alive).
    ///
    /// # Errors
    /// [`Error::BadMessageLength`] when the payload size does not fit the id.
    pub fn decode_frame(mut frame: Bytes) -> Result<Self, Error> {
        let Some(&msg_id) = frame.first() else {
            return Ok(Self::KeepAlive);
        };
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        check_len(msg_id, len)?;
        frame.advance(1);
        Ok(match msg_id {
            id::CHOKE => Self::Choke,
            id::UNCHOKE => Self::Unchoke,
            id::INTERESTED => Self::Interested,
            id::NOT_INTERESTED => Self::NotInterested,
            id::HAVE_ALL => Self::HaveAll,
            id::HAVE_NONE => Self::HaveNone,
            id::HAVE => Self::Have(PieceIndex::new(frame.get_u32())),
            id::SUGGEST => Self::Suggest(PieceIndex::new(frame.get_u32())),
            id::ALLOWED_FAST => Self::AllowedFast(PieceIndex::new(frame.get_u32())),
            id::BITFIELD => Self::Bitfield(frame),
            id::REQUEST => Self::Request(get_request(&mut frame)),
            id::CANCEL => Self::Cancel(get_request(&mut frame)),
            id::REJECT => Self::Reject(get_request(&mut frame)),
            id::PIECE => {
                let piece = PieceIndex::new(frame.get_u32());
                let begin = frame.get_u32();
                Self::Piece {
                    piece,
                    begin,
                    data: frame,
                }
            }
            id::PORT => Self::Port(frame.get_u16()),
            id::EXTENDED => {
                let id = frame.get_u8();
                Self::Extended { id, payload: frame }
            }
            id::HASH_REQUEST => Self::HashRequest(get_hash_request(&mut frame)),
            id::HASH_REJECT => Self::HashReject(get_hash_request(&mut frame)),
            id::HASHES => {
                let request = get_hash_request(&mut frame);
                Self::Hashes {
                    request,
                    hashes: frame,
                }
            }
            id => Self::Unknown { id, payload: frame },
        })
    }

    /// Parses exactly one length-prefixed message, rejecting trailing bytes.
    ///
    /// # Errors
    /// As [`MessageDecoder::decode`], plus [`Error::BadMessageLength`] when `buf` holds less
    /// or more than one message.
    pub fn decode(buf: &[u8], max_len: u32) -> Result<Self, Error> {
        let mut bytes = BytesMut::from(buf);
        let mut dec = MessageDecoder::new(max_len);
        match dec.decode(&mut bytes)? {
            Some(m) if bytes.is_empty() => Ok(m),
            _ => Err(Error::BadMessageLength {
                id: buf.get(4).copied().unwrap_or(0),
                len: u32::try_from(buf.len()).unwrap_or(u32::MAX),
            }),
        }
    }
}

/// The 13-byte header of a PIECE message carrying `len` bytes, for sending the block from
/// its own buffer with a vectored write instead of copying it behind the header.
#[must_use]
pub fn piece_header(piece: PieceIndex, begin: u32, len: u32) -> [u8; 13] {
    let mut h = [0u8; 13];
    let mut w = &mut h[..];
    w.put_u32(len.saturating_add(9));
    w.put_u8(id::PIECE);
    w.put_u32(piece.get());
    w.put_u32(begin);
    h
}

/// Checks a frame's length (id byte included) against what its id requires.
fn check_len(msg_id: u8, len: u32) -> Result<(), Error> {
    let ok = match msg_id {
        id::CHOKE
        | id::UNCHOKE
        | id::INTERESTED
        | id::NOT_INTERESTED
        | id::HAVE_ALL
        | id::HAVE_NONE => len == 1,
        id::HAVE | id::SUGGEST | id::ALLOWED_FAST => len == 5,
        id::REQUEST | id::CANCEL | id::REJECT => len == 13,
        id::PIECE => len >= 9,
        id::PORT => len == 3,
        id::EXTENDED => len >= 2,
        id::HASH_REQUEST | id::HASH_REJECT => len == 49,
        id::HASHES => len >= 49 && (len - 49).is_multiple_of(32),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::BadMessageLength { id: msg_id, len })
    }
}

fn put_request<B: BufMut + ?Sized>(out: &mut B, r: &BlockRequest) {
    out.put_u32(r.piece.get());
    out.put_u32(r.begin);
    out.put_u32(r.len);
}

fn get_request(b: &mut Bytes) -> BlockRequest {
    BlockRequest {
        piece: PieceIndex::new(b.get_u32()),
        begin: b.get_u32(),
        len: b.get_u32(),
    }
}

fn put_hash_request<B: BufMut + ?Sized>(out: &mut B, r: &HashRequest) {
    out.put_slice(r.pieces_root.as_bytes());
    out.put_u32(r.base_layer);
    out.put_u32(r.index);
    out.put_u32(r.length);
    out.put_u32(r.proof_layers);
}

fn get_hash_request(b: &mut Bytes) -> HashRequest {
    let mut root = [0u8; 32];
    b.copy_to_slice(&mut root);
    HashRequest {
        pieces_root: Sha256Hash::new(root),
        base_layer: b.get_u32(),
        index: b.get_u32(),
        length: b.get_u32(),
        proof_layers: b.get_u32(),
    }
}

/// Length-prefixed framing with tokio-util's decoder contract.
///
/// `decode` returns `Ok(None)` when it needs more bytes, `Ok(Some(message))` for each
/// complete message (consuming its bytes from the front of the buffer) and `Err` when the
/// peer broke the protocol. The length prefix is parsed once (`Head`, then `Body(len)`
/// state); it is checked against the limit and the id's required size before the body is
/// awaited. Data may arrive one byte at a time.
///
/// ```
/// use bytes::BytesMut;
/// use lt_wire::{Message, MessageDecoder};
/// let mut buf = BytesMut::new();
/// Message::Interested.encode(&mut buf);
/// Message::KeepAlive.encode(&mut buf);
/// let mut dec = MessageDecoder::new(lt_wire::limits::DEFAULT_MAX_MESSAGE_LEN);
/// assert_eq!(dec.decode(&mut buf)?, Some(Message::Interested));
/// assert_eq!(dec.decode(&mut buf)?, Some(Message::KeepAlive));
/// assert_eq!(dec.decode(&mut buf)?, None);
/// # Ok::<(), lt_wire::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MessageDecoder {
    max_len: u32,
    state: DecodeState,
}

#[derive(Debug, Clone, Copy)]
enum DecodeState {
    Head,
    Body(usize),
}

impl MessageDecoder {
    /// A decoder that rejects length prefixes over `max_len`.
    #[must_use]
    pub fn new(max_len: u32) -> Self {
        Self {
            max_len,
            state: DecodeState::Head,
        }
    }

    /// Bytes still needed for the current message, when the header has been parsed
    /// (useful for sizing the next read).
    #[must_use]
    pub fn pending_body(&self) -> Option<usize> {
        match self.state {
            DecodeState::Head => None,
            DecodeState::Body(n) => Some(n),
        }
    }

    /// Decodes the next message from the front of `buf`.
    ///
    /// # Errors
    /// [`Error::MessageTooLong`] when the length prefix exceeds the limit, and
    /// [`Error::BadMessageLength`] when it does not fit the message id.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, Error> {
        let len = match self.state {
            DecodeState::Head => {
                let Some(prefix) = buf.get(..4) else {
                    return Ok(None);
                };
                let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
                if len == 0 {
                    buf.advance(4);
                    return Ok(Some(Message::KeepAlive));
                }
                if len > self.max_len {
                    return Err(Error::MessageTooLong {
                        len,
                        max: self.max_len,
                    });
                }
                let Some(&msg_id) = buf.get(4) else {
                    return Ok(None);
                };
                check_len(msg_id, len)?;
                buf.advance(4);
                // Bounded by max_len, checked above.
                let len = len as usize;
                buf.reserve(len.saturating_sub(buf.len()));
                self.state = DecodeState::Body(len);
                len
            }
            DecodeState::Body(len) => len,
        };
        if buf.len() < len {
            return Ok(None);
        }
        self.state = DecodeState::Head;
        let frame = buf.split_to(len).freeze();
        Message::decode_frame(frame).map(Some)
    }
}

#[cfg(feature = "quickcheck")]
mod arbitrary {
    use quickcheck::{Arbitrary, Gen};

    use super::*;

    fn bytes(g: &mut Gen, max: usize) -> Bytes {
        let len = usize::arbitrary(g) % (max + 1);
        (0..len)
            .map(|_| u8::arbitrary(g))
            .collect::<Vec<_>>()
            .into()
    }

    impl Arbitrary for BlockRequest {
        fn arbitrary(g: &mut Gen) -> Self {
            Self::new(
                PieceIndex::arbitrary(g),
                u32::arbitrary(g),
                u32::arbitrary(g),
            )
        }
    }

    impl Arbitrary for HashRequest {
        fn arbitrary(g: &mut Gen) -> Self {
            let mut root = [0u8; 32];
            root.iter_mut().for_each(|b| *b = u8::arbitrary(g));
            Self {
                pieces_root: Sha256Hash::new(root),
                base_layer: u32::arbitrary(g),
                index: u32::arbitrary(g),
                length: u32::arbitrary(g),
                proof_layers: u32::arbitrary(g),
            }
        }
    }

    impl Arbitrary for Message {
        fn arbitrary(g: &mut Gen) -> Self {
            match u8::arbitrary(g) % 21 {
                0 => Self::KeepAlive,
                1 => Self::Choke,
                2 => Self::Unchoke,
                3 => Self::Interested,
                4 => Self::NotInterested,
                5 => Self::Have(PieceIndex::arbitrary(g)),
                6 => Self::Bitfield(bytes(g, 64)),
                7 => Self::Request(BlockRequest::arbitrary(g)),
                8 => Self::Piece {
                    piece: PieceIndex::arbitrary(g),
                    begin: u32::arbitrary(g),
                    data: bytes(g, 300),
                },
                9 => Self::Cancel(BlockRequest::arbitrary(g)),
                10 => Self::Port(u16::arbitrary(g)),
                11 => Self::Suggest(PieceIndex::arbitrary(g)),
                12 => Self::HaveAll,
                13 => Self::HaveNone,
                14 => Self::Reject(BlockRequest::arbitrary(g)),
                15 => Self::AllowedFast(PieceIndex::arbitrary(g)),
                16 => Self::Extended {
                    id: u8::arbitrary(g),
                    payload: bytes(g, 64),
                },
                17 => Self::HashRequest(HashRequest::arbitrary(g)),
                18 => {
                    let n = usize::arbitrary(g) % 5;
                    let hashes: Vec<u8> = (0..n * 32).map(|_| u8::arbitrary(g)).collect();
                    Self::Hashes {
                        request: HashRequest::arbitrary(g),
                        hashes: hashes.into(),
                    }
                }
                19 => Self::HashReject(HashRequest::arbitrary(g)),
                _ => {
                    let unknown = [10u8, 11, 12, 18, 19, 24, 100, 255];
                    Self::Unknown {
                        id: *g.choose(&unknown).unwrap_or(&255),
                        payload: bytes(g, 32),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_is_zero_copy() {
        let mut buf = BytesMut::new();
        Message::Piece {
            piece: PieceIndex::new(3),
            begin: 16384,
            data: Bytes::from(vec![7u8; 16384]),
        }
        .encode(&mut buf);
        let base = buf.as_ptr() as usize;
        let mut dec = MessageDecoder::new(1 << 20);
        let Some(Message::Piece { data, begin, .. }) = dec.decode(&mut buf).unwrap() else {
            panic!("not a piece");
        };
        assert_eq!(begin, 16384);
        // The block points into the receive buffer, 13 bytes in.
        assert_eq!(data.as_ptr() as usize, base + 13);
    }

    #[test]
    fn limits_are_checked_before_the_body() {
        let mut dec = MessageDecoder::new(1000);
        let mut buf = BytesMut::from(&[0u8, 0, 0x03, 0xe9][..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(Error::MessageTooLong {
                len: 1001,
                max: 1000
            })
        );
        // HAVE must be 5 bytes: rejected as soon as the id arrives.
        let mut dec = MessageDecoder::new(1000);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 100, id::HAVE][..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(Error::BadMessageLength { id: 4, len: 100 })
        );
    }

    #[test]
    fn piece_header_matches_encoding() {
        let m = Message::Piece {
            piece: PieceIndex::new(1),
            begin: 2,
            data: Bytes::from_static(b"abc"),
        };
        assert_eq!(&m.to_bytes()[..13], &piece_header(PieceIndex::new(1), 2, 3));
    }
}
