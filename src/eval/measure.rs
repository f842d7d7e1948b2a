//! Test-set metrics of a model with (or without) a LoRA adapter: target loss, exact-match
//! accuracy of greedy answers, and preference accuracy.

use serde::{Deserialize, Serialize};

use super::generate::greedy;
use crate::data::{Dataset, RecordKind, TextTokenizer, Tokenized};
use crate::device::Compute;
use crate::error::{Error, Result};
use crate::loss::{sequence_logps, sft_losses};
use crate::model::{CausalLm, LoraAdapter};

/// What a test set says about one model.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    /// Mean over test examples of the token-mean response NLL.
    pub test_loss: Option<f64>,
    /// Fraction of test prompts whose greedy answer equals the reference (whitespace-trimmed).
    pub accuracy: Option<f64>,
    /// Fraction of test pairs where log p(chosen) > log p(rejected).
    pub pref_accuracy: Option<f64>,
}

impl std::fmt::Display for Metrics {
    /// `test loss 3.796, exact match 0.013, preference acc. 0.550`, measured ones only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> =
            [("test loss", self.test_loss), ("exact match", self.accuracy), ("preference acc.", self.pref_accuracy)]
                .iter()
                .filter_map(|(name, v)| v.map(|v| format!("{name} {v:.3}")))
                .collect();
        f.write_str(&parts.join(", "))
    }
}

/// The held-out data a model is measured on.
#[derive(Clone, Copy)]
pub struct TestSets<'a> {
    /// Instruction records: loss and exact match.
    pub test: Option<&'a Dataset>,
    /// Preference pairs: preference accuracy.
    pub pairs: Option<&'a Dataset>,
}

const BATCH: usize = 32;

/// Measures `model` (+ `adapter`) on `tests`.
pub fn measure(
    model: &CausalLm,
    adapter: Option<&LoraAdapter>,
    tokenizer: &TextTokenizer,
    tests: TestSets<'_>,
    max_len: usize,
    max_new_tokens: usize,
    compute: &Compute,
) -> Result<Metrics> {
    let mut m = Metrics::default();
    if let Some(test) = tests.test {
        let (tok, _) = tokenizer.examples(&test.examples, max_len)?;
        let losses = sft_losses(model, adapter, &tok, BATCH, &compute.device)?;
        m.test_loss = Some(losses.iter().sum::<f64>() / losses.len().max(1) as f64);
        let mut prompts = Vec::with_capacity(test.len());
        let mut answers = Vec::with_capacity(test.len());
        for e in &test.examples {
            let Some((prompt, answer)) = tokenizer.generation_prompt(&e.record)? else {
                return Err(Error::Record {
                    path: e.source.to_path_buf(),
                    line: e.line,
                    message: "a test set for accuracy needs instruction or chat records, not pairs".into(),
                });
            };
            prompts.push(prompt);
            answers.push(answer.trim().to_string());
        }
        let outs = greedy(model, adapter, &prompts, max_new_tokens, tokenizer.eos(), BATCH, &compute.device);
        let mut hits = 0usize;
        for (ids, want) in outs.iter().zip(&answers) {
            hits += usize::from(tokenizer.decode(ids)?.trim() == want);
        }
        m.accuracy = Some(hits as f64 / answers.len().max(1) as f64);
    }
    if let Some(pairs) = tests.pairs {
        let (tok, _) = tokenizer.examples(&pairs.examples, max_len)?;
        let mut wins = 0usize;
        for chunk in tok.chunks(BATCH) {
            let mut seqs = Vec::with_capacity(2 * chunk.len());
            for t in chunk {
                let Tokenized::Pair(p) = t else {
                    return Err(Error::RecordKind {
                        file: pairs.name(),
                        user: "preference accuracy".into(),
                        needs: RecordKind::Preferences.describe(),
                        input: "test-pairs",
                    });
                };
                seqs.push(&p.chosen);
            }
            for t in chunk {
                if let Tokenized::Pair(p) = t {
                    seqs.push(&p.rejected);
                }
            }
            let lp = sequence_logps(model, adapter, &seqs, &compute.device)?;
            let e = chunk.len();
            wins += (0..e).filter(|&i| lp[i] > lp[e + i]).count();
        }
        m.pref_accuracy = Some(wins as f64 / tok.len().max(1) as f64);
    }
    Ok(m)
}
