//! `cargo xtask swarm-test`: a whole local swarm of separate processes on loopback.
//!
//! It builds `lt` and lt-tracker's server (`lt-tracker-server`) in release mode, writes a
//! random payload (on /dev/shm when it exists), makes a v1 torrent of it with `lt create`
//! announcing to the tracker over HTTP, starts the tracker, one `lt seed` and `--leechers`
//! `lt download --seed --json` leechers (plus `--with-libtorrent` libtorrent leechers run by
//! `tests/python/lt_peer.py`), waits for every leecher to report completion, checks every
//! leecher's file byte for byte against the source, prints each peer's time and rate and the
//! swarm's total, and stops everything. Any failure makes it exit non-zero.
//!
//! The process helpers here ([`Proc`], [`build_release`], [`write_random_file`],
//! [`files_equal`]) are shared with `cargo xtask bench transfer`.

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::cmd;

/// Debian's Python, where `python3-libtorrent` lives.
pub(crate) const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// Options of `cargo xtask swarm-test`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SwarmArgs {
    /// Payload size in MiB.
    #[arg(long, default_value_t = 64)]
    pub(crate) size_mib: u64,
    /// `lt download` leechers (separate processes).
    #[arg(long, default_value_t = 8)]
    pub(crate) leechers: usize,
    /// libtorrent leechers (tests/python/lt_peer.py) mixed in.
    #[arg(long, default_value_t = 0)]
    pub(crate) with_libtorrent: usize,
    /// Piece size in KiB.
    #[arg(long, default_value_t = 256)]
    pub(crate) piece_kib: u32,
    /// Seconds every leecher has to finish, from the first leecher's start.
    #[arg(long, default_value_t = 300)]
    pub(crate) timeout: u64,
    /// Keep the payload directory afterwards.
    #[arg(long)]
    pub(crate) keep: bool,
}

/// One leecher of the swarm and what it reported.
struct Leecher {
    label: String,
    kind: &'static str,
    proc: Proc,
    dir: PathBuf,
    started: Instant,
    /// (arrival of the summary, seconds it reports, bytes downloaded, MB/s it reports)
    /// The `wall s` column is the arrival time from `started`.
    done: Option<(Instant, f64, u64, f64)>,
}

pub(crate) fn run(args: &SwarmArgs) -> Result<()> {
    if args.leechers + args.with_libtorrent == 0 {
        bail!("a swarm needs at least one leecher");
    }
    let bins = build_release(&[("lt-cli", "lt"), ("lt-tests", "lt-tracker-server")])?;
    let (lt, tracker_bin) = (&bins[0], &bins[1]);
    if args.with_libtorrent > 0 {
        require_python_libtorrent()?;
    }

    let scratch = Scratch::new("lt-swarm", args.keep)?;
    let dir = scratch.path.clone();
    let size = args.size_mib * 1024 * 1024;
    let source = dir.join("seed").join("payload.bin");
    println!(
        "swarm-test: {} MiB payload in {}, {} lt + {} libtorrent leechers",
        args.size_mib,
        dir.display(),
        args.leechers,
        args.with_libtorrent
    );
    write_random_file(&source, size, 0x5eed_1234)?;

    let mut tracker = Proc::spawn("tracker", Command::new(tracker_bin).arg("127.0.0.1:0"))?;
    let announce = tracker.wait_line(Stream::Stdout, secs(20), |l| l.starts_with("http://"))?;
    println!("tracker: {announce}");

    let torrent = dir.join("swarm.torrent");
    cmd::output(
        Command::new(lt)
            .arg("create")
            .arg(&source)
            .arg("-o")
            .arg(&torrent)
            .args(["--v1", "--tracker", &announce])
            .args(["--piece-size", &format!("{}K", args.piece_kib)]),
    )?;

    let mut seed = Proc::spawn(
        "lt seed",
        Command::new(lt)
            .arg("seed")
            .arg(&torrent)
            .arg("--data")
            .arg(source.parent().unwrap_or(&dir))
            .arg("--json"),
    )?;
    seed.wait_line(Stream::Stderr, secs(120), |l| l.contains("seeding "))?;
    println!("seed: ready");

    let started = Instant::now();
    let mut leechers = Vec::new();
    for i in 0..args.leechers + args.with_libtorrent {
        let libtorrent = i >= args.leechers;
        let label = if libtorrent {
            format!("libtorrent-{}", i - args.leechers + 1)
        } else {
            format!("lt-{}", i + 1)
        };
        let out = dir.join(&label);
        std::fs::create_dir_all(&out)?;
        let proc = if libtorrent {
            Proc::spawn(
                &label,
                Command::new(DEBIAN_PYTHON)
                    .arg(lt_peer_script())
                    .arg("download")
                    .arg("--torrent")
                    .arg(&torrent)
                    .arg("--save")
                    .arg(&out)
                    .args(["--keep-seeding", "--max-time", &args.timeout.to_string()]),
            )?
        } else {
            Proc::spawn(
                &label,
                Command::new(lt)
                    .arg("download")
                    .arg(&torrent)
                    .arg("-o")
                    .arg(&out)
                    .args(["--seed", "--json"]),
            )?
        };
        leechers.push(Leecher {
            label,
            kind: if libtorrent { "libtorrent" } else { "lt" },
            proc,
            dir: out,
            started: Instant::now(),
            done: None,
        });
    }

    let deadline = started + Duration::from_secs(args.timeout);
    let mut failures = Vec::new();
    for l in &mut leechers {
        let result = if l.kind == "lt" {
            l.proc
                .wait_line_at(Stream::Stdout, deadline, |line| lt_summary(line).is_some())
                .map(|(at, line)| {
                    let v = lt_summary(&line).unwrap_or_default();
                    (
                        at,
                        v["seconds"].as_f64().unwrap_or(0.0),
                        v["payload_downloaded"].as_u64().unwrap_or(0),
                        v["mb_per_s"].as_f64().unwrap_or(0.0),
                    )
                })
        } else {
            l.proc
                .wait_line_at(Stream::Stdout, deadline, |line| {
                    json_event(line).is_some_and(|v| v["event"] == "finished")
                })
                .map(|(at, line)| {
                    let v = json_event(&line).unwrap_or_default();
                    (
                        at,
                        v["seconds"].as_f64().unwrap_or(0.0),
                        v["downloaded"].as_u64().unwrap_or(0),
                        v["mb_per_s"].as_f64().unwrap_or(0.0),
                    )
                })
        };
        match result {
            Ok(done) => l.done = Some(done),
            Err(e) => failures.push(format!("{}: no completion: {e:#}", l.label)),
        }
    }
    let last_done = leechers
        .iter()
        .filter_map(|l| l.done.map(|d| d.0))
        .max()
        .unwrap_or_else(Instant::now);
    let wall = last_done.duration_since(started).as_secs_f64();

    // Every byte of every finished leecher against the source.
    let name = source.file_name().unwrap_or_else(|| OsStr::new(""));
    let mut verified = vec![false; leechers.len()];
    for (l, ok) in leechers.iter().zip(&mut verified) {
        if l.done.is_none() {
            continue;
        }
        match files_equal(&source, &l.dir.join(name)) {
            Ok(()) => *ok = true,
            Err(e) => failures.push(format!("{}: {e:#}", l.label)),
        }
    }

    // Stop the leechers (they seed until SIGTERM), then the seed and the tracker.
    for l in &leechers {
        l.proc.signal("TERM");
    }
    for l in &mut leechers {
        match l.proc.wait_exit(secs(20)) {
            Ok(s) if s.success() => {}
            Ok(s) => failures.push(format!("{}: exited with {s} on SIGTERM", l.label)),
            Err(e) => failures.push(format!("{}: {e:#}", l.label)),
        }
    }
    seed.signal("TERM");
    let uploaded = match seed.wait_exit(secs(20)) {
        Ok(s) if s.success() => seed
            .wait_line(Stream::Stdout, secs(2), |l| l.contains("\"uploaded\""))
            .ok()
            .and_then(|l| serde_json::from_str::<Value>(&l).ok())
            .and_then(|v| v["uploaded"].as_u64()),
        Ok(s) => {
            failures.push(format!("lt seed: exited with {s} on SIGTERM"));
            None
        }
        Err(e) => {
            failures.push(format!("lt seed: {e:#}"));
            None
        }
    };
    drop(tracker);

    println!();
    println!(
        "{:<14} {:<11} {:>9} {:>9} {:>9} {:>11}  data",
        "peer", "client", "seconds", "wall s", "MB/s", "MB down"
    );
    let mut total_down = 0u64;
    for (l, ok) in leechers.iter().zip(&verified) {
        match l.done {
            Some((at, seconds, down, rate)) => {
                total_down += down;
                println!(
                    "{:<14} {:<11} {:>9.2} {:>9.2} {:>9.1} {:>11.1}  {}",
                    l.label,
                    l.kind,
                    seconds,
                    at.duration_since(l.started).as_secs_f64(),
                    rate,
                    down as f64 / 1e6,
                    if *ok { "verified" } else { "WRONG" }
                );
            }
            None => println!(
                "{:<14} {:<11} {:>9} {:>9} {:>9} {:>11}  -",
                l.label, l.kind, "DNF", "-", "-", "-"
            ),
        }
    }
    println!(
        "{:<14} {:<11} {:>9} {:>9} {:>9} {:>11}",
        "seed",
        "lt",
        "-",
        "-",
        "-",
        uploaded.map_or_else(|| "?".to_owned(), |u| format!("{:.1} up", u as f64 / 1e6))
    );
    let finished = leechers.iter().filter(|l| l.done.is_some()).count();
    println!(
        "swarm: {finished}/{} leechers finished, {:.1} MB delivered in {wall:.2} s \
         (first start to last finish) = {:.1} MB/s aggregate",
        leechers.len(),
        total_down as f64 / 1e6,
        total_down as f64 / 1e6 / wall.max(1e-9)
    );

    if !failures.is_empty() {
        for l in &leechers {
            if l.done.is_none() {
                eprintln!("--- {} (last lines)\n{}", l.label, l.proc.transcript(30));
            }
        }
        eprintln!("--- lt seed (last lines)\n{}", seed.transcript(30));
        bail!("swarm-test failed:\n  {}", failures.join("\n  "));
    }
    println!("swarm-test: ok");
    Ok(())
}

/// `lt download --json`'s summary object, when `line` is one.
fn lt_summary(line: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(line).ok()?;
    (v.get("complete")? == &Value::Bool(true)).then_some(v)
}

/// A `{"event": ...}` line of lt_peer.py.
pub(crate) fn json_event(line: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(line).ok()?;
    v.get("event").is_some().then_some(v)
}

/// `tests/python/lt_peer.py`.
pub(crate) fn lt_peer_script() -> PathBuf {
    cmd::workspace_root().join("tests/python/lt_peer.py")
}

/// Fails naming the package unless Debian's Python can import libtorrent.
pub(crate) fn require_python_libtorrent() -> Result<()> {
    if cmd::succeeds(Command::new(DEBIAN_PYTHON).args(["-c", "import libtorrent"])) {
        Ok(())
    } else {
        bail!(
            "`{DEBIAN_PYTHON} -c 'import libtorrent'` failed: install python3-libtorrent \
             (`cargo xtask ci` does when run as root)"
        )
    }
}

/// Builds `(package, bin)` pairs with `cargo build --release` in one invocation and returns
/// the executables' paths, in order. `LT_BIN`, when set, is taken as `lt` instead of
/// building it (to measure another build).
pub(crate) fn build_release(bins: &[(&str, &str)]) -> Result<Vec<PathBuf>> {
    let lt_bin = std::env::var_os("LT_BIN").map(PathBuf::from);
    let to_build: Vec<_> = bins
        .iter()
        .filter(|(_, bin)| *bin != "lt" || lt_bin.is_none())
        .collect();
    let mut stdout = String::new();
    if !to_build.is_empty() {
        let mut build = cmd::cargo([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
        ]);
        for (package, bin) in &to_build {
            build.args(["-p", package, "--bin", bin]);
        }
        println!("$ {}", cmd::display(&build));
        let out = build
            .stderr(Stdio::inherit())
            .output()
            .context("cannot run cargo build")?;
        if !out.status.success() {
            bail!("cargo build --release failed ({})", out.status);
        }
        stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    bins.iter()
        .map(|(_, bin)| {
            if *bin == "lt"
                && let Some(lt) = &lt_bin
            {
                println!("lt: {} (LT_BIN)", lt.display());
                return Ok(lt.clone());
            }
            stdout
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find_map(|v| {
                    (v["target"]["name"] == *bin)
                        .then(|| v["executable"].as_str().map(PathBuf::from))
                        .flatten()
                })
                .with_context(|| format!("cargo build reported no executable `{bin}`"))
        })
        .collect()
}

/// Deadline `n` seconds from now.
pub(crate) fn secs(n: u64) -> Instant {
    Instant::now() + Duration::from_secs(n)
}

/// A directory for payloads (under /dev/shm when it exists), removed on drop unless kept.
pub(crate) struct Scratch {
    pub(crate) path: PathBuf,
    keep: bool,
}

impl Scratch {
    pub(crate) fn new(prefix: &str, keep: bool) -> Result<Self> {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let path = base.join(format!("{prefix}-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path, keep })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.keep {
            println!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Writes `len` pseudo-random bytes (xorshift64 from `seed`) to `path`.
pub(crate) fn write_random_file(path: &Path, len: u64, seed: u64) -> Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut x = seed | 1;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        out.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(())
}

/// Compares two files byte for byte, naming the first difference.
pub(crate) fn files_equal(expected: &Path, actual: &Path) -> Result<()> {
    let open =
        |p: &Path| std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()));
    let (mut a, mut b) = (open(expected)?, open(actual)?);
    let (la, lb) = (a.metadata()?.len(), b.metadata()?.len());
    if la != lb {
        bail!("{} has {lb} bytes, the source {la}", actual.display());
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut a, &mut ba)?;
        let m = read_full(&mut b, &mut bb)?;
        if n != m {
            bail!("short read of {} at {offset}", actual.display());
        }
        if n == 0 {
            return Ok(());
        }
        if let Some(i) = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y) {
            bail!(
                "{} differs from the source at byte {}",
                actual.display(),
                offset + i as u64
            );
        }
        offset += n as u64;
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

type Line = (Instant, Stream, String);

/// A child process whose stdout and stderr are read line by line on threads (each line
/// timestamped on arrival), killed and reaped on drop.
pub(crate) struct Proc {
    label: String,
    child: Child,
    lines: Receiver<Line>,
    backlog: Vec<Line>,
    transcript: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub(crate) fn spawn(label: &str, command: &mut Command) -> Result<Self> {
        let line = cmd::display(command);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{line}`"))?;
        let (tx, rx) = mpsc::channel();
        let transcript = Arc::new(Mutex::new(Vec::new()));
        let pipes: [(Stream, Option<Box<dyn Read + Send>>); 2] = [
            (
                Stream::Stdout,
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
            ),
            (
                Stream::Stderr,
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
            ),
        ];
        for (stream, pipe) in pipes {
            let Some(pipe) = pipe else { continue };
            let (tx, transcript) = (tx.clone(), Arc::clone(&transcript));
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    {
                        let mut t = transcript.lock().unwrap_or_else(PoisonError::into_inner);
                        // Keep the tail only: a long run prints a progress line a second.
                        if t.len() >= 2000 {
                            t.drain(..1000);
                        }
                        t.push(line.clone());
                    }
                    let _ = tx.send((Instant::now(), stream, line));
                }
            });
        }
        Ok(Self {
            label: label.to_owned(),
            child,
            lines: rx,
            backlog: Vec::new(),
            transcript,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `n` lines the process printed.
    pub(crate) fn transcript(&self, n: usize) -> String {
        let t = self
            .transcript
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let skip = t.len().saturating_sub(n);
        t.iter().skip(skip).map(|l| format!("  | {l}\n")).collect()
    }

    /// Waits for a line of `stream` that `matches`; returns it.
    pub(crate) fn wait_line(
        &mut self,
        stream: Stream,
        deadline: Instant,
        matches: impl FnMut(&str) -> bool,
    ) -> Result<String> {
        self.wait_line_at(stream, deadline, matches).map(|(_, l)| l)
    }

    /// Like [`Proc::wait_line`], with the line's arrival time.
    pub(crate) fn wait_line_at(
        &mut self,
        stream: Stream,
        deadline: Instant,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Result<(Instant, String)> {
        let mut found = None;
        let mut kept = Vec::new();
        for (at, s, line) in self.backlog.drain(..) {
            if found.is_some() || s != stream {
                kept.push((at, s, line));
            } else if matches(&line) {
                found = Some((at, line));
            }
        }
        self.backlog = kept;
        if let Some(hit) = found {
            return Ok(hit);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, s, line)) if s == stream => {
                    if matches(&line) {
                        return Ok((at, line));
                    }
                }
                Ok(other) => self.backlog.push(other),
                Err(RecvTimeoutError::Timeout) => bail!(
                    "{} (pid {}): timed out; last lines:\n{}",
                    self.label,
                    self.pid(),
                    self.transcript(40)
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    bail!(
                        "{} (pid {}) exited ({status:?}) before the line waited for; last \
                         lines:\n{}",
                        self.label,
                        self.pid(),
                        self.transcript(40)
                    )
                }
            }
        }
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) by pid; a process already gone is fine.
    pub(crate) fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .stderr(Stdio::null())
            .status();
    }

    /// Waits for the process to exit; kills it when `deadline` passes.
    pub(crate) fn wait_exit(&mut self, deadline: Instant) -> Result<ExitStatus> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "{} (pid {}) did not exit in time; killed. Last lines:\n{}",
                    self.label,
                    self.pid(),
                    self.transcript(20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reaps the process once it is a zombie (exited), without touching it before: lets a
    /// caller read `/proc/PID/stat` of the zombie first.
    pub(crate) fn reap(&mut self) -> Result<ExitStatus> {
        Ok(self.child.wait()?)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
