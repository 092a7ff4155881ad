//! Shared primitives of the lt BitTorrent engine: the values every layer passes
//! around.
//!
//! | type | what it is |
//! |---|---|
//! | [`Sha1Hash`], [`Sha256Hash`] | digests: v1/v2 info-hashes, piece hashes, DHT ids (hex, base32, XOR distance) |
//! | [`Sha1Hasher`], [`Sha256Hasher`] | incremental hashing, block by block |
//! | [`InfoHash`] | a torrent's identity: v1, v2 or hybrid (BEP 52), never neither |
//! | [`Bitfield`] | which pieces a peer has, in the BEP 3 wire layout |
//! | [`PeerId`], [`Fingerprint`], [`identify_client`] | peer ids, our `-LT2090-` prefix, naming a peer's client |
//! | [`PieceIndex`], [`BlockIndex`], [`FileIndex`], [`BLOCK_SIZE`] | index newtypes |
//! | [`compact`] | 6- and 18-byte compact peer addresses (BEP 23, BEP 7) |
//!
//! ```text
//!  hex / base32 text ──► Sha1Hash, Sha256Hash ──► InfoHash ──► best(): 20 wire bytes
//!  peer's BITFIELD bytes ──► Bitfield::from_bytes ──► Bitfield ──► as_bytes(): wire bytes
//!  handshake peer id ──► PeerId ──► identify_client ──► "qBittorrent 4.2.5"
//! ```
//!
//! This crate holds pure values only. It performs no I/O, reads no clock and no
//! OS randomness (callers pass random bytes to [`PeerId::generate`]), spawns
//! nothing and uses no `unsafe`. Everything that parses outside input
//! ([`Sha1Hash::from_hex`], [`Sha1Hash::from_base32`], [`Bitfield::from_bytes`],
//! [`identify_client`]) returns a typed [`Error`] or `None` instead of panicking.
//!
//! BEPs: 3 (bitfield layout, SHA-1 piece and info hashes, peer ids), 5 (XOR
//! distance), 9 (base32 info-hashes in magnet links), 20 (peer id conventions),
//! 52 (SHA-256 info-hashes, truncated to 20 bytes on the wire).
//!
//! # Example
//!
//! ```
//! use lt_core::{identify_client, Bitfield, Fingerprint, InfoHash, PeerId, Sha1Hash};
//!
//! // A v1 info-hash from a magnet link's base32 `btih`.
//! let v1 = Sha1Hash::from_base32("VGMT4NSHA2AWVOR6EVYXQUGCNSONBWE5")?;
//! let info_hash = InfoHash::v1(v1);
//! assert_eq!(info_hash.best().to_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
//!
//! // Our peer id, with randomness supplied by the caller.
//! let me = PeerId::generate(&Fingerprint::new(*b"LT", 2, 0, 9, 0), [42; 12]);
//! assert_eq!(identify_client(&me).unwrap().to_string(), "libtorrent 2.0.9");
//!
//! // A peer's BITFIELD message for a 10-piece torrent, and what we lack of it.
//! let theirs = Bitfield::from_bytes(&[0b1100_0000, 0b0100_0000], 10)?;
//! let mut ours = Bitfield::new(10);
//! ours.set(0);
//! assert_eq!(theirs.and_not_count(&ours), 2);
//! assert_eq!(theirs.iter_ones().collect::<Vec<_>>(), [0, 1, 9]);
//!
//! // Verifying a piece block by block.
//! let mut hasher = lt_core::Sha1Hasher::new();
//! hasher.update(b"ab");
//! hasher.update(b"c");
//! assert_eq!(hasher.finalize(), v1);
//! # Ok::<(), lt_core::Error>(())
//! ```
//!
//! # Features
//!
//! - `quickcheck`: `quickcheck::Arbitrary` for the value types, for property
//!   tests in other crates.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod base32;
mod bitfield;
pub mod compact;
mod error;
mod hash;
mod hex;
mod index;
mod info_hash;
mod macros;
mod peer_id;

pub use bitfield::{Bitfield, Ones, Zeros};
pub use error::Error;
pub use hash::{Sha1Hash, Sha1Hasher, Sha256Hash, Sha256Hasher};
pub use index::{BLOCK_SIZE, BlockIndex, FileIndex, PieceIndex};
pub use info_hash::InfoHash;
pub use peer_id::{ClientInfo, Fingerprint, PeerId, identify_client};

/// Runs the README's example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
