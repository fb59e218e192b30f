//! Ceph's payload encoding ("denc"): little-endian integers, u32-length strings and buffers,
//! u32-count vectors and maps, and versioned structs (`struct_v`, `compat`, u32 length).
//!
//! Decoding never trusts a length for allocation: a count is only used to pre-allocate as much as
//! the remaining input could possibly hold.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::error::DencError;

/// A value with a Ceph encoding.
pub trait Encode {
    /// Appends the encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);
}

/// A value that can be decoded from Ceph's encoding.
pub trait Decode: Sized {
    /// Reads one value, advancing the reader.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError>;
}

/// Encodes a value into a fresh buffer.
pub fn to_vec<T: Encode + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    out
}

/// Decodes a value that must fill `buf` exactly.
pub fn from_slice<T: Decode>(buf: &[u8]) -> Result<T, DencError> {
    let mut r = Reader::new(buf);
    let v = T::decode(&mut r)?;
    Ok(v)
}

/// A cursor over encoded bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], DencError> {
        if n > self.buf.len() {
            return Err(DencError::Truncated {
                what,
                need: n,
                have: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DencError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(what, N)?);
        Ok(a)
    }

    /// Reads a versioned struct header and runs `body` on exactly its payload, skipping any
    /// trailing bytes a newer encoder added. `ours` is the newest version we understand; the
    /// closure gets the encoder's `struct_v` so it can read older layouts.
    pub fn versioned<T>(
        &mut self,
        what: &'static str,
        ours: u8,
        body: impl FnOnce(u8, &mut Reader<'a>) -> Result<T, DencError>,
    ) -> Result<T, DencError> {
        let struct_v = u8::decode(self)?;
        let compat = u8::decode(self)?;
        if compat > ours {
            return Err(DencError::Incompatible { what, compat, ours });
        }
        let len = u32::decode(self)? as usize;
        let mut inner = Reader::new(self.take(what, len)?);
        body(struct_v, &mut inner)
    }
}

/// Writes a versioned struct: `struct_v`, `compat`, u32 length, then what `body` appends.
pub fn encode_versioned(
    out: &mut Vec<u8>,
    struct_v: u8,
    compat: u8,
    body: impl FnOnce(&mut Vec<u8>),
) {
    out.push(struct_v);
    out.push(compat);
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = (out.len() - len_at - 4) as u32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
}

macro_rules! le_int {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
        impl Decode for $t {
            fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
                Ok(<$t>::from_le_bytes(r.array(stringify!($t))?))
            }
        }
    )*};
}
le_int!(u8, u16, u32, u64, i8, i16, i32, i64);

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self as u8);
    }
}

impl Decode for bool {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        match u8::decode(r)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DencError::Invalid {
                what: "bool",
                value: v as u64,
            }),
        }
    }
}

impl Encode for str {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u32).encode(out);
        out.extend_from_slice(self.as_bytes());
    }
}

impl Encode for String {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_str().encode(out);
    }
}

impl Decode for String {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        let len = u32::decode(r)? as usize;
        let bytes = r.take("string", len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DencError::BadUtf8)
    }
}

/// A bufferlist: u32 length, then the bytes.
impl Encode for Bytes {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u32).encode(out);
        out.extend_from_slice(self);
    }
}

impl Decode for Bytes {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        let len = u32::decode(r)? as usize;
        Ok(Bytes::copy_from_slice(r.take("bufferlist", len)?))
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u32).encode(out);
        for v in self {
            v.encode(out);
        }
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        let count = u32::decode(r)? as usize;
        // Each element takes at least one byte, so the input bounds any honest count.
        let mut v = Vec::with_capacity(count.min(r.remaining()));
        for _ in 0..count {
            v.push(T::decode(r)?);
        }
        Ok(v)
    }
}

impl<K: Encode, V: Encode> Encode for BTreeMap<K, V> {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u32).encode(out);
        for (k, v) in self {
            k.encode(out);
            v.encode(out);
        }
    }
}

impl<K: Decode + Ord, V: Decode> Decode for BTreeMap<K, V> {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        let count = u32::decode(r)?;
        let mut m = BTreeMap::new();
        for _ in 0..count {
            let k = K::decode(r)?;
            let v = V::decode(r)?;
            m.insert(k, v);
        }
        Ok(m)
    }
}

impl<A: Encode, B: Encode> Encode for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
}

impl<A: Decode, B: Decode> Decode for (A, B) {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DencError> {
        Ok((A::decode(r)?, B::decode(r)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn primitives_are_little_endian() {
        assert_eq!(to_vec(&0x0102_0304u32), [4, 3, 2, 1]);
        assert_eq!(to_vec("ab"), [2, 0, 0, 0, b'a', b'b']);
        assert_eq!(to_vec(&true), [1]);
        assert_eq!(to_vec(&vec![1u16, 2]), [2, 0, 0, 0, 1, 0, 2, 0]);
    }

    #[test]
    fn versioned_skips_unknown_trailing_bytes_and_checks_compat() {
        let mut out = Vec::new();
        encode_versioned(&mut out, 3, 1, |o| {
            7u32.encode(o);
            99u64.encode(o); // a field from a newer version we do not know
        });
        5u8.encode(&mut out);
        let mut r = Reader::new(&out);
        let v = r
            .versioned("t", 2, |struct_v, r| {
                assert_eq!(struct_v, 3);
                u32::decode(r)
            })
            .unwrap();
        assert_eq!(v, 7);
        assert_eq!(
            u8::decode(&mut r).unwrap(),
            5,
            "trailing bytes were not skipped"
        );

        let mut out = Vec::new();
        encode_versioned(&mut out, 4, 3, |o| 1u8.encode(o));
        let err = Reader::new(&out).versioned("t", 2, |_, r| u8::decode(r));
        assert_eq!(
            err,
            Err(DencError::Incompatible {
                what: "t",
                compat: 3,
                ours: 2
            })
        );
    }

    #[test]
    fn huge_counts_do_not_allocate() {
        let bytes = [0xff, 0xff, 0xff, 0xff];
        assert!(from_slice::<Vec<u64>>(&bytes).is_err());
        assert!(from_slice::<String>(&bytes).is_err());
        assert!(from_slice::<BTreeMap<u32, u32>>(&bytes).is_err());
        assert!(from_slice::<bool>(&[2]).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(
            a in any::<u64>(), b in any::<i32>(), s in ".*", v in proptest::collection::vec(any::<u16>(), 0..20),
            m in proptest::collection::btree_map(any::<u32>(), ".{0,8}", 0..10), flag in any::<bool>(),
            blob in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut out = Vec::new();
            a.encode(&mut out); b.encode(&mut out); s.encode(&mut out); v.encode(&mut out);
            m.encode(&mut out); flag.encode(&mut out); Bytes::from(blob.clone()).encode(&mut out);
            let mut r = Reader::new(&out);
            prop_assert_eq!(u64::decode(&mut r).unwrap(), a);
            prop_assert_eq!(i32::decode(&mut r).unwrap(), b);
            prop_assert_eq!(String::decode(&mut r).unwrap(), s);
            prop_assert_eq!(Vec::<u16>::decode(&mut r).unwrap(), v);
            prop_assert_eq!(BTreeMap::<u32, String>::decode(&mut r).unwrap(), m);
            prop_assert_eq!(bool::decode(&mut r).unwrap(), flag);
            prop_assert_eq!(Bytes::decode(&mut r).unwrap(), Bytes::from(blob));
            prop_assert_eq!(r.remaining(), 0);
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = from_slice::<Vec<String>>(&bytes);
            let _ = from_slice::<BTreeMap<String, Vec<u64>>>(&bytes);
            let _ = Reader::new(&bytes).versioned("x", 1, |_, r| Vec::<(u32, String)>::decode(r));
        }
    }
}
