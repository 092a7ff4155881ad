//! Transfer rates and token buckets.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back a rate looks.
const WINDOW: Duration = Duration::from_secs(3);

/// Samples closer together than this are merged (the newest moves forward), so a rate holds
/// at most `WINDOW / MIN_SPACING + 2` samples however often it is ticked: housekeeping runs
/// at every tick interval, and also whenever an added torrent or a finished piece pulls
/// every timer in.
const MIN_SPACING: Duration = Duration::from_millis(100);

/// A byte counter with a rate over the last few seconds, sampled at every tick.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rate {
    total: u64,
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    pub(crate) const fn add(&mut self, bytes: u64) {
        self.total = self.total.saturating_add(bytes);
    }

    pub(crate) const fn total(&self) -> u64 {
        self.total
    }

    /// Whether nothing was counted since the oldest sample: the rate is zero and ticking
    /// would only add samples of the same total. A rate whose ticks stop while idle and
    /// start again later measures from at most one window back (see [`Rate::tick`]).
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.samples.front(), Some(&(_, b)) if b == self.total)
    }

    /// Records a sample; call at every tick (or, while [`Rate::is_idle`], not).
    pub(crate) fn tick(&mut self, now: Instant) {
        let n = self.samples.len();
        let merge = n >= 2
            && self
                .samples
                .get(n - 2)
                .is_some_and(|&(t, _)| now.saturating_duration_since(t) < MIN_SPACING);
        if merge && let Some(newest) = self.samples.back_mut() {
            *newest = (now, self.total);
        } else {
            self.samples.push_back((now, self.total));
        }
        while self
            .samples
            .front()
            .is_some_and(|&(t, _)| now.saturating_duration_since(t) > WINDOW)
            && self.samples.len() > 2
        {
            self.samples.pop_front();
        }
        // After ticks skipped while idle the oldest sample may lie before the window: what
        // came since is counted from the window's start, not spread over the whole gap.
        if self.samples.len() >= 2
            && let Some(start) = now.checked_sub(WINDOW)
            && let Some(front) = self.samples.front_mut()
            && front.0 < start
        {
            front.0 = start;
        }
    }

    /// While idle, drops all but the newest sample and the spare room: a torrent asleep
    /// in a session of ten thousand keeps one sample a rate, not a window's worth.
    pub(crate) fn compact(&mut self) {
        if self.is_idle() {
            let keep = self.samples.len().saturating_sub(1);
            self.samples.drain(..keep);
            self.samples.shrink_to_fit();
        }
    }

    /// Samples held (for tests of who ticks a rate how often).
    #[cfg(test)]
    pub(crate) fn samples_len(&self) -> usize {
        self.samples.len()
    }

    /// Bytes per second over the window.
    pub(crate) fn rate(&self) -> u64 {
        let (Some(&(t0, b0)), Some(&(t1, b1))) = (self.samples.front(), self.samples.back()) else {
            return 0;
        };
        if b1 == b0 {
            return 0;
        }
        let secs = t1.saturating_duration_since(t0).as_secs_f64();
        if secs <= 0.0 {
            return 0;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let r = (b1.saturating_sub(b0) as f64 / secs) as u64;
        r
    }
}

/// A token bucket: `rate` bytes per second with one second of burst; a rate of 0 is
/// unlimited.
#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    rate: u64,
    tokens: i64,
    last: Option<Instant>,
}

impl Bucket {
    pub(crate) const fn new(rate: u64) -> Self {
        Self {
            rate,
            tokens: 0,
            last: None,
        }
    }

    pub(crate) const fn set_rate(&mut self, rate: u64) {
        self.rate = rate;
    }

    pub(crate) const fn rate(&self) -> u64 {
        self.rate
    }

    pub(crate) fn refill(&mut self, now: Instant) {
        if self.rate == 0 {
            return;
        }
        let rate = i64::try_from(self.rate).unwrap_or(i64::MAX);
        let Some(last) = self.last else {
            self.last = Some(now);
            self.tokens = rate / 10;
            return;
        };
        let ms = i64::try_from(now.saturating_duration_since(last).as_millis()).unwrap_or(i64::MAX);
        self.tokens = self
            .tokens
            .saturating_add(rate.saturating_mul(ms) / 1000)
            .min(rate);
        self.last = Some(now);
    }

    /// Whether there is something to spend.
    pub(crate) const fn available(&self) -> bool {
        self.rate == 0 || self.tokens > 0
    }

    pub(crate) fn spend(&mut self, bytes: u64) {
        if self.rate != 0 {
            self.tokens = self
                .tokens
                .saturating_sub(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }
}

/// Whether `ip` is on the local network for `ignore_limits_on_local_network`: loopback,
/// private (RFC 1918, RFC 4193 unique local) or link-local, or an IPv4-mapped one.
pub(crate) fn is_local_network(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        std::net::IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_local_network(v4.into());
            }
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Bytes a block of `payload` bytes costs a rate limit. With `ip_overhead`
/// (`rate_limit_ip_overhead`) that is the PIECE message's 13-byte header and the
/// estimated packet headers too: TCP/IP (40 bytes a 1460-byte segment over IPv4, 60 a
/// 1440-byte one over IPv6) or uTP/UDP/IP (48 or 68 bytes a 1400-byte packet).
pub(crate) fn wire_cost(payload: u32, ipv6: bool, utp: bool, ip_overhead: bool) -> u64 {
    let payload = u64::from(payload);
    if !ip_overhead {
        return payload;
    }
    let (mss, header) = match (utp, ipv6) {
        (false, false) => (1460, 40),
        (false, true) => (1440, 60),
        (true, false) => (1400, 48),
        (true, true) => (1400, 68),
    };
    let msg = payload + 13;
    msg + msg.div_ceil(mss) * header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_networks() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.0.9",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:192.168.0.1",
        ] {
            assert!(is_local_network(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "::ffff:1.2.3.4"] {
            assert!(!is_local_network(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn a_rate_ticked_often_keeps_few_samples() {
        let start = Instant::now();
        let mut r = Rate::default();
        // Ten thousand ticks within one second (an engine adding ten thousand torrents runs
        // its housekeeping at each), 1 KB a tick.
        for i in 0..10_000u64 {
            r.add(1000);
            r.tick(start + Duration::from_micros(i * 100));
        }
        let bound = usize::try_from(WINDOW.as_millis() / MIN_SPACING.as_millis()).unwrap() + 2;
        assert!(r.samples.len() <= bound, "{} samples", r.samples.len());
        // 10 MB over 0.9999 s.
        assert!((9_990_000..=10_010_000).contains(&r.rate()), "{}", r.rate());
        // Later, the window slides on as before.
        for s in 1..=10u64 {
            r.tick(start + Duration::from_secs(s));
        }
        assert!(r.samples.len() <= bound, "{} samples", r.samples.len());
        assert_eq!(r.rate(), 0);
    }

    /// A compacted idle rate keeps one sample, stays idle, and measures again from there.
    #[test]
    fn an_idle_rate_compacts_to_one_sample() {
        let t0 = Instant::now();
        let mut r = Rate::default();
        r.tick(t0);
        r.add(1000);
        r.tick(t0 + Duration::from_millis(100));
        r.compact();
        assert_eq!(r.samples_len(), 2, "a rate that is not idle is left alone");
        assert!(!r.is_idle());
        let t1 = t0 + Duration::from_secs(10);
        r.tick(t1);
        r.tick(t1 + Duration::from_millis(200));
        assert!(r.is_idle());
        r.compact();
        assert_eq!(r.samples_len(), 1);
        assert!(r.is_idle());
        assert_eq!(r.rate(), 0);
        r.add(3000);
        r.tick(t1 + Duration::from_secs(1));
        assert!(r.rate() > 0);
    }

    #[test]
    fn a_rate_not_ticked_while_idle_measures_from_the_window_start() {
        let start = Instant::now();
        let mut r = Rate::default();
        r.tick(start);
        assert!(r.is_idle());
        // An hour without ticks (and without bytes), then 3 MB counted and one tick: 1 MB/s
        // over the window, not 3 MB over the hour.
        r.add(3_000_000);
        assert!(!r.is_idle());
        r.tick(start + Duration::from_secs(3600));
        assert_eq!(r.rate(), 1_000_000);
    }

    #[test]
    fn overhead_of_a_block() {
        assert_eq!(wire_cost(16384, false, false, false), 16384);
        // 16,397 bytes in 12 TCP segments of 40 header bytes.
        assert_eq!(wire_cost(16384, false, false, true), 16397 + 12 * 40);
        assert_eq!(wire_cost(16384, true, false, true), 16397 + 12 * 60);
        assert_eq!(wire_cost(16384, false, true, true), 16397 + 12 * 48);
    }
}
