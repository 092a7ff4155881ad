//! The files of a torrent laid end to end, and the mapping between pieces and files.
//!
//! Invariants (checked when a [`FileStorage`] is built):
//! - `files[i].offset == sum(files[..i].size)` and `total_size == sum(size)`;
//! - `num_pieces == ceil(total_size / piece_length)`, all below the load limits;
//! - every path component is sanitised (see [`crate::sanitize_path_component`]).

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use lt_core::{FileIndex, PieceIndex, Sha256Hash};

use crate::Error;
use crate::file_path::{FilePath, PathInterner};

/// BEP 47 file attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FileAttr {
    /// `p`: a pad file, all zeros, never written to disk.
    pub pad: bool,
    /// `x`: executable.
    pub executable: bool,
    /// `h`: hidden.
    pub hidden: bool,
    /// `l`: a symbolic link (see [`FileEntry::symlink_target`]).
    pub symlink: bool,
}

impl FileAttr {
    /// Parses an `attr` string; unknown letters are ignored (BEP 47).
    #[must_use]
    pub fn parse(s: &[u8]) -> Self {
        Self {
            pad: s.contains(&b'p'),
            executable: s.contains(&b'x'),
            hidden: s.contains(&b'h'),
            symlink: s.contains(&b'l'),
        }
    }

    /// The `attr` string, empty when no attribute is set.
    #[must_use]
    pub fn to_attr_string(&self) -> String {
        let mut s = String::new();
        for (set, c) in [
            (self.executable, 'x'),
            (self.hidden, 'h'),
            (self.symlink, 'l'),
            (self.pad, 'p'),
        ] {
            if set {
                s.push(c);
            }
        }
        s
    }

    /// Whether any attribute is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One file of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Sanitised path components relative to the save directory; for a multi-file torrent
    /// the first component is the torrent's name. Directories are shared between files.
    pub path: FilePath,
    /// Size in bytes.
    pub size: u64,
    /// Offset of the file's first byte in the torrent's byte stream.
    pub offset: u64,
    /// BEP 47 attributes.
    pub attr: FileAttr,
    /// For symlinks, the sanitised target path relative to the save directory.
    pub symlink_target: Option<FilePath>,
    /// Modification time (seconds since the Unix epoch), when the torrent has one.
    pub mtime: Option<i64>,
    /// The v2 `pieces root` of the file (BEP 52), for v2 and hybrid torrents.
    pub pieces_root: Option<Sha256Hash>,
}

impl FileEntry {
    /// The path as a relative [`PathBuf`] (never absolute, never containing `..`).
    #[must_use]
    pub fn path_buf(&self) -> PathBuf {
        self.path.to_path_buf()
    }

    /// The path joined with `/`.
    #[must_use]
    pub fn path_string(&self) -> String {
        self.path.to_string()
    }

    /// Whether this is a pad file.
    #[must_use]
    pub fn is_pad(&self) -> bool {
        self.attr.pad
    }

    /// The byte range of the file in the torrent's byte stream.
    #[must_use]
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset + self.size
    }
}

/// A part of a file that a piece range covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSlice {
    /// Which file.
    pub file: FileIndex,
    /// Offset within the file.
    pub offset: u64,
    /// Number of bytes.
    pub size: u64,
}

/// A range inside one piece (the manual's `peer_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRequest {
    /// The piece.
    pub piece: PieceIndex,
    /// Offset within the piece.
    pub start: u32,
    /// Number of bytes (at most to the end of the piece).
    pub length: u32,
}

/// The file layout of a torrent (the manual's `file_storage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStorage {
    name: String,
    piece_length: u32,
    total_size: u64,
    num_pieces: u32,
    /// Shared: a storage and its torrent's metadata each keep a layout, and a session may
    /// keep ten thousand of each. A change (`set_name`, `remap_files`) copies.
    files: Arc<[FileEntry]>,
}

impl FileStorage {
    /// Builds a layout from files in stream order; offsets are assigned here.
    ///
    /// # Errors
    /// [`Error::InvalidPieceLength`] for a zero piece length, [`Error::LimitExceeded`] when
    /// sizes overflow or the piece count does not fit 32 bits.
    pub fn new(
        name: String,
        piece_length: u32,
        files: impl IntoIterator<Item = FileEntry>,
    ) -> Result<Self, Error> {
        if piece_length == 0 {
            return Err(Error::InvalidPieceLength(0));
        }
        let mut total: u64 = 0;
        let files: Vec<FileEntry> = files
            .into_iter()
            .map(|mut f| {
                f.offset = total;
                total = total
                    .checked_add(f.size)
                    .filter(|t| i64::try_from(*t).is_ok())
                    .ok_or(Error::LimitExceeded("total size overflows"))?;
                Ok(f)
            })
            .collect::<Result<_, Error>>()?;
        let num_pieces = u32::try_from(total.div_ceil(u64::from(piece_length)))
            .map_err(|_| Error::LimitExceeded("piece count overflows"))?;
        Ok(Self {
            name,
            piece_length,
            total_size: total,
            num_pieces,
            files: files.into(),
        })
    }

    /// The torrent's name (the file name of a single-file torrent, else the directory).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes per piece (all pieces but the last).
    #[must_use]
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// Number of pieces.
    #[must_use]
    pub fn num_pieces(&self) -> u32 {
        self.num_pieces
    }

    /// Sum of all file sizes, pad files included.
    #[must_use]
    pub fn total_size(&self) -> u64 {
        self.total_size
    }

    /// The files in stream order.
    #[must_use]
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// Number of files, pad files included.
    #[must_use]
    pub fn num_files(&self) -> usize {
        self.files.len()
    }

    /// One file, if the index is in range.
    #[must_use]
    pub fn file(&self, index: FileIndex) -> Option<&FileEntry> {
        self.files.get(index.as_usize())
    }

    /// The size of a piece: `piece_length` except for the last; 0 out of range.
    #[must_use]
    pub fn piece_size(&self, piece: PieceIndex) -> u32 {
        let p = piece.get();
        if p >= self.num_pieces {
            return 0;
        }
        if p + 1 < self.num_pieces {
            return self.piece_length;
        }
        let rest = self.total_size - u64::from(p) * u64::from(self.piece_length);
        // The last piece is at most one piece long.
        u32::try_from(rest).unwrap_or(self.piece_length)
    }

    /// The size of the last piece (0 for an empty torrent).
    #[must_use]
    pub fn last_piece_size(&self) -> u32 {
        self.num_pieces
            .checked_sub(1)
            .map_or(0, |last| self.piece_size(PieceIndex::new(last)))
    }

    /// The parts of files that `size` bytes at `offset` inside `piece` cover, in order.
    /// Zero-size files are skipped; a range past the end of the torrent is cut at the end.
    #[must_use]
    pub fn map_block(&self, piece: PieceIndex, offset: u32, size: u32) -> Vec<FileSlice> {
        let start = u64::from(piece.get()) * u64::from(self.piece_length) + u64::from(offset);
        let end = start.saturating_add(u64::from(size)).min(self.total_size);
        let mut out = Vec::new();
        if start >= end {
            return out;
        }
        let mut i = self.file_index_at(start);
        let mut pos = start;
        while pos < end {
            let Some(f) = self.files.get(i) else { break };
            let file_end = f.offset + f.size;
            if file_end > pos {
                let take = file_end.min(end) - pos;
                out.push(FileSlice {
                    file: FileIndex::new(u32::try_from(i).unwrap_or(u32::MAX)),
                    offset: pos - f.offset,
                    size: take,
                });
                pos += take;
            }
            i += 1;
        }
        out
    }

    /// Where `size` bytes at `offset` of a file start in the piece space, with the length
    /// cut at the end of that piece. `None` when the file or offset is out of range.
    #[must_use]
    pub fn map_file(&self, file: FileIndex, offset: u64, size: u32) -> Option<PeerRequest> {
        let f = self.file(file)?;
        if offset > f.size {
            return None;
        }
        let abs = f.offset + offset;
        let piece_len = u64::from(self.piece_length);
        let piece = u32::try_from(abs / piece_len).ok()?;
        let start = u32::try_from(abs % piece_len).ok()?;
        let length = size.min(self.piece_length - start);
        Some(PeerRequest {
            piece: PieceIndex::new(piece),
            start,
            length,
        })
    }

    /// The pieces that hold bytes of a file (empty for zero-size files).
    #[must_use]
    pub fn file_piece_range(&self, file: FileIndex) -> Range<u32> {
        let Some(f) = self.file(file) else {
            return 0..0;
        };
        if f.size == 0 {
            return 0..0;
        }
        let piece_len = u64::from(self.piece_length);
        let first = f.offset / piece_len;
        let last = (f.offset + f.size - 1) / piece_len;
        u32::try_from(first).unwrap_or(u32::MAX)..u32::try_from(last + 1).unwrap_or(u32::MAX)
    }

    /// The index of the file holding byte `offset` of the stream (skipping zero-size files);
    /// `num_files()` when past the end.
    #[must_use]
    pub fn file_index_at(&self, offset: u64) -> usize {
        // First file whose end is beyond the offset.
        self.files.partition_point(|f| f.offset + f.size <= offset)
    }

    /// The files, to change: copied first while another layout shares them (once; the
    /// copy is this layout's own).
    fn files_mut(&mut self) -> &mut [FileEntry] {
        if Arc::get_mut(&mut self.files).is_none() {
            self.files = self.files.to_vec().into();
        }
        Arc::get_mut(&mut self.files).map_or(&mut [], |f| f)
    }

    /// Renames a file (the manual's `rename_file`); the new path is sanitised.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the index is out of range.
    pub fn rename_file(&mut self, file: FileIndex, new_path: &str) -> Result<(), Error> {
        let entry = self
            .files_mut()
            .get_mut(file.as_usize())
            .ok_or(Error::InvalidArgument("file index out of range"))?;
        entry.path = FilePath::new(crate::sanitize::sanitize_path(
            new_path.split(['/', '\\']).map(str::as_bytes),
        ));
        Ok(())
    }

    /// Replaces the file list with another of the same total size (the manual's
    /// `remap_files`): pieces then map onto the new files.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the total size differs.
    pub fn remap_files(&mut self, files: impl IntoIterator<Item = FileEntry>) -> Result<(), Error> {
        let remapped = Self::new(self.name.clone(), self.piece_length, files)?;
        if remapped.total_size != self.total_size {
            return Err(Error::InvalidArgument(
                "remapped files must keep the total size",
            ));
        }
        *self = remapped;
        Ok(())
    }

    /// Sets the torrent's name, replacing the first component of every multi-file path.
    pub fn set_name(&mut self, name: &str) {
        let name = crate::sanitize_path_component(name.as_bytes()).unwrap_or_else(|| "_".into());
        let multi = self.files.iter().any(|f| f.path.len() > 1);
        if multi {
            // Rebuild the paths under the new name, still sharing their directories.
            let mut interner = PathInterner::default();
            for f in self.files_mut() {
                let rest: Vec<String> = f.path.iter().skip(1).cloned().collect();
                f.path = interner.path(None, std::iter::once(name.clone()).chain(rest));
            }
        } else if let [f] = self.files_mut() {
            f.path = FilePath::new([name.clone()]);
        }
        self.name = name;
    }
}

/// A pad file of `size` bytes, named as libtorrent names them (`.pad/<size>`).
pub(crate) fn pad_file(size: u64) -> FileEntry {
    FileEntry {
        path: FilePath::new([".pad".to_owned(), size.to_string()]),
        size,
        offset: 0,
        attr: FileAttr {
            pad: true,
            ..FileAttr::default()
        },
        symlink_target: None,
        mtime: None,
        pieces_root: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> FileEntry {
        FileEntry {
            path: FilePath::new(["t", name]),
            size,
            offset: 0,
            attr: FileAttr::default(),
            symlink_target: None,
            mtime: None,
            pieces_root: None,
        }
    }

    fn storage() -> FileStorage {
        // 10 + 0 + 25 + 5 = 40 bytes, pieces of 16: sizes 16, 16, 8.
        FileStorage::new(
            "t".into(),
            16,
            [file("a", 10), file("empty", 0), file("b", 25), file("c", 5)],
        )
        .unwrap()
    }

    #[test]
    fn layout() {
        let fs = storage();
        assert_eq!(fs.total_size(), 40);
        assert_eq!(fs.num_pieces(), 3);
        assert_eq!(fs.piece_size(PieceIndex::new(1)), 16);
        assert_eq!(fs.last_piece_size(), 8);
        assert_eq!(fs.piece_size(PieceIndex::new(3)), 0);
        let offsets: Vec<u64> = fs.files().iter().map(|f| f.offset).collect();
        assert_eq!(offsets, [0, 10, 10, 35]);
    }

    #[test]
    fn map_block_spans_files() {
        let fs = storage();
        let slices = fs.map_block(PieceIndex::new(0), 4, 12);
        assert_eq!(
            slices,
            [
                FileSlice {
                    file: FileIndex::new(0),
                    offset: 4,
                    size: 6
                },
                FileSlice {
                    file: FileIndex::new(2),
                    offset: 0,
                    size: 6
                },
            ]
        );
        let tail = fs.map_block(PieceIndex::new(2), 0, 16);
        assert_eq!(
            tail,
            [
                FileSlice {
                    file: FileIndex::new(2),
                    offset: 22,
                    size: 3
                },
                FileSlice {
                    file: FileIndex::new(3),
                    offset: 0,
                    size: 5
                },
            ]
        );
        assert!(fs.map_block(PieceIndex::new(9), 0, 16).is_empty());
    }

    #[test]
    fn map_file_and_piece_ranges() {
        let fs = storage();
        assert_eq!(
            fs.map_file(FileIndex::new(2), 10, 100),
            Some(PeerRequest {
                piece: PieceIndex::new(1),
                start: 4,
                length: 12
            })
        );
        assert_eq!(fs.map_file(FileIndex::new(9), 0, 1), None);
        assert_eq!(fs.file_piece_range(FileIndex::new(2)), 0..3);
        assert_eq!(fs.file_piece_range(FileIndex::new(1)), 0..0);
        assert_eq!(fs.file_piece_range(FileIndex::new(3)), 2..3);
    }

    #[test]
    fn rename_and_remap() {
        let mut fs = storage();
        fs.rename_file(FileIndex::new(0), "../../x/y").unwrap();
        assert_eq!(fs.files()[0].path, ["x", "y"]);
        assert!(fs.remap_files([file("one", 39)]).is_err());
        fs.remap_files([file("one", 40)]).unwrap();
        assert_eq!(fs.num_files(), 1);
        fs.set_name("renamed");
        assert_eq!(fs.files()[0].path, ["renamed", "one"]);
    }

    /// A copy shares the file list until one of them changes it; the other keeps its own.
    #[test]
    fn copies_share_files_until_changed() {
        let original = storage();
        let mut copy = original.clone();
        assert!(std::ptr::eq(original.files(), copy.files()));
        copy.rename_file(FileIndex::new(0), "elsewhere").unwrap();
        assert_eq!(copy.files()[0].path, ["elsewhere"]);
        assert_ne!(original.files()[0].path, ["elsewhere"]);
        let before = copy.files().as_ptr();
        copy.rename_file(FileIndex::new(1), "again").unwrap();
        assert_eq!(
            copy.files().as_ptr(),
            before,
            "its own list is changed in place"
        );
        copy.set_name("n");
        assert_eq!(original, storage());
    }

    #[test]
    fn attributes() {
        let a = FileAttr::parse(b"xhzp");
        assert!(a.pad && a.executable && a.hidden && !a.symlink);
        assert_eq!(FileAttr::parse(a.to_attr_string().as_bytes()), a);
        assert!(FileAttr::parse(b"").is_empty());
    }
}
