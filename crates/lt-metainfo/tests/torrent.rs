//! Loading, writing and creating torrents through the public API.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::collections::BTreeMap;

use lt_bencode::Value;
use lt_core::{FileIndex, PieceIndex, Sha1Hash};
use lt_metainfo::{CreateTorrent, Error, LoadLimits, TorrentInfo, TorrentVersion};
use quickcheck::{Arbitrary, Gen};
use quickcheck_macros::quickcheck;

fn s(v: &str) -> Value {
    Value::from(v)
}

/// A v1 multi-file torrent with the given (path, length) files.
fn v1_torrent(files: &[(&[&str], i64)], piece_len: i64) -> Vec<u8> {
    let total: i64 = files.iter().map(|f| f.1).sum();
    let pieces = (total + piece_len - 1) / piece_len;
    let list = files
        .iter()
        .map(|(path, len)| {
            Value::dict([
                ("length", Value::Int(*len)),
                ("path", Value::List(path.iter().map(|c| s(c)).collect())),
            ])
        })
        .collect();
    let info = Value::dict([
        ("files", Value::List(list)),
        ("name", s("t")),
        ("piece length", Value::Int(piece_len)),
        (
            "pieces",
            Value::Bytes(vec![0xab; usize::try_from(pieces * 20).unwrap()]),
        ),
    ]);
    Value::dict([("announce", s("http://tracker/announce")), ("info", info)]).to_bytes()
}

fn with_info(info: Value) -> Vec<u8> {
    Value::dict([("info", info)]).to_bytes()
}

#[test]
fn v1_multi_file_layout() {
    let bytes = v1_torrent(&[(&["a", "b.txt"], 10), (&["c"], 0), (&["d"], 30)], 16);
    let t = TorrentInfo::from_bytes(&bytes).unwrap();
    assert_eq!(t.name(), "t");
    assert_eq!(t.num_pieces(), 3);
    assert_eq!(t.total_size(), 40);
    let paths: Vec<String> = t.files().files().iter().map(|f| f.path_string()).collect();
    assert_eq!(paths, ["t/a/b.txt", "t/c", "t/d"]);
    assert_eq!(
        t.piece_hash(PieceIndex::new(2)),
        Some(Sha1Hash::new([0xab; 20]))
    );
    assert_eq!(t.piece_hash(PieceIndex::new(3)), None);
    assert_eq!(t.trackers()[0].url, "http://tracker/announce");
    // The v1 info-hash is the SHA-1 of the info dictionary's exact bytes.
    let doc = lt_bencode::decode(&bytes).unwrap();
    let raw = doc.root().as_dict().unwrap().get("info").unwrap().raw();
    assert_eq!(t.info_hash().v1_hash(), Some(Sha1Hash::digest(raw)));
    assert_eq!(t.info_bytes(), raw);
}

#[test]
fn non_canonical_info_keeps_its_hash() {
    // Keys out of order inside info: the hash must cover the bytes as written.
    let info = b"d6:lengthi3e4:name1:x6:pieces20:aaaaaaaaaaaaaaaaaaaa12:piece lengthi16384ee";
    let mut bytes = b"d4:info".to_vec();
    bytes.extend_from_slice(info);
    bytes.extend_from_slice(b"e\n");
    let t = TorrentInfo::from_bytes(&bytes).unwrap();
    assert_eq!(t.info_hash().v1_hash(), Some(Sha1Hash::digest(info)));
    let again = TorrentInfo::from_bytes(&t.to_bytes()).unwrap();
    assert_eq!(again.info_hash(), t.info_hash());
}

#[test]
fn hostile_paths_stay_inside() {
    let bytes = v1_torrent(
        &[
            (&["..", "..", "etc", "passwd"], 1),
            (&["/abs", "x"], 1),
            (&["a\\..\\..\\b"], 1),
            (&[".", ""], 1),
            (&["nul\0byte"], 1),
        ],
        16384,
    );
    let t = TorrentInfo::from_bytes(&bytes).unwrap();
    for f in t.files().files() {
        assert_eq!(f.path.first(), Some("t"));
        for c in &f.path {
            assert!(!c.is_empty() && c != "." && c != "..", "{:?}", f.path);
            assert!(
                !c.contains('/') && !c.contains('\\') && !c.contains('\0'),
                "{:?}",
                f.path
            );
        }
        assert!(f.path_buf().is_relative());
    }
    let paths: Vec<String> = t.files().files().iter().map(|f| f.path_string()).collect();
    assert_eq!(
        paths,
        [
            "t/etc/passwd",
            "t/_abs/x",
            "t/a_.._.._b",
            "t/_",
            "t/nul_byte"
        ]
    );
    // A hostile name becomes a plain component.
    let evil = with_info(Value::dict([
        ("length", Value::Int(1)),
        ("name", s("../../evil")),
        ("piece length", Value::Int(16384)),
        ("pieces", Value::Bytes(vec![0; 20])),
    ]));
    assert_eq!(TorrentInfo::from_bytes(&evil).unwrap().name(), ".._.._evil");
}

#[test]
fn malformed_torrents_are_typed_errors() {
    let base = |k: &str, v: Value| {
        let mut info = BTreeMap::new();
        info.insert(b"length".to_vec(), Value::Int(100));
        info.insert(b"name".to_vec(), s("x"));
        info.insert(b"piece length".to_vec(), Value::Int(16384));
        info.insert(b"pieces".to_vec(), Value::Bytes(vec![0; 20]));
        info.insert(k.as_bytes().to_vec(), v);
        with_info(Value::Dict(info))
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"le".to_vec(), "TorrentIsNoDict"),
        (b"de".to_vec(), "MissingInfo"),
        (b"d4:infoi1ee".to_vec(), "InfoIsNoDict"),
        (base("piece length", Value::Int(0)), "InvalidPieceLength"),
        (base("piece length", Value::Int(-5)), "InvalidPieceLength"),
        (base("pieces", Value::Bytes(vec![0; 19])), "InvalidHashes"),
        (base("pieces", Value::Bytes(vec![0; 40])), "InvalidHashes"),
        (base("length", Value::Int(-1)), "InvalidFile"),
        (base("meta version", Value::Int(3)), "UnsupportedVersion"),
        (
            base("files", Value::List(vec![Value::Int(1)])),
            "InvalidFile",
        ),
        (
            base(
                "files",
                Value::List(vec![
                    Value::dict([
                        ("length", Value::Int(i64::MAX)),
                        ("path", Value::List(vec![s("a")])),
                    ]),
                    Value::dict([
                        ("length", Value::Int(i64::MAX)),
                        ("path", Value::List(vec![s("b")])),
                    ]),
                ]),
            ),
            "LimitExceeded",
        ),
        (b"d4:infod".to_vec(), "Bencode"),
    ];
    for (bytes, want) in cases {
        let err = TorrentInfo::from_bytes(&bytes).unwrap_err();
        assert!(format!("{err:?}").starts_with(want), "{want}: got {err:?}");
    }
    let name_missing = with_info(Value::dict([
        ("length", Value::Int(1)),
        ("piece length", Value::Int(16384)),
        ("pieces", Value::Bytes(vec![0; 20])),
    ]));
    assert!(matches!(
        TorrentInfo::from_bytes(&name_missing),
        Err(Error::MissingName)
    ));
}

#[test]
fn limits_bound_hostile_torrents() {
    let bytes = v1_torrent(&[(&["a"], 1), (&["b"], 1), (&["c"], 1)], 16384);
    let limits = LoadLimits {
        max_files: 2,
        ..LoadLimits::default()
    };
    assert!(matches!(
        TorrentInfo::from_bytes_with(&bytes, &limits),
        Err(Error::LimitExceeded(_))
    ));
    let limits = LoadLimits {
        max_buffer_size: 10,
        ..LoadLimits::default()
    };
    assert!(matches!(
        TorrentInfo::from_bytes_with(&bytes, &limits),
        Err(Error::TooLarge { .. })
    ));
    let limits = LoadLimits {
        max_pieces: 0,
        ..LoadLimits::default()
    };
    assert!(matches!(
        TorrentInfo::from_bytes_with(&bytes, &limits),
        Err(Error::LimitExceeded(_))
    ));
}

#[test]
fn trackers_web_seeds_and_root_fields_round_trip() {
    let info = Value::dict([
        ("length", Value::Int(5)),
        ("name", s("f")),
        ("piece length", Value::Int(16384)),
        ("pieces", Value::Bytes(vec![1; 20])),
        ("private", Value::Int(1)),
    ]);
    let bytes = Value::dict([
        ("announce", s("http://ignored-when-list-present")),
        (
            "announce-list",
            Value::List(vec![
                Value::List(vec![s("http://a"), s("udp://b:1")]),
                Value::List(vec![s("http://c"), s("http://a")]),
            ]),
        ),
        ("url-list", s("http://seed/")),
        ("httpseeds", Value::List(vec![s("http://hs/")])),
        (
            "nodes",
            Value::List(vec![Value::List(vec![s("127.0.0.1"), Value::Int(6881)])]),
        ),
        ("comment", s("hi")),
        ("created by", s("me")),
        ("creation date", Value::Int(1_700_000_000)),
        ("x-unknown", Value::Int(7)),
        ("info", info),
    ])
    .to_bytes();
    let t = TorrentInfo::from_bytes(&bytes).unwrap();
    let trackers: Vec<(&str, u8)> = t
        .trackers()
        .iter()
        .map(|a| (a.url.as_str(), a.tier))
        .collect();
    assert_eq!(
        trackers,
        [("http://a", 0), ("udp://b:1", 0), ("http://c", 1)]
    );
    assert_eq!(t.web_seeds().len(), 2);
    assert_eq!(t.nodes(), [("127.0.0.1".to_owned(), 6881)]);
    assert!(t.is_private());
    assert_eq!(
        (t.comment(), t.created_by(), t.creation_date()),
        (Some("hi"), Some("me"), Some(1_700_000_000))
    );
    assert_eq!(
        t.extra_fields()
            .get(&b"x-unknown"[..])
            .map(|raw| lt_bencode::decode(raw).unwrap().root().to_value()),
        Some(Value::Int(7))
    );
    let again = TorrentInfo::from_bytes(&t.to_bytes()).unwrap();
    assert_eq!(again, t);
    let magnet = t.magnet_link();
    assert_eq!(magnet.info_hash, t.info_hash());
    assert_eq!(magnet.trackers.len(), 3);
}

fn sample_dir(sizes: &[(&str, usize)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    for (i, (path, size)) in sizes.iter().enumerate() {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let bytes: Vec<u8> = (0..*size).map(|j| ((j * 31 + i * 7) % 251) as u8).collect();
        std::fs::write(p, bytes).unwrap();
    }
    dir
}

/// Checks every v1 piece hash against the data read back through the file mapping.
fn verify_v1(t: &TorrentInfo, save: &std::path::Path) {
    let fs = t.files();
    for p in 0..t.num_pieces() {
        let piece = PieceIndex::new(p);
        let mut data = Vec::new();
        for slice in fs.map_block(piece, 0, fs.piece_size(piece)) {
            let f = fs.file(slice.file).unwrap();
            if f.is_pad() {
                data.extend(std::iter::repeat_n(
                    0u8,
                    usize::try_from(slice.size).unwrap(),
                ));
            } else {
                let all = std::fs::read(save.join(f.path_buf())).unwrap();
                let start = usize::try_from(slice.offset).unwrap();
                data.extend_from_slice(&all[start..start + usize::try_from(slice.size).unwrap()]);
            }
        }
        assert_eq!(
            t.piece_hash(piece),
            Some(Sha1Hash::digest(&data)),
            "piece {p}"
        );
    }
}

#[test]
fn create_all_versions_and_verify() {
    // Listed in the order a torrent holds them: byte order of path components.
    let sizes = [
        ("a.bin", 70_000),
        ("empty", 0),
        ("sub/c", 1),
        ("sub/dir/b.bin", 16_384),
        ("z", 40_000),
    ];
    let dir = sample_dir(&sizes);
    for version in [
        TorrentVersion::V1,
        TorrentVersion::V2,
        TorrentVersion::Hybrid,
    ] {
        let bytes = CreateTorrent::new(dir.path().join("data"))
            .version(version)
            .piece_size(32 * 1024)
            .tracker("http://t/announce")
            .tracker_tier("udp://u:1", 1)
            .web_seed("http://ws/")
            .comment("c")
            .creator("lt test")
            .creation_date(1)
            .threads(2)
            .generate()
            .unwrap();
        let t = TorrentInfo::from_bytes(&bytes).unwrap();
        assert_eq!(
            t.info_hash().has_v1(),
            version != TorrentVersion::V2,
            "{version:?}"
        );
        assert_eq!(
            t.info_hash().has_v2(),
            version != TorrentVersion::V1,
            "{version:?}"
        );
        let real: Vec<(String, u64)> = t
            .files()
            .files()
            .iter()
            .filter(|f| !f.is_pad())
            .map(|f| (f.path_string(), f.size))
            .collect();
        let want: Vec<(String, u64)> = sizes
            .iter()
            .map(|(p, s)| (format!("data/{p}"), *s as u64))
            .collect();
        assert_eq!(real, want, "{version:?}");
        // Files are piece-aligned whenever v2 is involved.
        if version != TorrentVersion::V1 {
            for f in t
                .files()
                .files()
                .iter()
                .filter(|f| !f.is_pad() && f.size > 0)
            {
                assert_eq!(f.offset % 32_768, 0, "{version:?} {f:?}");
                assert!(f.pieces_root.is_some());
            }
            // a.bin spans three pieces, so it has a piece layer that hashed to its root.
            assert_eq!(t.piece_layer(FileIndex::new(0)).map(<[_]>::len), Some(3));
        } else {
            verify_v1(&t, dir.path());
        }
        if version == TorrentVersion::Hybrid {
            verify_v1(&t, dir.path());
        }
        assert_eq!(TorrentInfo::from_bytes(&t.to_bytes()).unwrap(), t);
    }
}

#[test]
fn tampered_piece_layer_is_rejected() {
    let dir = sample_dir(&[("big", 100_000)]);
    let bytes = CreateTorrent::new(dir.path().join("data"))
        .version(TorrentVersion::V2)
        .piece_size(16_384)
        .generate()
        .unwrap();
    let doc = lt_bencode::decode(&bytes).unwrap();
    let mut v = doc.root().to_value();
    if let Value::Dict(root) = &mut v
        && let Some(Value::Dict(layers)) = root.get_mut(&b"piece layers"[..])
    {
        for layer in layers.values_mut() {
            if let Value::Bytes(b) = layer {
                b[0] ^= 1;
            }
        }
    }
    assert!(matches!(
        TorrentInfo::from_bytes(&v.to_bytes()),
        Err(Error::InvalidPieceLayer(_))
    ));
}

#[test]
fn inconsistent_hybrid_is_rejected() {
    let dir = sample_dir(&[("a", 20_000), ("b", 5)]);
    let bytes = CreateTorrent::new(dir.path().join("data"))
        .piece_size(16_384)
        .generate()
        .unwrap();
    let doc = lt_bencode::decode(&bytes).unwrap();
    let mut v = doc.root().to_value();
    // Change a v1 file length without touching the v2 tree.
    if let Value::Dict(root) = &mut v
        && let Some(Value::Dict(info)) = root.get_mut(&b"info"[..])
        && let Some(Value::List(files)) = info.get_mut(&b"files"[..])
        && let Some(Value::Dict(last)) = files.last_mut()
    {
        last.insert(b"length".to_vec(), Value::Int(6));
    }
    let err = TorrentInfo::from_bytes(&v.to_bytes()).unwrap_err();
    assert!(
        matches!(err, Error::InconsistentFiles | Error::InvalidHashes { .. }),
        "{err:?}"
    );
}

#[test]
fn memory_source_and_progress() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 256) as u8).collect();
    let mut calls = 0;
    let bytes = CreateTorrent::from_memory("m.bin", data.clone())
        .version(TorrentVersion::V1)
        .piece_size(16_384)
        .progress(|done, total| {
            calls += 1;
            assert!(done <= total);
        })
        .generate()
        .unwrap();
    assert!(calls >= 1);
    let t = TorrentInfo::from_bytes(&bytes).unwrap();
    for (i, chunk) in data.chunks(16_384).enumerate() {
        let piece = PieceIndex::new(u32::try_from(i).unwrap());
        assert_eq!(t.piece_hash(piece), Some(Sha1Hash::digest(chunk)));
    }
    assert!(
        CreateTorrent::from_memory("e", Vec::new())
            .generate()
            .is_err()
    );
    assert!(
        CreateTorrent::from_memory("x", vec![1])
            .piece_size(1000)
            .generate()
            .is_err()
    );
}

/// A generated v1 torrent description.
#[derive(Debug, Clone)]
struct Gen1 {
    files: Vec<(Vec<String>, u16)>,
    piece_pow: u8,
    private: bool,
    trackers: Vec<Vec<String>>,
}

impl Arbitrary for Gen1 {
    fn arbitrary(g: &mut Gen) -> Self {
        let name = |g: &mut Gen| {
            let s = String::arbitrary(g);
            if s.is_empty() { "f".to_owned() } else { s }
        };
        let files = (0..1 + usize::arbitrary(g) % 5)
            .map(|_| {
                (
                    (0..1 + usize::arbitrary(g) % 3).map(|_| name(g)).collect(),
                    u16::arbitrary(g),
                )
            })
            .collect();
        let trackers = (0..usize::arbitrary(g) % 3)
            .map(|_| {
                (0..1 + usize::arbitrary(g) % 2)
                    .map(|_| format!("http://{}", name(g).len()))
                    .collect()
            })
            .collect();
        Self {
            files,
            piece_pow: 14 + u8::arbitrary(g) % 3,
            private: bool::arbitrary(g),
            trackers,
        }
    }
}

#[quickcheck]
fn parse_of_write_is_identity(g: Gen1) -> bool {
    let piece_len = 1i64 << g.piece_pow;
    let total: i64 = g.files.iter().map(|f| i64::from(f.1)).sum();
    let pieces = (total + piece_len - 1) / piece_len;
    let files = g
        .files
        .iter()
        .map(|(p, len)| {
            Value::dict([
                ("length", Value::Int(i64::from(*len))),
                (
                    "path",
                    Value::List(p.iter().map(|c| Value::from(c.as_str())).collect()),
                ),
            ])
        })
        .collect();
    let mut info = vec![
        ("files", Value::List(files)),
        ("name", s("gen")),
        ("piece length", Value::Int(piece_len)),
        (
            "pieces",
            Value::Bytes(vec![3; usize::try_from(pieces * 20).unwrap()]),
        ),
    ];
    if g.private {
        info.push(("private", Value::Int(1)));
    }
    let mut root = vec![("info", Value::dict(info))];
    if !g.trackers.is_empty() {
        let tiers = g
            .trackers
            .iter()
            .map(|t| Value::List(t.iter().map(|u| Value::from(u.as_str())).collect()))
            .collect();
        root.push(("announce-list", Value::List(tiers)));
    }
    let t = TorrentInfo::from_bytes(&Value::dict(root).to_bytes()).unwrap();
    let again = TorrentInfo::from_bytes(&t.to_bytes()).unwrap();
    again == t && t.files().num_files() == g.files.len() && t.is_private() == g.private
}

#[test]
fn tier_gaps_and_duplicate_web_seeds_round_trip() {
    let info = Value::dict([
        ("length", Value::Int(1)),
        ("name", s("x")),
        ("piece length", Value::Int(16384)),
        ("pieces", Value::Bytes(vec![0x11; 20])),
    ]);
    let bytes = Value::dict([
        (
            "announce-list",
            Value::List(vec![
                Value::List(vec![]),
                Value::List(vec![s("http://a/")]),
                Value::List(vec![]),
                Value::List(vec![s("http://b/")]),
            ]),
        ),
        (
            "url-list",
            Value::List(vec![s("http://w/"), s("http://w/")]),
        ),
        ("info", info),
    ])
    .to_bytes();
    let t = TorrentInfo::from_bytes(&bytes).unwrap();
    let tiers: Vec<u8> = t.trackers().iter().map(|a| a.tier).collect();
    assert_eq!(tiers, [1, 3]);
    assert_eq!(t.web_seeds().len(), 1);
    assert_eq!(TorrentInfo::from_bytes(&t.to_bytes()).unwrap(), t);
    let magnet = t.magnet_link();
    assert_eq!(
        lt_metainfo::MagnetLink::parse(&magnet.to_uri()).unwrap(),
        magnet
    );
}

#[test]
fn v2_layout_pads_every_file_like_libtorrent() {
    let dir = sample_dir(&[("a", 20_000), ("b", 5_000)]);
    let bytes = CreateTorrent::new(dir.path().join("data"))
        .version(TorrentVersion::V2)
        .piece_size(16_384)
        .generate()
        .unwrap();
    let t = TorrentInfo::from_bytes(&bytes).unwrap();
    let layout: Vec<(String, u64, bool)> = t
        .files()
        .files()
        .iter()
        .map(|f| (f.path_string(), f.size, f.is_pad()))
        .collect();
    // What libtorrent 2.0.8 reports for the same v2 torrent.
    assert_eq!(
        layout,
        [
            ("data/a".to_owned(), 20_000, false),
            ("data/.pad/12768".to_owned(), 12_768, true),
            ("data/b".to_owned(), 5_000, false),
            ("data/.pad/11384".to_owned(), 11_384, true),
        ]
    );
    assert_eq!((t.total_size(), t.num_pieces()), (49_152, 3));
}

#[cfg(unix)]
#[test]
fn symlinks_as_links_round_trip() {
    let dir = sample_dir(&[("real.txt", 100)]);
    std::os::unix::fs::symlink("real.txt", dir.path().join("data/link")).unwrap();
    for version in [
        TorrentVersion::V1,
        TorrentVersion::V2,
        TorrentVersion::Hybrid,
    ] {
        let bytes = CreateTorrent::new(dir.path().join("data"))
            .version(version)
            .symlinks_as_links(true)
            .generate()
            .unwrap();
        let t = TorrentInfo::from_bytes(&bytes).unwrap();
        let link = t.files().files().iter().find(|f| f.attr.symlink).unwrap();
        assert_eq!(link.path, ["data", "link"], "{version:?}");
        assert_eq!(link.size, 0);
        assert_eq!(
            link.symlink_target
                .as_ref()
                .map(lt_metainfo::FilePath::to_vec),
            Some(vec!["data".to_owned(), "real.txt".to_owned()]),
            "{version:?}"
        );
    }
}

#[test]
fn v2_symlink_without_length_loads() {
    // libtorrent writes v2 symlink entries with no length.
    let leaf = |v: Value| Value::dict([("", v)]);
    let tree = Value::dict([
        (
            "f",
            leaf(Value::dict([
                ("length", Value::Int(5)),
                ("pieces root", Value::Bytes(vec![7; 32])),
            ])),
        ),
        (
            "l",
            leaf(Value::dict([
                ("attr", s("l")),
                ("symlink path", Value::List(vec![s("f")])),
            ])),
        ),
    ]);
    let bytes = with_info(Value::dict([
        ("file tree", tree),
        ("meta version", Value::Int(2)),
        ("name", s("t")),
        ("piece length", Value::Int(16384)),
    ]));
    let t = TorrentInfo::from_bytes(&bytes).unwrap();
    let link = &t.files().files().iter().find(|f| f.attr.symlink).unwrap();
    assert_eq!(
        link.symlink_target
            .as_ref()
            .map(lt_metainfo::FilePath::to_vec),
        Some(vec!["t".to_owned(), "f".to_owned()])
    );
}
