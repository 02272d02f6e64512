//! PostgreSQL's `Query` tree -> a DataFusion `LogicalPlan`.
//!
//! The translation is exact or it fails: every construct it does not know
//! how to compute with PostgreSQL's semantics returns [`Unsupported`] with
//! the construct named, and the query runs in PostgreSQL. It runs twice
//! per statement: at planning, to decide, and at execution, with the
//! parameter values and tables the statement then has.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::default_table_source::provider_as_source;
use datafusion::common::{Column, DataFusionError};
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::logical_expr::{
    cast, lit, Expr, ExprFunctionExt, JoinType, LogicalPlan, LogicalPlanBuilder,
};
use pgrx::pg_sys;

use super::estimates::ColumnEstimate;
use super::expr::{func_name, list, rt_fetch, unsupported, AggMap, Ctx, TExpr};
use super::noted::Estimates;
use super::partitioned::Leaves;
use super::source::{field_name, Column as SourceColumn, OmenTable, Rel as SourceRel};
use super::types::Pg;

/// Why a query stays in PostgreSQL.
#[derive(Debug)]
pub struct Unsupported(pub String);

impl From<DataFusionError> for Unsupported {
    fn from(e: DataFusionError) -> Self {
        Unsupported(format!("DataFusion planning: {e}"))
    }
}

pub type R<T> = Result<T, Unsupported>;

/// What a range-table entry of one query level is in the plan.
#[derive(Clone)]
pub enum Binding {
    /// A table: column attno -> its type (or why it has none).
    Table {
        qualifier: String,
        cols: HashMap<i16, Result<Pg, String>>,
        name: String,
    },
    /// A subquery or CTE: output resno -> (field name, type).
    Sub {
        qualifier: String,
        cols: HashMap<i16, (String, Pg)>,
    },
    /// A join: its columns are expressions of its inputs' columns.
    Join(*mut pg_sys::RangeTblEntry),
}

/// One query level being translated.
#[derive(Clone)]
pub struct Level {
    pub query: *mut pg_sys::Query,
    pub bindings: HashMap<u32, Binding>,
}

pub enum ColumnRef {
    Column(Column, Pg),
    Expr(*mut pg_sys::Node),
}

impl Level {
    pub fn column(&self, varno: u32, attno: i16, _t: &Translator) -> R<(ColumnRef, Option<Pg>)> {
        if attno <= 0 {
            return unsupported("a system column or whole-row reference");
        }
        match self.bindings.get(&varno) {
            Some(Binding::Table {
                qualifier,
                cols,
                name,
            }) => match cols.get(&attno) {
                Some(Ok(pg)) => Ok((
                    ColumnRef::Column(
                        Column::new(
                            Some(qualifier.as_str()),
                            field_name(qualifier, attno as usize - 1),
                        ),
                        *pg,
                    ),
                    Some(*pg),
                )),
                Some(Err(why)) => unsupported(format!("column {attno} of table {name} has {why}")),
                None => unsupported(format!("column {attno} of table {name}")),
            },
            Some(Binding::Sub { qualifier, cols }) => match cols.get(&attno) {
                Some((name, pg)) => Ok((
                    ColumnRef::Column(Column::new(Some(qualifier.as_str()), name.clone()), *pg),
                    Some(*pg),
                )),
                None => unsupported("a subquery column that is not in its output"),
            },
            Some(Binding::Join(rte)) => {
                // SAFETY: a join RTE of this query.
                let vars = unsafe { list::<pg_sys::Node>((**rte).joinaliasvars) };
                match vars.get(attno as usize - 1) {
                    Some(&n) if !n.is_null() => Ok((ColumnRef::Expr(n), None)),
                    _ => unsupported("a dropped join column"),
                }
            }
            None => unsupported("a range-table entry outside the FROM clause"),
        }
    }
}

pub struct Translator {
    pub params: pg_sys::ParamListInfo,
    /// At planning, parameters may be unknown (generic plans): they read as NULL.
    pub planning: bool,
    pub partitions: usize,
    /// The leaf partitions the plan reads of each partitioned table.
    pub leaves: Leaves,
    /// Every table scan created, in order.
    pub tables: Vec<Arc<OmenTable>>,
    pub case_test: Option<TExpr>,
    /// Set while translating a top-level conjunct of WHERE that is itself
    /// a subquery test (where NULL and false act alike).
    pub conjunct: bool,
    /// Name prefix of the query level being translated.
    tag: String,
    seq: usize,
    /// PostgreSQL's estimated rows of the query's base tables after their
    /// filters (`noted`).
    pub estimates: Estimates,
    /// The top-level query (the first translated).
    top: *mut pg_sys::Query,
}

/// Constant-fold (and inline SQL functions in) one expression, as the
/// planner would: casts of constants become constants.
unsafe fn fold(node: *mut pg_sys::Node) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    // SAFETY: an expression tree of the (copied) query.
    unsafe { pg_sys::eval_const_expressions(std::ptr::null_mut(), node) }
}

/// Cast the only output column of `plan` to `t`.
pub fn cast_single_output(
    plan: LogicalPlan,
    t: datafusion::arrow::datatypes::DataType,
) -> R<LogicalPlan> {
    let name = plan.schema().field(0).name().clone();
    let c = Expr::Column(Column::new(
        plan.schema().qualified_field(0).0.cloned(),
        name.clone(),
    ));
    Ok(LogicalPlanBuilder::from(plan)
        .project(vec![cast(c, t).alias(name)])?
        .build()?)
}

impl Translator {
    pub fn new(
        params: pg_sys::ParamListInfo,
        planning: bool,
        partitions: usize,
        leaves: Leaves,
    ) -> Translator {
        Translator {
            params,
            planning,
            partitions,
            leaves,
            tables: Vec::new(),
            case_test: None,
            conjunct: false,
            tag: String::new(),
            seq: 0,
            estimates: Estimates::default(),
            top: std::ptr::null_mut(),
        }
    }

    fn alias(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}{}", self.seq)
    }

    /// A WHERE clause: its top-level conjuncts that are subquery tests may
    /// use semi joins (see `conjunct`).
    unsafe fn where_clause(&mut self, quals: *mut pg_sys::Node, cx: &Ctx) -> R<Expr> {
        // SAFETY: an expression tree of the query.
        unsafe {
            let parts = if (*quals).type_ == pg_sys::NodeTag::T_BoolExpr
                && (*(quals as *mut pg_sys::BoolExpr)).boolop == pg_sys::BoolExprType::AND_EXPR
            {
                list::<pg_sys::Node>((*(quals as *mut pg_sys::BoolExpr)).args)
            } else {
                vec![quals]
            };
            let mut out: Option<Expr> = None;
            for p in parts {
                self.conjunct = (*p).type_ == pg_sys::NodeTag::T_SubLink;
                let e = self.expr(p, cx);
                self.conjunct = false;
                let e = e?.e;
                out = Some(match out {
                    None => e,
                    Some(acc) => acc.and(e),
                });
            }
            Ok(out.unwrap_or_else(|| lit(true)))
        }
    }

    /// Value and NULL flag of parameter `$id`.
    pub unsafe fn param_value(&mut self, id: i32, ty: pg_sys::Oid) -> R<(pg_sys::Datum, bool)> {
        // SAFETY: the statement's parameter list.
        unsafe {
            let p = self.params;
            if p.is_null() || id < 1 || id > (*p).numParams {
                if self.planning {
                    return Ok((pg_sys::Datum::from(0usize), true));
                }
                return unsupported(format!("parameter ${id} without a value"));
            }
            let mut workspace = pg_sys::ParamExternData::default();
            let prm = match (*p).paramFetch {
                Some(fetch) => fetch(p, id, false, &mut workspace),
                None => (*p).params.as_mut_ptr().add(id as usize - 1),
            };
            if prm.is_null() || ((*prm).ptype != ty && !(*prm).isnull) {
                if self.planning {
                    return Ok((pg_sys::Datum::from(0usize), true));
                }
                return unsupported(format!("parameter ${id} of another type"));
            }
            Ok(((*prm).value, (*prm).isnull))
        }
    }

    /// Translate `q`, a query at the level below `outer`. Returns the plan,
    /// whose columns are the non-junk target entries named `c<resno>`, and
    /// their types. `exists_only`: the caller needs only whether rows exist.
    pub unsafe fn query(
        &mut self,
        q: *mut pg_sys::Query,
        outer: &[Level],
        exists_only: bool,
    ) -> R<(LogicalPlan, Vec<Pg>)> {
        if self.top.is_null() {
            self.top = q;
        }
        // SAFETY: a (copied) Query tree, relations locked by the parser.
        unsafe {
            let qr = &mut *q;
            if qr.commandType != pg_sys::CmdType::CMD_SELECT || !qr.utilityStmt.is_null() {
                return unsupported("a statement that is not a SELECT");
            }
            if !qr.rowMarks.is_null() || qr.hasForUpdate {
                return unsupported("FOR UPDATE / FOR SHARE");
            }
            if qr.hasModifyingCTE {
                return unsupported("a data-modifying WITH");
            }
            if qr.hasWindowFuncs {
                return unsupported("window functions");
            }
            if qr.hasTargetSRFs {
                return unsupported("set-returning functions in the select list");
            }
            if qr.hasRecursive {
                return unsupported("WITH RECURSIVE");
            }
            if !qr.setOperations.is_null() {
                return unsupported("UNION / INTERSECT / EXCEPT");
            }
            if !qr.groupingSets.is_null() {
                return unsupported("GROUPING SETS / ROLLUP / CUBE");
            }
            if qr.hasDistinctOn {
                return unsupported("DISTINCT ON");
            }
            if qr.limitOption == pg_sys::LimitOption::LIMIT_OPTION_WITH_TIES {
                return unsupported("FETCH ... WITH TIES");
            }
            // Fold constants as the planner would, in place (the query is a copy).
            for tle in list::<pg_sys::TargetEntry>(qr.targetList) {
                (*tle).expr = fold((*tle).expr as *mut pg_sys::Node) as *mut pg_sys::Expr;
            }
            qr.havingQual = fold(qr.havingQual);
            // Output, group and aggregate names are unique in the whole plan
            // (DataFusion joins decorrelated subqueries with their parents).
            let tag = self.alias("q");
            let saved_tag = std::mem::replace(&mut self.tag, tag.clone());
            let result = self.query_level(q, outer, exists_only, &tag);
            self.tag = saved_tag;
            result
        }
    }

    fn agg_name(&self, k: usize) -> String {
        format!("{}a{k}", self.tag)
    }

    unsafe fn query_level(
        &mut self,
        q: *mut pg_sys::Query,
        outer: &[Level],
        exists_only: bool,
        tag: &str,
    ) -> R<(LogicalPlan, Vec<Pg>)> {
        // SAFETY: as for `query`.
        unsafe {
            let qr = &mut *q;
            let mut level = Level {
                query: q,
                bindings: HashMap::new(),
            };
            let mut plans: HashMap<u32, LogicalPlan> = HashMap::new();
            let from = qr.jointree;
            self.bind_rtes(q, from as *mut pg_sys::Node, outer, &mut level, &mut plans)?;
            let mut levels = outer.to_vec();
            levels.push(level);

            let fromlist = list::<pg_sys::Node>((*from).fromlist);
            let mut plan: Option<LogicalPlan> = None;
            for item in fromlist {
                let p = self.from_item(item, &levels, &mut plans)?;
                plan = Some(match plan {
                    None => p,
                    Some(acc) => LogicalPlanBuilder::from(acc).cross_join(p)?.build()?,
                });
            }
            let mut plan = match plan {
                Some(p) => p,
                None => LogicalPlanBuilder::empty(true).build()?,
            };
            let quals = fold((*from).quals);
            (*from).quals = quals;
            if !quals.is_null() {
                let cx = Ctx {
                    levels: &levels,
                    schema: plan.schema(),
                    agg: None,
                };
                let w = self.where_clause(quals, &cx)?;
                plan = LogicalPlanBuilder::from(plan).filter(w)?.build()?;
            }

            let tles = list::<pg_sys::TargetEntry>(qr.targetList);
            let aggregating = qr.hasAggs || !qr.groupClause.is_null() || !qr.havingQual.is_null();
            if exists_only && !aggregating && qr.limitCount.is_null() && qr.limitOffset.is_null() {
                let p = LogicalPlanBuilder::from(plan)
                    .project(vec![lit(1i32).alias(format!("{tag}c1"))])?
                    .build()?;
                return Ok((p, vec![Pg::Int4]));
            }
            let by_ref = |r: u32| tles.iter().copied().find(|t| (**t).ressortgroupref == r);

            let mut aggmap = None;
            if aggregating {
                let cx = Ctx {
                    levels: &levels,
                    schema: plan.schema(),
                    agg: None,
                };
                let mut groups = Vec::new();
                let mut group_exprs = Vec::new();
                for (k, sgc) in list::<pg_sys::SortGroupClause>(qr.groupClause)
                    .into_iter()
                    .enumerate()
                {
                    let Some(tle) = by_ref((*sgc).tleSortGroupRef) else {
                        return unsupported("a GROUP BY item missing from the target list");
                    };
                    let node = (*tle).expr as *mut pg_sys::Node;
                    let t = self.expr(node, &cx)?;
                    if t.pg.is_float() || t.pg.is_dyn() {
                        // PostgreSQL groups -0 with 0 and every NaN together,
                        // and numerics by value, not by display scale.
                        return unsupported(format!("GROUP BY a {:?}", t.pg));
                    }
                    let name = format!("{tag}g{k}");
                    group_exprs.push(t.e.alias(&name));
                    groups.push((node, name, t.pg));
                }
                let mut found = Vec::new();
                for tle in &tles {
                    collect_aggrefs((**tle).expr as *mut pg_sys::Node, &mut found);
                }
                collect_aggrefs(qr.havingQual, &mut found);
                let mut aggs: Vec<(*mut pg_sys::Aggref, TExpr)> = Vec::new();
                let mut agg_exprs = Vec::new();
                for a in found {
                    if aggs
                        .iter()
                        .any(|(b, _)| pg_sys::equal(a as *const _, *b as *const _))
                    {
                        continue;
                    }
                    let t = self.aggregate(a, &cx, &mut agg_exprs)?;
                    aggs.push((a, t));
                }
                plan = LogicalPlanBuilder::from(plan)
                    .aggregate(group_exprs, agg_exprs)?
                    .build()?;
                aggmap = Some(AggMap { groups, aggs });
                if !qr.havingQual.is_null() {
                    let cx = Ctx {
                        levels: &levels,
                        schema: plan.schema(),
                        agg: aggmap.as_ref(),
                    };
                    let h = self.expr(qr.havingQual, &cx)?;
                    plan = LogicalPlanBuilder::from(plan).having(h.e)?.build()?;
                }
            }

            // The target list, junk included (sorting may need it).
            let cx = Ctx {
                levels: &levels,
                schema: plan.schema(),
                agg: aggmap.as_ref(),
            };
            let mut proj = Vec::new();
            let mut outs = Vec::new();
            for tle in &tles {
                let t = self.expr((**tle).expr as *mut pg_sys::Node, &cx)?;
                proj.push(t.e.alias(format!("{tag}c{}", (**tle).resno)));
                outs.push((*tle, t.pg));
            }
            plan = LogicalPlanBuilder::from(plan).project(proj)?.build()?;
            let visible: Vec<Expr> = outs
                .iter()
                .filter(|(t, _)| !(**t).resjunk)
                .map(|(t, _)| Expr::Column(Column::from_name(format!("{tag}c{}", (**t).resno))))
                .collect();

            let sorts = list::<pg_sys::SortGroupClause>(qr.sortClause);
            if !qr.distinctClause.is_null() {
                let junk_sorted = sorts
                    .iter()
                    .any(|s| by_ref((**s).tleSortGroupRef).is_none_or(|t| (*t).resjunk));
                if junk_sorted {
                    return unsupported("DISTINCT with ORDER BY items not in the select list");
                }
                if outs
                    .iter()
                    .any(|(t, pg)| !(**t).resjunk && (pg.is_float() || pg.is_dyn()))
                {
                    return unsupported("DISTINCT over floats");
                }
                plan = LogicalPlanBuilder::from(plan)
                    .project(visible.clone())?
                    .distinct()?
                    .build()?;
            }
            if !sorts.is_empty() {
                let mut keys = Vec::new();
                for s in sorts {
                    let Some(tle) = by_ref((*s).tleSortGroupRef) else {
                        return unsupported("an ORDER BY item missing from the target list");
                    };
                    let pg = outs
                        .iter()
                        .find(|(t, _)| *t == tle)
                        .map(|(_, p)| *p)
                        .expect("tle");
                    if pg.is_dyn() {
                        return unsupported("ORDER BY a quotient or average of numerics");
                    }
                    if pg.is_text()
                        && !super::expr::c_collation(pg_sys::exprCollation(
                            (*tle).expr as *mut pg_sys::Node,
                        ))
                    {
                        return unsupported("ORDER BY text under a non-C collation");
                    }
                    let mut reverse = false;
                    let eq = pg_sys::get_equality_op_for_ordering_op((*s).sortop, &mut reverse);
                    if eq == pg_sys::InvalidOid {
                        return unsupported(format!(
                            "ORDER BY with operator {}",
                            func_name(pg_sys::get_opcode((*s).sortop))
                        ));
                    }
                    keys.push(
                        Expr::Column(Column::from_name(format!("{tag}c{}", (*tle).resno)))
                            .sort(!reverse, (*s).nulls_first),
                    );
                }
                plan = LogicalPlanBuilder::from(plan).sort(keys)?.build()?;
            }
            let offset = self.limit_value(qr.limitOffset)?;
            let count = self.limit_value(qr.limitCount)?;
            if offset.is_some() || count.is_some() {
                plan = LogicalPlanBuilder::from(plan)
                    .limit(offset.unwrap_or(0), count)?
                    .build()?;
            }
            plan = LogicalPlanBuilder::from(plan).project(visible)?.build()?;
            let types = outs
                .iter()
                .filter(|(t, _)| !(**t).resjunk)
                .map(|(_, p)| *p)
                .collect();
            Ok((plan, types))
        }
    }

    unsafe fn limit_value(&mut self, node: *mut pg_sys::Node) -> R<Option<usize>> {
        // SAFETY: a LIMIT / OFFSET expression.
        unsafe {
            let node = fold(node);
            if node.is_null() {
                return Ok(None);
            }
            let (value, isnull) = match (*node).type_ {
                pg_sys::NodeTag::T_Const => {
                    let c = node as *mut pg_sys::Const;
                    ((*c).constvalue, (*c).constisnull)
                }
                pg_sys::NodeTag::T_Param => {
                    let p = node as *mut pg_sys::Param;
                    if (*p).paramkind != pg_sys::ParamKind::PARAM_EXTERN {
                        return unsupported("LIMIT of an executor parameter");
                    }
                    self.param_value((*p).paramid, (*p).paramtype)?
                }
                _ => return unsupported("LIMIT of a computed value"),
            };
            if isnull {
                return Ok(None);
            }
            let v = value.value() as i64;
            if v < 0 {
                return unsupported("a negative LIMIT or OFFSET");
            }
            Ok(Some(v as usize))
        }
    }

    /// Bind every range-table entry under `node` (a FromExpr, JoinExpr or
    /// RangeTblRef) and translate the subqueries and tables they stand for.
    unsafe fn bind_rtes(
        &mut self,
        q: *mut pg_sys::Query,
        node: *mut pg_sys::Node,
        outer: &[Level],
        level: &mut Level,
        plans: &mut HashMap<u32, LogicalPlan>,
    ) -> R<()> {
        // SAFETY: jointree nodes of `q`.
        unsafe {
            match (*node).type_ {
                pg_sys::NodeTag::T_FromExpr => {
                    for item in list::<pg_sys::Node>((*(node as *mut pg_sys::FromExpr)).fromlist) {
                        self.bind_rtes(q, item, outer, level, plans)?;
                    }
                }
                pg_sys::NodeTag::T_JoinExpr => {
                    let j = node as *mut pg_sys::JoinExpr;
                    self.bind_rtes(q, (*j).larg, outer, level, plans)?;
                    self.bind_rtes(q, (*j).rarg, outer, level, plans)?;
                    if (*j).rtindex > 0 {
                        level.bindings.insert(
                            (*j).rtindex as u32,
                            Binding::Join(rt_fetch(q, (*j).rtindex as u32)),
                        );
                    }
                }
                pg_sys::NodeTag::T_RangeTblRef => {
                    let rti = (*(node as *mut pg_sys::RangeTblRef)).rtindex as u32;
                    let rte = rt_fetch(q, rti);
                    let filtered = self.estimates.rows(q, q == self.top, rti);
                    let (binding, plan) = self.rte(rte, filtered, outer, level)?;
                    level.bindings.insert(rti, binding);
                    plans.insert(rti, plan);
                }
                t => return unsupported(format!("FROM item {t:?}")),
            }
            Ok(())
        }
    }

    /// `filtered`: PostgreSQL's estimate of the rows a table's filters pass.
    unsafe fn rte(
        &mut self,
        rte: *mut pg_sys::RangeTblEntry,
        filtered: Option<f64>,
        outer: &[Level],
        level: &Level,
    ) -> R<(Binding, LogicalPlan)> {
        // SAFETY: an RTE of the query.
        unsafe {
            if !(*rte).securityQuals.is_null() {
                return unsupported("row-level security");
            }
            match (*rte).rtekind {
                pg_sys::RTEKind::RTE_RELATION => {
                    if !(*rte).tablesample.is_null() {
                        return unsupported("TABLESAMPLE");
                    }
                    let qualifier = self.alias("t");
                    let table = self.table((*rte).relid, (*rte).inh, &qualifier, filtered)?;
                    let cols = table_columns((*rte).relid);
                    let name = table.name.clone();
                    let plan = LogicalPlanBuilder::scan(
                        qualifier.as_str(),
                        provider_as_source(table),
                        None,
                    )?
                    .build()?;
                    Ok((
                        Binding::Table {
                            qualifier,
                            cols,
                            name,
                        },
                        plan,
                    ))
                }
                pg_sys::RTEKind::RTE_SUBQUERY => {
                    if (*rte).lateral {
                        return unsupported("LATERAL subqueries");
                    }
                    // DataFusion would push the outer query's filters below
                    // the view's own, where a function's error message could
                    // show rows the view hides.
                    if (*rte).security_barrier {
                        return unsupported("a security_barrier view");
                    }
                    // Its CTE references count levels from this query.
                    let mut lv = outer.to_vec();
                    lv.push(level.clone());
                    self.sub_binding((*rte).subquery, &lv)
                }
                pg_sys::RTEKind::RTE_CTE => {
                    if (*rte).self_reference {
                        return unsupported("a recursive CTE");
                    }
                    // The CTE is defined ctelevelsup levels up from this one.
                    let up = (*rte).ctelevelsup as usize;
                    let defining = if up == 0 {
                        level.query
                    } else if up <= outer.len() {
                        outer[outer.len() - up].query
                    } else {
                        return unsupported("a CTE of an outer statement");
                    };
                    let name = std::ffi::CStr::from_ptr((*rte).ctename);
                    for cte in list::<pg_sys::CommonTableExpr>((*defining).cteList) {
                        if std::ffi::CStr::from_ptr((*cte).ctename) == name {
                            if (*cte).cterecursive {
                                return unsupported("a recursive CTE");
                            }
                            let sub = pg_sys::copyObjectImpl((*cte).ctequery as *const _)
                                as *mut pg_sys::Query;
                            // The CTE's own outer levels are those above its definer.
                            let keep = outer.len() + 1 - up;
                            let mut lv = outer.to_vec();
                            lv.push(level.clone());
                            return self.sub_binding(sub, &lv[..keep]);
                        }
                    }
                    unsupported("a CTE that cannot be found")
                }
                pg_sys::RTEKind::RTE_FUNCTION => unsupported("a function in FROM"),
                pg_sys::RTEKind::RTE_VALUES => unsupported("VALUES in FROM"),
                t => unsupported(format!("range-table entry kind {t:?}")),
            }
        }
    }

    unsafe fn sub_binding(
        &mut self,
        sub: *mut pg_sys::Query,
        outer: &[Level],
    ) -> R<(Binding, LogicalPlan)> {
        // SAFETY: a subquery of the query.
        unsafe {
            let (plan, types) = self.query(sub, outer, false)?;
            let qualifier = self.alias("s");
            let resnos: Vec<i16> = list::<pg_sys::TargetEntry>((*sub).targetList)
                .into_iter()
                .filter(|t| !(**t).resjunk)
                .map(|t| (*t).resno)
                .collect();
            let names: Vec<String> = plan
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let cols = resnos
                .into_iter()
                .zip(names.into_iter().zip(types))
                .collect();
            let plan = LogicalPlanBuilder::from(plan)
                .alias(qualifier.as_str())?
                .build()?;
            Ok((Binding::Sub { qualifier, cols }, plan))
        }
    }

    /// A scan of omen_columnar table `oid`, or of the omen_columnar leaf
    /// partitions the plan keeps of partitioned table `oid`.
    fn table(
        &mut self,
        oid: pg_sys::Oid,
        inh: bool,
        scan: &str,
        filtered: Option<f64>,
    ) -> R<Arc<OmenTable>> {
        let rel = crate::pg::Relation::open(oid, pg_sys::NoLock as i32);
        // SAFETY: an open relation.
        let relkind = unsafe { (*(*rel.raw()).rd_rel).relkind as u8 };
        let mut rels = Vec::new();
        let mut reltuples = 0.0f32;
        let partitioned = relkind == pg_sys::RELKIND_PARTITIONED_TABLE;
        if partitioned {
            if !inh {
                return unsupported(format!("ONLY on partitioned table {}", rel.name()));
            }
            let leaves = self.leaves.get(&oid.to_u32()).cloned().unwrap_or_default();
            let bounds = super::partitioned::bounds(rel.raw()).unwrap_or_default();
            for leaf in leaves {
                let l =
                    crate::pg::Relation::open(pg_sys::Oid::from(leaf.oid), pg_sys::NoLock as i32);
                scannable(&l)?;
                // SAFETY: an open relation.
                reltuples += unsafe { (*(*l.raw()).rd_rel).reltuples }.max(0.0);
                rels.push(SourceRel {
                    oid: leaf.oid,
                    columns: super::partitioned::column_map(rel.raw(), l.raw())
                        .map_err(Unsupported)?,
                    bound: bounds.get(&leaf.top).copied(),
                });
            }
        } else {
            scannable(&rel)?;
            // SAFETY: an open relation.
            let natts = unsafe { (*(*rel.raw()).rd_att).natts as usize };
            // SAFETY: as above.
            reltuples = unsafe { (*(*rel.raw()).rd_rel).reltuples }.max(0.0);
            rels.push(SourceRel {
                oid: oid.to_u32(),
                columns: (0..natts).map(Some).collect(),
                bound: None,
            });
        }
        let mut columns = Vec::new();
        for (attno, pg) in table_columns(oid) {
            if let Ok(pg) = pg {
                columns.push(SourceColumn {
                    index: attno as usize - 1,
                    pg,
                    estimate: super::settings::statistics()
                        .then(|| ColumnEstimate::lookup(oid, attno, partitioned))
                        .flatten(),
                });
            }
        }
        columns.sort_by_key(|c| c.index);
        let t = Arc::new(
            OmenTable::new(
                scan,
                rel.name(),
                partitioned,
                rels,
                columns,
                reltuples as usize,
                self.partitions,
            )
            .with_filtered_rows(filtered.map(|r| r.max(1.0) as usize)),
        );
        self.tables.push(t.clone());
        Ok(t)
    }

    /// FROM item `node` as a plan (its RTEs bound already).
    unsafe fn from_item(
        &mut self,
        node: *mut pg_sys::Node,
        levels: &[Level],
        plans: &mut HashMap<u32, LogicalPlan>,
    ) -> R<LogicalPlan> {
        // SAFETY: jointree nodes.
        unsafe {
            match (*node).type_ {
                pg_sys::NodeTag::T_RangeTblRef => {
                    let rti = (*(node as *mut pg_sys::RangeTblRef)).rtindex as u32;
                    plans
                        .remove(&rti)
                        .ok_or_else(|| Unsupported("a range-table entry used twice".into()))
                }
                pg_sys::NodeTag::T_JoinExpr => {
                    let j = node as *mut pg_sys::JoinExpr;
                    let l = self.from_item((*j).larg, levels, plans)?;
                    let r = self.from_item((*j).rarg, levels, plans)?;
                    let jt = match (*j).jointype {
                        pg_sys::JoinType::JOIN_INNER => JoinType::Inner,
                        pg_sys::JoinType::JOIN_LEFT => JoinType::Left,
                        pg_sys::JoinType::JOIN_RIGHT => JoinType::Right,
                        pg_sys::JoinType::JOIN_FULL => JoinType::Full,
                        t => return unsupported(format!("join type {t:?}")),
                    };
                    let quals = fold((*j).quals);
                    (*j).quals = quals;
                    if quals.is_null() {
                        return Ok(LogicalPlanBuilder::from(l).cross_join(r)?.build()?);
                    }
                    // The ON clause sees both sides.
                    let both = LogicalPlanBuilder::from(l.clone())
                        .cross_join(r.clone())?
                        .build()?;
                    let cx = Ctx {
                        levels,
                        schema: both.schema(),
                        agg: None,
                    };
                    let on = self.expr(quals, &cx)?;
                    Ok(LogicalPlanBuilder::from(l)
                        .join_on(r, jt, vec![on.e])?
                        .build()?)
                }
                t => unsupported(format!("FROM item {t:?}")),
            }
        }
    }

    /// An aggregate call: the DataFusion aggregates it needs are appended to
    /// `parts` (evaluated over the aggregation's input); the result is the
    /// expression over their output columns that computes it.
    unsafe fn aggregate(
        &mut self,
        a: *mut pg_sys::Aggref,
        cx: &Ctx,
        parts: &mut Vec<Expr>,
    ) -> R<TExpr> {
        // SAFETY: an Aggref of this level.
        unsafe {
            if (*a).agglevelsup != 0 {
                return unsupported("an aggregate of an outer query level");
            }
            if !(*a).aggorder.is_null() && (*a).aggdistinct.is_null() {
                return unsupported("an aggregate with ORDER BY");
            }
            if (*a).aggkind != b'n' as std::ffi::c_char {
                return unsupported("an ordered-set aggregate");
            }
            let name = func_name((*a).aggfnoid);
            let distinct = !(*a).aggdistinct.is_null();
            let args: Vec<*mut pg_sys::TargetEntry> = list((*a).args);
            let mut xs = Vec::new();
            for t in &args {
                xs.push(self.expr((**t).expr as *mut pg_sys::Node, cx)?);
            }
            let filter = if (*a).aggfilter.is_null() {
                None
            } else {
                Some(self.expr(fold((*a).aggfilter as *mut pg_sys::Node), cx)?.e)
            };
            let x = xs.first().cloned();
            if distinct && x.as_ref().is_some_and(|x| x.pg.is_float() || x.pg.is_dyn()) {
                // PostgreSQL's equality: -0 = 0, numerics by value.
                return unsupported(format!(
                    "{name}(DISTINCT …) of floats or mixed-scale numerics"
                ));
            }
            if !super::expr::builtin((*a).aggfnoid) {
                return unsupported(format!("aggregate {name} outside pg_catalog"));
            }
            let (e, pg) = match (name.as_str(), (*a).aggstar, x) {
                ("count", true, _) => (agg::count(lit(1i32)), Pg::Int8),
                ("count", false, Some(x)) => (agg::count(x.e), Pg::Int8),
                ("sum", _, Some(x)) => match x.pg {
                    Pg::Int2 | Pg::Int4 => (
                        agg::sum(cast(x.e, datafusion::arrow::datatypes::DataType::Int64)),
                        Pg::Int8,
                    ),
                    Pg::Int8 => (
                        agg::sum(cast(
                            x.e,
                            datafusion::arrow::datatypes::DataType::Decimal128(38, 0),
                        )),
                        Pg::Numeric {
                            precision: 38,
                            scale: 0,
                        },
                    ),
                    Pg::Numeric { scale, .. } => (
                        agg::sum(x.e),
                        Pg::Numeric {
                            precision: 38,
                            scale,
                        },
                    ),
                    Pg::Float8 => (agg::sum(x.e), Pg::Float8),
                    Pg::MixedNumeric(bound) => {
                        // PostgreSQL's sum keeps the largest display scale
                        // of the values it adds: sum at the bound, then
                        // scale to the largest scale seen.
                        let (s_name, m_name) =
                            (self.agg_name(parts.len()), self.agg_name(parts.len() + 1));
                        let sum = agg::sum(super::functions::at_scale(x.e.clone(), bound));
                        let maxs = agg::max(super::functions::scale_of(x.e));
                        parts.push(
                            self.agg_options(sum, distinct, filter.clone())?
                                .alias(&s_name),
                        );
                        parts.push(self.agg_options(maxs, distinct, filter)?.alias(&m_name));
                        let e = super::functions::with_scale(
                            Expr::Column(Column::from_name(s_name)),
                            Expr::Column(Column::from_name(m_name)),
                        );
                        return Ok(TExpr {
                            e,
                            pg: Pg::MixedNumeric(bound),
                        });
                    }
                    t => return unsupported(format!("sum({t:?})")),
                },
                ("avg", _, Some(x)) if x.pg == Pg::Float8 => (agg::avg(x.e), Pg::Float8),
                ("avg", _, Some(x)) if x.pg.is_int() || matches!(x.pg, Pg::Numeric { .. }) => {
                    // PostgreSQL: sum / count in numeric, scaled per value.
                    use datafusion::arrow::datatypes::DataType;
                    let sum = if let Pg::Numeric { .. } = x.pg {
                        agg::sum(x.e.clone())
                    } else {
                        agg::sum(cast(x.e.clone(), DataType::Decimal128(38, 0)))
                    };
                    let (s_name, c_name) =
                        (self.agg_name(parts.len()), self.agg_name(parts.len() + 1));
                    parts.push(
                        self.agg_options(sum, distinct, filter.clone())?
                            .alias(&s_name),
                    );
                    parts.push(
                        self.agg_options(agg::count(x.e), distinct, filter)?
                            .alias(&c_name),
                    );
                    let count = cast(
                        Expr::Column(Column::from_name(c_name)),
                        DataType::Decimal128(19, 0),
                    );
                    let e = super::functions::num_arith(
                        super::functions::Arith::Div,
                        Expr::Column(Column::from_name(s_name)),
                        count,
                    );
                    return Ok(TExpr {
                        e,
                        pg: Pg::DynNumeric,
                    });
                }
                ("min" | "max", _, Some(x)) => {
                    if x.pg.is_float() || x.pg.is_dyn() {
                        return unsupported(format!("{name}() of {:?}", x.pg));
                    }
                    if x.pg.is_text() && !super::expr::c_collation((*a).inputcollid) {
                        return unsupported(format!("{name}() of text under a non-C collation"));
                    }
                    let e = if name == "min" {
                        agg::min(x.e)
                    } else {
                        agg::max(x.e)
                    };
                    (e, x.pg)
                }
                ("bool_and" | "every", _, Some(x)) => (agg::bool_and(x.e), Pg::Bool),
                ("bool_or", _, Some(x)) => (agg::bool_or(x.e), Pg::Bool),
                ("stddev" | "stddev_samp", _, Some(x)) if x.pg == Pg::Float8 => {
                    (agg::stddev(x.e), Pg::Float8)
                }
                ("stddev_pop", _, Some(x)) if x.pg == Pg::Float8 => {
                    (agg::stddev_pop(x.e), Pg::Float8)
                }
                ("variance" | "var_samp", _, Some(x)) if x.pg == Pg::Float8 => {
                    (agg::var_sample(x.e), Pg::Float8)
                }
                ("var_pop", _, Some(x)) if x.pg == Pg::Float8 => (agg::var_pop(x.e), Pg::Float8),
                (n, _, x) => {
                    return unsupported(format!(
                        "aggregate {n}({})",
                        x.map_or("*".into(), |x| format!("{:?}", x.pg))
                    ))
                }
            };
            let name = self.agg_name(parts.len());
            parts.push(self.agg_options(e, distinct, filter)?.alias(&name));
            Ok(TExpr {
                e: Expr::Column(Column::from_name(name)),
                pg,
            })
        }
    }

    /// `e` with DISTINCT and FILTER applied.
    fn agg_options(&self, e: Expr, distinct: bool, filter: Option<Expr>) -> R<Expr> {
        Ok(match (distinct, filter) {
            (false, None) => e,
            (d, f) => {
                let mut b = if d { e.distinct() } else { e.filter(lit(true)) };
                if let Some(f) = f {
                    b = b.filter(f);
                }
                b.build()?
            }
        })
    }
}

/// Whether the DataFusion scan can read relation `rel` (a table, or a
/// leaf partition) exactly, or why not.
fn scannable(rel: &crate::pg::Relation) -> R<()> {
    // SAFETY: an open relation.
    let (relkind, has_children, has_missing) = unsafe {
        let d = (*rel.raw()).rd_att;
        let missing = (*d)
            .attrs
            .as_slice((*d).natts as usize)
            .iter()
            .any(|a| a.atthasmissing);
        (
            (*(*rel.raw()).rd_rel).relkind as u8,
            (*(*rel.raw()).rd_rel).relhassubclass,
            missing,
        )
    };
    if relkind != pg_sys::RELKIND_RELATION || !crate::columnar::is_columnar(rel.raw()) {
        return unsupported(format!(
            "table {} is not an omen_columnar table",
            rel.name()
        ));
    }
    if has_children {
        return unsupported(format!("table {} has inheritance children", rel.name()));
    }
    if has_missing {
        // ADD COLUMN … DEFAULT: old rows read the stored default.
        return unsupported(format!(
            "table {} has columns added with a default",
            rel.name()
        ));
    }
    Ok(())
}

/// The columns of table `oid`: attno -> type, or why it has none.
fn table_columns(oid: pg_sys::Oid) -> HashMap<i16, Result<Pg, String>> {
    let rel = crate::pg::Relation::open(oid, pg_sys::NoLock as i32);
    // SAFETY: an open relation's descriptor.
    let atts = unsafe {
        let d = (*rel.raw()).rd_att;
        (*d).attrs.as_slice((*d).natts as usize)
    };
    atts.iter()
        .filter(|a| !a.attisdropped)
        .map(|a| (a.attnum, Pg::of(a.atttypid, a.atttypmod)))
        .collect()
}

/// The Aggrefs of this level in `node` (not inside subqueries).
unsafe fn collect_aggrefs(node: *mut pg_sys::Node, out: &mut Vec<*mut pg_sys::Aggref>) {
    #[pgrx::pg_guard]
    unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, cx: *mut std::ffi::c_void) -> bool {
        // SAFETY: called by expression_tree_walker with our Vec.
        unsafe {
            if node.is_null() {
                return false;
            }
            if (*node).type_ == pg_sys::NodeTag::T_Aggref {
                (*(cx as *mut Vec<*mut pg_sys::Aggref>)).push(node as *mut pg_sys::Aggref);
                return false; // nested aggregates are an error in PostgreSQL
            }
            pg_sys::expression_tree_walker(node, Some(walker), cx)
        }
    }
    if node.is_null() {
        return;
    }
    // SAFETY: an expression tree.
    unsafe {
        walker(node, out as *mut Vec<_> as *mut std::ffi::c_void);
    }
}
