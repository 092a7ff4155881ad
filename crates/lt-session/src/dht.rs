//! The DHT (lt-dht's tokio driver) in the session: it shares the uTP socket (KRPC datagrams
//! are told apart by their first byte); the driver runs the announces the engine asks for
//! and adds the nodes peers name in PORT messages; its events become alerts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use lt_dht::DhtState;
use lt_dht::tokio::{Bind, Datagram, DhtConfig, DhtEvent, DhtHandle};
use lt_engine::Alert;
use lt_utp::tokio::UtpSocket;
use tokio::sync::mpsc;

use crate::{Event, SessionSettings};

/// What starting the DHT needs, kept so that it can start again after a stop. The uTP
/// socket's non-uTP datagrams are taken once, at session start, and go to whichever DHT
/// node runs at the time (none while it is stopped).
pub(crate) struct DhtStarter {
    runtime: tokio::runtime::Handle,
    utp: Option<UtpSocket>,
    inbox: Arc<Mutex<Option<mpsc::Sender<Datagram>>>>,
    listen: Option<SocketAddr>,
}

impl DhtStarter {
    /// Routes `utp`'s other datagrams (when there is such a socket) to the future node.
    pub(crate) fn new(
        runtime: &tokio::runtime::Runtime,
        utp: Option<&UtpSocket>,
        listen: Option<SocketAddr>,
    ) -> Self {
        let inbox: Arc<Mutex<Option<mpsc::Sender<Datagram>>>> = Arc::new(Mutex::new(None));
        let utp = utp.and_then(|u| {
            let mut incoming = u.take_other_datagrams()?;
            let inbox = Arc::clone(&inbox);
            runtime.spawn(async move {
                while let Some((bytes, addr)) = incoming.recv().await {
                    let node = inbox.lock().unwrap_or_else(PoisonError::into_inner).clone();
                    if let Some(node) = node {
                        let _ = node.try_send(Datagram {
                            addr,
                            payload: bytes.to_vec(),
                        });
                    }
                }
            });
            Some(u.clone())
        });
        Self {
            runtime: runtime.handle().clone(),
            utp,
            inbox,
            listen,
        }
    }

    /// Starts a DHT node: on the uTP socket when there is one, else on a UDP socket of its
    /// own on the listen address. `state` (node id and nodes) overrides the settings'.
    pub(crate) fn start(
        &self,
        settings: &SessionSettings,
        state: Option<DhtState>,
    ) -> Option<DhtHandle> {
        let _guard = self.runtime.enter();
        let make_config = |bind: Bind| {
            let mut c = DhtConfig::with_bind(bind);
            c.settings = settings.dht_settings.clone();
            c.read_only = settings.dht_settings.read_only;
            c.nodes.clone_from(&settings.dht_bootstrap_nodes);
            c.routers.clone_from(&settings.dht_routers);
            c.state = state.or_else(|| settings.dht_state.clone());
            c
        };
        if let Some(utp) = &self.utp {
            let config = make_config(Bind::Addr(utp.local_addr()));
            let (handle, mut channels) = DhtHandle::start_with_channels(config);
            *self.inbox.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(channels.incoming.clone());
            let socket = utp.clone();
            self.runtime.spawn(async move {
                while let Some(d) = channels.outgoing.recv().await {
                    let _ = socket.send_to(&d.payload, d.addr).await;
                }
            });
            return Some(handle);
        }
        let addr = self.listen?;
        match DhtHandle::start(make_config(Bind::Addr(addr))) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!("DHT on {addr}: {e}");
                None
            }
        }
    }

    /// The node stopped: datagrams for it are dropped until the next start.
    pub(crate) fn stopped(&self) {
        *self.inbox.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Turns the node's events into alerts until it stops. (What to announce and when is the
/// engine's decision: [`lt_engine::Action::DhtAnnounce`].)
pub(crate) async fn run(dht: DhtHandle, inputs: mpsc::Sender<Event>) {
    let mut events = dht.subscribe();
    loop {
        let alert = match events.recv().await {
            Ok(DhtEvent::BootstrapDone { nodes }) => Alert::DhtBootstrap { nodes },
            Ok(DhtEvent::IncomingAnnounce { info_hash, peer }) => {
                Alert::DhtAnnounce { info_hash, peer }
            }
            Ok(DhtEvent::ExternalAddress { addr }) => Alert::ExternalIp { address: addr.ip() },
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        let _ = inputs.send(Event::Alert(alert)).await;
    }
}
