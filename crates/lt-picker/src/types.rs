//! Small value types of the picker's API.

use core::fmt;

use lt_core::{BlockIndex, PieceIndex};

use crate::Error;

/// A caller-chosen handle for a connected peer, like a slab index in lt-engine.
///
/// The picker stores each registered peer's pieces under this key and records
/// it on the blocks the peer was asked for and the blocks it sent. The key of a
/// removed peer may still be named by written or finished blocks until their
/// piece passes or fails its hash check (that is what parole needs), so a
/// caller that recycles keys should add a generation to them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct PeerKey(pub u32);

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

/// One block: a sub-piece of [`crate::Layout::block_size`] bytes (the last
/// block of the last piece may be shorter), the unit of a REQUEST.
///
/// [`crate::Layout::request`] turns it into the REQUEST's offset and length.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Block {
    /// The piece.
    pub piece: PieceIndex,
    /// The block within the piece.
    pub block: BlockIndex,
}

impl Block {
    /// The block `block` of piece `piece`.
    #[must_use]
    pub const fn new(piece: u32, block: u32) -> Self {
        Self {
            piece: PieceIndex(piece),
            block: BlockIndex(block),
        }
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.piece, self.block)
    }
}

/// A piece priority, 0 to 7, as in the manual's `piece_priority()`.
///
/// | value | meaning |
/// |---|---|
/// | 0 | do not download |
/// | 1 | normal (the default): order by availability |
/// | 2 | preferred over pieces of the same availability |
/// | 3 | as likely to be picked as partial pieces |
/// | 4, 5 | preferred over partial pieces, availability counts half |
/// | 6 | as likely as a piece with availability 1 |
/// | 7 | always first, availability disregarded |
///
/// Higher is always more urgent and 0 always means "do not download"; the exact
/// weighting is the one libtorrent 0.16 uses (module docs of [`crate`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Priority(u8);

impl Priority {
    /// 0: do not download.
    pub const DONT_DOWNLOAD: Self = Self(0);
    /// 1: the default for every piece.
    pub const NORMAL: Self = Self(1);
    /// 7: the highest.
    pub const TOP: Self = Self(7);

    /// A priority from 0 to 7.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPriority`] above 7.
    pub const fn new(value: u8) -> Result<Self, Error> {
        if value <= 7 {
            Ok(Self(value))
        } else {
            Err(Error::InvalidPriority(value))
        }
    }

    /// A priority from any `u8`, values above 7 becoming 7.
    #[must_use]
    pub const fn saturating(value: u8) -> Self {
        if value <= 7 { Self(value) } else { Self::TOP }
    }

    /// The value, 0 to 7.
    #[must_use]
    pub const fn get(self) -> u8 {
        self.0
    }

    /// Whether this priority means "do not download".
    #[must_use]
    pub const fn is_dont_download(self) -> bool {
        self.0 == 0
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::NORMAL
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The download-rate class of a peer, and of a partial piece (the class of the
/// peers downloading it): the manual's `partial_piece_info::piece_state`.
///
/// Peers prefer partial pieces of their own class, which keeps slow peers from
/// holding up pieces that fast peers are finishing. A piece of class `None`
/// takes the class of the first peer that requests from it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub enum Speed {
    /// Unclassified.
    #[default]
    None,
    /// Slow peers.
    Slow,
    /// Medium peers.
    Medium,
    /// Fast peers.
    Fast,
}

/// How a request for a block stands: the manual's `block_info::state`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum BlockState {
    /// Neither requested nor received.
    #[default]
    Open,
    /// Requested from one or more peers (more than one in end game).
    Requested,
    /// Received, queued for writing to disk.
    Writing,
    /// Written to disk.
    Finished,
}

/// Per-pick settings that belong to the peer being picked for, and that the
/// engine knows better than the picker (libtorrent's `pick_pieces` options).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PickOptions {
    /// The peer is snubbed: pick the most common pieces (or, in sequential
    /// mode, the last ones) so slow peers gather on few pieces.
    pub reverse: bool,
    /// The peer took part in a piece that failed its hash check: pick whole
    /// pieces that no other peer has touched, never duplicate requests, so the
    /// next failure can be pinned on it.
    pub on_parole: bool,
    /// Prefer picking this many whole pieces (web seeds, and peers fast enough
    /// to send a piece within `whole_pieces_threshold` seconds). Open pieces are
    /// then taken whole, even past `max_blocks`; partial pieces other peers are
    /// working on are only a fallback.
    pub prefer_whole_pieces: u32,
    /// The peer's download-rate class, for piece affinity.
    pub speed: Speed,
    /// The peer chokes us: only its allowed-fast pieces (BEP 6) may be asked for.
    pub choked: bool,
    /// Only pick time-critical pieces (those with a deadline).
    pub time_critical_only: bool,
}

/// What one call to [`crate::PiecePicker::pick_into`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct PickSummary {
    /// Blocks appended to the output (and now marked requested by the peer).
    pub picked: usize,
    /// How many of them were already requested from another peer (end game,
    /// or a time-critical piece).
    pub busy: usize,
    /// The picker could not find `max_blocks` free blocks for this peer: the
    /// manual's `endgame_mode` peer flag.
    pub end_game: bool,
}
