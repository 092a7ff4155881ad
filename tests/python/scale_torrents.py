#!/usr/bin/python3
"""libtorrent's side of `cargo xtask bench scale` (issue 19); the twin of lt-scale.

Run with Debian's /usr/bin/python3 (python3-libtorrent 2.0). Two roles:

    scale_torrents.py torrents DIR COUNT SETTLE_S IDLE_S
    scale_torrents.py seed TORRENT DATA_DIR CONNECTIONS PROFILE    # default | high-performance

`torrents`: starts a session from libtorrent's default settings (127.0.0.1, no DHT, LSD,
UPnP or NAT-PMP), waits 2 s and prints {"event":"base"}, waits 1 s, then adds COUNT
torrents from DIR/torrents (tNNNNN.torrent, read and parsed inside the timed loop) with
`async_add_torrent`, in seed mode, auto-managed (default active limits), saved under
DIR/data. It prints {"event":"added","add_s":..,"ready_s":..}: add_s is the time until the
add_torrent_alert of the last one arrived, ready_s until no torrent is in a checking state
(polled every 100 ms). Then it only drains alerts (one wait of up to 1 s at a time): after
SETTLE_S it prints {"event":"settled"}, after IDLE_S more {"event":"idle_done"}, then a
summary of the torrents' states and the tracker replies seen, and exits.

`seed`: seeds TORRENT from DATA_DIR (checked first, not seed mode) with connections_limit
raised to CONNECTIONS and allow_multiple_connections_per_ip; prints
{"event":"listening","port":N}, {"event":"ready"} once seeding, then
{"event":"status","uploaded":N,"peers":N} each second until killed.

The bench samples /proc/PID when a line arrives.
"""

import json
import os
import sys
import time

import libtorrent as lt


def emit(**fields):
    print(json.dumps(fields, separators=(",", ":")), flush=True)


def base_settings(s):
    s.update({
        "listen_interfaces": "127.0.0.1:0",
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_lsd": False,
        "enable_dht": False,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.tracker_notification,
    })
    return s


STATE_NAMES = {
    lt.torrent_status.checking_files: "checking_files",
    lt.torrent_status.checking_resume_data: "checking_resume_data",
    lt.torrent_status.downloading_metadata: "downloading_metadata",
    lt.torrent_status.downloading: "downloading",
    lt.torrent_status.finished: "finished",
    lt.torrent_status.seeding: "seeding",
}
CHECKING = (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)


def torrents(directory, count, settle, idle):
    ses = lt.session(base_settings(lt.default_settings()))
    time.sleep(2)
    emit(event="base")
    time.sleep(1)

    counts = {"replies": 0, "errors": 0, "added": 0, "failed": 0}

    def drain():
        for a in ses.pop_alerts():
            if isinstance(a, lt.add_torrent_alert):
                if a.error.value():
                    counts["failed"] += 1
                else:
                    counts["added"] += 1
            elif isinstance(a, lt.tracker_reply_alert):
                counts["replies"] += 1
            elif isinstance(a, lt.tracker_error_alert):
                counts["errors"] += 1

    save = os.path.join(directory, "data")
    started = time.monotonic()
    for i in range(count):
        p = lt.add_torrent_params()
        p.ti = lt.torrent_info(os.path.join(directory, "torrents", "t%05d.torrent" % i))
        p.save_path = save
        p.flags |= lt.torrent_flags.seed_mode | lt.torrent_flags.auto_managed
        ses.async_add_torrent(p)
        if i % 500 == 499:
            # The alert queue holds 2000 by default: keep the add alerts from being dropped.
            drain()
    deadline = started + 600
    while counts["added"] + counts["failed"] < count:
        if time.monotonic() > deadline:
            emit(event="error", message="only %d of %d added after 600 s"
                 % (counts["added"], count))
            return 1
        ses.wait_for_alert(100)
        drain()
    add_s = time.monotonic() - started
    if counts["failed"]:
        emit(event="error", message="%d torrents failed to add" % counts["failed"])
        return 1
    while True:
        checking = ses.get_torrent_status(lambda st: st.state in CHECKING, 0)
        if not checking:
            break
        if time.monotonic() > deadline:
            emit(event="error", message="%d torrents still checking after 600 s"
                 % len(checking))
            return 1
        time.sleep(0.1)
        drain()
    ready_s = time.monotonic() - started
    emit(event="added", torrents=count, add_s=add_s, ready_s=ready_s)

    settled_at = time.monotonic() + settle
    idle_at = settled_at + idle
    settled = False
    while True:
        now = time.monotonic()
        if not settled and now >= settled_at:
            settled = True
            emit(event="settled")
        if now >= idle_at:
            emit(event="idle_done")
            break
        nxt = idle_at if settled else settled_at
        ses.wait_for_alert(max(1, int(min(nxt - now, 1.0) * 1000)))
        drain()
    states = {}
    paused = 0
    for st in ses.get_torrent_status(lambda st: True, 0):
        name = STATE_NAMES.get(st.state, str(st.state))
        states[name] = states.get(name, 0) + 1
        paused += 1 if st.paused else 0
    emit(event="summary", states=states, paused=paused, tracker_replies=counts["replies"],
         tracker_errors=counts["errors"])
    return 0


def seed(torrent, data, connections, profile):
    if profile == "default":
        s = lt.default_settings()
    elif profile == "high-performance":
        s = lt.high_performance_seed()
    else:
        raise SystemExit("unknown profile %r" % profile)
    base_settings(s)
    s.update({
        "connections_limit": max(s["connections_limit"], connections),
        "allow_multiple_connections_per_ip": True,
        # Accept a burst of connections as lt does (its listen backlog is 1024).
        "listen_queue_size": max(s["listen_queue_size"], 1024),
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
    })
    ses = lt.session(s)
    # libtorrent's "local" peer class (loopback and LAN addresses) ignores the unchoke
    # slots, so every loopback leecher would be unchoked at once, and counts each
    # connection 1.5 times against the connection limits (1300 would admit 866); make them
    # count as remote peers do (and as lt counts every peer).
    local = ses.get_peer_class(ses.local_peer_class_id)
    local["ignore_unchoke_slots"] = False
    local["connection_limit_factor"] = 100
    ses.set_peer_class(ses.local_peer_class_id, local)
    port = None
    deadline = time.monotonic() + 30
    while port is None:
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_succeeded_alert) and a.socket_type == lt.socket_type_t.tcp:
                port = ses.listen_port()
        if time.monotonic() > deadline:
            emit(event="error", message="not listening after 30 s")
            return 1
        ses.wait_for_alert(50)
    emit(event="listening", port=port)
    ti = lt.torrent_info(torrent)
    p = lt.add_torrent_params()
    p.ti = ti
    p.save_path = data
    p.flags &= ~lt.torrent_flags.auto_managed
    p.flags &= ~lt.torrent_flags.paused
    h = ses.add_torrent(p)
    h.set_max_connections(connections)
    deadline = time.monotonic() + 300
    while True:
        st = h.status()
        if st.errc.value():
            emit(event="error", message=st.errc.message())
            return 1
        if st.state not in CHECKING and st.state != lt.torrent_status.downloading_metadata:
            if not st.is_seeding:
                emit(event="error", message="the data is incomplete")
                return 1
            break
        if time.monotonic() > deadline:
            emit(event="error", message="still checking after 300 s")
            return 1
        ses.wait_for_alert(100)
        ses.pop_alerts()
    emit(event="ready")
    nxt = time.monotonic() + 1
    while True:
        ses.wait_for_alert(max(1, int((nxt - time.monotonic()) * 1000)))
        ses.pop_alerts()
        if time.monotonic() >= nxt:
            nxt += 1
            st = h.status()
            emit(event="status", uploaded=st.total_payload_upload, peers=st.num_peers,
                 uploads=st.num_uploads)


def main(argv):
    if len(argv) == 5 and argv[0] == "torrents":
        return torrents(argv[1], int(argv[2]), float(argv[3]), float(argv[4]))
    if len(argv) == 5 and argv[0] == "seed":
        return seed(argv[1], argv[2], int(argv[3]), argv[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
