//! The pick: which blocks to request from a peer next.

use std::time::Instant;

use crate::order::NONE;
use crate::peers::PeerState;
use crate::{Block, BlockState, Error, PeerKey, PickOptions, PickSummary, PiecePicker, Speed};

/// Buffers reused across picks so a pick does not allocate.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scratch {
    interesting: Vec<(u32, u32)>,
    /// Partial pieces others work on, for a peer that prefers whole pieces.
    backup1: Vec<(u32, u32)>,
    /// Partial pieces of another speed class.
    backup2: Vec<(u32, u32)>,
    /// Pieces already considered by this pick.
    visited: Vec<u32>,
}

/// One pick's progress.
struct Gather<'a> {
    peer: PeerKey,
    state: &'a PeerState,
    opts: &'a PickOptions,
    /// Whole-piece mode: open pieces are taken whole.
    whole: bool,
    /// Blocks still wanted.
    need: usize,
    s: Scratch,
}

/// Which list a partial piece's open blocks go to.
#[derive(Clone, Copy)]
enum Dest {
    Interesting,
    Backup1,
    Backup2,
}

/// Where a scan of the pieces ended.
enum Flow {
    Continue,
    Done,
}

impl PiecePicker {
    /// Picks up to `max_blocks` blocks to request from `peer` and marks them
    /// requested by it (libtorrent's `pick_pieces` followed by
    /// `mark_as_downloading`). See [`Self::pick_into`].
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPeer`].
    pub fn pick(
        &mut self,
        now: Instant,
        peer: PeerKey,
        max_blocks: usize,
        opts: &PickOptions,
    ) -> Result<Vec<Block>, Error> {
        let mut out = Vec::new();
        self.pick_into(now, peer, max_blocks, opts, &mut out)?;
        Ok(out)
    }

    /// Picks blocks to request from `peer`, appends them to `out` and marks
    /// them requested by `peer` at `now`.
    ///
    /// The order of preference:
    ///
    /// 1. pieces with a deadline, earliest first;
    /// 2. if [`PickOptions::choked`]: only the peer's allowed-fast pieces,
    ///    rarest first, and nothing else;
    /// 3. pieces the peer suggested (BEP 6);
    /// 4. partial pieces, when [`crate::Config::prioritize_partial_pieces`] is
    ///    set, when there are more than 1.5 partial pieces per peer, or while
    ///    picking randomly;
    /// 5. by mode: random pieces while we have fewer than
    ///    `initial_picker_threshold`; priority-7 pieces then index order in
    ///    sequential mode (from the end when [`PickOptions::reverse`]); else
    ///    rarest first within priority classes (most common first when
    ///    `reverse`);
    /// 6. partial pieces set aside above (others' pieces for a whole-piece
    ///    peer, pieces of another speed class);
    /// 7. end game: one block already requested from another peer, once every
    ///    wanted piece has a request (or always, without
    ///    `strict_end_game`); for pieces with a deadline, whenever they have no
    ///    open block. Never for a peer on parole.
    ///
    /// Usually at most `max_blocks` blocks are picked; with
    /// [`PickOptions::prefer_whole_pieces`] or [`PickOptions::on_parole`] open
    /// pieces are taken whole, so more may be. Never picks a block of a piece
    /// the peer lacks, of a piece with priority 0 or that we have, a block
    /// that is received, or one this peer was already asked for.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPeer`].
    pub fn pick_into(
        &mut self,
        now: Instant,
        peer: PeerKey,
        max_blocks: usize,
        opts: &PickOptions,
        out: &mut Vec<Block>,
    ) -> Result<PickSummary, Error> {
        if !self.peers.contains_key(&peer) {
            return Err(Error::UnknownPeer(peer));
        }
        self.ensure_order();
        let whole_pieces = opts.prefer_whole_pieces.max(u32::from(opts.on_parole));
        let whole_blocks = whole_pieces as usize * self.layout.blocks_per_piece() as usize;
        let need = max_blocks.max(whole_blocks);
        if need == 0 || self.num_wanted_missing == 0 {
            return Ok(PickSummary::default());
        }
        let random_mode = self.num_have < self.config.initial_picker_threshold && !self.sequential;
        let random_start = if random_mode {
            self.rng.below(self.layout.num_pieces())
        } else {
            0
        };
        let mut scratch = core::mem::take(&mut self.scratch);
        scratch.interesting.clear();
        scratch.backup1.clear();
        scratch.backup2.clear();
        scratch.visited.clear();

        let scratch = {
            let Some(state) = self.peers.get(&peer) else {
                return Err(Error::UnknownPeer(peer));
            };
            let mut g = Gather {
                peer,
                state,
                opts,
                whole: whole_pieces > 0,
                need,
                s: scratch,
            };
            self.gather(&mut g, random_mode, random_start);
            g.s
        };

        // Free blocks first (all of them: whole-piece picks may overshoot
        // `need` on purpose), then the backups up to `need`, marked as we go.
        let mut summary = PickSummary::default();
        for &(p, b) in &scratch.interesting {
            if self.mark_requested(now, peer, p, b, opts.speed) {
                out.push(Block::new(p, b));
                summary.picked += 1;
            }
        }
        for &(p, b) in scratch.backup1.iter().chain(&scratch.backup2) {
            if summary.picked >= need {
                break;
            }
            if self.mark_requested(now, peer, p, b, opts.speed) {
                out.push(Block::new(p, b));
                summary.picked += 1;
            }
        }
        let remaining = need.saturating_sub(summary.picked);
        self.scratch = scratch;

        if remaining > 0 {
            summary.end_game = true;
            if !opts.on_parole
                && let Some((p, b)) = self.pick_busy(peer, opts)
                && self.mark_requested(now, peer, p, b, opts.speed)
            {
                out.push(Block::new(p, b));
                summary.picked += 1;
                summary.busy += 1;
            }
        }
        Ok(summary)
    }

    /// Whether `piece` may be picked for this peer at all.
    fn eligible(&self, g: &Gather<'_>, piece: u32) -> bool {
        g.state.has(piece)
            && self.order.key(piece) != NONE
            && (!g.opts.choked || g.state.allowed_fast.contains(&piece))
    }

    fn gather(&self, g: &mut Gather<'_>, random_mode: bool, random_start: u32) {
        // 1. Time-critical pieces.
        for &(_, piece) in &self.deadlines {
            if let Flow::Done = self.consider(g, piece) {
                return;
            }
        }
        if g.opts.time_critical_only {
            return;
        }
        // 2. A choking peer: its allowed-fast pieces only, rarest first.
        if g.opts.choked {
            let mut fast: Vec<(u32, u32)> = g
                .state
                .allowed_fast
                .iter()
                .map(|&p| (self.order.key(p), p))
                .collect();
            fast.sort_unstable();
            for (_, piece) in fast {
                if let Flow::Done = self.consider(g, piece) {
                    return;
                }
            }
            return;
        }
        // 3. Suggested pieces, most recent first.
        for &piece in g.state.suggested.iter().rev() {
            if let Flow::Done = self.consider(g, piece) {
                return;
            }
        }
        // 4. Partial pieces.
        let many_partials = self.downloads.len() * 2 > self.peers.len() * 3;
        if self.config.prioritize_partial_pieces || many_partials || random_mode {
            for d in &self.downloads {
                if let Flow::Done = self.consider(g, d.piece) {
                    return;
                }
            }
        }
        // 5. The main order.
        if self.sequential {
            self.gather_sequential(g);
        } else if random_mode {
            let n = self.layout.num_pieces();
            for piece in (random_start..n).chain(0..random_start) {
                if let Flow::Done = self.consider(g, piece) {
                    return;
                }
            }
        } else {
            self.gather_rarest(g);
        }
    }

    fn gather_sequential(&self, g: &mut Gather<'_>) {
        // Priority 7 pieces first (buckets 0-3; see `key_for`).
        for k in 0..self.order.num_buckets().min(4) {
            for &piece in &self.order.pieces()[self.order.bucket(k)] {
                if let Flow::Done = self.consider(g, piece) {
                    return;
                }
            }
        }
        let range = self.cursor..self.reverse_cursor;
        if g.opts.reverse {
            for piece in range.rev() {
                if let Flow::Done = self.consider(g, piece) {
                    return;
                }
            }
        } else {
            for piece in range {
                if let Flow::Done = self.consider(g, piece) {
                    return;
                }
            }
        }
    }

    fn gather_rarest(&self, g: &mut Gather<'_>) {
        // Even buckets hold pieces no non-seed peer has: only a seed has them.
        let step_all = g.state.is_seed();
        let buckets = self.order.num_buckets();
        let pieces = self.order.pieces();
        if g.opts.reverse {
            for k in (0..buckets).rev() {
                if !step_all && k % 2 == 0 {
                    continue;
                }
                for &piece in pieces[self.order.bucket(k)].iter().rev() {
                    if let Flow::Done = self.consider(g, piece) {
                        return;
                    }
                }
            }
        } else {
            for k in 0..buckets {
                if !step_all && k % 2 == 0 {
                    continue;
                }
                for &piece in &pieces[self.order.bucket(k)] {
                    if let Flow::Done = self.consider(g, piece) {
                        return;
                    }
                }
            }
        }
    }

    /// Adds the blocks of `piece` this peer could be asked for (libtorrent's
    /// `add_blocks`).
    fn consider(&self, g: &mut Gather<'_>, piece: u32) -> Flow {
        if !self.eligible(g, piece) || g.s.visited.contains(&piece) {
            return Flow::Continue;
        }
        let e = &self.pieces[piece as usize];
        if e.dl == NONE {
            let n = self.layout.blocks_in_piece(piece);
            let take = if g.whole {
                n
            } else {
                n.min(u32::try_from(g.need).unwrap_or(u32::MAX))
            };
            g.s.interesting.extend((0..take).map(|b| (piece, b)));
            g.need = g.need.saturating_sub(take as usize);
            g.s.visited.push(piece);
            return if g.need == 0 {
                Flow::Done
            } else {
                Flow::Continue
            };
        }
        let d = &self.downloads[e.dl as usize];
        let exclusive = d.exclusive_to(g.peer);
        if g.opts.on_parole && !exclusive {
            return Flow::Continue;
        }
        g.s.visited.push(piece);
        let other_speed = d.speed != Speed::None && d.speed != g.opts.speed;
        let dest = if g.whole && !exclusive {
            Dest::Backup1
        } else if other_speed && !exclusive {
            Dest::Backup2
        } else {
            Dest::Interesting
        };
        for (b, info) in (0u32..).zip(&d.blocks) {
            if info.state != BlockState::Open {
                continue;
            }
            match dest {
                Dest::Backup1 => g.s.backup1.push((piece, b)),
                Dest::Backup2 => g.s.backup2.push((piece, b)),
                Dest::Interesting => {
                    g.s.interesting.push((piece, b));
                    g.need = g.need.saturating_sub(1);
                    if g.need == 0 && !g.whole {
                        break;
                    }
                }
            }
        }
        if g.need == 0 {
            Flow::Done
        } else {
            Flow::Continue
        }
    }

    /// End game: a block already requested from someone else, fewest
    /// requesters first, then the oldest request. Deadline pieces qualify
    /// always; others only in end game.
    fn pick_busy(&self, peer: PeerKey, opts: &PickOptions) -> Option<(u32, u32)> {
        let state = self.peers.get(&peer)?;
        let allowed = |piece: u32| {
            let e = &self.pieces[piece as usize];
            state.has(piece)
                && !e.have
                && !e.priority.is_dont_download()
                && (!opts.choked || state.allowed_fast.contains(&piece))
        };
        let max = self.config.max_requesters_per_block.max(1);
        let best_in = |pieces: &mut dyn Iterator<Item = u32>| {
            let mut best: Option<(u8, Option<Instant>, u32, u32)> = None;
            for piece in pieces {
                if !allowed(piece) {
                    continue;
                }
                let dl = self.pieces[piece as usize].dl;
                if dl == NONE {
                    continue;
                }
                let d = &self.downloads[dl as usize];
                for (b, info) in (0u32..).zip(&d.blocks) {
                    if info.state != BlockState::Requested
                        || info.num_peers >= max
                        || d.is_requester(b, peer)
                    {
                        continue;
                    }
                    let cand = (info.num_peers, info.requested_at, piece, b);
                    if best.is_none_or(|x| (cand.0, cand.1) < (x.0, x.1)) {
                        best = Some(cand);
                    }
                }
            }
            best.map(|(_, _, p, b)| (p, b))
        };
        if let Some(found) = best_in(&mut self.deadlines.iter().map(|&(_, p)| p)) {
            return Some(found);
        }
        if opts.time_critical_only || !self.end_game_allowed() {
            return None;
        }
        best_in(&mut self.downloads.iter().map(|d| d.piece))
    }

    /// Whether duplicate requests are allowed now (the manual's
    /// `strict_end_game_mode`): every wanted piece we lack has a request.
    pub(crate) fn end_game_allowed(&self) -> bool {
        if !self.config.strict_end_game {
            return true;
        }
        let wanted_downloading = self
            .downloads
            .iter()
            .filter(|d| !self.pieces[d.piece as usize].priority.is_dont_download())
            .count();
        wanted_downloading >= self.num_wanted_missing as usize
    }
}
