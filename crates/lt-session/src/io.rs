//! Peer sockets: outgoing connects (one attempt each, over the transport and with the MSE
//! choice the engine made), incoming connections (plaintext or MSE, told apart by their
//! first bytes), and the reader and writer of each connection. The writer reports every
//! write back to the engine ([`lt_engine::Input::Drained`]), which is what bounds the bytes
//! queued for a peer.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use lt_core::Sha1Hash;
use lt_engine::{ConnId, Handshake, Input, IoError, Transport};
use lt_utp::tokio::{UtpSocket, UtpStream};
use lt_wire::mse::{MseConfig, MseHandshake, MseStatus, classify_incoming};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::{Event, Shared};

/// Bytes read from a socket at once.
const READ_CHUNK: usize = 256 * 1024;
/// Buffers written with one vectored write at most.
const MAX_IOV: usize = 64;

/// A connection's read loop, to spawn.
pub(crate) type ReadLoop = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A peer connection's socket: TCP or uTP.
pub(crate) enum PeerStream {
    Tcp(TcpStream),
    Utp(UtpStream),
}

impl PeerStream {
    /// The transport.
    pub(crate) const fn transport(&self) -> Transport {
        match self {
            Self::Tcp(_) => Transport::Tcp,
            Self::Utp(_) => Transport::Utp,
        }
    }

    /// Starts the writer and returns its sender and the read half's loop.
    pub(crate) fn start(
        self,
        conn: ConnId,
        events: &mpsc::Sender<Event>,
    ) -> (mpsc::UnboundedSender<Vec<Bytes>>, ReadLoop) {
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
    let (config, timeout) = (&dialer.config, dialer.timeout);
    match stream {
        PeerStream::Tcp(s) => negotiate(s, info_hash, encrypt, config, timeout).await,
        PeerStream::Utp(s) => negotiate(s, info_hash, encrypt, config, timeout).await,
    }
}

/// One dial over `transport` (the engine chose it and chooses the next after a failure).
async fn dial(
    addr: SocketAddr,
    transport: Transport,
    info_hash: Sha1Hash,
    encrypt: bool,
    dialer: &Dialer,
) -> Result<(PeerStream, Handshake), IoError> {
    let mut stream = match transport {
        Transport::Tcp => {
            let stream = tokio::time::timeout(dialer.timeout, TcpStream::connect(addr))
                .await
                .map_err(|_| IoError::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
            let _ = stream.set_nodelay(true);
            PeerStream::Tcp(stream)
        }
        Transport::Utp => {
            let utp = dialer
                .utp
                .iter()
                .find(|u| u.local_addr().is_ipv4() == addr.is_ipv4())
                .ok_or_else(|| {
                    IoError::new(
                        std::io::ErrorKind::AddrNotAvailable,
                        "no uTP socket for this address family",
                    )
                })?;
            PeerStream::Utp(utp.connect(addr).await?)
        }
    };
    let hs = handshake(&mut stream, info_hash, encrypt, dialer).await?;
    Ok((stream, hs))
}

/// Dials `addr` once as the engine asked, then runs the connection.
pub(crate) async fn connect(
    conn: ConnId,
    addr: SocketAddr,
    transport: Transport,
    info_hash: Sha1Hash,
    encrypt: bool,
    dialer: Dialer,
    events: mpsc::Sender<Event>,
) {
    match dial(addr, transport, info_hash, encrypt, &dialer).await {
        Ok((stream, handshake)) => {
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
        Err(error) => {
            let _ = events
                .send(Event::Engine(Input::ConnectFailed { conn, error }))
                .await;
        }
    }
}

/// Starts the first-bytes task of an accepted connection, holding one of `handshakes`'
/// permits until it ends (issue 18, finding 7: a flood of connections that never finish
/// their handshake costs at most that many tasks, and no DH exponentiation past them).
/// Without a free permit the connection is dropped, which closes it.
pub(crate) fn start_accept(
    stream: PeerStream,
    addr: SocketAddr,
    shared: &Arc<Shared>,
    handshakes: &Arc<tokio::sync::Semaphore>,
    timeout: Duration,
    events: &mpsc::Sender<Event>,
) {
    let Ok(permit) = Arc::clone(handshakes).try_acquire_owned() else {
        tracing::debug!(peer = %addr, "too many incoming handshakes; closed");
        return;
    };
    let config = shared.engine().mse_config();
    let shared = Arc::clone(shared);
    let events = events.clone();
    tokio::spawn(async move {
        accept(stream, addr, config, &shared, timeout, events).await;
        drop(permit);
    });
}

/// Reads the first bytes of an accepted connection: plaintext goes on as is, anything else
/// must be an MSE handshake for a torrent we have.
async fn accept(
    mut stream: PeerStream,
    addr: SocketAddr,
    config: MseConfig,
    shared: &Shared,
    timeout: Duration,
    events: mpsc::Sender<Event>,
) {
    if let PeerStream::Tcp(s) = &stream {
        let _ = s.set_nodelay(true);
    }
    let work = async {
        match &mut stream {
            PeerStream::Tcp(s) => first_bytes(s, config, shared).await,
            PeerStream::Utp(s) => first_bytes(s, config, shared).await,
        }
    };
    let Ok(Ok(handshake)) = tokio::time::timeout(timeout, work).await else {
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
        if plaintext {
            return Ok(Handshake {
                cipher: None,
                received: prefix,
                encrypted: false,
            });
        }
        let mut seed = [0u8; 32];
        crate::random_bytes(&mut seed);
        let mut hs = MseHandshake::respond(&config, seed);
        hs.handle_bytes(&prefix).map_err(mse_error)?;
        mse(stream, hs, Some(shared)).await
    }
}

/// Starts the writer of a connection; dropping the sender closes the socket's write side.
/// The channel is unbounded on purpose: the engine bounds what it sends to one peer by
/// the send buffer watermark, counting down as each write is reported here.
pub(crate) fn spawn_writer<W: AsyncWrite + Unpin + Send + 'static>(
    mut write: W,
    conn: ConnId,
    events: mpsc::Sender<Event>,
) -> mpsc::UnboundedSender<Vec<Bytes>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Bytes>>();
    tokio::spawn(async move {
        let mut queue: VecDeque<Bytes> = VecDeque::new();
        while let Some(bufs) = rx.recv().await {
            queue.extend(bufs);
            while let Ok(more) = rx.try_recv() {
                queue.extend(more);
            }
            let written = queue.iter().map(Bytes::len).sum();
            if write_all(&mut write, &mut queue).await.is_err() {
                return;
            }
            let drained = Input::Drained { conn, written };
            if events.send(Event::Engine(drained)).await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    });
    tx
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
