#!/usr/bin/python3
"""Captures fuzz seed inputs from real clients on loopback (issue 18).

    tests/python/capture_corpus.py [--out fuzz/corpus] [--only STEP ...] [--keep-going]

Run as root with Debian's /usr/bin/python3 (python3-libtorrent 2.0.8) and opentracker
installed; the `mse` step needs `cargo build -p lt-tests --bin lt-mse-capture` (built on
demand when missing), the `lsd` step `ip netns` (root). Steps (all by default):

    metainfo  torrents from libtorrent's create_torrent (v1, v2, hybrid, pad files) and the
              magnet links it prints                          -> torrent_info, magnet
    resume    lt.write_resume_data_buf of a finished, a partial and a metadata-less torrent
                                                              -> resume_data
    peer      plaintext TCP: what a libtorrent leecher, a magnet leecher and a seed send to
              raw sockets of ours (the torrent has the 13 x 32 KiB layout the targets
              assume; peer_incoming also gets copies with the info-hash patched to the
              target's known torrent, so they get past accept)
                                                 -> wire_message, peer_incoming, extension_message
    mse       MSE/PE: libtorrent dialling lt-mse-capture (lt-wire's responder, seeded like
              the targets so they reach the SKEY step) and answering its initiator
                                                              -> mse_handshake, peer_incoming
    utp       uTP datagrams of libtorrent dialling our UDP socket and answering it (and
              that conversation as a utp_endpoint op sequence) -> utp_packet, utp_endpoint
    dht       KRPC queries libtorrent's DHT sends to our UDP socket (get_peers,
              announce_peer, sample_infohashes, BEP 44 get/put), and its replies to ours
                                                              -> krpc_message
    tracker   opentracker's HTTP and UDP replies, and the requests libtorrent sends it
              (through a recording relay)       -> http_tracker_response, udp_tracker_packet
    lsd       a libtorrent LSD announce, received over a veth pair between two network
              namespaces (multicast does not leave loopback otherwise)  -> lsd_message

Every file is named `real-libtorrent-<what>` (or `real-opentracker-<what>`) and kept under
64 KiB. The inputs are random where the clients are (peer ids, keys, tokens), so a rerun
rewrites the files with different bytes of the same shape. Everything listens on 127.0.0.0/8
(or inside the namespaces the lsd step makes and deletes); every process started is stopped
and every wait is bounded.
"""

import argparse
import hashlib
import http.client
import http.server
import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import libtorrent as lt

REPO = Path(__file__).resolve().parents[2]
MAX_FILE = 64 << 10
PIECE_LEN = 32768
# The fuzz targets' peer connections assume 13 pieces of 32 KiB, 7 bytes in the last one:
# the test torrent has that layout, so its bitfields and requests are in range there.
TOTAL_LEN = 12 * PIECE_LEN + 7
OUR_PEER_ID = b"-LC0001-corpuscaptur"
STEPS = ["metainfo", "resume", "peer", "mse", "utp", "dht", "tracker", "lsd"]


class Timeout(Exception):
    pass


def log(*parts):
    print("capture:", *parts, file=sys.stderr, flush=True)


class Corpus:
    def __init__(self, root):
        self.root = Path(root)
        self.written = []

    def put(self, target, name, data):
        if isinstance(data, str):
            data = data.encode()
        if len(data) > MAX_FILE:
            raise ValueError("%s/%s is %d bytes, over 64 KiB" % (target, name, len(data)))
        d = self.root / target
        if not d.is_dir():
            raise ValueError("no corpus directory %s" % d)
        (d / name).write_bytes(data)
        self.written.append((target, name, len(data)))
        log("wrote %s/%s (%d bytes)" % (target, name, len(data)))


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Timeout("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.02)


# ---- libtorrent sessions and the test torrent -------------------------------------------

def settings(listen="127.0.0.1:0", transport="tcp", enc="disabled", **extra):
    s = lt.default_settings()
    s.update({
        "listen_interfaces": listen,
        "enable_upnp": False, "enable_natpmp": False, "enable_lsd": False,
        "enable_dht": False, "dht_bootstrap_nodes": "",
        "allow_multiple_connections_per_ip": True,
        "tick_interval": 100, "smooth_connects": False, "connection_speed": 500,
        "peer_connect_timeout": 3, "min_reconnect_time": 1,
        "stop_tracker_timeout": 1,
        "enable_incoming_tcp": transport in ("tcp", "both"),
        "enable_outgoing_tcp": transport in ("tcp", "both"),
        "enable_incoming_utp": transport in ("utp", "both"),
        "enable_outgoing_utp": transport in ("utp", "both"),
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.storage_notification,
    })
    if enc == "disabled":
        s.update({"out_enc_policy": lt.enc_policy.disabled,
                  "in_enc_policy": lt.enc_policy.disabled})
    elif enc == "rc4":
        s.update({"out_enc_policy": lt.enc_policy.forced,
                  "in_enc_policy": lt.enc_policy.forced,
                  "allowed_enc_level": lt.enc_level.rc4, "prefer_rc4": True})
    s.update(extra)
    return s


class Sessions:
    """libtorrent sessions of one step, all destroyed when it ends."""

    def __init__(self):
        self.all = []

    def new(self, **kw):
        ses = lt.session(settings(**kw))
        self.all.append(ses)
        return ses

    def close(self):
        while self.all:
            ses = self.all.pop()
            ses.pause()
            del ses


def listen_port(ses, timeout=10):
    return wait_for(lambda: ses.listen_port() or None, timeout, "libtorrent to listen")


def add(ses, ti_or_atp, save, seed=False, flags=0):
    if isinstance(ti_or_atp, lt.add_torrent_params):
        atp = ti_or_atp
    else:
        atp = lt.add_torrent_params()
        atp.ti = ti_or_atp
    atp.save_path = str(save)
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    if seed:
        atp.flags |= lt.torrent_flags.seed_mode
    atp.flags |= flags
    return ses.add_torrent(atp)


def pseudo_random(n, label):
    out = bytearray()
    block = hashlib.sha256(label.encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def make_torrent(root, files, piece_len, flags=0, name="corpus", extra=None, data=True):
    """Writes `files` ([(relative path, size)] under root/name; one file: root/name) and
    returns the generated torrent's bytes. The creation date is dropped so reruns agree."""
    fs = lt.file_storage()
    base = Path(root)
    for rel, size in files:
        path = base / rel
        if data:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pseudo_random(size, rel))
        fs.add_file(rel, size)
    ct = lt.create_torrent(fs, piece_len, flags=flags)
    ct.set_creator("libtorrent 2.0.8 (lt corpus capture)")
    for step in (extra or []):
        step(ct)
    lt.set_piece_hashes(ct, str(base))
    e = ct.generate()
    e.pop(b"creation date", None)
    return lt.bencode(e)


def test_torrent(root):
    """The 13-piece v1 torrent of the peer, MSE and uTP steps, with its data."""
    b = make_torrent(root, [("corpus.bin", TOTAL_LEN)], PIECE_LEN, lt.create_torrent.v1_only)
    ti = lt.torrent_info(lt.bdecode(b))
    return ti, ti.info_hashes().v1.to_bytes()


# ---- the BitTorrent wire ----------------------------------------------------------------

PSTR = b"\x13BitTorrent protocol"
RESERVED = bytes([0, 0, 0, 0, 0, 0x10, 0, 0x05])  # extension protocol, fast, DHT


def handshake(info_hash, peer_id=OUR_PEER_ID):
    return PSTR + RESERVED + info_hash + peer_id


def message(mid, payload=b""):
    return struct.pack(">IB", 1 + len(payload), mid) + payload


def extended(ext_id, payload):
    return message(20, bytes([ext_id]) + payload)


def our_ext_handshake(metadata_size=None, port=None):
    d = {"m": {"ut_metadata": 2, "ut_pex": 1}, "v": "lt corpus capture", "reqq": 250}
    if metadata_size is not None:
        d["metadata_size"] = metadata_size
    if port is not None:
        d["p"] = port
    return lt.bencode(d)


def split_messages(stream):
    """[(id or None for a keep-alive, payload)] of a message stream; stops at a partial one."""
    out = []
    i = 0
    while i + 4 <= len(stream):
        (n,) = struct.unpack(">I", stream[i:i + 4])
        if i + 4 + n > len(stream):
            break
        body = stream[i + 4:i + 4 + n]
        out.append((body[0], body[1:]) if n else (None, b""))
        i += 4 + n
    return out


class Conn:
    """A TCP connection that records every byte it receives."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(0.05)
        self.rx = b""

    def send(self, data):
        self.sock.sendall(data)

    def pump(self, seconds, until=None):
        """Reads for up to `seconds`, or until `until(self)` is true."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if until is not None and until(self):
                return True
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return False
            if not chunk:
                return until is not None and until(self)
            self.rx += chunk
        return until is not None and until(self)

    def messages(self):
        return split_messages(self.rx[68:]) if len(self.rx) >= 68 else []

    def close(self):
        self.sock.close()


def accept_from(srv, seconds, redial=None):
    srv.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if redial:
            redial()
        try:
            s, _ = srv.accept()
            return Conn(s)
        except socket.timeout:
            continue
    raise Timeout("no connection on %s:%d" % srv.getsockname())


def tcp_listener(ip="127.0.0.1"):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((ip, 0))
    srv.listen(8)
    return srv


def ext_messages(msgs):
    return [(p[0], p[1:]) for mid, p in msgs if mid == 20 and p]


def bdecode_prefix(b):
    """The bencoded dict at the start of b and the bytes after it (ut_metadata data)."""
    for end in range(1, len(b) + 1):
        if b[end - 1:end] != b"e":
            continue
        try:
            d = lt.bdecode(b[:end])
        except RuntimeError:
            continue
        if d is not None and lt.bencode(d) == b[:end]:
            return d, b[end:]
    return None, b


# ---- step: metainfo ---------------------------------------------------------------------

def step_metainfo(corpus, tmp):
    root = Path(tmp) / "metainfo"
    v1, v2, canon = lt.create_torrent.v1_only, lt.create_torrent.v2_only, \
        lt.create_torrent.canonical_files
    mtime = lt.create_torrent.modification_time

    def trackers_and_seeds(ct):
        ct.add_tracker("http://127.0.0.1:6969/announce", 0)
        ct.add_tracker("udp://127.0.0.1:6969", 0)
        ct.add_tracker("http://127.0.0.2:6969/announce", 1)
        ct.add_url_seed("http://127.0.0.1:8080/seed/")
        ct.add_http_seed("http://127.0.0.1:8080/httpseed")
        ct.add_node("127.0.0.1", 6881)
        ct.set_comment("captured by tests/python/capture_corpus.py")

    def collections(ct):
        ct.add_collection("lt-corpus")
        ct.add_similar_torrent(lt.sha1_hash(bytes(range(20))))

    def priv(ct):
        ct.set_priv(True)

    multi = [("a/readme.txt", 1000), ("a/sub/data.bin", 70000), ("a/empty", 0),
             ("a/z-last.bin", 20000)]
    cases = [
        # name, files, piece length, flags, extra
        ("v1-multi-pad-files", multi, 16384, v1 | canon, [trackers_and_seeds]),
        ("v1-single-private-mtime", [("single.bin", 50000)], 16384, v1 | mtime, [priv]),
        ("v2-multi-collections", multi, 16384, v2, [collections]),
        ("hybrid-multi-pad-trackers", multi, 16384, 0, [trackers_and_seeds]),
        ("hybrid-single-odd-size", [("odd.bin", 3 * 16384 + 1)], 16384, 0, []),
    ]
    tis = {}
    for name, files, plen, flags, extra in cases:
        d = root / name
        b = make_torrent(d, files, plen, flags, extra=extra)
        corpus.put("torrent_info", "real-libtorrent-%s.torrent" % name, b)
        tis[name] = lt.torrent_info(lt.bdecode(b))

    for name in ("v1-multi-pad-files", "v2-multi-collections", "hybrid-multi-pad-trackers"):
        uri = lt.make_magnet_uri(tis[name])
        corpus.put("magnet", "real-libtorrent-%s.txt" % name, uri)
    # From add_torrent_params: peers (x.pe), web seeds, and a file selection (so=).
    atp = lt.add_torrent_params()
    atp.ti = tis["hybrid-multi-pad-trackers"]
    atp.peers = [("127.0.0.1", 6881), ("127.0.0.2", 6882)]
    atp.url_seeds = ["http://127.0.0.1:8080/seed/"]
    atp.file_priorities = [0, 4, 0, 1, 0, 7, 0]
    corpus.put("magnet", "real-libtorrent-atp-peers-seeds-select.txt", lt.make_magnet_uri(atp))
    # A magnet parsed by libtorrent and printed again (no metadata).
    p = lt.parse_magnet_uri(lt.make_magnet_uri(tis["v2-multi-collections"]) + "&dn=a%20name")
    corpus.put("magnet", "real-libtorrent-reprinted-v2.txt", lt.make_magnet_uri(p))


# ---- step: resume -----------------------------------------------------------------------

def save_resume(ses, h, timeout=20, flags=lt.save_resume_flags_t.save_info_dict):
    h.save_resume_data(flags | lt.save_resume_flags_t.flush_disk_cache)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for a in ses.pop_alerts():
            if isinstance(a, lt.save_resume_data_alert):
                return lt.write_resume_data_buf(a.params)
            if isinstance(a, lt.save_resume_data_failed_alert):
                raise RuntimeError(a.message())
        ses.wait_for_alert(50)
    raise Timeout("save_resume_data")


def step_resume(corpus, tmp):
    root = Path(tmp) / "resume"
    sessions = Sessions()
    try:
        files = [("r/one.bin", 3 * 262144 + 100), ("r/two.bin", 2 * 65536), ("r/three.txt", 300)]
        b = make_torrent(root / "seed", files, 262144, lt.create_torrent.v1_only,
                         extra=[lambda ct: ct.add_tracker("http://127.0.0.1:1/announce", 0)])
        ti = lt.torrent_info(lt.bdecode(b))
        bh = make_torrent(root / "seedh", files, 262144, 0)
        tih = lt.torrent_info(lt.bdecode(bh))

        # Finished: checked from disk (not seed mode), then saved.
        seed = sessions.new()
        port = listen_port(seed)
        hs = add(seed, ti, root / "seed")
        wait_for(lambda: hs.status().is_seeding, 20, "the v1 seed to check its data")
        corpus.put("resume_data", "real-libtorrent-v1-finished.resume", save_resume(seed, hs))
        hh = add(seed, tih, root / "seedh")
        wait_for(lambda: hh.status().is_seeding, 20, "the hybrid seed to check its data")

        # Partial: a slow download stopped mid-way, with one file skipped, so it has a
        # whole piece, blocks of an unfinished one and the seed in its peer list.
        for t, name in ((ti, "v1"), (tih, "hybrid")):
            ses = sessions.new()
            h = add(ses, t, root / ("leech-" + name))
            h.prioritize_files([4, 0, 7])
            h.set_download_limit(128 * 1024)
            h.connect_peer(("127.0.0.1", port))

            def partial():
                # block states: 0 none, 1 requested, 2 writing, 3 finished
                finished = [p for p in h.get_download_queue()
                            if 0 < sum(b["state"] == 3 for b in p["blocks"]) < len(p["blocks"])]
                return h.status().num_pieces >= 1 and finished
            wait_for(partial, 30, "the %s leecher to get a piece and part of one" % name)
            h.set_download_limit(1)
            time.sleep(0.3)
            corpus.put("resume_data", "real-libtorrent-%s-partial.resume" % name,
                       save_resume(ses, h))
            h.pause()

        # A magnet that has no metadata yet: only its hashes, name and trackers.
        ses = sessions.new()
        atp = lt.parse_magnet_uri(lt.make_magnet_uri(tih))
        h = add(ses, atp, root / "magnet")
        corpus.put("resume_data", "real-libtorrent-hybrid-magnet-no-metadata.resume",
                   save_resume(ses, h))
    finally:
        sessions.close()


# ---- step: peer (plaintext TCP) -----------------------------------------------------------

def step_peer(corpus, tmp):
    root = Path(tmp) / "peer"
    ti, ih = test_torrent(root / "seed")
    meta_size = len(ti.info_section())
    sessions = Sessions()
    conns = []
    try:
        seed = sessions.new()
        seed_port = listen_port(seed)
        seed_h = add(seed, ti, root / "seed", seed=True)

        # 1. A libtorrent leecher dials us; we say we have everything and unchoke it.
        srv = tcp_listener()
        conns.append(srv)
        leech = sessions.new()
        leech_h = add(leech, ti, root / "leech")
        c = accept_from(srv, 15, lambda: leech_h.connect_peer(srv.getsockname()))
        conns.append(c)
        c.pump(5, lambda c: len(c.rx) >= 68)
        c.send(handshake(ih) + message(5, b"\xff\xf8")
               + extended(0, our_ext_handshake(meta_size)) + message(1))
        c.pump(1.5)
        greeting = c.rx
        msgs = c.messages()
        ids = [m for m, _ in msgs]
        log("leecher sent", ids)
        if 6 not in ids:
            raise RuntimeError("no requests from the leecher")
        corpus.put("peer_incoming", "real-libtorrent-leecher-initiator", greeting[:MAX_FILE])
        # The same, naming the target's known torrent ([1; 20]) so it is accepted there and
        # the messages after the handshake reach the connection.
        patched = greeting[:28] + b"\x01" * 20 + greeting[48:]
        corpus.put("peer_incoming", "real-libtorrent-leecher-initiator-infohash-patched",
                   patched[:MAX_FILE])
        corpus.put("wire_message", "real-libtorrent-leecher-stream", greeting[68:MAX_FILE + 68])
        for eid, p in ext_messages(msgs):
            if eid == 0:
                corpus.put("extension_message", "real-libtorrent-ext-handshake-leecher",
                           b"\x00" + p)
        c.close()
        leech_h.pause()

        # 2. A magnet leecher dials us: it asks for the metadata.
        srv2 = tcp_listener()
        conns.append(srv2)
        mag = sessions.new()
        mag_h = add(mag, lt.parse_magnet_uri("magnet:?xt=urn:btih:" + ih.hex()), root / "mag")
        c = accept_from(srv2, 15, lambda: mag_h.connect_peer(srv2.getsockname()))
        conns.append(c)
        c.pump(5, lambda c: len(c.rx) >= 68)
        c.send(handshake(ih) + message(5, b"\xff\xf8")
               + extended(0, our_ext_handshake(meta_size)))

        def got_metadata_request(c):
            return any(e == 2 for e, _ in ext_messages(c.messages()))
        c.pump(5, got_metadata_request)
        c.pump(0.5)
        msgs = c.messages()
        log("magnet leecher sent", [m for m, _ in msgs])
        corpus.put("peer_incoming", "real-libtorrent-magnet-initiator-infohash-patched",
                   c.rx[:28] + b"\x01" * 20 + c.rx[48:])
        corpus.put("wire_message", "real-libtorrent-magnet-leecher-stream", c.rx[68:])
        for eid, p in ext_messages(msgs):
            if eid == 0:
                corpus.put("extension_message", "real-libtorrent-ext-handshake-magnet",
                           b"\x00" + p)
            elif eid == 2:
                corpus.put("extension_message", "real-libtorrent-ut-metadata-request",
                           b"\x01" + p)
        c.close()
        mag_h.pause()

        # 3. We dial the seed, with a second (slow, real) leecher on it so it has someone to
        # tell us about by PEX; we ask for two blocks, the metadata, and a metadata piece
        # that does not exist.
        other = sessions.new()
        other_h = add(other, ti, root / "other")
        other_h.set_download_limit(2000)
        other_h.connect_peer(("127.0.0.1", seed_port))
        wait_for(lambda: seed_h.status().num_peers >= 1 or None, 15, "the second leecher")
        s = socket.create_connection(("127.0.0.1", seed_port), timeout=5)
        c = Conn(s)
        conns.append(c)
        c.send(handshake(ih))
        c.pump(5, lambda c: len(c.rx) >= 68)
        c.pump(0.5, lambda c: any(e == 0 for e, _ in ext_messages(c.messages())))
        theirs = dict(lt.bdecode(next(p for e, p in ext_messages(c.messages()) if e == 0)))
        m = {k.decode() if isinstance(k, bytes) else k: v for k, v in theirs[b"m"].items()}
        meta_id = m["ut_metadata"]
        c.send(extended(0, our_ext_handshake(port=6881)) + message(2)
               + extended(meta_id, lt.bencode({"msg_type": 0, "piece": 0}))
               + extended(meta_id, lt.bencode({"msg_type": 0, "piece": 5})))
        c.pump(5, lambda c: 1 in [m for m, _ in c.messages()])
        c.send(message(6, struct.pack(">III", 0, 0, 16384))
               + message(6, struct.pack(">III", 12, 0, 7)))

        def done(c):
            msgs = c.messages()
            ext = [e for e, _ in ext_messages(msgs)]
            return [m for m, _ in msgs].count(7) >= 2 and 1 in ext and ext.count(2) >= 2
        ok = c.pump(10, done)
        msgs = c.messages()
        log("seed sent", [m for m, _ in msgs], "complete" if ok else "(timed out)")
        corpus.put("wire_message", "real-libtorrent-seed-stream", c.rx[68:])
        for eid, p in ext_messages(msgs):
            if eid == 0:
                corpus.put("extension_message", "real-libtorrent-ext-handshake-seed",
                           b"\x00" + p)
            elif eid == 1:
                corpus.put("extension_message", "real-libtorrent-ut-pex", b"\x02" + p)
            elif eid == 2:
                d, _ = bdecode_prefix(p)
                kind = {0: "request", 1: "data", 2: "reject"}.get(d.get(b"msg_type"), "other")
                corpus.put("extension_message", "real-libtorrent-ut-metadata-%s" % kind,
                           b"\x01" + p)
    finally:
        for c in conns:
            c.close()
        sessions.close()


# ---- step: mse --------------------------------------------------------------------------

def mse_helper():
    exe = REPO / "target" / "debug" / "lt-mse-capture"
    if not exe.exists():
        log("building lt-mse-capture")
        subprocess.run(["cargo", "build", "-p", "lt-tests", "--bin", "lt-mse-capture"],
                       cwd=REPO, check=True, timeout=1800)
    return exe


class Proc:
    """A child process printing JSON lines, stopped by its pid when the step ends."""

    def __init__(self, args, **kw):
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=None,
                                  **kw)
        self.buf = b""

    def line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.p.stdout], [], [], max(0.0, left))
            if not r:
                raise Timeout("no output from %s" % self.p.args[0])
            chunk = os.read(self.p.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError("%s exited (%s)" % (self.p.args[0], self.p.poll()))
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def wait(self, timeout):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Timeout("%s did not exit" % self.p.args[0])

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


def step_mse(corpus, tmp):
    root = Path(tmp) / "mse"
    ti, ih = test_torrent(root / "seed")
    exe = str(mse_helper())
    sessions = Sessions()
    procs = []
    try:
        # libtorrent dials the helper (RC4 forced), once per responder seed.
        leech = sessions.new(enc="rc4")
        leech_h = add(leech, ti, root / "leech")
        for seed, target, name in (("5a", "peer_incoming", "real-libtorrent-mse-rc4-initiator"),
                                   ("first-byte", "mse_handshake",
                                    "real-libtorrent-mse-rc4-initiator")):
            out = Path(tmp) / ("mse-%s.bin" % seed)
            p = Proc([exe, "accept", "--listen", "127.0.0.1:0", "--info-hash", ih.hex(),
                      "--seed", seed, "--out", str(out), "--max-time", "20"])
            procs.append(p)
            port = p.line(10)["port"]
            deadline = time.monotonic() + 20
            done = None
            while done is None and time.monotonic() < deadline:
                leech_h.connect_peer(("127.0.0.1", port))
                try:
                    done = p.line(1.0)
                except Timeout:
                    pass
            if done is None or done.get("event") != "done":
                raise RuntimeError("lt-mse-capture accept: %r" % done)
            log("mse accept", seed, done)
            p.wait(5)
            corpus.put(target, name, out.read_bytes()[:MAX_FILE])
        leech_h.pause()

        # The helper dials a libtorrent seed (RC4 forced): libtorrent's responder bytes.
        seed_ses = sessions.new(enc="rc4")
        seed_port = listen_port(seed_ses)
        add(seed_ses, ti, root / "seed", seed=True)
        time.sleep(0.5)
        out = Path(tmp) / "mse-responder.bin"
        p = Proc([exe, "connect", "--peer", "127.0.0.1:%d" % seed_port, "--info-hash",
                  ih.hex(), "--seed", "07", "--rc4", "--out", str(out), "--max-time", "20"])
        procs.append(p)
        done = p.line(25)
        log("mse connect", done)
        if done.get("event") != "done":
            raise RuntimeError("lt-mse-capture connect: %r" % done)
        p.wait(5)
        corpus.put("mse_handshake", "real-libtorrent-mse-rc4-responder", out.read_bytes())
    finally:
        for p in procs:
            p.stop()
        sessions.close()


# ---- step: utp --------------------------------------------------------------------------

ST_DATA, ST_FIN, ST_STATE, ST_RESET, ST_SYN = range(5)
UTP_NAMES = {ST_DATA: "data", ST_FIN: "fin", ST_STATE: "state", ST_RESET: "reset",
             ST_SYN: "syn"}


def utp_header(ty, conn_id, seq, ack, ext=0, wnd=1 << 20):
    ts = int(time.monotonic() * 1e6) & 0xffffffff
    return struct.pack(">BBHIIIHH", (ty << 4) | 1, ext, conn_id, ts, 0, wnd, seq, ack)


def utp_parse(d):
    if len(d) < 20:
        return None
    tv, ext, cid, _ts, _td, _w, seq, ack = struct.unpack(">BBHIIIHH", d[:20])
    return {"type": tv >> 4, "ext": ext, "conn_id": cid, "seq": seq, "ack": ack}


class UtpPeer:
    """Our end of one uTP connection on a UDP socket, recording what arrives."""

    def __init__(self, sock, addr):
        self.sock = sock
        self.addr = addr
        self.log = []  # raw datagrams received
        self.stream = b""

    def recv(self, seconds, until=None):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if until is not None and until(self):
                return True
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if not r:
                continue
            d, a = self.sock.recvfrom(65536)
            if a != self.addr:
                continue
            self.log.append(d)
            h = utp_parse(d)
            if h and h["type"] == ST_DATA:
                self.on_data(h, d)
        return until is not None and until(self)

    def on_data(self, h, d):
        pass

    def first(self, ty):
        return next((d for d in self.log if utp_parse(d)["type"] == ty), None)


def step_utp(corpus, tmp):
    root = Path(tmp) / "utp"
    ti, ih = test_torrent(root / "seed")
    sessions = Sessions()
    socks = []
    try:
        # 1. libtorrent dials our UDP socket: its SYN, its data, its FIN.
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        socks.append(sock)
        sock.bind(("127.0.0.1", 0))
        leech = sessions.new(transport="utp")
        listen_port(leech)
        leech_h = add(leech, ti, root / "leech")
        deadline = time.monotonic() + 15
        syn = None
        while syn is None and time.monotonic() < deadline:
            leech_h.connect_peer(sock.getsockname())
            r, _, _ = select.select([sock], [], [], 0.5)
            if r:
                d, addr = sock.recvfrom(65536)
                if utp_parse(d) and utp_parse(d)["type"] == ST_SYN:
                    syn = (d, addr)
        if syn is None:
            raise Timeout("no uTP SYN from libtorrent")
        d, addr = syn
        h = utp_parse(d)
        peer = UtpPeer(sock, addr)
        peer.log.append(d)
        send_id, our_seq = h["conn_id"], 4000
        state = {"ack": h["seq"]}

        def on_data(hh, dd):
            if hh["seq"] == (state["ack"] + 1) & 0xffff:
                state["ack"] = hh["seq"]
                peer.stream += dd[20:]
            sock.sendto(utp_header(ST_STATE, send_id, our_seq, state["ack"]), addr)
        peer.on_data = on_data
        sock.sendto(utp_header(ST_STATE, send_id, our_seq, state["ack"]), addr)
        peer.recv(5, lambda p: len(p.stream) >= 68)
        ours = handshake(ih) + message(5, b"\xff\xf8") + extended(0, our_ext_handshake()) \
            + message(1)
        sock.sendto(utp_header(ST_DATA, send_id, our_seq, state["ack"]) + ours, addr)
        our_seq += 1
        peer.recv(2, lambda p: 6 in [m for m, _ in split_messages(p.stream[68:])])
        peer.recv(0.3)
        # Closing the torrent makes libtorrent send its FIN.
        leech.remove_torrent(leech_h)
        peer.recv(3, lambda p: p.first(ST_FIN) is not None)
        log("libtorrent (initiator) sent", [UTP_NAMES.get(utp_parse(x)["type"]) for x in
                                            peer.log])
        dialled = list(peer.log)
        for ty in (ST_SYN, ST_DATA, ST_STATE, ST_FIN):
            x = peer.first(ty)
            if x is not None:
                corpus.put("utp_packet", "real-libtorrent-utp-%s" % UTP_NAMES[ty], x)

        # utp_endpoint: the conversation fed to the listening endpoint (side 0): the SYN
        # from address 3, then libtorrent's other datagrams routed to the accepted
        # connection (op 0x80|..., connection id patched), with time steps between.
        ops = bytearray([0x00])
        for i, x in enumerate(dialled[:40]):
            if len(x) > 255:
                continue
            code = 0x30 if utp_parse(x)["type"] == ST_SYN and i == 0 else 0xB0
            ops += bytes([code, len(x)]) + x
            ops += bytes([0x06, 3, 0x08, 0xff])  # 39 ms pass; the link delivers
        corpus.put("utp_endpoint", "real-libtorrent-utp-dialled-conversation", bytes(ops))
        # The same datagrams unrouted (as they came: from one address, ids unpatched).
        ops = bytearray([0x01])
        for x in dialled[:40]:
            if len(x) <= 255:
                ops += bytes([0x30, len(x)]) + x
        corpus.put("utp_endpoint", "real-libtorrent-utp-dialled-unrouted", bytes(ops))

        # 2. We dial a libtorrent seed: its SYN-ACK, data, a selective ACK, its reset.
        seed = sessions.new(transport="utp")
        sport = listen_port(seed)
        add(seed, ti, root / "seed", seed=True)
        time.sleep(0.5)
        sock2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        socks.append(sock2)
        sock2.bind(("127.0.0.1", 0))
        saddr = ("127.0.0.1", sport)
        recv_id = 0x1234
        seq = 100
        peer = UtpPeer(sock2, saddr)
        sock2.sendto(utp_header(ST_SYN, recv_id, seq, 0), saddr)
        if not peer.recv(5, lambda p: p.first(ST_STATE) is not None):
            raise Timeout("no uTP SYN-ACK from libtorrent")
        synack = utp_parse(peer.first(ST_STATE))
        st = {"ack": (synack["seq"] - 1) & 0xffff}

        def on_data2(hh, dd):
            if hh["seq"] == (st["ack"] + 1) & 0xffff:
                st["ack"] = hh["seq"]
                peer.stream += dd[20:]
            sock2.sendto(utp_header(ST_STATE, recv_id + 1, seq, st["ack"]), saddr)
        peer.on_data = on_data2
        seq += 1
        sock2.sendto(utp_header(ST_DATA, recv_id + 1, seq, st["ack"]) + handshake(ih), saddr)
        peer.recv(5, lambda p: len(p.stream) >= 68 + 4)
        peer.recv(0.5)
        # Out of order: seq+2 before seq+1, so libtorrent acks with a selective ACK.
        n_before = len(peer.log)
        sock2.sendto(utp_header(ST_DATA, recv_id + 1, seq + 2, st["ack"]) + message(2), saddr)

        def sack_seen(p):
            return any(utp_parse(x)["ext"] == 1 for x in p.log[n_before:])
        peer.recv(2, sack_seen)
        sock2.sendto(utp_header(ST_DATA, recv_id + 1, seq + 1, st["ack"])
                     + extended(0, our_ext_handshake()), saddr)
        peer.recv(1)
        log("libtorrent (responder) sent", [UTP_NAMES.get(utp_parse(x)["type"]) for x in
                                            peer.log])
        sacks = [x for x in peer.log if utp_parse(x)["ext"] == 1]
        if sacks:
            corpus.put("utp_packet", "real-libtorrent-utp-state-sack", sacks[0])
        # A packet for a connection it does not know.
        n_before = len(peer.log)
        sock2.sendto(utp_header(ST_DATA, 0x7777, 5, 5) + b"x", saddr)
        peer.recv(2, lambda p: any(utp_parse(x)["type"] == ST_RESET for x in p.log[n_before:]))
        resets = [x for x in peer.log[n_before:] if utp_parse(x)["type"] == ST_RESET]
        if resets:
            corpus.put("utp_packet", "real-libtorrent-utp-reset", resets[0])
        else:
            log("no uTP RESET from libtorrent for an unknown connection")
    finally:
        for s in socks:
            s.close()
        sessions.close()


# ---- step: dht --------------------------------------------------------------------------

def step_dht(corpus, tmp):
    root = Path(tmp) / "dht"
    ti, ih = test_torrent(root / "seed")
    sessions = Sessions()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.22", 0))
        our_id = hashlib.sha1(b"lt corpus capture").digest()
        node = sessions.new(listen="127.0.0.21:0", enable_dht=True, **{
            "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
            "dht_ignore_dark_internet": False, "dht_prefer_verified_node_ids": False,
            "dht_enforce_node_id": False, "dht_announce_interval": 5,
            "dht_aggressive_lookups": True})
        port = listen_port(node)
        daddr = ("127.0.0.21", port)
        compact_us = socket.inet_aton("127.0.0.22") + struct.pack(">H", sock.getsockname()[1])

        def reply(q):
            t, name, a = q[b"t"], q[b"q"], q.get(b"a", {})
            r = {b"id": our_id}
            if name in (b"find_node", b"get_peers", b"get"):
                r[b"nodes"] = our_id + compact_us
            if name in (b"get_peers", b"get"):
                r[b"token"] = b"tok" + os.urandom(4)
            if name == b"get_peers":
                r[b"values"] = [socket.inet_aton("127.0.0.23") + struct.pack(">H", 6881)]
            return {b"t": t, b"y": b"r", b"r": r}

        # Its queries: bootstrap, an announce (get_peers, announce_peer), BEP 51
        # sample_infohashes, BEP 44 immutable and mutable get and put.
        seed = hashlib.sha256(b"lt corpus capture key").digest()
        key = bytearray(hashlib.sha512(seed).digest())  # libtorrent's ed25519 private key
        key[0] &= 248
        key[31] = (key[31] & 127) | 64
        try:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            from cryptography.hazmat.primitives import serialization as ser
            pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
                ser.Encoding.Raw, ser.PublicFormat.Raw)
        except ImportError:
            pub = None
            log("no python3-cryptography: no mutable put from libtorrent")
        queries = {}
        me = ("127.0.0.22", sock.getsockname()[1])
        node.add_dht_node(me)
        h = add(node, ti, root / "seed", seed=True)
        wanted = {b"get_peers", b"announce_peer", b"sample_infohashes", b"get-immutable",
                  b"put-immutable"}
        triggers = [
            lambda: node.dht_sample_infohashes(me, lt.sha1_hash(hashlib.sha1(b"s").digest())),
            lambda: node.dht_put_immutable_item(b"a corpus value"),
            lambda: node.dht_get_immutable_item(lt.sha1_hash(hashlib.sha1(b"g").digest())),
        ]
        if pub is not None:
            triggers.append(lambda: node.dht_put_mutable_item(bytes(key), pub,
                                                              b"mutable corpus value",
                                                              b"salt"))
            triggers.append(lambda: node.dht_get_mutable_item(pub, b""))
            wanted.add(b"put-mutable")
        deadline = time.monotonic() + 25
        last = 0.0
        linger = None
        while time.monotonic() < deadline and (linger is None or time.monotonic() < linger):
            if linger is None and wanted <= set(queries) and not triggers:
                linger = time.monotonic() + 2.0
            if time.monotonic() - last > 1:
                last = time.monotonic()
                node.add_dht_node(me)
                h.force_dht_announce()
                if triggers:
                    triggers.pop(0)()
            r, _, _ = select.select([sock], [], [], 0.1)
            if not r:
                continue
            d, a = sock.recvfrom(65536)
            try:
                q = lt.bdecode(d)
            except RuntimeError:
                continue
            if not isinstance(q, dict) or q.get(b"y") != b"q":
                continue
            name = q[b"q"]
            if name in (b"get", b"put"):
                name += b"-mutable" if b"k" in q.get(b"a", {}) else b"-immutable"
            queries.setdefault(name, d)
            sock.sendto(lt.bencode(reply(q)), a)
        log("libtorrent's DHT queried", sorted(k.decode() for k in queries))
        for name, d in sorted(queries.items()):
            corpus.put("krpc_message", "real-libtorrent-query-%s" % name.decode(), d)

        # Our queries, its replies.
        def ask(name, args, raw=None):
            t = os.urandom(2)
            msg = raw if raw is not None else lt.bencode(
                {b"t": t, b"y": b"q", b"q": name, b"a": dict(args, id=our_id)})
            sock.sendto(msg, daddr)
            end = time.monotonic() + 3
            while time.monotonic() < end:
                r, _, _ = select.select([sock], [], [], 0.1)
                if not r:
                    continue
                d, _ = sock.recvfrom(65536)
                m = lt.bdecode(d)
                if isinstance(m, dict) and m.get(b"y") == b"q":
                    sock.sendto(lt.bencode(reply(m)), daddr)  # keep answering its queries
                    continue
                if raw is not None or (isinstance(m, dict) and m.get(b"t") == t):
                    return d, m
            raise Timeout("no DHT reply to %s" % name)

        target = hashlib.sha1(b"target").digest()
        d, _ = ask("find_node", {"target": target, "want": ["n4"]})
        corpus.put("krpc_message", "real-libtorrent-reply-find_node", d)
        d, m = ask("get_peers", {"info_hash": ih})
        token = m[b"r"][b"token"]
        ask("announce_peer", {"info_hash": ih, "port": 6881, "token": token,
                              "implied_port": 0, "seed": 1})
        d, _ = ask("get_peers", {"info_hash": ih, "scrape": 1, "noseed": 0})
        corpus.put("krpc_message", "real-libtorrent-reply-get_peers-values-scrape", d)
        d, _ = ask("sample_infohashes", {"target": target})
        corpus.put("krpc_message", "real-libtorrent-reply-sample_infohashes", d)
        value = b"an immutable corpus value"
        vtarget = hashlib.sha1(lt.bencode(value)).digest()
        d, m = ask("get", {"target": vtarget})
        ask("put", {"token": m[b"r"][b"token"], "v": value})
        d, _ = ask("get", {"target": vtarget})
        corpus.put("krpc_message", "real-libtorrent-reply-get-immutable-value", d)
        if b"put-mutable" in queries:
            # libtorrent's own signed put, stored on it with its token; then read back.
            put = lt.bdecode(queries[b"put-mutable"])[b"a"]
            mtarget = hashlib.sha1(put[b"k"] + put.get(b"salt", b"")).digest()
            d, m = ask("get", {"target": mtarget})
            args = {k.decode(): v for k, v in put.items() if k not in (b"id", b"token")}
            ask("put", dict(args, token=m[b"r"][b"token"]))
            d, _ = ask("get", {"target": mtarget})
            corpus.put("krpc_message", "real-libtorrent-reply-get-mutable-value", d)
        d, _ = ask("get_peers", {}, raw=lt.bencode({b"t": b"xx", b"y": b"q",
                                                    b"q": b"get_peers",
                                                    b"a": {b"id": our_id}}))
        corpus.put("krpc_message", "real-libtorrent-reply-error-missing-argument", d)
    finally:
        sock.close()
        sessions.close()


# ---- step: tracker ----------------------------------------------------------------------

def free_port(ip="127.0.0.1"):
    # Free for TCP and UDP at once, as opentracker binds both.
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind((ip, 0))
            port = t.getsockname()[1]
            u.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port")


class HttpRelay(threading.Thread):
    """An HTTP tracker relay: records each request target and opentracker's reply body."""

    def __init__(self, upstream):
        super().__init__(daemon=True)
        records = self.records = []
        self.upstream = upstream
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                conn = http.client.HTTPConnection(*relay.upstream, timeout=5)
                try:
                    conn.request("GET", self.path)
                    resp = conn.getresponse()
                    body = resp.read()
                finally:
                    conn.close()
                records.append((self.path, body))
                self.send_response(resp.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 0.2
        self.port = self.server.server_address[1]

    def run(self):
        self.server.serve_forever(poll_interval=0.1)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class UdpRelay(threading.Thread):
    """A UDP tracker relay: records (direction, datagram) both ways."""

    def __init__(self, upstream):
        super().__init__(daemon=True)
        self.upstream = upstream
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.records = []
        self.client = None
        self.running = True

    def run(self):
        while self.running:
            r, _, _ = select.select([self.front, self.back], [], [], 0.1)
            for s in r:
                d, a = s.recvfrom(65536)
                if s is self.front:
                    self.client = a
                    self.records.append(("req", d))
                    self.back.sendto(d, self.upstream)
                elif self.client is not None:
                    self.records.append(("resp", d))
                    self.front.sendto(d, self.client)

    def stop(self):
        self.running = False
        self.join(2)
        self.front.close()
        self.back.close()


def http_get(port, target):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", target)
        return conn.getresponse().read()
    finally:
        conn.close()


def step_tracker(corpus, tmp):
    root = Path(tmp) / "tracker"
    hrelay = HttpRelay(None)
    urelay = UdpRelay(None)

    def trackers(ct):
        ct.add_tracker("http://127.0.0.1:%d/announce" % hrelay.port, 0)
        ct.add_tracker("udp://127.0.0.1:%d/announce" % urelay.port, 1)
    b = make_torrent(root / "seed", [("t.bin", 100000)], 16384, 0, extra=[trackers])
    ti = lt.torrent_info(lt.bdecode(b))
    ih = hashlib.sha1(b"corpus torrent").digest()
    ih2 = hashlib.sha1(b"corpus torrent 2").digest()
    # Debian builds opentracker with a whitelist: it is read from its chroot directory.
    otdir = root / "opentracker"
    otdir.mkdir(parents=True)
    os.chmod(otdir, 0o755)
    (otdir / "whitelist").write_text("%s\n%s\n" % (ih.hex(), ti.info_hashes().v1))
    port = free_port()
    ot = subprocess.Popen(["opentracker", "-i", "127.0.0.1", "-p", str(port), "-P", str(port),
                           "-w", "whitelist", "-d", str(otdir)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=otdir)
    hrelay.upstream = urelay.upstream = ("127.0.0.1", port)
    relays = []
    sessions = Sessions()
    try:
        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_for(up, 10, "opentracker to listen")

        def q(**kw):
            return "&".join("%s=%s" % (k, urllib.parse.quote(v, safe="") if isinstance(v, bytes)
                                       else v) for k, v in kw.items())
        base = dict(info_hash=ih, uploaded=0, downloaded=0)
        first = "/announce?" + q(**base, peer_id=b"-XX0001-aaaaaaaaaaaa", port=6881, left=0,
                                 event="started", compact=1)
        # The whitelist is loaded by a worker thread: retry until it is.
        wait_for(lambda: b"failure" not in http_get(port, first), 10, "the whitelist")
        http_get(port, "/announce?" + q(**base, peer_id=b"-XX0001-bbbbbbbbbbbb", port=6882,
                                        left=1000, event="started", compact=1))
        corpus.put("http_tracker_response", "real-opentracker-announce-compact-two-peers",
                   http_get(port, "/announce?" + q(**base, peer_id=b"-XX0001-cccccccccccc",
                                                   port=6883, left=1000, compact=1)))
        corpus.put("http_tracker_response", "real-opentracker-announce-compact-0-refused",
                   http_get(port, "/announce?" + q(**base, peer_id=b"-XX0001-dddddddddddd",
                                                   port=6884, left=1000, compact=0)))
        corpus.put("http_tracker_response", "real-opentracker-announce-numwant-0-stopped",
                   http_get(port, "/announce?" + q(**base, peer_id=b"-XX0001-aaaaaaaaaaaa",
                                                   port=6881, left=0, numwant=0,
                                                   event="stopped", compact=1)))
        corpus.put("http_tracker_response", "real-opentracker-scrape-known-and-unknown",
                   http_get(port, "/scrape?info_hash=%s&info_hash=%s"
                            % (urllib.parse.quote(ih, safe=""),
                               urllib.parse.quote(ih2, safe=""))))

        # libtorrent announcing and scraping through the relays. The torrent is hybrid:
        # libtorrent announces its v1 hash (whitelisted, and another peer is there) and its
        # truncated v2 hash (not whitelisted).
        v1 = ti.info_hashes().v1.to_bytes()
        http_get(port, "/announce?" + q(info_hash=v1, uploaded=0, downloaded=0,
                                        peer_id=b"-XX0001-ffffffffffff", port=6890,
                                        left=5000, event="started", compact=1))
        for r in (hrelay, urelay):
            r.start()
            relays.append(r)
        # ssrf_mitigation off: it refuses a localhost tracker path other than /announce.
        ses = sessions.new(announce_to_all_trackers=True, announce_to_all_tiers=True,
                           ssrf_mitigation=False)
        listen_port(ses)
        h = add(ses, ti, root / "seed", seed=True)

        def udp_actions(kind):
            return {struct.unpack(">I", d[8:12] if kind == "req" else d[:4])[0]
                    for k, d in urelay.records if k == kind and len(d) >= 12}

        def seen():
            return any(p.startswith("/announce") for p, _ in hrelay.records) and \
                1 in udp_actions("req")
        wait_for(seen, 20, "libtorrent's announces")
        time.sleep(0.5)
        h.scrape_tracker(0)
        h.scrape_tracker(1)
        try:
            wait_for(lambda: 2 in udp_actions("req") and
                     any(p.startswith("/scrape") for p, _ in hrelay.records), 5,
                     "libtorrent's scrapes")
        except Timeout as e:
            log("%s (HTTP scrapes relayed: %d)" % (e, sum(p.startswith("/scrape")
                                                         for p, _ in hrelay.records)))
        time.sleep(0.3)
        seen_http = set()
        for path, _body in list(hrelay.records):
            kind = "announce" if path.startswith("/announce") else "scrape"
            if kind not in seen_http:
                seen_http.add(kind)
                corpus.put("http_tracker_response", "real-libtorrent-http-%s-query" % kind,
                           path.split("?", 1)[1])
        names = {0: "connect", 1: "announce", 2: "scrape", 3: "error"}
        done = set()
        for k, d in list(urelay.records):
            if len(d) < 8:
                continue
            action = struct.unpack(">I", d[8:12] if k == "req" else d[0:4])[0]
            if action not in names:
                continue
            if k == "req":
                name = "real-libtorrent-udp-%s-request" % names[action]
            elif action == 1 and len(d) < 20:
                name = "real-opentracker-udp-announce-reply-truncated-not-whitelisted"
            else:
                name = "real-opentracker-udp-%s-reply" % names[action]
            if name not in done:
                done.add(name)
                corpus.put("udp_tracker_packet", name, d)
    finally:
        sessions.close()
        for r in relays:
            r.stop()
        ot.terminate()
        try:
            ot.wait(5)
        except subprocess.TimeoutExpired:
            ot.kill()
            ot.wait(5)


# ---- step: lsd --------------------------------------------------------------------------

def run_cmd(args, check=True):
    return subprocess.run(args, check=check, timeout=30, capture_output=True, text=True)


def step_lsd(corpus, tmp):
    tag = str(os.getpid())
    na, nb = "ltcapa" + tag, "ltcapb" + tag
    va, vb = "vcap%sa" % tag, "vcap%sb" % tag
    made = []
    procs = []
    try:
        for ns in (na, nb):
            run_cmd(["ip", "netns", "add", ns])
            made.append(ns)
            run_cmd(["ip", "-n", ns, "link", "set", "lo", "up"])
        run_cmd(["ip", "link", "add", va, "type", "veth", "peer", "name", vb])
        run_cmd(["ip", "link", "set", va, "netns", na])
        run_cmd(["ip", "link", "set", vb, "netns", nb])
        for ns, dev, addr in ((na, va, "10.79.0.1/24"), (nb, vb, "10.79.0.2/24")):
            run_cmd(["ip", "-n", ns, "addr", "add", addr, "dev", dev])
            run_cmd(["ip", "-n", ns, "link", "set", dev, "up"])
            run_cmd(["ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", dev])
        for ns, dev, addr in ((na, va, "fd79::1/64"), (nb, vb, "fd79::2/64")):
            run_cmd(["ip", "-n", ns, "addr", "add", addr, "dev", dev, "nodad"])
        me = [sys.executable, str(Path(__file__).resolve())]
        v1 = lsd_torrents(tmp)[0][0]  # the v1 torrent's info-hash
        recv = Proc(["ip", "netns", "exec", nb] + me + ["_lsd-recv", "10.79.0.2", vb, "20"])
        procs.append(recv)
        if recv.line(10).get("event") != "joined":
            raise RuntimeError("lsd receiver")
        send = Proc(["ip", "netns", "exec", na] + me + ["_lsd-send", "10.79.0.1", "fd79::1",
                                                          tmp, "20"])
        procs.append(send)
        got = {}
        deadline = time.monotonic() + 20
        # Over IPv4 and IPv6 (a hybrid torrent is announced by its v1 info-hash only, in the
        # same form, so only the v1 torrent's are kept).
        while len(got) < 2 and time.monotonic() < deadline:
            try:
                m = recv.line(max(0.1, deadline - time.monotonic()))
            except Timeout:
                break
            if m.get("event") == "datagram":
                d = bytes.fromhex(m["hex"])
                family = "v6" if ":" in m["from"] else "v4"
                if b"Infohash: " + v1.encode() in d:
                    got.setdefault(family, d)
        if not got:
            raise Timeout("no LSD announce from libtorrent")
        log("LSD announces received:", sorted(got))
        for name, d in sorted(got.items()):
            corpus.put("lsd_message", "real-libtorrent-announce-%s" % name, d)
    finally:
        for p in procs:
            p.stop()
        for ns in made:
            run_cmd(["ip", "netns", "del", ns], check=False)


def lsd_recv(ip, dev, seconds):
    socks = []
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("239.192.152.143", 6771))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton("239.192.152.143") + socket.inet_aton(ip))
    socks.append(s)
    try:
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s6.bind(("ff15::efc0:988f", 6771, 0, socket.if_nametoindex(dev)))
        s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                      socket.inet_pton(socket.AF_INET6, "ff15::efc0:988f")
                      + struct.pack("@I", socket.if_nametoindex(dev)))
        socks.append(s6)
    except OSError as e:
        print(json.dumps({"event": "note", "message": "no IPv6 group: %s" % e}), flush=True)
    print(json.dumps({"event": "joined"}), flush=True)
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        r, _, _ = select.select(socks, [], [], 0.2)
        for x in r:
            d, a = x.recvfrom(2048)
            print(json.dumps({"event": "datagram", "from": a[0], "hex": d.hex()}),
                  flush=True)
    for x in socks:
        x.close()


def lsd_torrents(tmp):
    """The LSD step's two torrents (a v1 and a hybrid): [(v1 info-hash hex, info, data dir)]."""
    out = []
    for i, flags in enumerate((lt.create_torrent.v1_only, 0)):
        root = Path(tmp) / "lsd" / str(i)
        b = make_torrent(root, [("lsd%d.bin" % i, 50000)], 16384, flags)
        ti = lt.torrent_info(lt.bdecode(b))
        out.append((str(ti.info_hashes().v1), ti, root))
    return out


def lsd_send(ip, ip6, tmp, seconds):
    ses = lt.session(settings(listen="%s:6881,[%s]:6881" % (ip, ip6), enable_lsd=True))
    try:
        listen_port(ses)
        for _, ti, root in lsd_torrents(tmp):
            add(ses, ti, root, seed=True)
        time.sleep(float(seconds))
    finally:
        ses.pause()
        del ses


# ---- main -------------------------------------------------------------------------------

def main(argv):
    if argv[:1] == ["_lsd-recv"]:
        return lsd_recv(*argv[1:])
    if argv[:1] == ["_lsd-send"]:
        return lsd_send(*argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(REPO / "fuzz" / "corpus"))
    p.add_argument("--only", action="append", choices=STEPS)
    p.add_argument("--keep-going", action="store_true", help="run the other steps on failure")
    args = p.parse_args(argv)
    corpus = Corpus(args.out)
    failed = []
    with tempfile.TemporaryDirectory(prefix="lt-corpus-", dir="/dev/shm") as tmp:
        os.chmod(tmp, 0o755)
        for step in args.only or STEPS:
            log("step", step)
            try:
                globals()["step_" + step](corpus, tmp)
            except Exception as e:  # noqa: BLE001 - reported, then the next step or exit
                log("step %s failed: %r" % (step, e))
                failed.append(step)
                if not args.keep_going:
                    break
    for target, name, n in corpus.written:
        print("%-22s %-55s %6d" % (target, name, n))
    if failed:
        print("failed steps:", " ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
