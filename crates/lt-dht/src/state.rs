//! What a node saves between runs: its id and the addresses of good nodes, bencoded in
//! libtorrent's `dht state` shape (`node-id`, `nodes`, `nodes6` as lists of compact
//! endpoints), so it can sit in the session's state file.

use std::net::SocketAddr;

use lt_bencode::{Limits, write_bytes};
use lt_core::{Sha1Hash, compact};

use crate::Error;

/// Most saved nodes read back (and written) per address family.
pub const MAX_SAVED_NODES: usize = 200;

/// A node's saved state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DhtState {
    /// The node id to reuse (keeps our place in others' routing tables).
    pub id: Option<Sha1Hash>,
    /// Good nodes, nearest to our id first.
    pub nodes: Vec<SocketAddr>,
}

impl DhtState {
    /// Bencodes the state: `d7:node-id20:...5:nodesl6:...e6:nodes6l18:...ee`.
    #[must_use]
    pub fn to_bencode(&self) -> Vec<u8> {
        let mut out = vec![b'd'];
        if let Some(id) = self.id {
            write_bytes(&mut out, b"node-id");
            write_bytes(&mut out, id.as_bytes());
        }
        for (key, v6) in [(&b"nodes"[..], false), (&b"nodes6"[..], true)] {
            write_bytes(&mut out, key);
            out.push(b'l');
            for n in self
                .nodes
                .iter()
                .filter(|a| a.is_ipv6() == v6)
                .take(MAX_SAVED_NODES)
            {
                write_bytes(&mut out, compact::encode(*n).as_ref());
            }
            out.push(b'e');
        }
        out.push(b'e');
        out
    }

    /// Reads a state written by [`DhtState::to_bencode`] (or libtorrent's `dht state`);
    /// unknown keys and malformed entries are skipped, at most [`MAX_SAVED_NODES`] per family.
    ///
    /// # Errors
    ///
    /// [`Error::Bencode`] if `buf` is not bencoded, [`Error::BadField`] if it is not a
    /// dictionary.
    pub fn from_bencode(buf: &[u8]) -> Result<Self, Error> {
        let limits = Limits {
            max_depth: 4,
            max_items: 4 * MAX_SAVED_NODES + 16,
        };
        let doc = lt_bencode::decode_with(buf, &limits)?;
        let root = doc.root();
        let dict = root.as_dict().ok_or(Error::BadField { key: "dht state" })?;
        let id = dict.get_bytes("node-id").and_then(Sha1Hash::from_slice);
        let mut nodes = Vec::new();
        for key in ["nodes", "nodes6"] {
            if let Some(list) = dict.get_list(key) {
                nodes.extend(
                    list.iter()
                        .filter_map(|n| n.as_bytes().and_then(compact::decode))
                        .take(MAX_SAVED_NODES),
                );
            }
        }
        Ok(Self { id, nodes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let s = DhtState {
            id: Some(Sha1Hash::new([3; 20])),
            nodes: vec![
                "127.0.0.1:6881".parse().unwrap(),
                "[::1]:6882".parse().unwrap(),
            ],
        };
        assert_eq!(DhtState::from_bencode(&s.to_bencode()), Ok(s));
        assert!(DhtState::from_bencode(b"i1e").is_err());
        assert!(DhtState::from_bencode(b"d5:nodesl").is_err());
        assert_eq!(
            DhtState::from_bencode(b"d5:nodesl3:abce7:node-id2:xxe"),
            Ok(DhtState::default())
        );
    }
}
