//! Bounds on what resume data and the storage may allocate.

/// Limits applied when loading resume data from untrusted bytes and when opening files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted resume file in bytes. Default: 64 MiB.
    pub max_resume_size: usize,
    /// Deepest nesting of the bencoded resume document. Default: 100.
    pub max_decode_depth: usize,
    /// Most bencoded items in the resume document. Default: 10,000,000.
    pub max_decode_tokens: usize,
    /// Most peers kept from resume data. Default: 1,000.
    pub max_peers: usize,
    /// Most unfinished pieces kept from resume data. Default: 100,000.
    pub max_unfinished: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_resume_size: 64 << 20,
            max_decode_depth: 100,
            max_decode_tokens: 10_000_000,
            max_peers: 1_000,
            max_unfinished: 100_000,
        }
    }
}

/// Default number of open file handles an [`FsStorage`](crate::FsStorage) keeps
/// (libtorrent's `file_pool_size`): 512.
pub const DEFAULT_MAX_OPEN_FILES: usize = 512;
