//! BitTorrent metainfo: `.torrent` files (v1, v2 and hybrid), the file layout they describe,
//! magnet links, and creating torrents from files on disk.
//!
//! ```text
//!  .torrent bytes ──TorrentInfo::from_bytes──▶ TorrentInfo ─┬─ info_hash(): InfoHash (v1/v2/hybrid)
//!                                                           ├─ files(): FileStorage ── map_block / map_file
//!                                                           ├─ piece_hash(i), piece_layer(file)
//!                                                           ├─ trackers(), web_seeds(), nodes()
//!                                                           ├─ magnet_link() ──▶ MagnetLink ──▶ URI
//!                                                           └─ to_bytes() ──▶ .torrent bytes
//!  files on disk ──CreateTorrent::new(path)...generate()──▶ .torrent bytes
//!  magnet: URI ──MagnetLink::parse──▶ MagnetLink { info_hash, name, trackers, peers, ... }
//! ```
//!
//! BEPs: 3 (metainfo), 9 (magnet links), 12 (announce-list), 17 and 19 (web seeds),
//! 47 (pad files and file attributes), 52 (v2 and hybrid torrents), 53 (magnet `so`).
//!
//! The info-hash is computed over the exact bytes of the `info` dictionary as received,
//! so torrents that are not in canonical bencoding keep their identity. Every path taken
//! from a torrent is sanitised ([`sanitize_path_component`]) so no file name can leave
//! the download directory. Loading is bounded by [`LoadLimits`].
//!
//! This crate reads files only in [`CreateTorrent`] (which hashes them on all cores with
//! `std::thread`); parsing performs no I/O.
//!
//! # Example
//!
//! ```
//! use lt_metainfo::{CreateTorrent, TorrentInfo};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("hello.txt"), b"hello, world")?;
//! let bytes = CreateTorrent::new(dir.path().join("hello.txt"))
//!     .tracker("udp://127.0.0.1:6969")
//!     .generate()?;
//! let torrent = TorrentInfo::from_bytes(&bytes)?;
//! assert_eq!(torrent.name(), "hello.txt");
//! assert_eq!(torrent.files().total_size(), 12);
//! println!("{}", torrent.magnet_link());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod create;
mod dedup;
mod error;
mod file_path;
mod file_storage;
mod limits;
pub mod magnet;
mod merkle;
mod resume;
mod sanitize;
mod torrent_info;

pub use create::{CreateTorrent, TorrentVersion, auto_piece_size};
pub use error::Error;
pub use file_path::FilePath;
pub use file_storage::{FileAttr, FileEntry, FileSlice, FileStorage, PeerRequest};
pub use limits::{LoadLimits, MIN_PATH_BYTES};
pub use magnet::MagnetLink;
pub use merkle::{merkle_root, pad_hash};
pub use resume::{Allocation, FILE_FORMAT, ResumeData, ResumeError, ResumeLimits, UnfinishedPiece};
pub use sanitize::sanitize_path_component;
pub use torrent_info::{AnnounceEntry, TorrentInfo, WebSeed, WebSeedKind};
