//! The [`Storage`] trait (the manual's `storage_interface`).

use std::path::{Path, PathBuf};

use lt_core::{FileIndex, PieceIndex, Sha1Hash, Sha1Hasher, Sha256Hash};
use lt_metainfo::FileStorage;

use crate::Error;

/// How [`Storage::move_storage`] treats files that already exist at the destination
/// (the manual's `move_flags_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MoveFlags {
    /// Replace any file at the destination (`always_replace_files`, the default).
    #[default]
    AlwaysReplaceFiles,
    /// Fail with [`Error::FileExists`] before moving anything if any destination file
    /// exists (`fail_if_exist`).
    FailIfExist,
    /// Keep files already at the destination and use them (`dont_replace`).
    DontReplace,
}

/// What the storage knows about one file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// Size in bytes.
    pub size: u64,
    /// Last modification, seconds since the Unix epoch (0 when unknown).
    pub mtime: i64,
}

/// Where a torrent's pieces live (the manual's `storage_interface`).
///
/// Offsets are *piece space*: a piece index and a byte offset inside that piece. The
/// implementation maps them onto files ([`FileStorage::map_block`]). Every method is
/// synchronous and may block on disk I/O: call it from a disk thread ([`crate::DiskIo`])
/// or [`crate::check_files`], never from a network thread.
///
/// Reads and writes take `&self` so one storage can serve several disk threads at once;
/// operations that change where files are (`move_storage`, `rename_file`, `delete_files`)
/// take `&mut self`.
pub trait Storage: Send + Sync {
    /// The file layout this storage maps pieces onto.
    fn files(&self) -> &FileStorage;

    /// Creates the directories and (with full allocation) the files (the manual's
    /// `initialize`). Called once before the first write.
    ///
    /// # Errors
    /// Any disk error.
    fn initialize(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Fills `buf` with the bytes at `offset` of `piece`. Pad files read as zeros.
    ///
    /// # Errors
    /// [`Error::PieceOutOfRange`], [`Error::BlockOutOfRange`], or a disk error (a missing
    /// file is an [`Error::Io`] of kind `NotFound`, a short one of kind `UnexpectedEof`).
    fn read(&self, piece: PieceIndex, offset: u32, buf: &mut [u8]) -> Result<(), Error>;

    /// Writes the buffers, one after the other, at `offset` of `piece` (the manual's
    /// `writev`): contiguous blocks go down in one call. Bytes of pad files are dropped.
    ///
    /// # Errors
    /// [`Error::PieceOutOfRange`], [`Error::BlockOutOfRange`], or a disk error.
    fn write(&self, piece: PieceIndex, offset: u32, bufs: &[&[u8]]) -> Result<(), Error>;

    /// Whether any file of the torrent exists (the manual's `has_any_file`): if none does
    /// there is nothing to check.
    ///
    /// # Errors
    /// A disk error other than "not found".
    fn has_any_file(&self) -> Result<bool, Error>;

    /// Size and modification time of a file, `None` when it does not exist.
    ///
    /// # Errors
    /// [`Error::FileOutOfRange`] or a disk error other than "not found".
    fn file_info(&self, file: FileIndex) -> Result<Option<FileInfo>, Error>;

    /// Closes every open file handle (the manual's `release_files`).
    ///
    /// # Errors
    /// A disk error while flushing.
    fn release_files(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Flushes written data to stable storage. Call it before saving resume data that
    /// must survive a power loss (a killed process loses nothing already written).
    ///
    /// # Errors
    /// A disk error.
    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Moves the files to a new save path (the manual's `move_storage`) and returns it.
    ///
    /// # Errors
    /// [`Error::FileExists`] with [`MoveFlags::FailIfExist`], or a disk error.
    fn move_storage(&mut self, save_path: &Path, flags: MoveFlags) -> Result<PathBuf, Error>;

    /// Renames one file (the manual's `rename_file`). `new_path` is relative to the save path,
    /// with `/` between components; `..`, absolute paths and empty components are refused.
    ///
    /// # Errors
    /// [`Error::InvalidPath`], [`Error::FileOutOfRange`] or a disk error.
    fn rename_file(&mut self, file: FileIndex, new_path: &str) -> Result<(), Error>;

    /// Sets a file's priority (0 to 7; the manual's `file_priority`). Storages with a part
    /// file keep the pieces of priority-0 files there and move them out when the priority
    /// rises; the default keeps every file where it is.
    ///
    /// # Errors
    /// [`Error::FileOutOfRange`] or a disk error.
    fn set_file_priority(&mut self, file: FileIndex, priority: u8) -> Result<(), Error> {
        let _ = (file, priority);
        Ok(())
    }

    /// Deletes the torrent's files and the directories they leave empty (the manual's
    /// `delete_files`).
    ///
    /// # Errors
    /// A disk error.
    fn delete_files(&mut self) -> Result<(), Error>;

    /// The SHA-1 of a whole piece (v1), read into `buf` (reused between calls).
    ///
    /// # Errors
    /// As [`Storage::read`].
    fn hash_piece(&self, piece: PieceIndex, buf: &mut Vec<u8>) -> Result<Sha1Hash, Error> {
        read_piece(self, piece, buf)?;
        let mut h = Sha1Hasher::new();
        h.update(buf);
        Ok(h.finalize())
    }

    /// The SHA-256 of each 16 KiB block of a piece (v2 merkle leaves), up to the end of the
    /// file the piece belongs to (pad bytes are not hashed).
    ///
    /// # Errors
    /// As [`Storage::read`].
    fn hash_piece_v2(
        &self,
        piece: PieceIndex,
        buf: &mut Vec<u8>,
    ) -> Result<Vec<Sha256Hash>, Error> {
        read_piece(self, piece, buf)?;
        let len = v2_piece_data_len(self.files(), piece);
        let data = buf.get(..len).unwrap_or(buf);
        Ok(data
            .chunks(lt_core::BLOCK_SIZE as usize)
            .map(Sha256Hash::digest)
            .collect())
    }
}

/// Reads a whole piece into `buf`, resizing it to the piece's size.
///
/// # Errors
/// As [`Storage::read`].
pub fn read_piece<S: Storage + ?Sized>(
    storage: &S,
    piece: PieceIndex,
    buf: &mut Vec<u8>,
) -> Result<(), Error> {
    let fs = storage.files();
    check_piece(fs, piece)?;
    let size = fs.piece_size(piece) as usize;
    buf.resize(size, 0);
    storage.read(piece, 0, buf)
}

/// Writes blocks of `piece` given as (offset in the piece, bytes) in offset order, each run
/// of contiguous blocks with one vectored [`Storage::write`].
///
/// # Errors
/// As [`Storage::write`]; blocks before the failing run are written.
pub fn write_blocks<S: Storage + ?Sized, B: AsRef<[u8]>>(
    storage: &S,
    piece: PieceIndex,
    blocks: &[(u32, B)],
) -> Result<(), Error> {
    let mut i = 0;
    while let Some((start, _)) = blocks.get(i) {
        let mut end = u64::from(*start);
        let mut run: Vec<&[u8]> = Vec::new();
        while let Some((off, data)) = blocks.get(i)
            && u64::from(*off) == end
        {
            run.push(data.as_ref());
            end += data.as_ref().len() as u64;
            i += 1;
        }
        storage.write(piece, *start, &run)?;
    }
    Ok(())
}

/// The number of bytes of `piece` that belong to its (v2-aligned) file, so the pad bytes at
/// its end are not hashed.
pub(crate) fn v2_piece_data_len(fs: &FileStorage, piece: PieceIndex) -> usize {
    let start = u64::from(piece.get()) * u64::from(fs.piece_length());
    let size = u64::from(fs.piece_size(piece));
    let i = fs.file_index_at(start);
    let Some(f) = fs.files().get(i) else {
        return 0;
    };
    if f.is_pad() {
        return 0;
    }
    let end = (f.offset + f.size).min(start + size);
    usize::try_from(end.saturating_sub(start)).unwrap_or(usize::MAX)
}

/// The parts of files a checked block covers, like [`FileStorage::map_block`] but without
/// allocating (this is on the write path of every block).
pub(crate) struct Slices<'a> {
    files: &'a [lt_metainfo::FileEntry],
    index: usize,
    pos: u64,
    end: u64,
}

impl<'a> Slices<'a> {
    /// Slices of `len` bytes at `offset` of `piece`; the block must have passed [`check_block`].
    pub(crate) fn new(fs: &'a FileStorage, piece: PieceIndex, offset: u32, len: usize) -> Self {
        let pos = u64::from(piece.get()) * u64::from(fs.piece_length()) + u64::from(offset);
        let end = (pos + len as u64).min(fs.total_size());
        Self {
            files: fs.files(),
            index: fs.file_index_at(pos),
            pos,
            end,
        }
    }
}

impl Iterator for Slices<'_> {
    /// (file index, offset in the file, length).
    type Item = (usize, u64, usize);

    fn next(&mut self) -> Option<Self::Item> {
        while self.pos < self.end {
            let i = self.index;
            let f = self.files.get(i)?;
            self.index += 1;
            let file_end = f.offset + f.size;
            if file_end > self.pos {
                let take = file_end.min(self.end) - self.pos;
                let at = self.pos - f.offset;
                self.pos += take;
                // take <= len, which is a usize.
                return Some((i, at, usize::try_from(take).unwrap_or(usize::MAX)));
            }
        }
        None
    }
}

/// Checks that `piece` exists.
pub(crate) fn check_piece(fs: &FileStorage, piece: PieceIndex) -> Result<(), Error> {
    if piece.get() >= fs.num_pieces() {
        return Err(Error::PieceOutOfRange {
            piece,
            num_pieces: fs.num_pieces(),
        });
    }
    Ok(())
}

/// Checks that `len` bytes at `offset` lie inside `piece`.
pub(crate) fn check_block(
    fs: &FileStorage,
    piece: PieceIndex,
    offset: u32,
    len: usize,
) -> Result<(), Error> {
    check_piece(fs, piece)?;
    let piece_size = fs.piece_size(piece);
    let end = u64::from(offset).checked_add(len as u64);
    if end.is_none_or(|e| e > u64::from(piece_size)) {
        return Err(Error::BlockOutOfRange {
            piece,
            offset,
            len,
            piece_size,
        });
    }
    Ok(())
}

/// Checks one path component taken from a [`FileStorage`] or given by the user (a rename,
/// the part file's name): it must be a plain name, never empty, `.`, `..`, absolute or
/// containing a separator or NUL, and it must be what lt-metainfo's sanitiser would keep
/// as it is: no `:` (a Windows drive such as `C:` would replace the save path when
/// pushed), no Windows device name (`CON`, `NUL.txt`, ...), no trailing dot or space, no
/// control character (issue 18, finding 6).
pub(crate) fn check_component(c: &str) -> Result<(), Error> {
    let bad = c.is_empty()
        || c == "."
        || c == ".."
        || c.contains(['/', '\\', '\0'])
        || Path::new(c).is_absolute()
        || Path::new(c).components().count() != 1
        || lt_metainfo::sanitize_path_component(c.as_bytes()).as_deref() != Some(c);
    if bad {
        return Err(Error::InvalidPath(c.to_owned()));
    }
    Ok(())
}

/// Joins checked components under `base`.
pub(crate) fn safe_join<'a>(
    base: &Path,
    components: impl IntoIterator<Item = &'a str>,
) -> Result<PathBuf, Error> {
    let mut p = base.to_path_buf();
    let mut any = false;
    for c in components {
        check_component(c)?;
        p.push(c);
        any = true;
    }
    if !any {
        return Err(Error::InvalidPath(String::new()));
    }
    Ok(p)
}

/// Splits a user-supplied relative path on `/` (and `\`), refusing unsafe components.
pub(crate) fn split_user_path(path: &str) -> Result<Vec<String>, Error> {
    let parts: Vec<String> = path.split(['/', '\\']).map(str::to_owned).collect();
    for c in &parts {
        check_component(c)?;
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_that_would_escape_or_clash_on_windows_are_refused() {
        for bad in [
            "C:", "c:x", "a:b", "CON", "nul.txt", "COM1", "name.", "name ", "a\u{1}b", "..", "",
            "a/b",
        ] {
            assert!(check_component(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a.txt", ".parts", "Con_", "con_.txt", "x y"] {
            assert!(check_component(good).is_ok(), "{good:?} refused");
        }
    }
    use lt_metainfo::{FileAttr, FileEntry};
    use quickcheck_macros::quickcheck;

    /// The allocation-free iterator agrees with `FileStorage::map_block` on odd layouts.
    #[quickcheck]
    fn slices_match_map_block(sizes: Vec<u8>, piece: u8, p: u16, off: u16, len: u16) -> bool {
        let files = sizes.iter().take(10).enumerate().map(|(i, &s)| FileEntry {
            path: vec![format!("f{i}")].into(),
            size: u64::from(s % 40),
            offset: 0,
            attr: FileAttr::default(),
            symlink_target: None,
            mtime: None,
            pieces_root: None,
        });
        let Ok(fs) = FileStorage::new("t".into(), u32::from(piece % 37) + 1, files) else {
            return true;
        };
        if fs.num_pieces() == 0 {
            return true;
        }
        let piece = PieceIndex::new(u32::from(p) % fs.num_pieces());
        let size = fs.piece_size(piece);
        let off = u32::from(off) % size;
        let len = (u32::from(len) % (size - off)) as usize + 1;
        let ours: Vec<(usize, u64, usize)> = Slices::new(&fs, piece, off, len).collect();
        let theirs: Vec<(usize, u64, usize)> = fs
            .map_block(piece, off, u32::try_from(len).unwrap())
            .iter()
            .map(|s| {
                (
                    s.file.as_usize(),
                    s.offset,
                    usize::try_from(s.size).unwrap(),
                )
            })
            .collect();
        ours == theirs && ours.iter().map(|s| s.2).sum::<usize>() == len
    }

    #[test]
    fn components() {
        for bad in ["", ".", "..", "a/b", "a\\b", "/etc", "a\0b"] {
            assert!(check_component(bad).is_err(), "{bad:?}");
        }
        // "a.." is refused: Windows strips trailing dots, so it would name "a".
        for good in ["a", "file.txt", "..a", " x"] {
            assert!(check_component(good).is_ok(), "{good:?}");
        }
        assert!(split_user_path("a/../b").is_err());
        assert!(split_user_path("/abs").is_err());
        assert_eq!(split_user_path("a/b").unwrap(), vec!["a", "b"]);
        assert!(safe_join(Path::new("/x"), ["a", ".."]).is_err());
        assert!(safe_join(Path::new("/x"), []).is_err());
    }
}
