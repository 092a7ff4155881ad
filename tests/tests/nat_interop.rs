//! lt-nat's tokio driver against a real miniupnpd (Debian package `miniupnpd`, nftables
//! backend) acting as the gateway in a network namespace; see shared/INTEROP.md.
//!
//! Topology, made fresh per run with names that carry the test's pid:
//!
//! ```text
//!   netns lan: host0 192.168.77.2/24 (default via .1)  <-veth->  netns gw: lan0 192.168.77.1/24
//!                                                                         wan0 10.99.0.1/24
//!                                                                         miniupnpd (UPnP :5000,
//!                                                                         NAT-PMP/PCP :5351)
//! ```
//!
//! The driver runs inside `lan` as the `lt-nat-probe` binary (started with `ip netns exec`),
//! which prints JSON lines. For UPnP (IGDv2, then IGDv1 with miniupnpd's `-1`), NAT-PMP and
//! PCP it checks: discovery, external address, TCP and UDP mappings (and, for UPnP, a lookup
//! with GetSpecificPortMappingEntry and a conflict with another host's mapping resolved on
//! another port), that the mappings appear in `nft list ruleset` of `gw`, one lease renewal
//! (6 s leases), deletion (one explicit, the others by `PortMapper::shutdown`, within its
//! bound), and that the rules are gone afterwards.
//!
//! Needs root (CI runs as root) and the packages `miniupnpd` and `nftables`, which
//! `cargo xtask ci` installs. Namespaces and miniupnpd are removed even when the test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns; a panic is a test failure"
)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use lt_tests::swarm::{Payload, Peer, Stream, lt_binary};
use lt_tests::{ChildGuard, output_with_timeout, require_program};
use serde_json::Value;

const PROBE: &str = env!("CARGO_BIN_EXE_lt-nat-probe");
const EXT_IP: &str = "93.184.216.34";
/// Bound on one probe run (discovery, mapping, a 6 s lease renewal, deletion).
const PROBE_TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn miniupnpd_upnp_natpmp_and_pcp() {
    assert!(
        is_root(),
        "nat_interop needs root for network namespaces (CI runs as root)"
    );
    let ip = require_program("ip", "iproute2");
    let nft = require_program("nft", "nftables");
    let miniupnpd = require_program("miniupnpd", "miniupnpd");
    let dir = tempfile::tempdir().unwrap();
    let net = Namespaces::create(&ip, dir.path());

    // UPnP IGDv2 (WANIPConnection:2), NAT-PMP, PCP.
    {
        let gw = Gateway::start(&net, &miniupnpd, dir.path(), false);
        let lines = run_probe(&net, &nft, &gw, "upnp", 40000, true);
        assert_log(&lines, "WANIPConnection:2", &gw);
        let lines = run_probe(&net, &nft, &gw, "natpmp", 41000, false);
        assert_transport(&lines, "natpmp", &gw);
        let lines = run_probe(&net, &nft, &gw, "pcp", 42000, false);
        assert_transport(&lines, "pcp", &gw);
    }
    // UPnP IGDv1 (WANIPConnection:1).
    {
        let gw = Gateway::start(&net, &miniupnpd, dir.path(), true);
        let lines = run_probe(&net, &nft, &gw, "upnp", 43000, false);
        assert_log(&lines, "WANIPConnection:1", &gw);
    }
    // The session maps its listen port (UPnP and NAT-PMP/PCP), reports it in alerts and
    // removes the mapping when it shuts down: `lt seed --port-mapping` inside `lan`.
    {
        let gw = Gateway::start(&net, &miniupnpd, dir.path(), false);
        session_maps_its_listen_port(&net, &nft, &gw, dir.path());
    }
}

fn session_maps_its_listen_port(net: &Namespaces, nft: &Path, gw: &Gateway, dir: &Path) {
    let payload = Payload::create(dir, "mapped.bin", 256 << 10, 16 << 10, &[]);
    let mut cmd = net.exec_in(&net.lan);
    cmd.arg(lt_binary())
        .arg("seed")
        .arg(&payload.torrent)
        .arg("--data")
        .arg(&payload.data_dir)
        .args(["--listen", "44000", "--port-mapping"]);
    let mut seed = Peer::spawn("lt seed", &mut cmd).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Both mechanisms report the mapping, in either order ("PCP" or "NAT-PMP").
    let (mut upnp, mut pmp) = (false, false);
    seed.wait_line(Stream::Stderr, deadline, |l| {
        if l.ends_with("TCP external port 44000") {
            upnp |= l.starts_with("port mapping: UPnP");
            pmp |= l.starts_with("port mapping: PCP") || l.starts_with("port mapping: NAT-PMP");
        }
        upnp && pmp
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    let rules = net.ruleset(nft);
    assert!(
        rules.contains("dport 44000"),
        "no rule for the listen port:\n{rules}"
    );
    seed.signal("INT").unwrap();
    let status = seed.wait_exit(deadline).unwrap();
    assert!(status.success(), "{}", seed.failure("lt seed exit"));
    let rules = net.ruleset(nft);
    assert!(
        !rules.contains("dport 44000"),
        "the mapping outlived the session:\n{rules}\n{}",
        seed.transcript()
    );
}

/// Runs the probe in `lan`, checks the gateway's rules while the mappings exist and after
/// they are deleted, and returns the probe's JSON lines.
fn run_probe(
    net: &Namespaces,
    nft: &Path,
    gw: &Gateway,
    mode: &str,
    port: u16,
    occupy: bool,
) -> Vec<Value> {
    let mut cmd = net.exec_in(&net.lan);
    cmd.arg(PROBE)
        .args([mode, "--port", &port.to_string(), "--lifetime", "6"]);
    if occupy {
        cmd.args(["--occupy", "http://192.168.77.1:5000/ctl/IPConn"]);
    }
    let mut child = ChildGuard::spawn(
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    )
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut lines = Vec::new();
    let mut checked_rules = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!(
                    "{mode}: probe timed out; it printed {lines:#?}\n{}",
                    gw.log()
                )
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        println!("{mode}: {line}");
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{mode}: probe printed non-JSON {line:?}: {e}"));
        assert!(
            value.get("error").is_none(),
            "{mode}: probe failed: {value}\n{}",
            gw.log()
        );
        if value["step"] == "mapped" {
            let rules = net.ruleset(nft);
            for (proto, ext) in external_ports(&lines) {
                let needle = format!("dport {ext} ");
                assert!(
                    rules.contains(&needle),
                    "{mode}: the {proto} mapping of external port {ext} is not in the gateway's \
                     rules:\n{rules}"
                );
            }
            assert!(
                rules.contains(&format!("dnat ip to 192.168.77.2:{port}")),
                "{mode}: no DNAT to 192.168.77.2:{port} in:\n{rules}"
            );
            checked_rules = true;
            let stdin = child.stdin.as_mut().unwrap();
            stdin.write_all(b"go\n").unwrap();
            stdin.flush().unwrap();
        }
        let done = value["step"] == "done";
        lines.push(value);
        if done {
            break;
        }
    }
    let wait_until = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < wait_until, "{mode}: probe did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "{mode}: probe exited with {status}; it printed {lines:#?}\n{}",
        gw.log()
    );
    assert!(
        checked_rules,
        "{mode}: the probe never reported its mappings"
    );
    assert!(
        lines.iter().any(|l| l["step"] == "renewed"),
        "{mode}: no renewal"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["step"] == "shutdown" && l["millis"].as_u64().is_some_and(|ms| ms < 5_500)),
        "{mode}: shutdown did not delete the mappings within its 5 s bound: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "external_ip" && l["address"] == EXT_IP),
        "{mode}: no external address {EXT_IP}: {lines:#?}"
    );
    let rules = net.ruleset(nft);
    for (proto, ext) in external_ports(&lines) {
        assert!(
            !rules.contains(&format!("dport {ext} ")),
            "{mode}: the {proto} mapping of external port {ext} is still in the rules:\n{rules}"
        );
    }
    if occupy {
        let conflict = lines
            .iter()
            .find(|l| l["event"] == "mapped" && l["local_port"] == u64::from(port) + 2)
            .unwrap_or_else(|| panic!("{mode}: no conflict mapping in {lines:#?}"));
        assert_ne!(
            conflict["external_port"],
            u64::from(port) + 1,
            "{mode}: the conflicting port was granted twice"
        );
    }
    lines
}

/// (protocol, external port) of every `mapped` event.
fn external_ports(lines: &[Value]) -> Vec<(String, u64)> {
    lines
        .iter()
        .filter(|l| l["event"] == "mapped")
        .map(|l| {
            (
                l["protocol"].as_str().unwrap_or_default().to_owned(),
                l["external_port"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

fn assert_log(lines: &[Value], needle: &str, gw: &Gateway) {
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "log"
                && l["message"].as_str().is_some_and(|m| m.contains(needle))),
        "no log line with {needle}: {lines:#?}\n{}",
        gw.log()
    );
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "mapping_entry" && l["internal_client"] == "192.168.77.2"),
        "no GetSpecificPortMappingEntry answer naming 192.168.77.2: {lines:#?}"
    );
}

fn assert_transport(lines: &[Value], transport: &str, gw: &Gateway) {
    let mapped: Vec<&Value> = lines.iter().filter(|l| l["event"] == "mapped").collect();
    assert_eq!(mapped.len(), 2, "{lines:#?}");
    assert!(
        mapped.iter().all(|l| l["transport"] == transport),
        "expected {transport} mappings: {lines:#?}\n{}",
        gw.log()
    );
    assert_eq!(
        lines.iter().filter(|l| l["event"] == "unmapped").count(),
        2,
        "{lines:#?}"
    );
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The two namespaces and their veth links; deleted on drop.
struct Namespaces {
    ip: PathBuf,
    gw: String,
    lan: String,
    root_links: [String; 2],
}

impl Namespaces {
    fn create(ip: &Path, dir: &Path) -> Self {
        let id = std::process::id();
        let net = Self {
            ip: ip.to_owned(),
            gw: format!("ltnatgw{id}"),
            lan: format!("ltnatlan{id}"),
            root_links: [format!("ltw{id}"), format!("ltl{id}")],
        };
        let (gw, lan) = (net.gw.as_str(), net.lan.as_str());
        let [wan_link, lan_link] = &net.root_links;
        let wan_peer = format!("{wan_link}p");
        let lan_peer = format!("{lan_link}p");
        net.ip(&["netns", "add", gw]);
        net.ip(&["netns", "add", lan]);
        net.ip(&[
            "link", "add", wan_link, "type", "veth", "peer", "name", &wan_peer,
        ]);
        net.ip(&["link", "set", wan_link, "netns", gw]);
        net.ip(&["link", "set", &wan_peer, "netns", gw]);
        net.ip(&[
            "link", "add", lan_link, "type", "veth", "peer", "name", &lan_peer,
        ]);
        net.ip(&["link", "set", lan_link, "netns", gw]);
        net.ip(&["link", "set", &lan_peer, "netns", lan]);
        for args in [
            vec!["link", "set", wan_link, "name", "wan0"],
            vec!["link", "set", lan_link, "name", "lan0"],
            vec!["addr", "add", "10.99.0.1/24", "dev", "wan0"],
            vec!["addr", "add", "192.168.77.1/24", "dev", "lan0"],
            vec!["link", "set", "wan0", "up"],
            vec!["link", "set", &wan_peer, "up"],
            vec!["link", "set", "lan0", "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            net.ip_in(gw, &args);
        }
        for args in [
            vec!["link", "set", &lan_peer, "name", "host0"],
            vec!["addr", "add", "192.168.77.2/24", "dev", "host0"],
            vec!["link", "set", "host0", "up"],
            vec!["link", "set", "lo", "up"],
            vec!["route", "add", "default", "via", "192.168.77.1"],
        ] {
            net.ip_in(lan, &args);
        }
        // The firewall structure miniupnpd's nftables backend expects (INTEROP.md).
        let nft_conf = dir.join("nft.conf");
        std::fs::write(
            &nft_conf,
            "table inet filter {\n\
             \tchain miniupnpd { }\n\
             \tchain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }\n\
             }\n\
             table inet nat {\n\
             \tchain prerouting_miniupnpd { }\n\
             \tchain postrouting_miniupnpd { }\n\
             \tchain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }\n\
             \tchain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }\n\
             }\n",
        )
        .unwrap();
        let mut cmd = net.exec_in(gw);
        cmd.args(["nft", "-f"]).arg(&nft_conf);
        run(&mut cmd);
        net
    }

    fn ip(&self, args: &[&str]) {
        run(Command::new(&self.ip).args(args));
    }

    fn ip_in(&self, ns: &str, args: &[&str]) {
        run(Command::new(&self.ip).args(["-n", ns]).args(args));
    }

    /// `ip netns exec NS` ready for the program and its arguments.
    fn exec_in(&self, ns: &str) -> Command {
        let mut cmd = Command::new(&self.ip);
        cmd.args(["netns", "exec", ns]);
        cmd
    }

    fn ruleset(&self, nft: &Path) -> String {
        let mut cmd = self.exec_in(&self.gw);
        cmd.arg(nft).args(["list", "ruleset"]);
        String::from_utf8_lossy(&run(&mut cmd)).into_owned()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.gw, &self.lan] {
            let _ = Command::new(&self.ip)
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        // Only left in the root namespace when setup failed half-way.
        for link in &self.root_links {
            let _ = Command::new(&self.ip)
                .args(["link", "del", link])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// miniupnpd running in `gw`; killed on drop. Its stderr is kept for failure messages.
struct Gateway {
    _child: ChildGuard,
    log: Arc<Mutex<String>>,
}

impl Gateway {
    fn start(net: &Namespaces, miniupnpd: &Path, dir: &Path, igd_v1: bool) -> Self {
        let conf = dir.join("miniupnpd.conf");
        std::fs::write(
            &conf,
            format!(
                "ext_ifname=wan0\nlistening_ip=lan0\nport=5000\nenable_natpmp=yes\n\
                 enable_upnp=yes\nsecure_mode=no\nuuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b\n\
                 upnp_table_name=filter\nupnp_nat_table_name=nat\next_ip={EXT_IP}\n\
                 min_lifetime=4\nlease_file={}\n\
                 allow 1024-65535 192.168.77.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n",
                dir.join("miniupnpd.leases").display()
            ),
        )
        .unwrap();
        let mut cmd = net.exec_in(&net.gw);
        cmd.arg(miniupnpd)
            .arg("-f")
            .arg(&conf)
            .arg("-P")
            .arg(dir.join("miniupnpd.pid"))
            .arg("-d");
        if igd_v1 {
            cmd.arg("-1");
        }
        let mut child = ChildGuard::spawn(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        )
        .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("Listening for NAT-PMP/PCP traffic") {
                    let _ = ready_tx.send(());
                }
                let mut log = sink.lock().unwrap();
                // Bounded: keep the first 256 KiB.
                if log.len() < 256 * 1024 {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let gw = Self { _child: child, log };
        assert!(
            ready_rx.recv_timeout(Duration::from_secs(15)).is_ok(),
            "miniupnpd did not start listening within 15 s:\n{}",
            gw.log()
        );
        gw
    }

    fn log(&self) -> String {
        format!(
            "--- miniupnpd log ---\n{}",
            self.log.lock().map(|l| l.clone()).unwrap_or_default()
        )
    }
}

/// Runs a setup command, bounded, panicking with its stderr on failure.
fn run(cmd: &mut Command) -> Vec<u8> {
    let shown = format!("{cmd:?}");
    let out = output_with_timeout(cmd, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
