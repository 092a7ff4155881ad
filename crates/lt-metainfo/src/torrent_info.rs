//! Loading and writing `.torrent` files: v1 (BEP 3), v2 and hybrid (BEP 52).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use lt_bencode::{Dict, Limits, Node, Value};
use lt_core::{FileIndex, InfoHash, PieceIndex, Sha1Hash, Sha256Hash};

use crate::file_path::{Dir, FilePath, PathInterner};
use crate::file_storage::{FileAttr, FileEntry, FileStorage, pad_file};
use crate::merkle::{LEAF_SIZE, merkle_root, pad_hash};
use crate::sanitize::sanitize_path;
use crate::{Error, LoadLimits, MagnetLink};

/// A tracker URL and its BEP 12 tier (0 is tried first).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnnounceEntry {
    /// The announce URL.
    pub url: String,
    /// The tier.
    pub tier: u8,
}

/// The two kinds of web seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebSeedKind {
    /// BEP 19 (`url-list`): a plain HTTP/FTP server holding the files.
    Url,
    /// BEP 17 (`httpseeds`): a script that serves pieces.
    Http,
}

/// A web seed URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebSeed {
    /// The URL.
    pub url: String,
    /// Which protocol it speaks.
    pub kind: WebSeedKind,
}

/// A parsed `.torrent` (the manual's `torrent_info`).
///
/// ```
/// # let bytes = lt_metainfo::CreateTorrent::from_memory("a.txt", b"data".to_vec()).generate()?;
/// let t = lt_metainfo::TorrentInfo::from_bytes(&bytes)?;
/// assert!(t.info_hash().has_v1());
/// assert_eq!(t.files().files()[0].path, ["a.txt"]);
/// assert_eq!(lt_metainfo::TorrentInfo::from_bytes(&t.to_bytes())?, t);
/// # Ok::<(), lt_metainfo::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentInfo {
    info_hash: InfoHash,
    info_bytes: Vec<u8>,
    files: FileStorage,
    /// Where the v1 `pieces` string lies in `info_bytes` (empty for v2-only torrents).
    piece_hashes: std::ops::Range<usize>,
    piece_layers: BTreeMap<Sha256Hash, Vec<Sha256Hash>>,
    private: bool,
    trackers: Vec<AnnounceEntry>,
    web_seeds: Vec<WebSeed>,
    nodes: Vec<(String, u16)>,
    comment: Option<String>,
    created_by: Option<String>,
    creation_date: Option<i64>,
    encoding: Option<String>,
    ssl_cert: Option<Vec<u8>>,
    similar: Vec<Sha1Hash>,
    collections: Vec<String>,
    /// Root keys not interpreted, with their values' bencoding as read (kept as bytes: a
    /// decoded tree of a crafted value costs many times its size).
    extra: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Most trackers, web seeds or DHT nodes kept from one torrent.
const MAX_URLS: usize = 1000;

impl TorrentInfo {
    /// Loads a torrent with the default [`LoadLimits`]. Bytes after the root dictionary are
    /// ignored, as libtorrent does.
    ///
    /// # Errors
    /// Malformed bencoding, missing or invalid fields, limits exceeded.
    pub fn from_bytes(buf: &[u8]) -> Result<Self, Error> {
        Self::from_bytes_with(buf, &LoadLimits::default())
    }

    /// Loads a torrent with explicit limits.
    ///
    /// # Errors
    /// Malformed bencoding, missing or invalid fields, limits exceeded.
    pub fn from_bytes_with(buf: &[u8], limits: &LoadLimits) -> Result<Self, Error> {
        if buf.len() > limits.max_buffer_size {
            return Err(Error::TooLarge {
                len: buf.len(),
                max: limits.max_buffer_size,
            });
        }
        let decode_limits = Limits {
            max_depth: limits.max_decode_depth,
            max_items: limits.max_decode_tokens,
        };
        let (doc, _) = lt_bencode::decode_prefix_with(buf, &decode_limits)?;
        let root = doc.root().as_dict().ok_or(Error::TorrentIsNoDict)?;
        let info_node = root.get("info").ok_or(Error::MissingInfo)?;
        let mut t = parse_info(info_node, limits)?;
        t.parse_root(root)?;
        Ok(t)
    }

    /// Loads a torrent from just its info dictionary (as received through BEP 9 metadata
    /// exchange); trackers and the rest come from elsewhere.
    ///
    /// # Errors
    /// As [`TorrentInfo::from_bytes`].
    pub fn from_info_bytes(info: &[u8], limits: &LoadLimits) -> Result<Self, Error> {
        let decode_limits = Limits {
            max_depth: limits.max_decode_depth,
            max_items: limits.max_decode_tokens,
        };
        let doc = lt_bencode::decode_with(info, &decode_limits)?;
        parse_info(doc.root(), limits)
    }

    /// The info-hashes: v1, v2 or both.
    #[must_use]
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The exact bytes of the info dictionary (what BEP 9 sends as metadata).
    #[must_use]
    pub fn info_bytes(&self) -> &[u8] {
        &self.info_bytes
    }

    /// The torrent's name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.files.name()
    }

    /// The file layout.
    #[must_use]
    pub fn files(&self) -> &FileStorage {
        &self.files
    }

    /// The file layout, to rename or remap files.
    pub fn files_mut(&mut self) -> &mut FileStorage {
        &mut self.files
    }

    /// Number of pieces.
    #[must_use]
    pub fn num_pieces(&self) -> u32 {
        self.files.num_pieces()
    }

    /// Bytes per piece.
    #[must_use]
    pub fn piece_length(&self) -> u32 {
        self.files.piece_length()
    }

    /// Total size in bytes.
    #[must_use]
    pub fn total_size(&self) -> u64 {
        self.files.total_size()
    }

    /// The v1 SHA-1 hash of a piece (v1 and hybrid torrents).
    #[must_use]
    pub fn piece_hash(&self, piece: PieceIndex) -> Option<Sha1Hash> {
        let start = piece.as_usize().checked_mul(20)?;
        let hashes = self.info_bytes.get(self.piece_hashes.clone())?;
        Sha1Hash::from_slice(hashes.get(start..start.checked_add(20)?)?)
    }

    /// The v2 piece layer of a file larger than one piece, when the torrent carries it.
    #[must_use]
    pub fn piece_layer(&self, file: FileIndex) -> Option<&[Sha256Hash]> {
        let root = self.files.file(file)?.pieces_root?;
        self.piece_layers.get(&root).map(Vec::as_slice)
    }

    /// Whether the torrent is private (BEP 27): no DHT, PEX or LSD.
    #[must_use]
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// Trackers with their tiers, in tier order.
    #[must_use]
    pub fn trackers(&self) -> &[AnnounceEntry] {
        &self.trackers
    }

    /// Web seeds (BEP 17 and 19).
    #[must_use]
    pub fn web_seeds(&self) -> &[WebSeed] {
        &self.web_seeds
    }

    /// DHT bootstrap nodes from the `nodes` key, as (host, port).
    #[must_use]
    pub fn nodes(&self) -> &[(String, u16)] {
        &self.nodes
    }

    /// The `comment`.
    #[must_use]
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// The `created by` string.
    #[must_use]
    pub fn created_by(&self) -> Option<&str> {
        self.created_by.as_deref()
    }

    /// The `creation date`, seconds since the Unix epoch.
    #[must_use]
    pub fn creation_date(&self) -> Option<i64> {
        self.creation_date
    }

    /// The `encoding` key, for old torrents whose names are not UTF-8.
    #[must_use]
    pub fn encoding(&self) -> Option<&str> {
        self.encoding.as_deref()
    }

    /// The root certificate of an SSL torrent (the manual's `ssl_cert()`), PEM.
    #[must_use]
    pub fn ssl_cert(&self) -> Option<&[u8]> {
        self.ssl_cert.as_deref()
    }

    /// Info-hashes of similar torrents (BEP 38).
    #[must_use]
    pub fn similar_torrents(&self) -> &[Sha1Hash] {
        &self.similar
    }

    /// Collection names (BEP 38).
    #[must_use]
    pub fn collections(&self) -> &[String] {
        &self.collections
    }

    /// Root keys this crate does not interpret, each with its value's bencoding as read,
    /// kept so writing the torrent keeps them (decode one with `lt_bencode::decode`).
    #[must_use]
    pub fn extra_fields(&self) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        &self.extra
    }

    /// A magnet link for this torrent, with its name, trackers and web seeds.
    #[must_use]
    pub fn magnet_link(&self) -> MagnetLink {
        let mut m = MagnetLink::new(self.info_hash);
        m.name = Some(self.name().to_owned());
        m.trackers = self.trackers.iter().map(|t| t.url.clone()).collect();
        m.web_seeds = self
            .web_seeds
            .iter()
            .filter(|w| w.kind == WebSeedKind::Url)
            .map(|w| w.url.clone())
            .collect();
        m
    }

    /// Writes the torrent as a `.torrent` file. The info dictionary is written byte for byte
    /// as loaded, so the info-hash never changes.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = self
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut put = |key: &str, v: Value| entries.push((key.as_bytes().to_vec(), v.to_bytes()));
        if let Some(first) = self.trackers.first() {
            put("announce", Value::from(first.url.as_str()));
        }
        if self.trackers.len() > 1 || self.trackers.iter().any(|t| t.tier > 0) {
            // Tiers are positions in announce-list: empty lists keep the gaps.
            let max_tier = self.trackers.iter().map(|t| t.tier).max().unwrap_or(0);
            let mut tiers = vec![Vec::new(); usize::from(max_tier) + 1];
            for t in &self.trackers {
                tiers[usize::from(t.tier)].push(Value::from(t.url.as_str()));
            }
            put(
                "announce-list",
                Value::List(tiers.into_iter().map(Value::List).collect()),
            );
        }
        for (key, v) in [
            ("comment", &self.comment),
            ("created by", &self.created_by),
            ("encoding", &self.encoding),
        ] {
            if let Some(v) = v {
                put(key, Value::from(v.as_str()));
            }
        }
        if let Some(date) = self.creation_date {
            put("creation date", Value::Int(date));
        }
        for (key, kind) in [
            ("url-list", WebSeedKind::Url),
            ("httpseeds", WebSeedKind::Http),
        ] {
            let urls: Vec<Value> = self
                .web_seeds
                .iter()
                .filter(|w| w.kind == kind)
                .map(|w| Value::from(w.url.as_str()))
                .collect();
            if !urls.is_empty() {
                put(key, Value::List(urls));
            }
        }
        if !self.nodes.is_empty() {
            let nodes = self
                .nodes
                .iter()
                .map(|(h, p)| Value::List(vec![Value::from(h.as_str()), Value::Int(i64::from(*p))]))
                .collect();
            put("nodes", Value::List(nodes));
        }
        if !self.piece_layers.is_empty() {
            put("piece layers", piece_layers_value(&self.piece_layers));
        }
        entries.push((b"info".to_vec(), self.info_bytes.clone()));
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        let mut out = Vec::with_capacity(entries.iter().map(|(k, v)| k.len() + v.len() + 8).sum());
        out.push(b'd');
        for (k, v) in &entries {
            lt_bencode::write_bytes(&mut out, k);
            out.extend_from_slice(v);
        }
        out.push(b'e');
        out
    }

    /// Adds a tracker in the given tier, keeping tier order.
    pub fn add_tracker(&mut self, url: impl Into<String>, tier: u8) {
        let url = url.into();
        if self.trackers.iter().any(|t| t.url == url) {
            return;
        }
        let at = self.trackers.partition_point(|t| t.tier <= tier);
        self.trackers.insert(at, AnnounceEntry { url, tier });
    }

    /// Adds a web seed (ignoring one already present).
    pub fn add_web_seed(&mut self, url: impl Into<String>, kind: WebSeedKind) {
        let seed = WebSeed {
            url: url.into(),
            kind,
        };
        if !self.web_seeds.contains(&seed) {
            self.web_seeds.push(seed);
        }
    }

    /// Adds a DHT bootstrap node.
    pub fn add_node(&mut self, host: impl Into<String>, port: u16) {
        self.nodes.push((host.into(), port));
    }

    /// Sets or clears the `comment`.
    pub fn set_comment(&mut self, comment: Option<String>) {
        self.comment = comment;
    }

    /// Sets or clears `created by`.
    pub fn set_created_by(&mut self, created_by: Option<String>) {
        self.created_by = created_by;
    }

    /// Sets or clears `creation date` (seconds since the Unix epoch).
    pub fn set_creation_date(&mut self, unix_seconds: Option<i64>) {
        self.creation_date = unix_seconds;
    }

    fn parse_root(&mut self, root: Dict<'_>) -> Result<(), Error> {
        const KNOWN: [&str; 12] = [
            "info",
            "announce",
            "announce-list",
            "url-list",
            "httpseeds",
            "nodes",
            "comment",
            "comment.utf-8",
            "created by",
            "created by.utf-8",
            "creation date",
            "encoding",
        ];
        if let Some(tiers) = root.get_list("announce-list") {
            let mut seen = std::collections::HashSet::new();
            'tiers: for (tier, urls) in tiers.iter().enumerate() {
                let tier = u8::try_from(tier).unwrap_or(u8::MAX);
                for url in urls.as_list().into_iter().flatten() {
                    if self.trackers.len() >= MAX_URLS {
                        break 'tiers;
                    }
                    if let Some(url) = url.as_str().map(str::trim).filter(|u| !u.is_empty())
                        && seen.insert(url)
                    {
                        self.trackers.push(AnnounceEntry {
                            url: url.to_owned(),
                            tier,
                        });
                    }
                }
            }
        }
        if self.trackers.is_empty()
            && let Some(url) = root
                .get_str("announce")
                .map(str::trim)
                .filter(|u| !u.is_empty())
        {
            self.trackers.push(AnnounceEntry {
                url: url.to_owned(),
                tier: 0,
            });
        }
        for (key, kind) in [
            ("url-list", WebSeedKind::Url),
            ("httpseeds", WebSeedKind::Http),
        ] {
            let Some(node) = root.get(key) else { continue };
            let urls: Vec<Node<'_>> = match node.as_list() {
                Some(list) => list.iter().collect(),
                None => vec![node],
            };
            for url in urls
                .iter()
                .filter_map(Node::as_str)
                .filter(|u| !u.is_empty())
            {
                if self.web_seeds.len() < MAX_URLS {
                    self.add_web_seed(url, kind);
                }
            }
        }
        for node in root.get_list("nodes").into_iter().flatten().take(MAX_URLS) {
            let Some(pair) = node.as_list() else { continue };
            let (Some(host), Some(port)) = (
                pair.get(0).and_then(|h| h.as_str()),
                pair.get(1).and_then(|p| p.as_int()),
            ) else {
                continue;
            };
            if let Ok(port) = u16::try_from(port) {
                self.nodes.push((host.to_owned(), port));
            }
        }
        self.comment = utf8_field(root, "comment");
        self.created_by = utf8_field(root, "created by");
        self.creation_date = root.get_int("creation date").filter(|d| *d > 0);
        self.encoding = root.get_str("encoding").map(str::to_owned);
        if let Some(layers) = root.get_dict("piece layers") {
            self.parse_piece_layers(layers)?;
        }
        for (k, v) in root {
            let known = KNOWN.iter().any(|n| n.as_bytes() == k) || k == b"piece layers";
            if !known {
                self.extra
                    .entry(k.to_vec())
                    .or_insert_with(|| v.raw().to_vec());
            }
        }
        // A session may hold ten thousand of these: no spare capacity from the pushes.
        self.trackers.shrink_to_fit();
        self.web_seeds.shrink_to_fit();
        self.nodes.shrink_to_fit();
        Ok(())
    }

    /// Checks and keeps the piece layers of the torrent's files (BEP 52).
    fn parse_piece_layers(&mut self, layers: Dict<'_>) -> Result<(), Error> {
        let piece_len = u64::from(self.files.piece_length());
        let pad = pad_hash((piece_len / LEAF_SIZE).trailing_zeros());
        // One pass over the dictionary: `Dict::get` is a linear search, and doing one per file
        // made a torrent with many files and layers quadratic (issue 18). The first of
        // duplicate keys wins, as with `Dict::get`.
        let mut index: HashMap<&[u8], Option<&[u8]>> = HashMap::new();
        for (key, value) in layers {
            index.entry(key).or_insert_with(|| value.as_bytes());
        }
        for f in self.files.files() {
            let Some(root) = f.pieces_root else { continue };
            if f.size <= piece_len || self.piece_layers.contains_key(&root) {
                continue;
            }
            let Some(&Some(layer)) = index.get(&root.as_bytes()[..]) else {
                // Missing layers can still come from peers (hash request messages).
                continue;
            };
            let expected = f.size.div_ceil(piece_len).checked_mul(32);
            if expected != u64::try_from(layer.len()).ok() {
                return Err(Error::InvalidPieceLayer("wrong length"));
            }
            let hashes: Vec<Sha256Hash> = layer
                .chunks_exact(32)
                .filter_map(Sha256Hash::from_slice)
                .collect();
            if merkle_root(&hashes, pad) != root {
                return Err(Error::InvalidPieceLayer("does not hash to the pieces root"));
            }
            self.piece_layers.insert(root, hashes);
        }
        Ok(())
    }
}

/// `name.utf-8` if present and valid, else `name` if valid UTF-8, else `name` decoded lossily.
fn utf8_field(dict: Dict<'_>, key: &str) -> Option<String> {
    let utf8_key = format!("{key}.utf-8");
    dict.get_str(&utf8_key)
        .or_else(|| dict.get_str(key))
        .map(str::to_owned)
        .or_else(|| {
            dict.get_bytes(key)
                .map(|b| String::from_utf8_lossy(b).into_owned())
        })
}

pub(crate) fn piece_layers_value(layers: &BTreeMap<Sha256Hash, Vec<Sha256Hash>>) -> Value {
    Value::Dict(
        layers
            .iter()
            .map(|(root, hashes)| {
                let bytes: Vec<u8> = hashes.iter().flat_map(|h| *h.as_bytes()).collect();
                (root.as_bytes().to_vec(), Value::Bytes(bytes))
            })
            .collect(),
    )
}

/// Parses the info dictionary into a torrent with no root-level data yet.
fn parse_info(info_node: Node<'_>, limits: &LoadLimits) -> Result<TorrentInfo, Error> {
    let info = info_node.as_dict().ok_or(Error::InfoIsNoDict)?;
    let raw = info_node.raw();
    let meta_version = info.get_int("meta version").unwrap_or(1);
    if !(1..=2).contains(&meta_version) {
        return Err(Error::UnsupportedVersion(meta_version));
    }
    let file_tree = if meta_version == 2 {
        Some(
            info.get_dict("file tree")
                .ok_or(Error::InvalidFile("missing file tree"))?,
        )
    } else {
        None
    };
    let pieces = info.get("pieces");
    if pieces.is_none() && file_tree.is_none() {
        return Err(Error::MissingPieces);
    }
    let piece_length = info
        .get_int("piece length")
        .ok_or(Error::InvalidPieceLength(0))?;
    let piece_len_u64 = u64::try_from(piece_length)
        .ok()
        .filter(|&p| p > 0 && p <= limits.max_piece_length)
        .ok_or(Error::InvalidPieceLength(piece_length))?;
    if file_tree.is_some() && (piece_len_u64 < LEAF_SIZE || !piece_len_u64.is_power_of_two()) {
        // BEP 52: a power of two of at least 16 KiB.
        return Err(Error::InvalidPieceLength(piece_length));
    }
    let piece_len =
        u32::try_from(piece_len_u64).map_err(|_| Error::InvalidPieceLength(piece_length))?;
    let name = utf8_field(info, "name").ok_or(Error::MissingName)?;
    let name = crate::sanitize_path_component(name.as_bytes()).unwrap_or_else(|| "_".into());

    let v2_files = match file_tree {
        Some(tree) => Some(parse_file_tree(tree, &name, limits)?),
        None => None,
    };
    let mut files = if pieces.is_some() {
        let v1 = parse_v1_files(info, &name, limits)?;
        if let Some(v2) = &v2_files {
            attach_v2_roots(v1, v2, piece_len_u64)?
        } else {
            v1
        }
    } else {
        align_v2_files(v2_files.unwrap_or_default(), &name, piece_len_u64)
    };
    check_path_bytes(&files, raw.len(), limits)?;
    crate::dedup::resolve_duplicate_paths(&mut files);
    let files = FileStorage::new(name, piece_len, files)?;
    if u64::from(files.num_pieces()) > limits.max_pieces {
        return Err(Error::LimitExceeded("too many pieces"));
    }
    let piece_hashes = match pieces {
        Some(p) => {
            let bytes = p.as_bytes().ok_or_else(|| Error::InvalidHashes {
                len: 0,
                expected: u64::from(files.num_pieces()),
            })?;
            let expected = u64::from(files.num_pieces());
            if bytes.len() % 20 != 0 || u64::try_from(bytes.len() / 20).ok() != Some(expected) {
                return Err(Error::InvalidHashes {
                    len: bytes.len(),
                    expected,
                });
            }
            // The string's bytes end where its item ends; both are inside the info dict.
            let end = p.span().end - info_node.span().start;
            end - bytes.len()..end
        }
        None => 0..0,
    };
    let v1 = pieces.is_some().then(|| Sha1Hash::digest(raw));
    let v2 = file_tree.is_some().then(|| Sha256Hash::digest(raw));
    let info_hash = InfoHash::from_parts(v1, v2).ok_or(Error::MissingPieces)?;
    let similar = info
        .get_list("similar")
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_bytes().and_then(Sha1Hash::from_slice))
        .take(MAX_URLS)
        .collect();
    let collections = info
        .get_list("collections")
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .take(MAX_URLS)
        .collect();
    Ok(TorrentInfo {
        info_hash,
        info_bytes: raw.to_vec(),
        files,
        piece_hashes,
        piece_layers: BTreeMap::new(),
        private: info.get_int("private") == Some(1),
        trackers: Vec::new(),
        web_seeds: Vec::new(),
        nodes: Vec::new(),
        comment: None,
        created_by: None,
        creation_date: None,
        encoding: None,
        ssl_cert: info.get_bytes("ssl-cert").map(<[u8]>::to_vec),
        similar,
        collections,
        extra: BTreeMap::new(),
    })
}

/// Refuses a torrent whose paths, written out in full, are out of proportion to its size
/// (issue 18): paths share their directories in memory, but storage and user interfaces
/// build each one in full.
fn check_path_bytes(
    files: &[FileEntry],
    info_len: usize,
    limits: &LoadLimits,
) -> Result<(), Error> {
    let max = info_len
        .saturating_mul(limits.max_path_expansion)
        .max(crate::limits::MIN_PATH_BYTES);
    let mut total: usize = 0;
    for f in files {
        let target = f.symlink_target.as_ref().map_or(0, FilePath::joined_len);
        total = total
            .saturating_add(f.path.joined_len())
            .saturating_add(target);
        if total > max {
            return Err(Error::LimitExceeded(
                "file paths too long for the size of the info dictionary",
            ));
        }
    }
    Ok(())
}

/// A file's size, attributes, mtime and symlink target from its dictionary.
///
/// `root` is the directory every path of the torrent lives in (the torrent's name for a
/// multi-file torrent), prefixed to symlink targets so they are relative to the save path
/// like [`FileEntry::path`].
fn parse_file_common(
    dict: Dict<'_>,
    path: FilePath,
    root: Option<&Arc<Dir>>,
    interner: &mut PathInterner,
) -> Result<FileEntry, Error> {
    let attr = dict
        .get_bytes("attr")
        .map(FileAttr::parse)
        .unwrap_or_default();
    let size = match dict.get("length") {
        // libtorrent writes v2 symlink entries without a length.
        None if attr.symlink => 0,
        length => length
            .and_then(|l| l.as_int())
            .and_then(|l| u64::try_from(l).ok())
            .ok_or(Error::InvalidFile("missing or negative length"))?,
    };
    let symlink_target = attr.symlink.then(|| {
        let list = dict.get_list("symlink path");
        let target = sanitize_path(list.into_iter().flatten().filter_map(|n| n.as_bytes()));
        interner.path(root, target)
    });
    Ok(FileEntry {
        path,
        size,
        offset: 0,
        attr,
        symlink_target,
        mtime: dict.get_int("mtime"),
        pieces_root: None,
    })
}

fn parse_v1_files(
    info: Dict<'_>,
    name: &str,
    limits: &LoadLimits,
) -> Result<Vec<FileEntry>, Error> {
    let mut interner = PathInterner::default();
    let Some(list) = info.get_list("files") else {
        if info.get("length").is_none() {
            return Err(Error::InvalidFile("neither length nor files"));
        }
        let path = FilePath::new([name]);
        return Ok(vec![parse_file_common(info, path, None, &mut interner)?]);
    };
    // Every path starts with the torrent's name, stored once.
    let root = interner.dir(None, name.to_owned());
    let mut files = Vec::new();
    for node in list {
        if files.len() >= limits.max_files {
            return Err(Error::LimitExceeded("too many files"));
        }
        let dict = node
            .as_dict()
            .ok_or(Error::InvalidFile("file entry is not a dictionary"))?;
        let components = dict
            .get_list("path.utf-8")
            .filter(|l| l.iter().all(|c| c.as_str().is_some()))
            .or_else(|| dict.get_list("path"))
            .ok_or(Error::InvalidFile("missing path"))?;
        let raw: Vec<&[u8]> = components.iter().filter_map(|c| c.as_bytes()).collect();
        if raw.is_empty() {
            return Err(Error::InvalidFile("empty path"));
        }
        let path = interner.path(Some(&root), sanitize_path(raw));
        files.push(parse_file_common(dict, path, Some(&root), &mut interner)?);
    }
    Ok(files)
}

/// The files of a v2 `file tree`, in tree order, without pad files.
fn parse_file_tree(
    tree: Dict<'_>,
    name: &str,
    limits: &LoadLimits,
) -> Result<Vec<FileEntry>, Error> {
    let mut files = Vec::new();
    let root = Dir::child(None, name.to_owned());
    let mut interner = PathInterner::default();
    let mut walk = TreeWalk {
        files: &mut files,
        interner: &mut interner,
        root: &root,
        limits,
    };
    walk.dir(tree, &root, None)?;
    // A lone file at the root of the tree is a single-file torrent: no directory.
    if let [f] = files.as_mut_slice()
        && f.path.dir().is_some_and(|d| Arc::ptr_eq(d, &root))
    {
        f.path = FilePath::new([f.path.file_name()]);
        if let Some(target) = &mut f.symlink_target {
            *target = FilePath::new(target.iter().skip(1).cloned());
        }
    }
    for f in &files {
        if f.size > 0 && f.pieces_root.is_none() {
            return Err(Error::InvalidFile("missing pieces root"));
        }
    }
    Ok(files)
}

/// Walks a v2 `file tree`, creating each directory once for all it holds.
struct TreeWalk<'w> {
    files: &'w mut Vec<FileEntry>,
    interner: &'w mut PathInterner,
    /// The torrent's name: the directory of every path.
    root: &'w Arc<Dir>,
    limits: &'w LoadLimits,
}

impl TreeWalk<'_> {
    /// Walks the tree node `node`, whose path is `parent` plus `last` (the node's own
    /// name; `None` for the tree's root and for nodes whose names sanitise to nothing).
    fn dir(&mut self, node: Dict<'_>, parent: &Arc<Dir>, last: Option<&str>) -> Result<(), Error> {
        // Created at the first child, then shared by all children.
        let mut this: Option<Arc<Dir>> = None;
        for (key, child) in node {
            let entry = child
                .as_dict()
                .ok_or(Error::InvalidFile("file tree node is not a dictionary"))?;
            if key.is_empty() {
                // A file: its properties live under the empty key (BEP 52).
                let name = last.ok_or(Error::InvalidFile("file without a name"))?;
                if self.files.len() >= self.limits.max_files {
                    return Err(Error::LimitExceeded("too many files"));
                }
                let path = FilePath::in_dir(Some(Arc::clone(parent)), name.to_owned());
                self.file(entry, path)?;
                continue;
            }
            let dir = match (&this, last) {
                (Some(d), _) => Arc::clone(d),
                (None, Some(name)) => Dir::child(Some(parent), name.to_owned()),
                (None, None) => Arc::clone(parent),
            };
            this = Some(Arc::clone(&dir));
            match crate::sanitize_path_component(key) {
                Some(c) => self.dir(entry, &dir, Some(&c))?,
                // A name that sanitises to nothing adds no component.
                None => self.dir(entry, parent, last)?,
            }
        }
        Ok(())
    }

    fn file(&mut self, entry: Dict<'_>, path: FilePath) -> Result<(), Error> {
        {
            let mut f = parse_file_common(entry, path, Some(self.root), self.interner)?;
            f.pieces_root = match entry.get_bytes("pieces root") {
                Some(b) => Some(
                    Sha256Hash::from_slice(b)
                        .ok_or(Error::InvalidFile("pieces root is not 32 bytes"))?,
                ),
                None => None,
            };
            self.files.push(f);
        }
        Ok(())
    }
}

/// Inserts the pad files that align every v2 file to a piece boundary. Like libtorrent, the
/// last file is padded too, and pad files live in the torrent's directory.
fn align_v2_files(files: Vec<FileEntry>, name: &str, piece_len: u64) -> Vec<FileEntry> {
    let mut out = Vec::with_capacity(files.len().saturating_mul(2));
    // Every pad file lives in `<name>/.pad`, stored once.
    let pad_dir = Dir::child(Some(&Dir::child(None, name.to_owned())), ".pad".to_owned());
    for f in files {
        let tail = f.size % piece_len;
        out.push(f);
        if tail != 0 {
            let mut pad = pad_file(piece_len - tail);
            pad.path =
                FilePath::in_dir(Some(Arc::clone(&pad_dir)), pad.path.file_name().to_owned());
            out.push(pad);
        }
    }
    out
}

/// Checks that a hybrid torrent's v1 file list is the v2 one plus alignment pad files, and
/// copies the v2 `pieces root`s onto the v1 entries.
fn attach_v2_roots(
    mut v1: Vec<FileEntry>,
    v2: &[FileEntry],
    piece_len: u64,
) -> Result<Vec<FileEntry>, Error> {
    let mut v2_iter = v2.iter();
    let mut offset = 0u64;
    for f in &mut v1 {
        if !f.attr.pad {
            let other = v2_iter.next().ok_or(Error::InconsistentFiles)?;
            if other.path != f.path || other.size != f.size {
                return Err(Error::InconsistentFiles);
            }
            if f.size > 0 && !offset.is_multiple_of(piece_len) {
                return Err(Error::InconsistentFiles);
            }
            f.pieces_root = other.pieces_root;
        }
        offset = offset
            .checked_add(f.size)
            .ok_or(Error::LimitExceeded("total size overflows"))?;
    }
    if v2_iter.next().is_some() {
        return Err(Error::InconsistentFiles);
    }
    Ok(v1)
}
