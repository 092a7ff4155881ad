//! Limits applied when loading a torrent from untrusted bytes.

/// Bounds on what a `.torrent` may ask of the parser (libtorrent's `load_torrent_limits`).
///
/// The defaults load any real torrent, including one with 100,000 files or 1,000,000
/// pieces, while bounding memory for hostile input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// Largest accepted `.torrent` in bytes. Default: 64 MiB.
    pub max_buffer_size: usize,
    /// Most pieces a torrent may have. Default: 4,194,304 (2^22).
    pub max_pieces: u64,
    /// Most files (pad files included). Default: 2,000,000.
    pub max_files: usize,
    /// Largest `piece length`. Default: 512 MiB.
    pub max_piece_length: u64,
    /// Deepest nesting of the bencoded document. Default: 100.
    pub max_decode_depth: usize,
    /// Most bencoded items in the document. Default: 20,000,000.
    pub max_decode_tokens: usize,
    /// The paths of all files (and symlink targets), each written out in full and joined
    /// with `/`, may total at most this many times the size of the info dictionary, or
    /// [`MIN_PATH_BYTES`], whichever is more; past it loading fails with
    /// [`Error::LimitExceeded`](crate::Error::LimitExceeded). Paths share their directories
    /// in memory, but a deep tree of long names could still make whoever builds each path
    /// in full (storage, a file list) spend a thousand times the torrent's size. Real
    /// torrents stay under about 12 (a 240-byte name before each tiny file entry).
    /// Default: 32.
    pub max_path_expansion: usize,
}

/// The least total path length [`LoadLimits::max_path_expansion`] allows: 1 MiB.
pub const MIN_PATH_BYTES: usize = 1 << 20;

impl Default for LoadLimits {
    fn default() -> Self {
        Self {
            max_buffer_size: 64 << 20,
            max_pieces: 1 << 22,
            max_files: 2_000_000,
            max_piece_length: 512 << 20,
            max_decode_depth: 100,
            max_decode_tokens: 20_000_000,
            max_path_expansion: 32,
        }
    }
}
