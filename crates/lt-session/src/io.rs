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
use lt_wire::mse::{MseConfig, MseHandshake, MseStatus, Rc4Stream, classify_incoming};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
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

/// The map from `HASH('req2', info-hash)` to info-hash, for incoming MSE handshakes.
pub(crate) type Skeys = Arc<RwLock<HashMap<Sha1Hash, Sha1Hash>>>;

async fn mse(
    stream: &mut TcpStream,
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

/// Connects to `addr` (MSE first with `encrypt`; with the policy only "enabled", a failed
/// MSE handshake is retried in plaintext), then runs the connection.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn connect(
    conn: ConnId,
    addr: SocketAddr,
    info_hash: Sha1Hash,
    encrypt: bool,
    config: MseConfig,
    timeout: Duration,
    inputs: mpsc::Sender<Input>,
) {
    let attempt = |encrypt: bool| async move {
        let mut stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let negotiated = if encrypt {
            let mut seed = [0u8; 32];
            crate::random_bytes(&mut seed);
            let hs = MseHandshake::initiate(&config, info_hash, seed);
            tokio::time::timeout(timeout, mse(&mut stream, hs, None))
                .await
                .map_err(|_| "MSE handshake timed out".to_owned())??
        } else {
            Negotiated {
                cipher: None,
                received: BytesMut::new(),
                encrypted: false,
            }
        };
        Ok::<_, String>((stream, negotiated))
    };
    let mut result = attempt(encrypt).await;
    if encrypt && result.is_err() && config.out_policy == lt_wire::mse::EncPolicy::Enabled {
        result = attempt(false).await;
    }
    match result {
        Ok((stream, negotiated)) => {
            let (read, write) = stream.into_split();
            let writer = spawn_writer(write);
            if inputs
                .send(Input::Connected {
                    conn,
                    writer,
                    negotiated,
                })
                .await
                .is_ok()
            {
                read_loop(conn, read, inputs).await;
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
    mut stream: TcpStream,
    addr: SocketAddr,
    config: MseConfig,
    skeys: Skeys,
    timeout: Duration,
    inputs: mpsc::Sender<Input>,
) {
    let _ = stream.set_nodelay(true);
    let work = async {
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
        mse(&mut stream, hs, Some(&skeys)).await
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

/// Starts the writer of a connection; dropping the sender closes the socket's write side.
pub(crate) fn spawn_writer(mut write: OwnedWriteHalf) -> mpsc::UnboundedSender<Vec<Bytes>> {
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

async fn write_all(write: &mut OwnedWriteHalf, queue: &mut VecDeque<Bytes>) -> std::io::Result<()> {
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
pub(crate) async fn read_loop(conn: ConnId, mut read: OwnedReadHalf, inputs: mpsc::Sender<Input>) {
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
