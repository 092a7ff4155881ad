//! `cargo bench -p lt-storage --bench disk`: sequential write of 1 GiB in 16 KiB blocks
//! arriving in random piece order (through the `DiskIo` queue), and a recheck of 4 GiB from
//! page cache, beside `dd`, `openssl speed -evp sha1` and libtorrent's check and
//! `force_recheck` of the same files in the same run. Files go to /dev/shm and are deleted.
//!
//! `LT_BENCH_SIZE_MIB` sets the recheck size (default 4096); the write is
//! `min(1024, size)` MiB.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    missing_docs
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lt_core::PieceIndex;
use lt_metainfo::{CreateTorrent, FileAttr, FileEntry, FileStorage, TorrentInfo, TorrentVersion};
use lt_storage::{
    Completion, DiskIo, FsOptions, FsStorage, Job, Output, SubmitError, TorrentStore, check_files,
};

const MIB: u64 = 1 << 20;
const BLOCK: usize = 16 * 1024;

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rng_fill(seed: &mut u64, buf: &mut [u8]) {
    for c in buf.chunks_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let b = seed.to_le_bytes();
        c.copy_from_slice(&b[..c.len()]);
    }
}

fn entry(name: &str, size: u64) -> FileEntry {
    FileEntry {
        path: vec!["w".into(), name.into()].into(),
        size,
        offset: 0,
        attr: FileAttr::default(),
        symlink_target: None,
        mtime: None,
        pieces_root: None,
    }
}

fn mbs(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn bench_write(dir: &Path, size: u64) -> f64 {
    let piece: u32 = 256 * 1024;
    let quarter = size / 4;
    let layout = FileStorage::new(
        "w".into(),
        piece,
        [
            entry("a", quarter - 12345),
            entry("b", quarter + 12345),
            entry("c", quarter),
            entry("d", size - 3 * quarter),
        ],
    )
    .unwrap();
    let storage = FsStorage::new(layout.clone(), dir, FsOptions::default()).unwrap();
    // The metadata is only carried along: the bench's jobs write without hashing.
    let info = Arc::new(
        TorrentInfo::from_bytes(
            &CreateTorrent::from_memory("w", vec![0; 1])
                .generate()
                .unwrap(),
        )
        .unwrap(),
    );
    let store = Arc::new(TorrentStore::new(
        Box::new(storage),
        info,
        dir.to_path_buf(),
    ));
    let (tx, done_rx) = std::sync::mpsc::channel::<Completion<()>>();
    let tx = std::sync::Mutex::new(tx);
    let pool = DiskIo::new(2, 512, 1, move |c| {
        let _ = tx.lock().unwrap().send(c);
    })
    .unwrap();
    let mut order: Vec<u32> = (0..layout.num_pieces()).collect();
    let mut seed = 0x1234_5678_9abc_def1_u64;
    for i in (1..order.len()).rev() {
        let mut r = [0u8; 8];
        rng_fill(&mut seed, &mut r);
        order.swap(i, (u64::from_le_bytes(r) % (i as u64 + 1)) as usize);
    }
    let mut src = vec![0u8; BLOCK];
    rng_fill(&mut seed, &mut src);
    let src = Bytes::from(src);
    let (mut sent, mut done) = (0u64, 0u64);
    let start = Instant::now();
    for p in order {
        let psize = layout.piece_size(PieceIndex::new(p)) as usize;
        let mut off = 0;
        while off < psize {
            let n = BLOCK.min(psize - off);
            let mut job = Job::WriteBlocks {
                piece: PieceIndex::new(p),
                blocks: vec![(off as u32, src.slice(..n))],
                last: false,
            };
            loop {
                match pool.try_submit(Arc::clone(&store), job, ()) {
                    Ok(()) => break,
                    Err(SubmitError::Full(_, j, ())) => {
                        job = j;
                        if let Ok(c) = done_rx.recv_timeout(Duration::from_millis(10)) {
                            assert!(
                                matches!(c.output, Output::BlocksWritten { result: Ok(()), .. }),
                                "write failed: {c:?}"
                            );
                            done += 1;
                        }
                    }
                    Err(SubmitError::Stopped(..)) => panic!("pool stopped"),
                }
            }
            done += done_rx.try_iter().count() as u64;
            sent += 1;
            off += n;
        }
    }
    while done < sent {
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("completion");
        done += 1;
    }
    let t = start.elapsed();
    pool.shutdown();
    store.with_storage(|s| s.release_files()).unwrap();
    mbs(size, t)
}

fn make_payload(dir: &Path, size: u64) -> PathBuf {
    let root = dir.join("payload");
    std::fs::create_dir_all(&root).unwrap();
    let mut seed = 0xdead_beef_u64;
    let mut buf = vec![0u8; MIB as usize];
    for (i, share) in [3u64, 3, 1, 1].iter().enumerate() {
        let bytes = size * share / 8;
        let mut f = std::fs::File::create(root.join(format!("f{i}.bin"))).unwrap();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(MIB) as usize;
            rng_fill(&mut seed, &mut buf[..n]);
            std::io::Write::write_all(&mut f, &buf[..n]).unwrap();
            left -= n as u64;
        }
    }
    root
}

fn dd(dir: &Path, size: u64) -> String {
    let out = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", dir.join("dd.bin").display()))
        .arg("bs=16k")
        .arg(format!("count={}", size / BLOCK as u64))
        .output();
    let _ = std::fs::remove_file(dir.join("dd.bin"));
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .to_owned(),
        Err(e) => format!("dd not run: {e}"),
    }
}

/// `openssl speed -evp sha1` at 16 KiB, single core, in MB/s.
fn openssl_sha1() -> Option<f64> {
    let o = Command::new("openssl")
        .args(["speed", "-evp", "sha1", "-bytes", "16384", "-seconds", "2"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.to_lowercase().starts_with("sha1"))?;
    let v = line.split_whitespace().last()?.trim_end_matches('k');
    // openssl reports 1000s of bytes per second.
    v.parse::<f64>().ok().map(|k| k / 1000.0)
}

const LT_CHECK_PY: &str = r#"
import json, sys, time
import libtorrent as lt
torrent, save = sys.argv[1:3]
s = lt.high_performance_seed()
s.update({'listen_interfaces': '127.0.0.1:0', 'enable_dht': False, 'enable_lsd': False,
          'enable_upnp': False, 'enable_natpmp': False, 'aio_threads': 2, 'hashing_threads': 2,
          'alert_mask': lt.alert_category.status | lt.alert_category.storage})
ses = lt.session(s)
def wait_checked():
    while True:
        ses.wait_for_alert(1000)
        for a in ses.pop_alerts():
            if isinstance(a, lt.torrent_checked_alert):
                return
t0 = time.time()
h = ses.add_torrent({'ti': lt.torrent_info(torrent), 'save_path': save})
wait_checked()
t1 = time.time()
n1 = h.status().num_pieces
h.force_recheck()
wait_checked()
t2 = time.time()
print(json.dumps({'check': t1 - t0, 'recheck': t2 - t1, 'pieces': n1,
                  'pieces2': h.status().num_pieces}))
"#;

fn libtorrent_check(torrent: &Path, save: &Path) -> Option<(f64, f64, u64)> {
    let o = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(LT_CHECK_PY)
        .arg(torrent)
        .arg(save)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&o.stdout);
    let get = |k: &str| -> Option<f64> {
        let i = text.find(&format!("\"{k}\": "))? + k.len() + 4;
        let rest = &text[i..];
        rest[..rest.find([',', '}'])?].trim().parse().ok()
    };
    Some((get("check")?, get("recheck")?, get("pieces2")? as u64))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let size_mib: u64 = std::env::var("LT_BENCH_SIZE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    let write_mib = size_mib.min(1024);
    let base = Path::new("/dev/shm").join(format!("lt-storage-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let dir = Dir(base);

    let write = bench_write(&dir.0.join("write"), write_mib * MIB);
    let _ = std::fs::remove_dir_all(dir.0.join("write"));
    let dd_line = dd(&dir.0, write_mib * MIB);

    let root = make_payload(&dir.0, size_mib * MIB);
    let t = CreateTorrent::new(&root)
        .piece_size(4 << 20)
        .version(TorrentVersion::V1)
        .generate()
        .unwrap();
    let torrent = dir.0.join("payload.torrent");
    std::fs::write(&torrent, &t).unwrap();
    let info = TorrentInfo::from_bytes(&t).unwrap();
    let s = FsStorage::new(info.files().clone(), &dir.0, FsOptions::default()).unwrap();
    let total = info.total_size();
    let mut rows = Vec::new();
    // Best of three runs each: the machine is shared, and a run that lost its core to
    // another process says nothing about the code.
    for threads in [1, 2] {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let start = Instant::now();
            let have = check_files(&s, &info, threads).unwrap();
            best = best.min(start.elapsed());
            assert!(have.all(), "recheck found missing pieces");
        }
        rows.push((threads, mbs(total, best), best));
    }
    let openssl = openssl_sha1();
    let lt = libtorrent_check(&torrent, &dir.0);

    println!(
        "lt-storage disk bench (files on /dev/shm, {} cores)",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    println!("{:<58} {:>10}", "measurement", "MB/s");
    println!(
        "{:<58} {:>10.0}",
        format!("write {write_mib} MiB, 16 KiB blocks, random piece order (DiskIo, 2 threads)"),
        write
    );
    println!(
        "{:<58} {:>10}",
        format!("dd if=/dev/zero bs=16k, {write_mib} MiB"),
        dd_line.rsplit(", ").next().unwrap_or("")
    );
    for (threads, rate, d) in &rows {
        println!(
            "{:<58} {:>10.0}",
            format!(
                "lt-storage check_files {size_mib} MiB, {threads} thread(s) (best of 3, {:.2} s)",
                d.as_secs_f64()
            ),
            rate
        );
    }
    match openssl {
        Some(o) => {
            println!(
                "{:<58} {:>10.0}",
                "openssl speed -evp sha1 (16 KiB blocks, 1 core)", o
            );
            let two = rows.iter().find(|r| r.0 == 2).map_or(0.0, |r| r.1);
            println!(
                "{:<58} {:>10.2}",
                "ratio check_files (2 threads) / openssl 1 core",
                two / o
            );
        }
        None => println!("openssl not available"),
    }
    match lt {
        Some((check, recheck, pieces)) => {
            println!(
                "{:<58} {:>10.0}",
                format!("libtorrent 2.0 check on add ({check:.2} s)"),
                mbs(total, Duration::from_secs_f64(check))
            );
            println!(
                "{:<58} {:>10.0}",
                format!("libtorrent 2.0 force_recheck ({recheck:.2} s, {pieces} pieces)"),
                mbs(total, Duration::from_secs_f64(recheck))
            );
        }
        None => println!("libtorrent (python3-libtorrent) not available"),
    }
}
