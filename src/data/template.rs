//! A model's chat template, rendered as transformers' `apply_chat_template` does (Jinja2 with
//! `trim_blocks` and `lstrip_blocks`, loop controls, `raise_exception`, a `tojson` that writes
//! what Python's `json.dumps` writes, Python string methods), and the loss spans of the
//! assistant turns: for assistant message i, from the end of the rendering of the messages
//! before it with the generation prompt, to where the rendering up to it stops agreeing with
//! the whole text.

use std::ops::Range;
use std::path::{Path, PathBuf};

use minijinja::value::Value as JValue;
use minijinja::{Environment, ErrorKind};
use serde_json::Value;

use super::chat::Message;
use crate::error::{Error, Result};

/// Which chat template chat records are rendered with.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum TemplateChoice {
    /// The model's own (`chat_template.jinja` or tokenizer_config.json), if it has one.
    #[default]
    FromModel,
    /// A Jinja file given by the user (the model's BOS and EOS strings still apply).
    File(PathBuf),
    /// None: chat records are refused.
    Disabled,
}

/// A loaded chat template and the special tokens it may write.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// Where it came from, for errors.
    pub source: PathBuf,
    bos: String,
    eos: String,
}

/// A token string of tokenizer_config.json: a string, or an added-token object.
fn token_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o.get("content").and_then(Value::as_str).unwrap_or_default().to_string(),
        _ => String::new(),
    }
}

/// Python's `json.dumps(v, ensure_ascii=False, indent=indent)`: `", "` and `": "` separators
/// without indent, `","` and `": "` with it.
fn py_json(v: &Value, indent: Option<usize>, depth: usize, out: &mut String) {
    let pad = |out: &mut String, d: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * d));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v {
        Value::Array(a) if !a.is_empty() => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                pad(out, depth + 1);
                py_json(x, indent, depth + 1, out);
            }
            pad(out, depth);
            out.push(']');
        }
        Value::Object(o) if !o.is_empty() => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                pad(out, depth + 1);
                out.push_str(&serde_json::to_string(k).expect("a string"));
                out.push_str(": ");
                py_json(x, indent, depth + 1, out);
            }
            pad(out, depth);
            out.push('}');
        }
        other => out.push_str(&serde_json::to_string(other).expect("json")),
    }
}

impl ChatTemplate {
    /// The template `choice` names for the model in `dir`.
    pub fn load(choice: &TemplateChoice, dir: &Path) -> Result<Option<ChatTemplate>> {
        match choice {
            TemplateChoice::FromModel => Self::from_model_dir(dir),
            TemplateChoice::Disabled => Ok(None),
            TemplateChoice::File(path) => {
                let source = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                let (bos, eos) = Self::special_tokens(dir)?;
                Self::new(source, path.clone(), bos, eos).map(Some)
            }
        }
    }

    /// The BOS and EOS strings of the model's tokenizer_config.json (empty when absent).
    fn special_tokens(dir: &Path) -> Result<(String, String)> {
        let config = Self::tokenizer_config(dir)?;
        Ok((token_string(config.get("bos_token")), token_string(config.get("eos_token"))))
    }

    fn tokenizer_config(dir: &Path) -> Result<Value> {
        let path = dir.join("tokenizer_config.json");
        match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| Error::format(&path, format!("invalid JSON: {e}"))),
            Err(_) => Ok(Value::Null),
        }
    }

    /// The template of a model directory: `chat_template.jinja`, else tokenizer_config.json's
    /// `chat_template` (a string, or a list of named templates of which `default` is used).
    /// None when the model has none.
    pub fn from_model_dir(dir: &Path) -> Result<Option<ChatTemplate>> {
        let config_path = dir.join("tokenizer_config.json");
        let config = Self::tokenizer_config(dir)?;
        let jinja = dir.join("chat_template.jinja");
        let (source, path) = if jinja.exists() {
            (std::fs::read_to_string(&jinja).map_err(|e| Error::io(&jinja, e))?, jinja)
        } else {
            match config.get("chat_template") {
                None | Some(Value::Null) => return Ok(None),
                Some(Value::String(s)) => (s.clone(), config_path.clone()),
                Some(Value::Array(list)) => {
                    let default = list.iter().find(|t| t.get("name").and_then(Value::as_str) == Some("default"));
                    let Some(t) = default.and_then(|t| t.get("template")).and_then(Value::as_str) else {
                        return Err(Error::format(
                            &config_path,
                            "chat_template is a list of named templates with no `default`",
                        ));
                    };
                    (t.to_string(), config_path.clone())
                }
                Some(_) => return Err(Error::format(&config_path, "chat_template must be a string or a list")),
            }
        };
        Self::new(source, path, token_string(config.get("bos_token")), token_string(config.get("eos_token"))).map(Some)
    }

    /// A template from its source text; `path` names it in errors.
    pub fn new(source: String, path: PathBuf, bos: String, eos: String) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("the default delimiters"),
        );
        // minijinja picks auto-escaping from the template's name (a name ending in .json would
        // JSON-escape every output, and tokenizer_config.json is where most Hub models keep their
        // template); transformers renders with Jinja2's default, no escaping at all.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> std::result::Result<JValue, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_filter("tojson", |v: JValue, indent: Option<usize>| -> std::result::Result<String, minijinja::Error> {
            let json: Value = serde_json::to_value(&v)
                .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
            let mut out = String::new();
            py_json(&json, indent, 0, &mut out);
            Ok(out)
        });
        let name = path.display().to_string();
        env.add_template_owned(name, source).map_err(|e| template_error(&path, &e))?;
        Ok(ChatTemplate { env, source: path, bos, eos })
    }

    /// The text of `messages`, with the assistant prompt after them when `generation_prompt`.
    pub fn render(&self, messages: &[Message], generation_prompt: bool) -> Result<String> {
        let template = self.env.get_template(&self.source.display().to_string()).expect("added in new");
        let ctx = minijinja::context! {
            messages => messages
                .iter()
                .map(|m| minijinja::context! { role => m.role.clone(), content => m.content.clone() })
                .collect::<Vec<JValue>>(),
            bos_token => &self.bos,
            eos_token => &self.eos,
            add_generation_prompt => generation_prompt,
        };
        template.render(ctx).map_err(|e| template_error(&self.source, &e))
    }

    /// The whole text of `messages` and the byte range of each assistant turn's loss span.
    /// A template whose rendering of the turns before an assistant message (with the generation
    /// prompt) is not a prefix of the whole text cannot mark the turn, and is an error.
    pub fn spans(&self, messages: &[Message]) -> Result<(String, Vec<Range<usize>>)> {
        let text = self.render(messages, false)?;
        let mut spans = Vec::new();
        for (i, m) in messages.iter().enumerate().filter(|(_, m)| m.role == "assistant") {
            let before = self.render(&messages[..i], true)?;
            if !text.starts_with(&before) {
                return Err(Error::format(
                    &self.source,
                    format!(
                        "the chat template is not incremental: the conversation up to message {} (with the \
                         generation prompt) does not render as a prefix of the whole conversation, so the \
                         assistant turn cannot be located",
                        i + 1
                    ),
                ));
            }
            let upto = self.render(&messages[..=i], false)?;
            let end = upto.bytes().zip(text.bytes()).take_while(|(a, b)| a == b).count();
            if end <= before.len() {
                return Err(Error::format(
                    &self.source,
                    format!("assistant message {} ({:?}) renders as nothing", i + 1, m.content),
                ));
            }
            spans.push(before.len()..end);
        }
        Ok((text, spans))
    }
}

/// A template error with the template's file and line.
fn template_error(path: &Path, e: &minijinja::Error) -> Error {
    let line = e.line().unwrap_or(0);
    let mut message = format!("chat template: {}", e.detail().unwrap_or(&e.kind().to_string()));
    if let Some(source) = std::error::Error::source(e) {
        message.push_str(&format!(": {source}"));
    }
    Error::Record { path: path.to_path_buf(), line, message }
}
