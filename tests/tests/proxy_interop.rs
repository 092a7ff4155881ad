//! Proxies, against real ones: Dante for SOCKS5 (without and with a password) and SOCKS4,
//! tinyproxy for HTTP (without and with a password). A leecher behind the proxy finds an lt
//! seed through an HTTP tracker and downloads from it; the proxy's log shows both the
//! announce and the peer connection, the leecher does not listen, and the UDP tracker ahead
//! of the HTTP one in the torrent receives nothing. Also `lt download --proxy` from a
//! libtorrent seed and an nginx web seed through tinyproxy, and proxies that refuse us or
//! are not proxies at all: typed errors naming the proxy, and no direct connection.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lt_metainfo::{CreateTorrent, TorrentInfo};
use lt_session::{
    AddTorrentParams, Alert, DisconnectReason, ProxyKind, ProxySettings, Session, SessionSettings,
};
use lt_tests::nginx::Nginx;
use lt_tests::proxies::{Proxy, SOCKS_PASSWORD, SOCKS_USER};
use lt_tests::session::{loopback_settings as settings, payload, wait_for};
use lt_tests::swarm::{Payload, lt_binary, run_download};
use lt_tests::tracker_driver::TrackerThreads;
use lt_tracker::server::{ServerConfig, TrackerServer};

/// A UDP socket that counts the datagrams it receives, standing for a UDP tracker nobody
/// behind a proxy may reach.
struct UdpTrap {
    port: u16,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UdpTrap {
    fn start() -> Self {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let port = socket.local_addr().unwrap().port();
        let count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (Arc::clone(&count), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if socket.recv_from(&mut buf).is_ok() {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self {
            port,
            count,
            stop,
            thread: Some(thread),
        }
    }

    fn received(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for UdpTrap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The leecher behind `settings` (a proxy on `proxy`) downloads 2 MiB from an lt seed it
/// learns of through an HTTP tracker, which the proxy reaches for it. Behind a proxy that
/// cannot carry UDP (all but SOCKS5) the leecher's torrent lists a UDP tracker first,
/// which must receive nothing (SOCKS5's UDP relay has a test of its own).
fn download_through(proxy: &Proxy, settings_for_proxy: ProxySettings) {
    let udp_refused = settings_for_proxy.kind != ProxyKind::Socks5;
    let tracker = TrackerThreads::loopback([5; 32]).unwrap();
    let http = format!("http://127.0.0.1:{}/announce", tracker.port);
    let trap = UdpTrap::start();
    let data = payload(2 << 20, 0x2545_f491_4f6c_dd1d);
    let torrent = |trackers: &[(&str, u8)]| {
        let mut c = CreateTorrent::from_memory("payload.bin", data.clone()).piece_size(64 << 10);
        for &(url, tier) in trackers {
            c = c.tracker_tier(url, tier);
        }
        Arc::new(TorrentInfo::from_bytes(&c.generate().unwrap()).unwrap())
    };
    let udp = format!("udp://127.0.0.1:{}", trap.port);
    let seed_info = torrent(&[(&http, 0)]);
    let leech_info = if udp_refused {
        torrent(&[(&udp, 0), (&http, 1)])
    } else {
        torrent(&[(&http, 0)])
    };
    assert_eq!(seed_info.info_hash(), leech_info.info_hash());

    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload.bin"), &data).unwrap();
    let seed = Session::new(settings()).unwrap();
    let seed_port = seed.listen_port();
    let sh = seed
        .add_torrent(AddTorrentParams::new(seed_info, src.path()))
        .unwrap();
    wait_for(&sh, 20, "the seed's check", |s| s.is_seeding);

    let dst = tempfile::tempdir().unwrap();
    let leech = Session::new(SessionSettings {
        proxy: Some(settings_for_proxy),
        ..settings()
    })
    .unwrap();
    assert!(
        leech.listen_addrs().is_empty(),
        "{:?}",
        leech.listen_addrs()
    );
    let lh = leech
        .add_torrent(AddTorrentParams::new(leech_info, dst.path()))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lh.status().unwrap().is_seeding {
        assert!(
            Instant::now() < deadline,
            "no download through the proxy: {:?}\n{:?}\n{}",
            lh.trackers(),
            leech.pop_alerts(),
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read(dst.path().join("payload.bin")).unwrap(), data);

    let alerts = leech.pop_alerts();
    assert!(
        alerts.iter().any(
            |a| matches!(a, Alert::AnonymousMode { message } if message.contains("not listening"))
        ),
        "{alerts:?}"
    );
    assert!(
        !udp_refused
            || alerts.iter().any(|a| matches!(
                a,
                Alert::TrackerError { url, error, .. } if url.starts_with("udp://") && error.to_string().contains("proxy")
            )),
        "{alerts:?}"
    );
    leech.shutdown();
    seed.shutdown();
    assert_eq!(
        trap.received(),
        0,
        "a UDP tracker was asked around the proxy"
    );
    let log = proxy.log();
    assert!(
        proxy.connected_to(tracker.port),
        "no announce through the proxy:\n{log}"
    );
    assert!(
        proxy.connected_to(seed_port),
        "no peer connection through the proxy:\n{log}"
    );
}

#[test]
fn socks5_without_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::dante(dir.path(), false);
    let p = proxy.addr;
    download_through(
        &proxy,
        ProxySettings::new(ProxyKind::Socks5, p.ip().to_string(), p.port()),
    );
}

#[test]
fn socks5_with_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::dante(dir.path(), true);
    let p = proxy.addr;
    download_through(
        &proxy,
        ProxySettings::new(ProxyKind::Socks5, p.ip().to_string(), p.port())
            .with_auth(SOCKS_USER, SOCKS_PASSWORD),
    );
    assert!(
        proxy.log().contains(&format!("username%{SOCKS_USER}@")),
        "{}",
        proxy.log()
    );
}

#[test]
fn socks4() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::dante(dir.path(), false);
    let p = proxy.addr;
    download_through(
        &proxy,
        ProxySettings::new(ProxyKind::Socks4, p.ip().to_string(), p.port()),
    );
}

#[test]
fn http_without_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::tinyproxy(dir.path(), None);
    let p = proxy.addr;
    download_through(
        &proxy,
        ProxySettings::new(ProxyKind::Http, p.ip().to_string(), p.port()),
    );
}

#[test]
fn http_with_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::tinyproxy(dir.path(), Some(("ann", "s3cret")));
    let p = proxy.addr;
    download_through(
        &proxy,
        ProxySettings::new(ProxyKind::Http, p.ip().to_string(), p.port())
            .with_auth("ann", "s3cret"),
    );
}

/// A TCP listener that counts the connections it accepts (a peer nobody behind a proxy
/// may reach directly).
fn counting_listener() -> (u16, Arc<AtomicU64>, Arc<AtomicBool>) {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (c, s) = (Arc::clone(&count), Arc::clone(&stop));
    std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            if l.accept().is_ok() {
                c.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    (port, count, stop)
}

/// A fake proxy on a free port: `answer` runs on each connection it accepts.
fn fake_proxy(answer: fn(std::net::TcpStream)) -> (SocketAddr, Arc<AtomicBool>) {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            if let Ok((c, _)) = l.accept() {
                c.set_nonblocking(false).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                std::thread::spawn(move || answer(c));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    (addr, stop)
}

/// Proxies that refuse the password, close in the middle of the handshake, or answer
/// garbage: the peer connection fails with an error that names the proxy and what went
/// wrong, the session goes on, and the peer is never dialled directly.
#[test]
fn bad_proxies_are_typed_errors_and_nothing_goes_around_them() {
    let dir = tempfile::tempdir().unwrap();
    let dante = Proxy::dante(dir.path(), true);
    let tiny = Proxy::tinyproxy(dir.path(), Some(("ann", "right")));
    let (closing, stop_closing) = fake_proxy(|mut c| {
        let mut b = [0u8; 3];
        let _ = c.read_exact(&mut b);
        let _ = c.write_all(&[5]);
    });
    let (garbage, stop_garbage) = fake_proxy(|mut c| {
        let mut b = [0u8; 64];
        let _ = c.read(&mut b);
        let _ = c.write_all(b"220 mail.example ESMTP ready\r\n");
    });
    let cases = [
        (
            ProxySettings::new(ProxyKind::Socks5, "127.0.0.1", dante.addr.port())
                .with_auth(SOCKS_USER, "wrong"),
            "refused the username and password",
        ),
        (
            ProxySettings::new(ProxyKind::Socks5, "127.0.0.1", dante.addr.port()),
            "requires authentication",
        ),
        (
            ProxySettings::new(ProxyKind::Http, "127.0.0.1", tiny.addr.port())
                .with_auth("ann", "wrong"),
            "refused the username and password",
        ),
        (
            ProxySettings::new(ProxyKind::Socks5, "127.0.0.1", closing.port()),
            "closed the connection during the handshake",
        ),
        (
            ProxySettings::new(ProxyKind::Http, "127.0.0.1", garbage.port()),
            "malformed",
        ),
    ];
    let (peer_port, direct, stop_peer) = counting_listener();
    let (tracker_port, direct_tracker, stop_tracker) = counting_listener();
    let data = payload(256 << 10, 0x2545_f491_4f6c_dd1d);
    let info = Arc::new(
        TorrentInfo::from_bytes(
            &CreateTorrent::from_memory("p.bin", data)
                .piece_size(64 << 10)
                .tracker(format!("http://127.0.0.1:{tracker_port}/announce"))
                .generate()
                .unwrap(),
        )
        .unwrap(),
    );
    for (proxy, want) in cases {
        let endpoint = proxy.endpoint();
        let out = tempfile::tempdir().unwrap();
        let leech = Session::new(SessionSettings {
            proxy: Some(proxy),
            ..settings()
        })
        .unwrap();
        let mut params = AddTorrentParams::new(Arc::clone(&info), out.path());
        params.peers = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, peer_port))];
        params.web_seeds = vec![lt_metainfo::WebSeed {
            url: format!("http://127.0.0.1:{tracker_port}/p.bin"),
            kind: lt_metainfo::WebSeedKind::Url,
        }];
        let _h = leech.add_torrent(params).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut error, mut tracker_error, mut web_error) = (None, None, None);
        let error = loop {
            for a in leech.pop_alerts() {
                match a {
                    Alert::PeerDisconnected {
                        reason: DisconnectReason::Io(e),
                        ..
                    } => error = Some(e.message),
                    Alert::TrackerError { error: e, .. } => tracker_error = Some(e.to_string()),
                    Alert::UrlSeed { error: e, .. } => web_error = Some(e),
                    _ => {}
                }
            }
            if let (Some(e), Some(t), Some(w)) = (&error, &tracker_error, &web_error) {
                eprintln!("{endpoint}: peer: {e}\n{endpoint}: tracker: {t}\n{endpoint}: web: {w}");
                break e.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no proxy error for {endpoint} ({want}): {error:?} {tracker_error:?} {web_error:?}"
            );
            leech.wait_for_alert(Duration::from_millis(200));
        };
        assert!(
            error.contains(&endpoint)
                && error.contains(&format!("connect to 127.0.0.1:{peer_port}")),
            "{error}"
        );
        assert!(
            error.contains(want),
            "{endpoint}: {error:?} should say {want:?}"
        );
        let tracker_error = tracker_error.unwrap_or_default();
        assert!(tracker_error.contains(&endpoint), "{tracker_error}");
        let web_error = web_error.unwrap_or_default();
        assert!(web_error.contains(&endpoint), "{web_error}");
        leech.shutdown();
    }
    assert_eq!(
        direct.load(Ordering::Relaxed),
        0,
        "the peer was dialled around the proxy"
    );
    assert_eq!(
        direct_tracker.load(Ordering::Relaxed),
        0,
        "the tracker or the web seed was asked around the proxy"
    );
    for s in [stop_closing, stop_garbage, stop_peer, stop_tracker] {
        s.store(true, Ordering::Relaxed);
    }
}

/// `lt download --proxy http://user:password@host:port`: a libtorrent seed and an nginx web
/// seed, both reached through tinyproxy, every byte checked.
#[test]
fn lt_download_through_an_http_proxy_from_libtorrent_and_a_web_seed() {
    lt_binary();
    let dir = tempfile::tempdir().unwrap();
    let payload = Payload::create(dir.path(), "through.bin", 3 << 20, 32 << 10, &[]);
    let nginx = Nginx::start(dir.path(), &payload.data_dir, "limit_rate 500k;");
    let proxy = Proxy::tinyproxy(dir.path(), Some(("ann", "pw")));
    let (_seed, port) = payload.start_libtorrent_seed(&["--upload-limit", "600000"]);
    let out = dir.path().join("out");
    let mut cmd = std::process::Command::new(lt_binary());
    cmd.arg("download")
        .arg(&payload.torrent)
        .arg("-o")
        .arg(&out)
        .args(["--json", "--no-dht", "--web-seed", &nginx.url("")])
        .args(["--peer", &format!("127.0.0.1:{port}")])
        .args(["--proxy", &format!("http://ann:pw@{}", proxy.addr)]);
    let (summary, stderr) = run_download("lt download --proxy", &mut cmd, &payload, &out);
    assert!(!stderr.contains("listening on"), "{stderr}");
    assert!(
        summary.json["web_seed_bytes"].as_u64().unwrap() > 0,
        "{stderr}"
    );
    assert!(
        summary.payload_downloaded > summary.json["web_seed_bytes"].as_u64().unwrap(),
        "{stderr}"
    );
    let log = proxy.log();
    assert!(log.contains(&format!("CONNECT 127.0.0.1:{port}")), "{log}");
    assert!(
        log.contains(&format!("GET http://{}/through.bin", nginx.addr)),
        "{log}"
    );
}

/// Behind a SOCKS5 proxy (Dante) uTP, the DHT and UDP trackers go through its UDP relay:
/// the leecher, with TCP off, learns of the seed from a UDP tracker, downloads from it
/// over uTP, and its DHT node meets the seed's.
#[test]
fn utp_dht_and_udp_trackers_through_a_socks5_udp_relay() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::dante(dir.path(), false);
    let tracker = TrackerThreads::loopback([9; 32]).unwrap();
    let data = payload(2 << 20, 0x2545_f491_4f6c_dd1d);
    let info = Arc::new(
        TorrentInfo::from_bytes(
            &CreateTorrent::from_memory("payload.bin", data.clone())
                .piece_size(64 << 10)
                .tracker(format!("udp://127.0.0.1:{}", tracker.port))
                .generate()
                .unwrap(),
        )
        .unwrap(),
    );
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload.bin"), &data).unwrap();
    let seed = Session::new(SessionSettings {
        enable_dht: true,
        ..settings()
    })
    .unwrap();
    let seed_addr = seed.listen_addrs()[0];
    let sh = seed
        .add_torrent(AddTorrentParams::new(Arc::clone(&info), src.path()))
        .unwrap();
    wait_for(&sh, 20, "the seed's check", |s| s.is_seeding);

    let mut s = SessionSettings {
        enable_dht: true,
        dht_bootstrap_nodes: vec![seed_addr],
        proxy: Some(ProxySettings::new(
            ProxyKind::Socks5,
            proxy.addr.ip().to_string(),
            proxy.addr.port(),
        )),
        ..settings()
    };
    s.engine.enable_outgoing_tcp = false;
    let leech = Session::new(s).unwrap();
    assert!(leech.listen_addrs().is_empty());
    assert!(leech.is_dht_running());
    let dst = tempfile::tempdir().unwrap();
    let lh = leech
        .add_torrent(AddTorrentParams::new(info, dst.path()))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lh.status().unwrap().is_seeding {
        assert!(
            Instant::now() < deadline,
            "no download through the relay: {:?}\n{:?}\n{}",
            lh.trackers(),
            leech.pop_alerts(),
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read(dst.path().join("payload.bin")).unwrap(), data);
    assert!(
        lh.trackers().iter().all(|t| t.verified),
        "{:?}",
        lh.trackers()
    );
    // (With outgoing TCP off, the pieces came over uTP.)
    while leech.dht_nodes() == 0 {
        assert!(
            Instant::now() < deadline,
            "the DHT met nobody through the relay"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = proxy.log();
    assert!(
        log.contains("udpassociate") || log.contains("udpreply"),
        "{log}"
    );
    leech.shutdown();
    seed.shutdown();
}

/// Anonymous mode: no fingerprint in the peer id, no listening, no tracker without a
/// proxy; behind a proxy the download works and the seed learns no client name.
#[test]
fn anonymous_mode_hides_the_client_and_needs_a_proxy_for_trackers() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = TrackerThreads::start(
        TrackerServer::new(ServerConfig::default()),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    )
    .unwrap();
    let data = payload(1 << 20, 0x2545_f491_4f6c_dd1d);
    let info = Arc::new(
        TorrentInfo::from_bytes(
            &CreateTorrent::from_memory("payload.bin", data.clone())
                .piece_size(64 << 10)
                .tracker(format!("http://127.0.0.1:{}/announce", tracker.port))
                .generate()
                .unwrap(),
        )
        .unwrap(),
    );
    // Without a proxy: not listening, and the tracker is not asked.
    let alone = Session::new(SessionSettings {
        anonymous_mode: true,
        ..settings()
    })
    .unwrap();
    assert!(alone.listen_addrs().is_empty());
    let id = alone.peer_id();
    assert!(!id.as_bytes().starts_with(b"-RL"), "{id:?}");
    let out = tempfile::tempdir().unwrap();
    let h = alone
        .add_torrent(AddTorrentParams::new(Arc::clone(&info), out.path()))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let errors: Vec<String> = h
            .trackers()
            .iter()
            .filter_map(|t| t.last_error.as_ref().map(ToString::to_string))
            .collect();
        if errors.iter().any(|e| e.contains("anonymous mode")) {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", h.trackers());
        std::thread::sleep(Duration::from_millis(50));
    }
    alone.shutdown();
    assert_eq!(
        tracker.server.lock().unwrap().torrent_count(),
        0,
        "the tracker was asked"
    );

    // Through a proxy it downloads, and the seed sees no client name.
    let proxy = Proxy::dante(dir.path(), false);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("payload.bin"), &data).unwrap();
    let seed = Session::new(settings()).unwrap();
    let sh = seed
        .add_torrent(AddTorrentParams::new(Arc::clone(&info), src.path()))
        .unwrap();
    wait_for(&sh, 20, "the seed's check", |s| s.is_seeding);
    let mut s = SessionSettings {
        anonymous_mode: true,
        proxy: Some(ProxySettings::new(
            ProxyKind::Socks5,
            proxy.addr.ip().to_string(),
            proxy.addr.port(),
        )),
        ..settings()
    };
    // Slow enough for the seed to see the peer's extension handshake.
    s.engine.download_rate_limit = 400_000;
    s.engine.ignore_limits_on_local_network = false;
    let leech = Session::new(s).unwrap();
    let dst = tempfile::tempdir().unwrap();
    let lh = leech
        .add_torrent(AddTorrentParams::new(info, dst.path()))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = None;
    while !lh.status().unwrap().is_seeding {
        if let Some(p) = sh.peer_info().into_iter().find(|p| p.peer_id.is_some()) {
            seen = Some(p);
        }
        assert!(Instant::now() < deadline, "{:?}", lh.trackers());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::read(dst.path().join("payload.bin")).unwrap(), data);
    let p = seen.expect("the seed saw the leecher");
    assert_eq!(p.peer_id, Some(leech.peer_id()));
    assert!(!p.client.starts_with("lt "), "{:?}", p.client);
    leech.shutdown();
    seed.shutdown();
}
