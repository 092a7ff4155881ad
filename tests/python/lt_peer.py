#!/usr/bin/python3
"""A libtorrent-rasterbar 2.0 peer for lt's interop tests and benches.

Run with Debian's /usr/bin/python3 (python3-libtorrent). Two roles:

    lt_peer.py seed     --torrent T --save DIR [options]   # seeds DIR/<name> until SIGTERM
    lt_peer.py download --torrent T --save DIR [options]   # downloads into DIR/<name>

Options: --listen IP:PORT (default 127.0.0.1:0), --peer IP:PORT (repeatable; dialled again
until connected, as the other side may start later), --encryption forced|enabled|disabled
(forced means RC4 on the whole stream), --transport tcp|utp|both (default tcp), --upload-limit BYTES/S, --download-limit BYTES/S,
--seed-mode (a seeder skips the check of its data), --keep-seeding (a downloader keeps
seeding after it finishes), --max-time SECONDS (give up with exit status 2),
--progress-interval SECONDS, --ssl-cert FILE --ssl-key FILE --ssl-dh FILE (an SSL torrent's
certificate, key and Diffie-Hellman parameters: the peer also listens for SSL on a free
port, and "listening" carries "ssl_port").

Machine-readable lines go to stdout, one JSON object each:

    {"event":"listening","port":N[,"ssl_port":M]}
    {"event":"ready","state":"seeding"|"downloading","pieces":N,"have":N}
    {"event":"progress","progress":0.451,"rate":123456,"peers":3,"downloaded":N,"uploaded":N}
    {"event":"finished","seconds":S,"total_bytes":N,"downloaded":N,"mb_per_s":R}
    {"event":"exit","uploaded":N,"downloaded":N,"reason":"finished"|"signal"}
    {"event":"error","message":"..."}

A downloader exits 0 by itself once finished (unless --keep-seeding); every role exits 0 on
SIGTERM/SIGINT and 2 when --max-time passes. Alerts worth reading on failure (errors,
disconnects, tracker replies) go to stderr.
"""

import argparse
import json
import signal
import sys
import time

import libtorrent as lt


# Alerts shown on stderr, where a failing test prints them.
LOGGED_ALERTS = (
    lt.peer_connect_alert, lt.incoming_connection_alert, lt.peer_disconnected_alert,
    lt.peer_error_alert, lt.peer_ban_alert, lt.hash_failed_alert, lt.tracker_error_alert,
    lt.tracker_reply_alert, lt.tracker_warning_alert, lt.torrent_error_alert,
    lt.file_error_alert,
)


def emit(**fields):
    print(json.dumps(fields, separators=(",", ":")), flush=True)


def log(*parts):
    print("lt_peer:", *parts, file=sys.stderr, flush=True)


def parse_addr(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected IP:PORT, got %r" % text)
    return (host.strip("[]"), int(port))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("role", choices=["seed", "download"])
    p.add_argument("--torrent", required=True)
    p.add_argument("--save", required=True, help="save path (the torrent's files are under it)")
    p.add_argument("--listen", default="127.0.0.1:0", type=parse_addr)
    p.add_argument("--peer", action="append", default=[], type=parse_addr)
    p.add_argument("--encryption", choices=["forced", "enabled", "disabled"], default="enabled")
    p.add_argument("--transport", choices=["tcp", "utp", "both"], default="tcp",
                   help="lt speaks TCP only so far; libtorrent would try uTP first")
    p.add_argument("--upload-limit", type=int, default=0, help="bytes/s, 0 = unlimited")
    p.add_argument("--download-limit", type=int, default=0, help="bytes/s, 0 = unlimited")
    p.add_argument("--seed-mode", action="store_true", help="trust the data, skip the check")
    p.add_argument("--keep-seeding", action="store_true")
    p.add_argument("--max-time", type=float, default=600.0)
    p.add_argument("--progress-interval", type=float, default=0.5)
    p.add_argument("--ssl-cert")
    p.add_argument("--ssl-key")
    p.add_argument("--ssl-dh", default="")
    return p.parse_args(argv)


def settings(args):
    s = lt.high_performance_seed()
    ip, port = args.listen
    host = "[%s]" % ip if ":" in ip else ip
    s.update({
        "listen_interfaces": "%s:%d" % (host, port)
        + (",%s:0s" % host if args.ssl_cert else ""),
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_lsd": False,
        "enable_dht": False,
        "allow_multiple_connections_per_ip": True,
        "tick_interval": 100,
        "smooth_connects": False,
        "connection_speed": 500,
        "peer_connect_timeout": 3,
        "min_reconnect_time": 1,
        # Every peer is on loopback: announce it as it is.
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.peer_notification
        | lt.alert.category_t.connect_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.tracker_notification
        | lt.alert.category_t.storage_notification,
    })
    tcp = args.transport in ("tcp", "both")
    utp = args.transport in ("utp", "both")
    s.update({
        "enable_incoming_tcp": tcp,
        "enable_outgoing_tcp": tcp,
        "enable_incoming_utp": utp,
        "enable_outgoing_utp": utp,
    })
    if args.encryption == "forced":
        s.update({
            "out_enc_policy": lt.enc_policy.forced,
            "in_enc_policy": lt.enc_policy.forced,
            "allowed_enc_level": lt.enc_level.rc4,
            "prefer_rc4": True,
        })
    elif args.encryption == "disabled":
        s.update({
            "out_enc_policy": lt.enc_policy.disabled,
            "in_enc_policy": lt.enc_policy.disabled,
        })
    else:
        s.update({
            "out_enc_policy": lt.enc_policy.enabled,
            "in_enc_policy": lt.enc_policy.enabled,
            "allowed_enc_level": lt.enc_level.both,
        })
    return s


def main(argv):
    args = parse_args(argv)
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    started = time.monotonic()
    deadline = started + args.max_time
    ses = lt.session(settings(args))

    ti = lt.torrent_info(args.torrent)
    p = lt.add_torrent_params()
    p.ti = ti
    p.save_path = args.save
    # Not auto-managed: the queue manager would start it paused until its next tick, and a
    # paused torrent refuses connections.
    p.flags &= ~lt.torrent_flags.auto_managed
    p.flags &= ~lt.torrent_flags.paused
    if args.seed_mode:
        p.flags |= lt.torrent_flags.seed_mode
    h = ses.add_torrent(p)
    if args.ssl_cert:
        h.set_ssl_certificate(args.ssl_cert, args.ssl_key, args.ssl_dh)
    added = time.monotonic()
    if args.upload_limit > 0:
        h.set_upload_limit(args.upload_limit)
    if args.download_limit > 0:
        h.set_download_limit(args.download_limit)

    targets = {addr: False for addr in args.peer}  # addr -> connected at least once
    listening = False
    ssl_port = None
    ready = False
    finished = False
    has_trackers = any(True for _ in ti.trackers())
    last_dial = 0.0
    last_reannounce = 0.0
    last_progress = 0.0
    status = 0
    reason = "signal"

    while True:
        now = time.monotonic()
        if stop["signal"] is not None:
            reason = "signal"
            break
        if now > deadline:
            emit(event="error", message="max time of %.0f s passed" % args.max_time)
            status, reason = 2, "timeout"
            break

        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_succeeded_alert):
                if a.socket_type == lt.socket_type_t.tcp_ssl:
                    ssl_port = a.port
                if not listening and (ssl_port is not None or not args.ssl_cert):
                    listening = True
                    if ssl_port is None:
                        emit(event="listening", port=ses.listen_port())
                    else:
                        emit(event="listening", port=ses.listen_port(), ssl_port=ssl_port)
            elif isinstance(a, lt.listen_failed_alert):
                emit(event="error", message=a.message())
                log(a.message())
            elif isinstance(a, LOGGED_ALERTS):
                log(a.message())

        st = h.status()
        if listening and not ready and not st.paused and st.state in (
                lt.torrent_status.seeding, lt.torrent_status.downloading,
                lt.torrent_status.finished):
            ready = True
            emit(event="ready", state="seeding" if st.is_seeding else "downloading",
                 pieces=ti.num_pieces(), have=st.num_pieces)
            if args.role == "seed" and not st.is_seeding:
                emit(event="error", message="seed: data incomplete (%d/%d pieces)"
                     % (st.num_pieces, ti.num_pieces()))
                status, reason = 1, "incomplete"
                break

        if ready and targets and now - last_dial >= 0.5:
            last_dial = now
            connected = set()
            for pi in h.get_peer_info():
                connected.add((pi.ip[0], pi.ip[1]))
            for addr in list(targets):
                if addr in connected:
                    targets[addr] = True
                elif not targets[addr] or (args.role == "download" and not st.is_seeding):
                    h.connect_peer(addr)

        # A downloader without peers asks the tracker again soon (peers may register after
        # its first announce); a seeder waits to be found.
        if (ready and has_trackers and args.role == "download" and not st.is_seeding
                and st.num_peers == 0 and now - last_reannounce >= 2.0):
            last_reannounce = now
            h.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)

        if ready and now - last_progress >= args.progress_interval:
            last_progress = now
            emit(event="progress", progress=round(st.progress, 4), rate=st.download_payload_rate,
                 peers=st.num_peers, downloaded=st.total_payload_download,
                 uploaded=st.total_payload_upload)

        if args.role == "download" and ready and not finished and st.is_seeding:
            finished = True
            seconds = now - added
            # libtorrent 2.0 may hash a piece from its store buffer before writing it: a
            # seeding state does not mean the file holds the data. Release the files (a
            # fence behind every write of the torrent) so a test reading the file next
            # sees what libtorrent received.
            flush_files(ses, h)
            total = ti.total_size()
            emit(event="finished", seconds=round(seconds, 4), total_bytes=total,
                 downloaded=st.total_payload_download,
                 mb_per_s=round(st.total_payload_download / 1e6 / max(seconds, 1e-9), 2))
            if not args.keep_seeding:
                reason = "finished"
                break

        ses.wait_for_alert(50)

    st = h.status()
    emit(event="exit", uploaded=st.total_payload_upload, downloaded=st.total_payload_download,
         reason=reason)
    # Skip the session's tracker 'stopped' wait: tests stop peers by signal and want them gone.
    sys.stdout.flush()
    sys.stderr.flush()
    return status


def flush_files(ses, h, timeout=30.0):
    """Waits until every block the torrent received is in its files."""
    h.flush_cache()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for a in ses.pop_alerts():
            if isinstance(a, lt.cache_flushed_alert):
                return
            if isinstance(a, LOGGED_ALERTS):
                log(a.message())
        ses.wait_for_alert(50)
    emit(event="error", message="files not flushed after %.0f s" % timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
