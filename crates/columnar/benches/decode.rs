//! Criterion bench: decoding a `numeric(15,2)` column for a scan, from a
//! format-1 segment (PostgreSQL images, parsed per value) and from a
//! format-2 segment (scaled INT64), to the `Decimal128` the DataFusion scan
//! computes on and to the images the row-at-a-time table AM returns.
//! One row group of 122,880 rows, as the table AM writes them.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use omendb_columnar::logical::{i128_to_numeric, Logical};
use omendb_columnar::storage::NUMERIC_OID;
use omendb_columnar::{ColumnKind, ColumnSpec, Schema, SegmentReader, SegmentWriter, Value};

const ROWS: usize = 122_880;
const LOGICAL: Logical = Logical::Numeric {
    precision: 15,
    scale: 2,
};

fn segment(plain: bool) -> Vec<u8> {
    let schema = Schema {
        columns: vec![ColumnSpec {
            name: "l_extendedprice".into(),
            kind: ColumnKind::Bytes,
            type_oid: NUMERIC_OID,
            typmod: ((15 << 16) | 2) + 4,
        }],
    };
    let mut w = if plain {
        SegmentWriter::new_plain(&schema, ROWS)
    } else {
        SegmentWriter::new(&schema, ROWS)
    }
    .unwrap();
    // TPC-H-like prices: 900.00 to 104,949.50, spread by a fixed LCG.
    let mut x: u64 = 42;
    for i in 0..ROWS {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let cents = 90_000 + (x >> 33) % 10_404_950;
        let payload = i128_to_numeric(i128::from(cents), 2);
        w.push(i as u64, &[Value::Bytes(&payload)]).unwrap();
    }
    w.finish().unwrap()
}

fn bench(c: &mut Criterion) {
    for (name, plain) in [("format1_images", true), ("format2_scaled", false)] {
        let bytes = segment(plain);
        let r = SegmentReader::open(&bytes.as_slice(), &{
            let r = SegmentReader::open_stored(&bytes.as_slice()).unwrap();
            r.schema().clone()
        })
        .unwrap();
        println!("{name}: {} bytes for {ROWS} rows", bytes.len());
        let mut g = c.benchmark_group("numeric_column");
        g.measurement_time(Duration::from_secs(3));
        g.bench_function(format!("{name}/decimal128"), |b| {
            b.iter(|| {
                let d = r.read_group(&bytes.as_slice(), 0, &[0]).unwrap();
                black_box(d.logical_array(0, LOGICAL).unwrap().unwrap())
            })
        });
        g.bench_function(format!("{name}/row_values"), |b| {
            b.iter(|| {
                let d = r.read_group(&bytes.as_slice(), 0, &[0]).unwrap();
                let mut n = 0usize;
                d.for_each_value(0, |_, v| {
                    if let Value::Bytes(b) = v {
                        n += b.len();
                    }
                });
                black_box(n)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
