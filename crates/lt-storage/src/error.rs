//! The crate's error types.

use std::io;
use std::path::PathBuf;

use lt_core::{FileIndex, PieceIndex};

/// What the storage was doing when a disk error happened (the manual's `operation_t`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Opening or creating a file.
    Open,
    /// Reading (`pread`).
    Read,
    /// Writing (`pwrite`).
    Write,
    /// Setting a file's size or allocating it.
    Allocate,
    /// Creating a directory.
    Mkdir,
    /// Reading a file's metadata.
    Stat,
    /// Renaming or moving a file.
    Rename,
    /// Copying a file (a move across file systems).
    Copy,
    /// Removing a file or directory.
    Remove,
    /// Flushing a file to stable storage.
    Sync,
}

/// Why the storage failed.
///
/// Disk errors carry the file, the operation and the OS error (the manual's `file_error`).
/// A full disk ([`Error::DiskFull`]) and a permission problem ([`Error::PermissionDenied`])
/// are variants of their own so that a session can enter upload mode and retry when the
/// disk frees, instead of stopping the torrent.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file system has no space left (`ENOSPC`, `EDQUOT`).
    #[error("{op:?} {}: no space left on device", path.display())]
    DiskFull {
        /// What was being done.
        op: Operation,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The OS refused access (`EACCES`, `EPERM`, `EROFS`).
    #[error("{op:?} {}: permission denied", path.display())]
    PermissionDenied {
        /// What was being done.
        op: Operation,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Any other I/O error on a file or directory (`EISDIR` when a file was replaced by a
    /// directory, `EIO`, a file shorter than the torrent says...).
    #[error("{op:?} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: Operation,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A piece index at or past the number of pieces.
    #[error("piece {piece} out of range ({num_pieces} pieces)")]
    PieceOutOfRange {
        /// The index asked for.
        piece: PieceIndex,
        /// Number of pieces in the torrent.
        num_pieces: u32,
    },
    /// A block that does not lie inside its piece (a write or read beyond the piece's end).
    #[error(
        "block at offset {offset} of {len} bytes does not fit piece {piece} of {piece_size} bytes"
    )]
    BlockOutOfRange {
        /// The piece.
        piece: PieceIndex,
        /// Offset in the piece.
        offset: u32,
        /// Length of the block.
        len: usize,
        /// Size of the piece.
        piece_size: u32,
    },
    /// A file index at or past the number of files.
    #[error("file {0} out of range")]
    FileOutOfRange(FileIndex),
    /// A path component that would leave the save path (`..`, absolute, a separator, empty).
    #[error("unsafe path component {0:?}")]
    InvalidPath(String),
    /// The save path exists and is not a directory.
    #[error("save path {} is not a directory", .0.display())]
    SavePathNotDirectory(PathBuf),
    /// A move target exists and the flags said to fail (`move_flags_t::fail_if_exist`).
    #[error("{} already exists", .0.display())]
    FileExists(PathBuf),
    /// The torrent's sizes overflow 64 bits or a configured limit.
    #[error("torrent exceeds a limit: {0}")]
    LimitExceeded(&'static str),
    /// Caller mistake: arguments that cannot work (wrong priority count...).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The disk I/O pool has stopped (its threads panicked or it was shut down).
    #[error("disk I/O pool stopped")]
    PoolStopped,
}

impl Error {
    /// Wraps an OS error, putting `ENOSPC` and `EACCES` in their own variants.
    #[must_use]
    pub fn io(op: Operation, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        // ENOSPC = 28, EDQUOT = 122 on Linux; EACCES = 13, EPERM = 1, EROFS = 30.
        let raw = source.raw_os_error();
        if source.kind() == io::ErrorKind::StorageFull
            || source.kind() == io::ErrorKind::QuotaExceeded
            || matches!(raw, Some(28 | 122))
        {
            Self::DiskFull { op, path, source }
        } else if source.kind() == io::ErrorKind::PermissionDenied
            || source.kind() == io::ErrorKind::ReadOnlyFilesystem
            || matches!(raw, Some(1 | 13 | 30))
        {
            Self::PermissionDenied { op, path, source }
        } else {
            Self::Io { op, path, source }
        }
    }

    /// Whether this is a full disk: the session should enter upload mode and retry later.
    #[must_use]
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Self::DiskFull { .. })
    }

    /// The OS error kind, for disk errors.
    #[must_use]
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Self::DiskFull { source, .. }
            | Self::PermissionDenied { source, .. }
            | Self::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}
