//! A hostile BitTorrent peer for tests of `lt seed` and `lt download`, written with lt-wire's
//! codecs (and by hand where a message must be invalid):
//!
//! - [`RawPeer`]: one TCP connection that sends whatever the test says (valid messages,
//!   broken framing, floods, an MSE handshake) and reads only when asked, so it can also
//!   never read;
//! - [`fetch_verified`]: an honest client that asks a peer for a few pieces and checks each
//!   against the torrent's SHA-1, to show that a target still serves well-behaved peers;
//! - [`LyingSeed`]: a listening seed that lies to a leecher (blocks that fail the hash,
//!   metadata of the wrong size or content, metadata announced and never sent);
//! - probes of the process under attack: [`rss_kib`], [`is_alive`], [`sha1_file`].
//!
//! Everything is plain threads and std sockets on 127.0.0.1, and every wait has a deadline.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lt_core::{Bitfield, PeerId, PieceIndex, Sha1Hash, Sha1Hasher};
use lt_metainfo::TorrentInfo;
use lt_wire::mse::{EncLevel, EncPolicy, MseConfig, MseHandshake, MseStatus, Rc4Stream};
use lt_wire::{
    BlockRequest, ExtendedHandshake, HANDSHAKE_LEN, Handshake, Limits, Message, MessageDecoder,
    MetadataMessage, Reserved, metadata_piece_len,
};

/// Largest message our own decoder accepts from the target (its blocks are 16 KiB).
const OUR_MAX_MESSAGE: u32 = 2 << 20;
/// The ut_metadata id a [`LyingSeed`] advertises.
const LIAR_METADATA_ID: u8 = 3;

/// The resident set size of process `pid` in KiB (`VmRSS` in `/proc/<pid>/status`).
#[must_use]
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Whether process `pid` exists and has not exited (a zombie counts as exited).
#[must_use]
pub fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // "pid (comm) S ...": the name may hold spaces and parentheses.
            let (_, rest) = s.rsplit_once(')')?;
            rest.trim_start().chars().next()
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// The SHA-1 of a whole file.
///
/// # Errors
/// When it cannot be read.
pub fn sha1_file(path: &Path) -> std::io::Result<Sha1Hash> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha1Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(h.finalize()),
            n => h.update(&buf[..n]),
        }
    }
}

/// Pseudo-random bytes (xorshift64 from `seed`), for garbage that must not be compressible
/// or accidentally valid.
#[must_use]
pub fn junk(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// The torrent a hostile peer talks about.
#[derive(Debug, Clone)]
pub struct Torrent {
    /// The parsed torrent.
    pub info: Arc<TorrentInfo>,
}

impl Torrent {
    /// Wraps a parsed torrent.
    #[must_use]
    pub fn new(info: TorrentInfo) -> Self {
        Self {
            info: Arc::new(info),
        }
    }

    /// The v1 info-hash (the tests make v1 torrents).
    #[must_use]
    pub fn info_hash(&self) -> Sha1Hash {
        self.info.info_hash().v1_hash().unwrap_or(Sha1Hash::ZERO)
    }

    /// Number of pieces.
    #[must_use]
    pub fn num_pieces(&self) -> u32 {
        self.info.num_pieces()
    }

    /// Nominal piece length.
    #[must_use]
    pub fn piece_len(&self) -> u32 {
        self.info.piece_length()
    }

    /// The size of piece `i` (the last one may be short); 0 past the end.
    #[must_use]
    pub fn piece_size(&self, i: u32) -> u32 {
        let start = u64::from(i) * u64::from(self.piece_len());
        let left = self.info.total_size().saturating_sub(start);
        u32::try_from(left.min(u64::from(self.piece_len()))).unwrap_or(0)
    }

    /// The 16 KiB block requests of piece `i`.
    #[must_use]
    pub fn blocks(&self, i: u32) -> Vec<BlockRequest> {
        let size = self.piece_size(i);
        (0..size)
            .step_by(lt_core::BLOCK_SIZE as usize)
            .map(|begin| {
                BlockRequest::new(
                    PieceIndex::new(i),
                    begin,
                    (size - begin).min(lt_core::BLOCK_SIZE),
                )
            })
            .collect()
    }
}

/// One TCP connection to the target that does only what it is told.
#[derive(Debug)]
pub struct RawPeer {
    stream: TcpStream,
    rx: BytesMut,
    decoder: MessageDecoder,
    /// The target's handshake, once read.
    pub remote: Option<Handshake>,
    /// The target's extended handshake, once read.
    pub remote_ext: Option<ExtendedHandshake>,
}

impl RawPeer {
    /// Connects to `addr` (3 s timeout). Writes time out after 5 s, so a target that stops
    /// reading cannot hang the test.
    ///
    /// # Errors
    /// When the connection fails.
    pub fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(Self {
            stream,
            rx: BytesMut::new(),
            decoder: MessageDecoder::new(OUR_MAX_MESSAGE),
            remote: None,
            remote_ext: None,
        })
    }

    /// Another handle to the socket (for a reader thread, or to set options).
    ///
    /// # Errors
    /// As [`TcpStream::try_clone`].
    pub fn stream(&self) -> std::io::Result<TcpStream> {
        self.stream.try_clone()
    }

    /// Sends raw bytes.
    ///
    /// # Errors
    /// When the write fails or times out.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends one message, encoded by lt-wire.
    ///
    /// # Errors
    /// When the write fails or times out.
    pub fn send(&mut self, msg: &Message) -> std::io::Result<()> {
        self.stream.write_all(&msg.to_bytes())
    }

    /// A handshake for `info_hash` with `reserved` and a peer id of its own (lt keeps one
    /// connection per peer id, so connections that are held open must not share one).
    #[must_use]
    pub fn handshake_bytes(info_hash: Sha1Hash, reserved: Reserved) -> [u8; HANDSHAKE_LEN] {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut id = *b"-HP0001-000000000000";
        id[8..].copy_from_slice(format!("{:012}", n % 1_000_000_000_000).as_bytes());
        Handshake {
            reserved,
            info_hash,
            peer_id: PeerId::new(id),
        }
        .to_bytes()
    }

    /// Sends our handshake and reads the target's.
    ///
    /// # Errors
    /// When the target closes, answers something else, or `deadline` passes.
    pub fn handshake(
        &mut self,
        info_hash: Sha1Hash,
        reserved: Reserved,
        deadline: Instant,
    ) -> std::io::Result<Handshake> {
        self.send_raw(&Self::handshake_bytes(info_hash, reserved))?;
        while self.rx.len() < HANDSHAKE_LEN {
            self.fill(deadline)?;
        }
        let head = self.rx.split_to(HANDSHAKE_LEN);
        let hs = Handshake::decode(&head).map_err(std::io::Error::other)?;
        self.remote = Some(hs);
        Ok(hs)
    }

    /// Handshakes with the extension bit and waits for the target's extended handshake
    /// (other messages on the way are dropped). Sends `ours` as our extended handshake.
    ///
    /// # Errors
    /// As [`RawPeer::handshake`].
    pub fn handshake_ext(
        &mut self,
        info_hash: Sha1Hash,
        ours: &ExtendedHandshake,
        deadline: Instant,
    ) -> std::io::Result<ExtendedHandshake> {
        let reserved = Reserved::default().with_extensions(true).with_fast(true);
        self.handshake(info_hash, reserved, deadline)?;
        self.send(&Message::Extended {
            id: 0,
            payload: Bytes::from(ours.to_bytes()),
        })?;
        loop {
            if let Message::Extended { id: 0, payload } = self.recv(deadline)? {
                let hs = ExtendedHandshake::decode(&payload, &Limits::default())
                    .map_err(std::io::Error::other)?;
                self.remote_ext = Some(hs.clone());
                return Ok(hs);
            }
        }
    }

    /// Runs the initiator's side of an MSE handshake for `info_hash`, offering plaintext
    /// only (`rc4: false`) or RC4 only; returns the RC4 streams when RC4 was selected.
    /// Bytes sent afterwards go on the wire as given: the caller encrypts them.
    ///
    /// # Errors
    /// When the target refuses, closes or `deadline` passes.
    pub fn mse_initiate(
        &mut self,
        info_hash: Sha1Hash,
        rc4: bool,
        seed: u64,
        deadline: Instant,
    ) -> std::io::Result<Option<Rc4Stream>> {
        let config = MseConfig {
            out_policy: EncPolicy::Forced,
            allowed: if rc4 {
                EncLevel::Rc4
            } else {
                EncLevel::Plaintext
            },
            prefer_rc4: rc4,
            ..MseConfig::default()
        };
        let mut rng = [0u8; 32];
        rng.copy_from_slice(&junk(seed, 32));
        let mut hs = MseHandshake::initiate(&config, info_hash, rng);
        loop {
            while let Some(out) = hs.poll_transmit() {
                self.send_raw(&out)?;
            }
            if hs.status() == MseStatus::Done {
                let out = hs.finish().map_err(std::io::Error::other)?;
                self.rx.extend_from_slice(&out.received);
                return Ok(out.cipher);
            }
            self.fill(deadline)?;
            let got = self.rx.split();
            hs.handle_bytes(&got).map_err(std::io::Error::other)?;
        }
    }

    /// The next message from the target.
    ///
    /// # Errors
    /// `UnexpectedEof` when it closed, `TimedOut` when `deadline` passes, `Other` when it
    /// sent something our decoder refuses.
    pub fn recv(&mut self, deadline: Instant) -> std::io::Result<Message> {
        loop {
            if let Some(m) = self
                .decoder
                .decode(&mut self.rx)
                .map_err(std::io::Error::other)?
            {
                return Ok(m);
            }
            self.fill(deadline)?;
        }
    }

    /// Reads until the target closes the connection (end of stream or reset), discarding
    /// what it sends. Returns whether it closed before `deadline`.
    pub fn wait_closed(&mut self, deadline: Instant) -> bool {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if self
                .stream
                .set_read_timeout(Some(left.min(Duration::from_millis(100))))
                .is_err()
            {
                return true;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(_) => return true,
            }
        }
    }

    /// Starts a thread that reads and discards everything the target sends until it
    /// closes or `stop` is set; it returns the bytes read.
    ///
    /// # Errors
    /// When the socket cannot be cloned.
    pub fn drain(&self, stop: &Arc<AtomicBool>) -> std::io::Result<JoinHandle<u64>> {
        let mut s = self.stream.try_clone()?;
        s.set_read_timeout(Some(Duration::from_millis(50)))?;
        let stop = Arc::clone(stop);
        Ok(std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 << 10];
            let mut total = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => total += n as u64,
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => break,
                }
            }
            total
        }))
    }

    /// Reads what is there (up to `deadline`) into the receive buffer.
    fn fill(&mut self, deadline: Instant) -> std::io::Result<()> {
        let mut chunk = [0u8; 64 << 10];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(100))))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.rx.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The honest client: connects to `addr`, asks for `count` pieces the peer has (chosen by
/// `salt`, spread over the torrent, the short last piece included when available) and
/// checks each against the torrent's SHA-1. Returns the pieces verified.
///
/// # Errors
/// Describing what went wrong: no connection, no unchoke, a block missing, a hash mismatch,
/// or `deadline` passing.
///
/// A connection the target closes before the pieces are in is made again while `deadline`
/// allows, as a real client reconnects: at its connection limit lt closes the oldest idle
/// connection, and a client whose handshake was taken in while a flood was still being let
/// in (and whose INTERESTED is not read yet) looks idle. Wrong data fails at once.
pub fn fetch_verified(
    addr: SocketAddr,
    torrent: &Torrent,
    count: usize,
    salt: u32,
    deadline: Instant,
) -> Result<Vec<u32>, String> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match fetch_once(addr, torrent, count, salt, deadline) {
            Ok(pieces) => return Ok(pieces),
            Err(Fetch::Dropped(_)) if Instant::now() + RECONNECT_AFTER < deadline => {
                std::thread::sleep(RECONNECT_AFTER);
            }
            Err(Fetch::Dropped(e) | Fetch::Bad(e)) => {
                return Err(format!("{e} (connection {attempts})"));
            }
        }
    }
}

/// How long the honest client waits before it connects again.
const RECONNECT_AFTER: Duration = Duration::from_millis(100);

/// Why one connection of [`fetch_verified`] failed.
enum Fetch {
    /// The connection went away (or never came up): worth another one.
    Dropped(String),
    /// The target sent something wrong.
    Bad(String),
}

/// One connection of [`fetch_verified`].
fn fetch_once(
    addr: SocketAddr,
    torrent: &Torrent,
    count: usize,
    salt: u32,
    deadline: Instant,
) -> Result<Vec<u32>, Fetch> {
    let n = torrent.num_pieces();
    let mut peer =
        RawPeer::connect(addr).map_err(|e| Fetch::Dropped(format!("connect {addr}: {e}")))?;
    let hs = peer
        .handshake(torrent.info_hash(), Reserved::default(), deadline)
        .map_err(|e| Fetch::Dropped(format!("handshake: {e}")))?;
    if hs.info_hash != torrent.info_hash() {
        return Err(Fetch::Bad(
            "the target answered with another info-hash".into(),
        ));
    }
    peer.send(&Message::Interested)
        .map_err(|e| Fetch::Dropped(format!("interested: {e}")))?;
    let mut have = Bitfield::new(n as usize);
    let mut unchoked = false;
    // piece -> (buffer, blocks left)
    let mut pending: Vec<(u32, Vec<u8>, usize)> = Vec::new();
    let mut verified = Vec::new();
    let mut requested = false;
    loop {
        if unchoked && !requested && have.any() {
            let picks = pick_pieces(&have, n, count, salt);
            for &p in &picks {
                let blocks = torrent.blocks(p);
                for b in &blocks {
                    peer.send(&Message::Request(*b))
                        .map_err(|e| Fetch::Dropped(format!("request: {e}")))?;
                }
                pending.push((p, vec![0u8; torrent.piece_size(p) as usize], blocks.len()));
            }
            requested = true;
        }
        if requested && pending.is_empty() {
            return Ok(verified);
        }
        let msg = peer.recv(deadline).map_err(|e| {
            Fetch::Dropped(format!(
                "waiting for {} (unchoked: {unchoked}, pieces asked: {:?}, verified: {verified:?}): {e}",
                if requested { "blocks" } else { "unchoke" },
                pending.iter().map(|p| p.0).collect::<Vec<_>>()
            ))
        })?;
        match msg {
            Message::Bitfield(b) => {
                have = Bitfield::from_bytes(&b, n as usize)
                    .map_err(|e| Fetch::Bad(format!("bad bitfield from the target: {e}")))?;
            }
            Message::HaveAll => have = Bitfield::full(n as usize),
            Message::Have(p) if p.get() < n => have.set(p.as_usize()),
            Message::Unchoke => unchoked = true,
            Message::Choke if requested => {
                return Err(Fetch::Bad("choked while blocks were outstanding".into()));
            }
            Message::Choke => unchoked = false,
            Message::Piece { piece, begin, data } => {
                let Some(slot) = pending.iter().position(|(p, _, _)| *p == piece.get()) else {
                    return Err(Fetch::Bad(format!(
                        "unrequested block of piece {}",
                        piece.get()
                    )));
                };
                let (p, buf, left) = &mut pending[slot];
                let start = begin as usize;
                let Some(dst) = buf.get_mut(start..start + data.len()) else {
                    return Err(Fetch::Bad(format!("block past the end of piece {p}")));
                };
                dst.copy_from_slice(&data);
                *left -= 1;
                if *left == 0 {
                    let p = *p;
                    let expected = torrent.info.piece_hash(PieceIndex::new(p));
                    if Some(Sha1Hash::digest(buf)) != expected {
                        return Err(Fetch::Bad(format!("piece {p} fails its SHA-1")));
                    }
                    verified.push(p);
                    pending.remove(slot);
                }
            }
            _ => {}
        }
    }
}

/// Up to `count` pieces of `have`: the last piece first (it is short), then others spread
/// by `salt`.
fn pick_pieces(have: &Bitfield, n: u32, count: usize, salt: u32) -> Vec<u32> {
    let mut picks = Vec::new();
    if n > 0 && have.get((n - 1) as usize) {
        picks.push(n - 1);
    }
    let step = (n / 7).max(1);
    let mut i = salt.wrapping_mul(2_654_435_761) % n.max(1);
    for _ in 0..n {
        if picks.len() >= count {
            break;
        }
        if have.get(i as usize) && !picks.contains(&i) {
            picks.push(i);
        }
        i = (i + step) % n;
    }
    for p in have.iter_ones() {
        if picks.len() >= count {
            break;
        }
        let p = u32::try_from(p).unwrap_or(0);
        if !picks.contains(&p) {
            picks.push(p);
        }
    }
    picks.truncate(count);
    picks
}

/// How a [`LyingSeed`] lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lie {
    /// Claims every piece, unchokes, and answers every request with bytes that fail the
    /// piece hash.
    WrongData,
    /// Announces ut_metadata with `metadata_size: announced` and answers each metadata
    /// request with garbage data pieces claiming `total_size`. It has no pieces.
    Metadata {
        /// The `metadata_size` in its extended handshake.
        announced: u32,
        /// The `total_size` in its data messages.
        total_size: u32,
    },
    /// Announces ut_metadata with `metadata_size: announced` and never answers a metadata
    /// request. It has no pieces.
    SilentMetadata {
        /// The `metadata_size` in its extended handshake.
        announced: u32,
    },
}

/// Counters of what a [`LyingSeed`] did.
#[derive(Debug, Default)]
pub struct LiarStats {
    /// Connections with the right info-hash.
    pub connections: AtomicU64,
    /// Blocks of wrong data sent.
    pub bad_blocks: AtomicU64,
    /// Metadata requests received.
    pub metadata_requests: AtomicU64,
    /// Garbage metadata pieces sent.
    pub metadata_pieces: AtomicU64,
    /// Connections the other side closed.
    pub closed_by_remote: AtomicU64,
}

impl LiarStats {
    /// A counter's value.
    #[must_use]
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A seed on 127.0.0.1 that lies to whoever connects; dropping it stops it.
#[derive(Debug)]
pub struct LyingSeed {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it did.
    pub stats: Arc<LiarStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LyingSeed {
    /// Listens on a free port of 127.0.0.1 for peers of `torrent`.
    ///
    /// # Errors
    /// When it cannot bind.
    pub fn start(torrent: &Torrent, lie: Lie) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(LiarStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (stats2, stop2, torrent) = (Arc::clone(&stats), Arc::clone(&stop), torrent.clone());
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (stats, stop, torrent) =
                            (Arc::clone(&stats2), Arc::clone(&stop2), torrent.clone());
                        conns.push(std::thread::spawn(move || {
                            let closed = serve_lies(stream, &torrent, lie, &stats, &stop);
                            if closed {
                                stats.closed_by_remote.fetch_add(1, Ordering::Relaxed);
                            }
                        }));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Ok(Self {
            addr,
            stats,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for LyingSeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one connection with lies; returns whether the other side closed it.
fn serve_lies(
    stream: TcpStream,
    torrent: &Torrent,
    lie: Lie,
    stats: &LiarStats,
    stop: &AtomicBool,
) -> bool {
    let Ok(()) = stream.set_nonblocking(false) else {
        return false;
    };
    let Ok(()) = stream.set_write_timeout(Some(Duration::from_secs(5))) else {
        return false;
    };
    let _ = stream.set_nodelay(true);
    let mut peer = RawPeer {
        stream,
        rx: BytesMut::new(),
        decoder: MessageDecoder::new(OUR_MAX_MESSAGE),
        remote: None,
        remote_ext: None,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while peer.rx.len() < HANDSHAKE_LEN {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        if let Err(e) = peer.fill(deadline) {
            return closed(&e);
        }
    }
    let head = peer.rx.split_to(HANDSHAKE_LEN);
    match Handshake::decode(&head) {
        Ok(hs) if hs.info_hash == torrent.info_hash() => {}
        _ => return false,
    }
    stats.connections.fetch_add(1, Ordering::Relaxed);
    let mut out = BytesMut::new();
    let extensions = !matches!(lie, Lie::WrongData);
    out.extend_from_slice(&RawPeer::handshake_bytes(
        torrent.info_hash(),
        Reserved::default().with_extensions(extensions),
    ));
    match lie {
        Lie::WrongData => {
            let n = torrent.num_pieces() as usize;
            Message::Bitfield(Bytes::copy_from_slice(Bitfield::full(n).as_bytes()))
                .encode(&mut out);
            Message::Unchoke.encode(&mut out);
        }
        Lie::Metadata { announced, .. } | Lie::SilentMetadata { announced } => {
            let mut ext = ExtendedHandshake::default();
            ext.m.insert("ut_metadata".into(), LIAR_METADATA_ID);
            ext.metadata_size = Some(announced);
            ext.v = Some("hostile liar".into());
            Message::Extended {
                id: 0,
                payload: Bytes::from(ext.to_bytes()),
            }
            .encode(&mut out);
        }
    }
    if let Err(e) = peer.send_raw(&out) {
        return closed(&e);
    }
    let mut their_metadata_id = None;
    let mut salt = 0x5eed_u64;
    while !stop.load(Ordering::Relaxed) {
        let msg = match peer.recv(Instant::now() + Duration::from_millis(200)) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(e) => return closed(&e),
        };
        let mut out = BytesMut::new();
        match (msg, lie) {
            (Message::Request(r), Lie::WrongData) => {
                salt = salt.wrapping_add(1);
                Message::Piece {
                    piece: r.piece,
                    begin: r.begin,
                    data: Bytes::from(junk(salt, r.len.min(1 << 20) as usize)),
                }
                .encode(&mut out);
                stats.bad_blocks.fetch_add(1, Ordering::Relaxed);
            }
            (Message::Extended { id: 0, payload }, _) => {
                if let Ok(hs) = ExtendedHandshake::decode(&payload, &Limits::default()) {
                    their_metadata_id = hs.m.get("ut_metadata").copied().filter(|&i| i != 0);
                }
            }
            (Message::Extended { id, payload }, _) if id == LIAR_METADATA_ID => {
                let Ok(Some(MetadataMessage::Request { piece })) =
                    MetadataMessage::decode(&payload, &Limits::default())
                else {
                    continue;
                };
                stats.metadata_requests.fetch_add(1, Ordering::Relaxed);
                let Lie::Metadata { total_size, .. } = lie else {
                    continue;
                };
                let (Some(reply_id), Some(len)) =
                    (their_metadata_id, metadata_piece_len(piece, total_size))
                else {
                    continue;
                };
                salt = salt.wrapping_add(1);
                let mut payload = BytesMut::new();
                MetadataMessage::Data {
                    piece,
                    total_size,
                    data: Bytes::from(junk(salt, len as usize)),
                }
                .encode(&mut payload);
                Message::Extended {
                    id: reply_id,
                    payload: payload.freeze(),
                }
                .encode(&mut out);
                stats.metadata_pieces.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        if !out.is_empty()
            && let Err(e) = peer.send_raw(&out)
        {
            return closed(&e);
        }
    }
    false
}

/// Whether an I/O error means the other side closed the connection.
fn closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
    )
}
