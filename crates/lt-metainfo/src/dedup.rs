//! Files of a torrent that would share one file on disk, renamed apart.
//!
//! Two entries of a torrent can name the same path: duplicate keys, names that sanitise to
//! the same string (`a/b` and `a_b`), names that differ only in case (one file on Windows
//! and macOS), or a file named like a directory of another file. Writing both would make
//! two file indices share one disk file. Like libtorrent's `resolve_duplicate_filenames`,
//! every later duplicate is renamed `name.1.ext`, `name.2.ext`, ... Pad files are never
//! written and are left alone.
//!
//! Directories are compared through numbers given to each distinct directory (compared
//! without case), each computed once, so the work is linear in the number of files and
//! directories, and a run of duplicates of one name does not retry the same suffixes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::FileEntry;
use crate::file_path::Dir;

/// Renames every file whose path (compared without case) is taken by an earlier file or by
/// a directory.
pub(crate) fn resolve_duplicate_paths(files: &mut [FileEntry]) {
    let mut dirs = DirIds::default();
    let ids: Vec<u32> = files
        .iter()
        .map(|f| if f.is_pad() { 0 } else { dirs.id(f.path.dir()) })
        .collect();
    let mut taken: HashSet<(u32, String)> = HashSet::new();
    // Next suffix to try per duplicated name, so n copies cost O(n), not O(n^2).
    let mut next: HashMap<(u32, String), u32> = HashMap::new();
    for (f, &dir) in files.iter_mut().zip(&ids) {
        if f.is_pad() {
            continue;
        }
        let key = (dir, f.path.file_name().to_lowercase());
        if !dirs.names.contains_key(&key) && taken.insert(key.clone()) {
            continue;
        }
        let name = f.path.file_name();
        let (stem, ext) = match name.rfind('.') {
            Some(i) if i > 0 => name.split_at(i),
            _ => (name, ""),
        };
        let mut n = next.get(&key).copied().unwrap_or(1);
        let renamed = loop {
            let candidate = format!("{stem}.{n}{ext}");
            n = n.saturating_add(1);
            let k = (dir, candidate.to_lowercase());
            if !dirs.names.contains_key(&k) && taken.insert(k) {
                break candidate;
            }
        };
        next.insert(key, n);
        f.path = f.path.with_name(renamed);
    }
}

/// Numbers for directories: equal paths (without case) get equal numbers; 0 is the top.
#[derive(Default)]
struct DirIds {
    /// (parent's number, lower-case name) to the directory's number.
    names: HashMap<(u32, String), u32>,
    /// Numbers already given to directory nodes, by address (the nodes outlive this).
    by_node: HashMap<usize, u32>,
}

impl DirIds {
    fn id(&mut self, dir: Option<&Arc<Dir>>) -> u32 {
        // Climb to the first numbered ancestor, then number the way back down.
        let mut chain = Vec::new();
        let mut d = dir;
        let mut id = 0;
        while let Some(node) = d {
            if let Some(&known) = self.by_node.get(&(Arc::as_ptr(node) as usize)) {
                id = known;
                break;
            }
            chain.push(node);
            d = node.parent();
        }
        for node in chain.into_iter().rev() {
            let fresh = u32::try_from(self.names.len() + 1).unwrap_or(u32::MAX);
            id = *self
                .names
                .entry((id, node.name().to_lowercase()))
                .or_insert(fresh);
            self.by_node.insert(Arc::as_ptr(node) as usize, id);
        }
        id
    }
}
