//! Group statistics match a naive computation; reads touch only the
//! requested column chunks.

mod common;

use std::cell::Cell;

use common::*;
use omendb_columnar::{
    ColumnKind, ColumnSpec, ColumnStats, GroupStats, Result, Schema, SegmentReader, SegmentSource,
    SegmentWriter, Value,
};

/// Naive PostgreSQL-semantics statistics over `rows`.
fn naive(schema: &Schema, rows: &[Vec<Owned>]) -> GroupStats {
    let n = schema.columns.len();
    let mut out = GroupStats {
        rows: rows.len() as u64,
        nulls: vec![0; n],
        columns: vec![],
    };
    for c in 0..n {
        let kind = schema.columns[c].kind;
        let words: Vec<u64> = rows
            .iter()
            .filter_map(|r| match r[c] {
                Owned::Word(w) => Some(w),
                _ => None,
            })
            .collect();
        out.nulls[c] = rows.iter().filter(|r| r[c] == Owned::Null).count() as u64;
        let present = rows.len() as u64 - out.nulls[c];
        let stats = if present == 0 {
            ColumnStats::None
        } else {
            match kind {
                ColumnKind::Bool => ColumnStats::Bool {
                    any_false: words.contains(&0),
                    any_true: words.iter().any(|&w| w != 0),
                },
                ColumnKind::Char | ColumnKind::Int16 | ColumnKind::Int32 | ColumnKind::Int64 => {
                    let ints: Vec<i64> = words
                        .iter()
                        .map(|&w| match kind {
                            ColumnKind::Char => (w & 0xff) as i64, // "char" compares unsigned
                            ColumnKind::Int16 => w as i16 as i64,
                            ColumnKind::Int32 => w as i32 as i64,
                            _ => w as i64,
                        })
                        .collect();
                    ColumnStats::Int {
                        min: *ints.iter().min().unwrap(),
                        max: *ints.iter().max().unwrap(),
                    }
                }
                ColumnKind::Float32 | ColumnKind::Float64 => {
                    let fs: Vec<f64> = words
                        .iter()
                        .map(|&w| {
                            if kind == ColumnKind::Float32 {
                                f32::from_bits(w as u32) as f64
                            } else {
                                f64::from_bits(w)
                            }
                        })
                        .collect();
                    let num: Vec<f64> = fs
                        .iter()
                        .filter(|f| !f.is_nan())
                        .map(|&f| if f == 0.0 { 0.0 } else { f })
                        .collect();
                    ColumnStats::Float {
                        min: num.iter().cloned().fold(f64::INFINITY, f64::min),
                        max: num.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                        has_nan: fs.iter().any(|f| f.is_nan()),
                    }
                }
                ColumnKind::Fixed(_) | ColumnKind::Bytes => ColumnStats::None,
            }
        };
        out.columns.push(stats);
    }
    out
}

/// Equality that also distinguishes -0.0 from +0.0.
fn assert_stats_eq(got: &GroupStats, want: &GroupStats, what: &str) {
    assert_eq!(got, want, "{what}");
    for (g, w) in got.columns.iter().zip(&want.columns) {
        if let (
            ColumnStats::Float { min: a, max: b, .. },
            ColumnStats::Float { min: c, max: d, .. },
        ) = (g, w)
        {
            assert_eq!(
                (a.to_bits(), b.to_bits()),
                (c.to_bits(), d.to_bits()),
                "{what}"
            );
        }
    }
}

#[test]
fn stats_match_naive() {
    for seed in 0..10 {
        let mut rng = Rng::new(200 + seed);
        let extra = rng.index(6);
        let schema = random_schema(&mut rng, extra);
        let per_group = [3, 7, 50][seed as usize % 3];
        let nrows = rng.index(200);
        let rows: Vec<Vec<Owned>> = (0..nrows)
            .map(|_| {
                let mut r = random_row(&mut rng, &schema, false);
                // Columns that are mostly NULL make all-NULL groups likely.
                for (c, v) in r.iter_mut().enumerate() {
                    if c % 4 == 0 && !rng.one_in(10) {
                        *v = Owned::Null;
                    }
                }
                r
            })
            .collect();
        let mut w = SegmentWriter::new(&schema, per_group).unwrap();
        for (rn, row) in row_numbers(&mut rng, nrows).into_iter().zip(&rows) {
            w.push(rn, &as_values(row)).unwrap();
        }
        let bytes = w.finish().unwrap();
        let r = SegmentReader::open(&bytes, &schema).unwrap();
        for g in 0..r.row_groups() {
            let chunk = &rows[g * per_group..(g * per_group + per_group).min(nrows)];
            assert_stats_eq(
                r.group_stats(g),
                &naive(&schema, chunk),
                &format!("seed {seed} group {g}"),
            );
        }
        assert_stats_eq(
            &r.segment_stats(),
            &naive(&schema, &rows),
            &format!("seed {seed} segment"),
        );
    }
}

fn one_column(kind: ColumnKind) -> Schema {
    Schema {
        columns: vec![ColumnSpec {
            name: "v".into(),
            kind,
            type_oid: 0,
            typmod: -1,
        }],
    }
}

fn stats_of(kind: ColumnKind, words: &[Option<u64>]) -> GroupStats {
    let schema = one_column(kind);
    let mut w = SegmentWriter::new(&schema, 1000).unwrap();
    for (i, word) in words.iter().enumerate() {
        let v = word.map_or(Value::Null, Value::Word);
        w.push(i as u64, &[v]).unwrap();
    }
    let bytes = w.finish().unwrap();
    SegmentReader::open(&bytes, &schema)
        .unwrap()
        .group_stats(0)
        .clone()
}

#[test]
fn stats_edge_cases() {
    let nan = f64::NAN.to_bits();
    let s = stats_of(ColumnKind::Float64, &[Some(nan), None, Some(nan)]);
    assert_eq!(s.nulls, vec![1]);
    assert_eq!(
        s.columns[0],
        ColumnStats::Float {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            has_nan: true
        }
    );
    let s = stats_of(
        ColumnKind::Float64,
        &[Some((-0.0f64).to_bits()), Some(f64::INFINITY.to_bits())],
    );
    let ColumnStats::Float { min, max, has_nan } = s.columns[0] else {
        panic!()
    };
    assert_eq!((min.to_bits(), max, has_nan), (0, f64::INFINITY, false));
    let s = stats_of(ColumnKind::Int64, &[None, None]);
    assert_eq!((s.nulls[0], &s.columns[0]), (2, &ColumnStats::None));
    let s = stats_of(ColumnKind::Char, &[Some(0xc0), Some(b'a' as u64)]);
    assert_eq!(s.columns[0], ColumnStats::Int { min: 97, max: 192 });
    let s = stats_of(
        ColumnKind::Int64,
        &[Some(i64::MIN as u64), Some(i64::MAX as u64)],
    );
    assert_eq!(
        s.columns[0],
        ColumnStats::Int {
            min: i64::MIN,
            max: i64::MAX
        }
    );
    let s = stats_of(ColumnKind::Bool, &[Some(0), None]);
    assert_eq!(
        s.columns[0],
        ColumnStats::Bool {
            any_false: true,
            any_true: false
        }
    );
}

/// Counts the bytes a reader pulls out of the segment.
struct Counting<'a> {
    bytes: &'a [u8],
    read: Cell<u64>,
    calls: Cell<u64>,
}

impl SegmentSource for Counting<'_> {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.read.set(self.read.get() + len as u64);
        self.calls.set(self.calls.get() + 1);
        self.bytes.read(offset, len)
    }
}

#[test]
fn reads_only_requested_chunks() {
    let mut rng = Rng::new(77);
    let columns = (0..16)
        .map(|i| ColumnSpec {
            name: format!("c{i}"),
            kind: if i % 2 == 0 {
                ColumnKind::Bytes
            } else {
                ColumnKind::Int64
            },
            type_oid: 0,
            typmod: -1,
        })
        .collect();
    let schema = Schema { columns };
    let mut w = SegmentWriter::new(&schema, 1000).unwrap();
    for rn in 0..3000u64 {
        let row: Vec<Owned> = (0..16)
            .map(|i| {
                if i % 2 == 0 {
                    Owned::Bytes(rng.bytes(40))
                } else {
                    Owned::Word(rng.next())
                }
            })
            .collect();
        w.push(rn * 2, &as_values(&row)).unwrap();
    }
    let bytes = w.finish().unwrap();
    let src = Counting {
        bytes: &bytes,
        read: Cell::new(0),
        calls: Cell::new(0),
    };
    let total = bytes.len() as u64;

    let r = SegmentReader::open(&src, &schema).unwrap();
    let footer = src.read.get();
    assert!(footer < total / 10, "open read {footer} of {total} bytes");

    src.read.set(0);
    let d = r.read_group(&src, 1, &[6]).unwrap();
    let one = src.read.get();
    assert_eq!(d.len(), 1000);
    assert_eq!(d.row_number(0), 2000);
    // One of 16 columns of one of 3 groups (plus row numbers).
    assert!(
        one * 16 < total,
        "read {one} of {total} bytes for one column chunk"
    );
    assert!(one > 0);
    assert_eq!(r.column_chunk_bytes().len(), 16);
    let sum: u64 = r.column_chunk_bytes().iter().sum();
    assert!(sum < total && sum > total / 2, "{sum} vs {total}");
    assert!(r.uncompressed_bytes() > sum / 2);
}
