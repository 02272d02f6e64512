//! Decoding the scan's units into batches, on DataFusion's threads: a
//! Parquet row group column by column, each filter's columns first and
//! the others only for the rows the filters pass; a write-store batch
//! row by row. Deleted rows are dropped before anything is converted.

use std::fmt;

use datafusion::arrow::array::{
    new_empty_array, new_null_array, Array, ArrayRef, BooleanArray, RecordBatch,
    RecordBatchOptions, UInt32Array,
};
use datafusion::arrow::compute::kernels::boolean::and;
use datafusion::arrow::compute::{filter, prep_null_mask_filter, take};
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
    // Known once the group is first read.
    let mut passing: Option<Passing> = None;
    filters.begin();
    let stages = filters.active();
    let start = std::time::Instant::now();
    for stage in stages.iter().map(Some).chain([None]) {
        if passing.as_ref().is_some_and(|p| p.count() == 0) {
            break;
        }
        let need: Vec<usize> = match stage {
            Some(&f) => filters.filters[f].columns().to_vec(),
            None => (0..columns.len()).collect(),
        };
        let need: Vec<usize> = need.into_iter().filter(|&k| have[k].is_none()).collect();
        if let Some(p) = passing.as_mut().filter(|_| !need.is_empty()) {
            p.narrow(&mut have)?;
        }
        let want: Vec<usize> = need.iter().filter_map(|&k| at[k]).collect();
        if passing.is_none() || !want.is_empty() {
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
            let p = passing.get_or_insert_with(|| {
                Passing::new(live_positions(g.row_numbers(), &r.deleted), g.len())
            });
            for &k in &need {
                let Some(i) = at[k] else { continue };
                have[k] = Some(
                    g.logical_array_at(i, columns[k].pg.logical(), p.sel.as_ref())
                        .ok_or_else(|| {
                            DataFusionError::Internal(format!("column {i} was not decoded"))
                        })?
                        .map_err(|e| corrupt(&r.name, e))?,
                );
            }
        }
        let Some(p) = passing.as_mut() else {
            continue;
        };
        // Columns the segment lacks (added after it was written).
        for &k in &need {
            if have[k].is_none() {
                have[k] = Some(new_null_array(&columns[k].pg.arrow(), p.n));
            }
        }
        let Some(&f) = stage else {
            continue;
        };
        let first = stages.first() == Some(&f);
        let i = f;
        let f = &mut filters.filters[i];
        let arrays = f
            .columns()
            .iter()
            .filter_map(|&k| have[k].clone())
            .collect();
        let (seen, before) = (f.seen(), p.count());
        let dropped = match f.mask(arrays, p.n) {
            Some(mask) => p.and(mask)?,
            None => 0,
        };
        if first && f.seen() > seen {
            // From the group's start: reading it and decoding this
            // filter's columns are its cost when it runs first.
            f.ran_first(before, p.count(), start.elapsed().as_nanos() as u64);
        }
        filters.ran(i, before, dropped);
    }
    if let Some(p) = passing.as_mut() {
        p.narrow(&mut have)?;
    }
    let n = passing.map_or(0, |p| p.n);
    filters.end();
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

/// The rows of a row group still passing its filters.
struct Passing {
    /// Their positions in the group (None: all of its rows).
    sel: Option<UInt32Array>,
    /// How many; the decoded columns hold these rows.
    n: usize,
    rows: usize,
    /// Of the `n` rows, those the filters so far pass: applied to the
    /// columns before more are decoded, and at the end (filters on
    /// columns already decoded, `a >= x AND a < y`, narrow them once).
    pending: Option<BooleanArray>,
}

impl Passing {
    fn new(live: Option<Vec<u32>>, rows: usize) -> Self {
        let n = live.as_ref().map_or(rows, Vec::len);
        Passing {
            sel: live.map(UInt32Array::from),
            n,
            rows,
            pending: None,
        }
    }

    /// Rows passing all filters so far.
    fn count(&self) -> usize {
        self.pending.as_ref().map_or(self.n, |m| m.true_count())
    }

    /// Pass only the rows `mask` passes too (NULL: not); returns how many
    /// it removed.
    fn and(&mut self, mask: BooleanArray) -> Result<usize> {
        let before = self.count();
        let mask = match mask.null_count() {
            0 => mask,
            _ => prep_null_mask_filter(&mask),
        };
        self.pending = Some(match self.pending.take() {
            Some(p) => and(&p, &mask)?,
            None => mask,
        });
        Ok(before - self.count())
    }

    /// Apply the pending mask to the decoded columns `have`.
    fn narrow(&mut self, have: &mut [Option<ArrayRef>]) -> Result<()> {
        let Some(mask) = self.pending.take() else {
            return Ok(());
        };
        for a in have.iter_mut().flatten() {
            *a = filter(a, &mask)?;
        }
        let positions = match self.sel.take() {
            Some(s) => s,
            None => UInt32Array::from_iter_values(0..self.rows as u32),
        };
        let kept = filter(&positions, &mask)?;
        self.sel = Some(
            kept.as_any()
                .downcast_ref::<UInt32Array>()
                .cloned()
                .ok_or_else(|| DataFusionError::Internal("row positions are not UInt32".into()))?,
        );
        self.n = mask.true_count();
        Ok(())
    }
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
