//! Magnet links through the public API: real-world links, errors, limits and properties.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ops::RangeInclusive;

use lt_core::{InfoHash, Sha1Hash, Sha256Hash};
use lt_metainfo::magnet::{MagnetError, MagnetLink};
use quickcheck::{Arbitrary, Gen};
use quickcheck_macros::quickcheck;

const BBB_HEX: &str = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c";
const V2_HEX: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

fn v1(hex: &str) -> Sha1Hash {
    Sha1Hash::from_hex(hex).unwrap_or_else(|e| panic!("{hex}: {e}"))
}

fn v2(hex: &str) -> Sha256Hash {
    Sha256Hash::from_hex(hex).unwrap_or_else(|e| panic!("{hex}: {e}"))
}

fn parse(uri: &str) -> MagnetLink {
    match MagnetLink::parse(uri) {
        Ok(m) => m,
        Err(e) => panic!("{uri}: {e}"),
    }
}

fn err(uri: &str) -> MagnetError {
    match MagnetLink::parse(uri) {
        Ok(m) => panic!("{uri} parsed as {m:?}"),
        Err(e) => e,
    }
}

#[test]
fn webtorrent_big_buck_bunny() {
    let m = parse(
        "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&dn=Big+Buck+Bunny\
         &tr=udp%3A%2F%2Fexplodie.org%3A6969&tr=udp%3A%2F%2Ftracker.coppersurfer.tk%3A6969\
         &tr=udp%3A%2F%2Ftracker.empire-js.us%3A1337\
         &tr=udp%3A%2F%2Ftracker.leechers-paradise.org%3A6969\
         &tr=udp%3A%2F%2Ftracker.opentrackr.org%3A1337&tr=wss%3A%2F%2Ftracker.btorrent.xyz\
         &tr=wss%3A%2F%2Ftracker.fastcast.nz&tr=wss%3A%2F%2Ftracker.openwebtorrent.com\
         &ws=https%3A%2F%2Fwebtorrent.io%2Ftorrents%2F\
         &xs=https%3A%2F%2Fwebtorrent.io%2Ftorrents%2Fbig-buck-bunny.torrent",
    );
    assert_eq!(m.info_hash, InfoHash::v1(v1(BBB_HEX)));
    assert_eq!(m.name.as_deref(), Some("Big Buck Bunny"));
    assert_eq!(
        m.trackers,
        [
            "udp://explodie.org:6969",
            "udp://tracker.coppersurfer.tk:6969",
            "udp://tracker.empire-js.us:1337",
            "udp://tracker.leechers-paradise.org:6969",
            "udp://tracker.opentrackr.org:1337",
            "wss://tracker.btorrent.xyz",
            "wss://tracker.fastcast.nz",
            "wss://tracker.openwebtorrent.com",
        ]
    );
    assert_eq!(m.web_seeds, ["https://webtorrent.io/torrents/"]);
    assert!(m.peers.is_empty() && m.select_only.is_empty() && m.keywords.is_empty());
    assert_eq!(MagnetLink::parse(&m.to_uri()), Ok(m));
}

#[test]
fn v1_base32_either_case() {
    let want = InfoHash::v1(v1("a9993e364706816aba3e25717850c26c9cd0d89d"));
    for b32 in [
        "VGMT4NSHA2AWVOR6EVYXQUGCNSONBWE5",
        "vgmt4nsha2awvor6evyxqugcnsonbwe5",
    ] {
        let m = parse(&format!("magnet:?xt=urn:btih:{b32}&dn=abc"));
        assert_eq!(m.info_hash, want);
        // Written back as hex.
        assert_eq!(
            m.to_uri(),
            "magnet:?xt=urn:btih:a9993e364706816aba3e25717850c26c9cd0d89d&dn=abc"
        );
    }
}

#[test]
fn v1_hex_uppercase() {
    let m = parse(&format!(
        "magnet:?xt=urn:btih:{}",
        BBB_HEX.to_ascii_uppercase()
    ));
    assert_eq!(m, MagnetLink::new(InfoHash::v1(v1(BBB_HEX))));
}

#[test]
fn v2_only() {
    let m = parse(&format!("magnet:?xt=urn:btmh:1220{V2_HEX}&dn=v2%20only"));
    assert_eq!(m.info_hash, InfoHash::v2(v2(V2_HEX)));
    assert_eq!(m.name.as_deref(), Some("v2 only"));
    assert_eq!(
        m.to_uri(),
        format!("magnet:?xt=urn:btmh:1220{V2_HEX}&dn=v2%20only")
    );
}

#[test]
fn hybrid_in_either_order() {
    let want = InfoHash::hybrid(v1(BBB_HEX), v2(V2_HEX));
    let a = parse(&format!(
        "magnet:?xt=urn:btih:{BBB_HEX}&xt=urn:btmh:1220{V2_HEX}"
    ));
    let b = parse(&format!(
        "magnet:?xt.1=urn:btmh:1220{V2_HEX}&xt.2=urn:btih:{BBB_HEX}"
    ));
    assert_eq!(a.info_hash, want);
    assert_eq!(a, b);
    assert_eq!(
        a.to_uri(),
        format!("magnet:?xt=urn:btih:{BBB_HEX}&xt=urn:btmh:1220{V2_HEX}")
    );
}

#[test]
fn numbered_keys_and_case() {
    let m = parse(&format!(
        "MAGNET:?XT.1=URN:BTIH:{BBB_HEX}&TR.1=udp%3A%2F%2Fa%3A1&tr.2=udp%3A%2F%2Fb%3A2\
         &X.PE.1=10.0.0.1:6881&DN=x"
    ));
    assert_eq!(m.info_hash, InfoHash::v1(v1(BBB_HEX)));
    assert_eq!(m.trackers, ["udp://a:1", "udp://b:2"]);
    assert_eq!(m.peers, ["10.0.0.1:6881"]);
    assert_eq!(m.name.as_deref(), Some("x"));
}

#[test]
fn trackers_with_encoded_urls_dedup_in_order() {
    let m = parse(&format!(
        "magnet:?xt=urn:btih:{BBB_HEX}\
         &tr=http%3A%2F%2Ftracker.example%2Fannounce%3Fpasskey%3Dab%2Bcd%26x%3D1\
         &tr=udp://plain.example:6969/announce\
         &tr=http%3A%2F%2Ftracker.example%2Fannounce%3Fpasskey%3Dab%2Bcd%26x%3D1\
         &tr=&tr=udp%3A%2F%2Fplain.example%3A6969%2Fannounce\
         &tr=http%3A%2F%2F%E6%97%A5%E6%9C%AC.example%2F"
    ));
    assert_eq!(
        m.trackers,
        [
            "http://tracker.example/announce?passkey=ab+cd&x=1",
            "udp://plain.example:6969/announce",
            "http://日本.example/",
        ]
    );
    let uri = m.to_uri();
    assert!(
        uri.contains("&tr=http%3A%2F%2Ftracker.example%2Fannounce%3Fpasskey%3Dab%2Bcd%26x%3D1&")
    );
    assert!(uri.ends_with("&tr=http%3A%2F%2F%E6%97%A5%E6%9C%AC.example%2F"));
    assert_eq!(MagnetLink::parse(&uri), Ok(m));
}

#[test]
fn display_name_plus_and_percent() {
    let m = parse(&format!(
        "magnet:?xt=urn:btih:{BBB_HEX}&dn=a+b%2Bc%20%C3%A9&dn=ignored%3F"
    ));
    // The last `dn` wins, as in libtorrent.
    assert_eq!(m.name.as_deref(), Some("ignored?"));
    let m = parse(&format!(
        "magnet:?xt=urn:btih:{BBB_HEX}&dn=a+b%2Bc%20%C3%A9"
    ));
    assert_eq!(m.name.as_deref(), Some("a b+c é"));
    assert!(m.to_uri().ends_with("&dn=a%20b%2Bc%20%C3%A9"));
    // Bytes that are not UTF-8 are replaced, never a panic or an error.
    let m = parse(&format!("magnet:?xt=urn:btih:{BBB_HEX}&dn=%FFok"));
    assert_eq!(m.name.as_deref(), Some("\u{fffd}ok"));
}

#[test]
fn peers_ipv4_ipv6_and_hostnames() {
    let m = parse(&format!(
        "magnet:?xt=urn:btih:{BBB_HEX}&x.pe=192.168.1.2:6881&x.pe=%5B2001%3Adb8%3A%3A1%5D%3A51413\
         &x.pe=[::1]:1&x.pe=peer.example:6881&x.pe=192.168.1.2:6881"
    ));
    assert_eq!(
        m.peers,
        [
            "192.168.1.2:6881",
            "[2001:db8::1]:51413",
            "[::1]:1",
            "peer.example:6881"
        ]
    );
    assert_eq!(
        m.peer_addrs(),
        [
            SocketAddr::from((Ipv4Addr::new(192, 168, 1, 2), 6881)),
            SocketAddr::from(("2001:db8::1".parse::<Ipv6Addr>().unwrap(), 51413)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, 1)),
        ]
    );
    assert_eq!(MagnetLink::parse(&m.to_uri()), Ok(m));
}

#[test]
fn select_only_and_keywords() {
    let m = parse(&format!(
        "magnet:?xt=urn:btih:{BBB_HEX}&so=0,2,4-6&so.1=10%2C12-12&kt=free+open%2Bsource++movie"
    ));
    assert_eq!(m.select_only, [0..=0, 2..=2, 4..=6, 10..=10, 12..=12]);
    assert_eq!(m.keywords, ["free", "open+source", "movie"]);
    assert_eq!(
        m.to_uri(),
        format!("magnet:?xt=urn:btih:{BBB_HEX}&so=0,2,4-6,10,12&kt=free+open%2Bsource+movie")
    );
    assert_eq!(MagnetLink::parse(&m.to_uri()), Ok(m));
}

#[test]
fn unknown_and_empty_parameters_are_ignored() {
    let m = parse(&format!(
        "magnet:?xt=urn:ed2k:31d6cfe0d16ae931b73c59d7e0c089c0&xl=1024&xt=urn:btih:{BBB_HEX}\
         &foo=%zz&bare&&=x&dn=&ws=&x.pe=&so=&kt=&as=http%3A%2F%2Fa&mt=x"
    ));
    assert_eq!(m, MagnetLink::new(InfoHash::v1(v1(BBB_HEX))));
    // Without the `?`, as some pages write it.
    assert_eq!(
        parse(&format!("magnet:xt=urn:btih:{BBB_HEX}")),
        MagnetLink::new(InfoHash::v1(v1(BBB_HEX)))
    );
    // The same hash twice is not a conflict.
    assert_eq!(
        parse(&format!(
            "magnet:?xt=urn:btih:{BBB_HEX}&xt=urn:btih:{}",
            BBB_HEX.to_ascii_uppercase()
        ))
        .info_hash,
        InfoHash::v1(v1(BBB_HEX))
    );
}

#[test]
fn new_and_to_uri_encode_every_reserved_byte() {
    let mut m = MagnetLink::new(InfoHash::hybrid(v1(BBB_HEX), v2(V2_HEX)));
    m.name = Some("a b&c=d/e?f#g%h+i~j.k_l-m".to_owned());
    m.trackers = vec!["udp://t.example:6969/announce".to_owned()];
    m.web_seeds = vec!["https://ws.example/a b".to_owned()];
    m.peers = vec!["[::1]:6881".to_owned()];
    let reversed = RangeInclusive::new(9, 8);
    m.select_only = vec![1..=3, 5..=5, reversed];
    m.keywords = vec!["k w".to_owned()];
    assert_eq!(
        m.to_uri(),
        format!(
            "magnet:?xt=urn:btih:{BBB_HEX}&xt=urn:btmh:1220{V2_HEX}\
             &dn=a%20b%26c%3Dd%2Fe%3Ff%23g%25h%2Bi~j.k_l-m\
             &tr=udp%3A%2F%2Ft.example%3A6969%2Fannounce\
             &ws=https%3A%2F%2Fws.example%2Fa%20b&x.pe=%5B%3A%3A1%5D%3A6881&so=1-3,5&kt=k%20w"
        )
    );
    assert_eq!(m.to_string(), m.to_uri());
    let back: MagnetLink = m.to_uri().parse().unwrap();
    // The reversed range selects nothing and is not written.
    m.select_only.pop();
    assert_eq!(back, m);
}

#[test]
fn errors() {
    let cases: &[(&str, MagnetError)] = &[
        ("", MagnetError::NotAMagnet),
        ("magnet", MagnetError::NotAMagnet),
        ("http://example.com/?xt=urn:btih:x", MagnetError::NotAMagnet),
        ("magnét:?xt", MagnetError::NotAMagnet),
        ("magnet:?", MagnetError::MissingInfoHash),
        (
            "magnet:?dn=x&tr=udp%3A%2F%2Fa",
            MagnetError::MissingInfoHash,
        ),
        (
            "magnet:?xt=urn:ed2k:31d6cfe0d16ae931b73c59d7e0c089c0",
            MagnetError::MissingInfoHash,
        ),
        ("magnet:?xt=urn:btih:", MagnetError::InvalidInfoHash),
        ("magnet:?xt=urn:btih:abc", MagnetError::InvalidInfoHash),
        (
            "magnet:?xt=urn:btih:zz8255ecdc7ca55fb0bbf81323d87062db1f6d1c",
            MagnetError::InvalidInfoHash,
        ),
        (
            "magnet:?xt=urn:btih:VGMT4NSHA2AWVOR6EVYXQUGCNSONBWE1",
            MagnetError::InvalidInfoHash,
        ),
        (
            "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1€",
            MagnetError::InvalidInfoHash,
        ),
        (
            "magnet:?xt=urn:btmh:1114dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c",
            MagnetError::InvalidInfoHash,
        ),
        ("magnet:?xt=urn:btmh:1220abcd", MagnetError::InvalidInfoHash),
        (
            "magnet:?xt=urn:btmh:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            MagnetError::InvalidInfoHash,
        ),
        (
            "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c\
             &xt=urn:btih:a9993e364706816aba3e25717850c26c9cd0d89d",
            MagnetError::DuplicateInfoHash,
        ),
        ("magnet:?xt=urn:btih:%zz", MagnetError::BadPercentEncoding),
        (
            "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&dn=100%",
            MagnetError::BadPercentEncoding,
        ),
        (
            "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&tr=%E",
            MagnetError::BadPercentEncoding,
        ),
        (
            "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&x.pe=1.2.3.4",
            MagnetError::InvalidPeer,
        ),
        (
            "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&x.pe=::1:80",
            MagnetError::InvalidPeer,
        ),
        (
            "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&x.pe=1.2.3.4:0",
            MagnetError::InvalidPeer,
        ),
        (
            "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&x.pe=1.2.3.4:99999",
            MagnetError::InvalidPeer,
        ),
        (
            "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&so=6-4",
            MagnetError::InvalidSelectOnly,
        ),
        (
            "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&so=a",
            MagnetError::InvalidSelectOnly,
        ),
        (
            "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&so=1,,2",
            MagnetError::InvalidSelectOnly,
        ),
        (
            "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&so=-1",
            MagnetError::InvalidSelectOnly,
        ),
        (
            "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&so=4294967296",
            MagnetError::InvalidSelectOnly,
        ),
    ];
    for (uri, want) in cases {
        assert_eq!(&err(uri), want, "{uri}");
    }
}

#[test]
fn errors_convert_into_crate_error() {
    let e = lt_metainfo::Error::from(err("nope"));
    assert!(matches!(
        e,
        lt_metainfo::Error::Magnet(MagnetError::NotAMagnet)
    ));
    assert!(!e.to_string().is_empty());
}

#[test]
fn too_long_is_rejected_before_parsing() {
    let max = MagnetLink::MAX_URI_LEN;
    let base = format!("magnet:?xt=urn:btih:{BBB_HEX}&dn=");
    let fits = format!("{base}{}", "a".repeat(max - base.len()));
    assert_eq!(parse(&fits).name.map(|n| n.len()), Some(max - base.len()));
    let long = format!("{fits}a");
    assert_eq!(err(&long), MagnetError::TooLong { len: max + 1, max });
    assert_eq!(
        err(&"x".repeat(max + 1)),
        MagnetError::TooLong { len: max + 1, max }
    );
}

#[test]
fn lists_are_capped() {
    let mut uri = format!("magnet:?xt=urn:btih:{BBB_HEX}");
    for i in 0..MagnetLink::MAX_TRACKERS + 200 {
        uri.push_str(&format!("&tr=udp://t{i}:1&x.pe=p{i}:1&kt=k{i}"));
    }
    let m = parse(&uri);
    assert_eq!(m.trackers.len(), MagnetLink::MAX_TRACKERS);
    assert_eq!(m.trackers.first().map(String::as_str), Some("udp://t0:1"));
    assert_eq!(m.trackers.last().map(String::as_str), Some("udp://t999:1"));
    assert_eq!(m.peers.len(), MagnetLink::MAX_PEERS);
    assert_eq!(m.keywords.len(), MagnetLink::MAX_KEYWORDS);
}

// ---- properties ----

/// Text that exercises the encoder: arbitrary Unicode mixed with URI-reserved characters.
fn text(g: &mut Gen) -> String {
    const PIECES: &[&str] = &[
        "&",
        "=",
        "%",
        "%2",
        "%41",
        "+",
        " ",
        "?",
        "#",
        ":",
        "/",
        "[",
        "]",
        ",",
        "-",
        "~",
        "€",
        "日本",
        "\u{0}",
        "\u{10ffff}",
        "udp://tracker.example:6969/announce?k=v&x=1",
    ];
    let n = usize::arbitrary(g) % 6 + 1;
    let mut s = String::new();
    for _ in 0..n {
        if bool::arbitrary(g) {
            s.push_str(g.choose(PIECES).copied().unwrap_or("x"));
        } else {
            s.push_str(&String::arbitrary(g));
        }
    }
    if s.is_empty() {
        s.push('x');
    }
    s
}

fn distinct(g: &mut Gen, max: usize, mut item: impl FnMut(&mut Gen) -> String) -> Vec<String> {
    let n = usize::arbitrary(g) % (max + 1);
    let mut seen = HashSet::new();
    (0..n)
        .map(|_| item(g))
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

fn peer(g: &mut Gen) -> String {
    let port = u16::arbitrary(g).max(1);
    match u8::arbitrary(g) % 3 {
        0 => SocketAddrV4::new(Ipv4Addr::from(u32::arbitrary(g)), port).to_string(),
        1 => SocketAddrV6::new(Ipv6Addr::from(u128::arbitrary(g)), port, 0, 0).to_string(),
        _ => format!("peer-{}.example:{port}", u16::arbitrary(g)),
    }
}

/// A link as `parse` could return it: no empty strings, no duplicate trackers, web seeds
/// or peers, valid peers and ascending ranges.
#[derive(Clone, Debug)]
struct Link(MagnetLink);

impl Arbitrary for Link {
    fn arbitrary(g: &mut Gen) -> Self {
        let mut h1 = [0u8; 20];
        let mut h2 = [0u8; 32];
        h1.iter_mut().for_each(|b| *b = u8::arbitrary(g));
        h2.iter_mut().for_each(|b| *b = u8::arbitrary(g));
        let (h1, h2) = (Sha1Hash::new(h1), Sha256Hash::new(h2));
        let info_hash = match u8::arbitrary(g) % 3 {
            0 => InfoHash::v1(h1),
            1 => InfoHash::v2(h2),
            _ => InfoHash::hybrid(h1, h2),
        };
        let mut m = MagnetLink::new(info_hash);
        m.name = bool::arbitrary(g).then(|| text(g));
        m.trackers = distinct(g, 8, text);
        m.web_seeds = distinct(g, 4, text);
        m.peers = distinct(g, 6, peer);
        let ranges = usize::arbitrary(g) % 5;
        m.select_only = (0..ranges)
            .map(|_| {
                let (a, b) = (u32::arbitrary(g), u32::arbitrary(g));
                a.min(b)..=a.max(b)
            })
            .collect();
        let words = usize::arbitrary(g) % 4;
        m.keywords = (0..words).map(|_| text(g)).collect();
        Self(m)
    }
}

#[quickcheck]
fn round_trip(link: Link) -> bool {
    let uri = link.0.to_uri();
    uri.len() > MagnetLink::MAX_URI_LEN || MagnetLink::parse(&uri) == Ok(link.0)
}

#[quickcheck]
fn uri_is_ascii_without_raw_separators_in_values(link: Link) -> bool {
    let uri = link.0.to_uri();
    uri.is_ascii() && !uri.contains(' ') && !uri.contains('#')
}

/// Whatever `parse` accepts, writing it and parsing again gives the same link.
fn reparses(s: &str) -> bool {
    match MagnetLink::parse(s) {
        Ok(m) => {
            let uri = m.to_uri();
            uri.len() > MagnetLink::MAX_URI_LEN || MagnetLink::parse(&uri) == Ok(m)
        }
        Err(_) => true,
    }
}

#[quickcheck]
fn parse_never_panics(s: String) -> bool {
    reparses(&s)
}

#[quickcheck]
fn parse_never_panics_after_btih_prefix(s: String) -> bool {
    reparses(&format!("magnet:?xt=urn:btih:{s}"))
}

/// Random parameters built from the known keys, so the parser's deeper paths are reached.
#[derive(Clone, Debug)]
struct Params(String);

impl Arbitrary for Params {
    fn arbitrary(g: &mut Gen) -> Self {
        const KEYS: &[&str] = &[
            "xt", "xt.1", "XT", "dn", "tr", "tr.2", "ws", "x.pe", "x.pe.1", "so", "kt", "xs", "x",
            "", ".",
        ];
        let mut s = format!("magnet:?xt=urn:btih:{BBB_HEX}");
        let n = usize::arbitrary(g) % 8;
        for _ in 0..n {
            let key = g.choose(KEYS).copied().unwrap_or("dn");
            let value = match u8::arbitrary(g) % 6 {
                0 => format!("urn:btmh:1220{V2_HEX}"),
                1 => format!("urn:btih:{}", String::arbitrary(g)),
                2 => peer(g),
                3 => format!(
                    "{},{}-{}",
                    u8::arbitrary(g),
                    u8::arbitrary(g),
                    u16::arbitrary(g)
                ),
                _ => text(g),
            };
            s.push('&');
            s.push_str(key);
            s.push('=');
            s.push_str(&value);
        }
        Self(s)
    }
}

#[quickcheck]
fn parse_never_panics_on_known_keys(p: Params) -> bool {
    reparses(&p.0)
}
