//! Warmup training (LESS step 1): LoRA fine-tuning on a random fraction of the pool, saving a
//! checkpoint after every epoch: the PEFT adapter, the AdamW moments, and the epoch's mean
//! learning rate (LESS weights checkpoints by it).
//!
//! The batch gradient is the gradient of the Hugging Face batch loss: for SFT the mean over ALL
//! response tokens of the batch (so it is Σ of per-example summed-loss gradients / token count),
//! for DPO the mean of per-pair losses. Both come from the exact per-example gradients.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::adamw::{AdamW, AdamWConfig};
use crate::data::{Dataset, TextTokenizer, Tokenized};
use crate::device::Compute;
use crate::error::{Error, Result};
use crate::features::{per_example_grads, LossKind};
use crate::model::{CausalLm, LoraAdapter};
use crate::util::{write_atomic, SplitMix64};

/// Warmup settings (defaults follow LESS where it has one).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WarmupOptions {
    /// Fraction of the pool trained on (LESS: 0.05).
    pub fraction: f64,
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    pub batch_size: usize,
    /// Fraction of the steps spent warming the learning rate up linearly; then linear decay to 0.
    pub warmup_ratio: f64,
    pub adamw: AdamWConfig,
    /// `Sft` for instruction data, `Dpo` for preference pairs.
    pub loss: LossKind,
    pub seed: u64,
    pub max_len: usize,
    pub verbose: bool,
}

/// trainer_state.json of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    pub epoch: usize,
    /// Mean learning rate over the epoch's steps.
    pub mean_lr: f64,
    pub step: u64,
    /// Mean training loss over the epoch.
    pub loss: f64,
    /// Pool indices trained on.
    pub subset: Vec<usize>,
    pub options: WarmupOptions,
}

/// The learning rate at `step` (0-based) of `total`: linear warmup, then linear decay to 0
/// (Transformers' `get_linear_schedule_with_warmup`).
pub fn linear_schedule(step: usize, total: usize, warmup: usize, peak: f64) -> f64 {
    if step < warmup {
        peak * step as f64 / warmup.max(1) as f64
    } else {
        peak * (total.saturating_sub(step)) as f64 / (total.saturating_sub(warmup)).max(1) as f64
    }
}

/// A seeded random subset of `floor(fraction × n)` (at least 1) indices, in increasing order.
pub fn random_subset(n: usize, fraction: f64, seed: u64) -> Vec<usize> {
    let k = ((fraction * n as f64).floor() as usize).clamp(1, n);
    let mut idx: Vec<usize> = (0..n).collect();
    shuffle(&mut idx, seed);
    let mut out = idx[..k].to_vec();
    out.sort_unstable();
    out
}

fn shuffle(v: &mut [usize], seed: u64) {
    let mut rng = SplitMix64(seed);
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
}

/// Trains `adapter` on a random subset of `pool`; writes `out/checkpoint-E/` for every epoch E
/// and returns their paths.
pub fn warmup(
    model: &CausalLm,
    mut adapter: LoraAdapter,
    tokenizer: &TextTokenizer,
    pool: &Dataset,
    opts: &WarmupOptions,
    compute: &Compute,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    if opts.epochs == 0 || opts.batch_size == 0 {
        return Err(Error::Invalid("--epochs and --batch-size must be positive".into()));
    }
    let per_seq = match opts.loss {
        LossKind::Sft | LossKind::SftSum => LossKind::SftSum,
        LossKind::Dpo { .. } => opts.loss,
    };
    if matches!(per_seq, LossKind::Dpo { .. }) != pool.is_preference() {
        return Err(Error::Invalid(format!(
            "{}: the {} loss needs {} records",
            pool.path.display(),
            opts.loss.name(),
            if pool.is_preference() { "instruction" } else { "preference" }
        )));
    }
    let subset = random_subset(pool.len(), opts.fraction, opts.seed);
    let examples: Vec<_> = subset.iter().map(|&i| pool.examples[i].clone()).collect();
    let (tokenized, truncated) = tokenizer.examples(&examples, opts.max_len)?;
    let steps_per_epoch = tokenized.len().div_ceil(opts.batch_size);
    let total = steps_per_epoch * opts.epochs;
    let warm = (opts.warmup_ratio * total as f64).ceil() as usize;
    let mut optimizer = AdamW::new(opts.adamw, adapter.num_params());
    let mut params = adapter.flat_params();
    let mut step = 0usize;
    let mut paths = Vec::new();
    if opts.verbose {
        eprintln!(
            "warmup: {} of {} examples ({truncated} truncated), {} epochs × {steps_per_epoch} steps, lr {}, loss {}, on {}",
            tokenized.len(),
            pool.len(),
            opts.epochs,
            opts.lr,
            opts.loss.name(),
            compute.label
        );
    }
    for epoch in 1..=opts.epochs {
        let mut order: Vec<usize> = (0..tokenized.len()).collect();
        shuffle(&mut order, opts.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9));
        let (mut lr_sum, mut loss_sum, mut loss_n) = (0f64, 0f64, 0usize);
        for batch in order.chunks(opts.batch_size) {
            let items: Vec<Tokenized> = batch.iter().map(|&i| tokenized[i].clone()).collect();
            let g = per_example_grads(model, &adapter, &items, per_seq, &compute.device)?;
            let (denom, batch_loss) = match per_seq {
                LossKind::SftSum => {
                    let tokens: usize = items
                        .iter()
                        .map(|t| {
                            if let Tokenized::Single(s) = t {
                                s.mask.iter().skip(1).filter(|&&m| m == 1).count()
                            } else {
                                0
                            }
                        })
                        .sum();
                    (tokens.max(1) as f32, g.losses.iter().sum::<f64>() / tokens.max(1) as f64)
                }
                _ => (items.len() as f32, g.losses.iter().sum::<f64>() / items.len() as f64),
            };
            let grad: Vec<f32> = g.grads.sum_dim(0).into_data().iter::<f32>().map(|x| x / denom).collect();
            let lr = linear_schedule(step, total, warm, opts.lr);
            optimizer.step(&mut params, &grad, lr);
            adapter.set_flat_params(&params);
            lr_sum += lr;
            loss_sum += batch_loss;
            loss_n += 1;
            step += 1;
        }
        let dir = out.join(format!("checkpoint-{epoch}"));
        adapter.save(&dir, model.fan_in_fan_out())?;
        optimizer.save(&dir.join("optimizer.safetensors"), &adapter.layout())?;
        let state = CheckpointState {
            epoch,
            mean_lr: lr_sum / loss_n.max(1) as f64,
            step: optimizer.step,
            loss: loss_sum / loss_n.max(1) as f64,
            subset: subset.clone(),
            options: opts.clone(),
        };
        write_atomic(&dir.join("trainer_state.json"), serde_json::to_string_pretty(&state).expect("json").as_bytes())?;
        if opts.verbose {
            eprintln!(
                "warmup: epoch {epoch}: mean loss {:.4}, mean lr {:.3e} -> {}",
                state.loss,
                state.mean_lr,
                dir.display()
            );
        }
        paths.push(dir);
    }
    Ok(paths)
}

/// Reads a checkpoint's trainer_state.json.
pub fn read_state(dir: &Path) -> Result<CheckpointState> {
    let p = dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    serde_json::from_str(&text).map_err(|e| Error::format(&p, format!("invalid trainer state: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        assert_eq!(linear_schedule(0, 10, 2, 1.0), 0.0);
        assert_eq!(linear_schedule(1, 10, 2, 1.0), 0.5);
        assert_eq!(linear_schedule(2, 10, 2, 1.0), 1.0);
        assert_eq!(linear_schedule(6, 10, 2, 1.0), 0.5);
        assert_eq!(random_subset(200, 0.05, 1).len(), 10);
        assert_eq!(random_subset(200, 0.05, 1), random_subset(200, 0.05, 1));
    }
}
