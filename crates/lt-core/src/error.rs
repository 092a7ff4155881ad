//! The crate's error type.

/// Everything that can go wrong when parsing an lt-core value.
///
/// Every variant describes malformed *input* (a hex string from a user, a base32
/// info-hash from a magnet link, a bitfield from a peer). None of them carries the
/// offending bytes, only positions and lengths, so they are cheap and safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A hex string had the wrong number of characters for the value.
    #[error("invalid hex length: expected {expected} characters, got {actual}")]
    HexLength {
        /// The number of characters the value needs.
        expected: usize,
        /// The number of bytes in the input.
        actual: usize,
    },
    /// A hex string contained a character outside `0-9a-fA-F`.
    #[error("invalid hex character at byte {position}")]
    HexDigit {
        /// Byte offset of the first bad character.
        position: usize,
    },
    /// A base32 string had the wrong number of characters for the value.
    #[error("invalid base32 length: expected {expected} characters, got {actual}")]
    Base32Length {
        /// The number of characters the value needs (without padding).
        expected: usize,
        /// The number of bytes in the input.
        actual: usize,
    },
    /// A base32 string contained a character outside the RFC 4648 alphabet.
    #[error("invalid base32 character at byte {position}")]
    Base32Digit {
        /// Byte offset of the first bad character.
        position: usize,
    },
    /// The unused low bits of the last base32 character were not zero, so the
    /// string is not the canonical encoding of any value.
    #[error("base32 string has non-zero trailing bits")]
    Base32TrailingBits,
    /// A bitfield's byte length does not match its bit length (BEP 3).
    #[error("invalid bitfield length: expected {expected} bytes, got {actual}")]
    BitfieldLength {
        /// `ceil(len_bits / 8)`.
        expected: usize,
        /// The number of bytes received.
        actual: usize,
    },
    /// A bitfield had spare bits set past its last piece (BEP 3 says they are zero).
    #[error("bitfield has spare bits set past the last piece")]
    BitfieldSpareBits,
}
