//! Limits on what a tracker may make us allocate. Each is overridable through the
//! corresponding `Config`.

use std::time::Duration;

/// Default maximum size of an HTTP tracker reply body (libtorrent's `tracker_maximum_response_length`, 1 MiB).
pub const MAX_REPLY_LEN: usize = 1024 * 1024;

/// Default maximum nesting depth of a bencoded tracker reply. Replies are at most three
/// levels deep (dict → peers list → peer dict, or dict → files → entry); 16 leaves room.
pub const MAX_BENCODE_DEPTH: usize = 16;

/// Default maximum number of bencode items in a tracker reply.
pub const MAX_BENCODE_ITEMS: usize = 200_000;

/// Default maximum number of peers kept from one reply; further peers are dropped.
pub const MAX_PEERS_PER_REPLY: usize = 2_000;

/// Default maximum number of files kept from one scrape reply.
pub const MAX_SCRAPE_FILES: usize = 1_000;

/// Maximum length in bytes of a tracker message (`failure reason`, `warning message`, UDP
/// error text) that is kept; longer ones are truncated.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// Maximum length of a `tracker id` that is kept.
pub const MAX_TRACKER_ID_LEN: usize = 256;

/// Maximum number of info-hashes in one UDP scrape (BEP 15: about 74 fit in a packet).
pub const MAX_UDP_SCRAPE_HASHES: usize = 74;

/// Maximum number of BEP 41 URL data bytes (one option carries at most 255).
pub const MAX_URL_DATA_LEN: usize = 255;

/// Largest UDP datagram we build or accept.
pub const MAX_DATAGRAM_LEN: usize = 2048;

/// Default cap on operations queued in one [`crate::UdpTracker`] behind the one in flight.
pub const MAX_QUEUED_UDP_OPS: usize = 16;

/// Longest announce interval (and `min interval`) taken from a reply: one day. The reply's
/// number comes from the network and may be as large as `i64::MAX` seconds, which no
/// `Instant` can hold; longer intervals are cut to this (libtorrent also clamps them).
pub const MAX_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// An interval in seconds from a reply, cut to [`MAX_ANNOUNCE_INTERVAL`].
#[must_use]
pub fn clamp_interval(secs: u64) -> Duration {
    Duration::from_secs(secs).min(MAX_ANNOUNCE_INTERVAL)
}
