//! Keys and payloads.
//!
//! The index works on `u64` keys whose unsigned order is the SQL order of the original type.
//! [`Key`] maps a type to that domain; adding int2/int4/date/timestamp is one impl each.

/// A heap tuple id: 6 bytes on disk (block u32 + offset u16), ordered by (block, offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Tid {
    pub block: u32,
    pub offset: u16,
}

impl Tid {
    pub const MIN: Tid = Tid {
        block: 0,
        offset: 0,
    };
    pub const MAX: Tid = Tid {
        block: u32::MAX,
        offset: u16::MAX,
    };
    pub const fn new(block: u32, offset: u16) -> Tid {
        Tid { block, offset }
    }
    pub(crate) fn to_bytes(self) -> [u8; 6] {
        let b = self.block.to_le_bytes();
        let o = self.offset.to_le_bytes();
        [b[0], b[1], b[2], b[3], o[0], o[1]]
    }
    pub(crate) fn from_bytes(b: [u8; 6]) -> Tid {
        Tid {
            block: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            offset: u16::from_le_bytes([b[4], b[5]]),
        }
    }
}

/// A point in the total order of index entries: (key, tid). Node bounds are `Item`s, so a run
/// of one duplicated key can be cut between two pages (the duplicate chain).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Item {
    pub key: u64,
    pub tid: Tid,
}

impl Item {
    pub const MIN: Item = Item {
        key: 0,
        tid: Tid::MIN,
    };
    pub const fn new(key: u64, tid: Tid) -> Item {
        Item { key, tid }
    }
    /// The bound "every entry whose key is >= k".
    pub const fn key_start(key: u64) -> Item {
        Item { key, tid: Tid::MIN }
    }
}

/// An order-preserving map from a SQL type to `u64`.
pub trait Key: Copy {
    /// Tag stored in the metapage so a binding can check the index matches its opclass.
    const KIND: u32;
    fn to_ordered_u64(self) -> u64;
    fn from_ordered_u64(v: u64) -> Self;
}

const SIGN: u64 = 1 << 63;

impl Key for i64 {
    const KIND: u32 = 1;
    #[inline]
    fn to_ordered_u64(self) -> u64 {
        (self as u64) ^ SIGN
    }
    #[inline]
    fn from_ordered_u64(v: u64) -> Self {
        (v ^ SIGN) as i64
    }
}

impl Key for i32 {
    const KIND: u32 = 2;
    fn to_ordered_u64(self) -> u64 {
        (self as i64).to_ordered_u64()
    }
    fn from_ordered_u64(v: u64) -> Self {
        i64::from_ordered_u64(v) as i32
    }
}

impl Key for i16 {
    const KIND: u32 = 3;
    fn to_ordered_u64(self) -> u64 {
        (self as i64).to_ordered_u64()
    }
    fn from_ordered_u64(v: u64) -> Self {
        i64::from_ordered_u64(v) as i16
    }
}

impl Key for u64 {
    const KIND: u32 = 4;
    fn to_ordered_u64(self) -> u64 {
        self
    }
    fn from_ordered_u64(v: u64) -> Self {
        v
    }
}

/// PostgreSQL's float8 order: -0.0 == 0.0, every NaN equal and greater than +infinity.
impl Key for f64 {
    const KIND: u32 = 5;
    #[inline]
    fn to_ordered_u64(self) -> u64 {
        let v = if self.is_nan() {
            f64::NAN // canonical positive quiet NaN: maps above +inf
        } else if self == 0.0 {
            0.0 // folds -0.0 onto +0.0
        } else {
            self
        };
        let b = v.to_bits();
        if b & SIGN != 0 {
            !b
        } else {
            b | SIGN
        }
    }
    #[inline]
    fn from_ordered_u64(v: u64) -> Self {
        let b = if v & SIGN != 0 { v & !SIGN } else { !v };
        f64::from_bits(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn float_order_matches_postgres() {
        let xs = [
            f64::NEG_INFINITY,
            -1e300,
            -1.0,
            -f64::MIN_POSITIVE,
            0.0,
            1e-300,
            1.0,
            f64::MAX,
            f64::INFINITY,
            f64::NAN,
        ];
        for w in xs.windows(2) {
            assert!(
                w[0].to_ordered_u64() < w[1].to_ordered_u64(),
                "{} < {}",
                w[0],
                w[1]
            );
        }
        assert_eq!((-0.0f64).to_ordered_u64(), 0.0f64.to_ordered_u64());
        assert_eq!((-f64::NAN).to_ordered_u64(), f64::NAN.to_ordered_u64());
        for x in xs {
            let y = f64::from_ordered_u64(x.to_ordered_u64());
            assert!(y == x || (x.is_nan() && y.is_nan()));
        }
    }
    #[test]
    fn int_order() {
        let xs = [i64::MIN, -5, -1, 0, 1, i64::MAX];
        for w in xs.windows(2) {
            assert!(w[0].to_ordered_u64() < w[1].to_ordered_u64());
        }
        for x in xs {
            assert_eq!(i64::from_ordered_u64(x.to_ordered_u64()), x);
        }
        assert_eq!(i64::MIN.to_ordered_u64(), 0);
        assert_eq!(i64::MAX.to_ordered_u64(), u64::MAX);
    }
}
