//! The picker's settings and limits.

use lt_core::BLOCK_SIZE;

/// Settings of a [`crate::PiecePicker`], named after the manual's
/// `session_settings` where one exists. Every collection a peer can grow has
/// its cap here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Seed of the picker's random number generator, which shuffles pieces of
    /// equal rarity and picks the initial random pieces. lt-engine passes one
    /// drawn from its own seeded generator; `None` uses a fixed built-in seed
    /// (deterministic, so every picker without a seed shuffles alike).
    /// Default `None`.
    pub rng_seed: Option<[u8; 32]>,
    /// Preferred block size in bytes: 16 KiB ([`BLOCK_SIZE`]), the most
    /// clients serve (BEP 3). [`crate::Layout::new`] raises it for pieces of
    /// more than 4 MiB.
    pub block_size: u32,
    /// `initial_picker_threshold`: while we have fewer pieces than this, pick
    /// random pieces (finishing partial ones first) instead of rare ones, to
    /// get something to trade quickly. Default 4.
    pub initial_picker_threshold: u32,
    /// `prioritize_partial_pieces`: always finish partial pieces before
    /// starting rarer ones. Default `false`; the picker turns it on by itself
    /// while there are more than 1.5 partial pieces per peer.
    pub prioritize_partial_pieces: bool,
    /// `strict_end_game_mode`: only request a block a second time once every
    /// wanted piece has at least one request. Default `true`.
    pub strict_end_game: bool,
    /// Sequential download: pick pieces in index order (priority 7 pieces and
    /// deadlines still go first). Default `false`; see also
    /// [`crate::PiecePicker::set_sequential`].
    pub sequential: bool,
    /// The most peers that may be registered at once. Default 4,000.
    pub max_peers: usize,
    /// `max_suggest_pieces`: SUGGEST PIECE messages (BEP 6) remembered per
    /// peer; older ones are forgotten first. Default 10.
    pub max_suggested_pieces: usize,
    /// ALLOWED FAST pieces (BEP 6) remembered per peer; more are ignored.
    /// Default 32 (BEP 6 suggests sets of 10).
    pub max_allowed_fast: usize,
    /// The most peers one block may be requested from at once in end game.
    /// Default 2.
    pub max_requesters_per_block: u8,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rng_seed: None,
            block_size: BLOCK_SIZE,
            initial_picker_threshold: 4,
            prioritize_partial_pieces: false,
            strict_end_game: true,
            sequential: false,
            max_peers: 4_000,
            max_suggested_pieces: 10,
            max_allowed_fast: 32,
            max_requesters_per_block: 2,
        }
    }
}
