//! `lt-mse-capture`: records the raw bytes a real peer sends over an MSE/PE (BEP 8 style
//! "message stream encryption") connection, for the fuzz seed corpora (driven by
//! `tests/python/capture_corpus.py`; see `fuzz/README.md`).
//!
//! ```text
//! lt-mse-capture accept  --listen IP:PORT --info-hash HEX --seed first-byte|HH --out FILE [--linger S] [--max-time S]
//! lt-mse-capture connect --peer IP:PORT   --info-hash HEX --seed HH            --out FILE [--linger S] [--max-time S] [--rc4]
//! ```
//!
//! `accept` waits for one connection (printing `{"event":"listening","port":N}` first) and
//! answers as lt-wire's MSE responder; `connect` dials and runs lt-wire's MSE initiator. Both
//! finish the handshake for the torrent `--info-hash`, exchange BitTorrent handshakes through
//! lt-wire's `PeerConnection`, keep reading for `--linger` seconds (default 1.5) and write
//! every byte received from the peer, still encrypted, to `--out`. The DH private key comes
//! from the seed: `first-byte` (accept only) uses 32 copies of the peer's first byte, which
//! is what the `mse_handshake` fuzz target's responder does with the same bytes; a hex byte
//! `HH` uses 32 copies of it (`5a` is the `peer_incoming` target's responder seed). So the
//! targets compute the same shared secret as the capture and read past the DH exchange.
//! Ends with `{"event":"done",...}` on stdout; exits 1 on an error, 2 after `--max-time`.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use lt_core::{InfoHash, PeerId, Sha1Hash};
use lt_wire::mse::{CRYPTO_RC4, EncLevel, MseConfig, MseHandshake, MseStatus};
use lt_wire::{PeerConfig, PeerConnection, PeerEvent, TorrentParams};

struct Args {
    accept: bool,
    addr: SocketAddr,
    info_hash: Sha1Hash,
    seed: Option<u8>,
    out: String,
    linger: Duration,
    max_time: Duration,
    rc4: bool,
}

fn fail(msg: &str) -> ! {
    println!(
        "{{\"event\":\"error\",\"message\":{}}}",
        serde_json::Value::from(msg)
    );
    std::process::exit(1);
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let accept = match it.next().as_deref() {
        Some("accept") => true,
        Some("connect") => false,
        _ => fail("usage: lt-mse-capture accept|connect ... (see the source)"),
    };
    let mut addr = None;
    let mut info_hash = None;
    let mut seed = None;
    let mut out = None;
    let mut linger = Duration::from_millis(1500);
    let mut max_time = Duration::from_secs(20);
    let mut rc4 = false;
    while let Some(flag) = it.next() {
        if flag == "--rc4" {
            rc4 = true;
            continue;
        }
        let Some(value) = it.next() else {
            fail(&format!("{flag} needs a value"))
        };
        let secs = || {
            value
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .unwrap_or_else(|| fail(&format!("bad seconds {value}")))
        };
        match flag.as_str() {
            "--listen" | "--peer" => {
                addr = Some(
                    value
                        .parse()
                        .unwrap_or_else(|_| fail(&format!("bad address {value}"))),
                );
            }
            "--info-hash" => {
                info_hash = Some(
                    Sha1Hash::from_hex(&value)
                        .unwrap_or_else(|_| fail(&format!("bad info-hash {value}"))),
                );
            }
            "--seed" => {
                seed = match value.as_str() {
                    "first-byte" => None,
                    hex => Some(
                        u8::from_str_radix(hex, 16)
                            .unwrap_or_else(|_| fail(&format!("bad seed {hex}"))),
                    ),
                };
            }
            "--out" => out = Some(value),
            "--linger" => linger = secs(),
            "--max-time" => max_time = secs(),
            _ => fail(&format!("unknown option {flag}")),
        }
    }
    let (Some(addr), Some(info_hash), Some(out)) = (addr, info_hash, out) else {
        fail("--listen/--peer, --info-hash and --out are required")
    };
    if !accept && seed.is_none() {
        fail("connect needs a --seed byte");
    }
    Args {
        accept,
        addr,
        info_hash,
        seed,
        out,
        linger,
        max_time,
        rc4,
    }
}

fn main() {
    let args = parse_args();
    let start = Instant::now();
    let deadline = start + args.max_time;
    let mut stream = if args.accept {
        let listener = TcpListener::bind(args.addr).unwrap_or_else(|e| fail(&format!("bind: {e}")));
        let port = listener.local_addr().map_or(0, |a| a.port());
        println!("{{\"event\":\"listening\",\"port\":{port}}}");
        let _ = std::io::stdout().flush();
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| fail(&format!("listener: {e}")));
        loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        println!("{{\"event\":\"error\",\"message\":\"no connection\"}}");
                        std::process::exit(2);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => fail(&format!("accept: {e}")),
            }
        }
    } else {
        TcpStream::connect_timeout(&args.addr, Duration::from_secs(5))
            .unwrap_or_else(|e| fail(&format!("connect: {e}")))
    };
    let _ = stream.set_nonblocking(false);
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap_or_else(|e| fail(&format!("socket: {e}")));

    let config = MseConfig {
        allowed: if args.rc4 {
            EncLevel::Rc4
        } else {
            EncLevel::Both
        },
        prefer_rc4: true,
        ..MseConfig::default()
    };
    let torrent = TorrentParams {
        info_hash: InfoHash::v1(args.info_hash),
        layout: None,
        metadata_size: None,
    };
    let peer_config = PeerConfig::new(PeerId::new(*b"-LC0001-mse-capture!"));

    let mut received: Vec<u8> = Vec::new();
    let mut mse: Option<MseHandshake> = match (args.accept, args.seed) {
        (false, Some(s)) => Some(MseHandshake::initiate(&config, args.info_hash, [s; 32])),
        (true, Some(s)) => Some(MseHandshake::respond(&config, [s; 32])),
        _ => None, // responder seeded from the first byte
    };
    let mut peer: Option<PeerConnection> = None;
    let mut method = None;
    let mut events: Vec<String> = Vec::new();
    let mut connected_at: Option<Instant> = None;
    let mut end = String::from("linger");
    let mut buf = vec![0u8; 65536];

    let send = |stream: &mut TcpStream, bytes: &[u8]| {
        stream
            .write_all(bytes)
            .unwrap_or_else(|e| fail(&format!("write: {e}")));
    };
    // Our side speaks first as the initiator.
    if let Some(hs) = mse.as_mut() {
        while let Some(b) = hs.poll_transmit() {
            send(&mut stream, &b);
        }
    }

    loop {
        let now = Instant::now();
        if now > deadline {
            end = String::from("max-time");
            break;
        }
        if connected_at.is_some_and(|t| now > t + args.linger) {
            break;
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                end = String::from("eof");
                break;
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
            Err(e) => {
                end = format!("read: {e}");
                break;
            }
        };
        let chunk = &buf[..n];
        received.extend_from_slice(chunk);
        if let Some(c) = peer.as_mut() {
            if let Err(e) = c.handle_bytes(now, chunk) {
                end = format!("peer: {e}");
                break;
            }
        } else {
            let hs = mse.get_or_insert_with(|| MseHandshake::respond(&config, [chunk[0]; 32]));
            if let Err(e) = hs.handle_bytes(chunk) {
                end = format!("mse: {e}");
                break;
            }
            loop {
                while let Some(b) = hs.poll_transmit() {
                    send(&mut stream, &b);
                }
                match hs.status() {
                    MseStatus::InProgress => break,
                    MseStatus::NeedSkey(_) => {
                        if let Err(e) = hs.provide_skey(Some(args.info_hash)) {
                            fail(&format!("skey: {e}"));
                        }
                    }
                    MseStatus::Done => break,
                }
            }
            if hs.status() == MseStatus::Done {
                let Some(hs) = mse.take() else {
                    unreachable!("set above")
                };
                let out = hs
                    .finish()
                    .unwrap_or_else(|e| fail(&format!("finish: {e}")));
                method = Some(out.method);
                let c = if args.accept {
                    PeerConnection::incoming(
                        peer_config.clone(),
                        now,
                        out.cipher,
                        BytesMut::from(&out.received[..]),
                    )
                } else {
                    PeerConnection::outgoing(
                        peer_config.clone(),
                        now,
                        torrent,
                        out.cipher,
                        BytesMut::from(&out.received[..]),
                    )
                };
                peer = Some(c.unwrap_or_else(|e| fail(&format!("peer: {e}"))));
            }
        }
        if let Some(c) = peer.as_mut() {
            let mut accept = false;
            while let Some(e) = c.poll_event() {
                match &e {
                    PeerEvent::IncomingHandshake { .. } => accept = true,
                    PeerEvent::Connected { .. } => connected_at = Some(now),
                    _ => {}
                }
                events.push(format!("{e:?}").chars().take(80).collect());
            }
            if accept && let Err(e) = c.accept(now, torrent) {
                fail(&format!("accept: {e}"));
            }
            while let Some(e) = c.poll_event() {
                if matches!(e, PeerEvent::Connected { .. }) {
                    connected_at = Some(now);
                }
                events.push(format!("{e:?}").chars().take(80).collect());
            }
            while let Some(b) = c.poll_transmit() {
                send(&mut stream, &b);
            }
        }
    }
    std::fs::write(&args.out, &received).unwrap_or_else(|e| fail(&format!("write out: {e}")));
    println!(
        "{}",
        serde_json::json!({
            "event": "done",
            "bytes": received.len(),
            "rc4": method.map(|m| m == CRYPTO_RC4),
            "end": end,
            "events": events,
        })
    );
    if end == "max-time" {
        std::process::exit(2);
    }
}
