//! Many lightweight leechers in one process, for `cargo xtask bench scale --case peers`
//! (issue 19): the load on one seeder from N TCP connections on loopback.
//!
//! ```text
//! lt-leech-swarm TORRENT IP:PORT CONNECTIONS SECONDS IN_FLIGHT VERIFY_EVERY
//! ```
//!
//! Each connection speaks plain BitTorrent with lt-wire's codecs: a handshake with the fast
//! (BEP 6) and extension (BEP 10) bits set as libtorrent sets them, HAVE NONE, a minimal
//! extended handshake, INTERESTED; once unchoked it keeps IN_FLIGHT block requests (16 KiB)
//! in flight, walking the pieces in order from a start that differs per connection and
//! wrapping around at the end, so it never runs out of work. Nothing is stored: each block's
//! length is checked against the request (a wrong one fails the run) and its bytes are
//! counted; every VERIFY_EVERY-th piece (0: none) whose blocks all arrive in order is also
//! SHA-1-checked against the torrent.
//!
//! At most 32 connections are in their handshake at once (peers arrive over a moment, not
//! in one SYN flood). A connection the seeder closes is dialled again after 0.5 s. The run
//! ends SECONDS after the start, connections included; everything is bounded by that
//! deadline. Lines on stdout, one JSON object each:
//!
//! ```text
//! {"event":"connected","connections":N,"secs":S}     once all N have handshaken
//! {"event":"progress","secs":S,"payload":B,"connected":N,"unchoked":N}   each second
//! {"event":"done","payload":B,"blocks":N,"secs":S,...}   at the end
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "a benchmark program: a failure aborts it"
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use lt_core::{PeerId, PieceIndex, Sha1Hasher};
use lt_metainfo::TorrentInfo;
use lt_wire::{BlockRequest, HANDSHAKE_LEN, Handshake, Message, MessageDecoder, Reserved};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

const BLOCK: u32 = 16 * 1024;
/// Connections in their TCP connect and handshake at once.
const HANDSHAKES_AT_ONCE: usize = 32;

/// Counters shared by every connection.
#[derive(Default)]
struct Stats {
    payload: AtomicU64,
    blocks: AtomicU64,
    /// Connections past the handshake now.
    connected: AtomicU64,
    /// Connections unchoked now.
    unchoked: AtomicU64,
    /// Connections that were unchoked at least once.
    ever_unchoked: AtomicU64,
    /// Dials (first ones and re-dials).
    dials: AtomicU64,
    /// Connections the seeder closed or failed (before the deadline).
    closed: AtomicU64,
    /// Blocks of a length other than requested.
    bad_length: AtomicU64,
    /// Blocks nobody asked for (late after a choke, say).
    unrequested: AtomicU64,
    rejects: AtomicU64,
    chokes: AtomicU64,
    pieces_verified: AtomicU64,
    pieces_bad: AtomicU64,
}

/// What every connection needs to know of the torrent.
struct Torrent {
    info: TorrentInfo,
    addr: SocketAddr,
    in_flight: usize,
    verify_every: u32,
}

impl Torrent {
    fn piece_len(&self, piece: u32) -> u32 {
        let pl = u64::from(self.info.piece_length());
        let start = u64::from(piece) * pl;
        (self.info.total_size() - start).min(pl) as u32
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [torrent, addr, n, seconds, in_flight, verify_every] = args.as_slice() else {
        eprintln!(
            "usage: lt-leech-swarm TORRENT IP:PORT CONNECTIONS SECONDS IN_FLIGHT VERIFY_EVERY"
        );
        std::process::exit(2);
    };
    let info = TorrentInfo::from_bytes(&std::fs::read(torrent).unwrap()).unwrap();
    let t = Arc::new(Torrent {
        info,
        addr: addr.parse().unwrap(),
        in_flight: in_flight.parse::<usize>().unwrap().max(1),
        verify_every: verify_every.parse().unwrap(),
    });
    let n: usize = n.parse().unwrap();
    let seconds: u64 = seconds.parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(t, n, Duration::from_secs(seconds)));
}

async fn run(t: Arc<Torrent>, n: usize, length: Duration) {
    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let deadline = started + length;
    let gate = Arc::new(Semaphore::new(HANDSHAKES_AT_ONCE));
    let num_pieces = t.info.num_pieces();
    for i in 0..n {
        let (t, stats, gate) = (Arc::clone(&t), Arc::clone(&stats), Arc::clone(&gate));
        // Spread the connections' starting pieces over the torrent.
        let first = ((i as u64 * u64::from(num_pieces)) / n.max(1) as u64) as u32;
        tokio::spawn(async move {
            let _ =
                tokio::time::timeout_at(deadline, connection(i, first, &t, &stats, &gate)).await;
        });
    }
    let mut all_connected = false;
    let mut next = started + Duration::from_secs(1);
    while Instant::now() < deadline {
        tokio::time::sleep_until(next.min(deadline)).await;
        let secs = started.elapsed().as_secs_f64();
        let connected = stats.connected.load(Ordering::Relaxed);
        if !all_connected && connected >= n as u64 {
            all_connected = true;
            println!(
                "{}",
                serde_json::json!({"event": "connected", "connections": n, "secs": secs})
            );
        }
        if Instant::now() >= next {
            next += Duration::from_secs(1);
            println!(
                "{}",
                serde_json::json!({
                    "event": "progress", "secs": secs,
                    "payload": stats.payload.load(Ordering::Relaxed),
                    "connected": connected,
                    "unchoked": stats.unchoked.load(Ordering::Relaxed),
                })
            );
        }
    }
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "event": "done",
            "secs": started.elapsed().as_secs_f64(),
            "payload": get(&stats.payload),
            "blocks": get(&stats.blocks),
            "connected": get(&stats.connected),
            "ever_unchoked": get(&stats.ever_unchoked),
            "dials": get(&stats.dials),
            "closed": get(&stats.closed),
            "bad_length": get(&stats.bad_length),
            "unrequested": get(&stats.unrequested),
            "rejects": get(&stats.rejects),
            "chokes": get(&stats.chokes),
            "pieces_verified": get(&stats.pieces_verified),
            "pieces_bad": get(&stats.pieces_bad),
        })
    );
}

/// One leecher: dials, and dials again 0.5 s after the seeder closes it; ends with the
/// run's deadline (the caller's timeout drops it).
async fn connection(i: usize, first: u32, t: &Torrent, stats: &Stats, gate: &Semaphore) {
    let mut cursor = (first, 0u32);
    loop {
        stats.dials.fetch_add(1, Ordering::Relaxed);
        let mut conn = Conn {
            t,
            stats,
            cursor,
            outstanding: VecDeque::new(),
            choked: true,
            counted_unchoked: false,
            ever_unchoked: false,
            verify: None,
        };
        let r = conn.run(i, gate).await;
        cursor = conn.cursor;
        if conn.counted_unchoked {
            stats.unchoked.fetch_sub(1, Ordering::Relaxed);
        }
        if let Err(e) = r {
            stats.closed.fetch_add(1, Ordering::Relaxed);
            if stats.closed.load(Ordering::Relaxed) <= 5 {
                eprintln!("connection {i}: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

struct Conn<'a> {
    t: &'a Torrent,
    stats: &'a Stats,
    /// The next block to request: (piece, offset).
    cursor: (u32, u32),
    /// Requests sent and not answered, oldest first.
    outstanding: VecDeque<BlockRequest>,
    choked: bool,
    counted_unchoked: bool,
    ever_unchoked: bool,
    /// A sampled piece being hashed: (piece, next offset, hasher).
    verify: Option<(u32, u32, Sha1Hasher)>,
}

impl Conn<'_> {
    async fn run(&mut self, i: usize, gate: &Semaphore) -> Result<(), String> {
        let permit = gate.acquire().await.map_err(|e| e.to_string())?;
        let mut s = TcpStream::connect(self.t.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let reserved = Reserved::default().with_fast(true).with_extensions(true);
        let mut id = *b"-LS0001-000000000000";
        id[8..].copy_from_slice(format!("{:012}", i).as_bytes());
        let ours = Handshake::for_torrent(&self.t.info.info_hash(), reserved, PeerId::new(id));
        s.write_all(&ours.to_bytes())
            .await
            .map_err(|e| format!("write handshake: {e}"))?;
        let mut head = [0u8; HANDSHAKE_LEN];
        s.read_exact(&mut head)
            .await
            .map_err(|e| format!("read handshake: {e}"))?;
        let theirs = Handshake::decode(&head).map_err(|e| e.to_string())?;
        if theirs.info_hash != ours.info_hash {
            return Err("wrong info-hash".into());
        }
        drop(permit);
        self.stats.connected.fetch_add(1, Ordering::Relaxed);
        let r = self.serve(&mut s, theirs.reserved.fast()).await;
        self.stats.connected.fetch_sub(1, Ordering::Relaxed);
        r
    }

    async fn serve(&mut self, s: &mut TcpStream, fast: bool) -> Result<(), String> {
        let mut out = BytesMut::new();
        if fast {
            Message::HaveNone.encode(&mut out);
        }
        Message::Extended {
            id: 0,
            payload: Bytes::from_static(b"d1:mdee"),
        }
        .encode(&mut out);
        Message::Interested.encode(&mut out);
        s.write_all(&out).await.map_err(|e| format!("write: {e}"))?;
        let mut decoder = MessageDecoder::new(1 << 20);
        let mut buf = BytesMut::with_capacity(64 << 10);
        loop {
            buf.reserve(32 << 10);
            let n = s
                .read_buf(&mut buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("closed by the seeder".into());
            }
            while let Some(msg) = decoder.decode(&mut buf).map_err(|e| e.to_string())? {
                self.handle(msg)?;
            }
            out.clear();
            self.fill(&mut out);
            if !out.is_empty() {
                s.write_all(&out).await.map_err(|e| format!("write: {e}"))?;
            }
        }
    }

    fn handle(&mut self, msg: Message) -> Result<(), String> {
        match msg {
            Message::Unchoke => {
                self.choked = false;
                if !self.counted_unchoked {
                    self.counted_unchoked = true;
                    self.stats.unchoked.fetch_add(1, Ordering::Relaxed);
                }
                if !self.ever_unchoked {
                    self.ever_unchoked = true;
                    self.stats.ever_unchoked.fetch_add(1, Ordering::Relaxed);
                }
            }
            Message::Choke => {
                self.choked = true;
                self.stats.chokes.fetch_add(1, Ordering::Relaxed);
                if self.counted_unchoked {
                    self.counted_unchoked = false;
                    self.stats.unchoked.fetch_sub(1, Ordering::Relaxed);
                }
                // Without the fast extension the requests are gone; with it the seeder
                // rejects each, and a late block is counted as unrequested.
                self.outstanding.clear();
            }
            Message::Reject(req) => {
                self.stats.rejects.fetch_add(1, Ordering::Relaxed);
                self.outstanding.retain(|r| *r != req);
            }
            Message::Piece { piece, begin, data } => {
                let Some(pos) = self
                    .outstanding
                    .iter()
                    .position(|r| r.piece == piece && r.begin == begin)
                else {
                    self.stats.unrequested.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                };
                let req = self.outstanding.remove(pos).unwrap_or(BlockRequest {
                    piece,
                    begin,
                    len: 0,
                });
                if data.len() != req.len as usize {
                    self.stats.bad_length.fetch_add(1, Ordering::Relaxed);
                    return Err(format!(
                        "block {}/{} of {} bytes, {} requested",
                        piece.get(),
                        begin,
                        data.len(),
                        req.len
                    ));
                }
                self.stats
                    .payload
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                self.stats.blocks.fetch_add(1, Ordering::Relaxed);
                self.verify_block(piece.get(), begin, &data);
            }
            _ => {}
        }
        Ok(())
    }

    /// Feeds a sampled piece's blocks, in order, to its hasher; checks it when complete.
    fn verify_block(&mut self, piece: u32, begin: u32, data: &[u8]) {
        let every = self.t.verify_every;
        if every == 0 || !piece.is_multiple_of(every) {
            return;
        }
        if begin == 0 {
            self.verify = Some((piece, 0, Sha1Hasher::new()));
        }
        let Some((p, next, hasher)) = self.verify.as_mut() else {
            return;
        };
        if *p != piece || *next != begin {
            self.verify = None;
            return;
        }
        hasher.update(data);
        *next += data.len() as u32;
        if *next == self.t.piece_len(piece)
            && let Some((p, _, hasher)) = self.verify.take()
        {
            let good = self.t.info.piece_hash(PieceIndex::new(p)) == Some(hasher.finalize());
            let c = if good {
                &self.stats.pieces_verified
            } else {
                &self.stats.pieces_bad
            };
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Tops the pipeline up to `in_flight` requests while unchoked.
    fn fill(&mut self, out: &mut BytesMut) {
        if self.choked {
            return;
        }
        while self.outstanding.len() < self.t.in_flight {
            let (piece, begin) = self.cursor;
            let plen = self.t.piece_len(piece);
            let len = (plen - begin).min(BLOCK);
            let req = BlockRequest::new(PieceIndex::new(piece), begin, len);
            Message::Request(req).encode(out);
            self.outstanding.push_back(req);
            self.cursor = if begin + len >= plen {
                ((piece + 1) % self.t.info.num_pieces(), 0)
            } else {
                (piece, begin + len)
            };
        }
    }
}
