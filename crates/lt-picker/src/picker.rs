//! [`PiecePicker`]: state, peer bookkeeping, our pieces, priorities, deadlines
//! and block bookkeeping. Picking itself is in `pick.rs`, queries in `query.rs`.

use std::time::Instant;

use lt_core::{Bitfield, PieceIndex};
use tracing::debug;

use crate::downloads::{BlockInfo, Download};
use crate::order::{NONE, Order};
use crate::peers::{Has, PeerMap, PeerState};
use crate::rng::Rng;
use crate::{Block, BlockState, Config, Error, Layout, PeerKey, Priority, Speed};

/// A peer with fewer pieces than this changes the counts one piece at a time;
/// one with more marks the order dirty for a rebuild (libtorrent uses 50 too).
const INCREMENTAL_LIMIT: u32 = 50;

/// Counts above this sort as this: beyond a thousand copies rarity no longer
/// matters, and it bounds the number of buckets (libtorrent's `max_peer_count`).
const MAX_KEY_COUNT: u32 = 1023;

/// Spare block vectors kept for reuse, so starting a piece does not allocate.
const MAX_SPARE_BLOCK_VECS: usize = 64;

/// Per-piece state.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PieceEntry {
    /// Registered non-seed peers that have the piece.
    pub(crate) count: u32,
    /// Index into `downloads`, or [`NONE`].
    pub(crate) dl: u32,
    pub(crate) priority: Priority,
    /// We have the piece (it passed its hash check).
    pub(crate) have: bool,
    /// The piece is in `deadlines`.
    pub(crate) deadline: bool,
}

/// What happened to a block that arrived: see [`PiecePicker::block_received`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Received {
    /// Other peers the block was also requested from (end game): send each a
    /// CANCEL. Their requests are forgotten already.
    pub cancel: Vec<PeerKey>,
    /// We already had this block (or its piece): the bytes are redundant and
    /// should be dropped.
    pub redundant: bool,
    /// Every block of the piece is now received: hash it.
    pub piece_complete: bool,
}

/// The piece picker of one torrent. See the [crate] docs for the design, the
/// invariants and an example.
///
/// All methods are synchronous and do no I/O. Methods that record a request
/// take `now`; callers must never pass an earlier `now` than before.
#[derive(Clone, Debug)]
pub struct PiecePicker {
    pub(crate) layout: Layout,
    pub(crate) config: Config,
    pub(crate) rng: Rng,
    pub(crate) pieces: Vec<PieceEntry>,
    pub(crate) order: Order,
    pub(crate) downloads: Vec<Download>,
    spare_blocks: Vec<Vec<BlockInfo>>,
    pub(crate) peers: PeerMap,
    /// Registered peers with every piece.
    pub(crate) seeds: u32,
    pub(crate) have: Bitfield,
    pub(crate) num_have: u32,
    /// Pieces with priority above 0 that we do not have.
    pub(crate) num_wanted_missing: u32,
    /// Every piece below this is had.
    pub(crate) cursor: u32,
    /// Every piece at or above this is had.
    pub(crate) reverse_cursor: u32,
    /// Time-critical pieces, earliest deadline first.
    pub(crate) deadlines: Vec<(Instant, u32)>,
    pub(crate) sequential: bool,
    /// Reused by `pick_into`.
    pub(crate) scratch: crate::pick::Scratch,
}

impl PiecePicker {
    /// A picker for a torrent of this layout, with every piece wanted at
    /// [`Priority::NORMAL`], none had, and no peers.
    #[must_use]
    pub fn new(layout: Layout, config: Config) -> Self {
        let n = layout.num_pieces();
        let num = n as usize;
        Self {
            layout,
            rng: Rng::new(config.rng_seed),
            sequential: config.sequential,
            config,
            pieces: vec![
                PieceEntry {
                    dl: NONE,
                    ..PieceEntry::default()
                };
                num
            ],
            order: Order::new(num),
            downloads: Vec::new(),
            spare_blocks: Vec::new(),
            peers: PeerMap::default(),
            seeds: 0,
            have: Bitfield::new(num),
            num_have: 0,
            num_wanted_missing: n,
            cursor: 0,
            reverse_cursor: n,
            deadlines: Vec::new(),
            scratch: crate::pick::Scratch::default(),
        }
    }

    /// The torrent's layout.
    #[must_use]
    pub const fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.config
    }

    // ---------------------------------------------------------------- peers

    /// Registers a peer that has no pieces yet. Its BITFIELD, HAVE ALL or HAVE
    /// NONE follows through the `peer_*` methods.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicatePeer`], or [`Error::TooManyPeers`] past
    /// [`Config::max_peers`].
    pub fn add_peer(&mut self, peer: PeerKey) -> Result<(), Error> {
        if self.peers.contains_key(&peer) {
            return Err(Error::DuplicatePeer(peer));
        }
        if self.peers.len() >= self.config.max_peers {
            return Err(Error::TooManyPeers {
                max: self.config.max_peers,
            });
        }
        self.peers.insert(peer, PeerState::new());
        Ok(())
    }

    /// Forgets a peer: its requests are cancelled (their blocks reopen) and its
    /// pieces no longer count. O(1) for a seed without requests; otherwise
    /// O(its pieces) plus O(blocks of partial pieces) if it had requests.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPeer`].
    pub fn remove_peer(&mut self, peer: PeerKey) -> Result<(), Error> {
        let state = self.peers.get(&peer).ok_or(Error::UnknownPeer(peer))?;
        if state.outstanding > 0 {
            self.cancel_all_requests(peer);
        }
        if let Some(state) = self.peers.remove(&peer) {
            self.remove_contribution(state.has);
        }
        Ok(())
    }

    /// The peer's BITFIELD message (BEP 3): replaces what we knew of its
    /// pieces. A full bitfield makes it a seed.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPeer`], or [`Error::BitfieldLength`] (a peer fault) if
    /// the bitfield does not have one bit per piece.
    pub fn peer_bitfield(&mut self, peer: PeerKey, bits: Bitfield) -> Result<(), Error> {
        if bits.len() != self.pieces.len() {
            return Err(Error::BitfieldLength {
                expected: self.pieces.len(),
                actual: bits.len(),
            });
        }
        let new = if all_set(&bits) && !bits.is_empty() {
            Has::Seed
        } else {
            let ones = u32::try_from(bits.count_ones()).unwrap_or(u32::MAX);
            Has::Pieces { bits, ones }
        };
        self.replace_has(peer, new)
    }

    /// The peer's HAVE ALL message (BEP 6): it is a seed. O(1).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPeer`].
    pub fn peer_have_all(&mut self, peer: PeerKey) -> Result<(), Error> {
        if self.peer(peer)?.is_seed() {
            return Ok(());
        }
        self.replace_has(peer, Has::Seed)
    }

    /// The peer's HAVE NONE message (BEP 6): it has nothing.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPeer`].
    pub fn peer_have_none(&mut self, peer: PeerKey) -> Result<(), Error> {
        let empty = Has::Pieces {
            bits: Bitfield::new(0),
            ones: 0,
        };
        self.replace_has(peer, empty)
    }

    /// The peer's HAVE message. Repeats are ignored. When the peer thereby has
    /// every piece it becomes a seed (a one-off O(pieces) conversion, so that
    /// removing it later is O(1)).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPeer`], or [`Error::PieceOutOfRange`] (a peer fault).
    pub fn peer_have(&mut self, peer: PeerKey, piece: PieceIndex) -> Result<(), Error> {
        let p = self.check_piece(piece)?;
        let num_pieces = self.pieces.len();
        let state = self.peers.get_mut(&peer).ok_or(Error::UnknownPeer(peer))?;
        let Has::Pieces { bits, ones } = &mut state.has else {
            return Ok(());
        };
        if bits.get(p as usize) {
            return Ok(());
        }
        if bits.len() != num_pieces {
            *bits = Bitfield::new(num_pieces);
        }
        bits.set(p as usize);
        *ones += 1;
        if *ones as usize == num_pieces {
            // It has everything now: move its counts into the seed counter.
            state.has = Has::Seed;
            self.seeds += 1;
            for (i, e) in self.pieces.iter_mut().enumerate() {
                if i != p as usize {
                    e.count -= 1;
                }
            }
            self.order.mark_dirty();
            return Ok(());
        }
        self.pieces[p as usize].count += 1;
        self.reposition(p);
        Ok(())
    }

    /// The peer's DONT HAVE message (the `lt_donthave` extension): it lost
    /// the piece. For a seed this turns its seed count back into per-piece
    /// counts, O(pieces) once.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPeer`], or [`Error::PieceOutOfRange`] (a peer fault).
    pub fn peer_dont_have(&mut self, peer: PeerKey, piece: PieceIndex) -> Result<(), Error> {
        let p = self.check_piece(piece)?;
        let num_pieces = self.pieces.len();
        let state = self.peers.get_mut(&peer).ok_or(Error::UnknownPeer(peer))?;
        match &mut state.has {
            Has::Seed => {
                let mut bits = Bitfield::full(num_pieces);
                bits.clear(p as usize);
                let ones = u32::try_from(num_pieces - 1).unwrap_or(u32::MAX);
                state.has = Has::Pieces { bits, ones };
                self.seeds -= 1;
                for (i, e) in self.pieces.iter_mut().enumerate() {
                    if i != p as usize {
                        e.count += 1;
                    }
                }
                self.order.mark_dirty();
            }
            Has::Pieces { bits, ones } => {
                if !bits.get(p as usize) {
                    return Ok(());
                }
                bits.clear(p as usize);
                *ones -= 1;
                self.pieces[p as usize].count -= 1;
                self.reposition(p);
            }
        }
        Ok(())
    }

    /// The peer's SUGGEST PIECE message (BEP 6). Suggested pieces the peer has
    /// are picked before rarer ones. Keeps the most recent
    /// [`Config::max_suggested_pieces`]; pieces we have are ignored.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPeer`], or [`Error::PieceOutOfRange`] (a peer fault).
    pub fn peer_suggest(&mut self, peer: PeerKey, piece: PieceIndex) -> Result<(), Error> {
        let p = self.check_piece(piece)?;
        let have = self.pieces[p as usize].have;
        let max = self.config.max_suggested_pieces;
        let state = self.peers.get_mut(&peer).ok_or(Error::UnknownPeer(peer))?;
        if have || state.suggested.contains(&p) || max == 0 {
            return Ok(());
        }
        if state.suggested.len() >= max {
            state.suggested.remove(0);
        }
        state.suggested.push(p);
        Ok(())
    }

    /// The peer's ALLOWED FAST message (BEP 6): we may request this piece
    /// while it chokes us (see [`crate::PickOptions::choked`]). At most
    /// [`Config::max_allowed_fast`] are kept; more are ignored with a `debug!`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPeer`], or [`Error::PieceOutOfRange`] (a peer fault).
    pub fn peer_allowed_fast(&mut self, peer: PeerKey, piece: PieceIndex) -> Result<(), Error> {
        let p = self.check_piece(piece)?;
        let max = self.config.max_allowed_fast;
        let state = self.peers.get_mut(&peer).ok_or(Error::UnknownPeer(peer))?;
        if state.allowed_fast.contains(&p) {
            return Ok(());
        }
        if state.allowed_fast.len() >= max {
            debug!(%peer, piece = p, max, "allowed-fast set full; ignored");
            return Ok(());
        }
        state.allowed_fast.push(p);
        Ok(())
    }

    // ----------------------------------------------------------- our pieces

    /// We have `piece` (restored from resume data or a recheck): it is never
    /// picked again. Requests for it are forgotten. Returns the peers it had
    /// been requested from, so the caller can send them CANCELs.
    ///
    /// # Errors
    ///
    /// [`Error::PieceOutOfRange`].
    pub fn set_have(&mut self, piece: PieceIndex) -> Result<Vec<PeerKey>, Error> {
        let p = self.check_piece(piece)?;
        let cancel = self.drop_download(p);
        self.mark_have(p);
        Ok(cancel)
    }

    /// We lost `piece` (storage error, failed recheck): it is wanted again.
    ///
    /// # Errors
    ///
    /// [`Error::PieceOutOfRange`].
    pub fn clear_have(&mut self, piece: PieceIndex) -> Result<(), Error> {
        let p = self.check_piece(piece)?;
        let e = &mut self.pieces[p as usize];
        if !e.have {
            return Ok(());
        }
        e.have = false;
        if !e.priority.is_dont_download() {
            self.num_wanted_missing += 1;
        }
        self.have.clear(p as usize);
        self.num_have -= 1;
        self.cursor = self.cursor.min(p);
        self.reverse_cursor = self.reverse_cursor.max(p + 1);
        self.reposition(p);
        Ok(())
    }

    /// Our hash check of `piece` passed: we have it. Returns the peers that
    /// sent its blocks (take them off parole).
    ///
    /// # Errors
    ///
    /// [`Error::PieceOutOfRange`].
    pub fn piece_passed(&mut self, piece: PieceIndex) -> Result<Vec<PeerKey>, Error> {
        let p = self.check_piece(piece)?;
        let contributors = self.contributors(p);
        self.drop_download(p);
        self.mark_have(p);
        Ok(contributors)
    }

    /// Our hash check of `piece` failed: every block reopens. Returns the
    /// peers that sent its blocks (put them on parole, or ban the one on
    /// parole, as `use_parole_mode` describes).
    ///
    /// # Errors
    ///
    /// [`Error::PieceOutOfRange`].
    pub fn piece_failed(&mut self, piece: PieceIndex) -> Result<Vec<PeerKey>, Error> {
        let p = self.check_piece(piece)?;
        let contributors = self.contributors(p);
        self.drop_download(p);
        self.reposition(p);
        Ok(contributors)
    }

    // ------------------------------------------------- priorities, deadlines

    /// Sets one piece's priority. Priority 0 pieces are never picked; their
    /// partial state is kept.
    ///
    /// # Errors
    ///
    /// [`Error::PieceOutOfRange`].
    pub fn set_piece_priority(
        &mut self,
        piece: PieceIndex,
        priority: Priority,
    ) -> Result<(), Error> {
        let p = self.check_piece(piece)?;
        self.assign_priority(p, priority);
        self.reposition(p);
        Ok(())
    }

    /// Sets every piece's priority (`prioritize_pieces`).
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] unless there is one priority per piece.
    pub fn set_piece_priorities(&mut self, priorities: &[Priority]) -> Result<(), Error> {
        if priorities.len() != self.pieces.len() {
            return Err(Error::LengthMismatch {
                expected: self.pieces.len(),
                actual: priorities.len(),
            });
        }
        for (p, &prio) in (0u32..).zip(priorities) {
            self.assign_priority(p, prio);
        }
        self.order.mark_dirty();
        Ok(())
    }

    /// Sets piece priorities from file priorities (`prioritize_files`): every
    /// piece takes the highest priority of the files it overlaps, replacing
    /// any per-piece priority. See [`Layout::file_priorities_to_pieces`].
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] if the lists differ in length or the sizes do
    /// not add up to the torrent's length.
    pub fn set_file_priorities(
        &mut self,
        file_sizes: &[u64],
        priorities: &[Priority],
    ) -> Result<(), Error> {
        let pieces = self
            .layout
            .file_priorities_to_pieces(file_sizes, priorities)?;
        self.set_piece_priorities(&pieces)
    }

    /// `set_piece_deadline`: `piece` is time-critical and should be complete
    /// by `deadline`. Pieces with deadlines are picked before all others,
    /// earliest deadline first, and their last blocks may be requested from a
    /// second peer without waiting for end game. Setting it again moves the
    /// deadline; a piece we have is ignored.
    ///
    /// # Errors
    ///
    /// [`Error::PieceOutOfRange`].
    pub fn set_piece_deadline(
        &mut self,
        piece: PieceIndex,
        deadline: Instant,
    ) -> Result<(), Error> {
        let p = self.check_piece(piece)?;
        if self.pieces[p as usize].have {
            return Ok(());
        }
        self.remove_deadline(p);
        let at = self
            .deadlines
            .partition_point(|&(d, q)| (d, q) < (deadline, p));
        self.deadlines.insert(at, (deadline, p));
        self.pieces[p as usize].deadline = true;
        Ok(())
    }

    /// `reset_piece_deadline`: `piece` is no longer time-critical.
    ///
    /// # Errors
    ///
    /// [`Error::PieceOutOfRange`].
    pub fn reset_piece_deadline(&mut self, piece: PieceIndex) -> Result<(), Error> {
        let p = self.check_piece(piece)?;
        self.remove_deadline(p);
        Ok(())
    }

    /// Switches sequential download on or off.
    pub const fn set_sequential(&mut self, sequential: bool) {
        self.sequential = sequential;
    }

    // ------------------------------------------------------------- blocks

    /// Records that `block` was requested from `peer` (pick does this for the
    /// blocks it returns; use this for requests decided elsewhere). Returns
    /// `false`, changing nothing, if the block is received already, the peer
    /// already has a request for it, or it has
    /// [`Config::max_requesters_per_block`] requesters.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPeer`], [`Error::PieceOutOfRange`] or
    /// [`Error::BlockOutOfRange`].
    pub fn request_block(
        &mut self,
        now: Instant,
        peer: PeerKey,
        block: Block,
    ) -> Result<bool, Error> {
        let (p, b) = self.check_block(block)?;
        self.peer(peer)?;
        if self.pieces[p as usize].have {
            return Ok(false);
        }
        Ok(self.mark_requested(now, peer, p, b, Speed::None))
    }

    /// The request of `block` from `peer` is gone without data: the peer
    /// rejected it (BEP 6 REJECT), choked us, or we cancelled it. The block
    /// reopens unless another peer is also asked for it. Returns whether
    /// `peer` had a request for it.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPeer`], [`Error::PieceOutOfRange`] or
    /// [`Error::BlockOutOfRange`].
    pub fn cancel_request(&mut self, peer: PeerKey, block: Block) -> Result<bool, Error> {
        let (p, b) = self.check_block(block)?;
        self.peer(peer)?;
        let dl = self.pieces[p as usize].dl;
        if dl == NONE {
            return Ok(false);
        }
        let dropped = self.downloads[dl as usize].drop_requester(b, peer);
        if dropped {
            if let Some(state) = self.peers.get_mut(&peer) {
                state.outstanding -= 1;
            }
            self.release_if_idle(p);
            self.reposition(p);
        }
        Ok(dropped)
    }

    /// `peer` sent `block`. The block becomes [`BlockState::Writing`] whether
    /// or not it was requested; every other peer it was requested from is
    /// returned in [`Received::cancel`].
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPeer`], [`Error::PieceOutOfRange`] or
    /// [`Error::BlockOutOfRange`] (a peer fault when the block came from the
    /// wire unchecked).
    pub fn block_received(&mut self, peer: PeerKey, block: Block) -> Result<Received, Error> {
        let (p, b) = self.check_block(block)?;
        self.peer(peer)?;
        let mut out = Received::default();
        if self.pieces[p as usize].have {
            // `set_have` and `piece_passed` dropped its requests already.
            out.redundant = true;
            return Ok(out);
        }
        let dl = self.download_for(p, Speed::None);
        let d = &mut self.downloads[dl];
        let info = d.blocks[b as usize];
        match info.state {
            BlockState::Writing | BlockState::Finished => {
                out.redundant = true;
                // A duplicate request by `peer` cannot exist: requests end
                // when the block arrives. Nothing changes.
                return Ok(out);
            }
            BlockState::Requested => {
                let requesters: Vec<PeerKey> = d.requesters(b).collect();
                d.extra.retain(|&(x, _)| x != b);
                d.requested -= 1;
                for r in requesters {
                    if let Some(state) = self.peers.get_mut(&r) {
                        state.outstanding -= 1;
                    }
                    if r != peer {
                        out.cancel.push(r);
                    }
                }
            }
            BlockState::Open => {}
        }
        let d = &mut self.downloads[dl];
        d.blocks[b as usize] = BlockInfo {
            state: BlockState::Writing,
            num_peers: 0,
            peer: Some(peer),
            requested_at: None,
        };
        d.writing += 1;
        out.piece_complete = d.complete();
        self.reposition(p);
        Ok(out)
    }

    /// Writing `block` to disk failed: it reopens, to be downloaded again.
    ///
    /// # Errors
    ///
    /// [`Error::PieceOutOfRange`] or [`Error::BlockOutOfRange`].
    pub fn block_write_failed(&mut self, block: Block) -> Result<(), Error> {
        let (p, b) = self.check_block(block)?;
        let dl = self.pieces[p as usize].dl;
        if dl == NONE {
            return Ok(());
        }
        let d = &mut self.downloads[dl as usize];
        if d.blocks[b as usize].state != BlockState::Writing {
            return Ok(());
        }
        d.blocks[b as usize] = BlockInfo::default();
        d.writing -= 1;
        self.release_if_idle(p);
        self.reposition(p);
        Ok(())
    }

    /// `block` is on disk ([`BlockState::Finished`]). Also accepts open or
    /// requested blocks, to restore partial pieces from resume data (their
    /// requests are forgotten). Returns whether every block of the piece is
    /// now finished.
    ///
    /// # Errors
    ///
    /// [`Error::PieceOutOfRange`] or [`Error::BlockOutOfRange`].
    pub fn block_written(&mut self, block: Block) -> Result<bool, Error> {
        let (p, b) = self.check_block(block)?;
        if self.pieces[p as usize].have {
            return Ok(true);
        }
        let dl = self.download_for(p, Speed::None);
        let d = &mut self.downloads[dl];
        match d.blocks[b as usize].state {
            BlockState::Finished => {}
            BlockState::Writing => {
                d.writing -= 1;
                d.finished += 1;
                d.blocks[b as usize].state = BlockState::Finished;
            }
            BlockState::Requested => {
                let requesters: Vec<PeerKey> = d.requesters(b).collect();
                d.extra.retain(|&(x, _)| x != b);
                d.requested -= 1;
                d.finished += 1;
                d.blocks[b as usize] = BlockInfo {
                    state: BlockState::Finished,
                    ..BlockInfo::default()
                };
                for r in requesters {
                    if let Some(state) = self.peers.get_mut(&r) {
                        state.outstanding -= 1;
                    }
                }
            }
            BlockState::Open => {
                d.finished += 1;
                d.blocks[b as usize].state = BlockState::Finished;
            }
        }
        let d = &self.downloads[dl];
        let all = d.finished == d.num_blocks();
        self.reposition(p);
        Ok(all)
    }

    // ------------------------------------------------------------ helpers

    pub(crate) fn peer(&self, peer: PeerKey) -> Result<&PeerState, Error> {
        self.peers.get(&peer).ok_or(Error::UnknownPeer(peer))
    }

    pub(crate) fn check_piece(&self, piece: PieceIndex) -> Result<u32, Error> {
        if piece.as_usize() < self.pieces.len() {
            Ok(piece.get())
        } else {
            Err(Error::PieceOutOfRange {
                piece,
                num_pieces: self.layout.num_pieces(),
            })
        }
    }

    fn check_block(&self, block: Block) -> Result<(u32, u32), Error> {
        let p = self.check_piece(block.piece)?;
        let num_blocks = self.layout.blocks_in_piece(p);
        if block.block.get() >= num_blocks {
            return Err(Error::BlockOutOfRange {
                piece: block.piece,
                block: block.block.get(),
                num_blocks,
            });
        }
        Ok((p, block.block.get()))
    }

    /// Recomputes the bucket of `piece` and moves it there.
    pub(crate) fn reposition(&mut self, piece: u32) {
        let key = key_for(&self.pieces[piece as usize], &self.downloads);
        self.order.set(piece, key, &mut self.rng);
    }

    /// Rebuilds the order if it is dirty.
    pub(crate) fn ensure_order(&mut self) {
        if self.order.is_dirty() {
            let (pieces, downloads) = (&self.pieces, &self.downloads);
            self.order
                .rebuild(pieces.iter().map(|e| key_for(e, downloads)), &mut self.rng);
        }
    }

    fn assign_priority(&mut self, p: u32, priority: Priority) {
        let e = &mut self.pieces[p as usize];
        if !e.have {
            match (e.priority.is_dont_download(), priority.is_dont_download()) {
                (true, false) => self.num_wanted_missing += 1,
                (false, true) => self.num_wanted_missing -= 1,
                _ => {}
            }
        }
        e.priority = priority;
    }

    fn remove_deadline(&mut self, p: u32) {
        if self.pieces[p as usize].deadline {
            self.deadlines.retain(|&(_, q)| q != p);
            self.pieces[p as usize].deadline = false;
        }
    }

    fn mark_have(&mut self, p: u32) {
        let e = &mut self.pieces[p as usize];
        if e.have {
            return;
        }
        e.have = true;
        if !e.priority.is_dont_download() {
            self.num_wanted_missing -= 1;
        }
        self.have.set(p as usize);
        self.num_have += 1;
        self.remove_deadline(p);
        while self.cursor < self.reverse_cursor && self.have.get(self.cursor as usize) {
            self.cursor += 1;
        }
        while self.reverse_cursor > self.cursor && self.have.get(self.reverse_cursor as usize - 1) {
            self.reverse_cursor -= 1;
        }
        self.reposition(p);
    }

    fn contributors(&self, p: u32) -> Vec<PeerKey> {
        match self.pieces[p as usize].dl {
            NONE => Vec::new(),
            dl => self.downloads[dl as usize].contributors(),
        }
    }

    /// The download of `p`, created (all blocks open) if missing.
    pub(crate) fn download_for(&mut self, p: u32, speed: Speed) -> usize {
        let dl = self.pieces[p as usize].dl;
        if dl != NONE {
            return dl as usize;
        }
        let n = self.layout.blocks_in_piece(p) as usize;
        let mut blocks = self.spare_blocks.pop().unwrap_or_default();
        blocks.clear();
        blocks.resize(n, BlockInfo::default());
        let index = self.downloads.len();
        self.downloads.push(Download {
            piece: p,
            blocks,
            extra: Vec::new(),
            requested: 0,
            writing: 0,
            finished: 0,
            speed,
        });
        self.pieces[p as usize].dl = u32::try_from(index).unwrap_or(NONE);
        index
    }

    /// Removes the download of `p`, forgetting every request. Returns the
    /// peers that had requests for it.
    fn drop_download(&mut self, p: u32) -> Vec<PeerKey> {
        let dl = self.pieces[p as usize].dl;
        if dl == NONE {
            return Vec::new();
        }
        let d = &self.downloads[dl as usize];
        let mut requesters = Vec::new();
        for b in 0..d.num_blocks() {
            requesters.extend(d.requesters(b));
        }
        for &r in &requesters {
            if let Some(state) = self.peers.get_mut(&r) {
                state.outstanding -= 1;
            }
        }
        self.free_download(dl as usize);
        requesters.sort_unstable();
        requesters.dedup();
        requesters
    }

    /// Drops the download of `p` if every block is open again.
    fn release_if_idle(&mut self, p: u32) {
        let dl = self.pieces[p as usize].dl;
        if dl != NONE
            && self.downloads[dl as usize].open() == self.downloads[dl as usize].num_blocks()
        {
            self.free_download(dl as usize);
        }
    }

    fn free_download(&mut self, dl: usize) {
        let d = self.downloads.swap_remove(dl);
        self.pieces[d.piece as usize].dl = NONE;
        if let Some(moved) = self.downloads.get(dl) {
            self.pieces[moved.piece as usize].dl = u32::try_from(dl).unwrap_or(NONE);
        }
        if self.spare_blocks.len() < MAX_SPARE_BLOCK_VECS {
            self.spare_blocks.push(d.blocks);
        }
    }

    /// Records a request of block `b` of `p` from `peer`; see
    /// [`Self::request_block`].
    pub(crate) fn mark_requested(
        &mut self,
        now: Instant,
        peer: PeerKey,
        p: u32,
        b: u32,
        speed: Speed,
    ) -> bool {
        let max = self.config.max_requesters_per_block.max(1);
        let dl = self.download_for(p, speed);
        let d = &mut self.downloads[dl];
        let info = &mut d.blocks[b as usize];
        let marked = match info.state {
            BlockState::Open => {
                *info = BlockInfo {
                    state: BlockState::Requested,
                    num_peers: 1,
                    peer: Some(peer),
                    requested_at: Some(now),
                };
                d.requested += 1;
                if d.speed == Speed::None {
                    d.speed = speed;
                }
                true
            }
            BlockState::Requested => {
                if info.num_peers >= max || d.is_requester(b, peer) {
                    false
                } else {
                    let info = &mut d.blocks[b as usize];
                    info.num_peers += 1;
                    info.requested_at = Some(now);
                    d.extra.push((b, peer));
                    true
                }
            }
            BlockState::Writing | BlockState::Finished => false,
        };
        if marked {
            if let Some(state) = self.peers.get_mut(&peer) {
                state.outstanding += 1;
            }
            self.reposition(p);
        } else {
            self.release_if_idle(p);
        }
        marked
    }

    fn cancel_all_requests(&mut self, peer: PeerKey) {
        let mut touched = Vec::new();
        for d in &mut self.downloads {
            for b in 0..d.num_blocks() {
                while d.drop_requester(b, peer) {
                    touched.push(d.piece);
                }
            }
        }
        if let Some(state) = self.peers.get_mut(&peer) {
            state.outstanding = 0;
        }
        touched.dedup();
        for p in touched {
            self.release_if_idle(p);
            self.reposition(p);
        }
    }

    fn replace_has(&mut self, peer: PeerKey, new: Has) -> Result<(), Error> {
        let state = self.peers.get_mut(&peer).ok_or(Error::UnknownPeer(peer))?;
        let old = core::mem::replace(&mut state.has, Has::Seed);
        self.remove_contribution(old);
        if matches!(new, Has::Seed) {
            self.seeds += 1;
        } else if let Has::Pieces { bits, ones } = &new {
            self.change_counts(bits, *ones, true);
        }
        if let Some(state) = self.peers.get_mut(&peer) {
            state.has = new;
        }
        Ok(())
    }

    fn remove_contribution(&mut self, has: Has) {
        match has {
            Has::Seed => self.seeds -= 1,
            Has::Pieces { bits, ones } => self.change_counts(&bits, ones, false),
        }
    }

    fn change_counts(&mut self, bits: &Bitfield, ones: u32, add: bool) {
        if ones == 0 {
            return;
        }
        let incremental = ones < INCREMENTAL_LIMIT && !self.order.is_dirty();
        for i in bits.iter_ones() {
            let e = &mut self.pieces[i];
            if add {
                e.count += 1;
            } else {
                e.count -= 1;
            }
            if incremental {
                // `i` < num_pieces, which fits u32 by construction of Layout.
                self.reposition(u32::try_from(i).unwrap_or(NONE));
            }
        }
        if !incremental {
            self.order.mark_dirty();
        }
    }
}

/// Whether every bit is set: `Bitfield::all` without its early exit, so the
/// loop vectorizes (a full 100,000-piece bitfield in a fraction of the time).
fn all_set(bits: &Bitfield) -> bool {
    let Some((&last, body)) = bits.as_bytes().split_last() else {
        return true;
    };
    let words = body.chunks_exact(8);
    let tail = words.remainder();
    let and = words.fold(u64::MAX, |acc, w| {
        acc & <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes)
    });
    // Spare bits past the end of the last byte are always zero (BEP 3).
    let last_full = match bits.len() % 8 {
        0 => 0xff,
        used => 0xffu8 << (8 - used),
    };
    and == u64::MAX && tail.iter().all(|&b| b == 0xff) && last == last_full
}

/// The bucket of a piece in the pick order (lower is picked first), or
/// [`NONE`] if it cannot be picked: had, priority 0, or no open block.
///
/// This is libtorrent 0.16's `piece_pos::priority` with two changes: priority
/// 7 sorts before everything else, and the availability is the count of
/// non-seed peers with a low bit telling whether that count is zero. Seeds add
/// the same to every piece, so they do not change the order; the low bit lets
/// a pick for a non-seed peer skip the pieces only seeds have in O(1) per
/// bucket, so a seed joining or leaving never touches the order.
pub(crate) fn key_for(e: &PieceEntry, downloads: &[Download]) -> u32 {
    if e.have || e.priority.is_dont_download() {
        return NONE;
    }
    let downloading = match e.dl {
        NONE => false,
        dl => {
            if downloads[dl as usize].open() == 0 {
                return NONE;
            }
            true
        }
    };
    let count = e.count.min(MAX_KEY_COUNT);
    let prio = u32::from(e.priority.get());
    let base = if prio == 7 {
        u32::from(!downloading)
    } else {
        // Priorities 4-6 halve the availability.
        let (avail, p) = if prio >= 4 {
            (count / 2, prio - 3)
        } else {
            (count, prio)
        };
        2 + avail * 4 + if downloading { 0 } else { 4 - p }
    };
    base * 2 + u32::from(count != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_set_matches_bitfield_all() {
        for len in [0usize, 1, 7, 8, 9, 63, 64, 65, 1000] {
            let full = Bitfield::full(len);
            assert!(all_set(&full), "{len}");
            for i in 0..len {
                let mut b = full.clone();
                b.clear(i);
                assert!(!all_set(&b), "{len} {i}");
            }
        }
    }
}
