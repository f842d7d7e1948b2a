//! LoRA fine-tuning steps shared by the warmup (LESS step 1) and the evaluation fine-tunes.
//!
//! The batch gradient is the gradient of the Hugging Face batch loss: for SFT the mean over ALL
//! response tokens of the batch (so it is Σ of per-example summed-loss gradients / token count),
//! for DPO the mean of per-pair losses. Both come from the exact per-example gradients, so there
//! is one gradient path in the crate.

use super::adamw::{AdamW, AdamWConfig};
use super::schedule::LrSchedule;
use crate::data::Tokenized;
use crate::error::Result;
use crate::loss::{per_example_grads, LossKind, Objective};
use crate::model::{CausalLm, LoraAdapter};
use crate::util::SplitMix64;

/// AdamW over an adapter's flat parameters with a learning-rate schedule of `total` steps.
pub(crate) struct LoraTrainer {
    optimizer: AdamW,
    params: Vec<f32>,
    /// The per-sequence loss the gradients are taken of (`SftSum` for instruction data).
    loss: LossKind,
    /// DPO's reference policy: the base model with this adapter; None = the base model.
    reference: Option<LoraAdapter>,
    batch_size: usize,
    rate: LrSchedule,
    total: usize,
    step: usize,
}

/// What one pass over the data did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PassStats {
    pub mean_lr: f64,
    pub mean_loss: f64,
}

impl LoraTrainer {
    /// A trainer for `total` steps of `batch_size` examples at the rates of `rate`.
    pub fn new(
        adapter: &LoraAdapter,
        adamw: AdamWConfig,
        loss: LossKind,
        batch_size: usize,
        rate: LrSchedule,
        total: usize,
    ) -> Self {
        let loss = match loss {
            LossKind::Sft | LossKind::SftSum => LossKind::SftSum,
            LossKind::Dpo { .. } => loss,
        };
        LoraTrainer {
            optimizer: AdamW::new(adamw, adapter.num_params()),
            params: adapter.flat_params(),
            loss,
            reference: None,
            batch_size: batch_size.max(1),
            rate,
            total,
            step: 0,
        }
    }

    /// Measures DPO against the base model with `reference` (see [`crate::loss::Objective`]).
    pub fn with_reference(self, reference: Option<LoraAdapter>) -> Self {
        LoraTrainer { reference, ..self }
    }

    /// The optimizer (its moments are saved with warmup checkpoints).
    pub fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }

    /// One shuffled pass over `data`, stopping early once the trainer has taken its `total`
    /// steps. Updates `adapter` in place.
    pub fn pass(
        &mut self,
        model: &CausalLm,
        adapter: &mut LoraAdapter,
        data: &[Tokenized],
        seed: u64,
        device: &burn::prelude::Device,
    ) -> Result<PassStats> {
        let mut order: Vec<usize> = (0..data.len()).collect();
        shuffle(&mut order, seed);
        let (mut lr_sum, mut loss_sum, mut steps) = (0f64, 0f64, 0usize);
        for batch in order.chunks(self.batch_size) {
            if self.step >= self.total {
                break;
            }
            let items: Vec<Tokenized> = batch.iter().map(|&i| data[i].clone()).collect();
            let objective = Objective { loss: self.loss, reference: self.reference.as_ref() };
            let g = per_example_grads(model, adapter, &items, objective, device)?;
            let (denom, batch_loss) = match self.loss {
                LossKind::Dpo { .. } => (items.len() as f32, g.losses.iter().sum::<f64>() / items.len() as f64),
                _ => {
                    let tokens: usize = items
                        .iter()
                        .map(|t| match t {
                            Tokenized::Single(s) => s.mask.iter().skip(1).filter(|&&m| m == 1).count(),
                            Tokenized::Pair(_) => 0,
                        })
                        .sum::<usize>()
                        .max(1);
                    (tokens as f32, g.losses.iter().sum::<f64>() / tokens as f64)
                }
            };
            let grad: Vec<f32> = g.grads.sum_dim(0).into_data().iter::<f32>().map(|x| x / denom).collect();
            let lr = self.rate.at(self.step, self.total);
            self.optimizer.step(&mut self.params, &grad, lr);
            adapter.set_flat_params(&self.params);
            lr_sum += lr;
            loss_sum += batch_loss;
            steps += 1;
            self.step += 1;
        }
        let n = steps.max(1) as f64;
        Ok(PassStats { mean_lr: lr_sum / n, mean_loss: loss_sum / n })
    }

    /// Passes over `data` until the trainer has taken its `total` steps (a fixed step budget,
    /// whatever the data size). Returns the mean loss of the last pass.
    pub fn run(
        &mut self,
        model: &CausalLm,
        adapter: &mut LoraAdapter,
        data: &[Tokenized],
        seed: u64,
        device: &burn::prelude::Device,
    ) -> Result<f64> {
        let mut last = f64::NAN;
        let mut pass = 0u64;
        while self.step < self.total && !data.is_empty() {
            pass += 1;
            last = self.pass(model, adapter, data, seed ^ pass.wrapping_mul(0x9E37_79B9), device)?.mean_loss;
        }
        Ok(last)
    }
}

/// Seeded Fisher–Yates shuffle.
pub(crate) fn shuffle(v: &mut [usize], seed: u64) {
    let mut rng = SplitMix64(seed);
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
}
