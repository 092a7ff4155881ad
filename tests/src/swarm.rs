//! Helpers for whole-transfer tests: start `lt` and libtorrent peers as child processes, wait
//! for a line they print within a deadline, make a random payload and a torrent of it, and
//! check every downloaded byte against the source.
//!
//! Peers are [`Peer`]s: a [`ChildGuard`] (killed on drop) whose stdout and stderr are read
//! line by line on two threads. Every line is kept, so a failure can show what the process
//! said ([`Peer::transcript`]). libtorrent peers run `tests/python/lt_peer.py` under Debian's
//! Python; `lt` is built once per test process with `cargo build -p lt-cli --bin lt` (or
//! taken from `LT_BIN`).

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use lt_core::Sha1Hash;
use lt_metainfo::{CreateTorrent, TorrentInfo, TorrentVersion};
use serde_json::Value;

use crate::{ChildGuard, DEBIAN_PYTHON, require_python_libtorrent};

/// Which of a child's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A child process whose output is read line by line, killed and reaped on drop.
#[derive(Debug)]
pub struct Peer {
    /// A short name for messages (`"lt leecher"`).
    pub label: String,
    child: ChildGuard,
    lines: Receiver<(Stream, String)>,
    transcript: Arc<Mutex<Vec<String>>>,
    /// Lines received from the channel but not yet matched by a wait.
    backlog: Vec<(Stream, String)>,
    /// Its standard input, held open (see [`Peer::spawn_holding_stdin`]).
    _stdin: Option<std::process::ChildStdin>,
}

impl Peer {
    /// Starts `command` with piped stdout and stderr (stdin null).
    ///
    /// # Errors
    /// As [`Command::spawn`].
    pub fn spawn(label: impl Into<String>, command: &mut Command) -> std::io::Result<Self> {
        Self::spawn_with(label, command.stdin(Stdio::null()))
    }

    /// As [`Peer::spawn`], with standard input a pipe held open until the peer is dropped,
    /// for programs that stop at the end of their input (`openssl s_server`).
    ///
    /// # Errors
    /// As [`Command::spawn`].
    pub fn spawn_holding_stdin(
        label: impl Into<String>,
        command: &mut Command,
    ) -> std::io::Result<Self> {
        Self::spawn_with(label, command.stdin(Stdio::piped()))
    }

    fn spawn_with(label: impl Into<String>, command: &mut Command) -> std::io::Result<Self> {
        let mut child = ChildGuard::spawn(command.stdout(Stdio::piped()).stderr(Stdio::piped()))?;
        let stdin = child.stdin.take();
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
            let tx = tx.clone();
            let transcript = Arc::clone(&transcript);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let tag = if stream == Stream::Stdout {
                        "out"
                    } else {
                        "err"
                    };
                    transcript
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(format!("{tag}| {line}"));
                    // The receiver may be gone (peer dropped); keep draining the pipe anyway.
                    let _ = tx.send((stream, line));
                }
            });
        }
        Ok(Self {
            label: label.into(),
            child,
            lines: rx,
            transcript,
            backlog: Vec::new(),
            _stdin: stdin,
        })
    }

    /// The process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far, one `out| ` or `err| ` line each.
    #[must_use]
    pub fn transcript(&self) -> String {
        let lines = self
            .transcript
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut text = String::new();
        // The tail is what matters; cap what a failure message repeats.
        let skip = lines.len().saturating_sub(400);
        for line in lines.iter().skip(skip) {
            let _ = writeln!(text, "  {line}");
        }
        text
    }

    /// Waits until a line on `stream` satisfies `matches` and returns it (lines seen before
    /// it are consumed; lines of the other stream are kept for later waits).
    ///
    /// # Errors
    /// When `deadline` passes or the process closes its streams first, with the transcript.
    pub fn wait_line(
        &mut self,
        stream: Stream,
        deadline: Instant,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Result<String, String> {
        // Earlier lines of `stream` kept by a wait on the other stream come first; those
        // before the match are consumed with it.
        let mut found = None;
        let mut kept = Vec::with_capacity(self.backlog.len());
        for (s, line) in self.backlog.drain(..) {
            if found.is_some() || s != stream {
                kept.push((s, line));
            } else if matches(&line) {
                found = Some(line);
            }
        }
        self.backlog = kept;
        if let Some(line) = found {
            return Ok(line);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((s, line)) if s == stream => {
                    if matches(&line) {
                        return Ok(line);
                    }
                }
                Ok(other) => self.backlog.push(other),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failure(&format!("timed out waiting for a {stream:?} line")));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    return Err(self.failure(&format!(
                        "exited ({status:?}) before printing the {stream:?} line waited for"
                    )));
                }
            }
        }
    }

    /// Waits for a JSON line on stdout for which `matches` holds.
    ///
    /// # Errors
    /// As [`Peer::wait_line`].
    pub fn wait_json(
        &mut self,
        deadline: Instant,
        mut matches: impl FnMut(&Value) -> bool,
    ) -> Result<Value, String> {
        let line = self.wait_line(Stream::Stdout, deadline, |l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| matches(&v))
        })?;
        serde_json::from_str(&line).map_err(|e| self.failure(&format!("bad JSON {line:?}: {e}")))
    }

    /// Waits for a libtorrent peer's `{"event": <event>}` line.
    ///
    /// # Errors
    /// As [`Peer::wait_line`]; also when the peer reports `{"event":"error"}` first.
    pub fn wait_event(&mut self, event: &str, deadline: Instant) -> Result<Value, String> {
        let v = self.wait_json(deadline, |v| {
            v["event"] == event || v["event"] == "error" || v["event"] == "exit"
        })?;
        if v["event"] == event {
            Ok(v)
        } else {
            Err(self.failure(&format!("reported {v} while waiting for {event}")))
        }
    }

    /// Waits for the process to exit.
    ///
    /// # Errors
    /// When `deadline` passes first (the process is then killed), with the transcript.
    pub fn wait_exit(&mut self, deadline: Instant) -> Result<ExitStatus, String> {
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) => {}
                Err(e) => return Err(self.failure(&format!("wait: {e}"))),
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                return Err(self.failure("did not exit in time; killed"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (`"TERM"`, `"INT"`, `"KILL"`) to the process.
    ///
    /// # Errors
    /// When `kill` fails (the process is gone).
    pub fn signal(&self, signal: &str) -> Result<(), String> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("kill: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -{signal} {} failed", self.pid()))
        }
    }

    /// A failure message naming the peer, with `what` and the transcript.
    #[must_use]
    pub fn failure(&self, what: &str) -> String {
        format!(
            "{} (pid {}): {what}\n{}",
            self.label,
            self.pid(),
            self.transcript()
        )
    }
}

/// The `lt` binary: `LT_BIN` when set, otherwise built (once per process) with
/// `cargo build -p lt-cli --bin lt --target-dir <target>/lt-bin`.
///
/// The separate target directory matters: `cargo build -p lt-cli` resolves dependency features
/// for lt-cli alone, unlike the build of this test crate, and in a shared directory the two
/// builds would keep rebuilding each other's dependencies (ring, rustls, reqwest, ...). The
/// first build there takes a few minutes; later ones only rebuild what changed. `cargo xtask
/// ci` sets `LT_BIN` to the `lt` its workspace build made. Call this at the start of a test,
/// before starting peers that have a time limit.
///
/// # Panics
/// When the build fails.
pub fn lt_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("LT_BIN") {
            return PathBuf::from(bin);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace.join("target"), PathBuf::from)
            .join("lt-bin");
        let out = Command::new(cargo)
            .current_dir(&workspace)
            .args([
                "build",
                "-q",
                "-p",
                "lt-cli",
                "--bin",
                "lt",
                "--message-format=json",
            ])
            .arg("--target-dir")
            .arg(&target)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run cargo build -p lt-cli: {e}"));
        assert!(
            out.status.success(),
            "cargo build -p lt-cli --bin lt failed ({})",
            out.status
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|v| {
                (v["target"]["name"] == "lt")
                    .then(|| v["executable"].as_str().map(PathBuf::from))
                    .flatten()
            })
            .unwrap_or_else(|| panic!("cargo build -p lt-cli reported no `lt` executable"))
    })
    .clone()
}

/// `tests/python/lt_peer.py`, the libtorrent peer.
#[must_use]
pub fn lt_peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/lt_peer.py")
}

/// Starts `lt_peer.py` with `args` and returns it with its stdout lines, read on a thread
/// so the pipe never fills. `stderr` is where its log goes.
///
/// # Panics
/// When python3-libtorrent is missing or the script cannot start.
#[allow(
    clippy::expect_used,
    reason = "a test helper; failing to start is a test failure"
)]
pub fn spawn_lt_peer(args: &[&str], stderr: Stdio) -> (ChildGuard, Receiver<String>) {
    let mut child = ChildGuard::spawn(
        Command::new(require_python_libtorrent())
            .arg(lt_peer_script())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr),
    )
    .expect("start lt_peer.py");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// Deadline `secs` seconds from now.
#[must_use]
pub fn deadline_in(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// Writes `len` pseudo-random bytes (xorshift from `seed`) to `path`.
///
/// # Errors
/// When the file cannot be written.
pub fn write_random_file(path: &Path, len: u64, seed: u64) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut x = seed | 1;
    let mut left = len;
    let mut chunk = vec![0u8; 1 << 16];
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
    out.flush()
}

/// A payload and its v1 torrent.
#[derive(Debug)]
pub struct Payload {
    /// The directory holding the payload file (a seeder's save path / `--data`).
    pub data_dir: PathBuf,
    /// The payload file, `data_dir/<name>`.
    pub file: PathBuf,
    /// The `.torrent` file.
    pub torrent: PathBuf,
    /// The parsed torrent.
    pub info: TorrentInfo,
}

impl Payload {
    /// Writes `len` random bytes to `dir/seed/<name>` and a v1 torrent of it with
    /// `piece_size` and `trackers` to `dir/<name>.torrent`.
    ///
    /// # Panics
    /// On any I/O or torrent-creation failure.
    #[must_use]
    pub fn create(dir: &Path, name: &str, len: u64, piece_size: u32, trackers: &[String]) -> Self {
        let data_dir = dir.join("seed");
        let file = data_dir.join(name);
        write_random_file(&file, len, len ^ 0x9e37_79b9_7f4a_7c15)
            .unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        let mut create = CreateTorrent::new(&file)
            .version(TorrentVersion::V1)
            .piece_size(piece_size);
        for t in trackers {
            create = create.tracker(t.clone());
        }
        let bytes = create
            .generate()
            .unwrap_or_else(|e| panic!("create torrent: {e}"));
        let torrent = dir.join(format!("{name}.torrent"));
        std::fs::write(&torrent, &bytes).unwrap_or_else(|e| panic!("write torrent: {e}"));
        let info = TorrentInfo::from_bytes(&bytes).unwrap_or_else(|e| panic!("parse torrent: {e}"));
        Self {
            data_dir,
            file,
            torrent,
            info,
        }
    }

    /// The v1 info-hash.
    ///
    /// # Panics
    /// When the torrent has no v1 hash (never: [`Payload::create`] makes v1 torrents).
    #[must_use]
    pub fn info_hash(&self) -> Sha1Hash {
        self.info
            .info_hash()
            .v1_hash()
            .unwrap_or_else(|| panic!("v1 torrent without a v1 info-hash"))
    }

    /// A libtorrent seed of this payload (`tests/python/lt_node.py seed`) with `extra`
    /// options; returns it and its listen port.
    ///
    /// # Panics
    /// As [`start_libtorrent_node`].
    #[must_use]
    pub fn start_libtorrent_seed(&self, extra: &[&str]) -> (Peer, u16) {
        let mut args = vec![
            "seed".to_owned(),
            "--torrent".to_owned(),
            self.torrent.display().to_string(),
            "--save".to_owned(),
            self.data_dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        start_libtorrent_node("libtorrent seed", &args)
    }

    /// Checks that `save_dir/<name>` equals the source byte for byte.
    ///
    /// # Errors
    /// Describing the first difference.
    pub fn verify_download(&self, save_dir: &Path) -> Result<(), String> {
        let name = self.file.file_name().unwrap_or_else(|| OsStr::new(""));
        files_equal(&self.file, &save_dir.join(name))
    }
}

/// Compares two files byte for byte.
///
/// # Errors
/// Naming the first differing offset or the length mismatch.
pub fn files_equal(expected: &Path, actual: &Path) -> Result<(), String> {
    let open = |p: &Path| std::fs::File::open(p).map_err(|e| format!("open {}: {e}", p.display()));
    let (mut a, mut b) = (open(expected)?, open(actual)?);
    let (la, lb) = (
        a.metadata().map_err(|e| e.to_string())?.len(),
        b.metadata().map_err(|e| e.to_string())?.len(),
    );
    if la != lb {
        return Err(format!(
            "{} has {lb} bytes, {} has {la}",
            actual.display(),
            expected.display()
        ));
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut a, &mut ba).map_err(|e| e.to_string())?;
        let m = read_full(&mut b, &mut bb).map_err(|e| e.to_string())?;
        if n != m {
            return Err(format!("short read at {offset}"));
        }
        if n == 0 {
            return Ok(());
        }
        if let Some(i) = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y) {
            return Err(format!(
                "{} differs from {} at byte {}",
                actual.display(),
                expected.display(),
                offset + i as u64
            ));
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

/// Encryption policy of either client (`--encryption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// MSE required (libtorrent: RC4 on the whole stream).
    Forced,
    /// Either (the default of both clients).
    Enabled,
    /// Plain BitTorrent only.
    Disabled,
}

impl Encryption {
    /// The `--encryption` value.
    #[must_use]
    pub fn arg(self) -> &'static str {
        match self {
            Self::Forced => "forced",
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
        }
    }
}

/// Options of a libtorrent peer (`lt_peer.py`).
#[derive(Debug, Clone)]
pub struct LibtorrentOptions {
    /// Peers to dial.
    pub peers: Vec<SocketAddr>,
    /// Encryption policy.
    pub encryption: Encryption,
    /// Upload limit in bytes/s (0: none).
    pub upload_limit: u64,
    /// A downloader keeps seeding after it finishes.
    pub keep_seeding: bool,
    /// The script gives up (exit 2) after this many seconds.
    pub max_time: u64,
}

impl Default for LibtorrentOptions {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            encryption: Encryption::Enabled,
            upload_limit: 0,
            keep_seeding: false,
            max_time: 120,
        }
    }
}

/// Starts a libtorrent peer (`role` is `seed` or `download`) and waits until it listens and its
/// torrent is ready; returns it with its listen address on 127.0.0.1.
///
/// # Panics
/// When python3-libtorrent is missing or the peer does not get ready within 30 s.
#[must_use]
pub fn start_libtorrent(
    role: &str,
    torrent: &Path,
    save: &Path,
    opts: &LibtorrentOptions,
) -> (Peer, SocketAddr) {
    let python = require_python_libtorrent();
    debug_assert_eq!(python, Path::new(DEBIAN_PYTHON));
    std::fs::create_dir_all(save).unwrap_or_else(|e| panic!("mkdir {}: {e}", save.display()));
    let mut cmd = Command::new(python);
    cmd.arg(lt_peer_script())
        .arg(role)
        .arg("--torrent")
        .arg(torrent)
        .arg("--save")
        .arg(save)
        .args(["--encryption", opts.encryption.arg()])
        .args(["--max-time", &opts.max_time.to_string()]);
    for p in &opts.peers {
        cmd.arg("--peer").arg(p.to_string());
    }
    if opts.upload_limit > 0 {
        cmd.args(["--upload-limit", &opts.upload_limit.to_string()]);
    }
    if role == "seed" {
        cmd.arg("--seed-mode");
    }
    if opts.keep_seeding {
        cmd.arg("--keep-seeding");
    }
    let mut peer = Peer::spawn(format!("libtorrent {role}"), &mut cmd)
        .unwrap_or_else(|e| panic!("start {DEBIAN_PYTHON}: {e}"));
    let port = wait_ready(&mut peer);
    (peer, SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

/// Waits (30 s at most) for a libtorrent script's `listening` event and then its `ready`
/// one; returns the port it listens on.
fn wait_ready(peer: &mut Peer) -> u16 {
    let deadline = deadline_in(30);
    let listening = peer
        .wait_event("listening", deadline)
        .unwrap_or_else(|e| panic!("{e}"));
    let port = listening["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("{}", peer.failure("no port in the listening event")));
    peer.wait_event("ready", deadline)
        .unwrap_or_else(|e| panic!("{e}"));
    port
}

/// Starts `lt` with `args` and waits for `listening on <addr>` on stderr; returns the peer
/// and the port as an address on 127.0.0.1.
///
/// # Panics
/// When `lt` cannot start or does not listen within 30 s.
#[must_use]
pub fn start_lt<I, S>(label: &str, args: I) -> (Peer, SocketAddr)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(lt_binary());
    cmd.args(args);
    let mut peer = Peer::spawn(label, &mut cmd).unwrap_or_else(|e| panic!("start {}: {e}", label));
    let line = peer
        .wait_line(Stream::Stderr, deadline_in(30), |l| {
            l.contains("listening on ")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let port = parse_listen_port(&line)
        .unwrap_or_else(|| panic!("{}", peer.failure(&format!("cannot parse {line:?}"))));
    (peer, SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

/// The port of a `listening on <addr>` line.
#[must_use]
pub fn parse_listen_port(line: &str) -> Option<u16> {
    let rest = line.split("listening on ").nth(1)?;
    let addr = rest.split_whitespace().next()?;
    addr.parse::<SocketAddr>()
        .ok()
        .map(|a| a.port())
        .or_else(|| addr.rsplit(':').next()?.parse().ok())
}

/// Starts `lt seed <torrent> --data <data>` with `extra` arguments, waits for its
/// `seeding <name>: N/N pieces` line and returns it with its address.
///
/// # Panics
/// When it does not get ready within 60 s.
#[must_use]
pub fn start_lt_seed(torrent: &Path, data: &Path, extra: &[String]) -> (Peer, SocketAddr) {
    let mut args: Vec<std::ffi::OsString> =
        vec!["seed".into(), torrent.into(), "--data".into(), data.into()];
    args.extend(extra.iter().map(Into::into));
    let (mut peer, addr) = start_lt("lt seed", args);
    peer.wait_line(Stream::Stderr, deadline_in(60), |l| l.contains("seeding "))
        .unwrap_or_else(|e| panic!("{e}"));
    (peer, addr)
}

/// Starts a libtorrent node (`tests/python/lt_node.py` with `args`) and waits until it is
/// ready; returns it with its listen port.
///
/// # Panics
/// When python3-libtorrent is missing or the node does not get ready within 30 s.
#[must_use]
pub fn start_libtorrent_node(label: &str, args: &[String]) -> (Peer, u16) {
    let mut cmd = Command::new(require_python_libtorrent());
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("python/lt_node.py"))
        .args(args);
    let mut peer = Peer::spawn(label, &mut cmd).unwrap_or_else(|e| panic!("start {label}: {e}"));
    let port = wait_ready(&mut peer);
    (peer, port)
}

/// The `--json` summary of `lt download`.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The whole JSON object.
    pub json: Value,
    /// `total_bytes`.
    pub total_bytes: u64,
    /// `pieces`.
    pub pieces: u64,
    /// `pieces_verified`.
    pub pieces_verified: u64,
    /// `resumed_pieces`.
    pub resumed_pieces: u64,
    /// `payload_downloaded`.
    pub payload_downloaded: u64,
    /// `seconds`.
    pub seconds: f64,
    /// `mb_per_s`.
    pub mb_per_s: f64,
    /// `peers_banned`.
    pub peers_banned: u64,
}

impl Summary {
    /// Parses a summary line; `None` unless it is a JSON object with `"complete": true`.
    #[must_use]
    pub fn parse(line: &str) -> Option<Self> {
        let json: Value = serde_json::from_str(line).ok()?;
        if json.get("complete")? != &Value::Bool(true) {
            return None;
        }
        let u = |k: &str| json.get(k).and_then(Value::as_u64);
        let f = |k: &str| json.get(k).and_then(Value::as_f64);
        Some(Self {
            total_bytes: u("total_bytes")?,
            pieces: u("pieces")?,
            pieces_verified: u("pieces_verified")?,
            resumed_pieces: u("resumed_pieces")?,
            payload_downloaded: u("payload_downloaded")?,
            seconds: f("seconds")?,
            mb_per_s: f("mb_per_s")?,
            peers_banned: u("peers_banned")?,
            json,
        })
    }
}

/// Runs an `lt download … --json` set up in `cmd` to its end: its summary must count every
/// piece verified, the files under `out` must match `payload`, and lt must exit 0. Returns
/// the summary and lt's transcript.
///
/// # Panics
/// When any of that fails, with lt's transcript.
pub fn run_download(
    label: &str,
    cmd: &mut Command,
    payload: &Payload,
    out: &Path,
) -> (Summary, String) {
    let mut leech = Peer::spawn(label, cmd).unwrap_or_else(|e| panic!("start {label}: {e}"));
    let summary = wait_summary(&mut leech, deadline_in(90)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        summary.pieces_verified,
        summary.pieces,
        "{}",
        leech.transcript()
    );
    payload
        .verify_download(out)
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let status = leech
        .wait_exit(deadline_in(30))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "{}", leech.failure("exit status"));
    (summary, leech.transcript())
}

/// Waits for an `lt download --json` peer's summary line.
///
/// # Errors
/// When the deadline passes or `lt` exits first, with its transcript.
pub fn wait_summary(peer: &mut Peer, deadline: Instant) -> Result<Summary, String> {
    let line = peer.wait_line(Stream::Stdout, deadline, |l| Summary::parse(l).is_some())?;
    Summary::parse(&line).ok_or_else(|| peer.failure("unparsable summary"))
}

/// A port of 127.0.0.1 free for both UDP and TCP (a tracker serves both on one number).
///
/// # Panics
/// When no port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    let (udp, _tcp) = crate::tracker_driver::bind_pair(Ipv4Addr::LOCALHOST.into())
        .unwrap_or_else(|e| panic!("free port: {e}"));
    udp.local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
        .port()
}

/// Starts opentracker on 127.0.0.1:`port` (HTTP and UDP) and waits until it accepts
/// connections.
///
/// Debian builds opentracker with a whitelist, so `hashes` are written to one in `dir`
/// (made readable by `nobody`, the user opentracker drops to; it chroots there).
///
/// # Panics
/// When opentracker is not installed or does not come up within 10 s.
#[must_use]
pub fn start_opentracker(dir: &Path, port: u16, hashes: &[Sha1Hash]) -> ChildGuard {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = crate::require_program("opentracker", "opentracker");
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let list: String = hashes.iter().map(|h| format!("{}\n", h.to_hex())).collect();
    std::fs::write(dir.join("whitelist"), list).unwrap_or_else(|e| panic!("whitelist: {e}"));
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
    let port_s = port.to_string();
    let child = ChildGuard::spawn(
        Command::new(bin)
            .current_dir(dir)
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port_s,
                "-P",
                &port_s,
                "-w",
                "whitelist",
            ])
            .arg("-d")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap_or_else(|e| panic!("start opentracker: {e}"));
    let deadline = deadline_in(10);
    while std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "opentracker did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Scrapes the HTTP tracker `announce` until it counts at least `seeds` seeds of
/// `info_hash`.
///
/// # Errors
/// When `deadline` passes first.
pub fn wait_tracker_seeds(
    announce: &str,
    info_hash: Sha1Hash,
    seeds: u32,
    deadline: Instant,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let client = crate::tracker_driver::http_client(Duration::from_secs(5));
    let mut last = String::new();
    while Instant::now() < deadline {
        match rt.block_on(crate::tracker_driver::http_scrape(
            &client,
            announce,
            &[info_hash],
        )) {
            Ok(entries) => {
                if entries
                    .iter()
                    .any(|e| e.info_hash == info_hash && e.complete >= seeds)
                {
                    return Ok(());
                }
                last = format!("{entries:?}");
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "{announce} never counted {seeds} seed(s) of {}; last scrape: {last}",
        info_hash.to_hex()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listen_lines() {
        assert_eq!(parse_listen_port("listening on 0.0.0.0:6881"), Some(6881));
        assert_eq!(
            parse_listen_port("lt: listening on [::]:51413"),
            Some(51413)
        );
        assert_eq!(parse_listen_port("progress 4%"), None);
    }

    #[test]
    fn parses_a_summary() {
        let s = Summary::parse(
            r#"{"name":"a","info_hash":"00","total_bytes":10,"pieces":1,"pieces_verified":1,"resumed_pieces":0,"payload_downloaded":10,"seconds":0.5,"mb_per_s":0.00002,"peers_banned":0,"complete":true}"#,
        )
        .unwrap();
        assert_eq!(
            (s.total_bytes, s.pieces_verified, s.peers_banned),
            (10, 1, 0)
        );
        assert!(Summary::parse(r#"{"uploaded":3}"#).is_none());
    }

    #[test]
    fn random_files_compare() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        write_random_file(&a, 100_003, 7).unwrap();
        write_random_file(&b, 100_003, 7).unwrap();
        files_equal(&a, &b).unwrap();
        write_random_file(&b, 100_003, 8).unwrap();
        assert!(files_equal(&a, &b).unwrap_err().contains("at byte 0"));
        write_random_file(&b, 100_002, 7).unwrap();
        assert!(files_equal(&a, &b).is_err());
    }

    #[test]
    fn peer_lines_and_exit() {
        let mut p = Peer::spawn(
            "sh",
            Command::new("sh").args([
                "-c",
                "echo err1 >&2; echo '{\"event\":\"ready\"}'; echo done >&2",
            ]),
        )
        .unwrap();
        let d = deadline_in(10);
        p.wait_event("ready", d).unwrap();
        assert_eq!(
            p.wait_line(Stream::Stderr, d, |l| l == "done").unwrap(),
            "done"
        );
        assert!(p.wait_exit(d).unwrap().success());
        assert!(p.transcript().contains("err| err1"));
    }
}
