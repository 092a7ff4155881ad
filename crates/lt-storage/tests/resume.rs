#![allow(clippy::cast_possible_truncation)]
//! Resume data: round trips, acceptance and every rejection reason.

mod common;

use std::time::{Duration, SystemTime};

use common::{make_torrent, write_pieces};
use lt_core::{Bitfield, PieceIndex};
use lt_metainfo::TorrentVersion;
use lt_storage::{
    Allocation, FsOptions, FsStorage, ResumeData, ResumeError, Storage, UnfinishedPiece,
    check_files,
};
use quickcheck_macros::quickcheck;

const FILES: &[(&str, usize)] = &[("a.bin", 70_000), ("b.bin", 3), ("c.bin", 90_000)];

#[test]
fn round_trip_keeps_every_field() {
    let src = tempfile::tempdir().unwrap();
    let (info, _) = make_torrent(src.path(), FILES, 16384, TorrentVersion::Hybrid);
    let mut r = ResumeData::new(&info);
    r.pieces.set(3);
    let mut u = UnfinishedPiece {
        piece: PieceIndex::new(5),
        bitmask: Vec::new(),
    };
    u.set_block(0);
    u.set_block(9);
    assert!(u.has_block(9) && !u.has_block(1));
    r.unfinished.push(u);
    r.file_sizes = vec![(70_000, 17), (3, 0), (90_000, 18)];
    r.allocation = Allocation::Full;
    r.file_priority = vec![1, 0, 7];
    r.piece_priority = vec![4; info.num_pieces() as usize];
    r.peers = vec!["1.2.3.4:5".parse().unwrap(), "[::1]:6881".parse().unwrap()];
    r.trackers = vec![
        vec!["udp://a".into(), "http://b".into()],
        vec!["udp://c".into()],
    ];
    r.url_list = vec!["http://seed/".into()];
    r.mapped_files = vec!["t/x".into(), "t/y".into(), "t/z".into()];
    r.total_uploaded = 10;
    r.total_downloaded = 20;
    r.added_time = 1_700_000_000;
    r.paused = true;
    r.save_path = Some("/srv".into());
    r.extra
        .insert(b"libtorrent-version".to_vec(), "2.0.8.0".into());
    let bytes = r.to_bytes();
    let back = ResumeData::from_bytes(&bytes).unwrap();
    assert_eq!(back, r);
    assert_eq!(back.to_bytes(), bytes);
    // The torrent can be rebuilt from the embedded info dictionary.
    let ti = lt_metainfo::TorrentInfo::from_info_bytes(
        back.info.as_deref().unwrap(),
        &lt_metainfo::LoadLimits::default(),
    )
    .unwrap();
    assert_eq!(ti.info_hash(), info.info_hash());
}

#[test]
fn verify_accepts_and_rejects() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let (info, stream) = make_torrent(src.path(), FILES, 16384, TorrentVersion::V1);
    let s = FsStorage::new(info.files().clone(), dst.path(), FsOptions::default()).unwrap();
    write_pieces(&s, &stream, 0..info.num_pieces(), 16384);
    s.flush().unwrap();
    let mut r = ResumeData::new(&info);
    r.pieces = check_files(&s, &info, 2).unwrap();
    assert!(r.pieces.all());
    lt_storage::record_file_sizes(&mut r, &s).unwrap();
    let ok = |r: &ResumeData| {
        lt_storage::verify_resume(&ResumeData::from_bytes(&r.to_bytes()).unwrap(), &info, &s)
    };
    assert!(ok(&r).unwrap().all());

    // Another torrent's resume data.
    let other_src = tempfile::tempdir().unwrap();
    let (other, _) = make_torrent(other_src.path(), &[("q", 5)], 16384, TorrentVersion::V1);
    let err = lt_storage::verify_resume(&ResumeData::new(&other), &info, &s).unwrap_err();
    assert!(matches!(err, ResumeError::MismatchingInfoHash), "{err:?}");
    // Wrong number of pieces.
    let mut bad = r.clone();
    bad.pieces = Bitfield::full(3);
    assert!(matches!(
        ok(&bad),
        Err(ResumeError::PieceCount { got: 3, .. })
    ));
    // An unfinished piece out of range.
    let mut bad = r.clone();
    bad.unfinished.push(UnfinishedPiece {
        piece: PieceIndex::new(info.num_pieces()),
        bitmask: vec![0xff],
    });
    assert!(matches!(
        ok(&bad),
        Err(ResumeError::InvalidField("unfinished"))
    ));
    // Wrong number of file sizes.
    let mut bad = r.clone();
    bad.file_sizes.pop();
    assert!(matches!(ok(&bad), Err(ResumeError::FileCount { .. })));
    // A file modified after the data was saved.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dst.path().join("t/c.bin"))
        .unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(100))
        .unwrap();
    assert!(matches!(ok(&r), Err(ResumeError::FileChanged { .. })));
    // Without file sizes (libtorrent 2 writes none) a short file is still caught.
    let mut lt2 = r.clone();
    lt2.file_sizes.clear();
    assert!(ok(&lt2).unwrap().all());
    f.set_len(100).unwrap();
    assert!(matches!(ok(&lt2), Err(ResumeError::FileChanged { .. })));
    // ...and a missing one.
    s.release_files().unwrap();
    std::fs::remove_file(dst.path().join("t/c.bin")).unwrap();
    assert!(matches!(ok(&lt2), Err(ResumeError::MissingFile { .. })));
    // Claiming nothing is always fine.
    let mut none = lt2.clone();
    none.pieces = Bitfield::new(info.num_pieces() as usize);
    assert_eq!(ok(&none).unwrap().count_ones(), 0);

    // Parse failures.
    assert!(matches!(
        ResumeData::from_bytes(b"garbage"),
        Err(ResumeError::Parse(_))
    ));
    assert!(matches!(
        ResumeData::from_bytes(b"li1ee"),
        Err(ResumeError::NotADictionary)
    ));
    assert!(matches!(
        ResumeData::from_bytes(b"d11:file-format4:nope12:file-versioni1ee"),
        Err(ResumeError::InvalidFileTag)
    ));
    assert!(matches!(
        ResumeData::from_bytes(b"d11:file-format22:libtorrent resume file12:file-versioni1ee"),
        Err(ResumeError::MissingInfoHash)
    ));
}

#[quickcheck]
fn parsing_never_panics(data: Vec<u8>) -> bool {
    let _ = ResumeData::from_bytes(&data);
    let mut framed = b"d11:file-format22:libtorrent resume file12:file-versioni1e9:info-hash20:aaaaaaaaaaaaaaaaaaaa".to_vec();
    framed.extend_from_slice(&data);
    framed.push(b'e');
    let _ = ResumeData::from_bytes(&framed);
    true
}
