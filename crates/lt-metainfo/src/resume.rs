//! Fast-resume data in libtorrent's format (the manual's "fast resume" chapter, as written
//! by libtorrent 2.0's `write_resume_data`): the type, its encoding and its limits. It does
//! no I/O; checking it against the files on disk is lt-storage's (`verify_resume`,
//! `record_file_sizes`), so a sans-IO engine can carry resume data without a disk crate.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::{FileStorage, TorrentInfo};
use lt_bencode::{Dict, Value};
use lt_core::{Bitfield, FileIndex, PieceIndex, Sha1Hash, Sha256Hash, compact};

/// The `file-format` tag.
pub const FILE_FORMAT: &str = "libtorrent resume file";

/// How files are allocated on disk (the manual's "storage allocation").
///
/// The manual's third mode, *compact* allocation, was deprecated in libtorrent 0.16 and is
/// gone from libtorrent 2; it is not supported here, and resume data that names it is read
/// as sparse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// Files are created at their full length without allocating blocks (`ftruncate`); the
    /// file system allocates as pieces arrive. The default.
    #[default]
    Sparse,
    /// Every wanted file is allocated in full (by lt-storage's `Storage::initialize`, or
    /// when first opened for writing), so a full disk shows up early and files are less
    /// fragmented: with `fallocate` where the file system has it, else by writing zeros.
    Full,
}

/// Limits applied when loading resume data from untrusted bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeLimits {
    /// Largest accepted resume file in bytes. Default: 64 MiB.
    pub max_resume_size: usize,
    /// Deepest nesting of the bencoded resume document. Default: 100.
    pub max_decode_depth: usize,
    /// Most bencoded items in the resume document. Default: 10,000,000.
    pub max_decode_tokens: usize,
    /// Most peers kept from resume data. Default: 1,000.
    pub max_peers: usize,
    /// Most unfinished pieces kept from resume data. Default: 100,000.
    pub max_unfinished: usize,
}

impl Default for ResumeLimits {
    fn default() -> Self {
        Self {
            max_resume_size: 64 << 20,
            max_decode_depth: 100,
            max_decode_tokens: 10_000_000,
            max_peers: 1_000,
            max_unfinished: 100_000,
        }
    }
}

/// Why fast-resume data was not accepted (the manual's `fastresume_rejected_alert` reasons).
///
/// On any of these the torrent's files must be checked (lt-storage's `check_files`).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// Not bencoding, or bencoding beyond the limits (`parse_failed`).
    #[error("resume data is not valid bencoding")]
    Parse(#[from] lt_bencode::Error),
    /// The root is not a dictionary (`not_a_dictionary`).
    #[error("resume data is not a dictionary")]
    NotADictionary,
    /// `file-format` or `file-version` is missing or wrong (`invalid_file_tag`).
    #[error("resume data has a missing or invalid file-format tag")]
    InvalidFileTag,
    /// No usable `info-hash` / `info-hash2` (`missing_info_hash`).
    #[error("resume data has no info-hash")]
    MissingInfoHash,
    /// The info-hash belongs to another torrent (`mismatching_info_hash`).
    #[error("resume data is for another torrent")]
    MismatchingInfoHash,
    /// A field has the wrong type or an impossible value (`invalid_entry_type`...).
    #[error("resume data field {0:?} is invalid")]
    InvalidField(&'static str),
    /// `pieces` does not have one byte per piece (`invalid_pieces`).
    #[error("resume data has {got} piece entries, the torrent has {expected} pieces")]
    PieceCount {
        /// Entries in the resume data.
        got: usize,
        /// Pieces in the torrent.
        expected: u32,
    },
    /// A list (`file sizes`, `file_priority`, `mapped_files`) does not have one entry per file
    /// (`mismatching_number_of_files`).
    #[error("resume data field {field:?} has {got} entries, the torrent has {expected} files")]
    FileCount {
        /// The field.
        field: &'static str,
        /// Entries in the resume data.
        got: usize,
        /// Files in the torrent.
        expected: usize,
    },
    /// A file holding pieces the resume data claims is missing (`missing_file_sizes` /
    /// `file_too_short`).
    #[error("file {file} is missing on disk")]
    MissingFile {
        /// The file.
        file: FileIndex,
    },
    /// A file on disk is not the size or age the resume data recorded, or is shorter than
    /// the pieces it claims (`mismatching_file_size`, `mismatching_file_timestamp`).
    #[error("file {file} changed on disk: {reason}")]
    FileChanged {
        /// The file.
        file: FileIndex,
        /// Which check failed.
        reason: &'static str,
    },
    /// Checking the files on disk failed (the storage's error is the source).
    #[error("checking files for resume data failed")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A piece that was partly downloaded: which of its blocks are on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedPiece {
    /// The piece.
    pub piece: PieceIndex,
    /// One bit per block, block 0 in the highest bit of byte 0 (libtorrent's layout, the
    /// same as a BEP 3 bitfield).
    pub bitmask: Vec<u8>,
}

impl UnfinishedPiece {
    /// Whether block `i` is on disk.
    #[must_use]
    pub fn has_block(&self, i: usize) -> bool {
        self.bitmask
            .get(i / 8)
            .is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
    }

    /// Marks block `i` as on disk.
    pub fn set_block(&mut self, i: usize) {
        if self.bitmask.len() <= i / 8 {
            self.bitmask.resize(i / 8 + 1, 0);
        }
        self.bitmask[i / 8] |= 0x80 >> (i % 8);
    }
}

/// Fast-resume data (the manual's resume file format; libtorrent 2.0's `add_torrent_params`
/// as `write_resume_data` encodes it).
///
/// Keys this type does not model are kept in [`ResumeData::extra`] and written back, so
/// resume data from libtorrent survives a round trip through this crate.
///
/// Crash consistency: only put a piece in [`ResumeData::pieces`] after it was verified and
/// written (and the storage flushed if it must survive a power loss). Then a process killed
/// at any point and restarted from its last resume data never reports an unverified piece,
/// and rechecks only what lt-storage's `verify_resume` rejects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResumeData {
    /// `info-hash`: the v1 info-hash.
    pub info_hash: Option<Sha1Hash>,
    /// `info-hash2`: the v2 info-hash.
    pub info_hash2: Option<Sha256Hash>,
    /// `name`.
    pub name: Option<String>,
    /// `save_path`.
    pub save_path: Option<String>,
    /// `info`: the torrent's info dictionary, raw, so the torrent can be added from resume
    /// data alone.
    pub info: Option<Vec<u8>>,
    /// `pieces`: the pieces we have (bit 1 of each byte). Its length is the number of pieces
    /// in the data (0 when the field was absent).
    pub pieces: Bitfield,
    /// `unfinished`: partly downloaded pieces.
    pub unfinished: Vec<UnfinishedPiece>,
    /// `file sizes`: `(size, mtime)` of each file when the data was saved; libtorrent 2
    /// does not write it, and lt-storage's `verify_resume` then checks the files against the
    /// pieces they must hold.
    pub file_sizes: Vec<(u64, i64)>,
    /// `allocation`.
    pub allocation: Allocation,
    /// `file_priority`: one per file.
    pub file_priority: Vec<u8>,
    /// `piece_priority`: one byte per piece.
    pub piece_priority: Vec<u8>,
    /// `peers` / `peers6` (compact) or the manual's list of `{ip, port}`.
    pub peers: Vec<SocketAddr>,
    /// `trackers`: tiers of announce URLs.
    pub trackers: Vec<Vec<String>>,
    /// `url-list`: BEP 19 web seeds.
    pub url_list: Vec<String>,
    /// `httpseeds`: BEP 17 seeds.
    pub httpseeds: Vec<String>,
    /// `mapped_files`: the files' renamed paths (empty when none was renamed).
    pub mapped_files: Vec<String>,
    /// `total_uploaded`.
    pub total_uploaded: i64,
    /// `total_downloaded`.
    pub total_downloaded: i64,
    /// `active_time`, seconds.
    pub active_time: i64,
    /// `seeding_time`, seconds.
    pub seeding_time: i64,
    /// `finished_time`, seconds.
    pub finished_time: i64,
    /// `added_time`, Unix seconds.
    pub added_time: i64,
    /// `completed_time`, Unix seconds.
    pub completed_time: i64,
    /// `seed_mode`.
    pub seed_mode: bool,
    /// `paused`.
    pub paused: bool,
    /// `auto_managed`.
    pub auto_managed: bool,
    /// `sequential_download`.
    pub sequential_download: bool,
    /// `super_seeding`.
    pub super_seeding: bool,
    /// `share_mode`.
    pub share_mode: bool,
    /// `upload_mode` (asked for by the user; not a disk error's).
    pub upload_mode: bool,
    /// `apply_ip_filter` (libtorrent writes it as a flag too; absent means true).
    pub apply_ip_filter: bool,
    /// `upload_rate_limit`, bytes per second (0: none).
    pub upload_rate_limit: u64,
    /// `download_rate_limit`, bytes per second (0: none).
    pub download_rate_limit: u64,
    /// `max_connections` (`None`: the session's default; libtorrent writes -1 or its own
    /// default).
    pub max_connections: Option<u64>,
    /// `max_uploads` (`None`: unlimited, -1 in the file).
    pub max_uploads: Option<u64>,
    /// Every other key, kept as it was.
    pub extra: BTreeMap<Vec<u8>, Value>,
}

const KNOWN: &[&str] = &[
    "file-format",
    "file-version",
    "info-hash",
    "info-hash2",
    "name",
    "save_path",
    "info",
    "pieces",
    "unfinished",
    "file sizes",
    "allocation",
    "file_priority",
    "piece_priority",
    "peers",
    "peers6",
    "trackers",
    "url-list",
    "httpseeds",
    "mapped_files",
    "total_uploaded",
    "total_downloaded",
    "active_time",
    "seeding_time",
    "finished_time",
    "added_time",
    "completed_time",
    "seed_mode",
    "paused",
    "auto_managed",
    "sequential_download",
    "super_seeding",
    "share_mode",
    "upload_mode",
    "apply_ip_filter",
    "upload_rate_limit",
    "download_rate_limit",
    "max_connections",
    "max_uploads",
];

impl ResumeData {
    /// Empty resume data for a torrent: its info-hashes, name and info dictionary, no pieces.
    #[must_use]
    pub fn new(info: &TorrentInfo) -> Self {
        let ih = info.info_hash();
        Self {
            info_hash: ih.v1_hash(),
            info_hash2: ih.v2_hash(),
            name: Some(info.name().to_owned()),
            info: Some(info.info_bytes().to_vec()),
            pieces: Bitfield::new(info.num_pieces() as usize),
            auto_managed: true,
            apply_ip_filter: true,
            ..Self::default()
        }
    }

    /// Parses resume data with the default [`ResumeLimits`].
    ///
    /// # Errors
    /// A [`ResumeError`] naming what is wrong.
    pub fn from_bytes(buf: &[u8]) -> Result<Self, ResumeError> {
        Self::from_bytes_with(buf, &ResumeLimits::default())
    }

    /// Parses resume data.
    ///
    /// # Errors
    /// A [`ResumeError`] naming what is wrong.
    pub fn from_bytes_with(buf: &[u8], limits: &ResumeLimits) -> Result<Self, ResumeError> {
        if buf.len() > limits.max_resume_size {
            return Err(ResumeError::InvalidField("size"));
        }
        let doc = lt_bencode::decode_with(
            buf,
            &lt_bencode::Limits {
                max_depth: limits.max_decode_depth,
                max_items: limits.max_decode_tokens,
            },
        )?;
        let d = doc.root().as_dict().ok_or(ResumeError::NotADictionary)?;
        if d.get_bytes("file-format") != Some(FILE_FORMAT.as_bytes())
            || d.get_int("file-version") != Some(1)
        {
            return Err(ResumeError::InvalidFileTag);
        }
        let mut r = Self {
            info_hash: match d.get_bytes("info-hash") {
                None => None,
                Some(b) => Some(Sha1Hash::from_slice(b).ok_or(ResumeError::MissingInfoHash)?),
            },
            info_hash2: match d.get_bytes("info-hash2") {
                None => None,
                Some(b) => Some(Sha256Hash::from_slice(b).ok_or(ResumeError::MissingInfoHash)?),
            },
            ..Self::default()
        };
        // libtorrent writes an all-zero v1 hash for v2-only torrents.
        r.info_hash = r.info_hash.filter(|h| !h.is_zero());
        r.info_hash2 = r.info_hash2.filter(|h| !h.is_zero());
        if r.info_hash.is_none() && r.info_hash2.is_none() {
            return Err(ResumeError::MissingInfoHash);
        }
        r.name = d.get_str("name").map(str::to_owned);
        r.save_path = d.get_str("save_path").map(str::to_owned);
        r.info = d.get_dict("info").map(|i| i.node().raw().to_vec());
        if let Some(p) = d.get_bytes("pieces") {
            r.pieces = p.iter().map(|b| b & 1 != 0).collect();
        }
        if let Some(list) = d.get_list("unfinished") {
            for e in list.iter().take(limits.max_unfinished) {
                let e = e.as_dict().ok_or(ResumeError::InvalidField("unfinished"))?;
                let piece = e
                    .get_int("piece")
                    .and_then(|p| u32::try_from(p).ok())
                    .ok_or(ResumeError::InvalidField("unfinished"))?;
                let bitmask = e.get_bytes("bitmask").unwrap_or_default().to_vec();
                r.unfinished.push(UnfinishedPiece {
                    piece: PieceIndex::new(piece),
                    bitmask,
                });
            }
        }
        if let Some(list) = d.get_list("file sizes") {
            for e in list.iter() {
                let pair = e.as_list().ok_or(ResumeError::InvalidField("file sizes"))?;
                let size = pair
                    .get(0)
                    .and_then(|n| n.as_int())
                    .and_then(|s| u64::try_from(s).ok())
                    .ok_or(ResumeError::InvalidField("file sizes"))?;
                let mtime = pair.get(1).and_then(|n| n.as_int()).unwrap_or(0);
                r.file_sizes.push((size, mtime));
            }
        }
        r.allocation = match d.get_bytes("allocation") {
            Some(b"allocate" | b"full") => Allocation::Full,
            _ => Allocation::Sparse,
        };
        if let Some(list) = d.get_list("file_priority") {
            r.file_priority = list
                .iter()
                .map(|n| {
                    n.as_int()
                        .map_or(4, |p| u8::try_from(p.clamp(0, 7)).unwrap_or(4))
                })
                .collect();
        }
        if let Some(p) = d.get_bytes("piece_priority") {
            r.piece_priority = p.to_vec();
        }
        parse_peers(&d, &mut r.peers, limits.max_peers)?;
        if let Some(tiers) = d.get_list("trackers") {
            for t in tiers.iter() {
                let t = t.as_list().ok_or(ResumeError::InvalidField("trackers"))?;
                r.trackers.push(
                    t.iter()
                        .filter_map(|u| u.as_str().map(str::to_owned))
                        .collect(),
                );
            }
        }
        r.url_list = strings(&d, "url-list");
        r.httpseeds = strings(&d, "httpseeds");
        r.mapped_files = strings(&d, "mapped_files");
        let int = |k: &str| d.get_int(k).unwrap_or(0);
        r.total_uploaded = int("total_uploaded");
        r.total_downloaded = int("total_downloaded");
        r.active_time = int("active_time");
        r.seeding_time = int("seeding_time");
        r.finished_time = int("finished_time");
        r.added_time = int("added_time");
        r.completed_time = int("completed_time");
        r.seed_mode = int("seed_mode") != 0;
        r.paused = int("paused") != 0;
        r.auto_managed = int("auto_managed") != 0;
        r.sequential_download = int("sequential_download") != 0;
        r.super_seeding = int("super_seeding") != 0;
        r.share_mode = int("share_mode") != 0;
        r.upload_mode = int("upload_mode") != 0;
        r.apply_ip_filter = d.get_int("apply_ip_filter").is_none_or(|v| v != 0);
        let limit = |k: &str| u64::try_from(int(k)).unwrap_or(0);
        r.upload_rate_limit = limit("upload_rate_limit");
        r.download_rate_limit = limit("download_rate_limit");
        let count = |k: &str| d.get_int(k).and_then(|v| u64::try_from(v).ok());
        r.max_connections = count("max_connections");
        r.max_uploads = count("max_uploads");
        for (k, v) in d.iter() {
            if !KNOWN.iter().any(|n| n.as_bytes() == k) {
                r.extra.insert(k.to_vec(), v.to_value());
            }
        }
        Ok(r)
    }

    /// Encodes the resume data (canonical bencoding, as `write_resume_data_buf`; the `info`
    /// dictionary keeps its own bytes, canonical or not).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut m: BTreeMap<Vec<u8>, Value> = self.extra.clone();
        let mut put = |k: &str, v: Value| {
            m.insert(k.as_bytes().to_vec(), v);
        };
        let int = |v: i64| Value::Int(v);
        put("file-format", Value::from(FILE_FORMAT));
        put("file-version", int(1));
        put(
            "info-hash",
            Value::from(self.info_hash.unwrap_or_default().as_ref()),
        );
        if let Some(h) = self.info_hash2 {
            put("info-hash2", Value::from(h.as_ref()));
        }
        if let Some(n) = &self.name {
            put("name", Value::from(n.as_str()));
        }
        if let Some(s) = &self.save_path {
            put("save_path", Value::from(s.as_str()));
        }
        // The info dictionary is written as it was, not re-encoded: its bytes are the
        // torrent's identity (the info-hash), and a torrent may carry a non-canonical one.
        let info = self
            .info
            .as_deref()
            .filter(|i| lt_bencode::decode(i).is_ok_and(|doc| doc.root().as_dict().is_some()));
        put(
            "pieces",
            Value::Bytes(
                (0..self.pieces.len())
                    .map(|i| u8::from(self.pieces.get(i)))
                    .collect(),
            ),
        );
        put(
            "unfinished",
            Value::List(
                self.unfinished
                    .iter()
                    .map(|u| {
                        Value::dict([
                            ("piece", int(i64::from(u.piece.get()))),
                            ("bitmask", Value::from(u.bitmask.as_slice())),
                        ])
                    })
                    .collect(),
            ),
        );
        if !self.file_sizes.is_empty() {
            put(
                "file sizes",
                Value::List(
                    self.file_sizes
                        .iter()
                        .map(|&(s, t)| {
                            Value::List(vec![int(i64::try_from(s).unwrap_or(i64::MAX)), int(t)])
                        })
                        .collect(),
                ),
            );
        }
        put(
            "allocation",
            Value::from(match self.allocation {
                Allocation::Sparse => "sparse",
                Allocation::Full => "allocate",
            }),
        );
        put(
            "file_priority",
            Value::List(
                self.file_priority
                    .iter()
                    .map(|&p| int(i64::from(p)))
                    .collect(),
            ),
        );
        put(
            "piece_priority",
            Value::from(self.piece_priority.as_slice()),
        );
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for p in &self.peers {
            match p.ip() {
                IpAddr::V4(ip) => v4.extend_from_slice(&ip.octets()),
                IpAddr::V6(ip) => v6.extend_from_slice(&ip.octets()),
            }
            let port = p.port().to_be_bytes();
            if p.is_ipv4() { &mut v4 } else { &mut v6 }.extend_from_slice(&port);
        }
        put("peers", Value::Bytes(v4));
        put("peers6", Value::Bytes(v6));
        put(
            "trackers",
            Value::List(
                self.trackers
                    .iter()
                    .map(|t| Value::List(t.iter().map(|u| Value::from(u.as_str())).collect()))
                    .collect(),
            ),
        );
        let list = |v: &[String]| Value::List(v.iter().map(|s| Value::from(s.as_str())).collect());
        put("url-list", list(&self.url_list));
        put("httpseeds", list(&self.httpseeds));
        if !self.mapped_files.is_empty() {
            put("mapped_files", list(&self.mapped_files));
        }
        put("total_uploaded", int(self.total_uploaded));
        put("total_downloaded", int(self.total_downloaded));
        put("active_time", int(self.active_time));
        put("seeding_time", int(self.seeding_time));
        put("finished_time", int(self.finished_time));
        put("added_time", int(self.added_time));
        put("completed_time", int(self.completed_time));
        put("seed_mode", int(i64::from(self.seed_mode)));
        put("paused", int(i64::from(self.paused)));
        put("auto_managed", int(i64::from(self.auto_managed)));
        put(
            "sequential_download",
            int(i64::from(self.sequential_download)),
        );
        put("super_seeding", int(i64::from(self.super_seeding)));
        put("share_mode", int(i64::from(self.share_mode)));
        put("upload_mode", int(i64::from(self.upload_mode)));
        put("apply_ip_filter", int(i64::from(self.apply_ip_filter)));
        let n = |v: u64| int(i64::try_from(v).unwrap_or(i64::MAX));
        put("upload_rate_limit", n(self.upload_rate_limit));
        put("download_rate_limit", n(self.download_rate_limit));
        put(
            "max_connections",
            self.max_connections.map_or_else(|| int(-1), n),
        );
        put("max_uploads", self.max_uploads.map_or_else(|| int(-1), n));
        let Some(info) = info else {
            return Value::Dict(m).to_bytes();
        };
        m.remove(b"info".as_slice());
        // `m` in key order, with the raw info dictionary spliced in at its place.
        let mut out = Vec::new();
        let mut info = Some(info);
        out.push(b'd');
        for (k, v) in &m {
            if k.as_slice() > b"info".as_slice()
                && let Some(raw) = info.take()
            {
                lt_bencode::write_bytes(&mut out, b"info");
                out.extend_from_slice(raw);
            }
            lt_bencode::write_bytes(&mut out, k);
            v.encode(&mut out);
        }
        if let Some(raw) = info {
            lt_bencode::write_bytes(&mut out, b"info");
            out.extend_from_slice(raw);
        }
        out.push(b'e');
        out
    }

    /// Applies `mapped_files` (renamed files) to a layout, before creating its storage.
    ///
    /// # Errors
    /// [`ResumeError::FileCount`] when the list does not have one entry per file.
    pub fn apply_mapped_files(&self, files: &mut FileStorage) -> Result<(), ResumeError> {
        if self.mapped_files.is_empty() {
            return Ok(());
        }
        if self.mapped_files.len() != files.num_files() {
            return Err(ResumeError::FileCount {
                field: "mapped_files",
                got: self.mapped_files.len(),
                expected: files.num_files(),
            });
        }
        for (i, name) in self.mapped_files.iter().enumerate() {
            let fi = FileIndex::new(u32::try_from(i).unwrap_or(u32::MAX));
            files
                .rename_file(fi, name)
                .map_err(|_| ResumeError::InvalidField("mapped_files"))?;
        }
        Ok(())
    }
}

fn strings(d: &Dict<'_>, key: &str) -> Vec<String> {
    d.get_list(key)
        .map(|l| {
            l.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn parse_peers(d: &Dict<'_>, out: &mut Vec<SocketAddr>, max: usize) -> Result<(), ResumeError> {
    match d.get("peers") {
        Some(n) if n.as_bytes().is_some() => {
            out.extend(compact::iter_v4(n.as_bytes().unwrap_or_default()).take(max));
        }
        Some(n) => {
            // The manual's older form: a list of {ip, port}.
            let list = n.as_list().ok_or(ResumeError::InvalidField("peers"))?;
            for e in list.iter().take(max) {
                let e = e.as_dict().ok_or(ResumeError::InvalidField("peers"))?;
                let ip: Option<IpAddr> = e.get_str("ip").and_then(|s| s.parse().ok());
                let port = e.get_int("port").and_then(|p| u16::try_from(p).ok());
                if let (Some(ip), Some(port)) = (ip, port) {
                    out.push(SocketAddr::new(ip, port));
                }
            }
        }
        None => {}
    }
    if let Some(b) = d.get_bytes("peers6") {
        let room = max.saturating_sub(out.len());
        out.extend(compact::iter_v6(b).take(room));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_canonical_info_dict_is_written_byte_for_byte() {
        // Keys out of order (older clients wrote such torrents): the info-hash is the SHA-1
        // of exactly these bytes, so re-encoding them would make it another torrent.
        let info = b"d6:pieces20:aaaaaaaaaaaaaaaaaaaa4:name1:x12:piece lengthi16384e6:lengthi5ee";
        let mut r = ResumeData {
            info_hash: Some(Sha1Hash::new([0x11; 20])),
            info: Some(info.to_vec()),
            ..ResumeData::default()
        };
        r.extra.insert(b"info".to_vec(), Value::Int(1));
        r.extra.insert(b"j".to_vec(), Value::Int(2));
        r.extra.insert(b"a".to_vec(), Value::Int(3));
        let bytes = r.to_bytes();
        let back = ResumeData::from_bytes(&bytes).unwrap();
        assert_eq!(back.info.as_deref(), Some(&info[..]));
        r.extra.remove(b"info".as_slice());
        assert_eq!(back, r);
        assert_eq!(back.to_bytes(), bytes);
    }
}
