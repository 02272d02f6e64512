//! Index scans, index-only scans and bitmap scans.
//!
//! The scan keys (all ANDed) become one key range plus a NULL mode; the core's
//! range iterator walks it forward or backward, copying one page's entries at
//! a time, so no buffer stays pinned between calls.

use super::keys::{heap_tid, is_null_entry, KeyType, NULL_KEY};
use super::storage::PgStore;
use alex::{Alex, Direction, RangeIter};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgMemoryContexts;
use std::ops::Bound;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Nulls {
    /// Only non-NULL entries (any comparison key implies this).
    Exclude,
    /// Only NULL entries (`IS NULL`).
    Only,
    /// Everything (no keys: a full ordered scan, NULLs last).
    Include,
}

#[derive(Clone, Copy, Debug)]
struct Plan {
    lo: Bound<u64>,
    hi: Bound<u64>,
    nulls: Nulls,
    /// The keys cannot match anything (e.g. `x = NULL`, or `x > 5 AND x < 3`).
    empty: bool,
}

impl Plan {
    fn everything() -> Plan {
        Plan {
            lo: Bound::Unbounded,
            hi: Bound::Unbounded,
            nulls: Nulls::Include,
            empty: false,
        }
    }

    fn raise_lo(&mut self, b: Bound<u64>) {
        self.lo = match (self.lo, b) {
            (Bound::Unbounded, b) => b,
            (cur, Bound::Unbounded) => cur,
            (cur, new) => {
                if bound_value(new) > bound_value(cur)
                    || (bound_value(new) == bound_value(cur) && matches!(new, Bound::Excluded(_)))
                {
                    new
                } else {
                    cur
                }
            }
        }
    }

    fn lower_hi(&mut self, b: Bound<u64>) {
        self.hi = match (self.hi, b) {
            (Bound::Unbounded, b) => b,
            (cur, Bound::Unbounded) => cur,
            (cur, new) => {
                if bound_value(new) < bound_value(cur)
                    || (bound_value(new) == bound_value(cur) && matches!(new, Bound::Excluded(_)))
                {
                    new
                } else {
                    cur
                }
            }
        }
    }

    /// Turn the scan keys into a plan.
    unsafe fn from_keys(kind: KeyType, keys: &[pg_sys::ScanKeyData]) -> Plan {
        let mut plan = Plan::everything();
        for sk in keys {
            let flags = sk.sk_flags as u32;
            if flags & pg_sys::SK_ISNULL != 0 {
                if flags & pg_sys::SK_SEARCHNULL != 0 {
                    if plan.nulls == Nulls::Exclude {
                        plan.empty = true;
                    }
                    plan.nulls = Nulls::Only;
                } else if flags & pg_sys::SK_SEARCHNOTNULL != 0 {
                    if plan.nulls == Nulls::Only {
                        plan.empty = true;
                    }
                    plan.nulls = Nulls::Exclude;
                } else {
                    plan.empty = true; // comparison with NULL is never true
                }
                continue;
            }
            let Some(v) = kind.encode_arg(sk.sk_subtype, sk.sk_argument) else {
                crate::error::error(
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    format!("alex: unsupported comparison type {:?}", sk.sk_subtype),
                );
            };
            if plan.nulls == Nulls::Only {
                plan.empty = true;
            }
            plan.nulls = Nulls::Exclude;
            match sk.sk_strategy {
                1 => plan.lower_hi(Bound::Excluded(v)),
                2 => plan.lower_hi(Bound::Included(v)),
                3 => {
                    plan.raise_lo(Bound::Included(v));
                    plan.lower_hi(Bound::Included(v));
                }
                4 => plan.raise_lo(Bound::Included(v)),
                5 => plan.raise_lo(Bound::Excluded(v)),
                s => crate::error::error(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    format!("alex: unknown strategy {s}"),
                ),
            }
        }
        if plan.nulls == Nulls::Only {
            plan.lo = Bound::Included(NULL_KEY);
            plan.hi = Bound::Unbounded;
        }
        plan
    }

    fn wants(&self, key: u64, tid: alex::Tid) -> bool {
        match self.nulls {
            Nulls::Include => true,
            Nulls::Exclude => !is_null_entry(key, tid),
            Nulls::Only => is_null_entry(key, tid),
        }
    }
}

fn bound_value(b: Bound<u64>) -> u64 {
    match b {
        Bound::Included(v) | Bound::Excluded(v) => v,
        Bound::Unbounded => 0,
    }
}

/// Per-scan state.
///
/// NULL entries share key `NULL_KEY` with real keys that map to it (int8's
/// maximum), interleaved in TID order, so a scan that returns both runs in two
/// phases: the non-NULL range, then the NULLs (backward: the other way round).
struct ScanState {
    /// Borrows `*ix`; dropped before it (see `Drop`).
    iter: Option<RangeIter<'static, PgStore>>,
    /// Owned; a raw pointer so `iter` may borrow it without aliasing a Box.
    ix: *mut Alex<PgStore>,
    kind: KeyType,
    plan: Plan,
    dir: Direction,
    /// Phases still to run after the current one (popped from the end).
    pending: Vec<Plan>,
    /// The current phase.
    phase: Plan,
    started: bool,
    /// Holds the index tuples returned to an index-only scan.
    tuple_cxt: pg_sys::MemoryContext,
    /// Index-only scans: a tuple formed once whose value bytes are rewritten
    /// for each entry (the executor reads it before asking for the next),
    /// and a tuple holding NULL. Null pointers until first needed.
    value_tuple: pg_sys::IndexTuple,
    null_tuple: pg_sys::IndexTuple,
    /// The entry returned last, and the entries PostgreSQL found dead to
    /// all after they were returned (`kill_prior_tuple`), removed when the
    /// scan is rescanned or ends (cleanup.rs).
    last: Option<(u64, alex::Tid)>,
    killed: Vec<(u64, alex::Tid)>,
}

/// Dead entries a scan remembers for removal (the rest wait for VACUUM).
const MAX_KILLED: usize = 1024;

impl Drop for ScanState {
    fn drop(&mut self) {
        self.iter = None;
        // SAFETY: `ix` came from Box::into_raw in `new` and nothing borrows it now.
        unsafe { drop(Box::from_raw(self.ix)) };
    }
}

impl ScanState {
    fn new(index: pg_sys::Relation) -> ScanState {
        ScanState {
            iter: None,
            ix: Box::into_raw(Box::new(super::open_with(index, PgStore::for_scan(index)))),
            kind: KeyType::of_index(index),
            plan: Plan::everything(),
            dir: Direction::Forward,
            pending: Vec::new(),
            phase: Plan::everything(),
            started: false,
            value_tuple: std::ptr::null_mut(),
            null_tuple: std::ptr::null_mut(),
            last: None,
            killed: Vec::new(),
            // SAFETY: a child of the scan's context, deleted along with it.
            tuple_cxt: unsafe {
                pg_sys::AllocSetContextCreateInternal(
                    pg_sys::CurrentMemoryContext,
                    c"alex index-only tuples".as_ptr(),
                    pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
                    pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
                    pg_sys::ALLOCSET_SMALL_MAXSIZE as usize,
                )
            },
        }
    }

    /// Remove the entries found dead (after the scan has left their pages:
    /// called on rescan and at the end).
    fn remove_killed(&mut self, index: pg_sys::Relation, heap: pg_sys::Relation) {
        self.last = None;
        if self.killed.is_empty() {
            return;
        }
        // The scan's pin protects entries it is still returning; none are.
        // SAFETY: `ix` is ours until Drop.
        unsafe { (*self.ix).store().release_pin() };
        let killed = std::mem::take(&mut self.killed);
        super::cleanup::remove_dead(index, heap, &killed);
    }

    fn restart(&mut self, plan: Plan) {
        self.iter = None;
        self.pending.clear();
        self.started = false;
        self.plan = plan;
    }

    fn start(&mut self, dir: Direction) {
        self.started = true;
        self.dir = dir;
        let mut phases = if self.plan.nulls == Nulls::Include {
            let values = Plan {
                nulls: Nulls::Exclude,
                ..self.plan
            };
            let nulls = Plan {
                lo: Bound::Included(NULL_KEY),
                hi: Bound::Unbounded,
                nulls: Nulls::Only,
                empty: false,
            };
            match dir {
                Direction::Forward => vec![values, nulls],
                Direction::Backward => vec![nulls, values],
            }
        } else {
            vec![self.plan]
        };
        phases.reverse();
        self.pending = phases;
        self.next_phase();
    }

    fn next_phase(&mut self) -> bool {
        self.iter = None;
        let Some(phase) = self.pending.pop() else {
            return false;
        };
        self.phase = phase;
        // SAFETY: `ix` lives until Drop, which ends `iter` first.
        let ix: &'static Alex<PgStore> = unsafe { &*self.ix };
        self.iter = Some(ix.range(phase.lo, phase.hi, self.dir));
        true
    }

    /// The next wanted entry, or None at the end.
    fn next(&mut self, index: pg_sys::Relation) -> Option<(u64, alex::Tid)> {
        loop {
            let iter = self.iter.as_mut()?;
            for r in iter.by_ref() {
                let (key, tid) = r.unwrap_or_else(|e| super::raise(index, e));
                if self.phase.wants(key, tid) {
                    return Some((key, tid));
                }
            }
            if !self.next_phase() {
                return None;
            }
        }
    }
}

/// `scan->opaque`: a slot the scan's memory context drops if the scan ends
/// by ERROR; `amendscan` empties it at once, so scans begun per row (exclusion
/// constraints) do not pile up until the end of the statement.
type Slot = Option<ScanState>;

unsafe fn state<'a>(scan: pg_sys::IndexScanDesc) -> &'a mut ScanState {
    let slot = &mut *((*scan).opaque as *mut Slot);
    slot.as_mut().unwrap_or_else(|| {
        crate::error::error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "alex: scan used after it ended".into(),
        )
    })
}

#[pg_guard]
pub unsafe extern "C-unwind" fn ambeginscan(
    index: pg_sys::Relation,
    nkeys: i32,
    norderbys: i32,
) -> pg_sys::IndexScanDesc {
    let scan = pg_sys::RelationGetIndexScan(index, nkeys, norderbys);
    let slot: Slot = Some(ScanState::new(index));
    (*scan).opaque = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(slot)
        as *mut std::ffi::c_void;
    scan
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amrescan(
    scan: pg_sys::IndexScanDesc,
    keys: pg_sys::ScanKey,
    nkeys: i32,
    _orderbys: pg_sys::ScanKey,
    _norderbys: i32,
) {
    if !keys.is_null() && (*scan).numberOfKeys > 0 {
        std::ptr::copy(keys, (*scan).keyData, (*scan).numberOfKeys as usize);
    }
    let _ = nkeys; // equals numberOfKeys, which beginscan fixed
    let n = (*scan).numberOfKeys.max(0) as usize;
    let key_slice = if n == 0 {
        &[][..]
    } else {
        std::slice::from_raw_parts((*scan).keyData, n)
    };
    let st = state(scan);
    st.iter = None;
    st.remove_killed((*scan).indexRelation, (*scan).heapRelation);
    let plan = Plan::from_keys(st.kind, key_slice);
    st.restart(plan);
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amgettuple(
    scan: pg_sys::IndexScanDesc,
    direction: pg_sys::ScanDirection::Type,
) -> bool {
    let index = (*scan).indexRelation;
    let st = state(scan);
    if (*scan).kill_prior_tuple && st.killed.len() < MAX_KILLED {
        if let Some(last) = st.last {
            st.killed.push(last);
        }
    }
    if st.plan.empty {
        return false;
    }
    if !st.started {
        let dir = if direction == pg_sys::ScanDirection::BackwardScanDirection {
            Direction::Backward
        } else {
            Direction::Forward
        };
        st.start(dir);
    }
    let Some((key, tid)) = st.next(index) else {
        st.last = None;
        return false;
    };
    st.last = Some((key, tid));
    (*scan).xs_heaptid = heap_tid(tid);
    (*scan).xs_recheck = false;
    if (*scan).xs_want_itup {
        // The planner picks an index-only scan whenever no column is needed
        // (count(*)), even when amcanreturn is false: hand it a tuple, with
        // the value when it is exact.
        let value = if is_null_entry(key, tid) {
            None
        } else {
            st.kind.decode(key)
        };
        (*scan).xs_itup = st.index_tuple(index, value);
        (*scan).xs_itupdesc = (*index).rd_att;
    }
    true
}

/// Where the key's bytes sit in a one-column index tuple without NULLs: the
/// data starts at MAXALIGN(sizeof(IndexTupleData)), and the first column
/// needs no further alignment there.
const VALUE_OFFSET: usize = 8;

impl ScanState {
    /// The index tuple for `value` (None: NULL). Keys are pass-by-value
    /// (2, 4 or 8 bytes), so one formed tuple serves every value: its bytes
    /// are rewritten as `store_att_byval` would write them.
    unsafe fn index_tuple(
        &mut self,
        index: pg_sys::Relation,
        value: Option<pg_sys::Datum>,
    ) -> pg_sys::IndexTuple {
        let desc = (*index).rd_att;
        let form = |datum: pg_sys::Datum, isnull: bool| {
            let (mut d, mut n) = (datum, isnull);
            let old = pg_sys::MemoryContextSwitchTo(self.tuple_cxt);
            let t = pg_sys::index_form_tuple(desc, &mut d, &mut n);
            pg_sys::MemoryContextSwitchTo(old);
            t
        };
        let Some(v) = value else {
            if self.null_tuple.is_null() {
                self.null_tuple = form(pg_sys::Datum::from(0), true);
            }
            return self.null_tuple;
        };
        let attr = &*(*desc).attrs.as_ptr();
        let len = attr.attlen as usize;
        let reusable = attr.attbyval && matches!(len, 2 | 4 | 8);
        if !reusable {
            return form(v, false); // (not reached for alex's key types)
        }
        if self.value_tuple.is_null() {
            let t = form(v, false);
            let size = ((*t).t_info as u32 & pg_sys::INDEX_SIZE_MASK) as usize;
            if (*t).t_info as u32 & pg_sys::INDEX_NULL_MASK != 0 || size < VALUE_OFFSET + len {
                return t;
            }
            self.value_tuple = t;
        }
        let dst = (self.value_tuple as *mut u8).add(VALUE_OFFSET);
        let word = v.value() as u64;
        match len {
            8 => std::ptr::copy_nonoverlapping(word.to_ne_bytes().as_ptr(), dst, 8),
            4 => std::ptr::copy_nonoverlapping((word as u32).to_ne_bytes().as_ptr(), dst, 4),
            _ => std::ptr::copy_nonoverlapping((word as u16).to_ne_bytes().as_ptr(), dst, 2),
        }
        self.value_tuple
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amgetbitmap(
    scan: pg_sys::IndexScanDesc,
    tbm: *mut pg_sys::TIDBitmap,
) -> i64 {
    let index = (*scan).indexRelation;
    let st = state(scan);
    if st.plan.empty {
        return 0;
    }
    st.start(Direction::Forward);
    let mut n = 0i64;
    while let Some((_, tid)) = st.next(index) {
        let mut t = heap_tid(tid);
        pg_sys::tbm_add_tuples(tbm, &mut t, 1, false);
        n += 1;
        if n % 4096 == 0 {
            pgrx::check_for_interrupts!();
        }
    }
    n
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amendscan(scan: pg_sys::IndexScanDesc) {
    let slot = &mut *((*scan).opaque as *mut Slot);
    if let Some(st) = slot.as_mut() {
        st.iter = None;
        (*st.ix).store().release_pin();
        st.remove_killed((*scan).indexRelation, (*scan).heapRelation);
    }
    *slot = None;
}

/// Index-only scans return the key itself: exact for integer and date/time
/// keys, not for floats (-0 and 0 share a key). The VACUUM interlock (see
/// storage.rs) keeps copied entries valid on a primary. A hot standby keeps
/// it only while replaying VACUUM's records with cleanup locks: records of
/// our resource manager, which this standby must be able to replay and the
/// index's metapage must say its VACUUM writes (wal.rs); otherwise (GenericXLog
/// redo takes plain exclusive locks) index-only scans are not offered there.
#[pg_guard]
pub unsafe extern "C-unwind" fn amcanreturn(index: pg_sys::Relation, _attno: i32) -> bool {
    if KeyType::of_index(index).decode(0).is_none() {
        return false;
    }
    if !pg_sys::RecoveryInProgress() {
        return true;
    }
    super::wal::available()
        && super::open(index)
            .meta()
            .is_ok_and(|m| m.flags & super::wal::FLAG_CLEANUP_REDO != 0)
}
