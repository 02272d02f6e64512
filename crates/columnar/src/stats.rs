//! Per-row-group column statistics with PostgreSQL comparison semantics.
//!
//! Parquet's own statistics drop NaN and order floats and "char" differently
//! from PostgreSQL, so the writer computes these itself and stores them in
//! the segment's key-value metadata (`omendb.stats`).

use crate::schema::{ColumnKind, Error, Result, Value};

/// Value range of one column over a set of rows (NULLs excluded).
///
/// * `Int`: `Int16`/`Int32`/`Int64` as signed integers; `Char` as its
///   unsigned byte (0..=255), because PostgreSQL compares `"char"` as uint8.
/// * `Float`: `Float32`/`Float64` widened to f64. NaN is excluded from
///   `min`/`max` and flagged by `has_nan` (PostgreSQL sorts NaN above every
///   number). Zero is always recorded as +0.0 (PostgreSQL treats -0 = +0).
///   If every non-NULL value is NaN, `min` is +inf and `max` is -inf (an
///   empty range) with `has_nan` true.
/// * `Bool`: which truth values occur.
/// * `None`: no statistics for this kind, or no non-NULL values.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnStats {
    None,
    Int { min: i64, max: i64 },
    Float { min: f64, max: f64, has_nan: bool },
    Bool { any_false: bool, any_true: bool },
}

/// Statistics of one row group (or, merged, of a whole segment).
#[derive(Clone, Debug, PartialEq)]
pub struct GroupStats {
    pub rows: u64,
    /// NULL count per schema column.
    pub nulls: Vec<u64>,
    /// Value range per schema column.
    pub columns: Vec<ColumnStats>,
}

impl ColumnStats {
    /// Folds one non-NULL value of `kind` into the statistics.
    pub(crate) fn add(&mut self, kind: ColumnKind, value: &Value) {
        let Value::Word(w) = *value else { return };
        let one = match kind {
            ColumnKind::Bool => ColumnStats::Bool {
                any_false: w == 0,
                any_true: w != 0,
            },
            ColumnKind::Char => int(i64::from(w as u8)),
            ColumnKind::Int16 => int(i64::from(w as u16 as i16)),
            ColumnKind::Int32 => int(i64::from(w as u32 as i32)),
            ColumnKind::Int64 => int(w as i64),
            ColumnKind::Float32 => float(f64::from(f32::from_bits(w as u32))),
            ColumnKind::Float64 => float(f64::from_bits(w)),
            ColumnKind::Fixed(_) | ColumnKind::Bytes => return,
        };
        self.merge(&one);
    }

    /// Combines two statistics of the same column.
    pub(crate) fn merge(&mut self, other: &ColumnStats) {
        use ColumnStats::*;
        *self = match (&*self, other) {
            (_, None) => return,
            (None, o) => o.clone(),
            (Int { min: a, max: b }, Int { min: c, max: d }) => Int {
                min: *a.min(c),
                max: *b.max(d),
            },
            (
                Float {
                    min: a,
                    max: b,
                    has_nan: n1,
                },
                Float {
                    min: c,
                    max: d,
                    has_nan: n2,
                },
            ) => Float {
                min: a.min(*c),
                max: b.max(*d),
                has_nan: *n1 || *n2,
            },
            (
                Bool {
                    any_false: f1,
                    any_true: t1,
                },
                Bool {
                    any_false: f2,
                    any_true: t2,
                },
            ) => Bool {
                any_false: *f1 || *f2,
                any_true: *t1 || *t2,
            },
            // Mismatched variants cannot arise from one column; stay safe.
            _ => None,
        };
    }

    fn encode(&self) -> String {
        match self {
            ColumnStats::None => "n".into(),
            ColumnStats::Int { min, max } => format!("i,{min},{max}"),
            ColumnStats::Float { min, max, has_nan } => format!(
                "f,{:x},{:x},{}",
                min.to_bits(),
                max.to_bits(),
                u8::from(*has_nan)
            ),
            ColumnStats::Bool {
                any_false,
                any_true,
            } => format!("b,{},{}", u8::from(*any_false), u8::from(*any_true)),
        }
    }

    fn decode(text: &str) -> Option<ColumnStats> {
        let parts: Vec<&str> = text.split(',').collect();
        let flag = |s: &str| match s {
            "0" => Some(false),
            "1" => Some(true),
            _ => Option::None,
        };
        let bits = |s: &str| u64::from_str_radix(s, 16).ok().map(f64::from_bits);
        Some(match parts.as_slice() {
            ["n"] => ColumnStats::None,
            ["i", min, max] => ColumnStats::Int {
                min: min.parse().ok()?,
                max: max.parse().ok()?,
            },
            ["f", min, max, nan] => ColumnStats::Float {
                min: bits(min)?,
                max: bits(max)?,
                has_nan: flag(nan)?,
            },
            ["b", f, t] => ColumnStats::Bool {
                any_false: flag(f)?,
                any_true: flag(t)?,
            },
            _ => return Option::None,
        })
    }
}

fn int(v: i64) -> ColumnStats {
    ColumnStats::Int { min: v, max: v }
}

fn float(v: f64) -> ColumnStats {
    if v.is_nan() {
        ColumnStats::Float {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            has_nan: true,
        }
    } else {
        // Adding 0.0 turns -0.0 into +0.0 and leaves everything else alone.
        let v = v + 0.0;
        ColumnStats::Float {
            min: v,
            max: v,
            has_nan: false,
        }
    }
}

impl GroupStats {
    pub(crate) fn empty(columns: usize) -> GroupStats {
        GroupStats {
            rows: 0,
            nulls: vec![0; columns],
            columns: vec![ColumnStats::None; columns],
        }
    }

    /// Folds one row into the statistics.
    pub(crate) fn add_row(&mut self, kinds: &[ColumnKind], values: &[Value]) {
        self.rows += 1;
        for (i, (kind, value)) in kinds.iter().zip(values).enumerate() {
            if matches!(value, Value::Null) {
                self.nulls[i] += 1;
            } else {
                self.columns[i].add(*kind, value);
            }
        }
    }

    pub(crate) fn merge(&mut self, other: &GroupStats) {
        self.rows += other.rows;
        for (a, b) in self.nulls.iter_mut().zip(&other.nulls) {
            *a += b;
        }
        for (a, b) in self.columns.iter_mut().zip(&other.columns) {
            a.merge(b);
        }
    }

    /// Text form: `rows|nulls:stat|nulls:stat...`.
    fn encode(&self) -> String {
        let mut s = self.rows.to_string();
        for (nulls, col) in self.nulls.iter().zip(&self.columns) {
            s.push('|');
            s.push_str(&nulls.to_string());
            s.push(':');
            s.push_str(&col.encode());
        }
        s
    }

    fn decode(text: &str, columns: usize) -> Option<GroupStats> {
        let mut parts = text.split('|');
        let rows = parts.next()?.parse().ok()?;
        let mut stats = GroupStats::empty(0);
        stats.rows = rows;
        for part in parts {
            let (nulls, col) = part.split_once(':')?;
            stats.nulls.push(nulls.parse().ok()?);
            stats.columns.push(ColumnStats::decode(col)?);
        }
        (stats.columns.len() == columns).then_some(stats)
    }
}

/// Serializes all groups' statistics, one group per `;`-separated entry.
pub(crate) fn encode_all(groups: &[GroupStats]) -> String {
    let parts: Vec<String> = groups.iter().map(GroupStats::encode).collect();
    parts.join(";")
}

pub(crate) fn decode_all(text: &str, groups: usize, columns: usize) -> Result<Vec<GroupStats>> {
    if groups == 0 {
        return if text.is_empty() {
            Ok(Vec::new())
        } else {
            Err(Error(
                "segment stats list groups but the segment has none".into(),
            ))
        };
    }
    let out: Vec<GroupStats> = text
        .split(';')
        .enumerate()
        .map(|(i, g)| {
            GroupStats::decode(g, columns)
                .ok_or_else(|| Error(format!("segment stats for group {i} are malformed")))
        })
        .collect::<Result<_>>()?;
    if out.len() != groups {
        return Err(Error(format!(
            "segment stats cover {} groups but the segment has {groups}",
            out.len()
        )));
    }
    Ok(out)
}
