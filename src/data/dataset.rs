//! A data set: the examples of one or more record files, in file order, and how they are read.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::files::record_texts;
use super::formats::{parse_line, Example, Record, RecordKind};
use crate::error::{Error, Result, Setting};

/// The examples of one or more files, in the order the files were given.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The files read, in order (each example also names its own in [`Example::source`]).
    pub files: Vec<PathBuf>,
    pub examples: Vec<Example>,
    /// How the records are read (see [`Dataset::preference_side`]).
    pub view: View,
}

/// How a data set's records are read. Store keys record it, so the two sides of one
/// preference file never share a feature store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum View {
    /// The file's records as they are.
    #[default]
    #[serde(rename = "")]
    AsRead,
    /// A preference file as instruction data with each pair's chosen response.
    #[serde(rename = "chosen")]
    Chosen,
    /// ... with each pair's rejected response.
    #[serde(rename = "rejected")]
    Rejected,
}

/// The examples of one file inside a data set: indices `rows` came from `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpan {
    pub path: PathBuf,
    pub rows: Range<usize>,
}

impl Dataset {
    /// True when every record is a preference pair.
    pub fn is_preference(&self) -> bool {
        self.examples.iter().all(|e| matches!(e.record, Record::Preference { .. } | Record::ChatPreference { .. }))
    }

    /// The kind of its records: preferences when every record is a pair.
    pub fn kind(&self) -> RecordKind {
        if self.is_preference() {
            RecordKind::Preferences
        } else {
            RecordKind::Instructions
        }
    }

    /// The files as messages name them: `a.jsonl`, or `a.jsonl + b.parquet`.
    pub fn name(&self) -> String {
        self.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(" + ")
    }

    /// Which indices came from which file (consecutive runs of one source).
    pub fn spans(&self) -> Vec<FileSpan> {
        let mut spans: Vec<FileSpan> = Vec::new();
        for (i, e) in self.examples.iter().enumerate() {
            match spans.last_mut() {
                Some(s) if s.path.as_path() == &*e.source => s.rows.end = i + 1,
                _ => spans.push(FileSpan { path: e.source.to_path_buf(), rows: i..i + 1 }),
            }
        }
        spans
    }

    /// A preference file as instruction data: each pair's prompt with its chosen (or rejected)
    /// response. Lines, tasks and raw text are kept.
    pub fn preference_side(&self, chosen: bool) -> Result<Dataset> {
        let examples = self
            .examples
            .iter()
            .map(|e| match &e.record {
                Record::Preference { prompt, chosen: c, rejected: r } => Ok(Example {
                    record: Record::Instruction {
                        prompt: prompt.clone(),
                        completion: if chosen { c } else { r }.clone(),
                    },
                    ..e.clone()
                }),
                Record::ChatPreference { prompt, chosen: c, rejected: r } => Ok(Example {
                    record: Record::Chat {
                        messages: prompt.iter().chain(if chosen { c } else { r }).cloned().collect(),
                    },
                    ..e.clone()
                }),
                Record::Instruction { .. } | Record::Chat { .. } => Err(Error::Record {
                    path: e.source.to_path_buf(),
                    line: e.line,
                    message: "expected a preference pair (prompt, chosen, rejected)".into(),
                }),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Dataset { files: self.files.clone(), examples, view: if chosen { View::Chosen } else { View::Rejected } })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// True when the file held no example.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
}

/// Reads a record file: JSONL (one record a line; blank lines skipped), a `.json` array or a
/// `.parquet` file (see the `files` module). All records of a file must be of one kind.
pub fn load_records(path: &Path) -> Result<Dataset> {
    records_of(record_texts(path)?, path)
}

/// Parses JSONL text already in memory (the browser page's embedded demo data) as if it were
/// the file `origin`: errors, scores and selections name `origin` and the line.
pub fn parse_jsonl(text: &str, origin: &Path) -> Result<Dataset> {
    records_of(super::files::json_lines(text), origin)
}

/// The data set of a file's records, `(line, text)`.
fn records_of(texts: Vec<(usize, String)>, path: &Path) -> Result<Dataset> {
    let source: Arc<Path> = Arc::from(path);
    let mut examples: Vec<Example> = Vec::new();
    for (line, raw) in texts {
        let ex = parse_line(&raw, &source, line)?;
        if let Some(first) = examples.first() {
            if !same_kind(first, &ex) {
                return Err(Error::Record {
                    path: path.into(),
                    line: ex.line,
                    message: format!(
                        "mixes record kinds (plain or chat, instruction or preference): line {} is of another kind",
                        first.line
                    ),
                });
            }
        }
        examples.push(ex);
    }
    if examples.is_empty() {
        return Err(Error::format(path, "no records"));
    }
    Ok(Dataset { files: vec![path.to_path_buf()], examples, view: View::AsRead })
}

/// Reads several record files as one data set, in the order given: each example keeps its file
/// and line. The files must hold records of one kind, and no file may be given twice.
pub fn load_files(paths: &[PathBuf]) -> Result<Dataset> {
    let Some((first, rest)) = paths.split_first() else {
        return Err(Error::setting(Setting::Data, "no data file given"));
    };
    let mut all = load_records(first)?;
    for path in rest {
        if all.files.iter().any(|f| same_file(f, path)) {
            return Err(Error::format(path, "given twice: its records would count twice"));
        }
        let next = load_records(path)?;
        if !same_kind(&all.examples[0], &next.examples[0]) {
            return Err(Error::format(
                path,
                format!(
                    "holds another kind of record (plain or chat, instruction or preference) than {}",
                    first.display()
                ),
            ));
        }
        all.files.extend(next.files);
        all.examples.extend(next.examples);
    }
    Ok(all)
}

fn same_kind(a: &Example, b: &Example) -> bool {
    std::mem::discriminant(&a.record) == std::mem::discriminant(&b.record)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new().prefix(&format!("gradsift-dataset-{name}-")).tempdir().unwrap()
    }

    #[test]
    fn json_arrays_read_like_jsonl() {
        let tmp = dir("json");
        let dir = tmp.path();
        let (jsonl, json) = (dir.join("a.jsonl"), dir.join("a.json"));
        std::fs::write(&jsonl, "{\"prompt\":\"p\",\"completion\":\"c\"}\n\n{\"prompt\":\"q\",\"completion\":\"d\"}\n")
            .unwrap();
        std::fs::write(
            &json,
            "[{\"prompt\": \"p\", \"completion\": \"c\"},\n{\"prompt\": \"q\", \"completion\": \"d\"}]",
        )
        .unwrap();
        let (a, b) = (load_records(&jsonl).unwrap(), load_records(&json).unwrap());
        let records = |d: &Dataset| d.examples.iter().map(|e| e.record.clone()).collect::<Vec<_>>();
        assert_eq!(records(&a), records(&b));
    }

    #[test]
    fn several_files_keep_order_file_and_line() {
        let tmp = dir("many");
        let dir = tmp.path();
        let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
        std::fs::write(&a, "{\"prompt\":\"p\",\"completion\":\"c\"}\n\n{\"prompt\":\"q\",\"completion\":\"d\"}\n")
            .unwrap();
        std::fs::write(&b, "\n{\"prompt\":\"r\",\"completion\":\"e\"}\n").unwrap();
        let d = load_files(&[a.clone(), b.clone()]).unwrap();
        let at: Vec<(PathBuf, usize)> = d.examples.iter().map(|e| (e.source.to_path_buf(), e.line)).collect();
        assert_eq!(at, [(a.clone(), 1), (a.clone(), 3), (b.clone(), 2)]);
        assert_eq!(d.spans(), [FileSpan { path: a.clone(), rows: 0..2 }, FileSpan { path: b.clone(), rows: 2..3 }]);
        assert_eq!(d.name(), format!("{} + {}", a.display(), b.display()));

        let twice = load_files(&[a.clone(), b.clone(), a.clone()]).unwrap_err().to_string();
        assert!(twice.contains("given twice") && twice.contains("a.jsonl"), "{twice}");
        let pairs = dir.join("pairs.jsonl");
        std::fs::write(&pairs, "{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\"}\n").unwrap();
        let mixed = load_files(&[a, pairs]).unwrap_err().to_string();
        assert!(mixed.contains("pairs.jsonl") && mixed.contains("another kind"), "{mixed}");
    }

    #[test]
    fn parquet_rows_are_the_records_of_their_jsonl_twins() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        // snappy, zstd and gzip files; message-list columns; two rows a row group.
        for (parquet, jsonl) in [
            ("parquet/chat.parquet", "hf-arch/chat.jsonl"),
            ("parquet/chat-pairs.parquet", "hf-arch/chat-pairs.jsonl"),
            ("parquet/instruction.parquet", "hf-arch/instruction.jsonl"),
        ] {
            let (p, j) = (load_records(&fixtures.join(parquet)).unwrap(), load_records(&fixtures.join(jsonl)).unwrap());
            assert_eq!(p.len(), j.len(), "{parquet}");
            for (a, b) in p.examples.iter().zip(&j.examples) {
                assert_eq!(a.record, b.record, "{parquet} row {}", a.line);
                assert!(a.task.is_some() && !a.raw.contains('\n'), "{parquet} row {}", a.line);
            }
            assert_eq!(p.examples.iter().map(|e| e.line).collect::<Vec<_>>(), (1..=p.len()).collect::<Vec<_>>());
        }
        let bad = tempfile::Builder::new().prefix("gradsift-bad-").suffix(".parquet").tempfile().unwrap();
        std::fs::write(bad.path(), b"PAR1 not really").unwrap();
        let e = load_records(bad.path()).unwrap_err().to_string();
        assert!(e.contains("Parquet") && e.contains("gradsift-bad"), "{e}");
    }

    /// A gzip- or zstd-compressed JSONL file or JSON array holds the records of its plain twin,
    /// on the same lines; a compressed Parquet file is refused by name.
    #[test]
    fn compressed_files_load_as_their_plain_twins() {
        use std::io::Write;
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let tmp = dir("compressed");
        let gzip = |bytes: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(bytes).unwrap();
            e.finish().unwrap()
        };
        let jsonl = std::fs::read(fixtures.join("hf-arch/chat.jsonl")).unwrap();
        let array = format!("[{}]\n", String::from_utf8(jsonl.clone()).unwrap().trim_end().replace('\n', ",\n"));
        let plain = load_records(&fixtures.join("hf-arch/chat.jsonl")).unwrap();
        let write = |name: &str, bytes: Vec<u8>| {
            let path = tmp.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            load_records(&path).unwrap()
        };
        for (name, d) in [
            ("chat.jsonl.gz", write("chat.jsonl.gz", gzip(&jsonl))),
            ("chat.jsonl.zst", write("chat.jsonl.zst", zstd::stream::encode_all(jsonl.as_slice(), 19).unwrap())),
            ("chat.json.gz", write("chat.json.gz", gzip(array.as_bytes()))),
        ] {
            assert_eq!(d.len(), plain.len(), "{name}");
            for (a, b) in d.examples.iter().zip(&plain.examples) {
                assert_eq!((&a.record, a.line), (&b.record, b.line), "{name}");
            }
        }
        let parquet = tmp.path().join("chat.parquet.gz");
        std::fs::write(&parquet, gzip(&std::fs::read(fixtures.join("parquet/chat.parquet")).unwrap())).unwrap();
        let e = load_records(&parquet).unwrap_err().to_string();
        assert!(e.contains("chat.parquet.gz") && e.contains("decompress this file first"), "{e}");
    }
}
