//! The crate's error type.
//!
//! Every variant except [`Error::ApiMisuse`] is a peer fault: the peer broke the protocol
//! or misbehaved, and the caller closes the connection. No variant carries peer bytes, only
//! lengths, ids and indices, so errors are cheap and safe to log.

use std::fmt;

/// Why a peer connection (or one of its codecs) failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // ---- framing and core messages (BEP 3, 6, 52) ----
    /// A length prefix is larger than the configured maximum (libtorrent: `packet_too_large`).
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    MessageTooLong {
        /// The length prefix the peer sent.
        len: u32,
        /// The configured limit.
        max: u32,
    },
    /// A known message has a payload of the wrong size.
    #[error("message id {id} with invalid length {len}")]
    BadMessageLength {
        /// The message id.
        id: u8,
        /// The length prefix (id byte included).
        len: u32,
    },
    /// A message id we do not know (libtorrent: `invalid_message`). The codec itself
    /// yields [`Message::Unknown`](crate::Message::Unknown); [`PeerConnection`](crate::PeerConnection)
    /// rejects it, as libtorrent does.
    #[error("unknown message id {0}")]
    UnknownMessage(u8),
    /// A piece index at or past the torrent's piece count.
    #[error("piece index {0} out of range")]
    BadPieceIndex(u32),
    /// A REQUEST, CANCEL, REJECT or PIECE whose range is empty or does not fit in its piece.
    #[error("invalid block: piece {piece}, offset {begin}, length {len}")]
    BadBlock {
        /// Piece index.
        piece: u32,
        /// Byte offset in the piece.
        begin: u32,
        /// Length in bytes.
        len: u32,
    },
    /// A REQUEST longer than the configured limit (16 KiB by default, BEP 3).
    #[error("request of {len} bytes exceeds the {max}-byte limit")]
    RequestTooLong {
        /// The requested length.
        len: u32,
        /// The configured limit.
        max: u32,
    },
    /// A BITFIELD of the wrong length or with spare bits set (BEP 3).
    #[error("invalid bitfield: {0}")]
    Bitfield(#[from] lt_core::Error),
    /// A BEP 6 message from a peer that did not set the fast-extension bit.
    #[error("fast-extension message {0} without the fast extension")]
    FastNotNegotiated(u8),
    /// An extended message from a peer that did not set the extension-protocol bit.
    #[error("extended message without the extension protocol")]
    ExtensionsNotNegotiated,
    /// A BEP 52 hash message is malformed (counts, layers or lengths out of range).
    #[error("invalid hash message: {0}")]
    BadHashMessage(&'static str),

    // ---- handshake ----
    /// The handshake does not start with `\x13BitTorrent protocol`.
    #[error("not a BitTorrent handshake")]
    BadProtocol,
    /// The peer's handshake names a different torrent than the one we asked for.
    #[error("handshake info-hash does not match the torrent")]
    InfoHashMismatch,
    /// The peer sent our own peer id (we connected to ourselves).
    #[error("connected to ourselves")]
    SelfConnection,

    // ---- extension protocol (BEP 10) and extensions ----
    /// An extended message is larger than the limit for its kind.
    #[error("extension message of {len} bytes exceeds the {max}-byte limit")]
    ExtensionTooLong {
        /// Payload length.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A bencoded extension payload does not decode.
    #[error("invalid bencoding in extension message: {0}")]
    Bencode(#[from] lt_bencode::Error),
    /// The extended handshake is not a dictionary, or a field has the wrong type or size.
    #[error("invalid extended handshake: {0}")]
    BadExtendedHandshake(&'static str),
    /// The extended handshake's `m` dictionary lists more extensions than allowed.
    #[error("extended handshake lists {count} extensions, more than {max}")]
    TooManyExtensions {
        /// Entries in `m`.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// `metadata_size` (or a ut_metadata `total_size`) is larger than the limit (BEP 9).
    #[error("metadata of {size} bytes exceeds the {max}-byte limit")]
    MetadataTooLarge {
        /// The size the peer claims.
        size: u64,
        /// The configured limit.
        max: u64,
    },
    /// A malformed ut_metadata message (BEP 9).
    #[error("invalid ut_metadata message: {0}")]
    BadMetadataMessage(&'static str),
    /// A malformed ut_pex message (BEP 11).
    #[error("invalid ut_pex message: {0}")]
    BadPex(&'static str),
    /// A ut_pex message adds more peers than allowed (libtorrent: `too_many_pex_peers`).
    #[error("ut_pex message with {count} peers, more than {max}")]
    PexTooManyPeers {
        /// Peers in `added` plus `added6`.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// ut_pex messages arrive faster than allowed (libtorrent: `too_frequent_pex`).
    #[error("ut_pex messages too frequent")]
    PexTooFrequent,
    /// The peer sent more than we buffer while waiting for the caller (an incoming
    /// connection not yet accepted, or an MSE handshake waiting for its SKEY or `finish`).
    #[error("{len} bytes buffered, more than {max}")]
    ReceiveBufferFull {
        /// Bytes buffered.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A malformed lt_donthave, upload_only, share_mode or ut_holepunch message.
    #[error("invalid extension message: {0}")]
    BadExtensionMessage(&'static str),

    // ---- MSE/PE ----
    /// The MSE handshake failed.
    #[error("encryption handshake failed: {0}")]
    Mse(MseError),

    // ---- timers ----
    /// A deadline passed: the connection is dead.
    #[error("timed out: {0}")]
    Timeout(TimeoutKind),

    // ---- local ----
    /// The caller used the API in a way its documentation rules out (a local bug, not a
    /// peer fault).
    #[error("API misuse: {0}")]
    ApiMisuse(&'static str),
}

/// Why an MSE/PE handshake failed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MseError {
    /// The peer's public key is 0, 1 or not below the prime.
    BadPublicKey,
    /// The synchronisation marker (`HASH('req1', S)` or the encrypted VC) did not appear
    /// within the 512 bytes of padding the protocol allows.
    NoSync,
    /// The decrypted verification constant was not eight zero bytes.
    BadVerificationConstant,
    /// A padding or initial-payload length is out of range.
    BadLength,
    /// No torrent matches the peer's `HASH('req2', SKEY)`.
    UnknownTorrent,
    /// The peer offered or selected no crypto method our policy allows.
    NoCommonMethod,
    /// Our policy forbids this kind of connection (e.g. plaintext when `in` is forced,
    /// or an encrypted handshake when it is disabled).
    PolicyRejected,
}

impl fmt::Display for MseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadPublicKey => "invalid Diffie-Hellman public key",
            Self::NoSync => "no synchronisation marker within the padding limit",
            Self::BadVerificationConstant => "bad verification constant",
            Self::BadLength => "padding or payload length out of range",
            Self::UnknownTorrent => "no torrent matches the SKEY hash",
            Self::NoCommonMethod => "no common crypto method",
            Self::PolicyRejected => "rejected by the encryption policy",
        })
    }
}

/// Which deadline passed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// The handshake did not complete in time.
    Handshake,
    /// Nothing was received for the inactivity timeout.
    Inactivity,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Handshake => "handshake",
            Self::Inactivity => "inactivity",
        })
    }
}

impl From<MseError> for Error {
    fn from(e: MseError) -> Self {
        Self::Mse(e)
    }
}

impl Error {
    /// Whether the peer is at fault (as opposed to our caller misusing the API).
    #[must_use]
    pub fn is_peer_fault(&self) -> bool {
        !matches!(self, Self::ApiMisuse(_))
    }
}
