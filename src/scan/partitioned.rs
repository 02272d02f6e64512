//! Partitioned tables in the DataFusion scan: which leaf partitions a plan
//! reads, and how their columns line up with the partitioned table's.
//!
//! PostgreSQL's planner has already pruned the partitions its constant quals
//! exclude: the leaves left in the `PlannedStmt`'s range table (reachable
//! through `appendRelations`) are the ones to read, and the executor locks
//! exactly those. DataFusion still applies every qual, so reading a
//! superset of what one occurrence of the table needs is never wrong.

use std::collections::HashMap;

use pgrx::pg_sys;

use super::expr::list;

/// A leaf partition a plan reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Leaf {
    pub oid: u32,
    /// The partition of the partitioned table that holds it (itself, or
    /// the sub-partitioned table it lies under).
    pub top: u32,
}

/// Partitioned table OID -> its leaf partitions in a plan.
pub type Leaves = HashMap<u32, Vec<Leaf>>;

/// The leaves each partitioned table of `stmt` keeps after planning-time
/// pruning (a table PostgreSQL pruned entirely maps to none).
///
/// # Safety
/// `stmt` is a finished plan (its range table is flat).
pub unsafe fn leaves_in_plan(stmt: *mut pg_sys::PlannedStmt) -> Leaves {
    // SAFETY: the plan's range table and AppendRelInfo list.
    unsafe {
        let rtable = list::<pg_sys::RangeTblEntry>((*stmt).rtable);
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for a in list::<pg_sys::AppendRelInfo>((*stmt).appendRelations) {
            children
                .entry((*a).parent_relid)
                .or_default()
                .push((*a).child_relid);
        }
        let partitioned = |rte: *mut pg_sys::RangeTblEntry| {
            (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                && (*rte).relkind as u8 == pg_sys::RELKIND_PARTITIONED_TABLE
        };
        let mut out = Leaves::new();
        for (i, &rte) in rtable.iter().enumerate() {
            if !partitioned(rte) {
                continue;
            }
            let leaves = out.entry((*rte).relid.to_u32()).or_default();
            let mut stack = vec![(i as u32 + 1, None)];
            while let Some((parent, top)) = stack.pop() {
                for &child in children.get(&parent).map_or(&[][..], Vec::as_slice) {
                    let Some(&c) = rtable.get(child as usize - 1) else {
                        continue;
                    };
                    let oid = (*c).relid.to_u32();
                    let top = top.unwrap_or(oid);
                    if partitioned(c) {
                        stack.push((child, Some(top)));
                    } else {
                        leaves.push(Leaf { oid, top });
                    }
                }
            }
        }
        for v in out.values_mut() {
            v.sort_unstable();
            v.dedup();
        }
        out
    }
}

/// Whether partitioned table `oid` may have omen_columnar leaves: one of
/// its partitions is an omen_columnar table or is itself partitioned. A
/// cheap test before planning (only `oid`, which the query has locked, is
/// examined; its partitions are not locked yet): whether every leaf the
/// plan keeps is omen_columnar is decided when the query is translated.
///
/// # Safety
/// From the planner hook; `oid` is a partitioned table the query names.
pub unsafe fn has_columnar_leaf(oid: pg_sys::Oid) -> bool {
    // SAFETY: `oid` is locked; its partitions are looked up without locks,
    // and one that vanishes meanwhile reads as not columnar.
    unsafe {
        let rel = pg_sys::RelationIdGetRelation(oid);
        if rel.is_null() {
            return false;
        }
        let desc = pg_sys::RelationGetPartitionDesc(rel, true);
        let yes = !desc.is_null()
            && (0..(*desc).nparts.max(0) as usize).any(|i| {
                let part = pg_sys::RelationIdGetRelation(*(*desc).oids.add(i));
                if part.is_null() {
                    return false;
                }
                let yes = match (*(*part).rd_rel).relkind as u8 {
                    pg_sys::RELKIND_RELATION => crate::columnar::is_columnar(part),
                    kind => kind == pg_sys::RELKIND_PARTITIONED_TABLE,
                };
                pg_sys::RelationClose(part);
                yes
            });
        pg_sys::RelationClose(rel);
        yes
    }
}

/// For each column of `parent` (0-based attribute number), the 0-based
/// column of `leaf` holding it: partitions may order their columns
/// differently or keep dropped ones. Matched by name, as PostgreSQL does.
pub fn column_map(
    parent: pg_sys::Relation,
    leaf: pg_sys::Relation,
) -> Result<Vec<Option<usize>>, String> {
    // SAFETY: two open relations' descriptors.
    let (p, l) = unsafe {
        let pd = (*parent).rd_att;
        let ld = (*leaf).rd_att;
        (
            (*pd).attrs.as_slice((*pd).natts as usize),
            (*ld).attrs.as_slice((*ld).natts as usize),
        )
    };
    p.iter()
        .map(|a| {
            if a.attisdropped {
                return Ok(None);
            }
            let found = l
                .iter()
                .position(|b| {
                    !b.attisdropped
                        && pgrx::name_data_to_str(&b.attname) == pgrx::name_data_to_str(&a.attname)
                })
                .ok_or_else(|| {
                    format!(
                        "partition {} has no column {}",
                        crate::pg::relation_name(leaf),
                        pgrx::name_data_to_str(&a.attname)
                    )
                })?;
            let b = &l[found];
            if (b.atttypid, b.atttypmod) != (a.atttypid, a.atttypmod) {
                return Err(format!(
                    "column {} of partition {} has another type",
                    pgrx::name_data_to_str(&a.attname),
                    crate::pg::relation_name(leaf)
                ));
            }
            Ok(Some(found))
        })
        .collect()
}

/// What a partitioned table's bounds say of the rows of one partition: its
/// key column (the table's 0-based column) lies in `[min, max]`, or is NULL
/// if `nulls`. Keys are PostgreSQL's integer words (dates and timestamps as
/// day and microsecond counts), as the min/max statistics hold them.
#[derive(Clone, Copy, Debug)]
pub struct PartBound {
    pub column: usize,
    pub min: i64,
    pub max: i64,
    pub nulls: bool,
}

/// The bounds of each partition (by OID) of `parent`, when it is
/// partitioned by RANGE or LIST on one integer-like column; None otherwise
/// (those partitions are always read). The default partition has none.
pub fn bounds(parent: pg_sys::Relation) -> Option<HashMap<u32, PartBound>> {
    // SAFETY: an open partitioned table; its key and descriptor live in the
    // relcache entry we hold open.
    unsafe {
        let desc = pg_sys::RelationGetPartitionDesc(parent, true);
        if desc.is_null() {
            return None;
        }
        let (attno, typid) = key_column((*parent).rd_id)?;
        let column = usize::try_from(attno - 1).ok()?;
        let word: fn(pg_sys::Datum) -> i64 = match typid {
            pg_sys::INT2OID => |d| i64::from(d.value() as i16),
            pg_sys::INT4OID | pg_sys::DATEOID => |d| i64::from(d.value() as i32),
            pg_sys::INT8OID | pg_sys::TIMESTAMPOID | pg_sys::TIMESTAMPTZOID => |d| d.value() as i64,
            _ => return None,
        };
        if (*desc).boundinfo.is_null() {
            return None;
        }
        let bi = (*desc).boundinfo;
        let nparts = (*desc).nparts.max(0) as usize;
        let oid_of = |p: i32| -> Option<u32> {
            usize::try_from(p)
                .ok()
                .filter(|&p| p < nparts)
                .map(|p| (*(*desc).oids.add(p)).to_u32())
        };
        let ndatums = (*bi).ndatums.max(0) as usize;
        let datum = |i: usize| word(*(*(*bi).datums.add(i)));
        let mut out: HashMap<u32, PartBound> = HashMap::new();
        let empty = |nulls| PartBound {
            column,
            min: i64::MAX,
            max: i64::MIN,
            nulls,
        };
        match (*bi).strategy as u8 {
            b'r' => {
                // indexes[i]: the partition whose (exclusive) upper bound is
                // datums[i]; its lower bound is datums[i - 1].
                let kind = |i: usize| *(*(*bi).kind.add(i));
                for i in 0..ndatums {
                    let Some(oid) = oid_of(*(*bi).indexes.add(i)) else {
                        continue;
                    };
                    let min = match i.checked_sub(1) {
                        None => i64::MIN,
                        Some(j) => match kind(j) {
                            pg_sys::PartitionRangeDatumKind::PARTITION_RANGE_DATUM_VALUE => {
                                datum(j)
                            }
                            pg_sys::PartitionRangeDatumKind::PARTITION_RANGE_DATUM_MINVALUE => {
                                i64::MIN
                            }
                            _ => return None,
                        },
                    };
                    let max = match kind(i) {
                        pg_sys::PartitionRangeDatumKind::PARTITION_RANGE_DATUM_VALUE => {
                            datum(i).checked_sub(1)?
                        }
                        pg_sys::PartitionRangeDatumKind::PARTITION_RANGE_DATUM_MAXVALUE => i64::MAX,
                        _ => return None,
                    };
                    out.insert(
                        oid,
                        PartBound {
                            column,
                            min,
                            max,
                            nulls: false,
                        },
                    );
                }
            }
            b'l' => {
                for i in 0..ndatums {
                    let Some(oid) = oid_of(*(*bi).indexes.add(i)) else {
                        continue;
                    };
                    let v = datum(i);
                    let b = out.entry(oid).or_insert_with(|| empty(false));
                    b.min = b.min.min(v);
                    b.max = b.max.max(v);
                }
                if let Some(oid) = oid_of((*bi).null_index) {
                    out.entry(oid).or_insert_with(|| empty(true)).nulls = true;
                }
            }
            _ => return None,
        }
        Some(out)
    }
}

/// The fixed part of a `pg_partitioned_table` row, up to the first key
/// column of `partattrs` (an int2vector, stored plain: 4-byte header).
/// Only the key count and first column are read; the rest fixes the layout.
#[repr(C)]
#[allow(dead_code)]
struct FormPartitionedTable {
    partrelid: pg_sys::Oid,
    partstrat: std::ffi::c_char,
    partnatts: i16,
    partdefid: pg_sys::Oid,
    // int2vector partattrs
    vl_len: i32,
    ndim: i32,
    dataoffset: i32,
    elemtype: pg_sys::Oid,
    dim1: i32,
    lbound1: i32,
    first: i16,
}
const _: () = assert!(std::mem::offset_of!(FormPartitionedTable, vl_len) == 12);
const _: () = assert!(std::mem::offset_of!(FormPartitionedTable, first) == 36);

/// `Anum_pg_partitioned_table_partclass` (catalog/pg_partitioned_table_d.h).
const ANUM_PARTCLASS: i16 = 6;

/// The partition key of table `relid` when it is one plain column ordered
/// by its type's default btree operator class (so bounds order as the
/// integers do): (attribute number, type).
fn key_column(relid: pg_sys::Oid) -> Option<(i16, pg_sys::Oid)> {
    // SAFETY: a syscache lookup, released before returning; partclass is an
    // oidvector (plain storage, never toasted) of partnatts entries.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::PARTRELID as i32,
            pg_sys::Datum::from(relid),
        );
        if tuple.is_null() {
            return None;
        }
        let form = &*(pg_sys::GETSTRUCT(tuple) as *const FormPartitionedTable);
        let attno = (form.partnatts == 1 && form.dim1 == 1).then_some(form.first);
        let mut isnull = false;
        let classes = pg_sys::SysCacheGetAttr(
            pg_sys::SysCacheIdentifier::PARTRELID as i32,
            tuple,
            ANUM_PARTCLASS,
            &mut isnull,
        );
        let class = if isnull {
            None
        } else {
            let v = classes.cast_mut_ptr::<pg_sys::oidvector>();
            ((*v).dim1 == 1).then(|| *(*v).values.as_ptr())
        };
        pg_sys::ReleaseSysCache(tuple);
        let attno = attno.filter(|&a| a > 0)?;
        let typid = pg_sys::get_atttype(relid, attno);
        let default = pg_sys::GetDefaultOpClass(typid, pg_sys::BTREE_AM_OID);
        (class? == default && default != pg_sys::InvalidOid).then_some((attno, typid))
    }
}
