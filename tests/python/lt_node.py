#!/usr/bin/python3
"""A libtorrent-rasterbar 2.0 peer for lt's magnet, DHT and transport interop tests.

    lt_node.py seed     --torrent T --save DIR [options]
    lt_node.py download (--torrent T | --magnet URI) --save DIR [options]

Options: --listen IP:PORT (default 127.0.0.1:0), --peer IP:PORT (repeatable, re-dialled
until connected), --transport tcp|utp|both (default tcp), --dht (run a DHT node on the
listen address; loopback settings from shared/INTEROP.md), --dht-node IP:PORT (repeatable:
nodes to add), --max-time SECONDS (exit 2 when it passes), --super-seed (a seed offers one
piece at a time, BEP 16), --ssl-cert FILE --ssl-key FILE (an SSL torrent's certificate and
key; with them the node also listens for SSL on a free port, TCP and uTP, and its
"listening" line carries "ssl_port").

One JSON object a line on stdout:

    {"event":"listening","port":N[,"ssl_port":M]}
    {"event":"ready"}                       (a seed: checked and seeding; a download: added)
    {"event":"metadata"}                    (a magnet's metadata arrived)
    {"event":"finished","seconds":S}
    {"event":"error","message":"..."}

A download exits 0 once finished; a seed runs until SIGTERM (exit 0) or --max-time.
"""

import argparse
import json
import signal
import sys
import time

import libtorrent as lt


def emit(**fields):
    print(json.dumps(fields, separators=(",", ":")), flush=True)


def parse_addr(text):
    host, _, port = text.rpartition(":")
    return (host.strip("[]"), int(port))


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["seed", "download"])
    p.add_argument("--torrent")
    p.add_argument("--magnet")
    p.add_argument("--save", required=True)
    p.add_argument("--listen", default="127.0.0.1:0", type=parse_addr)
    p.add_argument("--peer", action="append", default=[], type=parse_addr)
    p.add_argument("--transport", choices=["tcp", "utp", "both"], default="tcp")
    p.add_argument("--dht", action="store_true")
    p.add_argument("--dht-node", action="append", default=[], type=parse_addr)
    p.add_argument("--max-time", type=float, default=120.0)
    p.add_argument("--super-seed", action="store_true", help="seed with BEP 16 super seeding")
    p.add_argument("--upload-limit", type=int, default=0, help="the torrent's upload limit, bytes/s")
    p.add_argument("--ssl-cert", help="our certificate for an SSL torrent (PEM)")
    p.add_argument("--ssl-key", help="its private key (PEM)")
    p.add_argument("--ssl-dh", help="Diffie-Hellman parameters (PEM) libtorrent 2.0 asks for")
    args = p.parse_args(argv)

    stop = {"signal": None}
    signal.signal(signal.SIGTERM, lambda s, f: stop.__setitem__("signal", s))
    signal.signal(signal.SIGINT, lambda s, f: stop.__setitem__("signal", s))

    tcp = args.transport in ("tcp", "both")
    utp = args.transport in ("utp", "both")
    ip, port = args.listen
    s = lt.default_settings()
    s.update({
        "listen_interfaces": "%s:%d" % (ip, port)
        + (",%s:0s" % ip if args.ssl_cert else ""),
        "enable_upnp": False, "enable_natpmp": False, "enable_lsd": False,
        "enable_dht": args.dht,
        "dht_bootstrap_nodes": "",
        "allow_multiple_connections_per_ip": True,
        "tick_interval": 100, "smooth_connects": False, "connection_speed": 500,
        "peer_connect_timeout": 3, "min_reconnect_time": 1,
        "enable_incoming_tcp": tcp, "enable_outgoing_tcp": tcp,
        "enable_incoming_utp": utp, "enable_outgoing_utp": utp,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification,
    })
    if args.ssl_cert:
        s["alert_mask"] |= lt.alert.category_t.peer_notification
    if args.dht:
        s.update({
            "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
            "dht_ignore_dark_internet": False, "dht_prefer_verified_node_ids": False,
            "dht_enforce_node_id": False, "dht_announce_interval": 5,
            "dht_aggressive_lookups": True,
        })
    ses = lt.session(s)
    for n in args.dht_node:
        ses.add_dht_node(n)

    if args.magnet:
        atp = lt.parse_magnet_uri(args.magnet)
    else:
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = args.save
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    if args.role == "seed":
        atp.flags |= lt.torrent_flags.seed_mode
    if args.super_seed:
        atp.flags |= lt.torrent_flags.super_seeding
    h = ses.add_torrent(atp)
    if args.ssl_cert:
        h.set_ssl_certificate(args.ssl_cert, args.ssl_key, args.ssl_dh or "")
    if args.upload_limit:
        h.set_upload_limit(args.upload_limit)
    started = time.monotonic()
    deadline = started + args.max_time
    ssl_port = None
    while args.ssl_cert and ssl_port is None:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_succeeded_alert) and "ssl" in str(a.socket_type):
                ssl_port = a.port
        if time.monotonic() > deadline:
            emit(event="error", message="no SSL listen socket")
            return 2
    if ssl_port is None:
        emit(event="listening", port=ses.listen_port())
    else:
        emit(event="listening", port=ses.listen_port(), ssl_port=ssl_port)
    ready = False
    metadata = False
    last_dial = 0.0
    while stop["signal"] is None:
        now = time.monotonic()
        if now > deadline:
            emit(event="error", message="max time passed")
            return 2
        for a in ses.pop_alerts():
            if isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                emit(event="error", message=a.message())
            if isinstance(a, lt.peer_disconnected_alert) and args.ssl_cert:
                emit(event="peer_error", message=a.message())
        st = h.status()
        if not ready and (args.role == "download" or st.is_seeding):
            ready = True
            emit(event="ready")
        if st.has_metadata and not metadata:
            metadata = True
            emit(event="metadata")
        if now - last_dial >= 0.5:
            last_dial = now
            for n in args.dht_node:
                ses.add_dht_node(n)
            connected = {(pi.ip[0], pi.ip[1]) for pi in h.get_peer_info()}
            for a in args.peer:
                if a not in connected:
                    h.connect_peer(a)
            if args.dht:
                h.force_dht_announce()
        if args.role == "download" and st.is_seeding:
            emit(event="finished", seconds=round(now - started, 3))
            return 0
        ses.wait_for_alert(50)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
