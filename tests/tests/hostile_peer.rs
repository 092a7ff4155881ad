//! The hostile-peer suite (issue 18): a peer written here (`lt_tests::hostile`) breaks the
//! wire protocol in many ways against `lt seed` and against an `lt download` leecher:
//!
//! - bad framing: length prefixes of 4 GiB and just over the 1 MiB limit, lengths too short
//!   for their message id, messages and handshakes cut short (then closed, or held open),
//!   a wrong protocol string, an unknown info-hash, 10,000 bitfields (kept: a later
//!   one replaces the first, as aria2 needs);
//! - bad lengths and indexes: requests past a piece's or the torrent's end, piece indexes
//!   out of range, blocks of 0 bytes, 32 KiB, 128 KiB + 1 and 4 GiB, an offset that
//!   overflows, bitfields of the wrong length or with spare bits set, HAVE past the end,
//!   unrequested blocks out of range, malformed extension messages;
//! - floods of every message type: HAVE, REQUEST, CANCEL, INTERESTED/NOT INTERESTED
//!   toggling, keep-alives, extended handshakes, ut_metadata requests, upload_only, PEX
//!   with thousands of addresses and PEX too often, PORT, unrequested blocks, connections;
//! - peers that never read: they request every block (or 1-byte blocks, or metadata, or
//!   toggle interest) and never read the socket;
//! - slowloris handshakes: a byte a second, and many half-finished handshakes at once
//!   (plaintext, and after an MSE key exchange);
//! - MSE garbage: random bytes where an MSE handshake is expected;
//! - lies to a leecher: metadata of the wrong size or content for a magnet link, and
//!   blocks that fail the hash.
//!
//! After each case against a running `lt` process the suite checks that the process is
//! alive, that an honest client ([`fetch_verified`]: a few pieces, each checked against the
//! torrent's SHA-1) is served within [`HONEST_SECS`], that its `VmRSS` grew by less than
//! [`RSS_BOUND_KIB`] over the case, and that the seed's payload on disk is unchanged. A
//! leecher under attack must still finish with every byte right and ban or drop the liars.
//!
//! Everything runs on 127.0.0.1 with free ports and deadlines; every `lt` process is a
//! [`Peer`] (killed when dropped) and every hostile thread stops when its guard drops. Each
//! case prints its wall time and RSS growth (`--no-capture` shows them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes, BytesMut};
use lt_core::{PieceIndex, Sha1Hash};
use lt_tests::hostile::{
    LiarStats, Lie, LyingSeed, RawPeer, Torrent, fetch_verified, is_alive, junk, rss_kib, sha1_file,
};
use lt_tests::swarm::{
    Payload, Peer, Stream, deadline_in, free_port, lt_binary, start_lt, start_lt_seed, wait_summary,
};
use lt_wire::{
    BlockRequest, ExtendedHandshake, Message, MetadataMessage, PexFlags, PexMessage, PexPeer,
    Reserved,
};

/// Payload size: 92 pieces, the last one short, and 4 spare bits in a bitfield.
const SIZE: u64 = 6_000_000;
/// Piece size of the test torrents.
const PIECE: u32 = 64 * 1024;
/// Most the target's `VmRSS` may grow over one case.
const RSS_BOUND_KIB: u64 = 64 * 1024;
/// How long the honest client may take to get its pieces after a case.
const HONEST_SECS: u64 = 5;
/// Pieces the honest client fetches after each case.
const HONEST_PIECES: usize = 3;
/// How long lt may take to close a connection that broke the protocol.
const CLOSE_SECS: u64 = 3;

/// A scratch directory on /dev/shm when it exists (payloads stay off the disk); builds `lt`
/// first, before anything with a deadline starts.
fn scratch() -> tempfile::TempDir {
    lt_binary();
    let shm = Path::new("/dev/shm");
    let mut b = tempfile::Builder::new();
    b.prefix("lt-hostile-");
    if shm.is_dir() {
        b.tempdir_in(shm).unwrap()
    } else {
        b.tempdir().unwrap()
    }
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

// ---- the bench: one lt process under attack, checked after every case ----

/// What a case keeps open while the checks run: connections and threads, closed and
/// stopped when it drops.
#[derive(Default)]
struct Held {
    /// Open until the case's checks are done (never read here).
    _peers: Vec<RawPeer>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Held {
    fn none() -> Self {
        Self::default()
    }

    fn peer(p: RawPeer) -> Self {
        Self::peers(vec![p])
    }

    fn peers(peers: Vec<RawPeer>) -> Self {
        Self {
            _peers: peers,
            stop: Arc::default(),
            threads: Vec::new(),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The target of a case.
struct Ctx<'a> {
    addr: SocketAddr,
    torrent: &'a Torrent,
}

impl Ctx<'_> {
    fn connect(&self) -> Result<RawPeer, String> {
        RawPeer::connect(self.addr).map_err(|e| format!("connect {}: {e}", self.addr))
    }

    /// Connected and past both handshakes (fast and extension bits set).
    fn joined(&self) -> Result<RawPeer, String> {
        let mut p = self.connect()?;
        let reserved = Reserved::default().with_fast(true).with_extensions(true);
        p.handshake(self.torrent.info_hash(), reserved, deadline_in(5))
            .map_err(|e| format!("handshake: {e}"))?;
        Ok(p)
    }

    /// Connected, past both handshakes and the extended handshakes (lt's `m` is in
    /// `remote_ext`).
    fn joined_ext(&self) -> Result<RawPeer, String> {
        let mut p = self.connect()?;
        let ours = ExtendedHandshake {
            m: [("ut_pex", 1), ("ut_metadata", 2), ("upload_only", 3)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            ..ExtendedHandshake::default()
        };
        p.handshake_ext(self.torrent.info_hash(), &ours, deadline_in(5))
            .map_err(|e| format!("extended handshake: {e}"))?;
        Ok(p)
    }

    /// Joined, interested, and unchoked by the target.
    fn unchoked(&self) -> Result<RawPeer, String> {
        let mut p = self.joined()?;
        p.send(&Message::Interested).map_err(|e| e.to_string())?;
        let deadline = deadline_in(5);
        loop {
            match p.recv(deadline) {
                Ok(Message::Unchoke) => return Ok(p),
                Ok(_) => {}
                Err(e) => return Err(format!("waiting for an unchoke: {e}")),
            }
        }
    }

    /// The id lt wants for extension `name` in messages to it.
    fn ext_id(p: &RawPeer, name: &str) -> Result<u8, String> {
        p.remote_ext
            .as_ref()
            .and_then(|e| e.m.get(name).copied())
            .filter(|&id| id != 0)
            .ok_or_else(|| format!("lt does not advertise {name}"))
    }
}

/// Waits for lt to close `p`'s connection after `what`.
fn closes(mut p: RawPeer, what: &str) -> Result<Held, String> {
    if p.wait_closed(deadline_in(CLOSE_SECS)) {
        Ok(Held::none())
    } else {
        Err(format!(
            "lt kept the connection open {CLOSE_SECS} s after {what}"
        ))
    }
}

/// Sends `bytes` (errors ignored: lt may close mid-way) and waits for lt to close.
fn send_then_closes(mut p: RawPeer, bytes: &[u8], what: &str) -> Result<Held, String> {
    let _ = p.send_raw(bytes);
    closes(p, what)
}

/// `len` as a length prefix, then `body` (which may disagree with it on purpose).
fn frame(len: u32, body: &[u8]) -> Vec<u8> {
    let mut v = len.to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn enc(msgs: &[Message]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in msgs {
        m.encode(&mut out);
    }
    out.to_vec()
}

fn request(piece: u32, begin: u32, len: u32) -> Message {
    Message::Request(BlockRequest::new(PieceIndex::new(piece), begin, len))
}

/// Sends `count` copies of what `unit(i)` makes, in 256 KiB writes; stops quietly when lt
/// closes the connection (some floods are meant to make it). Returns the messages sent.
fn flood(p: &mut RawPeer, count: usize, mut unit: impl FnMut(usize) -> Vec<u8>) -> usize {
    let mut buf = Vec::with_capacity(300 << 10);
    let mut sent = 0;
    for i in 0..count {
        buf.extend_from_slice(&unit(i));
        if buf.len() >= 256 << 10 || i + 1 == count {
            if p.send_raw(&buf).is_err() {
                return sent;
            }
            sent = i + 1;
            buf.clear();
        }
    }
    sent
}

/// A flood with a thread reading what lt answers; the connection stays open (held) for the
/// checks.
fn flood_reading(
    mut p: RawPeer,
    count: usize,
    unit: impl FnMut(usize) -> Vec<u8>,
) -> Result<Held, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let reader = p.drain(&stop).map_err(|e| e.to_string())?;
    let sent = flood(&mut p, count, unit);
    if sent < count {
        return Err(format!("lt closed the connection after {sent} of {count}"));
    }
    Ok(Held {
        _peers: vec![p],
        stop,
        threads: vec![std::thread::spawn(move || {
            let _ = reader.join();
        })],
    })
}

/// One hostile behaviour.
type CaseFn = fn(&Ctx<'_>) -> Result<Held, String>;

/// A named hostile behaviour.
struct Case {
    name: &'static str,
    run: CaseFn,
}

/// An `lt` process under attack and what the checks compare against.
struct Bench {
    lt: Peer,
    addr: SocketAddr,
    torrent: Torrent,
    /// The seed's payload and its SHA-1 before any case (`None` for a leecher).
    seed_data: Option<(PathBuf, Sha1Hash)>,
    cases_run: u32,
}

impl Bench {
    /// `lt seed` of a fresh payload in `dir`.
    fn seed(dir: &Path) -> Self {
        let payload = Payload::create(dir, "hostile.bin", SIZE, PIECE, &[]);
        let (lt, addr) = start_lt_seed(&payload.torrent, &payload.data_dir, &[]);
        let hash = sha1_file(&payload.file).unwrap();
        Self {
            lt,
            addr,
            torrent: Torrent::new(payload.info.clone()),
            seed_data: Some((payload.file, hash)),
            cases_run: 0,
        }
    }

    /// Runs `cases` one after the other with the checks after each (only those whose name
    /// contains `LT_HOSTILE_CASE` when it is set, to study one).
    fn run_all(&mut self, cases: &[Case]) {
        let only = std::env::var("LT_HOSTILE_CASE").ok();
        for c in cases {
            if only.as_deref().is_none_or(|o| c.name.contains(o)) {
                self.run(c);
            }
        }
    }

    /// Runs one case, then checks: alive, an honest client served, RSS growth, payload.
    fn run(&mut self, case: &Case) {
        let pid = self.lt.pid();
        let rss_before = rss_kib(pid).unwrap_or_else(|| {
            panic!(
                "{}",
                self.lt.failure(&format!("no VmRSS before {}", case.name))
            )
        });
        let started = Instant::now();
        let ctx = Ctx {
            addr: self.addr,
            torrent: &self.torrent,
        };
        let held = (case.run)(&ctx).unwrap_or_else(|e| {
            panic!(
                "{}",
                self.lt
                    .failure(&format!("case {:?} failed: {e}", case.name))
            )
        });
        let attack = started.elapsed();
        assert!(
            is_alive(pid),
            "{}",
            self.lt
                .failure(&format!("died during case {:?}", case.name))
        );
        let honest_start = Instant::now();
        self.cases_run += 1;
        let pieces = fetch_verified(
            self.addr,
            &self.torrent,
            HONEST_PIECES,
            self.cases_run,
            deadline_in(HONEST_SECS),
        )
        .unwrap_or_else(|e| {
            panic!(
                "{}",
                self.lt.failure(&format!(
                    "after case {:?} (hostile connections still open) an honest peer was not \
                     served within {HONEST_SECS} s: {e}",
                    case.name
                ))
            )
        });
        let honest = honest_start.elapsed();
        let rss_after = rss_kib(pid).unwrap_or(0);
        let growth = rss_after.saturating_sub(rss_before);
        eprintln!(
            "case {:<58} attack {:>5} ms, honest fetch {:>4} ms ({} pieces), VmRSS {} -> {} KiB \
             (+{} KiB)",
            format!("{:?}", case.name),
            attack.as_millis(),
            honest.as_millis(),
            pieces.len(),
            rss_before,
            rss_after,
            growth
        );
        assert!(
            growth < RSS_BOUND_KIB,
            "{}",
            self.lt.failure(&format!(
                "case {:?}: VmRSS grew by {growth} KiB ({rss_before} -> {rss_after}), the bound \
                 is {RSS_BOUND_KIB} KiB",
                case.name
            ))
        );
        drop(held);
        assert!(
            is_alive(pid),
            "{}",
            self.lt
                .failure(&format!("died closing the connections of {:?}", case.name))
        );
        if let Some((file, hash)) = &self.seed_data {
            assert_eq!(
                sha1_file(file).unwrap(),
                *hash,
                "case {:?} changed the seed's payload {}",
                case.name,
                file.display()
            );
        }
    }
}

// ---- bad framing ----

const FRAMING: &[Case] = &[
    Case {
        name: "length prefix 4 GiB",
        run: |c| {
            let mut body = vec![7u8];
            body.extend(junk(1, 1024));
            send_then_closes(
                c.joined()?,
                &frame(u32::MAX, &body),
                "a 4 GiB length prefix",
            )
        },
    },
    Case {
        name: "length prefix 1 MiB + 1 (a PIECE)",
        run: |c| {
            let mut body = vec![7u8, 0, 0, 0, 0, 0, 0, 0, 0];
            body.extend(junk(2, 4096));
            send_then_closes(
                c.joined()?,
                &frame((1 << 20) + 1, &body),
                "a length prefix over the limit",
            )
        },
    },
    Case {
        name: "1,000 keep-alives then a HAVE of length 1",
        run: |c| {
            let mut bytes = vec![0u8; 4000];
            bytes.extend(frame(1, &[4]));
            send_then_closes(c.joined()?, &bytes, "a HAVE without its index")
        },
    },
    Case {
        name: "REQUEST of length 5",
        run: |c| {
            send_then_closes(
                c.joined()?,
                &frame(5, &[6, 0, 0, 0, 0]),
                "a REQUEST of length 5",
            )
        },
    },
    Case {
        name: "CHOKE of length 3",
        run: |c| send_then_closes(c.joined()?, &frame(3, &[0, 1, 2]), "a CHOKE with a payload"),
    },
    Case {
        name: "PIECE shorter than its header",
        run: |c| send_then_closes(c.joined()?, &frame(5, &[7, 0, 0, 0, 0]), "a 5-byte PIECE"),
    },
    Case {
        name: "length prefix 0x7fffffff, then 1 MiB of body",
        run: |c| {
            let mut body = vec![20u8, 0];
            body.extend(junk(3, 1 << 20));
            send_then_closes(c.joined()?, &frame(0x7fff_ffff, &body), "a 2 GiB length")
        },
    },
    Case {
        name: "message cut short, then closed",
        run: |c| {
            let mut p = c.joined()?;
            let mut body = vec![7u8, 0, 0, 0, 1, 0, 0, 0, 0];
            body.extend(junk(4, 100));
            p.send_raw(&frame(9 + 16384, &body))
                .map_err(|e| e.to_string())?;
            drop(p);
            Ok(Held::none())
        },
    },
    Case {
        name: "message cut short, held open",
        run: |c| {
            let mut p = c.joined()?;
            let mut body = vec![7u8, 0, 0, 0, 1, 0, 0, 0, 0];
            body.extend(junk(5, 5000));
            p.send_raw(&frame(9 + 16384, &body))
                .map_err(|e| e.to_string())?;
            Ok(Held::peer(p))
        },
    },
    Case {
        name: "length prefix cut short, held open",
        run: |c| {
            let mut p = c.joined()?;
            p.send_raw(&[0, 0]).map_err(|e| e.to_string())?;
            Ok(Held::peer(p))
        },
    },
    Case {
        name: "handshake cut short (30 bytes), then closed",
        run: |c| {
            let mut p = c.connect()?;
            let hs = RawPeer::handshake_bytes(c.torrent.info_hash(), Reserved::default());
            p.send_raw(&hs[..30]).map_err(|e| e.to_string())?;
            drop(p);
            Ok(Held::none())
        },
    },
    Case {
        name: "handshake cut short (50 bytes), held open",
        run: |c| {
            let mut p = c.connect()?;
            let hs = RawPeer::handshake_bytes(c.torrent.info_hash(), Reserved::default());
            p.send_raw(&hs[..50]).map_err(|e| e.to_string())?;
            Ok(Held::peer(p))
        },
    },
    Case {
        name: "handshake for an unknown info-hash",
        run: |c| {
            let hs = RawPeer::handshake_bytes(Sha1Hash::digest(b"nothing"), Reserved::default());
            send_then_closes(c.connect()?, &hs, "a handshake for an unknown torrent")
        },
    },
    Case {
        name: "handshake with a wrong protocol string",
        run: |c| {
            let mut p = c.connect()?;
            let mut hs = RawPeer::handshake_bytes(c.torrent.info_hash(), Reserved::default());
            hs[19] = b'X';
            p.send_raw(&hs).map_err(|e| e.to_string())?;
            drop(p);
            Ok(Held::none())
        },
    },
    Case {
        name: "handshake with protocol length 255",
        run: |c| {
            let mut p = c.connect()?;
            let mut hs = RawPeer::handshake_bytes(c.torrent.info_hash(), Reserved::default());
            hs[0] = 255;
            p.send_raw(&hs).map_err(|e| e.to_string())?;
            Ok(Held::peer(p))
        },
    },
    Case {
        name: "10,000 BITFIELDs",
        run: |c| {
            // A later bitfield replaces the first, as libtorrent takes it (aria2 sends two):
            // the peer is kept, and a flood of them leaves nothing behind.
            let n = c.torrent.num_pieces().div_ceil(8) as usize;
            let bf = enc(&[Message::Bitfield(Bytes::from(vec![0u8; n]))]);
            let mut p = c.joined()?;
            flood(&mut p, 10_000, |_| bf.clone());
            Ok(Held::peer(p))
        },
    },
    Case {
        name: "1,000 valid messages in one write, the last cut short",
        run: |c| {
            let mut p = c.joined()?;
            let mut bytes = Vec::new();
            for i in 0..1000u32 {
                bytes.extend(enc(&[Message::Have(PieceIndex::new(
                    i % c.torrent.num_pieces(),
                ))]));
            }
            bytes.extend(frame(13, &[6, 0, 0]));
            p.send_raw(&bytes).map_err(|e| e.to_string())?;
            Ok(Held::peer(p))
        },
    },
];

// ---- bad lengths and indexes ----

const INDEXES: &[Case] = &[
    Case {
        name: "REQUEST past the end of the torrent",
        run: |c| {
            let last = c.torrent.num_pieces() - 1;
            let size = c.torrent.piece_size(last);
            let m = request(last, size - 100, 16384);
            send_then_closes(c.joined()?, &enc(&[m]), "a request past the end")
        },
    },
    Case {
        name: "REQUEST past the end of a piece",
        run: |c| {
            let m = request(0, c.torrent.piece_len() - 8192, 16384);
            send_then_closes(c.joined()?, &enc(&[m]), "a request past a piece's end")
        },
    },
    Case {
        name: "REQUEST at an offset past the piece",
        run: |c| {
            let m = request(1, c.torrent.piece_len(), 16384);
            send_then_closes(
                c.joined()?,
                &enc(&[m]),
                "a request at an offset past the piece",
            )
        },
    },
    Case {
        name: "REQUEST of piece index num_pieces",
        run: |c| {
            let m = request(c.torrent.num_pieces(), 0, 16384);
            send_then_closes(c.joined()?, &enc(&[m]), "a request of a piece out of range")
        },
    },
    Case {
        name: "REQUEST of piece index 4294967295",
        run: |c| {
            let m = request(u32::MAX, 0, 16384);
            send_then_closes(c.joined()?, &enc(&[m]), "a request of piece 2^32-1")
        },
    },
    Case {
        name: "REQUEST of 0 bytes",
        run: |c| send_then_closes(c.joined()?, &enc(&[request(0, 0, 0)]), "a 0-byte request"),
    },
    Case {
        name: "REQUEST of 32 KiB",
        run: |c| {
            send_then_closes(
                c.joined()?,
                &enc(&[request(0, 0, 32768)]),
                "a 32 KiB request",
            )
        },
    },
    Case {
        name: "REQUEST of 128 KiB + 1",
        run: |c| {
            let m = request(0, 0, (128 << 10) + 1);
            send_then_closes(c.joined()?, &enc(&[m]), "a request over 128 KiB")
        },
    },
    Case {
        name: "REQUEST of 4 GiB",
        run: |c| {
            let m = request(0, 0, u32::MAX);
            send_then_closes(c.joined()?, &enc(&[m]), "a 4 GiB request")
        },
    },
    Case {
        name: "REQUEST whose offset + length overflows",
        run: |c| {
            let m = request(0, u32::MAX - 100, 16384);
            send_then_closes(c.joined()?, &enc(&[m]), "an overflowing request")
        },
    },
    Case {
        name: "CANCEL of piece index num_pieces",
        run: |c| {
            let m = Message::Cancel(BlockRequest::new(
                PieceIndex::new(c.torrent.num_pieces()),
                0,
                16384,
            ));
            send_then_closes(c.joined()?, &enc(&[m]), "a cancel out of range")
        },
    },
    Case {
        name: "BITFIELD one byte short",
        run: |c| {
            let n = c.torrent.num_pieces().div_ceil(8) as usize - 1;
            let m = Message::Bitfield(Bytes::from(vec![0xff; n]));
            send_then_closes(c.joined()?, &enc(&[m]), "a short bitfield")
        },
    },
    Case {
        name: "BITFIELD 64 KiB long",
        run: |c| {
            let m = Message::Bitfield(Bytes::from(vec![0xff; 64 << 10]));
            send_then_closes(c.joined()?, &enc(&[m]), "a long bitfield")
        },
    },
    Case {
        name: "BITFIELD with its spare bits set",
        run: |c| {
            let n = c.torrent.num_pieces();
            let mut bytes = vec![0xffu8; n.div_ceil(8) as usize];
            if n % 8 == 0 {
                return Err("the test torrent has no spare bits".into());
            }
            if let Some(b) = bytes.last_mut() {
                *b = 0xff;
            }
            let m = Message::Bitfield(Bytes::from(bytes));
            send_then_closes(c.joined()?, &enc(&[m]), "a bitfield with spare bits set")
        },
    },
    Case {
        name: "HAVE of piece index num_pieces",
        run: |c| {
            let m = Message::Have(PieceIndex::new(c.torrent.num_pieces()));
            send_then_closes(c.joined()?, &enc(&[m]), "a HAVE past the end")
        },
    },
    Case {
        name: "HAVE of piece index 4294967295",
        run: |c| {
            let m = Message::Have(PieceIndex::new(u32::MAX));
            send_then_closes(c.joined()?, &enc(&[m]), "a HAVE of piece 2^32-1")
        },
    },
    Case {
        name: "unrequested PIECE of piece index num_pieces",
        run: |c| {
            let m = Message::Piece {
                piece: PieceIndex::new(c.torrent.num_pieces()),
                begin: 0,
                data: Bytes::from(junk(6, 16384)),
            };
            send_then_closes(c.joined()?, &enc(&[m]), "a block out of range")
        },
    },
    Case {
        name: "unrequested PIECE past the piece's end",
        run: |c| {
            let m = Message::Piece {
                piece: PieceIndex::new(0),
                begin: c.torrent.piece_len() - 100,
                data: Bytes::from(junk(7, 16384)),
            };
            send_then_closes(c.joined()?, &enc(&[m]), "a block past a piece's end")
        },
    },
    Case {
        name: "SUGGEST and ALLOWED FAST past the end",
        run: |c| {
            let n = PieceIndex::new(c.torrent.num_pieces() + 7);
            let m = [Message::Suggest(n), Message::AllowedFast(n)];
            send_then_closes(c.joined()?, &enc(&m), "a SUGGEST past the end")
        },
    },
    Case {
        name: "unknown message id 99",
        run: |c| {
            let mut body = vec![99u8];
            body.extend(junk(8, 300));
            send_then_closes(c.joined()?, &frame(301, &body), "an unknown message id")
        },
    },
    Case {
        name: "extended message without the extension bit",
        run: |c| {
            let mut p = c.connect()?;
            p.handshake(c.torrent.info_hash(), Reserved::default(), deadline_in(5))
                .map_err(|e| e.to_string())?;
            let m = Message::Extended {
                id: 0,
                payload: Bytes::from_static(b"d1:md6:ut_pexi1eee"),
            };
            send_then_closes(p, &enc(&[m]), "an extended message it did not negotiate")
        },
    },
    Case {
        name: "extended handshake that is not bencode",
        run: |c| {
            let m = Message::Extended {
                id: 0,
                payload: Bytes::from(junk(9, 500)),
            };
            send_then_closes(c.joined()?, &enc(&[m]), "a garbage extended handshake")
        },
    },
    Case {
        name: "extended handshake nested 100,000 lists deep",
        run: |c| {
            let mut payload = vec![b'l'; 100_000];
            payload.extend(vec![b'e'; 100_000]);
            let m = Message::Extended {
                id: 0,
                payload: Bytes::from(payload),
            };
            send_then_closes(
                c.joined()?,
                &enc(&[m]),
                "a deeply nested extended handshake",
            )
        },
    },
    Case {
        name: "extended handshake with metadata_size 4 GiB",
        run: |c| {
            let m = Message::Extended {
                id: 0,
                payload: Bytes::from_static(
                    b"d1:md11:ut_metadatai2ee13:metadata_sizei4294967296ee",
                ),
            };
            send_then_closes(c.joined()?, &enc(&[m]), "a 4 GiB metadata_size")
        },
    },
    Case {
        name: "ut_metadata request of piece 1,000,000",
        run: |c| {
            let p = c.joined_ext()?;
            let id = Ctx::ext_id(&p, "ut_metadata")?;
            let m = Message::Extended {
                id,
                payload: Bytes::from_static(b"d8:msg_typei0e5:piecei1000000ee"),
            };
            send_then_closes(p, &enc(&[m]), "a metadata request past the size limit")
        },
    },
    Case {
        name: "ut_metadata data nobody asked for",
        run: |c| {
            let mut p = c.joined_ext()?;
            let id = Ctx::ext_id(&p, "ut_metadata")?;
            let mut payload = BytesMut::new();
            MetadataMessage::Data {
                piece: 0,
                total_size: 100,
                data: Bytes::from(junk(10, 100)),
            }
            .encode(&mut payload);
            let m = Message::Extended {
                id,
                payload: payload.freeze(),
            };
            p.send_raw(&enc(&[m])).map_err(|e| e.to_string())?;
            Ok(Held::peer(p))
        },
    },
    Case {
        name: "lt_donthave past the end",
        run: |c| {
            let p = c.joined_ext()?;
            let Ok(id) = Ctx::ext_id(&p, "lt_donthave") else {
                return Ok(Held::none());
            };
            let mut payload = BytesMut::new();
            payload.put_u32(c.torrent.num_pieces() + 1);
            let m = Message::Extended {
                id,
                payload: payload.freeze(),
            };
            send_then_closes(p, &enc(&[m]), "lt_donthave past the end")
        },
    },
    Case {
        name: "BEP 52 hash request of garbage on a v1 torrent",
        run: |c| {
            let mut body = vec![21u8];
            body.extend(junk(11, 48));
            let mut p = c.joined()?;
            p.send_raw(&frame(49, &body)).map_err(|e| e.to_string())?;
            Ok(Held::peer(p))
        },
    },
];

// ---- floods ----

const FLOODS: &[Case] = &[
    Case {
        name: "flood: 200,000 HAVE",
        run: |c| {
            // Never the last piece: a peer with every piece is a seed, which a seed drops.
            let n = c.torrent.num_pieces() as usize - 1;
            flood_reading(c.joined()?, 200_000, |i| {
                enc(&[Message::Have(PieceIndex::new(
                    u32::try_from(i % n).unwrap(),
                ))])
            })
        },
    },
    Case {
        name: "flood: 30,000 REQUEST (unchoked, reading)",
        run: |c| {
            let blocks: Vec<BlockRequest> = (0..c.torrent.num_pieces())
                .flat_map(|p| c.torrent.blocks(p))
                .collect();
            flood_reading(c.unchoked()?, 30_000, |i| {
                enc(&[Message::Request(blocks[(i * 7) % blocks.len()])])
            })
        },
    },
    Case {
        name: "flood: 200,000 CANCEL",
        run: |c| {
            let blocks: Vec<BlockRequest> = (0..c.torrent.num_pieces())
                .flat_map(|p| c.torrent.blocks(p))
                .collect();
            flood_reading(c.unchoked()?, 200_000, |i| {
                enc(&[Message::Cancel(blocks[i % blocks.len()])])
            })
        },
    },
    Case {
        name: "flood: 200,000 INTERESTED / NOT INTERESTED toggles",
        run: |c| {
            flood_reading(c.joined()?, 200_000, |i| {
                enc(&[if i % 2 == 0 {
                    Message::Interested
                } else {
                    Message::NotInterested
                }])
            })
        },
    },
    Case {
        name: "flood: 1,000,000 keep-alives",
        run: |c| flood_reading(c.joined()?, 1_000_000, |_| vec![0, 0, 0, 0]),
    },
    Case {
        name: "flood: 20,000 extended handshakes",
        run: |c| {
            let hs = ExtendedHandshake {
                m: [("ut_pex", 1), ("ut_metadata", 2)]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
                p: Some(6881),
                v: Some("flood".into()),
                reqq: Some(100_000),
                ..ExtendedHandshake::default()
            };
            let m = enc(&[Message::Extended {
                id: 0,
                payload: Bytes::from(hs.to_bytes()),
            }]);
            flood_reading(c.joined()?, 20_000, |_| m.clone())
        },
    },
    Case {
        name: "flood: 20,000 ut_metadata requests (reading)",
        run: |c| {
            let p = c.joined_ext()?;
            let id = Ctx::ext_id(&p, "ut_metadata")?;
            let m = enc(&[Message::Extended {
                id,
                payload: Bytes::from_static(b"d8:msg_typei0e5:piecei0ee"),
            }]);
            flood_reading(p, 20_000, |_| m.clone())
        },
    },
    Case {
        name: "flood: 50,000 upload_only toggles",
        run: |c| {
            let p = c.joined_ext()?;
            let Ok(id) = Ctx::ext_id(&p, "upload_only") else {
                return Ok(Held::none());
            };
            flood_reading(p, 50_000, |i| {
                enc(&[Message::Extended {
                    id,
                    payload: Bytes::from(vec![u8::from(i % 2 == 0)]),
                }])
            })
        },
    },
    Case {
        name: "PEX with 5,000 addresses",
        run: |c| {
            let mut p = c.joined_ext()?;
            let id = Ctx::ext_id(&p, "ut_pex")?;
            let m = pex_message(id, 5000, 0);
            let _ = p.send_raw(&m);
            closes(p, "a PEX message of 5,000 peers")
        },
    },
    Case {
        name: "flood: 100 PEX messages of 200 addresses",
        run: |c| {
            let mut p = c.joined_ext()?;
            let id = Ctx::ext_id(&p, "ut_pex")?;
            let _ = flood(&mut p, 100, |i| pex_message(id, 200, i));
            closes(p, "100 PEX messages at once")
        },
    },
    Case {
        name: "flood: 200,000 PORT",
        run: |c| {
            flood_reading(c.joined()?, 200_000, |i| {
                enc(&[Message::Port(u16::try_from(1024 + i % 60_000).unwrap())])
            })
        },
    },
    Case {
        name: "flood: 20,000 unrequested 1-byte blocks",
        run: |c| {
            let n = c.torrent.num_pieces();
            flood_reading(c.joined()?, 20_000, |i| {
                let i = u32::try_from(i).unwrap();
                enc(&[Message::Piece {
                    piece: PieceIndex::new(i % n),
                    begin: i % 1000,
                    data: Bytes::from_static(&[0xAB]),
                }])
            })
        },
    },
    Case {
        name: "flood: 300 connections that handshake and leave",
        run: |c| {
            for _ in 0..300 {
                let mut p = c.connect()?;
                let hs = RawPeer::handshake_bytes(c.torrent.info_hash(), Reserved::default());
                let _ = p.send_raw(&hs);
            }
            Ok(Held::none())
        },
    },
];

/// A ut_pex message with `count` IPv4 addresses (distinct per `salt`) under extension `id`.
fn pex_message(id: u8, count: usize, salt: usize) -> Vec<u8> {
    let added = (0..count)
        .map(|i| {
            let [_, a, b, c] = u32::try_from(salt * 100_000 + i).unwrap().to_be_bytes();
            PexPeer {
                addr: SocketAddr::from(([10, a, b, c], 6881)),
                flags: PexFlags(PexFlags::SEED),
            }
        })
        .collect();
    let pex = PexMessage {
        added,
        dropped: Vec::new(),
    };
    enc(&[Message::Extended {
        id,
        payload: Bytes::from(pex.to_bytes()),
    }])
}

// ---- peers that never read ----

/// Every block of the torrent as requests, `rounds` times over.
fn request_everything(c: &Ctx<'_>, rounds: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rounds {
        for p in 0..c.torrent.num_pieces() {
            out.extend(enc(&c
                .torrent
                .blocks(p)
                .into_iter()
                .map(Message::Request)
                .collect::<Vec<_>>()));
        }
    }
    out
}

const NEVER_READ: &[Case] = &[
    Case {
        name: "never reads: requests every block three times",
        run: |c| {
            let mut p = c.unchoked()?;
            let _ = p.send_raw(&request_everything(c, 3));
            Ok(Held::peer(p))
        },
    },
    Case {
        name: "never reads: 4 peers request every block",
        run: |c| {
            let mut peers = Vec::new();
            for _ in 0..4 {
                let mut p = c.unchoked()?;
                let _ = p.send_raw(&request_everything(c, 1));
                peers.push(p);
            }
            Ok(Held::peers(peers))
        },
    },
    Case {
        name: "never reads: 100,000 one-byte requests",
        run: |c| {
            let mut p = c.unchoked()?;
            let n = c.torrent.num_pieces();
            let piece = c.torrent.piece_len();
            flood(&mut p, 100_000, |i| {
                let i = u32::try_from(i).unwrap();
                enc(&[request(i % n, (i / n) % piece, 1)])
            });
            Ok(Held::peer(p))
        },
    },
    Case {
        name: "never reads: 100,000 requests while choked (fast: rejects)",
        run: |c| {
            let mut p = c.joined()?;
            flood(&mut p, 100_000, |i| {
                let i = u32::try_from(i).unwrap();
                enc(&[request(i % c.torrent.num_pieces(), 0, 16384)])
            });
            Ok(Held::peer(p))
        },
    },
    Case {
        name: "never reads: 2,000,000 INTERESTED / NOT INTERESTED toggles",
        run: |c| {
            let mut p = c.joined()?;
            let pair = enc(&[Message::Interested, Message::NotInterested]);
            flood(&mut p, 1_000_000, |_| pair.clone());
            Ok(Held::peer(p))
        },
    },
    Case {
        name: "never reads: 200,000 ut_metadata requests",
        run: |c| {
            let mut p = c.joined_ext()?;
            let id = Ctx::ext_id(&p, "ut_metadata")?;
            let m = enc(&[Message::Extended {
                id,
                payload: Bytes::from_static(b"d8:msg_typei0e5:piecei0ee"),
            }]);
            flood(&mut p, 200_000, |_| m.clone());
            Ok(Held::peer(p))
        },
    },
];

// ---- slowloris handshakes and MSE garbage ----

/// Starts a thread that sends `bytes` one byte a second until `stop`.
fn trickle(mut p: RawPeer, bytes: Vec<u8>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for b in bytes {
            if p.send_raw(&[b]).is_err() {
                return;
            }
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    })
}

/// `count` connections that each send `prefix` and then nothing.
fn half_open(c: &Ctx<'_>, count: usize, prefix: &[u8]) -> Result<Held, String> {
    let mut peers = Vec::new();
    for _ in 0..count {
        let mut p = c.connect()?;
        p.send_raw(prefix).map_err(|e| e.to_string())?;
        peers.push(p);
    }
    // Let lt take them all in before the honest client arrives.
    std::thread::sleep(Duration::from_millis(300));
    Ok(Held::peers(peers))
}

const SLOWLORIS: &[Case] = &[
    Case {
        name: "slowloris: 20 handshakes at one byte a second (2 s in)",
        run: |c| {
            let mut held = Held::none();
            for _ in 0..20 {
                let p = c.connect()?;
                let hs = RawPeer::handshake_bytes(c.torrent.info_hash(), Reserved::default());
                let stop = Arc::clone(&held.stop);
                held.threads.push(trickle(p, hs.to_vec(), stop));
            }
            std::thread::sleep(Duration::from_secs(2));
            Ok(held)
        },
    },
    Case {
        name: "slowloris: 150 handshakes stopped after 10 bytes",
        run: |c| {
            let hs = RawPeer::handshake_bytes(c.torrent.info_hash(), Reserved::default());
            half_open(c, 150, &hs[..10])
        },
    },
    Case {
        name: "slowloris: 250 handshakes stopped after 40 bytes",
        run: |c| {
            let hs = RawPeer::handshake_bytes(c.torrent.info_hash(), Reserved::default());
            half_open(c, 250, &hs[..40])
        },
    },
    Case {
        name: "slowloris: 250 handshakes stopped after 60 bytes",
        run: |c| {
            let hs = RawPeer::handshake_bytes(c.torrent.info_hash(), Reserved::default());
            half_open(c, 250, &hs[..60])
        },
    },
    Case {
        name: "slowloris: 250 handshakes stopped 40 bytes after MSE (RC4)",
        run: |c| {
            let mut peers = Vec::new();
            for i in 0..250 {
                let mut p = c.connect()?;
                let cipher = p
                    .mse_initiate(c.torrent.info_hash(), true, 1000 + i, deadline_in(5))
                    .map_err(|e| format!("MSE handshake {i}: {e}"))?;
                let mut hs = RawPeer::handshake_bytes(c.torrent.info_hash(), Reserved::default());
                if let Some(mut cipher) = cipher {
                    cipher.encrypt(&mut hs);
                }
                p.send_raw(&hs[..40]).map_err(|e| e.to_string())?;
                peers.push(p);
            }
            std::thread::sleep(Duration::from_millis(300));
            Ok(Held::peers(peers))
        },
    },
];

const MSE_GARBAGE: &[Case] = &[
    Case {
        name: "MSE: 2,000 random bytes",
        run: |c| {
            let mut p = c.connect()?;
            let _ = p.send_raw(&junk(21, 2000));
            closes(p, "2,000 random bytes instead of an MSE handshake")
        },
    },
    Case {
        name: "MSE: 96 random bytes, then silence",
        run: |c| {
            let mut p = c.connect()?;
            p.send_raw(&junk(22, 96)).map_err(|e| e.to_string())?;
            Ok(Held::peer(p))
        },
    },
    Case {
        name: "MSE: 50 connections of 96 random bytes, then silence",
        run: |c| {
            let mut peers = Vec::new();
            for i in 0..50 {
                let mut p = c.connect()?;
                p.send_raw(&junk(100 + i, 96)).map_err(|e| e.to_string())?;
                peers.push(p);
            }
            Ok(Held::peers(peers))
        },
    },
    Case {
        name: "MSE: random bytes 100 at a time for 2 s",
        run: |c| {
            let mut p = c.connect()?;
            let until = Instant::now() + Duration::from_secs(2);
            let mut i = 0;
            while Instant::now() < until {
                i += 1;
                if p.send_raw(&junk(300 + i, 100)).is_err() {
                    return Ok(Held::none());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            closes(p, "2 s of random bytes")
        },
    },
    Case {
        name: "MSE: a 1 MiB burst of random bytes",
        run: |c| {
            let mut p = c.connect()?;
            let _ = p.send_raw(&junk(23, 1 << 20));
            closes(p, "1 MiB of random bytes")
        },
    },
];

// ---- the tests against `lt seed` ----

#[test]
fn seed_survives_bad_framing() {
    let dir = scratch();
    Bench::seed(dir.path()).run_all(FRAMING);
}

#[test]
fn seed_survives_bad_lengths_and_indexes() {
    let dir = scratch();
    Bench::seed(dir.path()).run_all(INDEXES);
}

#[test]
fn seed_survives_floods() {
    let dir = scratch();
    Bench::seed(dir.path()).run_all(FLOODS);
}

#[test]
fn seed_survives_peers_that_never_read() {
    let dir = scratch();
    Bench::seed(dir.path()).run_all(NEVER_READ);
}

#[test]
fn seed_survives_slowloris_handshakes() {
    let dir = scratch();
    Bench::seed(dir.path()).run_all(SLOWLORIS);
}

#[test]
fn seed_survives_mse_garbage() {
    let dir = scratch();
    Bench::seed(dir.path()).run_all(MSE_GARBAGE);
}

// ---- the tests against `lt download` ----

/// A leecher downloading `payload` from an honest `lt seed` limited to `rate` bytes/s (so
/// it is still downloading while attacked), listening for hostile peers; `--seed` keeps it
/// serving after it finishes.
fn start_leecher(dir: &Path, payload: &Payload, rate: u64) -> (Peer, Peer, SocketAddr, PathBuf) {
    let (seed, seed_addr) = start_lt_seed(
        &payload.torrent,
        &payload.data_dir,
        &[
            "--upload-limit".into(),
            rate.to_string(),
            "--limit-local".into(),
        ],
    );
    let out = dir.join("leech");
    let args = vec![
        "download".to_owned(),
        s(&payload.torrent),
        "-o".to_owned(),
        s(&out),
        "--json".to_owned(),
        "--seed".to_owned(),
        "--peer".to_owned(),
        seed_addr.to_string(),
    ];
    let (mut leech, addr) = start_lt("lt download", args);
    // Past its check and downloading: before that it refuses peers of the torrent.
    leech
        .wait_line(Stream::Stderr, deadline_in(30), |l| {
            l.starts_with("progress ")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    (leech, seed, addr, out)
}

/// Framing, index and flood cases against a leecher while it downloads; it must finish
/// with every byte right and stay within the RSS bound.
#[test]
fn leecher_survives_hostile_incoming_peers() {
    let dir = scratch();
    let payload = Payload::create(dir.path(), "leech.bin", SIZE, PIECE, &[]);
    // 6 MiB at 1.5 MB/s: about four seconds of download under attack.
    let (leech, _seed, addr, out) = start_leecher(dir.path(), &payload, 1_500_000);
    let mut bench = Bench {
        lt: leech,
        addr,
        torrent: Torrent::new(payload.info.clone()),
        seed_data: None,
        cases_run: 0,
    };
    for name in [
        "length prefix 4 GiB",
        "length prefix 1 MiB + 1 (a PIECE)",
        "message cut short, held open",
        "handshake cut short (50 bytes), held open",
        "10,000 BITFIELDs",
        "REQUEST past the end of the torrent",
        "REQUEST of piece index num_pieces",
        "REQUEST of 0 bytes",
        "REQUEST of 128 KiB + 1",
        "BITFIELD one byte short",
        "HAVE of piece index num_pieces",
        "unrequested PIECE of piece index num_pieces",
        "extended handshake nested 100,000 lists deep",
        "flood: 200,000 HAVE",
        "flood: 200,000 INTERESTED / NOT INTERESTED toggles",
        "flood: 1,000,000 keep-alives",
        "PEX with 5,000 addresses",
        "never reads: 100,000 one-byte requests",
        "MSE: 2,000 random bytes",
    ] {
        let case = [FRAMING, INDEXES, FLOODS, NEVER_READ, MSE_GARBAGE]
            .into_iter()
            .flatten()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case {name:?}"));
        bench.run(case);
    }
    let summary = wait_summary(&mut bench.lt, deadline_in(30)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.pieces_verified, summary.pieces, "{summary:?}");
    payload.verify_download(&out).unwrap();
    stop_seeding(&mut bench.lt);
}

/// A seed that answers every request with garbage: lt bans it (smart ban) and finishes
/// from an honest seed that comes up once the liar is gone.
#[test]
fn leecher_bans_a_seed_with_wrong_data() {
    let dir = scratch();
    let payload = Payload::create(dir.path(), "wrong.bin", SIZE, PIECE, &[]);
    let torrent = Torrent::new(payload.info.clone());
    let liar = LyingSeed::start(&torrent, Lie::WrongData).unwrap();
    let honest_port = free_port();
    let out = dir.path().join("leech");
    let (mut leech, _) = start_lt(
        "lt download",
        [
            "download".to_owned(),
            s(&payload.torrent),
            "-o".to_owned(),
            s(&out),
            "--json".to_owned(),
            "--peer".to_owned(),
            liar.addr.to_string(),
            "--peer".to_owned(),
            format!("127.0.0.1:{honest_port}"),
            // A refused TCP dial is not followed by a uTP one that waits for its timeout.
            "--tcp-only".to_owned(),
            "--seed".to_owned(),
        ],
    );
    let rss_before = rss_kib(leech.pid()).unwrap();
    // The liar alone until lt hangs up on it: it supplied every block of the first pieces,
    // so their hash failures name it.
    wait_for(&leech, "lt to drop the liar", 10, || {
        LiarStats::get(&liar.stats.closed_by_remote) >= 1
    });
    let (_honest, _) = start_lt_seed(
        &payload.torrent,
        &payload.data_dir,
        &["--listen".into(), honest_port.to_string()],
    );
    let summary = wait_summary(&mut leech, deadline_in(30)).unwrap_or_else(|e| panic!("{e}"));
    payload.verify_download(&out).unwrap();
    assert!(
        summary.peers_banned >= 1,
        "{}",
        leech.failure(&format!(
            "a seed that sent {} bad blocks was not banned: {summary:?}",
            LiarStats::get(&liar.stats.bad_blocks)
        ))
    );
    let rss_after = rss_kib(leech.pid()).unwrap_or(0);
    eprintln!(
        "wrong data: {} bad blocks sent, {} banned, {:.2} s, VmRSS {rss_before} -> {rss_after} KiB",
        LiarStats::get(&liar.stats.bad_blocks),
        summary.peers_banned,
        summary.seconds
    );
    assert!(rss_after.saturating_sub(rss_before) < RSS_BOUND_KIB);
    stop_seeding(&mut leech);
}

/// A magnet leecher dials `lie`'s liar first and an honest `lt seed` that comes up only
/// once the liar has had its say; the leecher must get the metadata and every byte, and
/// drop the liar (and ban it when `banned`).
fn magnet_against(lie: Lie, banned: bool, finish_secs: u64) {
    let dir = scratch();
    let payload = Payload::create(dir.path(), "magnet.bin", SIZE, PIECE, &[]);
    let torrent = Torrent::new(payload.info.clone());
    let liar = LyingSeed::start(&torrent, lie).unwrap();
    let honest_port = free_port();
    let out = dir.path().join("leech");
    let mut magnet = payload.info.magnet_link();
    magnet.trackers.clear();
    let (mut leech, _) = start_lt(
        "lt download (magnet)",
        [
            "download".to_owned(),
            magnet.to_uri(),
            "-o".to_owned(),
            s(&out),
            "--json".to_owned(),
            "--no-dht".to_owned(),
            "--tcp-only".to_owned(),
            "--seed".to_owned(),
            "--peer".to_owned(),
            liar.addr.to_string(),
            "--peer".to_owned(),
            format!("127.0.0.1:{honest_port}"),
        ],
    );
    let rss_before = rss_kib(leech.pid()).unwrap();
    let stats = &liar.stats;
    wait_for(
        &leech,
        "the liar to be connected and asked",
        10,
        || match lie {
            Lie::Metadata { announced, .. }
                if u64::from(announced) > lt_wire::limits::DEFAULT_MAX_METADATA_SIZE =>
            {
                LiarStats::get(&stats.closed_by_remote) >= 1
            }
            Lie::Metadata { .. } => LiarStats::get(&stats.metadata_pieces) >= 1,
            _ => LiarStats::get(&stats.metadata_requests) >= 1,
        },
    );
    let (_honest, _) = start_lt_seed(
        &payload.torrent,
        &payload.data_dir,
        &["--listen".into(), honest_port.to_string()],
    );
    let summary = wait_summary(&mut leech, deadline_in(finish_secs)).unwrap_or_else(|e| {
        panic!(
            "{lie:?}: the leecher did not finish {finish_secs} s after the honest seed came up: {e}"
        )
    });
    payload.verify_download(&out).unwrap();
    let (conns, asked, sent, closed) = (
        LiarStats::get(&stats.connections),
        LiarStats::get(&stats.metadata_requests),
        LiarStats::get(&stats.metadata_pieces),
        LiarStats::get(&stats.closed_by_remote),
    );
    let rss_after = rss_kib(leech.pid()).unwrap_or(0);
    eprintln!(
        "{lie:?}: {conns} connections, asked {asked} times, {sent} garbage pieces sent, closed \
         {closed} times; {} banned; done in {:.2} s; VmRSS {rss_before} -> {rss_after} KiB",
        summary.peers_banned, summary.seconds
    );
    if banned {
        assert!(
            summary.peers_banned >= 1 && closed >= 1,
            "{}",
            leech.failure(&format!("the liar {lie:?} was not banned: {summary:?}"))
        );
    }
    assert!(rss_after.saturating_sub(rss_before) < RSS_BOUND_KIB);
    stop_seeding(&mut leech);
}

/// Metadata of 1,000 bytes more than the real size, garbage: the liar is banned.
#[test]
fn magnet_leecher_bans_a_wrong_metadata_size() {
    let real = real_metadata_size();
    magnet_against(
        Lie::Metadata {
            announced: real + 1000,
            total_size: real + 1000,
        },
        true,
        FINISH_SECS,
    );
}

/// Metadata of the right size that fails the info-hash: the liar is banned.
#[test]
fn magnet_leecher_bans_metadata_that_fails_the_hash() {
    let real = real_metadata_size();
    magnet_against(
        Lie::Metadata {
            announced: real,
            total_size: real,
        },
        true,
        FINISH_SECS,
    );
}

/// A `metadata_size` over the 30 MiB limit: the liar is dropped at its handshake.
#[test]
fn magnet_leecher_drops_an_oversized_metadata_size() {
    magnet_against(
        Lie::Metadata {
            announced: 31 << 20,
            total_size: 31 << 20,
        },
        false,
        FINISH_SECS,
    );
}

/// The right `metadata_size` announced, but data pieces claiming another `total_size`:
/// lt-wire closes the liar at its first such piece, and the fetch must go on with the honest
/// seed at once. Fails until the engine releases the metadata requests of a connection
/// that closes (today they wait out their 10 s timeout, see the suite's report).
#[test]
fn magnet_leecher_survives_a_total_size_lie() {
    let real = real_metadata_size();
    magnet_against(
        Lie::Metadata {
            announced: real,
            total_size: real + 20_000,
        },
        false,
        FINISH_SECS,
    );
}

/// A peer that announces the metadata and never answers a request for it: the fetch may
/// wait out one metadata request timeout (10 s), then must ask the honest seed. Fails until
/// the engine asks another peer after a timeout (today it asks the silent one again, for
/// ever, see the suite's report).
#[test]
fn magnet_leecher_survives_a_silent_metadata_peer() {
    magnet_against(
        Lie::SilentMetadata {
            announced: real_metadata_size(),
        },
        false,
        FINISH_SECS + 10,
    );
}

/// How long a magnet leecher may take, once the honest seed is up, to finish.
const FINISH_SECS: u64 = 8;

/// The size of the test torrents' info dictionary.
fn real_metadata_size() -> u32 {
    let dir = tempfile::tempdir().unwrap();
    let payload = Payload::create(dir.path(), "magnet.bin", SIZE, PIECE, &[]);
    u32::try_from(payload.info.info_bytes().len()).unwrap()
}

/// Polls `cond` every 20 ms until it holds; panics after `secs` or when `lt` dies.
fn wait_for(lt: &Peer, what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = deadline_in(secs);
    while !cond() {
        assert!(
            is_alive(lt.pid()),
            "{}",
            lt.failure(&format!("died waiting for {what}"))
        );
        assert!(
            Instant::now() < deadline,
            "{}",
            lt.failure(&format!("timed out waiting for {what}"))
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops an `lt download --seed` with SIGTERM; it must exit 0.
fn stop_seeding(lt: &mut Peer) {
    lt.signal("TERM").unwrap();
    let status = lt
        .wait_exit(deadline_in(15))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        status.success(),
        "{}",
        lt.failure(&format!("exit status {status}"))
    );
}
