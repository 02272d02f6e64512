//! Column kinds, schemas, values and errors shared by row records and segments.

use std::fmt;

use arrow_schema::DataType;

/// Physical shape of a PostgreSQL column, as far as storage is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// PG `bool`: word 0/1.
    Bool,
    /// PG `"char"` (typlen 1 byval): low 8 bits of the word -> Arrow Int8.
    Char,
    /// typlen 2 byval: low 16 bits -> Arrow Int16.
    Int16,
    /// typlen 4 byval (int4, date, oid, enum...) -> Arrow Int32.
    Int32,
    /// typlen 8 byval (int8, timestamp, time, money...) -> Arrow Int64.
    Int64,
    /// float4: low 32 bits are the f32 bit pattern -> Arrow Float32.
    Float32,
    /// float8: the word is the f64 bit pattern -> Arrow Float64.
    Float64,
    /// typlen > 0 by reference: exactly that many bytes -> Arrow FixedSizeBinary.
    Fixed(u16),
    /// varlena payload without header, or cstring without NUL -> Arrow LargeBinary.
    Bytes,
}

impl ColumnKind {
    /// Stable textual tag used in segment metadata.
    pub(crate) fn tag(self) -> String {
        match self {
            ColumnKind::Bool => "bool".into(),
            ColumnKind::Char => "char".into(),
            ColumnKind::Int16 => "int16".into(),
            ColumnKind::Int32 => "int32".into(),
            ColumnKind::Int64 => "int64".into(),
            ColumnKind::Float32 => "float32".into(),
            ColumnKind::Float64 => "float64".into(),
            ColumnKind::Fixed(n) => format!("fixed{n}"),
            ColumnKind::Bytes => "bytes".into(),
        }
    }

    pub(crate) fn from_tag(tag: &str) -> Option<ColumnKind> {
        Some(match tag {
            "bool" => ColumnKind::Bool,
            "char" => ColumnKind::Char,
            "int16" => ColumnKind::Int16,
            "int32" => ColumnKind::Int32,
            "int64" => ColumnKind::Int64,
            "float32" => ColumnKind::Float32,
            "float64" => ColumnKind::Float64,
            "bytes" => ColumnKind::Bytes,
            t => ColumnKind::Fixed(t.strip_prefix("fixed")?.parse().ok()?),
        })
    }

    /// Arrow type used in segments. Bytes uses LargeBinary because a row group
    /// of large varlenas can exceed the 2 GiB offset range of Binary.
    pub(crate) fn arrow_type(self) -> DataType {
        match self {
            ColumnKind::Bool => DataType::Boolean,
            ColumnKind::Char => DataType::Int8,
            ColumnKind::Int16 => DataType::Int16,
            ColumnKind::Int32 => DataType::Int32,
            ColumnKind::Int64 => DataType::Int64,
            ColumnKind::Float32 => DataType::Float32,
            ColumnKind::Float64 => DataType::Float64,
            ColumnKind::Fixed(n) => DataType::FixedSizeBinary(i32::from(n)),
            ColumnKind::Bytes => DataType::LargeBinary,
        }
    }

    /// True for kinds whose values travel as [`Value::Word`].
    pub(crate) fn is_byval(self) -> bool {
        !matches!(self, ColumnKind::Fixed(_) | ColumnKind::Bytes)
    }

    /// Bytes occupied by a byval value in a row record.
    pub(crate) fn word_width(self) -> usize {
        match self {
            ColumnKind::Bool | ColumnKind::Char => 1,
            ColumnKind::Int16 => 2,
            ColumnKind::Int32 | ColumnKind::Float32 => 4,
            _ => 8,
        }
    }
}

/// Canonical decoded form of a word for `kind` (see the crate docs).
pub(crate) fn canonical_word(kind: ColumnKind, w: u64) -> u64 {
    match kind {
        ColumnKind::Bool => u64::from(w != 0),
        ColumnKind::Char => w as u8 as i8 as i64 as u64,
        ColumnKind::Int16 => w as u16 as i16 as i64 as u64,
        ColumnKind::Int32 => w as u32 as i32 as i64 as u64,
        ColumnKind::Float32 => u64::from(w as u32),
        _ => w,
    }
}

/// One column of a table as the caller sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub kind: ColumnKind,
    pub type_oid: u32,
    pub typmod: i32,
}

/// Ordered columns of a table (excluding the hidden row-number column).
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    pub columns: Vec<ColumnSpec>,
}

/// One value. Word holds byval data (the caller's Datum as u64); Bytes holds
/// by-reference data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Word(u64),
    Bytes(&'a [u8]),
}

/// Describes why a value does not fit a column, or None if it does.
pub(crate) fn value_mismatch(kind: ColumnKind, value: &Value) -> Option<String> {
    match (kind, value) {
        (_, Value::Null) => None,
        (k, Value::Word(_)) if k.is_byval() => None,
        (ColumnKind::Bytes, Value::Bytes(_)) => None,
        (ColumnKind::Fixed(n), Value::Bytes(b)) if b.len() == usize::from(n) => None,
        (ColumnKind::Fixed(n), Value::Bytes(b)) => {
            Some(format!("fixed({n}) value has {} bytes", b.len()))
        }
        (k, Value::Word(_)) => Some(format!("{} column given a word", k.tag())),
        (k, Value::Bytes(_)) => Some(format!("{} column given bytes", k.tag())),
    }
}

/// A codec error; the message says what is wrong.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<parquet::errors::ParquetError> for Error {
    fn from(e: parquet::errors::ParquetError) -> Self {
        Error(format!("parquet: {e}"))
    }
}

impl From<arrow_schema::ArrowError> for Error {
    fn from(e: arrow_schema::ArrowError) -> Self {
        Error(format!("arrow: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error(msg.into()))
}

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

pub(crate) fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    s.chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// Serializes a schema for the segment metadata: one `kind,oid,typmod,hexname`
/// entry per column, separated by `;`. Names are hex so any text survives.
pub(crate) fn encode_schema(schema: &Schema) -> String {
    let cols: Vec<String> = schema
        .columns
        .iter()
        .map(|c| {
            format!(
                "{},{},{},{}",
                c.kind.tag(),
                c.type_oid,
                c.typmod,
                hex_encode(c.name.as_bytes())
            )
        })
        .collect();
    cols.join(";")
}

pub(crate) fn decode_schema(text: &str) -> Result<Schema> {
    let mut columns = Vec::new();
    if text.is_empty() {
        return Ok(Schema { columns });
    }
    for (i, entry) in text.split(';').enumerate() {
        let bad = || Error(format!("segment schema entry {i} is malformed"));
        let parts: Vec<&str> = entry.split(',').collect();
        if parts.len() != 4 {
            return Err(bad());
        }
        let kind = ColumnKind::from_tag(parts[0]).ok_or_else(bad)?;
        let type_oid = parts[1].parse().map_err(|_| bad())?;
        let typmod = parts[2].parse().map_err(|_| bad())?;
        let name = hex_decode(parts[3])
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        columns.push(ColumnSpec {
            name,
            kind,
            type_oid,
            typmod,
        });
    }
    Ok(Schema { columns })
}

/// Checks a stored schema against the caller's, naming the first difference.
pub(crate) fn check_schema(stored: &Schema, expected: &Schema) -> Result<()> {
    if stored.columns.len() != expected.columns.len() {
        return err(format!(
            "segment has {} columns, expected {}",
            stored.columns.len(),
            expected.columns.len()
        ));
    }
    for (i, (s, e)) in stored.columns.iter().zip(&expected.columns).enumerate() {
        if s.kind != e.kind {
            return err(format!(
                "segment column {i} kind {} differs from expected {}",
                s.kind.tag(),
                e.kind.tag()
            ));
        }
        if s.type_oid != e.type_oid {
            return err(format!(
                "segment column {i} type oid {} differs from expected {}",
                s.type_oid, e.type_oid
            ));
        }
        if s.typmod != e.typmod {
            return err(format!(
                "segment column {i} typmod {} differs from expected {}",
                s.typmod, e.typmod
            ));
        }
        if s.name != e.name {
            return err(format!(
                "segment column {i} name {:?} differs from expected {:?}",
                s.name, e.name
            ));
        }
    }
    Ok(())
}
