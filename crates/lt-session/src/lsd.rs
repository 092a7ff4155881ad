//! Local service discovery (BEP 14): a UDP socket on port 6771 in the IPv4 multicast group,
//! an announce of every public torrent when it starts and every `lsd_announce_interval`,
//! and the announces of others turned into peers.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lt_engine::TorrentId;
use lt_tracker::lsd;

use crate::{Shared, random_bytes};

fn socket() -> std::io::Result<std::net::UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, lsd::LSD_PORT)).into())?;
    s.join_multicast_v4(&lsd::LSD_GROUP_V4, &Ipv4Addr::UNSPECIFIED)?;
    s.set_multicast_loop_v4(true)?;
    s.set_multicast_ttl_v4(1)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Binds the LSD socket; `None` (with a warning) when it cannot.
pub(crate) fn bind() -> Option<tokio::net::UdpSocket> {
    match socket().and_then(tokio::net::UdpSocket::from_std) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("local service discovery: {e}");
            None
        }
    }
}

/// Announces and listens until the session closes.
pub(crate) async fn run(
    socket: tokio::net::UdpSocket,
    shared: Arc<Shared>,
    port: u16,
    interval: Duration,
) {
    let mut raw = [0u8; 8];
    random_bytes(&mut raw);
    let cookie: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let group = SocketAddr::V4(SocketAddrV4::new(lsd::LSD_GROUP_V4, lsd::LSD_PORT));
    let host = group.to_string();
    let mut next: HashMap<TorrentId, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut buf = vec![0u8; lsd::MAX_DATAGRAM + 1];
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if shared.closed.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                for (_, info_hash, _) in crate::dht::due_torrents(&shared, &mut next, interval) {
                    let msg = lsd::encode(&host, port, &[info_hash], &cookie);
                    let _ = socket.send_to(&msg, group).await;
                }
            }
            r = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                let Ok(a) = lsd::parse(buf.get(..n).unwrap_or_default()) else { continue };
                if a.cookie.as_deref() == Some(cookie.as_str()) {
                    continue;
                }
                let peer = SocketAddr::new(from.ip(), a.port);
                let mut engine = shared.engine();
                let now = Instant::now();
                for h in &a.info_hashes {
                    let lsd = lt_engine::Input::LsdPeer {
                        info_hash: *h,
                        addr: peer,
                    };
                    let _ = engine.handle_input(now, lsd);
                }
                shared.push_alerts(&mut engine);
                drop(engine);
                shared.wake.notify_one();
            }
        }
    }
}
