//! Greedy decoding, for exact-match accuracy. Batches are right-padded: attention is causal, so a
//! sequence's next-token logits at its own last position do not see the padding after it, and
//! sequences of different lengths decode together without a mask.

use burn::prelude::*;

use crate::model::{CausalLm, LoraAdapter};

/// Continues every prompt greedily until EOS or `max_new` tokens; returns the new tokens (EOS
/// excluded).
pub fn greedy(
    model: &CausalLm,
    adapter: Option<&LoraAdapter>,
    prompts: &[Vec<u32>],
    max_new: usize,
    eos: u32,
    batch: usize,
    device: &Device,
) -> Vec<Vec<u32>> {
    let mut out = Vec::with_capacity(prompts.len());
    for chunk in prompts.chunks(batch.max(1)) {
        let mut seqs: Vec<Vec<u32>> = chunk.to_vec();
        let mut new: Vec<Vec<u32>> = vec![Vec::new(); chunk.len()];
        let mut done = vec![false; chunk.len()];
        let lora = adapter.map(|a| a.runtime(model.linears.len(), chunk.len(), device));
        for _ in 0..max_new {
            if done.iter().all(|&d| d) {
                break;
            }
            let t = seqs.iter().map(Vec::len).max().unwrap_or(1);
            let mut ids = vec![0i64; chunk.len() * t];
            for (i, s) in seqs.iter().enumerate() {
                for (j, &id) in s.iter().enumerate() {
                    ids[i * t + j] = i64::from(id);
                }
            }
            let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [chunk.len(), t]), device);
            // Every step reruns the whole sequence (no cache), so a LongRoPE model past its
            // original context rotates every position by the long set, as a fresh pass would.
            let lengths: Vec<usize> = seqs.iter().map(Vec::len).collect();
            let next = model.logits(ids, &lengths, lora.as_ref()).argmax(2);
            let next: Vec<i64> = next.into_data().iter::<i64>().collect();
            for (i, s) in seqs.iter_mut().enumerate() {
                if done[i] {
                    continue;
                }
                let tok = next[i * t + s.len() - 1] as u32;
                if tok == eos {
                    done[i] = true;
                } else {
                    s.push(tok);
                    new[i].push(tok);
                }
            }
        }
        out.extend(new);
    }
    out
}
