//! Web seeds: what to ask an HTTP server for one run of a torrent's bytes. BEP 19 url seeds
//! (GetRight style: the server holds the torrent's files) and BEP 17 HTTP seeds (Hoffman
//! style: a script answers `?info_hash=&piece=&ranges=`). Pure: URLs and byte ranges; the
//! driver does the HTTP ([`crate::Action::WebRequest`]).

use std::fmt::Write as _;
use std::time::Duration;

use lt_metainfo::{FileStorage, WebSeed, WebSeedKind};

use crate::{ConnId, TorrentId};

/// One part of a web request, in the torrent's byte order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebPart {
    /// `GET url` for `len` bytes starting at `start` of the resource: a `Range` header
    /// `bytes=start-(start+len-1)` for a url seed (answer 206 with exactly those bytes, or
    /// 200 with the whole resource when `start` is 0); no `Range` header for an HTTP seed,
    /// whose URL names the range (answer 200 with `len` bytes).
    Get {
        /// The URL.
        url: String,
        /// Whether the range goes in a `Range` header (url seeds) or is in the URL.
        range_header: bool,
        /// First byte in the resource.
        start: u64,
        /// Bytes.
        len: u64,
    },
    /// `len` zero bytes no server is asked for (a BEP 47 pad file).
    Zeros(u64),
}

impl WebPart {
    /// Bytes this part yields.
    #[must_use]
    pub const fn len(&self) -> u64 {
        match self {
            Self::Get { len, .. } | Self::Zeros(len) => *len,
        }
    }

    /// Whether it yields nothing.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A run of a torrent's bytes to fetch from a web seed ([`crate::Action::WebRequest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebRequest {
    /// The torrent.
    pub torrent: TorrentId,
    /// The web seed (the id its alerts and peer entry carry).
    pub seed: ConnId,
    /// The request's id, for [`crate::Input::WebData`] and [`crate::Input::WebDone`].
    pub request: u64,
    /// The web seed's URL (the parts hold the URLs to fetch).
    pub url: String,
    /// What to fetch, in order.
    pub parts: Vec<WebPart>,
}

impl WebRequest {
    /// Bytes the request yields.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.parts.iter().map(WebPart::len).sum()
    }

    /// Whether it yields nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a web request failed, as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebError {
    /// The HTTP status, when the server answered.
    pub status: Option<u16>,
    /// How long the server asked us to wait (`Retry-After`, or a BEP 17 503 body).
    pub retry_after: Option<Duration>,
    /// What went wrong, for the alert.
    pub message: String,
}

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "HTTP {s}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Percent-encodes a URL path component or query value: everything but RFC 3986's
/// unreserved characters.
#[must_use]
pub fn escape(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The URL of file `file` under a BEP 19 url seed: a URL ending in `/` is a directory
/// that holds the torrent (its name, then for a multi-file torrent the file's path);
/// otherwise the URL is the file itself (single-file) or the torrent's directory
/// (multi-file, a `/` is added).
#[must_use]
pub fn url_seed_file_url(base: &str, files: &FileStorage, file: usize) -> String {
    let Some(f) = files.files().get(file) else {
        return base.to_owned();
    };
    let multi = files.files().iter().any(|f| f.path.len() > 1);
    if !multi && !base.ends_with('/') {
        return base.to_owned();
    }
    let mut url = base.to_owned();
    if !url.ends_with('/') {
        url.push('/');
    }
    let parts: Vec<String> = f.path.iter().map(|c| escape(c.as_bytes())).collect();
    url.push_str(&parts.join("/"));
    url
}

/// The URL of bytes `begin..begin+len` of `piece` from a BEP 17 HTTP seed.
#[must_use]
pub fn http_seed_url(base: &str, info_hash: &[u8; 20], piece: u32, begin: u64, len: u64) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!(
        "{base}{sep}info_hash={}&piece={piece}&ranges={begin}-{}",
        escape(info_hash),
        begin + len.max(1) - 1
    )
}

/// The parts that fetch the torrent bytes `start..start+len` from `seed`, in order: for a
/// url seed one `GET` per file the range touches (pad files are zeros, empty files
/// nothing); for an HTTP seed one `GET` per piece.
#[must_use]
pub fn plan(
    seed: &WebSeed,
    files: &FileStorage,
    info_hash: &[u8; 20],
    start: u64,
    len: u64,
) -> Vec<WebPart> {
    let end = start.saturating_add(len).min(files.total_size());
    let mut parts = Vec::new();
    match seed.kind {
        WebSeedKind::Url => {
            let first = files.file_index_at(start);
            for (i, f) in files.files().iter().enumerate().skip(first) {
                if f.offset >= end {
                    break;
                }
                let from = start.max(f.offset);
                let to = end.min(f.offset + f.size);
                if to <= from {
                    continue;
                }
                if f.is_pad() {
                    parts.push(WebPart::Zeros(to - from));
                } else {
                    parts.push(WebPart::Get {
                        url: url_seed_file_url(&seed.url, files, i),
                        range_header: true,
                        start: from - f.offset,
                        len: to - from,
                    });
                }
            }
        }
        WebSeedKind::Http => {
            let piece_len = u64::from(files.piece_length().max(1));
            let mut at = start;
            while at < end {
                let piece = at / piece_len;
                let to = end.min((piece + 1) * piece_len);
                let begin = at - piece * piece_len;
                parts.push(WebPart::Get {
                    url: http_seed_url(
                        &seed.url,
                        info_hash,
                        u32::try_from(piece).unwrap_or(u32::MAX),
                        begin,
                        to - at,
                    ),
                    range_header: false,
                    start: 0,
                    len: to - at,
                });
                at = to;
            }
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use lt_metainfo::{FileAttr, FileEntry, FilePath};

    use super::*;

    fn storage(files: &[(&[&str], u64, bool)], piece: u32) -> FileStorage {
        let mut offset = 0;
        let entries: Vec<FileEntry> = files
            .iter()
            .map(|&(path, size, pad)| {
                let e = FileEntry {
                    path: FilePath::new(path.iter().map(|s| (*s).to_owned())),
                    size,
                    offset,
                    attr: FileAttr {
                        pad,
                        ..FileAttr::default()
                    },
                    symlink_target: None,
                    mtime: None,
                    pieces_root: None,
                };
                offset += size;
                e
            })
            .collect();
        FileStorage::new(path_name(files), piece, entries).unwrap()
    }

    fn path_name(files: &[(&[&str], u64, bool)]) -> String {
        files[0].0[0].to_owned()
    }

    fn url(u: &str) -> WebSeed {
        WebSeed {
            url: u.to_owned(),
            kind: WebSeedKind::Url,
        }
    }

    #[test]
    fn escaping_keeps_only_unreserved_characters() {
        assert_eq!(escape(b"a b/c%d~e.f_g-h"), "a%20b%2Fc%25d~e.f_g-h");
        assert_eq!(escape("é".as_bytes()), "%C3%A9");
    }

    #[test]
    fn single_file_urls() {
        let fs = storage(&[(&["big file.iso"], 100, false)], 16384);
        assert_eq!(
            url_seed_file_url("http://h/pub/", &fs, 0),
            "http://h/pub/big%20file.iso"
        );
        assert_eq!(
            url_seed_file_url("http://h/pub/x.iso", &fs, 0),
            "http://h/pub/x.iso"
        );
    }

    #[test]
    fn multi_file_urls_append_the_path() {
        let fs = storage(
            &[
                (&["t", "a.txt"], 10, false),
                (&["t", "d", "b c"], 10, false),
            ],
            16384,
        );
        assert_eq!(url_seed_file_url("http://h/", &fs, 1), "http://h/t/d/b%20c");
        assert_eq!(
            url_seed_file_url("http://h/x", &fs, 0),
            "http://h/x/t/a.txt"
        );
    }

    #[test]
    fn a_range_over_files_and_pad_files() {
        let fs = storage(
            &[
                (&["t", "a"], 10, false),
                (&["t", ".pad", "6"], 6, true),
                (&["t", "empty"], 0, false),
                (&["t", "b"], 20, false),
            ],
            16,
        );
        let parts = plan(&url("http://h/"), &fs, &[0; 20], 4, 30);
        assert_eq!(
            parts,
            vec![
                WebPart::Get {
                    url: "http://h/t/a".into(),
                    range_header: true,
                    start: 4,
                    len: 6
                },
                WebPart::Zeros(6),
                WebPart::Get {
                    url: "http://h/t/b".into(),
                    range_header: true,
                    start: 0,
                    len: 18
                },
            ]
        );
        assert_eq!(parts.iter().map(WebPart::len).sum::<u64>(), 30);
        // Past the end is cut at the end.
        let tail = plan(&url("http://h/"), &fs, &[0; 20], 30, 100);
        assert_eq!(tail.iter().map(WebPart::len).sum::<u64>(), 6);
    }

    #[test]
    fn http_seeds_are_asked_piece_by_piece() {
        let fs = storage(&[(&["f"], 40, false)], 16);
        let seed = WebSeed {
            url: "http://h/seed.php?x=1".into(),
            kind: WebSeedKind::Http,
        };
        let parts = plan(&seed, &fs, &[0xab; 20], 8, 30);
        let urls: Vec<String> = parts
            .iter()
            .map(|p| match p {
                WebPart::Get { url, len, .. } => format!("{url} {len}"),
                WebPart::Zeros(_) => unreachable!(),
            })
            .collect();
        let ih = "%AB".repeat(20);
        assert_eq!(
            urls,
            vec![
                format!("http://h/seed.php?x=1&info_hash={ih}&piece=0&ranges=8-15 8"),
                format!("http://h/seed.php?x=1&info_hash={ih}&piece=1&ranges=0-15 16"),
                format!("http://h/seed.php?x=1&info_hash={ih}&piece=2&ranges=0-5 6"),
            ]
        );
    }
}
