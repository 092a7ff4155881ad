//! Deterministic simulation: two connections over in-memory links with a virtual clock.
//!
//! After quinn-proto's `Pair`: a seeded RNG (`LT_SIM_SEED` replays a run), links with
//! delay, jitter, loss, reordering and an optional rate-limited bottleneck queue, a `step()`
//! that jumps to the next event and a bounded `drive()` that fails on livelock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use lt_utp::{CloseReason, Config, Connection, Event};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

fn seed() -> u64 {
    std::env::var("LT_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed)
}

#[derive(Clone, Copy)]
struct LinkSpec {
    delay: Duration,
    jitter: Duration,
    /// Loss probability in parts per 1000.
    loss_permille: u32,
    /// Bottleneck rate in bytes per second (`None`: infinite).
    rate: Option<u64>,
    /// Bottleneck queue in bytes (tail drop).
    queue: usize,
    /// Largest datagram the link carries; larger ones are dropped (no fragmentation).
    mtu: usize,
    /// Of every `.0` datagrams, the last `.1` are dropped (a full receive buffer, a router's
    /// queue overflowing).
    burst_loss: Option<(u64, u64)>,
    /// Selective acks are cut out of every datagram, as from a peer that sends none
    /// (rqbit's uTP).
    strip_sack: bool,
    /// Of every `.0` datagrams, the last `.1` wait `.2` longer (a delay spike: a route
    /// change, a burst of cross traffic); the link stays first in, first out, so the
    /// datagrams behind them wait too.
    spike: Option<(u64, u64, Duration)>,
}

impl LinkSpec {
    fn simple(delay_ms: u64, jitter_ms: u64, loss_permille: u32) -> Self {
        Self {
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::from_millis(jitter_ms),
            loss_permille,
            rate: None,
            queue: usize::MAX,
            mtu: usize::MAX,
            burst_loss: None,
            strip_sack: false,
            spike: None,
        }
    }

    fn with_spikes(self, every: u64, len: u64, extra_ms: u64) -> Self {
        Self {
            spike: Some((every, len, Duration::from_millis(extra_ms))),
            ..self
        }
    }

    fn with_burst_loss(self, every: u64, len: u64) -> Self {
        Self {
            burst_loss: Some((every, len)),
            ..self
        }
    }

    fn without_sack(self) -> Self {
        Self {
            strip_sack: true,
            ..self
        }
    }

    fn with_mtu(self, mtu: usize) -> Self {
        Self { mtu, ..self }
    }
}

struct Link {
    spec: LinkSpec,
    busy_until: Instant,
    /// The latest arrival scheduled (for first in, first out under spikes).
    last_arrival: Instant,
    order: u64,
    queue: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>>,
    /// (send time, queuing wait) of every packet that entered the bottleneck.
    waits: Vec<(Instant, Duration)>,
    dropped: u64,
    /// Datagrams dropped for exceeding the MTU.
    too_big: u64,
    /// Datagrams offered to the link.
    offered: u64,
}

/// Cuts the selective ack extension (type 1), the first in the chain, out of a uTP datagram
/// (the link's own TCP-like datagrams are left alone).
fn strip_sack(pkt: &mut Vec<u8>) {
    if pkt.len() < 22 || pkt[0] >> 4 > 4 || pkt[1] != 1 {
        return;
    }
    let (next, len) = (pkt[20], usize::from(pkt[21]));
    if pkt.len() < 22 + len {
        return;
    }
    pkt[1] = next;
    pkt.drain(20..22 + len);
}

impl Link {
    fn new(spec: LinkSpec, now: Instant) -> Self {
        Self {
            spec,
            busy_until: now,
            last_arrival: now,
            order: 0,
            queue: BinaryHeap::new(),
            waits: Vec::new(),
            dropped: 0,
            too_big: 0,
            offered: 0,
        }
    }

    fn send(&mut self, now: Instant, rng: &mut ChaCha8Rng, mut pkt: Vec<u8>) {
        if pkt.len() > self.spec.mtu {
            self.too_big += 1;
            return;
        }
        self.offered += 1;
        if let Some((every, len)) = self.spec.burst_loss
            && self.offered % every >= every - len
        {
            self.dropped += 1;
            return;
        }
        if self.spec.strip_sack {
            strip_sack(&mut pkt);
        }
        if rng.next_u32() % 1000 < self.spec.loss_permille {
            self.dropped += 1;
            return;
        }
        let mut depart = now;
        if let Some(rate) = self.spec.rate {
            let start = self.busy_until.max(now);
            let wait = start - now;
            let queued = u128::from(rate) * wait.as_micros() / 1_000_000;
            if queued > self.spec.queue as u128 {
                self.dropped += 1;
                return;
            }
            self.waits.push((now, wait));
            let tx = Duration::from_micros(pkt.len() as u64 * 1_000_000 / rate);
            self.busy_until = start + tx;
            depart = self.busy_until;
        }
        let jitter = if self.spec.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_micros(
                u64::from(rng.next_u32())
                    % u64::try_from(self.spec.jitter.as_micros()).unwrap_or(1),
            )
        };
        let mut arrival = depart + self.spec.delay + jitter;
        if let Some((every, len, extra)) = self.spec.spike {
            if self.offered % every >= every - len {
                arrival += extra;
            }
            arrival = arrival.max(self.last_arrival);
            self.last_arrival = arrival;
        }
        self.order += 1;
        self.queue.push(Reverse((arrival, self.order, pkt)));
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((t, _, _))| *t)
    }

    fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_arrival()? <= now {
            self.queue.pop().map(|Reverse((_, _, p))| p)
        } else {
            None
        }
    }
}

struct Pair {
    now: Instant,
    start: Instant,
    rng: ChaCha8Rng,
    client: Connection,
    server: Option<Connection>,
    server_cfg: Config,
    to_server: Link,
    to_client: Link,
    client_events: Vec<Event>,
    server_events: Vec<Event>,
    /// Application data: what the client still has to write, what the server read.
    to_write: Vec<u8>,
    written: usize,
    received: Vec<u8>,
    /// When the receiver last read new bytes, and the longest it went without any once
    /// the first arrived (a stall).
    last_read: Option<Instant>,
    longest_stall: Duration,
    close_when_done: bool,
    /// A competing TCP-like (loss-based AIMD) flow over the same links.
    tcp: Option<Tcp>,
}

/// Marks datagrams of the TCP-like flow (a uTP type nibble never reaches 15).
const TCP_DATA: u8 = 0xff;
const TCP_ACK: u8 = 0xfe;
const TCP_MSS: usize = 1200;

/// A Reno-like sender: slow start to the first loss, then +1 MSS per RTT, halved on loss (at most once per RTT), 1 s RTO.
/// Losses show as acks of later packets (the links do not reorder without jitter).
struct Tcp {
    start: Instant,
    cwnd: f64,
    next_seq: u64,
    outstanding: std::collections::BTreeMap<u64, Instant>,
    last_cut: Instant,
    last_ack: Instant,
    delivered: u64,
    slow_start: bool,
}

impl Tcp {
    fn new(start: Instant) -> Self {
        Self {
            start,
            cwnd: 2.0 * TCP_MSS as f64,
            next_seq: 0,
            outstanding: std::collections::BTreeMap::new(),
            last_cut: start,
            last_ack: start,
            delivered: 0,
            slow_start: true,
        }
    }

    fn send(&mut self, now: Instant, link: &mut Link, rng: &mut ChaCha8Rng) {
        if now < self.start {
            return;
        }
        if !self.outstanding.is_empty() && now >= self.last_ack + Duration::from_secs(1) {
            self.outstanding.clear();
            self.cwnd = TCP_MSS as f64;
            self.last_ack = now;
        }
        while (self.outstanding.len() * TCP_MSS) as f64 + TCP_MSS as f64 <= self.cwnd {
            let mut pkt = vec![0; TCP_MSS];
            pkt[0] = TCP_DATA;
            pkt[1..9].copy_from_slice(&self.next_seq.to_be_bytes());
            self.outstanding.insert(self.next_seq, now);
            self.next_seq += 1;
            link.send(now, rng, pkt);
        }
    }

    fn on_ack(&mut self, now: Instant, seq: u64) {
        let Some(sent) = self.outstanding.remove(&seq) else {
            return;
        };
        self.last_ack = now;
        let rtt = now - sent;
        let lost: Vec<u64> = self.outstanding.range(..seq).map(|(s, _)| *s).collect();
        if lost.is_empty() && self.slow_start {
            self.cwnd += TCP_MSS as f64;
        } else if lost.is_empty() {
            self.cwnd += (TCP_MSS * TCP_MSS) as f64 / self.cwnd;
        } else {
            self.slow_start = false;
            for s in lost {
                self.outstanding.remove(&s);
            }
            if now >= self.last_cut + rtt {
                self.cwnd = (self.cwnd / 2.0).max(TCP_MSS as f64);
                self.last_cut = now;
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        if self.outstanding.is_empty() {
            None
        } else {
            Some(self.last_ack + Duration::from_secs(1))
        }
    }
}

impl Pair {
    fn new(seed: u64, up: LinkSpec, down: LinkSpec, data: Vec<u8>) -> Self {
        let start = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut s1 = [0; 32];
        let mut s2 = [0; 32];
        rng.fill_bytes(&mut s1);
        rng.fill_bytes(&mut s2);
        let client = Connection::connect(
            Config {
                rng_seed: s1,
                ..Config::default()
            },
            start,
        );
        Self {
            now: start,
            start,
            rng,
            client,
            server: None,
            server_cfg: Config {
                rng_seed: s2,
                ..Config::default()
            },
            to_server: Link::new(up, start),
            to_client: Link::new(down, start),
            client_events: Vec::new(),
            server_events: Vec::new(),
            to_write: data,
            written: 0,
            received: Vec::new(),
            last_read: None,
            longest_stall: Duration::ZERO,
            close_when_done: true,
            tcp: None,
        }
    }

    /// Runs the applications, flushes transmits, then delivers due datagrams and timers,
    /// or advances the clock to the next event. Returns false when nothing is left to do.
    fn step(&mut self) -> bool {
        let now = self.now;
        // Applications.
        if self.written < self.to_write.len() {
            self.written += self.client.write(&self.to_write[self.written..]);
            if self.written == self.to_write.len() && self.close_when_done {
                self.client.close();
            }
        }
        if let Some(server) = &mut self.server {
            let mut buf = [0u8; 65536];
            loop {
                let n = server.read(&mut buf);
                if n == 0 {
                    break;
                }
                self.received.extend_from_slice(&buf[..n]);
                if let Some(last) = self.last_read {
                    self.longest_stall = self.longest_stall.max(now - last);
                }
                self.last_read = Some(now);
            }
        }
        // Transmits.
        while let Some(t) = self.client.poll_transmit(now) {
            self.to_server.send(now, &mut self.rng, t.contents);
        }
        if let Some(server) = &mut self.server {
            while let Some(t) = server.poll_transmit(now) {
                self.to_client.send(now, &mut self.rng, t.contents);
            }
        }
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        if let Some(server) = &mut self.server {
            while let Some(e) = server.poll_event() {
                if e == Event::PeerClosed {
                    server.close();
                }
                self.server_events.push(e);
            }
        }
        // Inputs due now.
        let mut progressed = false;
        if let Some(tcp) = &mut self.tcp {
            tcp.send(now, &mut self.to_server, &mut self.rng);
        }
        while let Some(d) = self.to_server.pop_due(now) {
            progressed = true;
            if d.first() == Some(&TCP_DATA) {
                if let Some(tcp) = &mut self.tcp {
                    tcp.delivered += d.len() as u64;
                }
                let mut ack = d[..9].to_vec();
                ack[0] = TCP_ACK;
                self.to_client.send(now, &mut self.rng, ack);
                continue;
            }
            match &mut self.server {
                Some(s) => {
                    let _ = s.handle_datagram(now, &d);
                }
                None => {
                    self.server = Connection::accept(self.server_cfg.clone(), now, &d).ok();
                }
            }
        }
        while let Some(d) = self.to_client.pop_due(now) {
            progressed = true;
            if d.first() == Some(&TCP_ACK) {
                if let (Some(tcp), Ok(seq)) = (&mut self.tcp, <[u8; 8]>::try_from(&d[1..9])) {
                    tcp.on_ack(now, u64::from_be_bytes(seq));
                }
                continue;
            }
            let _ = self.client.handle_datagram(now, &d);
        }
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
            progressed = true;
        }
        if let Some(s) = &mut self.server
            && s.poll_timeout().is_some_and(|t| t <= now)
        {
            s.handle_timeout(now);
            progressed = true;
        }
        if progressed {
            return true;
        }
        let next = [
            self.to_server.next_arrival(),
            self.to_client.next_arrival(),
            self.client.poll_timeout(),
            self.server.as_ref().and_then(Connection::poll_timeout),
            self.tcp.as_ref().and_then(Tcp::deadline),
            self.tcp.as_ref().map(|t| t.start).filter(|&t| t > self.now),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(t) => {
                self.now = self.now.max(t);
                true
            }
            None => false,
        }
    }

    /// Steps until `done` or `max_steps`, panicking (with the seed) on livelock.
    fn drive(&mut self, seed: u64, max_steps: usize, done: impl Fn(&Self) -> bool) {
        for _ in 0..max_steps {
            if done(self) {
                return;
            }
            if !self.step() {
                break;
            }
        }
        assert!(
            done(self),
            "simulation did not finish (LT_SIM_SEED={seed}): received {} of {} bytes, \
             client closed {}, virtual time {:?}",
            self.received.len(),
            self.to_write.len(),
            self.client.is_closed(),
            self.now - self.start,
        );
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xda7a);
    let mut v = vec![0; len];
    rng.fill_bytes(&mut v);
    v
}

fn transfer(name: &str, len: usize, up: LinkSpec, down: LinkSpec) -> Pair {
    transfer_seeded(name, seed(), len, up, down)
}

fn transfer_seeded(name: &str, seed: u64, len: usize, up: LinkSpec, down: LinkSpec) -> Pair {
    let payload = data(len, seed);
    let mut pair = Pair::new(seed, up, down, payload.clone());
    pair.drive(seed, 5_000_000, |p| {
        p.client.is_closed() && p.server.as_ref().is_some_and(Connection::is_closed)
    });
    pair.step(); // collect the last events
    assert!(
        pair.received == payload,
        "{name}: data differs (LT_SIM_SEED={seed}): {} of {} bytes",
        pair.received.len(),
        payload.len()
    );
    assert_eq!(
        pair.client_events.first(),
        Some(&Event::Connected),
        "{name}"
    );
    assert_eq!(
        pair.client_events.last(),
        Some(&Event::Closed(CloseReason::Done)),
        "{name} (LT_SIM_SEED={seed})"
    );
    assert_eq!(
        pair.server_events.last(),
        Some(&Event::Closed(CloseReason::Done)),
        "{name} (LT_SIM_SEED={seed})"
    );
    let secs = pair.elapsed().as_secs_f64();
    let st = pair.client.stats();
    println!(
        "{name}: {} KiB in {:.2} s virtual = {:.0} KiB/s; rtt {:?}; cwnd {} B; {} packets, \
         {} retransmits, {} timeouts, {} fast; link drops {}/{}; longest stall {:?}",
        len / 1024,
        secs,
        len as f64 / 1024.0 / secs,
        pair.client.rtt(),
        pair.client.congestion_window(),
        st.packets_sent,
        st.retransmits,
        st.timeouts,
        st.fast_retransmits,
        pair.to_server.dropped,
        pair.to_client.dropped,
        pair.longest_stall,
    );
    pair
}

/// A peer without SACK (rqbit) and bursts of 20 lost datagrams (a full receive buffer):
/// each hole after the first is resent on the partial ack that shows it, not after a
/// retransmission timeout (500 ms at least).
#[test]
fn burst_loss_without_sack_recovers_without_timeouts() {
    let up = LinkSpec::simple(10, 0, 0).with_burst_loss(400, 20);
    let down = LinkSpec::simple(10, 0, 0).without_sack();
    let p = transfer("burst loss, no SACK", 4 << 20, up, down);
    let st = p.client.stats();
    assert!(
        p.to_server.dropped >= 20,
        "the bursts hit: {}",
        p.to_server.dropped
    );
    assert_eq!(
        st.timeouts, 0,
        "a hole waited for the retransmission timeout"
    );
    assert!(
        p.elapsed() < Duration::from_secs(4),
        "4 MiB over a 20 ms RTT took {:?}",
        p.elapsed()
    );
}

/// Random loss on a 50 ms round trip (25 ms each way, the relay benchmark's path): 4 MiB
/// at 0.1 %, 1 % and 5 % loss both ways. Each case keeps to a floor of throughput, about
/// three quarters of the least measured over the seeds 1-45 and the default when written
/// (1343, 573 and 216 KiB/s virtual; medians about 3000, 800 and 370), so a regression in
/// recovery shows. At 0.1 % the rate hangs on when the first loss comes: one during slow
/// start halves the window, which LEDBAT then grows by 3000 bytes a round trip; past slow
/// start a loss with no queue costs a fifth of the window.
///
/// At 0.1 % and 1 % the receiver never waits more than two minimum retransmission
/// timeouts (1 s) for new data (550 ms measured). At 5 % a retransmission is itself lost
/// now and then: it is found lost when a packet sent after it arrives, or by the tail
/// probe, and the timeout's back-off ends with the first new ack; the longest stall seen
/// was 1.55 s (three losses of one packet), and the case is held to 2 s.
#[test]
fn random_loss_on_a_50ms_path_keeps_moving() {
    let min_rto = lt_utp::limits::MIN_RTO;
    for (permille, floor_kib_s, max_stall) in [
        (1, 1000.0, min_rto * 2),
        (10, 430.0, min_rto * 2),
        (50, 160.0, min_rto * 4),
    ] {
        let l = LinkSpec::simple(25, 0, permille);
        let name = format!("{permille} in 1000 lost, 25 ms each way");
        let p = transfer(&name, 4 << 20, l, l);
        // Nothing queues on this path: losses past slow start are taken as random (at
        // 0.1 %, 4 MiB may see all of its few losses in slow start).
        let st = p.client.stats();
        assert!(permille < 10 || st.quiet_losses > 0, "{name}: {st:?}");
        let rate = f64::from(4u32 << 10) / p.elapsed().as_secs_f64();
        assert!(
            rate >= floor_kib_s,
            "{name}: {rate:.0} KiB/s, below {floor_kib_s} KiB/s"
        );
        assert!(
            p.longest_stall <= max_stall,
            "{name}: no new data for {:?}",
            p.longest_stall
        );
    }
}

/// Delay spikes: on a 50 ms round trip, the last 50 of every 1000 datagrams wait 300 ms
/// more (and everything behind them). A spike is no loss: it is waited out, with no
/// retransmission timeout (the spike is shorter than the minimum one), and the transfer
/// goes on at its rate between spikes (2156 KiB/s virtual when written; 5461 without the
/// spikes).
#[test]
fn delay_spikes_are_waited_out() {
    let spike = Duration::from_millis(300);
    let l = LinkSpec::simple(25, 0, 0).with_spikes(1000, 50, 300);
    let p = transfer("300 ms delay spikes, 25 ms each way", 4 << 20, l, l);
    let st = p.client.stats();
    let rate = f64::from(4u32 << 10) / p.elapsed().as_secs_f64();
    assert!(rate >= 1500.0, "{rate:.0} KiB/s");
    assert_eq!(st.timeouts, 0, "{st:?}");
    assert!(
        p.longest_stall <= spike + lt_utp::limits::MIN_RTO,
        "no new data for {:?}",
        p.longest_stall
    );
}

#[test]
fn lossless_10ms() {
    let l = LinkSpec::simple(10, 0, 0);
    let p = transfer("0% loss, 10 ms", 2 << 20, l, l);
    assert_eq!(p.client.stats().retransmits, 0);
}

#[test]
fn loss_1_percent_50ms_jitter() {
    let l = LinkSpec::simple(50, 10, 10);
    transfer("1% loss, 50 ms + 10 ms jitter", 1 << 20, l, l);
}

#[test]
fn loss_5_percent_200ms_reordering() {
    // 40 ms jitter on 200 ms reorders packets sent closer than 40 ms apart.
    let l = LinkSpec::simple(200, 40, 50);
    transfer("5% loss, 200 ms + 40 ms jitter", 1 << 20, l, l);
}

#[test]
fn loss_5_percent_20ms_heavy_reordering() {
    let l = LinkSpec::simple(20, 20, 50);
    transfer("5% loss, 20 ms + 20 ms jitter", 1 << 20, l, l);
}

#[test]
fn ledbat_keeps_queuing_delay_near_target() {
    // 1 MB/s bottleneck with a 500 KB (500 ms) drop-tail queue, 20 ms each way.
    let rate = 1_000_000;
    let up = LinkSpec {
        rate: Some(rate),
        queue: 500_000,
        ..LinkSpec::simple(20, 0, 0)
    };
    let down = LinkSpec::simple(20, 0, 0);
    let len = 6 << 20;
    let p = transfer("LEDBAT, 1 MB/s bottleneck, 500 ms queue", len, up, down);
    // Steady state: the second half of the transfer.
    let waits = &p.to_server.waits;
    let half = &waits[waits.len() / 2..];
    let mean = half.iter().map(|(_, w)| w.as_secs_f64()).sum::<f64>() / half.len() as f64;
    let max = half.iter().map(|(_, w)| *w).max().unwrap_or_default();
    let throughput = len as f64 / p.elapsed().as_secs_f64();
    println!(
        "LEDBAT: mean queuing delay {:.1} ms (max {:?}) in steady state, target 100 ms; \
         throughput {:.0} KB/s of {} KB/s",
        mean * 1000.0,
        max,
        throughput / 1000.0,
        rate / 1000
    );
    assert!(
        (0.04..=0.16).contains(&mean),
        "queuing delay {mean} s not near the 100 ms target"
    );
    assert!(max < Duration::from_millis(400), "queue filled: {max:?}");
    assert!(throughput > 0.8 * rate as f64, "throughput {throughput}");
}

#[test]
fn many_seeds_lossy_reordering_links() {
    // 16 runs of 256 KiB over 2-100 ms links with 0-5% loss and jitter up to the delay.
    let base = seed();
    for i in 0..16u64 {
        let seed = base.wrapping_mul(31).wrapping_add(i);
        let delay = 2 + (seed * 7) % 99;
        let l = LinkSpec::simple(
            delay,
            delay / (1 + i % 3),
            u32::try_from(i % 6).unwrap_or(0) * 10,
        );
        transfer_seeded(&format!("sweep {i}"), seed, 256 << 10, l, l);
    }
}

#[test]
fn ledbat_yields_to_a_competing_tcp_like_flow() {
    // Same bottleneck as above; a loss-based AIMD flow joins at 4 s and runs to 14 s.
    let seed = seed();
    let rate = 1_000_000u64;
    let up = LinkSpec {
        rate: Some(rate),
        queue: 500_000,
        ..LinkSpec::simple(20, 0, 0)
    };
    let down = LinkSpec::simple(20, 0, 0);
    let mut p = Pair::new(seed, up, down, data(32 << 20, seed));
    p.close_when_done = false;
    let t0 = p.start;
    p.tcp = Some(Tcp::new(t0 + Duration::from_secs(4)));
    let at = |p: &Pair| {
        (
            p.received.len() as u64,
            p.tcp.as_ref().map_or(0, |t| t.delivered),
        )
    };
    p.drive(seed, 5_000_000, |p| p.now >= t0 + Duration::from_secs(4));
    let alone = at(&p);
    p.drive(seed, 5_000_000, |p| p.now >= t0 + Duration::from_secs(6));
    let (utp0, tcp0) = at(&p);
    p.drive(seed, 5_000_000, |p| p.now >= t0 + Duration::from_secs(14));
    let (utp1, tcp1) = at(&p);
    let secs = 8.0;
    let (utp_rate, tcp_rate) = ((utp1 - utp0) as f64 / secs, (tcp1 - tcp0) as f64 / secs);
    println!(
        "competing flow: uTP alone {:.0} KB/s (0-4 s); 6-14 s: uTP {:.0} KB/s, TCP-like {:.0} KB/s \
         of {} KB/s; uTP cwnd {} B, queuing delay estimate {:?}",
        alone.0 as f64 / 4.0 / 1000.0,
        utp_rate / 1000.0,
        tcp_rate / 1000.0,
        rate / 1000,
        p.client.congestion_window(),
        p.client.queuing_delay(),
    );
    assert!(
        alone.0 as f64 / 4.0 > 0.6 * rate as f64,
        "uTP alone too slow"
    );
    assert!(
        tcp_rate > 0.7 * rate as f64,
        "the TCP-like flow did not get its share: {tcp_rate} B/s (LT_SIM_SEED={seed})"
    );
    assert!(
        utp_rate < tcp_rate / 2.0,
        "uTP did not yield: {utp_rate} B/s"
    );
}

/// Path MTU discovery finds a 1400-byte path within the search step, loses only probes
/// to it (their data goes again at the old size, with no congestion reaction) and never
/// sends a data packet over the confirmed size.
#[test]
fn mtu_discovery_finds_the_path_mtu() {
    for mtu in [1400, 1300, 1472] {
        let l = LinkSpec::simple(10, 0, 0).with_mtu(mtu);
        let p = transfer(&format!("path MTU {mtu}"), 2 << 20, l, l);
        let st = p.client.stats();
        let found = p.client.path_mtu();
        assert!(
            found <= mtu && found + lt_utp::limits::MTU_SEARCH_STEP >= mtu.min(1472),
            "mtu {mtu}: found {found}"
        );
        // Every datagram over the path MTU was a probe, and only probes were resent.
        assert!(p.to_server.too_big <= st.mtu_probes, "mtu {mtu}: {st:?}");
        assert_eq!(st.retransmits, p.to_server.too_big, "mtu {mtu}: {st:?}");
        assert_eq!(st.fast_retransmits, 0, "mtu {mtu}: {st:?}");
        assert!(st.mtu_probes <= 8, "mtu {mtu}: a binary search, {st:?}");
    }
}

/// A path that carries only the base size: every probe is lost, packets stay at 1232
/// bytes and the transfer completes without a timeout.
#[test]
fn mtu_discovery_on_a_minimum_path() {
    let l = LinkSpec::simple(10, 0, 0).with_mtu(lt_utp::limits::DEFAULT_BASE_PACKET_SIZE);
    let p = transfer("path MTU 1232", 1 << 20, l, l);
    let st = p.client.stats();
    assert_eq!(
        p.client.path_mtu(),
        lt_utp::limits::DEFAULT_BASE_PACKET_SIZE
    );
    assert_eq!(st.retransmits, p.to_server.too_big, "{st:?}");
    assert_eq!(st.timeouts, 0, "{st:?}");
}

/// With discovery turned off (base = max) no datagram exceeds the base size.
#[test]
fn mtu_discovery_off() {
    let l = LinkSpec::simple(10, 0, 0).with_mtu(1232);
    let payload = data(256 << 10, 1);
    let mut pair = Pair::new(1, l, l, payload.clone());
    pair.client = Connection::connect(
        Config {
            rng_seed: [3; 32],
            max_packet_size: 1232,
            ..Config::default()
        },
        pair.start,
    );
    pair.drive(1, 1_000_000, |p| p.client.is_closed());
    assert_eq!(pair.received, payload);
    assert_eq!(pair.client.stats().mtu_probes, 0);
    assert_eq!(pair.to_server.too_big, 0);
}

/// A full buffer on the path (a 1 MB/s bottleneck with a 30 ms tail-drop queue, shorter
/// than LEDBAT's 100 ms target so that only loss stops the window): each loss comes with
/// the queue standing, and the window halves as TCP's does. None counts as a quiet loss.
#[test]
fn a_loss_behind_a_standing_queue_halves_the_window() {
    let up = LinkSpec {
        rate: Some(1_000_000),
        queue: 30_000,
        ..LinkSpec::simple(20, 0, 0)
    };
    let down = LinkSpec::simple(20, 0, 0);
    let p = transfer("1 MB/s bottleneck, 30 ms queue", 4 << 20, up, down);
    let st = p.client.stats();
    assert!(p.to_server.dropped > 0, "the queue never overflowed");
    assert!(st.fast_retransmits > 0, "no loss event");
    assert_eq!(st.quiet_losses, 0, "{st:?}");
}
