//! Hidden-state embeddings of sequences (for RDS, RDS+ and TSDS): the model's final hidden
//! states (after the last norm), pooled per sequence.

use burn::prelude::*;

use crate::data::{RecordKind, Sequence, Tokenized};
use crate::error::{Error, Result};
use crate::loss::SeqBatch;
use crate::model::{CausalLm, LoraAdapter};

/// How a sequence's hidden states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    LastToken,
    Mean,
}

crate::choice::choice!(Pooling {
    LastToken => "last-token": "the last token's state (RDS)",
    Mean => "mean": "position-weighted mean, weight (t+1)/sum(t+1) over the sequence's tokens (RDS+)",
});

/// `[N, H]` embeddings of instruction examples, `batch` sequences per forward pass.
pub fn embeddings(
    model: &CausalLm,
    adapter: Option<&LoraAdapter>,
    examples: &[Tokenized],
    pooling: Pooling,
    batch: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    let seqs: Vec<&Sequence> = examples
        .iter()
        .map(|e| match e {
            Tokenized::Single(s) => Ok(s),
            Tokenized::Pair(_) => Err(Error::Records {
                user: "hidden-state embeddings".into(),
                needs: RecordKind::Instructions.describe(),
            }),
        })
        .collect::<Result<_>>()?;
    let h = model.config.hidden;
    let mut out = Vec::with_capacity(seqs.len() * h);
    for chunk in seqs.chunks(batch.max(1)) {
        let b = SeqBatch::new(chunk, device);
        let lora = adapter.map(|a| a.runtime(model.linears.len(), chunk.len(), device));
        let hidden: Vec<f32> =
            model.hidden(b.ids.clone(), &b.lengths, lora.as_ref()).into_data().iter::<f32>().collect();
        let t = hidden.len() / (chunk.len() * h);
        for (i, &len) in b.lengths.iter().enumerate() {
            let row = |p: usize| &hidden[(i * t + p) * h..(i * t + p + 1) * h];
            match pooling {
                Pooling::LastToken => out.extend_from_slice(row(len - 1)),
                Pooling::Mean => {
                    let total = (len * (len + 1) / 2) as f64;
                    let mut acc = vec![0f64; h];
                    for p in 0..len {
                        let w = (p + 1) as f64 / total;
                        acc.iter_mut().zip(row(p)).for_each(|(a, &x)| *a += w * x as f64);
                    }
                    out.extend(acc.into_iter().map(|x| x as f32));
                }
            }
        }
    }
    Ok(out)
}
