//! SSL torrents (issue 23, the manual's "SSL torrents"): peers talk TLS, each showing a
//! certificate the torrent's root signed and that names the torrent.
//!
//! - Transfers, every byte verified: lt to lt over TCP and uTP, libtorrent 2.0 to lt and lt
//!   to libtorrent over TCP, all with the `lt` command; and an lt leecher that learns of an
//!   lt seed and a libtorrent seed from a tracker only, where both announced their SSL port.
//! - The certificate rules, on certificates the `openssl` command makes, checked on both
//!   sides: lt accepting (`openssl s_client` as the peer, as the manual's "testing" section
//!   does) and lt dialling (`openssl s_server` as the peer). Accepted: a dNSName naming the
//!   torrent, a `*` certificate, a Common Name naming it. Refused: a certificate from
//!   another root, one naming another torrent, an expired one; a connection without SNI,
//!   one whose SNI names no torrent, and plaintext to the SSL port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lt_metainfo::{CreateTorrent, TorrentInfo, TorrentVersion};
use lt_session::{AddTorrentParams, Alert, Session, TorrentHandle};
use lt_tests::pki::{PeerCert, Pki};
use lt_tests::session::{loopback_settings, wait_for};
use lt_tests::swarm::{
    Payload, Peer, Stream, deadline_in, files_equal, lt_binary, run_download, start_lt,
};
use lt_tests::{ChildGuard, require_program, require_python_libtorrent};

/// The torrent's name, which peer certificates must carry.
const NAME: &str = "secret.bin";

/// A payload and an SSL torrent of it whose root is `pki`'s.
struct SslTorrent {
    payload: Payload,
    torrent: PathBuf,
    info: Arc<TorrentInfo>,
}

impl SslTorrent {
    fn new(dir: &Path, pki: &Pki, len: u64, trackers: &[String]) -> Self {
        let payload = Payload::create(dir, NAME, len, 64 << 10, &[]);
        let root = std::fs::read(&pki.root).unwrap();
        let mut create = CreateTorrent::new(&payload.file)
            .version(TorrentVersion::V1)
            .piece_size(64 << 10)
            .ssl_cert(root);
        for url in trackers {
            create = create.tracker(url.clone());
        }
        let bytes = create.generate().unwrap();
        let torrent = dir.join("secret.torrent");
        std::fs::write(&torrent, &bytes).unwrap();
        let info = Arc::new(TorrentInfo::from_bytes(&bytes).unwrap());
        assert!(info.ssl_cert().is_some());
        Self {
            payload,
            torrent,
            info,
        }
    }

    fn hex(&self) -> String {
        self.info.info_hash().best().to_hex()
    }
}

/// `lt seed` of the torrent with `cert`; returns it and its SSL port.
fn lt_seed(t: &SslTorrent, cert: &PeerCert, extra: &[&str]) -> (Peer, u16) {
    let mut args: Vec<std::ffi::OsString> = vec![
        "seed".into(),
        t.torrent.clone().into(),
        "--data".into(),
        t.payload.data_dir.clone().into(),
        "--no-dht".into(),
        "--ssl-cert".into(),
        cert.cert.clone().into(),
        "--ssl-key".into(),
        cert.key.clone().into(),
    ];
    args.extend(extra.iter().map(Into::into));
    let (mut peer, _) = start_lt("lt seed", args);
    let line = peer
        .wait_line(Stream::Stderr, deadline_in(30), |l| {
            l.contains("listening for SSL torrents on port ")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let port = line.rsplit(' ').next().unwrap().parse().unwrap();
    peer.wait_line(Stream::Stderr, deadline_in(60), |l| l.contains("seeding "))
        .unwrap_or_else(|e| panic!("{e}"));
    (peer, port)
}

/// `lt download` of the torrent from 127.0.0.1:`port` with `cert`, verified.
fn lt_download(
    t: &SslTorrent,
    dir: &Path,
    label: &str,
    cert: &PeerCert,
    port: u16,
    extra: &[&str],
) {
    let out = dir.join(label.replace(' ', "-"));
    let mut cmd = Command::new(lt_binary());
    cmd.arg("download")
        .arg(&t.torrent)
        .arg("-o")
        .arg(&out)
        .args(["--json", "--no-dht", "--peer", &format!("127.0.0.1:{port}")])
        .arg("--ssl-cert")
        .arg(&cert.cert)
        .arg("--ssl-key")
        .arg(&cert.key)
        .args(extra);
    if let Some(p) = &cert.passphrase {
        cmd.env("LT_SSL_KEY_PASSPHRASE", p);
    }
    let (_, stderr) = run_download(label, &mut cmd, &t.payload, &out);
    assert!(stderr.contains("SSL torrent: peers over TLS"), "{stderr}");
}

/// A libtorrent node of the torrent with `cert` (`lt_node.py`, `role` seed or download,
/// `peer` to dial); returns it and its SSL port.
fn libtorrent(
    t: &SslTorrent,
    role: &str,
    save: &Path,
    cert: &PeerCert,
    dh: &Path,
    peer: Option<u16>,
) -> (Peer, u16) {
    let mut cmd = Command::new(require_python_libtorrent());
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("python/lt_node.py"))
        .arg(role)
        .arg("--torrent")
        .arg(&t.torrent)
        .arg("--save")
        .arg(save)
        .arg("--ssl-cert")
        .arg(&cert.cert)
        .arg("--ssl-key")
        .arg(&cert.key)
        .arg("--ssl-dh")
        .arg(dh);
    if let Some(p) = peer {
        cmd.args(["--peer", &format!("127.0.0.1:{p}")]);
    }
    let mut node = Peer::spawn(format!("libtorrent {role}"), &mut cmd).unwrap();
    let listening = node
        .wait_event("listening", deadline_in(30))
        .unwrap_or_else(|e| panic!("{e}"));
    let port = listening["ssl_port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("{}", node.failure("no SSL port")));
    node.wait_event("ready", deadline_in(30))
        .unwrap_or_else(|e| panic!("{e}"));
    (node, port)
}

#[test]
fn lt_to_lt_over_tls_on_tcp_and_utp() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "publisher");
    let t = SslTorrent::new(dir.path(), &pki, 6 << 20, &[]);
    let seed_cert = pki.issue("seed", &[NAME], &[], false);
    let leech_cert = pki.issue("leech", &["*"], &[], false);
    let (_seed, port) = lt_seed(&t, &seed_cert, &[]);
    lt_download(
        &t,
        dir.path(),
        "lt over TLS on TCP",
        &leech_cert,
        port,
        &["--tcp-only"],
    );
    lt_download(
        &t,
        dir.path(),
        "lt over TLS on uTP",
        &leech_cert,
        port,
        &["--utp-only"],
    );
    // A key encrypted with a passphrase, which lt reads from LT_SSL_KEY_PASSPHRASE.
    let encrypted = Pki::encrypt_key(&leech_cert, "open sesame");
    assert!(
        std::fs::read_to_string(&encrypted.key)
            .unwrap()
            .contains("ENCRYPTED PRIVATE KEY")
    );
    lt_download(
        &t,
        dir.path(),
        "lt with an encrypted key",
        &encrypted,
        port,
        &["--tcp-only"],
    );
    // Without a certificate lt says what it needs and downloads nothing.
    let out = lt_tests::output_with_timeout(
        Command::new(lt_binary())
            .arg("download")
            .arg(&t.torrent)
            .arg("-o")
            .arg(dir.path().join("no-cert"))
            .args(["--no-dht", "--peer", &format!("127.0.0.1:{port}")]),
        Duration::from_secs(30),
    )
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("give --ssl-cert and --ssl-key"), "{stderr}");
}

#[test]
fn libtorrent_and_lt_over_tls_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "publisher");
    let dh = pki.dh_params();
    let t = SslTorrent::new(dir.path(), &pki, 6 << 20, &[]);
    let lt_cert = pki.issue("lt", &[NAME], &[], false);
    let libtorrent_cert = pki.issue("libtorrent", &[], &[NAME], false);

    // libtorrent seeds, lt downloads.
    let (_seed, port) = libtorrent(&t, "seed", &t.payload.data_dir, &libtorrent_cert, &dh, None);
    lt_download(
        &t,
        dir.path(),
        "lt from libtorrent",
        &lt_cert,
        port,
        &["--tcp-only"],
    );

    // lt seeds, libtorrent downloads.
    let (_lt_seed, lt_port) = lt_seed(&t, &lt_cert, &["--tcp-only"]);
    let save = dir.path().join("libtorrent-out");
    std::fs::create_dir_all(&save).unwrap();
    let (mut leech, _) = libtorrent(&t, "download", &save, &libtorrent_cert, &dh, Some(lt_port));
    leech
        .wait_event("finished", deadline_in(90))
        .unwrap_or_else(|e| panic!("{e}"));
    files_equal(&t.payload.file, &save.join(NAME)).unwrap();
}

/// An lt session seeding the torrent with `cert`, listening for SSL on a free port, with
/// `upload_limit` bytes/s (0: none) even to loopback peers.
fn lt_session_seed(t: &SslTorrent, cert: &PeerCert, upload_limit: u64) -> (Session, TorrentHandle) {
    let mut settings = loopback_settings();
    settings.ssl_listen = Some(0);
    settings.engine.ignore_limits_on_local_network = upload_limit == 0;
    settings.engine.upload_rate_limit = upload_limit;
    let session = Session::new(settings).unwrap();
    let mut params = AddTorrentParams::new(Arc::clone(&t.info), &t.payload.data_dir);
    params.flags.seed_mode = true;
    let handle = session.add_torrent(params).unwrap();
    handle
        .set_ssl_certificate(&cert.cert, &cert.key, None)
        .unwrap();
    wait_for(&handle, 30, "seeding", |s| s.is_seeding);
    (session, handle)
}

/// An lt leecher given nothing but the torrent (its tracker) finds an lt seed and a
/// libtorrent seed there, each announced with its SSL port, and downloads from both over
/// TLS. The seeds are held to 1 MB/s each so that both are still wanted when the second
/// connects.
#[test]
fn peers_from_a_tracker_are_dialled_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "publisher");
    let dh = pki.dh_params();
    let tracker = lt_tests::tracker_driver::TrackerThreads::loopback([7; 32]).unwrap();
    let url = format!("http://127.0.0.1:{}/announce", tracker.port);
    let t = SslTorrent::new(dir.path(), &pki, 3 << 20, &[url]);
    let (lt_seed, _) = lt_session_seed(&t, &pki.issue("lt-seed", &[NAME], &[], false), 1_000_000);
    let lt_seed_port = lt_seed.ssl_listen_port();
    let libtorrent_cert = pki.issue("libtorrent-seed", &["*"], &[], false);
    let (_libtorrent_seed, libtorrent_port) = {
        let mut node = Command::new(require_python_libtorrent());
        node.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("python/lt_node.py"))
            .args(["seed", "--upload-limit", "1000000"])
            .arg("--torrent")
            .arg(&t.torrent)
            .arg("--save")
            .arg(&t.payload.data_dir)
            .arg("--ssl-cert")
            .arg(&libtorrent_cert.cert)
            .arg("--ssl-key")
            .arg(&libtorrent_cert.key)
            .arg("--ssl-dh")
            .arg(&dh);
        let mut p = Peer::spawn("libtorrent seed", &mut node).unwrap();
        let listening = p
            .wait_event("listening", deadline_in(30))
            .unwrap_or_else(|e| panic!("{e}"));
        let port = u16::try_from(listening["ssl_port"].as_u64().unwrap()).unwrap();
        p.wait_event("ready", deadline_in(30))
            .unwrap_or_else(|e| panic!("{e}"));
        (p, port)
    };
    let leech_cert = pki.issue("lt-leech", &[NAME], &[], false);
    let mut settings = loopback_settings();
    settings.ssl_listen = Some(0);
    let leech = Session::new(settings).unwrap();
    let out = dir.path().join("from-tracker");
    let handle = leech
        .add_torrent(AddTorrentParams::new(Arc::clone(&t.info), &out))
        .unwrap();
    handle
        .set_ssl_certificate(&leech_cert.cert, &leech_cert.key, None)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut connected = Vec::new();
    while !handle.status().unwrap().is_seeding {
        assert!(Instant::now() < deadline, "{:?}", handle.status());
        leech.wait_for_alert(Duration::from_millis(100));
        for a in leech.pop_alerts() {
            if let Alert::PeerConnected {
                addr,
                outgoing: true,
                ..
            } = a
            {
                connected.push(addr.port());
            }
        }
    }
    files_equal(&t.payload.file, &out.join(NAME)).unwrap();
    assert!(connected.contains(&lt_seed_port), "{connected:?}");
    assert!(connected.contains(&libtorrent_port), "{connected:?}");
}

/// A BitTorrent handshake for the torrent.
fn bt_handshake(t: &SslTorrent) -> Vec<u8> {
    let mut h = b"\x13BitTorrent protocol".to_vec();
    h.extend([0u8; 8]);
    h.extend(t.info.info_hash().best().as_bytes());
    h.extend(*b"-OS0001-openssl-sclt");
    h
}

/// Whether a BitTorrent handshake came back in `out`.
fn has_handshake(out: &[u8]) -> bool {
    out.windows(20).any(|w| w == b"\x13BitTorrent protocol")
}

/// `openssl s_client` to lt's SSL port with `cert` (none: no certificate) and `sni` (none:
/// no SNI), sending our BitTorrent handshake; returns what came back within a few seconds.
fn s_client(
    t: &SslTorrent,
    pki: &Pki,
    port: u16,
    cert: Option<&PeerCert>,
    sni: Option<&str>,
    version: &str,
) -> Vec<u8> {
    let mut cmd = Command::new(require_program("openssl", "openssl"));
    cmd.args([
        "s_client",
        "-quiet",
        "-connect",
        &format!("127.0.0.1:{port}"),
    ])
    .arg("-CAfile")
    .arg(&pki.root)
    .arg(version);
    match sni {
        Some(name) => cmd.args(["-servername", name]),
        None => cmd.arg("-noservername"),
    };
    if let Some(c) = cert {
        cmd.arg("-cert").arg(&c.cert).arg("-key").arg(&c.key);
    }
    let mut child = ChildGuard::spawn(
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bt_handshake(t)).unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if has_handshake(&out) {
                break;
            }
        }
        out
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stdin);
    drop(child);
    reader.join().unwrap()
}

/// `openssl s_server` with `cert` on a free port, asking for a client certificate from the
/// root; lt's session dials it for the torrent. Returns whether the TLS handshake completed
/// (s_server prints the cipher once it has checked lt's certificate and lt has sent its
/// Finished, which it does only after checking s_server's), and lt's alerts meanwhile.
fn s_server(t: &SslTorrent, pki: &Pki, cert: &PeerCert, lt_cert: &PeerCert) -> (bool, Vec<Alert>) {
    let mut cmd = Command::new(require_program("openssl", "openssl"));
    cmd.args([
        "s_server",
        "-accept",
        "127.0.0.1:0",
        "-naccept",
        "1",
        "-Verify",
        "1",
    ])
    .arg("-CAfile")
    .arg(&pki.root)
    .arg("-cert")
    .arg(&cert.cert)
    .arg("-key")
    .arg(&cert.key);
    let mut server = Peer::spawn_holding_stdin("openssl s_server", &mut cmd).unwrap();
    let accept = server
        .wait_line(Stream::Stdout, deadline_in(10), |l| l.starts_with("ACCEPT"))
        .unwrap_or_else(|e| panic!("{e}"));
    let addr: SocketAddr = accept.trim_start_matches("ACCEPT").trim().parse().unwrap();
    let mut settings = loopback_settings();
    settings.ssl_listen = None;
    settings.engine.enable_outgoing_utp = false;
    let session = Session::new(settings).unwrap();
    let save = tempfile::tempdir().unwrap();
    let mut params = AddTorrentParams::new(Arc::clone(&t.info), save.path());
    params.peers.push(addr);
    let handle = session.add_torrent(params).unwrap();
    handle
        .set_ssl_certificate(&lt_cert.cert, &lt_cert.key, None)
        .unwrap();
    let got = server
        .wait_line(Stream::Stdout, deadline_in(5), |l| {
            l.starts_with("CIPHER is ")
        })
        .is_ok();
    let alerts = session.pop_alerts();
    session.shutdown();
    (got, alerts)
}

/// What a dial that failed said, from lt's alerts.
fn dial_errors(alerts: &[Alert]) -> String {
    alerts
        .iter()
        .filter_map(|a| match a {
            Alert::PeerDisconnected { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn the_certificate_rules_on_both_sides() {
    require_program("openssl", "openssl");
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "publisher");
    let stranger = Pki::new(dir.path(), "stranger");
    let t = SslTorrent::new(dir.path(), &pki, 1 << 20, &[]);
    let lt_cert = pki.issue("lt", &[NAME], &[], false);
    let (session, handle) = lt_session_seed(&t, &lt_cert, 0);
    let port = session.ssl_listen_port();
    assert_ne!(port, 0);
    let hex = t.hex();

    let cases = [
        (
            "a dNSName naming the torrent",
            pki.issue("dns", &["other", NAME], &[], false),
            true,
        ),
        (
            "a * certificate",
            pki.issue("star", &["*"], &[], false),
            true,
        ),
        (
            "the last Common Name naming the torrent",
            pki.issue("cn", &[], &["x", NAME], false),
            true,
        ),
        (
            "another root's certificate",
            stranger.issue("stranger", &[NAME], &[], false),
            false,
        ),
        (
            "a certificate naming another torrent",
            pki.issue("other", &["other.bin"], &[NAME, "other.bin"], false),
            false,
        ),
        (
            "an expired certificate",
            pki.issue("expired", &[NAME], &[], true),
            false,
        ),
    ];
    for (what, cert, accepted) in &cases {
        // lt accepting: s_client shows the certificate; lt answers the BitTorrent handshake
        // only when it takes it (TLS 1.3, and 1.2 for the first).
        let out = s_client(&t, &pki, port, Some(cert), Some(&hex), "-tls1_3");
        assert_eq!(has_handshake(&out), *accepted, "lt accepting {what}");
        // lt dialling: s_server shows the certificate; the TLS handshake completes only when
        // lt takes it, and lt says why when it does not.
        let (got, alerts) = s_server(&t, &pki, cert, &lt_cert);
        let errors = dial_errors(&alerts);
        assert_eq!(got, *accepted, "lt dialling {what}: {errors}");
        assert_eq!(
            errors.contains("TLS"),
            !accepted,
            "lt dialling {what}: {errors}"
        );
    }
    let good = &cases[0].1;
    assert!(has_handshake(&s_client(
        &t,
        &pki,
        port,
        Some(good),
        Some(&hex),
        "-tls1_2"
    )));
    // No client certificate, no SNI, an SNI naming no torrent here: refused.
    assert!(!has_handshake(&s_client(
        &t,
        &pki,
        port,
        None,
        Some(&hex),
        "-tls1_3"
    )));
    assert!(!has_handshake(&s_client(
        &t,
        &pki,
        port,
        Some(good),
        None,
        "-tls1_3"
    )));
    let unknown = "ab".repeat(20);
    assert!(!has_handshake(&s_client(
        &t,
        &pki,
        port,
        Some(good),
        Some(&unknown),
        "-tls1_3"
    )));
    // Plaintext to the SSL port: closed without an answer.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain.write_all(&bt_handshake(&t)).unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(!has_handshake(&buf), "plaintext answered on the SSL port");
    // Plaintext to the normal port for the SSL torrent: the engine refuses it.
    let mut plain = TcpStream::connect(("127.0.0.1", session.listen_port())).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain.write_all(&bt_handshake(&t)).unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(
        !has_handshake(&buf),
        "plaintext answered for an SSL torrent"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut refused = false;
    while !refused && Instant::now() < deadline {
        session.wait_for_alert(Duration::from_millis(100));
        refused = session.pop_alerts().into_iter().any(|a| {
            matches!(
                a,
                Alert::PeerDisconnected {
                    reason: lt_session::DisconnectReason::SslMismatch,
                    ..
                }
            )
        });
    }
    assert!(refused, "no SslMismatch for plaintext");
    // The accepted s_clients came and went; the seed is still whole.
    assert!(handle.status().unwrap().is_seeding);
}
