//! A decoded Parquet row group turned into datum columns once, so that each
//! row costs a copy of words into the slot: no allocation, no per-value
//! conversion. By-reference values live in one arena per column, laid out
//! as PostgreSQL expects them in memory (4-byte varlena headers, aligned),
//! and stay valid while the group is loaded (the slot is refilled before
//! the cursor moves to another group).

#[cfg(target_endian = "big")]
compile_error!("group.rs writes varlena headers in little-endian form");

use arrow::array::{Array, ArrowPrimitiveType, PrimitiveArray};
use arrow::buffer::NullBuffer;
use omendb_columnar::logical::NUMERIC_MAX;
use omendb_columnar::storage::scaled_into;
use omendb_columnar::{ColumnData, ColumnKind, DecodedGroup, Schema};
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
    /// Rows `block_start..block_start + block_len`, row-major (a slot's
    /// values and nulls, one after another): filling a slot is two copies,
    /// and the columns are read one at a time, a block at a time, rather
    /// than all of them at once per row.
    block_values: Vec<pg_sys::Datum>,
    block_nulls: Vec<bool>,
    block_start: usize,
    block_len: usize,
}

/// Rows per row-major block.
const BLOCK: usize = 256;

/// Convert column `c` of `data` into `out`, reusing its buffers: one loop
/// per column over its arrays (word columns are a plain conversion of the
/// values slice; by-reference values are laid out in the arena).
fn decode_column(kind: ColumnKind, attlen: i16, data: &DecodedGroup, c: usize, out: &mut Values) {
    let n = data.len();
    out.datums.clear();
    out.nulls.clear();
    out.arena.clear();
    let Some(column) = data.column_data(c) else {
        panic!("group.rs: column {c} was not decoded");
    };
    match column {
        ColumnData::Bool(a) => {
            nulls_of(a.nulls(), n, &mut out.nulls);
            out.datums.extend(
                a.values()
                    .iter()
                    .zip(&out.nulls)
                    .map(|(v, null)| pg_sys::Datum::from(usize::from(v && !null))),
            );
        }
        // As `datum::word_datum` makes them: signed values sign-extended,
        // a float4 by its bits as an int4.
        ColumnData::Char(a) => words(a, |v| v as isize as usize, out),
        ColumnData::Int16(a) => words(a, |v| v as isize as usize, out),
        ColumnData::Int32(a) => words(a, |v| v as isize as usize, out),
        ColumnData::Int64(a) => words(a, |v| v as usize, out),
        ColumnData::Float32(a) => words(a, |v| v.to_bits() as i32 as isize as usize, out),
        ColumnData::Float64(a) => words(a, |v| v.to_bits() as usize, out),
        ColumnData::Fixed(a) => {
            let width = a.value_length() as usize;
            let size = width.max(1).div_ceil(8) * 8;
            let mut arena = Arena::new(&mut out.arena, n * size);
            each_valid(a.nulls(), n, out, |i| {
                arena.put(size, |p| {
                    // SAFETY: `size` >= width bytes at p.
                    unsafe { std::ptr::copy_nonoverlapping(a.value(i).as_ptr(), p, width) }
                })
            });
        }
        ColumnData::Bytes(a) => {
            let offsets = a.value_offsets();
            let values = a.values();
            let total = (offsets[n] - offsets[0]) as usize;
            let mut arena = Arena::new(&mut out.arena, total + n * 16);
            let cstring = kind == ColumnKind::Bytes && attlen == -2;
            each_valid(a.nulls(), n, out, |i| {
                let b = &values[offsets[i] as usize..offsets[i + 1] as usize];
                if cstring {
                    arena.put((b.len() + 1).div_ceil(8) * 8, |p| {
                        // SAFETY: len + 1 bytes at p.
                        unsafe {
                            std::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len());
                            *p.add(b.len()) = 0;
                        }
                    })
                } else {
                    varlena(&mut arena, b)
                }
            });
        }
        ColumnData::Scaled(ints, scale) => {
            // Each value's numeric image, written straight into the arena.
            const SIZE: usize = (NUMERIC_MAX + pg_sys::VARHDRSZ).div_ceil(8) * 8;
            let mut arena = Arena::new(&mut out.arena, n * SIZE);
            let values = ints.values();
            // Rows with a value seen recently share its image (datums are
            // read-only): most numeric columns repeat few values.
            let mut recent = [(0i64, pg_sys::Datum::from(0)); 256];
            each_valid(ints.nulls(), n, out, |i| {
                let v = values[i];
                let at = ((v as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize;
                let (seen, datum) = recent[at];
                if seen == v && datum.value() != 0 {
                    return datum;
                }
                // Built on the stack: the arena's spare room is uninitialized,
                // so no reference into it is made.
                let mut img = [0u8; NUMERIC_MAX];
                let len = scaled_into(v, scale, &mut img);
                let datum = arena.put_up_to(SIZE, |p| {
                    let total = len + pg_sys::VARHDRSZ;
                    // SAFETY: SIZE >= VARHDRSZ + NUMERIC_MAX bytes at p, 8-byte
                    // aligned.
                    unsafe {
                        (p as *mut u32).write((total as u32) << 2);
                        std::ptr::copy_nonoverlapping(img.as_ptr(), p.add(pg_sys::VARHDRSZ), len);
                    }
                    total
                });
                recent[at] = (v, datum);
                datum
            });
        }
    }
}

/// Word datums of a primitive array, converted value by value; NULL rows
/// get a zero datum, as heap_deform_tuple gives them.
fn words<T: ArrowPrimitiveType>(
    a: &PrimitiveArray<T>,
    conv: impl Fn(T::Native) -> usize,
    out: &mut Values,
) {
    out.datums
        .extend(a.values().iter().map(|v| pg_sys::Datum::from(conv(*v))));
    nulls_of(a.nulls(), a.len(), &mut out.nulls);
    if a.null_count() > 0 {
        for (d, null) in out.datums.iter_mut().zip(&out.nulls) {
            if *null {
                *d = pg_sys::Datum::from(0);
            }
        }
    }
}

fn nulls_of(nulls: Option<&NullBuffer>, n: usize, out: &mut Vec<bool>) {
    match nulls {
        None => out.resize(n, false),
        Some(b) => out.extend(b.iter().map(|valid| !valid)),
    }
}

/// Call `make(i)` for each non-NULL row, recording the datum it returns;
/// NULL rows get a zero datum.
fn each_valid(
    nulls: Option<&NullBuffer>,
    n: usize,
    out: &mut Values,
    mut make: impl FnMut(usize) -> pg_sys::Datum,
) {
    nulls_of(nulls, n, &mut out.nulls);
    out.datums.resize(n, pg_sys::Datum::from(0));
    for (i, d) in out.datums.iter_mut().enumerate() {
        if !out.nulls[i] {
            *d = make(i);
        }
    }
}

/// `b` as a varlena with a 4-byte header (SET_VARSIZE_4B on a
/// little-endian machine), 8-byte aligned.
fn varlena(arena: &mut Arena, b: &[u8]) -> pg_sys::Datum {
    let total = b.len() + pg_sys::VARHDRSZ;
    arena.put(total.div_ceil(8) * 8, |p| {
        // SAFETY: `total` bytes at p, 4-byte aligned.
        unsafe {
            (p as *mut u32).write((total as u32) << 2);
            std::ptr::copy_nonoverlapping(b.as_ptr(), p.add(pg_sys::VARHDRSZ), b.len());
        }
    })
}

/// Bump allocation in a column's arena, reserved up front so that it never
/// reallocates (datums point into it).
struct Arena {
    base: *mut u8,
    at: usize,
    bound: usize,
}

impl Arena {
    fn new(arena: &mut Vec<u64>, bound: usize) -> Arena {
        arena.reserve(bound.div_ceil(8));
        Arena {
            base: arena.as_mut_ptr() as *mut u8,
            at: 0,
            bound,
        }
    }

    /// `size` (a multiple of 8) bytes written by `write`; their datum.
    fn put(&mut self, size: usize, write: impl FnOnce(*mut u8)) -> pg_sys::Datum {
        self.put_up_to(size, |p| {
            write(p);
            size
        })
    }

    /// Up to `max` bytes written by `write`, which returns how many it
    /// wrote (at most `max`); their datum.
    fn put_up_to(&mut self, max: usize, write: impl FnOnce(*mut u8) -> usize) -> pg_sys::Datum {
        assert!(self.at + max <= self.bound, "arena bound holds every value");
        // SAFETY: `at + max` is within the reserved arena.
        let p = unsafe { self.base.add(self.at) };
        let used = write(p);
        assert!(used <= max, "a value overran its room in the arena");
        self.at += used.div_ceil(8) * 8;
        pg_sys::Datum::from(p as usize)
    }
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
        // Columns that do not vary by row keep these values in every block.
        self.block_values.clear();
        self.block_nulls.clear();
        for _ in 0..BLOCK {
            self.block_values.extend_from_slice(&self.base_values);
            self.block_nulls.extend_from_slice(&self.base_nulls);
        }
        self.block_start = 0;
        self.block_len = 0;
    }

    /// Make rows `start..` (up to BLOCK of them) the row-major block.
    fn transpose(&mut self, start: usize) {
        let n = self.base_values.len();
        let len = BLOCK.min(self.rows - start);
        for &(c, datums, nulls) in &self.decoded {
            // SAFETY: every decoded column has `rows` entries, and
            // start + len <= rows.
            let (datums, nulls) = unsafe {
                (
                    std::slice::from_raw_parts(datums.add(start), len),
                    std::slice::from_raw_parts(nulls.add(start), len),
                )
            };
            for (r, (d, null)) in datums.iter().zip(nulls).enumerate() {
                self.block_values[r * n + c] = *d;
                self.block_nulls[r * n + c] = *null;
            }
        }
        self.block_start = start;
        self.block_len = len;
    }

    /// Store row `i` into virtual slot `slot` (of the table's descriptor).
    pub fn fill(&mut self, slot: *mut pg_sys::TupleTableSlot, i: usize) {
        let n = self.base_values.len();
        assert!(i < self.rows, "row {i} of a {}-row group", self.rows);
        if i < self.block_start || i >= self.block_start + self.block_len {
            self.transpose(i - i % BLOCK);
        }
        let at = (i - self.block_start) * n;
        let (values, nulls) = (
            &self.block_values[at..at + n],
            &self.block_nulls[at..at + n],
        );
        // SAFETY: a valid slot with one value/null entry per column.
        unsafe {
            clear_slot(slot);
            std::ptr::copy_nonoverlapping(values.as_ptr(), (*slot).tts_values, n);
            std::ptr::copy_nonoverlapping(nulls.as_ptr(), (*slot).tts_isnull, n);
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
