//! Functions with PostgreSQL's semantics where DataFusion's differ: checked
//! integer and float arithmetic (PostgreSQL raises 22003 / 22012 where
//! Arrow's operators wrap or return infinities), float comparisons (-0 = 0,
//! NaN equal to itself and above every number), date arithmetic on
//! PostgreSQL's day counts, and ASCII-only case mapping (the C collation).
//!
//! They run on DataFusion's threads and touch no PostgreSQL state; errors
//! carry their SQLSTATE in a [`PgError`] that the main thread raises.

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float32Array, Float64Array,
    Int32Array, Int64Array, StringArray,
};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// An error PostgreSQL would raise, with its SQLSTATE (five characters).
#[derive(Debug)]
pub struct PgError {
    pub sqlstate: &'static str,
    pub message: String,
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PgError {}

pub fn pg_error(sqlstate: &'static str, message: impl Into<String>) -> DataFusionError {
    DataFusionError::External(Box::new(PgError {
        sqlstate,
        message: message.into(),
    }))
}

/// extract()'s image of numeric Infinity (negated: -Infinity), at scale 0.
pub const NUMERIC_INFINITY: i128 = 10i128.pow(37);

pub const OUT_OF_RANGE: &str = "22003";
pub const DIVISION_BY_ZERO: &str = "22012";
pub const DATETIME_OUT_OF_RANGE: &str = "22008";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    /// Whether `a op b` holds when `a` compares to `b` as `o`.
    pub fn holds(self, o: std::cmp::Ordering) -> bool {
        match self {
            Cmp::Eq => o.is_eq(),
            Cmp::Ne => o.is_ne(),
            Cmp::Lt => o.is_lt(),
            Cmp::Le => o.is_le(),
            Cmp::Gt => o.is_gt(),
            Cmp::Ge => o.is_ge(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    /// Checked integer arithmetic on two arrays of one integer type.
    IntArith(Arith),
    /// float8/float4 arithmetic with PostgreSQL's overflow checks.
    FloatArith(Arith),
    FloatCmp(Cmp),
    /// date (days) -> timestamp (microseconds), infinities kept.
    DateToTimestamp,
    /// date + int4 days / date - int4 days.
    DatePlusDays(bool),
    /// date - date -> int4 days (infinite dates are an error).
    DateDiff,
    /// extract(field from date) -> numeric (scale 0).
    ExtractDate(DateField),
    Upper(bool),
    /// numeric arithmetic with a per-value result scale (see `dyn_numeric`).
    NumArith(Arith),
    NumCmp(Cmp),
    /// Decimal128 -> per-value-scale numeric.
    ToDyn,
    /// Any numeric -> Decimal128(38, scale), exactly.
    AtScale(i8),
    /// Per-value-scale numeric -> its scale.
    ScaleOf,
    /// (Decimal128(38, s), scale) -> per-value-scale numeric at that scale.
    WithScale,
    /// bool -> Int8 (true: 1), or back (nonzero: true): opaque to
    /// DataFusion's simplifier (see `expr::guarded_bool_case`).
    BoolInt(bool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DateField {
    Year,
    Quarter,
    Month,
    Day,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgFn {
    name: String,
    kind: Kind,
    signature: Signature,
    ret: DataType,
}

/// Whether `f` is one of these functions and returns NULL whenever an
/// argument is NULL (as PostgreSQL's strict functions do): a filter on
/// its result then rejects the NULL rows of an outer join's nullable side
/// (see `outer_join`).
pub fn is_strict(f: &ScalarUDF) -> bool {
    let Some(f) = f.inner().as_any().downcast_ref::<PgFn>() else {
        return false;
    };
    // Listed one by one so that a new kind decides: each of these maps a
    // NULL in any argument to NULL (see `eval`).
    match f.kind {
        Kind::IntArith(_)
        | Kind::FloatArith(_)
        | Kind::FloatCmp(_)
        | Kind::DateToTimestamp
        | Kind::DatePlusDays(_)
        | Kind::DateDiff
        | Kind::ExtractDate(_)
        | Kind::Upper(_)
        | Kind::NumArith(_)
        | Kind::NumCmp(_)
        | Kind::ToDyn
        | Kind::AtScale(_)
        | Kind::ScaleOf
        | Kind::WithScale
        | Kind::BoolInt(_) => true,
    }
}

fn udf(name: String, kind: Kind, args: Vec<DataType>, ret: DataType) -> ScalarUDF {
    ScalarUDF::new_from_impl(PgFn {
        name,
        kind,
        signature: Signature::exact(args, Volatility::Immutable),
        ret,
    })
}

fn call(f: ScalarUDF, args: Vec<Expr>) -> Expr {
    f.call(args)
}

pub fn int_arith(op: Arith, ty: DataType, a: Expr, b: Expr) -> Expr {
    let name = format!("pg_{}_{op:?}", ty).to_lowercase();
    call(
        udf(name, Kind::IntArith(op), vec![ty.clone(), ty.clone()], ty),
        vec![a, b],
    )
}

pub fn float_arith(op: Arith, ty: DataType, a: Expr, b: Expr) -> Expr {
    let name = format!("pg_{}_{op:?}", ty).to_lowercase();
    call(
        udf(name, Kind::FloatArith(op), vec![ty.clone(), ty.clone()], ty),
        vec![a, b],
    )
}

pub fn float_cmp(op: Cmp, a: Expr, b: Expr) -> Expr {
    let name = format!("pg_float_{op:?}").to_lowercase();
    let t = DataType::Float64;
    call(
        udf(
            name,
            Kind::FloatCmp(op),
            vec![t.clone(), t],
            DataType::Boolean,
        ),
        vec![a, b],
    )
}

/// `a` (boolean) as Int8, or (`to_int` false) Int8 `a` as boolean, through
/// a function DataFusion's simplifier does not see through.
pub fn bool_int(to_int: bool, a: Expr) -> Expr {
    let (name, from, to) = if to_int {
        ("pg_bool_int8", DataType::Boolean, DataType::Int8)
    } else {
        ("pg_int8_bool", DataType::Int8, DataType::Boolean)
    };
    call(
        udf(name.into(), Kind::BoolInt(to_int), vec![from], to),
        vec![a],
    )
}

pub fn date_to_timestamp(a: Expr) -> Expr {
    call(
        udf(
            "pg_date_timestamp".into(),
            Kind::DateToTimestamp,
            vec![DataType::Int32],
            DataType::Int64,
        ),
        vec![a],
    )
}

pub fn date_plus_days(minus: bool, a: Expr, days: Expr) -> Expr {
    let name = if minus { "pg_date_mii" } else { "pg_date_pli" };
    call(
        udf(
            name.into(),
            Kind::DatePlusDays(minus),
            vec![DataType::Int32, DataType::Int32],
            DataType::Int32,
        ),
        vec![a, days],
    )
}

pub fn date_diff(a: Expr, b: Expr) -> Expr {
    call(
        udf(
            "pg_date_mi".into(),
            Kind::DateDiff,
            vec![DataType::Int32, DataType::Int32],
            DataType::Int32,
        ),
        vec![a, b],
    )
}

pub fn extract_date(field: DateField, a: Expr) -> Expr {
    let name = format!("pg_extract_{field:?}").to_lowercase();
    call(
        udf(
            name,
            Kind::ExtractDate(field),
            vec![DataType::Int32],
            DataType::Decimal128(38, 0),
        ),
        vec![a],
    )
}

/// The Arrow type of numeric values whose display scale varies per value
/// (results of division and `avg`): the unscaled value and its scale.
pub fn dyn_numeric() -> DataType {
    use datafusion::arrow::datatypes::{Field, Fields};
    DataType::Struct(Fields::from(vec![
        Field::new("u", DataType::Decimal128(38, 0), true),
        Field::new("s", DataType::Int8, true),
    ]))
}

/// numeric `a op b` with PostgreSQL's result scales; either side may be a
/// Decimal128 or a per-value-scale numeric.
pub fn num_arith(op: Arith, a: Expr, b: Expr) -> Expr {
    let name = format!("pg_numeric_{op:?}").to_lowercase();
    let f = ScalarUDF::new_from_impl(PgFn {
        name,
        kind: Kind::NumArith(op),
        signature: Signature::any(2, Volatility::Immutable),
        ret: dyn_numeric(),
    });
    f.call(vec![a, b])
}

pub fn num_cmp(op: Cmp, a: Expr, b: Expr) -> Expr {
    let name = format!("pg_numeric_{op:?}").to_lowercase();
    let f = ScalarUDF::new_from_impl(PgFn {
        name,
        kind: Kind::NumCmp(op),
        signature: Signature::any(2, Volatility::Immutable),
        ret: DataType::Boolean,
    });
    f.call(vec![a, b])
}

fn any_udf(name: &str, kind: Kind, n: usize, ret: DataType, args: Vec<Expr>) -> Expr {
    ScalarUDF::new_from_impl(PgFn {
        name: name.to_string(),
        kind,
        signature: Signature::any(n, Volatility::Immutable),
        ret,
    })
    .call(args)
}

pub fn to_dyn(a: Expr) -> Expr {
    any_udf("pg_numeric_dyn", Kind::ToDyn, 1, dyn_numeric(), vec![a])
}

pub fn at_scale(a: Expr, scale: i8) -> Expr {
    any_udf(
        &format!("pg_numeric_at_scale_{scale}"),
        Kind::AtScale(scale),
        1,
        DataType::Decimal128(38, scale),
        vec![a],
    )
}

pub fn scale_of(a: Expr) -> Expr {
    any_udf(
        "pg_numeric_scale",
        Kind::ScaleOf,
        1,
        DataType::Int8,
        vec![a],
    )
}

pub fn with_scale(a: Expr, scale: Expr) -> Expr {
    any_udf(
        "pg_numeric_with_scale",
        Kind::WithScale,
        2,
        dyn_numeric(),
        vec![a, scale],
    )
}

/// Build a per-value-scale numeric array from (unscaled, scale) rows.
fn dyn_array(rows: impl Iterator<Item = Result<Option<(i128, i32)>>>) -> Result<ArrayRef> {
    use datafusion::arrow::array::{Decimal128Builder, Int8Builder, StructArray};
    let mut u = Decimal128Builder::new();
    let mut sc = Int8Builder::new();
    for r in rows {
        match r? {
            Some((v, s)) => {
                let s = i8::try_from(s)
                    .map_err(|_| num_error(omendb_columnar::numeric::NumError::TooLarge))?;
                u.append_value(v);
                sc.append_value(s);
            }
            None => {
                u.append_null();
                sc.append_null();
            }
        }
    }
    let DataType::Struct(fields) = dyn_numeric() else {
        unreachable!()
    };
    let u = Arc::new(u.finish().with_precision_and_scale(38, 0)?) as ArrayRef;
    let sc = Arc::new(sc.finish()) as ArrayRef;
    let nulls = u.logical_nulls();
    Ok(Arc::new(StructArray::try_new(fields, vec![u, sc], nulls)?))
}

/// Row `i` of a numeric array (Decimal128 or per-value-scale) as
/// (unscaled, scale), None for NULL.
pub fn numeric_at(a: &ArrayRef, i: usize) -> Option<(i128, i32)> {
    if a.is_null(i) {
        return None;
    }
    match a.data_type() {
        DataType::Decimal128(_, s) => Some((
            a.as_primitive::<datafusion::arrow::datatypes::Decimal128Type>()
                .value(i),
            *s as i32,
        )),
        DataType::Struct(_) => {
            let st = a.as_struct();
            let u = st
                .column(0)
                .as_primitive::<datafusion::arrow::datatypes::Decimal128Type>();
            let s = st
                .column(1)
                .as_primitive::<datafusion::arrow::datatypes::Int8Type>();
            (!u.is_null(i)).then(|| (u.value(i), s.value(i) as i32))
        }
        _ => None,
    }
}

fn num_error(e: omendb_columnar::numeric::NumError) -> DataFusionError {
    match e {
        omendb_columnar::numeric::NumError::DivisionByZero => pg_error(DIVISION_BY_ZERO, "division by zero"),
        omendb_columnar::numeric::NumError::TooLarge => pg_error(
            OUT_OF_RANGE,
            "numeric result needs more than 38 digits in omendb's DataFusion scan; set omendb.datafusion = off for this query",
        ),
    }
}

pub fn ascii_case(upper: bool, a: Expr) -> Expr {
    let name = if upper { "pg_upper_c" } else { "pg_lower_c" };
    call(
        udf(
            name.into(),
            Kind::Upper(upper),
            vec![DataType::Utf8],
            DataType::Utf8,
        ),
        vec![a],
    )
}

fn arrow_err(e: ArrowError, ty: &DataType) -> DataFusionError {
    match e {
        ArrowError::DivideByZero => pg_error(DIVISION_BY_ZERO, "division by zero"),
        ArrowError::ArithmeticOverflow(_) => {
            let what = match ty {
                DataType::Int16 => "smallint out of range",
                DataType::Int64 => "bigint out of range",
                _ => "integer out of range",
            };
            pg_error(OUT_OF_RANGE, what)
        }
        e => DataFusionError::ArrowError(Box::new(e), None),
    }
}

/// PostgreSQL's day count of 2000-01-01 from 4713-11-24 BC (Julian day).
const POSTGRES_EPOCH_JDATE: i64 = 2_451_545;
const USECS_PER_DAY: i64 = 86_400_000_000;
/// Last Julian day a date may hold (5874897-12-31), and the first (4713 BC).
const DATE_END_JULIAN: i64 = 2_147_483_494;
const DATE_MIN: i32 = i32::MIN;
const DATE_MAX: i32 = i32::MAX;

/// PostgreSQL's j2date: (year, month, day) of Julian day `jd`.
fn j2date(jd: i64) -> (i64, i64, i64) {
    let mut julian = jd as u64 as u32 as i64 + 32044;
    let mut quad = julian / 146097;
    let extra = (julian - quad * 146097) * 4 + 3;
    julian += 60 + quad * 3 + extra / 146097;
    quad = julian / 1461;
    julian -= quad * 1461;
    let mut y = julian * 4 / 1461;
    julian = if y != 0 {
        (julian + 305) % 365
    } else {
        (julian + 306) % 366
    } + 123;
    y += quad * 4;
    let year = y - 4800;
    let quad = julian * 2141 / 65536;
    let day = julian - 7834 * quad / 256;
    let month = (quad + 10) % 12 + 1;
    (year, month, day)
}

impl ScalarUDFImpl for PgFn {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.ret.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let n = if scalar { 1 } else { args.number_rows };
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(n))
            .collect::<Result<_>>()?;
        let out = self.eval(&arrays)?;
        if scalar {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

impl PgFn {
    fn eval(&self, a: &[ArrayRef]) -> Result<ArrayRef> {
        match self.kind {
            Kind::IntArith(op) => {
                let (x, y) = (&a[0], &a[1]);
                let r = match op {
                    Arith::Add => numeric::add(x, y),
                    Arith::Sub => numeric::sub(x, y),
                    Arith::Mul => numeric::mul(x, y),
                    Arith::Div => numeric::div(x, y),
                    Arith::Mod => {
                        // PostgreSQL: x % -1 is 0, also for the minimum value
                        // (where Arrow's checked remainder overflows).
                        use datafusion::arrow::compute::kernels::{cmp, zip::zip};
                        use datafusion::common::ScalarValue;
                        let t = &self.ret;
                        let minus_one = ScalarValue::new_negative_one(t)?.to_scalar()?;
                        let one = ScalarValue::new_one(t)?.to_scalar()?;
                        let zero = ScalarValue::new_zero(t)?.to_scalar()?;
                        let mask = cmp::eq(y, &minus_one)?;
                        let y1 = zip(&mask, &one, y)?;
                        numeric::rem(x, &y1).and_then(|r| zip(&mask, &zero, &r))
                    }
                };
                r.map_err(|e| arrow_err(e, &self.ret))
            }
            Kind::FloatArith(op) => match self.ret {
                DataType::Float32 => {
                    let (x, y) = (
                        a[0].as_primitive::<Float32Type>(),
                        a[1].as_primitive::<Float32Type>(),
                    );
                    let mut err = None;
                    let r: Float32Array = x
                        .iter()
                        .zip(y.iter())
                        .map(|(p, q)| {
                            Some(float_op(op, p? as f64, q? as f64, true, &mut err) as f32)
                        })
                        .collect();
                    err.map_or(Ok(Arc::new(r) as ArrayRef), Err)
                }
                _ => {
                    let (x, y) = (
                        a[0].as_primitive::<Float64Type>(),
                        a[1].as_primitive::<Float64Type>(),
                    );
                    let mut err = None;
                    let r: Float64Array = x
                        .iter()
                        .zip(y.iter())
                        .map(|(p, q)| Some(float_op(op, p?, q?, false, &mut err)))
                        .collect();
                    err.map_or(Ok(Arc::new(r) as ArrayRef), Err)
                }
            },
            Kind::FloatCmp(op) => {
                let (x, y) = (
                    a[0].as_primitive::<Float64Type>(),
                    a[1].as_primitive::<Float64Type>(),
                );
                let r: BooleanArray = x
                    .iter()
                    .zip(y.iter())
                    .map(|(p, q)| {
                        let o = float_order(p?, q?);
                        Some(op.holds(o))
                    })
                    .collect();
                Ok(Arc::new(r))
            }
            Kind::DateToTimestamp => {
                let x = a[0].as_primitive::<Int32Type>();
                let mut err = None;
                let r: Int64Array = x
                    .iter()
                    .map(|d| {
                        Some(match d? {
                            DATE_MIN => i64::MIN,
                            DATE_MAX => i64::MAX,
                            d => match (d as i64).checked_mul(USECS_PER_DAY) {
                                Some(t) if t != i64::MAX && t != i64::MIN => t,
                                _ => {
                                    err = Some(pg_error(
                                        DATETIME_OUT_OF_RANGE,
                                        "date out of range for timestamp",
                                    ));
                                    0
                                }
                            },
                        })
                    })
                    .collect();
                err.map_or(Ok(Arc::new(r) as ArrayRef), Err)
            }
            Kind::DatePlusDays(minus) => {
                let (x, y) = (
                    a[0].as_primitive::<Int32Type>(),
                    a[1].as_primitive::<Int32Type>(),
                );
                let mut err = None;
                let r: Int32Array = x
                    .iter()
                    .zip(y.iter())
                    .map(|(d, k)| {
                        let (d, k) = (d?, k?);
                        if d == DATE_MIN || d == DATE_MAX {
                            return Some(d);
                        }
                        let v = if minus {
                            d as i64 - k as i64
                        } else {
                            d as i64 + k as i64
                        };
                        let jd = v + POSTGRES_EPOCH_JDATE;
                        if !(0..DATE_END_JULIAN).contains(&jd) || v < i32::MIN as i64 + 1 {
                            err = Some(pg_error(DATETIME_OUT_OF_RANGE, "date out of range"));
                            return None;
                        }
                        Some(v as i32)
                    })
                    .collect();
                err.map_or(Ok(Arc::new(r) as ArrayRef), Err)
            }
            Kind::DateDiff => {
                let (x, y) = (
                    a[0].as_primitive::<Int32Type>(),
                    a[1].as_primitive::<Int32Type>(),
                );
                let mut err = None;
                let r: Int32Array = x
                    .iter()
                    .zip(y.iter())
                    .map(|(p, q)| {
                        let (p, q) = (p?, q?);
                        if [p, q].iter().any(|&d| d == DATE_MIN || d == DATE_MAX) {
                            err = Some(pg_error(
                                DATETIME_OUT_OF_RANGE,
                                "cannot subtract infinite dates",
                            ));
                            return None;
                        }
                        Some(p - q)
                    })
                    .collect();
                err.map_or(Ok(Arc::new(r) as ArrayRef), Err)
            }
            Kind::ExtractDate(field) => {
                let x = a[0].as_primitive::<Int32Type>();
                let r: Decimal128Array = x
                    .iter()
                    .map(|d| {
                        let d = d?;
                        // extract(year) of an infinite date is numeric
                        // ±Infinity (sentinels above / below every year);
                        // fields that do not grow with time are NULL.
                        if d == DATE_MAX || d == DATE_MIN {
                            let sign = if d == DATE_MAX { 1 } else { -1 };
                            return (field == DateField::Year).then_some(sign * NUMERIC_INFINITY);
                        }
                        let (y, m, day) = j2date(d as i64 + POSTGRES_EPOCH_JDATE);
                        // PostgreSQL counts years BC as negative, with no year 0.
                        let y = if y <= 0 { y - 1 } else { y };
                        Some(match field {
                            DateField::Year => y,
                            DateField::Quarter => (m - 1) / 3 + 1,
                            DateField::Month => m,
                            DateField::Day => day,
                        } as i128)
                    })
                    .collect();
                Ok(Arc::new(r.with_precision_and_scale(38, 0)?))
            }
            Kind::NumArith(op) => {
                use datafusion::arrow::array::{Decimal128Builder, Int8Builder, StructArray};
                use omendb_columnar::numeric as n;
                let len = a[0].len();
                let mut u = Decimal128Builder::with_capacity(len);
                let mut sc = Int8Builder::with_capacity(len);
                for i in 0..len {
                    let (Some((x, sx)), Some((y, sy))) =
                        (numeric_at(&a[0], i), numeric_at(&a[1], i))
                    else {
                        u.append_null();
                        sc.append_null();
                        continue;
                    };
                    // Display scales: a Decimal128's is its type scale, a
                    // per-value numeric's is its own.
                    let r = match op {
                        Arith::Add => n::add(x, sx, y, sy, false),
                        Arith::Sub => n::add(x, sx, y, sy, true),
                        Arith::Mul => n::mul(x, sx, y, sy),
                        Arith::Div => n::div(x, sx, sx, y, sy, sy),
                        Arith::Mod => return Err(pg_error("0A000", "numeric modulo")),
                    };
                    let (v, s) = r.map_err(num_error)?;
                    let s = i8::try_from(s).map_err(|_| num_error(n::NumError::TooLarge))?;
                    u.append_value(v);
                    sc.append_value(s);
                }
                let DataType::Struct(fields) = dyn_numeric() else {
                    unreachable!()
                };
                let u = Arc::new(u.finish().with_precision_and_scale(38, 0)?) as ArrayRef;
                let sc = Arc::new(sc.finish()) as ArrayRef;
                let nulls = u.logical_nulls();
                Ok(Arc::new(StructArray::try_new(fields, vec![u, sc], nulls)?))
            }
            Kind::ToDyn => dyn_array((0..a[0].len()).map(|i| Ok(numeric_at(&a[0], i)))),
            Kind::ScaleOf => {
                let r: datafusion::arrow::array::Int8Array = (0..a[0].len())
                    .map(|i| numeric_at(&a[0], i).map(|(_, s)| s as i8))
                    .collect();
                Ok(Arc::new(r))
            }
            Kind::AtScale(to) => {
                let mut err = None;
                let r: Decimal128Array = (0..a[0].len())
                    .map(|i| {
                        let (v, s) = numeric_at(&a[0], i)?;
                        let up = (to as i32 - s) as u32;
                        let out = 10i128.checked_pow(up).and_then(|m| v.checked_mul(m));
                        if out.is_none() {
                            err = Some(num_error(omendb_columnar::numeric::NumError::TooLarge));
                        }
                        out
                    })
                    .collect();
                match err {
                    Some(e) => Err(e),
                    None => Ok(Arc::new(r.with_precision_and_scale(38, to)?)),
                }
            }
            Kind::BoolInt(_) => Ok(datafusion::arrow::compute::cast(&a[0], &self.ret)?),
            Kind::WithScale => {
                let n = a[0].len();
                let scales = a[1].as_primitive::<datafusion::arrow::datatypes::Int8Type>();
                dyn_array((0..n).map(|i| {
                    let Some((v, s)) = numeric_at(&a[0], i) else {
                        return Ok(None);
                    };
                    if scales.is_null(i) {
                        return Ok(None);
                    }
                    let to = scales.value(i) as i32;
                    // Every summed value had at most scale `to`: exact.
                    let d = 10i128.pow((s - to).max(0) as u32);
                    Ok(Some((v / d, to)))
                }))
            }
            Kind::NumCmp(op) => {
                let len = a[0].len();
                let r: BooleanArray = (0..len)
                    .map(|i| {
                        let (x, sx) = numeric_at(&a[0], i)?;
                        let (y, sy) = numeric_at(&a[1], i)?;
                        let o = omendb_columnar::numeric::cmp(x, sx, y, sy);
                        Some(op.holds(o))
                    })
                    .collect();
                Ok(Arc::new(r))
            }
            Kind::Upper(upper) => {
                let x: &StringArray = a[0].as_string::<i32>();
                let r: StringArray = x
                    .iter()
                    .map(|s| {
                        s.map(|s| {
                            if upper {
                                s.to_ascii_uppercase()
                            } else {
                                s.to_ascii_lowercase()
                            }
                        })
                    })
                    .collect();
                Ok(Arc::new(r))
            }
        }
    }
}

/// PostgreSQL's float order: NaN equals NaN and sorts above everything,
/// -0 equals 0.
pub fn float_order(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).expect("not NaN"),
    }
}

/// One float operation with float8pl/float8mul/float8div's checks.
fn float_op(op: Arith, a: f64, b: f64, f4: bool, err: &mut Option<DataFusionError>) -> f64 {
    let narrow = |v: f64| if f4 { v as f32 as f64 } else { v };
    let r = narrow(match op {
        Arith::Add => a + b,
        Arith::Sub => a - b,
        Arith::Mul => a * b,
        Arith::Div => {
            if b == 0.0 && !a.is_nan() {
                *err = Some(pg_error(DIVISION_BY_ZERO, "division by zero"));
                return 0.0;
            }
            a / b
        }
        Arith::Mod => f64::NAN,
    });
    if r.is_infinite() && !a.is_infinite() && !b.is_infinite() {
        *err = Some(pg_error(OUT_OF_RANGE, "value out of range: overflow"));
    }
    let underflow = match op {
        Arith::Mul => r == 0.0 && a != 0.0 && b != 0.0,
        Arith::Div => r == 0.0 && a != 0.0 && !b.is_infinite(),
        _ => false,
    };
    if underflow {
        *err = Some(pg_error(OUT_OF_RANGE, "value out of range: underflow"));
    }
    r
}

/// The PostgreSQL error in `e`'s chain, if any.
pub fn find_pg_error(e: &DataFusionError) -> Option<&PgError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(pg) = err.downcast_ref::<PgError>() {
            return Some(pg);
        }
        if let Some(DataFusionError::External(b)) = err.downcast_ref::<DataFusionError>() {
            if let Some(pg) = b.downcast_ref::<PgError>() {
                return Some(pg);
            }
        }
        if let Some(DataFusionError::Shared(s)) = err.downcast_ref::<DataFusionError>() {
            if let Some(pg) = find_pg_error(s) {
                return Some(pg);
            }
        }
        if let Some(DataFusionError::Context(_, inner)) = err.downcast_ref::<DataFusionError>() {
            if let Some(pg) = find_pg_error(inner) {
                return Some(pg);
            }
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn j2date_matches_postgres() {
        // 2000-01-01 is day 0; 1970-01-01 is -10957; 2024-02-29 is 8825.
        assert_eq!(j2date(POSTGRES_EPOCH_JDATE), (2000, 1, 1));
        assert_eq!(j2date(POSTGRES_EPOCH_JDATE - 10957), (1970, 1, 1));
        assert_eq!(j2date(POSTGRES_EPOCH_JDATE + 8825), (2024, 2, 29));
    }
}
