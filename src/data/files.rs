//! The records a data file holds, as `(line, JSON text)` whatever its format: JSONL, a `.json`
//! array (either gzip- or zstd-compressed, see `compression`), or Parquet (the Hub's dataset
//! format). Every format ends up as one compact JSON object per record, so parsing, error
//! positions and selected.jsonl work the same for all.

use std::path::Path;

use serde_json::Value;

use super::compression::{read_text, Compression};
use crate::error::{Error, Result};

/// The formats a record file can be in, told by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileFormat {
    /// One JSON object a line (any extension but the two below).
    JsonLines,
    /// `.json`: one JSON array of objects.
    JsonArray,
    /// `.parquet`: one record a row; nested columns (message lists) become JSON arrays and objects.
    Parquet,
}

impl FileFormat {
    /// The format of `path`, by its extension, or by the one before it when that is a
    /// compression's (`pool.json.gz` holds a JSON array).
    pub fn of(path: &Path) -> FileFormat {
        let inner = match path.file_stem() {
            Some(stem) if Compression::named(path) => Path::new(stem),
            _ => path,
        };
        match inner.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("json") => FileFormat::JsonArray,
            Some("parquet") => FileFormat::Parquet,
            _ => FileFormat::JsonLines,
        }
    }
}

// Parquet files are read by native builds only: the browser page reads no files, and the
// Parquet codecs include C code that does not build for wasm.
#[cfg(not(target_family = "wasm"))]
use super::parquet_rows::parquet_rows;

#[cfg(target_family = "wasm")]
fn parquet_rows(path: &Path) -> Result<Vec<(usize, String)>> {
    Err(Error::format(path, "Parquet files cannot be read by the browser build"))
}

/// The records of `path` as `(position, text)`: a JSONL file's non-blank lines as they are; a
/// `.json` array's elements written compactly, numbered by the line each starts on; a Parquet
/// file's rows as JSON objects, numbered by row (1-based, across row groups).
pub(crate) fn record_texts(path: &Path) -> Result<Vec<(usize, String)>> {
    match FileFormat::of(path) {
        FileFormat::Parquet if Compression::named(path) => Err(Error::format(
            path,
            "Parquet compresses its own columns and is read uncompressed: decompress this file first",
        )),
        FileFormat::Parquet => parquet_rows(path),
        format => {
            let text = read_text(path)?;
            if format == FileFormat::JsonArray {
                json_array(path, &text)
            } else {
                Ok(json_lines(&text))
            }
        }
    }
}

pub(super) fn json_lines(text: &str) -> Vec<(usize, String)> {
    text.split('\n')
        .enumerate()
        .map(|(i, raw)| (i + 1, raw.strip_suffix('\r').unwrap_or(raw)))
        .filter(|(_, raw)| !raw.trim().is_empty())
        .map(|(i, raw)| (i, raw.to_string()))
        .collect()
}

/// Each element compactly on one line, so that selected.jsonl stays JSONL.
fn json_array(path: &Path, text: &str) -> Result<Vec<(usize, String)>> {
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(text).map_err(|e| Error::Record {
        path: path.into(),
        line: e.line(),
        message: format!("expected a JSON array of records: {e}"),
    })?;
    Ok(items
        .into_iter()
        .map(|item| {
            let offset = item.get().as_ptr() as usize - text.as_ptr() as usize;
            let line = text[..offset].matches('\n').count() + 1;
            let value: Value = serde_json::from_str(item.get()).expect("parsed above");
            (line, value.to_string())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension() {
        assert_eq!(FileFormat::of(Path::new("a/pool.jsonl")), FileFormat::JsonLines);
        assert_eq!(FileFormat::of(Path::new("pool.JSON")), FileFormat::JsonArray);
        assert_eq!(FileFormat::of(Path::new("train-00000-of-00001.parquet")), FileFormat::Parquet);
        assert_eq!(FileFormat::of(Path::new("pool")), FileFormat::JsonLines);
        assert_eq!(FileFormat::of(Path::new("pool.jsonl.gz")), FileFormat::JsonLines);
        assert_eq!(FileFormat::of(Path::new("pool.json.GZ")), FileFormat::JsonArray);
        assert_eq!(FileFormat::of(Path::new("pool.json.zst")), FileFormat::JsonArray);
        assert_eq!(FileFormat::of(Path::new("pool.gz")), FileFormat::JsonLines);
        assert_eq!(FileFormat::of(Path::new("rows.parquet.zstd")), FileFormat::Parquet);
    }

    #[test]
    fn jsonl_skips_blank_lines_and_keeps_numbers() {
        assert_eq!(
            json_lines("{\"a\":1}\r\n\n {\"b\":2}\n"),
            [(1, "{\"a\":1}".to_string()), (3, " {\"b\":2}".to_string())]
        );
    }

    #[test]
    fn json_array_elements_number_by_their_first_line() {
        let text = "[\n  {\"prompt\": \"p\",\n   \"completion\": \"c\"},\n  {\"prompt\": \"q\"}\n]\n";
        let rows = json_array(Path::new("a.json"), text).unwrap();
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [2, 4]);
        assert!(rows.iter().all(|r| !r.1.contains('\n')), "one line per record in selected.jsonl");
        let err = json_array(Path::new("a.json"), "{\"prompt\": \"p\"}").unwrap_err();
        assert!(err.to_string().contains("JSON array"), "{err}");
    }
}
