//! Creating torrents from files (the manual's `create_torrent` and `make_torrent`).
//!
//! Every byte is read once, with `pread` into a per-worker buffer, and hashed for whichever
//! versions are asked for: SHA-1 per piece (v1) and SHA-256 per 16 KiB block (v2). Pieces are
//! handed out to one worker thread per core, so hashing uses all cores.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use lt_bencode::Value;
use lt_core::{PieceIndex, Sha1Hash, Sha256Hash};

use crate::file_storage::{FileAttr, FileEntry, FileStorage, pad_file};
use crate::merkle::{LEAF_SIZE, file_tree};
use crate::{Error, LoadLimits, TorrentInfo, WebSeedKind};

/// [`LEAF_SIZE`] as a slice length.
const LEAF_BYTES: usize = 16 * 1024;

/// Which metadata versions a created torrent carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TorrentVersion {
    /// BEP 3 only: SHA-1 piece hashes, no pad files.
    V1,
    /// BEP 52 only: per-file SHA-256 merkle trees.
    V2,
    /// Both, with pad files so v1 pieces align to files (libtorrent 2's default).
    #[default]
    Hybrid,
}

type Progress<'a> = Box<dyn FnMut(u64, u64) + Send + 'a>;

/// Builds a `.torrent` from a file, a directory or bytes in memory.
///
/// ```no_run
/// use lt_metainfo::{CreateTorrent, TorrentVersion};
/// let bytes = CreateTorrent::new("/srv/data/album")
///     .tracker("udp://tracker.example:6969/announce")
///     .web_seed("https://mirror.example/")
///     .version(TorrentVersion::V1)
///     .private(true)
///     .progress(|done, total| eprintln!("{done}/{total}"))
///     .generate()?;
/// std::fs::write("album.torrent", bytes)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CreateTorrent<'a> {
    source: Source,
    trackers: Vec<(String, u8)>,
    web_seeds: Vec<String>,
    http_seeds: Vec<String>,
    nodes: Vec<(String, u16)>,
    comment: Option<String>,
    creator: Option<String>,
    creation_date: Option<i64>,
    private: bool,
    ssl_cert: Option<Vec<u8>>,
    version: TorrentVersion,
    piece_size: Option<u32>,
    symlinks_as_links: bool,
    threads: Option<usize>,
    progress: Option<Progress<'a>>,
}

enum Source {
    Path(PathBuf),
    Memory { name: String, data: Vec<u8> },
}

impl<'a> CreateTorrent<'a> {
    /// A torrent of a file or of a directory tree.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_source(Source::Path(path.into()))
    }

    /// A single-file torrent of bytes in memory.
    pub fn from_memory(name: impl Into<String>, data: Vec<u8>) -> Self {
        Self::with_source(Source::Memory {
            name: name.into(),
            data,
        })
    }

    fn with_source(source: Source) -> Self {
        Self {
            source,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            http_seeds: Vec::new(),
            nodes: Vec::new(),
            comment: None,
            creator: None,
            creation_date: None,
            private: false,
            ssl_cert: None,
            version: TorrentVersion::default(),
            piece_size: None,
            symlinks_as_links: false,
            threads: None,
            progress: None,
        }
    }

    /// Adds a tracker in tier 0.
    #[must_use]
    pub fn tracker(self, url: impl Into<String>) -> Self {
        self.tracker_tier(url, 0)
    }

    /// Adds a tracker in a tier (BEP 12).
    #[must_use]
    pub fn tracker_tier(mut self, url: impl Into<String>, tier: u8) -> Self {
        self.trackers.push((url.into(), tier));
        self
    }

    /// Adds a BEP 19 web seed (`url-list`).
    #[must_use]
    pub fn web_seed(mut self, url: impl Into<String>) -> Self {
        self.web_seeds.push(url.into());
        self
    }

    /// Adds a BEP 17 HTTP seed (`httpseeds`).
    #[must_use]
    pub fn http_seed(mut self, url: impl Into<String>) -> Self {
        self.http_seeds.push(url.into());
        self
    }

    /// Adds a DHT bootstrap node (`nodes`).
    #[must_use]
    pub fn node(mut self, host: impl Into<String>, port: u16) -> Self {
        self.nodes.push((host.into(), port));
        self
    }

    /// Sets the `comment`.
    #[must_use]
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// Sets `created by`.
    #[must_use]
    pub fn creator(mut self, creator: impl Into<String>) -> Self {
        self.creator = Some(creator.into());
        self
    }

    /// Sets `creation date` (seconds since the Unix epoch; the caller reads the clock).
    #[must_use]
    pub fn creation_date(mut self, unix_seconds: i64) -> Self {
        self.creation_date = Some(unix_seconds);
        self
    }

    /// Makes it an SSL torrent: `pem` is the root (CA) certificate, PEM, stored as the info
    /// dictionary's `ssl-cert` (the manual's "SSL torrents"). Its peers talk only TLS,
    /// each with a certificate that root signed. The bytes are stored as given.
    #[must_use]
    pub fn ssl_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ssl_cert = Some(pem.into());
        self
    }

    /// Marks the torrent private (BEP 27).
    #[must_use]
    pub fn private(mut self, private: bool) -> Self {
        self.private = private;
        self
    }

    /// Chooses v1, v2 or hybrid (default hybrid).
    #[must_use]
    pub fn version(mut self, version: TorrentVersion) -> Self {
        self.version = version;
        self
    }

    /// Sets the piece size; by default [`auto_piece_size`] picks one. v2 and hybrid
    /// torrents need a power of two of at least 16 KiB.
    #[must_use]
    pub fn piece_size(mut self, bytes: u32) -> Self {
        self.piece_size = Some(bytes);
        self
    }

    /// Stores symbolic links that point inside the tree as BEP 47 links instead of
    /// following them (default: follow).
    #[must_use]
    pub fn symlinks_as_links(mut self, yes: bool) -> Self {
        self.symlinks_as_links = yes;
        self
    }

    /// Number of hashing threads (default: one per core).
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// Called with (bytes hashed, total bytes) as hashing goes on.
    #[must_use]
    pub fn progress(mut self, f: impl FnMut(u64, u64) + Send + 'a) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Hashes the data and returns the `.torrent` bytes.
    ///
    /// # Errors
    /// [`Error::Io`] when reading fails, [`Error::InvalidArgument`] for an empty source or
    /// an invalid piece size.
    pub fn generate(mut self) -> Result<Vec<u8>, Error> {
        let (name, mut files, data_paths) = self.collect_files()?;
        let total: u64 = files.iter().map(|f| f.size).sum();
        if total == 0 {
            return Err(Error::InvalidArgument(
                "nothing to hash: the source is empty",
            ));
        }
        let piece_len = self.piece_size.unwrap_or_else(|| auto_piece_size(total));
        let needs_v2 = self.version != TorrentVersion::V1;
        if piece_len == 0
            || (needs_v2 && (u64::from(piece_len) < LEAF_SIZE || !piece_len.is_power_of_two()))
        {
            return Err(Error::InvalidArgument(
                "v2 and hybrid torrents need a power-of-two piece size of at least 16 KiB",
            ));
        }
        // v2 and hybrid: pad files so every file starts on a piece boundary (a v2 info
        // dictionary does not list them, but its piece space is laid out the same way).
        let mut readers: Vec<Option<usize>> = (0..files.len()).map(Some).collect();
        if needs_v2 {
            let mut padded = Vec::with_capacity(files.len() * 2);
            let mut padded_readers = Vec::with_capacity(files.len() * 2);
            let count = files.len();
            for (i, f) in files.drain(..).enumerate() {
                let tail = f.size % u64::from(piece_len);
                padded.push(f);
                padded_readers.push(Some(i));
                if i + 1 < count && tail != 0 {
                    padded.push(pad_file(u64::from(piece_len) - tail));
                    padded_readers.push(None);
                }
            }
            files = padded;
            readers = padded_readers;
        }
        let storage = FileStorage::new(name.clone(), piece_len, files)?;
        let data = match &self.source {
            Source::Memory { data, .. } => DataSource::Memory(data),
            Source::Path(_) => DataSource::Files(&data_paths),
        };
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        });
        let hashes = hash_pieces(
            &storage,
            &readers,
            &data,
            self.version,
            threads,
            self.progress.as_mut(),
        )?;
        let info = self.info_value(&storage, &name, &hashes);
        let mut root = BTreeMap::new();
        root.insert(b"info".to_vec(), info);
        if !hashes.layers.is_empty() {
            root.insert(
                b"piece layers".to_vec(),
                crate::torrent_info::piece_layers_value(&hashes.layers),
            );
        }
        // Load what was made (a self-check of the layout and piece layers), then let
        // TorrentInfo write the fields outside the info dictionary.
        let unlimited = LoadLimits {
            max_buffer_size: usize::MAX,
            max_pieces: u64::MAX,
            max_files: usize::MAX,
            max_decode_tokens: usize::MAX,
            ..LoadLimits::default()
        };
        let mut torrent = TorrentInfo::from_bytes_with(&Value::Dict(root).to_bytes(), &unlimited)?;
        for (url, tier) in &self.trackers {
            torrent.add_tracker(url.clone(), *tier);
        }
        for url in &self.web_seeds {
            torrent.add_web_seed(url.clone(), WebSeedKind::Url);
        }
        for url in &self.http_seeds {
            torrent.add_web_seed(url.clone(), WebSeedKind::Http);
        }
        for (host, port) in &self.nodes {
            torrent.add_node(host.clone(), *port);
        }
        torrent.set_comment(self.comment.clone());
        torrent.set_created_by(self.creator.clone());
        torrent.set_creation_date(self.creation_date);
        Ok(torrent.to_bytes())
    }

    fn info_value(&self, storage: &FileStorage, name: &str, hashes: &Hashes) -> Value {
        let mut info = BTreeMap::new();
        info.insert(b"name".to_vec(), Value::from(name));
        info.insert(
            b"piece length".to_vec(),
            Value::Int(i64::from(storage.piece_length())),
        );
        if let Some(pem) = &self.ssl_cert {
            info.insert(b"ssl-cert".to_vec(), Value::Bytes(pem.clone()));
        }
        if self.private {
            info.insert(b"private".to_vec(), Value::Int(1));
        }
        let single = storage.num_files() == 1 && storage.files()[0].path.len() == 1;
        if self.version != TorrentVersion::V2 {
            info.insert(
                b"pieces".to_vec(),
                Value::Bytes(hashes.v1.iter().flat_map(|h| *h.as_bytes()).collect()),
            );
            if single {
                let f = &storage.files()[0];
                info.insert(b"length".to_vec(), size_value(f.size));
                insert_attrs(&mut info, f, false);
            } else {
                let list = storage
                    .files()
                    .iter()
                    .map(|f| {
                        let mut d = BTreeMap::new();
                        d.insert(b"length".to_vec(), size_value(f.size));
                        let path: Vec<&String> = f.path.iter().collect();
                        let rel = if f.is_pad() {
                            &path[..]
                        } else {
                            path.get(1..).unwrap_or_default()
                        };
                        d.insert(b"path".to_vec(), path_value(rel));
                        insert_attrs(&mut d, f, true);
                        Value::Dict(d)
                    })
                    .collect();
                info.insert(b"files".to_vec(), Value::List(list));
            }
        }
        if self.version != TorrentVersion::V1 {
            info.insert(b"meta version".to_vec(), Value::Int(2));
            let mut tree = BTreeMap::new();
            for (f, root) in storage
                .files()
                .iter()
                .zip(&hashes.roots)
                .filter(|(f, _)| !f.is_pad())
            {
                let path: Vec<&String> = f.path.iter().collect();
                let rel = if single {
                    &path[..]
                } else {
                    path.get(1..).unwrap_or_default()
                };
                let mut leaf = BTreeMap::new();
                leaf.insert(b"length".to_vec(), size_value(f.size));
                if let Some(root) = root {
                    leaf.insert(
                        b"pieces root".to_vec(),
                        Value::Bytes(root.as_bytes().to_vec()),
                    );
                }
                insert_attrs(&mut leaf, f, !single);
                insert_tree(&mut tree, rel, Value::dict([("", Value::Dict(leaf))]));
            }
            info.insert(b"file tree".to_vec(), Value::Dict(tree));
        }
        Value::Dict(info)
    }

    /// Lists the source's files in torrent order, with the paths to read them from.
    fn collect_files(&self) -> Result<(String, Vec<FileEntry>, Vec<PathBuf>), Error> {
        match &self.source {
            Source::Memory { name, data } => {
                let name =
                    crate::sanitize_path_component(name.as_bytes()).unwrap_or_else(|| "_".into());
                let size =
                    u64::try_from(data.len()).map_err(|_| Error::LimitExceeded("too large"))?;
                Ok((
                    name.clone(),
                    vec![entry(vec![name], size, FileAttr::default())],
                    Vec::new(),
                ))
            }
            Source::Path(root) => {
                let meta = std::fs::metadata(root)?;
                let name = root
                    .file_name()
                    .and_then(|n| crate::sanitize_path_component(n.as_encoded_bytes()))
                    .ok_or(Error::InvalidArgument("the path has no file name"))?;
                if meta.is_file() {
                    let attr = FileAttr {
                        executable: is_executable(&meta),
                        ..FileAttr::default()
                    };
                    return Ok((
                        name.clone(),
                        vec![entry(vec![name], meta.len(), attr)],
                        vec![root.clone()],
                    ));
                }
                let mut files = Vec::new();
                let mut paths = Vec::new();
                let base = std::fs::canonicalize(root)?;
                self.walk(root, &base, &mut vec![name.clone()], &mut files, &mut paths)?;
                if files.is_empty() {
                    return Err(Error::InvalidArgument("the directory holds no files"));
                }
                Ok((name, files, paths))
            }
        }
    }

    fn walk(
        &self,
        dir: &Path,
        base: &Path,
        prefix: &mut Vec<String>,
        files: &mut Vec<FileEntry>,
        paths: &mut Vec<PathBuf>,
    ) -> Result<(), Error> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        // Byte order of names: the order of a v2 file tree, so v1 and v2 agree.
        entries.sort_by(|a, b| {
            a.file_name()
                .as_encoded_bytes()
                .cmp(b.file_name().as_encoded_bytes())
        });
        for e in entries {
            let path = e.path();
            let Some(component) = crate::sanitize_path_component(e.file_name().as_encoded_bytes())
            else {
                continue;
            };
            let link_meta = std::fs::symlink_metadata(&path)?;
            if link_meta.file_type().is_symlink()
                && self.symlinks_as_links
                && let Some(target) = link_target_inside(&path, base)
            {
                let mut p = prefix.clone();
                p.push(component);
                let mut f = entry(
                    p,
                    0,
                    FileAttr {
                        symlink: true,
                        ..FileAttr::default()
                    },
                );
                f.symlink_target = Some(target.into());
                files.push(f);
                paths.push(path);
                continue;
            }
            let meta = std::fs::metadata(&path)?;
            prefix.push(component);
            if meta.is_dir() {
                self.walk(&path, base, prefix, files, paths)?;
            } else if meta.is_file() {
                let attr = FileAttr {
                    executable: is_executable(&meta),
                    ..FileAttr::default()
                };
                files.push(entry(prefix.clone(), meta.len(), attr));
                paths.push(path);
            }
            prefix.pop();
        }
        Ok(())
    }
}

/// The piece size libtorrent 2 would pick: a power of two between 16 KiB and 16 MiB that
/// keeps the piece count near 1,500 or fewer.
#[must_use]
pub fn auto_piece_size(total_size: u64) -> u32 {
    let mut size: u32 = 16 * 1024;
    while size < 16 * 1024 * 1024 && total_size / u64::from(size) > 1500 {
        size *= 2;
    }
    size
}

fn entry(path: Vec<String>, size: u64, attr: FileAttr) -> FileEntry {
    FileEntry {
        path: path.into(),
        size,
        offset: 0,
        attr,
        symlink_target: None,
        mtime: None,
        pieces_root: None,
    }
}

fn size_value(size: u64) -> Value {
    // FileStorage::new checked that sizes fit i64.
    Value::Int(i64::try_from(size).unwrap_or(i64::MAX))
}

fn path_value(components: &[&String]) -> Value {
    Value::List(components.iter().map(|c| Value::from(c.as_str())).collect())
}

/// Writes `attr` and `symlink path`. Symlink targets are kept relative to the save path
/// like file paths; BEP 47 wants them relative to the torrent's root, hence `strip_root`.
fn insert_attrs(d: &mut BTreeMap<Vec<u8>, Value>, f: &FileEntry, strip_root: bool) {
    if !f.attr.is_empty() {
        d.insert(b"attr".to_vec(), Value::from(f.attr.to_attr_string()));
    }
    if let Some(target) = &f.symlink_target {
        let target: Vec<&String> = target.iter().collect();
        let rel = if strip_root {
            target.get(1..).unwrap_or_default()
        } else {
            &target[..]
        };
        d.insert(b"symlink path".to_vec(), path_value(rel));
    }
}

fn insert_tree(tree: &mut BTreeMap<Vec<u8>, Value>, path: &[&String], leaf: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        tree.insert(first.as_bytes().to_vec(), leaf);
        return;
    }
    let child = tree
        .entry(first.as_bytes().to_vec())
        .or_insert_with(|| Value::Dict(BTreeMap::new()));
    if let Value::Dict(child) = child {
        insert_tree(child, rest, leaf);
    }
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

/// The link's target as components relative to the torrent root, when it stays inside.
fn link_target_inside(link: &Path, base: &Path) -> Option<Vec<String>> {
    let target = std::fs::canonicalize(link).ok()?;
    let rel = target.strip_prefix(base).ok()?;
    let mut components = vec![base.file_name()?.to_string_lossy().into_owned()];
    components.extend(rel.iter().map(|c| c.to_string_lossy().into_owned()));
    Some(components)
}

enum DataSource<'d> {
    Memory(&'d [u8]),
    Files(&'d [PathBuf]),
}

/// Hashes of every piece and file.
struct Hashes {
    v1: Vec<Sha1Hash>,
    /// The `pieces root` of each file of the storage (None for pad and empty files, and v1).
    roots: Vec<Option<Sha256Hash>>,
    layers: BTreeMap<Sha256Hash, Vec<Sha256Hash>>,
}

/// What one piece hashed to.
struct PieceResult {
    v1: Option<Sha1Hash>,
    /// SHA-256 of each 16 KiB block of the piece that belongs to a file (v2).
    blocks: Vec<Sha256Hash>,
}

fn hash_pieces(
    storage: &FileStorage,
    readers: &[Option<usize>],
    data: &DataSource<'_>,
    version: TorrentVersion,
    threads: usize,
    mut progress: Option<&mut Progress<'_>>,
) -> Result<Hashes, Error> {
    let num_pieces = storage.num_pieces();
    let next = AtomicU32::new(0);
    let done_bytes = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let total = storage.total_size();
    let want_v1 = version != TorrentVersion::V2;
    let want_v2 = version != TorrentVersion::V1;
    let results: Vec<Result<Vec<(u32, PieceResult)>, Error>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    let mut buf = vec![0u8; storage.piece_length() as usize];
                    let mut open: BTreeMap<usize, File> = BTreeMap::new();
                    loop {
                        if failed.load(Ordering::Relaxed) {
                            return Ok(out);
                        }
                        let p = next.fetch_add(1, Ordering::Relaxed);
                        if p >= num_pieces {
                            return Ok(out);
                        }
                        let piece = PieceIndex::new(p);
                        let size = storage.piece_size(piece) as usize;
                        let r =
                            read_piece(storage, readers, data, piece, &mut buf[..size], &mut open)
                                .map(|()| hash_one(storage, piece, &buf[..size], want_v1, want_v2));
                        match r {
                            Ok(result) => out.push((p, result)),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                        done_bytes.fetch_add(size as u64, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        if let Some(cb) = progress.as_mut() {
            while !workers
                .iter()
                .all(std::thread::ScopedJoinHandle::is_finished)
            {
                cb(done_bytes.load(Ordering::Relaxed), total);
                std::thread::sleep(Duration::from_millis(50));
            }
            cb(done_bytes.load(Ordering::Relaxed), total);
        }
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or(Err(Error::InvalidArgument("hashing thread panicked")))
            })
            .collect()
    });
    let mut pieces: Vec<Option<PieceResult>> = (0..num_pieces).map(|_| None).collect();
    for r in results {
        for (p, result) in r? {
            pieces[p as usize] = Some(result);
        }
    }
    let pieces: Vec<PieceResult> = pieces
        .into_iter()
        .map(|p| p.ok_or(Error::InvalidArgument("a piece was not hashed")))
        .collect::<Result<_, _>>()?;
    let v1 = pieces.iter().filter_map(|p| p.v1).collect();
    let mut roots = vec![None; storage.num_files()];
    let mut layers = BTreeMap::new();
    if want_v2 {
        for (i, f) in storage.files().iter().enumerate() {
            if f.is_pad() || f.size == 0 {
                continue;
            }
            // Files start on piece boundaries in v2 and hybrid layouts.
            let range = storage.file_piece_range(lt_core::FileIndex::new(
                u32::try_from(i).unwrap_or(u32::MAX),
            ));
            let leaves: Vec<Sha256Hash> = pieces[range.start as usize..range.end as usize]
                .iter()
                .flat_map(|p| p.blocks.iter().copied())
                .collect();
            let (root, layer) = file_tree(&leaves, u64::from(storage.piece_length()));
            roots[i] = Some(root);
            if let Some(layer) = layer {
                layers.insert(root, layer);
            }
        }
    }
    Ok(Hashes { v1, roots, layers })
}

fn hash_one(
    storage: &FileStorage,
    piece: PieceIndex,
    data: &[u8],
    v1: bool,
    v2: bool,
) -> PieceResult {
    let blocks = if v2 {
        // Only the bytes of the file itself are leaves; a pad tail is not.
        let file_bytes: u64 = storage
            .map_block(piece, 0, u32::try_from(data.len()).unwrap_or(u32::MAX))
            .iter()
            .filter(|s| storage.file(s.file).is_some_and(|f| !f.is_pad()))
            .map(|s| s.size)
            .sum();
        let n = usize::try_from(file_bytes)
            .unwrap_or(data.len())
            .min(data.len());
        data[..n]
            .chunks(LEAF_BYTES)
            .map(Sha256Hash::digest)
            .collect()
    } else {
        Vec::new()
    };
    PieceResult {
        v1: v1.then(|| Sha1Hash::digest(data)),
        blocks,
    }
}

fn read_piece(
    storage: &FileStorage,
    readers: &[Option<usize>],
    data: &DataSource<'_>,
    piece: PieceIndex,
    buf: &mut [u8],
    open: &mut BTreeMap<usize, File>,
) -> Result<(), Error> {
    let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
    let mut at = 0usize;
    for slice in storage.map_block(piece, 0, len) {
        let n = usize::try_from(slice.size).unwrap_or(usize::MAX);
        let dst = &mut buf[at..at + n];
        match readers.get(slice.file.as_usize()).copied().flatten() {
            None => dst.fill(0),
            Some(src) => match data {
                DataSource::Memory(bytes) => {
                    let start = usize::try_from(slice.offset).unwrap_or(usize::MAX);
                    dst.copy_from_slice(&bytes[start..start + n]);
                }
                DataSource::Files(paths) => {
                    let file = match open.entry(src) {
                        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::btree_map::Entry::Vacant(v) => {
                            v.insert(File::open(&paths[src])?)
                        }
                    };
                    read_exact_at(file, dst, slice.offset)?;
                }
            },
        }
        at += n;
    }
    // Keep at most a few files open per worker.
    if open.len() > 8 {
        open.clear();
    }
    Ok(())
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_read(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}
