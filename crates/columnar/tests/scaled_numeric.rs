//! Format 2: bounded numerics stored as scaled integers read back as the
//! exact PostgreSQL images format 1 stores, on every read path; format-1
//! segments still read.

mod common;

use arrow_array::{Array, Decimal128Array};
use common::*;
use omendb_columnar::logical::{i128_to_numeric, to_logical, Logical};
use omendb_columnar::storage::{Storage, NUMERIC_OID};
use omendb_columnar::{ColumnKind, ColumnSpec, Schema, SegmentReader, SegmentWriter};

const NAN: [u8; 2] = [0x00, 0xC0];

fn numeric(name: &str, precision: i32, scale: i32) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        kind: ColumnKind::Bytes,
        type_oid: NUMERIC_OID,
        typmod: ((precision << 16) | scale) + 4,
    }
}

fn schema() -> Schema {
    Schema {
        columns: vec![
            numeric("price", 15, 2),
            ColumnSpec {
                name: "id".into(),
                kind: ColumnKind::Int64,
                type_oid: 20,
                typmod: -1,
            },
            numeric("whole", 18, 0),
            numeric("wide", 30, 4), // past 18 digits: stays plain
            numeric("frac", 6, 6),
        ],
    }
}

/// A value of numeric(precision, scale): NULL, NaN, extremes or random.
fn value(rng: &mut Rng, precision: u32, scale: u16, nan: bool) -> Owned {
    let max = 10i128.pow(precision) - 1;
    let v = match rng.below(12) {
        0 => return Owned::Null,
        1 if nan => return Owned::Bytes(NAN.to_vec()),
        2 => max,
        3 => -max,
        4 => 0,
        _ => (rng.next() as i128 % (max + 1)) * if rng.one_in(2) { -1 } else { 1 },
    };
    Owned::Bytes(i128_to_numeric(v, scale))
}

fn rows(rng: &mut Rng, n: usize, nan: bool) -> Vec<Vec<Owned>> {
    (0..n)
        .map(|i| {
            vec![
                value(rng, 15, 2, nan),
                Owned::Word(i as u64),
                value(rng, 18, 0, nan),
                value(rng, 30, 4, nan),
                value(rng, 6, 6, nan),
            ]
        })
        .collect()
}

fn write(plain: bool, rows: &[Vec<Owned>], per_group: usize) -> Vec<u8> {
    let s = schema();
    let mut w = if plain {
        SegmentWriter::new_plain(&s, per_group)
    } else {
        SegmentWriter::new(&s, per_group)
    }
    .unwrap();
    for (i, r) in rows.iter().enumerate() {
        w.push(i as u64 * 3, &as_values(r)).unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn scaled_and_plain_segments_read_the_same_images() {
    let mut rng = Rng::new(17);
    let data = rows(&mut rng, 5000, true);
    let scaled = write(false, &data, 1024);
    let plain = write(true, &data, 1024);
    assert_ne!(scaled, plain);
    for bytes in [&scaled, &plain] {
        let r = SegmentReader::open(&bytes.as_slice(), &schema()).unwrap();
        let cols: Vec<usize> = (0..5).collect();
        let mut first = 0;
        for g in 0..r.row_groups() {
            let d = r.read_group(&bytes.as_slice(), g, &cols).unwrap();
            for c in 0..5 {
                for i in 0..d.len() {
                    assert_eq!(
                        to_owned(d.value(c, i)),
                        data[first + i][c],
                        "col {c} row {i}"
                    );
                }
                let mut seen = 0;
                d.for_each_value(c, |i, v| {
                    assert_eq!(to_owned(v), data[first + i][c]);
                    seen += 1;
                });
                assert_eq!(seen, d.len());
            }
            // A fetch of a few rows decodes the same images.
            let few = r.read_rows(&bytes.as_slice(), g, &[0, 4], 10, 3).unwrap();
            // Through bytes, as the shared cache keeps rows: the same images.
            let few = r
                .group_from_bytes(&few.to_bytes(&[0, 4]).unwrap(), &[0, 4])
                .unwrap();
            for i in 0..3 {
                assert_eq!(to_owned(few.value(0, i)), data[first + 10 + i][0]);
                assert_eq!(to_owned(few.value(4, i)), data[first + 10 + i][4]);
            }
            // Through a cache of parts (the integers kept, not the images):
            // the second read comes from the cache, with the same images.
            let mut cache = MapCache::default();
            for expect_hits in [0, cols.len() + 1] {
                let (c, hits) = r
                    .read_group_through(&bytes.as_slice(), g, &cols, &mut cache)
                    .unwrap();
                assert_eq!(hits, expect_hits);
                for col in 0..5 {
                    for i in 0..c.len() {
                        assert_eq!(to_owned(c.value(col, i)), data[first + i][col]);
                    }
                }
            }
            first += d.len();
        }
        assert_eq!(first, data.len());
    }
}

#[test]
fn scaled_columns_become_the_same_decimals() {
    let mut rng = Rng::new(5);
    let data = rows(&mut rng, 3000, false);
    let scaled = write(false, &data, 700);
    let plain = write(true, &data, 700);
    let rs = SegmentReader::open(&scaled.as_slice(), &schema()).unwrap();
    let rp = SegmentReader::open(&plain.as_slice(), &schema()).unwrap();
    let logicals = [
        (
            0,
            Logical::Numeric {
                precision: 15,
                scale: 2,
            },
        ),
        (
            2,
            Logical::Numeric {
                precision: 18,
                scale: 0,
            },
        ),
        (
            3,
            Logical::Numeric {
                precision: 30,
                scale: 4,
            },
        ),
        (
            4,
            Logical::Numeric {
                precision: 6,
                scale: 6,
            },
        ),
    ];
    for g in 0..rs.row_groups() {
        let ds = rs
            .read_group(&scaled.as_slice(), g, &[0, 1, 2, 3, 4])
            .unwrap();
        let dp = rp.read_group(&plain.as_slice(), g, &[0, 2, 3, 4]).unwrap();
        for (c, logical) in logicals {
            let a = ds.logical_array(c, logical).unwrap().unwrap();
            let b = to_logical(&dp.array(c).unwrap(), logical).unwrap();
            let (a, b) = (
                a.as_any().downcast_ref::<Decimal128Array>().unwrap(),
                b.as_any().downcast_ref::<Decimal128Array>().unwrap(),
            );
            assert_eq!(a, b, "group {g} column {c}");
            assert!(a.null_count() > 0);
        }
        // Rows taken before the conversion are the converted rows taken.
        let some = arrow_array::UInt32Array::from(
            (0..ds.len() as u32)
                .filter(|i| i % 3 != 1)
                .rev()
                .collect::<Vec<_>>(),
        );
        for (d, c, logical) in logicals
            .iter()
            .map(|&(c, l)| (&ds, c, l))
            .chain(logicals.iter().map(|&(c, l)| (&dp, c, l)))
            .chain([(&ds, 1, Logical::Stored), (&dp, 1, Logical::Stored)])
        {
            if d.array(c).is_none() {
                continue;
            }
            let whole = d.logical_array(c, logical).unwrap().unwrap();
            let taken = d
                .logical_array_at(c, logical, Some(&some))
                .unwrap()
                .unwrap();
            let expect = arrow_select::take::take(&whole, &some, None).unwrap();
            assert_eq!(&taken, &expect, "group {g} column {c}");
            let all = d.logical_array_at(c, logical, None).unwrap().unwrap();
            assert_eq!(&all, &whole);
        }
        assert!(ds.logical_array(1, Logical::Stored).is_some());
        let dp1 = rp.read_group(&plain.as_slice(), g, &[]).unwrap();
        assert!(dp1.logical_array(1, Logical::Stored).is_none()); // not decoded
    }
}

#[test]
fn nan_has_no_decimal_image() {
    let mut data = rows(&mut Rng::new(9), 10, false);
    data[4][0] = Owned::Bytes(NAN.to_vec());
    let bytes = write(false, &data, 100);
    let r = SegmentReader::open(&bytes.as_slice(), &schema()).unwrap();
    let d = r.read_group(&bytes.as_slice(), 0, &[0]).unwrap();
    assert_eq!(to_owned(d.value(0, 4)), Owned::Bytes(NAN.to_vec()));
    let e = d
        .logical_array(
            0,
            Logical::Numeric {
                precision: 15,
                scale: 2,
            },
        )
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("NaN"), "{e}");
}

#[test]
fn a_value_that_would_not_read_back_is_refused_and_changes_nothing() {
    let s = schema();
    let mut w = SegmentWriter::new(&s, 10).unwrap();
    let ok = rows(&mut Rng::new(1), 1, false).remove(0);
    w.push(0, &as_values(&ok)).unwrap();
    // 1.2 with display scale 1 in a scale-2 column; infinity; 19 digits.
    for bad in [
        i128_to_numeric(12, 1),
        0xD000u16.to_le_bytes().to_vec(),
        i128_to_numeric(10i128.pow(19), 2),
    ] {
        let mut row = ok.clone();
        row[0] = Owned::Bytes(bad);
        let e = w.push(1, &as_values(&row)).unwrap_err();
        assert!(e.to_string().contains("column 0"), "{e}");
        assert_eq!(w.refused_column(), Some(0));
    }
    w.push(1, &as_values(&ok)).unwrap();
    let bytes = w.finish().unwrap();
    let r = SegmentReader::open(&bytes.as_slice(), &s).unwrap();
    assert_eq!(r.rows(), 2);
    let d = r.read_group(&bytes.as_slice(), 0, &[0, 1]).unwrap();
    assert_eq!(to_owned(d.value(0, 1)), ok[0]);
}

#[test]
fn a_refused_column_can_be_written_plain() {
    let s = schema();
    let mut row = rows(&mut Rng::new(2), 1, false).remove(0);
    let odd = i128_to_numeric(12, 1); // display scale 1 in a scale-2 column
    row[0] = Owned::Bytes(odd.clone());
    let mut storage = SegmentWriter::new(&s, 10).unwrap().storage().to_vec();
    assert_eq!(storage[0], Storage::ScaledNumeric { scale: 2 });
    storage[0] = Storage::Plain;
    let mut w = SegmentWriter::with_storage(&s, 10, storage).unwrap();
    w.push(0, &as_values(&row)).unwrap();
    assert_eq!(w.format_version(), 2); // the other numerics are still scaled
    let bytes = w.finish().unwrap();
    let r = SegmentReader::open(&bytes.as_slice(), &s).unwrap();
    let d = r.read_group(&bytes.as_slice(), 0, &[0, 2]).unwrap();
    assert_eq!(to_owned(d.value(0, 0)), Owned::Bytes(odd));
    assert_eq!(to_owned(d.value(2, 0)), row[2]);
    // A column may only be scaled as its typmod says.
    let mut bad = vec![Storage::Plain; 5];
    bad[1] = Storage::ScaledNumeric { scale: 2 };
    assert!(SegmentWriter::with_storage(&s, 10, bad).is_err());
    assert!(SegmentWriter::with_storage(&s, 10, vec![Storage::Plain; 4]).is_err());
}
