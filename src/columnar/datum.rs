//! PostgreSQL values <-> `crates/columnar` values. Values are stored as their
//! exact in-memory images (byval words, fixed-length bytes, detoasted varlena
//! payloads), so every type round-trips bit for bit and no type is refused.

use omendb_columnar::{ColumnKind, ColumnSpec, Schema, Value};
use pgrx::pg_sys;

/// How one attribute is stored.
fn kind_of(att: &pg_sys::FormData_pg_attribute) -> ColumnKind {
    match (att.attbyval, att.attlen) {
        (true, 1) if att.atttypid == pg_sys::BOOLOID => ColumnKind::Bool,
        (true, 1) => ColumnKind::Char,
        (true, 2) => ColumnKind::Int16,
        (true, 4) if att.atttypid == pg_sys::FLOAT4OID => ColumnKind::Float32,
        (true, 4) => ColumnKind::Int32,
        (true, 8) if att.atttypid == pg_sys::FLOAT8OID => ColumnKind::Float64,
        (true, _) => ColumnKind::Int64,
        (false, n) if n > 0 => ColumnKind::Fixed(n as u16),
        _ => ColumnKind::Bytes,
    }
}

fn attrs(desc: pg_sys::TupleDesc) -> &'static [pg_sys::FormData_pg_attribute] {
    // SAFETY: a valid tuple descriptor with natts attributes.
    unsafe { (*desc).attrs.as_slice((*desc).natts as usize) }
}

/// The storage schema of a relation's current descriptor. Dropped columns
/// keep their place (stored as NULLs) so attribute numbers stay aligned.
pub fn schema_of(desc: pg_sys::TupleDesc) -> Schema {
    Schema {
        columns: attrs(desc)
            .iter()
            .map(|a| ColumnSpec {
                name: pgrx::name_data_to_str(&a.attname).to_string(),
                kind: kind_of(a),
                type_oid: if a.attisdropped {
                    0
                } else {
                    a.atttypid.to_u32()
                },
                typmod: a.atttypmod,
            })
            .collect(),
    }
}

/// Read a slot's values as storage values. Varlena values are detoasted into
/// the current memory context, which must outlive the returned borrows.
pub fn values_of<'a>(slot: *mut pg_sys::TupleTableSlot, schema: &Schema, out: &mut Vec<Value<'a>>) {
    out.clear();
    // SAFETY: a valid slot; after slot_getallattrs tts_values/tts_isnull
    // hold natts entries.
    unsafe {
        pg_sys::slot_getallattrs(slot);
        let desc = (*slot).tts_tupleDescriptor;
        let atts = attrs(desc);
        for (i, col) in schema.columns.iter().enumerate() {
            if *(*slot).tts_isnull.add(i) || atts[i].attisdropped {
                out.push(Value::Null);
                continue;
            }
            let d = *(*slot).tts_values.add(i);
            out.push(match col.kind {
                ColumnKind::Fixed(n) => Value::Bytes(std::slice::from_raw_parts(
                    d.cast_mut_ptr::<u8>(),
                    n as usize,
                )),
                ColumnKind::Bytes if atts[i].attlen == -2 => {
                    Value::Bytes(std::ffi::CStr::from_ptr(d.cast_mut_ptr()).to_bytes())
                }
                ColumnKind::Bytes => {
                    let v = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
                    let len = pgrx::varlena::varsize_any_exhdr(v);
                    let data = pgrx::varlena::vardata_any(v) as *const u8;
                    Value::Bytes(std::slice::from_raw_parts(data, len))
                }
                _ => Value::Word(d.value() as u64),
            });
        }
    }
}

/// The Datum of a by-value stored word (as `*GetDatum` would make it).
pub fn word_datum(kind: ColumnKind, w: u64) -> pg_sys::Datum {
    pg_sys::Datum::from(match kind {
        ColumnKind::Bool => (w & 1) as usize,
        ColumnKind::Char => w as u8 as i8 as isize as usize,
        ColumnKind::Int16 => w as u16 as i16 as isize as usize,
        ColumnKind::Int32 | ColumnKind::Float32 => w as u32 as i32 as isize as usize,
        _ => w as usize,
    })
}

/// The Datum PostgreSQL's own `*GetDatum` would produce for a stored value.
/// By-reference values are palloc'd in the current memory context.
pub fn to_datum(kind: ColumnKind, attlen: i16, v: Value) -> Option<pg_sys::Datum> {
    let d = match (kind, v) {
        (_, Value::Null) => return None,
        (_, Value::Word(w)) => return Some(word_datum(kind, w)),
        (ColumnKind::Bytes, Value::Bytes(b)) if attlen == -2 => {
            // SAFETY: palloc'd buffer of len + 1 bytes, NUL-terminated.
            unsafe {
                let p = pg_sys::palloc(b.len() + 1) as *mut u8;
                std::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len());
                *p.add(b.len()) = 0;
                p as usize
            }
        }
        (ColumnKind::Bytes, Value::Bytes(b)) => {
            // SAFETY: palloc'd varlena with a 4-byte header.
            unsafe {
                let total = b.len() + pg_sys::VARHDRSZ;
                let p = pg_sys::palloc(total) as *mut pg_sys::varlena;
                pgrx::varlena::set_varsize_4b(p, total as i32);
                std::ptr::copy_nonoverlapping(
                    b.as_ptr(),
                    (p as *mut u8).add(pg_sys::VARHDRSZ),
                    b.len(),
                );
                p as usize
            }
        }
        (_, Value::Bytes(b)) => {
            // SAFETY: palloc'd copy of a fixed-length image.
            unsafe {
                let p = pg_sys::palloc(b.len().max(1)) as *mut u8;
                std::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len());
                p as usize
            }
        }
    };
    Some(pg_sys::Datum::from(d))
}

/// Fill a virtual slot from stored values (`value(i)` for stored column i).
/// Columns the segment does not have (added after it was written) take the
/// attribute's missing value, as heap does; dropped columns are NULL.
pub fn fill_slot<'a>(
    slot: *mut pg_sys::TupleTableSlot,
    schema: &Schema,
    stored_columns: usize,
    mut value: impl FnMut(usize) -> Value<'a>,
) {
    // SAFETY: a valid virtual slot whose descriptor matches `schema`.
    unsafe {
        pg_sys::ExecClearTuple(slot);
        let desc = (*slot).tts_tupleDescriptor;
        let atts = attrs(desc);
        for (i, col) in schema.columns.iter().enumerate() {
            let datum = if atts[i].attisdropped {
                None
            } else if i < stored_columns {
                to_datum(col.kind, atts[i].attlen, value(i))
            } else {
                let mut isnull = false;
                let d = pg_sys::getmissingattr(desc, i as i32 + 1, &mut isnull);
                if isnull {
                    None
                } else {
                    Some(d)
                }
            };
            *(*slot).tts_isnull.add(i) = datum.is_none();
            *(*slot).tts_values.add(i) = datum.unwrap_or(pg_sys::Datum::from(0));
        }
        pg_sys::ExecStoreVirtualTuple(slot);
    }
}
