//! File paths that share their directories.
//!
//! A torrent may hold millions of files in a deep tree. Giving each file its own copy of
//! every directory name above it lets a crafted v2 `file tree` (deep directories with long
//! names and many tiny files) cost a thousand times its size in memory (issue 18). Like
//! libtorrent's path table, a [`FilePath`] keeps only the file's own name and points at its
//! directory, a [`Dir`] node that every file and directory under it shares; each directory
//! name is stored once, so a parsed torrent's paths cost memory linear in its size.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

/// One directory: its name and its parent, shared by everything under it.
pub(crate) struct Dir {
    parent: Option<Arc<Self>>,
    name: String,
    /// Components from the top down to this one, inclusive.
    depth: usize,
    /// Bytes of the path down to this directory joined with `/`.
    joined_len: usize,
}

impl Dir {
    /// A directory `name` inside `parent` (at the top when `None`).
    pub(crate) fn child(parent: Option<&Arc<Self>>, name: String) -> Arc<Self> {
        let (depth, joined_len) = parent.map_or((1, name.len()), |p| {
            (p.depth + 1, p.joined_len.saturating_add(1 + name.len()))
        });
        Arc::new(Self {
            parent: parent.cloned(),
            name,
            depth,
            joined_len,
        })
    }

    /// The directory this one is in.
    pub(crate) fn parent(&self) -> Option<&Arc<Self>> {
        self.parent.as_ref()
    }

    /// This directory's own name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The directory names from the top down to this one.
    fn components(self: &Arc<Self>) -> Vec<&String> {
        let mut out = Vec::with_capacity(self.depth);
        let mut d = Some(self);
        while let Some(dir) = d {
            out.push(&dir.name);
            d = dir.parent.as_ref();
        }
        out.reverse();
        out
    }
}

impl Drop for Dir {
    // Deep chains are dropped in a loop, not by recursion, so no path can overflow the stack.
    fn drop(&mut self) {
        let mut next = self.parent.take();
        while let Some(p) = next {
            next = match Arc::try_unwrap(p) {
                Ok(mut only) => only.parent.take(),
                Err(_) => None,
            };
        }
    }
}

/// The path of a file of a torrent, relative to the save directory: a list of components,
/// of which all but the last (the file's name) are directories shared with the torrent's
/// other files. Cloning is cheap.
///
/// Iterating yields the components from the top down, as iterating a `Vec<String>` would.
///
/// ```
/// use lt_metainfo::FilePath;
/// let p = FilePath::new(["t", "dir", "a.txt"]);
/// assert_eq!(p.len(), 3);
/// assert_eq!(p.file_name(), "a.txt");
/// assert_eq!(p.to_string(), "t/dir/a.txt");
/// assert_eq!(p, ["t", "dir", "a.txt"]);
/// ```
#[derive(Clone, Default)]
pub struct FilePath {
    dir: Option<Arc<Dir>>,
    name: String,
}

impl FilePath {
    /// A path of these components, taken as they are (paths read from a torrent are
    /// sanitised when parsed; a storage checks every component again before using it).
    /// No component gives an empty path.
    #[must_use]
    pub fn new<I>(components: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let mut dir: Option<Arc<Dir>> = None;
        let mut name: Option<String> = None;
        for c in components {
            if let Some(prev) = name.replace(c.into()) {
                dir = Some(Dir::child(dir.as_ref(), prev));
            }
        }
        Self {
            dir,
            name: name.unwrap_or_default(),
        }
    }

    /// A file `name` in `dir` (at the top when `None`).
    pub(crate) fn in_dir(dir: Option<Arc<Dir>>, name: String) -> Self {
        Self { dir, name }
    }

    /// The directory the file is in, `None` at the top.
    pub(crate) fn dir(&self) -> Option<&Arc<Dir>> {
        self.dir.as_ref()
    }

    /// The same directory with another file name.
    pub(crate) fn with_name(&self, name: String) -> Self {
        Self {
            dir: self.dir.clone(),
            name,
        }
    }

    /// The components from the top down: directories, then the file's name.
    #[must_use]
    pub fn iter(&self) -> std::vec::IntoIter<&String> {
        let mut out = self.dir.as_ref().map(Dir::components).unwrap_or_default();
        if !self.is_empty() {
            out.push(&self.name);
        }
        out.into_iter()
    }

    /// Number of components.
    #[must_use]
    pub fn len(&self) -> usize {
        match &self.dir {
            Some(d) => d.depth + 1,
            None => usize::from(!self.name.is_empty()),
        }
    }

    /// Whether the path has no component.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.dir.is_none() && self.name.is_empty()
    }

    /// The last component: the file's own name.
    #[must_use]
    pub fn file_name(&self) -> &str {
        &self.name
    }

    /// The first component (for a multi-file torrent, the torrent's name).
    #[must_use]
    pub fn first(&self) -> Option<&str> {
        self.iter().next().map(String::as_str)
    }

    /// Bytes of the path joined with `/`, computed without building it.
    #[must_use]
    pub fn joined_len(&self) -> usize {
        match &self.dir {
            Some(d) => d.joined_len.saturating_add(1 + self.name.len()),
            None => self.name.len(),
        }
    }

    /// The path as a relative [`PathBuf`].
    #[must_use]
    pub fn to_path_buf(&self) -> PathBuf {
        self.iter().collect()
    }

    /// The components as owned strings.
    #[must_use]
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().cloned().collect()
    }
}

impl<'a> IntoIterator for &'a FilePath {
    type Item = &'a String;
    type IntoIter = std::vec::IntoIter<&'a String>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<S: Into<String>> FromIterator<S> for FilePath {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self::new(iter)
    }
}

impl From<Vec<String>> for FilePath {
    fn from(components: Vec<String>) -> Self {
        Self::new(components)
    }
}

impl PartialEq for FilePath {
    fn eq(&self, other: &Self) -> bool {
        if self.name != other.name || self.len() != other.len() {
            return false;
        }
        let (mut a, mut b) = (self.dir.as_ref(), other.dir.as_ref());
        loop {
            match (a, b) {
                (None, None) => return true,
                (Some(x), Some(y)) if Arc::ptr_eq(x, y) => return true,
                (Some(x), Some(y)) if x.name == y.name => {
                    a = x.parent.as_ref();
                    b = y.parent.as_ref();
                }
                _ => return false,
            }
        }
    }
}

impl Eq for FilePath {}

impl Hash for FilePath {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for c in self {
            c.hash(state);
        }
    }
}

impl<S: AsRef<str>> PartialEq<[S]> for FilePath {
    fn eq(&self, other: &[S]) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for FilePath {
    fn eq(&self, other: &[S; N]) -> bool {
        *self == other[..]
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for FilePath {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == other[..]
    }
}

impl fmt::Debug for FilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The components joined with `/`.
impl fmt::Display for FilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            f.write_str(c)?;
        }
        Ok(())
    }
}

/// Builds paths that share equal directories (v1 torrents spell out every file's
/// directories, and renaming the torrent rebuilds every path).
#[derive(Default)]
pub(crate) struct PathInterner {
    /// (parent directory's address, or 0 at the top; name) to the directory.
    dirs: HashMap<(usize, String), Arc<Dir>>,
}

impl PathInterner {
    /// The directory `name` in `parent`, shared with earlier calls.
    pub(crate) fn dir(&mut self, parent: Option<&Arc<Dir>>, name: String) -> Arc<Dir> {
        // Every interned directory stays alive in the map, so addresses are unique keys.
        let key = (parent.map_or(0, |p| Arc::as_ptr(p) as usize), name);
        if let Some(d) = self.dirs.get(&key) {
            return Arc::clone(d);
        }
        let d = Dir::child(parent, key.1.clone());
        self.dirs.insert(key, Arc::clone(&d));
        d
    }

    /// A path of these components under `base` (at the top when `None`), with shared
    /// directories; no component gives `base` itself as a file name, or an empty path.
    pub(crate) fn path<I>(&mut self, base: Option<&Arc<Dir>>, components: I) -> FilePath
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let mut dir: Option<Arc<Dir>> = base.cloned();
        let mut name: Option<String> = None;
        for c in components {
            if let Some(prev) = name.replace(c.into()) {
                dir = Some(self.dir(dir.as_ref(), prev));
            }
        }
        FilePath::in_dir(dir, name.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_directories_compare_and_print_like_lists() {
        let mut interner = PathInterner::default();
        let a = interner.path(None, ["t", "d", "a"]);
        let b = interner.path(None, ["t", "d", "b"]);
        assert!(Arc::ptr_eq(a.dir().unwrap(), b.dir().unwrap()));
        assert_eq!(a, FilePath::new(["t", "d", "a"]));
        assert_ne!(a, b);
        assert_ne!(a, FilePath::new(["t", "a"]));
        assert_eq!(format!("{a:?}"), r#"["t", "d", "a"]"#);
        assert_eq!(a.joined_len(), "t/d/a".len());
        assert_eq!(b.with_name("c".into()), ["t", "d", "c"]);
        let empty = FilePath::new(Vec::<String>::new());
        assert!(empty.is_empty());
        assert_eq!(empty.len(), 0);
        assert_eq!(empty.iter().count(), 0);
    }

    #[test]
    fn very_deep_paths_drop_without_recursion() {
        let deep = FilePath::new((0..200_000).map(|i| i.to_string()));
        assert_eq!(deep.len(), 200_000);
        drop(deep);
    }
}
