//! The main thread's half of a DataFusion scan: read what the statement's
//! snapshot sees of a table and copy the bytes DataFusion needs out of
//! shared buffers, so that its threads never touch PostgreSQL.

use std::sync::Arc;

use omendb_columnar::logical::within;
use omendb_columnar::prune::{Filter, Hints};
use pgrx::pg_sys;

use super::source::{Loaded, LoadedRel, OmenTable, ParquetData, Rel, Unit, Wanted};
use crate::columnar::catalog::Kind;
use crate::columnar::rows::Table;
use crate::columnar::snapshot;

/// Copy what `wanted` needs of `table` (each relation it reads: the table
/// or its leaf partitions) under `snap`. The relations are locked by the
/// executor already (they are in the statement's range table).
pub fn load(table: &OmenTable, snap: pg_sys::Snapshot, wanted: &Wanted) -> Loaded {
    let mut out = Loaded {
        rels: Vec::with_capacity(table.rels.len()),
        units: Vec::new(),
        rows: 0,
        live_rows: 0,
        bytes: 0,
        groups_skipped: 0,
        groups_read: 0,
        partitions_skipped: 0,
        cache: crate::cache::shared::scan_cache(),
    };
    // The filters in the table's numbering, for partition bounds (the
    // statement's parameters are substituted already: this is PostgreSQL's
    // run-time pruning, by the same min/max tests as row groups).
    let filters = Hints {
        columns: None,
        filters: wanted.filters.clone(),
    };
    for rel in &table.rels {
        if let Some(b) = rel.bound {
            if !filters.may_match_column(b.column, b.min, b.max, b.nulls) {
                out.partitions_skipped += 1;
                continue;
            }
        }
        load_rel(rel, snap, wanted, &mut out);
    }
    out
}

/// Add relation `r`'s visible segments, write-store rows and deletions to
/// `out`, with `wanted`'s columns and filters in the relation's numbering.
fn load_rel(r: &Rel, snap: pg_sys::Snapshot, wanted: &Wanted, out: &mut Loaded) {
    let at = |c: usize| r.columns.get(c).copied().flatten();
    let rel = crate::pg::Relation::open(pg_sys::Oid::from(r.oid), pg_sys::NoLock as i32);
    let (segments, deleted) = snapshot::visible(rel.raw(), snap);
    let table = Table::new(rel.raw());
    let mut deleted: Vec<u64> = deleted.into_iter().collect();
    deleted.sort_unstable();
    let columns: Vec<usize> = wanted.columns.iter().filter_map(|&c| at(c)).collect();
    let hints = Hints {
        columns: Some(columns.clone()),
        filters: wanted
            .filters
            .iter()
            .filter_map(|f| {
                Some(Filter {
                    column: at(f.column)?,
                    test: f.test.clone(),
                })
            })
            .collect(),
    };
    // A sequential scan of the relation, as PostgreSQL's executor would
    // count it (`pg_stat_user_tables.seq_scan`, `seq_tup_read`: the live
    // rows of the row groups and write-store segments read).
    crate::pg::pgstat::count_scan(rel.raw());
    let rows_before = out.live_rows;
    // Its entry in `out.rels`, pushed once its units are (they need
    // `deleted` meanwhile).
    let index = out.rels.len();
    for seg in &segments {
        pgrx::check_for_interrupts!();
        match seg.kind {
            Kind::Parquet => {
                let (reader, src) = table.open_parquet(seg);
                let ngroups = reader.row_groups();
                if !hints.may_match(&reader.segment_stats()) {
                    out.groups_skipped += ngroups;
                    continue;
                }
                let groups: Vec<usize> = (0..ngroups)
                    .filter(|&g| hints.may_match(reader.group_stats(g)))
                    .collect();
                out.groups_skipped += ngroups - groups.len();
                out.groups_read += groups.len();
                if groups.is_empty() {
                    continue;
                }
                let stored = reader.schema().columns.len();
                let cols: Vec<usize> = columns.iter().copied().filter(|&c| c < stored).collect();
                let chunks = reader
                    .copy_chunks(&src, &groups, &cols)
                    .unwrap_or_else(|e| {
                        crate::columnar::corrupt_segment(rel.raw(), seg.first_block, e)
                    });
                out.bytes += chunks.bytes();
                out.rows += groups.iter().map(|&g| reader.group_rows(g)).sum::<u64>();
                out.live_rows += groups
                    .iter()
                    .map(|&g| {
                        let (lo, hi) = reader.group_row_range(g);
                        // A compacted segment's range may span rows of
                        // others: their deletions count too, so the
                        // statistics' count may be low (never the answer).
                        let dead = within(&deleted, lo, hi).len() as u64;
                        reader.group_rows(g).saturating_sub(dead)
                    })
                    .sum::<u64>();
                let data = Arc::new(ParquetData {
                    reader,
                    chunks,
                    id: seg.id,
                });
                for g in groups {
                    out.units.push(Unit::Group {
                        rel: index,
                        seg: data.clone(),
                        group: g,
                    });
                }
            }
            Kind::WriteStore => {
                let records = table.write_store_rows(seg);
                out.rows += records.len() as u64;
                out.live_rows += records
                    .iter()
                    .filter(|(r, _)| deleted.binary_search(r).is_err())
                    .count() as u64;
                out.bytes += records.iter().map(|(_, r)| r.len()).sum::<usize>();
                out.units.push(Unit::Rows {
                    rel: index,
                    records,
                });
            }
            Kind::Reserved => {}
        }
    }
    crate::pg::pgstat::count_returned(rel.raw(), out.live_rows - rows_before);
    out.rels.push(LoadedRel {
        name: rel.name(),
        schema: table.schema.clone(),
        deleted,
        columns: r.columns.clone(),
    });
}
