//! The simulation's network: links between nodes, sockets on them, and the driver's side
//! of connecting (the MSE handshake included), as lt-session's `io` does it over real
//! sockets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::AddAssign;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lt_core::Sha1Hash;
use lt_wire::mse::{MseHandshake, MseStatus, classify_incoming};

use super::{Event, Sim};
use crate::{ConnId, Handshake, Input, IoError, Transport};

/// The first bytes of a plaintext BitTorrent handshake.
const PLAINTEXT_HANDSHAKE: &[u8] = b"\x13BitTorrent protocol";

/// The network between two nodes, both ways.
///
/// A link is a reliable in-order byte stream per connection, as TCP and uTP are: loss and
/// jitter delay frames, never drop or reorder a connection's bytes.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Link {
    /// One-way delay. Default 20 ms.
    pub latency: Duration,
    /// Bytes per second each way, on top of the sending node's uplink. Default `None`
    /// (only the uplinks bound the rate).
    pub bandwidth: Option<u64>,
    /// The probability that a frame (one write) is lost and sent again after
    /// [`rto`](Self::rto), costing the sender's uplink twice. Default 0.
    pub loss: f64,
    /// How long a lost frame takes to be sent again. Default 200 ms (Linux's least RTO).
    pub rto: Duration,
    /// The probability that a frame is held back by up to [`jitter`](Self::jitter), so that
    /// frames of other connections overtake it. Default 0.
    pub reorder: f64,
    /// The most a held-back frame waits. Default 50 ms.
    pub jitter: Duration,
    /// Run MSE/PE when the dialling engine asks for encryption. Default false: connections
    /// are plaintext whatever the engine asks.
    pub mse: bool,
    /// TCP connects succeed (else they are refused after a round trip). Default true.
    pub tcp: bool,
    /// uTP connects succeed (else they are refused after a round trip). Default true.
    pub utp: bool,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(20),
            bandwidth: None,
            loss: 0.0,
            rto: Duration::from_millis(200),
            reorder: 0.0,
            jitter: Duration::from_millis(50),
            mse: false,
            tcp: true,
            utp: true,
        }
    }
}

/// What went over a link (both ways).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[non_exhaustive]
pub struct LinkStats {
    /// Connects that completed.
    pub connects: u64,
    /// Connects refused: the link does not carry the transport, or the other node does
    /// not accept it.
    pub refused: u64,
    /// Connections the accepting node closed before its engine saw them: its encryption
    /// policy, an unknown torrent, or its engine refused them.
    pub rejected: u64,
    /// Frames sent (one per write).
    pub frames: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Frames lost and sent again.
    pub lost: u64,
    /// Frames held back.
    pub reordered: u64,
    /// MSE handshakes completed (counted on both ends).
    pub mse_handshakes: u64,
    /// Of those, the ones that chose RC4.
    pub rc4: u64,
    /// MSE handshakes that failed.
    pub mse_failed: u64,
    /// Connection ends whose engine's first bytes were a plaintext BitTorrent handshake.
    pub plaintext_handshakes: u64,
}

impl AddAssign for LinkStats {
    fn add_assign(&mut self, o: Self) {
        self.connects += o.connects;
        self.refused += o.refused;
        self.rejected += o.rejected;
        self.frames += o.frames;
        self.bytes += o.bytes;
        self.lost += o.lost;
        self.reordered += o.reordered;
        self.mse_handshakes += o.mse_handshakes;
        self.rc4 += o.rc4;
        self.mse_failed += o.mse_failed;
        self.plaintext_handshakes += o.plaintext_handshakes;
    }
}

/// A socket: one end of a connection.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) struct SockId(u64);

pub(super) struct LinkState {
    pub(super) cfg: Link,
    stats: LinkStats,
    /// When the link finishes sending what it has, each way (from the lower node first).
    busy: [Instant; 2],
}

impl LinkState {
    pub(super) const fn new(cfg: Link, now: Instant) -> Self {
        Self {
            cfg,
            stats: LinkStats {
                connects: 0,
                refused: 0,
                rejected: 0,
                frames: 0,
                bytes: 0,
                lost: 0,
                reordered: 0,
                mse_handshakes: 0,
                rc4: 0,
                mse_failed: 0,
                plaintext_handshakes: 0,
            },
            busy: [now; 2],
        }
    }
}

enum State {
    /// The connect is under way.
    Dialing {
        conn: ConnId,
        info_hash: Sha1Hash,
        encrypt: bool,
    },
    /// Dialled; running MSE as the initiator.
    MseOut { conn: ConnId, hs: Box<MseHandshake> },
    /// Accepted; waiting for the first bytes to tell plaintext from MSE.
    Accepting { prefix: BytesMut },
    /// Accepted; running MSE as the responder.
    MseIn { hs: Box<MseHandshake> },
    /// The engine has the connection.
    Open { conn: ConnId },
    /// Taken out while being worked on.
    Busy,
}

struct Sock {
    node: usize,
    peer: SockId,
    /// The link's key.
    link: (usize, usize),
    transport: Transport,
    /// The other end's address as this end sees it.
    remote: SocketAddr,
    state: State,
    /// Frames to this socket arrive no earlier than this (in order).
    arrive_after: Instant,
    /// Its engine has sent bytes on it.
    spoke: bool,
}

pub(super) struct Net {
    default: Link,
    links: BTreeMap<(usize, usize), LinkState>,
    socks: BTreeMap<SockId, Sock>,
    by_conn: BTreeMap<(usize, ConnId), SockId>,
    next_sock: u64,
    next_port: u16,
}

const fn key(a: usize, b: usize) -> (usize, usize) {
    if a < b { (a, b) } else { (b, a) }
}

/// How long `len` bytes take at `rate` bytes per second (0: no time).
fn transfer(len: usize, rate: u64) -> Duration {
    if rate == 0 {
        return Duration::ZERO;
    }
    let nanos = (len as u128).saturating_mul(1_000_000_000) / u128::from(rate);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl Net {
    pub(super) const fn new(default: Link, links: BTreeMap<(usize, usize), LinkState>) -> Self {
        Self {
            default,
            links,
            socks: BTreeMap::new(),
            by_conn: BTreeMap::new(),
            next_sock: 0,
            next_port: 40_000,
        }
    }

    pub(super) fn link_mut(&mut self, a: usize, b: usize, now: Instant) -> &mut LinkState {
        let default = self.default;
        self.links
            .entry(key(a, b))
            .or_insert_with(|| LinkState::new(default, now))
    }

    pub(super) fn stats(&self, a: usize, b: usize) -> LinkStats {
        self.links
            .get(&key(a, b))
            .map(|l| l.stats)
            .unwrap_or_default()
    }

    pub(super) fn total_stats(&self) -> LinkStats {
        let mut total = LinkStats::default();
        for l in self.links.values() {
            total += l.stats;
        }
        total
    }

    fn stats_mut(&mut self, link: (usize, usize)) -> Option<&mut LinkStats> {
        self.links.get_mut(&link).map(|l| &mut l.stats)
    }

    fn new_sock(&mut self, sock: Sock) -> SockId {
        self.next_sock += 1;
        let id = SockId(self.next_sock);
        self.socks.insert(id, sock);
        id
    }

    fn ephemeral_port(&mut self) -> u16 {
        self.next_port = if self.next_port >= 65_000 {
            40_000
        } else {
            self.next_port + 1
        };
        self.next_port
    }
}

impl Sim {
    /// [`crate::Action::Connect`]: a socket pair on the link, established after a round
    /// trip, or refused after one.
    #[allow(
        clippy::too_many_arguments,
        reason = "the fields of Action::Connect, as the driver gets them"
    )]
    pub(super) fn connect(
        &mut self,
        i: usize,
        conn: ConnId,
        addr: SocketAddr,
        transport: Transport,
        info_hash: Sha1Hash,
        encrypt: bool,
        race_tcp: bool,
    ) {
        let now = self.now;
        let Some(j) = self.node_of(addr).filter(|&j| j != i) else {
            let error = IoError::new(std::io::ErrorKind::ConnectionRefused, "no route");
            let _ = self.nodes[i]
                .engine
                .handle_input(now, Input::ConnectFailed { conn, error });
            return;
        };
        if let Some(old) = self.net.by_conn.remove(&(i, conn)) {
            self.drop_sock(old);
        }
        let settings = self.nodes[j].engine.settings();
        let (incoming_tcp, incoming_utp) =
            (settings.enable_incoming_tcp, settings.enable_incoming_utp);
        let link = self.net.link_mut(i, j, now);
        let rtt = link.cfg.latency * 2;
        let carried = match transport {
            Transport::Tcp => link.cfg.tcp && incoming_tcp,
            Transport::Utp => link.cfg.utp && incoming_utp,
        };
        if !carried {
            link.stats.refused += 1;
            // A refusal comes back after a round trip, like an ICMP error, so a raced uTP
            // dial goes on to TCP then; the race's timer never runs out in the simulation.
            let event = if race_tcp && transport == Transport::Utp {
                Event::RaceTcp {
                    node: i,
                    conn,
                    addr,
                    info_hash,
                    encrypt,
                }
            } else {
                Event::Refused { node: i, conn }
            };
            self.schedule(now + rtt, event);
            return;
        }
        let port = self.net.ephemeral_port();
        let from = SocketAddr::new(self.nodes[i].addr.ip(), port);
        let link = key(i, j);
        let a = self.net.new_sock(Sock {
            node: i,
            peer: SockId(0),
            link,
            transport,
            remote: addr,
            state: State::Dialing {
                conn,
                info_hash,
                encrypt,
            },
            arrive_after: now,
            spoke: false,
        });
        let b = self.net.new_sock(Sock {
            node: j,
            peer: a,
            link,
            transport,
            remote: from,
            state: State::Accepting {
                prefix: BytesMut::new(),
            },
            arrive_after: now,
            spoke: false,
        });
        if let Some(sock) = self.net.socks.get_mut(&a) {
            sock.peer = b;
        }
        self.net.by_conn.insert((i, conn), a);
        self.schedule(now + rtt, Event::Established { sock: a });
    }

    /// The dialler's connect completed: run MSE, or hand the engine the connection.
    pub(super) fn established(&mut self, s: SockId) {
        let Some(sock) = self.net.socks.get(&s) else {
            return;
        };
        let State::Dialing {
            conn,
            info_hash,
            encrypt,
        } = sock.state
        else {
            return;
        };
        let (i, link, transport) = (sock.node, sock.link, sock.transport);
        let mse = self.net.links.get(&link).is_some_and(|l| l.cfg.mse);
        if let Some(stats) = self.net.stats_mut(link) {
            stats.connects += 1;
        }
        let state = if encrypt && mse {
            let config = self.nodes[i].engine.mse_config();
            let hs = MseHandshake::initiate(&config, info_hash, self.rng_seed());
            State::MseOut {
                conn,
                hs: Box::new(hs),
            }
        } else {
            State::Open { conn }
        };
        let plaintext = matches!(state, State::Open { .. });
        if let Some(sock) = self.net.socks.get_mut(&s) {
            sock.state = state;
        }
        if plaintext {
            let handshake = Handshake::default();
            self.input(
                i,
                Input::Connected {
                    conn,
                    transport,
                    handshake,
                },
            );
        } else {
            self.mse_advance(s);
        }
    }

    /// Bytes arrived at socket `s`.
    pub(super) fn frame(&mut self, s: SockId, bytes: BytesMut) {
        let Some(sock) = self.net.socks.get_mut(&s) else {
            return;
        };
        let i = sock.node;
        match &mut sock.state {
            State::Open { conn } => {
                let conn = *conn;
                self.input(i, Input::Received { conn, data: bytes });
            }
            State::Accepting { prefix } => {
                prefix.extend_from_slice(&bytes);
                if let Some(plaintext) = classify_incoming(prefix) {
                    self.accept(s, plaintext);
                }
            }
            State::MseIn { hs } | State::MseOut { hs, .. } => match hs.handle_bytes(&bytes) {
                Ok(()) => self.mse_advance(s),
                Err(e) => self.mse_failed(s, &e),
            },
            // Nothing reaches a socket before it is established.
            State::Dialing { .. } | State::Busy => {}
        }
    }

    /// The other end of socket `s` closed.
    pub(super) fn fin(&mut self, s: SockId) {
        let Some(sock) = self.net.socks.remove(&s) else {
            return;
        };
        let i = sock.node;
        match sock.state {
            State::Open { conn } => {
                self.forget(i, conn, s);
                self.input(i, Input::Closed { conn, error: None });
            }
            State::Dialing { conn, .. } => {
                self.forget(i, conn, s);
                let error = IoError::new(std::io::ErrorKind::ConnectionReset, "reset");
                self.input(i, Input::ConnectFailed { conn, error });
            }
            State::MseOut { conn, .. } => {
                self.forget(i, conn, s);
                let error = IoError::new(std::io::ErrorKind::ConnectionReset, "reset");
                self.input(i, Input::HandshakeFailed { conn, error });
            }
            State::Accepting { .. } | State::MseIn { .. } | State::Busy => {}
        }
    }

    /// [`crate::Action::Send`]: one frame with every buffer.
    pub(super) fn send(&mut self, i: usize, conn: ConnId, bufs: &[Bytes]) {
        let Some(&s) = self.net.by_conn.get(&(i, conn)) else {
            return;
        };
        let Some(sock) = self.net.socks.get_mut(&s) else {
            return;
        };
        if !matches!(sock.state, State::Open { .. }) {
            return;
        }
        let mut frame = BytesMut::with_capacity(bufs.iter().map(Bytes::len).sum());
        for b in bufs {
            frame.extend_from_slice(b);
        }
        if !sock.spoke {
            sock.spoke = true;
            if frame.starts_with(PLAINTEXT_HANDSHAKE) {
                let link = sock.link;
                if let Some(stats) = self.net.stats_mut(link) {
                    stats.plaintext_handshakes += 1;
                }
            }
        }
        self.write(s, frame, Some(conn));
    }

    /// [`crate::Action::Close`].
    pub(super) fn close(&mut self, i: usize, conn: ConnId) {
        if let Some(s) = self.net.by_conn.remove(&(i, conn)) {
            self.drop_sock(s);
        }
    }

    /// The first bytes of an accepted connection told plaintext from MSE: apply the
    /// node's incoming policy, then hand the engine the connection or answer MSE.
    fn accept(&mut self, s: SockId, plaintext: bool) {
        let Some(sock) = self.net.socks.get_mut(&s) else {
            return;
        };
        let j = sock.node;
        let State::Accepting { prefix } = std::mem::replace(&mut sock.state, State::Busy) else {
            return;
        };
        let config = self.nodes[j].engine.mse_config();
        let mse_link = self.net.links.get(&sock.link).is_some_and(|l| l.cfg.mse);
        if config.accept_incoming(plaintext).is_err() || (!plaintext && !mse_link) {
            self.reject(s);
            return;
        }
        if plaintext {
            let handshake = Handshake {
                cipher: None,
                received: prefix,
                encrypted: false,
                ssl: None,
            };
            self.incoming(s, handshake);
            return;
        }
        let mut hs = Box::new(MseHandshake::respond(&config, self.rng_seed()));
        match hs.handle_bytes(&prefix) {
            Ok(()) => {
                if let Some(sock) = self.net.socks.get_mut(&s) {
                    sock.state = State::MseIn { hs };
                }
                self.mse_advance(s);
            }
            Err(e) => self.mse_failed(s, &e),
        }
    }

    /// Sends what the MSE handshake on `s` has to send, answers its `NeedSkey` with the
    /// node's torrent, and finishes it when done.
    fn mse_advance(&mut self, s: SockId) {
        loop {
            let Some(sock) = self.net.socks.get_mut(&s) else {
                return;
            };
            let j = sock.node;
            let (State::MseIn { hs } | State::MseOut { hs, .. }) = &mut sock.state else {
                return;
            };
            let mut out = BytesMut::new();
            while let Some(b) = hs.poll_transmit() {
                out.extend_from_slice(&b);
            }
            let status = hs.status();
            let skey = if let MseStatus::NeedSkey(req) = status {
                // As lt-session does: the engine says which torrent the SKEY names.
                Some(hs.provide_skey(self.nodes[j].engine.torrent_for_skey(&req)))
            } else {
                None
            };
            if !out.is_empty() {
                self.write(s, out, None);
            }
            match (status, skey) {
                (_, Some(Err(e))) => {
                    self.mse_failed(s, &e);
                    return;
                }
                (MseStatus::NeedSkey(_), _) => {}
                (MseStatus::Done, _) => {
                    self.mse_done(s);
                    return;
                }
                (MseStatus::InProgress, _) => return,
            }
        }
    }

    /// The MSE handshake on `s` is done: the engine gets the connection with the RC4
    /// streams and the bytes read past the handshake.
    fn mse_done(&mut self, s: SockId) {
        let Some(sock) = self.net.socks.get_mut(&s) else {
            return;
        };
        let (i, link, transport) = (sock.node, sock.link, sock.transport);
        let (hs, conn) = match std::mem::replace(&mut sock.state, State::Busy) {
            State::MseOut { conn, hs } => (hs, Some(conn)),
            State::MseIn { hs } => (hs, None),
            other => {
                sock.state = other;
                return;
            }
        };
        let out = match hs.finish() {
            Ok(out) => out,
            Err(e) => {
                self.fail_mse(s, i, link, conn, &e);
                return;
            }
        };
        if let Some(stats) = self.net.stats_mut(link) {
            stats.mse_handshakes += 1;
            stats.rc4 += u64::from(out.cipher.is_some());
        }
        let handshake = Handshake {
            cipher: out.cipher,
            received: out.received,
            encrypted: true,
            ssl: None,
        };
        match conn {
            Some(conn) => {
                if let Some(sock) = self.net.socks.get_mut(&s) {
                    sock.state = State::Open { conn };
                }
                self.input(
                    i,
                    Input::Connected {
                        conn,
                        transport,
                        handshake,
                    },
                );
            }
            None => self.incoming(s, handshake),
        }
    }

    /// The MSE handshake on `s` failed: the dialler's engine hears of a failed connect;
    /// the socket closes.
    fn mse_failed(&mut self, s: SockId, e: &lt_wire::Error) {
        let Some(sock) = self.net.socks.get(&s) else {
            return;
        };
        let conn = match sock.state {
            State::MseOut { conn, .. } | State::Dialing { conn, .. } => Some(conn),
            _ => None,
        };
        self.fail_mse(s, sock.node, sock.link, conn, e);
    }

    fn fail_mse(
        &mut self,
        s: SockId,
        i: usize,
        link: (usize, usize),
        conn: Option<ConnId>,
        e: &lt_wire::Error,
    ) {
        if let Some(stats) = self.net.stats_mut(link) {
            stats.mse_failed += 1;
        }
        self.drop_sock(s);
        if let Some(conn) = conn {
            self.forget(i, conn, s);
            let error = IoError::new(std::io::ErrorKind::InvalidData, format!("MSE: {e}"));
            self.input(i, Input::HandshakeFailed { conn, error });
        }
    }

    /// Hands an accepted connection to its engine; closes it if the engine refuses.
    fn incoming(&mut self, s: SockId, handshake: Handshake) {
        let Some(sock) = self.net.socks.get(&s) else {
            return;
        };
        let (j, addr, transport) = (sock.node, sock.remote, sock.transport);
        let incoming = Input::Incoming {
            addr,
            transport,
            handshake,
        };
        match self.nodes[j].engine.handle_input(self.now, incoming) {
            Some(conn) => {
                if let Some(sock) = self.net.socks.get_mut(&s) {
                    sock.state = State::Open { conn };
                }
                self.net.by_conn.insert((j, conn), s);
            }
            None => self.reject(s),
        }
        self.drain(j);
    }

    /// Closes an accepted connection its node did not take.
    fn reject(&mut self, s: SockId) {
        if let Some(link) = self.net.socks.get(&s).map(|sock| sock.link)
            && let Some(stats) = self.net.stats_mut(link)
        {
            stats.rejected += 1;
        }
        self.drop_sock(s);
    }

    /// Forgets the engine's connection `conn` of node `i` if it is socket `s`.
    fn forget(&mut self, i: usize, conn: ConnId, s: SockId) {
        if self.net.by_conn.get(&(i, conn)) == Some(&s) {
            self.net.by_conn.remove(&(i, conn));
        }
    }

    /// Closes socket `s` on this side: the other end sees the close after what was sent.
    fn drop_sock(&mut self, s: SockId) {
        let Some(sock) = self.net.socks.remove(&s) else {
            return;
        };
        if let State::Open { conn } | State::Dialing { conn, .. } | State::MseOut { conn, .. } =
            sock.state
        {
            self.forget(sock.node, conn, s);
        }
        let latency = self
            .net
            .links
            .get(&sock.link)
            .map_or(Duration::ZERO, |l| l.cfg.latency);
        let sent = self.now.max(self.nodes[sock.node].up_busy);
        if let Some(peer) = self.net.socks.get_mut(&sock.peer) {
            let at = (sent + latency).max(peer.arrive_after);
            peer.arrive_after = at;
            self.schedule(at, Event::Fin { sock: sock.peer });
        }
    }

    /// Sends `bytes` from socket `s` to its peer: through the node's uplink, then the
    /// link's bandwidth, loss and jitter. `report` gets [`Input::Drained`] when the bytes
    /// have left.
    fn write(&mut self, s: SockId, bytes: BytesMut, report: Option<ConnId>) {
        let Some(sock) = self.net.socks.get(&s) else {
            return;
        };
        let (i, peer, link) = (sock.node, sock.peer, sock.link);
        let len = bytes.len();
        let node = &mut self.nodes[i];
        let uplink = transfer(len, node.upload);
        let mut done = self.now.max(node.up_busy) + uplink;
        node.up_busy = done;
        let Some(state) = self.net.links.get_mut(&link) else {
            return;
        };
        let cfg = state.cfg;
        if let Some(rate) = cfg.bandwidth {
            let way = usize::from(i != link.0);
            done = done.max(state.busy[way]) + transfer(len, rate);
            state.busy[way] = done;
        }
        state.stats.frames += 1;
        state.stats.bytes += len as u64;
        if let Some(conn) = report {
            self.schedule(
                done,
                Event::Drained {
                    node: i,
                    conn,
                    written: len,
                },
            );
        }
        let mut at = done + cfg.latency;
        if cfg.loss > 0.0 && self.unit() < cfg.loss {
            at += cfg.rto;
            self.nodes[i].up_busy += uplink;
            if let Some(stats) = self.net.stats_mut(link) {
                stats.lost += 1;
            }
        }
        if cfg.reorder > 0.0 && self.unit() < cfg.reorder {
            at += cfg.jitter.mul_f64(self.unit());
            if let Some(stats) = self.net.stats_mut(link) {
                stats.reordered += 1;
            }
        }
        if let Some(p) = self.net.socks.get_mut(&peer) {
            at = at.max(p.arrive_after);
            p.arrive_after = at;
            self.schedule(at, Event::Frame { sock: peer, bytes });
        }
    }
}
