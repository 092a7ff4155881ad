//! Disk jobs of the engine, run on tokio's blocking threads: checking, hashing whole
//! pieces from the blocks in memory and writing them with one vectored write (or, for
//! pieces too large to hold, writing blocks as they come and hashing the piece back from
//! the files), reading
//! blocks for peers, resume data, moves and renames.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use lt_core::{PieceIndex, Sha1Hasher};
use lt_engine::{Alert, DiskDone, DiskError, DiskErrorKind, DiskJob};
use lt_metainfo::TorrentInfo;
use lt_storage::{MoveFlags, Storage, check_files, verify_piece_data};

/// A torrent's storage and metadata, shared with the disk threads.
pub(crate) struct TorrentIo {
    pub(crate) storage: RwLock<Box<dyn Storage>>,
    pub(crate) info: Arc<TorrentInfo>,
    pub(crate) save_path: RwLock<PathBuf>,
    /// Writes of one torrent go one at a time (hashing runs in parallel): concurrent
    /// writes to one file only contend for its inode lock.
    pub(crate) write_lock: std::sync::Mutex<()>,
    /// The storage's options, to set it up again when a magnet's metadata arrives.
    pub(crate) options: lt_storage::FsOptions,
    /// Whole pieces recently read for peers.
    pub(crate) read_cache: std::sync::Mutex<ReadCache>,
}

/// Pieces read for uploading, kept whole: a peer asks for a piece's blocks one after the
/// other, so one read of the piece serves them all without a disk job each. Bounded by
/// bytes; the oldest piece goes first.
#[derive(Debug, Default)]
pub(crate) struct ReadCache {
    pieces: std::collections::VecDeque<(u32, Bytes)>,
    bytes: usize,
}

/// Most bytes a torrent's read cache holds.
const READ_CACHE_BYTES: usize = 32 << 20;
/// Pieces larger than this are read block by block.
const MAX_CACHED_PIECE: usize = 8 << 20;

impl ReadCache {
    /// The block `begin..begin + len` of `piece`, if the piece is cached.
    pub(crate) fn block(&self, piece: u32, begin: u32, len: u32) -> Option<Bytes> {
        let (_, data) = self.pieces.iter().find(|(p, _)| *p == piece)?;
        let (b, e) = (begin as usize, begin as usize + len as usize);
        (e <= data.len()).then(|| data.slice(b..e))
    }

    fn insert(&mut self, piece: u32, data: Bytes) {
        if self.pieces.iter().any(|(p, _)| *p == piece) {
            return;
        }
        self.bytes += data.len();
        self.pieces.push_back((piece, data));
        while self.bytes > READ_CACHE_BYTES {
            let Some((_, old)) = self.pieces.pop_front() else {
                break;
            };
            self.bytes -= old.len();
        }
    }
}

impl TorrentIo {
    pub(crate) fn cached_block(&self, piece: u32, begin: u32, len: u32) -> Option<Bytes> {
        self.read_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .block(piece, begin, len)
    }
}

/// What a disk job produced: a completion for the engine, an alert for the user, or (a
/// file priority set) nothing.
pub(crate) enum DiskOutput {
    Done(DiskDone),
    Alert(Alert),
    Nothing,
}

/// A storage error as the engine sees it: what it means for the torrent, and its text.
fn disk_error(e: &lt_storage::Error) -> DiskError {
    let kind = match e {
        lt_storage::Error::DiskFull { .. } | lt_storage::Error::PermissionDenied { .. } => {
            DiskErrorKind::NoSpaceOrDenied
        }
        lt_storage::Error::FileOutOfRange(_) => DiskErrorKind::NotFound,
        _ => DiskErrorKind::Other,
    };
    DiskError::new(kind, e.to_string())
}

fn verify(info: &TorrentInfo, piece: PieceIndex, blocks: &[Bytes]) -> bool {
    if let Some(expected) = info.piece_hash(piece) {
        let mut h = Sha1Hasher::new();
        for b in blocks {
            h.update(b);
        }
        return h.finalize() == expected;
    }
    let whole: Vec<u8> = blocks.iter().flat_map(|b| b.iter().copied()).collect();
    verify_piece_data(info, piece, &whole)
}

/// Runs one job (blocking).
pub(crate) fn run(io: &TorrentIo, job: DiskJob, check_threads: usize) -> DiskOutput {
    let info = &io.info;
    match job {
        DiskJob::Check { torrent, resume } => {
            let storage = io.storage.read().unwrap_or_else(PoisonError::into_inner);
            let result = (|| {
                if let Some(r) = resume
                    && let Ok(have) = r.verify(info, &**storage)
                {
                    return Ok(have);
                }
                if !storage.has_any_file().map_err(|e| disk_error(&e))? {
                    return Ok(lt_core::Bitfield::new(info.num_pieces() as usize));
                }
                check_files(&**storage, info, check_threads).map_err(|e| disk_error(&e))
            })();
            DiskOutput::Done(DiskDone::Checked { torrent, result })
        }
        DiskJob::WritePiece {
            torrent,
            piece,
            blocks,
        } => {
            let passed = verify(info, piece, &blocks);
            let mut error = None;
            if passed {
                let slices: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
                let _one_writer = io.write_lock.lock().unwrap_or_else(PoisonError::into_inner);
                let storage = io.storage.read().unwrap_or_else(PoisonError::into_inner);
                if let Err(e) = storage.write(piece, 0, &slices) {
                    error = Some(disk_error(&e));
                }
            }
            DiskOutput::Done(DiskDone::PieceWritten {
                torrent,
                piece,
                passed,
                error,
            })
        }
        DiskJob::WriteBlocks {
            torrent,
            piece,
            blocks,
            last,
        } => {
            let written = {
                let _one_writer = io.write_lock.lock().unwrap_or_else(PoisonError::into_inner);
                let storage = io.storage.read().unwrap_or_else(PoisonError::into_inner);
                lt_storage::write_blocks(&**storage, piece, &blocks)
            };
            drop(blocks);
            if !last {
                return DiskOutput::Done(DiskDone::BlocksWritten {
                    torrent,
                    piece,
                    error: written.err().map(|e| disk_error(&e)),
                });
            }
            // Earlier blocks were written as they came: hash the piece back from the files,
            // a chunk at a time.
            let storage = io.storage.read().unwrap_or_else(PoisonError::into_inner);
            let (passed, error) = match written
                .and_then(|()| lt_storage::verify_piece(&**storage, info, piece, &mut Vec::new()))
            {
                Ok(passed) => (passed, None),
                Err(e) => (true, Some(disk_error(&e))),
            };
            DiskOutput::Done(DiskDone::PieceWritten {
                torrent,
                piece,
                passed,
                error,
            })
        }
        DiskJob::Read {
            torrent,
            conn,
            request,
        } => {
            let p = request.piece.get();
            let result = if let Some(b) = io.cached_block(p, request.begin, request.len) {
                Ok(b)
            } else {
                let piece_len = info.files().piece_size(request.piece) as usize;
                let storage = io.storage.read().unwrap_or_else(PoisonError::into_inner);
                if piece_len <= MAX_CACHED_PIECE {
                    let mut buf = vec![0u8; piece_len];
                    match storage.read(request.piece, 0, &mut buf) {
                        Ok(()) => {
                            let whole = Bytes::from(buf);
                            let mut cache =
                                io.read_cache.lock().unwrap_or_else(PoisonError::into_inner);
                            cache.insert(p, whole.clone());
                            let (b, e) = (
                                request.begin as usize,
                                (request.begin + request.len) as usize,
                            );
                            whole.get(b..e).map(|_| whole.slice(b..e)).ok_or_else(|| {
                                DiskError::new(DiskErrorKind::NotFound, "request past the piece")
                            })
                        }
                        Err(e) => Err(disk_error(&e)),
                    }
                } else {
                    let mut buf = vec![0u8; request.len as usize];
                    storage
                        .read(request.piece, request.begin, &mut buf)
                        .map(|()| Bytes::from(buf))
                        .map_err(|e| disk_error(&e))
                }
            };
            DiskOutput::Done(DiskDone::Read {
                torrent,
                conn,
                request,
                result,
            })
        }
        DiskJob::VerifyPiece { torrent, piece } => {
            let storage = io.storage.read().unwrap_or_else(PoisonError::into_inner);
            let ok =
                lt_storage::verify_piece(&**storage, info, piece, &mut Vec::new()).unwrap_or(false);
            DiskOutput::Done(DiskDone::Verified { torrent, piece, ok })
        }
        DiskJob::ReadPiece { torrent, piece } => {
            let len = info.files().piece_size(piece) as usize;
            let mut buf = vec![0u8; len];
            let storage = io.storage.read().unwrap_or_else(PoisonError::into_inner);
            let result = storage
                .read(piece, 0, &mut buf)
                .map(|()| Bytes::from(buf))
                .map_err(|e| disk_error(&e));
            DiskOutput::Done(DiskDone::PieceRead {
                torrent,
                piece,
                result,
            })
        }
        DiskJob::SaveResume { torrent, mut data } => {
            let storage = io.storage.read().unwrap_or_else(PoisonError::into_inner);
            data.save_path = Some(
                io.save_path
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .to_string_lossy()
                    .into_owned(),
            );
            let result = storage
                .flush()
                .and_then(|()| data.record_file_sizes(&**storage));
            DiskOutput::Alert(match result {
                Ok(()) => Alert::SaveResumeData { torrent, data },
                Err(e) => Alert::SaveResumeDataFailed {
                    torrent,
                    error: e.to_string(),
                },
            })
        }
        DiskJob::Move { torrent, path } => {
            let mut storage = io.storage.write().unwrap_or_else(PoisonError::into_inner);
            let result = storage
                .move_storage(Path::new(&path), MoveFlags::AlwaysReplaceFiles)
                .map(|p| {
                    *io.save_path.write().unwrap_or_else(PoisonError::into_inner) = p.clone();
                    p.to_string_lossy().into_owned()
                })
                .map_err(|e| disk_error(&e));
            DiskOutput::Done(DiskDone::Moved { torrent, result })
        }
        DiskJob::Rename {
            torrent,
            file,
            name,
        } => {
            let mut storage = io.storage.write().unwrap_or_else(PoisonError::into_inner);
            let result = storage
                .rename_file(lt_core::FileIndex::new(file), &name)
                .map(|()| name)
                .map_err(|e| disk_error(&e));
            DiskOutput::Done(DiskDone::Renamed {
                torrent,
                file,
                result,
            })
        }
        DiskJob::FilePriority {
            torrent,
            file,
            priority,
        } => {
            let mut storage = io.storage.write().unwrap_or_else(PoisonError::into_inner);
            match storage.set_file_priority(lt_core::FileIndex::new(file), priority) {
                Ok(()) => DiskOutput::Nothing,
                Err(e) => DiskOutput::Alert(Alert::FileError {
                    torrent,
                    error: disk_error(&e),
                }),
            }
        }
    }
}
