//! Record shapes of the input files. One JSON object per line:
//! `{"prompt","completion"}` (instruction) or `{"prompt","chosen","rejected"}` (preference),
//! or a chat record (see [`super::chat`]), with an optional `task` naming the target subtask. The raw line is kept byte for byte so
//! the selected subset can be written back verbatim.

use std::path::Path;
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
pub(crate) fn parse_line(raw: &str, source: &Arc<Path>, line: usize) -> Result<Example> {
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
}
