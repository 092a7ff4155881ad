//! Bodies of the lt fuzz targets, one plain function per target.
//!
//! Each `fuzz_targets/<name>.rs` is a one-line libFuzzer wrapper around the function of the
//! same name here. This file does not use `libfuzzer-sys`, so the workspace crate `lt-tests`
//! compiles it as a module (`#[path = ...]`) and replays every file of `corpus/<name>/`
//! through it with `cargo test` on stable.
//!
//! A body takes arbitrary bytes and checks properties that must hold for all of them; a
//! failed `assert!` (or any other panic) is a bug in the crate under test.
#![forbid(unsafe_code)]

use lt_bencode::{Node, Value};
use lt_core::PieceIndex;
use lt_metainfo::{MagnetLink, TorrentInfo};

/// At most this many nodes of one input get the per-node span check in [`bdecode`], so that a
/// deeply nested input cannot make one run quadratic.
const MAX_SPAN_CHECKS: usize = 1_000;

/// `lt-bencode`'s decoder, encoder and serde deserializer on arbitrary bytes.
///
/// - `decode` never panics;
/// - if it succeeds: re-encoding the value gives canonical bytes that decode to the same value,
///   identical to the input when the input was canonical; `decode_strict` accepts exactly the
///   canonical inputs; the raw span of every node decodes to that node's value;
/// - `from_bytes::<Value>` succeeds exactly when `decode` does, with the same value.
pub fn bdecode(data: &[u8]) {
    let decoded = lt_bencode::decode(data);
    let from_serde = lt_bencode::from_bytes::<Value>(data);
    let doc = match decoded {
        Ok(doc) => doc,
        Err(err) => {
            assert!(
                from_serde.is_err(),
                "decode failed ({err}) but from_bytes::<Value> succeeded"
            );
            assert!(lt_bencode::decode_strict(data).is_err());
            return;
        }
    };
    let root = doc.root();
    assert_eq!(
        root.raw(),
        data,
        "the root's span must cover the whole input"
    );
    let value = root.to_value();

    match from_serde {
        Ok(serde_value) => assert_eq!(serde_value, value, "from_bytes and decode disagree"),
        Err(err) => panic!("decode succeeded but from_bytes::<Value> failed: {err}"),
    }

    let reencoded = value.to_bytes();
    let redoc = match lt_bencode::decode(&reencoded) {
        Ok(redoc) => redoc,
        Err(err) => panic!("re-encoded value does not decode: {err}"),
    };
    assert!(
        redoc.is_canonical(),
        "the encoder wrote non-canonical bytes"
    );
    assert_eq!(
        redoc.root().to_value(),
        value,
        "re-encoding changed the value"
    );
    if doc.is_canonical() {
        assert_eq!(reencoded, data, "canonical input must re-encode to itself");
    }
    assert_eq!(
        lt_bencode::decode_strict(data).is_ok(),
        doc.is_canonical(),
        "decode_strict must accept exactly the canonical inputs"
    );

    let mut budget = MAX_SPAN_CHECKS;
    check_spans(root, &mut budget);
}

/// Checks that the raw bytes of `node` and of its descendants decode on their own to the same
/// value, visiting at most `budget` nodes.
fn check_spans(node: Node<'_>, budget: &mut usize) {
    if *budget == 0 {
        return;
    }
    *budget -= 1;
    match lt_bencode::decode(node.raw()) {
        Ok(sub) => assert_eq!(
            sub.root().to_value(),
            node.to_value(),
            "a node's raw span decodes to a different value"
        ),
        Err(err) => panic!("a node's raw span does not decode: {err}"),
    }
    if let Some(list) = node.as_list() {
        for item in list {
            check_spans(item, budget);
        }
    } else if let Some(dict) = node.as_dict() {
        for (_, item) in dict {
            check_spans(item, budget);
        }
    }
}

/// At most this many files of one torrent get the per-file mapping checks in [`torrent_info`].
const MAX_FILE_CHECKS: usize = 64;

/// `lt-metainfo`'s `.torrent` loader, writer and magnet link on arbitrary bytes.
///
/// - `TorrentInfo::from_bytes` never panics;
/// - if it succeeds: the name and every path component (files and symlink targets) is safe to
///   join under a download directory: not empty, `.` or `..`, no `/`, `\` or NUL;
/// - the layout is consistent: offsets are consecutive, sizes sum to `total_size`, the piece
///   count is `ceil(total_size / piece_length)`, a v1 torrent has a hash for every piece, and
///   mapping a piece to files covers exactly the piece;
/// - `to_bytes()` loads again to an equal `TorrentInfo`, with the same info-hash and the same
///   info dictionary bytes;
/// - the magnet link's URI parses back to the same link (when it fits the URI limit).
pub fn torrent_info(data: &[u8]) {
    let Ok(torrent) = TorrentInfo::from_bytes(data) else {
        return;
    };
    assert_safe_component(torrent.name());
    let files = torrent.files();
    let mut offset = 0u64;
    for f in files.files() {
        assert!(!f.path.is_empty(), "a file without a path");
        for c in &f.path {
            assert_safe_component(c);
        }
        for c in f.symlink_target.iter().flatten() {
            assert_safe_component(c);
        }
        assert_eq!(f.offset, offset, "file offsets are not consecutive");
        offset += f.size;
    }
    assert_eq!(
        offset,
        files.total_size(),
        "file sizes do not sum to the total"
    );
    assert_eq!(torrent.total_size(), files.total_size());
    let piece_len = u64::from(torrent.piece_length());
    assert!(piece_len > 0);
    assert_eq!(
        u64::from(torrent.num_pieces()),
        files.total_size().div_ceil(piece_len),
        "piece count"
    );
    if torrent.info_hash().has_v1() {
        for p in 0..torrent.num_pieces() {
            assert!(
                torrent.piece_hash(PieceIndex::new(p)).is_some(),
                "v1 piece {p} has no hash"
            );
        }
    }
    if let Some(last) = torrent.num_pieces().checked_sub(1) {
        for p in [0, last] {
            let piece = PieceIndex::new(p);
            let size = files.piece_size(piece);
            let mapped: u64 = files.map_block(piece, 0, size).iter().map(|s| s.size).sum();
            assert_eq!(
                mapped,
                u64::from(size),
                "piece {p} maps to {mapped} bytes of files"
            );
        }
    }
    for (i, f) in files.files().iter().enumerate().take(MAX_FILE_CHECKS) {
        let index = lt_core::FileIndex::new(u32::try_from(i).unwrap_or(u32::MAX));
        let pieces = files.file_piece_range(index);
        assert!(
            pieces.end <= torrent.num_pieces(),
            "file {i} maps past the last piece"
        );
        if f.size > 0 {
            let request = files.map_file(index, 0, 1);
            assert!(
                request.is_some(),
                "the first byte of file {i} maps to no piece"
            );
        }
    }

    let written = torrent.to_bytes();
    let again = match TorrentInfo::from_bytes(&written) {
        Ok(again) => again,
        Err(err) => panic!("to_bytes() output does not load: {err}"),
    };
    assert_eq!(
        again.info_hash(),
        torrent.info_hash(),
        "to_bytes() changed the info-hash"
    );
    assert_eq!(again.info_bytes(), torrent.info_bytes());
    assert_eq!(
        again, torrent,
        "to_bytes() does not load to an equal torrent"
    );

    let magnet = torrent.magnet_link();
    let uri = magnet.to_uri();
    if uri.len() <= MagnetLink::MAX_URI_LEN {
        match MagnetLink::parse(&uri) {
            Ok(back) => {
                assert_eq!(back.info_hash, torrent.info_hash());
                assert_eq!(
                    back, magnet,
                    "the torrent's magnet link does not round-trip"
                );
            }
            Err(err) => panic!("the torrent's magnet URI does not parse: {err}"),
        }
    }
}

/// `lt-metainfo`'s magnet link parser on arbitrary UTF-8.
///
/// - `MagnetLink::parse` never panics;
/// - if it succeeds: `to_uri()` parses back to an equal link (when it fits the URI limit),
///   and writing that link again gives the same URI.
pub fn magnet(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(link) = MagnetLink::parse(text) else {
        return;
    };
    let uri = link.to_uri();
    if uri.len() > MagnetLink::MAX_URI_LEN {
        return;
    }
    match MagnetLink::parse(&uri) {
        Ok(back) => {
            assert_eq!(back, link, "parse(to_uri()) changed the link");
            assert_eq!(back.to_uri(), uri, "to_uri() is not a fixed point");
        }
        Err(err) => panic!("to_uri() wrote a URI that does not parse: {err}"),
    }
}

fn assert_safe_component(c: &str) {
    assert!(
        !c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\\', '\0']),
        "unsafe path component {c:?}"
    );
}
