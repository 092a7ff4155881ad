//! Message Stream Encryption / Protocol Encryption (MSE/PE): a Diffie-Hellman key exchange
//! over the 768-bit MODP prime, then RC4 (1024 bytes of keystream discarded) on the whole
//! stream, or on the handshake only ("obfuscated header", crypto method plaintext).
//!
//! ```text
//!  A (outgoing)                                B (incoming)
//!  Ya, PadA                  ───────────────▶
//!                            ◀───────────────  Yb, PadB
//!  HASH('req1',S), HASH('req2',SKEY)^HASH('req3',S),
//!  E(VC, crypto_provide, len(PadC), PadC, len(IA)), E(IA)
//!                            ───────────────▶  B finds req1 in the stream, looks SKEY up
//!                            ◀───────────────  E(VC, crypto_select, len(PadD), PadD)
//!  A finds E(VC) in the stream            …then the payload, RC4 or plaintext as selected
//! ```
//!
//! `S` is the DH shared secret, `SKEY` the torrent's info-hash, `E` RC4 with
//! `HASH('keyA', S, SKEY)` from A to B and `HASH('keyB', S, SKEY)` from B to A, each
//! discarding its first 1024 bytes. Pads are 0 to 512 random bytes.
//!
//! [`MseHandshake`] is a sans-IO state machine for either side. It reads no clock and no OS
//! randomness: the DH private key and the pads come from a ChaCha20 generator seeded by the
//! caller. The incoming side stops at [`MseStatus::NeedSkey`] with `HASH('req2', SKEY)` so
//! the caller can find the torrent (index torrents by [`skey_hash`]).
//!
//! The primitives are RustCrypto's `rc4` and SHA-1 (through `lt-core`) and `num-bigint`'s
//! modular exponentiation. `num-bigint` rather than `crypto-bigint`: MSE is obfuscation
//! against traffic shaping, not confidentiality (the exchange is unauthenticated and the
//! prime is 768 bits), so the constant-time guarantees `crypto-bigint` buys do not protect
//! anything here, while `num-bigint` is pure safe Rust, widely used, and a 160-bit
//! exponent costs well under a millisecond.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use lt_core::{Sha1Hash, Sha1Hasher};
use num_bigint::BigUint;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rc4::cipher::generic_array::GenericArray;
use rc4::consts::U20;
use rc4::{KeyInit, Rc4, StreamCipher};

use crate::Error;
use crate::error::MseError;

/// The 768-bit prime of MSE (the Oakley group 1 prime).
const PRIME: [u8; 96] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC9, 0x0F, 0xDA, 0xA2, 0x21, 0x68, 0xC2, 0x34,
    0xC4, 0xC6, 0x62, 0x8B, 0x80, 0xDC, 0x1C, 0xD1, 0x29, 0x02, 0x4E, 0x08, 0x8A, 0x67, 0xCC, 0x74,
    0x02, 0x0B, 0xBE, 0xA6, 0x3B, 0x13, 0x9B, 0x22, 0x51, 0x4A, 0x08, 0x79, 0x8E, 0x34, 0x04, 0xDD,
    0xEF, 0x95, 0x19, 0xB3, 0xCD, 0x3A, 0x43, 0x1B, 0x30, 0x2B, 0x0A, 0x6D, 0xF2, 0x5F, 0x14, 0x37,
    0x4F, 0xE1, 0x35, 0x6D, 0x6D, 0x51, 0xC2, 0x45, 0xE4, 0x85, 0xB5, 0x76, 0x62, 0x5E, 0x7E, 0xC6,
    0xF4, 0x4C, 0x42, 0xE9, 0xA6, 0x3A, 0x36, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x05, 0x63,
];
/// Length of a public key on the wire.
pub const KEY_LEN: usize = 96;
/// Longest pad (PadA..PadD).
pub const MAX_PAD: usize = 512;
/// The verification constant: 8 zero bytes.
const VC: [u8; 8] = [0; 8];
/// Bytes of RC4 keystream discarded before use.
const DISCARD: usize = 1024;
/// Most bytes buffered from the peer: the largest step (PadC, len(IA) and a 64 KiB IA) plus
/// one maximal message that may follow the handshake before the caller calls `finish`.
pub const MAX_BUFFERED: usize = (1 << 20) + (128 << 10);
/// Bits of the DH private key (the spec recommends 160).
const PRIVATE_KEY_BYTES: usize = 20;

/// `crypto_provide` / `crypto_select` bit for plaintext after the handshake.
pub const CRYPTO_PLAINTEXT: u32 = 0x01;
/// `crypto_provide` / `crypto_select` bit for RC4.
pub const CRYPTO_RC4: u32 = 0x02;

/// When to use encryption, per direction (the manual's `out_enc_policy`/`in_enc_policy`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum EncPolicy {
    /// Only encrypted connections: outgoing ones use MSE, plaintext incoming ones are refused.
    Forced,
    /// Outgoing connections try MSE (a caller may retry in plaintext); incoming ones may be
    /// either.
    #[default]
    Enabled,
    /// No MSE: outgoing ones are plaintext, encrypted incoming ones are refused.
    Disabled,
}

/// Which crypto methods are allowed (the manual's `allowed_enc_level`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum EncLevel {
    /// Only the handshake is obfuscated; the payload is plaintext.
    Plaintext,
    /// The whole stream is RC4.
    Rc4,
    /// Either.
    #[default]
    Both,
}

impl EncLevel {
    /// The `crypto_provide` bits.
    #[must_use]
    pub const fn bits(self) -> u32 {
        match self {
            Self::Plaintext => CRYPTO_PLAINTEXT,
            Self::Rc4 => CRYPTO_RC4,
            Self::Both => CRYPTO_PLAINTEXT | CRYPTO_RC4,
        }
    }
}

/// The manual's `pe_settings`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct MseConfig {
    /// Policy for connections we make. Default: enabled.
    pub out_policy: EncPolicy,
    /// Policy for connections we accept. Default: enabled.
    pub in_policy: EncPolicy,
    /// Allowed crypto methods. Default: both.
    pub allowed: EncLevel,
    /// With both methods allowed and offered, select RC4 rather than plaintext.
    /// Default: false.
    pub prefer_rc4: bool,
}

impl MseConfig {
    /// Whether an outgoing connection should start with an MSE handshake.
    #[must_use]
    pub fn encrypt_outgoing(&self) -> bool {
        self.out_policy != EncPolicy::Disabled
    }

    /// Checks an incoming connection against `in_policy`, given whether it started with a
    /// plaintext BitTorrent handshake (see [`classify_incoming`]).
    ///
    /// # Errors
    /// [`MseError::PolicyRejected`] for plaintext when forced, or MSE when disabled.
    pub fn accept_incoming(&self, plaintext: bool) -> Result<(), Error> {
        match (self.in_policy, plaintext) {
            (EncPolicy::Forced, true) | (EncPolicy::Disabled, false) => {
                Err(MseError::PolicyRejected.into())
            }
            _ => Ok(()),
        }
    }

    /// The method B selects from A's `crypto_provide`, as libtorrent does: plaintext when
    /// both are allowed and offered unless `prefer_rc4`.
    fn select(&self, provide: u32) -> Option<u32> {
        let common = provide & self.allowed.bits();
        let rc4 = common & CRYPTO_RC4 != 0;
        let plain = common & CRYPTO_PLAINTEXT != 0;
        match (rc4, plain) {
            (true, true) if self.prefer_rc4 => Some(CRYPTO_RC4),
            (_, true) => Some(CRYPTO_PLAINTEXT),
            (true, false) => Some(CRYPTO_RC4),
            (false, false) => None,
        }
    }
}

/// Whether the first bytes of an incoming connection are a plaintext BitTorrent handshake:
/// `Some(true)` if they start with `\x13BitTorrent protocol`, `Some(false)` as soon as they
/// cannot (so they are taken as MSE), `None` while too few bytes have arrived.
#[must_use]
pub fn classify_incoming(prefix: &[u8]) -> Option<bool> {
    let p = crate::handshake::PROTOCOL;
    let n = prefix.len().min(p.len());
    if prefix[..n] != p[..n] {
        Some(false)
    } else if n == p.len() {
        Some(true)
    } else {
        None
    }
}

/// `HASH('req2', SKEY)`: what an incoming MSE handshake identifies its torrent by.
#[must_use]
pub fn skey_hash(info_hash: &Sha1Hash) -> Sha1Hash {
    hash(&[b"req2", info_hash.as_bytes()])
}

/// The two RC4 streams of an encrypted connection.
pub struct Rc4Stream {
    enc: Rc4<U20>,
    dec: Rc4<U20>,
}

impl std::fmt::Debug for Rc4Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rc4Stream")
    }
}

impl Rc4Stream {
    /// Streams keyed from the shared secret: A sends with `keyA` and receives with `keyB`,
    /// B the opposite, each with the first 1024 bytes discarded.
    fn new(secret: &[u8; KEY_LEN], skey: &Sha1Hash, initiator: bool) -> Self {
        let key_a = hash(&[b"keyA", secret, skey.as_bytes()]);
        let key_b = hash(&[b"keyB", secret, skey.as_bytes()]);
        let (enc, dec) = if initiator {
            (key_a, key_b)
        } else {
            (key_b, key_a)
        };
        Self {
            enc: rc4_discarded(&enc),
            dec: rc4_discarded(&dec),
        }
    }

    /// A pair of streams keyed directly, for benchmarks and tests (`send_key` encrypts,
    /// `recv_key` decrypts; 1024 bytes discarded as in MSE).
    #[must_use]
    pub fn from_keys(send_key: &Sha1Hash, recv_key: &Sha1Hash) -> Self {
        Self {
            enc: rc4_discarded(send_key),
            dec: rc4_discarded(recv_key),
        }
    }

    /// Encrypts outgoing bytes in place.
    pub fn encrypt(&mut self, buf: &mut [u8]) {
        self.enc.apply_keystream(buf);
    }

    /// Decrypts incoming bytes in place.
    pub fn decrypt(&mut self, buf: &mut [u8]) {
        self.dec.apply_keystream(buf);
    }
}

fn rc4_discarded(key: &Sha1Hash) -> Rc4<U20> {
    let mut c = Rc4::<U20>::new(GenericArray::from_slice(key.as_bytes()));
    let mut discard = [0u8; DISCARD];
    c.apply_keystream(&mut discard);
    c
}

fn hash(parts: &[&[u8]]) -> Sha1Hash {
    let mut h = Sha1Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// Where an [`MseHandshake`] stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MseStatus {
    /// Waiting for bytes from the peer.
    InProgress,
    /// (Incoming side.) Call [`MseHandshake::provide_skey`] with the info-hash of the
    /// torrent whose [`skey_hash`] equals this, or `None`.
    NeedSkey(Sha1Hash),
    /// Finished: call [`MseHandshake::finish`].
    Done,
}

/// What a finished MSE handshake hands over to the peer connection.
#[derive(Debug)]
pub struct MseOutcome {
    /// The RC4 streams when RC4 was selected, `None` for plaintext.
    pub cipher: Option<Rc4Stream>,
    /// The selected method ([`CRYPTO_RC4`] or [`CRYPTO_PLAINTEXT`]).
    pub method: u32,
    /// The info-hash (SKEY) the connection is for.
    pub info_hash: Sha1Hash,
    /// Payload bytes already received, decrypted: the incoming side's initial payload (IA)
    /// and whatever followed it.
    pub received: BytesMut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    // initiator
    AwaitYb,
    SyncVc,
    ReadSelect,
    ReadPadD(usize),
    // responder
    AwaitYa,
    SyncReq1,
    ReadReq2,
    AwaitSkey,
    ReadProvide,
    ReadPadC(usize),
    ReadIa(usize),
    Done,
    Failed,
}

/// One side of an MSE/PE handshake.
///
/// Driver loop: feed received bytes to [`handle_bytes`](Self::handle_bytes), send everything
/// [`poll_transmit`](Self::poll_transmit) returns, check [`status`](Self::status) (answer
/// `NeedSkey` with [`provide_skey`](Self::provide_skey)) and, when `Done`, call
/// [`finish`](Self::finish). No clock is read: bound the whole handshake with the peer
/// connection's handshake timeout.
///
/// ```
/// use lt_wire::mse::{MseConfig, MseHandshake, MseStatus, skey_hash};
/// let info_hash = [7u8; 20].into();
/// let cfg = MseConfig::default();
/// let mut a = MseHandshake::initiate(&cfg, info_hash, [1; 32]);
/// let mut b = MseHandshake::respond(&cfg, [2; 32]);
/// loop {
///     while let Some(out) = a.poll_transmit() { b.handle_bytes(&out)?; }
///     if let MseStatus::NeedSkey(h) = b.status() {
///         assert_eq!(h, skey_hash(&info_hash));
///         b.provide_skey(Some(info_hash))?;
///     }
///     while let Some(out) = b.poll_transmit() { a.handle_bytes(&out)?; }
///     if a.status() == MseStatus::Done && b.status() == MseStatus::Done { break; }
/// }
/// assert_eq!(a.finish()?.method, b.finish()?.method);
/// # Ok::<(), lt_wire::Error>(())
/// ```
pub struct MseHandshake {
    initiator: bool,
    config: MseConfig,
    state: State,
    rng: ChaCha20Rng,
    private: BigUint,
    secret: [u8; KEY_LEN],
    skey: Option<Sha1Hash>,
    rx: BytesMut,
    tx: BytesMut,
    /// Bytes consumed since the peer's public key, for the sync window.
    scanned: usize,
    enc: Option<Rc4<U20>>,
    dec: Option<Rc4<U20>>,
    /// Initiator: the encrypted VC to look for.
    vc_marker: [u8; 8],
    /// Responder: HASH('req1', S) to look for.
    req1: Sha1Hash,
    provide: u32,
    selected: u32,
    ia: BytesMut,
}

impl std::fmt::Debug for MseHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MseHandshake")
            .field("initiator", &self.initiator)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl MseHandshake {
    /// The outgoing side (A) for the torrent `info_hash`. Its public key and PadA are
    /// queued for [`poll_transmit`](Self::poll_transmit) at once.
    #[must_use]
    pub fn initiate(config: &MseConfig, info_hash: Sha1Hash, rng_seed: [u8; 32]) -> Self {
        let mut hs = Self::new(true, config, rng_seed);
        hs.skey = Some(info_hash);
        hs.provide = config.allowed.bits();
        hs.send_public_key();
        hs.state = State::AwaitYb;
        hs
    }

    /// The incoming side (B). It answers once the peer's public key has arrived.
    #[must_use]
    pub fn respond(config: &MseConfig, rng_seed: [u8; 32]) -> Self {
        let mut hs = Self::new(false, config, rng_seed);
        hs.state = State::AwaitYa;
        hs
    }

    fn new(initiator: bool, config: &MseConfig, rng_seed: [u8; 32]) -> Self {
        let mut rng = ChaCha20Rng::from_seed(rng_seed);
        let mut x = [0u8; PRIVATE_KEY_BYTES];
        rng.fill_bytes(&mut x);
        Self {
            initiator,
            config: *config,
            state: State::Failed,
            rng,
            private: BigUint::from_bytes_be(&x),
            secret: [0; KEY_LEN],
            skey: None,
            rx: BytesMut::new(),
            tx: BytesMut::new(),
            scanned: 0,
            enc: None,
            dec: None,
            vc_marker: [0; 8],
            req1: Sha1Hash::ZERO,
            provide: 0,
            selected: 0,
            ia: BytesMut::new(),
        }
    }

    /// Where the handshake stands.
    #[must_use]
    pub fn status(&self) -> MseStatus {
        match self.state {
            State::Done => MseStatus::Done,
            State::AwaitSkey => MseStatus::NeedSkey(self.req2_hash()),
            _ => MseStatus::InProgress,
        }
    }

    /// Bytes to send to the peer.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.tx.is_empty()).then(|| self.tx.split().freeze())
    }

    /// Takes bytes received from the peer.
    ///
    /// # Errors
    /// [`Error::Mse`] when the peer broke the handshake; the connection must be closed.
    pub fn handle_bytes(&mut self, data: &[u8]) -> Result<(), Error> {
        if self.state == State::Failed {
            return Err(Error::ApiMisuse("MSE handshake already failed"));
        }
        let len = self.rx.len().saturating_add(data.len());
        if len > MAX_BUFFERED {
            self.state = State::Failed;
            return Err(Error::ReceiveBufferFull {
                len,
                max: MAX_BUFFERED,
            });
        }
        self.rx.extend_from_slice(data);
        let r = self.advance();
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    /// (Incoming side.) Answers [`MseStatus::NeedSkey`]: the info-hash of the torrent
    /// whose [`skey_hash`] matched, or `None` when we have no such torrent.
    ///
    /// # Errors
    /// [`MseError::UnknownTorrent`] for `None` or a hash that does not match, and any
    /// error from the bytes already buffered.
    pub fn provide_skey(&mut self, info_hash: Option<Sha1Hash>) -> Result<(), Error> {
        if self.state != State::AwaitSkey {
            return Err(Error::ApiMisuse("provide_skey without NeedSkey"));
        }
        let r = match info_hash {
            Some(ih) if skey_hash(&ih) == self.req2_hash() => {
                self.skey = Some(ih);
                // Responder: encrypts with keyB, decrypts with keyA.
                let keys = Rc4Stream::new(&self.secret, &ih, false);
                self.enc = Some(keys.enc);
                self.dec = Some(keys.dec);
                self.state = State::ReadProvide;
                self.advance()
            }
            _ => Err(MseError::UnknownTorrent.into()),
        };
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    /// Hands over the negotiated streams and the payload received so far.
    ///
    /// # Errors
    /// [`Error::ApiMisuse`] before [`MseStatus::Done`].
    pub fn finish(mut self) -> Result<MseOutcome, Error> {
        if self.state != State::Done {
            return Err(Error::ApiMisuse("MSE handshake not done"));
        }
        let (Some(info_hash), Some(mut enc), Some(mut dec)) =
            (self.skey, self.enc.take(), self.dec.take())
        else {
            return Err(Error::ApiMisuse("MSE handshake not done"));
        };
        let mut received = std::mem::take(&mut self.ia);
        let mut rest = self.rx.split();
        let cipher = if self.selected == CRYPTO_RC4 {
            dec.apply_keystream(&mut rest);
            Some(Rc4Stream { enc, dec })
        } else {
            let _ = &mut enc;
            None
        };
        received.unsplit(rest);
        Ok(MseOutcome {
            cipher,
            method: self.selected,
            info_hash,
            received,
        })
    }

    // ---- internals ----

    fn req2_hash(&self) -> Sha1Hash {
        // Stored in ia while waiting for the SKEY: the 20 bytes of req2 ^ req3, already
        // un-xored in read_req2.
        Sha1Hash::from_slice(&self.ia).unwrap_or(Sha1Hash::ZERO)
    }

    fn send_public_key(&mut self) {
        let public = BigUint::from(2u32).modpow(&self.private, &prime());
        self.tx.put_slice(&to_key_bytes(&public));
        self.put_pad();
    }

    fn put_pad(&mut self) {
        let len = usize::try_from(self.rng.next_u32()).unwrap_or(0) % (MAX_PAD + 1);
        let start = self.tx.len();
        self.tx.resize(start + len, 0);
        self.rng.fill_bytes(&mut self.tx[start..]);
    }

    fn random_pad(&mut self) -> Vec<u8> {
        let len = usize::try_from(self.rng.next_u32()).unwrap_or(0) % (MAX_PAD + 1);
        let mut pad = vec![0u8; len];
        self.rng.fill_bytes(&mut pad);
        pad
    }

    /// Reads the peer's public key and computes the shared secret.
    fn read_public_key(&mut self) -> Result<bool, Error> {
        if self.rx.len() < KEY_LEN {
            return Ok(false);
        }
        let y = BigUint::from_bytes_be(&self.rx.split_to(KEY_LEN));
        let p = prime();
        // Reject the degenerate keys 0, 1 and p-1 (they force a known secret), and >= p.
        let one = BigUint::from(1u32);
        if y <= one || y >= &p - &one {
            return Err(MseError::BadPublicKey.into());
        }
        self.secret = to_key_bytes(&y.modpow(&self.private, &p));
        self.scanned = 0;
        Ok(true)
    }

    /// Looks for `marker` in the buffered bytes, allowing up to `MAX_PAD` bytes before it;
    /// drops the bytes before it (and the marker) when found.
    fn sync(&mut self, marker: &[u8]) -> Result<bool, Error> {
        if let Some(pos) = self.rx.windows(marker.len()).position(|w| w == marker)
            && self.scanned + pos <= MAX_PAD
        {
            self.rx.advance(pos + marker.len());
            return Ok(true);
        }
        // Keep the last marker.len() - 1 bytes, which may start the marker.
        let keep = marker.len() - 1;
        let drop = self.rx.len().saturating_sub(keep);
        self.scanned += drop;
        self.rx.advance(drop);
        if self.scanned > MAX_PAD {
            return Err(MseError::NoSync.into());
        }
        Ok(false)
    }

    fn take_decrypted(&mut self, n: usize) -> Option<BytesMut> {
        if self.rx.len() < n {
            return None;
        }
        let mut b = self.rx.split_to(n);
        if let Some(dec) = &mut self.dec {
            dec.apply_keystream(&mut b);
        }
        Some(b)
    }

    fn advance(&mut self) -> Result<(), Error> {
        loop {
            let progressed = match self.state {
                State::AwaitYb => {
                    if self.read_public_key()? {
                        self.send_step3();
                        self.state = State::SyncVc;
                        true
                    } else {
                        false
                    }
                }
                State::SyncVc => {
                    let marker = self.vc_marker;
                    if self.sync(&marker)? {
                        self.state = State::ReadSelect;
                        true
                    } else {
                        false
                    }
                }
                State::ReadSelect => match self.take_decrypted(6) {
                    Some(mut b) => {
                        let select = b.get_u32();
                        let pad = usize::from(b.get_u16());
                        if pad > MAX_PAD {
                            return Err(MseError::BadLength.into());
                        }
                        // Exactly one method, one we offered.
                        if select & self.provide != select
                            || !(select == CRYPTO_RC4 || select == CRYPTO_PLAINTEXT)
                        {
                            return Err(MseError::NoCommonMethod.into());
                        }
                        self.selected = select;
                        self.state = State::ReadPadD(pad);
                        true
                    }
                    None => false,
                },
                State::ReadPadD(n) => {
                    if self.take_decrypted(n).is_some() {
                        self.state = State::Done;
                    }
                    false
                }
                State::AwaitYa => {
                    if self.read_public_key()? {
                        self.send_public_key();
                        self.req1 = hash(&[b"req1", &self.secret]);
                        self.state = State::SyncReq1;
                        true
                    } else {
                        false
                    }
                }
                State::SyncReq1 => {
                    let marker = self.req1;
                    if self.sync(marker.as_bytes())? {
                        self.state = State::ReadReq2;
                        true
                    } else {
                        false
                    }
                }
                State::ReadReq2 => {
                    if self.rx.len() < 20 {
                        false
                    } else {
                        let x = self.rx.split_to(20);
                        let req3 = hash(&[b"req3", &self.secret]);
                        let req2: Vec<u8> =
                            x.iter().zip(req3.as_bytes()).map(|(a, b)| a ^ b).collect();
                        self.ia = BytesMut::from(&req2[..]);
                        self.state = State::AwaitSkey;
                        false
                    }
                }
                State::AwaitSkey | State::Done | State::Failed => false,
                State::ReadProvide => match self.take_decrypted(14) {
                    Some(mut b) => {
                        let mut vc = [0u8; 8];
                        b.copy_to_slice(&mut vc);
                        if vc != VC {
                            return Err(MseError::BadVerificationConstant.into());
                        }
                        self.provide = b.get_u32();
                        let pad = usize::from(b.get_u16());
                        if pad > MAX_PAD {
                            return Err(MseError::BadLength.into());
                        }
                        self.state = State::ReadPadC(pad);
                        true
                    }
                    None => false,
                },
                State::ReadPadC(n) => match self.take_decrypted(n + 2) {
                    Some(b) => {
                        let ia_len = usize::from(u16::from_be_bytes([b[n], b[n + 1]]));
                        // The answer goes out now, not after IA: an initiator that writes
                        // IA on its own (libtorrent) would otherwise wait for its Nagle
                        // timer, as nothing we send acknowledges the step before it.
                        self.send_step4()?;
                        self.state = State::ReadIa(ia_len);
                        true
                    }
                    None => false,
                },
                State::ReadIa(n) => match self.take_decrypted(n) {
                    Some(ia) => {
                        self.ia = ia;
                        self.state = State::Done;
                        false
                    }
                    None => false,
                },
            };
            if !progressed {
                return Ok(());
            }
        }
    }

    /// A, after Yb: req1, req2^req3, E(VC, crypto_provide, len(PadC), PadC, len(IA)).
    fn send_step3(&mut self) {
        let Some(skey) = self.skey else { return };
        let req1 = hash(&[b"req1", &self.secret]);
        let req2 = skey_hash(&skey);
        let req3 = hash(&[b"req3", &self.secret]);
        self.tx.put_slice(req1.as_bytes());
        let x: Vec<u8> = req2
            .as_bytes()
            .iter()
            .zip(req3.as_bytes())
            .map(|(a, b)| a ^ b)
            .collect();
        self.tx.put_slice(&x);
        let Rc4Stream { mut enc, mut dec } = Rc4Stream::new(&self.secret, &skey, true);
        let pad = self.random_pad();
        let mut plain = BytesMut::with_capacity(8 + 4 + 2 + pad.len() + 2);
        plain.put_slice(&VC);
        plain.put_u32(self.provide);
        // pad.len() <= MAX_PAD fits in u16.
        plain.put_u16(u16::try_from(pad.len()).unwrap_or(0));
        plain.put_slice(&pad);
        plain.put_u16(0); // len(IA): our handshake follows as ordinary payload
        enc.apply_keystream(&mut plain);
        self.tx.put_slice(&plain);
        // The first 8 bytes B sends under keyB are E(VC).
        let mut marker = VC;
        dec.apply_keystream(&mut marker);
        self.vc_marker = marker;
        self.enc = Some(enc);
        self.dec = Some(dec);
    }

    /// B, after len(IA): E(VC, crypto_select, len(PadD), PadD).
    fn send_step4(&mut self) -> Result<(), Error> {
        let select = self
            .config
            .select(self.provide)
            .ok_or(MseError::NoCommonMethod)?;
        self.selected = select;
        let pad = self.random_pad();
        let mut plain = BytesMut::with_capacity(8 + 4 + 2 + pad.len());
        plain.put_slice(&VC);
        plain.put_u32(select);
        plain.put_u16(u16::try_from(pad.len()).unwrap_or(0));
        plain.put_slice(&pad);
        if let Some(enc) = &mut self.enc {
            enc.apply_keystream(&mut plain);
        }
        self.tx.put_slice(&plain);
        Ok(())
    }
}

fn prime() -> BigUint {
    BigUint::from_bytes_be(&PRIME)
}

fn to_key_bytes(n: &BigUint) -> [u8; KEY_LEN] {
    let bytes = n.to_bytes_be();
    let mut out = [0u8; KEY_LEN];
    // n < p < 2^768, so bytes.len() <= 96.
    let start = KEY_LEN.saturating_sub(bytes.len());
    out[start..].copy_from_slice(&bytes[bytes.len().saturating_sub(KEY_LEN)..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(a_cfg: &MseConfig, b_cfg: &MseConfig) -> Result<(MseOutcome, MseOutcome), Error> {
        let ih = Sha1Hash::new([3; 20]);
        let mut a = MseHandshake::initiate(a_cfg, ih, [1; 32]);
        let mut b = MseHandshake::respond(b_cfg, [2; 32]);
        for _ in 0..10 {
            while let Some(out) = a.poll_transmit() {
                // One byte at a time, to exercise the sync scanning.
                for byte in out.iter() {
                    b.handle_bytes(&[*byte])?;
                }
            }
            if let MseStatus::NeedSkey(h) = b.status() {
                assert_eq!(h, skey_hash(&ih));
                b.provide_skey(Some(ih))?;
            }
            while let Some(out) = b.poll_transmit() {
                a.handle_bytes(&out)?;
            }
            if a.status() == MseStatus::Done && b.status() == MseStatus::Done {
                return Ok((a.finish()?, b.finish()?));
            }
        }
        panic!("no progress");
    }

    #[test]
    fn rc4_and_plaintext_selection() {
        let both = MseConfig::default();
        let (a, b) = run(&both, &both).unwrap();
        assert_eq!((a.method, b.method), (CRYPTO_PLAINTEXT, CRYPTO_PLAINTEXT));
        let rc4 = MseConfig {
            prefer_rc4: true,
            ..MseConfig::default()
        };
        let (mut a, mut b) = run(&both, &rc4).unwrap();
        assert_eq!((a.method, b.method), (CRYPTO_RC4, CRYPTO_RC4));
        let (ca, cb) = (a.cipher.as_mut().unwrap(), b.cipher.as_mut().unwrap());
        let mut msg = *b"hello";
        ca.encrypt(&mut msg);
        assert_ne!(&msg, b"hello");
        cb.decrypt(&mut msg);
        assert_eq!(&msg, b"hello");
        let only_plain = MseConfig {
            allowed: EncLevel::Plaintext,
            ..MseConfig::default()
        };
        let only_rc4 = MseConfig {
            allowed: EncLevel::Rc4,
            ..MseConfig::default()
        };
        assert_eq!(
            run(&only_plain, &only_rc4).unwrap_err(),
            Error::Mse(MseError::NoCommonMethod)
        );
    }

    /// The responder answers as soon as it has read len(IA), before IA itself arrives: an
    /// initiator that writes IA on its own (libtorrent) is otherwise held back by Nagle's
    /// algorithm until a delayed ACK, some 40 ms.
    #[test]
    fn responder_answers_before_the_initial_payload() {
        let cfg = MseConfig::default();
        let ih = Sha1Hash::new([7; 20]);
        let mut a = MseHandshake::initiate(&cfg, ih, [1; 32]);
        let mut b = MseHandshake::respond(&cfg, [2; 32]);
        b.handle_bytes(&a.poll_transmit().unwrap()).unwrap();
        a.handle_bytes(&b.poll_transmit().unwrap()).unwrap();
        // Step 3 ends with E(len(IA)), 0 in plaintext: make it 68 by flipping keystream bits.
        let mut step3 = a.poll_transmit().unwrap().to_vec();
        let n = step3.len();
        step3[n - 1] ^= 68;
        b.handle_bytes(&step3).unwrap();
        if let MseStatus::NeedSkey(_) = b.status() {
            b.provide_skey(Some(ih)).unwrap();
        }
        assert!(b.poll_transmit().is_some(), "step 4 waited for IA");
        assert_eq!(b.status(), MseStatus::InProgress);
        let mut ia = [0x13u8; 68];
        a.enc.as_mut().unwrap().apply_keystream(&mut ia);
        b.handle_bytes(&ia).unwrap();
        assert_eq!(b.status(), MseStatus::Done);
        assert_eq!(&b.finish().unwrap().received[..], &[0x13u8; 68][..]);
    }

    #[test]
    fn wrong_torrent_and_garbage() {
        let cfg = MseConfig::default();
        let mut a = MseHandshake::initiate(&cfg, Sha1Hash::new([3; 20]), [1; 32]);
        let mut b = MseHandshake::respond(&cfg, [2; 32]);
        let out = a.poll_transmit().unwrap();
        b.handle_bytes(&out).unwrap();
        a.handle_bytes(&b.poll_transmit().unwrap()).unwrap();
        b.handle_bytes(&a.poll_transmit().unwrap()).unwrap();
        assert!(matches!(b.status(), MseStatus::NeedSkey(_)));
        assert_eq!(
            b.provide_skey(Some(Sha1Hash::new([4; 20]))),
            Err(Error::Mse(MseError::UnknownTorrent))
        );

        // A valid public key followed by 600 bytes without the req1 marker.
        let mut b = MseHandshake::respond(&cfg, [2; 32]);
        let mut junk = to_key_bytes(&BigUint::from(5u32)).to_vec();
        junk.extend_from_slice(&[0xab; 600]);
        assert_eq!(b.handle_bytes(&junk), Err(Error::Mse(MseError::NoSync)));
        // Degenerate public key.
        let mut b = MseHandshake::respond(&cfg, [2; 32]);
        assert_eq!(
            b.handle_bytes(&[0; 96]),
            Err(Error::Mse(MseError::BadPublicKey))
        );
    }

    #[test]
    fn classify() {
        assert_eq!(classify_incoming(b"\x13Bit"), None);
        assert_eq!(classify_incoming(b"\x13BitTorrent protocol\0"), Some(true));
        assert_eq!(classify_incoming(b"\x42"), Some(false));
        let cfg = MseConfig {
            in_policy: EncPolicy::Forced,
            ..MseConfig::default()
        };
        assert!(cfg.accept_incoming(true).is_err());
        assert!(cfg.accept_incoming(false).is_ok());
    }
}
