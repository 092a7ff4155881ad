//! BitTorrent storage: a torrent's pieces on disk or in memory, piece hashing and the full
//! recheck, and fast-resume data in libtorrent's format (the libtorrent manual's
//! `storage_interface`, "storage allocation" and "fast resume" chapters).
//!
//! ```text
//!              TorrentStore, Job, ctx                         files under save_path
//!  driver ──try_submit──▶ DiskIo ──▶ run(Job) ──▶ Storage::write ──▶ FsStorage ──pwrite──▶ a/1.bin
//!    ▲  (one bounded queue,   (disk threads: hash    │ (file pool, pads             a/2.bin
//!    │   Full = back-pressure) then write, read cache) │  skipped, part file          .parts
//!    └────────── done(Completion { ctx, output }) ◀────┘  for priority 0)
//!
//!  TorrentInfo + Storage ──check_files(threads)──▶ Bitfield   (SHA-1 v1 / SHA-256 merkle v2)
//!  resume bytes ──ResumeData::from_bytes──▶ ResumeData ──verify_resume(info, storage)──▶ Bitfield
//!                                                   └─ Err(ResumeError) ⇒ check_files
//!  ResumeData ──to_bytes──▶ resume bytes  (libtorrent's write_resume_data_buf format)
//! ```
//!
//! - [`Storage`] is the trait; [`FsStorage`] (files) and [`MemStorage`] (memory) implement
//!   it, and users can plug their own.
//! - [`FsStorage`] maps pieces across files, never writes pad files (BEP 47), reads and
//!   writes with `pread`/`pwritev`, keeps a bounded pool of open files, joins every path
//!   from checked components under the save path, and keeps the bytes of unwanted
//!   (priority 0) files in a part file. Allocation is sparse or full; libtorrent's
//!   *compact* allocation is deprecated in the manual and gone from libtorrent 2, so it is
//!   not offered.
//! - [`check_files`] rechecks a torrent on every core, reading each byte once;
//!   [`verify_piece_data`] checks a piece from memory (v1 SHA-1 or v2 merkle leaves).
//! - [`ResumeData`] (lt-metainfo's, re-exported) reads and writes libtorrent's resume files
//!   (libtorrent 2.0's and lt's are accepted by both); [`verify_resume`] decides whether the
//!   files on disk still fit them, with a typed [`ResumeError`] when not.
//! - [`DiskIo`] is a session's disk threads: one bounded queue of the engine's jobs for
//!   every torrent's [`TorrentStore`] (hash from memory then write, write blocks and hash
//!   back, reads through a read cache of whole pieces, check, resume, move, rename).
//!
//! Errors: every disk error carries the file, the [`Operation`] and the OS error; a full
//! disk ([`Error::DiskFull`]) and a refused access ([`Error::PermissionDenied`]) have
//! variants of their own.
//!
//! `rustix` provides `pwritev` and `fallocate` without `unsafe` here (std has neither as a
//! positional call).
//!
//! This is the one lt crate that does blocking file I/O; it does no network I/O and reads
//! no clock (modification times come from the file system).
//!
//! # Example
//!
//! ```
//! use lt_core::PieceIndex;
//! use lt_metainfo::{CreateTorrent, TorrentInfo};
//! use lt_storage::{
//!     FsOptions, FsStorage, ResumeData, Storage, check_files, record_file_sizes, verify_resume,
//! };
//!
//! let data = vec![7u8; 100_000];
//! let bytes = CreateTorrent::from_memory("payload.bin", data.clone()).piece_size(32768).generate()?;
//! let info = TorrentInfo::from_bytes(&bytes)?;
//! let dir = tempfile::tempdir()?;
//! let storage = FsStorage::new(info.files().clone(), dir.path(), FsOptions::default())?;
//! storage.initialize()?;
//! for p in 0..info.num_pieces() {
//!     let start = p as usize * 32768;
//!     let end = (start + 32768).min(data.len());
//!     storage.write(PieceIndex::new(p), 0, &[&data[start..end]])?;
//! }
//! let have = check_files(&storage, &info, 0)?;
//! assert!(have.all());
//!
//! storage.flush()?;
//! let mut resume = ResumeData::new(&info);
//! resume.pieces = have;
//! record_file_sizes(&mut resume, &storage)?;
//! let loaded = ResumeData::from_bytes(&resume.to_bytes())?;
//! assert!(verify_resume(&loaded, &info, &storage)?.all());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod check;
mod disk_io;
mod error;
mod fs;
mod limits;
mod mem;
mod pool;
mod resume;
mod storage;

pub use check::{check_files, check_pieces, verify_piece, verify_piece_data, verify_v2_leaves};
pub use disk_io::{
    Completion, DEFAULT_READ_CACHE_BYTES, DiskIo, Job, Output, ReadCache, SubmitError,
    TorrentStore, run_job,
};
pub use error::{Error, Operation};
pub use fs::{FsOptions, FsStorage};
pub use limits::DEFAULT_MAX_OPEN_FILES;
/// The resume data type and its format live in lt-metainfo (sans-IO); re-exported here
/// beside the functions that check it against the files.
pub use lt_metainfo::{
    Allocation, FILE_FORMAT, ResumeData, ResumeError, ResumeLimits, UnfinishedPiece,
};
pub use mem::MemStorage;
pub use resume::{record_file_sizes, verify_resume};
pub use storage::{FileInfo, MoveFlags, Storage, read_piece, write_blocks};
