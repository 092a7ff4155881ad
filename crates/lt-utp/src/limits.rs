//! Limits and protocol constants: everything a peer can make us buffer is bounded here.
//!
//! The defaults follow libutp and libtorrent's `utp_stream.cpp` where they have a constant.

use std::time::Duration;

/// Size of the fixed uTP header (BEP 29).
pub const HEADER_LEN: usize = 20;
/// Longest selective ACK bitmask accepted or sent: 32 bytes, 256 packets past `ack_nr + 1`
/// (libtorrent never sends more than 32 bytes).
pub const MAX_SACK_BYTES: usize = 32;
/// Most extensions (known or unknown) walked in one packet.
pub const MAX_EXTENSIONS: usize = 8;
/// Default datagram size before path MTU discovery confirms a larger one: 1232 bytes,
/// what fits in the IPv6 minimum MTU (1280) after the IPv6 and UDP headers, so it is safe
/// on any path.
pub const DEFAULT_BASE_PACKET_SIZE: usize = 1232;
/// Default ceiling of path MTU discovery: 1472 bytes, an Ethernet MTU (1500) less the IPv4
/// and UDP headers. [`Endpoint`](crate::Endpoint) lowers it to 1452 for IPv6 peers.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 1472;
/// Path MTU discovery stops when the largest size known to pass and the smallest known
/// to fail are this close.
pub const MTU_SEARCH_STEP: usize = 16;
/// Default time after which a converged MTU search starts again.
pub const DEFAULT_MTU_PROBE_INTERVAL: Duration = Duration::from_secs(600);
/// Smallest `base_packet_size` accepted by [`Config`](crate::Config) (room for a header,
/// a full SACK and some payload).
pub const MIN_PACKET_SIZE: usize = 150;
/// Default send buffer: 1 MiB of bytes accepted by `write` and not yet acknowledged.
pub const DEFAULT_SEND_BUFFER: usize = 1 << 20;
/// Default receive buffer (and largest advertised window): 1 MiB, libtorrent's
/// `recv_socket_buffer_size` order of magnitude.
pub const DEFAULT_RECV_BUFFER: usize = 1 << 20;
/// Most packets held out of order past a hole (bounds the reorder buffer together with
/// the receive buffer). Also bounds the SACK bitmask we build.
pub const DEFAULT_MAX_REORDER: u16 = 1024;
/// Most packets in flight (sent, not acknowledged); well below half the 16-bit sequence space.
pub const DEFAULT_MAX_IN_FLIGHT: u16 = 2048;
/// LEDBAT target queuing delay: 100 ms (BEP 29, libutp `CCONTROL_TARGET`).
pub const DEFAULT_TARGET_DELAY: Duration = Duration::from_millis(100);
/// Most bytes the congestion window grows per RTT at zero queuing delay: 3000 (libutp
/// `MAX_CWND_INCREASE_BYTES_PER_RTT`).
pub const DEFAULT_GAIN: u32 = 3000;
/// Base-delay history: one minimum per minute over the last this many minutes (LEDBAT,
/// RFC 6817 `BASE_HISTORY` = 10).
pub const BASE_DELAY_HISTORY: usize = 10;
/// Initial retransmission timeout before any RTT sample (RFC 6298).
pub const INITIAL_RTO: Duration = Duration::from_secs(1);
/// Smallest retransmission timeout (libutp uses 500 ms).
pub const MIN_RTO: Duration = Duration::from_millis(500);
/// Largest retransmission timeout after back-off.
pub const MAX_RTO: Duration = Duration::from_secs(60);
/// Consecutive retransmission timeouts after which the connection is given up.
pub const DEFAULT_MAX_TIMEOUTS: u32 = 7;
/// A connection that receives nothing for this long is closed (libtorrent's
/// `inactivity_timeout` scaled to uTP: keep-alives arrive every 29 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// An ST_STATE is sent when we have sent nothing for this long (libutp `KEEPALIVE_INTERVAL`).
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(29);
/// Acks are held at most this long when only one data packet is unacknowledged (libutp's
/// delayed ack threshold).
pub const DEFAULT_DELAYED_ACK: Duration = Duration::from_millis(100);
/// A peer that advertises a zero window for this long while we have data is reset.
pub const DEFAULT_ZERO_WINDOW_TIMEOUT: Duration = Duration::from_secs(60);
/// While the peer's window is zero we probe with one packet at most this often (libutp
/// probes every 15 s; we start at two round trips and double up to this).
pub const ZERO_WINDOW_PROBE: Duration = Duration::from_secs(15);
/// A loss seen while the queuing delay is under the target divided by this is taken as
/// random, not congestion: the window shrinks by a fifth instead of by half (TCP Veno's
/// rule). 10: under 10 ms at the default 100 ms target.
pub const QUIET_QUEUE_SHARE: u32 = 10;
/// Duplicate ACKs (or packets SACKed past a hole) that trigger a fast retransmit.
pub const DUPLICATE_ACKS: u32 = 3;
