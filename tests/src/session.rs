//! Helpers for tests that drive `lt_session` in-process: test bytes, loopback settings and
//! a bounded wait on a torrent's status.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use lt_session::{AlertCategory, SessionSettings, TorrentHandle, TorrentStatus};

/// `len` pseudo-random bytes (xorshift64 from `seed`), the same for the same arguments.
#[must_use]
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

/// A session on 127.0.0.1 (any port) with every alert, several connections per IP (every
/// peer of a loopback test shares one), a 100 ms tick, a 2 s stop announce and no DHT.
#[must_use]
pub fn loopback_settings() -> SessionSettings {
    let mut s = SessionSettings {
        listen_interfaces: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
        alert_mask: AlertCategory::ALL,
        enable_dht: false,
        ..SessionSettings::default()
    };
    s.engine.allow_multiple_connections_per_ip = true;
    s.engine.tick_interval = Duration::from_millis(100);
    s.engine.stop_tracker_timeout = Duration::from_secs(2);
    s
}

/// Waits up to `secs` for `done` to hold for the torrent's status.
///
/// # Panics
/// When it does not in time (naming `what` and the last status), or the handle is gone.
pub fn wait_for(
    handle: &TorrentHandle,
    secs: u64,
    what: &str,
    done: impl Fn(&TorrentStatus) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = handle
            .status()
            .unwrap_or_else(|e| panic!("status while waiting for {what}: {e}"));
        if done(&s) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
