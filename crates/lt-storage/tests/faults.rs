//! A full disk (a small tmpfs) and a process killed with SIGKILL mid-download.
#![allow(
    clippy::cast_possible_truncation,
    clippy::unwrap_used,
    clippy::expect_used
)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{bytes, shuffled};
use lt_core::{Bitfield, PieceIndex};
use lt_metainfo::{CreateTorrent, TorrentInfo};
use lt_storage::{
    Allocation, Error, FsOptions, FsStorage, ResumeData, ResumeError, Storage, check_files,
    check_pieces,
};

/// Mounts a tmpfs of `kib` KiB on `dir`; unmounted on drop.
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(dir: &'a Path, kib: u32) -> Self {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a {kib} KiB tmpfs on {dir:?} failed: the full-disk test needs root \
             (CAP_SYS_ADMIN) to mount a small file system"
        );
        Self(dir)
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

fn torrent(data: &[u8], piece: u32) -> TorrentInfo {
    let t = CreateTorrent::from_memory("payload.bin", data.to_vec())
        .piece_size(piece)
        .generate()
        .unwrap();
    TorrentInfo::from_bytes(&t).unwrap()
}

#[test]
fn full_disk_is_typed_and_recoverable() {
    let dir = tempfile::tempdir().unwrap();
    let _fs = Tmpfs::mount(dir.path(), 1024);
    let data = bytes(5, 512 * 1024);
    let info = torrent(&data, 16384);
    // Fill most of the disk.
    let filler = dir.path().join("filler");
    std::fs::write(&filler, vec![1u8; 700 * 1024]).unwrap();
    // Full allocation finds out up front.
    let full = FsStorage::new(
        info.files().clone(),
        dir.path().join("full"),
        FsOptions {
            allocation: Allocation::Full,
            ..FsOptions::default()
        },
    )
    .unwrap();
    let e = full.initialize().unwrap_err();
    assert!(e.is_disk_full(), "{e:?}");
    let mut full = full;
    full.delete_files().unwrap();
    // Sparse: writes fail with DiskFull part way, and what was written stays verified.
    let s = FsStorage::new(
        info.files().clone(),
        dir.path().join("sparse"),
        FsOptions::default(),
    )
    .unwrap();
    let mut failed = None;
    for p in 0..info.num_pieces() {
        let start = p as usize * 16384;
        match s.write(PieceIndex::new(p), 0, &[&data[start..start + 16384]]) {
            Ok(()) => {}
            Err(e) => {
                assert!(
                    matches!(&e, Error::DiskFull { path, .. } if path.ends_with("payload.bin")),
                    "{e:?}"
                );
                failed = Some(p);
                break;
            }
        }
    }
    let failed = failed.expect("the disk never filled");
    let have = check_files(&s, &info, 2).unwrap();
    assert!(
        (0..failed).all(|p| have.get(p as usize)),
        "verified data lost"
    );
    // The disk frees: the same writes now succeed.
    std::fs::remove_file(&filler).unwrap();
    for p in failed..info.num_pieces() {
        let start = p as usize * 16384;
        s.write(PieceIndex::new(p), 0, &[&data[start..start + 16384]])
            .unwrap();
    }
    assert!(check_files(&s, &info, 2).unwrap().all());
    s.release_files().unwrap();
}

const CHILD_ENV: &str = "LT_STORAGE_CRASH_CHILD";
const PIECE: u32 = 16384;
const PIECES: u32 = 400;

fn crash_payload() -> Vec<u8> {
    bytes(9, (PIECE * PIECES) as usize)
}

/// The child: writes pieces in random order in 4 KiB blocks, and every 10 pieces flushes
/// and saves resume data (atomically: write then rename) naming only verified pieces.
fn child(dir: &Path) {
    let data = crash_payload();
    let info = torrent(&data, PIECE);
    let s = FsStorage::new(info.files().clone(), dir.join("save"), FsOptions::default()).unwrap();
    s.initialize().unwrap();
    let mut resume = ResumeData::new(&info);
    let mut buf = Vec::new();
    for (n, p) in shuffled(PIECES, 11).into_iter().enumerate() {
        let start = (p * PIECE) as usize;
        for (i, block) in data[start..start + PIECE as usize].chunks(4096).enumerate() {
            s.write(PieceIndex::new(p), (i * 4096) as u32, &[block])
                .unwrap();
        }
        if lt_storage::verify_piece(&s, &info, PieceIndex::new(p), &mut buf).unwrap() {
            resume.pieces.set(p as usize);
        }
        if n % 10 == 9 {
            s.flush().unwrap();
            lt_storage::record_file_sizes(&mut resume, &s).unwrap();
            let tmp = dir.join("resume.tmp");
            std::fs::write(&tmp, resume.to_bytes()).unwrap();
            std::fs::rename(&tmp, dir.join("resume")).unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn kill_9_mid_download_then_resume() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "kill_9_mid_download_then_resume", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        .spawn()
        .unwrap();
    // Kill it once it has saved resume data a few times, mid-way through.
    let deadline = Instant::now() + Duration::from_secs(30);
    let info = torrent(&crash_payload(), PIECE);
    loop {
        assert!(Instant::now() < deadline, "child made no progress");
        assert!(
            c.try_wait().unwrap().is_none(),
            "child finished before it was killed"
        );
        if let Ok(b) = std::fs::read(dir.path().join("resume"))
            && let Ok(r) = ResumeData::from_bytes(&b)
            && r.pieces.count_ones() > 100
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(13));
    c.kill().unwrap(); // SIGKILL
    c.wait().unwrap();

    // Restart from the last resume data.
    let s = FsStorage::new(
        info.files().clone(),
        dir.path().join("save"),
        FsOptions::default(),
    )
    .unwrap();
    let resume =
        ResumeData::from_bytes(&std::fs::read(dir.path().join("resume")).unwrap()).unwrap();
    let claimed = match lt_storage::verify_resume(&resume, &info, &s) {
        Ok(claimed) => claimed,
        // The child wrote again in a later second than its last save (mtimes are whole
        // seconds, as in libtorrent's resume data): the resume data is not trusted and
        // every piece is checked, as the crate's documented fallback says.
        Err(ResumeError::FileChanged { .. }) => Bitfield::new(PIECES as usize),
        Err(e) => panic!("resume data rejected: {e}"),
    };
    let truth = check_files(&s, &info, 2).unwrap();
    // Never an unverified piece reported as had.
    for p in claimed.iter_ones() {
        assert!(truth.get(p), "resume data claimed unverified piece {p}");
    }
    assert!(claimed.count_ones() < PIECES as usize, "killed too late");
    // Check only what the resume data does not vouch for, then finish the download.
    let checked = check_pieces(&s, &info, 2, |p| !claimed.get(p.as_usize())).unwrap();
    let mut have: Bitfield = claimed;
    for p in checked.iter_ones() {
        have.set(p);
    }
    assert_eq!(have, truth);
    let data = crash_payload();
    for p in have.iter_zeros().collect::<Vec<_>>() {
        let start = p * PIECE as usize;
        s.write(
            PieceIndex::new(p as u32),
            0,
            &[&data[start..start + PIECE as usize]],
        )
        .unwrap();
    }
    assert!(check_files(&s, &info, 2).unwrap().all());
}
