//! Padding tokenized sequences into one batch. Sequences are right-padded: attention is causal,
//! so padding after a sequence never changes its logits, and padded targets get weight 0.

use burn::prelude::*;

use crate::data::Sequence;

/// A padded batch on a device.
pub struct SeqBatch {
    /// `[S, T]` token ids.
    pub ids: Tensor<2, Int>,
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
        let mut counts = Vec::with_capacity(s);
        let (mut row_targets, mut row_weights) = (vec![0u32; s * t], vec![0f32; s * t]);
        for (i, q) in seqs.iter().enumerate() {
            for (j, &id) in q.ids.iter().enumerate() {
                ids[i * t + j] = id as i64;
                if j >= 1 {
                    row_targets[i * t + j - 1] = id;
                    row_weights[i * t + j - 1] = f32::from(q.mask[j]);
                }
            }
            counts.push(q.mask.iter().skip(1).filter(|&&m| m == 1).count());
        }
        SeqBatch {
            ids: Tensor::from_data(TensorData::new(ids, [s, t]), device),
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
        let device = logits.device();
        // The last position's target and weight are 0: it adds nothing to the sums.
        let targets: Vec<i64> = self.row_targets.iter().map(|&y| y as i64).collect();
        let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [s, t, 1]), &device);
        let weights = Tensor::<2>::from_data(TensorData::new(self.row_weights.clone(), [s, t]), &device);
        let tok = burn::tensor::activation::log_softmax(logits, 2).gather(2, targets).reshape([s, t]);
        (tok * weights).sum_dim(1).reshape([s])
    }
}
