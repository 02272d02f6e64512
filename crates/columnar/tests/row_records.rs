//! Row records round-trip, and corrupt records are rejected without panics.

mod common;

use common::*;
use omendb_columnar::{decode_row, encode_row, ColumnKind, ColumnSpec, Schema, Value};

#[test]
fn round_trip_random_rows() {
    for seed in 0..40 {
        let mut rng = Rng::new(seed);
        let extra = rng.index(20);
        let schema = random_schema(&mut rng, extra);
        // Several records back to back in one buffer, decoded by slices.
        let mut buf = Vec::new();
        let mut spans = Vec::new();
        let mut rows = Vec::new();
        for _ in 0..50 {
            let row = random_row(&mut rng, &schema, seed % 8 == 0);
            let start = buf.len();
            encode_row(&schema, &as_values(&row), &mut buf);
            spans.push(start..buf.len());
            rows.push(row);
        }
        let mut out = Vec::new();
        for (span, row) in spans.into_iter().zip(&rows) {
            decode_row(&schema, &buf[span], &mut out).unwrap();
            assert_eq!(out.len(), row.len());
            for (c, (got, want)) in out.iter().zip(row).enumerate() {
                let kind = schema.columns[c].kind;
                assert_eq!(
                    to_owned(*got),
                    expected(kind, want),
                    "seed {seed} column {c}"
                );
            }
        }
    }
}

#[test]
fn layout_is_compact() {
    let col = |kind| ColumnSpec {
        name: "x".into(),
        kind,
        type_oid: 0,
        typmod: -1,
    };
    let schema = Schema {
        columns: vec![
            col(ColumnKind::Bool),
            col(ColumnKind::Int16),
            col(ColumnKind::Bytes),
            col(ColumnKind::Fixed(3)),
            col(ColumnKind::Float64),
        ],
    };
    let mut buf = Vec::new();
    let vals = [
        Value::Word(1),
        Value::Word(0xffff_fffe),
        Value::Bytes(b"hi"),
        Value::Null,
        Value::Word(f64::to_bits(-0.0)),
    ];
    encode_row(&schema, &vals, &mut buf);
    // bitmap (1) + bool (1) + int16 (2) + len (4) + "hi" (2) + float64 (8)
    assert_eq!(buf.len(), 18);
    assert_eq!(buf[0], 0b0000_1000);
    let mut out = Vec::new();
    decode_row(&schema, &buf, &mut out).unwrap();
    assert_eq!(out[1], Value::Word(-2i64 as u64));
    assert_eq!(out[2], Value::Bytes(b"hi"));
    assert_eq!(out[3], Value::Null);
    // A zero-column schema encodes to an empty record.
    let empty = Schema { columns: vec![] };
    let mut buf = Vec::new();
    encode_row(&empty, &[], &mut buf);
    assert!(buf.is_empty());
    decode_row(&empty, &buf, &mut out).unwrap();
    assert!(out.is_empty());
    assert!(decode_row(&empty, &[0], &mut out).is_err());
}

#[test]
fn empty_bytes_differ_from_null() {
    let schema = Schema {
        columns: vec![ColumnSpec {
            name: "b".into(),
            kind: ColumnKind::Bytes,
            type_oid: 17,
            typmod: -1,
        }],
    };
    let mut a = Vec::new();
    let mut b = Vec::new();
    encode_row(&schema, &[Value::Bytes(&[])], &mut a);
    encode_row(&schema, &[Value::Null], &mut b);
    assert_ne!(a, b);
    let mut out = Vec::new();
    decode_row(&schema, &a, &mut out).unwrap();
    assert_eq!(out, vec![Value::Bytes(&[])]);
    decode_row(&schema, &b, &mut out).unwrap();
    assert_eq!(out, vec![Value::Null]);
}

#[test]
fn truncated_and_extended_records_are_rejected() {
    for seed in 0..30 {
        let mut rng = Rng::new(1000 + seed);
        let extra = rng.index(10);
        let schema = random_schema(&mut rng, extra);
        let row = random_row(&mut rng, &schema, false);
        let mut rec = Vec::new();
        encode_row(&schema, &as_values(&row), &mut rec);
        let mut longer = rec.clone();
        longer.push(0);
        let mut out = Vec::new();
        for cut in 0..rec.len() {
            let e = decode_row(&schema, &rec[..cut], &mut out);
            assert!(e.is_err(), "prefix {cut}/{} decoded", rec.len());
            assert!(out.is_empty(), "out must be cleared on error");
        }
        let e = decode_row(&schema, &longer, &mut out).unwrap_err();
        assert!(e.to_string().contains("trailing"), "{e}");
    }
}

#[test]
fn fuzzed_records_never_panic() {
    let (mut ok, mut bad) = (0, 0);
    for seed in 0..60 {
        let mut rng = Rng::new(5000 + seed);
        let extra = rng.index(10);
        let schema = random_schema(&mut rng, extra);
        let row = random_row(&mut rng, &schema, false);
        let mut rec = Vec::new();
        encode_row(&schema, &as_values(&row), &mut rec);
        for _ in 0..100 {
            let mut m = rec.clone();
            for _ in 0..1 + rng.below(3) {
                match rng.below(4) {
                    0 if !m.is_empty() => {
                        let i = rng.index(m.len());
                        m[i] ^= 1 << rng.below(8);
                    }
                    1 if !m.is_empty() => {
                        let i = rng.index(m.len());
                        m[i] = rng.next() as u8;
                    }
                    2 => m.truncate(rng.index(m.len() + 1)),
                    _ => {
                        let i = rng.index(m.len() + 1);
                        m.insert(i, rng.next() as u8);
                    }
                }
            }
            let mut out = Vec::new();
            match decode_row(&schema, &m, &mut out) {
                Ok(()) => {
                    ok += 1;
                    assert_eq!(out.len(), schema.columns.len());
                    // Whatever decodes must re-encode to the same bytes.
                    let mut again = Vec::new();
                    encode_row(&schema, &out, &mut again);
                    assert_eq!(again, m);
                }
                Err(e) => {
                    bad += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }
    assert!(bad > 1000, "fuzzing found only {bad} errors ({ok} ok)");
}

#[test]
#[should_panic]
fn encode_with_wrong_arity_panics() {
    let schema = Schema {
        columns: vec![ColumnSpec {
            name: "i".into(),
            kind: ColumnKind::Int32,
            type_oid: 23,
            typmod: -1,
        }],
    };
    encode_row(&schema, &[], &mut Vec::new());
}
