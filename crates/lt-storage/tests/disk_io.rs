#![allow(clippy::cast_possible_truncation, clippy::unwrap_used)]
//! `DiskIo`: the engine's jobs on disk threads behind one bounded queue.

mod common;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use common::{make_torrent, shuffled};
use lt_core::PieceIndex;
use lt_metainfo::TorrentVersion;
use lt_storage::{
    Completion, DiskIo, FsOptions, FsStorage, Job, Output, ReadCache, SubmitError, TorrentStore,
    check_files,
};

const FILES: &[(&str, usize)] = &[("a.bin", 70_000), ("b.bin", 3), ("c.bin", 90_000)];

/// Every piece goes through a queue of 4 jobs on 2 threads, in shuffled order: whole pieces
/// hashed from memory and written (one of them corrupt: reported failed and never
/// written), pieces written as block runs and hashed back (v1 SHA-1 and v2 merkle), reads
/// through the read cache. The files end up right.
#[test]
fn the_engines_jobs_reach_the_files() {
    for version in [TorrentVersion::V1, TorrentVersion::V2] {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let (info, stream) = make_torrent(src.path(), FILES, 16384, version);
        let info = Arc::new(info);
        let storage =
            FsStorage::new(info.files().clone(), dst.path(), FsOptions::default()).unwrap();
        let store = Arc::new(TorrentStore::new(
            Box::new(storage),
            Arc::clone(&info),
            dst.path().to_path_buf(),
        ));
        let (tx, rx) = mpsc::channel::<Completion<u32>>();
        let tx = std::sync::Mutex::new(tx);
        let disk = DiskIo::new(2, 4, 2, move |c| {
            tx.lock().unwrap().send(c).unwrap();
        })
        .unwrap();
        let pl = info.piece_length() as usize;
        let piece_bytes = |p: u32| {
            let start = p as usize * pl;
            // v2 pieces end with their file; v1 pieces run on.
            let len = info.files().piece_size(PieceIndex::new(p)) as usize;
            Bytes::copy_from_slice(&stream[start..start + len])
        };
        let corrupt = 2u32;
        let mut outputs = Vec::new();
        let submit = |job: Job, tag: u32, outputs: &mut Vec<Completion<u32>>| {
            let (mut job, mut tag) = (job, tag);
            loop {
                match disk.try_submit(Arc::clone(&store), job, tag) {
                    Ok(()) => return,
                    Err(SubmitError::Full(_, j, t)) => {
                        (job, tag) = (j, t);
                        outputs.extend(rx.recv_timeout(Duration::from_secs(5)));
                    }
                    Err(SubmitError::Stopped(..)) => panic!("stopped"),
                }
            }
        };
        for p in shuffled(info.num_pieces(), 5) {
            let data = piece_bytes(p);
            let piece = PieceIndex::new(p);
            if p == corrupt {
                let mut bad = data.to_vec();
                bad[0] ^= 1;
                let blocks = vec![Bytes::from(bad)];
                submit(Job::WritePiece { piece, blocks }, p, &mut outputs);
            } else if p % 2 == 0 {
                let blocks = data.chunks(4096).map(Bytes::copy_from_slice).collect();
                submit(Job::WritePiece { piece, blocks }, p, &mut outputs);
            } else {
                // Out of order: the second half first, then the first half as the last job.
                let half = (data.len() / 2).next_multiple_of(4096).min(data.len());
                let second = vec![(half as u32, data.slice(half..))];
                let first = vec![(0, data.slice(..half))];
                submit(
                    Job::WriteBlocks {
                        piece,
                        blocks: second,
                        last: false,
                    },
                    p,
                    &mut outputs,
                );
                // The engine sends the last job once the others are reported.
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                loop {
                    assert!(std::time::Instant::now() < deadline, "no BlocksWritten");
                    outputs.extend(rx.recv_timeout(Duration::from_millis(100)));
                    if outputs.iter().any(|c| {
                        c.ctx == p
                            && matches!(c.output, Output::BlocksWritten { result: Ok(()), .. })
                    }) {
                        break;
                    }
                }
                submit(
                    Job::WriteBlocks {
                        piece,
                        blocks: first,
                        last: true,
                    },
                    p,
                    &mut outputs,
                );
            }
        }
        disk.shutdown();
        outputs.extend(rx.try_iter());
        let mut written = 0;
        for c in &outputs {
            if let Output::PieceWritten {
                piece,
                passed,
                error,
            } = &c.output
            {
                assert!(error.is_none(), "{error:?}");
                assert_eq!(
                    *passed,
                    piece.get() != corrupt,
                    "{version:?} piece {piece:?}"
                );
                written += 1;
            }
        }
        assert_eq!(written, info.num_pieces(), "{version:?}");
        let have = store.with_storage(|s| check_files(s, &info, 2)).unwrap();
        assert_eq!(
            have.count_ones(),
            info.num_pieces() as usize - 1,
            "{version:?}"
        );
        assert!(
            !have.get(corrupt as usize),
            "the corrupt piece reached the disk"
        );

        // Reads: the first fills the read cache with the block's window of the piece.
        let piece = PieceIndex::new(1);
        let out = lt_storage::run_job(
            &store,
            Job::Read {
                piece,
                begin: 4096,
                len: 100,
            },
            1,
        );
        let Output::Read(Ok(block)) = out else {
            panic!("{out:?}")
        };
        assert_eq!(block, piece_bytes(1).slice(4096..4196));
        assert_eq!(
            store.cached_block(piece, 0, 10),
            Some(piece_bytes(1).slice(..10))
        );
    }
}

/// A full queue hands the job back instead of blocking, and takes it once a job finished;
/// shutdown runs what is queued.
#[test]
fn a_full_queue_hands_the_job_back() {
    let src = tempfile::tempdir().unwrap();
    let (info, _) = make_torrent(src.path(), FILES, 16384, TorrentVersion::V1);
    let info = Arc::new(info);
    let storage = FsStorage::new(info.files().clone(), src.path(), FsOptions::default()).unwrap();
    let store = Arc::new(TorrentStore::new(
        Box::new(storage),
        Arc::clone(&info),
        src.path().to_path_buf(),
    ));
    // The one disk thread holds each completion until the test lets it go.
    let (release, gate) = mpsc::sync_channel::<()>(0);
    let gate = std::sync::Mutex::new(gate);
    let (tx, done) = mpsc::channel::<u32>();
    let tx = std::sync::Mutex::new(tx);
    let disk = DiskIo::new(1, 1, 1, move |c: Completion<u32>| {
        gate.lock().unwrap().recv().unwrap();
        tx.lock().unwrap().send(c.ctx).unwrap();
    })
    .unwrap();
    let verify = |p: u32| Job::VerifyPiece {
        piece: PieceIndex::new(p),
    };
    disk.try_submit(Arc::clone(&store), verify(0), 0).unwrap();
    // The thread takes job 0 and waits at the gate; job 1 fills the queue.
    let mut job1 = Some(verify(1));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while let Some(j) = job1.take() {
        if let Err(SubmitError::Full(_, j, _)) = disk.try_submit(Arc::clone(&store), j, 1) {
            assert!(
                std::time::Instant::now() < deadline,
                "the thread never took job 0"
            );
            std::thread::sleep(Duration::from_millis(5));
            job1 = Some(j);
        }
    }
    let Err(SubmitError::Full(_, job2, 2)) = disk.try_submit(Arc::clone(&store), verify(2), 2)
    else {
        panic!("a full queue took a third job");
    };
    release.send(()).unwrap();
    assert_eq!(done.recv_timeout(Duration::from_secs(5)), Ok(0));
    // Job 1 moves to the thread, so the queue has room again (once the thread took it).
    let mut job2 = Some(job2);
    while let Some(j) = job2.take() {
        if let Err(SubmitError::Full(_, j, _)) = disk.try_submit(Arc::clone(&store), j, 2) {
            assert!(
                std::time::Instant::now() < deadline,
                "the queue never drained"
            );
            std::thread::sleep(Duration::from_millis(5));
            job2 = Some(j);
        }
    }
    let releaser = std::thread::spawn(move || {
        for _ in 0..2 {
            release.send(()).unwrap();
        }
    });
    disk.shutdown();
    releaser.join().unwrap();
    assert_eq!(done.try_iter().collect::<Vec<_>>(), [1, 2]);
    assert!(matches!(
        disk.try_submit(store, verify(0), 3),
        Err(SubmitError::Stopped(..))
    ));
}

/// The read cache is one budget for every store that shares it: a read keeps the 256 KiB
/// window of its block, the oldest windows go past the budget, a store's windows go with
/// it, and a budget of 0 keeps nothing.
#[test]
fn the_read_cache_is_one_budget_of_windows() {
    const PIECE: u32 = 1 << 20;
    let src = tempfile::tempdir().unwrap();
    let (info, stream) = make_torrent(
        src.path(),
        &[("big.bin", 4 << 20)],
        PIECE,
        TorrentVersion::V1,
    );
    let info = Arc::new(info);
    let cache = Arc::new(ReadCache::new(3 * 256 * 1024));
    let store = |cache: &Arc<ReadCache>| {
        let storage =
            FsStorage::new(info.files().clone(), src.path(), FsOptions::default()).unwrap();
        TorrentStore::with_cache(
            Box::new(storage),
            Arc::clone(&info),
            src.path().to_path_buf(),
            Arc::clone(cache),
        )
    };
    let (a, b) = (store(&cache), store(&cache));
    let read = |s: &TorrentStore, piece: u32, begin: u32| {
        let out = lt_storage::run_job(
            s,
            Job::Read {
                piece: PieceIndex::new(piece),
                begin,
                len: 16384,
            },
            1,
        );
        let Output::Read(Ok(block)) = out else {
            panic!("{out:?}")
        };
        let start = (piece * PIECE + begin) as usize;
        assert_eq!(&block[..], &stream[start..start + 16384]);
    };
    read(&a, 0, 0);
    assert_eq!(cache.bytes(), 256 * 1024, "one window, not the whole piece");
    // The window's other blocks are there; the next window's are not.
    assert!(
        a.cached_block(PieceIndex::new(0), 240 * 1024, 16384)
            .is_some()
    );
    assert!(
        a.cached_block(PieceIndex::new(0), 256 * 1024, 16384)
            .is_none()
    );
    assert!(
        b.cached_block(PieceIndex::new(0), 0, 16384).is_none(),
        "b has its own keys"
    );
    read(&b, 1, 300 * 1024);
    read(&a, 2, 0);
    read(&a, 3, 0);
    assert_eq!(cache.bytes(), 3 * 256 * 1024, "the budget holds");
    assert!(
        a.cached_block(PieceIndex::new(0), 0, 16384).is_none(),
        "the oldest window went"
    );
    assert!(
        b.cached_block(PieceIndex::new(1), 256 * 1024, 16384)
            .is_some()
    );
    drop(b);
    assert_eq!(
        cache.bytes(),
        2 * 256 * 1024,
        "a dropped store's windows go with it"
    );
    cache.set_limit(0);
    assert_eq!(cache.bytes(), 0);
    read(&a, 1, 0);
    assert_eq!(cache.bytes(), 0, "a budget of 0 keeps nothing");
}
