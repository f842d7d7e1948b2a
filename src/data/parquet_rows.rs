//! Parquet files (the Hub's dataset format) as records: one JSON object per row.

use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use serde_json::Value;

use crate::error::{Error, Result};

/// The rows of `path` as JSON objects, numbered by row (1-based, across row groups).
pub(crate) fn parquet_rows(path: &Path) -> Result<Vec<(usize, String)>> {
    let bad = |e: parquet::errors::ParquetError| Error::format(path, format!("not a readable Parquet file: {e}"));
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(bad)?;
    let mut rows = Vec::with_capacity(reader.metadata().file_metadata().num_rows().max(0) as usize);
    for (i, row) in reader.get_row_iter(None).map_err(bad)?.enumerate() {
        let row = row.map_err(|e| Error::Record { path: path.into(), line: i + 1, message: e.to_string() })?;
        // Parquet has no absent field, only null: a null column reads as absent (a dataset mixing
        // shapes in one table fills the others' columns with null).
        let Value::Object(mut fields) = row_json(&row) else { unreachable!("a row is an object") };
        fields.retain(|_, v| !v.is_null());
        rows.push((i + 1, Value::Object(fields).to_string()));
    }
    Ok(rows)
}

fn row_json(row: &Row) -> Value {
    Value::Object(row.get_column_iter().map(|(name, field)| (name.clone(), field_json(field))).collect())
}

/// A Parquet value as JSON. Unlike the parquet crate's own conversion, a binary column that holds
/// UTF-8 (older writers store strings without the UTF8 annotation) becomes its text, not base64.
fn field_json(field: &Field) -> Value {
    let number = |x: f64| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
    match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(n) => (*n).into(),
        Field::Short(n) => (*n).into(),
        Field::Int(n) => (*n).into(),
        Field::Long(n) => (*n).into(),
        Field::UByte(n) => (*n).into(),
        Field::UShort(n) => (*n).into(),
        Field::UInt(n) => (*n).into(),
        Field::ULong(n) => (*n).into(),
        Field::Float16(x) => number(f64::from(*x)),
        Field::Float(x) => number(f64::from(*x)),
        Field::Double(x) => number(*x),
        Field::Str(s) => Value::String(s.clone()),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => Value::Array(b.data().iter().map(|&x| x.into()).collect()),
        },
        Field::Group(row) => row_json(row),
        Field::ListInternal(list) => Value::Array(list.elements().iter().map(field_json).collect()),
        Field::MapInternal(map) => Value::Object(
            map.entries()
                .iter()
                .map(|(k, v)| {
                    let key = match field_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, field_json(v))
                })
                .collect(),
        ),
        // Dates, times and decimals: their text, as the crate prints them.
        other => Value::String(other.to_string()),
    }
}
