//! The engine's disk jobs on lt-storage's [`DiskIo`]: each [`DiskJob`] becomes an
//! [`lt_storage::Job`] on the torrent's [`TorrentStore`], and each completion becomes the
//! engine's [`DiskDone`] (or, for resume data, file priorities and removal, an alert). The
//! disk threads, their queue, the hashing and the read cache are lt-storage's.

use std::path::PathBuf;
use std::sync::Arc;

use lt_core::{FileIndex, InfoHash};
use lt_engine::{Alert, ConnId, DiskDone, DiskError, DiskErrorKind, DiskJob, TorrentId};
use lt_storage::{Completion, FsOptions, Job, MoveFlags, Output, TorrentStore};
use lt_wire::BlockRequest;

/// A torrent's store and the options its storage was made with (to make it again when a
/// magnet's metadata arrives).
pub(crate) struct TorrentIo {
    pub(crate) store: Arc<TorrentStore>,
    pub(crate) options: FsOptions,
}

/// What the session needs back from a disk job to report it.
#[derive(Debug)]
pub(crate) enum DiskCtx {
    Torrent(TorrentId),
    Read {
        torrent: TorrentId,
        conn: ConnId,
        request: BlockRequest,
    },
    Remove {
        info_hash: InfoHash,
        delete_files: bool,
    },
}

/// The session's disk threads.
pub(crate) type Disk = lt_storage::DiskIo<DiskCtx>;

/// What a disk job produced: a completion for the engine, an alert for the user, or (a
/// file priority set, files released) nothing.
pub(crate) enum DiskOutput {
    Done(DiskDone),
    Alert(Alert),
    /// An alert to post first, then a result for the engine.
    AlertAndDone(Alert, DiskDone),
    Nothing,
}

/// A storage error as the engine sees it: what it means for the torrent, and its text.
pub(crate) fn disk_error(e: &lt_storage::Error) -> DiskError {
    let kind = match e {
        lt_storage::Error::DiskFull { .. } | lt_storage::Error::PermissionDenied { .. } => {
            DiskErrorKind::NoSpaceOrDenied
        }
        lt_storage::Error::FileOutOfRange(_) => DiskErrorKind::NotFound,
        _ => DiskErrorKind::Other,
    };
    DiskError::new(kind, e.to_string())
}

/// The storage job for an engine job, and what to report it with.
pub(crate) fn job(job: DiskJob) -> (Job, DiskCtx) {
    use DiskCtx::Torrent;
    match job {
        DiskJob::Check { torrent, resume } => (Job::Check { resume }, Torrent(torrent)),
        DiskJob::WritePiece {
            torrent,
            piece,
            blocks,
        } => (Job::WritePiece { piece, blocks }, Torrent(torrent)),
        DiskJob::WriteBlocks {
            torrent,
            piece,
            blocks,
            last,
        } => (
            Job::WriteBlocks {
                piece,
                blocks,
                last,
            },
            Torrent(torrent),
        ),
        DiskJob::Read {
            torrent,
            conn,
            request,
        } => (
            Job::Read {
                piece: request.piece,
                begin: request.begin,
                len: request.len,
            },
            DiskCtx::Read {
                torrent,
                conn,
                request,
            },
        ),
        DiskJob::VerifyPiece { torrent, piece } => (Job::VerifyPiece { piece }, Torrent(torrent)),
        DiskJob::ReadPiece { torrent, piece } => (Job::ReadPiece { piece }, Torrent(torrent)),
        DiskJob::SaveResume { torrent, data } => (Job::SaveResume { data }, Torrent(torrent)),
        DiskJob::Move { torrent, path } => (
            Job::Move {
                path: PathBuf::from(path),
                flags: MoveFlags::AlwaysReplaceFiles,
            },
            Torrent(torrent),
        ),
        DiskJob::Rename {
            torrent,
            file,
            name,
        } => (
            Job::Rename {
                file: FileIndex::new(file),
                name,
            },
            Torrent(torrent),
        ),
        DiskJob::FilePriority {
            torrent,
            file,
            priority,
        } => (
            Job::FilePriority {
                file: FileIndex::new(file),
                priority,
            },
            Torrent(torrent),
        ),
    }
}

/// How a finished storage job is reported.
pub(crate) fn report(done: Completion<DiskCtx>) -> DiskOutput {
    let torrent = match done.ctx {
        DiskCtx::Torrent(t) => t,
        DiskCtx::Read {
            torrent,
            conn,
            request,
        } => {
            let Output::Read(result) = done.output else {
                return DiskOutput::Nothing;
            };
            return DiskOutput::Done(DiskDone::Read {
                torrent,
                conn,
                request,
                result: result.map_err(|e| disk_error(&e)),
            });
        }
        DiskCtx::Remove {
            info_hash,
            delete_files,
        } => {
            return match done.output {
                Output::Removed(Ok(())) if delete_files => {
                    DiskOutput::Alert(Alert::TorrentDeleted { info_hash })
                }
                Output::Removed(Err(e)) if delete_files => {
                    DiskOutput::Alert(Alert::TorrentDeleteFailed {
                        info_hash,
                        error: e.to_string(),
                    })
                }
                _ => DiskOutput::Nothing,
            };
        }
    };
    let done = match done.output {
        Output::Checked {
            result,
            resume_rejected,
        } => {
            let checked = DiskDone::Checked {
                torrent,
                result: result.map_err(|e| disk_error(&e)),
            };
            if let Some(e) = resume_rejected {
                let alert = Alert::FastresumeRejected {
                    torrent,
                    error: e.to_string(),
                };
                return DiskOutput::AlertAndDone(alert, checked);
            }
            checked
        }
        Output::PieceWritten {
            piece,
            passed,
            error,
        } => DiskDone::PieceWritten {
            torrent,
            piece,
            passed,
            error: error.map(|e| disk_error(&e)),
        },
        Output::BlocksWritten { piece, result } => DiskDone::BlocksWritten {
            torrent,
            piece,
            error: result.err().map(|e| disk_error(&e)),
        },
        Output::Verified { piece, ok } => DiskDone::Verified { torrent, piece, ok },
        Output::PieceRead { piece, result } => DiskDone::PieceRead {
            torrent,
            piece,
            result: result.map_err(|e| disk_error(&e)),
        },
        Output::Moved(result) => DiskDone::Moved {
            torrent,
            result: result
                .map(|p| p.to_string_lossy().into_owned())
                .map_err(|e| disk_error(&e)),
        },
        Output::Renamed { file, result } => DiskDone::Renamed {
            torrent,
            file: file.get(),
            result: result.map_err(|e| disk_error(&e)),
        },
        Output::ResumeSaved(result) => {
            return DiskOutput::Alert(match result {
                Ok(data) => Alert::SaveResumeData { torrent, data },
                Err(e) => Alert::SaveResumeDataFailed {
                    torrent,
                    error: e.to_string(),
                },
            });
        }
        Output::PrioritySet(result) => {
            return match result {
                Ok(()) => DiskOutput::Nothing,
                Err(e) => DiskOutput::Alert(Alert::FileError {
                    torrent,
                    error: disk_error(&e),
                }),
            };
        }
        // A job's output that does not fit its context: nothing to report.
        _ => return DiskOutput::Nothing,
    };
    DiskOutput::Done(done)
}
