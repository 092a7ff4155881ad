//! Peer sockets: outgoing connects (with MSE when asked), incoming connections (plaintext
//! or MSE, told apart by their first bytes), and the reader and writer of each connection.

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use lt_core::Sha1Hash;
use lt_engine::ConnId;
use lt_utp::tokio::{UtpSocket, UtpStream};
use lt_wire::mse::{MseConfig, MseHandshake, MseStatus, Rc4Stream, classify_incoming};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::Input;

/// Bytes read from a socket at once.
const READ_CHUNK: usize = 256 * 1024;
/// Buffers written with one vectored write at most.
const MAX_IOV: usize = 64;

/// What an MSE handshake left: the cipher (for RC4) and the payload already received.
pub(crate) struct Negotiated {
    pub(crate) cipher: Option<Rc4Stream>,
    pub(crate) received: BytesMut,
    pub(crate) encrypted: bool,
}

/// A connection's read loop, to spawn.
pub(crate) type ReadLoop = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A peer connection's socket: TCP or uTP.
pub(crate) enum PeerStream {
    Tcp(TcpStream),
    Utp(UtpStream),
}

impl PeerStream {
    /// Starts the writer and returns its sender and the read half's loop.
    pub(crate) fn start(
        self,
        conn: ConnId,
        inputs: mpsc::Sender<Input>,
    ) -> (mpsc::UnboundedSender<Vec<Bytes>>, ReadLoop) {
        match self {
            Self::Tcp(s) => {
                let (read, write) = s.into_split();
                (spawn_writer(write), Box::pin(read_loop(conn, read, inputs)))
            }
            Self::Utp(s) => {
                let (read, write) = tokio::io::split(s);
                (spawn_writer(write), Box::pin(read_loop(conn, read, inputs)))
            }
        }
    }
}

/// How outgoing connections are made.
#[derive(Clone)]
pub(crate) struct Dialer {
    /// uTP sockets (IPv4, IPv6), when outgoing uTP is on.
    pub(crate) utp: Vec<UtpSocket>,
    pub(crate) tcp: bool,
    pub(crate) config: MseConfig,
    pub(crate) timeout: Duration,
}

/// The map from `HASH('req2', info-hash)` to info-hash, for incoming MSE handshakes.
pub(crate) type Skeys = Arc<RwLock<HashMap<Sha1Hash, Sha1Hash>>>;

async fn mse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mut hs: MseHandshake,
    skeys: Option<&Skeys>,
) -> Result<Negotiated, String> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(out) = hs.poll_transmit() {
            stream.write_all(&out).await.map_err(|e| e.to_string())?;
        }
        match hs.status() {
            MseStatus::Done => break,
            MseStatus::NeedSkey(h) => {
                let ih = skeys.and_then(|s| {
                    s.read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get(&h)
                        .copied()
                });
                hs.provide_skey(ih).map_err(|e| e.to_string())?;
                continue;
            }
            MseStatus::InProgress => {}
        }
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed during the MSE handshake".into());
        }
        hs.handle_bytes(&buf[..n]).map_err(|e| e.to_string())?;
    }
    let out = hs.finish().map_err(|e| e.to_string())?;
    Ok(Negotiated {
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
) -> Result<Negotiated, String> {
    if !encrypt {
        return Ok(Negotiated {
            cipher: None,
            received: BytesMut::new(),
            encrypted: false,
        });
    }
    let mut seed = [0u8; 32];
    crate::random_bytes(&mut seed);
    let hs = MseHandshake::initiate(config, info_hash, seed);
    tokio::time::timeout(timeout, mse(stream, hs, None))
        .await
        .map_err(|_| "MSE handshake timed out".to_owned())?
}

/// Runs MSE (when asked) on a fresh connection of either transport.
async fn handshake(
    mut stream: PeerStream,
    info_hash: Sha1Hash,
    encrypt: bool,
    dialer: &Dialer,
) -> Result<(PeerStream, Negotiated), String> {
    let (config, timeout) = (&dialer.config, dialer.timeout);
    let negotiated = match &mut stream {
        PeerStream::Tcp(s) => negotiate(s, info_hash, encrypt, config, timeout).await,
        PeerStream::Utp(s) => negotiate(s, info_hash, encrypt, config, timeout).await,
    }?;
    Ok((stream, negotiated))
}

async fn dial(
    addr: SocketAddr,
    info_hash: Sha1Hash,
    encrypt: bool,
    dialer: &Dialer,
) -> Result<(PeerStream, Negotiated), String> {
    let mut last = "no transport enabled".to_owned();
    // Mixed mode: TCP first when it is on (a peer without uTP would cost a uTP connect
    // timeout); uTP when it is the only transport, or when TCP fails.
    if dialer.tcp {
        match tokio::time::timeout(dialer.timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                match handshake(PeerStream::Tcp(stream), info_hash, encrypt, dialer).await {
                    Ok(done) => return Ok(done),
                    Err(e) => last = e,
                }
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "connect timed out".to_owned(),
        }
    }
    if let Some(utp) = dialer
        .utp
        .iter()
        .find(|u| u.local_addr().is_ipv4() == addr.is_ipv4())
    {
        match utp.connect(addr).await {
            Ok(stream) => {
                match handshake(PeerStream::Utp(stream), info_hash, encrypt, dialer).await {
                    Ok(done) => return Ok(done),
                    Err(e) => last = e,
                }
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// Connects to `addr` (MSE first with `encrypt`; with the policy only "enabled", a failed
/// MSE handshake is retried in plaintext), then runs the connection.
pub(crate) async fn connect(
    conn: ConnId,
    addr: SocketAddr,
    info_hash: Sha1Hash,
    encrypt: bool,
    dialer: Dialer,
    inputs: mpsc::Sender<Input>,
) {
    let mut result = dial(addr, info_hash, encrypt, &dialer).await;
    if encrypt && result.is_err() && dialer.config.out_policy == lt_wire::mse::EncPolicy::Enabled {
        result = dial(addr, info_hash, false, &dialer).await;
    }
    match result {
        Ok((stream, negotiated)) => {
            let utp = matches!(stream, PeerStream::Utp(_));
            let (writer, reader) = stream.start(conn, inputs.clone());
            if inputs
                .send(Input::Connected {
                    conn,
                    writer,
                    negotiated,
                    utp,
                })
                .await
                .is_ok()
            {
                reader.await;
            }
        }
        Err(error) => {
            let _ = inputs.send(Input::ConnectFailed { conn, error }).await;
        }
    }
}

/// Reads the first bytes of an accepted connection: plaintext goes on as is, anything else
/// must be an MSE handshake for a torrent we have.
pub(crate) async fn accept(
    mut stream: PeerStream,
    addr: SocketAddr,
    config: MseConfig,
    skeys: Skeys,
    timeout: Duration,
    inputs: mpsc::Sender<Input>,
) {
    if let PeerStream::Tcp(s) = &stream {
        let _ = s.set_nodelay(true);
    }
    let work = async {
        match &mut stream {
            PeerStream::Tcp(s) => first_bytes(s, config, &skeys).await,
            PeerStream::Utp(s) => first_bytes(s, config, &skeys).await,
        }
    };
    let Ok(Ok(negotiated)) = tokio::time::timeout(timeout, work).await else {
        return;
    };
    let _ = inputs
        .send(Input::Incoming {
            addr,
            stream,
            negotiated,
        })
        .await;
}

/// Tells plaintext from MSE by the first bytes and runs the MSE responder if needed.
async fn first_bytes<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    config: MseConfig,
    skeys: &Skeys,
) -> Result<Negotiated, String> {
    {
        let mut prefix = BytesMut::with_capacity(1024);
        let plaintext = loop {
            if let Some(p) = classify_incoming(&prefix) {
                break p;
            }
            let n = stream
                .read_buf(&mut prefix)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed before the handshake".to_owned());
            }
        };
        config
            .accept_incoming(plaintext)
            .map_err(|e| e.to_string())?;
        if plaintext {
            return Ok(Negotiated {
                cipher: None,
                received: prefix,
                encrypted: false,
            });
        }
        let mut seed = [0u8; 32];
        crate::random_bytes(&mut seed);
        let mut hs = MseHandshake::respond(&config, seed);
        hs.handle_bytes(&prefix).map_err(|e| e.to_string())?;
        mse(stream, hs, Some(skeys)).await
    }
}

/// Starts the writer of a connection; dropping the sender closes the socket's write side.
pub(crate) fn spawn_writer<W: AsyncWrite + Unpin + Send + 'static>(
    mut write: W,
) -> mpsc::UnboundedSender<Vec<Bytes>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Bytes>>();
    tokio::spawn(async move {
        let mut queue: VecDeque<Bytes> = VecDeque::new();
        while let Some(bufs) = rx.recv().await {
            queue.extend(bufs);
            while let Ok(more) = rx.try_recv() {
                queue.extend(more);
            }
            if write_all(&mut write, &mut queue).await.is_err() {
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
    inputs: mpsc::Sender<Input>,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        match read.read_buf(&mut buf).await {
            Ok(0) => {
                let _ = inputs.send(Input::Closed { conn, error: None }).await;
                return;
            }
            Ok(_) => {
                let bytes = buf.split();
                if inputs.send(Input::Data { conn, bytes }).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = inputs
                    .send(Input::Closed {
                        conn,
                        error: Some(e.to_string()),
                    })
                    .await;
                return;
            }
        }
    }
}
