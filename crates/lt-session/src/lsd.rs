//! Local service discovery (BEP 14): a UDP socket on port 6771 in the IPv4 multicast group
//! that sends the announces the engine schedules and hands the announces of others to the
//! engine (which keeps those from the local network).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use lt_core::Sha1Hash;
use lt_engine::Input;
use lt_tracker::lsd;
use tokio::sync::mpsc;

use crate::{Event, Shared, random_bytes};

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
fn bind() -> Option<tokio::net::UdpSocket> {
    match socket().and_then(tokio::net::UdpSocket::from_std) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("local service discovery: {e}");
            None
        }
    }
}

/// Local service discovery's socket, shared by the announces the engine asks for
/// ([`lt_engine::Action::LsdAnnounce`]) and the listener.
pub(crate) struct Lsd {
    socket: tokio::net::UdpSocket,
    /// Ours, to tell our own multicasts apart.
    cookie: String,
    /// The listener's task, stopped by [`Lsd::stop`].
    listener: std::sync::OnceLock<tokio::task::AbortHandle>,
}

impl Lsd {
    /// Binds the socket (`None`, with a warning, when it cannot) and starts the listener,
    /// whose announces reach the engine as [`Input::LsdPeer`]. Call inside the runtime.
    pub(crate) fn start(shared: &Arc<Shared>, events: mpsc::Sender<Event>) -> Option<Arc<Self>> {
        let socket = bind()?;
        let mut raw = [0u8; 8];
        random_bytes(&mut raw);
        let cookie: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let lsd = Arc::new(Self {
            socket,
            cookie,
            listener: std::sync::OnceLock::new(),
        });
        let task = tokio::spawn(listen(Arc::clone(&lsd), Arc::clone(shared), events));
        let _ = lsd.listener.set(task.abort_handle());
        Some(lsd)
    }

    /// Stops listening (the manual's `stop_lsd`); announces already under way finish.
    pub(crate) fn stop(&self) {
        if let Some(task) = self.listener.get() {
            task.abort();
        }
    }

    /// Multicasts one announce per torrent, with the port the engine chose (the listen
    /// port, or the SSL listen port for SSL torrents).
    pub(crate) async fn announce(&self, info_hashes: &[Sha1Hash], port: u16) {
        let group = SocketAddr::V4(SocketAddrV4::new(lsd::LSD_GROUP_V4, lsd::LSD_PORT));
        let host = group.to_string();
        for h in info_hashes {
            let msg = lsd::encode(&host, port, &[*h], &self.cookie);
            let _ = self.socket.send_to(&msg, group).await;
        }
    }
}

/// Hands the announces of others to the engine until the session closes.
async fn listen(lsd: Arc<Lsd>, shared: Arc<Shared>, events: mpsc::Sender<Event>) {
    let mut buf = vec![0u8; lsd::MAX_DATAGRAM + 1];
    loop {
        let Ok((n, from)) = lsd.socket.recv_from(&mut buf).await else {
            continue;
        };
        if shared.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let Ok(a) = lsd::parse(buf.get(..n).unwrap_or_default()) else {
            continue;
        };
        if a.cookie.as_deref() == Some(lsd.cookie.as_str()) {
            continue;
        }
        let addr = SocketAddr::new(from.ip(), a.port);
        for &info_hash in &a.info_hashes {
            let peer = Input::LsdPeer { info_hash, addr };
            if events.send(Event::Engine(peer)).await.is_err() {
                return;
            }
        }
    }
}
