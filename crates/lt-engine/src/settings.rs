//! The session's settings: the manual's `session_settings`, with libtorrent 2.0's defaults
//! where they differ from 0.16's, and its two presets.

use std::time::Duration;

use lt_wire::mse::{EncLevel, EncPolicy};

/// How a seeding torrent picks whom to unchoke (`seed_choking_algorithm`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum SeedChoking {
    /// Rotate the slots among interested peers so every peer gets a turn (the default).
    #[default]
    RoundRobin,
    /// Unchoke the peers we upload to fastest.
    FastestUpload,
    /// Prefer peers that just started or are about to finish (libtorrent's anti-leech).
    AntiLeech,
}

/// How TCP and uTP peers share bandwidth (`mixed_mode_algorithm`). uTP yields to TCP by
/// design (LEDBAT), so without balancing TCP peers take a shared link's capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MixedMode {
    /// No balancing: TCP takes what it gets.
    PreferTcp,
    /// While uTP peers transfer, TCP peers together get at most their share (by peer
    /// count) of the current rate, never below 5 kB/s up and 30 kB/s down (libtorrent's
    /// rule and default).
    #[default]
    PeerProportional,
}

/// The session's settings. Every field has the default the manual documents, or
/// libtorrent 2.0's where 0.16's is gone (noted on the field).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `connections_limit`: most peer connections of the session. Default 200.
    pub connections_limit: usize,
    /// `max_peerlist_size` per torrent. Default 3000.
    pub max_peerlist_size: usize,
    /// Per-torrent connection limit for new torrents (`max_connections`). Default 100.
    pub max_connections_per_torrent: usize,
    /// `half_open_limit`: most outgoing connection attempts in progress. Default 50.
    pub half_open_limit: usize,
    /// `connection_speed`: most new outgoing connections per second. Default 30 (2.0).
    pub connection_speed: usize,
    /// `allow_multiple_connections_per_ip`. Default `false`.
    pub allow_multiple_connections_per_ip: bool,
    /// `unchoke_slots_limit`: most unchoked peers of the session. Default 8.
    pub unchoke_slots_limit: usize,
    /// `unchoke_interval`. Default 15 s.
    pub unchoke_interval: Duration,
    /// `optimistic_unchoke_interval`. Default 30 s.
    pub optimistic_unchoke_interval: Duration,
    /// `seed_choking_algorithm`.
    pub seed_choking_algorithm: SeedChoking,
    /// `mixed_mode_algorithm`. Default [`MixedMode::PeerProportional`]. Like the rate
    /// limits, it leaves local-network peers alone when `ignore_limits_on_local_network`.
    pub mixed_mode_algorithm: MixedMode,
    /// `request_queue_time`: keep this many seconds of a peer's rate in requests. Default 3 s.
    pub request_queue_time: Duration,
    /// `max_out_request_queue`: most requests outstanding to one peer. Default 500.
    pub max_out_request_queue: usize,
    /// Fewest requests outstanding to an unchoked peer, before its rate is known. Default 16.
    pub min_request_queue: usize,
    /// `max_allowed_in_request_queue`: most requests queued from one peer. Default 2000.
    pub max_allowed_in_request_queue: usize,
    /// `send_buffer_watermark`: most bytes queued for one peer's socket (sent and not yet
    /// written, plus blocks being read for it); past it the peer's requests wait until the
    /// driver reports the socket drained ([`crate::Input::Drained`]). Default 500 KiB.
    pub send_buffer_watermark: usize,
    /// `send_buffer_low_watermark`: the watermark is never below this. Default 10 KiB.
    pub send_buffer_low_watermark: usize,
    /// `send_buffer_watermark_factor`: between the two, the watermark is this percentage of
    /// the peer's upload rate (a second of it at 100). Default 50.
    pub send_buffer_watermark_factor: u32,
    /// `allowed_fast_set_size`: pieces a new peer may request while choked (BEP 6).
    /// Default 5.
    pub allowed_fast_set_size: usize,
    /// `request_timeout`: a request unanswered this long is forgotten and the peer
    /// snubbed. Default 60 s.
    pub request_timeout: Duration,
    /// `peer_timeout`: a silent peer is dropped after this long. Default 120 s.
    pub peer_timeout: Duration,
    /// `handshake_timeout`. Default 10 s.
    pub handshake_timeout: Duration,
    /// `peer_connect_timeout`: how long the driver waits for a TCP connect. Default 15 s.
    pub peer_connect_timeout: Duration,
    /// `min_reconnect_time`: wait before re-dialling a peer that failed, times its fail
    /// count. Default 60 s.
    pub min_reconnect_time: Duration,
    /// `max_failcount`: a peer that failed this often is not dialled again. Default 3.
    pub max_failcount: u32,
    /// `close_redundant_connections`: a seed drops connections to other seeds. Default
    /// `true`.
    pub close_redundant_connections: bool,
    /// `upload_rate_limit`, bytes per second, 0 for none. Default 0.
    pub upload_rate_limit: u64,
    /// `download_rate_limit`, bytes per second, 0 for none. Default 0.
    pub download_rate_limit: u64,
    /// `rate_limit_ip_overhead`: the estimated TCP/IP (or UDP/IP and uTP) headers and the
    /// peer protocol's message headers of each block are drawn from the rate limits too,
    /// so the limit holds for the whole traffic, not just the payload. Default `true`.
    pub rate_limit_ip_overhead: bool,
    /// `ignore_limits_on_local_network`: peers on loopback, private (RFC 1918, RFC 4193)
    /// and link-local addresses are exempt from the rate limits (libtorrent 2.0's local
    /// peer class does the same). Default `true`.
    pub ignore_limits_on_local_network: bool,
    /// `share_mode_target`: in share mode, aim to upload this many times what is
    /// downloaded. Default 3.
    pub share_mode_target: u32,
    /// `max_queued_disk_bytes`: received bytes waiting for the disk (hash and write) before
    /// the torrent stops requesting more; a torrent whose partial pieces hold more than this
    /// in memory writes them out. Default 32 MiB (libtorrent 2.0 counts only write buffers,
    /// 1 MiB; here a piece waits in memory until hashed and written whole).
    pub max_queued_disk_bytes: u64,
    /// `urlseed_pipeline_size`: requests in flight to one web seed. Default 5.
    pub urlseed_pipeline_size: usize,
    /// `urlseed_max_request_bytes`: bytes one web request covers at most (a contiguous
    /// run of whole pieces; one piece when pieces are larger). Default 4 MiB (libtorrent
    /// 2.0: 16 MiB; five of them in flight would be 80 MiB waiting in memory here).
    pub urlseed_max_request_bytes: u64,
    /// `urlseed_timeout`: a web request with no byte for this long fails. Default 20 s.
    pub urlseed_timeout: Duration,
    /// `urlseed_wait_retry`: how long a web seed that failed waits before it is asked
    /// again, doubling with each failure in a row (at most 10 minutes), unless the server
    /// said how long (`Retry-After`). Default 30 s.
    pub urlseed_wait_retry: Duration,
    /// `max_web_seed_connections`: web seeds of one torrent used at once. Default 3.
    pub max_web_seed_connections: usize,
    /// Most bytes of received blocks one partial piece holds in memory; past it they are
    /// written and the piece is hashed back from the files once complete, so a torrent with
    /// huge pieces costs memory by blocks in flight, not by piece length. Not in
    /// libtorrent, which writes every block as it arrives. Default 4 MiB.
    pub max_held_piece_bytes: u64,
    /// `optimistic_disk_retry`: how long a torrent stays in upload mode after a disk write
    /// failed before it tries writing again. Default 600 s.
    pub optimistic_disk_retry: Duration,
    /// `use_parole_mode`: peers that took part in a failed piece download whole pieces
    /// alone, so the next failure pins the culprit. Default `true`.
    pub use_parole_mode: bool,
    /// `smart_ban`: ban a peer whose data failed a hash check twice (or alone). Default
    /// `true`.
    pub smart_ban: bool,
    /// How often ut_pex messages go to each peer (BEP 11 allows one a minute). Default
    /// 60 s; the first goes out right after the handshake.
    pub pex_interval: Duration,
    /// `num_want`: peers asked of a tracker. Default 200.
    pub num_want: u32,
    /// `stop_tracker_timeout`: how long shutdown waits for `stopped` announces. Default 5 s.
    pub stop_tracker_timeout: Duration,
    /// `tracker_completion_timeout`: how long the driver waits for a tracker reply. Default
    /// 30 s.
    pub tracker_completion_timeout: Duration,
    /// `out_enc_policy`. Default [`EncPolicy::Enabled`].
    pub out_enc_policy: EncPolicy,
    /// `in_enc_policy`. Default [`EncPolicy::Enabled`].
    pub in_enc_policy: EncPolicy,
    /// `allowed_enc_level`. Default [`EncLevel::Both`].
    pub allowed_enc_level: EncLevel,
    /// `prefer_rc4`. Default `false`.
    pub prefer_rc4: bool,
    /// `dht_announce_interval`: how often each public torrent is announced on the DHT
    /// (sooner, every 5 s, while a lookup finds nobody). Default 15 min.
    pub dht_announce_interval: Duration,
    /// `local_service_announce_interval`: how often each public torrent is announced by
    /// local service discovery (BEP 14). Default 5 min.
    pub lsd_announce_interval: Duration,
    /// `enable_outgoing_tcp`: dial peers over TCP. With uTP also on, a peer is dialled
    /// over TCP only once a uTP connect to it failed (or PEX or a failed connect said it
    /// has no uTP), as libtorrent does. Default `true`.
    pub enable_outgoing_tcp: bool,
    /// `enable_outgoing_utp`: dial peers over uTP, first (LEDBAT yields to the user's
    /// other traffic). Default `true`.
    pub enable_outgoing_utp: bool,
    /// `utp_connect_timeout`: how long a uTP connect waits for the answer to its SYN
    /// before the peer is tried over TCP. A port nobody listens on is known sooner, from
    /// the ICMP error it sends back. Default 3 s.
    pub utp_connect_timeout: Duration,
    /// When a peer is dialled over uTP first and TCP is on: how long the uTP connect has
    /// before TCP is dialled beside it, the first to connect kept (happy eyeballs, RFC 8305;
    /// libtorrent waits for the uTP connect to fail). A peer without uTP whose UDP port
    /// stays silent (no ICMP error) then costs this, not `utp_connect_timeout`. `None`:
    /// TCP only after the uTP connect failed. Default 500 ms.
    pub utp_tcp_race_delay: Option<Duration>,
    /// `enable_incoming_tcp`: accept TCP connections (the driver's listeners). Default `true`.
    pub enable_incoming_tcp: bool,
    /// `enable_incoming_utp`: accept uTP connections. Default `true`.
    pub enable_incoming_utp: bool,
    /// `active_downloads`: most auto-managed torrents downloading. Default 3.
    pub active_downloads: usize,
    /// `active_seeds`: most auto-managed torrents seeding. Default 5.
    pub active_seeds: usize,
    /// `active_limit`: most auto-managed torrents active in all. Default 15.
    pub active_limit: usize,
    /// `dont_count_slow_torrents`: a download slower than `inactive_down_rate` for a minute
    /// does not take a download slot. Default `true`.
    pub dont_count_slow_torrents: bool,
    /// `inactive_down_rate`, bytes per second. Default 2048.
    pub inactive_down_rate: u64,
    /// `auto_manage_interval`. Default 30 s.
    pub auto_manage_interval: Duration,
    /// `share_ratio_limit`: an auto-managed seed that uploaded this many times what it
    /// downloaded stops (0: no limit). Default 2.0.
    pub share_ratio_limit: f64,
    /// `seed_time_limit`: an auto-managed seed stops after seeding this long (zero: no
    /// limit). Default 24 h.
    pub seed_time_limit: Duration,
    /// `alert_queue_size`: most alerts waiting; more are dropped and counted. Default 1000.
    pub alert_queue_size: usize,
    /// `tick_interval`: how often the engine's timers run. Default 500 ms.
    pub tick_interval: Duration,
    /// `user_agent` for HTTP trackers and the extended handshake's `v`.
    pub user_agent: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            connections_limit: 200,
            max_peerlist_size: 3000,
            max_connections_per_torrent: 100,
            half_open_limit: 50,
            connection_speed: 30,
            allow_multiple_connections_per_ip: false,
            unchoke_slots_limit: 8,
            unchoke_interval: Duration::from_secs(15),
            optimistic_unchoke_interval: Duration::from_secs(30),
            seed_choking_algorithm: SeedChoking::RoundRobin,
            mixed_mode_algorithm: MixedMode::PeerProportional,
            request_queue_time: Duration::from_secs(3),
            max_out_request_queue: 500,
            min_request_queue: 16,
            max_allowed_in_request_queue: 2000,
            send_buffer_watermark: 500 * 1024,
            send_buffer_low_watermark: 10 * 1024,
            send_buffer_watermark_factor: 50,
            allowed_fast_set_size: 5,
            request_timeout: Duration::from_secs(60),
            peer_timeout: Duration::from_secs(120),
            handshake_timeout: Duration::from_secs(10),
            peer_connect_timeout: Duration::from_secs(15),
            min_reconnect_time: Duration::from_secs(60),
            max_failcount: 3,
            close_redundant_connections: true,
            upload_rate_limit: 0,
            download_rate_limit: 0,
            rate_limit_ip_overhead: true,
            ignore_limits_on_local_network: true,
            share_mode_target: 3,
            max_queued_disk_bytes: 32 << 20,
            max_held_piece_bytes: 4 << 20,
            urlseed_pipeline_size: 5,
            urlseed_max_request_bytes: 4 << 20,
            urlseed_timeout: Duration::from_secs(20),
            urlseed_wait_retry: Duration::from_secs(30),
            max_web_seed_connections: 3,
            optimistic_disk_retry: Duration::from_secs(600),
            use_parole_mode: true,
            smart_ban: true,
            pex_interval: Duration::from_secs(60),
            num_want: 200,
            stop_tracker_timeout: Duration::from_secs(5),
            tracker_completion_timeout: Duration::from_secs(30),
            out_enc_policy: EncPolicy::Enabled,
            in_enc_policy: EncPolicy::Enabled,
            allowed_enc_level: EncLevel::Both,
            prefer_rc4: false,
            dht_announce_interval: Duration::from_secs(15 * 60),
            lsd_announce_interval: Duration::from_secs(5 * 60),
            enable_outgoing_tcp: true,
            enable_outgoing_utp: true,
            utp_connect_timeout: Duration::from_secs(3),
            utp_tcp_race_delay: Some(Duration::from_millis(500)),
            enable_incoming_tcp: true,
            enable_incoming_utp: true,
            active_downloads: 3,
            active_seeds: 5,
            active_limit: 15,
            dont_count_slow_torrents: true,
            inactive_down_rate: 2048,
            auto_manage_interval: Duration::from_secs(30),
            share_ratio_limit: 2.0,
            seed_time_limit: Duration::from_secs(24 * 3600),
            alert_queue_size: 1000,
            tick_interval: Duration::from_millis(500),
            user_agent: format!("lt/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl Settings {
    /// The manual's `min_memory_usage()` preset: fewer connections, short request queues
    /// and little buffered disk data.
    #[must_use]
    pub fn min_memory_usage() -> Self {
        Self {
            connections_limit: 50,
            max_peerlist_size: 500,
            max_connections_per_torrent: 30,
            max_out_request_queue: 100,
            min_request_queue: 4,
            max_allowed_in_request_queue: 100,
            max_queued_disk_bytes: 4 << 20,
            alert_queue_size: 100,
            ..Self::default()
        }
    }

    /// The manual's `high_performance_seed()` preset: many connections and unchoke slots,
    /// deep request queues, fastest-upload seed choking.
    #[must_use]
    pub fn high_performance_seed() -> Self {
        Self {
            connections_limit: 8000,
            max_connections_per_torrent: 2000,
            half_open_limit: 500,
            connection_speed: 500,
            unchoke_slots_limit: 500,
            seed_choking_algorithm: SeedChoking::FastestUpload,
            max_out_request_queue: 1500,
            max_allowed_in_request_queue: 8000,
            send_buffer_watermark: 3 << 20,
            send_buffer_low_watermark: 1 << 20,
            send_buffer_watermark_factor: 150,
            max_queued_disk_bytes: 128 << 20,
            alert_queue_size: 10_000,
            ..Self::default()
        }
    }
}
