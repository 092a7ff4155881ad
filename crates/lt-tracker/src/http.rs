//! HTTP(S) trackers (BEP 3, 7, 23, 48): announce and scrape URLs, and reply parsing.
//!
//! This module builds the request target and parses the body; the caller fetches it
//! (following redirects, decompressing gzip, using TLS for `https`) and passes the body to
//! [`parse_announce`] or [`parse_scrape`]. The body's length should be checked against
//! [`HttpConfig::max_reply_len`] while reading; the parsers check it again.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use lt_bencode::{Dict, Limits, Node};
use lt_core::{PeerId, Sha1Hash};

use crate::peers::{decode_compact_v4, decode_compact_v6};
use crate::{AnnounceRequest, AnnounceResponse, Error, Peer, ScrapeEntry, limits};

/// Bounds for parsing HTTP tracker replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpConfig {
    /// Largest reply body accepted. Default [`limits::MAX_REPLY_LEN`] (1 MiB).
    pub max_reply_len: usize,
    /// Bencode depth and item limits. Default depth [`limits::MAX_BENCODE_DEPTH`], items
    /// [`limits::MAX_BENCODE_ITEMS`].
    pub bencode: Limits,
    /// Most peers kept from one reply. Default [`limits::MAX_PEERS_PER_REPLY`].
    pub max_peers: usize,
    /// Most files kept from one scrape reply. Default [`limits::MAX_SCRAPE_FILES`].
    pub max_scrape_files: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_reply_len: limits::MAX_REPLY_LEN,
            bencode: Limits {
                max_depth: limits::MAX_BENCODE_DEPTH,
                max_items: limits::MAX_BENCODE_ITEMS,
            },
            max_peers: limits::MAX_PEERS_PER_REPLY,
            max_scrape_files: limits::MAX_SCRAPE_FILES,
        }
    }
}

/// Percent-encodes bytes for a query string: RFC 3986 unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) stay, everything else becomes `%XX` (upper-case hex).
pub fn percent_encode(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Decodes `%XX` escapes (and `+` as space); `None` on a malformed escape.
pub fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'%' => {
                let hi = hex_val(*s.get(i + 1)?)?;
                let lo = hex_val(*s.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Builds the full announce URL: `base` plus the BEP 3 query.
///
/// `base` keeps its own query (private trackers put a passkey there); ours is appended
/// with `&`. Keys: `info_hash`, `peer_id`, `port`, `uploaded`, `downloaded`, `left`,
/// `event` (when not [`crate::Event::None`]), `key` (8 hex digits), `numwant`, `compact`,
/// `no_peer_id`, `supportcrypto`, `ipv4`, `ipv6` and `trackerid`.
///
/// ```
/// use lt_core::{PeerId, Sha1Hash};
/// use lt_tracker::{AnnounceRequest, http::announce_url};
/// let req = AnnounceRequest::new(Sha1Hash::new([0xab; 20]), PeerId::new(*b"-LT0100-aaaaaaaaaaaa"), 6881);
/// let url = announce_url("http://t.example/announce", &req);
/// assert!(url.starts_with("http://t.example/announce?info_hash=%AB%AB"));
/// assert!(url.contains("&peer_id=-LT0100-aaaaaaaaaaaa&port=6881&"));
/// ```
pub fn announce_url(base: &str, req: &AnnounceRequest) -> String {
    let mut url = String::with_capacity(base.len() + 300);
    url.push_str(base);
    url.push(if base.contains('?') { '&' } else { '?' });
    url.push_str("info_hash=");
    percent_encode(req.info_hash.as_bytes(), &mut url);
    url.push_str("&peer_id=");
    percent_encode(req.peer_id.as_bytes(), &mut url);
    let _ = write!(
        url,
        "&port={}&uploaded={}&downloaded={}&left={}",
        req.port, req.uploaded, req.downloaded, req.left
    );
    if let Some(event) = req.event.as_http() {
        let _ = write!(url, "&event={event}");
    }
    let _ = write!(url, "&key={:08X}", req.key);
    if let Some(n) = req.num_want {
        let _ = write!(url, "&numwant={n}");
    }
    let _ = write!(url, "&compact={}", u8::from(req.compact));
    if req.no_peer_id {
        url.push_str("&no_peer_id=1");
    }
    if req.support_crypto {
        url.push_str("&supportcrypto=1");
    }
    if let Some(ip) = req.ipv4 {
        let _ = write!(url, "&ipv4={ip}");
    }
    if let Some(ip) = req.ipv6 {
        url.push_str("&ipv6=");
        percent_encode(ip.to_string().as_bytes(), &mut url);
    }
    if let Some(id) = &req.tracker_id {
        url.push_str("&trackerid=");
        percent_encode(id, &mut url);
    }
    url
}

/// The BEP 48 scrape URL for an announce URL: the last path segment must start with
/// `announce`, which becomes `scrape`. `None` means the tracker does not support scrape.
pub fn scrape_base(announce: &str) -> Option<String> {
    let (path, query) = match announce.find('?') {
        Some(q) => announce.split_at(q),
        None => (announce, ""),
    };
    let slash = path.rfind('/')?;
    let last = path.get(slash + 1..)?;
    let rest = last.strip_prefix("announce")?;
    Some(format!("{}scrape{rest}{query}", path.get(..=slash)?))
}

/// The full scrape URL for `announce` and the given torrents, or `None` if the tracker's
/// URL does not allow scraping (BEP 48).
pub fn scrape_url(announce: &str, hashes: &[Sha1Hash]) -> Option<String> {
    let mut url = scrape_base(announce)?;
    let mut sep = if url.contains('?') { '&' } else { '?' };
    for h in hashes {
        url.push(sep);
        url.push_str("info_hash=");
        percent_encode(h.as_bytes(), &mut url);
        sep = '&';
    }
    Some(url)
}

/// Parses an announce reply body.
///
/// A `failure reason` becomes [`Error::TrackerFailure`]. Both `peers` forms are accepted
/// (a compact string, or a list of dictionaries with `ip`, `port` and optional
/// `peer id`), plus `peers6`. Peers with port 0 are dropped from compact lists; in the
/// dictionary form a port of 0 or outside 1..=65535, or an unparsable `ip`, makes the
/// reply invalid ([`Error::InvalidPeer`]) only if no peer at all is usable — otherwise
/// the bad entries are skipped.
pub fn parse_announce(body: &[u8], config: &HttpConfig) -> Result<AnnounceResponse, Error> {
    let doc = decode_doc(body, config)?;
    let doc_dict = root_dict(&doc)?;
    check_failure(&doc_dict)?;
    let mut resp = AnnounceResponse {
        interval: limits::clamp_interval(
            doc_dict
                .get_int("interval")
                .and_then(|i| u64::try_from(i).ok())
                .ok_or(Error::BadField { key: "interval" })?,
        ),
        min_interval: doc_dict
            .get_int("min interval")
            .and_then(|i| u64::try_from(i).ok())
            .map(limits::clamp_interval),
        complete: count(&doc_dict, "complete"),
        incomplete: count(&doc_dict, "incomplete"),
        downloaded: count(&doc_dict, "downloaded"),
        warning: doc_dict.get_bytes("warning message").map(message),
        tracker_id: doc_dict
            .get_bytes("tracker id")
            .map(|id| id.get(..limits::MAX_TRACKER_ID_LEN).unwrap_or(id).to_vec()),
        external_ip: doc_dict.get_bytes("external ip").and_then(ip_from_bytes),
        peers: Vec::new(),
    };
    // A reply without peers (e.g. to `stopped`) is fine.
    if let Some(node) = doc_dict.get("peers") {
        if let Some(bytes) = node.as_bytes() {
            decode_compact_v4(bytes, config.max_peers, &mut resp.peers)?;
        } else if let Some(list) = node.as_list() {
            let mut bad = 0usize;
            for item in list.iter() {
                if resp.peers.len() >= config.max_peers {
                    break;
                }
                match dict_peer(item) {
                    Some(p) => resp.peers.push(p),
                    None => bad += 1,
                }
            }
            if bad > 0 && resp.peers.is_empty() {
                return Err(Error::InvalidPeer);
            }
        } else {
            return Err(Error::BadField { key: "peers" });
        }
    }
    if let Some(node) = doc_dict.get("peers6") {
        let bytes = node.as_bytes().ok_or(Error::BadField { key: "peers6" })?;
        decode_compact_v6(bytes, config.max_peers, &mut resp.peers)?;
    }
    Ok(resp)
}

/// Parses a scrape reply body: the `files` dictionary keyed by 20-byte info-hashes.
/// Entries with a key of another length are skipped; a missing count is 0.
pub fn parse_scrape(body: &[u8], config: &HttpConfig) -> Result<Vec<ScrapeEntry>, Error> {
    let doc = decode_doc(body, config)?;
    let dict = root_dict(&doc)?;
    check_failure(&dict)?;
    let files = dict
        .get_dict("files")
        .ok_or(Error::BadField { key: "files" })?;
    let mut out = Vec::new();
    for (key, value) in files.iter() {
        if out.len() >= config.max_scrape_files {
            break;
        }
        let Some(info_hash) = Sha1Hash::from_slice(key) else {
            continue;
        };
        let Some(d) = value.as_dict() else {
            return Err(Error::BadField { key: "files" });
        };
        out.push(ScrapeEntry {
            info_hash,
            complete: count(&d, "complete").unwrap_or(0),
            incomplete: count(&d, "incomplete").unwrap_or(0),
            downloaded: count(&d, "downloaded").unwrap_or(0),
        });
    }
    Ok(out)
}

fn decode_doc<'a>(body: &'a [u8], config: &HttpConfig) -> Result<lt_bencode::Document<'a>, Error> {
    if body.len() > config.max_reply_len {
        return Err(Error::ReplyTooLarge {
            len: body.len(),
            max: config.max_reply_len,
        });
    }
    // The tracker reply must be exactly one value; `decode_with` rejects trailing bytes.
    Ok(lt_bencode::decode_with(body, &config.bencode)?)
}

fn root_dict<'d>(doc: &'d lt_bencode::Document<'_>) -> Result<Dict<'d>, Error> {
    doc.root()
        .as_dict()
        .ok_or(Error::BadField { key: "(root)" })
}

fn check_failure(dict: &Dict<'_>) -> Result<(), Error> {
    if let Some(reason) = dict.get_bytes("failure reason") {
        return Err(Error::TrackerFailure {
            message: message(reason),
        });
    }
    Ok(())
}

/// A tracker's text, lossily decoded and truncated to [`limits::MAX_MESSAGE_LEN`] bytes.
pub(crate) fn message(bytes: &[u8]) -> String {
    let cut = bytes.get(..limits::MAX_MESSAGE_LEN).unwrap_or(bytes);
    String::from_utf8_lossy(cut).into_owned()
}

fn count(dict: &Dict<'_>, key: &str) -> Option<u32> {
    dict.get_int(key).and_then(|i| u32::try_from(i).ok())
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b)
            .ok()
            .map(|a| Ipv4Addr::from(a).into()),
        16 => <[u8; 16]>::try_from(b)
            .ok()
            .map(|a| Ipv6Addr::from(a).into()),
        _ => None,
    }
}

fn dict_peer(node: Node<'_>) -> Option<Peer> {
    let d = node.as_dict()?;
    let ip: IpAddr = d.get_str("ip")?.parse().ok()?;
    let port = u16::try_from(d.get_int("port")?).ok().filter(|&p| p != 0)?;
    let peer_id = d.get_bytes("peer id").and_then(PeerId::from_slice);
    Some(Peer {
        addr: SocketAddr::new(ip, port),
        peer_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::Event;

    fn cfg() -> HttpConfig {
        HttpConfig::default()
    }

    #[test]
    fn url_encoding_is_exact() {
        let mut ih = [0u8; 20];
        ih[0] = 0x12;
        ih[1] = b'a';
        ih[2] = b' ';
        ih[3] = b'~';
        ih[4] = b'/';
        let mut req = AnnounceRequest::new(
            Sha1Hash::new(ih),
            PeerId::new(*b"-LT0100-0123456789ab"),
            6881,
        );
        req.event = Event::Started;
        req.key = 0xdead_beef;
        req.num_want = Some(50);
        req.support_crypto = true;
        req.ipv6 = Some("::1".parse().unwrap());
        req.left = 1000;
        let url = announce_url("http://x/announce?pk=1", &req);
        assert_eq!(
            url,
            "http://x/announce?pk=1&info_hash=%12a%20~%2F%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00\
             &peer_id=-LT0100-0123456789ab&port=6881&uploaded=0&downloaded=0&left=1000\
             &event=started&key=DEADBEEF&numwant=50&compact=1&no_peer_id=1&supportcrypto=1&ipv6=%3A%3A1"
        );
        let q = url
            .split_once("info_hash=")
            .unwrap()
            .1
            .split('&')
            .next()
            .unwrap();
        assert_eq!(percent_decode(q.as_bytes()).unwrap(), ih);
    }

    #[test]
    fn scrape_urls() {
        assert_eq!(
            scrape_base("http://a/announce").as_deref(),
            Some("http://a/scrape")
        );
        assert_eq!(
            scrape_base("http://a/x/announce.php?k=1").as_deref(),
            Some("http://a/x/scrape.php?k=1")
        );
        assert_eq!(scrape_base("http://a/a"), None);
        assert_eq!(scrape_base("http://a/announce/x"), None);
        let u = scrape_url(
            "http://a/announce",
            &[Sha1Hash::new([1; 20]), Sha1Hash::new([2; 20])],
        )
        .unwrap();
        assert!(u.starts_with("http://a/scrape?info_hash=%01"));
        assert_eq!(u.matches("info_hash=").count(), 2);
    }

    #[test]
    fn compact_reply() {
        let body =
            b"d8:completei5e10:downloadedi7e10:incompletei3e8:intervali1800e12:min intervali60e\
            5:peers12:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x1a\xe26:peers618:\
            \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe3\
            10:tracker id3:abc15:warning message4:warn11:external ip4:\x01\x02\x03\x04e";
        let r = parse_announce(body, &cfg()).unwrap();
        assert_eq!(r.interval, Duration::from_secs(1800));
        assert_eq!(r.min_interval, Some(Duration::from_secs(60)));
        assert_eq!(
            (r.complete, r.incomplete, r.downloaded),
            (Some(5), Some(3), Some(7))
        );
        assert_eq!(r.peers.len(), 3);
        assert_eq!(r.peers[0].addr, "127.0.0.1:6881".parse().unwrap());
        assert_eq!(r.peers[2].addr, "[::1]:6883".parse().unwrap());
        assert_eq!(r.tracker_id.as_deref(), Some(&b"abc"[..]));
        assert_eq!(r.warning.as_deref(), Some("warn"));
        assert_eq!(r.external_ip, Some("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn dict_peers() {
        let body = b"d8:intervali60e5:peersld2:ip9:127.0.0.17:peer id20:-XX0000-aaaaaaaaaaaa4:porti80eed2:ip3:::14:porti0eeee";
        let r = parse_announce(body, &cfg()).unwrap();
        assert_eq!(r.peers.len(), 1);
        assert_eq!(
            r.peers[0].peer_id,
            Some(PeerId::new(*b"-XX0000-aaaaaaaaaaaa"))
        );
        let bad = b"d8:intervali60e5:peersld2:ip3:::14:porti0eeee";
        assert_eq!(parse_announce(bad, &cfg()), Err(Error::InvalidPeer));
    }

    #[test]
    fn hostile_replies() {
        assert_eq!(
            parse_announce(b"d14:failure reason5:nope!e", &cfg()),
            Err(Error::TrackerFailure {
                message: "nope!".into()
            })
        );
        assert!(matches!(
            parse_announce(b"d8:intervali60e5:peers7:abcdefge", &cfg()),
            Err(Error::TrailingPeerBytes { len: 7, entry: 6 })
        ));
        let mut bomb = vec![b'l'; 100_000];
        bomb.extend(vec![b'e'; 100_000]);
        assert!(matches!(
            parse_announce(&bomb, &cfg()),
            Err(Error::Bencode(_))
        ));
        let big = vec![b'x'; limits::MAX_REPLY_LEN + 1];
        assert!(matches!(
            parse_announce(&big, &cfg()),
            Err(Error::ReplyTooLarge { .. })
        ));
        assert_eq!(
            parse_announce(b"le", &cfg()),
            Err(Error::BadField { key: "(root)" })
        );
        assert_eq!(
            parse_announce(b"de", &cfg()),
            Err(Error::BadField { key: "interval" })
        );
        assert!(parse_announce(b"d8:intervali-1ee", &cfg()).is_err());
        assert!(parse_announce(b"d8:intervali1ee trailing", &cfg()).is_err());
    }

    #[test]
    fn scrape_reply() {
        let mut body = b"d5:filesd20:".to_vec();
        body.extend([7u8; 20]);
        body.extend(b"d8:completei1e10:downloadedi2e10:incompletei3eeee");
        let r = parse_scrape(&body, &cfg()).unwrap();
        assert_eq!(
            r,
            vec![ScrapeEntry {
                info_hash: Sha1Hash::new([7; 20]),
                complete: 1,
                incomplete: 3,
                downloaded: 2
            }]
        );
    }
}
