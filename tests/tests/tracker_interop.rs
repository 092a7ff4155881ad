//! lt-tracker against real trackers and clients on loopback.
//!
//! - `opentracker` (Debian package `opentracker`): HTTP and UDP announce and scrape with
//!   the lt-tracker core and the driver in `lt_tests::tracker_driver`.
//! - `python3-libtorrent`: a seeder and a leecher (two libtorrent sessions) find each other
//!   only through our `TrackerServer` (HTTP, then UDP) and complete a download.
//! - Hostile trackers: one that never answers (UDP and HTTP) and one with an oversized
//!   body; both end in typed errors within bounded time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lt_core::{PeerId, Sha1Hash};
use lt_metainfo::{CreateTorrent, TorrentInfo, TorrentVersion};
use lt_tests::tracker_driver::{
    DriverError, TrackerThreads, bind_pair, http_announce, http_client, http_client_trusting,
    http_get, http_scrape, udp_run,
};
use lt_tests::{
    ChildGuard, output_with_timeout, require_program, require_python_libtorrent, test_certificates,
};
use lt_tracker::server::{ServerConfig, TrackerServer};
use lt_tracker::{AnnounceRequest, Error, Event, UdpConfig, UdpEvent, UdpTracker};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn request(info_hash: Sha1Hash, peer: u8, port: u16, left: u64) -> AnnounceRequest {
    let mut id = *b"-LT0001-000000000000";
    id[19] = b'0' + peer;
    let mut r = AnnounceRequest::new(info_hash, PeerId::new(id), port);
    r.left = left;
    r.event = Event::Started;
    r.key = u32::from(peer);
    r.num_want = Some(50);
    r
}

fn udp_config(seed: u8) -> UdpConfig {
    UdpConfig {
        rng_seed: Some([seed; 32]),
        initial_timeout: Duration::from_millis(500),
        ..Default::default()
    }
}

async fn udp_once(port: u16, tracker: &mut UdpTracker) -> UdpEvent {
    let socket = tokio::net::UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    socket.connect((LOCALHOST, port)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), udp_run(&socket, tracker))
        .await
        .expect("UDP exchange within 10 s")
        .unwrap()
}

/// Starts opentracker on a free port of 127.0.0.1 and waits until its HTTP side accepts.
///
/// Debian builds opentracker with a whitelist, so the info-hashes the test uses are
/// written to one in `dir` (readable by `nobody`, the user opentracker drops to, and inside
/// the directory it chroots to).
fn start_opentracker(dir: &Path, hashes: &[Sha1Hash]) -> (ChildGuard, u16) {
    let bin = require_program("opentracker", "opentracker");
    let list: String = hashes.iter().map(|h| format!("{}\n", h.to_hex())).collect();
    std::fs::write(dir.join("whitelist"), list).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (udp, tcp) = bind_pair(LOCALHOST).unwrap();
    let port = udp.local_addr().unwrap().port();
    drop((udp, tcp));
    let port_s = port.to_string();
    let child = ChildGuard::spawn(
        Command::new(bin)
            .current_dir(dir)
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
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    )
    .expect("start opentracker");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect((LOCALHOST, port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "opentracker did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

#[test]
fn opentracker_http_and_udp() {
    let ih = Sha1Hash::new([0x5e; 20]);
    let dir = tempfile::tempdir().unwrap();
    let (_opentracker, port) = start_opentracker(dir.path(), &[ih, Sha1Hash::new([1; 20])]);
    let announce = format!("http://127.0.0.1:{port}/announce");
    let rt = runtime();
    rt.block_on(async {
        let client = http_client(Duration::from_secs(5));
        // A seed, then a leecher that must get the seed back.
        // The whitelist is loaded by a worker thread; give it a moment.
        let mut tries = 0;
        let r = loop {
            match http_announce(&client, &announce, &request(ih, 1, 7001, 0)).await {
                Err(DriverError::Tracker(Error::TrackerFailure { .. })) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                r => break r.unwrap(),
            }
        };
        assert!(r.interval > Duration::ZERO);
        let r = http_announce(&client, &announce, &request(ih, 2, 7002, 1000))
            .await
            .unwrap();
        println!("opentracker HTTP announce: {r:?}");
        assert!(
            r.peers
                .iter()
                .any(|p| p.addr == SocketAddr::new(LOCALHOST, 7001)),
            "{r:?}"
        );
        assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));
        let s = http_scrape(&client, &announce, &[ih]).await.unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].info_hash, s[0].complete, s[0].incomplete), (ih, 1, 1));

        // UDP: a second leecher announces and scrapes through the BEP 15 state machine.
        let mut udp = UdpTracker::new(udp_config(1), b"/announce");
        udp.announce(Instant::now(), &request(ih, 3, 7003, 500))
            .unwrap();
        let UdpEvent::Announced(r) = udp_once(port, &mut udp).await else {
            panic!("no UDP announce reply")
        };
        println!("opentracker UDP announce: {r:?}");
        let ports: Vec<u16> = r.peers.iter().map(|p| p.addr.port()).collect();
        assert!(ports.contains(&7001) && ports.contains(&7002), "{ports:?}");
        assert_eq!((r.complete, r.incomplete), (Some(1), Some(2)));
        udp.scrape(Instant::now(), &[ih, Sha1Hash::new([1; 20])])
            .unwrap();
        let UdpEvent::Scraped(s) = udp_once(port, &mut udp).await else {
            panic!("no UDP scrape reply")
        };
        assert_eq!((s[0].complete, s[0].incomplete), (1, 2));
        assert_eq!((s[1].complete, s[1].incomplete), (0, 0));

        // `stopped` removes the peer.
        let mut stop = request(ih, 3, 7003, 500);
        stop.event = Event::Stopped;
        udp.announce(Instant::now(), &stop).unwrap();
        assert!(matches!(
            udp_once(port, &mut udp).await,
            UdpEvent::Announced(_)
        ));
        let s = http_scrape(&client, &announce, &[ih]).await.unwrap();
        assert_eq!((s[0].complete, s[0].incomplete), (1, 1));
    });
}

#[test]
fn silent_and_oversized_trackers_fail_in_time() {
    let rt = runtime();
    rt.block_on(async {
        // A UDP socket that never answers: 3 attempts at 50, 100, 200 ms.
        let silent = UdpSocket::bind((LOCALHOST, 0)).unwrap();
        let port = silent.local_addr().unwrap().port();
        let mut udp = UdpTracker::new(
            UdpConfig {
                initial_timeout: Duration::from_millis(50),
                max_attempts: 3,
                ..udp_config(2)
            },
            b"",
        );
        let start = Instant::now();
        udp.announce(start, &request(Sha1Hash::new([1; 20]), 1, 1, 0))
            .unwrap();
        assert_eq!(
            udp_once(port, &mut udp).await,
            UdpEvent::Failed(Error::Timeout)
        );
        assert!(start.elapsed() >= Duration::from_millis(350));

        // An HTTP tracker that accepts and never replies, and one with a 2 MiB body.
        let hang = TcpListener::bind((LOCALHOST, 0)).unwrap();
        let hang_port = hang.local_addr().unwrap().port();
        let big = TcpListener::bind((LOCALHOST, 0)).unwrap();
        let big_port = big.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (_held, _) = hang.accept().unwrap();
            let (mut s, _) = big.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = vec![b'x'; 2 << 20];
            let _ = s.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
            );
            let _ = s.write_all(&body);
            std::thread::sleep(Duration::from_millis(1500));
        });
        let client = http_client(Duration::from_secs(1));
        let url = format!("http://127.0.0.1:{hang_port}/announce");
        let r = http_announce(&client, &url, &request(Sha1Hash::new([1; 20]), 1, 1, 0)).await;
        assert!(
            matches!(&r, Err(DriverError::Http(e)) if e.is_timeout()),
            "{r:?}"
        );
        let url = format!("http://127.0.0.1:{big_port}/announce");
        let r = http_get(&client, &url, 1 << 20).await;
        assert!(
            matches!(r, Err(DriverError::Tracker(Error::ReplyTooLarge { .. }))),
            "{r:?}"
        );
        server.join().unwrap();
    });
}

const SWARM_PY: &str = r#"
import sys, time
import libtorrent as lt
torrent, seed_dir, leech_dir = sys.argv[1], sys.argv[2], sys.argv[3]
def session():
    s = lt.high_performance_seed()
    s.update({
        "listen_interfaces": "127.0.0.1:0",
        "enable_upnp": False, "enable_natpmp": False, "enable_lsd": False, "enable_dht": False,
        "allow_multiple_connections_per_ip": True,
        "tick_interval": 100, "smooth_connects": False, "connection_speed": 500,
        "peer_connect_timeout": 3, "min_reconnect_time": 1,
        "alert_mask": lt.alert.category_t.error_notification
            | lt.alert.category_t.tracker_notification | lt.alert.category_t.status_notification,
    })
    return lt.session(s)
def add(ses, path, seed):
    p = lt.add_torrent_params()
    p.ti = lt.torrent_info(torrent)
    p.save_path = path
    if seed:
        p.flags |= lt.torrent_flags.seed_mode
    p.flags &= ~lt.torrent_flags.auto_managed
    p.flags &= ~lt.torrent_flags.paused
    return ses.add_torrent(p)
def drain(name, ses):
    replies = 0
    for a in ses.pop_alerts():
        print(name, a.message(), file=sys.stderr, flush=True)
        if isinstance(a, lt.tracker_reply_alert):
            replies += 1
    return replies
seeder = session()
sh = add(seeder, seed_dir, True)
deadline = time.time() + 50
while time.time() < deadline and drain("seed:", seeder) == 0:
    time.sleep(0.05)
leecher = session()
lh = add(leecher, leech_dir, False)
while time.time() < deadline:
    drain("seed:", seeder)
    drain("leech:", leecher)
    st = lh.status()
    if st.is_seeding:
        print("DONE", flush=True)
        sys.exit(0)
    time.sleep(0.05)
print("TIMEOUT", lh.status().progress, flush=True)
sys.exit(1)
"#;

fn payload() -> Vec<u8> {
    let mut x = 0x9e37_79b9_u32;
    (0..600_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_be_bytes()[0]
        })
        .collect()
}

fn libtorrent_swarm(udp: bool) {
    let python = require_python_libtorrent();
    let tracker = TrackerThreads::start(
        TrackerServer::new(ServerConfig {
            rng_seed: Some([3; 32]),
            ..Default::default()
        }),
        LOCALHOST,
    )
    .unwrap();
    let url = if udp {
        format!("udp://127.0.0.1:{}", tracker.port)
    } else {
        format!("http://127.0.0.1:{}/announce", tracker.port)
    };
    let dir = tempfile::tempdir().unwrap();
    let seed_dir = dir.path().join("seed");
    let leech_dir = dir.path().join("leech");
    std::fs::create_dir_all(&seed_dir).unwrap();
    std::fs::create_dir_all(&leech_dir).unwrap();
    let data = payload();
    std::fs::write(seed_dir.join("payload.bin"), &data).unwrap();
    let bytes = CreateTorrent::new(seed_dir.join("payload.bin"))
        .version(TorrentVersion::V1)
        .piece_size(65536)
        .tracker(&url)
        .generate()
        .unwrap();
    let ti = TorrentInfo::from_bytes(&bytes).unwrap();
    let torrent = dir.path().join("t.torrent");
    std::fs::write(&torrent, &bytes).unwrap();

    let out = output_with_timeout(
        Command::new(python)
            .arg("-c")
            .arg(SWARM_PY)
            .arg(&torrent)
            .arg(&seed_dir)
            .arg(&leech_dir),
        Duration::from_secs(60),
    )
    .expect("libtorrent swarm within 60 s");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("DONE"),
        "{url}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(leech_dir.join("payload.bin")).unwrap(), data);
    let counts = tracker
        .server
        .lock()
        .unwrap()
        .counts(&ti.info_hash().best());
    // DHT, LSD and PEX are off and no peer was added by hand: the leecher found the seed
    // through our tracker. Both sessions sent `stopped` on exit.
    println!("{url}: {stdout} tracker counts (seeds, leechers, completed) = {counts:?}");
    assert!(
        counts.is_some_and(|(_, _, completed)| completed <= 1),
        "{counts:?}"
    );
}

#[test]
fn libtorrent_swarm_via_our_http_tracker() {
    libtorrent_swarm(false);
}

#[test]
fn libtorrent_swarm_via_our_udp_tracker() {
    libtorrent_swarm(true);
}

/// A gzip member holding `data` in stored (uncompressed) deflate blocks.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        out.extend([1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = u16::try_from(chunk.len()).unwrap();
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend(chunk);
    }
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    out.extend((!crc).to_le_bytes());
    out.extend(u32::try_from(data.len()).unwrap().to_le_bytes());
    out
}

#[test]
fn http_redirect_and_gzip() {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut heads = Vec::new();
        for _ in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0);
                head.extend_from_slice(&buf[..n]);
            }
            let head = String::from_utf8(head).unwrap();
            let target = head.split(' ').nth(1).unwrap().to_owned();
            if target.starts_with("/announce") {
                // Moved: keep the query.
                let query = target.split_once('?').unwrap().1;
                let reply = format!(
                    "HTTP/1.1 302 Found\r\nLocation: /moved/announce?{query}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                s.write_all(reply.as_bytes()).unwrap();
            } else {
                let body = gzip_stored(
                    b"d8:completei1e10:incompletei2e8:intervali900e5:peers6:\x7f\x00\x00\x01\x1a\xe1e",
                );
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                );
                s.write_all(reply.as_bytes()).unwrap();
                s.write_all(&body).unwrap();
            }
            heads.push(head);
        }
        heads
    });
    let rt = runtime();
    let r = rt
        .block_on(async {
            let client = http_client(Duration::from_secs(5));
            let url = format!("http://127.0.0.1:{port}/announce");
            http_announce(&client, &url, &request(Sha1Hash::new([4; 20]), 1, 1, 0)).await
        })
        .unwrap();
    assert_eq!(r.interval, Duration::from_secs(900));
    assert_eq!(r.peers[0].addr, SocketAddr::new(LOCALHOST, 6881));
    let heads = server.join().unwrap();
    assert!(
        heads[1].starts_with("GET /moved/announce?info_hash=%04%04"),
        "{}",
        heads[1]
    );
    assert!(
        heads[1]
            .to_ascii_lowercase()
            .contains("accept-encoding: gzip"),
        "{}",
        heads[1]
    );
}

#[test]
fn https_announce_with_rustls() {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let dir = tempfile::tempdir().unwrap();
    let (ca, leaf, key) = test_certificates(dir.path());
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            CertificateDer::pem_slice_iter(&leaf)
                .collect::<Result<Vec<_>, _>>()
                .unwrap(),
            PrivateKeyDer::from_pem_slice(&key).unwrap(),
        )
        .unwrap();
    let config = std::sync::Arc::new(config);
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut tracker = TrackerServer::new(ServerConfig::default());
    let server = std::thread::spawn(move || {
        // One announce from a seed (so the client below gets it back), then the TLS client.
        let now = Instant::now();
        let mut seed = request(Sha1Hash::new([6; 20]), 1, 7001, 0);
        seed.event = Event::Started;
        let url = lt_tracker::http::announce_url("http://x/announce", &seed);
        let _ = tracker.handle_http(now, LOCALHOST, &url["http://x".len()..]);
        let (tcp, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tls.read(&mut buf).unwrap();
            assert!(n > 0);
            head.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8(head).unwrap();
        let target = head.split(' ').nth(1).unwrap();
        let reply = tracker.handle_http(now, LOCALHOST, target);
        let header = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            reply.body.len()
        );
        tls.write_all(header.as_bytes()).unwrap();
        tls.write_all(&reply.body).unwrap();
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    let rt = runtime();
    let r = rt
        .block_on(async {
            let client = http_client_trusting(Duration::from_secs(5), &ca).unwrap();
            let url = format!("https://127.0.0.1:{port}/announce");
            http_announce(&client, &url, &request(Sha1Hash::new([6; 20]), 2, 7002, 10)).await
        })
        .unwrap();
    server.join().unwrap();
    assert_eq!(r.peers.len(), 1, "{r:?}");
    assert_eq!(r.peers[0].addr, SocketAddr::new(LOCALHOST, 7001));
}

/// BEP 12 over real sockets: tier 0 is a UDP tracker that never answers, tier 1 holds
/// opentracker (HTTP) and a second silent UDP tracker. The list fails over, the responding
/// tracker moves to the front of its tier, and its `announce_entry` state is filled in.
#[test]
fn tiers_fail_over_to_opentracker() {
    use lt_tracker::{TrackerList, UdpUrl};

    let ih = Sha1Hash::new([0x7a; 20]);
    let dir = tempfile::tempdir().unwrap();
    let (_opentracker, port) = start_opentracker(dir.path(), &[ih]);
    let silent = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let silent_url = format!("udp://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let http_url = format!("http://127.0.0.1:{port}/announce");
    let tiers = vec![
        vec![silent_url.clone()],
        vec![http_url.clone(), format!("{silent_url}/other")],
    ];
    let mut list = TrackerList::new(&tiers, [9; 32]).with_retry_base(Duration::from_millis(100));
    let rt = runtime();
    let client = http_client(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(20);
    let verified = rt.block_on(async {
        loop {
            assert!(
                Instant::now() < deadline,
                "no tracker answered: {:#?}",
                list.entries()
            );
            let now = Instant::now();
            let Some(i) = list.next_announce(now) else {
                let wait = list.poll_timeout().map_or(Duration::from_millis(10), |t| {
                    t.saturating_duration_since(now)
                });
                tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
                continue;
            };
            let url = list.entry(i).unwrap().url.clone();
            let req = request(ih, 1, 7101, 0);
            let result = if url.starts_with("udp://") {
                let u = UdpUrl::parse(&url).unwrap();
                let mut udp = UdpTracker::new(
                    UdpConfig {
                        initial_timeout: Duration::from_millis(50),
                        max_attempts: 2,
                        ..udp_config(4)
                    },
                    &u.url_data,
                );
                udp.announce(Instant::now(), &req).unwrap();
                match udp_once(u.port, &mut udp).await {
                    UdpEvent::Announced(r) => Ok(r),
                    UdpEvent::Failed(e) => Err(e),
                    other => panic!("{other:?}"),
                }
            } else {
                http_announce(&client, &url, &req)
                    .await
                    .map_err(|e| match e {
                        DriverError::Tracker(e) => e,
                        _ => Error::Timeout,
                    })
            };
            match result {
                Ok(r) => break list.on_success(Instant::now(), i, req.event, &r),
                Err(e) => list.on_failure(Instant::now(), i, e),
            }
        }
    });
    let e = list.entry(verified).unwrap();
    assert_eq!(e.url, http_url);
    assert!(e.verified && e.fails == 0 && !e.updating);
    assert_eq!(e.tier, 1);
    assert_eq!(e.scrape_complete, Some(1));
    assert!(e.next_announce.is_some());
    // It is first in its tier now, and tier 0's tracker has failed at least once.
    assert_eq!(list.entries()[1].url, http_url);
    assert!(list.entries()[0].fails >= 1);
    assert_eq!(list.entries()[0].last_error, Some(Error::Timeout));
    drop(silent);
}

/// Our server and the UDP client over IPv6 loopback: 18-byte peers.
#[test]
fn udp_over_ipv6_loopback() {
    let v6: IpAddr = "::1".parse().unwrap();
    let tracker = TrackerThreads::start(TrackerServer::new(ServerConfig::default()), v6).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let ih = Sha1Hash::new([0x66; 20]);
        let mut got = Vec::new();
        for (peer, port) in [(1u8, 7201u16), (2, 7202)] {
            let socket = tokio::net::UdpSocket::bind((v6, 0)).await.unwrap();
            socket.connect((v6, tracker.port)).await.unwrap();
            let mut udp = UdpTracker::new(
                UdpConfig {
                    ipv6: true,
                    ..udp_config(peer)
                },
                b"",
            );
            udp.announce(Instant::now(), &request(ih, peer, port, u64::from(peer)))
                .unwrap();
            let UdpEvent::Announced(r) = udp_run(&socket, &mut udp).await.unwrap() else {
                panic!("no announce reply over IPv6")
            };
            got.push(r.peers);
        }
        assert!(got[0].is_empty());
        assert_eq!(got[1][0].addr, SocketAddr::new(v6, 7201));
    });
}
