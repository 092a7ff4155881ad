//! Peer sockets: outgoing connects (one attempt each, over the transport and with the MSE
//! choice the engine made), incoming connections (plaintext or MSE, told apart by their
//! first bytes), and the reader and writer of each connection. The writer reports every
//! write back to the engine ([`lt_engine::Input::Drained`]), which is what bounds the
//! blocks queued for a peer; [`Writer::send`] bounds everything queued for it
//! ([`max_unwritten`]).
//!
//! Incoming connections in their handshake hold one of a fixed number of permits; at the
//! cap the oldest of them makes room for the newcomer ([`start_accept`]), so connections
//! that stall in their handshake cannot keep others out.
//!
//! An SSL torrent's connections run TLS on the transport ([`crate::ssl`]): dialled with
//! the torrent's setup and its info-hash as SNI, accepted on the SSL listen port with the
//! setup of the torrent the SNI names. They never run MSE.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use lt_core::Sha1Hash;
use lt_engine::{ConnId, Handshake, Input, IoError, Transport};
use lt_utp::tokio::{UtpSocket, UtpStream};
use lt_wire::HANDSHAKE_LEN;
use lt_wire::mse::{MseConfig, MseHandshake, MseStatus, classify_incoming};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::AbortHandle;

use crate::proxy::{Command, ProxyError};
use crate::ssl::{SslContexts, sni_hash};
use crate::{Event, ProxySettings, Shared};

/// Bytes read from a socket at once: 64 KiB. Each read is one input to the engine, and
/// what one input can make the engine queue grows with it: 64 KiB of a peer toggling its
/// interest are 13,000 messages that each make a choke or unchoke to send (256 KiB reads
/// let such a peer grow lt seed by 50 MB, 64 KiB ones by 13 MB). Transfers on loopback
/// ran as fast with 64 KiB reads as with 256 KiB ones.
const READ_CHUNK: usize = 64 * 1024;
/// Buffers written with one vectored write at most.
const MAX_IOV: usize = 64;
/// The least that may wait in one connection's writer, counted by [`send_cost`]: 4 MiB;
/// see [`max_unwritten`].
const MIN_UNWRITTEN: usize = 4 << 20;
/// What a buffer handed to a writer costs besides its bytes (its `Bytes` handle), and what
/// each hand-over costs (the `Vec` of up to four handles the engine makes, its allocation
/// header and the channel's slot). Estimates, so that many tiny messages count for the
/// memory they take: a peer toggling its interest makes 5-byte messages of about 200
/// bytes each.
const BUF_COST: usize = 16;
const SEND_COST: usize = 192;

/// Most that may wait in one connection's writer, counted by [`send_cost`]: four times the
/// engine's send buffer watermark, at least [`MIN_UNWRITTEN`]. The engine keeps the blocks
/// it sends a peer under the watermark, but not the small messages it answers with (choke
/// and unchoke when a peer toggles its interest, rejects, ...): a peer that keeps asking
/// and never reads would make those pile up without end. Past this its connection is
/// closed as dead (issue 18, hostile-peer suite).
pub(crate) fn max_unwritten(send_buffer_watermark: usize) -> usize {
    send_buffer_watermark.saturating_mul(4).max(MIN_UNWRITTEN)
}

/// How long a closed connection's writer may go on writing what it was handed (a last
/// reject or bitfield) before it is stopped; a peer that does not read cannot keep it, or
/// the socket, any longer.
const WRITER_LINGER: Duration = Duration::from_secs(5);

/// A connection's read loop, to spawn.
pub(crate) type ReadLoop = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A peer connection's socket: TCP or uTP, or TLS on either (an SSL torrent's).
pub(crate) enum PeerStream {
    Tcp(TcpStream),
    Utp(UtpStream),
    Tls(Box<tokio_rustls::TlsStream<Self>>),
}

impl PeerStream {
    /// The transport (under TLS, the one TLS runs on).
    pub(crate) fn transport(&self) -> Transport {
        match self {
            Self::Tcp(_) => Transport::Tcp,
            Self::Utp(_) => Transport::Utp,
            Self::Tls(s) => s.get_ref().0.transport(),
        }
    }

    /// Starts the writer and returns it and the read half's loop.
    pub(crate) fn start(self, conn: ConnId, events: &mpsc::Sender<Event>) -> (Writer, ReadLoop) {
        match self {
            Self::Tcp(s) => {
                let (read, write) = s.into_split();
                (
                    spawn_writer(write, conn, events.clone()),
                    Box::pin(read_loop(conn, read, events.clone())),
                )
            }
            Self::Utp(s) => {
                let (read, write) = tokio::io::split(s);
                (
                    spawn_writer(write, conn, events.clone()),
                    Box::pin(read_loop(conn, read, events.clone())),
                )
            }
            Self::Tls(s) => {
                let (read, write) = tokio::io::split(s);
                (
                    spawn_writer(write, conn, events.clone()),
                    Box::pin(read_loop(conn, read, events.clone())),
                )
            }
        }
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Utp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Utp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Utp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::Utp(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Utp(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Utp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How outgoing connections are made.
#[derive(Clone)]
pub(crate) struct Dialer {
    /// uTP sockets (IPv4, IPv6).
    pub(crate) utp: Vec<UtpSocket>,
    pub(crate) config: MseConfig,
    pub(crate) timeout: Duration,
    /// The session's proxy: TCP connections go through it when it carries peer
    /// connections, and uTP is not dialled then.
    pub(crate) proxy: Arc<RwLock<Option<ProxySettings>>>,
    /// uTP sockets on the SSL listen port, which SSL torrents dial from (as libtorrent's
    /// SSL uTP socket manager does).
    pub(crate) ssl_utp: Vec<UtpSocket>,
    /// The SSL torrents' TLS setups.
    pub(crate) ssl: Arc<SslContexts>,
}

/// An MSE failure as an I/O error (the peer sent something that is not a handshake we accept).
fn mse_error(e: impl std::fmt::Display) -> IoError {
    IoError::new(std::io::ErrorKind::InvalidData, format!("MSE: {e}"))
}

/// Runs an MSE handshake to its end. An incoming one asks the engine
/// ([`lt_engine::Engine::torrent_for_skey`], through `shared`) which torrent its SKEY names.
async fn mse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mut hs: MseHandshake,
    shared: Option<&Shared>,
) -> Result<Handshake, IoError> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(out) = hs.poll_transmit() {
            stream.write_all(&out).await?;
        }
        match hs.status() {
            MseStatus::Done => break,
            MseStatus::NeedSkey(h) => {
                let ih = shared.and_then(|s| s.engine().torrent_for_skey(&h));
                hs.provide_skey(ih).map_err(mse_error)?;
                continue;
            }
            MseStatus::InProgress => {}
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(IoError::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed during the MSE handshake",
            ));
        }
        hs.handle_bytes(&buf[..n]).map_err(mse_error)?;
    }
    let out = hs.finish().map_err(mse_error)?;
    Ok(Handshake {
        cipher: out.cipher,
        received: out.received,
        encrypted: true,
        ssl: None,
    })
}

/// Runs the MSE handshake on a fresh stream when asked.
async fn negotiate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    info_hash: Sha1Hash,
    encrypt: bool,
    config: &MseConfig,
    timeout: Duration,
) -> Result<Handshake, IoError> {
    if !encrypt {
        return Ok(Handshake::default());
    }
    let mut seed = [0u8; 32];
    crate::random_bytes(&mut seed);
    let hs = MseHandshake::initiate(config, info_hash, seed);
    tokio::time::timeout(timeout, mse(stream, hs, None))
        .await
        .map_err(|_| IoError::new(std::io::ErrorKind::TimedOut, "MSE handshake timed out"))?
}

/// Runs MSE (when asked) on a fresh connection of either transport.
async fn handshake(
    stream: &mut PeerStream,
    info_hash: Sha1Hash,
    encrypt: bool,
    dialer: &Dialer,
) -> Result<Handshake, IoError> {
    negotiate(stream, info_hash, encrypt, &dialer.config, dialer.timeout).await
}

/// What the engine asked to dial ([`lt_engine::Action::Connect`]).
pub(crate) struct DialRequest {
    pub(crate) conn: ConnId,
    pub(crate) addr: SocketAddr,
    pub(crate) transport: Transport,
    pub(crate) info_hash: Sha1Hash,
    pub(crate) encrypt: bool,
    /// TLS for an SSL torrent.
    pub(crate) ssl: bool,
    pub(crate) race_tcp_after: Option<Duration>,
}

/// Opens the transport: a TCP connect, or a uTP connect on the socket of the address's
/// family (for an SSL torrent, `ssl`, the one on the SSL listen port).
async fn open(
    addr: SocketAddr,
    transport: Transport,
    dialer: &Dialer,
    ssl: bool,
) -> Result<PeerStream, IoError> {
    let proxy = dialer
        .proxy
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .filter(|p| p.proxy_peer_connections);
    match (transport, proxy) {
        (Transport::Tcp, Some(p)) => {
            let (stream, _) = crate::proxy::open(&p, Command::Connect(addr), dialer.timeout)
                .await
                .map_err(ProxyError::into_io)?;
            Ok(PeerStream::Tcp(stream))
        }
        (Transport::Tcp, None) => {
            let stream = tokio::time::timeout(dialer.timeout, TcpStream::connect(addr))
                .await
                .map_err(|_| IoError::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
            let _ = stream.set_nodelay(true);
            Ok(PeerStream::Tcp(stream))
        }
        (Transport::Utp, proxy) => {
            // Behind a proxy only a socket whose datagrams go through its relay is used.
            let proxied = proxy.is_some();
            let sockets = if ssl { &dialer.ssl_utp } else { &dialer.utp };
            let utp = sockets
                .iter()
                .filter(|u| !proxied || u.relay().is_some())
                .find(|u| proxied || u.local_addr().is_ipv4() == addr.is_ipv4())
                .ok_or_else(|| {
                    IoError::new(
                        std::io::ErrorKind::AddrNotAvailable,
                        if proxied {
                            "uTP does not go through this proxy"
                        } else {
                            "no uTP socket for this address family"
                        },
                    )
                })?;
            Ok(PeerStream::Utp(utp.connect(addr).await?))
        }
    }
}

/// uTP first; when it has not connected after `after`, TCP beside it, the first to connect
/// kept and the other dropped (a dropped uTP connect is aborted). A uTP connect that fails
/// before then (an ICMP port unreachable) is followed by TCP at once. Fails when both do,
/// with the TCP error.
async fn race(
    addr: SocketAddr,
    after: Duration,
    dialer: &Dialer,
    ssl: bool,
) -> Result<PeerStream, IoError> {
    let utp = open(addr, Transport::Utp, dialer, ssl);
    tokio::pin!(utp);
    tokio::select! {
        r = &mut utp => return match r {
            Ok(s) => Ok(s),
            Err(_) => open(addr, Transport::Tcp, dialer, ssl).await,
        },
        () = tokio::time::sleep(after) => {}
    }
    let tcp = open(addr, Transport::Tcp, dialer, ssl);
    tokio::pin!(tcp);
    tokio::select! {
        r = &mut utp => match r {
            Ok(s) => Ok(s),
            Err(_) => tcp.await,
        },
        r = &mut tcp => match r {
            Ok(s) => Ok(s),
            Err(e) => utp.await.map_err(|_| e),
        },
    }
}

/// One dial as the engine asked (it chose the transport, and chooses the next after a
/// failure). A failure is the engine's input: [`Input::ConnectFailed`] when the transport
/// did not connect, [`Input::HandshakeFailed`] when the encryption handshake after it
/// failed. Returns the stream and the transport it is on (a raced dial may end on TCP).
async fn dial(
    req: &DialRequest,
    dialer: &Dialer,
) -> Result<(PeerStream, Transport, Handshake), Input> {
    let conn = req.conn;
    let opened = match (req.transport, req.race_tcp_after) {
        (Transport::Utp, Some(after)) => race(req.addr, after, dialer, req.ssl).await,
        (transport, _) => open(req.addr, transport, dialer, req.ssl).await,
    };
    let mut stream = opened.map_err(|error| Input::ConnectFailed { conn, error })?;
    let transport = stream.transport();
    if req.ssl {
        let tls = tls_connect(stream, &req.info_hash, dialer)
            .await
            .map_err(|error| Input::HandshakeFailed { conn, error })?;
        let hs = Handshake {
            ssl: Some(req.info_hash),
            ..Handshake::default()
        };
        return Ok((tls, transport, hs));
    }
    let hs = handshake(&mut stream, req.info_hash, req.encrypt, dialer)
        .await
        .map_err(|error| Input::HandshakeFailed { conn, error })?;
    Ok((stream, transport, hs))
}

/// A TLS failure as an I/O error.
fn tls_error(e: impl std::fmt::Display) -> IoError {
    IoError::new(std::io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

/// Runs TLS as the client of an SSL torrent's peer: the torrent's setup, its info-hash as
/// SNI, within the connect timeout.
async fn tls_connect(
    stream: PeerStream,
    info_hash: &Sha1Hash,
    dialer: &Dialer,
) -> Result<PeerStream, IoError> {
    let tls = dialer
        .ssl
        .get(info_hash)
        .ok_or_else(|| tls_error("the torrent has no certificate"))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.client));
    let s = tokio::time::timeout(dialer.timeout, connector.connect(tls.sni.clone(), stream))
        .await
        .map_err(|_| IoError::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?
        .map_err(tls_error)?;
    Ok(PeerStream::Tls(Box::new(s.into())))
}

/// Runs TLS as the server of a connection to the SSL listen port: its SNI picks the
/// torrent, whose setup shows our certificate and checks the peer's. Returns the stream
/// and the torrent's hash. A connection without SNI, or naming a torrent without a TLS
/// setup here, fails before anything is sent back.
async fn tls_accept(
    stream: PeerStream,
    ssl: &SslContexts,
) -> Result<(PeerStream, Sha1Hash), IoError> {
    let acceptor =
        tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = acceptor.await.map_err(tls_error)?;
    let hash = start
        .client_hello()
        .server_name()
        .and_then(sni_hash)
        .ok_or_else(|| tls_error("no SNI naming a torrent"))?;
    let tls = ssl
        .get(&hash)
        .ok_or_else(|| tls_error("the SNI names no SSL torrent with a certificate here"))?;
    let s = start
        .into_stream(Arc::clone(&tls.server))
        .await
        .map_err(tls_error)?;
    Ok((PeerStream::Tls(Box::new(s.into())), hash))
}

/// Dials as the engine asked, then runs the connection.
pub(crate) async fn connect(req: DialRequest, dialer: Dialer, events: mpsc::Sender<Event>) {
    let conn = req.conn;
    match dial(&req, &dialer).await {
        Ok((stream, transport, handshake)) => {
            let (writer, reader) = stream.start(conn, &events);
            if events
                .send(Event::Connected {
                    conn,
                    writer,
                    transport,
                    handshake,
                })
                .await
                .is_ok()
            {
                reader.await;
            }
        }
        Err(failed) => {
            let _ = events.send(Event::Engine(failed)).await;
        }
    }
}

/// Starts the first-bytes task of an accepted connection, holding one of `handshakes`'
/// permits until it ends (issue 18, finding 7: a flood of connections that never finish
/// their handshake costs at most that many tasks, and no DH exponentiation past them).
///
/// Without a free permit the oldest connection still in its first bytes is closed and the
/// new one takes its place, as libtorrent disconnects the least useful peer at its
/// connection limit: otherwise as many connections as there are permits, each sending a
/// byte now and then (slowloris), would keep every other peer out for good. An honest
/// handshake arrives in one packet and is through long before it is the oldest.
///
/// `ssl`: the connection came to the SSL listen port, and runs TLS before anything else.
pub(crate) fn start_accept(
    stream: PeerStream,
    addr: SocketAddr,
    ssl: bool,
    shared: &Arc<Shared>,
    handshakes: &Arc<HandshakeSlots>,
    timeout: Duration,
    events: &mpsc::Sender<Event>,
) {
    let Some(accepting) = handshakes.enter() else {
        tracing::debug!(peer = %addr, "too many incoming handshakes; closed");
        return;
    };
    let evicted = Arc::clone(&accepting.evict);
    let config = shared.engine().mse_config();
    let shared = Arc::clone(shared);
    let events = events.clone();
    tokio::spawn(async move {
        let _accepting = accepting;
        tokio::select! {
            () = accept(stream, addr, ssl, config, &shared, timeout, events) => {}
            () = evicted.notified() => {
                tracing::debug!(peer = %addr, "oldest incoming handshake closed for a new one");
            }
        }
    });
}

/// A session's incoming connections in their first bytes: at most `max_incoming_handshakes`
/// permits, and the connections holding them, oldest first.
pub(crate) struct HandshakeSlots {
    permits: Arc<Semaphore>,
    accepting: Mutex<VecDeque<AcceptingEntry>>,
    next_id: AtomicU64,
}

struct AcceptingEntry {
    id: u64,
    evict: Arc<Notify>,
    permit: OwnedSemaphorePermit,
}

/// A connection's place in [`HandshakeSlots`]; its permit is given back when it goes, which
/// is when the connection's task ends (or is dropped), or when a newer connection takes the
/// permit over.
pub(crate) struct Accepting {
    slots: Arc<HandshakeSlots>,
    id: u64,
    evict: Arc<Notify>,
}

impl HandshakeSlots {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(max.max(1))),
            accepting: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
        })
    }

    /// A place for a new connection: a free permit, or the oldest connection's, which is
    /// told to stop; `None` when there is neither.
    fn enter(self: &Arc<Self>) -> Option<Accepting> {
        let permit = Arc::clone(&self.permits)
            .try_acquire_owned()
            .ok()
            .or_else(|| self.evict_oldest())?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let evict = Arc::new(Notify::new());
        self.accepting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(AcceptingEntry {
                id,
                evict: Arc::clone(&evict),
                permit,
            });
        Some(Accepting {
            slots: Arc::clone(self),
            id,
            evict,
        })
    }

    /// Stops the oldest connection in its first bytes and hands its permit over.
    fn evict_oldest(&self) -> Option<OwnedSemaphorePermit> {
        let entry = self
            .accepting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()?;
        entry.evict.notify_one();
        Some(entry.permit)
    }
}

impl Drop for Accepting {
    fn drop(&mut self) {
        let mut accepting = self
            .slots
            .accepting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = accepting.iter().position(|e| e.id == self.id) {
            accepting.remove(i);
        }
    }
}

/// Reads the first bytes of an accepted connection: plaintext goes on as is, anything else
/// must be an MSE handshake for a torrent we have. On the SSL port (`ssl`), TLS for an
/// SSL torrent first, then the BitTorrent handshake inside it.
async fn accept(
    mut stream: PeerStream,
    addr: SocketAddr,
    ssl: bool,
    config: MseConfig,
    shared: &Shared,
    timeout: Duration,
    events: mpsc::Sender<Event>,
) {
    if let PeerStream::Tcp(s) = &stream {
        let _ = s.set_nodelay(true);
    }
    let work = async {
        if ssl {
            let (mut tls, hash) = tls_accept(stream, &shared.ssl).await?;
            let mut handshake = Handshake {
                ssl: Some(hash),
                ..Handshake::default()
            };
            read_bt_handshake(&mut tls, &mut handshake).await?;
            return Ok((tls, handshake));
        }
        let handshake = first_bytes(&mut stream, config, shared).await?;
        Ok::<_, IoError>((stream, handshake))
    };
    let Ok(Ok((stream, handshake))) = tokio::time::timeout(timeout, work).await else {
        return;
    };
    let _ = events
        .send(Event::Incoming {
            addr,
            stream,
            handshake,
        })
        .await;
}

/// Tells plaintext from MSE by the first bytes and runs the MSE responder if needed.
async fn first_bytes<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    config: MseConfig,
    shared: &Shared,
) -> Result<Handshake, IoError> {
    {
        let mut prefix = BytesMut::with_capacity(1024);
        let plaintext = loop {
            if let Some(p) = classify_incoming(&prefix) {
                break p;
            }
            let n = stream.read_buf(&mut prefix).await?;
            if n == 0 {
                return Err(IoError::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed before the handshake",
                ));
            }
        };
        config.accept_incoming(plaintext).map_err(mse_error)?;
        let mut handshake = if plaintext {
            Handshake {
                cipher: None,
                received: prefix,
                encrypted: false,
                ssl: None,
            }
        } else {
            let mut seed = [0u8; 32];
            crate::random_bytes(&mut seed);
            let mut hs = MseHandshake::respond(&config, seed);
            hs.handle_bytes(&prefix).map_err(mse_error)?;
            mse(stream, hs, Some(shared)).await?
        };
        read_bt_handshake(stream, &mut handshake).await?;
        Ok(handshake)
    }
}

/// Reads (and decrypts) until the whole BitTorrent handshake is in `hs.received`, before
/// the engine sees the connection: until then a peer that stalls in it holds only a
/// handshake permit, which a newer connection can take from it (see [`start_accept`]), not
/// one of the engine's connections, which it could keep from honest peers until the
/// handshake timeout. An initiator sends its handshake at once (BEP 3).
async fn read_bt_handshake<S: AsyncRead + Unpin>(
    stream: &mut S,
    hs: &mut Handshake,
) -> Result<(), IoError> {
    while hs.received.len() < HANDSHAKE_LEN {
        let start = hs.received.len();
        if stream.read_buf(&mut hs.received).await? == 0 {
            return Err(IoError::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed in the handshake",
            ));
        }
        if let Some(c) = &mut hs.cipher {
            c.decrypt(&mut hs.received[start..]);
        }
    }
    Ok(())
}

/// A connection's writer as the engine loop holds it: the channel to its task and the cost
/// ([`send_cost`]) of what was handed to it and not yet written.
pub(crate) struct Writer {
    tx: mpsc::UnboundedSender<Vec<Bytes>>,
    unwritten: Arc<AtomicUsize>,
    task: AbortHandle,
}

/// A peer that has [`max_unwritten`] waiting to be written already: it does not read.
#[derive(Debug)]
pub(crate) struct NotReading {
    /// What was waiting.
    pub(crate) unwritten: usize,
}

impl Writer {
    /// Hands `bufs` to the writer.
    ///
    /// # Errors
    /// [`NotReading`] when the peer would have more than `limit` ([`max_unwritten`])
    /// waiting with these (they are not sent); the caller closes the connection.
    pub(crate) fn send(&self, bufs: Vec<Bytes>, limit: usize) -> Result<(), NotReading> {
        let cost = send_cost(&bufs);
        let before = self.unwritten.fetch_add(cost, Ordering::Relaxed);
        if before.saturating_add(cost) > limit {
            self.unwritten.fetch_sub(cost, Ordering::Relaxed);
            return Err(NotReading { unwritten: before });
        }
        // A closed channel means the writer failed; the read side reports the close.
        let _ = self.tx.send(bufs);
        Ok(())
    }

    /// Closes the connection's write side once what was handed over is written, or after
    /// [`WRITER_LINGER`] if the peer does not read it.
    pub(crate) fn close(self) {
        drop(self.tx);
        let task = self.task;
        if !task.is_finished() {
            tokio::spawn(async move {
                tokio::time::sleep(WRITER_LINGER).await;
                task.abort();
            });
        }
    }

    /// Stops the writer now, dropping what it holds.
    pub(crate) fn abort(self) {
        self.task.abort();
    }
}

/// What `bufs` cost while they wait in a writer: their bytes, plus [`BUF_COST`] each and
/// [`SEND_COST`].
fn send_cost(bufs: &[Bytes]) -> usize {
    bufs.iter()
        .map(|b| b.len().saturating_add(BUF_COST))
        .fold(SEND_COST, usize::saturating_add)
}

/// Starts the writer of a connection; closing it ([`Writer::close`]) closes the socket's
/// write side. The channel is unbounded: the engine bounds the blocks it sends one peer by
/// the send buffer watermark, counting down as each write is reported here, and
/// [`Writer::send`] bounds everything else by [`max_unwritten`].
pub(crate) fn spawn_writer<W: AsyncWrite + Unpin + Send + 'static>(
    mut write: W,
    conn: ConnId,
    events: mpsc::Sender<Event>,
) -> Writer {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Bytes>>();
    let unwritten = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&unwritten);
    let task = tokio::spawn(async move {
        let mut queue: VecDeque<Bytes> = VecDeque::new();
        while let Some(bufs) = rx.recv().await {
            let mut cost = send_cost(&bufs);
            queue.extend(bufs);
            while let Ok(more) = rx.try_recv() {
                cost = cost.saturating_add(send_cost(&more));
                queue.extend(more);
            }
            let written = queue.iter().map(Bytes::len).sum();
            if write_all(&mut write, &mut queue).await.is_err() {
                return;
            }
            counter.fetch_sub(cost, Ordering::Relaxed);
            let drained = Input::Drained { conn, written };
            if events.send(Event::Engine(drained)).await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    });
    Writer {
        tx,
        unwritten,
        task: task.abort_handle(),
    }
}

async fn write_all<W: AsyncWrite + Unpin>(
    write: &mut W,
    queue: &mut VecDeque<Bytes>,
) -> std::io::Result<()> {
    while !queue.is_empty() {
        let n = {
            let slices: Vec<IoSlice<'_>> = queue
                .iter()
                .take(MAX_IOV)
                .map(|b| IoSlice::new(b))
                .collect();
            write.write_vectored(&slices).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let mut left = n;
        while left > 0 {
            let Some(front) = queue.front_mut() else {
                break;
            };
            if front.len() <= left {
                left -= front.len();
                queue.pop_front();
            } else {
                front.advance(left);
                left = 0;
            }
        }
    }
    Ok(())
}

/// Reads until the socket closes, handing every chunk to the engine.
pub(crate) async fn read_loop<R: AsyncRead + Unpin + Send + 'static>(
    conn: ConnId,
    mut read: R,
    events: mpsc::Sender<Event>,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        match read.read_buf(&mut buf).await {
            Ok(0) => {
                let closed = Input::Closed { conn, error: None };
                let _ = events.send(Event::Engine(closed)).await;
                return;
            }
            Ok(_) => {
                let data = buf.split();
                let received = Input::Received { conn, data };
                if events.send(Event::Engine(received)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let closed = Input::Closed {
                    conn,
                    error: Some(IoError::from(&e)),
                };
                let _ = events.send(Event::Engine(closed)).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unwritten_limit_follows_the_watermark() {
        assert_eq!(max_unwritten(500 << 10), MIN_UNWRITTEN);
        assert_eq!(max_unwritten(3 << 20), 12 << 20);
        assert_eq!(max_unwritten(usize::MAX), usize::MAX);
        let five = Bytes::from_static(b"12345");
        assert_eq!(send_cost(&[five]), SEND_COST + BUF_COST + 5);
    }

    /// A peer that never reads: the writer takes what the limit allows, then refuses.
    #[tokio::test]
    async fn a_writer_refuses_past_its_limit() {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let (events, _rx) = mpsc::channel(16);
        let writer = spawn_writer(ours, ConnId(1), events);
        let limit = 64 << 10;
        let msg = || vec![Bytes::from_static(b"\0\0\0\x01\x01")];
        let mut sent = 0usize;
        let refused = loop {
            match writer.send(msg(), limit) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent < 10_000, "never refused");
        };
        // Every message costs far more than its 5 bytes.
        assert_eq!(sent, limit / send_cost(&msg()));
        assert!(refused.unwritten <= limit);
        writer.abort();
    }

    /// At the cap the oldest handshake gives its permit to the newcomer and is told to stop.
    #[tokio::test]
    async fn the_oldest_handshake_makes_room() {
        let slots = HandshakeSlots::new(2);
        let first = slots.enter().unwrap();
        let second = slots.enter().unwrap();
        assert_eq!(slots.permits.available_permits(), 0);
        // A third takes the first one's permit, and the first one is told to stop.
        let third = slots.enter().expect("the oldest made room");
        tokio::time::timeout(Duration::from_secs(5), first.evict.notified())
            .await
            .expect("the oldest was told");
        drop(first);
        assert_eq!(slots.permits.available_permits(), 0);
        // A finished handshake gives its permit back.
        drop(second);
        assert_eq!(slots.permits.available_permits(), 1);
        drop(third);
        assert_eq!(slots.permits.available_permits(), 2);
        // Another session's handshakes are not touched.
        let other = HandshakeSlots::new(1);
        let _held = other.enter().unwrap();
        assert!(slots.accepting.lock().unwrap().is_empty());
        assert_eq!(other.accepting.lock().unwrap().len(), 1);
    }
}
