//! Nothing leaks around the proxy (issue 22). `lt download` runs in a network namespace
//! whose only link leads to the host, where the proxy listens; the seed (libtorrent), the
//! HTTP tracker (with a UDP tracker listed ahead of it) and the web seed (nginx) listen on
//! the host's loopback, which only the proxy can reach. An nftables counter on the
//! namespace's output counts every packet to the proxy's port and every other packet. For
//! each proxy type (SOCKS5 without and with a password, SOCKS4, HTTP without and with a
//! password, and SOCKS5 with uTP only) the download completes, every byte checked, with
//! packets to the proxy and none to anything else. Through SOCKS5, the UDP tracker, uTP
//! and the DHT go through its UDP relay; through the others they are off. lt runs with
//! its defaults otherwise: the DHT is not turned off on its command line. Needs root (CI
//! runs as root), `ip` and `nft`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use lt_tests::netns::NetNs;
use lt_tests::nginx::Nginx;
use lt_tests::proxies::{Proxy, SOCKS_PASSWORD, SOCKS_USER};
use lt_tests::swarm::{Payload, lt_binary, run_download};
use lt_tests::tracker_driver::TrackerThreads;
use lt_tests::{output_with_timeout, require_program};
use lt_tracker::server::{ServerConfig, TrackerServer};

const NS_ADDR: &str = "10.83.1.1";
const HOST_ADDR: Ipv4Addr = Ipv4Addr::new(10, 83, 1, 2);
const CLIENTS: &str = "10.83.1.0/24";

/// Replaces the namespace's counting table: packets to the proxy's address (its port, and
/// for SOCKS5 the UDP relay's port it gives), the kernel's own IPv6
/// neighbour discovery and multicast listener reports (ICMPv6, which lt never sends), and
/// all others.
fn count_from(ns: &NetNs, proxy: SocketAddr) {
    let nft = require_program("nft", "nftables");
    let _ = output_with_timeout(
        ns.exec()
            .arg(&nft)
            .args(["delete", "table", "inet", "ltleak"]),
        Duration::from_secs(10),
    );
    let rules = format!(
        "table inet ltleak {{\n  counter relayed {{ }}\n  counter proxied {{ }}\n  \
         counter kernel {{ }}\n  \
         counter leaked {{ }}\n  \
         chain out {{\n    type filter hook output priority 0; policy accept;\n    \
         ip daddr {ip} meta l4proto udp counter name relayed accept\n    \
         ip daddr {ip} counter name proxied accept\n    \
         meta l4proto ipv6-icmp counter name kernel accept\n    \
         counter name leaked\n  }}\n}}\n",
        ip = proxy.ip()
    );
    let file = std::env::temp_dir().join(format!("ltleak-{}.nft", std::process::id()));
    std::fs::write(&file, rules).unwrap();
    ns.run(&[nft.to_str().unwrap(), "-f", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(file);
}

/// The packets a named counter of the table counted.
fn packets(ns: &NetNs, counter: &str) -> u64 {
    let nft = require_program("nft", "nftables");
    let out = output_with_timeout(
        ns.exec()
            .arg(&nft)
            .args(["list", "counter", "inet", "ltleak", counter]),
        Duration::from_secs(10),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let n = text
        .split("packets ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    n.unwrap_or_else(|| panic!("no packet count in {text:?}"))
}

#[test]
fn nothing_leaves_the_namespace_but_through_the_proxy() {
    lt_binary();
    let dir = tempfile::tempdir().unwrap();
    let tracker = TrackerThreads::start(
        TrackerServer::new(ServerConfig::default()),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    )
    .unwrap();
    let trackers = [
        format!("udp://127.0.0.1:{}", tracker.port),
        format!("http://127.0.0.1:{}/announce", tracker.port),
    ];
    let payload = Payload::create(dir.path(), "leak.bin", 2 << 20, 32 << 10, &trackers);
    let nginx = Nginx::start(dir.path(), &payload.data_dir, "limit_rate 400k;");
    let (_seed, seed_port) =
        payload.start_libtorrent_seed(&["--upload-limit", "800000", "--transport", "both"]);
    let ns = NetNs::create("ltpx");
    ns.link_to_host(
        "n",
        &format!("{NS_ADDR}/24"),
        "h",
        &format!("{HOST_ADDR}/24"),
    );

    // (scheme, Dante's username method, credentials in the URL, uTP only)
    type Kind<'a> = (&'a str, bool, Option<(&'a str, &'a str)>, bool);
    let kinds: [Kind<'_>; 6] = [
        ("socks5", false, None, false),
        ("socks5", true, Some((SOCKS_USER, SOCKS_PASSWORD)), false),
        ("socks5", false, None, true),
        ("socks4", false, None, false),
        ("http", false, None, false),
        ("http", true, Some(("ann", "pw")), false),
    ];
    let mut report = Vec::new();
    for (i, (scheme, auth, creds, utp_only)) in kinds.into_iter().enumerate() {
        let work = dir.path().join(format!("run{i}"));
        std::fs::create_dir_all(&work).unwrap();
        let proxy = if scheme == "http" {
            Proxy::tinyproxy_on(&work, creds, HOST_ADDR, CLIENTS)
        } else {
            Proxy::dante_on(&work, auth, HOST_ADDR, CLIENTS)
        };
        count_from(&ns, proxy.addr);
        let userinfo = creds.map_or_else(String::new, |(u, p)| format!("{u}:{p}@"));
        let url = format!("{scheme}://{userinfo}{}", proxy.addr);
        let out = work.join("out");
        let mut cmd = ns.exec();
        cmd.arg(lt_binary())
            .arg("download")
            .arg(&payload.torrent)
            .arg("-o")
            .arg(&out)
            .args(["--json", "--web-seed", &nginx.url("")])
            .args(["--peer", &format!("127.0.0.1:{seed_port}")])
            .args(["--proxy", &url]);
        if utp_only {
            cmd.arg("--utp-only");
        }
        let label = format!(
            "lt download --proxy {url}{}",
            if utp_only { " --utp-only" } else { "" }
        );
        let (summary, stderr) = run_download(&label, &mut cmd, &payload, &out);
        let (relayed, proxied, leaked) = (
            packets(&ns, "relayed"),
            packets(&ns, "proxied"),
            packets(&ns, "leaked"),
        );
        assert_eq!(
            leaked, 0,
            "{label}: {leaked} packets went around the proxy\n{stderr}"
        );
        assert!(proxied > 0, "{label}: no packet to the proxy");
        // UDP (the UDP tracker ahead of the HTTP one, uTP) goes to SOCKS5's relay only.
        assert_eq!(
            relayed > 0,
            scheme == "socks5",
            "{label}: {relayed} UDP packets"
        );
        let web = summary.json["web_seed_bytes"].as_u64().unwrap();
        assert!(
            summary.payload_downloaded > web,
            "{label}: nothing from the seed\n{stderr}"
        );
        let log = proxy.log();
        for (what, port) in [
            ("the seed", seed_port),
            ("the tracker", tracker.port),
            ("the web seed", nginx.addr.port()),
        ] {
            assert!(
                proxy.connected_to(port),
                "{label}: {what} not reached through the proxy\n{log}"
            );
        }
        // SOCKS5 carries the DHT and uTP through its UDP relay; the others cannot.
        assert!(stderr.contains("not listening"), "{stderr}");
        assert_eq!(
            stderr.contains("the DHT is off"),
            scheme != "socks5",
            "{stderr}"
        );
        report.push(format!(
            "{label}: {proxied} TCP and {relayed} UDP packets to the proxy, {leaked} to anything \
             else; of the {} bytes received, {web} from the web seed",
            summary.payload_downloaded
        ));
    }
    for line in report {
        eprintln!("{line}");
    }
}
