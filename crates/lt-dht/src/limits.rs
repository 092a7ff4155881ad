//! Bounds on what a remote node can make us parse or store.
//!
//! Decoding checks every count against these before allocating; the `Config`
//! caps (peer store, rate-limit table, lookups) default to the `DEFAULT_*` values here.

/// Largest KRPC datagram accepted (and the most we ever encode). A full `get_peers`
/// reply with 8 IPv6 nodes and 100 IPv4 values stays under this.
pub const MAX_MESSAGE_LEN: usize = 2048;
/// Maximum bencode nesting in a KRPC message: message, `r`/`a`, then a `values` list or a
/// BEP 44 `v`, which may itself nest a few levels.
pub const MAX_DEPTH: usize = 12;
/// Maximum bencode items in a KRPC message.
pub const MAX_ITEMS: usize = 512;
/// Maximum length of a transaction id (libtorrent sends 2 bytes, others up to 8).
pub const MAX_TID_LEN: usize = 16;
/// Maximum length of the `v` client version string.
pub const MAX_VERSION_LEN: usize = 16;
/// Maximum length of a `get_peers` token.
pub const MAX_TOKEN_LEN: usize = 64;
/// Maximum length of an error message string.
pub const MAX_ERROR_MESSAGE_LEN: usize = 256;
/// Maximum compact nodes in one `nodes` or `nodes6` value.
pub const MAX_NODES: usize = 32;
/// Maximum peers in one `values` list.
pub const MAX_VALUES: usize = 200;
/// Maximum info-hashes in one BEP 51 `samples` value.
pub const MAX_SAMPLES: usize = 64;
/// BEP 44: the bencoded `v` of an item is at most 1000 bytes.
pub const MAX_ITEM_VALUE_LEN: usize = 1000;
/// BEP 44: a salt is at most 64 bytes.
pub const MAX_SALT_LEN: usize = 64;

/// Default number of nodes per routing-table bucket (BEP 5's K).
pub const DEFAULT_BUCKET_SIZE: usize = 8;
/// Default replacement-cache size per bucket.
pub const DEFAULT_REPLACEMENTS: usize = 8;
/// Default maximum info-hashes in the peer store.
pub const DEFAULT_MAX_INFO_HASHES: usize = 5000;
/// Default maximum peers stored per info-hash.
pub const DEFAULT_MAX_PEERS_PER_INFO_HASH: usize = 200;
/// Default maximum peer-store entries announced from one IP. A node is among the 8 closest
/// to few of any one host's torrents, so 64 leaves room for a large NAT while one host needs
/// 79 addresses to fill the 5,000 info-hashes.
pub const DEFAULT_MAX_ANNOUNCES_PER_IP: usize = 64;
/// Default maximum peers returned in one `get_peers` reply.
pub const DEFAULT_MAX_VALUES_IN_REPLY: usize = 50;
/// Default number of slots in the incoming-query rate limiter.
pub const DEFAULT_MAX_RATE_LIMIT_ENTRIES: usize = 4096;
/// Default maximum queries per source IP per second.
pub const DEFAULT_QUERIES_PER_IP_PER_SECOND: u32 = 20;
/// Default maximum outstanding transactions.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;
/// Default maximum concurrent lookups.
pub const DEFAULT_MAX_LOOKUPS: usize = 64;
/// Candidates kept per lookup (the closest ones).
pub const DEFAULT_MAX_CANDIDATES: usize = 64;
/// Default maximum BEP 44 items stored for others (libtorrent's `max_dht_items` is 700).
pub const DEFAULT_MAX_STORED_ITEMS: usize = 1000;
/// Default maximum BEP 44 items held for the one IP that put them last: a host cannot
/// flush the store, it only rotates its own items.
pub const DEFAULT_MAX_ITEMS_PER_IP: usize = 32;
