//! The main thread's half of a DataFusion scan: read what the statement's
//! snapshot sees of a table and copy the bytes DataFusion needs out of
//! shared buffers, so that its threads never touch PostgreSQL.

use std::sync::Arc;

use omendb_columnar::prune::Hints;
use pgrx::pg_sys;

use super::source::{Loaded, ParquetData, Unit, Wanted};
use crate::columnar::catalog::Kind;
use crate::columnar::rows::Table;
use crate::columnar::snapshot;

/// Copy what `wanted` needs of table `oid` under `snap`. The relation is
/// locked by the executor already (it is in the statement's range table).
pub fn load(oid: pg_sys::Oid, snap: pg_sys::Snapshot, wanted: &Wanted) -> Loaded {
    let rel = crate::pg::Relation::open(oid, pg_sys::NoLock as i32);
    let (segments, deleted) = snapshot::visible(rel.raw(), snap);
    let table = Table::new(rel.raw());
    let mut deleted: Vec<u64> = deleted.into_iter().collect();
    deleted.sort_unstable();
    let hints = Hints {
        columns: Some(wanted.columns.clone()),
        filters: wanted.filters.clone(),
    };
    let mut out = Loaded {
        table: rel.name(),
        schema: table.schema.clone(),
        units: Vec::new(),
        deleted,
        rows: 0,
        bytes: 0,
        groups_skipped: 0,
        groups_read: 0,
    };
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
                let cols: Vec<usize> = wanted
                    .columns
                    .iter()
                    .copied()
                    .filter(|&c| c < stored)
                    .collect();
                let chunks = reader
                    .copy_chunks(&src, &groups, &cols)
                    .unwrap_or_else(|e| {
                        crate::columnar::corrupt_segment(rel.raw(), seg.first_block, e)
                    });
                out.bytes += chunks.bytes();
                out.rows += groups.iter().map(|&g| reader.group_rows(g)).sum::<u64>();
                let data = Arc::new(ParquetData { reader, chunks });
                for g in groups {
                    out.units.push(Unit::Group {
                        seg: data.clone(),
                        group: g,
                    });
                }
            }
            Kind::WriteStore => {
                let records = table.write_store_rows(seg);
                out.rows += records.len() as u64;
                out.bytes += records.iter().map(|(_, r)| r.len()).sum::<usize>();
                out.units.push(Unit::Rows { records });
            }
            Kind::Reserved => {}
        }
    }
    out
}
