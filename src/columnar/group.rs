//! A decoded Parquet row group turned into datum columns once, so that each
//! row costs a copy of words into the slot: no allocation, no per-value
//! conversion. By-reference values live in one arena per column, laid out
//! as PostgreSQL expects them in memory (4-byte varlena headers, aligned),
//! and stay valid while the group is loaded (the slot is refilled before
//! the cursor moves to another group).

#[cfg(target_endian = "big")]
compile_error!("group.rs writes varlena headers in little-endian form");

use super::datum;
use omendb_columnar::{ColumnKind, DecodedGroup, Schema, Value};
use pgrx::pg_sys;

/// One decoded column's datums.
#[derive(Default)]
struct Values {
    datums: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
    /// Backing store of by-reference datums (u64: 8-byte alignment).
    arena: Vec<u64>,
}

enum Column {
    /// Not decoded, or dropped.
    Null,
    /// Added after the segment was written: the attribute's missing value.
    Missing(Option<pg_sys::Datum>),
    Values(Values),
}

/// Datum columns of one row group. Loading the next group into the same
/// value reuses the buffers (large allocations would otherwise be mapped
/// and unmapped, page faults and all, for every group).
#[derive(Default)]
pub struct GroupDatums {
    columns: Vec<Column>,
    /// Every column's datum and null flag where it does not vary by row
    /// (NULL, missing value); decoded columns are written over it per row.
    base_values: Vec<pg_sys::Datum>,
    base_nulls: Vec<bool>,
    rows: usize,
    /// The `Values` columns: (column, its datums, its nulls), pointing into
    /// `columns` (rebuilt on every load).
    decoded: Vec<(usize, *const pg_sys::Datum, *const bool)>,
}

/// Bytes a by-reference value of `len` takes in the arena, rounded up to 8.
fn arena_size(kind: ColumnKind, attlen: i16, len: usize) -> usize {
    let raw = match kind {
        ColumnKind::Bytes if attlen == -2 => len + 1,
        ColumnKind::Bytes => len + pg_sys::VARHDRSZ,
        _ => len.max(1),
    };
    raw.div_ceil(8) * 8
}

/// Convert column `c` of `data` into `out`, reusing its buffers.
fn decode_column(kind: ColumnKind, attlen: i16, data: &DecodedGroup, c: usize, out: &mut Values) {
    let n = data.len();
    out.datums.clear();
    out.nulls.clear();
    out.datums.resize(n, pg_sys::Datum::from(0));
    out.nulls.resize(n, true);
    // Room for every value with its header and padding, reserved before any
    // pointer into the arena is taken (it never reallocates below).
    let bound = match kind {
        ColumnKind::Bytes | ColumnKind::Fixed(_) => data.value_bytes(c) + n * 16,
        _ => 0,
    };
    out.arena.clear();
    out.arena.reserve(bound.div_ceil(8));
    let base = out.arena.as_mut_ptr() as *mut u8;
    let mut at = 0usize;
    let (datums, nulls) = (&mut out.datums[..], &mut out.nulls[..]);
    data.for_each_value(c, |i, v| match v {
        Value::Null => {}
        Value::Word(w) => {
            datums[i] = datum::word_datum(kind, w);
            nulls[i] = false;
        }
        Value::Bytes(b) => {
            let size = arena_size(kind, attlen, b.len());
            assert!(at + size <= bound, "arena bound holds every value");
            // SAFETY: `at + size` is within the reserved arena.
            unsafe {
                let p = base.add(at);
                match kind {
                    ColumnKind::Bytes if attlen == -2 => {
                        std::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len());
                        *p.add(b.len()) = 0;
                    }
                    ColumnKind::Bytes => {
                        // SET_VARSIZE_4B on a little-endian machine.
                        let total = (b.len() + pg_sys::VARHDRSZ) as u32;
                        (p as *mut u32).write(total << 2);
                        std::ptr::copy_nonoverlapping(b.as_ptr(), p.add(pg_sys::VARHDRSZ), b.len());
                    }
                    _ => std::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len()),
                }
                datums[i] = pg_sys::Datum::from(p as usize);
            }
            at += size;
            nulls[i] = false;
        }
    });
}

impl GroupDatums {
    /// Load `data`, decoded from a segment with `stored` columns;
    /// `columns` (sorted) are those decoded, None: all stored.
    pub fn load(
        &mut self,
        desc: pg_sys::TupleDesc,
        schema: &Schema,
        stored: usize,
        data: &DecodedGroup,
        columns: Option<&[usize]>,
    ) {
        // SAFETY: a valid descriptor matching `schema`.
        let atts = unsafe { (*desc).attrs.as_slice((*desc).natts as usize) };
        self.columns
            .resize_with(schema.columns.len(), || Column::Null);
        for (c, col) in schema.columns.iter().enumerate() {
            let wanted = columns.is_none_or(|cols| cols.binary_search(&c).is_ok());
            if atts[c].attisdropped || !wanted {
                self.columns[c] = Column::Null;
            } else if c >= stored {
                let mut isnull = false;
                // SAFETY: attribute c + 1 of the descriptor.
                let d = unsafe { pg_sys::getmissingattr(desc, c as i32 + 1, &mut isnull) };
                self.columns[c] = Column::Missing((!isnull).then_some(d));
            } else {
                if !matches!(self.columns[c], Column::Values(_)) {
                    self.columns[c] = Column::Values(Values::default());
                }
                if let Column::Values(v) = &mut self.columns[c] {
                    decode_column(col.kind, atts[c].attlen, data, c, v);
                }
            }
        }
        self.base_values.clear();
        self.base_nulls.clear();
        self.decoded.clear();
        self.rows = data.len();
        for (c, col) in self.columns.iter().enumerate() {
            let (d, null) = match col {
                Column::Missing(Some(d)) => (*d, false),
                Column::Values(v) => {
                    self.decoded.push((c, v.datums.as_ptr(), v.nulls.as_ptr()));
                    (pg_sys::Datum::from(0), true)
                }
                _ => (pg_sys::Datum::from(0), true),
            };
            self.base_values.push(d);
            self.base_nulls.push(null);
        }
    }

    /// Store row `i` into virtual slot `slot` (of the table's descriptor).
    pub fn fill(&self, slot: *mut pg_sys::TupleTableSlot, i: usize) {
        let n = self.base_values.len();
        assert!(i < self.rows, "row {i} of a {}-row group", self.rows);
        // SAFETY: a valid slot with one value/null entry per column.
        unsafe {
            clear_slot(slot);
            let values = (*slot).tts_values;
            let isnull = (*slot).tts_isnull;
            std::ptr::copy_nonoverlapping(self.base_values.as_ptr(), values, n);
            std::ptr::copy_nonoverlapping(self.base_nulls.as_ptr(), isnull, n);
            for &(c, datums, nulls) in &self.decoded {
                // In bounds: every decoded column has `rows` entries.
                *values.add(c) = *datums.add(i);
                *isnull.add(c) = *nulls.add(i);
            }
            // ExecStoreVirtualTuple, without a call per row.
            (*slot).tts_flags &= !(pg_sys::TTS_FLAG_EMPTY as u16);
            (*slot).tts_nvalid = n as i16;
        }
    }
}

/// ExecClearTuple: done in place for a virtual slot that owns no memory
/// (what scans hand us), else by PostgreSQL.
unsafe fn clear_slot(slot: *mut pg_sys::TupleTableSlot) {
    // SAFETY: a valid slot.
    unsafe {
        let virtual_ops = std::ptr::addr_of!(pg_sys::TTSOpsVirtual);
        let owns_memory = (*slot).tts_flags & pg_sys::TTS_FLAG_SHOULDFREE as u16 != 0;
        if !std::ptr::eq((*slot).tts_ops, virtual_ops) || owns_memory {
            pg_sys::ExecClearTuple(slot);
            return;
        }
        (*slot).tts_nvalid = 0;
        (*slot).tts_flags |= pg_sys::TTS_FLAG_EMPTY as u16;
        // ItemPointerSetInvalid.
        (*slot).tts_tid = pg_sys::ItemPointerData {
            ip_blkid: pg_sys::BlockIdData {
                bi_hi: 0xFFFF,
                bi_lo: 0xFFFF,
            },
            ip_posid: pg_sys::InvalidOffsetNumber,
        };
    }
}
