//! The crate's error type.

use lt_core::PieceIndex;

use crate::PeerKey;

/// Why a picker call was refused. The picker's state is unchanged when a call
/// returns an error.
///
/// Blast radius (STYLE.md section 5): [`Error::PieceOutOfRange`] and
/// [`Error::BitfieldLength`] on a peer's HAVE, BITFIELD, SUGGEST, ALLOWED FAST
/// or DONT_HAVE are **peer faults** (close that peer); the other variants are
/// mistakes of the caller (lt-engine) or of the torrent's metadata and never
/// come from peer bytes alone.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A piece index at or past the number of pieces (peer fault when it came
    /// from a peer message).
    #[error("piece {piece} out of range (the torrent has {num_pieces} pieces)")]
    PieceOutOfRange {
        /// The offending index.
        piece: PieceIndex,
        /// The number of pieces.
        num_pieces: u32,
    },
    /// A block index at or past the number of blocks of its piece.
    #[error("block {block} of piece {piece} out of range (the piece has {num_blocks} blocks)")]
    BlockOutOfRange {
        /// The piece.
        piece: PieceIndex,
        /// The offending block index.
        block: u32,
        /// The number of blocks in that piece.
        num_blocks: u32,
    },
    /// A peer's bitfield does not have one bit per piece (peer fault).
    #[error("bitfield of {actual} bits for a torrent of {expected} pieces")]
    BitfieldLength {
        /// The number of pieces.
        expected: usize,
        /// The bitfield's length.
        actual: usize,
    },
    /// The peer key is not registered with [`crate::PiecePicker::add_peer`].
    #[error("unknown peer {0:?}")]
    UnknownPeer(PeerKey),
    /// [`crate::PiecePicker::add_peer`] with a key that is already registered.
    #[error("peer {0:?} is already registered")]
    DuplicatePeer(PeerKey),
    /// More peers than [`crate::Config::max_peers`].
    #[error("too many peers (the limit is {max})")]
    TooManyPeers {
        /// The configured limit.
        max: usize,
    },
    /// A priority above [`crate::Priority::TOP`].
    #[error("invalid priority {0} (0-7)")]
    InvalidPriority(u8),
    /// A piece length of zero, a zero block size, or more than `u32::MAX` pieces.
    #[error("invalid torrent layout: {0}")]
    InvalidLayout(&'static str),
    /// A per-piece or per-file list whose length does not match the torrent.
    #[error("expected {expected} entries, got {actual}")]
    LengthMismatch {
        /// The number of pieces or files.
        expected: usize,
        /// The list's length.
        actual: usize,
    },
}
