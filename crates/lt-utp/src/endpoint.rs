//! Many connections behind one UDP socket: datagrams demultiplexed by (address, connection id).
//!
//! Incoming SYNs create connections up to [`EndpointConfig::max_half_open`] not yet
//! confirmed by the peer (a SYN flood cannot grow the table past it), at most
//! [`EndpointConfig::max_half_open_per_ip`] of them from one IP address, and
//! [`EndpointConfig::max_connections`] in all. When the half-open table (or the whole table)
//! is full, a new SYN evicts the oldest half-open connection, so a flood delays new peers
//! but never locks them out. Only a packet that proves the peer heard our ST_STATE (our
//! receive id, an ack of what we sent and a sequence number following the SYN's) confirms a
//! half-open connection; other packets for it are dropped. A half-open connection that is
//! not confirmed within [`EndpointConfig::half_open_timeout`] is dropped silently.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::ops::Bound;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::{Config, Connection, Event, Header, Packet, PacketType, Transmit};

/// Default most connections per endpoint.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default most half-open incoming connections (SYN received, nothing else yet).
pub const DEFAULT_MAX_HALF_OPEN: usize = 64;
/// Default most half-open incoming connections from one IP address (any port): room for a
/// dozen peers behind one NAT, or a local swarm on loopback, connecting at once.
pub const DEFAULT_MAX_HALF_OPEN_PER_IP: usize = 16;
/// Most ST_RESET replies to packets for unknown connections queued at once; more are
/// not answered (a flood of junk cannot make us queue more).
pub const MAX_PENDING_RESETS: usize = 64;
/// Largest datagram to an IPv6 peer: an Ethernet MTU less the IPv6 and UDP headers.
pub const IPV6_MAX_PACKET_SIZE: usize = 1452;
/// Most datagrams one connection sends in a row while others have some to send.
pub const TRANSMIT_BURST: usize = 16;
/// Default life of a half-open incoming connection.
pub const DEFAULT_HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of an [`Endpoint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Template for every connection; its `rng_seed` is replaced per connection.
    pub connection: Config,
    /// Seeds the per-connection seeds. Default: all zeros (drivers seed from the OS).
    pub rng_seed: [u8; 32],
    /// Accept incoming SYNs. Default: `true`.
    pub accept_incoming: bool,
    /// Most connections. Default: [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// Most half-open incoming connections; when full, a new SYN evicts the oldest.
    /// Default: [`DEFAULT_MAX_HALF_OPEN`].
    pub max_half_open: usize,
    /// Most half-open incoming connections from one IP address; more SYNs from it are
    /// dropped (they never evict). Default: [`DEFAULT_MAX_HALF_OPEN_PER_IP`].
    pub max_half_open_per_ip: usize,
    /// Life of a half-open incoming connection. Default: [`DEFAULT_HALF_OPEN_TIMEOUT`].
    pub half_open_timeout: Duration,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            connection: Config::default(),
            rng_seed: [0; 32],
            accept_incoming: true,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_half_open: DEFAULT_MAX_HALF_OPEN,
            max_half_open_per_ip: DEFAULT_MAX_HALF_OPEN_PER_IP,
            half_open_timeout: DEFAULT_HALF_OPEN_TIMEOUT,
        }
    }
}

/// Names one connection of an [`Endpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionHandle(pub u64);

/// What an incoming datagram did.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramOutcome {
    /// Routed to an existing connection.
    Routed(ConnectionHandle),
    /// A SYN opened a new incoming connection.
    Accepted(ConnectionHandle),
    /// Dropped: not uTP, unknown connection, or a table is full.
    Dropped,
}

#[derive(Debug)]
struct Entry {
    addr: SocketAddr,
    conn: Connection,
    /// Incoming and not yet confirmed by the peer: the creation time.
    half_open_since: Option<Instant>,
}

/// Connections sharing one socket, sans IO. Same driver rule as [`Connection`]: after any
/// input, drain [`poll_transmit`](Self::poll_transmit), then [`poll_event`](Self::poll_event),
/// then re-arm one timer from [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct Endpoint {
    cfg: EndpointConfig,
    rng: ChaCha20Rng,
    next_handle: u64,
    routes: HashMap<(SocketAddr, u16), ConnectionHandle>,
    conns: BTreeMap<ConnectionHandle, Entry>,
    /// The half-open connections; handles grow with time, so the first is the oldest.
    half_open: BTreeSet<ConnectionHandle>,
    /// Half-open connections per source IP (no zero counts kept).
    half_open_per_ip: HashMap<IpAddr, usize>,
    resets: VecDeque<(SocketAddr, Transmit)>,
    /// The connection whose turn it is to transmit, and how many datagrams it sent in it.
    tx_cursor: Option<ConnectionHandle>,
    tx_burst: usize,
}

impl Endpoint {
    /// An endpoint with no connections.
    #[must_use]
    pub fn new(cfg: EndpointConfig) -> Self {
        Self {
            rng: ChaCha20Rng::from_seed(cfg.rng_seed),
            cfg,
            next_handle: 0,
            routes: HashMap::new(),
            conns: BTreeMap::new(),
            half_open: BTreeSet::new(),
            half_open_per_ip: HashMap::new(),
            resets: VecDeque::new(),
            tx_cursor: None,
            tx_burst: 0,
        }
    }

    /// Opens a connection to `addr`; `None` when the table is full.
    pub fn connect(&mut self, now: Instant, addr: SocketAddr) -> Option<ConnectionHandle> {
        if self.conns.len() >= self.cfg.max_connections {
            return None;
        }
        // Pick a receive id not in use for this address (BEP 29 ids are per peer).
        for _ in 0..16 {
            let conn = Connection::connect(self.conn_config(addr), now);
            let key = (addr, conn.recv_id());
            if !self.routes.contains_key(&key) {
                return Some(self.insert(addr, conn, None));
            }
        }
        None
    }

    /// The connection behind `handle`, while it exists.
    pub fn connection(&mut self, handle: ConnectionHandle) -> Option<&mut Connection> {
        self.conns.get_mut(&handle).map(|e| &mut e.conn)
    }

    /// The peer address of `handle`.
    #[must_use]
    pub fn peer_addr(&self, handle: ConnectionHandle) -> Option<SocketAddr> {
        self.conns.get(&handle).map(|e| e.addr)
    }

    /// Whether `handle` is an incoming connection not yet confirmed by its peer (a spoofed
    /// SYN never is).
    #[must_use]
    pub fn is_half_open(&self, handle: ConnectionHandle) -> bool {
        self.conns
            .get(&handle)
            .is_some_and(|e| e.half_open_since.is_some())
    }

    /// Number of connections, and how many of them are half-open.
    #[must_use]
    pub fn len(&self) -> (usize, usize) {
        (self.conns.len(), self.half_open.len())
    }

    /// Whether there is no connection.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Routes one datagram from `from`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &[u8],
    ) -> DatagramOutcome {
        let Ok(p) = Packet::decode(buf) else {
            return DatagramOutcome::Dropped;
        };
        let id = p.header.connection_id;
        let route = self.routes.get(&(from, id)).copied().or_else(|| {
            // A retransmitted SYN (or a RESET) carries the id we send with: id + 1 is ours.
            matches!(p.header.ty, PacketType::Syn | PacketType::Reset)
                .then(|| self.routes.get(&(from, id.wrapping_add(1))).copied())
                .flatten()
        });
        if let Some(handle) = route {
            let Some(e) = self.conns.get_mut(&handle) else {
                return DatagramOutcome::Dropped;
            };
            let confirming = e.half_open_since.is_some()
                && !matches!(p.header.ty, PacketType::Syn | PacketType::Reset);
            if confirming && !e.conn.confirms_accept(&p.header) {
                // A half-open connection hears only its SYN's sender: anything else may be
                // spoofed (issue 18).
                tracing::trace!(%from, id, "uTP packet does not confirm a half-open connection");
                return DatagramOutcome::Dropped;
            }
            let ok = e.conn.handle_datagram(now, buf).is_ok();
            if confirming && ok {
                self.clear_half_open(handle);
            }
            return DatagramOutcome::Routed(handle);
        }
        if !matches!(p.header.ty, PacketType::Syn | PacketType::Reset)
            && self.resets.len() < MAX_PENDING_RESETS
        {
            // libutp answers packets for unknown connections with ST_RESET so the peer
            // stops at once instead of timing out.
            let mut contents = Vec::with_capacity(crate::limits::HEADER_LEN);
            Packet {
                header: Header {
                    ty: PacketType::Reset,
                    connection_id: id,
                    timestamp_us: 0,
                    timestamp_diff_us: 0,
                    wnd_size: 0,
                    seq_nr: 0,
                    ack_nr: p.header.seq_nr,
                },
                sack: None,
                payload: &[],
            }
            .encode(&mut contents);
            self.resets.push_back((from, Transmit { contents }));
            return DatagramOutcome::Dropped;
        }
        let from_ip = self.half_open_per_ip.get(&from.ip()).copied().unwrap_or(0);
        if p.header.ty != PacketType::Syn
            || !self.cfg.accept_incoming
            || from_ip >= self.cfg.max_half_open_per_ip
            || self.routes.contains_key(&(from, id.wrapping_add(1)))
        {
            tracing::trace!(%from, id, "uTP datagram dropped");
            return DatagramOutcome::Dropped;
        }
        // Full: the oldest half-open connection makes room, so a flood cannot lock new
        // peers out (issue 18).
        while self.half_open.len() >= self.cfg.max_half_open
            || self.conns.len() >= self.cfg.max_connections
        {
            let Some(&oldest) = self.half_open.first() else {
                tracing::trace!(%from, id, "uTP SYN dropped: table full");
                return DatagramOutcome::Dropped;
            };
            tracing::trace!(%from, id, evicted = oldest.0, "uTP half-open connection evicted");
            self.remove(oldest);
        }
        let Ok(conn) = Connection::accept(self.conn_config(from), now, buf) else {
            return DatagramOutcome::Dropped;
        };
        let h = self.insert(from, conn, Some(now));
        self.half_open.insert(h);
        *self.half_open_per_ip.entry(from.ip()).or_insert(0) += 1;
        DatagramOutcome::Accepted(h)
    }

    /// An ICMP error (port or host unreachable) came back for a datagram sent to `addr`:
    /// our connections to it still waiting for the answer to their SYN end with
    /// [`CloseReason::Unreachable`](crate::CloseReason::Unreachable), as libtorrent fails a
    /// uTP connect on one, so the caller can try TCP at once instead of after the connect
    /// timeout. Returns how many ended.
    pub fn handle_unreachable(&mut self, addr: SocketAddr) -> usize {
        self.conns
            .values_mut()
            .filter(|e| e.addr == addr)
            .map(|e| usize::from(e.conn.handle_unreachable()))
            .sum()
    }

    /// Runs due timers of every connection and expires half-open ones.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for (&h, e) in &mut self.conns {
            if e.half_open_since
                .is_some_and(|t| now >= t + self.cfg.half_open_timeout)
            {
                expired.push(h);
            } else if e.conn.poll_timeout().is_some_and(|t| now >= t) {
                e.conn.handle_timeout(now);
            }
        }
        for h in expired {
            self.remove(h);
        }
    }

    /// The next datagram to send and its destination.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(SocketAddr, Transmit)> {
        let mut contents = Vec::new();
        self.poll_transmit_into(now, &mut contents)
            .map(|addr| (addr, Transmit { contents }))
    }

    /// Appends the next datagram to send to `out` (without clearing it) and returns its
    /// destination: the allocation-free form of [`poll_transmit`](Self::poll_transmit)
    /// that drivers batch with.
    ///
    /// Connections take turns in bursts of up to [`TRANSMIT_BURST`] datagrams: fair between
    /// peers, while runs of datagrams to one peer stay together for UDP GSO.
    pub fn poll_transmit_into(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<SocketAddr> {
        if let Some((addr, t)) = self.resets.pop_front() {
            out.extend_from_slice(&t.contents);
            return Some(addr);
        }
        let start = match self.tx_cursor {
            // The current connection's burst goes on.
            Some(h) if self.tx_burst < TRANSMIT_BURST => Bound::Included(h),
            Some(h) => Bound::Excluded(h),
            None => Bound::Unbounded,
        };
        let mut found = self
            .conns
            .range_mut((start, Bound::Unbounded))
            .find_map(|(&h, e)| e.conn.poll_transmit_into(now, out).then_some((h, e.addr)));
        if found.is_none()
            && let Some(h) = self.tx_cursor
        {
            // Wrap around to the connections before the cursor (and the cursor itself
            // when its burst was over).
            let end = match start {
                Bound::Included(h) => Bound::Excluded(h),
                _ => Bound::Included(h),
            };
            found = self
                .conns
                .range_mut((Bound::Unbounded, end))
                .find_map(|(&h, e)| e.conn.poll_transmit_into(now, out).then_some((h, e.addr)));
        }
        let (h, addr) = found?;
        if self.tx_cursor == Some(h) {
            self.tx_burst += 1;
        } else {
            self.tx_cursor = Some(h);
            self.tx_burst = 1;
        }
        Some(addr)
    }

    /// The next event of any connection. A connection is removed after its
    /// [`Event::Closed`] is returned.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<(ConnectionHandle, Event)> {
        let (h, ev) = self
            .conns
            .iter_mut()
            .find_map(|(&h, e)| e.conn.poll_event().map(|ev| (h, ev)))?;
        if matches!(ev, Event::Closed(_)) {
            self.remove(h);
        }
        Some((h, ev))
    }

    /// The earliest deadline of any connection.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(|e| {
                let half = e.half_open_since.map(|t| t + self.cfg.half_open_timeout);
                [e.conn.poll_timeout(), half].into_iter().flatten().min()
            })
            .min()
    }

    fn conn_config(&mut self, addr: SocketAddr) -> Config {
        let mut seed = [0; 32];
        self.rng.fill_bytes(&mut seed);
        let mut cfg = Config {
            rng_seed: seed,
            ..self.cfg.connection.clone()
        };
        if addr.is_ipv6() {
            // The IPv6 header is 20 bytes longer than IPv4's.
            cfg.max_packet_size = cfg.max_packet_size.min(IPV6_MAX_PACKET_SIZE);
        }
        cfg
    }

    fn insert(
        &mut self,
        addr: SocketAddr,
        conn: Connection,
        half_open_since: Option<Instant>,
    ) -> ConnectionHandle {
        let h = ConnectionHandle(self.next_handle);
        self.next_handle += 1;
        self.routes.insert((addr, conn.recv_id()), h);
        self.conns.insert(
            h,
            Entry {
                addr,
                conn,
                half_open_since,
            },
        );
        h
    }

    fn remove(&mut self, h: ConnectionHandle) {
        self.clear_half_open(h);
        if let Some(e) = self.conns.remove(&h) {
            self.routes.remove(&(e.addr, e.conn.recv_id()));
        }
    }

    /// Forgets that `h` is half-open (confirmed or removed).
    fn clear_half_open(&mut self, h: ConnectionHandle) {
        let Some(e) = self.conns.get_mut(&h) else {
            return;
        };
        if e.half_open_since.take().is_none() {
            return;
        }
        self.half_open.remove(&h);
        let ip = e.addr.ip();
        if let Some(n) = self.half_open_per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.half_open_per_ip.remove(&ip);
            }
        }
    }
}
