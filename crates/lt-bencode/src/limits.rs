//! Limits that bound what a decoder allocates for hostile input.

/// Default maximum nesting depth of lists and dictionaries (libtorrent's `bdecode` default).
pub const DEFAULT_MAX_DEPTH: usize = 100;

/// Default maximum number of items (tokens) in one document (libtorrent's `bdecode` default).
///
/// Each item costs 16 bytes of token storage, so the default bounds the decoder's own memory
/// at about 32 MB whatever the input.
pub const DEFAULT_MAX_ITEMS: usize = 2_000_000;

/// Bounds applied while decoding.
///
/// ```
/// let limits = lt_bencode::Limits { max_depth: 4, ..Default::default() };
/// let err = lt_bencode::decode_with(b"lllllleeeeee", &limits).unwrap_err();
/// assert_eq!(err.code(), "depth_exceeded");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum nesting depth of lists and dictionaries. Default: [`DEFAULT_MAX_DEPTH`].
    pub max_depth: usize,
    /// Maximum number of items (integers, strings, lists, dictionaries) in the document.
    /// Default: [`DEFAULT_MAX_ITEMS`].
    pub max_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: DEFAULT_MAX_DEPTH,
            max_items: DEFAULT_MAX_ITEMS,
        }
    }
}
