//! The two ends of the LEDBAT test (issue 20, `tests/tests/ledbat_netns.rs`): a uTP flow
//! (lt-utp's tokio driver) and a TCP flow through the same rate-limited link, each end in
//! its own network namespace.
//!
//! ```text
//! lt-ledbat sink PORT
//! lt-ledbat source ADDR:PORT SECONDS TCP_AFTER
//! ```
//!
//! `sink` accepts TCP and uTP on PORT (all addresses), reads and discards, and every 250 ms
//! prints `{"t":S,"tcp":BYTES,"utp":BYTES}`: the bytes received so far on each transport.
//! `source` connects over uTP at once and over TCP (CUBIC) after `TCP_AFTER` seconds, writes as
//! fast as each will take, and every 250 ms prints `{"t":S,"rtt_ms":MS,"cwnd":BYTES}` of
//! the uTP connection; it exits after `SECONDS`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    reason = "a test tool: a failure aborts it"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lt_utp::tokio::UtpSocket;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TICK: Duration = Duration::from_millis(250);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["sink", port] => rt.block_on(sink(port.parse().expect("PORT"))),
        ["source", addr, secs, tcp_after] => rt.block_on(source(
            addr.parse().expect("ADDR:PORT"),
            Duration::from_secs_f64(secs.parse().expect("SECONDS")),
            Duration::from_secs_f64(tcp_after.parse().expect("TCP_AFTER")),
        )),
        _ => {
            eprintln!("usage: lt-ledbat sink PORT | lt-ledbat source ADDR:PORT SECONDS TCP_AFTER");
            std::process::exit(2);
        }
    }
}

async fn drain(mut r: impl AsyncRead + Unpin, count: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            return;
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
}

async fn sink(port: u16) {
    let any = SocketAddr::from(([0, 0, 0, 0], port));
    let tcp = TcpListener::bind(any).await.unwrap();
    let utp = UtpSocket::bind(any).unwrap();
    let (tcp_bytes, utp_bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let count = Arc::clone(&tcp_bytes);
    tokio::spawn(async move {
        while let Ok((s, _)) = tcp.accept().await {
            tokio::spawn(drain(s, Arc::clone(&count)));
        }
    });
    let count = Arc::clone(&utp_bytes);
    tokio::spawn(async move {
        while let Ok((s, _)) = utp.accept().await {
            tokio::spawn(drain(s, Arc::clone(&count)));
        }
    });
    println!("{{\"event\":\"listening\"}}");
    let start = Instant::now();
    loop {
        tokio::time::sleep(TICK).await;
        println!(
            "{{\"t\":{:.3},\"tcp\":{},\"utp\":{}}}",
            start.elapsed().as_secs_f64(),
            tcp_bytes.load(Ordering::Relaxed),
            utp_bytes.load(Ordering::Relaxed)
        );
    }
}

async fn source(to: SocketAddr, secs: Duration, tcp_after: Duration) {
    let start = Instant::now();
    let sock = UtpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0))).unwrap();
    let mut utp = sock.connect(to).await.expect("uTP connect");
    let chunk = vec![0x5au8; 16 * 1024];
    tokio::spawn({
        let chunk = chunk.clone();
        async move {
            tokio::time::sleep(tcp_after).await;
            let mut tcp = TcpStream::connect(to).await.expect("TCP connect");
            // A loss-based TCP, the flow LEDBAT is made to yield to: this machine's default
            // is BBR, which keeps no standing queue for LEDBAT to see.
            let sock = socket2::SockRef::from(&tcp);
            sock.set_tcp_congestion(b"cubic")
                .or_else(|_| sock.set_tcp_congestion(b"reno"))
                .expect("TCP_CONGESTION cubic or reno");
            while tcp.write_all(&chunk).await.is_ok() {}
        }
    });
    let deadline = tokio::time::Instant::from_std(start + secs);
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            r = utp.write(&chunk) => {
                if r.is_err() {
                    return;
                }
            }
            _ = tick.tick() => {
                if let Some(s) = utp.stats() {
                    println!(
                        "{{\"t\":{:.3},\"rtt_ms\":{:.1},\"cwnd\":{}}}",
                        start.elapsed().as_secs_f64(),
                        s.rtt.unwrap_or_default().as_secs_f64() * 1000.0,
                        s.congestion_window
                    );
                }
            }
            () = tokio::time::sleep_until(deadline) => return,
        }
    }
}
