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
