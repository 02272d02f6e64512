//! Decoded rows as bytes, for a cache outside this process's heap (shared
//! memory): the row numbers and decoded columns as one Arrow IPC stream,
//! read back against the segment's schema, which says how each column is
//! stored (a scaled numeric travels as its integers).

use std::sync::{Arc, OnceLock};

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{Field, Schema as ArrowSchema};

use super::{guarded, typed, DecodedColumn, DecodedGroup, ScaledColumn, SegmentReader};
use crate::schema::{err, Result};
use crate::storage::Storage;

impl DecodedGroup {
    /// The rows in `columns` (all decoded) as an IPC stream.
    pub fn to_bytes(&self, columns: &[usize]) -> Result<Vec<u8>> {
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(self.row_numbers.clone())];
        for &c in columns {
            let Some(col) = self.columns.get(c).and_then(Option::as_ref) else {
                return err(format!("column {c} was not decoded"));
            };
            arrays.push(match col {
                DecodedColumn::Scaled(s) => Arc::new(s.ints.clone()),
                _ => self.array(c).expect("decoded"),
            });
        }
        let fields: Vec<Field> = arrays
            .iter()
            .enumerate()
            .map(|(i, a)| Field::new(format!("c{i}"), a.data_type().clone(), true))
            .collect();
        let batch = RecordBatch::try_new(Arc::new(ArrowSchema::new(fields)), arrays)?;
        let mut out = Vec::with_capacity(self.memory_size() + 1024);
        let mut w = StreamWriter::try_new(&mut out, &batch.schema())?;
        w.write(&batch)?;
        w.finish()?;
        drop(w);
        Ok(out)
    }
}

impl SegmentReader {
    /// Rows kept by [`DecodedGroup::to_bytes`] with the same `columns`
    /// (schema column numbers, ascending) of this segment.
    pub fn group_from_bytes(&self, bytes: &[u8], columns: &[usize]) -> Result<DecodedGroup> {
        let batch = guarded("reading cached rows", || {
            let mut r = StreamReader::try_new(bytes, None)?;
            match r.next() {
                Some(b) => Ok(b?),
                None => err("cached rows hold no batch"),
            }
        })?;
        if batch.num_columns() != columns.len() + 1 {
            return err("cached rows have the wrong number of columns");
        }
        let mut out = DecodedGroup {
            row_numbers: typed(batch.column(0), "row number")?,
            columns: (0..self.kinds.len()).map(|_| None).collect(),
        };
        for (k, &col) in columns.iter().enumerate() {
            if col >= self.kinds.len() {
                return err(format!("cached column {col} is not in the segment"));
            }
            let array = batch.column(k + 1);
            out.columns[col] = Some(match self.storage[col] {
                Storage::ScaledNumeric { scale } => DecodedColumn::Scaled(ScaledColumn {
                    ints: typed(array, "scaled numeric")?,
                    scale,
                    images: OnceLock::new(),
                }),
                storage => DecodedColumn::new(self.kinds[col], storage, array, col)?,
            });
        }
        Ok(out)
    }
}
