//! `ut_pex` (BEP 11): peer exchange.
//!
//! ```text
//! {added: <6 bytes per IPv4 peer>, added.f: <1 flag byte per peer>,
//!  added6: <18 bytes per IPv6 peer>, added6.f: <flags>,
//!  dropped: <6 bytes per peer>, dropped6: <18 bytes per peer>}
//! ```
//!
//! A peer can flood us with addresses: [`PexMessage::decode`] bounds the payload size and
//! the number of peers per message, and [`PexRateLimiter`] bounds how often messages may
//! arrive (libtorrent's rules).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use lt_bencode::Value;
use lt_core::compact;

use crate::limits::{PEX_FLOOD_COUNT, PEX_FLOOD_WINDOW};
use crate::{Error, Limits};

/// The flag byte of a PEX peer (BEP 11).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// 0x01: the peer prefers encryption.
    pub const ENCRYPTION: u8 = 0x01;
    /// 0x02: the peer is a seed or upload-only.
    pub const SEED: u8 = 0x02;
    /// 0x04: the peer supports uTP.
    pub const UTP: u8 = 0x04;
    /// 0x08: the peer supports ut_holepunch (BEP 55).
    pub const HOLEPUNCH: u8 = 0x08;
    /// 0x10: the peer is reachable (the sender connected out to it).
    pub const REACHABLE: u8 = 0x10;

    /// Whether every bit of `flag` is set.
    #[must_use]
    pub const fn has(self, flag: u8) -> bool {
        self.0 & flag == flag
    }
}

/// An added peer and its flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PexPeer {
    /// Its address.
    pub addr: SocketAddr,
    /// What the sender knows about it.
    pub flags: PexFlags,
}

/// A ut_pex message.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct PexMessage {
    /// Peers the sender connected to since its last message (IPv4 and IPv6).
    pub added: Vec<PexPeer>,
    /// Peers the sender disconnected from (IPv4 and IPv6).
    pub dropped: Vec<SocketAddr>,
}

impl PexMessage {
    /// Parses a payload.
    ///
    /// # Errors
    /// [`Error::ExtensionTooLong`] over [`Limits::max_pex_message_len`],
    /// [`Error::PexTooManyPeers`] when `added` or `dropped` list more than
    /// [`Limits::max_pex_peers`], [`Error::BadPex`] for compact strings of the wrong length.
    pub fn decode(payload: &[u8], limits: &Limits) -> Result<Self, Error> {
        if payload.len() > limits.max_pex_message_len {
            return Err(Error::ExtensionTooLong {
                len: payload.len(),
                max: limits.max_pex_message_len,
            });
        }
        let (doc, _) = lt_bencode::decode_prefix_with(payload, &limits.bencode())?;
        let dict = doc
            .root()
            .as_dict()
            .ok_or(Error::BadPex("not a dictionary"))?;
        let get = |k: &str| dict.get_bytes(k).unwrap_or_default();
        let (added4, added6) = (get("added"), get("added6"));
        let (dropped4, dropped6) = (get("dropped"), get("dropped6"));
        if added4.len() % 6 != 0 || dropped4.len() % 6 != 0 {
            return Err(Error::BadPex("IPv4 list not a multiple of 6 bytes"));
        }
        if added6.len() % 18 != 0 || dropped6.len() % 18 != 0 {
            return Err(Error::BadPex("IPv6 list not a multiple of 18 bytes"));
        }
        let n_added = added4.len() / 6 + added6.len() / 18;
        let n_dropped = dropped4.len() / 6 + dropped6.len() / 18;
        for count in [n_added, n_dropped] {
            if count > limits.max_pex_peers {
                return Err(Error::PexTooManyPeers {
                    count,
                    max: limits.max_pex_peers,
                });
            }
        }
        let flags4 = flags(dict.get_bytes("added.f"), added4.len() / 6)?;
        let flags6 = flags(dict.get_bytes("added6.f"), added6.len() / 18)?;
        // Both counts are bounded by max_pex_peers, checked above.
        let mut added = Vec::with_capacity(n_added);
        for (i, addr) in compact::iter_v4(added4).enumerate() {
            added.push(PexPeer {
                addr,
                flags: PexFlags(flags4.get(i).copied().unwrap_or(0)),
            });
        }
        for (i, addr) in compact::iter_v6(added6).enumerate() {
            added.push(PexPeer {
                addr,
                flags: PexFlags(flags6.get(i).copied().unwrap_or(0)),
            });
        }
        let dropped = compact::iter_v4(dropped4)
            .chain(compact::iter_v6(dropped6))
            .collect();
        Ok(Self { added, dropped })
    }

    /// The bencoded payload, with all six keys (as libtorrent writes it).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut a4 = Vec::new();
        let mut f4 = Vec::new();
        let mut a6 = Vec::new();
        let mut f6 = Vec::new();
        for p in &self.added {
            if put_addr(&mut a4, &mut a6, p.addr) {
                f4.push(p.flags.0);
            } else {
                f6.push(p.flags.0);
            }
        }
        let mut d4 = Vec::new();
        let mut d6 = Vec::new();
        for &a in &self.dropped {
            put_addr(&mut d4, &mut d6, a);
        }
        Value::dict([
            ("added", Value::Bytes(a4)),
            ("added.f", Value::Bytes(f4)),
            ("added6", Value::Bytes(a6)),
            ("added6.f", Value::Bytes(f6)),
            ("dropped", Value::Bytes(d4)),
            ("dropped6", Value::Bytes(d6)),
        ])
        .to_bytes()
    }
}

fn flags(f: Option<&[u8]>, n: usize) -> Result<&[u8], Error> {
    match f {
        None => Ok(&[]),
        Some(f) if f.len() == n => Ok(f),
        Some(_) => Err(Error::BadPex("flag count does not match peer count")),
    }
}

/// Appends `a` to the v4 or v6 list; returns whether it was v4.
fn put_addr(v4: &mut Vec<u8>, v6: &mut Vec<u8>, a: SocketAddr) -> bool {
    let bytes = compact::encode(a);
    let list = if a.is_ipv4() { v4 } else { v6 };
    list.extend_from_slice(bytes.as_ref());
    a.is_ipv4()
}

/// libtorrent's ut_pex flood rule: at most [`PEX_FLOOD_COUNT`] messages within any
/// [`PEX_FLOOD_WINDOW`] (it looks several messages back because a rate-limited connection
/// may deliver honest messages back to back).
///
/// ```
/// use std::time::{Duration, Instant};
/// let mut rl = lt_wire::PexRateLimiter::default();
/// let t = Instant::now();
/// for i in 0..6 {
///     rl.check(t + Duration::from_secs(i))?;
/// }
/// assert!(rl.check(t + Duration::from_secs(7)).is_err());
/// # Ok::<(), lt_wire::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct PexRateLimiter {
    recent: VecDeque<Instant>,
}

impl PexRateLimiter {
    /// Records a message received at `now`.
    ///
    /// # Errors
    /// [`Error::PexTooFrequent`] when it is one too many for the window.
    pub fn check(&mut self, now: Instant) -> Result<(), Error> {
        if self.recent.len() >= PEX_FLOOD_COUNT {
            if let Some(&oldest) = self.recent.front()
                && now.saturating_duration_since(oldest) < PEX_FLOOD_WINDOW
            {
                return Err(Error::PexTooFrequent);
            }
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        Ok(())
    }
}

#[cfg(feature = "quickcheck")]
impl quickcheck::Arbitrary for PexMessage {
    fn arbitrary(g: &mut quickcheck::Gen) -> Self {
        let n = usize::arbitrary(g) % 20;
        let mut added: Vec<PexPeer> = (0..n)
            .map(|_| PexPeer {
                addr: SocketAddr::arbitrary(g),
                flags: PexFlags(u8::arbitrary(g)),
            })
            .collect();
        // The wire groups IPv4 before IPv6.
        added.sort_by_key(|p| p.addr.is_ipv6());
        let m = usize::arbitrary(g) % 20;
        let mut dropped: Vec<SocketAddr> = (0..m).map(|_| SocketAddr::arbitrary(g)).collect();
        dropped.sort_by_key(SocketAddr::is_ipv6);
        Self { added, dropped }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = PexMessage {
            added: vec![
                PexPeer {
                    addr: "1.2.3.4:5".parse().unwrap(),
                    flags: PexFlags(PexFlags::SEED | PexFlags::UTP),
                },
                PexPeer {
                    addr: "[::2]:7".parse().unwrap(),
                    flags: PexFlags(PexFlags::ENCRYPTION),
                },
            ],
            dropped: vec!["9.9.9.9:1".parse().unwrap()],
        };
        assert_eq!(PexMessage::decode(&m.to_bytes(), &Limits::default()), Ok(m));
    }

    #[test]
    fn floods() {
        let l = Limits {
            max_pex_peers: 2,
            ..Limits::default()
        };
        let many = Value::dict([("added", Value::Bytes(vec![1; 18]))]).to_bytes();
        assert_eq!(
            PexMessage::decode(&many, &l),
            Err(Error::PexTooManyPeers { count: 3, max: 2 })
        );
        let bad = Value::dict([("added", Value::Bytes(vec![1; 7]))]).to_bytes();
        assert!(matches!(
            PexMessage::decode(&bad, &l),
            Err(Error::BadPex(_))
        ));
        let flags = Value::dict([
            ("added", Value::Bytes(vec![1; 6])),
            ("added.f", Value::Bytes(vec![1; 2])),
        ])
        .to_bytes();
        assert!(matches!(
            PexMessage::decode(&flags, &l),
            Err(Error::BadPex(_))
        ));
    }
}
