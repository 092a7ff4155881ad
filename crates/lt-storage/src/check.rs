//! Piece verification and the full recheck ("checking files"), on all cores.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use lt_core::{Bitfield, FileIndex, PieceIndex, Sha1Hasher, Sha256Hash};
use lt_metainfo::{TorrentInfo, merkle_root};

use crate::storage::v2_piece_data_len;
use crate::{Error, Storage};

/// Whether `data` (a whole piece) matches the torrent: its SHA-1 for v1 and hybrid torrents,
/// its merkle subtree for v2-only torrents.
#[must_use]
pub fn verify_piece_data(info: &TorrentInfo, piece: PieceIndex, data: &[u8]) -> bool {
    if let Some(expected) = info.piece_hash(piece) {
        let mut h = Sha1Hasher::new();
        h.update(data);
        return h.finalize() == expected;
    }
    let len = v2_piece_data_len(info.files(), piece);
    let Some(bytes) = data.get(..len) else {
        return false;
    };
    let leaves: Vec<Sha256Hash> = bytes
        .chunks(lt_core::BLOCK_SIZE as usize)
        .map(Sha256Hash::digest)
        .collect();
    verify_v2_leaves(info, piece, leaves)
}

/// Whether the 16 KiB block hashes of a piece (as [`Storage::hash_piece_v2`] returns them)
/// match the torrent's v2 piece layer, or the file's `pieces root` for files of at most one
/// piece.
#[must_use]
pub fn verify_v2_leaves(
    info: &TorrentInfo,
    piece: PieceIndex,
    mut leaves: Vec<Sha256Hash>,
) -> bool {
    let fs = info.files();
    let start = u64::from(piece.get()) * u64::from(fs.piece_length());
    let i = fs.file_index_at(start);
    let Some(f) = fs.files().get(i) else {
        return false;
    };
    let Some(root) = f.pieces_root else {
        return false;
    };
    let file = FileIndex::new(u32::try_from(i).unwrap_or(u32::MAX));
    if f.size <= u64::from(fs.piece_length()) {
        return merkle_root(&leaves, Sha256Hash::ZERO) == root;
    }
    let Some(layer) = info.piece_layer(file) else {
        return false;
    };
    let first = fs.file_piece_range(file).start;
    let Some(expected) = layer.get((piece.get() - first) as usize) else {
        return false;
    };
    let per_piece = (fs.piece_length() / lt_core::BLOCK_SIZE) as usize;
    if leaves.len() > per_piece {
        return false;
    }
    leaves.resize(per_piece, Sha256Hash::ZERO);
    merkle_root(&leaves, Sha256Hash::ZERO) == *expected
}

/// Reads a piece from `storage` and checks it against the torrent. A missing or short file
/// is a piece we don't have, not an error.
///
/// # Errors
/// Any other disk error.
pub fn verify_piece<S: Storage + ?Sized>(
    storage: &S,
    info: &TorrentInfo,
    piece: PieceIndex,
    buf: &mut Vec<u8>,
) -> Result<bool, Error> {
    let result = match info.piece_hash(piece) {
        // v1: read and hash in cache-sized chunks, so the hasher reads from L2, not memory.
        Some(expected) => hash_chunked(storage, piece, buf).map(|h| h == expected),
        None => v2_leaves_chunked(storage, piece, buf).map(|l| verify_v2_leaves(info, piece, l)),
    };
    match result {
        Err(e) if is_missing(&e) => Ok(false),
        r => r,
    }
}

/// Bytes read per step when hashing a piece from storage.
const HASH_CHUNK: usize = 128 * 1024;

/// A v2 piece's block hashes, read in [`HASH_CHUNK`] steps (memory bounded whatever the
/// piece length).
fn v2_leaves_chunked<S: Storage + ?Sized>(
    storage: &S,
    piece: PieceIndex,
    buf: &mut Vec<u8>,
) -> Result<Vec<Sha256Hash>, Error> {
    crate::storage::check_piece(storage.files(), piece)?;
    let len = v2_piece_data_len(storage.files(), piece);
    buf.resize(HASH_CHUNK.min(len), 0);
    let mut leaves = Vec::with_capacity(len.div_ceil(lt_core::BLOCK_SIZE as usize));
    let mut off = 0usize;
    while off < len {
        let n = HASH_CHUNK.min(len - off);
        let chunk = &mut buf[..n];
        storage.read(piece, u32::try_from(off).unwrap_or(u32::MAX), chunk)?;
        leaves.extend(
            chunk
                .chunks(lt_core::BLOCK_SIZE as usize)
                .map(Sha256Hash::digest),
        );
        off += n;
    }
    Ok(leaves)
}

fn hash_chunked<S: Storage + ?Sized>(
    storage: &S,
    piece: PieceIndex,
    buf: &mut Vec<u8>,
) -> Result<lt_core::Sha1Hash, Error> {
    crate::storage::check_piece(storage.files(), piece)?;
    let size = storage.files().piece_size(piece) as usize;
    buf.resize(HASH_CHUNK.min(size), 0);
    let mut h = Sha1Hasher::new();
    let mut off = 0usize;
    while off < size {
        let n = HASH_CHUNK.min(size - off);
        let chunk = &mut buf[..n];
        // off < size <= u32::MAX: a piece size is a u32.
        storage.read(piece, u32::try_from(off).unwrap_or(u32::MAX), chunk)?;
        h.update(chunk);
        off += n;
    }
    Ok(h.finalize())
}

/// Checks every piece of the torrent against the files (the manual's "checking files" and
/// `force_recheck`) on `threads` threads (0 = every core), reading each byte once.
/// Returns the pieces that verified.
///
/// # Errors
/// The first disk error other than a missing or short file; checking stops there.
pub fn check_files<S: Storage + ?Sized>(
    storage: &S,
    info: &TorrentInfo,
    threads: usize,
) -> Result<Bitfield, Error> {
    check_pieces(storage, info, threads, |_| true)
}

/// Like [`check_files`], for the pieces `want` selects only (the others are reported
/// missing): a restart after a crash checks only what the resume data does not vouch for.
///
/// # Errors
/// As [`check_files`].
pub fn check_pieces<S: Storage + ?Sized>(
    storage: &S,
    info: &TorrentInfo,
    threads: usize,
    want: impl Fn(PieceIndex) -> bool + Sync,
) -> Result<Bitfield, Error> {
    let n = info.num_pieces();
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    } else {
        threads
    }
    .clamp(1, (n as usize).max(1));
    let next = AtomicU32::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let found: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut buf = Vec::with_capacity(info.piece_length() as usize);
                let mut good = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let p = next.fetch_add(1, Ordering::Relaxed);
                    if p >= n {
                        break;
                    }
                    let piece = PieceIndex::new(p);
                    if !want(piece) {
                        continue;
                    }
                    match verify_piece(storage, info, piece, &mut buf) {
                        Ok(true) => good.push(p),
                        Ok(false) => {}
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            let mut slot = first_error
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            slot.get_or_insert(e);
                            break;
                        }
                    }
                }
                found
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(good);
            });
        }
    });
    if let Some(e) = first_error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        return Err(e);
    }
    let mut have = Bitfield::new(n as usize);
    for p in found
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        have.set(p as usize);
    }
    Ok(have)
}

/// A missing or too short file: the piece is simply not there yet.
pub(crate) fn is_missing(e: &Error) -> bool {
    matches!(
        e.io_kind(),
        Some(io::ErrorKind::NotFound | io::ErrorKind::UnexpectedEof)
    )
}
