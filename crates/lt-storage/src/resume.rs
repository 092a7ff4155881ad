//! Fast-resume data against the files on disk: [`verify_resume`] decides whether the files
//! still fit the data, [`record_file_sizes`] notes their sizes before saving it. The type and
//! its format are lt-metainfo's ([`ResumeData`]), so the sans-IO engine carries it without
//! this crate.

use lt_core::{Bitfield, FileIndex};
use lt_metainfo::{ResumeData, ResumeError, TorrentInfo};

use crate::{Error, Storage};

/// Records each file's size and modification time as the storage sees them now
/// into `data` (`file sizes`); call it right after [`Storage::flush`].
///
/// # Errors
/// A disk error.
pub fn record_file_sizes<S: Storage + ?Sized>(
    data: &mut ResumeData,
    storage: &S,
) -> Result<(), Error> {
    let n = storage.files().num_files();
    data.file_sizes = (0..n)
        .map(|i| {
            let fi = FileIndex::new(u32::try_from(i).unwrap_or(u32::MAX));
            Ok(storage.file_info(fi)?.map_or((0, 0), |f| (f.size, f.mtime)))
        })
        .collect::<Result<_, Error>>()?;
    Ok(())
}

/// Checks resume data against the torrent and the files on disk, and returns the
/// pieces it vouches for. On `Err` (the manual's `fastresume_rejected_alert`) the caller
/// falls back to [`crate::check_files`].
///
/// Checks: the info-hash; one `pieces` entry per piece; with `file sizes`, each file's
/// size and that it was not modified after the data was saved; and always, that every
/// file holding a piece we claim exists and is long enough for it.
///
/// # Errors
/// The first [`ResumeError`] found.
pub fn verify_resume<S: Storage + ?Sized>(
    data: &ResumeData,
    info: &TorrentInfo,
    storage: &S,
) -> Result<Bitfield, ResumeError> {
    let ih = info.info_hash();
    let v1_ok = data.info_hash.is_some() && data.info_hash == ih.v1_hash();
    let v2_ok = data.info_hash2.is_some() && data.info_hash2 == ih.v2_hash();
    let v1_bad = data.info_hash.is_some() && ih.has_v1() && !v1_ok;
    let v2_bad = data.info_hash2.is_some() && ih.has_v2() && !v2_ok;
    if v1_bad || v2_bad || !(v1_ok || v2_ok) {
        return Err(ResumeError::MismatchingInfoHash);
    }
    let fs = storage.files();
    let n = fs.num_pieces();
    if data.pieces.is_empty() {
        return Ok(Bitfield::new(n as usize));
    }
    if data.pieces.len() != n as usize {
        return Err(ResumeError::PieceCount {
            got: data.pieces.len(),
            expected: n,
        });
    }
    if data.unfinished.iter().any(|u| u.piece.get() >= n) {
        return Err(ResumeError::InvalidField("unfinished"));
    }
    if !data.file_sizes.is_empty() && data.file_sizes.len() != fs.num_files() {
        return Err(ResumeError::FileCount {
            field: "file sizes",
            got: data.file_sizes.len(),
            expected: fs.num_files(),
        });
    }
    let piece_len = u64::from(fs.piece_length());
    for (i, f) in fs.files().iter().enumerate() {
        if f.is_pad() || f.size == 0 {
            continue;
        }
        let file = FileIndex::new(u32::try_from(i).unwrap_or(u32::MAX));
        // The end (in the file) of the last byte a claimed piece puts in it.
        let range = fs.file_piece_range(file);
        let needed = range.rev().find(|&p| data.pieces.get(p as usize)).map(|p| {
            let piece_end = (u64::from(p) + 1) * piece_len;
            piece_end.min(f.offset + f.size) - f.offset
        });
        let recorded = data.file_sizes.get(i).copied();
        if needed.is_none() && recorded.is_none_or(|(s, _)| s == 0) {
            continue;
        }
        let Some(disk) = storage
            .file_info(file)
            .map_err(|e| ResumeError::Storage(Box::new(e)))?
        else {
            if needed.is_some() {
                return Err(ResumeError::MissingFile { file });
            }
            continue;
        };
        if let Some((size, mtime)) = recorded {
            if size != 0 && size != disk.size {
                return Err(ResumeError::FileChanged {
                    file,
                    reason: "size differs from the resume data",
                });
            }
            if mtime != 0 && disk.mtime > mtime {
                return Err(ResumeError::FileChanged {
                    file,
                    reason: "modified after the resume data was saved",
                });
            }
        }
        if needed.is_some_and(|need| disk.size < need) {
            return Err(ResumeError::FileChanged {
                file,
                reason: "shorter than the pieces it holds",
            });
        }
    }
    Ok(data.pieces.clone())
}
