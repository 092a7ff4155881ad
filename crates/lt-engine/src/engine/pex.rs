//! Peer exchange (BEP 11).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use lt_wire::ExtensionMessage;

use crate::torrent::{PeerEntry, PeerSource};
use crate::{ConnId, TorrentId};

use super::Engine;
use super::conn::Conn;

impl Engine {
    /// Where a connected peer accepts connections, if known.
    pub(super) fn listen_addr(c: &Conn) -> Option<SocketAddr> {
        if c.outgoing {
            Some(c.addr)
        } else {
            c.listen_port.map(|p| SocketAddr::new(c.addr.ip(), p))
        }
    }

    /// Peers a connected peer (at `from`) told us of (BEP 11); loopback addresses only from
    /// a peer on this machine.
    pub(super) fn on_pex(&mut self, id: TorrentId, from: SocketAddr, m: &lt_wire::PexMessage) {
        let max = self.settings.max_peerlist_size;
        let loopback_ok = from.ip().is_loopback();
        let listen_port = self.listen_port;
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if t.has_metadata && t.info.is_private() {
            return;
        }
        for p in &m.added {
            if t.peers.len() >= max {
                break;
            }
            let a = p.addr;
            if !crate::torrent::listable(a, listen_port, loopback_ok) {
                continue;
            }
            let e = t
                .peers
                .entry(a)
                .or_insert_with(|| PeerEntry::new(PeerSource::Pex));
            if p.flags.has(lt_wire::PexFlags::SEED) {
                e.seed = true;
            }
            if p.flags.has(lt_wire::PexFlags::UTP) {
                e.utp.get_or_insert(true);
            }
        }
    }

    /// Sends each peer that speaks ut_pex the peers joined and left since the last message,
    /// at most once per `pex_interval` (BEP 11: at most 50 of each).
    pub(super) fn send_pex(&mut self, now: Instant) {
        let interval = self.settings.pex_interval;
        // Only active torrents have peers to tell about.
        let ids: Vec<TorrentId> = self
            .torrents
            .awake_iter()
            .filter(|(_, t)| t.is_active() && !t.conns.is_empty())
            .map(|(id, _)| id)
            .collect();
        for id in ids {
            let Some(t) = self.torrents.get(&id) else {
                continue;
            };
            if !t.has_metadata || t.info.is_private() || !t.is_active() {
                continue;
            }
            let mut current: BTreeMap<SocketAddr, u8> = BTreeMap::new();
            for c in t.conns.iter().filter_map(|c| self.conns.get(c)) {
                if c.connected
                    && let Some(a) = Self::listen_addr(c)
                {
                    let flag = |on: bool, f: u8| if on { f } else { 0 };
                    let flags = flag(c.seed, lt_wire::PexFlags::SEED)
                        | flag(c.utp, lt_wire::PexFlags::UTP)
                        | flag(c.encrypted, lt_wire::PexFlags::ENCRYPTION)
                        | flag(c.outgoing, lt_wire::PexFlags::REACHABLE);
                    current.insert(a, flags);
                }
            }
            let conns: Vec<ConnId> = t.conns.iter().copied().collect();
            for cid in conns {
                let Some(c) = self.conns.get_mut(&cid) else {
                    continue;
                };
                if !c.connected
                    || c.last_pex
                        .is_some_and(|l| now.saturating_duration_since(l) < interval)
                {
                    continue;
                }
                let own = Self::listen_addr(c);
                let Some(w) = c.wire.as_mut() else { continue };
                if w.extension_ids().remote(lt_wire::Extension::Pex).is_none() {
                    continue;
                }
                let added: Vec<lt_wire::PexPeer> = current
                    .iter()
                    .filter(|&(a, _)| Some(*a) != own && !c.pex_sent.contains(a))
                    .take(50)
                    .map(|(&addr, &flags)| lt_wire::PexPeer {
                        addr,
                        flags: lt_wire::PexFlags(flags),
                    })
                    .collect();
                let dropped: Vec<SocketAddr> = c
                    .pex_sent
                    .iter()
                    .filter(|a| !current.contains_key(a))
                    .take(50)
                    .copied()
                    .collect();
                if added.is_empty() && dropped.is_empty() && c.last_pex.is_some() {
                    continue;
                }
                for p in &added {
                    c.pex_sent.insert(p.addr);
                }
                for a in &dropped {
                    c.pex_sent.remove(a);
                }
                c.last_pex = Some(now);
                let msg = ExtensionMessage::Pex(lt_wire::PexMessage { added, dropped });
                if w.send_extension(now, &msg).is_ok() {
                    self.flush(cid);
                }
            }
        }
    }
}
