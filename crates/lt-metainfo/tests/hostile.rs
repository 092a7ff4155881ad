//! Crafted torrents from issue 18 ("Hostile input"): each must load in bounded time and
//! memory, or fail with a typed error.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::time::{Duration, Instant};

use lt_bencode::Value;
use lt_metainfo::TorrentInfo;

fn s(v: &str) -> Value {
    Value::from(v)
}

fn file_leaf(len: i64, root: Option<[u8; 32]>) -> Value {
    let mut props = vec![("length", Value::Int(len))];
    if let Some(r) = root {
        props.push(("pieces root", Value::Bytes(r.to_vec())));
    }
    Value::dict([("", Value::dict(props))])
}

fn root_of(i: usize) -> [u8; 32] {
    let mut r = [0u8; 32];
    r[..8].copy_from_slice(&(i as u64).to_be_bytes());
    r[31] = 1;
    r
}

/// Finding 5: `piece layers` was searched linearly for every file, so a torrent with many
/// files and as many layer entries took quadratic time (hours for 64 MiB). 20,000 files,
/// each a little over a piece, and 20,000 layer entries none of them match: the quadratic
/// lookup took half a minute in a debug build, the indexed one well under a second.
#[test]
fn many_piece_layers_load_in_linear_time() {
    const N: usize = 20_000;
    let tree = Value::Dict(
        (0..N)
            .map(|i| {
                let leaf = file_leaf(16_385, Some(root_of(i)));
                (format!("f{i:06}").into_bytes(), leaf)
            })
            .collect(),
    );
    let info = Value::dict([
        ("file tree", tree),
        ("meta version", Value::Int(2)),
        ("name", s("t")),
        ("piece length", Value::Int(16_384)),
    ]);
    let layers = Value::Dict(
        (0..N)
            .map(|i| {
                let mut k = root_of(i);
                k[31] = 2; // no file has this root
                (k.to_vec(), Value::Bytes(vec![0; 64]))
            })
            .collect(),
    );
    let bytes = Value::dict([("info", info), ("piece layers", layers)]).to_bytes();
    let start = Instant::now();
    let t = TorrentInfo::from_bytes(&bytes).unwrap();
    let took = start.elapsed();
    assert_eq!(t.files().files().iter().filter(|f| !f.is_pad()).count(), N);
    assert!(
        took < Duration::from_secs(10),
        "loading took {took:?}: piece layers are looked up in quadratic time"
    );
}

/// `depth` nested directories with 240-byte names holding `files` empty files, plus one
/// small file at the top (a v2 torrent needs no piece hashes for those).
fn deep_tree(depth: usize, files: usize) -> Value {
    let mut leaves: Vec<(Vec<u8>, Value)> = (0..files)
        .map(|i| (format!("{i}").into_bytes(), file_leaf(0, None)))
        .collect();
    leaves.sort();
    let mut node = Value::Dict(leaves.into_iter().collect());
    for level in 0..depth {
        let name = format!("{level:03}{}", "d".repeat(237));
        node = Value::Dict([(name.into_bytes(), node)].into_iter().collect());
    }
    let Value::Dict(mut top) = node else {
        unreachable!()
    };
    top.insert(b"top".to_vec(), file_leaf(1, Some([7; 32])));
    let info = Value::dict([
        ("file tree", Value::Dict(top)),
        ("meta version", Value::Int(2)),
        ("name", s("t")),
        ("piece length", Value::Int(16_384)),
    ]);
    Value::dict([("info", info)])
}

/// Finding 3: 90 nested 240-byte directory names with thousands of 20-byte file entries
/// below them: each file used to carry its own copy of the 22 KB prefix (about 1.4 GB for
/// a 1 MiB torrent). Paths now share their directories, and a torrent whose paths written
/// out in full are out of all proportion to its size is refused with a typed error, from a
/// .torrent and from BEP 9 metadata alike.
#[test]
fn deep_trees_cannot_blow_up_memory() {
    let bytes = deep_tree(90, 3_000).to_bytes();
    let err = TorrentInfo::from_bytes(&bytes).unwrap_err();
    assert!(
        matches!(err, lt_metainfo::Error::LimitExceeded(_)),
        "{err:?}"
    );
    let doc = lt_bencode::decode(&bytes).unwrap();
    let info = doc.root().as_dict().unwrap().get("info").unwrap().raw();
    let err = TorrentInfo::from_info_bytes(info, &lt_metainfo::LoadLimits::default()).unwrap_err();
    assert!(
        matches!(err, lt_metainfo::Error::LimitExceeded(_)),
        "{err:?}"
    );

    // The same tree with a few files loads, and its paths are whole.
    let t = TorrentInfo::from_bytes(&deep_tree(90, 20).to_bytes()).unwrap();
    let f = t
        .files()
        .files()
        .iter()
        .find(|f| f.path.file_name() == "19")
        .unwrap();
    assert_eq!(f.path.len(), 92);
    assert_eq!(f.path.first(), Some("t"));
    assert_eq!(f.path_string().len(), f.path.joined_len());
    assert!(f.path_string().starts_with("t/089ddd"));
}

/// Real torrents stay far below the limit: a v1 torrent with a 240-byte name and many tiny
/// files (each path written out costs about ten times its entry).
#[test]
fn long_names_over_many_small_files_still_load() {
    let name = "n".repeat(240);
    let files: Vec<Value> = (0..20_000)
        .map(|i| {
            Value::dict([
                ("length", Value::Int(1)),
                ("path", Value::List(vec![s(&format!("{i}"))])),
            ])
        })
        .collect();
    let info = Value::dict([
        ("files", Value::List(files)),
        ("name", s(&name)),
        ("piece length", Value::Int(16_384)),
        ("pieces", Value::Bytes(vec![0; 40])),
    ]);
    let t = TorrentInfo::from_bytes(&Value::dict([("info", info)]).to_bytes()).unwrap();
    assert_eq!(t.files().num_files(), 20_000);
    assert_eq!(t.files().files()[7].path, [name.as_str(), "7"]);
}

fn v1(files: &[&[&str]]) -> Vec<u8> {
    let list = files
        .iter()
        .map(|path| {
            Value::dict([
                ("length", Value::Int(1)),
                ("path", Value::List(path.iter().map(|c| s(c)).collect())),
            ])
        })
        .collect();
    let pieces = files.len().div_ceil(16_384) * 20;
    let info = Value::dict([
        ("files", Value::List(list)),
        ("name", s("t")),
        ("piece length", Value::Int(16_384)),
        ("pieces", Value::Bytes(vec![0; pieces])),
    ]);
    Value::dict([("info", info)]).to_bytes()
}

/// Finding 13: duplicate paths (a repeated entry, names equal after sanitising or up to
/// case, a file named like another file's directory) made two file indices share one disk
/// file. Later duplicates are renamed `name.N.ext`, like libtorrent.
#[test]
fn duplicate_paths_are_renamed_apart() {
    let bytes = v1(&[
        &["a"],
        &["a"],
        &["A"],
        &["a/b"],
        &["a_b"],
        &["x"],
        &["x", "y"],
        &["a.txt"],
        &["a.txt"],
        &["b"],
        &["b.1"],
        &["b"],
    ]);
    let t = TorrentInfo::from_bytes(&bytes).unwrap();
    let paths: Vec<String> = t.files().files().iter().map(|f| f.path_string()).collect();
    assert_eq!(
        paths,
        [
            "t/a",
            "t/a.1",
            "t/A.2",
            "t/a_b",
            "t/a_b.1",
            "t/x.1",
            "t/x/y",
            "t/a.txt",
            "t/a.1.txt",
            "t/b",
            "t/b.1",
            "t/b.2",
        ]
    );
    // v2: duplicate keys in the file tree.
    let tree = b"d1:ad0:d6:lengthi0eee1:ad0:d6:lengthi0eee1:bd0:d6:lengthi0eeee";
    let mut info = b"d9:file tree".to_vec();
    info.extend_from_slice(tree);
    info.extend_from_slice(b"12:meta versioni2e4:name1:t12:piece lengthi16384ee");
    let t = TorrentInfo::from_info_bytes(&info, &lt_metainfo::LoadLimits::default()).unwrap();
    let paths: Vec<String> = t.files().files().iter().map(|f| f.path_string()).collect();
    assert_eq!(paths, ["t/a", "t/a.1", "t/b"]);
}

/// Many copies of one name are renamed in linear time (each suffix is tried once).
#[test]
fn many_duplicates_are_renamed_in_linear_time() {
    let paths: Vec<&[&str]> = vec![&["same.bin"]; 30_000];
    let start = Instant::now();
    let t = TorrentInfo::from_bytes(&v1(&paths)).unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    let last = t.files().files().last().unwrap();
    assert_eq!(last.path, ["t", "same.29999.bin"]);
    let mut all: Vec<String> = t.files().files().iter().map(|f| f.path_string()).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 30_000);
}

/// Finding 15: announce-list URLs were deduplicated by a scan of the trackers kept so far,
/// so 999 distinct URLs followed by 300,000 copies of one cost 300 million string
/// comparisons (seconds in a debug build). A set makes it linear.
#[test]
fn duplicate_trackers_load_in_linear_time() {
    let mut tier: Vec<Value> = (0..999).map(|i| s(&format!("http://t{i}/a"))).collect();
    tier.extend(std::iter::repeat_n(s("http://t998/a"), 300_000));
    let info = Value::dict([
        ("length", Value::Int(1)),
        ("name", s("t")),
        ("piece length", Value::Int(16_384)),
        ("pieces", Value::Bytes(vec![0; 20])),
    ]);
    let bytes = Value::dict([
        ("announce-list", Value::List(vec![Value::List(tier)])),
        ("info", info),
    ])
    .to_bytes();
    let start = Instant::now();
    let t = TorrentInfo::from_bytes(&bytes).unwrap();
    let took = start.elapsed();
    assert_eq!(t.trackers().len(), 999);
    assert!(
        took < Duration::from_secs(2),
        "loading took {took:?}: trackers are deduplicated in quadratic time"
    );
}
