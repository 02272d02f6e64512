//! Decoding the scan's units into batches, on DataFusion's threads: a
//! Parquet row group column by column, each filter's columns first and
//! the others only for the rows the filters pass; a write-store batch
//! row by row. Deleted rows are dropped before anything is converted.

use std::fmt;

use datafusion::arrow::array::{
    new_empty_array, new_null_array, ArrayRef, RecordBatch, RecordBatchOptions, UInt32Array,
};
use datafusion::arrow::compute::{filter, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result};
use omendb_columnar::logical::{live_positions, to_logical, values_to_arrays};
use omendb_columnar::{decode_row, Schema};

use super::row_filter::RowFilters;
use super::source::{Column, Loaded, LoadedRel, ParquetData, Unit};
use crate::cache::shared::{read_group, PartCounts};

/// Decode unit `u` into a batch of `columns` (the scan's projection,
/// `schema`), without the rows `filters` reject.
pub fn decode_unit(
    l: &Loaded,
    u: usize,
    columns: &[Column],
    schema: &SchemaRef,
    filters: &mut RowFilters,
    counts: &mut PartCounts,
) -> Result<RecordBatch> {
    match &l.units[u] {
        Unit::Group { rel, seg, group } => decode_group(
            l,
            &l.rels[*rel],
            seg,
            *group,
            columns,
            schema,
            filters,
            counts,
        ),
        Unit::Rows { rel, records } => {
            filters.apply(decode_rows(&l.rels[*rel], records, columns, schema)?)
        }
    }
}

/// Row group `group` of segment `seg` of relation `r`: each active
/// filter's columns are decoded (for the rows still passing) before it
/// runs, the other columns last, for the rows that passed.
#[allow(clippy::too_many_arguments)]
fn decode_group(
    l: &Loaded,
    r: &LoadedRel,
    seg: &ParquetData,
    group: usize,
    columns: &[Column],
    schema: &SchemaRef,
    filters: &mut RowFilters,
    counts: &mut PartCounts,
) -> Result<RecordBatch> {
    let at = r.positions(columns, seg.reader.schema().columns.len());
    let mut have: Vec<Option<ArrayRef>> = vec![None; columns.len()];
    // The group's positions of the rows still passing (None: all of
    // them), and how many; known once the first columns are read.
    let mut passing: Option<(Option<UInt32Array>, usize)> = None;
    let stages = filters.active();
    for stage in stages.iter().map(Some).chain([None]) {
        if matches!(passing, Some((_, 0))) {
            break;
        }
        let need: Vec<usize> = match stage {
            Some(&f) => filters.0[f].columns().to_vec(),
            None => (0..columns.len()).collect(),
        };
        let need: Vec<usize> = need.into_iter().filter(|&k| have[k].is_none()).collect();
        if passing.is_none() || !need.is_empty() {
            let want: Vec<usize> = need.iter().filter_map(|&k| at[k]).collect();
            let g = read_group(
                l.cache.as_ref(),
                seg.id,
                &seg.reader,
                &seg.chunks,
                group,
                &want,
                counts,
            )
            .map_err(|e| corrupt(&r.name, e))?;
            let (sel, n) = passing.get_or_insert_with(|| {
                let live = live_positions(g.row_numbers(), &r.deleted).map(UInt32Array::from);
                let n = live.as_ref().map_or(g.len(), |s| s.len());
                (live, n)
            });
            for &k in &need {
                let c = &columns[k];
                have[k] = Some(match at[k] {
                    Some(i) => g
                        .logical_array_at(i, c.pg.logical(), sel.as_ref())
                        .ok_or_else(|| {
                            DataFusionError::Internal(format!("column {i} was not decoded"))
                        })?
                        .map_err(|e| corrupt(&r.name, e))?,
                    // A column added after the segment was written.
                    None => new_null_array(&c.pg.arrow(), *n),
                });
            }
            if sel.is_none() && stage.is_some() {
                // Narrowing below needs positions.
                *sel = Some(UInt32Array::from_iter_values(0..g.len() as u32));
            }
        }
        let (Some(&f), Some((sel, n))) = (stage, passing.as_mut()) else {
            continue;
        };
        let f = &mut filters.0[f];
        let arrays = f
            .columns()
            .iter()
            .filter_map(|&k| have[k].clone())
            .collect();
        if let Some(mask) = f.mask(arrays, *n) {
            for a in have.iter_mut().flatten() {
                *a = filter(a, &mask)?;
            }
            if let Some(s) = sel.as_ref() {
                *sel = Some(
                    filter(s, &mask)?
                        .as_any()
                        .downcast_ref::<UInt32Array>()
                        .cloned()
                        .ok_or_else(|| {
                            DataFusionError::Internal("row positions are not UInt32".into())
                        })?,
                );
            }
            *n = mask.true_count();
        }
    }
    let n = passing.map_or(0, |(_, n)| n);
    let out: Vec<ArrayRef> = columns
        .iter()
        .zip(have)
        .map(|(c, a)| a.unwrap_or_else(|| new_empty_array(&c.pg.arrow())))
        .collect();
    let opts = RecordBatchOptions::new().with_row_count(Some(n));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        out,
        &opts,
    )?)
}

/// A write-store batch of relation `r` (row number, item: column count +
/// row record), live rows only.
fn decode_rows(
    r: &LoadedRel,
    records: &[(u64, Vec<u8>)],
    columns: &[Column],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let ncols = r.schema.columns.len();
    let at = r.positions(columns, ncols);
    let mut rows = Vec::with_capacity(records.len());
    let mut numbers = Vec::with_capacity(records.len());
    // A batch's records share one column count, but records may
    // differ (columns added between writes): one prefix schema
    // per count, not one per record.
    let mut prefixes: Vec<Option<Schema>> = vec![None; ncols + 1];
    for (row, item) in records {
        let bad = || corrupt(&r.name, "write-store record is malformed");
        if item.len() < 2 {
            return Err(bad());
        }
        let n = u16::from_le_bytes([item[0], item[1]]) as usize;
        if n > ncols {
            return Err(bad());
        }
        let prefix = prefixes[n].get_or_insert_with(|| Schema {
            columns: r.schema.columns[..n].to_vec(),
        });
        let mut values = Vec::new();
        decode_row(prefix, &item[2..], &mut values).map_err(|e| corrupt(&r.name, e))?;
        rows.push(values);
        numbers.push(*row as i64);
    }
    // Columns this relation lacks come out as NULLs below.
    let present: Vec<(&Column, usize)> = columns
        .iter()
        .zip(&at)
        .filter_map(|(c, i)| i.map(|i| (c, i)))
        .collect();
    let kinds: Vec<_> = present
        .iter()
        .map(|&(_, i)| r.schema.columns[i].kind)
        .collect();
    let positions: Vec<usize> = present.iter().map(|&(_, i)| i).collect();
    let arrays = values_to_arrays(&kinds, &rows_projected(&rows, &positions))
        .map_err(|e| corrupt(&r.name, e))?;
    let mut converted = present
        .iter()
        .zip(arrays)
        .map(|(&(c, _), a)| to_logical(&a, c.pg.logical()).map_err(|e| corrupt(&r.name, e)));
    let mut logical = Vec::with_capacity(columns.len());
    for i in &at {
        logical.push(match i {
            Some(_) => Some(
                converted
                    .next()
                    .transpose()?
                    .ok_or_else(|| DataFusionError::Internal("write-store column count".into()))?,
            ),
            None => None,
        });
    }
    let n = numbers.len();
    let row_numbers = datafusion::arrow::array::Int64Array::from(numbers);
    let live = live_positions(&row_numbers, &r.deleted).map(UInt32Array::from);
    let mut out = Vec::with_capacity(columns.len());
    for (c, a) in columns.iter().zip(logical) {
        let a = a.unwrap_or_else(|| new_null_array(&c.pg.arrow(), n));
        out.push(match &live {
            Some(idx) => take(&a, idx, None)?,
            None => a,
        });
    }
    let rows = live.as_ref().map_or(n, |l| l.len());
    let opts = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        out,
        &opts,
    )?)
}

pub fn corrupt(table: &str, e: impl fmt::Display) -> DataFusionError {
    let msg = e.to_string();
    if msg.contains("NaN or infinity") {
        // numeric(p,s) may hold NaN, which has no Decimal128 image.
        return super::functions::pg_error(
            "0A000",
            format!("omendb's DataFusion scan cannot compute with the numeric NaN in table \"{table}\"; set omendb.datafusion = off for this query"),
        );
    }
    super::functions::pg_error("XX001", format!("omen_columnar table \"{table}\": {msg}"))
}

/// Write-store rows reduced to the columns at `positions`, in that order.
fn rows_projected<'a>(
    rows: &[Vec<omendb_columnar::Value<'a>>],
    positions: &[usize],
) -> Vec<Vec<omendb_columnar::Value<'a>>> {
    rows.iter()
        .map(|r| {
            positions
                .iter()
                .map(|&i| r.get(i).copied().unwrap_or(omendb_columnar::Value::Null))
                .collect()
        })
        .collect()
}
