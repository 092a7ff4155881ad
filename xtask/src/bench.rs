//! `cargo xtask bench transfer | tracker | scale | webseed | ssl` (`webseed`:
//! `bench_webseed.rs`; `ssl`: `bench_ssl.rs`).
//!
//! `transfer`: a torrent (default one 1 GiB file, 1 MiB pieces, v1; `--files N` splits the
//! payload into N files) whose payload is on /dev/shm, moved over loopback (TCP, or uTP with
//! `--transport utp`, or each pair over both with `--transport both`, which also sets each
//! pair's uTP figures beside its TCP ones) between one seeder and one leecher process, for
//! each pair of clients in
//! `--pairs`, `--runs` times each, the pairs interleaved within each run. The clients are lt
//! (`lt seed` / `lt download` built in release mode), libtorrent
//! (`tests/python/lt_peer.py` on python3-libtorrent 2.0) and, when it is installed
//! (`cargo install rqbit`), rqbit. With `--baseline PATH` (an `lt` binary built from another
//! commit), every pair with lt in it also runs with that binary, interleaved the same way.
//!
//! Per pair it reports the median of: the rate the leecher reports (payload bytes over its
//! time from adding the torrent to completion; rqbit reports none, so for an rqbit leecher it
//! is payload over the process's whole run, start and exit included, the same for every
//! seeder it is paired with); the leecher's CPU seconds (utime + stime of the exited process,
//! read from `/proc/PID/stat` of the zombie before it is reaped); its peak anonymous memory
//! (`RssAnon` of `/proc/PID/status` polled every 50 ms: RSS would count the page cache of the
//! memory-mapped files libtorrent uses); the seeder's CPU seconds during the transfer and its
//! peak anonymous memory. Each pair with lt in it is then set beside the same pair with
//! libtorrent in lt's place, measured in the same run. Each leecher's files are checked byte
//! for byte, and everything is deleted afterwards.
//!
//! With `--relay-delay-ms` and `--relay-loss-permille` (uTP only) the leecher reaches the
//! seeder through `lt-udp-relay` (tests/src/bin), a user-space UDP relay that delays and
//! drops datagrams (this kernel has no netem); the relay's figures give each run's longest
//! stall, and a run whose payload did not all cross the relay fails.
//!
//! `tracker`: the UDP announce benchmark of lt-tracker's server against opentracker (also
//! `cargo xtask bench-tracker`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::bench_scale::{self, ScaleArgs};
use crate::bench_ssl::{self, SslArgs};
use crate::bench_tracker::{self, BenchTrackerArgs};
use crate::bench_webseed::{self, WebseedArgs};
use crate::cmd;
use crate::swarm::{
    DEBIAN_PYTHON, Proc, Scratch, Stream, build_release, files_equal, json_event, lt_peer_script,
    require_python_libtorrent, secs, write_random_file,
};
use crate::system_deps::find_program;

/// `cargo xtask bench <what>`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum BenchCommand {
    /// Whole transfers over loopback between lt, libtorrent and rqbit as seeder and leecher.
    Transfer(TransferArgs),
    /// UDP announces/s of lt-tracker's server and of opentracker (same as `bench-tracker`).
    Tracker(BenchTrackerArgs),
    /// A session with many torrents, and a seeder with many peers, lt beside libtorrent.
    Scale(ScaleArgs),
    /// One file from nginx as a web seed: lt, libtorrent and curl.
    Webseed(WebseedArgs),
    /// SSL torrents: lt over TLS against lt plaintext and libtorrent over TLS.
    Ssl(SslArgs),
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
    /// Files in the torrent (the payload split evenly; 1: a single-file torrent).
    #[arg(long, default_value_t = 1)]
    files: u32,
    /// TCP, uTP, or both (each pair over each, interleaved, and uTP set against TCP).
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    transport: Transport,
    /// Runs per pair (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seeder-leecher pairs to run, comma-separated, each `SEEDER-LEECHER` of lt,
    /// libtorrent and rqbit. Default: lt and libtorrent both ways and each with itself, and,
    /// when rqbit is installed, rqbit with each of them both ways.
    #[arg(long, value_delimiter = ',')]
    pairs: Vec<Pair>,
    /// Seconds one transfer may take.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// An `lt` binary of another build (say, the commit before a change): each pair with lt
    /// in it runs with it too, in the same loop, and the report compares the two.
    #[arg(long, value_name = "PATH")]
    baseline: Option<PathBuf>,
    /// The leecher's download limit in bytes per second (0: none); the report then gives
    /// each leecher's rate as a fraction of it. lt is passed `--limit-local`, as loopback
    /// peers are exempt otherwise.
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    download_limit: u64,
    /// Route uTP through a UDP relay (`lt-udp-relay`) that delays every datagram this many
    /// milliseconds each way (0: no relay). The leecher is given the relay's address.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    relay_delay_ms: u64,
    /// The relay drops this many datagrams in 1000, each way, at random (seeded).
    #[arg(long, value_name = "PERMILLE", default_value_t = 0)]
    relay_loss_permille: u64,
}

/// How the peers connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Transport {
    Tcp,
    Utp,
    Both,
}

impl Transport {
    /// The transports a run covers.
    fn each(self) -> &'static [Self] {
        match self {
            Self::Tcp => &[Self::Tcp],
            Self::Utp => &[Self::Utp],
            Self::Both => &[Self::Tcp, Self::Utp],
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Utp => "uTP",
            Self::Both => "TCP and uTP",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Lt,
    Libtorrent,
    Rqbit,
}

impl Client {
    const fn name(self) -> &'static str {
        match self {
            Self::Lt => "lt",
            Self::Libtorrent => "libtorrent",
            Self::Rqbit => "rqbit",
        }
    }
}

impl FromStr for Client {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lt" => Ok(Self::Lt),
            "libtorrent" => Ok(Self::Libtorrent),
            "rqbit" => Ok(Self::Rqbit),
            _ => Err(format!("unknown client {s:?}: lt, libtorrent or rqbit")),
        }
    }
}

/// A seeder and a leecher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pair {
    seeder: Client,
    leecher: Client,
}

impl FromStr for Pair {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?} is not SEEDER-LEECHER"))?;
        Ok(Self {
            seeder: a.parse()?,
            leecher: b.parse()?,
        })
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.seeder.name(), self.leecher.name())
    }
}

impl Pair {
    const fn new(seeder: Client, leecher: Client) -> Self {
        Self { seeder, leecher }
    }

    fn has(self, c: Client) -> bool {
        self.seeder == c || self.leecher == c
    }

    /// The same pair with libtorrent in lt's place: what this pair is measured against.
    fn reference(self) -> Option<Self> {
        let swap = |c| {
            if c == Client::Lt {
                Client::Libtorrent
            } else {
                c
            }
        };
        self.has(Client::Lt)
            .then(|| Self::new(swap(self.seeder), swap(self.leecher)))
    }
}

/// The pairs run when `--pairs` is not given.
fn default_pairs(rqbit: bool) -> Vec<Pair> {
    use Client::{Libtorrent, Lt, Rqbit};
    let mut pairs = vec![
        Pair::new(Libtorrent, Lt),
        Pair::new(Libtorrent, Libtorrent),
        Pair::new(Lt, Libtorrent),
        Pair::new(Lt, Lt),
    ];
    if rqbit {
        pairs.extend([
            Pair::new(Rqbit, Lt),
            Pair::new(Rqbit, Libtorrent),
            Pair::new(Lt, Rqbit),
            Pair::new(Libtorrent, Rqbit),
        ]);
    }
    pairs
}

/// The rqbit binary: on `PATH`, or where `cargo install` puts it.
fn find_rqbit() -> Option<PathBuf> {
    find_program("rqbit").or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        let p = home.join("bin").join("rqbit");
        p.is_file().then_some(p)
    })
}

const RQBIT_INSTALL: &str =
    "cargo install rqbit --locked --no-default-features --features rust-tls (about 15 minutes)";

/// What one transfer measured.
#[derive(Debug, Clone, Copy)]
struct Run {
    mb_per_s: f64,
    leecher_cpu: f64,
    leecher_anon_kib: f64,
    seeder_cpu: f64,
    seeder_anon_kib: f64,
    /// Through the relay: the longest time the seeder sent nothing, in seconds.
    longest_stall: f64,
}

impl Run {
    fn median(runs: &[Self]) -> Self {
        Self {
            mb_per_s: median(runs.iter().map(|r| r.mb_per_s)),
            leecher_cpu: median(runs.iter().map(|r| r.leecher_cpu)),
            leecher_anon_kib: median(runs.iter().map(|r| r.leecher_anon_kib)),
            seeder_cpu: median(runs.iter().map(|r| r.seeder_cpu)),
            seeder_anon_kib: median(runs.iter().map(|r| r.seeder_anon_kib)),
            longest_stall: runs.iter().map(|r| r.longest_stall).fold(0.0, f64::max),
        }
    }
}

pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    match &args.what {
        BenchCommand::Transfer(t) => transfer(t),
        BenchCommand::Tracker(t) => bench_tracker::run(t),
        BenchCommand::Scale(s) => bench_scale::run(s),
        BenchCommand::Webseed(w) => bench_webseed::run(w),
        BenchCommand::Ssl(a) => bench_ssl::run(a),
    }
}

/// The programs a transfer runs.
struct Programs {
    lt: PathBuf,
    rqbit: Option<PathBuf>,
    /// `lt-udp-relay`, when the transfer goes through the relay.
    relay: Option<PathBuf>,
}

/// Where a transfer's payload and torrent are.
struct Payload {
    torrent: PathBuf,
    /// The torrent's file or directory.
    source: PathBuf,
    bytes: u64,
}

fn transfer(args: &TransferArgs) -> Result<()> {
    if args.runs == 0 || args.files == 0 {
        bail!("nothing to run");
    }
    let relayed = args.relay_delay_ms > 0 || args.relay_loss_permille > 0;
    if relayed && args.transport != Transport::Utp {
        bail!("the relay carries UDP: add --transport utp");
    }
    require_python_libtorrent()?;
    let rqbit = find_rqbit();
    let pairs = if args.pairs.is_empty() {
        if rqbit.is_none() {
            println!(
                "bench transfer: rqbit is not installed, so its pairs are left out; to add \
                 them: {RQBIT_INSTALL}"
            );
        }
        default_pairs(rqbit.is_some())
    } else {
        args.pairs.clone()
    };
    if rqbit.is_none() && pairs.iter().any(|p| p.has(Client::Rqbit)) {
        bail!("rqbit is not installed: {RQBIT_INSTALL}");
    }
    let mut bins = if relayed {
        build_release(&[("lt-cli", "lt"), ("lt-tests", "lt-udp-relay")])?
    } else {
        build_release(&[("lt-cli", "lt")])?
    };
    let programs = Programs {
        relay: (bins.len() > 1).then(|| bins.remove(1)),
        lt: bins.remove(0),
        rqbit,
    };
    let scratch = Scratch::new("lt-bench-transfer", false)?;
    let dir = &scratch.path;
    let payload = make_payload(&programs.lt, dir, args)?;

    // Every variant once per run, so a slow spell of the machine hits them all alike.
    let mut variants: Vec<Variant<'_>> = Vec::new();
    let both = args.transport == Transport::Both;
    for &pair in &pairs {
        for &transport in args.transport.each() {
            variants.push(Variant {
                pair,
                lt: &programs.lt,
                baseline: false,
                transport,
                both,
            });
            if let Some(b) = args.baseline.as_deref().filter(|_| pair.has(Client::Lt)) {
                variants.push(Variant {
                    pair,
                    lt: b,
                    baseline: true,
                    transport,
                    both,
                });
            }
        }
    }
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); variants.len()];
    for i in 0..args.runs {
        for (v, runs) in variants.iter().zip(&mut results) {
            let r = one_transfer(v, &programs, &payload, dir, args)
                .with_context(|| format!("{} run {}", v.label(), i + 1))?;
            println!(
                "  {:<37} run {}: {:>7.1} MB/s, leecher {:.2} CPU s, {:.1} MiB peak anon, \
                 seeder {:.2} CPU s, {:.1} MiB peak anon{}",
                v.label(),
                i + 1,
                r.mb_per_s,
                r.leecher_cpu,
                r.leecher_anon_kib / 1024.0,
                r.seeder_cpu,
                r.seeder_anon_kib / 1024.0,
                if relayed {
                    format!(", longest stall {:.2} s", r.longest_stall)
                } else {
                    String::new()
                },
            );
            runs.push(r);
        }
    }
    report(args, &variants, &results, &payload);
    Ok(())
}

/// Writes the payload (one file, or `--files` files in a directory) and its torrent.
fn make_payload(lt: &Path, dir: &Path, args: &TransferArgs) -> Result<Payload> {
    let bytes = args.size_mib * 1024 * 1024;
    let seed = dir.join("seed");
    let source = if args.files == 1 {
        let f = seed.join("payload.bin");
        write_random_file(&f, bytes, 0xbe4c_0001)?;
        f
    } else {
        let d = seed.join("payload");
        let each = bytes / u64::from(args.files);
        for i in 0..args.files {
            let f = d.join(format!("f{i:05}.bin"));
            write_random_file(&f, each, 0xbe4c_0001 + u64::from(i))?;
        }
        d
    };
    println!(
        "bench transfer: wrote {} MiB in {} file(s) to {}",
        args.size_mib,
        args.files,
        source.display()
    );
    let torrent = dir.join("bench.torrent");
    cmd::output(
        Command::new(lt)
            .arg("create")
            .arg(&source)
            .arg("-o")
            .arg(&torrent)
            .arg("--v1")
            .args(["--piece-size", &format!("{}K", args.piece_kib)]),
    )?;
    let bytes = if args.files == 1 {
        bytes
    } else {
        bytes / u64::from(args.files) * u64::from(args.files)
    };
    Ok(Payload {
        torrent,
        source,
        bytes,
    })
}

fn report(args: &TransferArgs, variants: &[Variant<'_>], results: &[Vec<Run>], payload: &Payload) {
    println!();
    println!(
        "bench transfer: {} MiB in {} file(s), {} KiB pieces, {} on loopback, payload on {}, \
         {} run(s) per pair (medians)",
        args.size_mib,
        args.files,
        args.piece_kib,
        args.transport.name(),
        payload
            .source
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent)
            .unwrap_or(&payload.source)
            .display(),
        args.runs
    );
    let relayed = args.relay_delay_ms > 0 || args.relay_loss_permille > 0;
    let both = args.transport == Transport::Both;
    if relayed {
        println!(
            "through lt-udp-relay: {} ms each way, {} in 1000 datagrams dropped each way; \
             stall: the longest the seeder sent nothing, the worst of the runs",
            args.relay_delay_ms, args.relay_loss_permille
        );
    }
    println!(
        "{:<37} {:>8} {:>10} {:>10} {:>10} {:>10} {:>12}{}   runs (MB/s)",
        "seeder -> leecher",
        "MB/s",
        "leech CPU",
        "leech MiB",
        "seed CPU",
        "seed MiB",
        "seed CPU/GiB",
        if relayed { "    stall s" } else { "" }
    );
    #[allow(clippy::cast_precision_loss)]
    let gib = payload.bytes as f64 / f64::from(1u32 << 30);
    let medians: Vec<(&Variant<'_>, Run)> = variants
        .iter()
        .zip(results)
        .map(|(v, runs)| (v, Run::median(runs)))
        .collect();
    for ((v, runs), (_, m)) in variants.iter().zip(results).zip(&medians) {
        let each: Vec<String> = runs.iter().map(|r| format!("{:.1}", r.mb_per_s)).collect();
        println!(
            "{:<37} {:>8.1} {:>10.2} {:>10.1} {:>10.2} {:>10.1} {:>12.2}{}   {}",
            v.label(),
            m.mb_per_s,
            m.leecher_cpu,
            m.leecher_anon_kib / 1024.0,
            m.seeder_cpu,
            m.seeder_anon_kib / 1024.0,
            m.seeder_cpu / gib,
            if relayed {
                format!(" {:>10.2}", m.longest_stall)
            } else {
                String::new()
            },
            each.join(" ")
        );
    }
    let get = |p: Pair, baseline: bool, transport: Transport| {
        medians
            .iter()
            .find(|(v, _)| v.pair == p && v.baseline == baseline && v.transport == transport)
            .map(|(_, m)| *m)
    };
    println!();
    for &(v, ours) in &medians {
        let pair = v.pair;
        let Some(theirs) = pair.reference().and_then(|r| get(r, false, v.transport)) else {
            continue;
        };
        let mut line = format!(
            "{} against {}{}: rate x{:.2}",
            v.label(),
            pair.reference().map_or_else(String::new, |r| r.to_string()),
            v.suffix(),
            ours.mb_per_s / theirs.mb_per_s
        );
        if pair.leecher == Client::Lt {
            line += &format!(
                ", leecher CPU x{:.2}, leecher anon x{:.2}",
                ours.leecher_cpu / theirs.leecher_cpu,
                ours.leecher_anon_kib / theirs.leecher_anon_kib.max(1.0)
            );
        }
        if pair.seeder == Client::Lt {
            line += &format!(
                ", seeder CPU x{:.2}, seeder anon x{:.2}",
                ours.seeder_cpu / theirs.seeder_cpu,
                ours.seeder_anon_kib / theirs.seeder_anon_kib.max(1.0)
            );
        }
        println!("{line}");
    }
    for &(v, now) in &medians {
        if v.baseline {
            continue;
        }
        if both
            && v.transport == Transport::Utp
            && let Some(tcp) = get(v.pair, false, Transport::Tcp)
        {
            println!(
                "{}: uTP / TCP: rate x{:.2}, leecher CPU x{:.2}, seeder CPU x{:.2}",
                v.pair,
                now.mb_per_s / tcp.mb_per_s,
                now.leecher_cpu / tcp.leecher_cpu,
                now.seeder_cpu / tcp.seeder_cpu
            );
        }
        if let Some(before) = get(v.pair, true, v.transport) {
            println!(
                "{}: this build / baseline: rate x{:.2}, leecher CPU x{:.2}, seeder CPU \
                 x{:.2}, leecher anon x{:.2}, seeder anon x{:.2}",
                v.label(),
                now.mb_per_s / before.mb_per_s,
                now.leecher_cpu / before.leecher_cpu,
                now.seeder_cpu / before.seeder_cpu,
                now.leecher_anon_kib / before.leecher_anon_kib.max(1.0),
                now.seeder_anon_kib / before.seeder_anon_kib.max(1.0)
            );
        }
    }
    if args.download_limit > 0 {
        #[allow(clippy::cast_precision_loss)]
        let limit = args.download_limit as f64 / 1e6;
        for (v, m) in medians.iter().filter(|(v, _)| !v.baseline) {
            println!(
                "{} at a {limit:.2} MB/s download limit: {:.3} MB/s = x{:.3} of the limit",
                v.label(),
                m.mb_per_s,
                m.mb_per_s / limit
            );
        }
    }
    println!(
        "(libtorrent's CPU and memory include its Python interpreter; MB/s is payload over \
         the leecher's own time from start to completion, for rqbit over its whole run)"
    );
}

/// A pair run with one `lt` binary.
struct Variant<'a> {
    pair: Pair,
    lt: &'a Path,
    baseline: bool,
    transport: Transport,
    /// The run covers both transports, so labels say which.
    both: bool,
}

impl Variant<'_> {
    fn label(&self) -> String {
        let base = if self.baseline { " (baseline)" } else { "" };
        format!("{}{base}{}", self.pair, self.suffix())
    }

    /// ` over TCP` or ` over uTP` when the run covers both.
    fn suffix(&self) -> String {
        if self.both {
            format!(" over {}", self.transport.name())
        } else {
            String::new()
        }
    }
}

pub(crate) fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// rqbit's options for a quiet, stateless, loopback-only process listening on `port`.
fn rqbit_command(rqbit: &Path, port: u16, transport: Transport) -> Command {
    let mut c = Command::new(rqbit);
    c.args([
        "--disable-dht",
        "--disable-dht-persistence",
        "--disable-upnp-port-forward",
        "--disable-lsd",
        "--disable-trackers",
        "--listen-ip",
        "127.0.0.1",
        "--listen-port",
        &port.to_string(),
    ]);
    if transport == Transport::Utp {
        c.args([
            "--experimental-enable-utp-listen",
            "--disable-tcp-listen",
            "--disable-tcp-connect",
        ]);
    }
    c
}

/// A free loopback port (TCP and UDP both free when it is returned).
fn free_port() -> Result<u16> {
    for _ in 0..100 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port")
}

/// Starts the seeder; returns it and its port once it serves.
fn start_seeder(v: &Variant<'_>, programs: &Programs, payload: &Payload) -> Result<(Proc, u16)> {
    let seed_dir = payload
        .source
        .parent()
        .context("payload without a parent")?;
    let utp = v.transport == Transport::Utp;
    match v.pair.seeder {
        Client::Libtorrent => {
            let mut p = Proc::spawn(
                "libtorrent seed",
                Command::new(DEBIAN_PYTHON)
                    .arg(lt_peer_script())
                    .arg("seed")
                    .arg("--torrent")
                    .arg(&payload.torrent)
                    .arg("--save")
                    .arg(seed_dir)
                    .args(["--transport", if utp { "utp" } else { "tcp" }])
                    .args(["--seed-mode", "--progress-interval", "3600"]),
            )?;
            let port = libtorrent_port(&mut p)?;
            p.wait_line(Stream::Stdout, secs(60), |l| {
                json_event(l).is_some_and(|v| v["event"] == "ready")
            })?;
            Ok((p, port))
        }
        Client::Lt => {
            let mut c = Command::new(v.lt);
            c.arg("seed")
                .arg(&payload.torrent)
                .arg("--data")
                .arg(seed_dir)
                .arg("--no-dht");
            // One transport, as the other clients are given: lt dials uTP first otherwise.
            c.arg(if utp { "--utp-only" } else { "--tcp-only" });
            let mut p = Proc::spawn("lt seed", &mut c)?;
            let line = p.wait_line(Stream::Stderr, secs(60), |l| l.contains("listening on "))?;
            let port = listen_port(&line).with_context(|| format!("cannot parse {line:?}"))?;
            // Checking 1 GiB takes a moment.
            p.wait_line(Stream::Stderr, secs(120), |l| l.contains("seeding "))?;
            Ok((p, port))
        }
        Client::Rqbit => {
            let rqbit = programs
                .rqbit
                .as_deref()
                .context("rqbit is not installed")?;
            let port = free_port()?;
            let mut p = Proc::spawn(
                "rqbit seed",
                rqbit_command(rqbit, port, v.transport)
                    .arg("download")
                    .arg("-o")
                    .arg(seed_dir)
                    .args(["--overwrite", "--disable-http-api"])
                    .arg(&payload.torrent),
            )?;
            // It checks the data first, then prints its progress every second.
            p.wait_line(Stream::Stdout, secs(180), |l| l.contains("100.00%"))
                .or_else(|_| p.wait_line(Stream::Stderr, secs(5), |l| l.contains("100.00%")))?;
            Ok((p, port))
        }
    }
}

fn one_transfer(
    v: &Variant<'_>,
    programs: &Programs,
    payload: &Payload,
    dir: &Path,
    args: &TransferArgs,
) -> Result<Run> {
    let timeout = args.timeout;
    let limit = args.download_limit.to_string();
    let utp = v.transport == Transport::Utp;
    let (mut seeder, port) = start_seeder(v, programs, payload)?;
    let mut relay = match &programs.relay {
        Some(relay) => {
            let mut p = Proc::spawn(
                "lt-udp-relay",
                Command::new(relay)
                    .arg(format!("127.0.0.1:{port}"))
                    .arg(args.relay_delay_ms.to_string())
                    .arg(args.relay_loss_permille.to_string()),
            )?;
            let line = p.wait_line(Stream::Stdout, secs(10), |l| {
                json_event(l).is_some_and(|v| v["event"] == "listening")
            })?;
            let port: Value = serde_json::from_str(&line)?;
            let port = port["port"].as_u64().context("no port from the relay")?;
            Some((p, port))
        }
        None => None,
    };
    let peer = match &relay {
        Some((_, relay_port)) => format!("127.0.0.1:{relay_port}"),
        None => format!("127.0.0.1:{port}"),
    };
    let out = dir.join("leech");
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    std::fs::create_dir_all(&out)?;
    let seeder_cpu_before = proc_cpu(seeder.pid()).map_or(0.0, |(_, cpu)| cpu);
    let started = Instant::now();
    let mut leecher = match v.pair.leecher {
        Client::Libtorrent => Proc::spawn(
            "libtorrent download",
            Command::new(DEBIAN_PYTHON)
                .arg(lt_peer_script())
                .arg("download")
                .arg("--torrent")
                .arg(&payload.torrent)
                .arg("--save")
                .arg(&out)
                .args(["--peer", &peer, "--max-time", &timeout.to_string()])
                .args(["--transport", if utp { "utp" } else { "tcp" }])
                .args(["--download-limit", &limit]),
        )?,
        Client::Lt => {
            let mut c = Command::new(v.lt);
            c.arg("download")
                .arg(&payload.torrent)
                .arg("-o")
                .arg(&out)
                .args(["--peer", &peer, "--json", "--no-dht"])
                .args(["--download-limit", &limit, "--limit-local"]);
            c.arg(if utp { "--utp-only" } else { "--tcp-only" });
            Proc::spawn("lt download", &mut c)?
        }
        Client::Rqbit => {
            if args.download_limit > 0 {
                bail!("--download-limit is not passed to rqbit");
            }
            let rqbit = programs
                .rqbit
                .as_deref()
                .context("rqbit is not installed")?;
            Proc::spawn(
                "rqbit download",
                rqbit_command(rqbit, free_port()?, v.transport)
                    .arg("download")
                    .arg("-o")
                    .arg(&out)
                    .args(["--initial-peers", &peer, "-e", "--disable-http-api"])
                    .arg(&payload.torrent),
            )?
        }
    };
    let watched = watch_until_exit(&leecher, seeder.pid(), secs(timeout))?;
    let wall = started.elapsed();
    let seeder_cpu = proc_cpu(seeder.pid()).map_or(0.0, |(_, cpu)| cpu) - seeder_cpu_before;
    let status = leecher.reap()?;
    if !status.success() {
        bail!(
            "the leecher exited with {status}; last lines:\n{}",
            leecher.transcript(30)
        );
    }
    let mb_per_s = match v.pair.leecher {
        Client::Lt => lt_rate(&mut leecher)?,
        Client::Libtorrent => libtorrent_rate(&mut leecher)?,
        #[allow(clippy::cast_precision_loss)]
        Client::Rqbit => payload.bytes as f64 / 1e6 / wall.as_secs_f64(),
    };
    let name = payload
        .source
        .file_name()
        .context("payload without a name")?;
    trees_equal(&payload.source, &out.join(name))?;
    std::fs::remove_dir_all(&out)?;
    let longest_stall = match relay.as_mut() {
        Some((p, _)) => relay_stall(p, payload.bytes)?,
        None => 0.0,
    };

    seeder.signal("TERM");
    let status = seeder.wait_exit(secs(30))?;
    // rqbit exits on SIGTERM with the signal's status.
    if !status.success() && v.pair.seeder != Client::Rqbit {
        bail!(
            "the seeder exited with {status} on SIGTERM; last lines:\n{}",
            seeder.transcript(30)
        );
    }
    Ok(Run {
        mb_per_s,
        leecher_cpu: watched.leecher_cpu,
        leecher_anon_kib: watched.leecher_anon_kib as f64,
        seeder_cpu,
        seeder_anon_kib: watched.seeder_anon_kib as f64,
        longest_stall,
    })
}

/// The rate an exited `lt download --json` reports in its summary (`mb_per_s`).
pub(crate) fn lt_rate(p: &mut Proc) -> Result<f64> {
    let line = p.wait_line(Stream::Stdout, secs(5), |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| v["complete"] == true)
    })?;
    let v: Value = serde_json::from_str(&line)?;
    v["mb_per_s"]
        .as_f64()
        .context("no mb_per_s in lt's summary")
}

/// The rate a `lt_peer.py download` reports in its `finished` event (`mb_per_s`).
pub(crate) fn libtorrent_rate(p: &mut Proc) -> Result<f64> {
    let line = p.wait_line(Stream::Stdout, secs(5), |l| {
        json_event(l).is_some_and(|v| v["event"] == "finished")
    })?;
    let v: Value = serde_json::from_str(&line)?;
    v["mb_per_s"]
        .as_f64()
        .context("no mb_per_s in lt_peer.py's line")
}

/// The relay's next statistics line (printed every second, so it counts the whole
/// transfer): the longest the seeder was silent, in seconds. Fails when the relay carried
/// less than the payload to the leecher: the peers found a way around it.
fn relay_stall(relay: &mut Proc, payload: u64) -> Result<f64> {
    let deadline = secs(5);
    let mut carried = 0;
    loop {
        let Ok(line) = relay.wait_line(Stream::Stdout, deadline, |l| {
            json_event(l).is_some_and(|v| v["event"] == "stats")
        }) else {
            bail!("the relay carried {carried} bytes of a {payload}-byte payload to the leecher");
        };
        let v: Value = serde_json::from_str(&line)?;
        carried = v["to_client"].as_u64().context("no to_client")?;
        if carried >= payload {
            return Ok(v["longest_silence_ms"]
                .as_f64()
                .context("no longest_silence_ms")?
                / 1000.0);
        }
    }
}

/// Compares a file, or a directory's files, byte for byte.
fn trees_equal(expected: &Path, actual: &Path) -> Result<()> {
    if expected.is_dir() {
        for entry in std::fs::read_dir(expected)? {
            let entry = entry?;
            trees_equal(&entry.path(), &actual.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        files_equal(expected, actual)
    }
}

/// The port of lt_peer.py's `{"event":"listening"}` line.
fn libtorrent_port(p: &mut Proc) -> Result<u16> {
    libtorrent_listening(p, "port")
}

/// The field `key` (`port`, `ssl_port`) of lt_peer.py's `{"event":"listening"}` line.
pub(crate) fn libtorrent_listening(p: &mut Proc, key: &str) -> Result<u16> {
    let line = p.wait_line(Stream::Stdout, secs(30), |l| {
        json_event(l).is_some_and(|v| v["event"] == "listening")
    })?;
    let v: Value = serde_json::from_str(&line)?;
    v[key]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .with_context(|| format!("no {key} in the listening line"))
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

/// What [`watch_until_exit`] saw.
pub(crate) struct Watched {
    pub(crate) leecher_cpu: f64,
    leecher_anon_kib: u64,
    seeder_anon_kib: u64,
}

/// Polls `/proc/PID` every 50 ms until the leecher has exited (a zombie, not yet reaped):
/// returns its CPU seconds (utime + stime, all threads) and the peak `RssAnon` in KiB of it
/// and of the seeder.
pub(crate) fn watch_until_exit(p: &Proc, seeder: u32, deadline: Instant) -> Result<Watched> {
    let pid = p.pid();
    let (mut peak, mut seeder_peak) = (0u64, 0u64);
    loop {
        let (state, cpu) =
            proc_cpu(pid).with_context(|| format!("cannot read /proc/{pid}/stat"))?;
        if let Some(kib) = rss_anon_kib(seeder) {
            seeder_peak = seeder_peak.max(kib);
        }
        if state == 'Z' || state == 'X' {
            return Ok(Watched {
                leecher_cpu: cpu,
                leecher_anon_kib: peak,
                seeder_anon_kib: seeder_peak,
            });
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
    fn pairs_and_their_references() {
        let p: Pair = "lt-rqbit".parse().unwrap();
        assert_eq!(p.to_string(), "lt -> rqbit");
        assert_eq!(p.reference(), Some("libtorrent-rqbit".parse().unwrap()));
        let p: Pair = "lt-lt".parse().unwrap();
        assert_eq!(
            p.reference(),
            Some("libtorrent-libtorrent".parse().unwrap())
        );
        assert_eq!(
            "rqbit-libtorrent".parse::<Pair>().unwrap().reference(),
            None
        );
        assert!("lt".parse::<Pair>().is_err());
        assert!("lt-aria2".parse::<Pair>().is_err());
        assert_eq!(default_pairs(false).len(), 4);
        assert_eq!(default_pairs(true).len(), 8);
    }

    #[test]
    fn parses_listen_lines() {
        assert_eq!(listen_port("listening on 0.0.0.0:6881"), Some(6881));
        assert_eq!(listen_port("lt: listening on [::]:51413"), Some(51413));
    }
}
