//! `cargo bench -p lt-metainfo --bench parse`: loading huge `.torrent` files with
//! `TorrentInfo::from_bytes`, beside libtorrent 2.0's `torrent_info` (through Debian's
//! `python3-libtorrent`) on the same files in the same run.
//!
//! The torrents are generated here with `lt_bencode::Value` and written to `/dev/shm`:
//! 100,000 files (v1), 1,000,000 pieces (v1) and 1,000,000 pieces (v2, with the 32 MB piece
//! layer that the loader checks against the file's `pieces root`).
//!
//! - time: the median of `LT_BENCH_RUNS` (default 11) loads from bytes already in memory;
//!   libtorrent's is measured inside Python around the `lt.torrent_info(bytes, limits)` call.
//! - peak: how much the process's peak resident memory (`VmHWM`) grows during the first load,
//!   in a fresh process (a child of this one, or the Python process), with the input already
//!   read. Both include the returned object.
//!
//! Without `/usr/bin/python3` and `libtorrent` the libtorrent columns say why they are empty.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    reason = "figures for display"
)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lt_bencode::Value;
use lt_core::Sha256Hash;
use lt_metainfo::{LoadLimits, TorrentInfo, merkle_root, pad_hash};

mod common;

use common::{PYTHON, Result, env_u64, pseudo_random, run_python, scratch_dir};

/// Builds one benchmark torrent.
type Generator = fn() -> Result<Vec<u8>>;

/// Set in the child process that measures one torrent: the path of the `.torrent`.
const CHILD_ENV: &str = "LT_BENCH_PARSE_CHILD";

/// Loads `argv[1]` `argv[2]` times with libtorrent; prints `median_seconds peak_kib files pieces`
/// (files without pad files: libtorrent adds a tail pad file to v2 torrents).
const LIBTORRENT_PY: &str = r#"
import gc, sys, time
import libtorrent as lt
path, runs = sys.argv[1], int(sys.argv[2])
limits = {"max_buffer_size": 256 << 20, "max_pieces": 1 << 23,
          "max_decode_tokens": 100_000_000, "max_decode_depth": 100}
def hwm_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
with open(path, "rb") as f:
    data = f.read()
gc.collect()
base = hwm_kib()
ti = lt.torrent_info(data, limits)
peak = hwm_kib() - base
fs = ti.files()
files = sum(1 for i in range(fs.num_files()) if not fs.file_flags(i) & lt.file_storage.flag_pad_file)
pieces = ti.num_pieces()
del ti
times = []
for _ in range(runs):
    start = time.perf_counter()
    ti = lt.torrent_info(data, limits)
    times.append(time.perf_counter() - start)
    del ti
times.sort()
print(times[len(times) // 2], peak, files, pieces)
"#;

fn main() -> Result<()> {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        return child(Path::new(&path));
    }
    let runs = usize::try_from(env_u64("LT_BENCH_RUNS", 11).max(1))?;
    let dir = scratch_dir("lt-bench-parse-")?;
    println!(
        "lt-metainfo TorrentInfo::from_bytes vs libtorrent {} torrent_info (median of {runs}; \
         peak = VmHWM growth in a fresh process)",
        libtorrent_version().unwrap_or_else(|| "(unavailable)".into())
    );
    println!();
    println!(
        "{:<34} {:>8} | {:>10} {:>10} | {:>10} {:>10} | {:>8} {:>8}",
        "torrent", "size", "lt time", "lt peak", "libt time", "libt peak", "time x", "peak x"
    );
    println!("{}", "-".repeat(34 + 9 + 24 + 24 + 20 + 6));

    let cases: [(&str, Generator); 3] = [
        ("100,000 files (v1)", many_files),
        ("1,000,000 pieces (v1)", many_pieces_v1),
        ("1,000,000 pieces (v2, piece layer)", many_pieces_v2),
    ];
    for (i, (name, generate)) in cases.into_iter().enumerate() {
        let bytes = generate()?;
        let path = dir.path().join(format!("case{i}.torrent"));
        std::fs::write(&path, &bytes)?;
        let ours = measure_ours(&path, runs)?;
        let theirs = measure_libtorrent(&path, runs);
        let (libt_time, libt_peak, time_x, peak_x) = match &theirs {
            Ok(t) => {
                if (t.files, t.pieces) != (ours.files, ours.pieces) {
                    return Err(format!(
                        "{name}: libtorrent sees {} files / {} pieces, lt-metainfo {} / {}",
                        t.files, t.pieces, ours.files, ours.pieces
                    )
                    .into());
                }
                (
                    fmt_duration(t.median),
                    fmt_kib(t.peak_kib),
                    format!("{:.2}", ours.median.as_secs_f64() / t.median.as_secs_f64()),
                    format!("{:.2}", ours.peak_kib as f64 / t.peak_kib.max(1) as f64),
                )
            }
            Err(_) => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "{name:<34} {:>8} | {:>10} {:>10} | {libt_time:>10} {libt_peak:>10} | {time_x:>8} {peak_x:>8}",
            fmt_kib(bytes.len() as u64 / 1024),
            fmt_duration(ours.median),
            fmt_kib(ours.peak_kib),
        );
        if let Err(e) = theirs {
            println!("    libtorrent: {e}");
        }
    }
    println!();
    println!(
        "time x, peak x: lt-metainfo / libtorrent (below 1.00: lt-metainfo is faster / smaller)"
    );
    Ok(())
}

/// One torrent's figures.
struct Figures {
    median: Duration,
    peak_kib: u64,
    files: u64,
    pieces: u64,
}

/// In the child: read the file, load it once measuring the peak, then time `LT_BENCH_RUNS`
/// loads; prints `median_ns peak_kib files pieces` (files without pad files).
fn child(path: &Path) -> Result<()> {
    let runs = usize::try_from(env_u64("LT_BENCH_RUNS", 11).max(1))?;
    let bytes = std::fs::read(path)?;
    let limits = LoadLimits::default();
    let base = vm_hwm_kib()?;
    let first = TorrentInfo::from_bytes_with(&bytes, &limits)?;
    let peak = vm_hwm_kib()?.saturating_sub(base);
    let files = first.files().files().iter().filter(|f| !f.is_pad()).count() as u64;
    let pieces = u64::from(first.num_pieces());
    drop(std::hint::black_box(first));
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let t = TorrentInfo::from_bytes_with(std::hint::black_box(&bytes), &limits)?;
        times.push(start.elapsed());
        drop(std::hint::black_box(t));
    }
    times.sort();
    println!(
        "{} {peak} {files} {pieces}",
        times[times.len() / 2].as_nanos()
    );
    Ok(())
}

fn measure_ours(path: &Path, runs: usize) -> Result<Figures> {
    let out = Command::new(std::env::current_exe()?)
        .env(CHILD_ENV, path)
        .env("LT_BENCH_RUNS", runs.to_string())
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "lt-metainfo child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = String::from_utf8(out.stdout)?;
    let f: Vec<u64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()?;
    let [nanos, peak_kib, files, pieces] = f[..] else {
        return Err(format!("unexpected child output {text:?}").into());
    };
    Ok(Figures {
        median: Duration::from_nanos(nanos),
        peak_kib,
        files,
        pieces,
    })
}

fn measure_libtorrent(path: &Path, runs: usize) -> Result<Figures> {
    let words = run_python(
        LIBTORRENT_PY,
        [path.as_os_str().to_owned(), runs.to_string().into()],
    )?;
    let [secs, peak, files, pieces] = &words[..] else {
        return Err(format!("unexpected python output {words:?}").into());
    };
    Ok(Figures {
        median: Duration::from_secs_f64(secs.parse()?),
        peak_kib: peak.parse()?,
        files: files.parse()?,
        pieces: pieces.parse()?,
    })
}

fn libtorrent_version() -> Option<String> {
    let out = Command::new(PYTHON)
        .args(["-c", "import libtorrent; print(libtorrent.__version__)"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

// ------------------------------------------------------------------------------------------
// the torrents

/// 100,000 files in 100 directories, sizes 1 KB to 50 KB, 4 MiB pieces.
fn many_files() -> Result<Vec<u8>> {
    const FILES: u64 = 100_000;
    const PIECE: u64 = 4 << 20;
    let mut total = 0;
    let mut files = Vec::with_capacity(FILES as usize);
    for i in 0..FILES {
        let size = 1_000 + (i * 7_919) % 50_000;
        total += size;
        files.push(Value::dict([
            ("length", Value::Int(size as i64)),
            (
                "path",
                Value::List(vec![
                    Value::from(format!("directory {:03}", i / 1_000)),
                    Value::from(format!("file number {i:06}.dat")),
                ]),
            ),
        ]));
    }
    let pieces = pseudo_random(total.div_ceil(PIECE) as usize * 20, 1);
    let info = Value::dict([
        ("name", Value::from("one hundred thousand files")),
        ("piece length", Value::Int(PIECE as i64)),
        ("pieces", Value::Bytes(pieces)),
        ("files", Value::List(files)),
    ]);
    Ok(wrap(info, None))
}

/// One 16 GB file in 1,000,000 pieces of 16 KiB.
fn many_pieces_v1() -> Result<Vec<u8>> {
    const PIECES: u64 = 1_000_000;
    let info = Value::dict([
        ("name", Value::from("a million pieces.bin")),
        ("piece length", Value::Int(16_384)),
        ("length", Value::Int((PIECES * 16_384 - 123) as i64)),
        (
            "pieces",
            Value::Bytes(pseudo_random(PIECES as usize * 20, 2)),
        ),
    ]);
    Ok(wrap(info, None))
}

/// The same file as a v2 torrent: a file tree with its `pieces root` and the piece layer of
/// 1,000,000 SHA-256 hashes that must hash to it.
fn many_pieces_v2() -> Result<Vec<u8>> {
    const PIECES: usize = 1_000_000;
    let layer_bytes = pseudo_random(PIECES * 32, 3);
    let layer: Vec<Sha256Hash> = layer_bytes
        .chunks_exact(32)
        .filter_map(Sha256Hash::from_slice)
        .collect();
    // Piece layer of 16 KiB pieces: one leaf per piece, padded with zero hashes (height 0).
    let root = merkle_root(&layer, pad_hash(0));
    let length = (PIECES as u64 * 16_384 - 123) as i64;
    let info = Value::dict([
        ("name", Value::from("a million pieces.bin")),
        ("piece length", Value::Int(16_384)),
        ("meta version", Value::Int(2)),
        (
            "file tree",
            Value::dict([(
                "a million pieces.bin",
                Value::dict([(
                    "",
                    Value::dict([
                        ("length", Value::Int(length)),
                        ("pieces root", Value::Bytes(root.as_bytes().to_vec())),
                    ]),
                )]),
            )]),
        ),
    ]);
    let layers = Value::dict([(root.as_bytes().to_vec(), Value::Bytes(layer_bytes))]);
    Ok(wrap(info, Some(layers)))
}

fn wrap(info: Value, piece_layers: Option<Value>) -> Vec<u8> {
    let mut root = vec![
        ("announce", Value::from("http://127.0.0.1:6969/announce")),
        ("created by", Value::from("lt-metainfo bench")),
        ("creation date", Value::Int(1_700_000_000)),
        ("info", info),
    ];
    if let Some(layers) = piece_layers {
        root.push(("piece layers", layers));
    }
    Value::dict(root).to_bytes()
}

// ------------------------------------------------------------------------------------------
// helpers

fn vm_hwm_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .ok_or("no VmHWM in /proc/self/status")?
        .parse()
        .map_err(Into::into)
}

fn fmt_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

fn fmt_kib(kib: u64) -> String {
    if kib >= 1024 {
        format!("{:.1} MiB", kib as f64 / 1024.0)
    } else {
        format!("{kib} KiB")
    }
}
