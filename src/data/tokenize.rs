//! Tokenization. Plain records follow the LESS convention: `ids = tokenizer(prompt + response)`
//! (special tokens added by the tokenizer's post-processor, e.g. BOS) followed by EOS; the first
//! `len(tokenizer(prompt))` positions are prompt (mask 0) and the rest response (mask 1). Chat
//! records are rendered by the model's template, tokenized without added special tokens (the
//! template writes them), and a token is in the loss when its text lies inside an assistant
//! turn's span (see [`ChatTemplate::spans`]).

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

use super::chat::Message;
use super::formats::{Example, Record};
use super::template::ChatTemplate;
use crate::error::{Error, Result};

/// A token's byte range in its text, `(start, end)`.
type Span = (usize, usize);

/// A tokenized sequence and its response mask (1 = the loss counts this token).
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub ids: Vec<u32>,
    pub mask: Vec<u8>,
}

impl Sequence {
    /// Number of response tokens.
    pub fn response_len(&self) -> usize {
        self.mask.iter().filter(|&&m| m == 1).count()
    }
}

/// The two sequences of a preference pair.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedPair {
    pub chosen: Sequence,
    pub rejected: Sequence,
}

/// A tokenized example.
#[derive(Debug, Clone, PartialEq)]
pub enum Tokenized {
    Single(Sequence),
    Pair(TokenizedPair),
}

/// A Hugging Face `tokenizer.json` plus the EOS id appended to every sequence.
pub struct TextTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    eos: u32,
    /// The model's chat template, for chat records.
    template: Option<ChatTemplate>,
    /// The model's longest sequence, where it has one (learned positions).
    position_limit: Option<usize>,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`; `eos` is the model's `eos_token_id`.
    pub fn from_file(path: &Path, eos: u32) -> Result<Self> {
        let inner =
            Tokenizer::from_file(path).map_err(|e| Error::Tokenizer { path: path.into(), message: e.to_string() })?;
        Ok(TextTokenizer { inner, path: path.into(), eos, template: None, position_limit: None })
    }

    /// A `tokenizer.json` already in memory; errors name `origin`.
    pub fn from_bytes(bytes: &[u8], origin: &Path, eos: u32) -> Result<Self> {
        let inner = Tokenizer::from_bytes(bytes)
            .map_err(|e| Error::Tokenizer { path: origin.into(), message: e.to_string() })?;
        Ok(TextTokenizer { inner, path: origin.into(), eos, template: None, position_limit: None })
    }

    /// The tokenizer with a chat template for chat records.
    pub fn with_template(mut self, template: Option<ChatTemplate>) -> Self {
        self.template = template;
        self
    }

    /// The tokenizer for a model that takes at most `limit` tokens (see
    /// [`crate::model::ModelConfig::position_limit`]): a longer sequence is an error naming its
    /// record, not a crash inside the model.
    pub fn with_position_limit(mut self, limit: Option<usize>) -> Self {
        self.position_limit = limit;
        self
    }

    /// Refuses a sequence longer than the model's positions.
    fn fits(&self, s: &Sequence, ex: &Example, max_len: usize) -> Result<()> {
        match self.position_limit {
            Some(limit) if s.ids.len() > limit => Err(Error::Record {
                path: ex.source.to_path_buf(),
                line: ex.line,
                message: format!(
                    "{} tokens (max_len {max_len}) are more than the model's {limit} learned positions \
                     (config.json `n_positions`): use --max-len {limit} or less",
                    s.ids.len()
                ),
            }),
            _ => Ok(()),
        }
    }

    fn template(&self) -> Result<&ChatTemplate> {
        self.template.as_ref().ok_or_else(|| Error::Tokenizer {
            path: self.path.clone(),
            message: "chat records need the model's chat template (chat_template.jinja or tokenizer_config.json's \
                      `chat_template`), and this model has none"
                .into(),
        })
    }

    /// The EOS id appended after each response.
    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The encoding of `text`, with the post-processor's special tokens when `special`.
    fn encoding(&self, text: &str, special: bool) -> Result<tokenizers::Encoding> {
        self.inner
            .encode(text, special)
            .map_err(|e| Error::Tokenizer { path: self.path.clone(), message: e.to_string() })
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.encoding(text, true)?.get_ids().to_vec())
    }

    /// The ids of a prompt alone, as generation starts from them (special tokens included).
    pub fn prompt_ids(&self, prompt: &str) -> Result<Vec<u32>> {
        self.encode(prompt)
    }

    /// What greedy generation starts from for an instruction record, and the answer it should
    /// give: the prompt, or a conversation up to its last assistant turn with the template's
    /// generation prompt. None for other records.
    pub fn generation_prompt(&self, record: &Record) -> Result<Option<(Vec<u32>, String)>> {
        Ok(match record {
            Record::Instruction { prompt, completion } => Some((self.encode(prompt)?, completion.clone())),
            Record::Chat { messages } => {
                let last = messages.iter().rposition(|m| m.role == "assistant").expect("checked when read");
                let text = self.template()?.render(&messages[..last], true)?;
                let ids = self.encode_plain(&text)?.0;
                Some((ids, messages[last].content.clone()))
            }
            Record::Preference { .. } | Record::ChatPreference { .. } => None,
        })
    }

    /// Ids and byte offsets (start, end) of `text`, with no special tokens added.
    fn encode_plain(&self, text: &str) -> Result<(Vec<u32>, Vec<Span>)> {
        let enc = self.encoding(text, false)?;
        Ok((enc.get_ids().to_vec(), enc.get_offsets().to_vec()))
    }

    /// Tokenizes a conversation: its rendering, with the tokens of assistant turns in the loss.
    /// Truncated to `max_len` as [`Self::sequence`] does.
    pub fn chat_sequence(&self, messages: &[Message], max_len: usize) -> Result<(Sequence, bool)> {
        let (text, spans) = self.template()?.spans(messages)?;
        let (ids, offsets) = self.encode_plain(&text)?;
        let mask =
            offsets.iter().map(|&(a, b)| u8::from(spans.iter().any(|s| a >= s.start && b <= s.end && a < b))).collect();
        Ok(truncate(Sequence { ids, mask }, max_len))
    }

    /// Decodes ids to text (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| Error::Tokenizer { path: self.path.clone(), message: e.to_string() })
    }

    /// Tokenizes a prompt and its response, truncated to `max_len` tokens. Returns the sequence
    /// and whether it was truncated. When cutting the end would leave no response token, the
    /// start of the prompt is cut instead, so every example keeps a loss.
    pub fn sequence(&self, prompt: &str, response: &str, max_len: usize) -> Result<(Sequence, bool)> {
        let prompt_len = self.encode(prompt)?.len();
        let mut ids = self.encode(&format!("{prompt}{response}"))?;
        ids.push(self.eos);
        let prompt_len = prompt_len.min(ids.len() - 1);
        let mask: Vec<u8> = (0..ids.len()).map(|i| u8::from(i >= prompt_len)).collect();
        Ok(truncate(Sequence { ids, mask }, max_len))
    }

    /// Tokenizes every example; returns them and the number truncated.
    pub fn examples(&self, examples: &[Example], max_len: usize) -> Result<(Vec<Tokenized>, usize)> {
        let mut out = Vec::with_capacity(examples.len());
        let mut n_trunc = 0;
        for ex in examples {
            let t = match &ex.record {
                Record::Instruction { prompt, completion } => {
                    let (s, t) = self.sequence(prompt, completion, max_len)?;
                    n_trunc += usize::from(t);
                    Tokenized::Single(s)
                }
                Record::Preference { prompt, chosen, rejected } => {
                    let (c, t1) = self.sequence(prompt, chosen, max_len)?;
                    let (r, t2) = self.sequence(prompt, rejected, max_len)?;
                    n_trunc += usize::from(t1 || t2);
                    Tokenized::Pair(TokenizedPair { chosen: c, rejected: r })
                }
                Record::Chat { messages } => {
                    let (s, t) = self.chat_sequence(messages, max_len).map_err(|e| in_record(e, ex))?;
                    n_trunc += usize::from(t);
                    Tokenized::Single(s)
                }
                Record::ChatPreference { prompt, chosen, rejected } => {
                    let side = |answer: &[Message]| {
                        let msgs: Vec<Message> = prompt.iter().chain(answer).cloned().collect();
                        self.chat_sequence(&msgs, max_len).map_err(|e| in_record(e, ex))
                    };
                    let ((c, t1), (r, t2)) = (side(chosen)?, side(rejected)?);
                    n_trunc += usize::from(t1 || t2);
                    Tokenized::Pair(TokenizedPair { chosen: c, rejected: r })
                }
            };
            match &t {
                Tokenized::Single(s) => self.fits(s, ex, max_len)?,
                Tokenized::Pair(p) => {
                    self.fits(&p.chosen, ex, max_len)?;
                    self.fits(&p.rejected, ex, max_len)?;
                }
            }
            out.push(t);
        }
        Ok((out, n_trunc))
    }
}

/// Cuts `s` to `max_len` tokens: the end when the first loss token sits before the last kept
/// position (so a target stays), else the start (whose first position is then never a
/// prediction target). Returns whether it cut.
fn truncate(mut s: Sequence, max_len: usize) -> (Sequence, bool) {
    if s.ids.len() <= max_len {
        return (s, false);
    }
    let first_target = s.mask.iter().position(|&m| m == 1).unwrap_or(s.mask.len());
    if first_target + 1 < max_len {
        s.ids.truncate(max_len);
        s.mask.truncate(max_len);
    } else {
        let cut = s.ids.len() - max_len;
        s.ids.drain(..cut);
        s.mask.drain(..cut);
        s.mask[0] = 0;
    }
    (s, true)
}

/// An error met rendering a record, said at the record's file and line (the template's own
/// file and line stay in the message).
fn in_record(e: Error, ex: &Example) -> Error {
    Error::Record { path: ex.source.to_path_buf(), line: ex.line, message: e.to_string() }
}
