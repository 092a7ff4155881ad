//! Web seeds against real servers: nginx (`nginx-light`) as a BEP 19 url seed for single-
//! and multi-file torrents with pad files, a redirect, one corrupt file beside a libtorrent
//! peer, a rate-limited web seed beside a libtorrent peer with half the pieces; a BEP 17
//! HTTP seed (`tests/python/http_seed.py`) that first answers 503; libtorrent downloading
//! from nginx what `lt create --web-seed` made; a web seed the IP filter blocks. Every byte
//! is checked.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use lt_metainfo::{CreateTorrent, TorrentInfo, TorrentVersion};
use lt_tests::nginx::Nginx;
use lt_tests::swarm::{
    Payload, Peer, Stream, Summary, deadline_in, files_equal, lt_binary, start_libtorrent_node,
    start_lt, wait_summary,
};
use lt_tests::{DEBIAN_PYTHON, test_certificates};

fn s(x: impl AsRef<std::ffi::OsStr>) -> String {
    x.as_ref().to_string_lossy().into_owned()
}

fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

/// `lt download torrent -o out --json` with `extra`; returns the summary and lt's stderr.
fn lt_download(torrent: &Path, out: &Path, extra: &[String]) -> (Summary, String) {
    let mut args = vec![
        "download".to_owned(),
        s(torrent),
        "-o".to_owned(),
        s(out),
        "--json".to_owned(),
        "--no-dht".to_owned(),
    ];
    args.extend(extra.iter().cloned());
    let (mut leech, _) = start_lt("lt download", &args);
    let summary = wait_summary(&mut leech, deadline_in(90)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        summary.pieces_verified,
        summary.pieces,
        "{}",
        leech.transcript()
    );
    let status = leech.wait_exit(deadline_in(30)).unwrap();
    assert!(status.success(), "{}", leech.failure("exit status"));
    (summary, leech.transcript())
}

/// Writes `len` bytes of a pattern that differs per file and offset.
fn write_file(path: &Path, len: usize, salt: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let data: Vec<u8> = (0..len)
        .map(|i| {
            let x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 29;
            x.to_le_bytes()[0] ^ salt
        })
        .collect();
    std::fs::write(path, data).unwrap();
}

/// A multi-file hybrid torrent (pad files between its files, as libtorrent 2 makes them)
/// of `root`, with `web_seed` in its `url-list`; written next to `root`.
fn multi_file_torrent(root: &Path, piece: u32, web_seed: Option<&str>) -> (PathBuf, TorrentInfo) {
    let mut create = CreateTorrent::new(root)
        .version(TorrentVersion::Hybrid)
        .piece_size(piece);
    if let Some(url) = web_seed {
        create = create.web_seed(url);
    }
    let bytes = create.generate().unwrap();
    let info = TorrentInfo::from_bytes(&bytes).unwrap();
    let path = root.with_extension("torrent");
    std::fs::write(&path, &bytes).unwrap();
    (path, info)
}

/// Checks every non-pad file of `info` under `out` against `seed_dir` (both hold the
/// torrent's name as a directory).
fn verify_files(info: &TorrentInfo, seed_dir: &Path, out: &Path) {
    let mut checked = 0;
    for f in info.files().files().iter().filter(|f| !f.is_pad()) {
        let rel = f.path_buf();
        files_equal(&seed_dir.join(&rel), &out.join(&rel)).unwrap_or_else(|e| panic!("{e}"));
        checked += 1;
    }
    assert!(checked > 1);
}

/// A single-file torrent from the web seed alone, named both ways: the directory holding
/// the file (the torrent's name is appended) and the file itself. The requests are ranges.
#[test]
fn single_file_from_the_web_seed_alone() {
    lt_binary();
    let dir = tempfile::tempdir().unwrap();
    let payload = Payload::create(dir.path(), "single file.bin", 3 << 20, 32 << 10, &[]);
    let nginx = Nginx::start(dir.path(), &payload.data_dir, "");
    for (i, url) in [nginx.url(""), nginx.url("single%20file.bin")]
        .into_iter()
        .enumerate()
    {
        let out = dir.path().join(format!("out{i}"));
        let (summary, _) = lt_download(&payload.torrent, &out, &["--web-seed".into(), url]);
        payload
            .verify_download(&out)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(summary.json["web_seed_bytes"], summary.total_bytes);
    }
    let log = nginx.access_log();
    assert!(
        log.contains("GET /single%20file.bin HTTP/1.1\" 206"),
        "{log}"
    );
}

/// An HTTPS web seed: trusted through the system's roots (`SSL_CERT_FILE` names the test
/// CA), the download completes; with the CA not trusted, the certificate check refuses the
/// server and the alert says so.
#[test]
fn https_web_seed_with_certificate_checks() {
    lt_binary();
    let dir = tempfile::tempdir().unwrap();
    let payload = Payload::create(dir.path(), "secure.bin", 1 << 20, 32 << 10, &[]);
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    test_certificates(&certs);
    let nginx = Nginx::start_with(
        dir.path(),
        &payload.data_dir,
        "",
        Some((&certs.join("leaf.pem"), &certs.join("leaf.key"))),
    );
    let download = |out: &Path, ca: &Path| {
        let mut cmd = Command::new(lt_binary());
        cmd.arg("download")
            .arg(&payload.torrent)
            .arg("-o")
            .arg(out)
            .args(["--json", "--no-dht", "--web-seed", &nginx.url("")])
            .env("SSL_CERT_FILE", ca)
            .env_remove("SSL_CERT_DIR");
        Peer::spawn("lt download", &mut cmd).unwrap()
    };
    let out = dir.path().join("trusted");
    let mut leech = download(&out, &certs.join("ca.pem"));
    let summary = wait_summary(&mut leech, deadline_in(60)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.json["web_seed_bytes"], summary.total_bytes);
    payload
        .verify_download(&out)
        .unwrap_or_else(|e| panic!("{e}"));
    // Another CA's certificate file: the server is not trusted.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    test_certificates(&other);
    let mut refused = download(&dir.path().join("untrusted"), &other.join("ca.pem"));
    let line = refused
        .wait_line(Stream::Stderr, deadline_in(30), |l| l.contains("web seed"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(line.to_ascii_lowercase().contains("certificate"), "{line}");
}

/// A download limit holds for a web seed: 2 MiB at 1 MB/s takes about two seconds.
#[test]
fn the_download_limit_holds_for_a_web_seed() {
    lt_binary();
    let dir = tempfile::tempdir().unwrap();
    let payload = Payload::create(dir.path(), "slow.bin", 2 << 20, 32 << 10, &[]);
    let nginx = Nginx::start(dir.path(), &payload.data_dir, "");
    let out = dir.path().join("out");
    let (summary, _) = lt_download(
        &payload.torrent,
        &out,
        &[
            "--web-seed".into(),
            nginx.url(""),
            "--download-limit".into(),
            "1000000".into(),
            "--limit-local".into(),
        ],
    );
    payload
        .verify_download(&out)
        .unwrap_or_else(|e| panic!("{e}"));
    // The bucket starts with a second's worth, so at least a second more.
    assert!(summary.seconds >= 1.0, "{} s", summary.seconds);
    assert!(summary.mb_per_s <= 1.6, "{} MB/s", summary.mb_per_s);
}

/// A multi-file torrent with pad files and an empty file, its web seed in the torrent, and
/// the same through a web seed URL that redirects: the pad files are never asked for.
#[test]
fn multi_file_with_pad_files_and_a_redirect() {
    lt_binary();
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    let root = www.join("multi");
    write_file(&root.join("a.bin"), 100_001, 1);
    write_file(&root.join("sub dir/b c.bin"), 700_000, 2);
    write_file(&root.join("sub dir/empty"), 0, 3);
    write_file(&root.join("z.bin"), (1 << 20) + 7, 4);
    let nginx = Nginx::start(
        dir.path(),
        &www,
        "location ~ ^/moved/(.*)$ { return 302 /$1; }",
    );
    let (torrent, info) = multi_file_torrent(&root, 64 << 10, Some(&nginx.url("")));
    assert!(info.files().files().iter().any(|f| f.is_pad()));
    let out = dir.path().join("out");
    let (summary, _) = lt_download(&torrent, &out, &[]);
    verify_files(&info, &www, &out);
    assert!(summary.json["web_seed_bytes"].as_u64().unwrap() > 0);
    // The same through a redirect, with the torrent's own web seed removed by a fresh
    // torrent without one.
    let (plain, _) = multi_file_torrent(&root, 64 << 10, None);
    let out2 = dir.path().join("out2");
    lt_download(&plain, &out2, &["--web-seed".into(), nginx.url("moved/")]);
    verify_files(&info, &www, &out2);
    let log = nginx.access_log();
    assert!(!log.contains(".pad"), "a pad file was requested:\n{log}");
    assert!(log.contains("GET /moved/multi/"), "{log}");
    assert!(log.contains("/multi/sub%20dir/b%20c.bin"), "{log}");
}

/// The web seed serves one corrupt file: the pieces it sends of it fail, it is banned, and
/// a libtorrent seed (held to 300 kB/s so the web seed takes most pieces first) supplies
/// the rest.
#[test]
fn a_corrupt_web_seed_is_banned_and_a_libtorrent_peer_fills_in() {
    lt_binary();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    let root = good.join("two");
    write_file(&root.join("first.bin"), 1 << 20, 5);
    write_file(&root.join("second.bin"), 1 << 20, 6);
    let (torrent, info) = multi_file_torrent(&root, 32 << 10, None);
    // The web seed's copy: the first file has a corrupt byte every 64 KiB.
    let bad = dir.path().join("bad");
    let bad_root = bad.join("two");
    std::fs::create_dir_all(&bad_root).unwrap();
    let mut first = std::fs::read(root.join("first.bin")).unwrap();
    for i in (1000..first.len()).step_by(64 << 10) {
        first[i] ^= 0xff;
    }
    std::fs::write(bad_root.join("first.bin"), first).unwrap();
    std::fs::copy(root.join("second.bin"), bad_root.join("second.bin")).unwrap();
    let nginx = Nginx::start(dir.path(), &bad, "");
    let (_seed, port) = start_libtorrent_node(
        "libtorrent seed",
        &[
            "seed".into(),
            "--torrent".into(),
            s(&torrent),
            "--save".into(),
            s(&good),
            "--upload-limit".into(),
            "300000".into(),
        ],
    );
    let out = dir.path().join("out");
    let (summary, stderr) = lt_download(
        &torrent,
        &out,
        &[
            "--web-seed".into(),
            nginx.url(""),
            "--peer".into(),
            format!("127.0.0.1:{port}"),
        ],
    );
    verify_files(&info, &good, &out);
    assert_eq!(summary.json["web_seeds_banned"], 1, "{stderr}");
    assert!(stderr.contains("banned"), "{stderr}");
}

/// A libtorrent peer with the first half of the pieces and a web seed held to 2 MB/s by
/// nginx: both supply pieces.
#[test]
fn a_web_seed_and_a_partial_libtorrent_peer_are_both_used() {
    lt_binary();
    let dir = tempfile::tempdir().unwrap();
    let payload = Payload::create(dir.path(), "mixed.bin", 8 << 20, 64 << 10, &[]);
    // libtorrent's copy: the second half is missing.
    let half = dir.path().join("half");
    std::fs::create_dir_all(&half).unwrap();
    let mut data = std::fs::read(&payload.file).unwrap();
    data.truncate(4 << 20);
    std::fs::write(half.join("mixed.bin"), data).unwrap();
    let (_peer, port) = start_libtorrent_node(
        "libtorrent with half",
        &[
            "download".into(),
            "--torrent".into(),
            s(&payload.torrent),
            "--save".into(),
            s(&half),
        ],
    );
    let nginx = Nginx::start(dir.path(), &payload.data_dir, "limit_rate 2m;");
    let out = dir.path().join("out");
    let (summary, stderr) = lt_download(
        &payload.torrent,
        &out,
        &[
            "--web-seed".into(),
            nginx.url(""),
            "--peer".into(),
            format!("127.0.0.1:{port}"),
        ],
    );
    payload
        .verify_download(&out)
        .unwrap_or_else(|e| panic!("{e}"));
    let web = summary.json["web_seed_bytes"].as_u64().unwrap();
    assert!(
        web > 0 && web < summary.payload_downloaded,
        "web seed {web} of {} bytes\n{stderr}",
        summary.payload_downloaded
    );
}

/// A BEP 17 HTTP seed that is busy at first (503, "1" second in the body): lt waits the
/// second and downloads everything from it.
#[test]
fn an_http_seed_that_is_busy_at_first() {
    lt_binary();
    let dir = tempfile::tempdir().unwrap();
    let payload = Payload::create(dir.path(), "hoffman.bin", 2 << 20, 32 << 10, &[]);
    let mut cmd = Command::new(DEBIAN_PYTHON);
    cmd.arg(python_script("http_seed.py"))
        .arg("--file")
        .arg(&payload.file)
        .args(["--piece-length", &(32u32 << 10).to_string()])
        .args([
            "--info-hash",
            &payload.info.info_hash().v1_hash().unwrap().to_hex(),
        ])
        .args(["--busy", "1", "--retry-after", "1"]);
    let mut server = Peer::spawn("http seed", &mut cmd).unwrap();
    let port = server.wait_event("listening", deadline_in(10)).unwrap()["port"]
        .as_u64()
        .unwrap();
    let out = dir.path().join("out");
    let url = format!("http://127.0.0.1:{port}/seed");
    let (summary, stderr) = lt_download(&payload.torrent, &out, &["--http-seed".into(), url]);
    payload
        .verify_download(&out)
        .unwrap_or_else(|e| panic!("{e}"));
    // Everything came from the seed; the requests in flight when the 503 came were
    // dropped, and bytes of a block they had begun count too.
    let web = summary.json["web_seed_bytes"].as_u64().unwrap();
    assert!(web >= summary.total_bytes, "{web}");
    assert!(stderr.contains("503"), "{stderr}");
    let first = server
        .wait_line(Stream::Stdout, deadline_in(5), |l| {
            l.contains("\"busy\": true")
        })
        .unwrap();
    assert!(first.contains("piece="), "{first}");
}

/// libtorrent downloads from nginx alone what `lt create --web-seed` made.
#[test]
fn libtorrent_downloads_from_the_web_seed_of_an_lt_torrent() {
    lt_binary();
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    let root = www.join("made by lt");
    write_file(&root.join("one.bin"), 300_000, 7);
    write_file(&root.join("two/three.bin"), 900_000, 8);
    let nginx = Nginx::start(dir.path(), &www, "");
    let torrent = dir.path().join("made.torrent");
    let status = Command::new(lt_binary())
        .arg("create")
        .arg(&root)
        .arg("-o")
        .arg(&torrent)
        .args(["--web-seed", &nginx.url("")])
        .status()
        .unwrap();
    assert!(status.success());
    let info = TorrentInfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();
    let out = dir.path().join("libtorrent");
    let (mut leech, _) = start_libtorrent_node(
        "libtorrent download",
        &[
            "download".into(),
            "--torrent".into(),
            s(&torrent),
            "--save".into(),
            s(&out),
        ],
    );
    leech
        .wait_event("finished", deadline_in(60))
        .unwrap_or_else(|e| panic!("{e}"));
    verify_files(&info, &www, &out);
}

/// A web seed whose host the IP filter blocks is not fetched (nginx's log stays empty) and
/// the alert says why; once the filter allows it, the download completes from it.
#[test]
fn the_ip_filter_blocks_a_web_seed() {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use lt_metainfo::{WebSeed, WebSeedKind};
    use lt_session::{AddTorrentParams, Alert, IpAccess, IpFilter, Session, SessionSettings};

    let dir = tempfile::tempdir().unwrap();
    let payload = Payload::create(dir.path(), "filtered.bin", 1 << 20, 32 << 10, &[]);
    let nginx = Nginx::start(dir.path(), &payload.data_dir, "");
    let info =
        Arc::new(TorrentInfo::from_bytes(&std::fs::read(&payload.torrent).unwrap()).unwrap());
    let mut settings = SessionSettings {
        listen_interfaces: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
        enable_dht: false,
        ..SessionSettings::default()
    };
    settings.engine.urlseed_wait_retry = Duration::from_secs(1);
    let session = Session::new(settings).unwrap();
    let mut filter = IpFilter::new();
    assert!(filter.add_rule(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
        IpAddr::V4(Ipv4Addr::new(127, 255, 255, 255)),
        IpAccess::BLOCKED,
    ));
    session.set_ip_filter(filter);
    let out = dir.path().join("out");
    let mut params = AddTorrentParams::new(info, &out);
    params.web_seeds = vec![WebSeed {
        url: nginx.url(""),
        kind: WebSeedKind::Url,
    }];
    let h = session.add_torrent(params).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let error = 'found: loop {
        for a in session.pop_alerts() {
            if let Alert::UrlSeed { error, .. } = a {
                break 'found error;
            }
        }
        assert!(Instant::now() < deadline, "no url seed alert");
        session.wait_for_alert(Duration::from_millis(200));
    };
    assert!(error.contains("blocked by the IP filter"), "{error}");
    assert!(nginx.access_log().is_empty(), "{}", nginx.access_log());
    // Allowed again: the next retry downloads everything from it.
    session.set_ip_filter(IpFilter::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !h.status().unwrap().is_seeding {
        assert!(Instant::now() < deadline, "{:?}", h.status());
        std::thread::sleep(Duration::from_millis(50));
    }
    payload
        .verify_download(&out)
        .unwrap_or_else(|e| panic!("{e}"));
    session.shutdown();
}
