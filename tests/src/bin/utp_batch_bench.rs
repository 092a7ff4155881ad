//! What UDP batching saves uTP (issue 20): `cargo run --release -p lt-tests --bin
//! utp_batch_bench -- [MIB] [RUNS]` (default 256 MiB, 5 runs).
//!
//! Two lt-utp sockets in this process move MIB mebibytes over loopback, once with batching
//! (UDP GSO on send, `recvmmsg` with GRO on receive: the default) and once with one
//! datagram per system call each way (`SocketConfig::batching = false`), the two
//! interleaved in each run. Prints each run and the medians: MB/s, the process's CPU
//! seconds per GiB, and the ratio of the two.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    reason = "a benchmark program: a failure aborts it"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lt_utp::tokio::{SocketConfig, UtpSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The process's user + system CPU seconds so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// One transfer of `bytes`; returns (MB/s, CPU seconds).
async fn transfer(bytes: usize, batching: bool) -> (f64, f64) {
    let cfg = || SocketConfig {
        batching,
        ..SocketConfig::default()
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = UtpSocket::bind_with(any, cfg()).unwrap();
    let client = UtpSocket::bind_with(any, cfg()).unwrap();
    let to = server.local_addr();
    let reader = tokio::spawn(async move {
        let (mut s, _) = server.accept().await.unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0;
        while got < bytes {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early at {got}");
            got += n;
        }
        got
    });
    let cpu = cpu_seconds();
    let start = Instant::now();
    let mut s = client.connect(to).await.unwrap();
    let chunk = vec![0xa5u8; 256 * 1024];
    let mut sent = 0;
    while sent < bytes {
        let n = chunk.len().min(bytes - sent);
        s.write_all(&chunk[..n]).await.unwrap();
        sent += n;
    }
    let got = tokio::time::timeout(Duration::from_secs(300), reader)
        .await
        .expect("in time")
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(got, bytes);
    (bytes as f64 / 1e6 / secs, cpu_seconds() - cpu)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(256);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bytes = mib << 20;
    let gib = bytes as f64 / f64::from(1u32 << 30);
    let mut results = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    for run in 1..=runs {
        for (i, batching) in [true, false].into_iter().enumerate() {
            let (rate, cpu) = rt.block_on(transfer(bytes, batching));
            println!(
                "run {run}: {:<28} {rate:>7.1} MB/s, {:.2} CPU s/GiB",
                if batching {
                    "batched (GSO, recvmmsg+GRO)"
                } else {
                    "one datagram per call"
                },
                cpu / gib
            );
            results[i].0.push(rate);
            results[i].1.push(cpu / gib);
        }
    }
    let [(br, bc), (sr, sc)] = results;
    let (br, bc, sr, sc) = (median(br), median(bc), median(sr), median(sc));
    println!(
        "utp_batch_bench: {mib} MiB over loopback, lt-utp to lt-utp in one process, median \
         of {runs}:\n  batched:               {br:.1} MB/s, {bc:.2} CPU s/GiB\n  one \
         datagram per call: {sr:.1} MB/s, {sc:.2} CPU s/GiB\n  batched / unbatched: rate \
         x{:.2}, CPU per GiB x{:.2}",
        br / sr,
        bc / sc
    );
}
