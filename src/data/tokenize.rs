//! Tokenization with the LESS convention: `ids = tokenizer(prompt + response)` (special tokens
//! added by the tokenizer's post-processor, e.g. BOS) followed by EOS; the first
//! `len(tokenizer(prompt))` positions are prompt (mask 0) and the rest response (mask 1).

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

use super::formats::{Example, Record};
use crate::error::{Error, Result};

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
}

impl TextTokenizer {
    /// Loads `tokenizer.json`; `eos` is the model's `eos_token_id`.
    pub fn from_file(path: &Path, eos: u32) -> Result<Self> {
        let inner =
            Tokenizer::from_file(path).map_err(|e| Error::Tokenizer { path: path.into(), message: e.to_string() })?;
        Ok(TextTokenizer { inner, path: path.into(), eos })
    }

    /// The EOS id appended after each response.
    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| Error::Tokenizer { path: self.path.clone(), message: e.to_string() })?;
        Ok(enc.get_ids().to_vec())
    }

    /// The ids of a prompt alone, as generation starts from them (special tokens included).
    pub fn prompt_ids(&self, prompt: &str) -> Result<Vec<u32>> {
        self.encode(prompt)
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
        let mut mask: Vec<u8> = (0..ids.len()).map(|i| u8::from(i >= prompt_len)).collect();
        let truncated = ids.len() > max_len;
        if truncated {
            if prompt_len + 1 < max_len {
                ids.truncate(max_len);
                mask.truncate(max_len);
            } else {
                let cut = ids.len() - max_len;
                ids.drain(..cut);
                mask.drain(..cut);
                // The first position is never a prediction target: keep one response target.
                mask[0] = 0;
            }
        }
        Ok((Sequence { ids, mask }, truncated))
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
            };
            out.push(t);
        }
        Ok((out, n_trunc))
    }
}
