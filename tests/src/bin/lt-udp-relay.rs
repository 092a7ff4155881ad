//! A UDP relay with delay and random loss, for uTP benchmarks through a slow, lossy path
//! (issue 20: `cargo xtask bench transfer --transport utp --relay-delay-ms 25
//! --relay-loss-permille 1`). This kernel has no netem, so the path is made in user space.
//!
//! ```text
//! lt-udp-relay SERVER DELAY_MS LOSS_PERMILLE [SEED]
//! ```
//!
//! Binds 127.0.0.1:0 and prints `{"event":"listening","port":P}`. Every datagram from a
//! client goes on to SERVER, and every datagram from SERVER to the client heard last, each
//! `DELAY_MS` later and each dropped with probability `LOSS_PERMILLE`/1000 (a seeded
//! xorshift: the same inputs lose the same datagrams). The delay is the same for every
//! datagram, so none is reordered. Every second it prints
//! `{"event":"stats","to_client":BYTES,"to_server":BYTES,"dropped":N,"longest_silence_ms":MS}`:
//! the bytes forwarded each way, the datagrams dropped, and the longest time the server
//! sent nothing once it had started (a stalled transfer), until it is killed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark tool: a failure aborts it"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Default)]
struct Stats {
    to_client: AtomicU64,
    to_server: AtomicU64,
    dropped: AtomicU64,
    longest_silence_ms: AtomicU64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [server, delay, loss, rest @ ..] = args.as_slice() else {
        eprintln!("usage: lt-udp-relay SERVER DELAY_MS LOSS_PERMILLE [SEED]");
        std::process::exit(2);
    };
    let server: SocketAddr = server.parse().expect("SERVER is IP:PORT");
    let delay = Duration::from_millis(delay.parse().expect("DELAY_MS"));
    let loss: u64 = loss.parse().expect("LOSS_PERMILLE");
    let seed: u64 = rest
        .first()
        .map_or(0x2545_f491_4f6c_dd1d, |s| s.parse().expect("SEED"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(relay(server, delay, loss, seed.max(1)));
}

async fn relay(server: SocketAddr, delay: Duration, loss_permille: u64, seed: u64) {
    // The kernel buffers are those lt's uTP sockets ask for (4 MiB): with the default
    // (208 KiB) the relay's own socket dropped datagrams of a burst (96 in a lossless
    // 32 MiB run), which is loss the caller did not ask for.
    let raw = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    raw.set_recv_buffer_size(4 << 20).unwrap();
    raw.set_send_buffer_size(4 << 20).unwrap();
    raw.set_nonblocking(true).unwrap();
    raw.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let sock = Arc::new(UdpSocket::from_std(raw.into()).unwrap());
    println!(
        "{{\"event\":\"listening\",\"port\":{}}}",
        sock.local_addr().unwrap().port()
    );
    let stats = Arc::new(Stats::default());
    // The delay line: constant delay keeps the order, so a FIFO suffices.
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>, SocketAddr)>();
    let out = Arc::clone(&sock);
    tokio::spawn(async move {
        while let Some((at, d, to)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            let _ = out.send_to(&d, to).await;
        }
    });
    let report = Arc::clone(&stats);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            println!(
                "{{\"event\":\"stats\",\"to_client\":{},\"to_server\":{},\"dropped\":{},\
                 \"longest_silence_ms\":{}}}",
                report.to_client.load(Ordering::Relaxed),
                report.to_server.load(Ordering::Relaxed),
                report.dropped.load(Ordering::Relaxed),
                report.longest_silence_ms.load(Ordering::Relaxed),
            );
        }
    });
    let mut client = None;
    let mut rng = seed;
    let mut last_from_server: Option<Instant> = None;
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            return;
        };
        let now = Instant::now();
        let to = if from == server {
            if let Some(last) = last_from_server {
                let gap = u64::try_from(now.duration_since(last).as_millis()).unwrap_or(u64::MAX);
                stats.longest_silence_ms.fetch_max(gap, Ordering::Relaxed);
            }
            last_from_server = Some(now);
            match client {
                Some(c) => c,
                None => continue,
            }
        } else {
            client = Some(from);
            server
        };
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if rng % 1000 < loss_permille {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let counter = if to == server {
            &stats.to_server
        } else {
            &stats.to_client
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
        if tx.send((now + delay, buf[..n].to_vec(), to)).is_err() {
            return;
        }
    }
}
