//! [`DiskIo`]: a session's disk threads (libtorrent's `disk_io_thread`): one bounded queue
//! of jobs for every torrent's [`TorrentStore`], run on a fixed set of threads.
//!
//! ```text
//!   driver ──try_submit(store, Job, ctx)──▶ bounded queue ──▶ disk thread ──▶ Storage
//!     ▲                                                          │
//!     └──────────────── done(Completion { ctx, output }) ◀───────┘
//! ```
//!
//! The jobs are the engine's: hash a piece from its blocks in memory and write it only if
//! it matches ([`Job::WritePiece`]), write blocks of a piece too large to hold and hash it
//! back from the files ([`Job::WriteBlocks`]), read blocks for peers through a read cache
//! of whole pieces, check, verify, save resume data, move, rename, set file priorities
//! and remove. `ctx` is the caller's and comes back untouched, so a driver keeps what it
//! needs to report a job (a connection, a request) without a map.
//!
//! The read cache ([`ReadCache`]) is one budget of bytes for every torrent of a session
//! (libtorrent 1.x's `cache_size`; 2.x maps the files and leaves caching to the page cache,
//! which files read with `pread` get too). A block request reads its 256 KiB-aligned window
//! of the piece, 16 blocks, and keeps it: a peer asks for a piece's blocks in order, so the
//! next 15 are served from memory (the session's driver serves them without a disk job). A
//! window, not the whole piece, so that a miss costs at most 256 KiB of reading whatever
//! the piece size, and a small budget holds the windows of many peers.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use bytes::{Bytes, BytesMut};
use lt_core::{Bitfield, FileIndex, PieceIndex, Sha1Hasher};
use lt_metainfo::TorrentInfo;

use crate::check::verify_piece_data;
use crate::{Error, MoveFlags, ResumeData, Storage, check_files, verify_piece, write_blocks};

/// The read-ahead unit: a block request reads (and caches) the aligned window of this
/// many bytes of its piece that holds it.
const WINDOW: u32 = 256 << 10;

/// The read cache's default budget: 8 MiB, 32 windows.
pub const DEFAULT_READ_CACHE_BYTES: usize = 8 << 20;

/// Distinct ids of stores, keying their windows in a shared cache.
static NEXT_STORE: AtomicU64 = AtomicU64::new(1);

/// One torrent's files as the disk threads see them: the storage, the metadata, the save
/// path, and the read cache it shares with the session's other torrents.
pub struct TorrentStore {
    id: u64,
    storage: RwLock<Box<dyn Storage>>,
    info: Arc<TorrentInfo>,
    save_path: RwLock<PathBuf>,
    /// Writes of one torrent go one at a time (hashing runs in parallel): concurrent
    /// writes to one file only contend for its inode lock.
    write_lock: Mutex<()>,
    cache: Arc<ReadCache>,
}

impl std::fmt::Debug for TorrentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorrentStore")
            .field("name", &self.info.name())
            .field("save_path", &self.save_path())
            .finish_non_exhaustive()
    }
}

impl TorrentStore {
    /// A torrent's files in `storage`, saved under `save_path`, with a read cache of its
    /// own of [`DEFAULT_READ_CACHE_BYTES`].
    #[must_use]
    pub fn new(storage: Box<dyn Storage>, info: Arc<TorrentInfo>, save_path: PathBuf) -> Self {
        let cache = Arc::new(ReadCache::new(DEFAULT_READ_CACHE_BYTES));
        Self::with_cache(storage, info, save_path, cache)
    }

    /// A torrent's files in `storage`, saved under `save_path`, reading through `cache`
    /// (a session's, shared by its torrents).
    #[must_use]
    pub fn with_cache(
        storage: Box<dyn Storage>,
        info: Arc<TorrentInfo>,
        save_path: PathBuf,
        cache: Arc<ReadCache>,
    ) -> Self {
        Self {
            id: NEXT_STORE.fetch_add(1, Ordering::Relaxed),
            storage: RwLock::new(storage),
            info,
            save_path: RwLock::new(save_path),
            write_lock: Mutex::new(()),
            cache,
        }
    }

    /// The torrent's metadata.
    #[must_use]
    pub fn info(&self) -> &Arc<TorrentInfo> {
        &self.info
    }

    /// Where the files are (changed by [`Job::Move`]).
    #[must_use]
    pub fn save_path(&self) -> PathBuf {
        self.save_path
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The block `begin..begin + len` of `piece` if its window is in the read cache: the
    /// session's driver serves it without a disk job.
    #[must_use]
    pub fn cached_block(&self, piece: PieceIndex, begin: u32, len: u32) -> Option<Bytes> {
        let w = begin / WINDOW;
        let offset = (begin - w * WINDOW) as usize;
        let data = self.cache.get((self.id, piece.get(), w))?;
        let end = offset.checked_add(len as usize)?;
        (end <= data.len()).then(|| data.slice(offset..end))
    }

    /// Calls `f` with the storage (for a quick look from outside the disk threads, such as
    /// flushing at shutdown).
    pub fn with_storage<R>(&self, f: impl FnOnce(&dyn Storage) -> R) -> R {
        f(&**self.storage.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn storage(&self) -> std::sync::RwLockReadGuard<'_, Box<dyn Storage>> {
        self.storage.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn storage_mut(&self) -> std::sync::RwLockWriteGuard<'_, Box<dyn Storage>> {
        self.storage.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, piece: PieceIndex, blocks: &[(u32, Bytes)]) -> Result<(), Error> {
        let _one_writer = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        write_blocks(&**self.storage(), piece, blocks)
    }

    fn read(&self, piece: PieceIndex, begin: u32, len: u32) -> Result<Bytes, Error> {
        if let Some(b) = self.cached_block(piece, begin, len) {
            return Ok(b);
        }
        let piece_len = self.info.files().piece_size(piece);
        let out_of_range = || Error::BlockOutOfRange {
            piece,
            offset: begin,
            len: len as usize,
            piece_size: piece_len,
        };
        let end = begin.checked_add(len).ok_or_else(out_of_range)?;
        if end > piece_len {
            return Err(out_of_range());
        }
        let w = begin / WINDOW;
        let start = w * WINDOW;
        let window_end = piece_len.min(start.saturating_add(WINDOW));
        let storage = self.storage();
        if end > window_end || !self.cache.enabled() {
            // Across two windows (no client asks so), or no cache: the block alone.
            let mut buf = vec![0u8; len as usize];
            storage.read(piece, begin, &mut buf)?;
            return Ok(Bytes::from(buf));
        }
        let mut buf = self.cache.spare_buffer((window_end - start) as usize);
        storage.read(piece, start, &mut buf)?;
        let window = buf.freeze();
        self.cache.insert((self.id, piece.get(), w), window.clone());
        let offset = (begin - start) as usize;
        Ok(window.slice(offset..offset + len as usize))
    }
}

impl Drop for TorrentStore {
    fn drop(&mut self) {
        self.cache.forget(self.id);
    }
}

/// Windows of pieces read for uploading (see the module docs), for every torrent that
/// shares it; at most its budget of bytes, the oldest out first. A budget of 0 turns it
/// off: every block is read on its own.
#[derive(Debug)]
pub struct ReadCache {
    inner: Mutex<CacheInner>,
}

/// A window: the store, the piece, the window's index in the piece.
type WindowKey = (u64, u32, u32);

#[derive(Debug, Default)]
struct CacheInner {
    windows: HashMap<WindowKey, Bytes>,
    order: VecDeque<WindowKey>,
    bytes: usize,
    limit: usize,
    /// Buffers of evicted windows nothing else held any more, for the next reads: a
    /// fresh buffer is zeroed before it is read into, 6.8 % of a seeder's CPU.
    spare: Vec<BytesMut>,
}

/// Most buffers of evicted windows kept for reuse.
const SPARE_WINDOWS: usize = 4;

impl ReadCache {
    /// A cache of at most `limit` bytes.
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Mutex::new(CacheInner {
                limit,
                ..CacheInner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Its budget in bytes.
    #[must_use]
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    /// Changes its budget, dropping the oldest windows past it.
    pub fn set_limit(&self, limit: usize) {
        let mut c = self.lock();
        c.limit = limit;
        c.shrink();
    }

    /// Bytes it holds now.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn enabled(&self) -> bool {
        self.lock().limit >= WINDOW as usize
    }

    /// A buffer of `len` bytes to read a window into: an evicted window's when one is
    /// free (its bytes are overwritten by the read), else a new one.
    fn spare_buffer(&self, len: usize) -> BytesMut {
        match self.lock().spare.pop() {
            Some(mut b) => {
                b.resize(len, 0);
                b
            }
            None => BytesMut::zeroed(len),
        }
    }

    fn get(&self, key: WindowKey) -> Option<Bytes> {
        self.lock().windows.get(&key).cloned()
    }

    fn insert(&self, key: WindowKey, data: Bytes) {
        let mut c = self.lock();
        let len = data.len();
        if c.windows.insert(key, data).is_none() {
            c.bytes += len;
            c.order.push_back(key);
        }
        c.shrink();
    }

    /// Drops a store's windows (it is gone).
    fn forget(&self, store: u64) {
        let mut c = self.lock();
        let CacheInner {
            windows,
            order,
            bytes,
            ..
        } = &mut *c;
        windows.retain(|k, v| {
            let keep = k.0 != store;
            if !keep {
                *bytes -= v.len();
            }
            keep
        });
        order.retain(|k| k.0 != store);
    }
}

impl CacheInner {
    fn shrink(&mut self) {
        while self.bytes > self.limit {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.windows.remove(&key) {
                self.bytes -= old.len();
                // Unique when every block sent from it has been written and dropped.
                if self.spare.len() < SPARE_WINDOWS
                    && let Ok(buf) = old.try_into_mut()
                {
                    self.spare.push(buf);
                }
            }
        }
    }
}

/// A disk job. Each reports one [`Output`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Job {
    /// Which pieces are on disk: from `resume` when it fits the files
    /// ([`crate::verify_resume`]), otherwise by hashing every piece. [`Output::Checked`].
    Check {
        /// Resume data to trust if it fits.
        resume: Option<Box<ResumeData>>,
    },
    /// Hash a whole piece from its blocks (in order) and write them at the piece's start
    /// only if it matches: a corrupt piece never reaches the disk. [`Output::PieceWritten`].
    WritePiece {
        /// The piece.
        piece: PieceIndex,
        /// Its blocks, in order; together exactly the piece.
        blocks: Vec<Bytes>,
    },
    /// Write blocks (offset in the piece, bytes; in offset order), one vectored write per
    /// contiguous run. With `last`, every other block of the piece was written before:
    /// hash the piece back from the files, 128 KiB at a time, and report
    /// [`Output::PieceWritten`]; otherwise [`Output::BlocksWritten`].
    WriteBlocks {
        /// The piece.
        piece: PieceIndex,
        /// The blocks.
        blocks: Vec<(u32, Bytes)>,
        /// Whether the piece is complete with these.
        last: bool,
    },
    /// Read a block for a peer, through the read cache. [`Output::Read`].
    Read {
        /// The piece.
        piece: PieceIndex,
        /// Offset in the piece.
        begin: u32,
        /// Length.
        len: u32,
    },
    /// Hash a piece on disk. [`Output::Verified`].
    VerifyPiece {
        /// The piece.
        piece: PieceIndex,
    },
    /// Read a whole piece. [`Output::PieceRead`].
    ReadPiece {
        /// The piece.
        piece: PieceIndex,
    },
    /// Flush the files and record the save path and file sizes into `data`.
    /// [`Output::ResumeSaved`].
    SaveResume {
        /// The resume data without them.
        data: Box<ResumeData>,
    },
    /// Move the files. [`Output::Moved`].
    Move {
        /// The new save path.
        path: PathBuf,
        /// What to do about files already there.
        flags: MoveFlags,
    },
    /// Rename a file. [`Output::Renamed`].
    Rename {
        /// The file.
        file: FileIndex,
        /// Its new path, relative to the save path.
        name: String,
    },
    /// Set a file's priority (0 sends its bytes to the part file). [`Output::PrioritySet`].
    FilePriority {
        /// The file.
        file: FileIndex,
        /// The priority.
        priority: u8,
    },
    /// Flush and close the files, and delete them with `delete_files`. [`Output::Removed`].
    Remove {
        /// Whether to delete the files.
        delete_files: bool,
    },
}

/// What a job produced.
#[derive(Debug)]
#[non_exhaustive]
pub enum Output {
    /// The pieces found, or why checking failed; and why the resume data was not trusted
    /// when it was given and the files were checked instead (the manual's
    /// `fastresume_rejected_alert`).
    Checked {
        /// The pieces, or the error.
        result: Result<Bitfield, Error>,
        /// The resume data's rejection.
        resume_rejected: Option<crate::ResumeError>,
    },
    /// A piece was hashed and (when it matched) written.
    PieceWritten {
        /// The piece.
        piece: PieceIndex,
        /// Whether the hash matched (true when `error` stopped the job before hashing).
        passed: bool,
        /// The write's (or the read-back's) error.
        error: Option<Error>,
    },
    /// Blocks of a piece still downloading were written.
    BlocksWritten {
        /// The piece.
        piece: PieceIndex,
        /// The write's result.
        result: Result<(), Error>,
    },
    /// The block read.
    Read(Result<Bytes, Error>),
    /// Whether the piece on disk matched.
    Verified {
        /// The piece.
        piece: PieceIndex,
        /// Whether it matched.
        ok: bool,
    },
    /// A whole piece read.
    PieceRead {
        /// The piece.
        piece: PieceIndex,
        /// Its bytes.
        result: Result<Bytes, Error>,
    },
    /// Resume data with save path and file sizes, or why they could not be recorded.
    ResumeSaved(Result<Box<ResumeData>, Error>),
    /// The new save path.
    Moved(Result<PathBuf, Error>),
    /// The file renamed to `name`.
    Renamed {
        /// The file.
        file: FileIndex,
        /// Its new path, or why it was not renamed.
        result: Result<String, Error>,
    },
    /// A file priority set.
    PrioritySet(Result<(), Error>),
    /// The files flushed and closed (and deleted when asked).
    Removed(Result<(), Error>),
}

/// A finished job: the caller's context and what the job produced.
#[derive(Debug)]
pub struct Completion<C> {
    /// The context given to [`DiskIo::try_submit`].
    pub ctx: C,
    /// What the job produced.
    pub output: Output,
}

/// Why [`DiskIo::try_submit`] did not take a job; the job comes back.
#[derive(Debug)]
pub enum SubmitError<C> {
    /// The queue is full: back-pressure. Keep the job and submit it again after a
    /// completion.
    Full(Arc<TorrentStore>, Job, C),
    /// The threads have stopped.
    Stopped(Arc<TorrentStore>, Job, C),
}

type Queued<C> = (Arc<TorrentStore>, Job, C);

/// A session's disk threads behind one bounded queue.
///
/// [`try_submit`](Self::try_submit) never blocks: a full queue hands the job back. Each
/// completion goes to the `done` callback on the disk thread that ran it (a driver sends it
/// on to its event loop). [`shutdown`](Self::shutdown) runs what is queued, then joins.
pub struct DiskIo<C: Send + 'static> {
    tx: RwLock<Option<SyncSender<Queued<C>>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl<C: Send + 'static> std::fmt::Debug for DiskIo<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskIo").finish_non_exhaustive()
    }
}

impl<C: Send + 'static> DiskIo<C> {
    /// Starts `threads` disk threads (at least one) with a queue of `queue_depth` jobs; a
    /// full check hashes with `check_threads` threads of its own.
    ///
    /// # Errors
    /// [`Error::Io`] when a thread cannot be spawned.
    pub fn new(
        threads: usize,
        queue_depth: usize,
        check_threads: usize,
        done: impl Fn(Completion<C>) + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        let (tx, rx) = mpsc::sync_channel::<Queued<C>>(queue_depth.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let done = Arc::new(done);
        let mut handles = Vec::new();
        for n in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            let done = Arc::clone(&done);
            let h = std::thread::Builder::new()
                .name(format!("lt-disk-{n}"))
                .spawn(move || worker(&rx, &*done, check_threads.max(1)))
                .map_err(|e| Error::io(crate::Operation::Open, "lt-disk thread", e))?;
            handles.push(h);
        }
        Ok(Self {
            tx: RwLock::new(Some(tx)),
            threads: Mutex::new(handles),
        })
    }

    /// Queues a job on `store` without blocking.
    ///
    /// # Errors
    /// [`SubmitError::Full`] (back-pressure) or [`SubmitError::Stopped`], with the job.
    pub fn try_submit(
        &self,
        store: Arc<TorrentStore>,
        job: Job,
        ctx: C,
    ) -> Result<(), SubmitError<C>> {
        let tx = self.tx.read().unwrap_or_else(PoisonError::into_inner);
        let Some(tx) = tx.as_ref() else {
            return Err(SubmitError::Stopped(store, job, ctx));
        };
        tx.try_send((store, job, ctx)).map_err(|e| match e {
            TrySendError::Full((s, j, c)) => SubmitError::Full(s, j, c),
            TrySendError::Disconnected((s, j, c)) => SubmitError::Stopped(s, j, c),
        })
    }

    /// Queues a job, waiting while the queue is full (not from an async task).
    ///
    /// # Errors
    /// [`Error::PoolStopped`].
    pub fn submit(&self, store: Arc<TorrentStore>, job: Job, ctx: C) -> Result<(), Error> {
        let tx = self
            .tx
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(Error::PoolStopped)?;
        tx.send((store, job, ctx)).map_err(|_| Error::PoolStopped)
    }

    /// Stops taking jobs, runs the queued ones and joins the threads.
    pub fn shutdown(&self) {
        self.tx
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl<C: Send + 'static> Drop for DiskIo<C> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn worker<C>(rx: &Mutex<Receiver<Queued<C>>>, done: &dyn Fn(Completion<C>), check_threads: usize) {
    loop {
        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok((store, job, ctx)) = next else {
            return;
        };
        let output = run_job(&store, job, check_threads);
        done(Completion { ctx, output });
    }
}

/// Whether a piece's blocks, in order, match the torrent's hash for it.
fn verify_blocks(info: &TorrentInfo, piece: PieceIndex, blocks: &[Bytes]) -> bool {
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

/// Runs one job on the calling thread.
#[must_use]
pub fn run_job(store: &TorrentStore, job: Job, check_threads: usize) -> Output {
    let info = &store.info;
    match job {
        Job::Check { resume } => {
            let storage = store.storage();
            let (have, resume_rejected) =
                match resume.map(|r| crate::verify_resume(&r, info, &**storage)) {
                    Some(Ok(have)) => (Ok(have), None),
                    rejected => {
                        let have = match storage.has_any_file() {
                            Ok(false) => Ok(Bitfield::new(info.num_pieces() as usize)),
                            Ok(true) => check_files(&**storage, info, check_threads),
                            Err(e) => Err(e),
                        };
                        (have, rejected.and_then(Result::err))
                    }
                };
            // After the check: the directories, the empty files (no piece ever writes
            // them) and, with full allocation, every file at its size.
            Output::Checked {
                result: have.and_then(|have| storage.initialize().map(|()| have)),
                resume_rejected,
            }
        }
        Job::WritePiece { piece, blocks } => {
            let passed = verify_blocks(info, piece, &blocks);
            let mut error = None;
            if passed {
                let slices: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
                let _one_writer = store
                    .write_lock
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                error = store.storage().write(piece, 0, &slices).err();
            }
            Output::PieceWritten {
                piece,
                passed,
                error,
            }
        }
        Job::WriteBlocks {
            piece,
            blocks,
            last,
        } => {
            let written = store.write(piece, &blocks);
            drop(blocks);
            if !last {
                return Output::BlocksWritten {
                    piece,
                    result: written,
                };
            }
            let checked = written
                .and_then(|()| verify_piece(&**store.storage(), info, piece, &mut Vec::new()));
            match checked {
                Ok(passed) => Output::PieceWritten {
                    piece,
                    passed,
                    error: None,
                },
                Err(e) => Output::PieceWritten {
                    piece,
                    passed: true,
                    error: Some(e),
                },
            }
        }
        Job::Read { piece, begin, len } => Output::Read(store.read(piece, begin, len)),
        Job::VerifyPiece { piece } => Output::Verified {
            piece,
            ok: verify_piece(&**store.storage(), info, piece, &mut Vec::new()).unwrap_or(false),
        },
        Job::ReadPiece { piece } => {
            let mut buf = Vec::new();
            let result =
                crate::read_piece(&**store.storage(), piece, &mut buf).map(|()| Bytes::from(buf));
            Output::PieceRead { piece, result }
        }
        Job::SaveResume { mut data } => {
            let storage = store.storage();
            data.save_path = Some(store.save_path().to_string_lossy().into_owned());
            let result = storage
                .flush()
                .and_then(|()| crate::record_file_sizes(&mut data, &**storage))
                .map(|()| data);
            Output::ResumeSaved(result)
        }
        Job::Move { path, flags } => {
            let mut storage = store.storage_mut();
            let result = storage.move_storage(Path::new(&path), flags).inspect(|p| {
                *store
                    .save_path
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = p.clone();
            });
            Output::Moved(result)
        }
        Job::Rename { file, name } => {
            let result = store.storage_mut().rename_file(file, &name).map(|()| name);
            Output::Renamed { file, result }
        }
        Job::FilePriority { file, priority } => {
            Output::PrioritySet(store.storage_mut().set_file_priority(file, priority))
        }
        Job::Remove { delete_files } => {
            let mut storage = store.storage_mut();
            let _ = storage.flush();
            let _ = storage.release_files();
            Output::Removed(if delete_files {
                storage.delete_files()
            } else {
                Ok(())
            })
        }
    }
}
