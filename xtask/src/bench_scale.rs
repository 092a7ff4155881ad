//! `cargo xtask bench scale`: the two cases of issue 19, lt beside libtorrent (python3-libtorrent
//! 2.0) measured in the same run.
//!
//! `--case torrents`: one session process adds `--torrents` (default 10,000) single-file
//! torrents of 16 KiB whose data is on /dev/shm, in seed mode (no hash check), auto-managed with
//! the client's default active limits, each announcing to one tracker (lt-tracker's server on a
//! free loopback port). lt's process is `lt-scale torrents` (tests/src/bin/lt-scale.rs, lt-session
//! with default settings), libtorrent's `tests/python/scale_torrents.py torrents` (default
//! settings, `async_add_torrent`). Both read and parse the .torrent files inside the timed loop.
//! The bench reads `/proc/PID` when the process prints a line: `RssAnon` and `VmRSS` at the idle
//! base (session created, 2 s after start, nothing added) and after all are added and
//! `--settle` (10) s, the growth between the two, and the CPU time (utime + stime of every
//! thread, in clock ticks of 10 ms) over the following `--idle` (20) s, in % of one core. The
//! add time is the process's own: from the first add until the last one is added (lt: the last
//! `add_torrent` returned; libtorrent: the last `add_torrent_alert` arrived), and until no
//! torrent is in a checking state any more (polled every 100 ms). Each process's peak
//! `RssAnon` (polled every 100 ms) is given too.
//!
//! `--case peers`: one seeder serves a `--size-mib` (256) MiB torrent of `--piece-kib` (1024)
//! KiB pieces from /dev/shm to N lightweight leechers on loopback, for each N of `--peers`
//! (10,1000). The leechers are one process, `lt-leech-swarm` (tests/src/bin/lt-leech-swarm.rs):
//! N TCP connections with the fast and extension bits, INTERESTED, `--in-flight` (8) block
//! requests kept in flight per unchoked connection for `--seconds` (15), every block's length
//! checked and every 16th piece SHA-1-checked. The seeders are `lt-scale seed` and
//! `scale_torrents.py seed`, from the client's `--seed-profile` (default settings) with the
//! connection limits raised to fit N and multiple connections per IP allowed; both check the
//! data before serving, and both hold to their unchoke slots (libtorrent's "local" peer class,
//! which would ignore them for loopback peers, is told not to). Per seeder and N: MB served (the
//! leechers' payload bytes), the seeder's CPU seconds over the leechers' run per MB served, the
//! ratio of that at the largest N to the smallest (target for lt: at most 1.5), and the seeder's
//! peak `RssAnon` (target for lt: under 256 MiB).
//!
//! `--runs` repeats everything, lt and libtorrent interleaved; the tables give medians.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::bench::median;
use crate::cmd;
use crate::swarm::{
    DEBIAN_PYTHON, Proc, Scratch, Stream, build_release, json_event, require_python_libtorrent,
    secs, write_random_file,
};

/// Options of `cargo xtask bench scale`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ScaleArgs {
    /// Which case: many torrents in one session, one seeder with many peers, or both.
    #[arg(long, value_enum, default_value_t = Case::All)]
    case: Case,
    /// Torrents added in the `torrents` case.
    #[arg(long, default_value_t = 10_000)]
    torrents: usize,
    /// Seconds after the last torrent is added before memory is read.
    #[arg(long, default_value_t = 10)]
    settle: u64,
    /// Seconds of idle CPU measured after that.
    #[arg(long, default_value_t = 20)]
    idle: u64,
    /// Leecher connections in the `peers` case, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [10usize, 1000])]
    peers: Vec<usize>,
    /// Payload of the `peers` case in MiB.
    #[arg(long, default_value_t = 256)]
    size_mib: u64,
    /// Piece size of the `peers` case in KiB.
    #[arg(long, default_value_t = 1024)]
    piece_kib: u32,
    /// Seconds the leechers run (connections included).
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Block requests each unchoked leecher keeps in flight.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// The seeders' settings preset.
    #[arg(long, value_enum, default_value_t = Profile::Default)]
    seed_profile: Profile,
    /// Runs of each measurement (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// The cases of issue 19.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Case {
    Torrents,
    Peers,
    All,
}

/// A seeder's settings preset (the same name in both clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Profile {
    /// Default settings (8 unchoke slots).
    Default,
    /// `high_performance_seed()` (lt: 500 unchoke slots; libtorrent: unlimited).
    HighPerformance,
}

impl Profile {
    const fn arg(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::HighPerformance => "high-performance",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Lt,
    Libtorrent,
}

impl Client {
    const ALL: [Self; 2] = [Self::Lt, Self::Libtorrent];

    const fn name(self) -> &'static str {
        match self {
            Self::Lt => "lt",
            Self::Libtorrent => "libtorrent",
        }
    }
}

/// The programs both cases run.
struct Programs {
    lt_scale: PathBuf,
    leech_swarm: PathBuf,
    tracker: PathBuf,
    script: PathBuf,
}

impl Programs {
    /// The command of `client`'s side with `args` after the role.
    fn command(&self, client: Client, args: &[&str]) -> Command {
        match client {
            Client::Lt => {
                let mut c = Command::new(&self.lt_scale);
                c.args(args);
                c
            }
            Client::Libtorrent => {
                let mut c = Command::new(DEBIAN_PYTHON);
                c.arg(&self.script).args(args);
                c
            }
        }
    }
}

pub(crate) fn run(args: &ScaleArgs) -> Result<()> {
    if args.runs == 0 || args.torrents == 0 || args.peers.is_empty() {
        bail!("nothing to run");
    }
    require_python_libtorrent()?;
    let bins = build_release(&[
        ("lt-tests", "lt-scale"),
        ("lt-tests", "lt-leech-swarm"),
        ("lt-tests", "lt-tracker-server"),
    ])?;
    let programs = Programs {
        lt_scale: bins[0].clone(),
        leech_swarm: bins[1].clone(),
        tracker: bins[2].clone(),
        script: cmd::workspace_root().join("tests/python/scale_torrents.py"),
    };
    let scratch = Scratch::new("lt-bench-scale", false)?;
    let torrents = if args.case == Case::Peers {
        None
    } else {
        Some(case_torrents(args, &programs, &scratch.path)?)
    };
    let peers = if args.case == Case::Torrents {
        None
    } else {
        Some(case_peers(args, &programs, &scratch.path)?)
    };
    println!();
    if let Some(t) = &torrents {
        report_torrents(args, t);
    }
    if let Some(p) = &peers {
        report_peers(args, p);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Case A: many torrents.

/// What one `torrents` run measured, memory in KiB.
#[derive(Debug, Clone, Copy, Default)]
struct TorrentsRun {
    base_anon: f64,
    base_rss: f64,
    after_anon: f64,
    after_rss: f64,
    peak_anon: f64,
    add_s: f64,
    ready_s: f64,
    idle_cpu_pct: f64,
}

impl TorrentsRun {
    fn median(runs: &[Self]) -> Self {
        let m = |f: fn(&Self) -> f64| median(runs.iter().map(f));
        Self {
            base_anon: m(|r| r.base_anon),
            base_rss: m(|r| r.base_rss),
            after_anon: m(|r| r.after_anon),
            after_rss: m(|r| r.after_rss),
            peak_anon: m(|r| r.peak_anon),
            add_s: m(|r| r.add_s),
            ready_s: m(|r| r.ready_s),
            idle_cpu_pct: m(|r| r.idle_cpu_pct),
        }
    }
}

/// Each client's runs of the `torrents` case.
type TorrentsResults = Vec<(Client, Vec<TorrentsRun>)>;

fn case_torrents(args: &ScaleArgs, programs: &Programs, scratch: &Path) -> Result<TorrentsResults> {
    let mut tracker = Proc::spawn(
        "lt-tracker-server",
        Command::new(&programs.tracker).arg("127.0.0.1:0"),
    )?;
    let announce = tracker.wait_line(Stream::Stdout, secs(20), |l| l.starts_with("http://"))?;
    let dir = scratch.join("torrents-case");
    let started = Instant::now();
    cmd::output(
        Command::new(&programs.lt_scale)
            .arg("make-many")
            .arg(&dir)
            .arg(args.torrents.to_string())
            .arg(&announce),
    )?;
    println!(
        "bench scale torrents: wrote {} torrents of 16 KiB and their data under {} in {:.1} s; \
         tracker {announce}",
        args.torrents,
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    let mut results: TorrentsResults = Client::ALL.iter().map(|&c| (c, Vec::new())).collect();
    for i in 0..args.runs {
        for (client, runs) in &mut results {
            let r = one_torrents_run(*client, programs, &dir, args)
                .with_context(|| format!("torrents case, {} run {}", client.name(), i + 1))?;
            println!(
                "  {:<10} run {}: base {:.1} MiB anon / {:.1} MiB RSS; after {:.1} MiB anon / \
                 {:.1} MiB RSS (+{:.1} MiB anon, peak {:.1}); added in {:.2} s, none checking \
                 at {:.2} s; idle CPU {:.2} % of a core",
                client.name(),
                i + 1,
                mib(r.base_anon),
                mib(r.base_rss),
                mib(r.after_anon),
                mib(r.after_rss),
                mib(r.after_anon - r.base_anon),
                mib(r.peak_anon),
                r.add_s,
                r.ready_s,
                r.idle_cpu_pct
            );
            runs.push(r);
        }
    }
    drop(tracker);
    Ok(results)
}

fn one_torrents_run(
    client: Client,
    programs: &Programs,
    dir: &Path,
    args: &ScaleArgs,
) -> Result<TorrentsRun> {
    let dir_s = dir.to_str().context("scratch path is not UTF-8")?;
    let mut p = Proc::spawn(
        &format!("{} torrents", client.name()),
        &mut programs.command(
            client,
            &[
                "torrents",
                dir_s,
                &args.torrents.to_string(),
                &args.settle.to_string(),
                &args.idle.to_string(),
            ],
        ),
    )?;
    let pid = p.pid();
    let peak = PeakAnon::start(pid);
    let event =
        |name: &'static str| move |l: &str| json_event(l).is_some_and(|v| v["event"] == name);
    p.wait_line(Stream::Stdout, secs(60), event("base"))?;
    let (base_anon, base_rss) = memory_kib(pid).context("no /proc entry at the base")?;
    let added = p.wait_line(Stream::Stdout, secs(900), event("added"))?;
    let added: Value = serde_json::from_str(&added)?;
    let (settled_at, _) =
        p.wait_line_at(Stream::Stdout, secs(args.settle + 60), event("settled"))?;
    let (after_anon, after_rss) = memory_kib(pid).context("no /proc entry after settling")?;
    let cpu0 = proc_cpu(pid).context("no /proc entry after settling")?;
    let (idle_at, _) = p.wait_line_at(Stream::Stdout, secs(args.idle + 60), event("idle_done"))?;
    let cpu1 = proc_cpu(pid).context("no /proc entry after the idle time")?;
    let wall = idle_at.duration_since(settled_at).as_secs_f64();
    let summary = p.wait_line(Stream::Stdout, secs(120), event("summary"))?;
    let status = p.wait_exit(secs(60))?;
    if !status.success() {
        bail!("exited with {status}; last lines:\n{}", p.transcript(20));
    }
    println!("  {:<10} {summary}", client.name());
    let f = |k: &str| {
        added[k]
            .as_f64()
            .with_context(|| format!("no {k} in {added}"))
    };
    Ok(TorrentsRun {
        base_anon,
        base_rss,
        after_anon,
        after_rss,
        peak_anon: peak.stop(),
        add_s: f("add_s")?,
        ready_s: f("ready_s")?,
        idle_cpu_pct: (cpu1 - cpu0) / wall.max(1e-9) * 100.0,
    })
}

fn report_torrents(args: &ScaleArgs, results: &TorrentsResults) {
    println!(
        "bench scale torrents: {} single-file torrents of 16 KiB on /dev/shm, seed mode, \
         auto-managed (default active limits), one HTTP tracker each; {} run(s), medians",
        args.torrents, args.runs
    );
    println!(
        "{:<12} {:>10} {:>10} {:>11} {:>11} {:>12} {:>11} {:>10} {:>9} {:>9} {:>11}",
        "client",
        "base anon",
        "base RSS",
        "after anon",
        "after RSS",
        "anon growth",
        "RSS growth",
        "peak anon",
        "added s",
        "ready s",
        "idle CPU %"
    );
    let medians: Vec<(Client, TorrentsRun)> = results
        .iter()
        .map(|(c, runs)| (*c, TorrentsRun::median(runs)))
        .collect();
    for (c, m) in &medians {
        println!(
            "{:<12} {:>10} {:>10} {:>11} {:>11} {:>12} {:>11} {:>10} {:>9.2} {:>9.2} {:>11.2}",
            c.name(),
            fmt_mib(m.base_anon),
            fmt_mib(m.base_rss),
            fmt_mib(m.after_anon),
            fmt_mib(m.after_rss),
            fmt_mib(m.after_anon - m.base_anon),
            fmt_mib(m.after_rss - m.base_rss),
            fmt_mib(m.peak_anon),
            m.add_s,
            m.ready_s,
            m.idle_cpu_pct
        );
    }
    println!(
        "(MiB; base: session created, nothing added; after: {} s after the last was added; \
         idle CPU over the {} s after that; added s: until the last add completed, ready s: \
         until none was checking; libtorrent's figures include its Python interpreter)",
        args.settle, args.idle
    );
    if args.torrents == 10_000 {
        println!(
            "libtorrent reference measured earlier on this machine: +51 MiB above its idle \
             base, 74 MiB RSS, all added in 9.4 s, idle CPU 0.1 % of a core"
        );
    }
    let get = |c: Client| medians.iter().find(|(x, _)| *x == c).map(|(_, m)| *m);
    if let (Some(lt), Some(lib)) = (get(Client::Lt), get(Client::Libtorrent)) {
        let growth = |m: &TorrentsRun| m.after_anon - m.base_anon;
        println!(
            "lt / libtorrent: anon growth x{:.2}, RSS after x{:.2}, time to add x{:.2}, until \
             none checking x{:.2}, idle CPU x{:.2}",
            growth(&lt) / growth(&lib).max(1.0),
            lt.after_rss / lib.after_rss.max(1.0),
            lt.add_s / lib.add_s.max(1e-9),
            lt.ready_s / lib.ready_s.max(1e-9),
            lt.idle_cpu_pct / lib.idle_cpu_pct.max(0.05)
        );
        let mut misses = Vec::new();
        if growth(&lt) > growth(&lib) {
            misses.push("grows more than libtorrent");
        }
        if lt.ready_s > lib.ready_s {
            misses.push("adds slower than libtorrent");
        }
        if lt.idle_cpu_pct > lib.idle_cpu_pct.max(0.05) {
            misses.push("idles at more CPU than libtorrent");
        }
        if misses.is_empty() {
            println!(
                "lt meets the torrents targets (growth, add time, idle CPU at most libtorrent's)"
            );
        } else {
            println!("lt misses: {}", misses.join(", "));
        }
    }
    println!();
}

// ---------------------------------------------------------------------------------------
// Case B: many peers.

/// What one seeder served to one swarm.
#[derive(Debug, Clone, Copy, Default)]
struct PeersRun {
    mb: f64,
    cpu_s: f64,
    /// CPU milliseconds per MB served (its own median, not one of the medians above).
    ms_per_mb: f64,
    peak_anon: f64,
    /// Seconds until every leecher had handshaken (the run's length when some never did).
    connect_s: f64,
    ever_unchoked: f64,
    /// Leecher connections open at the end.
    conns_end: f64,
    /// Leecher connections the seeder closed (each dialled again 0.5 s later).
    closed: f64,
}

impl PeersRun {
    fn cpu_ms_per_mb(&self) -> f64 {
        self.ms_per_mb
    }

    fn median(runs: &[Self]) -> Self {
        let m = |f: fn(&Self) -> f64| median(runs.iter().map(f));
        Self {
            mb: m(|r| r.mb),
            cpu_s: m(|r| r.cpu_s),
            ms_per_mb: m(|r| r.ms_per_mb),
            peak_anon: m(|r| r.peak_anon),
            connect_s: m(|r| r.connect_s),
            ever_unchoked: m(|r| r.ever_unchoked),
            conns_end: m(|r| r.conns_end),
            closed: m(|r| r.closed),
        }
    }
}

/// Each (client, N)'s runs of the `peers` case.
type PeersResults = Vec<(Client, usize, Vec<PeersRun>)>;

fn case_peers(args: &ScaleArgs, programs: &Programs, scratch: &Path) -> Result<PeersResults> {
    let dir = scratch.join("peers-case");
    let data = dir.join("seed");
    let payload = data.join("payload.bin");
    write_random_file(&payload, args.size_mib << 20, 0x5ca1_e019)?;
    let torrent = dir.join("payload.torrent");
    cmd::output(
        Command::new(&programs.lt_scale)
            .arg("make-one")
            .arg(&payload)
            .arg(&torrent)
            .arg(args.piece_kib.to_string()),
    )?;
    println!(
        "bench scale peers: {} MiB in {} KiB pieces at {}",
        args.size_mib,
        args.piece_kib,
        payload.display()
    );
    let mut results: PeersResults = Vec::new();
    for &n in &args.peers {
        for c in Client::ALL {
            results.push((c, n, Vec::new()));
        }
    }
    for i in 0..args.runs {
        for (client, n, runs) in &mut results {
            let r =
                one_peers_run(*client, *n, programs, &torrent, &data, args).with_context(|| {
                    format!(
                        "peers case, {} with {n} peers, run {}",
                        client.name(),
                        i + 1
                    )
                })?;
            println!(
                "  {:<10} {:>5} peers run {}: {:.0} MB served, {:.2} CPU s, {:.3} CPU ms/MB, \
                 peak {:.1} MiB anon, all connected at {:.1} s, {:.0} ever unchoked, {:.0} open \
                 at the end, {:.0} closed by the seeder",
                client.name(),
                n,
                i + 1,
                r.mb,
                r.cpu_s,
                r.cpu_ms_per_mb(),
                mib(r.peak_anon),
                r.connect_s,
                r.ever_unchoked,
                r.conns_end,
                r.closed
            );
            runs.push(r);
        }
    }
    Ok(results)
}

fn one_peers_run(
    client: Client,
    n: usize,
    programs: &Programs,
    torrent: &Path,
    data: &Path,
    args: &ScaleArgs,
) -> Result<PeersRun> {
    let path = |p: &Path| p.to_str().map(str::to_owned).context("path is not UTF-8");
    // Room for every leecher and a few more.
    let limit = (n + n / 4 + 50).to_string();
    let mut seeder = Proc::spawn(
        &format!("{} seed", client.name()),
        &mut programs.command(
            client,
            &[
                "seed",
                &path(torrent)?,
                &path(data)?,
                &limit,
                args.seed_profile.arg(),
            ],
        ),
    )?;
    let event =
        |name: &'static str| move |l: &str| json_event(l).is_some_and(|v| v["event"] == name);
    let listening = seeder.wait_line(Stream::Stdout, secs(30), event("listening"))?;
    let port = serde_json::from_str::<Value>(&listening)?["port"]
        .as_u64()
        .context("no port in the listening line")?;
    seeder.wait_line(Stream::Stdout, secs(300), event("ready"))?;
    let pid = seeder.pid();
    let peak = PeakAnon::start(pid);
    let cpu0 = proc_cpu(pid).context("the seeder is gone")?;
    let mut leechers = Proc::spawn(
        &format!("{n} leechers"),
        Command::new(&programs.leech_swarm)
            .arg(torrent)
            .arg(format!("127.0.0.1:{port}"))
            .arg(n.to_string())
            .arg(args.seconds.to_string())
            .arg(args.in_flight.to_string())
            .arg("16"),
    )?;
    // "connected" comes before "done" unless some leecher never got in.
    let deadline = secs(args.seconds + 60);
    let first = leechers.wait_line(Stream::Stdout, deadline, |l| {
        json_event(l).is_some_and(|v| v["event"] == "connected" || v["event"] == "done")
    })?;
    let first: Value = serde_json::from_str(&first)?;
    let (connect_s, done) = if first["event"] == "connected" {
        let done = leechers.wait_line(Stream::Stdout, deadline, event("done"))?;
        (
            first["secs"].as_f64(),
            serde_json::from_str::<Value>(&done)?,
        )
    } else {
        (None, first)
    };
    let cpu1 = proc_cpu(pid).context("the seeder is gone")?;
    let peak_anon = peak.stop();
    let connect_s = connect_s.unwrap_or_else(|| done["secs"].as_f64().unwrap_or(0.0));
    leechers.wait_exit(secs(30))?;
    let u = |k: &str| {
        done[k]
            .as_u64()
            .with_context(|| format!("no {k} in {done}"))
    };
    if u("bad_length")? > 0 || u("pieces_bad")? > 0 {
        bail!("the seeder sent wrong data: {done}");
    }
    if u("pieces_verified")? == 0 {
        bail!("no piece was verified: {done}");
    }
    #[allow(clippy::cast_precision_loss)]
    let mb = u("payload")? as f64 / 1e6;
    Ok(PeersRun {
        mb,
        cpu_s: cpu1 - cpu0,
        ms_per_mb: (cpu1 - cpu0) * 1000.0 / mb.max(1e-9),
        peak_anon,
        connect_s,
        ever_unchoked: u("ever_unchoked")? as f64,
        conns_end: u("connected")? as f64,
        closed: u("closed")? as f64,
    })
}

fn report_peers(args: &ScaleArgs, results: &PeersResults) {
    println!(
        "bench scale peers: one seeder ({} settings, connection limits raised), {} MiB in {} KiB \
         pieces on /dev/shm, N leechers on loopback with {} requests in flight each for {} s; {} \
         run(s), medians",
        args.seed_profile.arg(),
        args.size_mib,
        args.piece_kib,
        args.in_flight,
        args.seconds,
        args.runs
    );
    println!(
        "{:<12} {:>6} {:>10} {:>8} {:>10} {:>10} {:>13} {:>9} {:>9} {:>7}",
        "seeder",
        "peers",
        "MB served",
        "CPU s",
        "CPU ms/MB",
        "peak anon",
        "all conn. at",
        "unchoked",
        "open end",
        "closed"
    );
    let medians: Vec<(Client, usize, PeersRun)> = results
        .iter()
        .map(|(c, n, runs)| (*c, *n, PeersRun::median(runs)))
        .collect();
    for (c, n, m) in &medians {
        println!(
            "{:<12} {:>6} {:>10.0} {:>8.2} {:>10.3} {:>10} {:>12.1}s {:>9.0} {:>9.0} {:>7.0}",
            c.name(),
            n,
            m.mb,
            m.cpu_s,
            m.cpu_ms_per_mb(),
            fmt_mib(m.peak_anon),
            m.connect_s,
            m.ever_unchoked,
            m.conns_end,
            m.closed
        );
    }
    println!(
        "(CPU: the seeder's utime + stime over the leechers' run; peak anon: its RssAnon, MiB; \
         all conn. at: when every leecher had handshaken (the run's length if some never \
         did); unchoked: leechers unchoked at least once; libtorrent's figures include its \
         Python interpreter)"
    );
    let (Some(&lo), Some(&hi)) = (args.peers.iter().min(), args.peers.iter().max()) else {
        return;
    };
    let get = |c: Client, n: usize| {
        medians
            .iter()
            .find(|(x, k, _)| *x == c && *k == n)
            .map(|(_, _, m)| *m)
    };
    for c in Client::ALL {
        if let (Some(a), Some(b)) = (get(c, lo), get(c, hi))
            && lo != hi
        {
            println!(
                "{}: CPU per MB with {hi} peers / with {lo} peers: x{:.2}",
                c.name(),
                b.cpu_ms_per_mb() / a.cpu_ms_per_mb().max(1e-12)
            );
        }
    }
    for &n in &args.peers {
        if let (Some(l), Some(r)) = (get(Client::Lt, n), get(Client::Libtorrent, n)) {
            println!(
                "lt / libtorrent with {n} peers: CPU per MB x{:.2}, peak anon x{:.2}, MB served x{:.2}",
                l.cpu_ms_per_mb() / r.cpu_ms_per_mb().max(1e-12),
                l.peak_anon / r.peak_anon.max(1.0),
                l.mb / r.mb.max(1e-9)
            );
        }
    }
    if let (Some(a), Some(b)) = (get(Client::Lt, lo), get(Client::Lt, hi)) {
        let ratio = b.cpu_ms_per_mb() / a.cpu_ms_per_mb().max(1e-12);
        let peak = medians
            .iter()
            .filter(|(c, _, _)| *c == Client::Lt)
            .map(|(_, _, m)| m.peak_anon)
            .fold(0.0, f64::max);
        println!(
            "lt targets: CPU per MB with {hi} peers within x1.5 of {lo} peers: {} (x{ratio:.2}); \
             peak anon under 256 MiB: {} ({:.1} MiB)",
            if ratio <= 1.5 { "met" } else { "MISSED" },
            if peak < 256.0 * 1024.0 {
                "met"
            } else {
                "MISSED"
            },
            mib(peak)
        );
    }
}

// ---------------------------------------------------------------------------------------
// /proc readings.

/// Polls a process's `RssAnon` every 100 ms on a thread and keeps the peak.
struct PeakAnon {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PeakAnon {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (Arc::clone(&peak), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some((anon, _)) = memory_kib(pid) {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    p.fetch_max(anon as u64, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops polling; the peak in KiB.
    fn stop(mut self) -> f64 {
        self.halt();
        #[allow(clippy::cast_precision_loss)]
        let kib = self.peak.load(Ordering::Relaxed) as f64;
        kib
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for PeakAnon {
    fn drop(&mut self) {
        self.halt();
    }
}

/// `RssAnon` and `VmRSS` of `/proc/PID/status`, in KiB.
fn memory_kib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("RssAnon:")?, field("VmRSS:")?))
}

/// Clock ticks per second of `/proc/PID/stat` times (USER_HZ).
const USER_HZ: f64 = 100.0;

/// utime + stime of every thread of `pid`, in seconds.
fn proc_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' do not.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    #[allow(clippy::cast_precision_loss)]
    Some((utime + stime) as f64 / USER_HZ)
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

fn fmt_mib(kib: f64) -> String {
    format!("{:.1}", mib(kib))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_proc_entries() {
        let (anon, rss) = memory_kib(std::process::id()).unwrap();
        assert!(anon > 0.0 && rss >= anon);
        assert!(proc_cpu(std::process::id()).unwrap() >= 0.0);
    }

    #[test]
    fn peak_anon_sees_this_process() {
        let p = PeakAnon::start(std::process::id());
        std::thread::sleep(Duration::from_millis(250));
        assert!(p.stop() > 0.0);
    }

    #[test]
    fn medians() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0].into_iter()), 2.5);
    }
}
