//! The crate's error type.

/// Why a tracker exchange failed.
///
/// Peer faults (a tracker that sends something malformed, oversized or nothing at all) are
/// kept apart from caller mistakes ([`Error::ApiMisuse`] and [`Error::InvalidUrl`]). No
/// variant formats tracker bytes into its message; the tracker's own text, where the
/// protocol carries one (`failure reason`, the BEP 15 error action), is a field.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The reply body is longer than the configured limit.
    #[error("tracker reply of {len} bytes exceeds the limit of {max}")]
    ReplyTooLarge {
        /// Length received (at least).
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The reply is not valid bencoding (or nests too deep, or has too many items).
    #[error("tracker reply is not valid bencoding: {0}")]
    Bencode(#[from] lt_bencode::Error),
    /// The reply is bencoded but not a dictionary, or a required key is missing or has
    /// the wrong type.
    #[error("tracker reply is missing or has a malformed `{key}`")]
    BadField {
        /// The offending key.
        key: &'static str,
    },
    /// A compact peer list whose length is not a multiple of the entry size.
    #[error("compact peer list of {len} bytes is not a multiple of {entry}")]
    TrailingPeerBytes {
        /// Length of the list.
        len: usize,
        /// Size of one entry (6 for IPv4, 18 for IPv6).
        entry: usize,
    },
    /// A peer with port 0 (or otherwise unusable) appeared in a dictionary peer list.
    #[error("invalid peer address in tracker reply")]
    InvalidPeer,
    /// The tracker replied with a `failure reason` (HTTP) or the BEP 15 error action (UDP).
    #[error("tracker reported failure")]
    TrackerFailure {
        /// The tracker's message, lossily decoded and truncated to
        /// [`crate::limits::MAX_MESSAGE_LEN`] bytes.
        message: String,
    },
    /// A UDP packet that is too short, has an unknown action or a wrong length.
    #[error("malformed UDP tracker packet")]
    MalformedPacket,
    /// A UDP reply whose transaction id matches no request in flight.
    #[error("UDP tracker reply with an unknown transaction id")]
    UnknownTransaction,
    /// The tracker did not answer in time (all BEP 15 retransmissions used up, or the
    /// driver's HTTP timeout elapsed).
    #[error("tracker timed out")]
    Timeout,
    /// An announce or scrape URL this crate cannot use.
    #[error("invalid tracker URL")]
    InvalidUrl,
    /// The tracker could not be reached or answered outside the protocol (connection
    /// refused, HTTP status, TLS): the driver's message.
    #[error("tracker unreachable: {0}")]
    Transport(String),
    /// The caller used the API wrongly (for example, too many queued requests).
    #[error("API misuse: {0}")]
    ApiMisuse(&'static str),
}
