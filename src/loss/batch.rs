//! Padding tokenized sequences into one batch. Sequences are right-padded: attention is causal,
//! so padding after a sequence never changes its logits, and padded targets get weight 0.

use burn::prelude::*;

use crate::data::Sequence;

/// A padded batch on a device.
pub struct SeqBatch {
    /// `[S, T]` token ids.
    pub ids: Tensor<2, Int>,
    /// `[S, T-1, 1]` next-token targets.
    pub targets: Tensor<3, Int>,
    /// `[S, T-1]` 1 where the target is a response token.
    pub weights: Tensor<2>,
    /// Response-token count per sequence.
    pub counts: Vec<usize>,
    /// Real (unpadded) length per sequence.
    pub lengths: Vec<usize>,
    /// `[S·T]` on the host: the token position (s, j) predicts (`ids[s][j + 1]`; 0 at the last).
    pub row_targets: Vec<u32>,
    /// `[S·T]` on the host: 1 where that prediction is a response token (0 at the last).
    pub row_weights: Vec<f32>,
}

impl SeqBatch {
    /// Pads `seqs` to the longest one.
    pub fn new(seqs: &[&Sequence], device: &Device) -> Self {
        let s = seqs.len();
        let t = seqs.iter().map(|q| q.ids.len()).max().unwrap_or(1).max(2);
        let mut ids = vec![0i64; s * t];
        let mut targets = vec![0i64; s * (t - 1)];
        let mut weights = vec![0f32; s * (t - 1)];
        let mut counts = Vec::with_capacity(s);
        let (mut row_targets, mut row_weights) = (vec![0u32; s * t], vec![0f32; s * t]);
        for (i, q) in seqs.iter().enumerate() {
            for (j, &id) in q.ids.iter().enumerate() {
                ids[i * t + j] = id as i64;
                if j >= 1 {
                    targets[i * (t - 1) + j - 1] = id as i64;
                    weights[i * (t - 1) + j - 1] = f32::from(q.mask[j]);
                    row_targets[i * t + j - 1] = id;
                    row_weights[i * t + j - 1] = f32::from(q.mask[j]);
                }
            }
            counts.push(q.mask.iter().skip(1).filter(|&&m| m == 1).count());
        }
        SeqBatch {
            ids: Tensor::from_data(TensorData::new(ids, [s, t]), device),
            targets: Tensor::from_data(TensorData::new(targets, [s, t - 1, 1]), device),
            weights: Tensor::from_data(TensorData::new(weights, [s, t - 1]), device),
            counts,
            lengths: seqs.iter().map(|q| q.ids.len()).collect(),
            row_targets,
            row_weights,
        }
    }

    /// Summed response log-probabilities `[S]` from logits `[S, T, V]`, differentiable
    /// through the logits (full-model training; [`super::head`] is the lean path).
    pub fn response_logps(&self, logits: Tensor<3>) -> Tensor<1> {
        let [s, t, _] = logits.dims();
        let logp = burn::tensor::activation::log_softmax(logits.narrow(1, 0, t - 1), 2);
        let tok = logp.gather(2, self.targets.clone()).reshape([s, t - 1]);
        (tok * self.weights.clone()).sum_dim(1).reshape([s])
    }
}
