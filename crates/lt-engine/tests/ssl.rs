//! SSL torrents in the engine (the manual's "SSL torrents"): what the engine decides, with
//! the test as the driver and TLS itself left to the driver. An SSL torrent waits for its
//! certificate before it dials anyone, then dials with TLS and never MSE; it announces the
//! SSL listen port; it takes only TLS connections made for it; a torrent that is not one
//! takes no TLS connection.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use lt_core::{PeerId, Sha1Hash};
use lt_engine::{
    Action, AddTorrent, Alert, AlertCategory, ConnId, DisconnectReason, Engine, Handshake, Input,
    Settings, TorrentId, Transport,
};
use lt_metainfo::{CreateTorrent, TorrentInfo};
use lt_wire::{PeerConfig, PeerConnection, TorrentParams};

const LISTEN: u16 = 6881;
const SSL_LISTEN: u16 = 4433;

fn torrent(name: &str, ssl: bool) -> Arc<TorrentInfo> {
    let mut create = CreateTorrent::from_memory(name, vec![7; 100_000])
        .piece_size(16 * 1024)
        .tracker("http://tracker.invalid/announce");
    if ssl {
        // The engine does not read the certificate; the driver does.
        create = create.ssl_cert(&b"-----BEGIN CERTIFICATE-----\n"[..]);
    }
    Arc::new(TorrentInfo::from_bytes(&create.generate().unwrap()).unwrap())
}

struct Node {
    engine: Engine,
    now: Instant,
}

impl Node {
    fn new() -> Self {
        let now = Instant::now();
        let mut engine = Engine::new(Settings::default(), PeerId::new([1; 20]), [5; 32], now);
        engine.set_alert_mask(AlertCategory::ALL);
        engine.set_listen_port(LISTEN);
        engine.set_ssl_listen_port(SSL_LISTEN);
        Self { engine, now }
    }

    /// Adds a torrent; its check finds nothing on disk.
    fn add(&mut self, info: &Arc<TorrentInfo>, peer: Option<SocketAddr>) -> TorrentId {
        let mut params = AddTorrent::new(Arc::clone(info));
        params.peers.extend(peer);
        let id = self.engine.add_torrent(self.now, params).unwrap();
        while let Some(a) = self.engine.poll_action() {
            if let Action::Disk(lt_engine::DiskJob::Check { torrent, .. }) = a {
                let n = info.num_pieces() as usize;
                let done = lt_engine::DiskDone::Checked {
                    torrent,
                    result: Ok(lt_core::Bitfield::new(n)),
                };
                let _ = self.engine.handle_input(self.now, Input::Disk(done));
            }
        }
        id
    }

    fn tick(&mut self) -> Vec<Action> {
        self.now += Duration::from_secs(1);
        let _ = self.engine.handle_input(self.now, Input::Timeout);
        std::iter::from_fn(|| self.engine.poll_action()).collect()
    }

    fn alerts(&mut self) -> Vec<Alert> {
        std::iter::from_fn(|| self.engine.poll_alert()).collect()
    }

    /// A peer connects, over TLS for `ssl` (the hash its SNI named), and sends its
    /// handshake for `info`; returns the connection and what the engine did.
    fn incoming(
        &mut self,
        info: &TorrentInfo,
        ssl: Option<Sha1Hash>,
    ) -> (Option<ConnId>, Vec<Action>) {
        let (conn, actions, _) = self.incoming_peer(info, ssl);
        (conn, actions)
    }

    /// As [`Node::incoming`], with the remote peer, which has been handed what the engine
    /// sent it.
    fn incoming_peer(
        &mut self,
        info: &TorrentInfo,
        ssl: Option<Sha1Hash>,
    ) -> (Option<ConnId>, Vec<Action>, Option<PeerConnection>) {
        let addr: SocketAddr = "10.0.0.2:50000".parse().unwrap();
        let handshake = Handshake {
            ssl,
            ..Handshake::default()
        };
        let incoming = Input::Incoming {
            addr,
            transport: Transport::Tcp,
            handshake,
        };
        let Some(conn) = self.engine.handle_input(self.now, incoming) else {
            return (None, Vec::new(), None);
        };
        let mut remote = PeerConnection::outgoing(
            PeerConfig::new(PeerId::new([9; 20])),
            self.now,
            TorrentParams {
                info_hash: info.info_hash(),
                layout: None,
                metadata_size: None,
            },
            None,
            BytesMut::new(),
        )
        .unwrap();
        while let Some(b) = remote.poll_transmit() {
            let data = BytesMut::from(&b[..]);
            let _ = self
                .engine
                .handle_input(self.now, Input::Received { conn, data });
        }
        let actions: Vec<Action> = std::iter::from_fn(|| self.engine.poll_action()).collect();
        for a in &actions {
            if let Action::Send { conn: c, bufs } = a
                && *c == conn
            {
                for b in bufs {
                    let _ = remote.handle_bytes(self.now, b);
                }
            }
        }
        (Some(conn), actions, Some(remote))
    }
}

fn connects(actions: &[Action]) -> Vec<(bool, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Connect { encrypt, ssl, .. } => Some((*ssl, *encrypt)),
            _ => None,
        })
        .collect()
}

/// Why the connection was closed, if it was: its `Close` action and the alert's reason.
fn closed_for(node: &mut Node, conn: ConnId, actions: &[Action]) -> Option<DisconnectReason> {
    let closed = actions
        .iter()
        .any(|a| matches!(a, Action::Close { conn: c } if *c == conn));
    let reason = node.alerts().into_iter().find_map(|a| match a {
        Alert::PeerDisconnected { reason, .. } => Some(reason),
        _ => None,
    });
    assert_eq!(closed, reason.is_some(), "{reason:?} {actions:?}");
    reason
}

#[test]
fn an_ssl_torrent_waits_for_its_certificate_then_dials_over_tls() {
    let mut node = Node::new();
    let peer: SocketAddr = "10.0.0.3:4433".parse().unwrap();
    let info = torrent("secret", true);
    let id = node.add(&info, Some(peer));
    assert!(
        node.alerts()
            .iter()
            .any(|a| matches!(a, Alert::TorrentNeedCert { torrent } if *torrent == id)),
        "no TorrentNeedCert"
    );
    // No dial without a certificate.
    let mut actions = Vec::new();
    for _ in 0..5 {
        actions.extend(node.tick());
    }
    assert_eq!(connects(&actions), vec![], "dialled without a certificate");
    // The DHT and LSD are told the SSL listen port.
    node.engine.set_dht_port(Some(LISTEN));
    node.engine.set_lsd(true, node.now);
    for _ in 0..2 {
        actions.extend(node.tick());
    }
    let announced: Vec<u16> = actions
        .iter()
        .filter_map(|a| match a {
            Action::DhtAnnounce { port, .. } | Action::LsdAnnounce { port, .. } => Some(*port),
            _ => None,
        })
        .collect();
    assert_eq!(announced, vec![SSL_LISTEN, SSL_LISTEN]);
    // Trackers hear the SSL listen port.
    let ports: Vec<u16> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Announce { request, .. } => Some(request.port),
            _ => None,
        })
        .collect();
    assert!(
        !ports.is_empty() && ports.iter().all(|&p| p == SSL_LISTEN),
        "{ports:?}"
    );
    // A plain torrent is not one.
    let plain = node.add(&torrent("open", false), None);
    assert!(!node.engine.set_ssl_certificate(node.now, plain));
    // With one it dials: TLS, no MSE (the default policy encrypts plain torrents).
    assert!(node.engine.set_ssl_certificate(node.now, id));
    let mut actions = Vec::new();
    for _ in 0..3 {
        actions.extend(node.tick());
    }
    assert_eq!(connects(&actions), vec![(true, false)]);
}

#[test]
fn an_ssl_torrent_takes_only_tls_connections_made_for_it() {
    let mut node = Node::new();
    let secret = torrent("secret", true);
    let other = torrent("other secret", true);
    let open = torrent("open", false);
    let (s, o) = (node.add(&secret, None), node.add(&other, None));
    node.add(&open, None);
    assert!(node.engine.set_ssl_certificate(node.now, s));
    assert!(node.engine.set_ssl_certificate(node.now, o));
    let _ = node.alerts();
    let hash = |i: &TorrentInfo| i.info_hash().best();

    // Plaintext (or MSE) to an SSL torrent: closed.
    let (conn, actions) = node.incoming(&secret, None);
    assert_eq!(
        closed_for(&mut node, conn.unwrap(), &actions),
        Some(DisconnectReason::SslMismatch)
    );
    // TLS made for another SSL torrent (its SNI), then this torrent's handshake: closed.
    let (conn, actions) = node.incoming(&secret, Some(hash(&other)));
    assert_eq!(
        closed_for(&mut node, conn.unwrap(), &actions),
        Some(DisconnectReason::SslMismatch)
    );
    // TLS to a torrent that is not an SSL torrent: closed.
    let (conn, actions) = node.incoming(&open, Some(hash(&secret)));
    assert_eq!(
        closed_for(&mut node, conn.unwrap(), &actions),
        Some(DisconnectReason::SslMismatch)
    );
    // TLS made for it: the engine answers with its handshake, and its extension handshake
    // gives the SSL listen port (which PEX then spreads).
    let (conn, actions, remote) = node.incoming_peer(&secret, Some(hash(&secret)));
    let conn = conn.unwrap();
    let mut remote = remote.unwrap();
    let p = std::iter::from_fn(|| remote.poll_event()).find_map(|e| match e {
        lt_wire::PeerEvent::ExtendedHandshake(h) => Some(h.p),
        _ => None,
    });
    assert_eq!(p, Some(Some(SSL_LISTEN)));
    assert_eq!(closed_for(&mut node, conn, &actions), None);
    let sent: usize = actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { conn: c, bufs } if *c == conn => {
                Some(bufs.iter().map(bytes::Bytes::len).sum::<usize>())
            }
            _ => None,
        })
        .sum();
    assert!(sent >= 68, "no handshake back: {actions:?}");
    let info = node.engine.peer_info(s);
    assert_eq!(info.len(), 1);
    assert!(info[0].ssl);
    // A plain peer of the plain torrent is fine.
    let (conn, actions) = node.incoming(&open, None);
    assert_eq!(closed_for(&mut node, conn.unwrap(), &actions), None);
}

#[test]
fn without_a_certificate_an_ssl_torrent_takes_no_one() {
    let mut node = Node::new();
    let secret = torrent("secret", true);
    node.add(&secret, None);
    let (conn, actions) = node.incoming(&secret, Some(secret.info_hash().best()));
    assert_eq!(
        closed_for(&mut node, conn.unwrap(), &actions),
        Some(DisconnectReason::SslMismatch)
    );
}
