//! The crate's error type.

/// Why a KRPC message could not be decoded.
///
/// Every variant is a peer fault: the remote node sent something malformed, oversized
/// or unknown. No variant holds the peer's bytes.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The datagram is longer than [`crate::limits::MAX_MESSAGE_LEN`].
    #[error("KRPC message of {len} bytes exceeds the limit of {max}")]
    MessageTooLong {
        /// Length received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The datagram is not valid bencoding (or nests too deep, or has too many items).
    #[error("KRPC message is not valid bencoding: {0}")]
    Bencode(#[from] lt_bencode::Error),
    /// The message is not a dictionary, or a key is missing or has the wrong type or size.
    #[error("KRPC message is missing or has a malformed `{key}`")]
    BadField {
        /// The offending key.
        key: &'static str,
    },
    /// A list (nodes, values, samples) holds more entries than the limit allows.
    #[error("KRPC `{key}` has {len} entries, more than the limit of {max}")]
    TooMany {
        /// The offending key.
        key: &'static str,
        /// Number of entries.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A query names a method this node does not implement.
    #[error("unknown KRPC method")]
    UnknownMethod,
    /// The `y` key is neither `q`, `r` nor `e`.
    #[error("unknown KRPC message type")]
    UnknownType,
}
