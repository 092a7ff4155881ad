//! `cargo xtask bench transfer | tracker`.
//!
//! `transfer`: a single-file torrent (default 1 GiB, 1 MiB pieces, v1) whose payload is on
//! /dev/shm, moved over TCP on loopback between one seeder and one leecher process, for each
//! pair of clients: libtorrent seeder -> lt leecher, libtorrent -> libtorrent, and lt seeder
//! -> libtorrent leecher, and lt -> lt (`--pairs`), `--runs` times each, the pairs
//! interleaved within each run. With `--baseline PATH` (an `lt` binary built from another
//! commit), every pair with lt in it also runs with that binary, interleaved the same way,
//! and the report adds this build's ratios to the baseline's. libtorrent is
//! `tests/python/lt_peer.py` on python3-libtorrent 2.0; lt is `lt seed` / `lt download` built
//! in release mode. Per pair it reports the median rate the leecher reports (payload bytes
//! over its time from adding the torrent to completion), the leecher's CPU seconds
//! (utime + stime of the exited process, read from `/proc/PID/stat` of the zombie before it is
//! reaped), its peak anonymous memory (`RssAnon` of `/proc/PID/status` polled every 50 ms:
//! RSS would count the page cache of the memory-mapped file libtorrent uses), the seeder's
//! CPU seconds during the transfer, and the ratios lt/libtorrent. Each leecher's file is
//! checked byte for byte, and everything is deleted afterwards.
//!
//! `tracker`: the UDP announce benchmark of lt-tracker's server against opentracker (also
//! `cargo xtask bench-tracker`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::bench_tracker::{self, BenchTrackerArgs};
use crate::cmd;
use crate::swarm::{
    DEBIAN_PYTHON, Proc, Scratch, Stream, build_release, files_equal, json_event, lt_peer_script,
    require_python_libtorrent, secs, write_random_file,
};

/// `cargo xtask bench <what>`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum BenchCommand {
    /// Whole transfers over loopback: lt and libtorrent as seeder and leecher.
    Transfer(TransferArgs),
    /// UDP announces/s of lt-tracker's server and of opentracker (same as `bench-tracker`).
    Tracker(BenchTrackerArgs),
}

/// Options of `cargo xtask bench transfer`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TransferArgs {
    /// Payload size in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Piece size in KiB.
    #[arg(long, default_value_t = 1024)]
    piece_kib: u32,
    /// Runs per pair (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seeder-leecher pairs to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "libtorrent-lt,libtorrent-libtorrent,lt-libtorrent,lt-lt"
    )]
    pairs: Vec<Pair>,
    /// Seconds one transfer may take.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// An `lt` binary of another build (say, the commit before a change): each pair with lt
    /// in it runs with it too, in the same loop, and the report compares the two.
    #[arg(long, value_name = "PATH")]
    baseline: Option<std::path::PathBuf>,
    /// The leecher's download limit in bytes per second (0: none); the report then gives
    /// each leecher's rate as a fraction of it. lt is passed `--limit-local`, as loopback
    /// peers are exempt otherwise.
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    download_limit: u64,
}

/// A seeder and a leecher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Pair {
    /// libtorrent seeds, lt downloads.
    LibtorrentLt,
    /// libtorrent on both sides (the reference).
    LibtorrentLibtorrent,
    /// lt seeds, libtorrent downloads.
    LtLibtorrent,
    /// lt on both sides.
    LtLt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Lt,
    Libtorrent,
}

impl Pair {
    fn clients(self) -> (Client, Client) {
        match self {
            Self::LibtorrentLt => (Client::Libtorrent, Client::Lt),
            Self::LibtorrentLibtorrent => (Client::Libtorrent, Client::Libtorrent),
            Self::LtLibtorrent => (Client::Lt, Client::Libtorrent),
            Self::LtLt => (Client::Lt, Client::Lt),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::LibtorrentLt => "libtorrent -> lt",
            Self::LibtorrentLibtorrent => "libtorrent -> libtorrent",
            Self::LtLibtorrent => "lt -> libtorrent",
            Self::LtLt => "lt -> lt",
        }
    }

    fn has_lt(self) -> bool {
        self != Self::LibtorrentLibtorrent
    }
}

/// What one transfer measured.
#[derive(Debug, Clone, Copy)]
struct Run {
    mb_per_s: f64,
    leecher_cpu: f64,
    leecher_anon_kib: f64,
    seeder_cpu: f64,
}

pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    match &args.what {
        BenchCommand::Transfer(t) => transfer(t),
        BenchCommand::Tracker(t) => bench_tracker::run(t),
    }
}

fn transfer(args: &TransferArgs) -> Result<()> {
    if args.runs == 0 || args.pairs.is_empty() {
        bail!("nothing to run");
    }
    require_python_libtorrent()?;
    let lt = build_release(&[("lt-cli", "lt")])?.remove(0);
    let scratch = Scratch::new("lt-bench-transfer", false)?;
    let dir = &scratch.path;
    let source = dir.join("seed").join("payload.bin");
    let size = args.size_mib * 1024 * 1024;
    println!(
        "bench transfer: writing {} MiB to {}",
        args.size_mib,
        source.display()
    );
    write_random_file(&source, size, 0xbe4c_0001)?;
    let torrent = dir.join("bench.torrent");
    cmd::output(
        Command::new(&lt)
            .arg("create")
            .arg(&source)
            .arg("-o")
            .arg(&torrent)
            .arg("--v1")
            .args(["--piece-size", &format!("{}K", args.piece_kib)]),
    )?;

    // Every variant once per run, so a slow spell of the machine hits them all alike.
    let mut variants: Vec<Variant<'_>> = Vec::new();
    for &pair in &args.pairs {
        variants.push(Variant {
            pair,
            lt: &lt,
            baseline: false,
        });
        if let Some(b) = args.baseline.as_deref().filter(|_| pair.has_lt()) {
            variants.push(Variant {
                pair,
                lt: b,
                baseline: true,
            });
        }
    }
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); variants.len()];
    for i in 0..args.runs {
        for (v, runs) in variants.iter().zip(&mut results) {
            let r = one_transfer(v.pair, v.lt, &torrent, &source, dir, args)
                .with_context(|| format!("{} run {}", v.label(), i + 1))?;
            println!(
                "  {:<37} run {}: {:>7.1} MB/s, leecher {:.2} CPU s, {:.1} MiB peak anon, \
                 seeder {:.2} CPU s",
                v.label(),
                i + 1,
                r.mb_per_s,
                r.leecher_cpu,
                r.leecher_anon_kib / 1024.0,
                r.seeder_cpu
            );
            runs.push(r);
        }
    }

    println!();
    println!(
        "bench transfer: {} MiB single file, {} KiB pieces, TCP on loopback, payload on {}, \
         {} run(s) per pair (medians)",
        args.size_mib,
        args.piece_kib,
        dir.parent().unwrap_or(dir).display(),
        args.runs
    );
    println!(
        "{:<37} {:>9} {:>13} {:>15} {:>13}   runs (MB/s)",
        "seeder -> leecher", "MB/s", "leecher CPU s", "leecher anon MiB", "seeder CPU s"
    );
    let mut medians = Vec::new();
    for (v, runs) in variants.iter().zip(&results) {
        let m = Run {
            mb_per_s: median(runs.iter().map(|r| r.mb_per_s)),
            leecher_cpu: median(runs.iter().map(|r| r.leecher_cpu)),
            leecher_anon_kib: median(runs.iter().map(|r| r.leecher_anon_kib)),
            seeder_cpu: median(runs.iter().map(|r| r.seeder_cpu)),
        };
        let each: Vec<String> = runs.iter().map(|r| format!("{:.1}", r.mb_per_s)).collect();
        println!(
            "{:<37} {:>9.1} {:>13.2} {:>15.1} {:>13.2}   {}",
            v.label(),
            m.mb_per_s,
            m.leecher_cpu,
            m.leecher_anon_kib / 1024.0,
            m.seeder_cpu,
            each.join(" ")
        );
        medians.push((v.pair, v.baseline, m));
    }
    let get = |p: Pair, baseline: bool| {
        medians
            .iter()
            .find(|(q, b, _)| *q == p && *b == baseline)
            .map(|(_, _, m)| *m)
    };
    if let Some(reference) = get(Pair::LibtorrentLibtorrent, false) {
        for baseline in [false, true] {
            let which = if baseline { " (baseline)" } else { "" };
            if let Some(ours) = get(Pair::LibtorrentLt, baseline) {
                println!(
                    "lt{which}/libtorrent as leecher: rate x{:.2}, CPU x{:.2}, peak anon memory x{:.2}",
                    ours.mb_per_s / reference.mb_per_s,
                    ours.leecher_cpu / reference.leecher_cpu,
                    ours.leecher_anon_kib / reference.leecher_anon_kib.max(1.0)
                );
            }
            if let Some(ours) = get(Pair::LtLibtorrent, baseline) {
                println!(
                    "lt{which}/libtorrent as seeder:  rate x{:.2}, seeder CPU x{:.2}",
                    ours.mb_per_s / reference.mb_per_s,
                    ours.seeder_cpu / reference.seeder_cpu
                );
            }
            if let Some(ours) = get(Pair::LtLt, baseline) {
                println!(
                    "lt{which} -> lt{which} against libtorrent -> libtorrent: rate x{:.2}",
                    ours.mb_per_s / reference.mb_per_s
                );
            }
        }
    }
    for &pair in &args.pairs {
        if let (Some(now), Some(before)) = (get(pair, false), get(pair, true)) {
            println!(
                "{}: this build / baseline: rate x{:.2}, leecher CPU x{:.2}, seeder CPU x{:.2}, \
                 leecher anon x{:.2}",
                pair.name(),
                now.mb_per_s / before.mb_per_s,
                now.leecher_cpu / before.leecher_cpu,
                now.seeder_cpu / before.seeder_cpu,
                now.leecher_anon_kib / before.leecher_anon_kib.max(1.0)
            );
        }
    }
    if args.download_limit > 0 {
        #[allow(clippy::cast_precision_loss)]
        let limit = args.download_limit as f64 / 1e6;
        for (pair, _, m) in medians.iter().filter(|(_, b, _)| !b) {
            println!(
                "{} at a {limit:.2} MB/s download limit: {:.3} MB/s = x{:.3} of the limit",
                pair.name(),
                m.mb_per_s,
                m.mb_per_s / limit
            );
        }
    }
    println!(
        "(libtorrent's CPU and memory include its Python interpreter; MB/s is payload over \
         the leecher's own time from start to completion)"
    );
    Ok(())
}

/// A pair run with one `lt` binary.
struct Variant<'a> {
    pair: Pair,
    lt: &'a Path,
    baseline: bool,
}

impl Variant<'_> {
    fn label(&self) -> String {
        if self.baseline {
            format!("{} (baseline)", self.pair.name())
        } else {
            self.pair.name().to_owned()
        }
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn one_transfer(
    pair: Pair,
    lt: &Path,
    torrent: &Path,
    source: &Path,
    dir: &Path,
    args: &TransferArgs,
) -> Result<Run> {
    let timeout = args.timeout;
    let limit = args.download_limit.to_string();
    let (seeder_kind, leecher_kind) = pair.clients();
    let seed_dir = source.parent().unwrap_or(dir);
    let (mut seeder, port) = match seeder_kind {
        Client::Libtorrent => {
            let mut p = Proc::spawn(
                "libtorrent seed",
                Command::new(DEBIAN_PYTHON)
                    .arg(lt_peer_script())
                    .arg("seed")
                    .arg("--torrent")
                    .arg(torrent)
                    .arg("--save")
                    .arg(seed_dir)
                    .args(["--seed-mode", "--progress-interval", "3600"]),
            )?;
            let port = libtorrent_port(&mut p)?;
            p.wait_line(Stream::Stdout, secs(60), |l| {
                json_event(l).is_some_and(|v| v["event"] == "ready")
            })?;
            (p, port)
        }
        Client::Lt => {
            let mut p = Proc::spawn(
                "lt seed",
                Command::new(lt)
                    .arg("seed")
                    .arg(torrent)
                    .arg("--data")
                    .arg(seed_dir),
            )?;
            let line = p.wait_line(Stream::Stderr, secs(60), |l| l.contains("listening on "))?;
            let port = listen_port(&line).with_context(|| format!("cannot parse {line:?}"))?;
            // Checking 1 GiB takes a moment.
            p.wait_line(Stream::Stderr, secs(120), |l| l.contains("seeding "))?;
            (p, port)
        }
    };
    let peer = format!("127.0.0.1:{port}");
    let out = dir.join("leech");
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    std::fs::create_dir_all(&out)?;
    let seeder_cpu_before = proc_cpu(seeder.pid()).map_or(0.0, |(_, cpu)| cpu);
    let mut leecher = match leecher_kind {
        Client::Libtorrent => Proc::spawn(
            "libtorrent download",
            Command::new(DEBIAN_PYTHON)
                .arg(lt_peer_script())
                .arg("download")
                .arg("--torrent")
                .arg(torrent)
                .arg("--save")
                .arg(&out)
                .args(["--peer", &peer, "--max-time", &timeout.to_string()])
                .args(["--download-limit", &limit]),
        )?,
        Client::Lt => Proc::spawn(
            "lt download",
            Command::new(lt)
                .arg("download")
                .arg(torrent)
                .arg("-o")
                .arg(&out)
                .args(["--peer", &peer, "--json"])
                .args(["--download-limit", &limit, "--limit-local"]),
        )?,
    };
    let (leecher_cpu, leecher_anon_kib) = watch_until_exit(&leecher, secs(timeout))?;
    let seeder_cpu = proc_cpu(seeder.pid()).map_or(0.0, |(_, cpu)| cpu) - seeder_cpu_before;
    let status = leecher.reap()?;
    if !status.success() {
        bail!(
            "the leecher exited with {status}; last lines:\n{}",
            leecher.transcript(30)
        );
    }
    let mb_per_s = match leecher_kind {
        Client::Lt => {
            let line = leecher.wait_line(Stream::Stdout, secs(5), |l| {
                serde_json::from_str::<Value>(l).is_ok_and(|v| v["complete"] == true)
            })?;
            let v: Value = serde_json::from_str(&line)?;
            v["mb_per_s"]
                .as_f64()
                .context("no mb_per_s in lt's summary")?
        }
        Client::Libtorrent => {
            let line = leecher.wait_line(Stream::Stdout, secs(5), |l| {
                json_event(l).is_some_and(|v| v["event"] == "finished")
            })?;
            let v: Value = serde_json::from_str(&line)?;
            v["mb_per_s"]
                .as_f64()
                .context("no mb_per_s in lt_peer.py's line")?
        }
    };
    let name = source.file_name().context("payload without a name")?;
    files_equal(source, &out.join(name))?;
    std::fs::remove_dir_all(&out)?;

    seeder.signal("TERM");
    let status = seeder.wait_exit(secs(30))?;
    if !status.success() {
        bail!(
            "the seeder exited with {status} on SIGTERM; last lines:\n{}",
            seeder.transcript(30)
        );
    }
    Ok(Run {
        mb_per_s,
        leecher_cpu,
        leecher_anon_kib: leecher_anon_kib as f64,
        seeder_cpu,
    })
}

/// The port of lt_peer.py's `{"event":"listening"}` line.
fn libtorrent_port(p: &mut Proc) -> Result<u16> {
    let line = p.wait_line(Stream::Stdout, secs(30), |l| {
        json_event(l).is_some_and(|v| v["event"] == "listening")
    })?;
    let v: Value = serde_json::from_str(&line)?;
    v["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .context("no port in the listening line")
}

/// The port of a `listening on <addr>` line.
fn listen_port(line: &str) -> Option<u16> {
    let addr = line
        .split("listening on ")
        .nth(1)?
        .split_whitespace()
        .next()?;
    addr.rsplit(':').next()?.trim_end_matches(']').parse().ok()
}

/// Polls `/proc/PID` every 50 ms until the process has exited (a zombie, not yet reaped):
/// returns its CPU seconds (utime + stime, all threads) and its peak `RssAnon` in KiB.
fn watch_until_exit(p: &Proc, deadline: Instant) -> Result<(f64, u64)> {
    let pid = p.pid();
    let mut peak = 0u64;
    loop {
        let (state, cpu) =
            proc_cpu(pid).with_context(|| format!("cannot read /proc/{pid}/stat"))?;
        if state == 'Z' || state == 'X' {
            return Ok((cpu, peak));
        }
        if let Some(kib) = rss_anon_kib(pid) {
            peak = peak.max(kib);
        }
        if Instant::now() >= deadline {
            bail!(
                "the leecher did not finish in time; last lines:\n{}",
                p.transcript(30)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Clock ticks per second of `/proc/PID/stat` times: USER_HZ, 100 on every Linux ABI this
/// runs on.
const USER_HZ: f64 = 100.0;

/// The state letter and utime + stime in seconds of `/proc/PID/stat`.
fn proc_cpu(pid: u32) -> Option<(char, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' do not.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 3 is the state (index 0 here); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((state, (utime + stime) as f64 / USER_HZ))
}

/// `RssAnon` of `/proc/PID/status`, in KiB.
fn rss_anon_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_proc_entries() {
        let (state, cpu) = proc_cpu(std::process::id()).unwrap();
        assert!(state == 'R' || state == 'S', "{state}");
        assert!(cpu >= 0.0);
        assert!(rss_anon_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn medians() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0].into_iter()), 2.5);
    }

    #[test]
    fn parses_listen_lines() {
        assert_eq!(listen_port("listening on 0.0.0.0:6881"), Some(6881));
        assert_eq!(listen_port("lt: listening on [::]:51413"), Some(51413));
    }
}
