//! Damaged or foreign segments give errors, never panics.

mod common;

use std::sync::Arc;

use common::*;
use omendb_columnar::{Schema, SegmentReader, SegmentWriter, FORMAT_VERSION};

fn segment(seed: u64, rows: usize, per_group: usize) -> (Schema, Vec<u8>) {
    let mut rng = Rng::new(seed);
    let schema = random_schema(&mut rng, 2);
    let mut w = SegmentWriter::new(&schema, per_group).unwrap();
    for (rn, _) in row_numbers(&mut rng, rows).into_iter().zip(0..) {
        let row = random_row(&mut rng, &schema, false);
        w.push(rn, &as_values(&row)).unwrap();
    }
    (schema, w.finish().unwrap())
}

/// Opens and fully decodes `bytes`, returning the first error.
fn open_and_read(bytes: &[u8], schema: &Schema) -> omendb_columnar::Result<()> {
    let r = SegmentReader::open(&bytes, schema)?;
    let all: Vec<usize> = (0..schema.columns.len()).collect();
    for g in 0..r.row_groups() {
        let d = r.read_group(&bytes, g, &all)?;
        for i in 0..d.len() {
            for &c in &all {
                let _ = d.value(c, i);
            }
        }
    }
    Ok(())
}

#[test]
fn truncated_segments_are_rejected() {
    let (schema, bytes) = segment(1, 60, 7);
    open_and_read(&bytes, &schema).unwrap();
    let mut rng = Rng::new(9);
    let mut cuts: Vec<usize> = (0..40).collect();
    cuts.extend((0..200).map(|_| rng.index(bytes.len())));
    cuts.extend(bytes.len() - 40..bytes.len());
    for cut in cuts {
        let short = bytes[..cut].to_vec();
        assert!(
            open_and_read(&short, &schema).is_err(),
            "cut at {cut} accepted"
        );
    }
}

#[test]
fn wrong_magic_is_rejected() {
    let (schema, bytes) = segment(2, 20, 7);
    let mut b = bytes.clone();
    let n = b.len();
    b[n - 1] = b'X';
    let e = SegmentReader::open(&b, &schema).err().unwrap();
    assert!(e.to_string().contains("magic"), "{e}");
    let mut b = bytes.clone();
    b[0] = 0;
    assert!(SegmentReader::open(&b, &schema).is_err());
    let mut b = bytes.clone();
    b[n - 5] = 0xff; // metadata length now exceeds the file
    let e = SegmentReader::open(&b, &schema).err().unwrap();
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn schema_mismatch_names_the_difference() {
    let (schema, bytes) = segment(3, 20, 7);
    type Change = Box<dyn Fn(&mut Schema)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|s| s.columns[2].type_oid += 1),
            "column 2 type oid",
        ),
        (Box::new(|s| s.columns[1].typmod += 1), "column 1 typmod"),
        (Box::new(|s| s.columns[3].name.push('!')), "column 3 name"),
        (
            Box::new(|s| {
                s.columns.pop();
            }),
            "columns, expected",
        ),
        (
            Box::new(|s| {
                let c = s.columns[0].clone();
                s.columns.push(c)
            }),
            "columns, expected",
        ),
        (
            Box::new(|s| {
                s.columns[4].kind = if s.columns[4].kind == omendb_columnar::ColumnKind::Bytes {
                    omendb_columnar::ColumnKind::Int64
                } else {
                    omendb_columnar::ColumnKind::Bytes
                }
            }),
            "column 4 kind",
        ),
    ];
    for (change, needle) in cases {
        let mut other = schema.clone();
        change(&mut other);
        let e = SegmentReader::open(&bytes, &other).err().unwrap();
        assert!(e.to_string().contains(needle), "{e} lacks {needle}");
    }
}

/// Writes a plain Parquet file with the given key-value metadata.
fn foreign(kv: Vec<(&str, String)>) -> Vec<u8> {
    use arrow_array::{ArrayRef, Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field};
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    let schema = Arc::new(arrow_schema::Schema::new(vec![Field::new(
        "__omendb_row",
        DataType::Int64,
        false,
    )]));
    let col: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
    let batch = RecordBatch::try_new(schema.clone(), vec![col]).unwrap();
    let kv = kv
        .into_iter()
        .map(|(k, v)| KeyValue::new(k.to_string(), v))
        .collect();
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(kv))
        .build();
    let mut w = ArrowWriter::try_new(Vec::new(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.into_inner().unwrap()
}

#[test]
fn foreign_files_are_rejected() {
    let empty = Schema { columns: vec![] };
    let good = vec![
        ("omendb.format_version", "1".to_string()),
        ("omendb.schema", String::new()),
        ("omendb.stats", "3".to_string()),
    ];
    // Sanity: with matching metadata the foreign file is accepted.
    let f = foreign(good.clone());
    let r = SegmentReader::open(&f, &empty).unwrap();
    assert_eq!(r.rows(), 3);
    assert_eq!(r.group_row_range(0), (1, 3));

    // Version 2 also needs the per-column storage list.
    let mut v = good.clone();
    v[0].1 = FORMAT_VERSION.to_string();
    let e = SegmentReader::open(&foreign(v.clone()), &empty)
        .err()
        .unwrap();
    assert!(e.to_string().contains("omendb.storage"), "{e}");
    v.push(("omendb.storage", String::new()));
    assert_eq!(
        SegmentReader::open(&foreign(v.clone()), &empty)
            .unwrap()
            .rows(),
        3
    );
    v[3].1 = "p".into();
    let e = SegmentReader::open(&foreign(v), &empty).err().unwrap();
    assert!(e.to_string().contains("storage"), "{e}");

    for bad in [(FORMAT_VERSION + 1).to_string(), "0".into(), "x".into()] {
        let mut v = good.clone();
        v[0].1 = bad;
        let e = SegmentReader::open(&foreign(v), &empty).err().unwrap();
        assert!(e.to_string().contains("version"), "{e}");
    }

    let e = SegmentReader::open(&foreign(vec![]), &empty).err().unwrap();
    assert!(e.to_string().contains("omendb.format_version"), "{e}");

    let mut v = good.clone();
    v[2].1 = "4".into();
    assert!(
        SegmentReader::open(&foreign(v), &empty).is_err(),
        "row count disagrees"
    );

    let mut v = good.clone();
    v[1].1 = "int99,1,2,zz".into();
    let e = SegmentReader::open(&foreign(v), &empty).err().unwrap();
    assert!(e.to_string().contains("malformed"), "{e}");

    let mut v = good;
    v[2].1 = "3|0:n".into();
    assert!(
        SegmentReader::open(&foreign(v), &empty).is_err(),
        "stats column count"
    );
}

#[test]
fn flipped_bytes_never_panic() {
    let (schema, bytes) = segment(4, 40, 7);
    let mut rng = Rng::new(11);
    let (mut ok, mut bad) = (0, 0);
    for round in 0..600 {
        let mut b = bytes.clone();
        // Half the damage lands in the footer metadata, half anywhere.
        let n = b.len();
        let i = if round % 2 == 0 {
            n - 8 - rng.index(n.min(600) - 8) - 1
        } else {
            rng.index(n)
        };
        b[i] ^= 1 << rng.below(8);
        match open_and_read(&b, &schema) {
            Ok(()) => ok += 1,
            Err(e) => {
                bad += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    assert!(bad > 50, "only {bad} of {} corruptions detected", ok + bad);
}

#[test]
fn out_of_range_requests_are_errors() {
    let (schema, bytes) = segment(5, 20, 7);
    let r = SegmentReader::open(&bytes, &schema).unwrap();
    assert!(r.read_group(&bytes, r.row_groups(), &[0]).is_err());
    assert!(r.read_group(&bytes, 0, &[schema.columns.len()]).is_err());
    // A source that is not the segment the reader was opened on.
    let short = bytes[..16].to_vec();
    assert!(r.read_group(&short, r.row_groups() - 1, &[0, 1]).is_err());
}
