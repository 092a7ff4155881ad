//! The crate's error type.
//!
//! [`Error`] is what [`Packet::decode`](crate::Packet::decode) and
//! [`Connection::accept`](crate::Connection::accept) return for a datagram that is not a valid
//! uTP packet; it carries only lengths and numbers, never peer bytes. A connection never
//! fails because of one bad datagram (UDP can carry spoofed junk): it drops the datagram.
//! Why a connection ended is a [`CloseReason`](crate::CloseReason).

/// Why a datagram was rejected.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Shorter than the 20-byte header, or an extension runs past the end.
    #[error("datagram truncated: {len} bytes")]
    Truncated {
        /// The datagram length.
        len: usize,
    },
    /// The version nibble is not 1 (BEP 29).
    #[error("unsupported uTP version {0}")]
    BadVersion(u8),
    /// The type nibble is not one of ST_DATA..ST_SYN (0..=4).
    #[error("unknown packet type {0}")]
    BadType(u8),
    /// A selective ACK bitmask whose length is not a positive multiple of 4 (BEP 29) or is
    /// longer than [`MAX_SACK_BYTES`](crate::limits::MAX_SACK_BYTES).
    #[error("invalid selective ack length {0}")]
    BadSackLength(u8),
    /// Two selective ACK extensions in one packet.
    #[error("duplicate selective ack extension")]
    DuplicateSack,
    /// More extensions than [`MAX_EXTENSIONS`](crate::limits::MAX_EXTENSIONS).
    #[error("more than {max} extensions")]
    TooManyExtensions {
        /// The limit.
        max: usize,
    },
    /// A packet that cannot open a connection was given to
    /// [`Connection::accept`](crate::Connection::accept) (not an ST_SYN).
    #[error("not a SYN packet")]
    NotSyn,
    /// The connection id is not this connection's.
    #[error("connection id {0} does not match")]
    ConnectionIdMismatch(u16),
    /// The packet acknowledges a sequence number we never sent (or one implausibly old).
    #[error("ack number {0} out of range")]
    AckOutOfRange(u16),
    /// A packet type not valid in the connection's state (data before the handshake).
    #[error("packet type {0} unexpected in this state")]
    UnexpectedPacket(u8),
}
