//! The serde codec (feature `serde`): plain Rust types as remote messages, encoded with postcard.
//!
//! [`Encodable`](crate::Encodable) has a blanket implementation for every prost message, so a second blanket
//! implementation for every `Serialize + Deserialize` type would overlap. Instead, [`serde_encodable!`] implements
//! it for the types a crate names, each through the functions of the hidden `__serde` module below; a user's
//! crate needs only `serde` (for the derives) in its own `Cargo.toml`.
//!
//! Why postcard: measured against prost and rmp-serde (MessagePack) on a struct with a string key, an i64, a
//! 100-byte value and an enum (`noex-bench codec`), postcard encoded and decoded fastest and wrote the fewest
//! bytes; sizing a message first (the remote-cast hot path writes into a buffer of exactly `wire_len` bytes)
//! costs a few nanoseconds, so nothing is encoded twice. bincode, the other usual choice, is unmaintained (its
//! last release on crates.io is a `compile_error!`).

/// Implements [`Encodable`](crate::Encodable) through the serde codec (postcard) for the listed types, which
/// must implement `serde::Serialize` and `serde::de::DeserializeOwned`. Needs noex-core's `serde` feature.
///
/// A generic type is listed as `impl<T, ...> Type<T, ...>`: it is then encodable for exactly those parameters
/// with which it is `Serialize + DeserializeOwned + Send + 'static`.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// enum KvCall {
///     Get { key: String },
///     Put { key: String, value: Vec<u8> },
/// }
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct Tagged<T> {
///     tag: u32,
///     value: T,
/// }
///
/// noex_core::serde_encodable!(KvCall, impl<T> Tagged<T>);
///
/// use noex_core::Encodable;
/// let call = KvCall::Put { key: "k".into(), value: vec![1, 2, 3] };
/// assert_eq!(KvCall::decode_wire(call.encode_wire()), Ok(call));
/// let tagged = Tagged { tag: 7, value: KvCall::Get { key: "k".into() } };
/// assert_eq!(Tagged::decode_wire_slice(&tagged.encode_wire()), Ok(tagged));
/// ```
///
/// Only the listed types themselves are covered: a reply of type `Vec<Item>` or `Option<Item>` is not a local
/// type of the calling crate (Rust's orphan rule), so it goes inside a struct or enum of its own, or in
/// [`Serde`].
#[macro_export]
macro_rules! serde_encodable {
    () => {};
    (impl<$($param:ident),+> $ty:ty $(, $($rest:tt)*)?) => {
        $crate::__serde_encodable_impl!([$($param),+] $ty);
        $crate::serde_encodable!($($($rest)*)?);
    };
    ($ty:ty $(, $($rest:tt)*)?) => {
        $crate::__serde_encodable_impl!([] $ty);
        $crate::serde_encodable!($($($rest)*)?);
    };
}

/// A value of any serde type as a message, encoded with the serde codec: for what [`serde_encodable!`] cannot
/// list, types of other crates (`Vec<Item>`, `Option<Item>`, a `HashMap`), which Rust's orphan rule keeps a
/// crate from implementing [`Encodable`](crate::Encodable) for. Needs noex-core's `serde` feature.
///
/// ```
/// use noex_core::{Encodable, Serde};
///
/// let reply: Serde<Vec<(String, u64)>> = Serde(vec![("a".into(), 1), ("b".into(), 2)]);
/// let bytes = reply.encode_wire();
/// assert_eq!(Serde::<Vec<(String, u64)>>::decode_wire(bytes).map(Serde::into_inner), Ok(reply.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Serde<T>(pub T);

impl<T> Serde<T> {
    /// The value inside.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Serde<T> {
    fn from(value: T) -> Self {
        Serde(value)
    }
}

impl<T> std::ops::Deref for Serde<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Serde<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> crate::Encodable for Serde<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    fn encode_wire(&self) -> bytes::Bytes {
        hidden::encode(&self.0)
    }

    fn decode_wire(bytes: bytes::Bytes) -> Result<Self, String> {
        hidden::decode(&bytes).map(Serde)
    }

    fn decode_wire_slice(bytes: &[u8]) -> Result<Self, String> {
        hidden::decode(bytes).map(Serde)
    }

    fn wire_len(&self) -> usize {
        hidden::wire_len(&self.0)
    }

    fn encode_wire_into(&self, dst: &mut [u8]) {
        hidden::encode_into(&self.0, dst)
    }
}

/// One implementation of [`serde_encodable!`]; not for direct use.
#[doc(hidden)]
#[macro_export]
macro_rules! __serde_encodable_impl {
    ([$($param:ident),*] $ty:ty) => {
        impl<$($param),*> $crate::Encodable for $ty
        where
            $ty: $crate::__serde::Serialize
                + $crate::__serde::DeserializeOwned
                + ::core::marker::Send
                + 'static,
        {
            fn encode_wire(&self) -> $crate::__serde::Bytes {
                $crate::__serde::encode(self)
            }

            fn decode_wire(
                bytes: $crate::__serde::Bytes,
            ) -> ::core::result::Result<Self, ::std::string::String> {
                $crate::__serde::decode(&bytes)
            }

            fn decode_wire_slice(bytes: &[u8]) -> ::core::result::Result<Self, ::std::string::String> {
                $crate::__serde::decode(bytes)
            }

            fn wire_len(&self) -> usize {
                $crate::__serde::wire_len(self)
            }

            fn encode_wire_into(&self, dst: &mut [u8]) {
                $crate::__serde::encode_into(self, dst)
            }
        }
    };
}

/// What [`serde_encodable!`] expands to calls: the codec itself, reached through `$crate::__serde`.
pub mod hidden {
    use super::bounded::{Bounded, Remainder, STACK_BUDGET};

    pub use bytes::Bytes;
    pub use serde::Serialize;
    pub use serde::de::DeserializeOwned;

    /// The message as bytes (sized first, so the buffer is allocated once at its final length).
    ///
    /// A value that postcard cannot encode (a sequence of unknown length, `#[serde(flatten)]`) is a bug of the
    /// sending program, not of the network; it is logged and sent as an empty payload, which the receiving side
    /// rejects as undecodable (a call then fails with `CallError::Decode`). It is not a panic, because the cast
    /// hot path encodes while holding the connection's buffer.
    pub fn encode<T: Serialize>(value: &T) -> Bytes {
        let mut buf = vec![0; wire_len(value)];
        encode_into(value, &mut buf);
        Bytes::from(buf)
    }

    /// The value from `bytes`, which must hold exactly one message: trailing bytes are an error, as is every
    /// malformed input (never a panic). Lengths inside the message are checked against the bytes present before
    /// anything is read or reserved, so a short frame claiming a huge sequence fails without a large allocation,
    /// and nesting is bounded (see `bounded.rs`), so a recursive type cannot be made to overflow the stack.
    pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        let mut deserializer = postcard::Deserializer::from_flavor(Bounded::new(bytes));
        let result = T::deserialize(&mut deserializer);
        let name = std::any::type_name::<T>();
        match (result, deserializer.finalize()) {
            (Ok(value), Ok(Remainder { unread: [], .. })) => Ok(value),
            (Ok(_), Ok(Remainder { unread, .. })) => {
                Err(format!("{name}: {} bytes left over after the message", unread.len()))
            }
            (Err(_), Ok(Remainder { too_deep: true, .. })) => Err(format!(
                "{name}: nested deeper than the codec allows (more than {} KiB of stack)",
                STACK_BUDGET / 1024
            )),
            (Err(error), _) | (Ok(_), Err(error)) => Err(format!("{name}: {error}")),
        }
    }

    /// How many bytes [`encode_into`] writes: a serialization pass that only counts, with no buffer.
    pub fn wire_len<T: Serialize>(value: &T) -> usize {
        match postcard::serialize_with_flavor::<T, _, usize>(value, postcard::ser_flavors::Size::default()) {
            Ok(len) => len,
            Err(error) => {
                unencodable::<T>(&error);
                0
            }
        }
    }

    /// Writes the value into `dst`, exactly [`wire_len`] bytes long.
    pub fn encode_into<T: Serialize>(value: &T, dst: &mut [u8]) {
        // An empty `dst` of a non-empty value means `wire_len` failed, and said so already.
        if let Err(error) = postcard::to_slice(value, dst) {
            if !dst.is_empty() {
                unencodable::<T>(&error);
            }
        }
    }

    fn unencodable<T>(error: &postcard::Error) {
        tracing::error!(
            message_type = std::any::type_name::<T>(),
            %error,
            "a message cannot be encoded by the serde codec (postcard); it is sent empty and will not decode"
        );
    }
}

mod bounded;
#[cfg(test)]
mod tests;
