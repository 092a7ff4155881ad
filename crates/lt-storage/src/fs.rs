//! [`FsStorage`]: the default, file-backed storage.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use lt_core::{FileIndex, PieceIndex};
use lt_metainfo::{FileEntry, FileStorage};

use crate::pool::{FilePool, Key};
use crate::storage::{Slices, check_block, check_component, safe_join, split_user_path};
use crate::{Allocation, Error, FileInfo, MoveFlags, Operation, Storage};

/// Options of an [`FsStorage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsOptions {
    /// Allocation mode. Default: [`Allocation::Sparse`].
    pub allocation: Allocation,
    /// Most open file handles (the manual's `file_pool_size`). Default:
    /// [`DEFAULT_MAX_OPEN_FILES`](crate::DEFAULT_MAX_OPEN_FILES).
    pub max_open_files: usize,
    /// One priority per file, 0 to 7; empty means all 4 (the default). Files of priority 0
    /// are never created: the bytes of their pieces that fall into them go to the part file.
    pub file_priorities: Vec<u8>,
    /// File name of the part file inside the save path. Default: `.parts`; libtorrent names
    /// it `.<info-hash hex>.parts`.
    pub part_file_name: String,
}

impl Default for FsOptions {
    fn default() -> Self {
        Self {
            allocation: Allocation::Sparse,
            max_open_files: crate::DEFAULT_MAX_OPEN_FILES,
            file_priorities: Vec::new(),
            part_file_name: ".parts".to_owned(),
        }
    }
}

/// The default storage: the torrent's files under a save path, laid out as the torrent
/// names them.
///
/// - Pieces map across files ([`FileStorage::map_block`]); pad files are never written
///   and read as zeros.
/// - Reads and writes are positional (`pread`/`pwritev`), so disk threads share handles;
///   the contiguous buffers of one [`Storage::write`] go down in one `pwritev` per file.
/// - At most [`FsOptions::max_open_files`] handles are open (least recently used closed first).
/// - Every path is joined from the torrent's components under the save path; a component
///   that is empty, `.`, `..`, absolute or holds a separator is refused with
///   [`Error::InvalidPath`], so nothing is ever written outside the save path.
/// - Files of priority 0 are not created; the bytes of pieces that overlap them are kept in a
///   part file (libtorrent 2's behaviour) and moved into the file if its priority is raised.
///
/// The part file is a sparse file of the torrent's size, indexed by the byte offset in the
/// torrent; it needs a file system with sparse files to stay small.
#[derive(Debug)]
pub struct FsStorage {
    files: FileStorage,
    save_path: PathBuf,
    allocation: Allocation,
    priorities: Vec<u8>,
    in_part: Vec<bool>,
    part_name: String,
    pool: FilePool,
}

/// Size of the zero buffer used for full allocation and copying.
const CHUNK: usize = 1 << 20;

impl FsStorage {
    /// A storage for `files` under `save_path`. Nothing is created until
    /// [`initialize`](Storage::initialize) or the first write.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for an unsafe path component, [`Error::SavePathNotDirectory`]
    /// when the save path is a file, [`Error::InvalidArgument`] for a priority list of the
    /// wrong length.
    pub fn new(
        files: FileStorage,
        save_path: impl Into<PathBuf>,
        options: FsOptions,
    ) -> Result<Self, Error> {
        let save_path = save_path.into();
        check_save_path(&save_path)?;
        for f in files.files() {
            safe_join(&save_path, f.path.iter().map(String::as_str))?;
        }
        check_component(&options.part_file_name)?;
        let priorities = if options.file_priorities.is_empty() {
            vec![4; files.num_files()]
        } else if options.file_priorities.len() == files.num_files() {
            options.file_priorities
        } else {
            return Err(Error::InvalidArgument("one priority per file"));
        };
        let mut s = Self {
            in_part: vec![false; files.num_files()],
            files,
            save_path,
            allocation: options.allocation,
            priorities,
            part_name: options.part_file_name,
            pool: FilePool::new(
                options.max_open_files,
                options.allocation == Allocation::Full,
            ),
        };
        for i in 0..s.files.num_files() {
            s.in_part[i] = s.priorities[i] == 0 && !s.entry_path(i)?.exists();
        }
        Ok(s)
    }

    /// The directory the files are under.
    #[must_use]
    pub fn save_path(&self) -> &Path {
        &self.save_path
    }

    /// The full path of a file.
    ///
    /// # Errors
    /// [`Error::FileOutOfRange`].
    pub fn file_path(&self, file: FileIndex) -> Result<PathBuf, Error> {
        if file.as_usize() >= self.files.num_files() {
            return Err(Error::FileOutOfRange(file));
        }
        self.entry_path(file.as_usize())
    }

    /// The path of the part file.
    #[must_use]
    pub fn part_file_path(&self) -> PathBuf {
        self.save_path.join(&self.part_name)
    }

    /// A file's priority (0 = don't download).
    #[must_use]
    pub fn file_priority(&self, file: FileIndex) -> u8 {
        self.priorities.get(file.as_usize()).copied().unwrap_or(0)
    }

    /// The allocation mode.
    #[must_use]
    pub fn allocation(&self) -> Allocation {
        self.allocation
    }

    /// Number of file handles open now.
    #[must_use]
    pub fn open_files(&self) -> usize {
        self.pool.len()
    }

    /// Changes a file's priority. Raising it from 0 creates the file and moves the bytes
    /// already kept for it in the part file into it; lowering it to 0 keeps an existing file.
    ///
    /// # Errors
    /// [`Error::FileOutOfRange`] or a disk error.
    pub fn set_file_priority(&mut self, file: FileIndex, priority: u8) -> Result<(), Error> {
        let i = file.as_usize();
        if i >= self.files.num_files() {
            return Err(Error::FileOutOfRange(file));
        }
        self.priorities[i] = priority;
        if priority == 0 {
            self.in_part[i] = !self.entry_path(i)?.exists();
            return Ok(());
        }
        if !self.in_part[i] {
            return Ok(());
        }
        let f = self.files.files()[i].clone();
        let path = self.entry_path(i)?;
        let dst = self
            .pool
            .get(Key::File(file.get()), &path, true, Some(f.size))?;
        let part_path = self.part_file_path();
        match self.pool.get(Key::Part, &part_path, false, None) {
            Ok(part) => {
                let part_len = part
                    .metadata()
                    .map_err(|e| Error::io(Operation::Stat, &part_path, e))?
                    .len();
                let mut buf = vec![0u8; CHUNK];
                let mut pos = 0u64;
                let end = f.size.min(part_len.saturating_sub(f.offset));
                while pos < end {
                    let n = usize::try_from((end - pos).min(CHUNK as u64)).unwrap_or(CHUNK);
                    let chunk = &mut buf[..n];
                    part.read_exact_at(chunk, f.offset + pos)
                        .map_err(|e| Error::io(Operation::Read, &part_path, e))?;
                    dst.write_all_at(chunk, pos)
                        .map_err(|e| Error::io(Operation::Write, &path, e))?;
                    pos += n as u64;
                }
            }
            Err(e) if e.io_kind() == Some(io::ErrorKind::NotFound) => {}
            Err(e) => return Err(e),
        }
        self.in_part[i] = false;
        Ok(())
    }

    fn entry_path(&self, i: usize) -> Result<PathBuf, Error> {
        let f = &self.files.files()[i];
        safe_join(&self.save_path, f.path.iter().map(String::as_str))
    }

    /// The handle and path to use for file `i`, and the offset of its byte 0 in that handle.
    fn handle(
        &self,
        i: usize,
        f: &FileEntry,
        write: bool,
    ) -> Result<(std::sync::Arc<File>, PathBuf, u64), Error> {
        if self.in_part[i] {
            let path = self.part_file_path();
            let h = self.pool.get(Key::Part, &path, write, None)?;
            return Ok((h, path, f.offset));
        }
        let path = self.entry_path(i)?;
        let key = Key::File(u32::try_from(i).unwrap_or(u32::MAX));
        let h = self.pool.get(key, &path, write, write.then_some(f.size))?;
        Ok((h, path, 0))
    }

    fn wanted_files(&self) -> impl Iterator<Item = (usize, &FileEntry)> {
        self.files
            .files()
            .iter()
            .enumerate()
            .filter(|(i, f)| !f.is_pad() && !self.in_part[*i])
    }

    /// All files and directories the torrent has under the save path, directories deepest
    /// first. Linear in files and directories: a directory already seen ends the walk up
    /// from a file (its parents were seen with it).
    fn existing_paths(&self) -> Result<Existing, Error> {
        let mut files = Vec::new();
        let mut seen: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
        let mut dirs = Vec::new();
        for (i, f) in self.files.files().iter().enumerate() {
            if f.is_pad() {
                continue;
            }
            let p = self.entry_path(i)?;
            let mut d = p.parent();
            while let Some(dir) = d {
                if dir == self.save_path || !seen.insert(dir.to_path_buf()) {
                    break;
                }
                dirs.push(dir.to_path_buf());
                d = dir.parent();
            }
            if p.symlink_metadata().is_ok() {
                files.push((i, p));
            }
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        Ok((files, dirs))
    }
}

impl Storage for FsStorage {
    fn files(&self) -> &FileStorage {
        &self.files
    }

    fn set_file_priority(&mut self, file: FileIndex, priority: u8) -> Result<(), Error> {
        Self::set_file_priority(self, file, priority)
    }

    fn initialize(&self) -> Result<(), Error> {
        check_save_path(&self.save_path)?;
        std::fs::create_dir_all(&self.save_path)
            .map_err(|e| Error::io(Operation::Mkdir, &self.save_path, e))?;
        for (i, f) in self.wanted_files() {
            if self.priorities[i] == 0 {
                continue;
            }
            if f.size == 0 {
                self.handle(i, f, true)?;
                continue;
            }
            if self.allocation == Allocation::Full {
                let path = self.entry_path(i)?;
                let key = Key::File(u32::try_from(i).unwrap_or(u32::MAX));
                let h = self.pool.get(key, &path, true, None)?;
                let len = h
                    .metadata()
                    .map_err(|e| Error::io(Operation::Stat, &path, e))?
                    .len();
                if len < f.size {
                    allocate(&h, &path, len, f.size - len)?;
                }
            }
        }
        Ok(())
    }

    fn read(&self, piece: PieceIndex, offset: u32, buf: &mut [u8]) -> Result<(), Error> {
        check_block(&self.files, piece, offset, buf.len())?;
        let mut pos = 0usize;
        for (i, at, n) in Slices::new(&self.files, piece, offset, buf.len()) {
            let f = &self.files.files()[i];
            // The slices of a block add up to the block's length.
            let out = &mut buf[pos..pos + n];
            pos += n;
            if f.is_pad() {
                out.fill(0);
                continue;
            }
            let (h, path, base) = self.handle(i, f, false)?;
            h.read_exact_at(out, base + at)
                .map_err(|e| Error::io(Operation::Read, &path, e))?;
        }
        Ok(())
    }

    fn write(&self, piece: PieceIndex, offset: u32, bufs: &[&[u8]]) -> Result<(), Error> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        check_block(&self.files, piece, offset, len)?;
        let mut cur = Cursor {
            bufs,
            idx: 0,
            off: 0,
        };
        for (i, at, n) in Slices::new(&self.files, piece, offset, len) {
            let f = &self.files.files()[i];
            if f.is_pad() {
                cur.skip(n as u64);
                continue;
            }
            let (h, path, base) = self.handle(i, f, true)?;
            let mut at = base + at;
            let mut left = n as u64;
            while left > 0 {
                // Gather up to IOV_MAX_USED buffers and write them with one pwritev.
                let mut parts: [&[u8]; IOV_MAX_USED] = [&[]; IOV_MAX_USED];
                let mut k = 0;
                let mut total = 0u64;
                while k < IOV_MAX_USED && total < left {
                    let part = cur.take(left - total);
                    if part.is_empty() {
                        break;
                    }
                    parts[k] = part;
                    total += part.len() as u64;
                    k += 1;
                }
                if k == 0 {
                    break;
                }
                write_vectored_all_at(&h, &parts[..k], at)
                    .map_err(|e| Error::io(Operation::Write, &path, e))?;
                at += total;
                left -= total;
            }
        }
        Ok(())
    }

    fn has_any_file(&self) -> Result<bool, Error> {
        for (i, f) in self.files.files().iter().enumerate() {
            if !f.is_pad() && self.entry_path(i)?.exists() {
                return Ok(true);
            }
        }
        Ok(self.part_file_path().exists())
    }

    fn file_info(&self, file: FileIndex) -> Result<Option<FileInfo>, Error> {
        let mut path = self.file_path(file)?;
        // A file kept in the part file: its size is what the part file holds of it.
        let part = self.in_part[file.as_usize()].then(|| &self.files.files()[file.as_usize()]);
        if let Some(f) = part {
            path = self.part_file_path();
            return match std::fs::metadata(&path) {
                Ok(m) => Ok(Some(FileInfo {
                    size: m.len().saturating_sub(f.offset).min(f.size),
                    mtime: mtime(&m),
                })),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(Operation::Stat, path, e)),
            };
        }
        match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(FileInfo {
                size: m.len(),
                mtime: mtime(&m),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(Operation::Stat, path, e)),
        }
    }

    fn release_files(&self) -> Result<(), Error> {
        self.flush()?;
        self.pool.clear();
        Ok(())
    }

    fn flush(&self) -> Result<(), Error> {
        for h in self.pool.writable() {
            h.sync_data()
                .map_err(|e| Error::io(Operation::Sync, &self.save_path, e))?;
        }
        Ok(())
    }

    fn move_storage(&mut self, save_path: &Path, flags: MoveFlags) -> Result<PathBuf, Error> {
        check_save_path(save_path)?;
        self.release_files()?;
        let (files, dirs) = self.existing_paths()?;
        let mut moves: Vec<(PathBuf, PathBuf)> = Vec::new();
        for (i, src) in files {
            let f = &self.files.files()[i];
            let dst = safe_join(save_path, f.path.iter().map(String::as_str))?;
            moves.push((src, dst));
        }
        let part = self.part_file_path();
        if part.exists() {
            moves.push((part, save_path.join(&self.part_name)));
        }
        if flags == MoveFlags::FailIfExist
            && let Some((_, dst)) = moves.iter().find(|(_, d)| d.symlink_metadata().is_ok())
        {
            return Err(Error::FileExists(dst.clone()));
        }
        for (src, dst) in &moves {
            if src == dst {
                continue;
            }
            if flags == MoveFlags::DontReplace && dst.symlink_metadata().is_ok() {
                continue;
            }
            move_file(src, dst)?;
        }
        for d in dirs {
            // Only empty directories go; anything else the user put there stays.
            let _ = std::fs::remove_dir(&d);
        }
        self.save_path = save_path.to_path_buf();
        Ok(self.save_path.clone())
    }

    fn rename_file(&mut self, file: FileIndex, new_path: &str) -> Result<(), Error> {
        let i = file.as_usize();
        if i >= self.files.num_files() {
            return Err(Error::FileOutOfRange(file));
        }
        let parts = split_user_path(new_path)?;
        let old = self.entry_path(i)?;
        let new = safe_join(&self.save_path, parts.iter().map(String::as_str))?;
        self.pool.clear();
        if old.exists() && old != new {
            move_file(&old, &new)?;
        }
        self.files
            .rename_file(file, new_path)
            .map_err(|_| Error::FileOutOfRange(file))?;
        // lt-metainfo sanitises too; make sure the result is still what we checked.
        self.entry_path(i)?;
        Ok(())
    }

    fn delete_files(&mut self) -> Result<(), Error> {
        self.pool.clear();
        let (files, dirs) = self.existing_paths()?;
        for (_, p) in files {
            std::fs::remove_file(&p).map_err(|e| Error::io(Operation::Remove, &p, e))?;
        }
        let part = self.part_file_path();
        match std::fs::remove_file(&part) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(Error::io(Operation::Remove, &part, e));
            }
            _ => {}
        }
        for d in dirs {
            let _ = std::fs::remove_dir(&d);
        }
        for (i, f) in self.files.files().iter().enumerate() {
            self.in_part[i] = self.priorities[i] == 0 && !f.is_pad();
        }
        Ok(())
    }
}

/// The files of a torrent that exist (index, path) and its directories, deepest first.
type Existing = (Vec<(usize, PathBuf)>, Vec<PathBuf>);

/// Gathers bytes from a list of buffers, in order.
struct Cursor<'a> {
    bufs: &'a [&'a [u8]],
    idx: usize,
    off: usize,
}

impl<'a> Cursor<'a> {
    /// The next run of at most `max` bytes from the current buffer.
    fn take(&mut self, max: u64) -> &'a [u8] {
        while let Some(b) = self.bufs.get(self.idx) {
            if self.off < b.len() {
                let n = (b.len() - self.off).min(usize::try_from(max).unwrap_or(usize::MAX));
                let out = &b[self.off..self.off + n];
                self.off += n;
                return out;
            }
            self.idx += 1;
            self.off = 0;
        }
        &[]
    }

    fn skip(&mut self, mut n: u64) {
        while n > 0 {
            let got = self.take(n).len() as u64;
            if got == 0 {
                return;
            }
            n -= got;
        }
    }
}

/// Most buffers passed to one `pwritev` (far below any system's `IOV_MAX`).
const IOV_MAX_USED: usize = 64;

/// Writes all of `parts`, in order, at `at`: one `pwritev` when it writes everything, else
/// the rest with `pwrite`.
fn write_vectored_all_at(file: &File, parts: &[&[u8]], at: u64) -> io::Result<()> {
    let mut iov = [io::IoSlice::new(&[]); IOV_MAX_USED];
    let k = parts.len().min(IOV_MAX_USED);
    for (slot, p) in iov.iter_mut().zip(parts) {
        *slot = io::IoSlice::new(p);
    }
    let total: usize = parts[..k].iter().map(|p| p.len()).sum();
    let mut done = match rustix::io::pwritev(file, &iov[..k], at) {
        Ok(n) => n,
        Err(rustix::io::Errno::INTR) => 0,
        Err(e) => return Err(e.into()),
    };
    if done == total && k == parts.len() {
        return Ok(());
    }
    // A short write: finish part by part.
    let mut pos = at;
    for p in parts {
        let skip = done.min(p.len());
        done -= skip;
        pos += skip as u64;
        if skip < p.len() {
            file.write_all_at(&p[skip..], pos)?;
            pos += (p.len() - skip) as u64;
        }
    }
    Ok(())
}

/// Allocates `len` bytes at `offset` with `fallocate`, or writes zeros where the file
/// system cannot.
pub(crate) fn allocate(file: &File, path: &Path, offset: u64, len: u64) -> Result<(), Error> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), offset, len) {
        Ok(()) => return Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {}
        Err(e) => return Err(Error::io(Operation::Allocate, path, e.into())),
    }
    let zeros = vec![0u8; CHUNK];
    let mut pos = offset;
    let end = offset + len;
    while pos < end {
        let n = usize::try_from((end - pos).min(CHUNK as u64)).unwrap_or(CHUNK);
        file.write_all_at(&zeros[..n], pos)
            .map_err(|e| Error::io(Operation::Allocate, path, e))?;
        pos += n as u64;
    }
    Ok(())
}

/// Modification time in Unix seconds, 0 when unknown.
fn mtime(m: &std::fs::Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(0)
}

fn check_save_path(p: &Path) -> Result<(), Error> {
    match std::fs::metadata(p) {
        Ok(m) if !m.is_dir() => Err(Error::SavePathNotDirectory(p.to_path_buf())),
        _ => Ok(()),
    }
}

/// Renames `src` to `dst`, copying and deleting when they are on different file systems.
fn move_file(src: &Path, dst: &Path) -> Result<(), Error> {
    if let Some(dir) = dst.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(Operation::Mkdir, dir, e))?;
    }
    match std::fs::rename(src, dst) {
        Ok(()) => Ok(()),
        // EXDEV = 18: another file system.
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices || e.raw_os_error() == Some(18) => {
            std::fs::copy(src, dst).map_err(|e| Error::io(Operation::Copy, dst, e))?;
            std::fs::remove_file(src).map_err(|e| Error::io(Operation::Remove, src, e))
        }
        Err(e) => Err(Error::io(Operation::Rename, src, e)),
    }
}
