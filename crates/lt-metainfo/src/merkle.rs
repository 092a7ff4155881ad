//! BEP 52 merkle trees: SHA-256 over 16 KiB leaves, padded with zero hashes to a power of two.
//!
//! For a file of `n` blocks the tree has `n.next_power_of_two()` leaves; missing leaves are
//! all-zero hashes. The *piece layer* is the layer whose nodes each cover one piece; a file
//! larger than one piece stores it in the torrent's `piece layers`, and its root is the tree
//! over the piece layer padded with [`pad_hash`] of a piece's height.

use lt_core::{Sha256Hash, Sha256Hasher};

/// Size of a merkle leaf (one block).
pub(crate) const LEAF_SIZE: u64 = 16 * 1024;

/// The hash of a subtree of `2^height` all-zero leaves (the zero hash for height 0).
#[must_use]
pub fn pad_hash(height: u32) -> Sha256Hash {
    let mut h = Sha256Hash::ZERO;
    for _ in 0..height {
        h = hash_pair(&h, &h);
    }
    h
}

/// The root of the tree over `nodes` padded with `pad` to a power of two.
/// An empty list yields the zero hash.
#[must_use]
pub fn merkle_root(nodes: &[Sha256Hash], pad: Sha256Hash) -> Sha256Hash {
    match nodes {
        [] => Sha256Hash::ZERO,
        [one] => *one,
        _ => {
            let mut layer: Vec<Sha256Hash> = nodes.to_vec();
            let mut pad = pad;
            while layer.len() > 1 {
                if layer.len() % 2 == 1 {
                    layer.push(pad);
                }
                layer = layer
                    .chunks_exact(2)
                    .map(|pair| hash_pair(&pair[0], &pair[1]))
                    .collect();
                pad = hash_pair(&pad, &pad);
            }
            layer[0]
        }
    }
}

/// The tree of one file: its `pieces root` and, for files larger than a piece, its piece
/// layer. `leaves` are the SHA-256 hashes of the file's 16 KiB blocks (the last one short).
pub(crate) fn file_tree(
    leaves: &[Sha256Hash],
    piece_length: u64,
) -> (Sha256Hash, Option<Vec<Sha256Hash>>) {
    let blocks_per_piece = usize::try_from(piece_length / LEAF_SIZE).unwrap_or(usize::MAX);
    if leaves.len() <= blocks_per_piece {
        return (merkle_root(leaves, Sha256Hash::ZERO), None);
    }
    let layer: Vec<Sha256Hash> = leaves
        .chunks(blocks_per_piece)
        .map(|piece| piece_hash(piece, blocks_per_piece))
        .collect();
    let root = merkle_root(&layer, pad_hash(blocks_per_piece.trailing_zeros()));
    (root, Some(layer))
}

/// The hash of one piece: its leaves padded with zero hashes to a full piece.
pub(crate) fn piece_hash(leaves: &[Sha256Hash], blocks_per_piece: usize) -> Sha256Hash {
    if leaves.len() == blocks_per_piece {
        return merkle_root(leaves, Sha256Hash::ZERO);
    }
    // Pad to the piece's full width so every piece hash has the same height.
    let mut padded = leaves.to_vec();
    padded.resize(blocks_per_piece, Sha256Hash::ZERO);
    merkle_root(&padded, Sha256Hash::ZERO)
}

fn hash_pair(a: &Sha256Hash, b: &Sha256Hash) -> Sha256Hash {
    let mut h = Sha256Hasher::new();
    h.update(a.as_bytes());
    h.update(b.as_bytes());
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u8) -> Sha256Hash {
        Sha256Hash::digest(&[i])
    }

    #[test]
    fn padding_matches_explicit_zero_leaves() {
        let leaves: Vec<_> = (0..5).map(leaf).collect();
        let mut padded = leaves.clone();
        padded.resize(8, Sha256Hash::ZERO);
        assert_eq!(
            merkle_root(&leaves, Sha256Hash::ZERO),
            merkle_root(&padded, Sha256Hash::ZERO)
        );
    }

    #[test]
    fn piece_layer_root_equals_leaf_root() {
        // 4 blocks per piece, 9 blocks: 3 pieces, padded to 4 pieces = 16 leaves.
        let leaves: Vec<_> = (0..9).map(leaf).collect();
        let (root, layer) = file_tree(&leaves, 4 * LEAF_SIZE);
        let layer = layer.unwrap();
        assert_eq!(layer.len(), 3);
        assert_eq!(root, merkle_root(&leaves, Sha256Hash::ZERO));
        assert_eq!(merkle_root(&layer, pad_hash(2)), root);
    }

    #[test]
    fn small_files_have_no_layer() {
        let leaves: Vec<_> = (0..3).map(leaf).collect();
        let (root, layer) = file_tree(&leaves, 4 * LEAF_SIZE);
        assert!(layer.is_none());
        assert_eq!(root, merkle_root(&leaves, Sha256Hash::ZERO));
        assert_eq!(file_tree(&[leaf(1)], LEAF_SIZE).0, leaf(1));
    }
}
