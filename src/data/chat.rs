//! Chat-format records as fine-tuning tools write them, read into one shape (a list of
//! messages): TRL conversational `{"messages"}`, `{"prompt", "completion"}` as message lists,
//! and `{"prompt", "chosen", "rejected"}` as message lists (the prompt may be left implicit, as
//! the shared start of both sides); ShareGPT `{"conversations": [{"from", "value"}], "system"}`;
//! Alpaca `{"instruction", "input", "output", "system"}` (and `chosen`/`rejected`).

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A chat record: one conversation, or a preference pair of conversations.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ChatRecord {
    Conversation(Vec<Message>),
    Pair { prompt: Vec<Message>, chosen: Vec<Message>, rejected: Vec<Message> },
}

/// One chat message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl Message {
    fn new(role: &str, content: &str) -> Message {
        Message { role: role.to_string(), content: content.to_string() }
    }
}

/// Reads a message list from `v` (field `field`), checking every role and content.
fn messages(v: &Value, field: &str, err: &dyn Fn(String) -> Error) -> Result<Vec<Message>> {
    let Value::Array(items) = v else { return Err(err(format!("field `{field}` must be a list of messages"))) };
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let at = format!("`{field}[{i}]`");
            let role = match m.get("role") {
                Some(Value::String(r)) if matches!(r.as_str(), "system" | "user" | "assistant") => r.clone(),
                Some(Value::String(r)) => {
                    return Err(err(format!("{at}: unknown role `{r}` (system, user or assistant)")))
                }
                Some(_) => return Err(err(format!("{at}: `role` must be a string"))),
                None => return Err(err(format!("{at}: missing field `role`"))),
            };
            let content = match m.get("content") {
                Some(Value::String(c)) => c.clone(),
                Some(_) => return Err(err(format!("{at}: `content` must be a string"))),
                None => return Err(err(format!("{at}: missing field `content`"))),
            };
            Ok(Message { role, content })
        })
        .collect()
}

/// A conversation to train on must have an assistant turn, and no empty one.
fn check_turns(msgs: &[Message], field: &str, err: &dyn Fn(String) -> Error) -> Result<()> {
    if !msgs.iter().any(|m| m.role == "assistant") {
        return Err(err(format!("`{field}` has no assistant message")));
    }
    if let Some(i) = msgs.iter().position(|m| m.role == "assistant" && m.content.trim().is_empty()) {
        return Err(err(format!("`{field}[{i}]`: the assistant message is empty")));
    }
    Ok(())
}

fn string<'a>(obj: &'a Map<String, Value>, key: &str, err: &dyn Fn(String) -> Error) -> Result<Option<&'a str>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(err(format!("field `{key}` must be a string"))),
    }
}

/// ShareGPT's `conversations`.
fn sharegpt(obj: &Map<String, Value>, err: &dyn Fn(String) -> Error) -> Result<Vec<Message>> {
    let Some(Value::Array(turns)) = obj.get("conversations") else {
        return Err(err("field `conversations` must be a list of {from, value}".into()));
    };
    let mut msgs: Vec<Message> = string(obj, "system", err)?.map(|s| Message::new("system", s)).into_iter().collect();
    for (i, t) in turns.iter().enumerate() {
        let role = match t.get("from").and_then(Value::as_str) {
            Some("human" | "user") => "user",
            Some("gpt" | "assistant") => "assistant",
            Some("system") => "system",
            Some(other) => return Err(err(format!("`conversations[{i}]`: unknown `from` value `{other}`"))),
            None => return Err(err(format!("`conversations[{i}]`: missing field `from`"))),
        };
        let Some(value) = t.get("value").and_then(Value::as_str) else {
            return Err(err(format!("`conversations[{i}]`: `value` must be a string")));
        };
        msgs.push(Message::new(role, value));
    }
    Ok(msgs)
}

/// Alpaca's prompt: the system message, then `instruction` (and `input` on its own line).
fn alpaca_prompt(obj: &Map<String, Value>, err: &dyn Fn(String) -> Error) -> Result<Vec<Message>> {
    let instruction = string(obj, "instruction", err)?.unwrap_or_default();
    let user = match string(obj, "input", err)? {
        Some(input) if !input.is_empty() => format!("{instruction}\n{input}"),
        _ => instruction.to_string(),
    };
    let mut msgs: Vec<Message> = string(obj, "system", err)?.map(|s| Message::new("system", s)).into_iter().collect();
    msgs.push(Message::new("user", &user));
    Ok(msgs)
}

/// The chat record of `obj`, or None when it is a plain `{"prompt": string, ...}` record.
pub fn parse(obj: &Map<String, Value>, err: &dyn Fn(String) -> Error) -> Result<Option<ChatRecord>> {
    let record = if let Some(v) = obj.get("messages") {
        let msgs = messages(v, "messages", err)?;
        check_turns(&msgs, "messages", err)?;
        ChatRecord::Conversation(msgs)
    } else if obj.contains_key("conversations") {
        let msgs = sharegpt(obj, err)?;
        check_turns(&msgs, "conversations", err)?;
        ChatRecord::Conversation(msgs)
    } else if obj.contains_key("instruction") {
        let prompt = alpaca_prompt(obj, err)?;
        let answer = |key: &str| -> Result<Vec<Message>> {
            let a = string(obj, key, err)?.ok_or_else(|| err(format!("missing field `{key}`")))?;
            let m = vec![Message::new("assistant", a)];
            check_turns(&m, key, err)?;
            Ok(m)
        };
        if obj.contains_key("chosen") || obj.contains_key("rejected") {
            ChatRecord::Pair { prompt, chosen: answer("chosen")?, rejected: answer("rejected")? }
        } else {
            let mut msgs = prompt;
            msgs.extend(answer("output")?);
            ChatRecord::Conversation(msgs)
        }
    } else if matches!(obj.get("chosen"), Some(Value::Array(_))) || matches!(obj.get("rejected"), Some(Value::Array(_)))
    {
        let side = |key: &str| match obj.get(key) {
            Some(v) => messages(v, key, err),
            None => Err(err(format!("missing field `{key}`"))),
        };
        let (mut chosen, mut rejected) = (side("chosen")?, side("rejected")?);
        let prompt = match obj.get("prompt") {
            Some(v) => messages(v, "prompt", err)?,
            // Implicit prompt: the messages both sides start with.
            None => {
                let shared = chosen.iter().zip(&rejected).take_while(|(a, b)| a == b).count();
                let shared = shared.min(chosen.len().saturating_sub(1)).min(rejected.len().saturating_sub(1));
                rejected.drain(..shared);
                chosen.drain(..shared).collect()
            }
        };
        check_turns(&chosen, "chosen", err)?;
        check_turns(&rejected, "rejected", err)?;
        ChatRecord::Pair { prompt, chosen, rejected }
    } else if matches!(obj.get("prompt"), Some(Value::Array(_))) {
        let mut msgs = messages(&obj["prompt"], "prompt", err)?;
        let completion = obj.get("completion").ok_or_else(|| err("missing field `completion`".into()))?;
        msgs.extend(messages(completion, "completion", err)?);
        check_turns(&msgs, "completion", err)?;
        ChatRecord::Conversation(msgs)
    } else {
        return Ok(None);
    };
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(json: &str) -> Result<Option<ChatRecord>> {
        let obj: Map<String, Value> = serde_json::from_str(json).unwrap();
        parse(&obj, &|m| Error::Record { path: "x.jsonl".into(), line: 7, message: m })
    }

    #[test]
    fn sharegpt_and_alpaca_read_as_their_messages_twins() {
        let twin = rec(
            r#"{"messages":[{"role":"system","content":"S"},{"role":"user","content":"Q"},{"role":"assistant","content":"A"}]}"#,
        );
        let share = rec(r#"{"conversations":[{"from":"human","value":"Q"},{"from":"gpt","value":"A"}],"system":"S"}"#);
        let alpaca = rec(r#"{"instruction":"Q","input":"","output":"A","system":"S"}"#);
        assert_eq!(share.unwrap(), twin.as_ref().unwrap().clone());
        assert_eq!(alpaca.unwrap(), twin.unwrap());
        let with_input = rec(r#"{"instruction":"Q","input":"I","output":"A"}"#).unwrap().unwrap();
        let ChatRecord::Conversation(messages) = with_input else { panic!() };
        assert_eq!(messages[0].content, "Q\nI");
    }

    #[test]
    fn implicit_prompt_is_the_shared_start() {
        let r = rec(r#"{"chosen":[{"role":"user","content":"Q"},{"role":"assistant","content":"yes"}],
                       "rejected":[{"role":"user","content":"Q"},{"role":"assistant","content":"no"}]}"#)
        .unwrap()
        .unwrap();
        let ChatRecord::Pair { prompt, chosen, rejected } = r else { panic!() };
        assert_eq!((prompt.len(), chosen[0].content.as_str(), rejected[0].content.as_str()), (1, "yes", "no"));
    }

    #[test]
    fn bad_chat_records_name_the_field() {
        for (json, needle) in [
            (r#"{"messages":[{"content":"Q"}]}"#, "missing field `role`"),
            (r#"{"messages":[{"role":"bot","content":"Q"}]}"#, "unknown role `bot`"),
            (r#"{"messages":[{"role":"user","content":3}]}"#, "`content` must be a string"),
            (r#"{"messages":[{"role":"user","content":"Q"}]}"#, "no assistant message"),
            (r#"{"messages":[{"role":"user","content":"Q"},{"role":"assistant","content":" "}]}"#, "is empty"),
        ] {
            let e = rec(json).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("x.jsonl:7"), "{json}: {e}");
        }
    }
}
