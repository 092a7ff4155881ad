//! Index newtypes, so a piece index cannot be passed where a file index is meant.

use core::fmt;

/// The size of a block, the unit of a REQUEST and a PIECE message: 16 KiB.
///
/// BEP 3 lets the last block of a piece be shorter, and peers should not
/// request more than this; BEP 52 also hashes v2 leaves in 16 KiB blocks.
pub const BLOCK_SIZE: u32 = 16 * 1024;

macro_rules! index_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
        #[repr(transparent)]
        pub struct $name(pub u32);

        impl $name {
            /// Wraps a raw index.
            #[must_use]
            pub const fn new(index: u32) -> Self {
                Self(index)
            }

            /// The raw index.
            #[must_use]
            pub const fn get(self) -> u32 {
                self.0
            }

            /// The raw index as a `usize`, for indexing slices and bitfields.
            #[must_use]
            pub const fn as_usize(self) -> usize {
                // Lossless: every platform lt supports has a usize of at least 32 bits.
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<u32> for $name {
            fn from(index: u32) -> Self {
                Self(index)
            }
        }

        impl From<$name> for u32 {
            fn from(index: $name) -> Self {
                index.0
            }
        }

        #[cfg(feature = "quickcheck")]
        impl quickcheck::Arbitrary for $name {
            fn arbitrary(g: &mut quickcheck::Gen) -> Self {
                Self(u32::arbitrary(g))
            }

            fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
                Box::new(self.0.shrink().map(Self))
            }
        }
    };
}

index_newtype!(
    /// The index of a piece within a torrent (0-based).
    PieceIndex
);

index_newtype!(
    /// The index of a block within its piece: the block at byte offset
    /// `index * BLOCK_SIZE`.
    BlockIndex
);

index_newtype!(
    /// The index of a file within a torrent's file list (0-based).
    FileIndex
);

impl BlockIndex {
    /// The byte offset of this block within its piece, or `None` on overflow.
    #[must_use]
    pub const fn offset(self) -> Option<u32> {
        self.0.checked_mul(BLOCK_SIZE)
    }

    /// The block that starts at byte `offset` of a piece, if `offset` is a
    /// multiple of [`BLOCK_SIZE`].
    #[must_use]
    pub const fn from_offset(offset: u32) -> Option<Self> {
        if offset.is_multiple_of(BLOCK_SIZE) {
            Some(Self(offset / BLOCK_SIZE))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        let p = PieceIndex::from(7);
        assert_eq!(p.get(), 7);
        assert_eq!(p.as_usize(), 7);
        assert_eq!(u32::from(p), 7);
        assert_eq!(p.to_string(), "7");
        assert_eq!(format!("{:>3}", FileIndex::new(1)), "  1");
        assert!(PieceIndex(1) < PieceIndex(2));
    }

    #[test]
    fn block_offsets() {
        assert_eq!(BLOCK_SIZE, 16_384);
        assert_eq!(BlockIndex(3).offset(), Some(3 * 16_384));
        assert_eq!(BlockIndex(u32::MAX).offset(), None);
        assert_eq!(BlockIndex::from_offset(32_768), Some(BlockIndex(2)));
        assert_eq!(BlockIndex::from_offset(100), None);
    }
}
