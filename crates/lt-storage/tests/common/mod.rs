//! Helpers shared by the integration tests.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::cast_possible_truncation
)]

use std::path::Path;

use lt_core::PieceIndex;
use lt_metainfo::{CreateTorrent, TorrentInfo, TorrentVersion};
use lt_storage::Storage;

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Writes `files` under `src/name/` and makes a torrent of the directory.
pub fn make_torrent(
    src: &Path,
    files: &[(&str, usize)],
    piece: u32,
    version: TorrentVersion,
) -> (TorrentInfo, Vec<u8>) {
    let root = src.join("t");
    std::fs::create_dir_all(&root).unwrap();
    for (i, (name, size)) in files.iter().enumerate() {
        std::fs::write(root.join(name), bytes(i as u64 + 1, *size)).unwrap();
    }
    let t = CreateTorrent::new(&root)
        .piece_size(piece)
        .version(version)
        .generate()
        .unwrap();
    let info = TorrentInfo::from_bytes(&t).unwrap();
    let stream = stream_of(&info, src);
    (info, stream)
}

/// The torrent's byte stream read from `base` (pad files as zeros).
pub fn stream_of(info: &TorrentInfo, base: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for f in info.files().files() {
        if f.is_pad() {
            out.resize(out.len() + f.size as usize, 0);
        } else {
            out.extend(std::fs::read(base.join(f.path_buf())).unwrap());
        }
    }
    assert_eq!(out.len() as u64, info.total_size());
    out
}

/// Writes every piece of `stream` into `storage` in the order given, 16 KiB blocks (or
/// `block` bytes) at a time.
pub fn write_pieces<S: Storage + ?Sized>(
    storage: &S,
    stream: &[u8],
    pieces: impl IntoIterator<Item = u32>,
    block: usize,
) {
    let pl = storage.files().piece_length() as usize;
    for p in pieces {
        let start = p as usize * pl;
        let end = (start + pl).min(stream.len());
        let mut off = 0;
        for chunk in stream[start..end].chunks(block) {
            storage
                .write(PieceIndex::new(p), off as u32, &[chunk])
                .unwrap();
            off += chunk.len();
        }
    }
}

/// A permutation of `0..n` from a seed.
pub fn shuffled(n: u32, seed: u64) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n).collect();
    let r = bytes(seed, v.len() * 4);
    for i in (1..v.len()).rev() {
        let x = u32::from_le_bytes([r[i * 4], r[i * 4 + 1], r[i * 4 + 2], r[i * 4 + 3]]);
        v.swap(i, x as usize % (i + 1));
    }
    v
}
