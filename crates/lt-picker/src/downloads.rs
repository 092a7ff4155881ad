//! Block-level state of the pieces being downloaded (libtorrent's
//! `downloading_piece` and `block_info`).

use std::time::Instant;

use crate::{BlockState, PeerKey, Speed};

/// One block of a partial piece.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BlockInfo {
    pub(crate) state: BlockState,
    /// Requested: how many peers it is requested from (more than one in end
    /// game). Otherwise 0.
    pub(crate) num_peers: u8,
    /// Requested: the first peer it was requested from. Writing or finished:
    /// the peer that sent it (`None` if unknown, e.g. restored from resume data).
    pub(crate) peer: Option<PeerKey>,
    /// Requested: when the most recent request went out.
    pub(crate) requested_at: Option<Instant>,
}

/// A piece with at least one block that is not open.
#[derive(Clone, Debug)]
pub(crate) struct Download {
    pub(crate) piece: u32,
    pub(crate) blocks: Vec<BlockInfo>,
    /// Requesters after the first, for blocks requested more than once:
    /// `(block, peer)`. At most `max_requesters_per_block - 1` per block.
    pub(crate) extra: Vec<(u32, PeerKey)>,
    pub(crate) requested: u32,
    pub(crate) writing: u32,
    pub(crate) finished: u32,
    pub(crate) speed: Speed,
}

impl Download {
    pub(crate) fn num_blocks(&self) -> u32 {
        u32::try_from(self.blocks.len()).unwrap_or(u32::MAX)
    }

    pub(crate) fn open(&self) -> u32 {
        self.num_blocks() - self.requested - self.writing - self.finished
    }

    /// Whether every block is writing or finished: ready for the hash check.
    pub(crate) fn complete(&self) -> bool {
        self.writing + self.finished == self.num_blocks()
    }

    /// Whether `peer` is a requester of block `b`.
    pub(crate) fn is_requester(&self, b: u32, peer: PeerKey) -> bool {
        let info = &self.blocks[b as usize];
        info.state == BlockState::Requested
            && (info.peer == Some(peer) || self.extra.iter().any(|&(x, p)| x == b && p == peer))
    }

    /// Whether every block that is not open was requested from or sent by
    /// `peer` alone (parole and whole-piece picking).
    pub(crate) fn exclusive_to(&self, peer: PeerKey) -> bool {
        self.extra.is_empty()
            && self
                .blocks
                .iter()
                .all(|b| b.state == BlockState::Open || b.peer == Some(peer))
    }

    /// Every requester of block `b`, first one first.
    pub(crate) fn requesters(&self, b: u32) -> impl Iterator<Item = PeerKey> + '_ {
        let info = &self.blocks[b as usize];
        let first = if info.state == BlockState::Requested {
            info.peer
        } else {
            None
        };
        first.into_iter().chain(
            self.extra
                .iter()
                .filter(move |&&(x, _)| x == b)
                .map(|&(_, p)| p),
        )
    }

    /// Removes `peer` from the requesters of block `b`. Returns whether it was
    /// one. The block becomes open when its last requester goes.
    pub(crate) fn drop_requester(&mut self, b: u32, peer: PeerKey) -> bool {
        let info = &mut self.blocks[b as usize];
        if info.state != BlockState::Requested {
            return false;
        }
        if info.peer == Some(peer) {
            // Promote an extra requester, if any.
            if let Some(i) = self.extra.iter().position(|&(x, _)| x == b) {
                info.peer = Some(self.extra.swap_remove(i).1);
            } else {
                info.peer = None;
            }
        } else if let Some(i) = self.extra.iter().position(|&(x, p)| x == b && p == peer) {
            self.extra.swap_remove(i);
        } else {
            return false;
        }
        info.num_peers -= 1;
        if info.num_peers == 0 {
            info.state = BlockState::Open;
            info.peer = None;
            info.requested_at = None;
            self.requested -= 1;
        }
        true
    }

    /// Distinct peers that sent a writing or finished block.
    pub(crate) fn contributors(&self) -> Vec<PeerKey> {
        let mut peers: Vec<PeerKey> = self
            .blocks
            .iter()
            .filter(|b| matches!(b.state, BlockState::Writing | BlockState::Finished))
            .filter_map(|b| b.peer)
            .collect();
        peers.sort_unstable();
        peers.dedup();
        peers
    }
}
