//! One peer connection as the engine sees it.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lt_core::{Bitfield, PieceIndex, Sha1Hash};
use lt_picker::PeerKey;
use lt_wire::{BlockRequest, PeerConnection};

use crate::rate::{Bucket, Rate, is_local_network, wire_cost};
use crate::{ConnId, Settings, TorrentId};

/// One peer connection.
#[derive(Debug)]
pub(super) struct Conn {
    /// When it was made (dialled or accepted).
    pub(super) since: Instant,
    pub(super) addr: SocketAddr,
    pub(super) torrent: Option<TorrentId>,
    pub(super) outgoing: bool,
    /// How the current (or last) dial goes: transport and MSE.
    pub(super) transport: crate::Transport,
    pub(super) encrypt: bool,
    /// The transports dialled so far: [TCP, uTP].
    pub(super) dialled: [bool; 2],
    /// The last dial raced TCP beside uTP ([`crate::Action::Connect`]'s `race_tcp_after`).
    pub(super) raced: bool,
    /// `None` while the TCP connect (and MSE) runs.
    pub(super) wire: Option<PeerConnection>,
    pub(super) connected: bool,
    pub(super) encrypted: bool,
    /// TLS for this SSL torrent's hash ([`crate::Handshake::ssl`]).
    pub(super) ssl: Option<Sha1Hash>,
    pub(super) seed: bool,
    pub(super) hashfails: u32,
    pub(super) on_parole: bool,
    pub(super) optimistic: bool,
    pub(super) unchoked_at: Option<Instant>,
    pub(super) down: Rate,
    pub(super) up: Rate,
    /// Disk reads in flight for it.
    pub(super) pending_reads: u32,
    /// Bytes handed to the driver in [`Action::Send`] and not yet reported written
    /// ([`crate::Input::Drained`]).
    pub(super) send_queued: usize,
    /// Its DHT node (BEP 5 PORT) went to the driver already.
    pub(super) dht_node_sent: bool,
    /// Its requests waiting for room in its send buffer (back-pressure), in order; at most
    /// the peer's request limit, which lt-wire enforces.
    pub(super) held: VecDeque<BlockRequest>,
    /// The peer-list entry it belongs to.
    pub(super) entry: Option<SocketAddr>,
    /// Pieces we let it request while choked (BEP 6).
    pub(super) allowed_fast: Vec<PieceIndex>,
    /// What the peer said of its pieces before we had the metadata.
    pub(super) pending_bits: PendingBits,
    /// Its listen port, from its extended handshake (for incoming connections).
    pub(super) listen_port: Option<u16>,
    /// It announced a metadata size and has not rejected a metadata request.
    pub(super) serves_metadata: bool,
    /// The metadata size it announced.
    pub(super) metadata_size: Option<u32>,
    /// The connection runs over uTP (as the driver said).
    pub(super) utp: bool,
    /// The peer is on the local network (for `ignore_limits_on_local_network`).
    pub(super) local: bool,
    /// Peers we told it about with ut_pex (BEP 11), and when we last did.
    pub(super) pex_sent: BTreeSet<SocketAddr>,
    pub(super) last_pex: Option<Instant>,
    /// Super seeding (BEP 16): the pieces we announced to it (it saw no bitfield), and
    /// the one it is getting now. `None` when it saw our real pieces.
    pub(super) super_seed: Option<SuperSeed>,
}

/// Draws a block of `len` payload bytes to or from `c` from the limits that apply to it:
/// `[torrent, session, tcp]`, the last (mixed mode's) only on TCP. With
/// `rate_limit_ip_overhead` the block costs its headers too.
pub(super) fn spend_block(settings: &Settings, c: &Conn, len: u32, buckets: [&mut Bucket; 3]) {
    let cost = wire_cost(
        len,
        c.addr.is_ipv6(),
        c.utp,
        settings.rate_limit_ip_overhead,
    );
    let [torrent, session, tcp] = buckets;
    torrent.spend(cost);
    session.spend(cost);
    if !c.utp {
        tcp.spend(cost);
    }
}

/// What a super seed told one peer.
#[derive(Debug)]
pub(super) struct SuperSeed {
    pub(super) offered: Bitfield,
    pub(super) current: Option<PieceIndex>,
}

/// A peer's piece announcements kept until the metadata (and so the piece count) is
/// known: its last bitfield (or have-all), and the haves since as a bitset, so a flood of
/// haves costs one bit each, at most [`MAX_PENDING_PIECES`] bits.
#[derive(Debug, Default)]
pub(super) struct PendingBits {
    base: Option<BaseBits>,
    haves: Vec<u64>,
}

#[derive(Debug)]
enum BaseBits {
    Raw(Bytes),
    All,
}

/// Highest piece index + 1 a have is kept for before the metadata arrives (libtorrent's
/// bound too): 64 KiB of bits per peer at most. Later haves beyond it are dropped.
pub(super) const MAX_PENDING_PIECES: u32 = 1 << 19;

impl PendingBits {
    /// A bitfield replaces what came before.
    pub(super) fn bitfield(&mut self, raw: Bytes) {
        self.base = Some(BaseBits::Raw(raw));
        self.haves = Vec::new();
    }

    /// A have-all replaces what came before.
    pub(super) fn have_all(&mut self) {
        self.base = Some(BaseBits::All);
        self.haves = Vec::new();
    }

    pub(super) fn have(&mut self, piece: PieceIndex) {
        if piece.get() >= MAX_PENDING_PIECES || matches!(self.base, Some(BaseBits::All)) {
            return;
        }
        let word = piece.as_usize() / 64;
        if self.haves.len() <= word {
            self.haves.resize(word + 1, 0);
        }
        self.haves[word] |= 1 << (piece.get() % 64);
    }

    /// Heap bytes held.
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        self.haves.capacity() * 8
            + match &self.base {
                Some(BaseBits::Raw(b)) => b.len(),
                _ => 0,
            }
    }

    /// Hands what was announced to the picker, now that the torrent has `pieces` pieces.
    pub(super) fn apply(self, picker: &mut lt_picker::PiecePicker, key: PeerKey, pieces: usize) {
        let _ = match self.base {
            Some(BaseBits::Raw(raw)) => match Bitfield::from_bytes(&raw, pieces) {
                Ok(b) => picker.peer_bitfield(key, b),
                Err(_) => Ok(()),
            },
            Some(BaseBits::All) => picker.peer_have_all(key),
            None => Ok(()),
        };
        for (w, &bits) in self.haves.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if i < pieces {
                    let _ = picker.peer_have(key, PieceIndex::new(u32::try_from(i).unwrap_or(0)));
                }
            }
        }
    }
}
/// Most candidate pieces weighed for one super-seeding offer.
pub(super) const SUPER_SEED_SCAN: u32 = 4096;
/// How long a metadata piece request may go unanswered before it is asked elsewhere.
pub(super) const METADATA_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl Conn {
    /// A connection that has not completed its handshake.
    pub(super) fn new(
        now: Instant,
        addr: SocketAddr,
        torrent: Option<TorrentId>,
        outgoing: bool,
        encrypted: bool,
        entry: Option<SocketAddr>,
    ) -> Self {
        Self {
            since: now,
            addr,
            torrent,
            outgoing,
            transport: crate::Transport::Tcp,
            encrypt: false,
            dialled: [false; 2],
            raced: false,
            wire: None,
            connected: false,
            encrypted,
            ssl: None,
            seed: false,
            hashfails: 0,
            on_parole: false,
            optimistic: false,
            unchoked_at: None,
            down: Rate::default(),
            up: Rate::default(),
            pending_reads: 0,
            send_queued: 0,
            dht_node_sent: false,
            held: VecDeque::new(),
            entry,
            allowed_fast: Vec::new(),
            pending_bits: PendingBits::default(),
            listen_port: None,
            serves_metadata: false,
            metadata_size: None,
            utp: false,
            local: is_local_network(addr.ip()),
            pex_sent: BTreeSet::new(),
            last_pex: None,
            super_seed: None,
        }
    }

    /// What the wire has to send, counted into the send buffer; `None` when nothing.
    pub(super) fn take_transmit(&mut self) -> Option<Vec<Bytes>> {
        let w = self.wire.as_mut()?;
        let mut bufs = Vec::new();
        while let Some(b) = w.poll_transmit() {
            self.send_queued = self.send_queued.saturating_add(b.len());
            bufs.push(b);
        }
        (!bufs.is_empty()).then_some(bufs)
    }

    pub(super) fn key(id: ConnId) -> PeerKey {
        PeerKey(u32::try_from(id.0 & u64::from(u32::MAX)).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use lt_picker::{Config, Layout, PiecePicker};

    use super::*;

    /// 65,536 haves before the metadata cost 8 KiB of bits (they were 40-byte entries,
    /// 2.6 MB a peer); indices past the bound are dropped; what is kept reaches the picker.
    #[test]
    fn pending_haves_cost_a_bit_each() {
        let mut pending = PendingBits::default();
        for i in 0..1u32 << 16 {
            pending.have(PieceIndex::new(i));
        }
        pending.have(PieceIndex::new(MAX_PENDING_PIECES));
        pending.have(PieceIndex::new(u32::MAX));
        assert!(pending.heap_bytes() <= 8 << 10, "{}", pending.heap_bytes());

        let mut small = PendingBits::default();
        for i in [3u32, 64, 3, 99, 500] {
            small.have(PieceIndex::new(i));
        }
        let mut picker = PiecePicker::new(
            Layout::new(100 * 16384, 16384, 16384).unwrap(),
            Config::default(),
        );
        let key = PeerKey(1);
        picker.add_peer(key).unwrap();
        small.apply(&mut picker, key, 100);
        let seen: Vec<u32> = (0..100)
            .filter(|&p| picker.availability(PieceIndex::new(p)) == 1)
            .collect();
        assert_eq!(seen, vec![3, 64, 99]);
    }
}
