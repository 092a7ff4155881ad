//! A bounded pool of open file handles (the manual's `file_pool`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use crate::{Error, Operation};

/// Which file a handle belongs to: a torrent file, or the part file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    File(u32),
    Part,
}

#[derive(Debug)]
struct Entry {
    file: Arc<File>,
    writable: bool,
    last_use: u64,
}

#[derive(Debug, Default)]
struct Inner {
    open: HashMap<Key, Entry>,
    tick: u64,
}

/// At most `cap` open handles; the least recently used one is closed to make room. The lock
/// is held only to look up or insert a handle, never during a read or write.
#[derive(Debug)]
pub(crate) struct FilePool {
    cap: usize,
    /// Files opened for writing get their whole size allocated (`Allocation::Full`)
    /// instead of a sparse length.
    full: bool,
    inner: Mutex<Inner>,
}

impl FilePool {
    pub(crate) fn new(cap: usize, full: bool) -> Self {
        Self {
            cap: cap.max(1),
            full,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// A handle for `path`, opened read-only or read-write (creating the file and its
    /// directories). `size_hint`, for a newly written file, sets its length (sparse).
    pub(crate) fn get(
        &self,
        key: Key,
        path: &Path,
        write: bool,
        size_hint: Option<u64>,
    ) -> Result<Arc<File>, Error> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(e) = inner.open.get_mut(&key)
            && (e.writable || !write)
        {
            e.last_use = tick;
            return Ok(Arc::clone(&e.file));
        }
        let file = open(path, write, size_hint, self.full)?;
        if inner.open.len() >= self.cap && !inner.open.contains_key(&key) {
            let lru = inner
                .open
                .iter()
                .min_by_key(|(_, e)| e.last_use)
                .map(|(k, _)| *k);
            if let Some(k) = lru {
                inner.open.remove(&k);
            }
        }
        let file = Arc::new(file);
        inner.open.insert(
            key,
            Entry {
                file: Arc::clone(&file),
                writable: write,
                last_use: tick,
            },
        );
        Ok(file)
    }

    /// Closes every handle (in-flight operations keep theirs until they finish).
    pub(crate) fn clear(&self) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open
            .clear();
    }

    /// The handles currently open for writing, to flush them.
    pub(crate) fn writable(&self) -> Vec<Arc<File>> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open
            .values()
            .filter(|e| e.writable)
            .map(|e| Arc::clone(&e.file))
            .collect()
    }

    /// Number of open handles.
    pub(crate) fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open
            .len()
    }
}

fn open(path: &Path, write: bool, size_hint: Option<u64>, full: bool) -> Result<File, Error> {
    if !write {
        return File::open(path).map_err(|e| Error::io(Operation::Open, path, e));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(Operation::Mkdir, dir, e))?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(Operation::Open, path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(Operation::Stat, path, e))?;
    if !meta.is_file() {
        return Err(Error::io(
            Operation::Open,
            path,
            io::Error::new(io::ErrorKind::IsADirectory, "not a regular file"),
        ));
    }
    if let Some(size) = size_hint
        && meta.len() < size
    {
        if full {
            crate::fs::allocate(&file, path, meta.len(), size - meta.len())?;
        } else {
            file.set_len(size)
                .map_err(|e| Error::io(Operation::Allocate, path, e))?;
        }
    }
    Ok(file)
}
