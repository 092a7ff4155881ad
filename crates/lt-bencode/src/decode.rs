//! The zero-copy decoder: a flat token array over the input, walked through [`Node`].
//!
//! Decoding is one iterative pass (no recursion, so no stack to exhaust) that records one
//! 16-byte [`Token`] per item. Every token knows its byte span and the index of the token
//! after its subtree, so skipping a whole list or dictionary is one jump. Nothing from the
//! input is copied: strings are slices of it.
//!
//! Invariants of a decoded [`Document`] (checked by `debug_assert!` in tests):
//! - `tokens[0]` is the root; a container's children follow it in order; `next` of a
//!   token is the index just past its subtree, and `next` of the root is `tokens.len()`.
//! - A dictionary's children alternate key (always a string token) and value.
//! - `start < end <= buf.len()` for every token.

use std::ops::Range;

use crate::{Error, Limits, NonCanonical};

/// What a bencoded value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `i42e`
    Int,
    /// `4:spam`
    Bytes,
    /// `l...e`
    List,
    /// `d...e`
    Dict,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    /// Offset of the first byte of the item (`i`, `l`, `d` or the first length digit).
    start: u32,
    /// Offset just past the item (past the `e`, or past the last string byte).
    end: u32,
    /// Index of the token following this item's subtree.
    next: u32,
    kind: Kind,
    /// For strings, the length of the `N:` header.
    header: u8,
}

#[cfg_attr(not(feature = "serde"), allow(dead_code))]
impl Token {
    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn next(&self) -> usize {
        self.next as usize
    }

    pub(crate) fn start(&self) -> usize {
        self.start as usize
    }

    /// The string's bytes, for a string token.
    pub(crate) fn string_range(&self) -> Range<usize> {
        self.start as usize + usize::from(self.header)..self.end as usize
    }

    /// The integer's value, for an integer token of `buf`.
    pub(crate) fn int_value(&self, buf: &[u8]) -> i64 {
        // The parser validated the digits and the range; re-parse without error paths.
        let digits = &buf[self.start as usize + 1..self.end as usize - 1];
        let (negative, digits) = match digits.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, digits),
        };
        let mut v: i64 = 0;
        for &d in digits {
            let d = i64::from(d.wrapping_sub(b'0'));
            v = v.wrapping_mul(10);
            v = if negative {
                v.wrapping_sub(d)
            } else {
                v.wrapping_add(d)
            };
        }
        v
    }
}

/// A first departure from canonical form, found while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    /// What was not canonical.
    pub reason: NonCanonical,
    /// Byte offset of the item concerned.
    pub offset: usize,
}

/// A decoded bencode document: the input plus its token array.
///
/// Get at the values through [`Document::root`].
#[derive(Debug, Clone)]
pub struct Document<'a> {
    buf: &'a [u8],
    tokens: Vec<Token>,
    violation: Option<Violation>,
}

/// Decodes one bencoded value that must fill `buf` exactly, with default [`Limits`].
///
/// ```
/// let doc = lt_bencode::decode(b"d3:cow3:moo4:spaml1:a1:bee").unwrap();
/// let dict = doc.root().as_dict().unwrap();
/// assert_eq!(dict.get_str("cow"), Some("moo"));
/// assert_eq!(dict.get_list("spam").unwrap().len(), 2);
/// ```
///
/// # Errors
/// Any malformed input, a limit exceeded, or bytes after the value.
pub fn decode(buf: &[u8]) -> Result<Document<'_>, Error> {
    decode_with(buf, &Limits::default())
}

/// Decodes one bencoded value that must fill `buf` exactly.
///
/// # Errors
/// Any malformed input, a limit exceeded, or bytes after the value.
pub fn decode_with<'a>(buf: &'a [u8], limits: &Limits) -> Result<Document<'a>, Error> {
    let (doc, used) = decode_prefix_with(buf, limits)?;
    if used != buf.len() {
        return Err(Error::TrailingData { offset: used });
    }
    Ok(doc)
}

/// Decodes one bencoded value that must fill `buf` exactly and be in canonical form
/// (sorted unique keys, no leading zeros, no `-0`).
///
/// # Errors
/// As [`decode`], plus [`Error::NonCanonical`].
pub fn decode_strict(buf: &[u8]) -> Result<Document<'_>, Error> {
    let doc = decode(buf)?;
    match doc.violation {
        Some(v) => Err(Error::NonCanonical {
            reason: v.reason,
            offset: v.offset,
        }),
        None => Ok(doc),
    }
}

/// Decodes the bencoded value at the start of `buf` and returns it with the number of bytes
/// it took. What follows is left alone (BEP 9 `ut_metadata` data messages append raw bytes
/// after a bencoded dictionary).
///
/// ```
/// let (doc, used) = lt_bencode::decode_prefix(b"d8:msg_typei1eeRAW").unwrap();
/// assert_eq!(used, 15);
/// assert_eq!(doc.root().as_dict().unwrap().get_int("msg_type"), Some(1));
/// ```
///
/// # Errors
/// Any malformed input or a limit exceeded.
pub fn decode_prefix(buf: &[u8]) -> Result<(Document<'_>, usize), Error> {
    decode_prefix_with(buf, &Limits::default())
}

/// [`decode_prefix`] with explicit limits.
///
/// # Errors
/// Any malformed input or a limit exceeded.
pub fn decode_prefix_with<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<(Document<'a>, usize), Error> {
    if u32::try_from(buf.len()).is_err() {
        return Err(Error::BufferTooLarge { len: buf.len() });
    }
    let mut parser = Parser {
        buf,
        pos: 0,
        tokens: Vec::new(),
        stack: Vec::new(),
        violation: None,
        limits,
    };
    parser.run()?;
    let used = parser.pos;
    Ok((
        Document {
            buf,
            tokens: parser.tokens,
            violation: parser.violation,
        },
        used,
    ))
}

impl<'a> Document<'a> {
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// The root value.
    #[must_use]
    pub fn root(&self) -> Node<'_> {
        Node {
            buf: self.buf,
            tokens: &self.tokens,
            idx: 0,
        }
    }

    /// The input this document was decoded from (exactly the value's bytes).
    #[must_use]
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The number of items (tokens) in the document.
    #[must_use]
    pub fn item_count(&self) -> usize {
        self.tokens.len()
    }

    /// The first departure from canonical form, if any.
    #[must_use]
    pub fn non_canonical(&self) -> Option<Violation> {
        self.violation
    }

    /// Whether the document is in canonical form, so that re-encoding it yields the same bytes.
    #[must_use]
    pub fn is_canonical(&self) -> bool {
        self.violation.is_none()
    }
}

struct Frame {
    token: usize,
    is_dict: bool,
    /// In a dictionary: whether the next item is a key.
    expect_key: bool,
    /// In a dictionary: the span of the previous key, for the canonical-order check.
    last_key: Option<(u32, u32)>,
}

struct Parser<'a, 'l> {
    buf: &'a [u8],
    pos: usize,
    tokens: Vec<Token>,
    stack: Vec<Frame>,
    violation: Option<Violation>,
    limits: &'l Limits,
}

impl Parser<'_, '_> {
    fn run(&mut self) -> Result<(), Error> {
        loop {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(Error::UnexpectedEof { offset: self.pos });
            };
            if byte == b'e'
                && let Some(frame) = self.stack.pop()
            {
                if frame.is_dict && !frame.expect_key {
                    // A key without its value.
                    return Err(Error::ExpectedValue { offset: self.pos });
                }
                self.pos += 1;
                let next = self.tokens.len();
                let tok = &mut self.tokens[frame.token];
                tok.end = to_u32(self.pos);
                tok.next = to_u32(next);
                if self.finish_item() {
                    return Ok(());
                }
                continue;
            }
            let key_expected = self.stack.last().is_some_and(|f| f.is_dict && f.expect_key);
            if key_expected && !byte.is_ascii_digit() {
                return Err(Error::ExpectedString { offset: self.pos });
            }
            if self.tokens.len() >= self.limits.max_items {
                return Err(Error::ItemLimitExceeded {
                    offset: self.pos,
                    limit: self.limits.max_items,
                });
            }
            match byte {
                b'l' | b'd' => {
                    if self.stack.len() >= self.limits.max_depth {
                        return Err(Error::DepthExceeded {
                            offset: self.pos,
                            limit: self.limits.max_depth,
                        });
                    }
                    let kind = if byte == b'd' { Kind::Dict } else { Kind::List };
                    self.stack.push(Frame {
                        token: self.tokens.len(),
                        is_dict: byte == b'd',
                        expect_key: true,
                        last_key: None,
                    });
                    self.push_token(kind, self.pos, self.pos + 1, 0);
                    self.pos += 1;
                    continue;
                }
                b'i' => self.integer()?,
                b'0'..=b'9' => {
                    let (item_start, data, end) = self.string()?;
                    if key_expected {
                        self.check_key_order(item_start, data, end);
                    }
                }
                _ => return Err(Error::ExpectedValue { offset: self.pos }),
            }
            if self.finish_item() {
                return Ok(());
            }
        }
    }

    /// Called after a complete item; returns true when it was the root.
    fn finish_item(&mut self) -> bool {
        match self.stack.last_mut() {
            None => true,
            Some(frame) => {
                if frame.is_dict {
                    frame.expect_key = !frame.expect_key;
                }
                false
            }
        }
    }

    fn push_token(&mut self, kind: Kind, start: usize, end: usize, header: u8) {
        let next = self.tokens.len() + 1;
        self.tokens.push(Token {
            start: to_u32(start),
            end: to_u32(end),
            next: to_u32(next),
            kind,
            header,
        });
    }

    fn note(&mut self, reason: NonCanonical, offset: usize) {
        if self.violation.is_none() {
            self.violation = Some(Violation { reason, offset });
        }
    }

    fn check_key_order(&mut self, item_start: usize, start: usize, end: usize) {
        let (s, e) = (to_u32(start), to_u32(end));
        let Some(frame) = self.stack.last_mut() else {
            return;
        };
        let prev = frame.last_key.replace((s, e));
        if let Some((ps, pe)) = prev {
            let prev_key = &self.buf[ps as usize..pe as usize];
            let key = &self.buf[start..end];
            match prev_key.cmp(key) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => self.note(NonCanonical::DuplicateKey, item_start),
                std::cmp::Ordering::Greater => self.note(NonCanonical::UnsortedKeys, item_start),
            }
        }
    }

    /// Parses `i<digits>e` at `pos`.
    fn integer(&mut self) -> Result<(), Error> {
        let start = self.pos;
        let mut pos = start + 1;
        let negative = self.buf.get(pos) == Some(&b'-');
        if negative {
            pos += 1;
        }
        let digits_start = pos;
        let mut value: i64 = 0;
        loop {
            let Some(&b) = self.buf.get(pos) else {
                return Err(Error::UnexpectedEof { offset: pos });
            };
            match b {
                b'0'..=b'9' => {
                    let digit = i64::from(b - b'0');
                    // Accumulate negatively so that i64::MIN parses.
                    value = value
                        .checked_mul(10)
                        .and_then(|v| {
                            if negative {
                                v.checked_sub(digit)
                            } else {
                                v.checked_add(digit)
                            }
                        })
                        .ok_or(Error::Overflow { offset: start })?;
                    pos += 1;
                }
                b'e' if pos > digits_start => break,
                _ => return Err(Error::ExpectedDigit { offset: pos }),
            }
        }
        if self.buf[digits_start] == b'0' {
            if pos - digits_start > 1 {
                self.note(NonCanonical::IntegerLeadingZero, start);
            } else if negative {
                self.note(NonCanonical::NegativeZero, start);
            }
        }
        self.pos = pos + 1;
        self.push_token(Kind::Int, start, self.pos, 1);
        Ok(())
    }

    /// Parses `<len>:<bytes>` at `pos`; returns the item's start and the span of the bytes.
    fn string(&mut self) -> Result<(usize, usize, usize), Error> {
        let start = self.pos;
        let mut pos = start;
        let mut len: usize = 0;
        loop {
            let Some(&b) = self.buf.get(pos) else {
                return Err(Error::UnexpectedEof { offset: pos });
            };
            match b {
                b'0'..=b'9' => {
                    len = len
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(usize::from(b - b'0')))
                        .ok_or(Error::Overflow { offset: start })?;
                    pos += 1;
                }
                b':' => break,
                _ => return Err(Error::ExpectedColon { offset: pos }),
            }
        }
        if self.buf[start] == b'0' && pos - start > 1 {
            self.note(NonCanonical::LengthLeadingZero, start);
        }
        let data = pos + 1;
        let end = data
            .checked_add(len)
            .filter(|&end| end <= self.buf.len())
            .ok_or(Error::UnexpectedEof {
                offset: self.buf.len(),
            })?;
        // A header longer than 255 bytes would need more than 250 digits; `len` overflows first.
        let header = u8::try_from(data - start).map_err(|_| Error::Overflow { offset: start })?;
        self.pos = end;
        self.push_token(Kind::Bytes, start, end, header);
        Ok((start, data, end))
    }
}

/// Narrows an offset already known to be below the 4 GiB input bound.
fn to_u32(v: usize) -> u32 {
    // The input length was checked against u32::MAX in decode_prefix_with.
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// A value inside a [`Document`]: cheap to copy, borrows the document.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    buf: &'a [u8],
    tokens: &'a [Token],
    idx: usize,
}

impl<'a> Node<'a> {
    fn token(&self) -> Token {
        self.tokens[self.idx]
    }

    fn at(&self, idx: usize) -> Self {
        Self {
            buf: self.buf,
            tokens: self.tokens,
            idx,
        }
    }

    /// What kind of value this is.
    #[must_use]
    pub fn kind(&self) -> Kind {
        self.token().kind
    }

    /// The byte range of the whole item in the input (for a dictionary, from `d` to `e`).
    #[must_use]
    pub fn span(&self) -> Range<usize> {
        let t = self.token();
        t.start as usize..t.end as usize
    }

    /// The exact input bytes of the item, e.g. what an info-hash is computed over.
    #[must_use]
    pub fn raw(&self) -> &'a [u8] {
        &self.buf[self.span()]
    }

    /// The integer, if this is one.
    #[must_use]
    pub fn as_int(&self) -> Option<i64> {
        let t = self.token();
        (t.kind == Kind::Int).then(|| t.int_value(self.buf))
    }

    /// The byte string, if this is one.
    #[must_use]
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        let t = self.token();
        (t.kind == Kind::Bytes).then(|| &self.buf[t.string_range()])
    }

    /// The byte string as UTF-8, if this is a string and valid UTF-8.
    #[must_use]
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The list, if this is one.
    #[must_use]
    pub fn as_list(&self) -> Option<List<'a>> {
        (self.kind() == Kind::List).then_some(List { node: *self })
    }

    /// The dictionary, if this is one.
    #[must_use]
    pub fn as_dict(&self) -> Option<Dict<'a>> {
        (self.kind() == Kind::Dict).then_some(Dict { node: *self })
    }

    /// Index of the token after this subtree.
    fn next_index(&self) -> usize {
        self.token().next as usize
    }

    /// The input buffer, the token array and this node's index in it.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn parts(&self) -> (&'a [u8], &'a [Token], usize) {
        (self.buf, self.tokens, self.idx)
    }
}

impl std::fmt::Debug for Node<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind() {
            Kind::Int => write!(f, "{}", self.as_int().unwrap_or_default()),
            Kind::Bytes => {
                let b = self.as_bytes().unwrap_or_default();
                match std::str::from_utf8(b) {
                    Ok(s) => write!(f, "{s:?}"),
                    Err(_) => write!(f, "<{} bytes>", b.len()),
                }
            }
            Kind::List => f
                .debug_list()
                .entries(self.as_list().into_iter().flatten())
                .finish(),
            Kind::Dict => f
                .debug_map()
                .entries(
                    self.as_dict()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (String::from_utf8_lossy(k), v)),
                )
                .finish(),
        }
    }
}

/// A list inside a [`Document`].
#[derive(Clone, Copy)]
pub struct List<'a> {
    node: Node<'a>,
}

impl<'a> List<'a> {
    /// The items in order.
    #[must_use]
    pub fn iter(&self) -> ListIter<'a> {
        ListIter {
            node: self.node.at(self.node.idx + 1),
            end: self.node.next_index(),
        }
    }

    /// The number of items (walks the list).
    #[must_use]
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether the list has no items.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.node.next_index() == self.node.idx + 1
    }

    /// The item at `index` (walks the list).
    #[must_use]
    pub fn get(&self, index: usize) -> Option<Node<'a>> {
        self.iter().nth(index)
    }

    /// The list as a node.
    #[must_use]
    pub fn node(&self) -> Node<'a> {
        self.node
    }
}

impl<'a> IntoIterator for List<'a> {
    type Item = Node<'a>;
    type IntoIter = ListIter<'a>;
    fn into_iter(self) -> ListIter<'a> {
        self.iter()
    }
}

impl std::fmt::Debug for List<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.node.fmt(f)
    }
}

/// Iterator over a [`List`].
#[derive(Clone)]
pub struct ListIter<'a> {
    node: Node<'a>,
    end: usize,
}

impl<'a> Iterator for ListIter<'a> {
    type Item = Node<'a>;
    fn next(&mut self) -> Option<Node<'a>> {
        if self.node.idx >= self.end {
            return None;
        }
        let item = self.node;
        self.node.idx = item.next_index();
        Some(item)
    }
}

/// A dictionary inside a [`Document`].
#[derive(Clone, Copy)]
pub struct Dict<'a> {
    node: Node<'a>,
}

impl<'a> Dict<'a> {
    /// The entries in input order, as (key, value).
    #[must_use]
    pub fn iter(&self) -> DictIter<'a> {
        DictIter {
            node: self.node.at(self.node.idx + 1),
            end: self.node.next_index(),
        }
    }

    /// The number of entries (walks the dictionary).
    #[must_use]
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether the dictionary has no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.node.next_index() == self.node.idx + 1
    }

    /// The value of the first entry with this key.
    #[must_use]
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<Node<'a>> {
        let key = key.as_ref();
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The integer under `key`, if present and an integer.
    #[must_use]
    pub fn get_int(&self, key: impl AsRef<[u8]>) -> Option<i64> {
        self.get(key)?.as_int()
    }

    /// The byte string under `key`, if present and a string.
    #[must_use]
    pub fn get_bytes(&self, key: impl AsRef<[u8]>) -> Option<&'a [u8]> {
        self.get(key)?.as_bytes()
    }

    /// The UTF-8 string under `key`, if present, a string and valid UTF-8.
    #[must_use]
    pub fn get_str(&self, key: impl AsRef<[u8]>) -> Option<&'a str> {
        self.get(key)?.as_str()
    }

    /// The list under `key`, if present and a list.
    #[must_use]
    pub fn get_list(&self, key: impl AsRef<[u8]>) -> Option<List<'a>> {
        self.get(key)?.as_list()
    }

    /// The dictionary under `key`, if present and a dictionary.
    #[must_use]
    pub fn get_dict(&self, key: impl AsRef<[u8]>) -> Option<Self> {
        self.get(key)?.as_dict()
    }

    /// The dictionary as a node.
    #[must_use]
    pub fn node(&self) -> Node<'a> {
        self.node
    }
}

impl<'a> IntoIterator for Dict<'a> {
    type Item = (&'a [u8], Node<'a>);
    type IntoIter = DictIter<'a>;
    fn into_iter(self) -> DictIter<'a> {
        self.iter()
    }
}

impl std::fmt::Debug for Dict<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.node.fmt(f)
    }
}

/// Iterator over a [`Dict`]'s entries.
#[derive(Clone)]
pub struct DictIter<'a> {
    node: Node<'a>,
    end: usize,
}

impl<'a> Iterator for DictIter<'a> {
    type Item = (&'a [u8], Node<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.node.idx >= self.end {
            return None;
        }
        let key_node = self.node;
        let value = key_node.at(key_node.idx + 1);
        self.node.idx = value.next_index();
        // Keys are always string tokens (checked by the parser).
        Some((key_node.as_bytes().unwrap_or_default(), value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &[u8]) -> Error {
        decode(input).unwrap_err()
    }

    #[test]
    fn scalars() {
        assert_eq!(decode(b"i42e").unwrap().root().as_int(), Some(42));
        assert_eq!(decode(b"i-42e").unwrap().root().as_int(), Some(-42));
        assert_eq!(decode(b"i0e").unwrap().root().as_int(), Some(0));
        assert_eq!(
            decode(b"i9223372036854775807e").unwrap().root().as_int(),
            Some(i64::MAX)
        );
        assert_eq!(
            decode(b"i-9223372036854775808e").unwrap().root().as_int(),
            Some(i64::MIN)
        );
        assert_eq!(
            decode(b"4:spam").unwrap().root().as_bytes(),
            Some(&b"spam"[..])
        );
        assert_eq!(decode(b"0:").unwrap().root().as_bytes(), Some(&b""[..]));
    }

    #[test]
    fn nested_spans() {
        let input = b"d4:infod6:lengthi5ee3:keyl1:ai1eee";
        let doc = decode(input).unwrap();
        let root = doc.root().as_dict().unwrap();
        let info = root.get("info").unwrap();
        assert_eq!(info.raw(), b"d6:lengthi5ee");
        assert_eq!(info.span(), 7..20);
        let list = root.get_list("key").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list.get(1).unwrap().as_int(), Some(1));
        assert_eq!(root.len(), 2);
        assert!(doc.is_canonical());
        assert_eq!(doc.item_count(), 9);
    }

    #[test]
    fn empty_containers() {
        let doc = decode(b"d1:ale1:bdee").unwrap();
        let d = doc.root().as_dict().unwrap();
        assert!(d.get_list("a").unwrap().is_empty());
        assert!(d.get_dict("b").unwrap().is_empty());
        assert!(d.get("c").is_none());
    }

    #[test]
    fn error_codes_and_offsets() {
        let cases: &[(&[u8], &str, usize)] = &[
            (b"i12x4e", "expected_digit", 3),
            (b"ie", "expected_digit", 1),
            (b"i-e", "expected_digit", 2),
            (b"12x", "expected_colon", 2),
            (b"5:abc", "unexpected_eof", 5),
            (b"i12", "unexpected_eof", 3),
            (b"l", "unexpected_eof", 1),
            (b"", "unexpected_eof", 0),
            (b"x", "expected_value", 0),
            (b"d1:ae", "expected_value", 4),
            (b"li1ex", "expected_value", 4),
            (b"di1e1:ae", "expected_string", 1),
            (b"i99999999999999999999e", "overflow", 0),
            (b"99999999999999999999999:", "overflow", 0),
            (b"i1ei2e", "trailing_data", 3),
        ];
        for &(input, code, offset) in cases {
            let e = err(input);
            assert_eq!(e.code(), code, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(
                e.offset(),
                Some(offset),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_depth: 3,
            max_items: 5,
        };
        assert!(decode_with(b"llleee", &limits).is_ok());
        let e = decode_with(b"lllleeee", &limits).unwrap_err();
        assert_eq!(
            e,
            Error::DepthExceeded {
                offset: 3,
                limit: 3
            }
        );
        assert!(decode_with(b"li1ei2ei3ei4ee", &limits).is_ok());
        let e = decode_with(b"li1ei2ei3ei4ei5ee", &limits).unwrap_err();
        assert_eq!(
            e,
            Error::ItemLimitExceeded {
                offset: 13,
                limit: 5
            }
        );
        // Deep nesting within default limits never recurses.
        let deep = [vec![b'l'; 100], vec![b'e'; 100]].concat();
        assert!(decode(&deep).is_ok());
        let deeper = [vec![b'l'; 101], vec![b'e'; 101]].concat();
        assert_eq!(decode(&deeper).unwrap_err().code(), "depth_exceeded");
    }

    #[test]
    fn canonical_reporting() {
        let cases: &[(&[u8], NonCanonical, usize)] = &[
            (b"i03e", NonCanonical::IntegerLeadingZero, 0),
            (b"i-0e", NonCanonical::NegativeZero, 0),
            (b"03:abc", NonCanonical::LengthLeadingZero, 0),
            (b"d1:bi1e1:ai2ee", NonCanonical::UnsortedKeys, 7),
            (b"d1:ai1e1:ai2ee", NonCanonical::DuplicateKey, 7),
        ];
        for &(input, reason, offset) in cases {
            let doc = decode(input).unwrap();
            assert_eq!(doc.non_canonical(), Some(Violation { reason, offset }));
            let e = decode_strict(input).unwrap_err();
            assert_eq!(e, Error::NonCanonical { reason, offset });
        }
        // Values still decode as written.
        assert_eq!(decode(b"i03e").unwrap().root().as_int(), Some(3));
        assert!(decode_strict(b"d1:ai1e1:bi2ee").is_ok());
    }

    #[test]
    fn prefix() {
        let (doc, used) = decode_prefix(b"d1:ai1eeXYZ").unwrap();
        assert_eq!(used, 8);
        assert_eq!(doc.bytes(), b"d1:ai1eeXYZ");
        assert_eq!(doc.root().raw(), b"d1:ai1ee");
    }

    #[test]
    fn debug_format() {
        let doc = decode(b"d1:ai1e1:bl2:hi3:\xff\xff\xffee").unwrap();
        assert_eq!(
            format!("{:?}", doc.root()),
            r#"{"a": 1, "b": ["hi", <3 bytes>]}"#
        );
    }
}
