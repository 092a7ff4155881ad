//! The tokio driver (feature `tokio`): uTP streams over one shared UDP socket.
//!
//! ```text
//!  UtpSocket (Clone) ── connect / accept / send_to / take_other_datagrams
//!      │                                   ▲ non-uTP datagrams (DHT: KRPC starts with `d`)
//!      ▼                                   │ bounded mpsc, dropped when full
//!  driver task: owns the UDP socket ───────┘
//!      recvmmsg (+GRO) ─▶ Endpoint::handle_datagram ─▶ events wake streams
//!      Endpoint::poll_transmit_into ─▶ one buffer ─▶ sendmsg with UDP GSO
//!      one timer from Endpoint::poll_timeout
//!      ▲
//!  UtpStream (AsyncRead + AsyncWrite): reads and writes the connection's bounded buffers
//!  under the endpoint's lock, then wakes the driver
//! ```
//!
//! One task per socket owns the socket's receive side and the [`Endpoint`]'s clock and
//! timers. Streams share the endpoint with it behind one `std::sync::Mutex` (quinn's layout:
//! a stream copies bytes into or out of its connection's buffers and wakes the driver,
//! which does all packet work); the lock is never held across an `.await`.
//!
//! Datagram batching comes from [`quinn-udp`](https://docs.rs/quinn-udp): `recvmmsg` with
//! UDP GRO on receive, `sendmsg` with UDP GSO (runs of equal-sized datagrams to one peer in
//! one system call) on send, and `IP_PMTUDISC_PROBE` so path MTU probes are never
//! fragmented. It was chosen because it wraps those system calls (and their fallbacks on
//! kernels or platforms without them) behind a safe API, so this crate keeps
//! `#![forbid(unsafe_code)]`; nix and rustix offer `sendmmsg`/`recvmmsg` but no GSO/GRO
//! control messages, and using them would mean building `msghdr`s by hand. Datagrams are
//! encoded into one reusable buffer ([`Endpoint::poll_transmit_into`]) and received into
//! a buffer allocated once, so the driver allocates nothing per packet (the sans-IO
//! connection still copies each payload once into its own buffers).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use lt_utp::tokio::UtpSocket;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let sock = UtpSocket::bind("0.0.0.0:6881".parse().unwrap())?;
//! // Once: datagrams that are not uTP (KRPC starts with `d`); answer with `send_to`.
//! let mut dht = sock.take_other_datagrams().expect("first call");
//! let mut out = sock.connect("192.0.2.7:6881".parse().unwrap()).await?; // bounded wait
//! out.write_all(b"\x13BitTorrent protocol").await?;
//! out.shutdown().await?; // ST_FIN once everything written is sent
//! let (mut incoming, peer) = sock.accept().await?;
//! let mut handshake = [0u8; 68];
//! incoming.read_exact(&mut handshake).await?;
//! if let Some((krpc, from)) = dht.recv().await {
//!     sock.send_to(&krpc, from).await?;
//! }
//! # let _ = peer;
//! # Ok(())
//! # }
//! ```
//!
//! With [`SocketConfig::relay`] every datagram goes through a proxy's SOCKS5 UDP relay,
//! framed by [`crate::relay`], one per system call, and only the relay's datagrams are read.
//!
//! An incoming connection is offered to [`UtpSocket::accept`] once the peer has sent a
//! second packet after its SYN (in BitTorrent, the handshake), so SYNs from spoofed
//! addresses only occupy the endpoint's bounded half-open table until they expire.
//!
//! Bounds: the accept backlog ([`SocketConfig::accept_backlog`]) and the queue of other
//! datagrams ([`SocketConfig::other_datagram_queue`]) are bounded channels (a full one drops:
//! an incoming connection is reset, a datagram is discarded); connections, half-open
//! connections and per-connection buffers are bounded by the [`EndpointConfig`].

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ::tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use ::tokio::net::UdpSocket;
use ::tokio::sync::{Notify, mpsc, oneshot};
use bytes::Bytes;
use quinn_udp::{BATCH_SIZE, RecvMeta, UdpSockRef, UdpSocketState};

use crate::{
    CloseReason, ConnectionHandle, DatagramOutcome, Endpoint, EndpointConfig, Event, Stats,
};

/// Default time [`UtpSocket::connect`] waits for the handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default accept backlog: accepted connections not yet taken by [`UtpSocket::accept`].
pub const DEFAULT_ACCEPT_BACKLOG: usize = 64;
/// Default queue of non-uTP datagrams waiting for their reader.
pub const DEFAULT_OTHER_DATAGRAM_QUEUE: usize = 256;
/// Default kernel socket buffers (`SO_RCVBUF`, `SO_SNDBUF`) requested.
pub const DEFAULT_SOCKET_BUFFER: usize = 4 << 20;
/// Most datagrams encoded before they are sent (bounds the send buffer: about 94 KiB).
const SEND_BATCH: usize = 64;
/// Size of each receive buffer (one datagram, or several coalesced by GRO).
const RECV_SLOT: usize = 64 * 1024;
/// Receive batches handled before the driver sends again.
const RECV_ROUNDS: usize = 4;
/// How long a driver whose handles are all dropped keeps closing connections.
const LINGER: Duration = Duration::from_secs(10);

/// Settings of a [`UtpSocket`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketConfig {
    /// The endpoint and connection settings. An all-zero `rng_seed` (the default) is
    /// replaced by one from the standard library's per-process random hash keys.
    pub endpoint: EndpointConfig,
    /// How long [`UtpSocket::connect`] waits. Default: [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Accepted connections waiting for [`UtpSocket::accept`]; more are reset.
    /// Default: [`DEFAULT_ACCEPT_BACKLOG`].
    pub accept_backlog: usize,
    /// Non-uTP datagrams waiting for the reader of
    /// [`UtpSocket::take_other_datagrams`]; more are dropped. Default:
    /// [`DEFAULT_OTHER_DATAGRAM_QUEUE`].
    pub other_datagram_queue: usize,
    /// Kernel socket buffers requested (best effort). Default: [`DEFAULT_SOCKET_BUFFER`].
    pub socket_buffer: usize,
    /// Runs of datagrams to one peer go out in one `sendmsg` (UDP GSO), and up to
    /// quinn-udp's batch come in with one `recvmmsg`, coalesced by UDP GRO. `false`: one
    /// datagram per system call each way and GRO off, to measure what batching saves
    /// (`utp_batch_bench` in lt-tests). Default: `true`.
    pub batching: bool,
    /// A SOCKS5 UDP relay (the address a proxy gave for `UDP ASSOCIATE`): every datagram,
    /// uTP's and [`UtpSocket::send_to`]'s, goes to it with the [`relay`](crate::relay)
    /// header naming its destination, and only datagrams from it are read (the header
    /// names their source). One datagram per system call then. Default: none.
    pub relay: Option<SocketAddr>,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            endpoint: EndpointConfig::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            accept_backlog: DEFAULT_ACCEPT_BACKLOG,
            other_datagram_queue: DEFAULT_OTHER_DATAGRAM_QUEUE,
            socket_buffer: DEFAULT_SOCKET_BUFFER,
            batching: true,
            relay: None,
        }
    }
}

/// A UDP socket carrying uTP connections (and, for the DHT, other datagrams). Cheap to
/// clone; the driver task ends when every clone and every stream is dropped and the
/// connections have closed (or after a 10 s linger).
#[derive(Debug, Clone)]
pub struct UtpSocket {
    inner: Arc<SocketInner>,
}

#[derive(Debug)]
struct SocketInner {
    shared: Arc<Shared>,
    udp: Arc<UdpSocket>,
    local: SocketAddr,
    relay: Option<SocketAddr>,
    connect_timeout: Duration,
    accept_rx: ::tokio::sync::Mutex<mpsc::Receiver<(ConnectionHandle, SocketAddr)>>,
    other_rx: Mutex<Option<mpsc::Receiver<(Bytes, SocketAddr)>>>,
}

impl Drop for SocketInner {
    fn drop(&mut self) {
        self.shared.notify.notify_one();
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the driver: a stream wrote, read, closed or was dropped.
    notify: Notify,
    /// Whether someone took the receiver of other datagrams.
    other_taken: AtomicBool,
}

#[derive(Debug)]
struct State {
    endpoint: Endpoint,
    streams: HashMap<ConnectionHandle, Slot>,
    /// The driver has ended (socket error); every operation fails.
    dead: bool,
}

#[derive(Debug, Default)]
struct Slot {
    read: Option<Waker>,
    write: Option<Waker>,
    eof: bool,
    closed: Option<CloseReason>,
    connect: Option<oneshot::Sender<io::Result<()>>>,
    /// The stream was dropped: unread data is discarded until the connection ends.
    dropped: bool,
    /// `shutdown` was called: writes fail.
    shut: bool,
    /// Incoming, waiting for a second packet from the peer before it is offered to
    /// `accept` (a SYN flood from spoofed addresses never gets that far).
    unconfirmed: Option<SocketAddr>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl UtpSocket {
    /// Binds a UDP socket with default settings. Must be called inside a tokio runtime
    /// (it spawns the driver task).
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_with(addr, SocketConfig::default())
    }

    /// Binds a UDP socket with `cfg`.
    pub fn bind_with(addr: SocketAddr, cfg: SocketConfig) -> io::Result<Self> {
        Self::from_std_with(std::net::UdpSocket::bind(addr)?, cfg)
    }

    /// Runs uTP over an already bound socket (made non-blocking here), default settings.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<Self> {
        Self::from_std_with(socket, SocketConfig::default())
    }

    /// Runs uTP over an already bound socket with `cfg`.
    pub fn from_std_with(socket: std::net::UdpSocket, cfg: SocketConfig) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let udp = Arc::new(UdpSocket::from_std(socket)?);
        let local = udp.local_addr()?;
        let io_state = UdpSocketState::new(UdpSockRef::from(&*udp))?;
        // Best effort: small kernel buffers only cost throughput.
        let _ = io_state.set_recv_buffer_size(UdpSockRef::from(&*udp), cfg.socket_buffer);
        let _ = io_state.set_send_buffer_size(UdpSockRef::from(&*udp), cfg.socket_buffer);
        // Best effort too: without the ICMP errors a connect to a port nobody listens on
        // waits for its timeout.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ = icmp::enable(&udp);
        let batching = cfg.batching && cfg.relay.is_none();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if !batching {
            // quinn-udp turned GRO on; a datagram per read means it off.
            nix::sys::socket::setsockopt(&*udp, nix::sys::socket::sockopt::UdpGroSegment, &false)
                .map_err(io::Error::from)?;
        }
        let mut ep_cfg = cfg.endpoint;
        if ep_cfg.rng_seed == [0; 32] {
            ep_cfg.rng_seed = os_seed();
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                endpoint: Endpoint::new(ep_cfg),
                streams: HashMap::new(),
                dead: false,
            }),
            notify: Notify::new(),
            other_taken: AtomicBool::new(false),
        });
        let (accept_tx, accept_rx) = mpsc::channel(cfg.accept_backlog.max(1));
        let (other_tx, other_rx) = mpsc::channel(cfg.other_datagram_queue.max(1));
        let driver = Driver {
            shared: Arc::clone(&shared),
            udp: Arc::clone(&udp),
            io: io_state,
            batching,
            relay: cfg.relay,
            accept_tx,
            other_tx,
        };
        ::tokio::spawn(driver.run());
        Ok(Self {
            inner: Arc::new(SocketInner {
                shared,
                udp,
                local,
                relay: cfg.relay,
                connect_timeout: cfg.connect_timeout,
                accept_rx: ::tokio::sync::Mutex::new(accept_rx),
                other_rx: Mutex::new(Some(other_rx)),
            }),
        })
    }

    /// The bound address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// The relay every datagram goes through ([`SocketConfig::relay`]), if any.
    #[must_use]
    pub fn relay(&self) -> Option<SocketAddr> {
        self.inner.relay
    }

    /// Opens a uTP connection to `addr`, waiting at most the configured connect timeout
    /// (`TimedOut`); a peer that answers with ST_RESET gives `ConnectionRefused`.
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<UtpStream> {
        let shared = &self.inner.shared;
        let (tx, rx) = oneshot::channel();
        let handle = {
            let mut st = shared.lock();
            if st.dead {
                return Err(dead());
            }
            let h = st
                .endpoint
                .connect(Instant::now(), addr)
                .ok_or_else(|| io::Error::other("too many uTP connections"))?;
            st.streams.insert(
                h,
                Slot {
                    connect: Some(tx),
                    ..Slot::default()
                },
            );
            h
        };
        shared.notify.notify_one();
        // Dropping the stream on failure aborts the half-open connection.
        let stream = UtpStream {
            shared: Arc::clone(shared),
            handle,
            peer: addr,
        };
        match ::tokio::time::timeout(self.inner.connect_timeout, rx).await {
            Ok(Ok(Ok(()))) => Ok(stream),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(dead()),
            Err(_) => {
                if let Some(c) = shared.lock().endpoint.connection(handle) {
                    c.abort();
                }
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "uTP connect timed out",
                ))
            }
        }
    }

    /// Waits for the next incoming connection.
    pub async fn accept(&self) -> io::Result<(UtpStream, SocketAddr)> {
        let mut rx = self.inner.accept_rx.lock().await;
        let (handle, peer) = rx.recv().await.ok_or_else(dead)?;
        Ok((
            UtpStream {
                shared: Arc::clone(&self.inner.shared),
                handle,
                peer,
            },
            peer,
        ))
    }

    /// The receiver of datagrams that are not uTP (a KRPC message starts with `d`), once:
    /// `None` on later calls. Until it is taken such datagrams are discarded; when its
    /// queue is full, new ones are.
    pub fn take_other_datagrams(&self) -> Option<mpsc::Receiver<(Bytes, SocketAddr)>> {
        let rx = self
            .inner
            .other_rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if rx.is_some() {
            self.inner.shared.other_taken.store(true, Ordering::Release);
        }
        rx
    }

    /// Sends one datagram from this socket (for the DHT), through the relay when there is
    /// one.
    pub async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> io::Result<usize> {
        match self.inner.relay {
            Some(relay) => {
                let mut d = Vec::with_capacity(crate::relay::MAX_ADDR_HEADER + buf.len());
                crate::relay::encode_header(addr, &mut d);
                d.extend_from_slice(buf);
                self.inner.udp.send_to(&d, relay).await.map(|_| buf.len())
            }
            None => self.inner.udp.send_to(buf, addr).await,
        }
    }

    /// Number of uTP connections, and how many of them are half-open.
    #[must_use]
    pub fn connections(&self) -> (usize, usize) {
        self.inner.shared.lock().endpoint.len()
    }
}

/// One uTP connection as a byte stream. `shutdown` sends ST_FIN after everything written;
/// dropping the stream closes it the same way, or resets it (ST_RESET) when received data
/// was left unread.
#[derive(Debug)]
pub struct UtpStream {
    shared: Arc<Shared>,
    handle: ConnectionHandle,
    peer: SocketAddr,
}

impl UtpStream {
    /// The remote address.
    #[must_use]
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The connection's counters, round-trip time and congestion window, while it is open.
    #[must_use]
    pub fn stats(&self) -> Option<StreamStats> {
        let mut st = self.shared.lock();
        st.endpoint.connection(self.handle).map(|c| StreamStats {
            counters: c.stats(),
            rtt: c.rtt(),
            congestion_window: c.congestion_window(),
            path_mtu: c.path_mtu(),
        })
    }
}

/// A snapshot of one stream's connection (for peer lists and benchmarks).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// Packet counters.
    pub counters: Stats,
    /// Smoothed round-trip time, once measured.
    pub rtt: Option<Duration>,
    /// Congestion window in bytes.
    pub congestion_window: usize,
    /// Largest datagram sent but MTU probes.
    pub path_mtu: usize,
}

impl AsyncRead for UtpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut guard = this.shared.lock();
        let State {
            endpoint, streams, ..
        } = &mut *guard;
        let Some(slot) = streams.get_mut(&this.handle) else {
            return Poll::Ready(Err(dead()));
        };
        let Some(conn) = endpoint.connection(this.handle) else {
            return Poll::Ready(closed_read(slot));
        };
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let n = conn.read(buf.initialize_unfilled());
        if n > 0 {
            buf.advance(n);
            let ack = conn.ack_due();
            drop(guard);
            if ack {
                // The read reopened the window: the driver sends the update now.
                this.shared.notify.notify_one();
            }
            return Poll::Ready(Ok(()));
        }
        if slot.eof {
            return Poll::Ready(Ok(()));
        }
        set_waker(&mut slot.read, cx);
        Poll::Pending
    }
}

impl AsyncWrite for UtpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut guard = this.shared.lock();
        let State {
            endpoint, streams, ..
        } = &mut *guard;
        let Some(slot) = streams.get_mut(&this.handle) else {
            return Poll::Ready(Err(dead()));
        };
        if slot.shut {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "uTP stream shut down for writing",
            )));
        }
        let Some(conn) = endpoint.connection(this.handle) else {
            return Poll::Ready(Err(close_error(slot.closed, io::ErrorKind::BrokenPipe)));
        };
        let n = conn.write(buf);
        if n > 0 {
            drop(guard);
            this.shared.notify.notify_one();
            return Poll::Ready(Ok(n));
        }
        // Either the send buffer is full (Event::Writable follows) or we already closed.
        set_waker(&mut slot.write, cx);
        Poll::Pending
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are in the connection's send buffer; the driver sends them.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut guard = this.shared.lock();
        if let Some(slot) = guard.streams.get_mut(&this.handle) {
            slot.shut = true;
        }
        if let Some(c) = guard.endpoint.connection(this.handle) {
            c.close();
        }
        drop(guard);
        this.shared.notify.notify_one();
        Poll::Ready(Ok(()))
    }
}

impl Drop for UtpStream {
    fn drop(&mut self) {
        let mut guard = self.shared.lock();
        let State {
            endpoint, streams, ..
        } = &mut *guard;
        match endpoint.connection(self.handle) {
            Some(conn) => {
                let eof = streams.get(&self.handle).is_some_and(|s| s.eof);
                if conn.readable_len() > 0 && !eof {
                    conn.abort();
                } else {
                    conn.close();
                }
                if let Some(slot) = streams.get_mut(&self.handle) {
                    slot.dropped = true;
                    slot.read = None;
                    slot.write = None;
                }
            }
            None => {
                streams.remove(&self.handle);
            }
        }
        drop(guard);
        self.shared.notify.notify_one();
    }
}

struct Driver {
    shared: Arc<Shared>,
    udp: Arc<UdpSocket>,
    io: UdpSocketState,
    batching: bool,
    relay: Option<SocketAddr>,
    accept_tx: mpsc::Sender<(ConnectionHandle, SocketAddr)>,
    other_tx: mpsc::Sender<(Bytes, SocketAddr)>,
}

impl Driver {
    async fn run(self) {
        let mut recv_buf = vec![0u8; RECV_SLOT * BATCH_SIZE];
        let mut metas = [RecvMeta::default(); BATCH_SIZE];
        let mut out = Vec::with_capacity(SEND_BATCH * 1500);
        let mut segs: Vec<(SocketAddr, usize)> = Vec::with_capacity(SEND_BATCH);
        let mut orphaned_since: Option<Instant> = None;
        loop {
            // Timers, events, then a batch of datagrams to send.
            let (deadline, more) = {
                let mut st = self.shared.lock();
                let now = Instant::now();
                if st.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                    st.endpoint.handle_timeout(now);
                    // Half-open connections that expired leave without an event.
                    let State {
                        endpoint, streams, ..
                    } = &mut *st;
                    streams.retain(|h, s| {
                        s.unconfirmed.is_none() || endpoint.connection(*h).is_some()
                    });
                }
                self.process_events(&mut st);
                while segs.len() < SEND_BATCH {
                    let start = out.len();
                    let Some(addr) = st.endpoint.poll_transmit_into(now, &mut out) else {
                        break;
                    };
                    segs.push((addr, out.len() - start));
                }
                self.process_events(&mut st);
                (st.endpoint.poll_timeout(), segs.len() == SEND_BATCH)
            };
            if !segs.is_empty() {
                self.send(&out, &segs).await;
                out.clear();
                segs.clear();
            }
            if Arc::strong_count(&self.shared) == 1 {
                let since = *orphaned_since.get_or_insert_with(Instant::now);
                if self.shared.lock().endpoint.is_empty() || since.elapsed() >= LINGER {
                    return;
                }
            }
            if !more {
                let sleep = deadline.map(::tokio::time::Instant::from_std);
                ::tokio::select! {
                    r = self.udp.readable() => {
                        if r.is_err() {
                            break;
                        }
                    }
                    () = self.shared.notify.notified() => {}
                    () = async {
                        match sleep {
                            Some(t) => ::tokio::time::sleep_until(t).await,
                            None => std::future::pending().await,
                        }
                    } => {}
                    () = ::tokio::time::sleep(LINGER), if orphaned_since.is_some() => {}
                    r = self.udp.ready(Interest::ERROR), if cfg!(any(target_os = "linux", target_os = "android")) => {
                        if r.is_ok() {
                            self.drain_icmp();
                        }
                    }
                }
            }
            for _ in 0..RECV_ROUNDS {
                match self.recv(&mut recv_buf, &mut metas) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        let mut st = self.shared.lock();
        st.dead = true;
        for slot in st.streams.values_mut() {
            wake(&mut slot.read);
            wake(&mut slot.write);
            if let Some(tx) = slot.connect.take() {
                let _ = tx.send(Err(dead()));
            }
        }
    }

    /// Reads the ICMP errors queued for the socket: a connect to an address that answered
    /// "unreachable" fails at once ([`Endpoint::handle_unreachable`]).
    fn drain_icmp(&self) {
        // At most a batch at a time: the readiness stays set until the queue is empty, so
        // the rest is read at the next turn of the loop, after the datagrams.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        for _ in 0..BATCH_SIZE.max(32) {
            match self.udp.try_io(Interest::ERROR, || icmp::recv(&self.udp)) {
                Ok(Some(addr)) => {
                    let mut st = self.shared.lock();
                    if st.endpoint.handle_unreachable(addr) > 0 {
                        tracing::debug!(%addr, "uTP connect answered by ICMP unreachable");
                        self.process_events(&mut st);
                    }
                }
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // One message lost (too long for the buffer, say); the next may be read.
                Err(e) => tracing::debug!("reading the ICMP error queue: {e}"),
            }
        }
    }

    /// Receives one batch without waiting and feeds it to the endpoint; returns the number
    /// of datagrams.
    fn recv(&self, recv_buf: &mut [u8], metas: &mut [RecvMeta; BATCH_SIZE]) -> io::Result<usize> {
        let mut chunks = recv_buf.chunks_mut(RECV_SLOT);
        let mut iovs: [IoSliceMut<'_>; BATCH_SIZE] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        let slots = if self.batching { BATCH_SIZE } else { 1 };
        let n = match self.udp.try_io(Interest::READABLE, || {
            self.io.recv(
                UdpSockRef::from(&*self.udp),
                &mut iovs[..slots],
                &mut metas[..slots],
            )
        }) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            // ICMP errors and the like surface here; they concern one datagram.
            Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(e),
            Err(_) => return Ok(1),
        };
        let now = Instant::now();
        let mut count = 0;
        let mut st = self.shared.lock();
        for (meta, iov) in metas.iter().zip(iovs.iter()).take(n) {
            let data = iov.get(..meta.len).unwrap_or_default();
            for d in data.chunks(meta.stride.max(1)) {
                count += 1;
                // Through a relay: only its datagrams, each from the source it names.
                let (from, d) = match self.relay {
                    None => (meta.addr, d),
                    Some(relay) if meta.addr == relay => match crate::relay::decode(d) {
                        Some(inner) => inner,
                        None => continue,
                    },
                    Some(_) => continue,
                };
                if !is_utp(d) {
                    if self.shared.other_taken.load(Ordering::Acquire) {
                        let _ = self.other_tx.try_send((Bytes::copy_from_slice(d), from));
                    }
                    continue;
                }
                match st.endpoint.handle_datagram(now, from, d) {
                    DatagramOutcome::Accepted(h) => {
                        st.streams.insert(
                            h,
                            Slot {
                                unconfirmed: Some(from),
                                ..Slot::default()
                            },
                        );
                    }
                    DatagramOutcome::Routed(h) => {
                        if !st.endpoint.is_half_open(h)
                            && let Some(addr) =
                                st.streams.get_mut(&h).and_then(|s| s.unconfirmed.take())
                        {
                            self.accepted(&mut st, h, addr);
                        }
                    }
                    _ => {}
                }
            }
        }
        drop(st);
        Ok(count.max(1))
    }

    /// Offers a confirmed incoming connection to `accept`.
    fn accepted(&self, st: &mut State, h: ConnectionHandle, addr: SocketAddr) {
        if self.accept_tx.try_send((h, addr)).is_err() {
            // Backlog full (or nobody accepts): refuse with ST_RESET.
            tracing::debug!(%addr, "uTP accept backlog full");
            if let Some(c) = st.endpoint.connection(h) {
                c.abort();
            }
            if let Some(slot) = st.streams.get_mut(&h) {
                slot.dropped = true;
            }
        }
    }

    fn process_events(&self, st: &mut State) {
        let State {
            endpoint, streams, ..
        } = st;
        while let Some((h, ev)) = endpoint.poll_event() {
            let Some(slot) = streams.get_mut(&h) else {
                continue;
            };
            match ev {
                Event::Connected => {
                    if let Some(tx) = slot.connect.take() {
                        let _ = tx.send(Ok(()));
                    }
                }
                Event::Readable => {
                    if slot.dropped {
                        if let Some(c) = endpoint.connection(h) {
                            let mut sink = [0u8; 4096];
                            while c.read(&mut sink) > 0 {}
                        }
                    } else {
                        wake(&mut slot.read);
                    }
                }
                Event::Writable => wake(&mut slot.write),
                Event::PeerClosed => {
                    slot.eof = true;
                    wake(&mut slot.read);
                }
                Event::Closed(reason) => {
                    slot.closed = Some(reason);
                    if let Some(tx) = slot.connect.take() {
                        let _ = tx.send(Err(close_error(
                            Some(reason),
                            io::ErrorKind::ConnectionRefused,
                        )));
                    }
                    wake(&mut slot.read);
                    wake(&mut slot.write);
                    if slot.dropped || slot.unconfirmed.is_some() {
                        streams.remove(&h);
                    }
                }
            }
        }
    }

    /// Sends the encoded datagrams one by one to the relay, each behind its header. Lost
    /// ones (the socket's buffer full) are retransmitted by uTP.
    async fn send_relayed(&self, relay: SocketAddr, out: &[u8], segs: &[(SocketAddr, usize)]) {
        let mut d = Vec::with_capacity(crate::relay::MAX_ADDR_HEADER + 1500);
        let mut off = 0;
        for &(addr, size) in segs {
            let Some(contents) = out.get(off..off + size) else {
                return;
            };
            off += size;
            d.clear();
            crate::relay::encode_header(addr, &mut d);
            d.extend_from_slice(contents);
            let _ = self.udp.send_to(&d, relay).await;
        }
    }

    /// Sends the encoded datagrams, runs of equal-sized ones to one peer as one GSO send.
    async fn send(&self, out: &[u8], segs: &[(SocketAddr, usize)]) {
        if let Some(relay) = self.relay {
            self.send_relayed(relay, out, segs).await;
            return;
        }
        let max_segments = if self.batching {
            self.io.max_gso_segments().max(1)
        } else {
            1
        };
        let mut i = 0;
        let mut off = 0;
        while i < segs.len() {
            let (addr, size) = segs[i];
            let mut j = i + 1;
            let mut total = size;
            while j < segs.len() && j - i < max_segments && segs[j].0 == addr {
                let len = segs[j].1;
                if len > size || total + len > 65_000 {
                    break;
                }
                total += len;
                j += 1;
                if len < size {
                    break;
                }
            }
            let Some(contents) = out.get(off..off + total) else {
                return;
            };
            let transmit = quinn_udp::Transmit {
                destination: addr,
                ecn: None,
                contents,
                segment_size: (j - i > 1).then_some(size),
                src_ip: None,
            };
            loop {
                match self.udp.try_io(Interest::WRITABLE, || {
                    self.io.send(UdpSockRef::from(&*self.udp), &transmit)
                }) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if self.udp.writable().await.is_err() {
                            return;
                        }
                    }
                    // quinn-udp reports only WouldBlock; other errors lose the datagrams,
                    // which uTP retransmits.
                    _ => break,
                }
            }
            off += total;
            i = j;
        }
    }
}

/// BEP 29 version 1 packets: type 0..=4 in the high nibble, version 1 in the low one.
/// KRPC (bencoded dictionaries) starts with `d` (0x64), never a uTP first byte.
fn is_utp(d: &[u8]) -> bool {
    d.len() >= crate::limits::HEADER_LEN
        && d.first()
            .is_some_and(|&b| b & 0x0f == crate::VERSION && b >> 4 <= 4)
}

fn set_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn wake(slot: &mut Option<Waker>) {
    if let Some(w) = slot.take() {
        w.wake();
    }
}

fn closed_read(slot: &Slot) -> io::Result<()> {
    if slot.eof || matches!(slot.closed, Some(CloseReason::Done) | None) {
        Ok(())
    } else {
        Err(close_error(slot.closed, io::ErrorKind::ConnectionReset))
    }
}

fn close_error(reason: Option<CloseReason>, default: io::ErrorKind) -> io::Error {
    let kind = match reason {
        Some(CloseReason::Reset) => io::ErrorKind::ConnectionReset,
        Some(CloseReason::TimedOut) => io::ErrorKind::TimedOut,
        Some(CloseReason::Aborted | CloseReason::ZeroWindow) => io::ErrorKind::ConnectionAborted,
        Some(CloseReason::Unreachable) => io::ErrorKind::ConnectionRefused,
        _ => default,
    };
    let what = match reason {
        Some(CloseReason::Reset) => "uTP connection reset by the peer",
        Some(CloseReason::TimedOut) => "uTP connection timed out",
        Some(CloseReason::ZeroWindow) => "uTP peer kept a zero window too long",
        Some(CloseReason::Aborted) => "uTP connection aborted",
        Some(CloseReason::Unreachable) => "uTP connect answered by ICMP unreachable",
        _ => "uTP connection closed",
    };
    io::Error::new(kind, what)
}

fn dead() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "uTP socket driver has stopped")
}

/// 32 seed bytes from the standard library's randomly keyed hasher (OS randomness,
/// drawn once per process and varied per call).
fn os_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    let state = std::collections::hash_map::RandomState::new();
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        let mut h = state.build_hasher();
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::UNIX_EPOCH
                .elapsed()
                .map_or(0, |d| d.as_nanos()),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    seed
}

/// ICMP errors for the socket's datagrams (`IP_RECVERR`, read with `MSG_ERRQUEUE`), through
/// nix's safe wrappers: the kernel queues one for each "port unreachable" and the like, with
/// the destination of the datagram that caused it.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod icmp {
    use std::io::{self, IoSliceMut};
    use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;

    use ::tokio::net::UdpSocket;
    use nix::libc;
    use nix::sys::socket::{
        self, ControlMessageOwned, MsgFlags, SockaddrLike as _, SockaddrStorage, sockopt,
    };

    /// Asks the kernel to queue the ICMP errors that come back for the socket's datagrams.
    pub(super) fn enable(udp: &UdpSocket) -> io::Result<()> {
        if udp.local_addr()?.is_ipv6() {
            socket::setsockopt(udp, sockopt::Ipv6RecvErr, &true)?;
            // A dual-stack socket hears of IPv4 peers' errors as IPv4 ones.
            let _ = socket::setsockopt(udp, sockopt::Ipv4RecvErr, &true);
        } else {
            socket::setsockopt(udp, sockopt::Ipv4RecvErr, &true)?;
        }
        Ok(())
    }

    /// Reads one queued error: `Some(addr)` when a datagram sent to `addr` came back
    /// unreachable (port, host or network), `None` for any other error (a path MTU report,
    /// say). `Err(WouldBlock)` when the queue is empty.
    pub(super) fn recv(udp: &UdpSocket) -> io::Result<Option<SocketAddr>> {
        let mut payload = [0u8; 64];
        let mut iov = [IoSliceMut::new(&mut payload)];
        // The error and its offender's address, and beside them the control messages
        // quinn-udp turned on for every datagram (packet info, ECN, GRO).
        let mut cmsg = [0u8; 512];
        let msg = socket::recvmsg::<SockaddrStorage>(
            udp.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        )?;
        let dest = msg.address.as_ref().and_then(to_std);
        let unreachable = msg.cmsgs()?.any(|c| match c {
            ControlMessageOwned::Ipv4RecvErr(e, _) => {
                e.ee_origin == libc::SO_EE_ORIGIN_ICMP && is_unreachable(e.ee_errno)
            }
            ControlMessageOwned::Ipv6RecvErr(e, _) => {
                e.ee_origin == libc::SO_EE_ORIGIN_ICMP6 && is_unreachable(e.ee_errno)
            }
            _ => false,
        });
        Ok(dest.filter(|_| unreachable))
    }

    fn is_unreachable(errno: u32) -> bool {
        i32::try_from(errno).is_ok_and(|e| {
            matches!(
                e,
                libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH
            )
        })
    }

    fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
        match a.family()? {
            socket::AddressFamily::Inet => a
                .as_sockaddr_in()
                .map(|s| SocketAddr::V4(SocketAddrV4::from(*s))),
            socket::AddressFamily::Inet6 => a
                .as_sockaddr_in6()
                .map(|s| SocketAddr::V6(SocketAddrV6::from(*s))),
            _ => None,
        }
    }
}
