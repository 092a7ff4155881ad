//! The tokio driver on loopback: echo, a 64 MiB transfer checked byte by byte, many
//! concurrent streams, connect timeouts, a reader that never reads, non-uTP datagrams,
//! and a transfer through a lossy, delaying UDP relay.
#![allow(
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test helpers panic on failure; the byte pattern truncates on purpose"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lt_utp::tokio::{SocketConfig, UtpSocket, UtpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

/// Deterministic test bytes: position `i` of stream `seed`.
fn pattern(seed: u64, offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let x = (offset + i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed;
        *b = (x >> 29) as u8;
    }
}

async fn send_pattern(stream: &mut UtpStream, seed: u64, len: u64) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < len {
        let n = (len - sent).min(buf.len() as u64) as usize;
        pattern(seed, sent, &mut buf[..n]);
        stream.write_all(&buf[..n]).await.expect("write");
        sent += n as u64;
    }
    stream.shutdown().await.expect("shutdown");
}

/// Reads to EOF, checking every byte; returns the count.
async fn check_pattern(stream: &mut UtpStream, seed: u64) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut want = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        if n == 0 {
            return got;
        }
        pattern(seed, got, &mut want[..n]);
        assert!(buf[..n] == want[..n], "byte mismatch near offset {got}");
        got += n as u64;
    }
}

async fn transfer(server: &UtpSocket, client: &UtpSocket, to: SocketAddr, len: u64) {
    let accept = {
        let server = server.clone();
        tokio::spawn(async move {
            let (mut s, _) = server.accept().await.expect("accept");
            check_pattern(&mut s, 7).await
        })
    };
    let mut c = client.connect(to).await.expect("connect");
    send_pattern(&mut c, 7, len).await;
    let got = tokio::time::timeout(Duration::from_secs(60), accept)
        .await
        .expect("transfer finishes")
        .expect("task");
    assert_eq!(got, len);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo() {
    let server = UtpSocket::bind(localhost()).expect("bind");
    let client = UtpSocket::bind(localhost()).expect("bind");
    let addr = server.local_addr();
    tokio::spawn(async move {
        let (mut s, peer) = server.accept().await.expect("accept");
        assert_eq!(peer, s.peer_addr());
        let mut data = Vec::new();
        s.read_to_end(&mut data).await.expect("read");
        s.write_all(&data).await.expect("write");
        s.shutdown().await.expect("shutdown");
        // Keep the stream until the peer has everything.
        let _ = s.read(&mut [0u8; 1]).await;
    });
    let mut c = client.connect(addr).await.expect("connect");
    assert_eq!(c.peer_addr(), addr);
    let msg: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    c.write_all(&msg).await.expect("write");
    c.shutdown().await.expect("shutdown");
    let err = c
        .write(b"late")
        .await
        .expect_err("no writes after shutdown");
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    let mut back = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut back))
        .await
        .expect("echo in time")
        .expect("read");
    assert_eq!(back, msg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_64_mib_every_byte_checked() {
    let server = UtpSocket::bind(localhost()).expect("bind");
    let client = UtpSocket::bind(localhost()).expect("bind");
    let start = Instant::now();
    transfer(&server, &client, server.local_addr(), 64 << 20).await;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "64 MiB in {secs:.2} s = {:.1} MB/s",
        64.0 * 1.048_576 / secs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_streams() {
    const STREAMS: u64 = 40;
    const LEN: u64 = 256 * 1024;
    let server = UtpSocket::bind(localhost()).expect("bind");
    let client = UtpSocket::bind(localhost()).expect("bind");
    let addr = server.local_addr();
    let total = Arc::new(AtomicUsize::new(0));
    let acceptor = {
        let total = Arc::clone(&total);
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for _ in 0..STREAMS {
                let (mut s, _) = server.accept().await.expect("accept");
                let total = Arc::clone(&total);
                tasks.push(tokio::spawn(async move {
                    // The first 8 bytes name the stream's pattern seed.
                    let mut seed = [0u8; 8];
                    s.read_exact(&mut seed).await.expect("seed");
                    let seed = u64::from_be_bytes(seed);
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut want = vec![0u8; 16 * 1024];
                    let mut got = 0u64;
                    loop {
                        let n = s.read(&mut buf).await.expect("read");
                        if n == 0 {
                            break;
                        }
                        pattern(seed, got, &mut want[..n]);
                        assert!(buf[..n] == want[..n], "stream {seed} differs");
                        got += n as u64;
                    }
                    assert_eq!(got, LEN);
                    total.fetch_add(1, Ordering::SeqCst);
                }));
            }
            for t in tasks {
                t.await.expect("stream task");
            }
        })
    };
    let mut senders = Vec::new();
    for seed in 0..STREAMS {
        let client = client.clone();
        senders.push(tokio::spawn(async move {
            let mut c = client.connect(addr).await.expect("connect");
            c.write_all(&seed.to_be_bytes()).await.expect("write");
            let mut buf = vec![0u8; LEN as usize];
            pattern(seed, 0, &mut buf);
            c.write_all(&buf).await.expect("write");
            c.shutdown().await.expect("shutdown");
            // Hold the stream until the server has read everything.
            let _ = c.read(&mut [0u8; 1]).await;
        }));
    }
    tokio::time::timeout(Duration::from_secs(40), acceptor)
        .await
        .expect("all streams done in time")
        .expect("acceptor");
    assert_eq!(total.load(Ordering::SeqCst), STREAMS as usize);
}

/// A port that is bound but never answers: the connect times out, and its half-open
/// connection is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_a_silent_port_times_out() {
    let silent = std::net::UdpSocket::bind(localhost()).expect("bind");
    let addr = silent.local_addr().expect("addr");
    let client = UtpSocket::bind_with(
        localhost(),
        SocketConfig {
            connect_timeout: Duration::from_millis(600),
            ..SocketConfig::default()
        },
    )
    .expect("bind");
    let start = Instant::now();
    let err = client.connect(addr).await.expect_err("nobody answers");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(start.elapsed() < Duration::from_secs(3));
    // The half-open connection was aborted and removed.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(client.connections(), (0, 0));
    drop(silent);
}

/// A port nobody listens on: the host answers the SYN with ICMP port unreachable, and the
/// connect fails at once with `ConnectionRefused` instead of waiting for its timeout (so
/// the session can try TCP), on IPv4 and IPv6 loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_a_closed_port_is_refused_at_once() {
    for local in ["127.0.0.1:0", "[::1]:0"] {
        let local: SocketAddr = local.parse().expect("address");
        let Ok(dead) = std::net::UdpSocket::bind(local) else {
            assert!(local.is_ipv6(), "IPv4 loopback must bind");
            continue;
        };
        let addr = dead.local_addr().expect("addr");
        drop(dead);
        let client = UtpSocket::bind_with(
            local,
            SocketConfig {
                connect_timeout: Duration::from_secs(20),
                ..SocketConfig::default()
            },
        )
        .expect("bind");
        let start = Instant::now();
        let err = client.connect(addr).await.expect_err("nobody listens");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "refused after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(client.connections(), (0, 0));
    }
}

/// A peer that accepts and never reads: the writer stalls once the receive window and its
/// own send buffer are full; nothing grows past them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_stalls_the_writer() {
    let server = UtpSocket::bind(localhost()).expect("bind");
    let client = UtpSocket::bind(localhost()).expect("bind");
    let addr = server.local_addr();
    let hold = tokio::spawn(async move {
        let (s, _) = server.accept().await.expect("accept");
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    });
    let mut c = client.connect(addr).await.expect("connect");
    let chunk = vec![0xabu8; 64 * 1024];
    let mut written = 0usize;
    loop {
        match tokio::time::timeout(Duration::from_millis(1500), c.write(&chunk)).await {
            Ok(n) => written += n.expect("write"),
            Err(_) => break,
        }
        assert!(written < 8 << 20, "writer never stalled: {written} bytes");
    }
    let limit = lt_utp::limits::DEFAULT_SEND_BUFFER + lt_utp::limits::DEFAULT_RECV_BUFFER;
    println!("writer stalled after {written} bytes");
    assert!(written <= limit, "{written} > {limit}");
    assert!(written >= lt_utp::limits::DEFAULT_SEND_BUFFER, "{written}");
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_datagrams_share_the_socket() {
    let sock = UtpSocket::bind(localhost()).expect("bind");
    let mut other = sock.take_other_datagrams().expect("first take");
    assert!(sock.take_other_datagrams().is_none());
    let peer = UdpSocket::bind(localhost()).await.expect("bind");
    let krpc = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
    peer.send_to(krpc, sock.local_addr()).await.expect("send");
    let (d, from) = tokio::time::timeout(Duration::from_secs(5), other.recv())
        .await
        .expect("in time")
        .expect("datagram");
    assert_eq!(
        (&d[..], from),
        (&krpc[..], peer.local_addr().expect("addr"))
    );
    sock.send_to(b"d1:y1:re", from).await.expect("send_to");
    let mut buf = [0u8; 64];
    let (n, _) = peer.recv_from(&mut buf).await.expect("recv");
    assert_eq!(&buf[..n], b"d1:y1:re");
    // uTP still works beside it.
    let client = UtpSocket::bind(localhost()).expect("bind");
    transfer(&sock, &client, sock.local_addr(), 100_000).await;
}

/// A UDP relay between one client and `server`: every datagram is delayed by `delay` and
/// dropped with probability `loss_permille`/1000 (seeded, so runs repeat).
async fn relay(server: SocketAddr, delay: Duration, loss_permille: u64) -> SocketAddr {
    let sock = Arc::new(UdpSocket::bind(localhost()).await.expect("bind relay"));
    let addr = sock.local_addr().expect("addr");
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>, SocketAddr)>(100_000);
    let out = Arc::clone(&sock);
    tokio::spawn(async move {
        while let Some((at, d, to)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            let _ = out.send_to(&d, to).await;
        }
    });
    tokio::spawn(async move {
        let mut client = None;
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if rng % 1000 < loss_permille {
                continue;
            }
            let to = if from == server {
                match client {
                    Some(c) => c,
                    None => continue,
                }
            } else {
                client = Some(from);
                server
            };
            let at = tokio::time::Instant::now() + delay;
            if tx.send((at, buf[..n].to_vec(), to)).await.is_err() {
                return;
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_through_a_lossy_delaying_relay() {
    let server = UtpSocket::bind(localhost()).expect("bind");
    let client = UtpSocket::bind(localhost()).expect("bind");
    let via = relay(server.local_addr(), Duration::from_millis(50), 10).await;
    let start = Instant::now();
    let len = 384 * 1024;
    transfer(&server, &client, via, len).await;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "lossy relay (50 ms each way, 1% loss): {} KiB in {secs:.2} s = {:.0} KiB/s",
        len / 1024,
        len as f64 / 1024.0 / secs
    );
}

/// SYNs that are never followed by a second packet (a flood from spoofed addresses) are not
/// offered to `accept` and stay within the half-open table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syn_flood_is_not_accepted() {
    let server = UtpSocket::bind(localhost()).expect("bind");
    let flood = UdpSocket::bind(localhost()).await.expect("bind");
    for id in 0..500u16 {
        let mut syn = vec![
            0x41, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0,
        ];
        syn[2..4].copy_from_slice(&id.wrapping_mul(2).to_be_bytes());
        flood
            .send_to(&syn, server.local_addr())
            .await
            .expect("send");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (conns, half_open) = server.connections();
    assert!(
        half_open <= 64 && conns <= 64,
        "{conns} connections, {half_open} half-open"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), server.accept())
            .await
            .is_err(),
        "a bare SYN was offered to accept"
    );
}

/// A SOCKS5 UDP relay as a proxy runs one (RFC 1928 section 7): datagrams from `client`
/// are unwrapped and sent on to the destination their header names; datagrams from
/// anyone else are wrapped with their source and sent to `client`.
async fn socks5_udp_relay(client: SocketAddr) -> SocketAddr {
    let sock = UdpSocket::bind(localhost()).await.expect("bind relay");
    let addr = sock.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        let mut out = Vec::with_capacity(65_600);
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            if from == client {
                if let Some((dst, payload)) = lt_utp::relay::decode(&buf[..n]) {
                    let _ = sock.send_to(payload, dst).await;
                }
            } else {
                out.clear();
                lt_utp::relay::encode_header(from, &mut out);
                out.extend_from_slice(&buf[..n]);
                let _ = sock.send_to(&out, client).await;
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_socks5_udp_relay_both_ways() {
    // The client's socket is bound first: the relay needs its address.
    let std_sock = std::net::UdpSocket::bind(localhost()).expect("bind");
    let relay = socks5_udp_relay(std_sock.local_addr().expect("addr")).await;
    let client = UtpSocket::from_std_with(
        std_sock,
        SocketConfig {
            relay: Some(relay),
            ..SocketConfig::default()
        },
    )
    .expect("client");
    assert_eq!(client.relay(), Some(relay));
    let server = UtpSocket::bind(localhost()).expect("server");
    let mut server_other = server.take_other_datagrams().expect("take");
    let mut client_other = client.take_other_datagrams().expect("take");
    // uTP both ways: the server sees the relay's address as the peer's.
    transfer(&server, &client, server.local_addr(), 2 << 20).await;
    // Other datagrams (the DHT's) go through the relay too, and come back named by their
    // real source.
    client
        .send_to(b"d1:y1:qe", server.local_addr())
        .await
        .expect("send_to");
    let (d, from) = tokio::time::timeout(Duration::from_secs(5), server_other.recv())
        .await
        .expect("in time")
        .expect("datagram");
    assert_eq!((&d[..], from), (&b"d1:y1:qe"[..], relay));
    server.send_to(b"d1:y1:re", relay).await.expect("reply");
    let (d, from) = tokio::time::timeout(Duration::from_secs(5), client_other.recv())
        .await
        .expect("in time")
        .expect("datagram");
    assert_eq!((&d[..], from), (&b"d1:y1:re"[..], server.local_addr()));
    // A datagram sent straight to the client, not through its relay, is not read.
    let stranger = UdpSocket::bind(localhost()).await.expect("bind");
    stranger
        .send_to(b"d1:y1:xe", client.local_addr())
        .await
        .expect("send");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), client_other.recv())
            .await
            .is_err(),
        "a datagram around the relay was read"
    );
}
