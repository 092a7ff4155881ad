//! The crate's error type.

use std::fmt;

/// Why a decode or encode failed.
///
/// Decoding errors carry the byte offset where the input went wrong and map to the
/// libtorrent manual's bdecode error codes through [`Error::code`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A character other than a digit appeared inside an integer (`expected_digit`).
    #[error("expected digit in bencoded integer at byte {offset}")]
    ExpectedDigit {
        /// Byte offset of the offending character.
        offset: usize,
    },
    /// A string length was not terminated by `:` (`expected_colon`).
    #[error("expected colon in bencoded string at byte {offset}")]
    ExpectedColon {
        /// Byte offset of the offending character.
        offset: usize,
    },
    /// The input ended inside an item (`unexpected_eof`).
    #[error("unexpected end of input in bencoded data at byte {offset}")]
    UnexpectedEof {
        /// Byte offset where more input was needed.
        offset: usize,
    },
    /// A byte that cannot start a value (`expected_value`).
    #[error("expected value (list, dict, int or string) at byte {offset}")]
    ExpectedValue {
        /// Byte offset of the offending character.
        offset: usize,
    },
    /// A dictionary key was not a byte string (`expected_string`).
    #[error("expected string as dictionary key at byte {offset}")]
    ExpectedString {
        /// Byte offset of the offending key.
        offset: usize,
    },
    /// Lists and dictionaries nest deeper than allowed (`depth_exceeded`).
    #[error("bencoded nesting deeper than {limit} at byte {offset}")]
    DepthExceeded {
        /// Byte offset of the list or dictionary that went too deep.
        offset: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The document holds more items than allowed (`item_limit_exceeded`).
    #[error("more than {limit} bencoded items at byte {offset}")]
    ItemLimitExceeded {
        /// Byte offset of the first item past the limit.
        offset: usize,
        /// The configured limit.
        limit: usize,
    },
    /// An integer or string length does not fit its type (`overflow`).
    #[error("integer overflow in bencoded data at byte {offset}")]
    Overflow {
        /// Byte offset of the number.
        offset: usize,
    },
    /// Bytes follow the end of the root value.
    #[error("trailing data after bencoded value at byte {offset}")]
    TrailingData {
        /// Byte offset of the first byte after the root value.
        offset: usize,
    },
    /// The input is larger than the 4 GiB this decoder indexes.
    #[error("bencoded buffer of {len} bytes is larger than 4 GiB")]
    BufferTooLarge {
        /// Length of the input.
        len: usize,
    },
    /// Strict decoding found a non-canonical encoding.
    #[error("non-canonical bencoding at byte {offset}: {reason}")]
    NonCanonical {
        /// What was not canonical.
        reason: NonCanonical,
        /// Where.
        offset: usize,
    },
    /// A value did not have the shape a typed (serde) decode or encode needed.
    #[error("{0}")]
    Message(String),
}

impl Error {
    /// The libtorrent error-code name of this error, e.g. `"expected_colon"`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::ExpectedDigit { .. } => "expected_digit",
            Self::ExpectedColon { .. } => "expected_colon",
            Self::UnexpectedEof { .. } => "unexpected_eof",
            Self::ExpectedValue { .. } => "expected_value",
            Self::ExpectedString { .. } => "expected_string",
            Self::DepthExceeded { .. } => "depth_exceeded",
            Self::ItemLimitExceeded { .. } => "item_limit_exceeded",
            Self::Overflow { .. } => "overflow",
            Self::TrailingData { .. } => "trailing_data",
            Self::BufferTooLarge { .. } => "buffer_too_large",
            Self::NonCanonical { .. } => "non_canonical",
            Self::Message(_) => "message",
        }
    }

    /// The byte offset the error refers to, when it came from the decoder.
    #[must_use]
    pub fn offset(&self) -> Option<usize> {
        match *self {
            Self::ExpectedDigit { offset }
            | Self::ExpectedColon { offset }
            | Self::UnexpectedEof { offset }
            | Self::ExpectedValue { offset }
            | Self::ExpectedString { offset }
            | Self::DepthExceeded { offset, .. }
            | Self::ItemLimitExceeded { offset, .. }
            | Self::Overflow { offset }
            | Self::TrailingData { offset }
            | Self::NonCanonical { offset, .. } => Some(offset),
            Self::BufferTooLarge { .. } | Self::Message(_) => None,
        }
    }
}

/// A way in which valid bencoding departs from the canonical form of BEP 3.
///
/// The decoder accepts all of these (real torrents contain them) and reports the first one
/// through [`Document::non_canonical`](crate::Document::non_canonical).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NonCanonical {
    /// Dictionary keys are not in ascending byte order.
    UnsortedKeys,
    /// A dictionary key appears twice.
    DuplicateKey,
    /// An integer has a leading zero, like `i03e`.
    IntegerLeadingZero,
    /// The integer `-0`.
    NegativeZero,
    /// A string length has a leading zero, like `03:abc`.
    LengthLeadingZero,
}

impl fmt::Display for NonCanonical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnsortedKeys => "dictionary keys out of order",
            Self::DuplicateKey => "duplicate dictionary key",
            Self::IntegerLeadingZero => "integer with leading zero",
            Self::NegativeZero => "negative zero",
            Self::LengthLeadingZero => "string length with leading zero",
        })
    }
}

#[cfg(feature = "serde")]
impl serde::de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::Message(msg.to_string())
    }
}

#[cfg(feature = "serde")]
impl serde::ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::Message(msg.to_string())
    }
}
