//! `INSERT ... ON CONFLICT` on a table with a unique alex index.
//!
//! PostgreSQL 15 opens a result relation's indexes for speculative insertion
//! on the first row (`ExecOpenIndices(rri, true)`), and for every unique
//! index calls `BuildSpeculativeIndexInfo`, which refuses any access method
//! but btree ("unexpected non-btree speculative unique index") although all
//! it does is look up the index's `=` operator (strategy 3) in its operator
//! family — which alex's families have, as btree's do. So an ON CONFLICT
//! insert into a table with a unique alex index, arbiter or not, would fail.
//!
//! At ExecutorStart this opens those indexes itself, the way the first row
//! would, and fills in the same fields for alex indexes; ExecInsert then
//! finds them open and goes on as for btree. Rows routed to partitions are
//! opened later by PostgreSQL's tuple routing, out of reach here: ON CONFLICT
//! through a partitioned table whose partitions have unique alex indexes is
//! refused at ExecutorStart with 0A000 and a hint (README).

use pgrx::pg_sys;
use pgrx::prelude::*;

/// After ExecutorStart (hooks.rs): open the indexes of ON CONFLICT targets
/// with unique alex indexes for speculative insertion.
///
/// # Safety
/// From the ExecutorStart hook, after PostgreSQL initialised `query`.
pub(crate) unsafe fn after_executor_start(query: *mut pg_sys::QueryDesc, eflags: i32) {
    // SAFETY: walking the initialised executor state.
    unsafe {
        if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 == 0 {
            prepare((*query).planstate, (*query).estate);
        }
    }
}

/// The ModifyTable nodes of a plan: the top node, and those of
/// data-modifying CTEs (`es_auxmodifytables`).
unsafe fn prepare(top: *mut pg_sys::PlanState, estate: *mut pg_sys::EState) {
    // SAFETY: the caller's initialised executor state.
    unsafe {
        if estate.is_null() {
            return;
        }
        let mut nodes = Vec::new();
        if !top.is_null() && (*top).type_ == pg_sys::NodeTag::T_ModifyTableState {
            nodes.push(top as *mut pg_sys::ModifyTableState);
        }
        let list = (*estate).es_auxmodifytables;
        if !list.is_null() {
            for i in 0..(*list).length {
                let cell = (*list).elements.add(i as usize);
                nodes.push((*cell).ptr_value as *mut pg_sys::ModifyTableState);
            }
        }
        for mt in nodes {
            let plan = (*mt).ps.plan as *mut pg_sys::ModifyTable;
            if (*mt).operation != pg_sys::CmdType::CMD_INSERT
                || plan.is_null()
                || (*plan).onConflictAction == pg_sys::OnConflictAction::ONCONFLICT_NONE
            {
                continue;
            }
            for r in 0..(*mt).mt_nrels {
                open_indexes((*mt).resultRelInfo.add(r as usize), estate);
            }
        }
    }
}

/// Open a result relation's indexes as ExecOpenIndices(rri, true) would,
/// if it has a unique alex index and they are not open yet.
unsafe fn open_indexes(rri: *mut pg_sys::ResultRelInfo, estate: *mut pg_sys::EState) {
    // SAFETY: an initialised result relation of the running query.
    unsafe {
        let rel = (*rri).ri_RelationDesc;
        let alex = pg_sys::get_index_am_oid(c"alex".as_ptr(), true);
        if (*(*rel).rd_rel).relkind == pg_sys::RELKIND_PARTITIONED_TABLE as std::ffi::c_char {
            refuse_routed(rel, alex);
            return;
        }
        if !(*(*rel).rd_rel).relhasindex || !(*rri).ri_IndexRelationDescs.is_null() {
            return;
        }
        if !has_unique_index_of(rel, alex) {
            return;
        }
        // Allocated where the first row would allocate them.
        let old = pg_sys::MemoryContextSwitchTo((*estate).es_query_cxt);
        pg_sys::ExecOpenIndices(rri, false);
        for i in 0..(*rri).ri_NumIndices as usize {
            let index = *(*rri).ri_IndexRelationDescs.add(i);
            let info = *(*rri).ri_IndexRelationInfo.add(i);
            if !(*info).ii_Unique {
                continue;
            }
            if (*(*index).rd_rel).relam == alex {
                equality_info(index, info);
            } else {
                // btree's (or another access method's refusal, as before).
                pg_sys::BuildSpeculativeIndexInfo(index, info);
            }
        }
        pg_sys::MemoryContextSwitchTo(old);
    }
}

/// ON CONFLICT through a partitioned table: PostgreSQL 15's tuple routing
/// opens each partition's indexes itself, out of reach here, and fails with
/// an internal error on a unique alex index; say so clearly instead, before
/// any row is inserted.
unsafe fn refuse_routed(parent: pg_sys::Relation, alex: pg_sys::Oid) {
    if alex == pg_sys::InvalidOid {
        return;
    }
    // SAFETY: an open partitioned table; each partition is locked as tuple
    // routing would lock it, and sub-partitioned ones are walked the same way.
    unsafe {
        let desc = pg_sys::RelationGetPartitionDesc(parent, true);
        if desc.is_null() {
            return;
        }
        for i in 0..(*desc).nparts.max(0) as usize {
            let oid = *(*desc).oids.add(i);
            let part = pg_sys::table_open(oid, pg_sys::RowExclusiveLock as i32);
            let rd_rel = &*(*part).rd_rel;
            if rd_rel.relkind == pg_sys::RELKIND_PARTITIONED_TABLE as std::ffi::c_char {
                refuse_routed(part, alex);
            } else if rd_rel.relhasindex && has_unique_index_of(part, alex) {
                let (pname, name) = (super::relation_name(parent), super::relation_name(part));
                pg_sys::table_close(part, pg_sys::NoLock as i32);
                crate::error::error_with_hint(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    format!(
                        "INSERT ... ON CONFLICT into partitioned table \"{pname}\" is not supported: its partition \"{name}\" has a unique alex index"
                    ),
                    "Insert into the partition itself, or give the partitions btree unique indexes: PostgreSQL 15 routes ON CONFLICT rows only through btree unique indexes.".into(),
                );
            }
            pg_sys::table_close(part, pg_sys::NoLock as i32);
        }
    }
}

/// Whether `rel` has a unique index of access method `am`.
unsafe fn has_unique_index_of(rel: pg_sys::Relation, am: pg_sys::Oid) -> bool {
    if am == pg_sys::InvalidOid {
        return false;
    }
    // SAFETY: an open relation; each index is opened with the lock
    // ExecOpenIndices takes anyway, and kept locked like it.
    unsafe {
        let list = pg_sys::RelationGetIndexList(rel);
        let mut found = false;
        if !list.is_null() {
            for i in 0..(*list).length {
                let oid = (*(*list).elements.add(i as usize)).oid_value;
                let index = pg_sys::index_open(oid, pg_sys::RowExclusiveLock as i32);
                found |= (*(*index).rd_index).indisunique && (*(*index).rd_rel).relam == am;
                pg_sys::index_close(index, pg_sys::NoLock as i32);
            }
            pg_sys::list_free(list);
        }
        found
    }
}

/// BuildSpeculativeIndexInfo's fields for an alex index: its `=` operator.
unsafe fn equality_info(index: pg_sys::Relation, info: *mut pg_sys::IndexInfo) {
    // SAFETY: an open alex index with one key column, and its IndexInfo.
    unsafe {
        let n = (*info).ii_NumIndexKeyAttrs as usize;
        (*info).ii_UniqueOps = pg_sys::palloc(n * size_of::<pg_sys::Oid>()) as *mut pg_sys::Oid;
        (*info).ii_UniqueProcs = pg_sys::palloc(n * size_of::<pg_sys::Oid>()) as *mut pg_sys::Oid;
        (*info).ii_UniqueStrats = pg_sys::palloc(n * size_of::<u16>()) as *mut u16;
        for i in 0..n {
            let typ = *(*index).rd_opcintype.add(i);
            let op = pg_sys::get_opfamily_member(
                *(*index).rd_opfamily.add(i),
                typ,
                typ,
                pg_sys::BTEqualStrategyNumber as i16,
            );
            if op == pg_sys::InvalidOid {
                crate::error::error(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    format!(
                        "alex index \"{}\" has no = operator for its key type",
                        super::relation_name(index)
                    ),
                );
            }
            *(*info).ii_UniqueStrats.add(i) = pg_sys::BTEqualStrategyNumber as u16;
            *(*info).ii_UniqueOps.add(i) = op;
            *(*info).ii_UniqueProcs.add(i) = pg_sys::get_opcode(op);
        }
    }
}
