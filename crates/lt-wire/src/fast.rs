//! The canonical allowed-fast set generator of BEP 6.
//!
//! A seed tells each peer a few pieces it may download while choked. Which ones is a
//! function of the peer's address and the torrent only, so a peer cannot get a new set by
//! reconnecting.

use std::net::IpAddr;

use lt_core::{PieceIndex, Sha1Hash, Sha1Hasher};

/// The first `k` pieces of the allowed-fast set of a peer at `ip` for the torrent with
/// `info_hash` and `num_pieces` pieces (BEP 6, "Allowed Fast").
///
/// For IPv4 the address is masked to its /24, as BEP 6 specifies. For IPv6 (which BEP 6
/// does not cover) the first 8 bytes are kept and the rest masked, and that is hashed in
/// place of the 4 IPv4 bytes. `k` is capped at `num_pieces`, so the loop always ends.
///
/// ```
/// use lt_wire::allowed_fast_set;
/// // The example of BEP 6.
/// let set = allowed_fast_set("80.4.4.200".parse()?, &[0xaa; 20].into(), 1313, 7);
/// let set: Vec<u32> = set.iter().map(|p| p.get()).collect();
/// assert_eq!(set, [1059, 431, 808, 1217, 287, 376, 1188]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn allowed_fast_set(
    ip: IpAddr,
    info_hash: &Sha1Hash,
    num_pieces: u32,
    k: usize,
) -> Vec<PieceIndex> {
    let k = k.min(usize::try_from(num_pieces).unwrap_or(usize::MAX));
    let mut set: Vec<PieceIndex> = Vec::with_capacity(k);
    if k == 0 {
        return set;
    }
    // BEP 6: x = (ip & 0xffffff00) ++ info-hash, then x = SHA1(x) repeatedly.
    let mut x: Vec<u8> = match ip {
        IpAddr::V4(v4) => {
            let mut o = v4.octets();
            o[3] = 0;
            o.to_vec()
        }
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            o.to_vec()
        }
    };
    x.extend_from_slice(info_hash.as_bytes());
    while set.len() < k {
        let mut h = Sha1Hasher::new();
        h.update(&x);
        let digest = h.finalize();
        x.clear();
        x.extend_from_slice(digest.as_bytes());
        for chunk in digest.as_bytes().chunks_exact(4) {
            if set.len() >= k {
                break;
            }
            let y = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let index = PieceIndex::new(y % num_pieces);
            if !set.contains(&index) {
                set.push(index);
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bep6_vectors() {
        let ih = Sha1Hash::new([0xaa; 20]);
        let ip: IpAddr = "80.4.4.200".parse().unwrap();
        let nine: Vec<u32> = allowed_fast_set(ip, &ih, 1313, 9)
            .iter()
            .map(|p| p.get())
            .collect();
        assert_eq!(nine, [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]);
        // Same /24, same set.
        assert_eq!(
            allowed_fast_set("80.4.4.1".parse().unwrap(), &ih, 1313, 9),
            allowed_fast_set(ip, &ih, 1313, 9)
        );
    }

    #[test]
    fn small_torrents_terminate() {
        let ih = Sha1Hash::new([1; 20]);
        let ip: IpAddr = "::1".parse().unwrap();
        let mut all = allowed_fast_set(ip, &ih, 3, 10);
        all.sort();
        assert_eq!(all, [PieceIndex(0), PieceIndex(1), PieceIndex(2)]);
        assert!(allowed_fast_set(ip, &ih, 0, 10).is_empty());
    }
}
