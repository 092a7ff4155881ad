//! The piece picker of the lt BitTorrent engine: which blocks to request from
//! which peer next. It implements the manual's "piece picker" chapter and
//! libtorrent's behaviour for it.
//!
//! ```text
//!  peer messages ───────► add_peer / remove_peer, peer_bitfield, peer_have,
//!  (BEP 3, 6, lt_donthave)  peer_have_all / _none, peer_dont_have,
//!                           peer_suggest, peer_allowed_fast
//!  user commands ───────► set_piece_priority, set_file_priorities,
//!                           set_piece_deadline, set_sequential
//!  engine, per peer ────► pick(now, peer, n, options) ──► blocks to REQUEST
//!  block events ────────► block_received ──► CANCELs for duplicate requests
//!                           cancel_request, block_written, block_write_failed
//!  hash results ────────► piece_passed / piece_failed ──► peers to clear / parole
//!  timers ─────────────► expired_requests(now, timeout), next_request_timeout
//!  UI ◄─────────────────  download_queue, piece_state, availabilities,
//!                           distributed_copies
//! ```
//!
//! This crate performs no I/O, reads no clock (time is a `now: Instant`
//! argument), uses no OS randomness (its generator is seeded from
//! [`Config::rng_seed`]), spawns nothing, and has no `unsafe`. Every method
//! returns a typed [`Error`] for out-of-range pieces, blocks, bitfields and
//! unknown peers instead of panicking.
//!
//! BEPs: 3 (HAVE, BITFIELD, REQUEST, CANCEL; rarest first), 6 (HAVE ALL, HAVE
//! NONE, SUGGEST PIECE, ALLOWED FAST, REJECT), and libtorrent's `lt_donthave`.
//!
//! # Features
//!
//! | feature | how |
//! |---|---|
//! | availability | per piece from peers' bitfields and HAVEs; seeds in one counter, so a seed joins and leaves in O(1) |
//! | rarest first | pieces sorted by availability, random within a class |
//! | initial random picks | while we have fewer than [`Config::initial_picker_threshold`] pieces |
//! | sequential | [`PiecePicker::set_sequential`]: lowest index first |
//! | reverse | [`PickOptions::reverse`] for snubbed peers: most common (or last) first |
//! | parole | [`PickOptions::on_parole`]: whole pieces nobody else touched, no duplicates |
//! | prioritize partial pieces | [`Config::prioritize_partial_pieces`], and automatic above 1.5 partial pieces per peer |
//! | prefer whole pieces | [`PickOptions::prefer_whole_pieces`] for fast peers and web seeds |
//! | speed affinity | [`PickOptions::speed`]: peers prefer partial pieces of their class |
//! | priorities 0-7 | [`PiecePicker::set_piece_priority`], [`PiecePicker::set_file_priorities`] |
//! | deadlines | [`PiecePicker::set_piece_deadline`]: earliest first, duplicates allowed (streaming) |
//! | suggested, allowed fast | [`PiecePicker::peer_suggest`], [`PiecePicker::peer_allowed_fast`], [`PickOptions::choked`] |
//! | end game | duplicate requests for the last blocks ([`Config::strict_end_game`]); [`Received::cancel`] lists the CANCELs |
//! | block states | open, requested (by whom), writing, finished; [`Layout`] sizes blocks (16 KiB, larger above 4 MiB pieces) |
//! | request timeouts | requests carry the caller's `now`; [`PiecePicker::expired_requests`] lists the stale ones |
//! | hash failures | [`PiecePicker::piece_failed`] reopens the piece and names its contributors |
//!
//! # Design
//!
//! All pickable pieces live in one vector sorted by *bucket* (libtorrent's
//! `m_pieces` and `m_priority_boundaries`). A piece's bucket combines its
//! priority, how many non-seed peers have it, and whether it is partial; lower
//! buckets are picked first. A HAVE moves the piece up by a few buckets, one
//! swap per boundary crossed and a final swap with a random member of its new
//! bucket, so `peer_have` is O(1) in the number of pieces. A peer with a
//! bitfield joining or leaving updates the counts and marks the vector dirty;
//! the next pick rebuilds it with a counting sort.
//!
//! Seeds are not counted per piece at all: they add the same to every piece,
//! which changes no order. Each bucket records whether its pieces' non-seed
//! count is zero, and a pick for a non-seed peer skips those buckets, since
//! such a peer cannot have those pieces. Adding or removing a seed is
//! therefore one counter update.
//!
//! Only pieces with a requested or received block have block state (a
//! *download*), in a vector indexed from the piece entry; their block vectors
//! are recycled.
//!
//! # Invariants
//!
//! [`PiecePicker::check_invariants`] asserts these; the tests call it after
//! every operation.
//!
//! - **I1 availability**: each piece's count is the number of registered
//!   peers with a bitfield that have it; the seed counter is the number of
//!   peers that have all pieces, none of which has a bitfield; a bitfield is
//!   never full.
//! - **I2 our pieces**: `num_have` is the number of set bits in our bitfield;
//!   the wanted-missing counter is the number of pieces with priority above 0
//!   that we lack; every piece below the sequential cursor or at or above the
//!   reverse cursor is one we have.
//! - **I3 downloads**: a piece has a download if and only if one of its blocks
//!   is not open, and never if we have it; the download's counters match its
//!   blocks; a requested block lists 1 to `max_requesters_per_block` distinct
//!   requesters and other blocks none; each peer's outstanding-request count is
//!   the number of blocks that list it.
//! - **I4 deadlines**: sorted by time, one entry per flagged piece, never for a
//!   piece we have.
//! - **I5 order**: unless dirty, the order holds exactly the pieces that are
//!   wanted, lacking and have an open block, each in the bucket its state
//!   gives, with positions and bucket boundaries consistent.
//!
//! # Example
//!
//! ```
//! use std::time::Instant;
//! use lt_core::{Bitfield, PieceIndex};
//! use lt_picker::{Config, Layout, PeerKey, PickOptions, PiecePicker};
//!
//! // 8 pieces of 2 blocks each.
//! let layout = Layout::uniform(8, 2)?;
//! let config = Config { rng_seed: Some([1; 32]), initial_picker_threshold: 0, ..Config::default() };
//! let mut picker = PiecePicker::new(layout, config);
//!
//! let (seed, leech) = (PeerKey(1), PeerKey(2));
//! picker.add_peer(seed)?;
//! picker.peer_have_all(seed)?;
//! picker.add_peer(leech)?;
//! let pieces: Bitfield = (0..8).map(|i| i != 7).collect();
//! picker.peer_bitfield(leech, pieces)?;
//!
//! // Piece 7 is the rarest: only the seed has it.
//! let now = Instant::now();
//! let blocks = picker.pick(now, seed, 2, &PickOptions::default())?;
//! assert!(blocks.iter().all(|b| b.piece == PieceIndex(7)));
//!
//! for block in blocks {
//!     let received = picker.block_received(seed, block)?;
//!     assert!(received.cancel.is_empty());
//!     picker.block_written(block)?;
//! }
//! picker.piece_passed(PieceIndex(7))?; // after the hash check
//! assert_eq!(picker.num_have(), 1);
//! # Ok::<(), lt_picker::Error>(())
//! ```
//!
//! A driver asks for blocks whenever a peer's request pipeline has room, and
//! feeds back every REJECT, PIECE, choke and disconnect:
//!
//! ```no_run
//! # use std::time::Instant;
//! # use lt_picker::{PeerKey, PickOptions, PiecePicker};
//! # fn send_request(_: PeerKey, _: (u32, u32, u32)) {}
//! # fn run(picker: &mut PiecePicker, peer: PeerKey, room: usize) -> Result<(), lt_picker::Error> {
//! let opts = PickOptions { reverse: false /* snubbed? */, ..PickOptions::default() };
//! for block in picker.pick(Instant::now(), peer, room, &opts)? {
//!     let (offset, len) = picker.layout().request(block).expect("picked blocks exist");
//!     send_request(peer, (block.piece.get(), offset, len));
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod downloads;
mod error;
mod layout;
mod order;
mod peers;
mod pick;
mod picker;
mod query;
mod rng;
mod types;

pub use config::Config;
pub use error::Error;
pub use layout::{Layout, MAX_BLOCKS_PER_PIECE};
pub use picker::{PiecePicker, Received};
pub use query::{BlockView, DistributedCopies, PartialPiece, PieceState};
pub use types::{Block, BlockState, PeerKey, PickOptions, PickSummary, Priority, Speed};

/// Runs the README's example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
