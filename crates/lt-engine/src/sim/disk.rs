//! The simulation's disk: one torrent's bytes in a `Vec<u8>`, answering every
//! [`DiskJob`] the engine emits the way lt-session's disk runner does, without a file.

use std::sync::Arc;

use bytes::Bytes;
use lt_core::{Bitfield, PieceIndex, Sha1Hasher};
use lt_metainfo::TorrentInfo;

use crate::{DiskDone, DiskError, DiskErrorKind, DiskJob};

/// What a disk job left for the driver besides its completion.
pub(super) enum Outcome {
    /// Hand this to the engine as [`crate::Input::Disk`].
    Done(DiskDone),
    /// Post this to the engine with [`crate::Engine::post_alert`].
    Alert(crate::Alert),
    /// The job reports nothing ([`DiskJob::FilePriority`]).
    Nothing,
}

/// One node's storage for its one torrent.
pub(super) struct MemDisk {
    /// The metadata the storage was made for (a magnet's placeholder until
    /// [`crate::Action::MetadataReceived`]).
    info: Arc<TorrentInfo>,
    data: Vec<u8>,
    /// Pieces with bytes written (or seeded); the others read as zeros and are not
    /// hashed by a check, as a sparse file's holes would not be worth hashing.
    written: Vec<bool>,
    /// Serve every block read with its bytes flipped (a bad peer).
    pub(super) corrupt: bool,
    /// The most bytes one write job carried.
    pub(super) largest_write: usize,
}

impl MemDisk {
    /// Empty storage for `info`.
    pub(super) fn empty(info: Arc<TorrentInfo>) -> Self {
        let len = usize::try_from(info.total_size()).unwrap_or(0);
        let pieces = info.num_pieces() as usize;
        Self {
            info,
            data: vec![0; len],
            written: vec![false; pieces],
            corrupt: false,
            largest_write: 0,
        }
    }

    /// Storage for `info` holding `payload` (a seed's).
    pub(super) fn full(info: Arc<TorrentInfo>, payload: &[u8]) -> Self {
        let mut disk = Self::empty(info);
        let n = disk.data.len().min(payload.len());
        disk.data[..n].copy_from_slice(&payload[..n]);
        disk.written.fill(true);
        disk
    }

    /// The bytes stored.
    pub(super) fn data(&self) -> &[u8] {
        &self.data
    }

    /// Makes the storage anew for `info` (the metadata of a magnet link arrived).
    pub(super) fn remake(&mut self, info: Arc<TorrentInfo>) {
        let corrupt = self.corrupt;
        let largest = self.largest_write;
        *self = Self::empty(info);
        self.corrupt = corrupt;
        self.largest_write = largest;
    }

    /// Forgets every byte (the torrent was removed).
    pub(super) fn clear(&mut self) {
        self.data.fill(0);
        self.written.fill(false);
    }

    /// Runs one job.
    pub(super) fn run(&mut self, job: DiskJob) -> Outcome {
        match job {
            DiskJob::Check { torrent, .. } => {
                let n = self.written.len();
                let mut found = Bitfield::new(n);
                for p in 0..n {
                    if self.written[p] && self.piece_ok(piece_index(p)) {
                        found.set(p);
                    }
                }
                Outcome::Done(DiskDone::Checked {
                    torrent,
                    result: Ok(found),
                })
            }
            DiskJob::WritePiece {
                torrent,
                piece,
                blocks,
            } => {
                let len: usize = blocks.iter().map(Bytes::len).sum();
                self.largest_write = self.largest_write.max(len);
                // Hash from memory first: a piece that fails is never written.
                let mut h = Sha1Hasher::new();
                for b in &blocks {
                    h.update(b);
                }
                let passed = len == self.piece_len(piece)
                    && self.info.piece_hash(piece) == Some(h.finalize());
                let error = if passed {
                    let mut at = self.piece_start(piece);
                    let mut error = None;
                    for b in &blocks {
                        if let Err(e) = self.write_at(at, b) {
                            error = Some(e);
                            break;
                        }
                        at += b.len();
                    }
                    error
                } else {
                    None
                };
                if passed && error.is_none() {
                    self.mark_written(piece);
                }
                Outcome::Done(DiskDone::PieceWritten {
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
                let len: usize = blocks.iter().map(|(_, b)| b.len()).sum();
                self.largest_write = self.largest_write.max(len);
                let start = self.piece_start(piece);
                let mut error = None;
                for (offset, b) in &blocks {
                    let end = *offset as usize + b.len();
                    if end > self.piece_len(piece) {
                        error = Some(not_found("block past the end of its piece"));
                        break;
                    }
                    if let Err(e) = self.write_at(start + *offset as usize, b) {
                        error = Some(e);
                        break;
                    }
                }
                if error.is_none() {
                    self.mark_written(piece);
                }
                Outcome::Done(if last {
                    DiskDone::PieceWritten {
                        torrent,
                        piece,
                        // As lt-session does: an error stops the job before hashing.
                        passed: error.is_some() || self.piece_ok(piece),
                        error,
                    }
                } else {
                    DiskDone::BlocksWritten {
                        torrent,
                        piece,
                        error,
                    }
                })
            }
            DiskJob::Read {
                torrent,
                conn,
                request,
            } => {
                let start = self.piece_start(request.piece) + request.begin as usize;
                let result = self.read_at(start, request.len as usize).map(|mut buf| {
                    if self.corrupt {
                        for b in &mut buf {
                            *b ^= 0x5a;
                        }
                    }
                    Bytes::from(buf)
                });
                Outcome::Done(DiskDone::Read {
                    torrent,
                    conn,
                    request,
                    result,
                })
            }
            DiskJob::VerifyPiece { torrent, piece } => Outcome::Done(DiskDone::Verified {
                torrent,
                piece,
                ok: self.piece_ok(piece),
            }),
            DiskJob::ReadPiece { torrent, piece } => {
                let result = self
                    .read_at(self.piece_start(piece), self.piece_len(piece))
                    .map(Bytes::from);
                Outcome::Done(DiskDone::PieceRead {
                    torrent,
                    piece,
                    result,
                })
            }
            // No files to flush or measure: the resume data goes back as it came.
            DiskJob::SaveResume { torrent, data } => {
                Outcome::Alert(crate::Alert::SaveResumeData { torrent, data })
            }
            // The bytes stay in memory; only the names change.
            DiskJob::Move { torrent, path } => Outcome::Done(DiskDone::Moved {
                torrent,
                result: Ok(path),
            }),
            DiskJob::Rename {
                torrent,
                file,
                name,
            } => Outcome::Done(DiskDone::Renamed {
                torrent,
                file,
                result: Ok(name),
            }),
            // No part file: every byte is kept whatever its file's priority.
            DiskJob::FilePriority { .. } => Outcome::Nothing,
        }
    }

    fn piece_start(&self, piece: PieceIndex) -> usize {
        piece.as_usize() * self.info.piece_length() as usize
    }

    fn piece_len(&self, piece: PieceIndex) -> usize {
        if piece.get() < self.info.num_pieces() {
            self.info.files().piece_size(piece) as usize
        } else {
            0
        }
    }

    fn mark_written(&mut self, piece: PieceIndex) {
        if let Some(w) = self.written.get_mut(piece.as_usize()) {
            *w = true;
        }
    }

    /// Whether the stored piece matches its SHA-1 in the metadata.
    fn piece_ok(&self, piece: PieceIndex) -> bool {
        let start = self.piece_start(piece);
        let Some(bytes) = self
            .data
            .get(start..start.saturating_add(self.piece_len(piece)))
        else {
            return false;
        };
        if bytes.is_empty() {
            return false;
        }
        let mut h = Sha1Hasher::new();
        h.update(bytes);
        self.info.piece_hash(piece) == Some(h.finalize())
    }

    fn write_at(&mut self, at: usize, bytes: &[u8]) -> Result<(), DiskError> {
        let slot = self
            .data
            .get_mut(at..at.saturating_add(bytes.len()))
            .ok_or_else(|| not_found("write past the end of the torrent"))?;
        slot.copy_from_slice(bytes);
        Ok(())
    }

    fn read_at(&self, at: usize, len: usize) -> Result<Vec<u8>, DiskError> {
        self.data
            .get(at..at.saturating_add(len))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| not_found("read past the end of the torrent"))
    }
}

fn piece_index(p: usize) -> PieceIndex {
    PieceIndex::new(u32::try_from(p).unwrap_or(u32::MAX))
}

fn not_found(what: &str) -> DiskError {
    DiskError::new(DiskErrorKind::NotFound, what)
}
