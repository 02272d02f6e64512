//! PostgreSQL expression trees -> DataFusion expressions, resolved by the
//! OIDs (and names) of PostgreSQL's functions and operators. Anything not
//! on this list is [`Unsupported`], and the query stays in PostgreSQL.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::expr::{Case, Like};
use datafusion::logical_expr::{
    binary_expr, cast, exists, in_subquery, not_exists, not_in_subquery, scalar_subquery, Expr,
    ExprSchemable, Operator,
};
use pgrx::pg_sys;
use pgrx::PgList;

use super::functions::{self as f, Arith, Cmp};
use super::translate::{Translator, Unsupported, R};
use super::types::{type_name, Pg};

/// A translated expression and the PostgreSQL type it computes.
#[derive(Clone)]
pub struct TExpr {
    pub e: Expr,
    pub pg: Pg,
}

/// Where the expression is evaluated: the query levels (innermost last),
/// the input schema, and after aggregation the names of grouped values.
pub struct Ctx<'a> {
    pub levels: &'a [super::translate::Level],
    pub schema: &'a DFSchema,
    pub agg: Option<&'a AggMap>,
}

/// After GROUP BY: expressions equal to a grouping expression or an
/// aggregate read the aggregate node's output column of that name.
pub struct AggMap {
    pub groups: Vec<(*mut pg_sys::Node, String, Pg)>,
    pub aggs: Vec<(*mut pg_sys::Aggref, TExpr)>,
}

pub fn unsupported<T>(what: impl Into<String>) -> R<T> {
    Err(Unsupported(what.into()))
}

/// Range-table entry `rti` (1-based) of `q`.
pub(super) unsafe fn rt_fetch(q: *mut pg_sys::Query, rti: u32) -> *mut pg_sys::RangeTblEntry {
    // SAFETY: rti indexes the query's range table.
    unsafe { list::<pg_sys::RangeTblEntry>((*q).rtable)[rti as usize - 1] }
}

pub unsafe fn list<T>(l: *mut pg_sys::List) -> Vec<*mut T> {
    // SAFETY: a PostgreSQL pointer list (or NIL).
    unsafe { PgList::<T>::from_pg(l).iter_ptr().collect() }
}

fn is(node: *mut pg_sys::Node, tag: pg_sys::NodeTag) -> bool {
    // SAFETY: a valid node.
    !node.is_null() && unsafe { (*node).type_ } == tag
}

pub fn func_name(oid: pg_sys::Oid) -> String {
    // SAFETY: syscache lookup; NULL for a missing function.
    unsafe {
        let p = pg_sys::get_func_name(oid);
        if p.is_null() {
            return format!("function {}", oid.to_u32());
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

unsafe extern "C-unwind" {
    fn lc_collate_is_c(collation: pg_sys::Oid) -> bool;
}

/// Whether text comparisons under `collid` are byte order (C / POSIX, or
/// the database default when that is C).
pub fn c_collation(collid: pg_sys::Oid) -> bool {
    // SAFETY: collation lookups of PostgreSQL's own.
    unsafe {
        collid == pg_sys::InvalidOid
            || collid == pg_sys::C_COLLATION_OID
            || collid == pg_sys::POSIX_COLLATION_OID
            // Guarded: it can raise an ERROR (a dropped collation), and
            // callers hold Rust values that must be dropped.
            || pg_sys::ffi::pg_guard_ffi_boundary(|| lc_collate_is_c(collid))
            || (collid == pg_sys::DEFAULT_COLLATION_OID && default_is_c_utf8())
    }
}

/// Whether case mapping is ASCII-only: LC_CTYPE C or POSIX.
fn ctype_is_c() -> bool {
    // SAFETY: reading a GUC by name.
    let v = unsafe { pg_sys::GetConfigOption(c"lc_ctype".as_ptr(), true, false) };
    // SAFETY: GetConfigOption returns a NUL-terminated string or NULL.
    !v.is_null()
        && matches!(
            unsafe { std::ffi::CStr::from_ptr(v) }.to_bytes(),
            b"C" | b"POSIX"
        )
}

/// Whether the database's collation is C.UTF-8, whose order is code point
/// order, which for UTF-8 is byte order.
fn default_is_c_utf8() -> bool {
    // SAFETY: reading a GUC by name.
    let v = unsafe { pg_sys::GetConfigOption(c"lc_collate".as_ptr(), true, false) };
    if v.is_null() {
        return false;
    }
    // SAFETY: GetConfigOption returns a NUL-terminated string.
    let s = unsafe { std::ffi::CStr::from_ptr(v) }
        .to_string_lossy()
        .to_ascii_lowercase();
    s == "c.utf-8" || s == "c.utf8"
}

fn numeric_of(e: &Expr, schema: &DFSchema) -> R<Pg> {
    match e.get_type(schema)? {
        DataType::Decimal128(p, s) => Ok(Pg::Numeric {
            precision: p,
            scale: s,
        }),
        t => unsupported(format!("numeric computed as {t}")),
    }
}

/// Cast an integer or numeric expression to numeric.
fn to_numeric(x: TExpr) -> R<TExpr> {
    let (p, s) = match x.pg {
        Pg::Numeric { .. } | Pg::DynNumeric | Pg::MixedNumeric(_) => return Ok(x),
        Pg::Int2 => (5, 0),
        Pg::Int4 => (10, 0),
        Pg::Int8 => (19, 0),
        t => return unsupported(format!("{t:?} as numeric")),
    };
    Ok(TExpr {
        e: cast(x.e, DataType::Decimal128(p, s)),
        pg: Pg::Numeric {
            precision: p,
            scale: s,
        },
    })
}

fn widen_int(x: TExpr, to: Pg) -> TExpr {
    if x.pg == to {
        x
    } else {
        TExpr {
            e: cast(x.e, to.arrow()),
            pg: to,
        }
    }
}

fn int_rank(p: Pg) -> u8 {
    match p {
        Pg::Int2 => 1,
        Pg::Int4 => 2,
        _ => 3,
    }
}

fn cmp_op(c: Cmp) -> Operator {
    match c {
        Cmp::Eq => Operator::Eq,
        Cmp::Ne => Operator::NotEq,
        Cmp::Lt => Operator::Lt,
        Cmp::Le => Operator::LtEq,
        Cmp::Gt => Operator::Gt,
        Cmp::Ge => Operator::GtEq,
    }
}

/// Type stems of PostgreSQL's built-in comparison and arithmetic functions
/// (int4lt, int48pl, float8div, numeric_add, text_lt, bpchareq, date_le_timestamp…).
const STEMS: [&str; 16] = [
    "int2",
    "int4",
    "int8",
    "int24",
    "int42",
    "int28",
    "int82",
    "int48",
    "int84",
    "float4",
    "float8",
    "float48",
    "float84",
    "numeric",
    "date",
    "timestamp",
];

/// `name` is `stem` + optional `_` + `op`, for one of the built-in stems.
fn stem_op<'a>(name: &str, ops: &[&'a str]) -> Option<&'a str> {
    let texts = ["text", "bpchar", "bool"];
    for stem in STEMS.iter().chain(texts.iter()) {
        if let Some(rest) = name.strip_prefix(stem) {
            let rest = rest.strip_prefix('_').unwrap_or(rest);
            if let Some(op) = ops.iter().find(|op| **op == rest) {
                return Some(op);
            }
        }
    }
    None
}

/// The comparison a built-in comparison function computes, by its name.
fn comparison(name: &str) -> Option<Cmp> {
    const OPS: [&str; 6] = ["eq", "ne", "lt", "le", "gt", "ge"];
    // date_eq_timestamp, timestamp_lt_date: the operator sits in the middle.
    let cross = ["date_", "timestamp_"].iter().find_map(|p| {
        let rest = name.strip_prefix(p)?;
        let (op, other) = rest.split_once('_')?;
        (["date", "timestamp"].contains(&other) && OPS.contains(&op)).then_some(op)
    });
    let op = cross.or_else(|| stem_op(name, &OPS))?;
    Some(match op {
        "eq" => Cmp::Eq,
        "ne" => Cmp::Ne,
        "lt" => Cmp::Lt,
        "le" => Cmp::Le,
        "gt" => Cmp::Gt,
        _ => Cmp::Ge,
    })
}

/// The arithmetic a built-in arithmetic function computes, by its name.
fn arithmetic(name: &str) -> Option<Arith> {
    let op = match name {
        "numeric_add" | "date_pli" => return Some(Arith::Add),
        "numeric_sub" | "date_mii" | "date_mi" => return Some(Arith::Sub),
        "numeric_mul" => return Some(Arith::Mul),
        "numeric_div" => return Some(Arith::Div),
        "numeric_mod" => return Some(Arith::Mod),
        n => STEMS[..13].iter().find_map(|stem| {
            let rest = n.strip_prefix(stem)?;
            ["pl", "mi", "mul", "div", "mod"]
                .into_iter()
                .find(|op| *op == rest)
        })?,
    };
    Some(match op {
        "pl" => Arith::Add,
        "mi" => Arith::Sub,
        "mul" => Arith::Mul,
        "div" => Arith::Div,
        _ => Arith::Mod,
    })
}

/// Whether function `oid` is one of PostgreSQL's own (pg_catalog): names
/// of user functions in other schemas must not be taken for built-ins.
pub fn builtin(oid: pg_sys::Oid) -> bool {
    // SAFETY: syscache lookup.
    unsafe { pg_sys::get_func_namespace(oid) == pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE) }
}

const USECS_PER_DAY: i64 = 86_400_000_000;

impl Translator {
    /// Translate `node` in `cx`.
    pub unsafe fn expr(&mut self, node: *mut pg_sys::Node, cx: &Ctx) -> R<TExpr> {
        // SAFETY: nodes of the query tree being translated.
        unsafe {
            if let Some(agg) = cx.agg {
                for (g, name, pg) in &agg.groups {
                    if pg_sys::equal(node as *const _, *g as *const _) {
                        return Ok(TExpr {
                            e: Expr::Column(Column::from_name(name)),
                            pg: *pg,
                        });
                    }
                }
                if is(node, pg_sys::NodeTag::T_Aggref) {
                    for (a, t) in &agg.aggs {
                        if pg_sys::equal(node as *const _, *a as *const _) {
                            return Ok(t.clone());
                        }
                    }
                    return unsupported("an aggregate the translator did not collect");
                }
            }
            let tag = (*node).type_;
            match tag {
                pg_sys::NodeTag::T_Var => self.var(node as *mut pg_sys::Var, cx),
                pg_sys::NodeTag::T_Const => self.constant(node as *mut pg_sys::Const),
                pg_sys::NodeTag::T_Param => self.param(node as *mut pg_sys::Param),
                pg_sys::NodeTag::T_RelabelType => {
                    let r = node as *mut pg_sys::RelabelType;
                    let x = self.expr((*r).arg as *mut pg_sys::Node, cx)?;
                    let to = Pg::of((*r).resulttype, (*r).resulttypmod).map_err(Unsupported)?;
                    // Binary-compatible: varchar -> text and the like.
                    if matches!(to, Pg::BpChar(_)) && !matches!(x.pg, Pg::BpChar(_)) {
                        // A text value as char keeps its trailing blanks.
                        unsupported("text relabeled as char(n)")
                    } else if x.pg.arrow() == to.arrow() || (x.pg.is_text() && to.is_text()) {
                        Ok(TExpr { e: x.e, pg: to })
                    } else {
                        unsupported(format!(
                            "relabeling {:?} as {}",
                            x.pg,
                            type_name((*r).resulttype)
                        ))
                    }
                }
                pg_sys::NodeTag::T_OpExpr => {
                    let op = node as *mut pg_sys::OpExpr;
                    let func = pg_sys::get_opcode((*op).opno);
                    let args = list::<pg_sys::Node>((*op).args);
                    self.call(func, &args, (*op).opresulttype, (*op).inputcollid, cx)
                }
                pg_sys::NodeTag::T_FuncExpr => {
                    let fe = node as *mut pg_sys::FuncExpr;
                    if (*fe).funcretset {
                        return unsupported("a set-returning function");
                    }
                    let args = list::<pg_sys::Node>((*fe).args);
                    self.call(
                        (*fe).funcid,
                        &args,
                        (*fe).funcresulttype,
                        (*fe).inputcollid,
                        cx,
                    )
                }
                pg_sys::NodeTag::T_BoolExpr => {
                    let b = node as *mut pg_sys::BoolExpr;
                    let args = list::<pg_sys::Node>((*b).args);
                    if (*b).boolop == pg_sys::BoolExprType::NOT_EXPR {
                        let a = args[0];
                        if is(a, pg_sys::NodeTag::T_SubLink) {
                            return self.sublink(a as *mut pg_sys::SubLink, true, cx);
                        }
                        let x = self.expr(a, cx)?;
                        return Ok(TExpr {
                            e: Expr::Not(Box::new(x.e)),
                            pg: Pg::Bool,
                        });
                    }
                    let op = if (*b).boolop == pg_sys::BoolExprType::AND_EXPR {
                        Operator::And
                    } else {
                        Operator::Or
                    };
                    let mut xs = Vec::with_capacity(args.len());
                    for a in args {
                        xs.push(self.expr(a, cx)?.e);
                    }
                    Ok(TExpr {
                        e: balanced(xs, op),
                        pg: Pg::Bool,
                    })
                }
                pg_sys::NodeTag::T_NullTest => {
                    let t = node as *mut pg_sys::NullTest;
                    if (*t).argisrow {
                        return unsupported("IS NULL on a row");
                    }
                    let x = self.expr((*t).arg as *mut pg_sys::Node, cx)?;
                    let e = if (*t).nulltesttype == pg_sys::NullTestType::IS_NULL {
                        Expr::IsNull(Box::new(x.e))
                    } else {
                        Expr::IsNotNull(Box::new(x.e))
                    };
                    Ok(TExpr { e, pg: Pg::Bool })
                }
                pg_sys::NodeTag::T_BooleanTest => {
                    let t = node as *mut pg_sys::BooleanTest;
                    let x = Box::new(self.expr((*t).arg as *mut pg_sys::Node, cx)?.e);
                    use pg_sys::BoolTestType::*;
                    let e = match (*t).booltesttype {
                        IS_TRUE => Expr::IsTrue(x),
                        IS_NOT_TRUE => Expr::IsNotTrue(x),
                        IS_FALSE => Expr::IsFalse(x),
                        IS_NOT_FALSE => Expr::IsNotFalse(x),
                        IS_UNKNOWN => Expr::IsUnknown(x),
                        _ => Expr::IsNotUnknown(x),
                    };
                    Ok(TExpr { e, pg: Pg::Bool })
                }
                pg_sys::NodeTag::T_CaseExpr => self.case(node as *mut pg_sys::CaseExpr, cx),
                pg_sys::NodeTag::T_CaseTestExpr => match &self.case_test {
                    Some(x) => Ok(x.clone()),
                    None => unsupported("CASE test value outside CASE"),
                },
                pg_sys::NodeTag::T_CoalesceExpr => {
                    let c = node as *mut pg_sys::CoalesceExpr;
                    let args = self.same_type_args(&list((*c).args), (*c).coalescetype, cx)?;
                    let pg = args[0].pg;
                    let e = datafusion::functions::core::expr_fn::coalesce(
                        args.into_iter().map(|a| a.e).collect(),
                    );
                    Ok(TExpr { e, pg })
                }
                pg_sys::NodeTag::T_MinMaxExpr => {
                    let m = node as *mut pg_sys::MinMaxExpr;
                    if !c_collation((*m).inputcollid) {
                        return unsupported("GREATEST/LEAST under a non-C collation");
                    }
                    let args = self.same_type_args(&list((*m).args), (*m).minmaxtype, cx)?;
                    if args[0].pg.is_float() || args[0].pg.is_dyn() {
                        return unsupported(
                            "GREATEST/LEAST of floats or of numerics of several scales",
                        );
                    }
                    let pg = args[0].pg;
                    let es = args.into_iter().map(|a| a.e).collect();
                    let e = if (*m).op == pg_sys::MinMaxOp::IS_GREATEST {
                        datafusion::functions::core::expr_fn::greatest(es)
                    } else {
                        datafusion::functions::core::expr_fn::least(es)
                    };
                    Ok(TExpr { e, pg })
                }
                pg_sys::NodeTag::T_NullIfExpr => {
                    let n = node as *mut pg_sys::OpExpr;
                    let args = list::<pg_sys::Node>((*n).args);
                    let a = self.expr(args[0], cx)?;
                    let eq = self.call(
                        pg_sys::get_opcode((*n).opno),
                        &args,
                        pg_sys::BOOLOID,
                        (*n).inputcollid,
                        cx,
                    )?;
                    let null = ScalarValue::try_from(&a.pg.arrow())?;
                    let e = Expr::Case(Case::new(
                        None,
                        vec![(Box::new(eq.e), Box::new(Expr::Literal(null, None)))],
                        Some(Box::new(a.e)),
                    ));
                    Ok(TExpr { e, pg: a.pg })
                }
                pg_sys::NodeTag::T_ScalarArrayOpExpr => {
                    self.array_op(node as *mut pg_sys::ScalarArrayOpExpr, cx)
                }
                pg_sys::NodeTag::T_SubLink => self.sublink(node as *mut pg_sys::SubLink, false, cx),
                pg_sys::NodeTag::T_Aggref => {
                    unsupported("an aggregate outside an aggregating query level")
                }
                pg_sys::NodeTag::T_WindowFunc => unsupported("window functions"),
                t => unsupported(format!("expression node {t:?}")),
            }
        }
    }

    unsafe fn same_type_args(
        &mut self,
        args: &[*mut pg_sys::Node],
        ty: pg_sys::Oid,
        cx: &Ctx,
    ) -> R<Vec<TExpr>> {
        let mut out = Vec::new();
        for &a in args {
            // SAFETY: argument nodes.
            out.push(unsafe { self.expr(a, cx)? });
        }
        if ty == pg_sys::NUMERICOID {
            out = out.into_iter().map(to_numeric).collect::<R<_>>()?;
            out = mixed_numerics(out)?;
        }
        same_bpchar(&out)?;
        Ok(out)
    }

    unsafe fn var(&mut self, v: *mut pg_sys::Var, cx: &Ctx) -> R<TExpr> {
        // SAFETY: a Var of the query.
        unsafe {
            let up = (*v).varlevelsup as usize;
            if up >= cx.levels.len() {
                return unsupported("a reference to a query level outside the translated query");
            }
            let level = &cx.levels[cx.levels.len() - 1 - up];
            let (col, pg) = level.column((*v).varno as u32, (*v).varattno, self)?;
            match col {
                super::translate::ColumnRef::Column(c, pg) => {
                    if up == 0 {
                        Ok(TExpr {
                            e: Expr::Column(c),
                            pg,
                        })
                    } else {
                        let field = Arc::new(datafusion::arrow::datatypes::Field::new(
                            c.name.clone(),
                            pg.arrow(),
                            true,
                        ));
                        Ok(TExpr {
                            e: Expr::OuterReferenceColumn(field, c),
                            pg,
                        })
                    }
                }
                super::translate::ColumnRef::Expr(node) => {
                    // A join alias: translate the expression it stands for,
                    // in its own level.
                    let sub = Ctx {
                        levels: &cx.levels[..cx.levels.len() - up],
                        schema: cx.schema,
                        agg: if up == 0 { cx.agg } else { None },
                    };
                    let _ = pg;
                    self.expr(node, &sub)
                }
            }
        }
    }

    unsafe fn constant(&mut self, c: *mut pg_sys::Const) -> R<TExpr> {
        // SAFETY: a Const node.
        unsafe {
            literal(
                (*c).constvalue,
                (*c).constisnull,
                (*c).consttype,
                (*c).consttypmod,
                "constant",
            )
        }
    }

    unsafe fn param(&mut self, p: *mut pg_sys::Param) -> R<TExpr> {
        // SAFETY: a Param node; the parameter list is the statement's.
        unsafe {
            if (*p).paramkind != pg_sys::ParamKind::PARAM_EXTERN {
                return unsupported("an executor parameter");
            }
            let ty = (*p).paramtype;
            let (value, isnull) = self.param_value((*p).paramid, ty)?;
            literal(value, isnull, ty, (*p).paramtypmod, "parameter")
        }
    }

    unsafe fn case(&mut self, c: *mut pg_sys::CaseExpr, cx: &Ctx) -> R<TExpr> {
        // SAFETY: a CaseExpr node.
        unsafe {
            let saved = self.case_test.take();
            if !(*c).arg.is_null() {
                self.case_test = Some(self.expr((*c).arg as *mut pg_sys::Node, cx)?);
            }
            let mut whens = Vec::new();
            let mut results = Vec::new();
            for w in list::<pg_sys::CaseWhen>((*c).args) {
                let cond = self.expr((*w).expr as *mut pg_sys::Node, cx)?;
                let r = self.expr((*w).result as *mut pg_sys::Node, cx)?;
                whens.push(cond.e);
                results.push(r);
            }
            self.case_test = saved;
            if !(*c).defresult.is_null() {
                results.push(self.expr((*c).defresult as *mut pg_sys::Node, cx)?);
            }
            let ty = (*c).casetype;
            if ty == pg_sys::NUMERICOID {
                results = results.into_iter().map(to_numeric).collect::<R<_>>()?;
                results = mixed_numerics(results)?;
            }
            same_bpchar(&results)?;
            let pg = results
                .iter()
                .find(|r| !is_null_literal(&r.e))
                .map_or(results[0].pg, |r| r.pg);
            let want = pg.arrow();
            let mut it = results.into_iter().map(|r| cast_if(r.e, &want, cx.schema));
            let pairs: Vec<(Box<Expr>, Box<Expr>)> = whens
                .into_iter()
                .map(|w| {
                    (
                        Box::new(w),
                        Box::new(it.next().expect("result").unwrap_or_else(|e| e)),
                    )
                })
                .collect();
            let default = it.next().map(|e| Box::new(e.unwrap_or_else(|e| e)));
            if pg == Pg::Bool {
                return Ok(TExpr {
                    e: guarded_bool_case(pairs, default),
                    pg,
                });
            }
            Ok(TExpr {
                e: Expr::Case(Case::new(None, pairs, default)),
                pg,
            })
        }
    }

    unsafe fn array_op(&mut self, a: *mut pg_sys::ScalarArrayOpExpr, cx: &Ctx) -> R<TExpr> {
        // SAFETY: a ScalarArrayOpExpr node.
        unsafe {
            let args = list::<pg_sys::Node>((*a).args);
            let func = pg_sys::get_opcode((*a).opno);
            let name = func_name(func);
            let right = args[1];
            let mut items = Vec::new();
            if is(right, pg_sys::NodeTag::T_Const) {
                let c = right as *mut pg_sys::Const;
                if (*c).constisnull {
                    return unsupported("= ANY of a NULL array");
                }
                let elem = pg_sys::get_element_type((*c).consttype);
                let arr = pg_sys::pg_detoast_datum((*c).constvalue.cast_mut_ptr())
                    as *mut pg_sys::ArrayType;
                let (mut len, mut align, mut byval) = (0i16, 0 as std::ffi::c_char, false);
                pg_sys::get_typlenbyvalalign(elem, &mut len, &mut byval, &mut align);
                let mut values: *mut pg_sys::Datum = std::ptr::null_mut();
                let mut nulls: *mut bool = std::ptr::null_mut();
                let mut n = 0;
                pg_sys::deconstruct_array(
                    arr,
                    elem,
                    len as i32,
                    byval,
                    align,
                    &mut values,
                    &mut nulls,
                    &mut n,
                );
                for i in 0..n as usize {
                    let k = pg_sys::makeConst(
                        elem,
                        -1,
                        (*c).constcollid,
                        len as i32,
                        *values.add(i),
                        *nulls.add(i),
                        byval,
                    );
                    items.push(k as *mut pg_sys::Node);
                }
            } else if is(right, pg_sys::NodeTag::T_ArrayExpr) {
                items = list((*(right as *mut pg_sys::ArrayExpr)).elements);
            } else {
                return unsupported("= ANY of a computed array");
            }
            // Each element compared as the operator would, combined as a
            // balanced tree (a list of thousands must not nest that deep).
            let combine = if (*a).useOr {
                Operator::Or
            } else {
                Operator::And
            };
            let mut tests = Vec::with_capacity(items.len());
            for item in items {
                let pair = [args[0], item];
                tests.push(
                    self.call(func, &pair, pg_sys::BOOLOID, (*a).inputcollid, cx)?
                        .e,
                );
            }
            if tests.is_empty() {
                return unsupported(format!("{name} with an empty array"));
            }
            let e = balanced(tests, combine);
            Ok(TExpr { e, pg: Pg::Bool })
        }
    }

    unsafe fn sublink(&mut self, s: *mut pg_sys::SubLink, negated: bool, cx: &Ctx) -> R<TExpr> {
        // SAFETY: a SubLink of the query.
        unsafe {
            let sub = (*s).subselect as *mut pg_sys::Query;
            match (*s).subLinkType {
                pg_sys::SubLinkType::EXISTS_SUBLINK => {
                    // DataFusion 52 decorrelates EXISTS over an aggregate
                    // or with LIMIT/OFFSET wrongly (the count bug, a lost
                    // OFFSET): those stay in PostgreSQL.
                    if (*sub).hasAggs
                        || !(*sub).groupClause.is_null()
                        || !(*sub).limitCount.is_null()
                        || !(*sub).limitOffset.is_null()
                    {
                        return unsupported("EXISTS over an aggregate or with LIMIT / OFFSET");
                    }
                    let (plan, _) = self.query(sub, cx.levels, true)?;
                    let e = if negated {
                        not_exists(Arc::new(plan))
                    } else {
                        exists(Arc::new(plan))
                    };
                    Ok(TExpr { e, pg: Pg::Bool })
                }
                pg_sys::SubLinkType::ANY_SUBLINK => {
                    let test = (*s).testexpr as *mut pg_sys::Node;
                    if !is(test, pg_sys::NodeTag::T_OpExpr) {
                        return unsupported("IN (subquery) over a row");
                    }
                    let op = test as *mut pg_sys::OpExpr;
                    let args = list::<pg_sys::Node>((*op).args);
                    let name = func_name(pg_sys::get_opcode((*op).opno));
                    if comparison(&name) != Some(Cmp::Eq)
                        || args.len() != 2
                        || !is(args[1], pg_sys::NodeTag::T_Param)
                    {
                        return unsupported(format!("{name} ANY (subquery)"));
                    }
                    // IN gives NULL when nothing matches and a NULL is
                    // involved; DataFusion's semi join gives false. Equal only
                    // where NULL and false act alike (a WHERE conjunct) or
                    // where neither side can be NULL.
                    let top_level = std::mem::take(&mut self.conjunct);
                    let here = cx.levels.last().map(|l| l.query);
                    let sub_out = list::<pg_sys::TargetEntry>((*sub).targetList)
                        .into_iter()
                        .find(|t| !(**t).resjunk)
                        .map(|t| (*t).expr as *mut pg_sys::Node);
                    let no_nulls = here.is_some_and(|q| not_null_column(q, args[0]))
                        && sub_out.is_some_and(|n| not_null_column(sub, n));
                    if !(no_nulls || (top_level && !negated)) {
                        return unsupported(
                            "IN (subquery) inside an expression, over columns that may be NULL",
                        );
                    }
                    let left = self.expr(args[0], cx)?;
                    if left.pg.is_float() {
                        return unsupported("IN (subquery) on floats");
                    }
                    let (plan, outs) = self.query(sub, cx.levels, false)?;
                    if outs.len() != 1 {
                        return unsupported("IN (subquery) of several columns");
                    }
                    let right = outs[0];
                    let (l, plan) = if left.pg == right {
                        (left.e, plan)
                    } else if left.pg.is_int() && right.is_int() {
                        let to = if int_rank(left.pg) >= int_rank(right) {
                            left.pg
                        } else {
                            right
                        };
                        let plan = super::translate::cast_single_output(plan, to.arrow())?;
                        (widen_int(left, to).e, plan)
                    } else if left.pg.is_text() && right.is_text() {
                        (left.e, plan)
                    } else {
                        return unsupported(format!(
                            "IN (subquery) comparing {:?} with {right:?}",
                            left.pg
                        ));
                    };
                    let e = if negated {
                        not_in_subquery(l, Arc::new(plan))
                    } else {
                        in_subquery(l, Arc::new(plan))
                    };
                    Ok(TExpr { e, pg: Pg::Bool })
                }
                pg_sys::SubLinkType::EXPR_SUBLINK => {
                    // A scalar subquery of more than one row is PostgreSQL's
                    // ERROR 21000, which DataFusion 52 does not raise: only
                    // subqueries that give one row (an aggregate without
                    // GROUP BY) run in DataFusion.
                    if !(*sub).hasAggs
                        || !(*sub).groupClause.is_null()
                        || !(*sub).havingQual.is_null()
                        || !(*sub).limitOffset.is_null()
                    {
                        return unsupported(
                            "a scalar subquery that is not an aggregate without GROUP BY",
                        );
                    }
                    let (plan, outs) = self.query(sub, cx.levels, false)?;
                    if outs.len() != 1 {
                        return unsupported("a scalar subquery of several columns");
                    }
                    let e = scalar_subquery(Arc::new(plan));
                    let e = if negated { Expr::Not(Box::new(e)) } else { e };
                    Ok(TExpr { e, pg: outs[0] })
                }
                t => unsupported(format!("subquery kind {t:?}")),
            }
        }
    }

    /// A call of function `func` (an operator's or a function's) on `args`.
    unsafe fn call(
        &mut self,
        func: pg_sys::Oid,
        args: &[*mut pg_sys::Node],
        result: pg_sys::Oid,
        collid: pg_sys::Oid,
        cx: &Ctx,
    ) -> R<TExpr> {
        let name = func_name(func);
        if !builtin(func) {
            return unsupported(format!("function {name} outside pg_catalog"));
        }
        let mut xs = Vec::with_capacity(args.len());
        for &a in args {
            // SAFETY: argument nodes.
            xs.push(unsafe { self.expr(a, cx)? });
        }
        let n = name.as_str();
        // Casts between our types.
        if xs.len() == 1 || (xs.len() == 2 && n == "numeric") {
            if let Some(t) = self.cast_call(n, &xs, result, cx)? {
                return Ok(t);
            }
        }
        if xs.len() == 2 {
            let (a, b) = (xs[0].clone(), xs[1].clone());
            if let Some(c) =
                comparison(n).filter(|_| result == pg_sys::BOOLOID && !n.contains("like"))
            {
                return self.compare(c, a, b, collid, n);
            }
            let arith = arithmetic(n);
            if let Some(op) = arith {
                return self.arith(op, a, b, n, cx);
            }
            match n {
                "textlike" | "bpcharlike" | "textnlike" | "bpcharnlike" | "texticlike"
                | "bpchariclike" | "texticnlike" | "bpcharicnlike" => {
                    if !a.pg.is_text() || !b.pg.is_text() {
                        return unsupported(format!("{n} on non-text"));
                    }
                    if n.starts_with("bpchar") || a.pg != Pg::Text && !matches!(a.pg, Pg::Varchar) {
                        // bpcharlike matches the blank-padded value; ours is trimmed.
                        return unsupported(format!("{n} on char(n)"));
                    }
                    let negated = n.contains("nlike");
                    let ci = n.contains("icl") || n.contains("icn");
                    if ci {
                        return unsupported("ILIKE");
                    }
                    let e = Expr::Like(Like::new(
                        negated,
                        Box::new(a.e),
                        Box::new(b.e),
                        Some('\\'),
                        false,
                    ));
                    return Ok(TExpr { e, pg: Pg::Bool });
                }
                "textcat" => {
                    return Ok(TExpr {
                        e: binary_expr(a.e, Operator::StringConcat, b.e),
                        pg: Pg::Text,
                    });
                }
                _ => {}
            }
        }
        // Functions.
        match (n, xs.as_slice()) {
            ("int4um" | "int8um" | "int2um", [a]) => {
                let zero = ScalarValue::new_zero(&a.pg.arrow())?;
                Ok(TExpr {
                    e: f::int_arith(
                        Arith::Sub,
                        a.pg.arrow(),
                        Expr::Literal(zero, None),
                        a.e.clone(),
                    ),
                    pg: a.pg,
                })
            }
            ("numeric_uminus" | "float8um" | "float4um", [a]) => Ok(TExpr {
                e: Expr::Negative(Box::new(a.e.clone())),
                pg: a.pg,
            }),
            ("extract", [field, a]) if a.pg == Pg::Date => {
                let Expr::Literal(ScalarValue::Utf8(Some(field)), _) = &field.e else {
                    return unsupported("extract with a computed field");
                };
                let fld = match field.to_ascii_lowercase().as_str() {
                    "year" => f::DateField::Year,
                    "quarter" => f::DateField::Quarter,
                    "month" => f::DateField::Month,
                    "day" => f::DateField::Day,
                    other => return unsupported(format!("extract({other} from date)")),
                };
                Ok(TExpr {
                    e: f::extract_date(fld, a.e.clone()),
                    pg: Pg::Numeric {
                        precision: 10,
                        scale: 0,
                    },
                })
            }
            ("text_substr" | "text_substr_no_len" | "substring" | "substr", [s, rest @ ..])
                if s.pg.is_text()
                    && (rest.len() == 1 || rest.len() == 2)
                    && rest.iter().all(|r| r.pg.is_int()) =>
            {
                let mut args = vec![s.e.clone()];
                for r in rest {
                    args.push(
                        cast_if(r.e.clone(), &DataType::Int64, cx.schema).unwrap_or_else(|e| e),
                    );
                }
                Ok(TExpr {
                    e: datafusion::functions::unicode::expr_fn::substr(
                        args[0].clone(),
                        args[1].clone(),
                    )
                    .pipe_len(args.get(2).cloned()),
                    pg: Pg::Text,
                })
            }
            ("upper" | "lower", [s]) if s.pg.is_text() => {
                if !c_collation(collid) || !ctype_is_c() {
                    return unsupported(format!("{n} under a non-C collation or LC_CTYPE"));
                }
                Ok(TExpr {
                    e: f::ascii_case(n == "upper", s.e.clone()),
                    pg: Pg::Text,
                })
            }
            ("textlen" | "bpcharlen", [s]) => Ok(TExpr {
                e: datafusion::functions::unicode::expr_fn::character_length(s.e.clone()),
                pg: Pg::Int4,
            }),
            _ => unsupported(format!(
                "function {n}({})",
                xs.iter()
                    .map(|x| format!("{:?}", x.pg))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn cast_call(
        &mut self,
        n: &str,
        xs: &[TExpr],
        result: pg_sys::Oid,
        cx: &Ctx,
    ) -> R<Option<TExpr>> {
        let a = xs[0].clone();
        Ok(Some(match (n, a.pg, result) {
            ("int8" | "int4" | "int2", p, r) if p.is_int() => {
                let to = Pg::of(r, -1).map_err(Unsupported)?;
                if int_rank(to) < int_rank(p) {
                    return unsupported("narrowing integer casts");
                }
                widen_int(a, to)
            }
            ("numeric", p, _) if p.is_int() => to_numeric(a)?,
            ("numeric", Pg::Numeric { scale, .. }, _) if xs.len() == 2 => {
                // numeric(x, typmod): rounding to the typmod's scale.
                let Expr::Literal(ScalarValue::Int32(Some(typmod)), _) = &xs[1].e else {
                    return unsupported("numeric typmod coercion with a computed typmod");
                };
                match Pg::of(pg_sys::NUMERICOID, *typmod) {
                    Ok(Pg::Numeric {
                        precision,
                        scale: s,
                    }) if s >= scale => TExpr {
                        e: cast(a.e, DataType::Decimal128(precision, s)),
                        pg: Pg::Numeric {
                            precision,
                            scale: s,
                        },
                    },
                    _ => return unsupported("numeric coercion that rounds"),
                }
            }
            ("float8", p, _) if p.is_int() || p == Pg::Float4 => TExpr {
                e: cast(a.e, DataType::Float64),
                pg: Pg::Float8,
            },
            ("text", p, _) if p.is_text() => TExpr {
                e: a.e,
                pg: Pg::Text,
            },
            ("timestamp", Pg::Date, _) => TExpr {
                e: f::date_to_timestamp(a.e),
                pg: Pg::Timestamp,
            },
            ("date", Pg::Date, _) => a,
            _ => {
                let _ = cx;
                return Ok(None);
            }
        }))
    }

    fn compare(&mut self, c: Cmp, a: TExpr, b: TExpr, collid: pg_sys::Oid, n: &str) -> R<TExpr> {
        let bool_of = |e| Ok(TExpr { e, pg: Pg::Bool });
        let op = cmp_op(c);
        match (a.pg, b.pg) {
            (x, y) if x.is_int() && y.is_int() => {
                let to = if int_rank(x) >= int_rank(y) { x } else { y };
                bool_of(binary_expr(widen_int(a, to).e, op, widen_int(b, to).e))
            }
            (x, y) if x.is_float() && y.is_float() => {
                let a = if x == Pg::Float4 {
                    cast(a.e, DataType::Float64)
                } else {
                    a.e
                };
                let b = if y == Pg::Float4 {
                    cast(b.e, DataType::Float64)
                } else {
                    b.e
                };
                bool_of(f::float_cmp(c, a, b))
            }
            (x, y) if x.is_dyn() || y.is_dyn() => {
                let (a, b) = (to_numeric(a)?, to_numeric(b)?);
                bool_of(f::num_cmp(c, a.e, b.e))
            }
            (Pg::Numeric { .. }, _) | (_, Pg::Numeric { .. }) => {
                let (a, b) = (to_numeric(a)?, to_numeric(b)?);
                bool_of(binary_expr(a.e, op, b.e))
            }
            (x, y) if x.is_text() && y.is_text() => {
                // SAFETY: collation lookup.
                if collid != pg_sys::InvalidOid
                    && !unsafe { pg_sys::get_collation_isdeterministic(collid) }
                {
                    return unsupported(format!("{n} under a nondeterministic collation"));
                }
                if !matches!(c, Cmp::Eq | Cmp::Ne) && !c_collation(collid) {
                    return unsupported(format!("{n} under a non-C collation"));
                }
                bool_of(binary_expr(a.e, op, b.e))
            }
            (Pg::Date, Pg::Date)
            | (Pg::Timestamp, Pg::Timestamp)
            | (Pg::TimestampTz, Pg::TimestampTz)
            | (Pg::Bool, Pg::Bool) => bool_of(binary_expr(a.e, op, b.e)),
            (Pg::Date, Pg::Timestamp) => self.date_vs_timestamp(c, a, b, false),
            (Pg::Timestamp, Pg::Date) => self.date_vs_timestamp(c, b, a, true),
            (x, y) => unsupported(format!("{n} comparing {x:?} with {y:?}")),
        }
    }

    /// `date op timestamp` (or, `flipped`, `timestamp op date`). Against a
    /// finite constant it becomes a comparison of day counts, which min/max
    /// statistics can use.
    fn date_vs_timestamp(&mut self, c: Cmp, d: TExpr, ts: TExpr, flipped: bool) -> R<TExpr> {
        let c = if flipped {
            match c {
                Cmp::Lt => Cmp::Gt,
                Cmp::Le => Cmp::Ge,
                Cmp::Gt => Cmp::Lt,
                Cmp::Ge => Cmp::Le,
                o => o,
            }
        } else {
            c
        };
        if let Expr::Literal(ScalarValue::Int64(Some(t)), _) = ts.e {
            if t != i64::MIN && t != i64::MAX {
                let floor = t.div_euclid(USECS_PER_DAY);
                let exact = t.rem_euclid(USECS_PER_DAY) == 0;
                let ceil = if exact { floor } else { floor + 1 };
                let lit = |v: i64| -> R<Expr> {
                    let v = i32::try_from(v)
                        .map_err(|_| Unsupported("timestamp beyond the date range".into()))?;
                    Ok(Expr::Literal(ScalarValue::Int32(Some(v)), None))
                };
                let e = match c {
                    Cmp::Lt => binary_expr(d.e, Operator::Lt, lit(ceil)?),
                    Cmp::Le => binary_expr(d.e, Operator::LtEq, lit(floor)?),
                    Cmp::Gt => binary_expr(d.e, Operator::Gt, lit(floor)?),
                    Cmp::Ge => binary_expr(d.e, Operator::GtEq, lit(ceil)?),
                    Cmp::Eq if exact => binary_expr(d.e, Operator::Eq, lit(floor)?),
                    Cmp::Ne if exact => binary_expr(d.e, Operator::NotEq, lit(floor)?),
                    // Never equal: d = t is false, d <> t true (NULLs stay NULL).
                    Cmp::Eq => binary_expr(d.e, Operator::Lt, lit(i32::MIN as i64)?),
                    Cmp::Ne => binary_expr(d.e, Operator::GtEq, lit(i32::MIN as i64)?),
                };
                return Ok(TExpr { e, pg: Pg::Bool });
            }
        }
        Ok(TExpr {
            e: binary_expr(f::date_to_timestamp(d.e), cmp_op(c), ts.e),
            pg: Pg::Bool,
        })
    }

    fn arith(&mut self, op: Arith, a: TExpr, b: TExpr, n: &str, cx: &Ctx) -> R<TExpr> {
        match (a.pg, b.pg) {
            (x, y) if x.is_int() && y.is_int() => {
                let to = if int_rank(x) >= int_rank(y) { x } else { y };
                Ok(TExpr {
                    e: f::int_arith(op, to.arrow(), widen_int(a, to).e, widen_int(b, to).e),
                    pg: to,
                })
            }
            (x, y) if x.is_float() && y.is_float() => {
                let to = if x == Pg::Float8 || y == Pg::Float8 {
                    Pg::Float8
                } else {
                    Pg::Float4
                };
                let c = |t: TExpr| {
                    if t.pg == to {
                        t.e
                    } else {
                        cast(t.e, to.arrow())
                    }
                };
                if op == Arith::Mod {
                    return unsupported("float modulo");
                }
                Ok(TExpr {
                    e: f::float_arith(op, to.arrow(), c(a), c(b)),
                    pg: to,
                })
            }
            (x, y)
                if (x.is_dyn()
                    || y.is_dyn()
                    || matches!(x, Pg::Numeric { .. })
                    || matches!(y, Pg::Numeric { .. }))
                    && n.starts_with("numeric_") =>
            {
                let (a, b) = (to_numeric(a)?, to_numeric(b)?);
                let dynamic = a.pg.is_dyn() || b.pg.is_dyn();
                if op == Arith::Div || (dynamic && op != Arith::Mod) {
                    // Division scales its result per value; so does any
                    // arithmetic on such results.
                    return Ok(TExpr {
                        e: f::num_arith(op, a.e, b.e),
                        pg: Pg::DynNumeric,
                    });
                }
                let dop = match op {
                    Arith::Add => Operator::Plus,
                    Arith::Sub => Operator::Minus,
                    Arith::Mul => Operator::Multiply,
                    _ => {
                        return unsupported(format!(
                            "{n}: numeric division and modulo scale their results per value"
                        ))
                    }
                };
                let e = binary_expr(a.e, dop, b.e);
                let pg = numeric_of(&e, cx.schema)?;
                Ok(TExpr { e, pg })
            }
            (Pg::Date, Pg::Int4) if matches!(op, Arith::Add | Arith::Sub) => Ok(TExpr {
                e: f::date_plus_days(op == Arith::Sub, a.e, b.e),
                pg: Pg::Date,
            }),
            (Pg::Int4, Pg::Date) if op == Arith::Add => Ok(TExpr {
                e: f::date_plus_days(false, b.e, a.e),
                pg: Pg::Date,
            }),
            (Pg::Date, Pg::Date) if op == Arith::Sub && n == "date_mi" => Ok(TExpr {
                e: f::date_diff(a.e, b.e),
                pg: Pg::Int4,
            }),
            (x, y) => unsupported(format!("{n}({x:?}, {y:?})")),
        }
    }
}

/// Numeric values of different display scales (CASE branches, COALESCE
/// arguments) keep their own scales in PostgreSQL: as per-value-scale
/// numerics here. Values of one scale stay Decimal128.
fn mixed_numerics(xs: Vec<TExpr>) -> R<Vec<TExpr>> {
    let typed: Vec<Pg> = xs
        .iter()
        .filter(|x| !is_null_literal(&x.e))
        .map(|x| x.pg)
        .collect();
    if typed.windows(2).all(|w| w[0] == w[1]) {
        return Ok(xs);
    }
    let mut bound = Some(0i8);
    for p in &typed {
        bound = match (bound, p) {
            (Some(b), Pg::Numeric { scale, .. }) => Some(b.max(*scale)),
            (Some(b), Pg::MixedNumeric(s)) => Some(b.max(*s)),
            _ => None,
        };
    }
    let pg = bound.map_or(Pg::DynNumeric, Pg::MixedNumeric);
    xs.into_iter()
        .map(|x| {
            let e = if is_null_literal(&x.e) {
                Expr::Literal(ScalarValue::try_from(&f::dyn_numeric())?, None)
            } else if x.pg.is_dyn() {
                x.e
            } else {
                f::to_dyn(x.e)
            };
            Ok(TExpr { e, pg })
        })
        .collect()
}

/// Whether `node` is a column of query `q` that can never be NULL: a
/// NOT NULL table column, in a query level without outer joins.
unsafe fn not_null_column(q: *mut pg_sys::Query, node: *mut pg_sys::Node) -> bool {
    // SAFETY: nodes of query `q`.
    unsafe {
        if !is(node, pg_sys::NodeTag::T_Var) {
            return false;
        }
        let v = node as *mut pg_sys::Var;
        if (*v).varlevelsup != 0 || (*v).varattno <= 0 {
            return false;
        }
        fn inner_only(n: *mut pg_sys::Node) -> bool {
            // SAFETY: jointree nodes.
            unsafe {
                match (*n).type_ {
                    pg_sys::NodeTag::T_FromExpr => {
                        list::<pg_sys::Node>((*(n as *mut pg_sys::FromExpr)).fromlist)
                            .into_iter()
                            .all(inner_only)
                    }
                    pg_sys::NodeTag::T_JoinExpr => {
                        let j = n as *mut pg_sys::JoinExpr;
                        (*j).jointype == pg_sys::JoinType::JOIN_INNER
                            && inner_only((*j).larg)
                            && inner_only((*j).rarg)
                    }
                    _ => true,
                }
            }
        }
        if !inner_only((*q).jointree as *mut pg_sys::Node) {
            return false;
        }
        let rte = list::<pg_sys::RangeTblEntry>((*q).rtable)[(*v).varno as usize - 1];
        if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
            return false;
        }
        let rel = crate::pg::Relation::open((*rte).relid, pg_sys::NoLock as i32);
        let d = (*rel.raw()).rd_att;
        let atts = (*d).attrs.as_slice((*d).natts as usize);
        atts.get((*v).varattno as usize - 1)
            .is_some_and(|a| a.attnotnull && !a.attisdropped)
    }
}

/// A constant or parameter value of type `ty` as a literal. Numeric values
/// without a typmod keep the display scale they have.
unsafe fn literal(
    value: pg_sys::Datum,
    isnull: bool,
    ty: pg_sys::Oid,
    typmod: i32,
    what: &str,
) -> R<TExpr> {
    let pg = Pg::of(ty, typmod).or_else(|e| {
        if ty == pg_sys::NUMERICOID {
            Ok(Pg::Numeric {
                precision: 0,
                scale: 0,
            })
        } else {
            Err(Unsupported(format!("{what} of {e}")))
        }
    })?;
    // SAFETY: a datum of type `ty`.
    let v = unsafe { super::values::datum_to_scalar(value, isnull, ty, pg)? };
    let pg = match &v {
        ScalarValue::Decimal128(_, p, s) => Pg::Numeric {
            precision: *p,
            scale: *s,
        },
        _ => pg,
    };
    Ok(TExpr {
        e: Expr::Literal(v, None),
        pg,
    })
}

/// char(n) results are padded on output to the first branch's n: every
/// non-NULL branch must be that same char(n).
fn same_bpchar(xs: &[TExpr]) -> R<()> {
    let typed: Vec<Pg> = xs
        .iter()
        .filter(|x| !is_null_literal(&x.e))
        .map(|x| x.pg)
        .collect();
    if typed.iter().any(|p| matches!(p, Pg::BpChar(_))) && typed.windows(2).any(|w| w[0] != w[1]) {
        return unsupported("CASE / COALESCE / GREATEST mixing char(n) with other string types");
    }
    Ok(())
}

/// `xs` joined by `op` as a balanced tree: depth log2(n), not n.
fn balanced(mut xs: Vec<Expr>, op: Operator) -> Expr {
    while xs.len() > 1 {
        let mut next = Vec::with_capacity(xs.len().div_ceil(2));
        let mut it = xs.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => binary_expr(a, op, b),
                None => a,
            });
        }
        xs = next;
    }
    xs.pop()
        .unwrap_or_else(|| Expr::Literal(ScalarValue::Boolean(Some(op == Operator::And)), None))
}

fn is_null_literal(e: &Expr) -> bool {
    matches!(e, Expr::Literal(v, _) if v.is_null())
}

/// `e` cast to `t` when its type differs (Err carries `e` unchanged when
/// its type cannot be computed).
fn cast_if(e: Expr, t: &DataType, schema: &DFSchema) -> Result<Expr, Expr> {
    match e.get_type(schema) {
        Ok(have) if &have == t => Ok(e),
        Ok(_) => Ok(cast(e, t.clone())),
        Err(_) => Err(e),
    }
}

trait PipeLen {
    fn pipe_len(self, len: Option<Expr>) -> Expr;
}

impl PipeLen for Expr {
    /// substr(s, start) -> substr(s, start, len) when a length is given.
    fn pipe_len(self, len: Option<Expr>) -> Expr {
        match (self, len) {
            (Expr::ScalarFunction(mut f), Some(l)) => {
                f.args.push(l);
                Expr::ScalarFunction(f)
            }
            (e, _) => e,
        }
    }
}

/// A boolean CASE that DataFusion keeps a CASE. Its simplifier rewrites
/// one into ANDs and ORs of the conditions and results, which evaluate
/// every result on every row, so the guard PostgreSQL documents, `CASE
/// WHEN x <> 0 THEN 10 / x > 1 ELSE false END`, would divide by zero (it
/// sees through casts too). With Int8 results, through functions it does
/// not see through, it stays a CASE, which evaluates each result only
/// for the rows its condition selects.
fn guarded_bool_case(pairs: Vec<(Box<Expr>, Box<Expr>)>, default: Option<Box<Expr>>) -> Expr {
    use super::functions::bool_int;
    let int = |e: Box<Expr>| Box::new(bool_int(true, *e));
    let case = Case::new(
        None,
        pairs.into_iter().map(|(w, t)| (w, int(t))).collect(),
        default.map(int),
    );
    bool_int(false, Expr::Case(case))
}
