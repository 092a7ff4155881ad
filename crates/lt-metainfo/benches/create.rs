//! `cargo bench -p lt-metainfo --bench create`: hashing speed of `CreateTorrent`.
//!
//! Writes a tree of a few files (2 GiB in all; `LT_BENCH_SIZE_MIB` changes it) to `/dev/shm`,
//! so reading costs a memory copy and no disk, and deletes it at the end. Then, each the
//! median of `LT_BENCH_RUNS` (default 3) runs:
//!
//! - v1 with 1 thread and with one thread per core, in GB/s (10^9 bytes per second), beside
//!   the single-core SHA-1 speed `openssl speed -evp sha1 -bytes 16384 -seconds 3` reports,
//!   and the ratio all-threads / openssl single-core (the target is at least 1.5 on two
//!   cores);
//! - v2 and hybrid with all threads, beside openssl's SHA-256 figure;
//! - libtorrent 2.0's `create_torrent` + `set_piece_hashes` (v1, through Debian's
//!   `python3-libtorrent`, timed inside Python) on the same tree.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    reason = "figures for display"
)]

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lt_metainfo::{CreateTorrent, TorrentInfo, TorrentVersion};

mod common;

use common::{Result, env_u64, pseudo_random, run_python, scratch_dir};

/// Creates a v1 torrent of `argv[1]` `argv[3]` times with piece size `argv[2]`; prints the
/// median seconds and the v1 info-hash.
const LIBTORRENT_PY: &str = r#"
import os, sys, time
import libtorrent as lt
src, piece_size, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
times = []
for _ in range(runs):
    start = time.perf_counter()
    fs = lt.file_storage()
    lt.add_files(fs, src)
    ct = lt.create_torrent(fs, piece_size, lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, os.path.dirname(src))
    ti = lt.torrent_info(ct.generate())
    times.append(time.perf_counter() - start)
times.sort()
print(times[len(times) // 2], ti.info_hashes().v1.to_bytes().hex(), ti.num_pieces())
"#;

fn main() -> Result<()> {
    let size_mib = env_u64("LT_BENCH_SIZE_MIB", 2048).max(1);
    let runs = env_u64("LT_BENCH_RUNS", 3).max(1) as usize;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let dir = scratch_dir("lt-bench-create-")?;
    let tree = dir.path().join("tree");
    let total = write_tree(&tree, size_mib << 20)?;
    let piece_size = lt_metainfo::auto_piece_size(total);

    println!(
        "CreateTorrent on {} in 4 files on {} ({} KiB pieces), {cores} cores, median of {runs}",
        fmt_bytes(total),
        if dir.path().starts_with("/dev/shm") {
            "/dev/shm"
        } else {
            "a temp dir"
        },
        piece_size / 1024
    );
    println!();
    println!(
        "{:<42} {:>10} {:>10} {:>12}",
        "run", "seconds", "GB/s", "vs openssl"
    );
    println!("{}", "-".repeat(77));

    let sha1 = openssl_speed("sha1");
    let sha256 = openssl_speed("sha256");
    let row = |name: &str, secs: Option<f64>, reference: &Result<f64>| {
        let (secs_s, gbps_s, ratio) = match secs {
            Some(s) => {
                let gbps = total as f64 / s / 1e9;
                let ratio = reference
                    .as_ref()
                    .map_or_else(|_| "-".to_owned(), |r| format!("{:.2}", gbps / r));
                (format!("{s:.3}"), format!("{gbps:.3}"), ratio)
            }
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!("{name:<42} {secs_s:>10} {gbps_s:>10} {ratio:>12}");
    };
    let openssl_row = |name: &str, r: &Result<f64>| match r {
        Ok(gbps) => println!("{name:<42} {:>10} {gbps:>10.3} {:>12}", "-", "1.00"),
        Err(e) => println!("{name:<42} unavailable: {e}"),
    };
    openssl_row("openssl SHA-1, 1 core, 16 KiB blocks", &sha1);

    let (v1_one, hash_one) = time_create(&tree, TorrentVersion::V1, Some(1), runs)?;
    row("lt-metainfo v1, 1 thread", Some(v1_one), &sha1);
    let (v1_all, hash_all) = time_create(&tree, TorrentVersion::V1, None, runs)?;
    row(
        &format!("lt-metainfo v1, {cores} threads"),
        Some(v1_all),
        &sha1,
    );
    if hash_one != hash_all {
        return Err("1 thread and all threads made different torrents".into());
    }

    let libtorrent = time_libtorrent(&tree, piece_size, runs);
    match &libtorrent {
        Ok((secs, hash, _)) => {
            row(
                "libtorrent v1 (python, set_piece_hashes)",
                Some(*secs),
                &sha1,
            );
            if *hash != hash_all {
                // libtorrent lists a directory's files in readdir order, we in byte order.
                println!("    (its info-hash differs from ours: it orders files as readdir does)");
            }
        }
        Err(e) => println!("{:<42} unavailable: {e}", "libtorrent v1"),
    }

    println!();
    openssl_row("openssl SHA-256, 1 core, 16 KiB blocks", &sha256);
    let (v2_all, _) = time_create(&tree, TorrentVersion::V2, None, runs)?;
    row(
        &format!("lt-metainfo v2, {cores} threads"),
        Some(v2_all),
        &sha256,
    );
    let (hybrid_all, _) = time_create(&tree, TorrentVersion::Hybrid, None, runs)?;
    row(
        &format!("lt-metainfo hybrid, {cores} threads"),
        Some(hybrid_all),
        &sha256,
    );

    println!();
    if let Ok(openssl) = &sha1 {
        let ours = total as f64 / v1_all / 1e9;
        println!(
            "v1 all threads / openssl SHA-1 single core: {:.2} (target >= 1.5)",
            ours / openssl
        );
        println!(
            "v1 1 thread / openssl SHA-1 single core:    {:.2}",
            total as f64 / v1_one / 1e9 / openssl
        );
    }
    if let Ok((secs, _, _)) = &libtorrent {
        println!(
            "v1 all threads vs libtorrent: {:.2}x its speed",
            secs / v1_all
        );
    }
    Ok(())
}

/// Median seconds of `runs` creations, and the info-hash they made.
fn time_create(
    tree: &Path,
    version: TorrentVersion,
    threads: Option<usize>,
    runs: usize,
) -> Result<(f64, String)> {
    let mut times = Vec::with_capacity(runs);
    let mut hash = String::new();
    for _ in 0..runs {
        let start = Instant::now();
        let mut builder = CreateTorrent::new(tree).version(version);
        if let Some(n) = threads {
            builder = builder.threads(n);
        }
        let bytes = builder.generate()?;
        times.push(start.elapsed());
        hash = TorrentInfo::from_bytes(&bytes)?.info_hash().to_string();
    }
    Ok((median(&mut times).as_secs_f64(), hash))
}

fn time_libtorrent(tree: &Path, piece_size: u32, runs: usize) -> Result<(f64, String, u64)> {
    let words = run_python(
        LIBTORRENT_PY,
        [
            tree.as_os_str().to_owned(),
            piece_size.to_string().into(),
            runs.to_string().into(),
        ],
    )?;
    let [secs, hash, pieces] = &words[..] else {
        return Err(format!("unexpected python output {words:?}").into());
    };
    Ok((secs.parse()?, hash.clone(), pieces.parse()?))
}

/// Single-core throughput of `openssl speed -evp <algo> -bytes 16384 -seconds 3`, in GB/s.
fn openssl_speed(algo: &str) -> Result<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-evp", algo, "-bytes", "16384", "-seconds", "3"])
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_openssl_speed(&text, algo)
        .ok_or_else(|| format!("no `{algo}` line in openssl's output: {text:?}").into())
}

/// The last line naming `algo` ends with the rate in thousands of bytes per second, as in
/// `sha1   1907345.84k`.
fn parse_openssl_speed(text: &str, algo: &str) -> Option<f64> {
    let line = text.lines().rev().find(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case(algo))
    })?;
    let kilo: f64 = line
        .split_whitespace()
        .last()?
        .strip_suffix('k')?
        .parse()
        .ok()?;
    Some(kilo * 1e3 / 1e9)
}

/// Four files of 40%, 30%, 20% and 10% of `total`, each a few bytes off a round size so
/// that pieces straddle files; returns the bytes written.
fn write_tree(tree: &Path, total: u64) -> Result<u64> {
    std::fs::create_dir_all(tree.join("sub"))?;
    let shares = [
        ("a.bin", 40, 7),
        ("b.bin", 30, 1_001),
        ("sub/c.bin", 20, 16_385),
        ("sub/d.bin", 10, 0),
    ];
    let mut chunk = pseudo_random(1 << 20, 1);
    let mut written = 0;
    for (i, (name, percent, off)) in shares.into_iter().enumerate() {
        let size = (total * percent / 100).saturating_sub(off).max(1);
        let mut file = std::io::BufWriter::new(std::fs::File::create(tree.join(name))?);
        let mut left = size;
        let mut n = i as u64;
        while left > 0 {
            // A different first word per MiB, so no two pieces hash alike.
            n += 1;
            chunk[..8].copy_from_slice(&n.to_le_bytes());
            let take = left.min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..take])?;
            left -= take as u64;
        }
        file.flush()?;
        written += size;
    }
    Ok(written)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn fmt_bytes(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.2} GiB", bytes as f64 / f64::from(1u32 << 30))
    } else {
        format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
    }
}
