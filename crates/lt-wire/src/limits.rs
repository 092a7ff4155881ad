//! Limits that bound what a peer can make us allocate, buffer or track.
//!
//! Each is checked *before* the bytes it describes are buffered or a collection grows.
//! The defaults follow libtorrent 2.0 where it has a setting or a constant.

use std::time::Duration;

/// Largest message (length prefix) accepted: 1 MiB, libtorrent's `packet_too_large` check.
pub const DEFAULT_MAX_MESSAGE_LEN: u32 = 1 << 20;
/// Largest REQUEST length accepted: one 16 KiB block (BEP 3).
pub const DEFAULT_MAX_REQUEST_LEN: u32 = lt_core::BLOCK_SIZE;
/// Largest extended handshake payload: 64 KiB (real ones are a few hundred bytes).
pub const DEFAULT_MAX_EXTENDED_HANDSHAKE_LEN: usize = 64 << 10;
/// Most entries accepted in an extended handshake's `m` dictionary.
pub const DEFAULT_MAX_EXTENSIONS: usize = 64;
/// Largest `metadata_size` accepted: 30 MiB, libtorrent's `max_metadata_size`.
pub const DEFAULT_MAX_METADATA_SIZE: u64 = 30 << 20;
/// Size of a ut_metadata piece (BEP 9): 16 KiB, all but the last.
pub const METADATA_PIECE_SIZE: u32 = 16 << 10;
/// Largest ut_pex payload: 500 KiB, libtorrent's `pex_message_too_large` check.
pub const DEFAULT_MAX_PEX_MESSAGE_LEN: usize = 500 << 10;
/// Most peers (`added` plus `added6`) in one ut_pex message: 200, libtorrent's `max_pex_peers`.
pub const DEFAULT_MAX_PEX_PEERS: usize = 200;
/// ut_pex flood rule (libtorrent): at most this many messages ...
pub const PEX_FLOOD_COUNT: usize = 6;
/// ... within this window.
pub const PEX_FLOOD_WINDOW: Duration = Duration::from_secs(60);
/// Most bencoded items in one extension message.
pub const DEFAULT_MAX_BENCODE_ITEMS: usize = 10_000;
/// Deepest bencode nesting in one extension message.
pub const DEFAULT_MAX_BENCODE_DEPTH: usize = 16;
/// Most requests we keep outstanding to one peer (libtorrent's `max_out_request_queue`).
pub const DEFAULT_MAX_OUT_REQUESTS: usize = 500;
/// Most requests from one peer we queue; also what we advertise as `reqq`.
pub const DEFAULT_MAX_IN_REQUESTS: usize = 500;
/// Most ALLOWED FAST and SUGGEST PIECE indices remembered from one peer.
pub const DEFAULT_MAX_FAST_SET: usize = 256;
/// A block not received this long after its REQUEST times out (libtorrent's `request_timeout`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The handshake must complete within this (libtorrent's `handshake_timeout`).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that receives nothing for this long is closed (libtorrent's `inactivity_timeout`).
pub const DEFAULT_INACTIVITY_TIMEOUT: Duration = Duration::from_secs(600);
/// A keep-alive is sent when we have sent nothing for this long (BEP 3: "generally two minutes").
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(120);

/// Bounds applied to one peer's input. Every field has a documented default.
///
/// ```
/// let limits = lt_wire::Limits { max_message_len: 64 << 10, ..Default::default() };
/// assert_eq!(limits.max_request_len, 16384);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest length prefix. Default: [`DEFAULT_MAX_MESSAGE_LEN`].
    pub max_message_len: u32,
    /// Largest REQUEST length. Default: [`DEFAULT_MAX_REQUEST_LEN`].
    pub max_request_len: u32,
    /// Largest extended handshake. Default: [`DEFAULT_MAX_EXTENDED_HANDSHAKE_LEN`].
    pub max_extended_handshake_len: usize,
    /// Most `m` entries. Default: [`DEFAULT_MAX_EXTENSIONS`].
    pub max_extensions: usize,
    /// Largest metadata. Default: [`DEFAULT_MAX_METADATA_SIZE`].
    pub max_metadata_size: u64,
    /// Largest ut_pex payload. Default: [`DEFAULT_MAX_PEX_MESSAGE_LEN`].
    pub max_pex_message_len: usize,
    /// Most peers per ut_pex message. Default: [`DEFAULT_MAX_PEX_PEERS`].
    pub max_pex_peers: usize,
    /// Bencode items per extension message. Default: [`DEFAULT_MAX_BENCODE_ITEMS`].
    pub max_bencode_items: usize,
    /// Bencode depth per extension message. Default: [`DEFAULT_MAX_BENCODE_DEPTH`].
    pub max_bencode_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_request_len: DEFAULT_MAX_REQUEST_LEN,
            max_extended_handshake_len: DEFAULT_MAX_EXTENDED_HANDSHAKE_LEN,
            max_extensions: DEFAULT_MAX_EXTENSIONS,
            max_metadata_size: DEFAULT_MAX_METADATA_SIZE,
            max_pex_message_len: DEFAULT_MAX_PEX_MESSAGE_LEN,
            max_pex_peers: DEFAULT_MAX_PEX_PEERS,
            max_bencode_items: DEFAULT_MAX_BENCODE_ITEMS,
            max_bencode_depth: DEFAULT_MAX_BENCODE_DEPTH,
        }
    }
}

impl Limits {
    pub(crate) fn bencode(&self) -> lt_bencode::Limits {
        lt_bencode::Limits {
            max_depth: self.max_bencode_depth,
            max_items: self.max_bencode_items,
        }
    }
}
