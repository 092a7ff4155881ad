//! lt-dht's tokio driver against libtorrent-rasterbar 2.0 (`python3-libtorrent`) DHT nodes
//! on loopback.
//!
//! One python child runs four libtorrent sessions on 127.0.0.21-24 (settings from
//! shared/INTEROP.md: no public bootstrap, local addresses allowed), introduced to each
//! other with `add_dht_node`. Our node on 127.0.0.25 joins them (we add theirs, they add
//! ours), then:
//! - lt's `get_peers` finds a libtorrent session that announced an info-hash
//!   (`force_dht_announce` on a torrent it has);
//! - libtorrent's `dht_get_peers` finds a peer announced through our node;
//! - BEP 44 immutable and mutable items put by libtorrent are read by lt, and the reverse;
//! - libtorrent's BEP 51 `dht_sample_infohashes` to our node lists the announced info-hashes;
//! - lt's BEP 33 scrape of libtorrent's nodes counts the libtorrent session.
//!
//! The child reads one command per line on stdin and answers one line on stdout; every wait
//! on either side is bounded, and the child is killed when the test ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lt_core::Sha1Hash;
use lt_dht::Config;
use lt_dht::tokio::{DhtConfig, DhtHandle};
use lt_tests::{ChildGuard, require_python_libtorrent};

/// How long one libtorrent command may take (lookups on four loopback nodes take well
/// under a second; libtorrent's own lookups time out after about 10 s).
const REPLY_TIMEOUT: Duration = Duration::from_secs(25);

const DHT_PY: &str = r#"
import sys, time, hashlib, threading, queue, tempfile
import libtorrent as lt

N = 4
sessions = []
for i in range(N):
    s = lt.high_performance_seed()
    s.update({
        "listen_interfaces": "127.0.0.%d:0" % (21 + i),
        "enable_upnp": False, "enable_natpmp": False, "enable_lsd": False,
        "enable_dht": True, "dht_bootstrap_nodes": "",
        "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False, "dht_prefer_verified_node_ids": False,
        "dht_enforce_node_id": False, "dht_announce_interval": 5,
        "dht_aggressive_lookups": True,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.all_categories,
    })
    sessions.append(lt.session(s))

def ports():
    deadline = time.time() + 20
    while time.time() < deadline:
        ps = [ses.listen_port() for ses in sessions]
        if all(ps) and all(ses.is_dht_running() for ses in sessions):
            return ps
        time.sleep(0.05)
    return [ses.listen_port() for ses in sessions]

PORTS = ports()
for i, a in enumerate(sessions):
    for j in range(N):
        if i != j:
            a.add_dht_node(("127.0.0.%d" % (21 + j), PORTS[j]))
print("NODES " + " ".join("127.0.0.%d:%d" % (21 + i, p) for i, p in enumerate(PORTS)), flush=True)

cmds = queue.Queue()
def reader():
    for line in sys.stdin:
        cmds.put(line.split())
    cmds.put(["QUIT"])
threading.Thread(target=reader, daemon=True).start()

alerts = [[] for _ in range(N)]
def pump():
    for i, ses in enumerate(sessions):
        for a in ses.pop_alerts():
            alerts[i].append(a)
            if len(alerts[i]) > 5000:
                del alerts[i][:1000]

def wait_for(i, pred, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        pump()
        for k, a in enumerate(alerts[i]):
            if pred(a):
                del alerts[i][k]
                return a
        time.sleep(0.05)
    return None

def value(item):
    # The bindings hand an item's entry over as {"key": ..., "value": entry}.
    if isinstance(item, dict):
        for k in ("value", b"value"):
            if k in item:
                return item[k]
    return item

def secret_key(seed):
    # libtorrent's ed25519 secret key: SHA-512 of the seed, clamped.
    h = bytearray(hashlib.sha512(seed).digest())
    h[0] &= 248; h[31] &= 63; h[31] |= 64
    return bytes(h)

tmp = tempfile.mkdtemp()
handles = []
while True:
    try:
        c = cmds.get(timeout=0.05)
    except queue.Empty:
        pump()
        continue
    op = c[0]
    if op == "QUIT":
        break
    elif op == "ADD_NODE":
        for ses in sessions:
            ses.add_dht_node((c[1], int(c[2])))
        print("OK", flush=True)
    elif op == "TABLE":
        i = int(c[1])
        sessions[i].post_dht_stats()
        a = wait_for(i, lambda a: isinstance(a, lt.dht_stats_alert), 5)
        n = sum(b["num_nodes"] for b in a.routing_table) if a else -1
        print("TABLE %d" % n, flush=True)
    elif op == "ANNOUNCE":
        i = int(c[1])
        p = lt.add_torrent_params()
        p.info_hashes = lt.info_hash_t(lt.sha1_hash(bytes.fromhex(c[2])))
        p.save_path = tmp
        p.flags &= ~lt.torrent_flags.auto_managed
        p.flags &= ~lt.torrent_flags.paused
        h = sessions[i].add_torrent(p)
        handles.append(h)
        h.force_dht_announce()
        print("ANNOUNCED %d" % PORTS[i], flush=True)
    elif op == "GET_PEERS":
        i = int(c[1])
        ih = lt.sha1_hash(bytes.fromhex(c[2]))
        want = c[3]
        found = set()
        deadline = time.time() + 15
        while time.time() < deadline and want not in found:
            sessions[i].dht_get_peers(ih)
            a = wait_for(i, lambda a: isinstance(a, lt.dht_get_peers_reply_alert) and a.info_hash == ih, 12)
            if a:
                for ip, port in a.peers():
                    found.add("%s:%d" % (ip, port))
        print("PEERS " + " ".join(sorted(found)), flush=True)
    elif op == "PUT_IMM":
        i = int(c[1])
        target = sessions[i].dht_put_immutable_item(c[2].encode())
        a = wait_for(i, lambda a: isinstance(a, lt.dht_put_alert) and a.target == target)
        print("PUT %s %d" % (target, a.num_success if a else -1), flush=True)
    elif op == "GET_IMM":
        i = int(c[1])
        t = lt.sha1_hash(bytes.fromhex(c[2]))
        sessions[i].dht_get_immutable_item(t)
        a = wait_for(i, lambda a: isinstance(a, lt.dht_immutable_item_alert) and a.target == t)
        item = lt.bencode(value(a.item)).hex() if a and a.item is not None else "-"
        print("IMM " + (item or "-"), flush=True)
    elif op == "PUT_MUT":
        i, seed, pk, salt, data = int(c[1]), bytes.fromhex(c[2]), bytes.fromhex(c[3]), c[4], c[5]
        salt = b"" if salt == "-" else salt.encode()
        sessions[i].dht_put_mutable_item(secret_key(seed), pk, data.encode(), salt)
        a = wait_for(i, lambda a: isinstance(a, lt.dht_put_alert) and bytes(a.public_key) == pk)
        print("PUT %d %d" % (a.seq if a else -1, a.num_success if a else -1), flush=True)
    elif op == "GET_MUT":
        i, pk, salt = int(c[1]), bytes.fromhex(c[2]), c[3]
        salt = b"" if salt == "-" else salt.encode()
        sessions[i].dht_get_mutable_item(pk, salt)
        best = None
        deadline = time.time() + 15
        while time.time() < deadline:
            a = wait_for(i, lambda a: isinstance(a, lt.dht_mutable_item_alert) and bytes(a.key) == pk, 2)
            if a is None:
                continue
            if best is None or a.seq > best[0]:
                best = (a.seq, lt.bencode(value(a.item)).hex())
            if a.authoritative:
                break
        print("MUT %d %s" % best if best else "MUT -1 -", flush=True)
    elif op == "SAMPLE":
        i, ip, port = int(c[1]), c[2], int(c[3])
        sessions[i].dht_sample_infohashes((ip, port), lt.sha1_hash(bytes(20)))
        a = wait_for(i, lambda a: isinstance(a, lt.dht_sample_infohashes_alert))
        if a:
            print("SAMPLES %d %s" % (a.num_infohashes, " ".join(str(h) for h in a.samples)), flush=True)
        else:
            print("SAMPLES -1", flush=True)
    else:
        print("ERR unknown", flush=True)
"#;

/// The python child and its line protocol.
struct Libtorrent {
    _child: ChildGuard,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Libtorrent {
    fn start() -> (Self, Vec<SocketAddr>) {
        let python = require_python_libtorrent();
        let mut child = ChildGuard::spawn(
            Command::new(python)
                .arg("-c")
                .arg(DHT_PY)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        )
        .expect("start python3");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lt = Self {
            _child: child,
            stdin,
            lines,
        };
        let nodes = lt.line();
        let nodes = nodes
            .strip_prefix("NODES ")
            .unwrap_or_else(|| panic!("unexpected first line {nodes:?}"))
            .split(' ')
            .map(|a| a.parse().unwrap())
            .collect();
        (lt, nodes)
    }

    fn line(&mut self) -> String {
        self.lines.recv_timeout(REPLY_TIMEOUT).unwrap_or_else(|e| {
            panic!("libtorrent child gave no answer within {REPLY_TIMEOUT:?}: {e}")
        })
    }

    /// Sends one command and returns its answer without the leading word `expect`.
    fn ask(&mut self, command: &str, expect: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        let line = self.line();
        line.strip_prefix(expect)
            .unwrap_or_else(|| panic!("{command}: unexpected answer {line:?}"))
            .trim()
            .to_owned()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).unwrap())
        .collect()
}

#[test]
fn lt_and_libtorrent_share_a_dht() {
    let (mut lt, nodes) = Libtorrent::start();
    assert_eq!(nodes.len(), 4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();

    // Our node joins their DHT, and they learn ours.
    let mut config = DhtConfig::bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, 25), 0)));
    config.settings = Config {
        rng_seed: Some([25; 32]),
        query_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    config.nodes = nodes;
    config.lookup_timeout = Duration::from_secs(30);
    let dht = DhtHandle::start(config).unwrap();
    let ours = dht.local_addr().unwrap();
    lt.ask(&format!("ADD_NODE {} {}", ours.ip(), ours.port()), "OK");
    let deadline = Instant::now() + Duration::from_secs(15);
    while dht.routing_table_size() < 4 {
        assert!(
            Instant::now() < deadline,
            "our node has {} of libtorrent's 4 nodes",
            dht.routing_table_size()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("lt routing table: {}", dht.routing_table_size());

    // 1. libtorrent announces; lt's get_peers finds it.
    let ih = Sha1Hash::digest(b"dht interop: libtorrent announces");
    let port: u16 = lt
        .ask(&format!("ANNOUNCE 1 {}", ih.to_hex()), "ANNOUNCED")
        .parse()
        .unwrap();
    let want = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 22), port));
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let peers = rt.block_on(dht.get_peers(ih));
        if peers.contains(&want) {
            break peers;
        }
        assert!(
            Instant::now() < deadline,
            "lt did not find libtorrent's announce of {want}: {peers:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    println!("lt get_peers found libtorrent: {found:?}");
    // BEP 33: libtorrent's nodes answer a scrape; its session (a downloader without
    // metadata) is counted.
    let scrape = rt.block_on(dht.scrape(ih)).unwrap();
    println!("lt scrape of libtorrent's torrent: {scrape:?}");
    assert!(scrape.downloaders + scrape.seeds >= 1, "{scrape:?}");

    // 2. lt announces; libtorrent's dht_get_peers finds it.
    let ih2 = Sha1Hash::digest(b"dht interop: lt announces");
    let out = rt.block_on(dht.announce(ih2, Some(40_001))).unwrap();
    assert!(out.stored_on >= 2, "announced to {} nodes", out.stored_on);
    let peers = lt.ask(
        &format!("GET_PEERS 3 {} 127.0.0.25:40001", ih2.to_hex()),
        "PEERS",
    );
    assert!(
        peers.split(' ').any(|p| p == "127.0.0.25:40001"),
        "libtorrent did not find lt's announce: {peers:?}"
    );
    println!("libtorrent dht_get_peers found lt: {peers}");

    // 3. BEP 44 immutable: libtorrent puts, lt gets; lt puts, libtorrent gets.
    let put = lt.ask("PUT_IMM 0 from-libtorrent", "PUT");
    let (target, ok) = put.split_once(' ').unwrap();
    assert!(ok.parse::<i32>().unwrap() >= 1, "libtorrent put: {put}");
    let target = Sha1Hash::from_slice(&unhex(target)).unwrap();
    let v = rt.block_on(dht.get_immutable(target));
    assert_eq!(v.as_deref(), Some(&b"15:from-libtorrent"[..]));
    let ours_put = rt
        .block_on(dht.put_immutable(b"7:from-lt".to_vec()))
        .unwrap();
    assert!(ours_put.stored_on >= 2);
    let got = lt.ask(&format!("GET_IMM 2 {}", ours_put.target.to_hex()), "IMM");
    assert_eq!(unhex(&got), b"7:from-lt", "libtorrent read {got:?}");

    // 4. BEP 44 mutable, with a salt: libtorrent puts (seq 1), lt reads and writes seq 2,
    // libtorrent reads seq 2.
    let seed = [0x44u8; 32];
    let pk = lt_dht::item::public_key(&seed);
    let put = lt.ask(
        &format!(
            "PUT_MUT 0 {} {} salty v1-from-libtorrent",
            hex(&seed),
            hex(&pk)
        ),
        "PUT",
    );
    let (seq, ok) = put.split_once(' ').unwrap();
    assert!(
        ok.parse::<i32>().unwrap() >= 1,
        "libtorrent mutable put: {put}"
    );
    let item = rt
        .block_on(dht.get_mutable(pk, b"salty".to_vec()))
        .expect("lt read libtorrent's mutable item");
    assert_eq!(item.v, b"18:v1-from-libtorrent");
    assert_eq!(item.seq, seq.parse::<i64>().unwrap());
    let ours_put = rt
        .block_on(dht.put_mutable(seed, b"salty".to_vec(), b"10:v2-from-lt".to_vec()))
        .unwrap();
    assert_eq!(ours_put.seq, Some(item.seq + 1));
    assert!(ours_put.stored_on >= 2);
    let got = lt.ask(&format!("GET_MUT 3 {} salty", hex(&pk)), "MUT");
    let (seq, v) = got.split_once(' ').unwrap();
    assert_eq!(seq.parse::<i64>().unwrap(), item.seq + 1, "{got}");
    assert_eq!(unhex(v), b"10:v2-from-lt");
    println!("BEP 44 immutable and mutable items crossed both ways");

    // 5. BEP 51: libtorrent samples our node's info-hashes (libtorrent's announce reached it).
    let samples = lt.ask(
        &format!("SAMPLE 1 {} {}", ours.ip(), ours.port()),
        "SAMPLES",
    );
    let mut words = samples.split(' ');
    let num: i64 = words.next().unwrap().parse().unwrap();
    let listed: Vec<&str> = words.collect();
    println!("libtorrent sampled {num} info-hashes from lt: {listed:?}");
    assert!(num >= 1, "sample_infohashes: {samples}");
    assert!(
        listed.contains(&ih.to_hex().as_str()),
        "{ih} not sampled: {samples}"
    );

    // libtorrent keeps our node in its routing table (its 3 peers plus us).
    let table: i64 = lt.ask("TABLE 0", "TABLE").parse().unwrap();
    assert!(table >= 4, "libtorrent's routing table holds {table} nodes");

    dht.shutdown();
}
