//! One uTP connection as a state machine (BEP 29), with LEDBAT congestion control.
//!
//! # Invariants
//!
//! - `inflight` holds every packet that consumed a sequence number (SYN, DATA, FIN) and is
//!   not yet cumulatively acknowledged, in sequence order without gaps; the last one has
//!   sequence number `seq_nr - 1`.
//! - `cur_window` is the payload size of the in-flight packets that were sent and are
//!   neither selectively acknowledged nor declared lost.
//! - `reorder[0]` is always empty (it would be delivered at once); `reorder[i]` holds
//!   sequence number `ack_nr + 1 + i`. Its length is at most `Config::max_reorder`.
//! - unsent bytes plus in-flight payload never exceed `Config::send_buffer_size`;
//!   `recv_buf` plus reordered payload never exceed `Config::recv_buffer_size`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use tracing::{debug, trace};

use crate::limits::{
    BASE_DELAY_HISTORY, DEFAULT_BASE_PACKET_SIZE, DEFAULT_DELAYED_ACK, DEFAULT_GAIN,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_KEEPALIVE_INTERVAL, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_PACKET_SIZE, DEFAULT_MAX_REORDER, DEFAULT_MAX_TIMEOUTS, DEFAULT_MTU_PROBE_INTERVAL,
    DEFAULT_RECV_BUFFER, DEFAULT_SEND_BUFFER, DEFAULT_TARGET_DELAY, DEFAULT_ZERO_WINDOW_TIMEOUT,
    DUPLICATE_ACKS, HEADER_LEN, INITIAL_RTO, MAX_RTO, MAX_SACK_BYTES, MIN_PACKET_SIZE, MIN_RTO,
    QUIET_QUEUE_SHARE, ZERO_WINDOW_PROBE,
};
use crate::mtu::Mtu;
use crate::{Error, Header, Packet, PacketType, SelectiveAck};

/// Settings of one connection. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Seed of the generator for connection ids and the initial sequence number. The driver
    /// seeds it from the OS; tests pass a fixed one. Default: all zeros.
    pub rng_seed: [u8; 32],
    /// Largest datagram path MTU discovery probes for, header included (the search
    /// ceiling). Default: [`DEFAULT_MAX_PACKET_SIZE`] (1472: Ethernet less IPv4 and UDP
    /// headers). Values below `base_packet_size` are raised to it; set both equal to
    /// turn discovery off.
    pub max_packet_size: usize,
    /// Datagram size used before and without a successful MTU probe, header included (the
    /// search floor). Default: [`DEFAULT_BASE_PACKET_SIZE`] (1232, safe on any path).
    /// Values below [`MIN_PACKET_SIZE`] are raised to it.
    pub base_packet_size: usize,
    /// After the MTU search converges, it starts again this much later (the path may have
    /// changed). Default: [`DEFAULT_MTU_PROBE_INTERVAL`] (10 minutes).
    pub mtu_probe_interval: Duration,
    /// Bytes accepted by [`Connection::write`] and not yet acknowledged.
    /// Default: [`DEFAULT_SEND_BUFFER`].
    pub send_buffer_size: usize,
    /// Bytes received and not yet read, in order or not; also the largest advertised
    /// window. Default: [`DEFAULT_RECV_BUFFER`].
    pub recv_buffer_size: usize,
    /// Most packets past a hole held for reordering. Default: [`DEFAULT_MAX_REORDER`].
    pub max_reorder: u16,
    /// Most packets in flight. Default: [`DEFAULT_MAX_IN_FLIGHT`].
    pub max_in_flight: u16,
    /// LEDBAT target queuing delay. Default: [`DEFAULT_TARGET_DELAY`] (100 ms).
    pub target_delay: Duration,
    /// LEDBAT gain: bytes per RTT the window grows at zero queuing delay.
    /// Default: [`DEFAULT_GAIN`].
    pub gain: u32,
    /// Nagle-like coalescing: a partial packet waits while data is in flight.
    /// Default: `true`.
    pub nagle: bool,
    /// Acks wait at most this long. Default: [`DEFAULT_DELAYED_ACK`].
    pub delayed_ack: Duration,
    /// Closed after receiving nothing for this long. Default: [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// An ST_STATE is sent after sending nothing for this long.
    /// Default: [`DEFAULT_KEEPALIVE_INTERVAL`].
    pub keepalive_interval: Duration,
    /// Reset when the peer's window stays zero this long while we have data.
    /// Default: [`DEFAULT_ZERO_WINDOW_TIMEOUT`].
    pub zero_window_timeout: Duration,
    /// Consecutive retransmission timeouts before giving up. Default: [`DEFAULT_MAX_TIMEOUTS`].
    pub max_timeouts: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rng_seed: [0; 32],
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            base_packet_size: DEFAULT_BASE_PACKET_SIZE,
            mtu_probe_interval: DEFAULT_MTU_PROBE_INTERVAL,
            send_buffer_size: DEFAULT_SEND_BUFFER,
            recv_buffer_size: DEFAULT_RECV_BUFFER,
            max_reorder: DEFAULT_MAX_REORDER,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            target_delay: DEFAULT_TARGET_DELAY,
            gain: DEFAULT_GAIN,
            nagle: true,
            delayed_ack: DEFAULT_DELAYED_ACK,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            zero_window_timeout: DEFAULT_ZERO_WINDOW_TIMEOUT,
            max_timeouts: DEFAULT_MAX_TIMEOUTS,
        }
    }
}

/// Something the application should know about.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed (outgoing) or the SYN was accepted (incoming).
    Connected,
    /// In-order data is ready for [`Connection::read`].
    Readable,
    /// Send-buffer space freed after a short [`Connection::write`].
    Writable,
    /// The peer sent FIN and every byte before it was delivered; reads return 0 once drained.
    PeerClosed,
    /// The connection is over; no further events or datagrams.
    Closed(CloseReason),
}

/// Why a connection ended.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides sent FIN and every byte was acknowledged.
    Done,
    /// The peer sent ST_RESET.
    Reset,
    /// Too many retransmission timeouts, or nothing received for `idle_timeout`.
    TimedOut,
    /// The peer advertised a zero window for `zero_window_timeout` (we send ST_RESET).
    ZeroWindow,
    /// [`Connection::abort`] was called (we send ST_RESET).
    Aborted,
    /// The peer's host answered our SYN with an ICMP error (port unreachable: nothing
    /// listens for uTP there). See [`Endpoint::handle_unreachable`](crate::Endpoint::handle_unreachable).
    Unreachable,
}

/// A datagram to send to the connection's peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The encoded uTP packet.
    pub contents: Vec<u8>,
}

/// Counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams sent.
    pub packets_sent: u64,
    /// Data and FIN packets sent again (timeout or fast retransmit).
    pub retransmits: u64,
    /// Retransmission timeouts.
    pub timeouts: u64,
    /// Fast-retransmit loss events (duplicate ACKs or SACK holes).
    pub fast_retransmits: u64,
    /// Datagrams accepted.
    pub packets_received: u64,
    /// Datagrams dropped (wrong connection id, bogus ack, out of window, buffer full).
    pub packets_dropped: u64,
    /// Path MTU probes sent.
    pub mtu_probes: u64,
    /// Tail-loss probes: the oldest packet sent again when no ack came for two round
    /// trips, before the retransmission timeout.
    pub tail_probes: u64,
    /// Loss events with no queue on the path (queuing delay under a tenth of the target):
    /// the window shrank by a fifth, not by half.
    pub quiet_losses: u64,
    /// Retransmissions found lost because a packet sent after them arrived (RACK), and
    /// sent again without waiting for the retransmission timeout.
    pub lost_retransmissions: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SynSent,
    Connected,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Syn,
    Data,
    Fin,
}

#[derive(Debug)]
struct OutPacket {
    seq: u16,
    kind: Kind,
    payload: Vec<u8>,
    /// Time of the last transmission; `None` before the first.
    sent: Option<Instant>,
    transmissions: u32,
    /// Declared lost and waiting to be sent again.
    lost: bool,
    sacked: bool,
    fast_resent: bool,
}

impl OutPacket {
    fn counted(&self) -> bool {
        self.sent.is_some() && !self.lost && !self.sacked
    }
}

#[derive(Debug)]
enum Slot {
    Data(Vec<u8>),
    Fin,
}

/// LEDBAT base delay: the minimum one-way delay per minute over the last minutes.
#[derive(Debug)]
struct BaseDelay {
    minutes: [Option<u32>; BASE_DELAY_HISTORY],
    current: usize,
    started: Option<Instant>,
}

impl BaseDelay {
    fn add(&mut self, now: Instant, sample: u32) {
        let started = *self.started.get_or_insert(now);
        if now.saturating_duration_since(started) >= Duration::from_secs(60) {
            self.current = (self.current + 1) % BASE_DELAY_HISTORY;
            self.minutes[self.current] = None;
            self.started = Some(now);
        }
        let slot = &mut self.minutes[self.current];
        *slot = Some(slot.map_or(sample, |m| wrapping_min(m, sample)));
    }

    fn base(&self) -> Option<u32> {
        self.minutes.iter().flatten().copied().reduce(wrapping_min)
    }
}

fn wrapping_min(a: u32, b: u32) -> u32 {
    if (b.wrapping_sub(a) as i32) < 0 { b } else { a }
}

/// `a` comes before `b` in 16-bit sequence space.
fn seq_lt(a: u16, b: u16) -> bool {
    (a.wrapping_sub(b) as i16) < 0
}

/// Payload buffers kept for reuse per connection (about 24 KiB at most).
const SPARE_BUFFERS: usize = 16;
/// The shortest tail-loss probe timeout.
const TLP_FLOOR: Duration = Duration::from_millis(10);
/// The shortest wait before the first zero-window probe.
const ZERO_WINDOW_FIRST_PROBE: Duration = Duration::from_millis(20);
/// A window update after a closed window is repeated at most this many times while the
/// peer sends nothing (20 ms, 40 ms, ... at a short round trip: about 5 s in all).
const WINDOW_UPDATE_REPEATS: u32 = 8;

fn to_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// One uTP connection, sans IO.
///
/// Inputs are datagrams from the peer ([`handle_datagram`](Self::handle_datagram)), timer
/// expiries ([`handle_timeout`](Self::handle_timeout)) and application commands
/// ([`write`](Self::write), [`read`](Self::read), [`close`](Self::close),
/// [`abort`](Self::abort)). Driver rule: after any input, drain
/// [`poll_transmit`](Self::poll_transmit), then [`poll_event`](Self::poll_event), then re-arm
/// one timer from [`poll_timeout`](Self::poll_timeout). `now` must never go backwards.
///
/// The connection does not demultiplex: the caller routes datagrams by peer address and
/// [`recv_id`](Self::recv_id) (or, for a new SYN, creates one with [`accept`](Self::accept)).
#[derive(Debug)]
pub struct Connection {
    cfg: Config,
    state: State,
    epoch: Instant,
    recv_id: u16,
    send_id: u16,
    // ---- send side ----
    seq_nr: u16,
    send_buf: VecDeque<u8>,
    inflight: VecDeque<OutPacket>,
    inflight_bytes: usize,
    cur_window: usize,
    cwnd: usize,
    ssthresh: usize,
    slow_start: bool,
    window_limited: bool,
    recovery: u16,
    /// A loss cut the window and the cumulative ack has not reached `recovery` since.
    in_recovery: bool,
    /// The peer has sent a selective ack.
    peer_sacks: bool,
    peer_wnd: usize,
    srtt_us: Option<u64>,
    rttvar_us: u64,
    rto: Duration,
    rto_deadline: Option<Instant>,
    /// The tail-loss probe: two smoothed round trips after the last ack or new packet.
    tlp_deadline: Option<Instant>,
    timeouts: u32,
    dup_acks: u32,
    close_requested: bool,
    fin_sent: bool,
    fin_acked: bool,
    want_writable: bool,
    zero_window_since: Option<Instant>,
    probe_at: Option<Instant>,
    probe_due: bool,
    /// The wait before the next zero-window probe: two round trips at first, doubling to
    /// [`ZERO_WINDOW_PROBE`].
    probe_interval: Duration,
    base_delay: BaseDelay,
    queuing_delay: Duration,
    mtu: Mtu,
    /// Payload buffers of acknowledged packets, reused for new ones (at most
    /// [`SPARE_BUFFERS`]).
    spare: Vec<Vec<u8>>,
    // ---- receive side ----
    ack_nr: u16,
    recv_buf: VecDeque<u8>,
    reorder: VecDeque<Option<Slot>>,
    reorder_bytes: usize,
    eof: bool,
    reply_micro: u32,
    ack_now: bool,
    ack_pending: u32,
    ack_deadline: Option<Instant>,
    last_recv: Instant,
    last_send: Instant,
    /// The receive window advertised in the last packet sent.
    last_adv_wnd: usize,
    /// The window reopened from below one packet; the next packet sent is a window update
    /// to repeat until the peer sends again.
    window_reopened: bool,
    /// When the last window update goes again if no data came since.
    window_update_at: Option<Instant>,
    /// Window updates sent since the window reopened.
    window_updates: u32,
    // ---- out ----
    reset_pending: bool,
    final_ack: bool,
    done: bool,
    events: VecDeque<Event>,
    stats: Stats,
}

impl Connection {
    /// Opens an outgoing connection; the first [`poll_transmit`](Self::poll_transmit) yields
    /// the SYN (BEP 29: the SYN carries our receive id, we send with id + 1).
    #[must_use]
    pub fn connect(cfg: Config, now: Instant) -> Self {
        let mut rng = ChaCha20Rng::from_seed(cfg.rng_seed);
        let recv_id = to_u16(usize::try_from(rng.next_u32() & 0xffff).unwrap_or(0));
        let mut c = Self::new(cfg, now, recv_id, recv_id.wrapping_add(1), 1, 0);
        c.state = State::SynSent;
        c.push_packet(Kind::Syn, Vec::new());
        c
    }

    /// Accepts an incoming ST_SYN datagram: the connection answers with ST_STATE and is
    /// connected at once ([`Event::Connected`] is queued). Its [`recv_id`](Self::recv_id) is
    /// the SYN's connection id + 1.
    pub fn accept(cfg: Config, now: Instant, syn: &[u8]) -> Result<Self, Error> {
        let p = Packet::decode(syn)?;
        if p.header.ty != PacketType::Syn {
            return Err(Error::NotSyn);
        }
        let mut rng = ChaCha20Rng::from_seed(cfg.rng_seed);
        let seq = to_u16(usize::try_from(rng.next_u32() & 0xffff).unwrap_or(0));
        let id = p.header.connection_id;
        let mut c = Self::new(cfg, now, id.wrapping_add(1), id, seq, p.header.seq_nr);
        c.reply_micro = c.timestamp(now).wrapping_sub(p.header.timestamp_us);
        c.peer_wnd = usize::try_from(p.header.wnd_size).unwrap_or(usize::MAX);
        c.ack_now = true;
        c.events.push_back(Event::Connected);
        Ok(c)
    }

    fn new(
        cfg: Config,
        now: Instant,
        recv_id: u16,
        send_id: u16,
        seq_nr: u16,
        ack_nr: u16,
    ) -> Self {
        let mut cfg = cfg;
        cfg.base_packet_size = cfg.base_packet_size.max(MIN_PACKET_SIZE);
        cfg.max_packet_size = cfg.max_packet_size.max(cfg.base_packet_size);
        // Past the 256 packets a SACK can name, packets are still held: dropping them made
        // every loss in a large window cost the rest of the window, one hole per round trip.
        cfg.max_reorder = cfg.max_reorder.clamp(1, DEFAULT_MAX_REORDER);
        cfg.max_in_flight = cfg.max_in_flight.clamp(2, 0x7fff);
        let mss = cfg.base_packet_size - HEADER_LEN - 2 - MAX_SACK_BYTES;
        Self {
            state: State::Connected,
            epoch: now,
            recv_id,
            send_id,
            seq_nr,
            send_buf: VecDeque::new(),
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            cur_window: 0,
            cwnd: 2 * mss,
            ssthresh: usize::MAX,
            slow_start: true,
            window_limited: false,
            recovery: seq_nr.wrapping_sub(1),
            in_recovery: false,
            peer_sacks: false,
            peer_wnd: mss,
            srtt_us: None,
            rttvar_us: 0,
            rto: INITIAL_RTO,
            rto_deadline: None,
            tlp_deadline: None,
            timeouts: 0,
            dup_acks: 0,
            close_requested: false,
            fin_sent: false,
            fin_acked: false,
            want_writable: false,
            zero_window_since: None,
            probe_at: None,
            probe_due: false,
            probe_interval: ZERO_WINDOW_PROBE,
            base_delay: BaseDelay {
                minutes: [None; BASE_DELAY_HISTORY],
                current: 0,
                started: None,
            },
            queuing_delay: Duration::ZERO,
            spare: Vec::new(),
            mtu: Mtu::new(
                cfg.base_packet_size,
                cfg.max_packet_size,
                cfg.mtu_probe_interval,
            ),
            ack_nr,
            recv_buf: VecDeque::new(),
            reorder: VecDeque::new(),
            reorder_bytes: 0,
            eof: false,
            reply_micro: 0,
            ack_now: false,
            ack_pending: 0,
            ack_deadline: None,
            last_recv: now,
            last_send: now,
            last_adv_wnd: 0,
            window_reopened: false,
            window_update_at: None,
            window_updates: 0,
            reset_pending: false,
            final_ack: false,
            done: false,
            events: VecDeque::new(),
            stats: Stats::default(),
            cfg,
        }
    }

    /// The id peers put in packets for us: route datagrams with it.
    #[must_use]
    pub fn recv_id(&self) -> u16 {
        self.recv_id
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Current congestion window in bytes.
    #[must_use]
    pub fn congestion_window(&self) -> usize {
        self.cwnd
    }

    /// Latest LEDBAT queuing-delay estimate (one-way delay above the base delay).
    #[must_use]
    pub fn queuing_delay(&self) -> Duration {
        self.queuing_delay
    }

    /// Smoothed round-trip time, once measured.
    #[must_use]
    pub fn rtt(&self) -> Option<Duration> {
        self.srtt_us.map(Duration::from_micros)
    }

    /// Whether the connection is over.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Largest payload of one data packet (at the current path MTU).
    #[must_use]
    pub fn max_payload(&self) -> usize {
        self.mtu.floor - HEADER_LEN - 2 - MAX_SACK_BYTES
    }

    /// Largest datagram this connection sends except MTU probes: the base packet size
    /// until a probe of a larger size is acknowledged.
    #[must_use]
    pub fn path_mtu(&self) -> usize {
        self.mtu.floor
    }

    /// Queues bytes for sending; returns how many fit in the send buffer (0 when full,
    /// closing or closed; [`Event::Writable`] follows when space frees).
    pub fn write(&mut self, data: &[u8]) -> usize {
        if self.close_requested || self.state == State::Closed {
            return 0;
        }
        let used = self.send_buf.len() + self.inflight_bytes;
        let n = data
            .len()
            .min(self.cfg.send_buffer_size.saturating_sub(used));
        self.send_buf.extend(&data[..n]);
        if n < data.len() {
            self.want_writable = true;
        }
        n
    }

    /// Copies received in-order bytes into `buf`; returns how many (0 when none are ready).
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let before = self.advertised_window();
        let n = buf.len().min(self.recv_buf.len());
        let (a, b) = self.recv_buf.as_slices();
        let first = n.min(a.len());
        buf[..first].copy_from_slice(&a[..first]);
        buf[first..n].copy_from_slice(&b[..n - first]);
        self.recv_buf.drain(..n);
        // Tell the peer at once when its window reopens: from below one packet, or from
        // below half the buffer to above it. A sender whose packets are larger than the
        // window we last advertised waits for an update and, unless the window is zero,
        // does not probe (libtorrent), so a stale small window would stall it for good.
        let after = self.advertised_window();
        let half = self.cfg.recv_buffer_size / 2;
        if before < self.max_payload() && after >= self.max_payload() {
            // libtorrent's sender never probes a closed window: a lost update would stall
            // it for good, so the update goes again until data arrives.
            self.ack_now = true;
            self.window_reopened = true;
            self.window_updates = 0;
        } else if self.last_adv_wnd < half && after >= half {
            self.ack_now = true;
        }
        self.check_done();
        n
    }

    /// An ack is to go out at the next [`poll_transmit`](Self::poll_transmit), not later:
    /// after a [`read`](Self::read), a window update. A driver wakes for it.
    #[must_use]
    pub fn ack_due(&self) -> bool {
        self.ack_now
    }

    /// Bytes ready for [`read`](Self::read).
    #[must_use]
    pub fn readable_len(&self) -> usize {
        self.recv_buf.len()
    }

    /// Graceful close: everything written is sent, then ST_FIN. The connection is closed
    /// ([`CloseReason::Done`]) once our FIN is acknowledged and the peer's FIN received.
    pub fn close(&mut self) {
        self.close_requested = true;
    }

    /// The peer's address answered with an ICMP error: a connection still waiting for the
    /// answer to its SYN ends at once with [`CloseReason::Unreachable`] (nothing listens
    /// there); any other is left alone, since an ICMP error is easily forged and an
    /// established connection has heard from its peer. Returns whether it ended.
    pub fn handle_unreachable(&mut self) -> bool {
        if self.state == State::SynSent {
            self.fail(CloseReason::Unreachable, false);
            true
        } else {
            false
        }
    }

    /// Forceful close: sends ST_RESET and ends at once with [`CloseReason::Aborted`].
    pub fn abort(&mut self) {
        if self.state != State::Closed {
            self.fail(CloseReason::Aborted, true);
        }
    }

    /// Whether `h`, a packet for this incoming connection after its SYN, shows that it comes
    /// from the peer that sent the SYN and heard our ST_STATE: it carries our receive id, is
    /// neither a SYN nor a RESET, acks something we sent (nothing before our first sequence
    /// number, nothing not yet sent), and its sequence number follows the SYN's within the
    /// reorder window. A blind spoofer has to guess our random sequence number.
    pub(crate) fn confirms_accept(&self, h: &Header) -> bool {
        let last_sent = self.seq_nr.wrapping_sub(1);
        let oldest = self.inflight.front().map_or(self.seq_nr, |p| p.seq);
        let ack_ok = !seq_lt(h.ack_nr, oldest.wrapping_sub(1)) && !seq_lt(last_sent, h.ack_nr);
        let ahead = h.seq_nr.wrapping_sub(self.ack_nr);
        h.connection_id == self.recv_id
            && !matches!(h.ty, PacketType::Syn | PacketType::Reset)
            && ack_ok
            && (1..=self.cfg.max_reorder).contains(&ahead)
    }

    /// Handles one datagram from the peer. An `Err` means the datagram was dropped (it does
    /// not harm the connection: UDP may carry junk or spoofed packets).
    pub fn handle_datagram(&mut self, now: Instant, buf: &[u8]) -> Result<(), Error> {
        if self.state == State::Closed {
            // Answer a retransmitted FIN after a clean close: our last ack was lost.
            if self.done
                && Packet::decode(buf).is_ok_and(|p| {
                    p.header.ty == PacketType::Fin && p.header.connection_id == self.recv_id
                })
            {
                self.final_ack = true;
            }
            return Ok(());
        }
        let p = match Packet::decode(buf) {
            Ok(p) => p,
            Err(e) => {
                self.stats.packets_dropped += 1;
                return Err(e);
            }
        };
        let h = p.header;
        let id_ok = h.connection_id == self.recv_id
            || (matches!(h.ty, PacketType::Syn | PacketType::Reset)
                && h.connection_id == self.send_id);
        if !id_ok {
            self.stats.packets_dropped += 1;
            return Err(Error::ConnectionIdMismatch(h.connection_id));
        }
        match h.ty {
            PacketType::Reset => {
                debug!(id = self.recv_id, "uTP reset by peer");
                self.fail(CloseReason::Reset, false);
                return Ok(());
            }
            PacketType::Syn => {
                // A retransmitted SYN: our ST_STATE was lost.
                self.ack_now = true;
                self.last_recv = now;
                return Ok(());
            }
            _ => {}
        }
        if self.state == State::SynSent && h.ty != PacketType::State {
            self.stats.packets_dropped += 1;
            return Err(Error::UnexpectedPacket(h.ty.to_u8()));
        }
        self.check_ack(&h)?;
        self.stats.packets_received += 1;
        self.last_recv = now;
        self.reply_micro = self.timestamp(now).wrapping_sub(h.timestamp_us);
        self.peer_wnd = usize::try_from(h.wnd_size).unwrap_or(usize::MAX);
        if self.state == State::SynSent {
            // BEP 29: the ST_STATE answering our SYN carries the acceptor's next sequence
            // number; the last one it "sent" is that minus one.
            self.ack_nr = h.seq_nr.wrapping_sub(1);
            self.state = State::Connected;
            self.events.push_back(Event::Connected);
        }
        self.process_ack(now, &h, p.sack.as_ref());
        if matches!(h.ty, PacketType::Data | PacketType::Fin) {
            // The peer is sending again: our window update reached it.
            self.window_update_at = None;
            self.window_reopened = false;
        }
        match h.ty {
            PacketType::Data if !p.payload.is_empty() => {
                self.receive(now, h.seq_nr, Some(p.payload));
            }
            PacketType::Fin => self.receive(now, h.seq_nr, None),
            _ => {}
        }
        self.update_zero_window(now);
        self.check_done();
        self.debug_check();
        Ok(())
    }

    /// Handles timer expiry; call when [`poll_timeout`](Self::poll_timeout) passes.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if now >= self.last_recv + self.cfg.idle_timeout {
            debug!(id = self.recv_id, "uTP idle timeout");
            self.fail(CloseReason::TimedOut, false);
            return;
        }
        if let Some(since) = self.zero_window_since
            && now >= since + self.cfg.zero_window_timeout
        {
            debug!(id = self.recv_id, "uTP peer window zero too long");
            self.fail(CloseReason::ZeroWindow, true);
            return;
        }
        if self.zero_window_since.is_some() && self.probe_at.is_some_and(|t| now >= t) {
            self.probe_interval = (self.probe_interval * 2).min(ZERO_WINDOW_PROBE);
            self.probe_at = Some(now + self.probe_interval);
            self.probe_due = true;
        }
        if self.tlp_deadline.is_some_and(|d| now >= d) {
            self.tlp_deadline = None;
            self.tail_probe(now);
        }
        if self.rto_deadline.is_some_and(|d| now >= d) {
            self.on_rto(now);
            if self.state == State::Closed {
                return;
            }
        }
        if self.window_update_at.is_some_and(|t| now >= t) {
            self.window_update_at = None;
            if self.window_updates < WINDOW_UPDATE_REPEATS
                && !self.eof
                && self.advertised_window() >= self.max_payload()
            {
                self.ack_now = true;
                self.window_reopened = true;
            }
        }
        if self.ack_deadline.is_some_and(|d| now >= d)
            || now >= self.last_send + self.cfg.keepalive_interval
        {
            self.ack_now = true;
        }
        self.debug_check();
    }

    /// The next datagram to send, if any. `now` stamps it (BEP 29 timestamps).
    /// Allocates the datagram; drivers use [`poll_transmit_into`](Self::poll_transmit_into).
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let mut contents = Vec::new();
        self.poll_transmit_into(now, &mut contents)
            .then_some(Transmit { contents })
    }

    /// Appends the next datagram to send, if any, to `out` (without clearing it) and
    /// returns whether it did: a driver encodes many datagrams into one reusable buffer
    /// (for `sendmmsg` or UDP GSO) without allocating per packet.
    pub fn poll_transmit_into(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if self.state == State::Closed {
            if self.reset_pending {
                self.reset_pending = false;
                self.control(now, PacketType::Reset, out);
                return true;
            }
            if self.final_ack {
                self.final_ack = false;
                self.control(now, PacketType::State, out);
                return true;
            }
            return false;
        }
        self.update_zero_window(now);
        if let Some(i) = self.inflight.iter().position(|p| p.lost)
            && self.send_inflight(now, i, out)
        {
            return true;
        }
        if self.state == State::Connected && self.send_new(now, out) {
            return true;
        }
        if self.ack_now || self.ack_deadline.is_some_and(|d| now >= d) {
            self.control(now, PacketType::State, out);
            return true;
        }
        false
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next; `None` once closed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        [
            Some(self.last_recv + self.cfg.idle_timeout),
            Some(self.last_send + self.cfg.keepalive_interval),
            self.rto_deadline,
            self.tlp_deadline,
            self.ack_deadline,
            self.zero_window_since
                .map(|s| s + self.cfg.zero_window_timeout),
            self.probe_at.filter(|_| self.zero_window_since.is_some()),
            self.window_update_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- helpers ----

    /// Checks the module invariants (debug builds only).
    fn debug_check(&self) {
        if cfg!(debug_assertions) {
            let counted: usize = self
                .inflight
                .iter()
                .filter(|p| p.counted())
                .map(|p| p.payload.len())
                .sum();
            debug_assert_eq!(counted, self.cur_window, "cur_window");
            let all: usize = self.inflight.iter().map(|p| p.payload.len()).sum();
            debug_assert_eq!(all, self.inflight_bytes, "inflight_bytes");
            let held: usize = self
                .reorder
                .iter()
                .flatten()
                .map(|s| match s {
                    Slot::Data(d) => d.len(),
                    Slot::Fin => 0,
                })
                .sum();
            debug_assert_eq!(held, self.reorder_bytes, "reorder_bytes");
            debug_assert!(self.reorder.front().is_none_or(Option::is_none));
            debug_assert!(self.reorder.len() <= usize::from(self.cfg.max_reorder));
            debug_assert!(
                self.inflight
                    .iter()
                    .zip(self.inflight.iter().skip(1))
                    .all(|(a, b)| b.seq == a.seq.wrapping_add(1))
            );
            debug_assert!(
                self.inflight
                    .back()
                    .is_none_or(|p| p.seq == self.seq_nr.wrapping_sub(1))
            );
        }
    }

    fn timestamp(&self, now: Instant) -> u32 {
        let us = micros(now.saturating_duration_since(self.epoch));
        u32::try_from(us & u64::from(u32::MAX)).unwrap_or(0)
    }

    fn advertised_window(&self) -> usize {
        self.cfg
            .recv_buffer_size
            .saturating_sub(self.recv_buf.len() + self.reorder_bytes)
    }

    fn fail(&mut self, reason: CloseReason, send_reset: bool) {
        self.state = State::Closed;
        self.reset_pending = send_reset;
        self.rto_deadline = None;
        self.events.push_back(Event::Closed(reason));
    }

    fn check_done(&mut self) {
        if self.state == State::Connected && self.fin_acked && self.eof && self.recv_buf.is_empty()
        {
            self.state = State::Closed;
            self.done = true;
            self.rto_deadline = None;
            // The peer's FIN may still need our ack.
            self.final_ack = self.ack_now || self.ack_pending > 0 || self.ack_deadline.is_some();
            self.events.push_back(Event::Closed(CloseReason::Done));
        }
    }

    fn push_packet(&mut self, kind: Kind, payload: Vec<u8>) {
        self.inflight_bytes += payload.len();
        self.inflight.push_back(OutPacket {
            seq: self.seq_nr,
            kind,
            payload,
            sent: None,
            transmissions: 0,
            lost: true,
            sacked: false,
            fast_resent: false,
        });
        self.seq_nr = self.seq_nr.wrapping_add(1);
    }

    /// Rejects acks of packets we never sent (hostile or corrupt) before anything else.
    fn check_ack(&mut self, h: &Header) -> Result<(), Error> {
        let last_sent = self.seq_nr.wrapping_sub(1);
        let oldest = self.inflight.front().map_or(self.seq_nr, |p| p.seq);
        // Valid: oldest - 1 ..= last_sent, or an older ack delayed in the network (within
        // the in-flight limit behind).
        let ahead = seq_lt(last_sent, h.ack_nr);
        let behind = i32::from(h.ack_nr.wrapping_sub(oldest.wrapping_sub(1)) as i16);
        let too_old = behind < -i32::from(self.cfg.max_in_flight);
        if ahead || too_old {
            self.stats.packets_dropped += 1;
            trace!(ack = h.ack_nr, last_sent, "uTP ack out of range");
            return Err(Error::AckOutOfRange(h.ack_nr));
        }
        Ok(())
    }

    fn process_ack(&mut self, now: Instant, h: &Header, sack: Option<&SelectiveAck>) {
        let mut acked_bytes = 0usize;
        let mut progress = false;
        let mut rtt_sample = None;
        // Karn's rule, for a whole ack: one that acknowledges a retransmitted packet says
        // nothing of the round trip of the others it covers (they may have waited in the
        // peer's reorder buffer for the hole to be filled).
        let mut retransmitted = false;
        // The last transmission of the newest retransmitted packet this ack covers.
        let mut resent_at = None;
        // The send time of the newest packet sent once that this ack delivers (RACK).
        let mut delivered_sent = None;
        // Cumulative ack.
        while let Some(front) = self.inflight.front() {
            if seq_lt(h.ack_nr, front.seq) || front.sent.is_none() {
                break;
            }
            let Some(p) = self.inflight.pop_front() else {
                break;
            };
            progress = true;
            if p.counted() {
                self.cur_window = self.cur_window.saturating_sub(p.payload.len());
            }
            if !p.sacked {
                acked_bytes += p.payload.len();
            }
            self.inflight_bytes = self.inflight_bytes.saturating_sub(p.payload.len());
            if p.transmissions == 1 {
                rtt_sample = p.sent.map(|s| now.saturating_duration_since(s));
                delivered_sent = delivered_sent.max(p.sent);
            } else if !p.sacked {
                retransmitted = true;
                resent_at = resent_at.max(p.sent);
            }
            if !p.sacked {
                self.mtu.on_acked(p.seq, p.transmissions == 1);
            }
            match p.kind {
                Kind::Fin => self.fin_acked = true,
                Kind::Syn | Kind::Data => {}
            }
            if self.spare.len() < SPARE_BUFFERS {
                let mut buf = p.payload;
                buf.clear();
                self.spare.push(buf);
            }
        }
        // Selective acks (bit i: ack_nr + 2 + i).
        if let Some(sack) = sack {
            self.peer_sacks = true;
            let base = self.inflight.front().map_or(self.seq_nr, |p| p.seq);
            for i in sack.acked() {
                let seq = h.ack_nr.wrapping_add(2).wrapping_add(to_u16(i));
                let idx = usize::from(seq.wrapping_sub(base));
                let Some(p) = self.inflight.get_mut(idx) else {
                    continue;
                };
                if p.sacked || p.sent.is_none() || p.seq != seq {
                    continue;
                }
                if p.counted() {
                    self.cur_window = self.cur_window.saturating_sub(p.payload.len());
                }
                p.sacked = true;
                p.lost = false;
                acked_bytes += p.payload.len();
                self.mtu.on_acked(p.seq, p.transmissions == 1);
                if p.transmissions == 1 {
                    rtt_sample = p.sent.map(|s| now.saturating_duration_since(s));
                    delivered_sent = delivered_sent.max(p.sent);
                }
            }
            self.detect_sack_loss();
        }
        if let Some(t) = delivered_sent {
            self.detect_lost_retransmissions(t);
        }
        if progress {
            self.dup_acks = 0;
            if self.timeouts > 0 {
                // New data got through: the back-off ends (as in Linux), though Karn's
                // rule gave no sample from this ack. Keeping the doubled timeout until a
                // packet sent once is acked would make the next loss wait for it.
                self.timeouts = 0;
                self.reset_rto();
            }
            self.rto_deadline = (!self.inflight.is_empty()).then(|| now + self.rto);
            self.arm_tail_probe(now);
            if self.in_recovery && !seq_lt(h.ack_nr, self.recovery) {
                self.in_recovery = false;
            } else if self.in_recovery && sack.is_none() {
                self.partial_ack(resent_at);
            }
        } else if self.inflight.front().is_some_and(|p| p.sent.is_some())
            && h.ack_nr == self.inflight.front().map_or(0, |p| p.seq.wrapping_sub(1))
            && (h.ty == PacketType::State || self.front_overdue(now))
        {
            self.dup_acks += 1;
            // An ack that still does not cover a packet sent 1.5 round trips ago counts as
            // all three: a receiver that takes datagrams in batches acks once per batch,
            // and a peer without SACK (rqbit) says nothing else of a hole.
            if self.front_overdue(now) {
                self.dup_acks = self.dup_acks.max(DUPLICATE_ACKS);
            }
            if self.dup_acks >= DUPLICATE_ACKS
                && let Some(p) = self.inflight.front_mut()
                && p.counted()
                && !p.fast_resent
            {
                self.cur_window = self.cur_window.saturating_sub(p.payload.len());
                p.lost = true;
                p.fast_resent = true;
                let seq = p.seq;
                if !self.mtu.on_lost(seq) {
                    self.on_loss(seq);
                }
            }
        }
        if let Some(rtt) = rtt_sample.filter(|_| !retransmitted) {
            self.update_rtt(rtt);
        }
        if h.timestamp_diff_us != 0 && acked_bytes > 0 {
            self.base_delay.add(now, h.timestamp_diff_us);
            let base = self.base_delay.base().unwrap_or(h.timestamp_diff_us);
            let q = i64::from(h.timestamp_diff_us.wrapping_sub(base) as i32).max(0);
            self.queuing_delay = Duration::from_micros(q.unsigned_abs());
        }
        if acked_bytes > 0 {
            self.ledbat(acked_bytes);
        }
        if self.want_writable
            && self.send_buf.len() + self.inflight_bytes < self.cfg.send_buffer_size
        {
            self.want_writable = false;
            self.events.push_back(Event::Writable);
        }
    }

    fn update_zero_window(&mut self, now: Instant) {
        let waiting = !self.send_buf.is_empty();
        if self.peer_wnd == 0 && waiting {
            if self.zero_window_since.is_none() {
                self.zero_window_since = Some(now);
                // A peer that sends no window update when it reads (rqbit waits seconds)
                // is asked soon, then less and less often.
                let rtt2 = Duration::from_micros(self.srtt_us.unwrap_or(0).saturating_mul(2));
                self.probe_interval = rtt2.clamp(ZERO_WINDOW_FIRST_PROBE, ZERO_WINDOW_PROBE);
                self.probe_at = Some(now + self.probe_interval);
            }
        } else {
            self.zero_window_since = None;
            self.probe_at = None;
            self.probe_due = false;
        }
    }

    fn send_new(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if self.inflight.len() >= usize::from(self.cfg.max_in_flight) {
            return false;
        }
        if self.send_buf.is_empty() {
            if self.close_requested && !self.fin_sent {
                self.fin_sent = true;
                self.push_packet(Kind::Fin, Vec::new());
                let i = self.inflight.len() - 1;
                return self.send_inflight(now, i, out);
            }
            return false;
        }
        let mut len = self.send_buf.len().min(self.max_payload());
        if self.cur_window == 0 && self.peer_wnd > 0 {
            // A window smaller than a packet still lets one small packet through.
            len = len.min(self.peer_wnd);
        }
        if self.cfg.nagle
            && len < self.max_payload()
            && self.cur_window > 0
            && !self.close_requested
        {
            return false;
        }
        let probe = self.peer_wnd == 0 && self.cur_window == 0 && self.probe_due;
        if !probe && self.cur_window + len > self.send_window().min(self.peer_wnd) {
            self.window_limited = true;
            return false;
        }
        if probe {
            self.probe_due = false;
        }
        // A buffer of an acknowledged packet when there is one: no allocation per packet.
        let mut payload = self.spare.pop().unwrap_or_default();
        payload.reserve(len);
        let (a, b) = self.send_buf.as_slices();
        let first = len.min(a.len());
        payload.extend_from_slice(&a[..first]);
        payload.extend_from_slice(&b[..len - first]);
        self.send_buf.drain(..len);
        let full = len == self.max_payload();
        self.push_packet(Kind::Data, payload);
        let i = self.inflight.len() - 1;
        if full {
            self.mtu.maybe_start_probe(now, self.seq_nr.wrapping_sub(1));
        }
        self.send_inflight(now, i, out)
    }

    /// The congestion window, never below one packet. The window is floored at a packet
    /// when it shrinks, but a path MTU probe acknowledged later makes packets larger: a
    /// window of one old packet with nothing in flight would then never let the next one
    /// go, and no ack would ever come to grow it (libtorrent raises its window to the new
    /// packet size in `update_mtu_limits` for the same reason).
    fn send_window(&self) -> usize {
        self.cwnd.max(self.max_payload())
    }

    fn send_inflight(&mut self, now: Instant, i: usize, out: &mut Vec<u8>) -> bool {
        let Some(p) = self.inflight.get(i) else {
            return false;
        };
        let (len, first) = (p.payload.len(), p.transmissions == 0);
        // Retransmissions respect the congestion window too, except the oldest packet.
        if !first && i > 0 && self.cur_window + len > self.send_window().min(self.peer_wnd.max(len))
        {
            return false;
        }
        let header = self.header(now, PacketType::Data, 0);
        let sack = self.build_sack();
        let probe_size = self
            .mtu
            .probe
            .filter(|pr| first && pr.seq == p.seq)
            .map(|pr| pr.size);
        let Some(p) = self.inflight.get_mut(i) else {
            return false;
        };
        p.lost = false;
        p.sent = Some(now);
        p.transmissions += 1;
        let ty = match p.kind {
            Kind::Syn => PacketType::Syn,
            Kind::Data => PacketType::Data,
            Kind::Fin => PacketType::Fin,
        };
        let mut h = header;
        h.ty = ty;
        h.seq_nr = p.seq;
        if ty == PacketType::Syn {
            h.connection_id = self.recv_id;
        }
        let packet = Packet {
            header: h,
            sack: if ty == PacketType::Syn { None } else { sack },
            payload: &p.payload,
        };
        match probe_size {
            // An MTU probe: the packet padded to the probe size with skipped extensions,
            // so its data is safe when the probe is lost (the retransmission is unpadded).
            Some(size) => {
                let start = out.len();
                packet.encode_padded(out, size.saturating_sub(packet.encoded_len()));
                self.mtu.probe_len = out.len() - start;
                self.stats.mtu_probes += 1;
            }
            None => packet.encode(out),
        }
        if p.transmissions > 1 {
            self.stats.retransmits += 1;
        }
        self.cur_window += len;
        if self.rto_deadline.is_none() {
            self.rto_deadline = Some(now + self.rto);
        }
        if first {
            self.arm_tail_probe(now);
        }
        self.sent(now);
        true
    }

    fn control(&mut self, now: Instant, ty: PacketType, out: &mut Vec<u8>) {
        let header = self.header(now, ty, self.seq_nr);
        let sack = self.build_sack();
        Packet {
            header,
            sack: if ty == PacketType::State { sack } else { None },
            payload: &[],
        }
        .encode(out);
        self.sent(now);
    }

    fn header(&self, now: Instant, ty: PacketType, seq_nr: u16) -> Header {
        Header {
            ty,
            connection_id: self.send_id,
            timestamp_us: self.timestamp(now),
            timestamp_diff_us: self.reply_micro,
            wnd_size: u32::try_from(self.advertised_window()).unwrap_or(u32::MAX),
            seq_nr,
            ack_nr: self.ack_nr,
        }
    }

    fn sent(&mut self, now: Instant) {
        self.last_adv_wnd = self.advertised_window();
        if self.window_reopened {
            // Two round trips (at least 20 ms), doubling with each repeat.
            self.window_reopened = false;
            let rtt2 = Duration::from_micros(self.srtt_us.unwrap_or(0).saturating_mul(2));
            let wait = rtt2.max(ZERO_WINDOW_FIRST_PROBE) * (1 << self.window_updates.min(16));
            self.window_update_at = Some(now + wait.min(ZERO_WINDOW_PROBE));
            self.window_updates += 1;
        }
        self.stats.packets_sent += 1;
        self.last_send = now;
        self.ack_now = false;
        self.ack_pending = 0;
        self.ack_deadline = None;
    }

    fn build_sack(&self) -> Option<SelectiveAck> {
        if self.reorder.len() < 2 {
            return None;
        }
        let bits = (self.reorder.len() - 1).min(8 * MAX_SACK_BYTES);
        let mut sack = SelectiveAck::new(bits.div_ceil(8));
        for (i, slot) in self.reorder.iter().enumerate().skip(1).take(bits) {
            if slot.is_some() {
                sack.set(i - 1);
            }
        }
        Some(sack)
    }

    /// The peer's FIN was delivered in order: nothing after it is accepted.
    fn peer_fin(&mut self) {
        self.eof = true;
        self.reorder.clear();
        self.reorder_bytes = 0;
        self.events.push_back(Event::PeerClosed);
    }

    /// Takes the payload of DATA `seq` (`Some`) or the FIN (`None`).
    fn receive(&mut self, now: Instant, seq: u16, data: Option<&[u8]>) {
        if self.eof {
            self.ack_now = true;
            return;
        }
        let dist = seq.wrapping_sub(self.ack_nr.wrapping_add(1));
        if (dist as i16) < 0 {
            // Already delivered: our ack was probably lost.
            self.ack_now = true;
            return;
        }
        let dist = usize::from(dist);
        let len = data.map_or(0, <[u8]>::len);
        if dist >= usize::from(self.cfg.max_reorder) || len > self.advertised_window() {
            self.stats.packets_dropped += 1;
            self.ack_now = true;
            return;
        }
        let was_empty = self.recv_buf.is_empty();
        let mut delivered = 0;
        if dist == 0 {
            // In order: straight into the receive buffer, no reorder slot (reorder[0] is
            // always empty, so popping it shifts the held packets by one).
            self.reorder.pop_front();
            self.ack_nr = self.ack_nr.wrapping_add(1);
            delivered += 1;
            match data {
                Some(d) => self.recv_buf.extend(d),
                None => self.peer_fin(),
            }
        } else {
            if self.reorder.len() <= dist {
                self.reorder.resize_with(dist + 1, || None);
            }
            if self.reorder[dist].is_some() {
                self.ack_now = true;
                return;
            }
            self.reorder[dist] = Some(data.map_or(Slot::Fin, |d| Slot::Data(d.to_vec())));
            self.reorder_bytes += len;
        }
        while !self.eof
            && let Some(Some(_)) = self.reorder.front()
        {
            let Some(Some(slot)) = self.reorder.pop_front() else {
                break;
            };
            self.ack_nr = self.ack_nr.wrapping_add(1);
            delivered += 1;
            match slot {
                Slot::Data(d) => {
                    self.reorder_bytes = self.reorder_bytes.saturating_sub(d.len());
                    self.recv_buf.extend(d);
                }
                Slot::Fin => self.peer_fin(),
            }
        }
        if was_empty && !self.recv_buf.is_empty() {
            self.events.push_back(Event::Readable);
        }
        if dist > 0 || delivered == 0 || self.eof {
            // Out of order: SACK at once so the sender can repair the hole.
            self.ack_now = true;
        } else {
            self.ack_pending += delivered;
            if self.ack_pending >= 2 {
                self.ack_now = true;
            } else if self.ack_deadline.is_none() {
                self.ack_deadline = Some(now + self.cfg.delayed_ack);
            }
        }
    }
}

mod recovery;

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
