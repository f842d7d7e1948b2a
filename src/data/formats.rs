//! Record shapes of the input files. One JSON object per line:
//! `{"prompt","completion"}` (instruction) or `{"prompt","chosen","rejected"}` (preference),
//! or a chat record (see [`super::chat`]), with an optional `task` naming the target subtask. The raw line is kept byte for byte so
//! the selected subset can be written back verbatim.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::chat::{ChatRecord, Message};
use crate::error::{Error, Result};

/// What one line holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// An instruction example: prompt and the response to learn.
    Instruction { prompt: String, completion: String },
    /// A preference pair: prompt, preferred and dispreferred responses.
    Preference { prompt: String, chosen: String, rejected: String },
    /// A conversation rendered with the model's chat template; every assistant turn is trained on.
    Chat { messages: Vec<Message> },
    /// A preference pair of conversations: the prompt's messages, then each side's.
    ChatPreference { prompt: Vec<Message>, chosen: Vec<Message>, rejected: Vec<Message> },
}

/// The two shapes of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// `{"prompt", "completion"}`.
    Instructions,
    /// `{"prompt", "chosen", "rejected"}`.
    Preferences,
}

impl RecordKind {
    /// How the kind is named in error messages.
    pub fn describe(self) -> &'static str {
        match self {
            RecordKind::Instructions => "instruction ({\"prompt\",\"completion\"})",
            RecordKind::Preferences => "preference ({\"prompt\",\"chosen\",\"rejected\"})",
        }
    }
}

/// One example with where it came from.
#[derive(Debug, Clone)]
pub struct Example {
    /// The file it was read from (shared by the file's examples).
    pub source: Arc<Path>,
    /// 1-based line number in the source file.
    pub line: usize,
    /// The line exactly as read (without its newline).
    pub raw: String,
    /// The `task` field, if any.
    pub task: Option<String>,
    pub record: Record,
}

/// The examples of one file.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub path: PathBuf,
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
                    path: self.path.clone(),
                    line: e.line,
                    message: "expected a preference pair (prompt, chosen, rejected)".into(),
                }),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Dataset { path: self.path.clone(), examples, view: if chosen { View::Chosen } else { View::Rejected } })
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

fn field(obj: &serde_json::Map<String, Value>, name: &str, path: &Path, line: usize) -> Result<String> {
    match obj.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(Error::Record {
            path: path.into(),
            line,
            message: format!("field `{name}` must be a string, found {}", kind_of(other)),
        }),
        None => Err(Error::Record { path: path.into(), line, message: format!("missing field `{name}`") }),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn non_empty(s: String, name: &str, path: &Path, line: usize) -> Result<String> {
    if s.is_empty() {
        return Err(Error::Record { path: path.into(), line, message: format!("field `{name}` is empty") });
    }
    Ok(s)
}

/// Parses one JSONL line of `source`.
pub fn parse_line(raw: &str, source: &Arc<Path>, line: usize) -> Result<Example> {
    let path: &Path = source;
    let value: Value = serde_json::from_str(raw).map_err(|e| Error::Record {
        path: path.into(),
        line,
        message: format!("invalid JSON: {e}"),
    })?;
    let Value::Object(obj) = value else {
        return Err(Error::Record { path: path.into(), line, message: "expected a JSON object".into() });
    };
    let err = |message: String| Error::Record { path: path.into(), line, message };
    let record = if let Some(chat) = super::chat::parse(&obj, &err)? {
        match chat {
            ChatRecord::Conversation(messages) => Record::Chat { messages },
            ChatRecord::Pair { prompt, chosen, rejected } => Record::ChatPreference { prompt, chosen, rejected },
        }
    } else if obj.contains_key("chosen") || obj.contains_key("rejected") {
        let prompt = field(&obj, "prompt", path, line)?;
        let chosen = non_empty(field(&obj, "chosen", path, line)?, "chosen", path, line)?;
        let rejected = non_empty(field(&obj, "rejected", path, line)?, "rejected", path, line)?;
        Record::Preference { prompt, chosen, rejected }
    } else {
        let prompt = field(&obj, "prompt", path, line)?;
        let completion = non_empty(field(&obj, "completion", path, line)?, "completion", path, line)?;
        Record::Instruction { prompt, completion }
    };
    let task = match obj.get("task") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(Error::Record {
                path: path.into(),
                line,
                message: format!("field `task` must be a string, found {}", kind_of(other)),
            })
        }
    };
    Ok(Example { source: source.clone(), line, raw: raw.to_string(), task, record })
}

/// The records of a file as `(line, text)`: a JSONL file's non-blank lines as they are, or a
/// `.json` file's array elements, each written compactly on one line (so that selected.jsonl
/// stays JSONL), numbered by the line each element starts on.
fn record_texts(path: &Path, text: &str) -> Result<Vec<(usize, String)>> {
    if path.extension().is_some_and(|e| e == "json") {
        let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(text).map_err(|e| Error::Record {
            path: path.into(),
            line: e.line(),
            message: format!("expected a JSON array of records: {e}"),
        })?;
        return Ok(items
            .into_iter()
            .map(|item| {
                let offset = item.get().as_ptr() as usize - text.as_ptr() as usize;
                let line = text[..offset].matches('\n').count() + 1;
                let value: Value = serde_json::from_str(item.get()).expect("parsed above");
                (line, value.to_string())
            })
            .collect());
    }
    Ok(text
        .split('\n')
        .enumerate()
        .map(|(i, raw)| (i + 1, raw.strip_suffix('\r').unwrap_or(raw)))
        .filter(|(_, raw)| !raw.trim().is_empty())
        .map(|(i, raw)| (i, raw.to_string()))
        .collect())
}

/// Reads a record file: JSONL (one record a line; blank lines skipped) or a `.json` array. All
/// records of a file must be of one kind.
pub fn load_records(path: &Path) -> Result<Dataset> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let source: Arc<Path> = Arc::from(path);
    let mut examples: Vec<Example> = Vec::new();
    for (line, raw) in record_texts(path, &text)? {
        let ex = parse_line(&raw, &source, line)?;
        if let Some(first) = examples.first() {
            if std::mem::discriminant(&first.record) != std::mem::discriminant(&ex.record) {
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
    Ok(Dataset { path: path.to_path_buf(), examples, view: View::AsRead })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_field() {
        let err = parse_line(r#"{"prompt":"a"}"#, &Arc::from(Path::new("x.jsonl")), 3).unwrap_err();
        assert_eq!(err.to_string(), "x.jsonl:3: missing field `completion`");
    }

    #[test]
    fn rejects_empty_completion() {
        let err = parse_line(r#"{"prompt":"a","completion":""}"#, &Arc::from(Path::new("x.jsonl")), 1).unwrap_err();
        assert!(err.to_string().contains("`completion` is empty"), "{err}");
    }

    #[test]
    fn reads_preference_and_task() {
        let ex = parse_line(r#"{"prompt":"p","chosen":"a","rejected":"b","task":"t"}"#, &Arc::from(Path::new("x")), 1)
            .unwrap();
        assert_eq!(ex.task.as_deref(), Some("t"));
        assert!(matches!(ex.record, Record::Preference { .. }));
    }

    #[test]
    fn json_arrays_read_like_jsonl_with_the_lines_elements_start_on() {
        let dir = std::env::temp_dir().join(format!("gradsift-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (jsonl, json) = (dir.join("a.jsonl"), dir.join("a.json"));
        std::fs::write(&jsonl, "{\"prompt\":\"p\",\"completion\":\"c\"}\n\n{\"prompt\":\"q\",\"completion\":\"d\"}\n")
            .unwrap();
        std::fs::write(
            &json,
            "[\n  {\"prompt\": \"p\",\n   \"completion\": \"c\"},\n  {\"prompt\": \"q\", \"completion\": \"d\"}\n]\n",
        )
        .unwrap();
        let (a, b) = (load_records(&jsonl).unwrap(), load_records(&json).unwrap());
        let records = |d: &Dataset| d.examples.iter().map(|e| e.record.clone()).collect::<Vec<_>>();
        assert_eq!(records(&a), records(&b));
        assert_eq!(b.examples.iter().map(|e| e.line).collect::<Vec<_>>(), [2, 4]);
        assert!(b.examples.iter().all(|e| !e.raw.contains('\n')), "one line per record in selected.jsonl");
        std::fs::write(&json, "{\"prompt\": \"p\"}").unwrap();
        assert!(load_records(&json).unwrap_err().to_string().contains("JSON array"));
    }
}
