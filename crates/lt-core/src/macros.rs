//! The one macro behind the fixed-size byte-array newtypes (`Sha1Hash`,
//! `Sha256Hash`, `PeerId`), so they share a single, tested implementation.

/// Defines a `Copy` newtype around `[u8; $len]` with constructors, hex
/// conversion, `Display` (lowercase hex), `FromStr` (hex), `AsRef<[u8]>` and
/// array conversions. `Debug` is left to the caller.
macro_rules! byte_array_newtype {
    ($(#[$meta:meta])* $name:ident, $len:literal, $hex_len:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name([u8; $len]);

        impl $name {
            #[doc = concat!("The length in bytes: ", stringify!($len), ".")]
            pub const LEN: usize = $len;

            /// Wraps the given bytes.
            #[must_use]
            pub const fn new(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            #[doc = concat!("Copies a slice of exactly ", stringify!($len), " bytes; `None` for any other length.")]
            #[must_use]
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; $len]>::try_from(bytes).ok().map(Self)
            }

            /// The raw bytes.
            #[must_use]
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// The raw bytes, by value.
            #[must_use]
            pub const fn into_bytes(self) -> [u8; $len] {
                self.0
            }

            /// Whether every byte is zero.
            #[must_use]
            pub fn is_zero(&self) -> bool {
                self.0.iter().all(|&b| b == 0)
            }

            #[doc = concat!("The bytes as ", stringify!($hex_len), " lowercase hex digits.")]
            #[must_use]
            pub fn to_hex(&self) -> String {
                crate::hex::encode(&self.0)
            }

            #[doc = concat!("Parses exactly ", stringify!($hex_len), " hex digits, in either case.")]
            ///
            /// # Errors
            ///
            /// [`Error::HexLength`](crate::Error::HexLength) for any other length and
            /// [`Error::HexDigit`](crate::Error::HexDigit) for a non-hex character.
            pub fn from_hex(s: &str) -> Result<Self, crate::Error> {
                let mut bytes = [0u8; $len];
                crate::hex::decode_into(s, &mut bytes)?;
                Ok(Self(bytes))
            }
        }

        /// Lowercase hex.
        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                crate::hex::fmt(&self.0, f)
            }
        }

        /// Parses hex, in either case; see `from_hex`.
        impl core::str::FromStr for $name {
            type Err = crate::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_hex(s)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
        }

        impl From<$name> for [u8; $len] {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        #[cfg(feature = "quickcheck")]
        impl quickcheck::Arbitrary for $name {
            fn arbitrary(g: &mut quickcheck::Gen) -> Self {
                let mut bytes = [0u8; $len];
                for b in &mut bytes {
                    *b = u8::arbitrary(g);
                }
                Self(bytes)
            }
        }
    };
}

pub(crate) use byte_array_newtype;
