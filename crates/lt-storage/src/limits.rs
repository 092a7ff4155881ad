//! Bounds on what the storage may hold open.

/// Default number of open file handles an [`FsStorage`](crate::FsStorage) keeps
/// (libtorrent's `file_pool_size`): 512.
pub const DEFAULT_MAX_OPEN_FILES: usize = 512;
