//! Loopback throughput of the tokio driver: `cargo run --release -p lt-utp --features tokio
//! --example utp_bench -- [MIB] [RUNS]` (default 1024 MiB, 3 runs).
//!
//! Each run sends MIB mebibytes from one `UtpStream` to another over 127.0.0.1 (two
//! sockets, one process, a two-thread tokio runtime) and checks a running checksum of what
//! arrives; then the same over a tokio `TcpStream` for reference. Prints each run and the
//! median: MB/s and the process's CPU seconds (both ends together, from /proc/self/stat).
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "a benchmark program: a failure aborts it"
)]

use std::time::Instant;

use lt_utp::tokio::UtpSocket;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const CHUNK: usize = 256 * 1024;

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let len = mib << 20;
    for transport in ["uTP", "TCP"] {
        let mut results = Vec::new();
        for run in 1..=runs {
            let cpu0 = cpu_seconds();
            let start = Instant::now();
            rt.block_on(async {
                match transport {
                    "uTP" => utp_run(len).await,
                    _ => tcp_run(len).await,
                }
            });
            let secs = start.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - cpu0;
            let mbps = len as f64 / 1e6 / secs;
            println!(
                "{transport} run {run}: {mib} MiB in {secs:.2} s = {mbps:.1} MB/s, {cpu:.2} CPU s"
            );
            results.push((mbps, cpu));
        }
        results.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mbps, cpu) = results[results.len() / 2];
        println!(
            "{transport} lt -> lt loopback, median of {runs}: {mbps:.1} MB/s, {cpu:.2} CPU s \
             (both ends)"
        );
    }
}

async fn utp_run(len: u64) {
    let server = UtpSocket::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let client = UtpSocket::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let addr = server.local_addr();
    let rx = tokio::spawn(async move {
        let (mut s, _) = server.accept().await.expect("accept");
        receive(&mut s, len).await;
    });
    let mut c = client.connect(addr).await.expect("connect");
    send(&mut c, len).await;
    if std::env::var_os("UTP_BENCH_STATS").is_some() {
        println!("sender: {:?}", c.stats());
    }
    rx.await.expect("receiver");
}

async fn tcp_run(len: u64) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let rx = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        receive(&mut s, len).await;
    });
    let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
    send(&mut c, len).await;
    rx.await.expect("receiver");
}

fn byte(i: u64) -> u8 {
    (i.wrapping_mul(0x9e37_79b9) >> 13) as u8
}

async fn send(s: &mut (impl AsyncWrite + Unpin), len: u64) {
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    while sent < len {
        let n = (len - sent).min(CHUNK as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = byte(sent + i as u64);
        }
        s.write_all(&buf[..n]).await.expect("write");
        sent += n as u64;
    }
    s.shutdown().await.expect("shutdown");
    // Wait for the receiver to close (it has everything then).
    let _ = s.write_all(&[]).await;
}

async fn receive(s: &mut (impl AsyncRead + Unpin), len: u64) {
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    let mut bad = 0u64;
    loop {
        let n = s.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        // A sparse check keeps the receiver's CPU on the transport.
        for i in (0..n).step_by(997) {
            if buf[i] != byte(got + i as u64) {
                bad += 1;
            }
        }
        got += n as u64;
    }
    assert_eq!((got, bad), (len, 0), "received bytes differ");
}

/// User plus system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the ")" of the command name: utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0
}
