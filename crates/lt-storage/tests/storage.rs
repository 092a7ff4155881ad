//! `FsStorage` and `MemStorage` through the public API: mapping, pads, hashing, allocation,
//! priorities, move/rename/delete, hostile input.
#![allow(clippy::cast_possible_truncation)]

mod common;

use std::io::ErrorKind;

use common::{bytes, make_torrent, shuffled, stream_of, write_pieces};
use lt_core::{FileIndex, PieceIndex};
use lt_metainfo::{FileAttr, FileEntry, FileStorage, TorrentVersion};
use lt_storage::{
    Allocation, Error, FsOptions, FsStorage, MemStorage, MoveFlags, Storage, check_files,
    verify_piece_data,
};
use quickcheck_macros::quickcheck;

const FILES: &[(&str, usize)] = &[
    ("a.bin", 70_000),
    ("b.bin", 1),
    ("c.bin", 0),
    ("d.bin", 150_001),
];

fn entry(path: &[&str], size: u64, pad: bool) -> FileEntry {
    FileEntry {
        path: path.iter().map(|s| (*s).to_owned()).collect(),
        size,
        offset: 0,
        attr: FileAttr {
            pad,
            ..FileAttr::default()
        },
        symlink_target: None,
        mtime: None,
        pieces_root: None,
    }
}

#[test]
fn multi_file_round_trip_every_version() {
    for version in [
        TorrentVersion::V1,
        TorrentVersion::V2,
        TorrentVersion::Hybrid,
    ] {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let (info, stream) = make_torrent(src.path(), FILES, 32768, version);
        let s = FsStorage::new(info.files().clone(), dst.path(), FsOptions::default()).unwrap();
        s.initialize().unwrap();
        assert_eq!(check_files(&s, &info, 2).unwrap().count_ones(), 0);
        write_pieces(&s, &stream, shuffled(info.num_pieces(), 7), 16384);
        let have = check_files(&s, &info, 2).unwrap();
        assert!(have.all(), "{version:?}: {have:?}");
        // Every non-pad file has its bytes; pad files were never created.
        for f in info.files().files() {
            let p = dst.path().join(f.path_buf());
            if f.is_pad() {
                assert!(!p.exists(), "pad file {p:?} written");
            } else {
                assert_eq!(
                    std::fs::read(&p).unwrap(),
                    std::fs::read(src.path().join(f.path_buf())).unwrap()
                );
            }
        }
        assert!(!dst.path().join("t").join(".pad").exists());
        assert_eq!(stream_of(&info, dst.path()), stream);
        // Memory storage agrees.
        let m = MemStorage::with_data(info.files().clone(), stream.clone()).unwrap();
        assert!(check_files(&m, &info, 1).unwrap().all());
        // A corrupted byte fails exactly its piece.
        let mut bad = stream.clone();
        bad[40_000] ^= 1;
        let m = MemStorage::with_data(info.files().clone(), bad).unwrap();
        let have = check_files(&m, &info, 2).unwrap();
        assert_eq!(have.count_zeros(), 1);
        assert!(!have.get(40_000 / 32768));
        let mut buf = Vec::new();
        lt_storage::read_piece(&s, PieceIndex::new(0), &mut buf).unwrap();
        assert!(verify_piece_data(&info, PieceIndex::new(0), &buf));
    }
}

/// Random layouts (odd piece sizes, zero-size and pad files) and random blocks: the file
/// storage reads back what memory storage holds, and pad files never appear on disk.
#[quickcheck]
fn fs_matches_mem(sizes: Vec<(u8, bool)>, piece: u8, writes: Vec<(u16, u16, u8)>) -> bool {
    let piece = u32::from(piece % 40) + 1;
    let files: Vec<FileEntry> = sizes
        .iter()
        .take(8)
        .enumerate()
        .map(|(i, &(s, pad))| {
            let name = format!("f{i}");
            if pad {
                entry(&[".pad", &name], u64::from(s % 50), true)
            } else {
                entry(&["t", &name], u64::from(s % 50), false)
            }
        })
        .collect();
    let Ok(layout) = FileStorage::new("t".into(), piece, files) else {
        return true;
    };
    if layout.num_pieces() == 0 {
        return true;
    }
    let dir = tempfile::tempdir().unwrap();
    let fs = FsStorage::new(layout.clone(), dir.path(), FsOptions::default()).unwrap();
    fs.initialize().unwrap();
    let mem = MemStorage::new(layout.clone()).unwrap();
    // Every file exists once all pieces were written with zeros.
    for p in 0..layout.num_pieces() {
        let zeros = vec![0; layout.piece_size(PieceIndex::new(p)) as usize];
        fs.write(PieceIndex::new(p), 0, &[&zeros]).unwrap();
    }
    for (i, &(p, off, len)) in writes.iter().enumerate() {
        let p = u32::from(p) % layout.num_pieces();
        let size = layout.piece_size(PieceIndex::new(p));
        let off = u32::from(off) % size;
        let len = (u32::from(len) % (size - off)) + 1;
        let data = bytes(i as u64, len as usize);
        let (a, b) = data.split_at(data.len() / 2);
        fs.write(PieceIndex::new(p), off, &[a, b]).unwrap();
        mem.write(PieceIndex::new(p), off, &[&data]).unwrap();
    }
    for p in 0..layout.num_pieces() {
        let size = layout.piece_size(PieceIndex::new(p)) as usize;
        let (mut x, mut y) = (vec![1; size], vec![2; size]);
        fs.read(PieceIndex::new(p), 0, &mut x).unwrap();
        mem.read(PieceIndex::new(p), 0, &mut y).unwrap();
        if x != y {
            return false;
        }
    }
    // Pad bytes read as zeros everywhere, and no pad file exists.
    let all = mem.to_vec();
    layout.files().iter().filter(|f| f.is_pad()).all(|f| {
        !dir.path().join(f.path_buf()).exists()
            && all[f.offset as usize..(f.offset + f.size) as usize]
                .iter()
                .all(|&b| b == 0)
    })
}

#[test]
fn hostile_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let layout = FileStorage::new(
        "t".into(),
        16,
        [entry(&["t", "a"], 20, false), entry(&["t", "b"], 5, false)],
    )
    .unwrap();
    let s = FsStorage::new(
        layout.clone(),
        dir.path().join("save"),
        FsOptions::default(),
    )
    .unwrap();
    // Piece out of range, block beyond the piece, overflowing offsets.
    assert!(matches!(
        s.write(PieceIndex::new(2), 0, &[b"x"]),
        Err(Error::PieceOutOfRange { .. })
    ));
    assert!(matches!(
        s.write(PieceIndex::new(1), 8, &[&[0; 2]]),
        Err(Error::BlockOutOfRange { .. })
    ));
    assert!(matches!(
        s.write(PieceIndex::new(0), u32::MAX, &[b"x"]),
        Err(Error::BlockOutOfRange { .. })
    ));
    let mut buf = [0u8; 17];
    assert!(matches!(
        s.read(PieceIndex::new(0), 0, &mut buf),
        Err(Error::BlockOutOfRange { .. })
    ));
    assert!(
        !dir.path().join("save").exists(),
        "nothing written on refusal"
    );
    // Unsafe components are refused, even if a layout was built by hand.
    for bad in [
        &["..", "x"][..],
        &["t", ".."],
        &["/etc", "passwd"],
        &["t", ""],
        &["a/b"],
    ] {
        let l = FileStorage::new("t".into(), 16, [entry(bad, 4, false)]).unwrap();
        assert!(
            matches!(
                FsStorage::new(l, dir.path(), FsOptions::default()),
                Err(Error::InvalidPath(_))
            ),
            "{bad:?}"
        );
    }
    // A save path that is a file.
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    assert!(matches!(
        FsStorage::new(layout, dir.path().join("file"), FsOptions::default()),
        Err(Error::SavePathNotDirectory(_))
    ));
    // A total size that overflows is refused by the layout itself.
    assert!(
        FileStorage::new(
            "t".into(),
            16,
            [entry(&["a"], u64::MAX, false), entry(&["b"], 2, false)]
        )
        .is_err()
    );
    // A file replaced by a directory while running.
    s.write(PieceIndex::new(0), 0, &[&[1; 16]]).unwrap();
    s.release_files().unwrap();
    let a = dir.path().join("save/t/a");
    std::fs::remove_file(&a).unwrap();
    std::fs::create_dir(&a).unwrap();
    let e = s.write(PieceIndex::new(0), 0, &[&[1; 16]]).unwrap_err();
    assert!(matches!(&e, Error::Io { path, .. } if *path == a), "{e:?}");
    assert_eq!(e.io_kind(), Some(ErrorKind::IsADirectory));
    // A missing file reads as NotFound; a rename to `..` is refused.
    let mut buf = [0u8; 5];
    assert_eq!(
        s.read(PieceIndex::new(1), 4, &mut buf)
            .unwrap_err()
            .io_kind(),
        Some(ErrorKind::NotFound)
    );
    let mut s = s;
    assert!(matches!(
        s.rename_file(FileIndex::new(1), "../x"),
        Err(Error::InvalidPath(_))
    ));
    assert!(matches!(
        s.rename_file(FileIndex::new(1), "/x"),
        Err(Error::InvalidPath(_))
    ));
    assert!(matches!(
        s.rename_file(FileIndex::new(9), "x"),
        Err(Error::FileOutOfRange(_))
    ));
}

#[test]
fn permission_denied_is_its_own_error() {
    let e = Error::io(
        lt_storage::Operation::Open,
        "/x",
        std::io::Error::from_raw_os_error(13),
    );
    assert!(matches!(e, Error::PermissionDenied { .. }));
    let e = Error::io(
        lt_storage::Operation::Write,
        "/x",
        std::io::Error::from_raw_os_error(28),
    );
    assert!(e.is_disk_full());
    // And for real where the OS enforces it (not as root).
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("a"), [0u8; 4]).unwrap();
    let mut perm = std::fs::metadata(ro.join("a")).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o444);
    std::fs::set_permissions(ro.join("a"), perm).unwrap();
    let l = FileStorage::new("a".into(), 4, [entry(&["a"], 4, false)]).unwrap();
    let s = FsStorage::new(l, &ro, FsOptions::default()).unwrap();
    let r = s.write(PieceIndex::new(0), 0, &[&[1; 4]]);
    if !is_root() {
        assert!(matches!(r, Err(Error::PermissionDenied { .. })), "{r:?}");
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

#[test]
fn allocation_modes() {
    let src = tempfile::tempdir().unwrap();
    let (info, _) = make_torrent(src.path(), FILES, 32768, TorrentVersion::V1);
    for (mode, expect_full) in [(Allocation::Sparse, false), (Allocation::Full, true)] {
        let dst = tempfile::tempdir().unwrap();
        let opts = FsOptions {
            allocation: mode,
            ..FsOptions::default()
        };
        let s = FsStorage::new(info.files().clone(), dst.path(), opts).unwrap();
        s.initialize().unwrap();
        let d = dst.path().join("t/d.bin");
        assert_eq!(d.exists(), expect_full, "{mode:?}");
        // Zero-size files are created in both modes.
        assert!(dst.path().join("t/c.bin").exists());
        if expect_full {
            assert_eq!(std::fs::metadata(&d).unwrap().len(), 150_001);
        }
        // Sparse: a write creates the file at its full length.
        s.write(PieceIndex::new(info.num_pieces() - 1), 0, &[b"x"])
            .unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().len(), 150_001);
    }
}

#[test]
fn priority_zero_files_go_to_the_part_file() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let (info, stream) = make_torrent(src.path(), FILES, 32768, TorrentVersion::V1);
    let opts = FsOptions {
        file_priorities: vec![0, 4, 4, 4],
        ..FsOptions::default()
    };
    let mut s = FsStorage::new(info.files().clone(), dst.path(), opts).unwrap();
    s.initialize().unwrap();
    // Piece 2 spans a.bin (unwanted) and b.bin and d.bin.
    write_pieces(&s, &stream, 0..info.num_pieces(), 16384);
    let a = dst.path().join("t/a.bin");
    assert!(!a.exists(), "a priority-0 file was created");
    assert!(s.part_file_path().exists());
    assert!(check_files(&s, &info, 2).unwrap().all());
    // Resume data covering pieces kept in the part file is accepted.
    s.flush().unwrap();
    let mut r = lt_storage::ResumeData::new(&info);
    r.pieces = check_files(&s, &info, 2).unwrap();
    lt_storage::record_file_sizes(&mut r, &s).unwrap();
    assert!(lt_storage::verify_resume(&r, &info, &s).unwrap().all());
    // v2-style leaf hashes from storage agree with the data.
    let mut buf = Vec::new();
    let leaves = s.hash_piece_v2(PieceIndex::new(1), &mut buf).unwrap();
    assert_eq!(leaves.len(), 2);
    assert_eq!(
        leaves[0],
        lt_core::Sha256Hash::digest(&stream[32768..49152])
    );
    // Raising the priority moves the bytes into the file.
    s.set_file_priority(FileIndex::new(0), 4).unwrap();
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(src.path().join("t/a.bin")).unwrap()
    );
    assert!(check_files(&s, &info, 2).unwrap().all());
}

#[test]
fn move_rename_delete() {
    let src = tempfile::tempdir().unwrap();
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    let (info, stream) = make_torrent(src.path(), FILES, 32768, TorrentVersion::Hybrid);
    let mut s = FsStorage::new(info.files().clone(), one.path(), FsOptions::default()).unwrap();
    s.initialize().unwrap();
    write_pieces(&s, &stream, 0..info.num_pieces(), 16384);
    // fail_if_exist refuses before moving anything.
    std::fs::create_dir_all(two.path().join("t")).unwrap();
    std::fs::write(two.path().join("t/b.bin"), b"other").unwrap();
    assert!(matches!(
        s.move_storage(two.path(), MoveFlags::FailIfExist),
        Err(Error::FileExists(_))
    ));
    assert!(one.path().join("t/a.bin").exists());
    // dont_replace keeps the destination's file.
    s.move_storage(two.path(), MoveFlags::DontReplace).unwrap();
    assert_eq!(std::fs::read(two.path().join("t/b.bin")).unwrap(), b"other");
    assert!(!one.path().join("t/a.bin").exists());
    assert!(!check_files(&s, &info, 2).unwrap().all());
    // always_replace moves back over it.
    std::fs::write(one.path().join("keep"), b"x").unwrap();
    s.move_storage(one.path(), MoveFlags::AlwaysReplaceFiles)
        .unwrap();
    s.move_storage(two.path(), MoveFlags::AlwaysReplaceFiles)
        .unwrap();
    assert_eq!(s.save_path(), two.path());
    assert!(check_files(&s, &info, 2).unwrap().get(0));
    assert!(
        !one.path().join("t").exists(),
        "empty directory left behind"
    );
    assert!(one.path().join("keep").exists());
    // rename
    s.rename_file(FileIndex::new(0), "t/sub/renamed.bin")
        .unwrap();
    assert!(two.path().join("t/sub/renamed.bin").exists());
    assert!(!two.path().join("t/a.bin").exists());
    assert!(check_files(&s, &info, 2).unwrap().get(0));
    // delete
    s.delete_files().unwrap();
    assert!(!two.path().join("t").exists());
    assert!(!s.has_any_file().unwrap());
}

#[test]
fn file_pool_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<FileEntry> = (0..20)
        .map(|i| entry(&["t", &format!("{i}")], 10, false))
        .collect();
    let l = FileStorage::new("t".into(), 10, files).unwrap();
    let opts = FsOptions {
        max_open_files: 3,
        ..FsOptions::default()
    };
    let s = FsStorage::new(l, dir.path(), opts).unwrap();
    for p in 0..20 {
        s.write(PieceIndex::new(p), 0, &[&[p as u8; 10]]).unwrap();
        assert!(s.open_files() <= 3);
    }
    for p in 0..20 {
        let mut b = [0u8; 10];
        s.read(PieceIndex::new(p), 0, &mut b).unwrap();
        assert_eq!(b, [p as u8; 10]);
    }
    s.release_files().unwrap();
    assert_eq!(s.open_files(), 0);
}

#[test]
fn memory_storage_misuse() {
    let l = FileStorage::new("t".into(), 16, [entry(&["a"], 20, false)]).unwrap();
    assert!(MemStorage::with_data(l.clone(), vec![0; 3]).is_err());
    let m = MemStorage::new(l).unwrap();
    assert!(m.write(PieceIndex::new(1), 4, &[&[0; 1]]).is_err());
    assert!(m.write(PieceIndex::new(7), 0, &[&[0; 1]]).is_err());
}

#[test]
fn many_buffers_in_one_write_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let l = FileStorage::new(
        "t".into(),
        1000,
        [
            entry(&["t", "a"], 333, false),
            entry(&["t", "pad"], 100, true),
            entry(&["t", "b"], 1567, false),
        ],
    )
    .unwrap();
    let s = FsStorage::new(l.clone(), dir.path(), FsOptions::default()).unwrap();
    let m = MemStorage::new(l).unwrap();
    let data = bytes(3, 1000);
    // 200 buffers of 5 bytes: more than one pwritev's worth, split over three files.
    let parts: Vec<&[u8]> = data.chunks(5).collect();
    s.write(PieceIndex::new(0), 0, &parts).unwrap();
    m.write(PieceIndex::new(0), 0, &parts).unwrap();
    let (mut x, mut y) = (vec![0; 1000], vec![1; 1000]);
    s.read(PieceIndex::new(0), 0, &mut x).unwrap();
    m.read(PieceIndex::new(0), 0, &mut y).unwrap();
    assert_eq!(x, y);
    assert_eq!(x[..333], data[..333]);
    assert!(x[333..433].iter().all(|&b| b == 0));
    assert_eq!(x[433..], data[433..]);
    assert_eq!(std::fs::read(dir.path().join("t/a")).unwrap(), data[..333]);
    assert!(!dir.path().join("t/pad").exists());
}

/// `Allocation::Full` without `initialize` (as a session writes): the first write to a file
/// allocates all of it on disk; in sparse mode the file is only as long, with holes.
#[test]
fn full_allocation_happens_at_the_first_write() {
    use std::os::unix::fs::MetadataExt as _;
    let src = tempfile::tempdir().unwrap();
    let (info, _) = make_torrent(src.path(), FILES, 32768, TorrentVersion::V1);
    for (mode, full) in [(Allocation::Sparse, false), (Allocation::Full, true)] {
        let dst = tempfile::tempdir().unwrap();
        let opts = FsOptions {
            allocation: mode,
            ..FsOptions::default()
        };
        let s = FsStorage::new(info.files().clone(), dst.path(), opts).unwrap();
        s.write(PieceIndex::new(info.num_pieces() - 1), 0, &[b"x"])
            .unwrap();
        let meta = std::fs::metadata(dst.path().join("t/d.bin")).unwrap();
        assert_eq!(meta.len(), 150_001);
        let on_disk = meta.blocks() * 512;
        assert_eq!(
            on_disk >= 150_001,
            full,
            "{mode:?}: {on_disk} bytes allocated"
        );
    }
}
