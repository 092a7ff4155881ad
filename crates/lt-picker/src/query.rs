//! Read-only queries for the engine and the UI, and the invariant check.

use std::time::Instant;

use lt_core::{Bitfield, PieceIndex};

use crate::order::NONE;
use crate::peers::Has;
use crate::picker::key_for;
use crate::{Block, BlockState, Error, PeerKey, PiecePicker, Priority, Speed};

/// Where a piece stands.
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PieceState {
    /// We have it: it passed its hash check.
    Have,
    /// No block requested or received.
    Open,
    /// Some blocks are requested or received, some are open.
    Partial,
    /// Every block is requested or received, some are still in flight.
    FullyRequested,
    /// Every block is received (writing or finished): waiting for the hash check.
    Complete,
}

/// One block of a [`PartialPiece`]: the manual's `block_info`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BlockView {
    /// Its state.
    pub state: BlockState,
    /// Requested: the first peer asked. Writing or finished: the sender.
    pub peer: Option<PeerKey>,
    /// How many peers it is requested from (more than 1 in end game).
    pub num_peers: u32,
}

/// A piece in the download queue: the manual's `partial_piece_info`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PartialPiece {
    /// The piece.
    pub piece: PieceIndex,
    /// Its speed class (`piece_state`).
    pub speed: Speed,
    /// One entry per block (`blocks_in_piece` of them).
    pub blocks: Vec<BlockView>,
}

/// The manual's `distributed_copies` figures for the connected swarm,
/// counting ourselves.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DistributedCopies {
    /// `distributed_full_copies`: copies of the rarest piece(s).
    pub full_copies: u32,
    /// `distributed_fraction`: per mille of pieces with more copies than that.
    pub fraction: u32,
}

impl DistributedCopies {
    /// `distributed_copies`: `full_copies + fraction / 1000`.
    #[must_use]
    pub fn copies(&self) -> f64 {
        f64::from(self.full_copies) + f64::from(self.fraction) / 1000.0
    }
}

impl PiecePicker {
    /// The number of pieces.
    #[must_use]
    pub const fn num_pieces(&self) -> u32 {
        self.layout.num_pieces()
    }

    /// How many pieces we have.
    #[must_use]
    pub const fn num_have(&self) -> u32 {
        self.num_have
    }

    /// Our pieces, as a bitfield (for our BITFIELD message).
    #[must_use]
    pub const fn have_bitfield(&self) -> &Bitfield {
        &self.have
    }

    /// Whether we have `piece`; `false` out of range.
    #[must_use]
    pub fn have_piece(&self, piece: PieceIndex) -> bool {
        self.have.get(piece.as_usize())
    }

    /// Whether we have every piece with priority above 0.
    #[must_use]
    pub const fn is_finished(&self) -> bool {
        self.num_wanted_missing == 0
    }

    /// Whether we have every piece.
    #[must_use]
    pub const fn is_seed(&self) -> bool {
        self.num_have == self.layout.num_pieces()
    }

    /// Whether duplicate requests are allowed: see
    /// [`crate::Config::strict_end_game`].
    #[must_use]
    pub fn is_end_game(&self) -> bool {
        !self.is_finished() && self.end_game_allowed()
    }

    /// Whether sequential download is on.
    #[must_use]
    pub const fn is_sequential(&self) -> bool {
        self.sequential
    }

    /// The number of registered peers.
    #[must_use]
    pub fn num_peers(&self) -> usize {
        self.peers.len()
    }

    /// The number of registered peers that have every piece.
    #[must_use]
    pub const fn num_seeds(&self) -> u32 {
        self.seeds
    }

    /// Whether `peer` is registered and has `piece`.
    #[must_use]
    pub fn peer_has(&self, peer: PeerKey, piece: PieceIndex) -> bool {
        piece.as_usize() < self.pieces.len()
            && self.peers.get(&peer).is_some_and(|s| s.has(piece.get()))
    }

    /// Whether `peer` has a piece we want and lack: whether to be interested.
    #[must_use]
    pub fn is_interesting(&self, peer: PeerKey) -> bool {
        let Some(state) = self.peers.get(&peer) else {
            return false;
        };
        let wanted = |i: usize| {
            let e = &self.pieces[i];
            !e.have && !e.priority.is_dont_download()
        };
        match &state.has {
            Has::Seed => self.num_wanted_missing > 0,
            Has::Pieces { bits, .. } => bits.iter_ones().any(wanted),
        }
    }

    /// How many block requests `peer` has outstanding in the picker.
    #[must_use]
    pub fn outstanding_requests(&self, peer: PeerKey) -> u32 {
        self.peers.get(&peer).map_or(0, |s| s.outstanding)
    }

    /// How many registered peers have `piece` (seeds included); 0 out of range.
    #[must_use]
    pub fn availability(&self, piece: PieceIndex) -> u32 {
        self.pieces
            .get(piece.as_usize())
            .map_or(0, |e| e.count + self.seeds)
    }

    /// `piece_availability()`: the availability of every piece.
    #[must_use]
    pub fn availabilities(&self) -> Vec<u32> {
        self.pieces.iter().map(|e| e.count + self.seeds).collect()
    }

    /// `distributed_copies`, counting ourselves as a holder of our pieces.
    #[must_use]
    pub fn distributed_copies(&self) -> DistributedCopies {
        let Some(min) = (0..self.pieces.len())
            .map(|i| self.pieces[i].count + u32::from(self.pieces[i].have))
            .min()
        else {
            return DistributedCopies {
                full_copies: 1,
                fraction: 0,
            };
        };
        let above = self
            .pieces
            .iter()
            .filter(|e| e.count + u32::from(e.have) > min)
            .count();
        let fraction = above * 1000 / self.pieces.len();
        DistributedCopies {
            full_copies: min + self.seeds,
            fraction: u32::try_from(fraction).unwrap_or(1000),
        }
    }

    /// A piece's priority; [`Priority::DONT_DOWNLOAD`] out of range.
    #[must_use]
    pub fn piece_priority(&self, piece: PieceIndex) -> Priority {
        self.pieces
            .get(piece.as_usize())
            .map_or(Priority::DONT_DOWNLOAD, |e| e.priority)
    }

    /// `piece_priorities()`: every piece's priority.
    #[must_use]
    pub fn piece_priorities(&self) -> Vec<Priority> {
        self.pieces.iter().map(|e| e.priority).collect()
    }

    /// The time-critical pieces and their deadlines, earliest first.
    #[must_use]
    pub fn deadlines(&self) -> Vec<(PieceIndex, Instant)> {
        self.deadlines
            .iter()
            .map(|&(d, p)| (PieceIndex(p), d))
            .collect()
    }

    /// Where `piece` stands.
    ///
    /// # Errors
    ///
    /// [`Error::PieceOutOfRange`].
    pub fn piece_state(&self, piece: PieceIndex) -> Result<PieceState, Error> {
        let p = self.check_piece(piece)?;
        let e = &self.pieces[p as usize];
        if e.have {
            return Ok(PieceState::Have);
        }
        Ok(match e.dl {
            NONE => PieceState::Open,
            dl => {
                let d = &self.downloads[dl as usize];
                if d.complete() {
                    PieceState::Complete
                } else if d.open() == 0 {
                    PieceState::FullyRequested
                } else {
                    PieceState::Partial
                }
            }
        })
    }

    /// A block's state and its [`BlockView::peer`]: open for a piece not in
    /// the download queue, finished for a piece we have.
    ///
    /// # Errors
    ///
    /// [`Error::PieceOutOfRange`] or [`Error::BlockOutOfRange`].
    pub fn block_state(&self, block: Block) -> Result<BlockView, Error> {
        let p = self.check_piece(block.piece)?;
        let num_blocks = self.layout.blocks_in_piece(p);
        let b = block.block.get();
        if b >= num_blocks {
            return Err(Error::BlockOutOfRange {
                piece: block.piece,
                block: b,
                num_blocks,
            });
        }
        let e = &self.pieces[p as usize];
        if e.have {
            return Ok(BlockView {
                state: BlockState::Finished,
                peer: None,
                num_peers: 0,
            });
        }
        Ok(match e.dl {
            NONE => BlockView {
                state: BlockState::Open,
                peer: None,
                num_peers: 0,
            },
            dl => view(&self.downloads[dl as usize].blocks[b as usize]),
        })
    }

    /// The peers `block` is requested from, first one first.
    #[must_use]
    pub fn requesters(&self, block: Block) -> Vec<PeerKey> {
        let Some(e) = self.pieces.get(block.piece.as_usize()) else {
            return Vec::new();
        };
        if e.dl == NONE || block.block.get() >= self.layout.blocks_in_piece(block.piece.get()) {
            return Vec::new();
        }
        self.downloads[e.dl as usize]
            .requesters(block.block.get())
            .collect()
    }

    /// Requests older than `timeout` at `now`: `(block, its requesters)` for
    /// every requested block whose latest request went out at or before
    /// `now - timeout`, appended to `out`. The picker keeps them; the engine
    /// decides (snub the peer, [`PiecePicker::cancel_request`], or let an end
    /// game duplicate race it). O(blocks of partial pieces).
    pub fn expired_requests(
        &self,
        now: Instant,
        timeout: std::time::Duration,
        out: &mut Vec<(Block, Vec<PeerKey>)>,
    ) {
        for d in &self.downloads {
            for (b, info) in (0u32..).zip(&d.blocks) {
                let expired = info.state == BlockState::Requested
                    && info
                        .requested_at
                        .is_some_and(|at| now.saturating_duration_since(at) >= timeout);
                if expired {
                    out.push((Block::new(d.piece, b), d.requesters(b).collect()));
                }
            }
        }
    }

    /// When the oldest outstanding request reaches `timeout`: the time to
    /// call [`Self::expired_requests`] next. `None` without requests.
    #[must_use]
    pub fn next_request_timeout(&self, timeout: std::time::Duration) -> Option<Instant> {
        self.downloads
            .iter()
            .flat_map(|d| d.blocks.iter())
            .filter(|info| info.state == BlockState::Requested)
            .filter_map(|info| info.requested_at)
            .min()
            .map(|at| at + timeout)
    }

    /// `get_download_queue()`: every piece with a block requested or
    /// received, by piece index.
    #[must_use]
    pub fn download_queue(&self) -> Vec<PartialPiece> {
        let mut queue: Vec<PartialPiece> = self
            .downloads
            .iter()
            .map(|d| PartialPiece {
                piece: PieceIndex(d.piece),
                speed: d.speed,
                blocks: d.blocks.iter().map(view).collect(),
            })
            .collect();
        queue.sort_unstable_by_key(|q| q.piece);
        queue
    }

    /// Checks every internal invariant listed in the [crate] docs with
    /// `debug_assert!`s (so it does nothing in release builds). O(pieces ×
    /// peers): for tests and fuzzing.
    pub fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let n = self.pieces.len();
        // I1: counts and seeds match the peers' pieces.
        let mut counts = vec![0u32; n];
        let mut seeds = 0;
        for state in self.peers.values() {
            match &state.has {
                Has::Seed => seeds += 1,
                Has::Pieces { bits, ones } => {
                    debug_assert!(bits.len() == n || (bits.is_empty() && *ones == 0));
                    debug_assert_eq!(bits.count_ones(), *ones as usize);
                    debug_assert!(n == 0 || (*ones as usize) < n, "a full bitfield is a seed");
                    for i in bits.iter_ones() {
                        counts[i] += 1;
                    }
                }
            }
            debug_assert!(state.suggested.len() <= self.config.max_suggested_pieces);
            debug_assert!(state.allowed_fast.len() <= self.config.max_allowed_fast);
        }
        debug_assert_eq!(seeds, self.seeds, "seed count");
        for (i, e) in self.pieces.iter().enumerate() {
            debug_assert_eq!(e.count, counts[i], "count of piece {i}");
        }
        // I2: our pieces.
        debug_assert_eq!(self.have.count_ones(), self.num_have as usize);
        let wanted_missing = self
            .pieces
            .iter()
            .filter(|e| !e.have && !e.priority.is_dont_download())
            .count();
        debug_assert_eq!(wanted_missing, self.num_wanted_missing as usize);
        for (i, e) in self.pieces.iter().enumerate() {
            debug_assert_eq!(e.have, self.have.get(i));
            if (i as u64) < u64::from(self.cursor) || (i as u64) >= u64::from(self.reverse_cursor) {
                debug_assert!(e.have, "cursor skips piece {i} we lack");
            }
        }
        // I3: downloads.
        let mut outstanding: std::collections::HashMap<PeerKey, u32> =
            std::collections::HashMap::new();
        for (index, d) in self.downloads.iter().enumerate() {
            let e = &self.pieces[d.piece as usize];
            debug_assert_eq!(e.dl as usize, index, "download index of piece {}", d.piece);
            debug_assert!(!e.have, "download of a piece we have");
            debug_assert_eq!(d.num_blocks(), self.layout.blocks_in_piece(d.piece));
            debug_assert!(d.open() < d.num_blocks(), "idle download kept");
            let mut tally = [0u32; 4];
            for (b, info) in (0u32..).zip(&d.blocks) {
                tally[info.state as usize] += 1;
                if info.state == BlockState::Requested {
                    let requesters: Vec<PeerKey> = d.requesters(b).collect();
                    debug_assert_eq!(requesters.len(), usize::from(info.num_peers));
                    debug_assert!(info.num_peers >= 1);
                    debug_assert!(info.num_peers <= self.config.max_requesters_per_block.max(1));
                    let mut dedup = requesters.clone();
                    dedup.sort_unstable();
                    dedup.dedup();
                    debug_assert_eq!(dedup.len(), requesters.len(), "requested twice by one peer");
                    for r in requesters {
                        *outstanding.entry(r).or_default() += 1;
                    }
                } else {
                    debug_assert_eq!(info.num_peers, 0);
                    debug_assert!(d.extra.iter().all(|&(x, _)| x != b));
                }
            }
            debug_assert_eq!(tally[BlockState::Requested as usize], d.requested);
            debug_assert_eq!(tally[BlockState::Writing as usize], d.writing);
            debug_assert_eq!(tally[BlockState::Finished as usize], d.finished);
        }
        for e in &self.pieces {
            if e.dl != NONE {
                debug_assert!((e.dl as usize) < self.downloads.len());
            }
        }
        for (key, state) in &self.peers {
            let expected = outstanding.get(key).copied().unwrap_or(0);
            debug_assert_eq!(state.outstanding, expected, "outstanding requests of {key}");
        }
        // I4: deadlines.
        debug_assert!(self.deadlines.windows(2).all(|w| w[0] <= w[1]));
        for (i, e) in self.pieces.iter().enumerate() {
            let listed = self
                .deadlines
                .iter()
                .filter(|&&(_, p)| p as usize == i)
                .count();
            debug_assert_eq!(listed, usize::from(e.deadline));
            debug_assert!(!(e.deadline && e.have));
        }
        // I5: the order holds exactly the pickable pieces, in their buckets.
        if !self.order.is_dirty() {
            let pieces = &self.pieces;
            let downloads = &self.downloads;
            self.order
                .check(|p| key_for(&pieces[p as usize], downloads));
        }
    }
}

fn view(info: &crate::downloads::BlockInfo) -> BlockView {
    BlockView {
        state: info.state,
        peer: info.peer,
        num_peers: u32::from(info.num_peers),
    }
}
