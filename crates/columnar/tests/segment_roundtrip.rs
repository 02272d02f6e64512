//! Segments round-trip every kind bit-exactly, under any projection.

mod common;

use common::*;
use omendb_columnar::{ColumnKind, Schema, SegmentReader, SegmentWriter, Value};

struct Table {
    schema: Schema,
    row_numbers: Vec<u64>,
    rows: Vec<Vec<Owned>>,
}

fn random_table(rng: &mut Rng, nrows: usize, big: bool) -> Table {
    let extra = rng.index(8);
    let schema = random_schema(rng, extra);
    let rows = (0..nrows).map(|_| random_row(rng, &schema, big)).collect();
    Table {
        row_numbers: row_numbers(rng, nrows),
        schema,
        rows,
    }
}

fn write(table: &Table, rows_per_group: usize) -> Vec<u8> {
    let mut w = SegmentWriter::new(&table.schema, rows_per_group).unwrap();
    for (rn, row) in table.row_numbers.iter().zip(&table.rows) {
        w.push(*rn, &as_values(row)).unwrap();
    }
    assert_eq!(w.rows(), table.rows.len() as u64);
    assert!(w.buffered_bytes() > 0 || table.rows.is_empty());
    w.finish().unwrap()
}

/// Decodes every group with `projection(group)` and checks each value.
fn check(table: &Table, bytes: &[u8], rows_per_group: usize, rng: &mut Rng, projections: usize) {
    let reader = SegmentReader::open(&bytes, &table.schema).unwrap();
    let n = table.rows.len();
    assert_eq!(reader.rows(), n as u64);
    assert_eq!(reader.row_groups(), n.div_ceil(rows_per_group));
    let ncols = table.schema.columns.len();
    let mut first = 0usize;
    for g in 0..reader.row_groups() {
        let len = reader.group_rows(g) as usize;
        assert_eq!(len, rows_per_group.min(n - first), "group {g} size");
        let rns = &table.row_numbers[first..first + len];
        assert_eq!(reader.group_row_range(g), (rns[0], rns[len - 1]));

        let all: Vec<usize> = (0..ncols).collect();
        let mut projs = vec![all, vec![]];
        for _ in 0..projections {
            let mut p: Vec<usize> = (0..ncols).filter(|_| rng.one_in(3)).collect();
            if rng.one_in(2) && !p.is_empty() {
                p.reverse();
                p.push(p[0]); // duplicates and odd order are allowed
            }
            projs.push(p);
        }
        for proj in projs {
            let d = reader.read_group(&bytes, g, &proj).unwrap();
            assert_eq!(d.len(), len);
            for i in 0..len {
                assert_eq!(d.row_number(i), rns[i]);
                assert_eq!(d.position_of(rns[i]), Some(i));
                if i + 1 < len && rns[i] + 1 < rns[i + 1] {
                    assert_eq!(d.position_of(rns[i] + 1), None);
                }
                for &c in &proj {
                    let kind = table.schema.columns[c].kind;
                    let want = expected(kind, &table.rows[first + i][c]);
                    let got = to_owned(d.value(c, i));
                    assert_eq!(got, want, "group {g} row {i} column {c} ({kind:?})");
                }
            }
            // The column-at-a-time visitor gives the same values in order.
            for &c in &proj {
                let mut seen = 0;
                let mut bytes = 0;
                d.for_each_value(c, |i, v| {
                    assert_eq!(i, seen);
                    assert_eq!(v, d.value(c, i), "for_each_value, row {i} column {c}");
                    if let Value::Bytes(b) = v {
                        bytes += b.len();
                    }
                    seen += 1;
                });
                assert_eq!(seen, len);
                // Fixed-width columns count their NULL slots too.
                let kind = table.schema.columns[c].kind;
                if !matches!(kind, ColumnKind::Fixed(_)) {
                    assert_eq!(d.value_bytes(c), bytes, "value_bytes, column {c}");
                }
            }
            assert_eq!(d.position_of(rns[0].wrapping_sub(1)), None);
            assert_eq!(d.position_of(rns[len - 1] + 1), None);
            assert_eq!(d.position_of(u64::MAX), None);
        }
        // Row ranges read alone give the same rows as the whole group.
        for _ in 0..3 {
            let start = rng.index(len);
            let count = 1 + rng.index(len - start);
            let all: Vec<usize> = (0..ncols).collect();
            let d = reader
                .read_rows(&bytes, g, &all, start as u64, count as u64)
                .unwrap();
            assert_eq!(d.len(), count);
            // As a shared cache keeps them: bytes, read back with the schema.
            let kept = d.to_bytes(&all).unwrap();
            let d = reader.group_from_bytes(&kept, &all).unwrap();
            assert!(reader
                .group_from_bytes(&kept[..kept.len() / 2], &all)
                .is_err());
            assert_eq!(d.len(), count);
            for i in 0..count {
                assert_eq!(d.row_number(i), rns[start + i]);
                for c in 0..ncols {
                    let kind = table.schema.columns[c].kind;
                    let want = expected(kind, &table.rows[first + start + i][c]);
                    assert_eq!(
                        to_owned(d.value(c, i)),
                        want,
                        "read_rows row {i} column {c}"
                    );
                }
            }
        }
        assert!(reader.read_rows(&bytes, g, &[], len as u64, 1).is_err());
        assert!(reader.read_rows(&bytes, g, &[], 0, 0).is_err());
        first += len;
    }
    assert_eq!(first, n);
}

#[test]
fn small_groups_round_trip() {
    for seed in 0..12 {
        let mut rng = Rng::new(seed);
        let nrows = rng.index(120);
        let table = random_table(&mut rng, nrows, true);
        let bytes = write(&table, 7);
        check(&table, &bytes, 7, &mut rng, 3);
    }
}

#[test]
fn large_groups_round_trip() {
    for seed in 100..103 {
        let mut rng = Rng::new(seed);
        let nrows = 1000 + rng.index(2500);
        let table = random_table(&mut rng, nrows, false);
        let bytes = write(&table, 1000);
        check(&table, &bytes, 1000, &mut rng, 4);
        let bytes = write(&table, 4000);
        check(&table, &bytes, 4000, &mut rng, 1);
    }
}

#[test]
fn empty_segment() {
    let mut rng = Rng::new(7);
    let schema = random_schema(&mut rng, 0);
    let bytes = SegmentWriter::new(&schema, 10).unwrap().finish().unwrap();
    let r = SegmentReader::open(&bytes, &schema).unwrap();
    assert_eq!((r.rows(), r.row_groups()), (0, 0));
    let s = r.segment_stats();
    assert_eq!(s.rows, 0);
    assert!(s.nulls.iter().all(|&n| n == 0));
    assert!(r.read_group(&bytes, 0, &[0]).is_err());
}

#[test]
fn zero_column_schema() {
    let schema = Schema { columns: vec![] };
    let mut w = SegmentWriter::new(&schema, 3).unwrap();
    for rn in [5u64, 9, 10, 11, 400] {
        w.push(rn, &[]).unwrap();
    }
    let bytes = w.finish().unwrap();
    let r = SegmentReader::open(&bytes, &schema).unwrap();
    assert_eq!((r.rows(), r.row_groups()), (5, 2));
    assert_eq!(r.group_row_range(1), (11, 400));
    let d = r.read_group(&bytes, 1, &[]).unwrap();
    assert_eq!((d.len(), d.row_number(1)), (2, 400));
}

#[test]
fn all_null_and_bit_patterns() {
    let mut rng = Rng::new(3);
    let schema = random_schema(&mut rng, 0);
    let nulls: Vec<Owned> = schema.columns.iter().map(|_| Owned::Null).collect();
    let mut w = SegmentWriter::new(&schema, 4).unwrap();
    for rn in 0..10u64 {
        w.push(rn * 3, &as_values(&nulls)).unwrap();
    }
    let bytes = w.finish().unwrap();
    let r = SegmentReader::open(&bytes, &schema).unwrap();
    for g in 0..r.row_groups() {
        let d = r
            .read_group(&bytes, g, &(0..schema.columns.len()).collect::<Vec<_>>())
            .unwrap();
        for i in 0..d.len() {
            for c in 0..schema.columns.len() {
                assert_eq!(d.value(c, i), Value::Null);
            }
        }
    }
}

#[test]
#[should_panic(expected = "not decoded")]
fn value_of_unprojected_column_panics() {
    let mut rng = Rng::new(4);
    let schema = random_schema(&mut rng, 0);
    let row = random_row(&mut rng, &schema, false);
    let mut w = SegmentWriter::new(&schema, 4).unwrap();
    w.push(1, &as_values(&row)).unwrap();
    let bytes = w.finish().unwrap();
    let r = SegmentReader::open(&bytes, &schema).unwrap();
    let d = r.read_group(&bytes, 0, &[0]).unwrap();
    let _ = d.value(1, 0);
}

#[test]
fn writer_rejects_bad_input() {
    let mut rng = Rng::new(5);
    let schema = random_schema(&mut rng, 0);
    let row = random_row(&mut rng, &schema, false);
    let mut w = SegmentWriter::new(&schema, 4).unwrap();
    w.push(10, &as_values(&row)).unwrap();
    assert!(w.push(10, &as_values(&row)).is_err(), "repeated row number");
    assert!(
        w.push(9, &as_values(&row)).is_err(),
        "decreasing row number"
    );
    assert!(
        w.push(1 << 63, &as_values(&row)).is_err(),
        "row number beyond i64"
    );
    assert!(w.push(11, &as_values(&row[1..])).is_err(), "short row");
    let fixed = schema
        .columns
        .iter()
        .position(|c| matches!(c.kind, omendb_columnar::ColumnKind::Fixed(16)))
        .unwrap();
    let mut bad = as_values(&row);
    bad[fixed] = Value::Bytes(&[1, 2, 3]);
    let e = w.push(11, &bad).unwrap_err();
    assert!(e.to_string().contains(&format!("column {fixed}")), "{e}");
    let int = schema
        .columns
        .iter()
        .position(|c| c.kind == omendb_columnar::ColumnKind::Int32)
        .unwrap();
    let mut bad = as_values(&row);
    bad[int] = Value::Bytes(b"xx");
    assert!(w.push(11, &bad).is_err());
    // The writer is unchanged by rejected rows.
    w.push(11, &as_values(&row)).unwrap();
    assert_eq!(w.rows(), 2);
    let bytes = w.finish().unwrap();
    let r = SegmentReader::open(&bytes, &schema).unwrap();
    assert_eq!(r.rows(), 2);
    assert_eq!(r.group_row_range(0), (10, 11));
    assert!(SegmentWriter::new(&schema, 0).is_err());
}

/// Counts the bytes a reader asks for.
struct Counting<'a> {
    bytes: &'a [u8],
    read: std::cell::Cell<u64>,
}

impl omendb_columnar::SegmentSource for Counting<'_> {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read(&self, offset: u64, len: usize) -> omendb_columnar::Result<Vec<u8>> {
        self.read.set(self.read.get() + len as u64);
        omendb_columnar::SegmentSource::read(self.bytes, offset, len)
    }
}

#[test]
fn reading_a_few_rows_reads_only_their_pages() {
    let mut rng = Rng::new(7);
    let table = random_table(&mut rng, 65_536, false);
    let bytes = write(&table, 65_536);
    let src = Counting {
        bytes: &bytes,
        read: std::cell::Cell::new(0),
    };
    let reader = SegmentReader::open(&src, &table.schema).unwrap();
    let all: Vec<usize> = (0..table.schema.columns.len()).collect();
    src.read.set(0);
    let whole = reader.read_group(&src, 0, &all).unwrap();
    let whole_bytes = src.read.get();
    src.read.set(0);
    let some = reader.read_rows(&src, 0, &all, 40_000, 10).unwrap();
    let some_bytes = src.read.get();
    for i in 0..10 {
        assert_eq!(some.row_number(i), whole.row_number(40_000 + i));
        for &c in &all {
            assert_eq!(some.value(c, i), whole.value(c, 40_000 + i));
        }
    }
    assert!(
        some_bytes * 2 < whole_bytes,
        "10 rows read {some_bytes} bytes, the whole group {whole_bytes}"
    );
}

/// The same rows as `read_group`, value for value.
fn same_rows(a: &omendb_columnar::DecodedGroup, b: &omendb_columnar::DecodedGroup, cols: &[usize]) {
    assert_eq!(a.len(), b.len());
    for i in 0..a.len() {
        assert_eq!(a.row_number(i), b.row_number(i), "row number {i}");
        for &c in cols {
            assert_eq!(
                to_owned(a.value(c, i)),
                to_owned(b.value(c, i)),
                "row {i} column {c}"
            );
        }
    }
}

#[test]
fn groups_read_through_a_part_cache_equal_decoded_ones() {
    use omendb_columnar::Part;
    for seed in 0..16 {
        let mut rng = Rng::new(100 + seed);
        let nrows = 1 + rng.index(300);
        let mut table = random_table(&mut rng, nrows, seed % 4 == 0);
        // Half the tables without gaps: their row numbers are not cached.
        let gapless = seed % 2 == 0;
        if gapless {
            let first = rng.below(1000);
            table.row_numbers = (first..first + nrows as u64).collect();
        }
        let per_group = 1 + rng.index(120);
        let bytes = write(&table, per_group);
        let reader = SegmentReader::open(&bytes, &table.schema).unwrap();
        let ncols = table.schema.columns.len();
        let mut cache = MapCache::default();
        for g in 0..reader.row_groups() {
            let (lo, hi) = reader.group_row_range(g);
            let gaps = hi - lo + 1 != reader.group_rows(g);
            let p1: Vec<usize> = (0..ncols).filter(|_| rng.one_in(2)).collect();
            let p2: Vec<usize> = (0..ncols).filter(|_| rng.one_in(2)).collect();
            let all: Vec<usize> = (0..ncols).collect();
            for p in [&p1, &p2, &all] {
                let want = reader.read_group(&bytes, g, p).unwrap();
                let held = p
                    .iter()
                    .filter(|c| cache.parts.contains_key(&Part::Column(**c)))
                    .count()
                    + usize::from(gaps && cache.parts.contains_key(&Part::RowNumbers));
                let (got, hits) = reader.read_group_through(&bytes, g, p, &mut cache).unwrap();
                assert_eq!(
                    hits, held,
                    "seed {seed} group {g}: parts read from the cache"
                );
                same_rows(&got, &want, p);
                // Every part is now held: a second read decodes nothing.
                let (again, hits) = reader.read_group_through(&bytes, g, p, &mut cache).unwrap();
                assert_eq!(
                    hits,
                    p.len() + usize::from(gaps),
                    "seed {seed} group {g}: all hits"
                );
                same_rows(&again, &want, p);
            }
            assert_eq!(cache.parts.contains_key(&Part::RowNumbers), gaps);
            // Bytes that do not read back (torn, another group's) are a miss.
            if ncols > 0 {
                let c = rng.index(ncols);
                let b = cache.parts.get_mut(&Part::Column(c)).unwrap();
                b.truncate(b.len() / 2);
                let puts = cache.puts;
                let (got, hits) = reader
                    .read_group_through(&bytes, g, &[c], &mut cache)
                    .unwrap();
                assert_eq!(hits, usize::from(gaps));
                assert_eq!(cache.puts, puts + 1, "the part decoded again is offered");
                same_rows(&got, &reader.read_group(&bytes, g, &[c]).unwrap(), &[c]);
            }
            cache.parts.clear();
        }
        // A cache that refuses everything still reads every row.
        let mut refusing = MapCache {
            refuse: true,
            ..Default::default()
        };
        let all: Vec<usize> = (0..ncols).collect();
        for g in 0..reader.row_groups() {
            let (got, hits) = reader
                .read_group_through(&bytes, g, &all, &mut refusing)
                .unwrap();
            assert_eq!(hits, 0);
            same_rows(&got, &reader.read_group(&bytes, g, &all).unwrap(), &all);
        }
        assert_eq!(refusing.puts, 0);
        assert!(reader
            .read_group_through(&bytes, reader.row_groups(), &all, &mut refusing)
            .is_err());
    }
}
