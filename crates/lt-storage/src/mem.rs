//! [`MemStorage`]: a torrent's bytes in memory.

use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};

use lt_core::{FileIndex, PieceIndex};
use lt_metainfo::FileStorage;

use crate::storage::{Slices, check_block, split_user_path};
use crate::{Error, FileInfo, MoveFlags, Storage};

/// A storage that keeps the torrent's bytes in memory, for tests, simulations and users who
/// stream to memory. Pad bytes are stored as zeros and reads of them return zeros.
///
/// Memory is allocated once, for the whole torrent, when it is created.
#[derive(Debug)]
pub struct MemStorage {
    files: FileStorage,
    data: RwLock<Vec<u8>>,
}

impl MemStorage {
    /// An all-zero storage for the layout.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] when the torrent does not fit in memory's address space.
    pub fn new(files: FileStorage) -> Result<Self, Error> {
        let len = usize::try_from(files.total_size())
            .map_err(|_| Error::LimitExceeded("torrent larger than the address space"))?;
        Ok(Self {
            files,
            data: RwLock::new(vec![0; len]),
        })
    }

    /// A storage holding `data` (the torrent's byte stream).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the length is not the torrent's total size.
    pub fn with_data(files: FileStorage, data: Vec<u8>) -> Result<Self, Error> {
        if data.len() as u64 != files.total_size() {
            return Err(Error::InvalidArgument("data length is not the total size"));
        }
        Ok(Self {
            files,
            data: RwLock::new(data),
        })
    }

    /// A copy of the whole byte stream.
    #[must_use]
    pub fn to_vec(&self) -> Vec<u8> {
        self.data
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn range(&self, piece: PieceIndex, offset: u32, len: usize) -> Result<usize, Error> {
        check_block(&self.files, piece, offset, len)?;
        let start =
            u64::from(piece.get()) * u64::from(self.files.piece_length()) + u64::from(offset);
        usize::try_from(start).map_err(|_| Error::LimitExceeded("offset beyond the address space"))
    }
}

impl Storage for MemStorage {
    fn files(&self) -> &FileStorage {
        &self.files
    }

    fn read(&self, piece: PieceIndex, offset: u32, buf: &mut [u8]) -> Result<(), Error> {
        let start = self.range(piece, offset, buf.len())?;
        let data = self.data.read().unwrap_or_else(PoisonError::into_inner);
        // In range: check_block bounded the block by the piece, and the piece by the total size.
        buf.copy_from_slice(&data[start..start + buf.len()]);
        Ok(())
    }

    fn write(&self, piece: PieceIndex, offset: u32, bufs: &[&[u8]]) -> Result<(), Error> {
        let len = bufs.iter().map(|b| b.len()).sum();
        let mut pos = self.range(piece, offset, len)?;
        let mut data = self.data.write().unwrap_or_else(PoisonError::into_inner);
        for b in bufs {
            data[pos..pos + b.len()].copy_from_slice(b);
            pos += b.len();
        }
        // Pad files stay zero (BEP 47).
        let mut at = pos - len;
        for (i, _, n) in Slices::new(&self.files, piece, offset, len) {
            if self.files.files()[i].is_pad() {
                data[at..at + n].fill(0);
            }
            at += n;
        }
        Ok(())
    }

    fn has_any_file(&self) -> Result<bool, Error> {
        Ok(true)
    }

    fn file_info(&self, file: FileIndex) -> Result<Option<FileInfo>, Error> {
        let f = self.files.file(file).ok_or(Error::FileOutOfRange(file))?;
        Ok(Some(FileInfo {
            size: f.size,
            mtime: 0,
        }))
    }

    fn move_storage(&mut self, save_path: &Path, _flags: MoveFlags) -> Result<PathBuf, Error> {
        Ok(save_path.to_path_buf())
    }

    fn rename_file(&mut self, file: FileIndex, new_path: &str) -> Result<(), Error> {
        split_user_path(new_path)?;
        self.files
            .rename_file(file, new_path)
            .map_err(|_| Error::FileOutOfRange(file))
    }

    fn delete_files(&mut self) -> Result<(), Error> {
        self.data
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .fill(0);
        Ok(())
    }
}
