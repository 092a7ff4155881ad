//! How a torrent splits into pieces and blocks, and file priorities mapped to
//! pieces.

use lt_core::{BLOCK_SIZE, BlockIndex, PieceIndex};

use crate::{Block, Error, Priority};

/// At most this many blocks per piece. Pieces longer than
/// `MAX_BLOCKS_PER_PIECE * block size` (4 MiB with 16 KiB blocks) use larger
/// blocks, as the manual's `torrent_status::block_size` describes and as
/// libtorrent does.
pub const MAX_BLOCKS_PER_PIECE: u32 = 256;

/// The piece and block geometry of a torrent.
///
/// ```
/// use lt_picker::{Block, Layout};
///
/// // 1 MiB + 1 byte in 256 KiB pieces: 5 pieces, the last one 1 byte long.
/// let layout = Layout::new(1024 * 1024 + 1, 256 * 1024, 16 * 1024)?;
/// assert_eq!(layout.num_pieces(), 5);
/// assert_eq!(layout.blocks_in_piece(0), 16);
/// assert_eq!(layout.blocks_in_piece(4), 1);
/// assert_eq!(layout.request(Block::new(0, 3)), Some((3 * 16384, 16384)));
/// assert_eq!(layout.request(Block::new(4, 0)), Some((0, 1)));
///
/// // 16 MiB pieces get 64 KiB blocks, so a piece has at most 256 blocks.
/// let big = Layout::new(1 << 30, 16 << 20, 16 * 1024)?;
/// assert_eq!(big.block_size(), 64 * 1024);
/// # Ok::<(), lt_picker::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Layout {
    total_len: u64,
    num_pieces: u32,
    piece_len: u32,
    last_piece_len: u32,
    block_size: u32,
    blocks_per_piece: u32,
    blocks_in_last_piece: u32,
}

impl Layout {
    /// The layout of `total_len` bytes in pieces of `piece_len` bytes and
    /// blocks of `block_size` bytes ([`BLOCK_SIZE`] unless the caller wants
    /// otherwise). The block size is raised for pieces of more than
    /// [`MAX_BLOCKS_PER_PIECE`] blocks and lowered to `piece_len` for pieces
    /// shorter than one block.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`] for a zero piece length or block size, or more
    /// than `u32::MAX` pieces.
    pub fn new(total_len: u64, piece_len: u32, block_size: u32) -> Result<Self, Error> {
        if piece_len == 0 {
            return Err(Error::InvalidLayout("piece length is zero"));
        }
        if block_size == 0 {
            return Err(Error::InvalidLayout("block size is zero"));
        }
        let num_pieces = u32::try_from(total_len.div_ceil(u64::from(piece_len)))
            .map_err(|_| Error::InvalidLayout("more than 2^32 - 1 pieces"))?;
        let block_size = block_size
            .min(piece_len)
            .max(piece_len.div_ceil(MAX_BLOCKS_PER_PIECE));
        let last_piece_len = if num_pieces == 0 {
            0
        } else {
            let before_last = u64::from(num_pieces - 1) * u64::from(piece_len);
            // total_len - before_last is in 1..=piece_len by the division above.
            u32::try_from(total_len - before_last).unwrap_or(piece_len)
        };
        Ok(Self {
            total_len,
            num_pieces,
            piece_len,
            last_piece_len,
            block_size,
            blocks_per_piece: piece_len.div_ceil(block_size),
            blocks_in_last_piece: last_piece_len.div_ceil(block_size),
        })
    }

    /// A layout of `num_pieces` pieces of `blocks_per_piece` full 16 KiB blocks
    /// each: handy for tests and simulations.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLayout`] if `blocks_per_piece` is 0 or above
    /// [`MAX_BLOCKS_PER_PIECE`].
    pub fn uniform(num_pieces: u32, blocks_per_piece: u32) -> Result<Self, Error> {
        if blocks_per_piece == 0 || blocks_per_piece > MAX_BLOCKS_PER_PIECE {
            return Err(Error::InvalidLayout("blocks per piece not in 1..=256"));
        }
        let piece_len = blocks_per_piece * BLOCK_SIZE;
        Self::new(
            u64::from(num_pieces) * u64::from(piece_len),
            piece_len,
            BLOCK_SIZE,
        )
    }

    /// The torrent's length in bytes.
    #[must_use]
    pub const fn total_len(&self) -> u64 {
        self.total_len
    }

    /// The number of pieces.
    #[must_use]
    pub const fn num_pieces(&self) -> u32 {
        self.num_pieces
    }

    /// The nominal piece length.
    #[must_use]
    pub const fn piece_len(&self) -> u32 {
        self.piece_len
    }

    /// The block size in bytes (see [`Self::new`]).
    #[must_use]
    pub const fn block_size(&self) -> u32 {
        self.block_size
    }

    /// The number of blocks of every piece but the last.
    #[must_use]
    pub const fn blocks_per_piece(&self) -> u32 {
        self.blocks_per_piece
    }

    /// The length of piece `piece` in bytes; 0 past the end.
    #[must_use]
    pub const fn piece_size(&self, piece: u32) -> u32 {
        if piece >= self.num_pieces {
            0
        } else if piece == self.num_pieces - 1 {
            self.last_piece_len
        } else {
            self.piece_len
        }
    }

    /// The number of blocks of piece `piece`; 0 past the end.
    #[must_use]
    pub const fn blocks_in_piece(&self, piece: u32) -> u32 {
        if piece >= self.num_pieces {
            0
        } else if piece == self.num_pieces - 1 {
            self.blocks_in_last_piece
        } else {
            self.blocks_per_piece
        }
    }

    /// The REQUEST for `block`: its byte offset within the piece and its
    /// length. `None` if the block does not exist.
    #[must_use]
    pub fn request(&self, block: Block) -> Option<(u32, u32)> {
        let piece = block.piece.get();
        let index = block.block.get();
        if index >= self.blocks_in_piece(piece) {
            return None;
        }
        let offset = index.checked_mul(self.block_size)?;
        let len = self.block_size.min(self.piece_size(piece) - offset);
        Some((offset, len))
    }

    /// The block of `piece` that starts at byte `offset`, if `offset` is a
    /// block boundary inside the piece: for matching a PIECE or REJECT message.
    #[must_use]
    pub fn block_at(&self, piece: PieceIndex, offset: u32) -> Option<Block> {
        if !offset.is_multiple_of(self.block_size) {
            return None;
        }
        let index = offset / self.block_size;
        (index < self.blocks_in_piece(piece.get())).then_some(Block {
            piece,
            block: BlockIndex(index),
        })
    }

    /// Piece priorities from file priorities, as `prioritize_files()` sets
    /// them: each piece gets the highest priority of the non-empty files it
    /// overlaps; pieces overlapping no file keep [`Priority::DONT_DOWNLOAD`].
    ///
    /// ```
    /// use lt_picker::{Layout, Priority};
    ///
    /// // Three files of 10, 30 and 24 bytes in 16-byte pieces.
    /// let layout = Layout::new(64, 16, 16)?;
    /// let p = |v| Priority::new(v).unwrap();
    /// let pieces = layout.file_priorities_to_pieces(&[10, 30, 24], &[p(0), p(3), p(0)])?;
    /// assert_eq!(pieces, [p(3), p(3), p(3), p(0)]);
    /// # Ok::<(), lt_picker::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] if the two slices differ in length or the
    /// file sizes do not add up to [`Self::total_len`].
    pub fn file_priorities_to_pieces(
        &self,
        file_sizes: &[u64],
        priorities: &[Priority],
    ) -> Result<Vec<Priority>, Error> {
        if file_sizes.len() != priorities.len() {
            return Err(Error::LengthMismatch {
                expected: file_sizes.len(),
                actual: priorities.len(),
            });
        }
        let sum = file_sizes
            .iter()
            .try_fold(0u64, |acc, &size| acc.checked_add(size));
        if sum != Some(self.total_len) {
            return Err(Error::LengthMismatch {
                expected: usize::try_from(self.total_len).unwrap_or(usize::MAX),
                actual: usize::try_from(sum.unwrap_or(u64::MAX)).unwrap_or(usize::MAX),
            });
        }
        let num_pieces = usize::try_from(self.num_pieces).unwrap_or(usize::MAX);
        let mut out = vec![Priority::DONT_DOWNLOAD; num_pieces];
        let piece_len = u64::from(self.piece_len);
        let mut offset = 0u64;
        for (&size, &prio) in file_sizes.iter().zip(priorities) {
            if size == 0 {
                continue;
            }
            let first = offset / piece_len;
            let last = (offset + size - 1) / piece_len;
            offset += size;
            for piece in first..=last {
                if let Some(slot) = usize::try_from(piece).ok().and_then(|i| out.get_mut(i)) {
                    *slot = (*slot).max(prio);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry() {
        let l = Layout::new(100, 40, 16).unwrap();
        assert_eq!(l.num_pieces(), 3);
        assert_eq!(l.piece_size(2), 20);
        assert_eq!(l.blocks_in_piece(0), 3);
        assert_eq!(l.blocks_in_piece(2), 2);
        assert_eq!(l.blocks_in_piece(3), 0);
        assert_eq!(l.request(Block::new(0, 2)), Some((32, 8)));
        assert_eq!(l.request(Block::new(2, 1)), Some((16, 4)));
        assert_eq!(l.request(Block::new(2, 2)), None);
        assert_eq!(l.request(Block::new(9, 0)), None);
        assert_eq!(l.block_at(PieceIndex(1), 16), Some(Block::new(1, 1)));
        assert_eq!(l.block_at(PieceIndex(1), 17), None);
        assert_eq!(l.block_at(PieceIndex(2), 32), None);
    }

    #[test]
    fn block_size_adapts() {
        // A piece shorter than a block is one block.
        assert_eq!(Layout::new(10, 8, 16).unwrap().block_size(), 8);
        // 4 MiB pieces keep 16 KiB blocks; 8 MiB pieces get 32 KiB blocks.
        assert_eq!(
            Layout::new(1 << 30, 4 << 20, BLOCK_SIZE)
                .unwrap()
                .block_size(),
            BLOCK_SIZE
        );
        let l = Layout::new(1 << 30, 8 << 20, BLOCK_SIZE).unwrap();
        assert_eq!(l.block_size(), 32 * 1024);
        assert_eq!(l.blocks_per_piece(), 256);
        assert!(Layout::new(1, 0, 1).is_err());
        assert!(Layout::new(1, 1, 0).is_err());
        assert!(Layout::new(u64::MAX, 1, 1).is_err());
        assert_eq!(Layout::new(0, 16, 16).unwrap().num_pieces(), 0);
    }

    #[test]
    fn file_priorities() {
        let l = Layout::new(64, 16, 16).unwrap();
        let p = |v| Priority::new(v).unwrap();
        assert_eq!(
            l.file_priorities_to_pieces(&[16, 0, 48], &[p(2), p(7), p(1)])
                .unwrap(),
            [p(2), p(1), p(1), p(1)]
        );
        assert!(l.file_priorities_to_pieces(&[64], &[]).is_err());
        assert!(l.file_priorities_to_pieces(&[63], &[p(1)]).is_err());
    }
}
