//! `cargo xtask bench-tracker`: UDP announces per second of lt-tracker's `TrackerServer` and of
//! opentracker, on loopback, measured with the same load generator in the same run.
//!
//! The generator runs `--clients` threads, each with its own socket: one BEP 15 connect, then
//! announces kept `--window` deep in flight for `--seconds`, over `--torrents` info-hashes and a
//! new peer (port, peer id) per announce, `numwant` 50, half seeds and half leechers. It counts
//! announce replies (action 1). Our server runs on one thread around the sans-IO core, the
//! way the test driver does (`std::net::UdpSocket`, `Instant::now()` per datagram).
//! opentracker is started with a whitelist of the same info-hashes. The xtask binary re-runs
//! itself in release mode so that both the server and the generator are optimised.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use lt_core::{PeerId, Sha1Hash};
use lt_tracker::Event;
use lt_tracker::server::{ServerConfig, TrackerServer};
use lt_tracker::udp::{UdpAnnounce, UdpRequest, UdpResponse};

use crate::cmd;

/// Options of `cargo xtask bench-tracker`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BenchTrackerArgs {
    /// Seconds of load per tracker.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Load generator threads (one socket each).
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Announces in flight per client.
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// Distinct info-hashes.
    #[arg(long, default_value_t = 100)]
    torrents: usize,
}

pub(crate) fn run(args: &BenchTrackerArgs) -> Result<()> {
    if cfg!(debug_assertions) {
        // Re-run optimised: a debug build measures the debug build.
        let mut c = cmd::cargo([
            "run",
            "--release",
            "-q",
            "-p",
            "xtask",
            "--",
            "bench-tracker",
        ]);
        c.args([
            "--seconds",
            &args.seconds.to_string(),
            "--clients",
            &args.clients.to_string(),
            "--window",
            &args.window.to_string(),
            "--torrents",
            &args.torrents.to_string(),
        ]);
        let status = c.status().context("cargo run --release -p xtask")?;
        if !status.success() {
            bail!("release bench-tracker failed");
        }
        return Ok(());
    }
    let hashes: Vec<Sha1Hash> = (0..args.torrents)
        .map(|i| {
            let mut h = [0x11u8; 20];
            h[..8].copy_from_slice(&(i as u64).to_be_bytes());
            Sha1Hash::new(h)
        })
        .collect();

    // Our server: one thread around the sans-IO core.
    let ours = {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut server = TrackerServer::new(ServerConfig {
                rng_seed: Some([9; 32]),
                ..Default::default()
            });
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = server.handle_datagram(Instant::now(), from, &buf[..n]) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        let rate = load(addr, args, &hashes)?;
        stop.store(true, Ordering::Relaxed);
        let _ = thread.join();
        rate
    };

    // opentracker, whitelisting the same hashes.
    let theirs = {
        let dir = std::env::temp_dir().join(format!("lt-bench-tracker-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let list: String = hashes.iter().map(|h| format!("{}\n", h.to_hex())).collect();
        std::fs::write(dir.join("whitelist"), list)?;
        let port = {
            let probe = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            probe.local_addr()?.port()
        };
        let port_s = port.to_string();
        let mut child = Command::new("opentracker")
            .current_dir(&dir)
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port_s,
                "-P",
                &port_s,
                "-w",
                "whitelist",
            ])
            .arg("-d")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start opentracker (apt-get install opentracker)")?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        // Wait until it answers a connect and has loaded the whitelist.
        std::thread::sleep(Duration::from_millis(500));
        let rate = load(addr, args, &hashes);
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        rate?
    };

    println!(
        "bench-tracker: {} s per tracker, {} clients x {} in flight, {} torrents, loopback",
        args.seconds, args.clients, args.window, args.torrents
    );
    println!("  lt-tracker TrackerServer (1 thread): {ours:>10.0} announces/s");
    println!("  opentracker                        : {theirs:>10.0} announces/s");
    Ok(())
}

/// Runs the generator against `addr` and returns announce replies per second.
fn load(addr: SocketAddr, args: &BenchTrackerArgs, hashes: &[Sha1Hash]) -> Result<f64> {
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let threads: Vec<_> = (0..args.clients)
        .map(|c| {
            let hashes = hashes.to_vec();
            let window = args.window;
            std::thread::spawn(move || client(addr, c, window, end, &hashes))
        })
        .collect();
    let mut total = 0u64;
    for t in threads {
        total += t.join().map_err(|_| anyhow::anyhow!("client panicked"))??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

fn client(
    addr: SocketAddr,
    c: usize,
    window: usize,
    end: Instant,
    hashes: &[Sha1Hash],
) -> Result<u64> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    socket.connect(addr)?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = [0u8; 2048];
    let mut tid = u32::try_from(c).unwrap_or(0) << 24;
    // Connect (retried: the tracker may still be starting).
    let connection_id = 'connect: {
        for _ in 0..25 {
            socket.send(
                &UdpRequest::Connect {
                    transaction_id: tid,
                }
                .to_vec(),
            )?;
            if let Ok(n) = socket.recv(&mut buf)
                && let Ok(UdpResponse::Connect { connection_id, .. }) =
                    UdpResponse::decode(&buf[..n], false)
            {
                break 'connect connection_id;
            }
        }
        bail!("no connect reply from {addr}");
    };
    let mut packet = Vec::with_capacity(128);
    let mut outstanding = 0usize;
    let mut announced = 0u64;
    while Instant::now() < end {
        while outstanding < window {
            tid = tid.wrapping_add(1);
            let i = tid as usize;
            let mut id = [b'-'; 20];
            id[..4].copy_from_slice(&tid.to_be_bytes());
            id[4] = u8::try_from(c).unwrap_or(0);
            packet.clear();
            UdpRequest::Announce {
                connection_id,
                transaction_id: tid,
                announce: UdpAnnounce {
                    info_hash: hashes[i % hashes.len()],
                    peer_id: PeerId::new(id),
                    downloaded: 0,
                    left: if i.is_multiple_of(2) { 0 } else { 1000 },
                    uploaded: 0,
                    event: Event::Started,
                    ip: 0,
                    key: tid,
                    num_want: 50,
                    port: u16::try_from(1024 + i % 60_000).unwrap_or(1024),
                    url_data: Vec::new(),
                },
            }
            .encode(&mut packet);
            socket.send(&packet)?;
            outstanding += 1;
        }
        match socket.recv(&mut buf) {
            Ok(_) => {
                outstanding -= 1;
                if buf.get(..4) == Some(&[0, 0, 0, 1]) {
                    announced += 1;
                }
            }
            // Lost datagrams: refill the window.
            Err(_) => outstanding = 0,
        }
    }
    Ok(announced)
}
