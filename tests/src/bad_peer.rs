//! A misbehaving BitTorrent peer for tests, written with lt-wire's codecs: it claims to have
//! every piece, accepts connections, unchokes, and answers requests with wrong bytes; it can
//! also send blocks of pieces that do not exist or at offsets past a piece's end, and an
//! oversized message.
//!
//! It speaks plain BitTorrent only (no MSE), with no extension bits, and serves each
//! connection on its own thread until the other side closes it. [`BadPeerStats`] says what it
//! did and whether the other side hung up on it.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use lt_core::{Bitfield, PeerId, PieceIndex, Sha1Hash};
use lt_wire::{HANDSHAKE_LEN, Handshake, Message, MessageDecoder, Reserved};

/// What the bad peer does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Misbehaviour {
    /// Answer every request with bytes that fail the piece hash.
    pub wrong_data: bool,
    /// After every n-th request, also send a block of a piece index past the torrent's end
    /// and one at an offset past the requested piece's end.
    pub out_of_range_every: Option<u64>,
    /// After this many requests on a connection, send a message whose length prefix is far
    /// over any sane limit (256 MiB) and stop answering.
    pub oversized_after: Option<u64>,
}

/// Counters of what the bad peer did, shared with its threads.
#[derive(Debug, Default)]
pub struct BadPeerStats {
    /// Connections accepted with the right info-hash.
    pub connections: AtomicU64,
    /// Requests received.
    pub requests: AtomicU64,
    /// Blocks of wrong data sent.
    pub bad_blocks: AtomicU64,
    /// Out-of-range blocks sent.
    pub out_of_range: AtomicU64,
    /// Oversized messages sent.
    pub oversized: AtomicU64,
    /// Connections the other side closed (EOF, reset or broken pipe).
    pub closed_by_remote: AtomicU64,
}

/// A running bad peer; dropping it stops accepting (open connections end when the other
/// side closes them or on the next error).
#[derive(Debug)]
pub struct BadPeer {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    /// What it did so far.
    pub stats: Arc<BadPeerStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BadPeer {
    /// Listens on a free port of 127.0.0.1 for peers of `info_hash`, a torrent of
    /// `num_pieces` pieces of `piece_len` bytes.
    ///
    /// # Errors
    /// When it cannot bind.
    pub fn start(
        info_hash: Sha1Hash,
        num_pieces: u32,
        piece_len: u32,
        behaviour: Misbehaviour,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(BadPeerStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let torrent = TorrentShape {
            info_hash,
            num_pieces,
            piece_len,
        };
        let (stats2, stop2) = (Arc::clone(&stats), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let stats = Arc::clone(&stats2);
                        let stop = Arc::clone(&stop2);
                        std::thread::spawn(move || {
                            if let Err(e) = serve(stream, torrent, behaviour, &stats, &stop)
                                && closed_by_peer(&e)
                            {
                                stats.closed_by_remote.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
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

impl Drop for BadPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct TorrentShape {
    info_hash: Sha1Hash,
    num_pieces: u32,
    piece_len: u32,
}

fn serve(
    mut stream: TcpStream,
    torrent: TorrentShape,
    behaviour: Misbehaviour,
    stats: &BadPeerStats,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    stream.set_nodelay(true)?;
    let mut head = [0u8; HANDSHAKE_LEN];
    read_exact_until(&mut stream, &mut head, stop)?;
    let theirs = Handshake::decode(&head).map_err(std::io::Error::other)?;
    if theirs.info_hash != torrent.info_hash {
        return Ok(());
    }
    stats.connections.fetch_add(1, Ordering::Relaxed);
    let ours = Handshake {
        reserved: Reserved::default(),
        info_hash: torrent.info_hash,
        peer_id: PeerId::new(*b"-BP0001-misbehaving!"),
    };
    let pieces = usize::try_from(torrent.num_pieces).map_err(std::io::Error::other)?;
    let mut out = BytesMut::new();
    out.extend_from_slice(&ours.to_bytes());
    Message::Bitfield(Bytes::copy_from_slice(Bitfield::full(pieces).as_bytes())).encode(&mut out);
    Message::Unchoke.encode(&mut out);
    stream.write_all(&out)?;

    let mut decoder = MessageDecoder::new(1 << 20);
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut requests = 0u64;
    let mut junk = 0x5eed_u64;
    let mut silent = false;
    let mut chunk = [0u8; 16 << 10];
    while !stop.load(Ordering::Relaxed) {
        let n = match stream.read(&mut chunk) {
            Ok(0) => {
                stats.closed_by_remote.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(msg) = decoder.decode(&mut buf).map_err(std::io::Error::other)? {
            let Message::Request(req) = msg else { continue };
            stats.requests.fetch_add(1, Ordering::Relaxed);
            requests += 1;
            if silent {
                continue;
            }
            let mut out = BytesMut::new();
            if behaviour.wrong_data {
                let data = junk_bytes(&mut junk, req.len);
                Message::Piece {
                    piece: req.piece,
                    begin: req.begin,
                    data,
                }
                .encode(&mut out);
                stats.bad_blocks.fetch_add(1, Ordering::Relaxed);
            }
            if behaviour
                .out_of_range_every
                .is_some_and(|every| every > 0 && requests.is_multiple_of(every))
            {
                Message::Piece {
                    piece: PieceIndex::new(torrent.num_pieces.saturating_add(3)),
                    begin: 0,
                    data: junk_bytes(&mut junk, 16 << 10),
                }
                .encode(&mut out);
                Message::Piece {
                    piece: req.piece,
                    begin: torrent.piece_len.saturating_add(16 << 10),
                    data: junk_bytes(&mut junk, 16 << 10),
                }
                .encode(&mut out);
                stats.out_of_range.fetch_add(2, Ordering::Relaxed);
            }
            if behaviour.oversized_after == Some(requests) {
                // 256 MiB announced as a PIECE, then a little of it: the receiver must refuse
                // the length before buffering.
                out.extend_from_slice(&(256u32 << 20).to_be_bytes());
                out.extend_from_slice(&[7]);
                out.extend_from_slice(&[0xAB; 1024]);
                stats.oversized.fetch_add(1, Ordering::Relaxed);
                silent = true;
            }
            stream.write_all(&out)?;
        }
    }
    Ok(())
}

/// Whether an I/O error means the other side closed or reset the connection (a read of EOF
/// is counted where it happens).
fn closed_by_peer(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
    )
}

fn read_exact_until(
    stream: &mut TcpStream,
    buf: &mut [u8],
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut got = 0;
    let mut waited = 0u32;
    while got < buf.len() {
        if stop.load(Ordering::Relaxed) || waited > 100 {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                waited += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn junk_bytes(state: &mut u64, len: u32) -> Bytes {
    let len = usize::try_from(len.min(1 << 20)).unwrap_or(0);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        v.extend_from_slice(&state.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}
