//! The access method's routine table and its SQL objects: the handler, the
//! access method, and btree-like operator families and classes.

use pgrx::pg_sys;
use pgrx::prelude::*;

/// Build-phase numbers shown in pg_stat_progress_create_index.subphase;
/// 1 is PostgreSQL's "initializing".
pub const PHASE_SCAN: i64 = 2;
pub const PHASE_SORT: i64 = 3;
pub const PHASE_LOAD: i64 = 4;
pub const PHASE_WRITE: i64 = 5;

#[pg_extern(sql = "
CREATE FUNCTION omendb.alex_handler(pg_catalog.internal) RETURNS pg_catalog.index_am_handler
    PARALLEL SAFE IMMUTABLE STRICT LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
")]
fn alex_handler(_fcinfo: pg_sys::FunctionCallInfo) -> PgBox<pg_sys::IndexAmRoutine> {
    // SAFETY: a zeroed node of the right tag, filled in below.
    let mut am =
        unsafe { PgBox::<pg_sys::IndexAmRoutine>::alloc_node(pg_sys::NodeTag::T_IndexAmRoutine) };
    am.amstrategies = 5; // btree's: < <= = >= >
    am.amsupport = 1; // the btree comparison function (documentation; keys are compared in Rust)
    am.amoptsprocnum = 0;
    am.amcanorder = true;
    am.amcanorderbyop = false;
    am.amcanbackward = false; // scans run in one direction; cursors that turn around get a Materialize
    am.amcanunique = true; // checked per key in unique.rs
    am.amcanmulticol = false;
    am.amoptionalkey = true;
    am.amsearcharray = false; // = ANY(array) is served by bitmap scans
    am.amsearchnulls = true;
    am.amstorage = false;
    am.amclusterable = false;
    am.ampredlocks = false; // serializable transactions lock the whole index
    am.amcanparallel = false;
    am.amcaninclude = false;
    am.amusemaintenanceworkmem = false;
    am.amparallelvacuumoptions = pg_sys::VACUUM_OPTION_NO_PARALLEL as u8;
    am.amkeytype = pg_sys::InvalidOid;

    am.ambuild = Some(super::build::ambuild);
    am.ambuildempty = Some(super::build::ambuildempty);
    am.aminsert = Some(super::insert::aminsert);
    am.ambulkdelete = Some(super::vacuum::ambulkdelete);
    am.amvacuumcleanup = Some(super::vacuum::amvacuumcleanup);
    am.amcanreturn = Some(super::scan::amcanreturn);
    am.amcostestimate = Some(super::cost::amcostestimate);
    am.amoptions = Some(amoptions);
    am.amproperty = None; // PostgreSQL's answers from the flags above are right
    am.ambuildphasename = Some(ambuildphasename);
    am.amvalidate = Some(amvalidate);
    am.amadjustmembers = None; // optional; no member rules beyond amvalidate's
    am.ambeginscan = Some(super::scan::ambeginscan);
    am.amrescan = Some(super::scan::amrescan);
    am.amgettuple = Some(super::scan::amgettuple);
    am.amgetbitmap = Some(super::scan::amgetbitmap);
    am.amendscan = Some(super::scan::amendscan);
    am.ammarkpos = None; // merge joins put a Materialize above alex scans
    am.amrestrpos = None;
    am.amestimateparallelscan = None; // amcanparallel = false
    am.aminitparallelscan = None;
    am.amparallelrescan = None;
    am.into_pg_boxed()
}

/// alex indexes take no storage parameters; say so instead of ignoring them.
#[pg_guard]
unsafe extern "C-unwind" fn amoptions(
    reloptions: pg_sys::Datum,
    validate: bool,
) -> *mut pg_sys::bytea {
    if validate && !reloptions.is_null() {
        crate::error::error_with_hint(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "alex indexes take no storage parameters".into(),
            "Remove the WITH (...) clause.".into(),
        );
    }
    std::ptr::null_mut()
}

#[pg_guard]
unsafe extern "C-unwind" fn ambuildphasename(phase: i64) -> *mut std::ffi::c_char {
    let name: &std::ffi::CStr = match phase {
        1 => c"initializing",
        PHASE_SCAN => c"scanning table",
        PHASE_SORT => c"sorting keys",
        PHASE_LOAD => c"bulk loading the learned index",
        PHASE_WRITE => c"writing pages",
        _ => return std::ptr::null_mut(),
    };
    name.as_ptr() as *mut _
}

/// Operator classes are created by the extension script only; accept them.
#[pg_guard]
unsafe extern "C-unwind" fn amvalidate(_opclassoid: pg_sys::Oid) -> bool {
    true
}

extension_sql!(
    r#"
CREATE ACCESS METHOD alex TYPE INDEX HANDLER omendb.alex_handler;
COMMENT ON ACCESS METHOD alex IS 'omendb learned index (ALEX): linear models over gapped arrays in PostgreSQL pages';

-- Integers: one family, so int8 columns use the index with int4 constants.
CREATE OPERATOR FAMILY omendb.alex_integer_ops USING alex;
CREATE OPERATOR CLASS omendb.alex_int8_ops DEFAULT FOR TYPE pg_catalog.int8 USING alex FAMILY omendb.alex_integer_ops AS
    OPERATOR 1 pg_catalog.<, OPERATOR 2 pg_catalog.<=, OPERATOR 3 pg_catalog.=, OPERATOR 4 pg_catalog.>=, OPERATOR 5 pg_catalog.>,
    FUNCTION 1 pg_catalog.btint8cmp(pg_catalog.int8, pg_catalog.int8);
CREATE OPERATOR CLASS omendb.alex_int4_ops DEFAULT FOR TYPE pg_catalog.int4 USING alex FAMILY omendb.alex_integer_ops AS
    OPERATOR 1 pg_catalog.<, OPERATOR 2 pg_catalog.<=, OPERATOR 3 pg_catalog.=, OPERATOR 4 pg_catalog.>=, OPERATOR 5 pg_catalog.>,
    FUNCTION 1 pg_catalog.btint4cmp(pg_catalog.int4, pg_catalog.int4);
CREATE OPERATOR CLASS omendb.alex_int2_ops DEFAULT FOR TYPE pg_catalog.int2 USING alex FAMILY omendb.alex_integer_ops AS
    OPERATOR 1 pg_catalog.<, OPERATOR 2 pg_catalog.<=, OPERATOR 3 pg_catalog.=, OPERATOR 4 pg_catalog.>=, OPERATOR 5 pg_catalog.>,
    FUNCTION 1 pg_catalog.btint2cmp(pg_catalog.int2, pg_catalog.int2);
ALTER OPERATOR FAMILY omendb.alex_integer_ops USING alex ADD
    OPERATOR 1 pg_catalog.< (pg_catalog.int8, pg_catalog.int4), OPERATOR 2 pg_catalog.<= (pg_catalog.int8, pg_catalog.int4), OPERATOR 3 pg_catalog.= (pg_catalog.int8, pg_catalog.int4),
    OPERATOR 4 pg_catalog.>= (pg_catalog.int8, pg_catalog.int4), OPERATOR 5 pg_catalog.> (pg_catalog.int8, pg_catalog.int4),
    FUNCTION 1 (pg_catalog.int8, pg_catalog.int4) pg_catalog.btint84cmp(pg_catalog.int8, pg_catalog.int4),
    OPERATOR 1 pg_catalog.< (pg_catalog.int8, pg_catalog.int2), OPERATOR 2 pg_catalog.<= (pg_catalog.int8, pg_catalog.int2), OPERATOR 3 pg_catalog.= (pg_catalog.int8, pg_catalog.int2),
    OPERATOR 4 pg_catalog.>= (pg_catalog.int8, pg_catalog.int2), OPERATOR 5 pg_catalog.> (pg_catalog.int8, pg_catalog.int2),
    FUNCTION 1 (pg_catalog.int8, pg_catalog.int2) pg_catalog.btint82cmp(pg_catalog.int8, pg_catalog.int2),
    OPERATOR 1 pg_catalog.< (pg_catalog.int4, pg_catalog.int8), OPERATOR 2 pg_catalog.<= (pg_catalog.int4, pg_catalog.int8), OPERATOR 3 pg_catalog.= (pg_catalog.int4, pg_catalog.int8),
    OPERATOR 4 pg_catalog.>= (pg_catalog.int4, pg_catalog.int8), OPERATOR 5 pg_catalog.> (pg_catalog.int4, pg_catalog.int8),
    FUNCTION 1 (pg_catalog.int4, pg_catalog.int8) pg_catalog.btint48cmp(pg_catalog.int4, pg_catalog.int8),
    OPERATOR 1 pg_catalog.< (pg_catalog.int4, pg_catalog.int2), OPERATOR 2 pg_catalog.<= (pg_catalog.int4, pg_catalog.int2), OPERATOR 3 pg_catalog.= (pg_catalog.int4, pg_catalog.int2),
    OPERATOR 4 pg_catalog.>= (pg_catalog.int4, pg_catalog.int2), OPERATOR 5 pg_catalog.> (pg_catalog.int4, pg_catalog.int2),
    FUNCTION 1 (pg_catalog.int4, pg_catalog.int2) pg_catalog.btint42cmp(pg_catalog.int4, pg_catalog.int2),
    OPERATOR 1 pg_catalog.< (pg_catalog.int2, pg_catalog.int8), OPERATOR 2 pg_catalog.<= (pg_catalog.int2, pg_catalog.int8), OPERATOR 3 pg_catalog.= (pg_catalog.int2, pg_catalog.int8),
    OPERATOR 4 pg_catalog.>= (pg_catalog.int2, pg_catalog.int8), OPERATOR 5 pg_catalog.> (pg_catalog.int2, pg_catalog.int8),
    FUNCTION 1 (pg_catalog.int2, pg_catalog.int8) pg_catalog.btint28cmp(pg_catalog.int2, pg_catalog.int8),
    OPERATOR 1 pg_catalog.< (pg_catalog.int2, pg_catalog.int4), OPERATOR 2 pg_catalog.<= (pg_catalog.int2, pg_catalog.int4), OPERATOR 3 pg_catalog.= (pg_catalog.int2, pg_catalog.int4),
    OPERATOR 4 pg_catalog.>= (pg_catalog.int2, pg_catalog.int4), OPERATOR 5 pg_catalog.> (pg_catalog.int2, pg_catalog.int4),
    FUNCTION 1 (pg_catalog.int2, pg_catalog.int4) pg_catalog.btint24cmp(pg_catalog.int2, pg_catalog.int4);

-- Floats: one family (float4 widens to float8 exactly). NaN sorts above
-- everything and -0 equals 0, as in PostgreSQL.
CREATE OPERATOR FAMILY omendb.alex_float_ops USING alex;
CREATE OPERATOR CLASS omendb.alex_float8_ops DEFAULT FOR TYPE pg_catalog.float8 USING alex FAMILY omendb.alex_float_ops AS
    OPERATOR 1 pg_catalog.<, OPERATOR 2 pg_catalog.<=, OPERATOR 3 pg_catalog.=, OPERATOR 4 pg_catalog.>=, OPERATOR 5 pg_catalog.>,
    FUNCTION 1 pg_catalog.btfloat8cmp(pg_catalog.float8, pg_catalog.float8);
CREATE OPERATOR CLASS omendb.alex_float4_ops DEFAULT FOR TYPE pg_catalog.float4 USING alex FAMILY omendb.alex_float_ops AS
    OPERATOR 1 pg_catalog.<, OPERATOR 2 pg_catalog.<=, OPERATOR 3 pg_catalog.=, OPERATOR 4 pg_catalog.>=, OPERATOR 5 pg_catalog.>,
    FUNCTION 1 pg_catalog.btfloat4cmp(pg_catalog.float4, pg_catalog.float4);
ALTER OPERATOR FAMILY omendb.alex_float_ops USING alex ADD
    OPERATOR 1 pg_catalog.< (pg_catalog.float8, pg_catalog.float4), OPERATOR 2 pg_catalog.<= (pg_catalog.float8, pg_catalog.float4), OPERATOR 3 pg_catalog.= (pg_catalog.float8, pg_catalog.float4),
    OPERATOR 4 pg_catalog.>= (pg_catalog.float8, pg_catalog.float4), OPERATOR 5 pg_catalog.> (pg_catalog.float8, pg_catalog.float4),
    FUNCTION 1 (pg_catalog.float8, pg_catalog.float4) pg_catalog.btfloat84cmp(pg_catalog.float8, pg_catalog.float4),
    OPERATOR 1 pg_catalog.< (pg_catalog.float4, pg_catalog.float8), OPERATOR 2 pg_catalog.<= (pg_catalog.float4, pg_catalog.float8), OPERATOR 3 pg_catalog.= (pg_catalog.float4, pg_catalog.float8),
    OPERATOR 4 pg_catalog.>= (pg_catalog.float4, pg_catalog.float8), OPERATOR 5 pg_catalog.> (pg_catalog.float4, pg_catalog.float8),
    FUNCTION 1 (pg_catalog.float4, pg_catalog.float8) pg_catalog.btfloat48cmp(pg_catalog.float4, pg_catalog.float8);

CREATE OPERATOR FAMILY omendb.alex_date_ops USING alex;
CREATE OPERATOR CLASS omendb.alex_date_ops DEFAULT FOR TYPE pg_catalog.date USING alex FAMILY omendb.alex_date_ops AS
    OPERATOR 1 pg_catalog.<, OPERATOR 2 pg_catalog.<=, OPERATOR 3 pg_catalog.=, OPERATOR 4 pg_catalog.>=, OPERATOR 5 pg_catalog.>,
    FUNCTION 1 pg_catalog.date_cmp(pg_catalog.date, pg_catalog.date);

CREATE OPERATOR FAMILY omendb.alex_timestamp_ops USING alex;
CREATE OPERATOR CLASS omendb.alex_timestamp_ops DEFAULT FOR TYPE pg_catalog.timestamp USING alex FAMILY omendb.alex_timestamp_ops AS
    OPERATOR 1 pg_catalog.<, OPERATOR 2 pg_catalog.<=, OPERATOR 3 pg_catalog.=, OPERATOR 4 pg_catalog.>=, OPERATOR 5 pg_catalog.>,
    FUNCTION 1 pg_catalog.timestamp_cmp(pg_catalog.timestamp, pg_catalog.timestamp);

CREATE OPERATOR FAMILY omendb.alex_timestamptz_ops USING alex;
CREATE OPERATOR CLASS omendb.alex_timestamptz_ops DEFAULT FOR TYPE pg_catalog.timestamptz USING alex FAMILY omendb.alex_timestamptz_ops AS
    OPERATOR 1 pg_catalog.<, OPERATOR 2 pg_catalog.<=, OPERATOR 3 pg_catalog.=, OPERATOR 4 pg_catalog.>=, OPERATOR 5 pg_catalog.>,
    FUNCTION 1 pg_catalog.timestamptz_cmp(pg_catalog.timestamptz, pg_catalog.timestamptz);

-- Every other type: a catch-all default class whose build fails with an error
-- that lists the supported types (instead of "no default operator class").
CREATE OPERATOR CLASS omendb.alex_unsupported_ops DEFAULT FOR TYPE pg_catalog.anyelement USING alex AS
    STORAGE pg_catalog.anyelement;
"#,
    name = "alex_access_method",
    requires = [alex_handler]
);
