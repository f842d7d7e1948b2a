//! Warmup training (LESS step 1): LoRA fine-tuning on a random fraction of the pool, saving a
//! checkpoint after every epoch: the PEFT adapter, the AdamW moments, and the epoch's mean
//! learning rate (LESS weights checkpoints by it). The steps themselves are `LoraTrainer`'s.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::adamw::AdamWConfig;
use super::lora_trainer::{shuffle, LoraTrainer};
use super::reference::DpoReference;
use super::schedule::{LrSchedule, Schedule};
use crate::data::{Dataset, RecordKind, TextTokenizer};
use crate::device::Compute;
use crate::error::{Error, Result, Setting};
use crate::loss::LossKind;
use crate::model::{CausalLm, LoraAdapter};
use crate::util::write_atomic;

/// Warmup settings (defaults follow LESS where it has one).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WarmupOptions {
    /// Fraction of the pool trained on (LESS: 0.05).
    pub fraction: f64,
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    pub batch_size: usize,
    /// Fraction of the steps spent warming the learning rate up linearly; then `schedule`.
    pub warmup_ratio: f64,
    /// What follows the warmup (linear decay to 0 unless said otherwise).
    #[serde(default)]
    pub schedule: Schedule,
    pub adamw: AdamWConfig,
    /// `Sft` for instruction data, `Dpo` for preference pairs.
    pub loss: LossKind,
    /// DPO's reference policy; None = the policy the run starts from (see [`DpoReference`]).
    /// Refused with an SFT loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<DpoReference>,
    pub seed: u64,
    pub max_len: usize,
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
    /// The reference policy a DPO warmup trained against (None for SFT, and in checkpoints
    /// saved before it was recorded, whose DPO reference was the base model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpo_reference: Option<DpoReference>,
}

/// A seeded random subset of `floor(fraction × n)` (at least 1) indices, in increasing order.
pub(crate) fn random_subset(n: usize, fraction: f64, seed: u64) -> Vec<usize> {
    let k = ((fraction * n as f64).floor() as usize).clamp(1, n);
    let mut idx: Vec<usize> = (0..n).collect();
    shuffle(&mut idx, seed);
    let mut out = idx[..k].to_vec();
    out.sort_unstable();
    out
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
    if opts.epochs == 0 {
        return Err(Error::setting(Setting::Epochs, "training needs at least one epoch"));
    }
    if opts.batch_size == 0 {
        return Err(Error::setting(Setting::BatchSize, "the batch size must be positive"));
    }
    if matches!(opts.loss, LossKind::Dpo { .. }) != pool.is_preference() {
        return Err(Error::RecordKind {
            file: pool.name(),
            user: format!("the {} loss", opts.loss.name()),
            needs: if pool.is_preference() { RecordKind::Instructions } else { RecordKind::Preferences }.describe(),
            input: "pool",
        });
    }
    let dpo_reference = match (&opts.reference, opts.loss) {
        (given, LossKind::Dpo { .. }) => Some(given.clone().unwrap_or_else(|| DpoReference::start_of(&adapter))),
        (None, _) => None,
        (Some(r), loss) => {
            return Err(Error::ReferenceUnused { reference: r.describe(), what: format!("the {} loss", loss.name()) })
        }
    };
    let reference = match &dpo_reference {
        Some(r) => r.load(model)?,
        None => None,
    };
    let subset = random_subset(pool.len(), opts.fraction, opts.seed);
    let examples: Vec<_> = subset.iter().map(|&i| pool.examples[i].clone()).collect();
    let (tokenized, truncated) = tokenizer.examples(&examples, opts.max_len)?;
    let steps_per_epoch = tokenized.len().div_ceil(opts.batch_size);
    let total = steps_per_epoch * opts.epochs;
    let rate = LrSchedule { peak: opts.lr, warmup_ratio: opts.warmup_ratio, kind: opts.schedule };
    let mut trainer =
        LoraTrainer::new(&adapter, opts.adamw, opts.loss, opts.batch_size, rate, total).with_reference(reference);
    let mut paths = Vec::new();
    tracing::info!(
        "warmup: {} of {} examples ({truncated} truncated), {} epochs × {steps_per_epoch} steps, lr {}, loss {}, on {}",
        tokenized.len(),
        pool.len(),
        opts.epochs,
        opts.lr,
        opts.loss.name(),
        compute.label
    );
    if let Some(r) = &dpo_reference {
        tracing::info!("warmup: DPO reference policy: {}", r.describe());
    }
    for epoch in 1..=opts.epochs {
        let seed = opts.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9);
        let stats = trainer.pass(model, &mut adapter, &tokenized, seed, &compute.device)?;
        let dir = out.join(format!("checkpoint-{epoch}"));
        adapter.save(&dir, model.fan_in_fan_out())?;
        trainer.optimizer().save(&dir.join("optimizer.safetensors"), &adapter.layout())?;
        let state = CheckpointState {
            epoch,
            mean_lr: stats.mean_lr,
            step: trainer.optimizer().step,
            loss: stats.mean_loss,
            subset: subset.clone(),
            options: opts.clone(),
            dpo_reference: dpo_reference.clone(),
        };
        write_atomic(&dir.join("trainer_state.json"), serde_json::to_string_pretty(&state).expect("json").as_bytes())?;
        tracing::info!(
            "warmup: epoch {epoch}: mean loss {:.4}, mean lr {:.3e} -> {}",
            state.loss,
            state.mean_lr,
            dir.display()
        );
        paths.push(dir);
    }
    Ok(paths)
}

/// The DPO reference policy the checkpoint in `dir` was trained against, from its
/// trainer_state.json; None where `dir` has no such file (an adapter made elsewhere) or its
/// warmup was SFT. A DPO warmup saved before the reference was recorded trained against the
/// base model.
pub(crate) fn recorded_reference(dir: &Path) -> Result<Option<DpoReference>> {
    if !dir.join("trainer_state.json").exists() {
        return Ok(None);
    }
    let state = read_state(dir)?;
    Ok(match state.options.loss {
        LossKind::Dpo { .. } => Some(state.dpo_reference.unwrap_or(DpoReference::Base)),
        LossKind::Sft | LossKind::SftSum => None,
    })
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
    fn schedule_warms_up_then_decays_to_zero_and_subsets_are_seeded() {
        let rate = LrSchedule { peak: 1.0, warmup_ratio: 0.2, kind: Schedule::Linear };
        let at: Vec<f64> = [0, 1, 2, 6].iter().map(|&s| rate.at(s, 10)).collect();
        assert_eq!(at, [0.0, 0.5, 1.0, 0.5]);
        assert_eq!(random_subset(200, 0.05, 1).len(), 10);
        assert_eq!(random_subset(200, 0.05, 1), random_subset(200, 0.05, 1));
    }
}
