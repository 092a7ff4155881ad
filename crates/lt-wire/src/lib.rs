//! The BitTorrent peer wire protocol, sans IO: everything two peers say to each other.
//!
//! ```text
//!          socket bytes                                   bytes to write
//!               │                                               ▲
//!   ┌───────────▼───────────┐  (optional)                       │
//!   │ mse::MseHandshake     │──NeedSkey(req2)──▶ caller finds torrent
//!   │ DH-768, RC4-drop1024  │──MseOutcome { cipher, received }  │
//!   └───────────┬───────────┘                                   │
//!   ┌───────────▼───────────────────────────────────────────────┴──┐
//!   │ PeerConnection          handle_bytes(now, &[u8]) / handle_timeout(now)
//!   │  HandshakeDecoder  ─▶ IncomingHandshake → accept(torrent) ─▶ Connected
//!   │  MessageDecoder    ─▶ Message (PIECE data split off as Bytes, no copy)
//!   │  ExtensionMessage  ─▶ ut_metadata / ut_pex / lt_donthave / upload_only / ...
//!   │  state: choke+interest ×2, peer bitfield, requests in flight ×2,
//!   │         timeouts, snubbing, keep-alive, counters
//!   └──┬───────────────────────────┬──────────────────────────┬────┘
//!      ▼ poll_event(): PeerEvent    ▼ poll_transmit(): Bytes    ▼ poll_timeout(): Instant
//!   piece picker / torrent logic (commands: request, send_block, choke, have, ...)
//! ```
//!
//! The codecs stand alone: [`Handshake`]/[`HandshakeDecoder`], [`Message`]/[`MessageDecoder`]
//! (tokio-util's `decode(&mut BytesMut) -> Result<Option<_>, Error>` contract),
//! [`ExtendedHandshake`], [`ExtensionMessage`], [`MetadataMessage`], [`PexMessage`],
//! [`HolepunchMessage`], [`allowed_fast_set`] and the MSE/PE state machine [`mse`].
//! [`PeerConnection`] ties them into one peer's protocol state.
//!
//! BEPs: 3 (handshake, messages), 5 (PORT), 6 (fast extension, allowed-fast generator),
//! 9 (ut_metadata), 10 (extension protocol), 11 (ut_pex), 52 (v2 handshakes, hash
//! messages), 55 (ut_holepunch), and Message Stream Encryption.
//!
//! This crate performs no I/O, reads no clock (`now: Instant` is a parameter) and no OS
//! randomness (MSE keys and pads come from a ChaCha20 generator seeded by the caller),
//! spawns nothing and has no `unsafe`. Everything a peer can make it buffer or remember is
//! bounded by [`Limits`] and [`PeerConfig`]; every protocol violation is a typed [`Error`]
//! (the caller closes the connection), never a panic. It does not pick pieces, choose whom
//! to unchoke, store data or verify hashes.
//!
//! # Example: two connections talking through memory
//!
//! ```
//! use std::time::Instant;
//! use lt_core::{Bitfield, InfoHash, PeerId, PieceIndex};
//! use lt_wire::{BlockRequest, PeerConfig, PeerConnection, PeerEvent, PieceLayout, TorrentParams};
//!
//! let now = Instant::now();
//! let torrent = TorrentParams {
//!     info_hash: InfoHash::v1([9; 20].into()),
//!     layout: Some(PieceLayout { num_pieces: 2, piece_length: 32768, total_length: 40000 }),
//!     metadata_size: None,
//! };
//! let mut leech = PeerConnection::outgoing(PeerConfig::new(PeerId::new([1; 20])), now, torrent, None, Default::default())?;
//! let mut seed = PeerConnection::incoming(PeerConfig::new(PeerId::new([2; 20])), now, None, Default::default())?;
//! // Shuttle bytes both ways until both sides are quiet, answering events on the way.
//! for _ in 0..10 {
//!     while let Some(b) = leech.poll_transmit() { seed.handle_bytes(now, &b)?; }
//!     while let Some(e) = seed.poll_event() {
//!         match e {
//!             PeerEvent::IncomingHandshake { .. } => seed.accept(now, torrent)?,
//!             PeerEvent::Connected { .. } => {
//!                 seed.send_bitfield(now, &Bitfield::full(2));
//!                 seed.unchoke(now);
//!             }
//!             PeerEvent::Request(r) => {
//!                 seed.send_block(now, r.piece, r.begin, vec![7u8; r.len as usize].into());
//!             }
//!             _ => {}
//!         }
//!     }
//!     while let Some(b) = seed.poll_transmit() { leech.handle_bytes(now, &b)?; }
//!     while let Some(e) = leech.poll_event() {
//!         match e {
//!             PeerEvent::Unchoked => leech.request(now, BlockRequest::new(PieceIndex(1), 0, 7232))?,
//!             PeerEvent::Block { request, data } => {
//!                 assert_eq!((request.piece, data.len()), (PieceIndex(1), 7232));
//!                 return Ok(());
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//! panic!("no block");
//! # Ok::<(), lt_wire::Error>(())
//! ```
//!
//! # Features
//!
//! - `quickcheck`: `quickcheck::Arbitrary` for the message types, for property tests.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod extension;
mod fast;
mod handshake;
mod holepunch;
pub mod limits;
mod message;
mod metadata;
pub mod mse;
mod peer;
mod pex;

pub use error::{Error, MseError, TimeoutKind};
pub use extension::{ExtendedHandshake, Extension, ExtensionIds, ExtensionMessage};
pub use fast::allowed_fast_set;
pub use handshake::{
    HANDSHAKE_HEAD_LEN, HANDSHAKE_LEN, Handshake, HandshakeDecoder, HandshakeFrame, PROTOCOL,
    Reserved,
};
pub use holepunch::{HolepunchError, HolepunchKind, HolepunchMessage};
pub use limits::Limits;
pub use message::{BlockRequest, HashRequest, Message, MessageDecoder, id, piece_header};
pub use metadata::{MetadataMessage, metadata_piece_count, metadata_piece_len};
pub use peer::{
    DirectionStats, PeerConfig, PeerConnection, PeerEvent, PeerStats, PieceLayout, TorrentParams,
};
pub use pex::{PexFlags, PexMessage, PexPeer, PexRateLimiter};

/// Runs the README's example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
