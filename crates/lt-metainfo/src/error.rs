//! The crate's error type.

/// Why a torrent, a magnet link or a torrent creation was rejected.
///
/// Names follow the libtorrent manual's torrent errors where one exists.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data is not valid bencoding (libtorrent: the bdecode errors).
    #[error("invalid bencoding")]
    Bencode(#[from] lt_bencode::Error),
    /// The file is larger than [`LoadLimits::max_buffer_size`](crate::LoadLimits).
    #[error("torrent of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Size of the input.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The root of the torrent is not a dictionary (`torrent_is_no_dict`).
    #[error("torrent file is not a dictionary")]
    TorrentIsNoDict,
    /// There is no `info` dictionary (`torrent_missing_info`).
    #[error("torrent has no info dictionary")]
    MissingInfo,
    /// The `info` entry is not a dictionary (`torrent_info_no_dict`).
    #[error("info entry is not a dictionary")]
    InfoIsNoDict,
    /// `piece length` is missing, not positive, too large or (v2) not a power of two of at
    /// least 16 KiB (`torrent_missing_piece_length`, `torrent_invalid_piece_length`).
    #[error("invalid piece length {0}")]
    InvalidPieceLength(i64),
    /// There is no `name` (`torrent_missing_name`).
    #[error("torrent has no name")]
    MissingName,
    /// A file entry is malformed (`torrent_invalid_length`, `torrent_missing_file_tree`...).
    #[error("invalid file entry: {0}")]
    InvalidFile(&'static str),
    /// The torrent has neither v1 `pieces` nor a v2 `file tree` (`torrent_missing_pieces`).
    #[error("torrent has neither pieces nor a file tree")]
    MissingPieces,
    /// `pieces` is not a multiple of 20 bytes or does not match the number of pieces
    /// (`torrent_invalid_hashes`).
    #[error("pieces field of {len} bytes does not hold {expected} hashes")]
    InvalidHashes {
        /// Length of the `pieces` string.
        len: usize,
        /// Number of pieces the file sizes imply.
        expected: u64,
    },
    /// A v2 `piece layers` entry is missing its file, has the wrong length or does not hash
    /// to the file's `pieces root` (`torrent_invalid_piece_layer`).
    #[error("invalid piece layer: {0}")]
    InvalidPieceLayer(&'static str),
    /// The v1 and v2 views of a hybrid torrent disagree (`torrent_inconsistent_files`).
    #[error("hybrid torrent's v1 and v2 file lists disagree")]
    InconsistentFiles,
    /// Total size, offsets or piece counts overflow, or a configured limit is exceeded.
    #[error("torrent exceeds a limit: {0}")]
    LimitExceeded(&'static str),
    /// An unsupported `meta version`.
    #[error("unsupported meta version {0}")]
    UnsupportedVersion(i64),
    /// A magnet link could not be parsed.
    #[error("invalid magnet link")]
    Magnet(#[from] crate::magnet::MagnetError),
    /// Reading files while creating a torrent failed.
    #[error("I/O error")]
    Io(#[from] std::io::Error),
    /// A caller passed arguments that cannot work (e.g. creating a torrent of nothing).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}
