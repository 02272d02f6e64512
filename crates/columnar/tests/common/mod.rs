//! Shared helpers for the integration tests: a tiny deterministic PRNG,
//! random schemas and values, and an independent statement of the word
//! conventions.
#![allow(dead_code)]

use omendb_columnar::{ColumnKind, ColumnSpec, Schema, Value};

/// SplitMix64: deterministic, dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5eed_1234_abcd_ef01)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True with probability 1/n.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())]
    }
}

pub const ALL_KINDS: &[ColumnKind] = &[
    ColumnKind::Bool,
    ColumnKind::Char,
    ColumnKind::Int16,
    ColumnKind::Int32,
    ColumnKind::Int64,
    ColumnKind::Float32,
    ColumnKind::Float64,
    ColumnKind::Fixed(1),
    ColumnKind::Fixed(16),
    ColumnKind::Fixed(64),
    ColumnKind::Bytes,
];

const ODD_NAMES: &[&str] = &[
    "",
    "a",
    "a",
    "x,y;z|w:1",
    "naïve ☃",
    "__omendb_row",
    "c0",
    "A B",
];

/// A schema with every kind at least once plus `extra` random columns, in
/// random order, with odd and duplicate names.
pub fn random_schema(rng: &mut Rng, extra: usize) -> Schema {
    let mut kinds: Vec<ColumnKind> = ALL_KINDS.to_vec();
    for _ in 0..extra {
        kinds.push(rng.pick(ALL_KINDS));
    }
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.index(i + 1));
    }
    let columns = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| ColumnSpec {
            name: if rng.one_in(3) {
                rng.pick(ODD_NAMES).to_string()
            } else {
                format!("col{i}")
            },
            kind,
            type_oid: rng.below(100_000) as u32,
            typmod: rng.below(200) as i32 - 100,
        })
        .collect();
    Schema { columns }
}

/// An owned value, so tests can keep rows around.
#[derive(Clone, Debug, PartialEq)]
pub enum Owned {
    Null,
    Word(u64),
    Bytes(Vec<u8>),
}

impl Owned {
    pub fn as_value(&self) -> Value<'_> {
        match self {
            Owned::Null => Value::Null,
            Owned::Word(w) => Value::Word(*w),
            Owned::Bytes(b) => Value::Bytes(b),
        }
    }
}

pub fn as_values(row: &[Owned]) -> Vec<Value<'_>> {
    row.iter().map(Owned::as_value).collect()
}

const F64_SPECIAL: &[u64] = &[
    0x7ff8_0000_0000_0000, // quiet NaN
    0x7ff8_0000_0000_0001, // NaN with payload
    0xfff0_0000_0000_0123, // negative signalling NaN
    0x8000_0000_0000_0000, // -0.0
    0x0000_0000_0000_0000, // +0.0
    0x7ff0_0000_0000_0000, // +inf
    0xfff0_0000_0000_0000, // -inf
    0x0000_0000_0000_0001, // smallest subnormal
    0x7fef_ffff_ffff_ffff, // f64::MAX
];

const F32_SPECIAL: &[u32] = &[
    0x7fc0_0000,
    0x7fc0_0001,
    0xff80_0001, // negative signalling NaN
    0x8000_0000,
    0x0000_0000,
    0x7f80_0000,
    0xff80_0000,
    0x0000_0001,
];

const INT_SPECIAL: &[u64] = &[
    0,
    1,
    u64::MAX,
    i64::MIN as u64,
    i64::MAX as u64,
    0x80,
    0x7f,
    0xff,
    0x8000,
    0xffff,
    0x8000_0000,
    0xffff_ffff,
];

/// A random value for `kind`; words carry random high bits, which the codec
/// must ignore.
pub fn random_value(rng: &mut Rng, kind: ColumnKind, big: bool) -> Owned {
    if rng.one_in(6) {
        return Owned::Null;
    }
    let junk = if rng.one_in(2) { rng.next() } else { 0 };
    match kind {
        ColumnKind::Bool => Owned::Word(rng.pick(&[0, 1, 1, junk | 1])),
        ColumnKind::Char | ColumnKind::Int16 | ColumnKind::Int32 | ColumnKind::Int64 => {
            let w = if rng.one_in(3) {
                rng.pick(INT_SPECIAL)
            } else if rng.one_in(2) {
                rng.below(5) // small values repeat: exercises dictionaries
            } else {
                rng.next()
            };
            let width = match kind {
                ColumnKind::Char => 8,
                ColumnKind::Int16 => 16,
                ColumnKind::Int32 => 32,
                _ => 64,
            };
            if width == 64 {
                Owned::Word(w)
            } else {
                Owned::Word(w & ((1u64 << width) - 1) | junk << width)
            }
        }
        ColumnKind::Float32 => {
            let bits = if rng.one_in(2) {
                rng.pick(F32_SPECIAL)
            } else {
                rng.next() as u32
            };
            Owned::Word(u64::from(bits) | junk << 32)
        }
        ColumnKind::Float64 => Owned::Word(if rng.one_in(2) {
            rng.pick(F64_SPECIAL)
        } else {
            rng.next()
        }),
        ColumnKind::Fixed(n) => {
            let n = usize::from(n);
            if rng.one_in(3) {
                Owned::Bytes(vec![rng.below(3) as u8; n])
            } else {
                Owned::Bytes(rng.bytes(n))
            }
        }
        ColumnKind::Bytes => {
            let len = match rng.below(10) {
                0 | 1 => 0,
                2 if big && rng.one_in(8) => 100 * 1024,
                3 => 1,
                _ => rng.index(40),
            };
            Owned::Bytes(rng.bytes(len))
        }
    }
}

pub fn random_row(rng: &mut Rng, schema: &Schema, big: bool) -> Vec<Owned> {
    schema
        .columns
        .iter()
        .map(|c| random_value(rng, c.kind, big))
        .collect()
}

/// The decoded form of a word, stated independently of the crate.
pub fn canonical(kind: ColumnKind, w: u64) -> u64 {
    match kind {
        ColumnKind::Bool => (w != 0) as u64,
        ColumnKind::Char => (w as i8) as u64,
        ColumnKind::Int16 => (w as i16) as u64,
        ColumnKind::Int32 => (w as i32) as u64,
        ColumnKind::Float32 => w & 0xffff_ffff,
        _ => w,
    }
}

/// What decoding `value` of `kind` must return.
pub fn expected(kind: ColumnKind, value: &Owned) -> Owned {
    match value {
        Owned::Word(w) => Owned::Word(canonical(kind, *w)),
        other => other.clone(),
    }
}

pub fn to_owned(value: Value) -> Owned {
    match value {
        Value::Null => Owned::Null,
        Value::Word(w) => Owned::Word(w),
        Value::Bytes(b) => Owned::Bytes(b.to_vec()),
    }
}

/// Strictly increasing row numbers with random gaps, some large.
pub fn row_numbers(rng: &mut Rng, n: usize) -> Vec<u64> {
    let mut next = rng.below(1000);
    (0..n)
        .map(|_| {
            let this = next;
            next += match rng.below(10) {
                0 => 1 + rng.below(1 << 40),
                1..=5 => 1,
                _ => 1 + rng.below(50),
            };
            this
        })
        .collect()
}

/// A cache of row-group parts over a map, counting what it is asked.
#[derive(Default)]
pub struct MapCache {
    pub parts: std::collections::HashMap<omendb_columnar::Part, Vec<u8>>,
    pub refuse: bool,
    pub puts: usize,
}

impl omendb_columnar::PartCache for MapCache {
    fn get(&mut self, part: omendb_columnar::Part, out: &mut Vec<u8>) -> bool {
        match self.parts.get(&part) {
            Some(b) => {
                out.clear();
                out.extend_from_slice(b);
                true
            }
            None => false,
        }
    }
    fn accepts(&self, _bytes: usize) -> bool {
        !self.refuse
    }
    fn put(&mut self, part: omendb_columnar::Part, bytes: &[&[u8]]) {
        self.puts += 1;
        self.parts.insert(part, bytes.concat());
    }
}
