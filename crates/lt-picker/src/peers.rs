//! What the picker knows about each peer.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use lt_core::Bitfield;

use crate::PeerKey;

/// Which pieces a peer has.
#[derive(Clone, Debug)]
pub(crate) enum Has {
    /// All of them: counted in `PiecePicker::seeds`, not per piece.
    Seed,
    /// Some of them (never all, for a torrent with pieces), each counted in
    /// its piece's `count`. `bits` is empty (not allocated) until the first
    /// HAVE or BITFIELD, so registering a peer is O(1).
    Pieces { bits: Bitfield, ones: u32 },
}

#[derive(Clone, Debug)]
pub(crate) struct PeerState {
    pub(crate) has: Has,
    /// (block, requester) pairs naming this peer.
    pub(crate) outstanding: u32,
    /// SUGGEST PIECE (BEP 6), oldest first, at most `max_suggested_pieces`.
    pub(crate) suggested: Vec<u32>,
    /// ALLOWED FAST (BEP 6), at most `max_allowed_fast`.
    pub(crate) allowed_fast: Vec<u32>,
}

impl PeerState {
    pub(crate) fn new() -> Self {
        Self {
            has: Has::Pieces {
                bits: Bitfield::new(0),
                ones: 0,
            },
            outstanding: 0,
            suggested: Vec::new(),
            allowed_fast: Vec::new(),
        }
    }

    pub(crate) fn has(&self, piece: u32) -> bool {
        match &self.has {
            Has::Seed => true,
            Has::Pieces { bits, .. } => bits.get(piece as usize),
        }
    }

    pub(crate) const fn is_seed(&self) -> bool {
        matches!(self.has, Has::Seed)
    }
}

/// The peer table. Keys are chosen by our caller, not by peers, so a fast
/// multiplicative hash is safe.
pub(crate) type PeerMap = HashMap<PeerKey, PeerState, BuildHasherDefault<KeyHasher>>;

/// A Fibonacci-multiplicative hasher for [`PeerKey`].
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(u32::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0.rotate_left(26) ^ u64::from(n)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
