//! Bencode, the encoding of BitTorrent's `.torrent` files, tracker replies and DHT messages
//! (BEP 3), with a zero-copy decoder that knows every value's byte span.
//!
//! ```text
//!   &[u8] ──decode──▶ Document ──root()──▶ Node ─┬─ as_int / as_bytes / as_str
//!                     (token array,               ├─ as_list ─▶ List ─▶ Node...
//!                      no copies)                 ├─ as_dict ─▶ Dict ─▶ (key, Node)...
//!                                                 ├─ span() / raw()  (exact input bytes)
//!                                                 └─ to_value() ─▶ Value ──encode──▶ Vec<u8>
//!   &[u8] ──from_bytes──▶ T: Deserialize          T: Serialize ──to_bytes──▶ Vec<u8>
//! ```
//!
//! - [`decode`] makes one iterative pass over the input and records a flat array of
//!   16-byte tokens (libtorrent 2's `bdecode_node` design). Strings are borrowed, never
//!   copied; [`Node::raw`] gives the exact bytes of any item, which is what an info-hash is
//!   computed over.
//! - Depth and item [`Limits`] bound the work and memory hostile input can cause; errors
//!   carry a byte offset and the manual's bdecode error code ([`Error::code`]). Integers that
//!   overflow `i64` are errors, never wrapped.
//! - Non-canonical input (unsorted or duplicate keys, leading zeros, `-0`) decodes, because
//!   real torrents contain it, and is reported by [`Document::non_canonical`];
//!   [`decode_strict`] rejects it.
//! - [`Value`] is an owned tree whose encoder always writes sorted keys.
//! - With the `serde` feature (on by default), [`from_bytes`] deserializes borrowed,
//!   typed structs straight from the token array and [`to_bytes`] serializes canonically.
//!
//! This crate performs no I/O. It is written by hand rather than built on `serde_bencode`
//! or `bendy` because neither exposes the raw bytes of a nested value, `serde_bencode`
//! copies every string and reads one byte per call, and neither bounds the decoder's memory
//! the way a network-facing parser must (see `benches/bencode.rs` for the speed difference).
//!
//! # Example: a torrent's info-hash span
//!
//! ```
//! let torrent = b"d8:announce14:http://t/annou4:infod6:lengthi5e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee";
//! let doc = lt_bencode::decode(torrent)?;
//! let info = doc.root().as_dict().and_then(|d| d.get("info")).expect("has info");
//! // The SHA-1 of these exact bytes is the torrent's v1 info-hash.
//! assert!(info.raw().starts_with(b"d6:length"));
//! assert_eq!(info.span().end, torrent.len() - 1);
//! # Ok::<(), lt_bencode::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod decode;
mod error;
mod limits;
mod value;

#[cfg(feature = "serde")]
mod de;
#[cfg(feature = "serde")]
mod ser;

pub use decode::{
    Dict, DictIter, Document, Kind, List, ListIter, Node, Violation, decode, decode_prefix,
    decode_prefix_with, decode_strict, decode_with,
};
pub use error::{Error, NonCanonical};
pub use limits::{DEFAULT_MAX_DEPTH, DEFAULT_MAX_ITEMS, Limits};
pub use value::{Value, write_bytes, write_int};

#[cfg(feature = "serde")]
pub use de::{from_bytes, from_bytes_with, from_node};
#[cfg(feature = "serde")]
pub use ser::to_bytes;
