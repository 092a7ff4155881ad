//! Magnet links: parsing and writing `magnet:?xt=urn:btih:...` URIs.
//!
//! ```text
//!  "magnet:?xt=...&dn=...&tr=..." ──MagnetLink::parse──▶ MagnetLink ──to_uri / Display──▶ "magnet:?..."
//!                                                          ├─ info_hash: InfoHash (v1, v2 or hybrid)
//!                                                          ├─ name, trackers, web_seeds, keywords
//!                                                          └─ peers (peer_addrs()), select_only
//! ```
//!
//! Implements BEP 9 (magnet links: `xt=urn:btih:` with 40 hex or 32 base32 digits, `dn`,
//! `tr`, `ws`, `x.pe`, `kt`), BEP 52 (v2 info-hashes as `xt=urn:btmh:1220<64 hex>`, a
//! SHA2-256 multihash; a link with both a `btih` and a `btmh` names a hybrid torrent) and
//! BEP 53 (`so=0,2,4-6`, the files to download). Like libtorrent, keys may carry a number
//! (`xt.1`, `tr.2`, `x.pe.1`), key names are matched without regard to case, and unknown
//! keys and unknown `xt` namespaces (`urn:ed2k:`...) are ignored. Parameters with an empty
//! value are ignored.
//!
//! Input is untrusted: a URI longer than [`MagnetLink::MAX_URI_LEN`] is rejected before it
//! is looked at, lists are capped ([`MagnetLink::MAX_TRACKERS`], ...) with extras dropped,
//! and no input makes the parser panic. This module performs no I/O; fetching the metadata
//! a magnet link names is the job of the `ut_metadata` extension (BEP 9) elsewhere.
//!
//! [`MagnetLink::to_uri`] percent-encodes every byte of a value outside the unreserved
//! characters (`A-Z a-z 0-9 - . _ ~`), as libtorrent's `make_magnet_uri` does, so
//! `MagnetLink::parse(&m.to_uri()) == Ok(m)` for every link `parse` can return, as long as
//! the written URI stays within [`MagnetLink::MAX_URI_LEN`] (encoding can triple the length
//! of non-ASCII text).
//!
//! # Example
//!
//! ```
//! use lt_metainfo::magnet::MagnetLink;
//!
//! let m: MagnetLink = "magnet:?xt=urn:btih:08ada5a7a6183aae1e09d831df6748d566095a10\
//!     &dn=Sintel&tr=udp%3A%2F%2Ftracker.opentrackr.org%3A1337&x.pe=[::1]:6881&so=0,2-3"
//!     .parse()?;
//! assert_eq!(m.name.as_deref(), Some("Sintel"));
//! assert_eq!(m.trackers, ["udp://tracker.opentrackr.org:1337"]);
//! assert_eq!(m.peer_addrs(), ["[::1]:6881".parse()?]);
//! assert_eq!(m.select_only, [0..=0, 2..=3]);
//! assert_eq!(MagnetLink::parse(&m.to_uri()), Ok(m));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;
use core::ops::RangeInclusive;
use core::str::FromStr;
use std::collections::HashSet;
use std::net::{Ipv6Addr, SocketAddr};

use lt_core::{InfoHash, Sha1Hash, Sha256Hash};

/// Why a magnet link was rejected.
///
/// No variant holds bytes from the link itself.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    /// The URI does not start with the `magnet:` scheme.
    #[error("not a magnet link")]
    NotAMagnet,
    /// There is no `xt=urn:btih:` or `xt=urn:btmh:` parameter.
    #[error("magnet link has no info-hash")]
    MissingInfoHash,
    /// A `btih` is neither 40 hex nor 32 base32 digits, or a `btmh` is not a SHA2-256
    /// multihash (`1220` followed by 64 hex digits).
    #[error("magnet link has an invalid info-hash")]
    InvalidInfoHash,
    /// Two `btih` or two `btmh` parameters name different info-hashes.
    #[error("magnet link has two different info-hashes of one kind")]
    DuplicateInfoHash,
    /// A `%` is not followed by two hex digits.
    #[error("bad percent-encoding in magnet link")]
    BadPercentEncoding,
    /// An `x.pe` peer is not `host:port`, `ipv4:port` or `[ipv6]:port` with a port in
    /// `1..=65535`.
    #[error("invalid x.pe peer address in magnet link")]
    InvalidPeer,
    /// The BEP 53 `so` list has an entry that is not a file index or an ascending range
    /// `first-last` of them.
    #[error("invalid so (select-only) list in magnet link")]
    InvalidSelectOnly,
    /// The URI is longer than [`MagnetLink::MAX_URI_LEN`].
    #[error("magnet link of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// Length of the URI in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// A parsed magnet link (BEP 9, 52, 53).
///
/// Build one with [`MagnetLink::new`] and fill in the public fields, or parse one with
/// [`MagnetLink::parse`] (also [`FromStr`]). [`MagnetLink::to_uri`] (also [`fmt::Display`])
/// writes it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MagnetLink {
    /// The torrent's identity: `xt=urn:btih:` gives the v1 hash, `xt=urn:btmh:` the v2 hash,
    /// both a hybrid.
    pub info_hash: InfoHash,
    /// The display name (`dn`), percent-decoded, with `+` read as a space.
    pub name: Option<String>,
    /// Tracker URLs (`tr`), percent-decoded, without duplicates, in the order given.
    pub trackers: Vec<String>,
    /// Web seed URLs (`ws`, BEP 19), percent-decoded, without duplicates.
    pub web_seeds: Vec<String>,
    /// Peers to contact (`x.pe`) as given: `host:port`, `ipv4:port` or `[ipv6]:port`,
    /// without duplicates. [`MagnetLink::peer_addrs`] returns those that are IP addresses.
    pub peers: Vec<String>,
    /// The file indices to download (BEP 53 `so`), as inclusive ranges in the order given;
    /// empty means all files.
    pub select_only: Vec<RangeInclusive<u32>>,
    /// Search keywords (`kt`), split on `+` and percent-decoded.
    pub keywords: Vec<String>,
}

impl MagnetLink {
    /// Longest URI [`MagnetLink::parse`] accepts, in bytes: 64 KiB.
    pub const MAX_URI_LEN: usize = 64 * 1024;
    /// Most trackers kept by [`MagnetLink::parse`]; later ones are dropped. 1,000.
    pub const MAX_TRACKERS: usize = 1000;
    /// Most web seeds kept by [`MagnetLink::parse`]; later ones are dropped. 1,000.
    pub const MAX_WEB_SEEDS: usize = 1000;
    /// Most peers kept by [`MagnetLink::parse`]; later ones are dropped. 1,000.
    pub const MAX_PEERS: usize = 1000;
    /// Most keywords kept by [`MagnetLink::parse`]; later ones are dropped. 1,000.
    pub const MAX_KEYWORDS: usize = 1000;

    /// A magnet link with only an info-hash.
    #[must_use]
    pub const fn new(info_hash: InfoHash) -> Self {
        Self {
            info_hash,
            name: None,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            peers: Vec::new(),
            select_only: Vec::new(),
            keywords: Vec::new(),
        }
    }

    /// Parses a `magnet:?` URI.
    ///
    /// # Errors
    ///
    /// [`MagnetError::TooLong`] beyond [`MagnetLink::MAX_URI_LEN`] bytes,
    /// [`MagnetError::NotAMagnet`] without the `magnet:` scheme,
    /// [`MagnetError::MissingInfoHash`], [`MagnetError::InvalidInfoHash`] and
    /// [`MagnetError::DuplicateInfoHash`] for the `xt` parameters,
    /// [`MagnetError::BadPercentEncoding`], [`MagnetError::InvalidPeer`] and
    /// [`MagnetError::InvalidSelectOnly`] for the values of known keys.
    pub fn parse(uri: &str) -> Result<Self, MagnetError> {
        if uri.len() > Self::MAX_URI_LEN {
            return Err(MagnetError::TooLong {
                len: uri.len(),
                max: Self::MAX_URI_LEN,
            });
        }
        let query = strip_prefix_no_case(uri, "magnet:").ok_or(MagnetError::NotAMagnet)?;
        let query = query.strip_prefix('?').unwrap_or(query);

        let mut v1: Option<Sha1Hash> = None;
        let mut v2: Option<Sha256Hash> = None;
        let mut name = None;
        let mut trackers = Bounded::new(Self::MAX_TRACKERS);
        let mut web_seeds = Bounded::new(Self::MAX_WEB_SEEDS);
        let mut peers = Bounded::new(Self::MAX_PEERS);
        let mut select_only = Vec::new();
        let mut keywords = Vec::new();

        for param in query.split('&') {
            // A parameter without `=` carries nothing; libtorrent skips it too.
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            let key = base_key(key);
            if key.eq_ignore_ascii_case("xt") {
                match parse_exact_topic(&percent_decode(value, false)?)? {
                    Some(Topic::V1(h)) => set_once(&mut v1, h)?,
                    Some(Topic::V2(h)) => set_once(&mut v2, h)?,
                    None => {}
                }
            } else if key.eq_ignore_ascii_case("dn") {
                // Form encoding: `+` is a space in a display name. Like libtorrent, the
                // last `dn` wins.
                let dn = percent_decode(value, true)?;
                if !dn.is_empty() {
                    name = Some(dn);
                }
            } else if key.eq_ignore_ascii_case("tr") {
                trackers.push(percent_decode(value, false)?);
            } else if key.eq_ignore_ascii_case("ws") {
                web_seeds.push(percent_decode(value, false)?);
            } else if key.eq_ignore_ascii_case("x.pe") {
                let peer = percent_decode(value, false)?;
                if !is_valid_peer(&peer) {
                    return Err(MagnetError::InvalidPeer);
                }
                peers.push(peer);
            } else if key.eq_ignore_ascii_case("so") {
                parse_select_only(&percent_decode(value, false)?, &mut select_only)?;
            } else if key.eq_ignore_ascii_case("kt") {
                // `+` separates keywords, so split before decoding: an encoded `%2B` stays
                // inside its keyword.
                for word in value.split('+') {
                    let word = percent_decode(word, false)?;
                    if !word.is_empty() && keywords.len() < Self::MAX_KEYWORDS {
                        keywords.push(word);
                    }
                }
            }
            // Unknown keys (`xs`, `as`, `mt`, ...) are ignored (BEP 9 leaves room for more).
        }

        let info_hash = InfoHash::from_parts(v1, v2).ok_or(MagnetError::MissingInfoHash)?;
        Ok(Self {
            info_hash,
            name,
            trackers: trackers.items,
            web_seeds: web_seeds.items,
            peers: peers.items,
            select_only,
            keywords,
        })
    }

    /// Writes the link as a `magnet:?` URI: `xt=urn:btih:<40 hex>` for a v1 hash, then
    /// `xt=urn:btmh:1220<64 hex>` for a v2 hash, then `dn`, each `tr`, `ws`, `x.pe`, then
    /// `so` and `kt`.
    ///
    /// Values are percent-encoded except for unreserved characters. Empty strings and
    /// reversed (empty) ranges are left out, since they carry nothing.
    #[must_use]
    pub fn to_uri(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push_str("magnet:?");
        let mut first = true;
        let mut sep = |out: &mut String| {
            if !first {
                out.push('&');
            }
            first = false;
        };
        if let Some(v1) = self.info_hash.v1_hash() {
            sep(&mut out);
            out.push_str("xt=urn:btih:");
            out.push_str(&v1.to_hex());
        }
        if let Some(v2) = self.info_hash.v2_hash() {
            sep(&mut out);
            // BEP 52: a multihash, 0x12 = sha2-256 and 0x20 = 32 bytes.
            out.push_str("xt=urn:btmh:1220");
            out.push_str(&v2.to_hex());
        }
        let lists: [(&str, &[String]); 4] = [
            ("dn", self.name.as_slice()),
            ("tr", &self.trackers),
            ("ws", &self.web_seeds),
            ("x.pe", &self.peers),
        ];
        for (key, values) in lists {
            for value in values.iter().filter(|v| !v.is_empty()) {
                sep(&mut out);
                out.push_str(key);
                out.push('=');
                push_percent_encoded(&mut out, value);
            }
        }
        let mut ranges = self.select_only.iter().filter(|r| !r.is_empty());
        if let Some(r) = ranges.next() {
            sep(&mut out);
            out.push_str("so=");
            push_range(&mut out, r);
            for r in ranges {
                out.push(',');
                push_range(&mut out, r);
            }
        }
        let mut words = self.keywords.iter().filter(|w| !w.is_empty());
        if let Some(w) = words.next() {
            sep(&mut out);
            out.push_str("kt=");
            push_percent_encoded(&mut out, w);
            for w in words {
                out.push('+');
                push_percent_encoded(&mut out, w);
            }
        }
        out
    }

    /// The `x.pe` peers that are IP literals (`1.2.3.4:6881`, `[::1]:6881`) as socket
    /// addresses, in order; host names are skipped, since resolving them needs I/O.
    #[must_use]
    pub fn peer_addrs(&self) -> Vec<SocketAddr> {
        self.peers.iter().filter_map(|p| p.parse().ok()).collect()
    }
}

impl FromStr for MagnetLink {
    type Err = MagnetError;

    fn from_str(s: &str) -> Result<Self, MagnetError> {
        Self::parse(s)
    }
}

/// Writes [`MagnetLink::to_uri`].
impl fmt::Display for MagnetLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

/// A parsed `xt` value this module understands.
enum Topic {
    V1(Sha1Hash),
    V2(Sha256Hash),
}

/// Parses an already percent-decoded `xt` value; `Ok(None)` for other namespaces.
fn parse_exact_topic(xt: &str) -> Result<Option<Topic>, MagnetError> {
    if let Some(h) = strip_prefix_no_case(xt, "urn:btih:") {
        // BEP 9: 40 hex digits, or 32 base32 digits for compatibility with old links.
        let hash = match h.len() {
            40 => Sha1Hash::from_hex(h),
            32 => Sha1Hash::from_base32(h),
            _ => return Err(MagnetError::InvalidInfoHash),
        };
        hash.map(|h| Some(Topic::V1(h)))
            .map_err(|_| MagnetError::InvalidInfoHash)
    } else if let Some(mh) = strip_prefix_no_case(xt, "urn:btmh:") {
        // BEP 52: a multihash; only 0x12 (sha2-256) with length 0x20 names a v2 torrent.
        let hex = mh
            .strip_prefix("1220")
            .ok_or(MagnetError::InvalidInfoHash)?;
        Sha256Hash::from_hex(hex)
            .map(|h| Some(Topic::V2(h)))
            .map_err(|_| MagnetError::InvalidInfoHash)
    } else {
        // Other namespaces (`urn:sha1:`, `urn:ed2k:`...) may name the same content for
        // other networks.
        Ok(None)
    }
}

/// Records a hash; the same hash twice is fine, two different ones are an error.
fn set_once<T: PartialEq>(slot: &mut Option<T>, value: T) -> Result<(), MagnetError> {
    match slot {
        Some(existing) if *existing != value => Err(MagnetError::DuplicateInfoHash),
        Some(_) => Ok(()),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// A list that keeps distinct non-empty items in order, up to a cap; extras are dropped.
struct Bounded {
    items: Vec<String>,
    seen: HashSet<String>,
    max: usize,
}

impl Bounded {
    fn new(max: usize) -> Self {
        Self {
            items: Vec::new(),
            seen: HashSet::new(),
            max,
        }
    }

    fn push(&mut self, item: String) {
        if item.is_empty() || self.items.len() >= self.max || self.seen.contains(&item) {
            return;
        }
        self.seen.insert(item.clone());
        self.items.push(item);
    }
}

/// The key without a libtorrent-style number: `tr.1` -> `tr`, `x.pe.2` -> `x.pe`; `x.pe`
/// itself is kept.
fn base_key(key: &str) -> &str {
    match key.split_once('.') {
        Some((prefix, _)) if !prefix.eq_ignore_ascii_case("x") => prefix,
        Some(_) => match key.rsplit_once('.') {
            Some((head, n))
                if head.contains('.') && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
            {
                head
            }
            _ => key,
        },
        None => key,
    }
}

/// `s` without `prefix`, compared ignoring ASCII case; never slices inside a character.
fn strip_prefix_no_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.as_bytes().get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix.as_bytes()) {
        // `head` equals the ASCII `prefix`, so `prefix.len()` is a character boundary.
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// Decodes `%XX` escapes (and `+` as a space if asked). Bytes that are not UTF-8 after
/// decoding become U+FFFD.
fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, MagnetError> {
    let bytes = s.as_bytes();
    // Bounded by `MAX_URI_LEN`, which `parse` checked first.
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(MagnetError::BadPercentEncoding);
                };
                out.push((hi << 4) | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Appends `s` with every byte outside RFC 3986's unreserved set as `%XX`.
fn push_percent_encoded(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

fn push_range(out: &mut String, r: &RangeInclusive<u32>) {
    out.push_str(&r.start().to_string());
    if r.start() != r.end() {
        out.push('-');
        out.push_str(&r.end().to_string());
    }
}

/// Parses a BEP 53 list `0,2,4-6` into `out`.
fn parse_select_only(s: &str, out: &mut Vec<RangeInclusive<u32>>) -> Result<(), MagnetError> {
    for item in s.split(',') {
        let range = match item.split_once('-') {
            Some((first, last)) => parse_index(first)?..=parse_index(last)?,
            None => {
                let i = parse_index(item)?;
                i..=i
            }
        };
        // BEP 53: a range runs from its first to its last index; reversed ranges are invalid.
        if range.is_empty() {
            return Err(MagnetError::InvalidSelectOnly);
        }
        out.push(range);
    }
    Ok(())
}

/// A file index: ASCII digits only (`u32::from_str` would also take a leading `+`).
fn parse_index(s: &str) -> Result<u32, MagnetError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MagnetError::InvalidSelectOnly);
    }
    s.parse().map_err(|_| MagnetError::InvalidSelectOnly)
}

/// Whether `s` is `host:port`, `ipv4:port` or `[ipv6]:port` with a non-zero port (BEP 9
/// `x.pe`).
fn is_valid_peer(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    if !port_ok {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|v6| v6.parse::<Ipv6Addr>().is_ok())
    } else {
        // A host name or an IPv4 literal; a bare IPv6 literal without brackets is ambiguous.
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_keys() {
        assert_eq!(base_key("tr"), "tr");
        assert_eq!(base_key("tr.1"), "tr");
        assert_eq!(base_key("xt.2"), "xt");
        assert_eq!(base_key("x.pe"), "x.pe");
        assert_eq!(base_key("x.pe.3"), "x.pe");
        assert_eq!(base_key("X.PE.3"), "X.PE");
        assert_eq!(base_key("x."), "x.");
        assert_eq!(base_key("."), "");
    }

    #[test]
    fn percent_coding() {
        assert_eq!(percent_decode("a%20b+c", false).unwrap(), "a b+c");
        assert_eq!(percent_decode("a%20b+c", true).unwrap(), "a b c");
        assert_eq!(percent_decode("%e2%82%AC", false).unwrap(), "€");
        assert_eq!(percent_decode("%ff", false).unwrap(), "\u{fffd}");
        for bad in ["%", "%2", "%zz", "a%2", "%€"] {
            assert_eq!(
                percent_decode(bad, false),
                Err(MagnetError::BadPercentEncoding)
            );
        }
        let mut s = String::new();
        push_percent_encoded(&mut s, "a-._~ /:?&=+%€");
        assert_eq!(s, "a-._~%20%2F%3A%3F%26%3D%2B%25%E2%82%AC");
    }

    #[test]
    fn prefix_never_splits_characters() {
        assert_eq!(strip_prefix_no_case("MAGNET:?x", "magnet:"), Some("?x"));
        assert_eq!(strip_prefix_no_case("magne€", "magnet:"), None);
        assert_eq!(strip_prefix_no_case("mag", "magnet:"), None);
    }

    #[test]
    fn peers() {
        for ok in ["1.2.3.4:80", "[::1]:6881", "host.example:65535", "a_b-c:1"] {
            assert!(is_valid_peer(ok), "{ok}");
        }
        for bad in [
            "1.2.3.4",
            "1.2.3.4:",
            "1.2.3.4:0",
            "1.2.3.4:65536",
            "1.2.3.4:+80",
            "::1:80",
            "[::1:80",
            "[zz]:80",
            ":80",
            "h€st:80",
        ] {
            assert!(!is_valid_peer(bad), "{bad}");
        }
    }

    #[test]
    fn select_only() {
        let mut v = Vec::new();
        parse_select_only("0,2,4-6,7-7", &mut v).unwrap();
        assert_eq!(v, [0..=0, 2..=2, 4..=6, 7..=7]);
        for bad in [
            "",
            "1,",
            "6-4",
            "-1",
            "1-",
            "+1",
            "a",
            "4294967296",
            "1-2-3",
        ] {
            assert_eq!(
                parse_select_only(bad, &mut Vec::new()),
                Err(MagnetError::InvalidSelectOnly),
                "{bad}"
            );
        }
    }
}
