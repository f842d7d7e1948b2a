//! Featurization throughput (`gradsift bench`): per-example gradients plus projection of the
//! embedded demo pool, timed to completion (every batch's features are read back to the host,
//! so nothing lazy escapes the clock), on each backend.

use std::time::Instant;

use crate::data::{load_jsonl, TextTokenizer, Tokenized};
use crate::device::Compute;
use crate::error::Result;
use crate::features::{per_example_grads, GpuProjector, LossKind, Projector};
use crate::model::{CausalLm, LoraAdapter};
use crate::pipeline::default_targets;

/// One backend's measurement.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub device: String,
    pub examples: usize,
    pub tokens: usize,
    pub grad_dim: usize,
    pub seconds: f64,
    pub grad_seconds: f64,
    pub proj_seconds: f64,
}

impl Throughput {
    /// One table row.
    pub fn line(&self, k: usize, batch: usize) -> String {
        format!(
            "{:<52} {:>7.1} examples/s {:>9.0} tokens/s   (gradients {:.2}s, projection k={k} {:.2}s; {} examples, |θ|={}, batch {batch})",
            self.device,
            self.examples as f64 / self.seconds,
            self.tokens as f64 / self.seconds,
            self.grad_seconds,
            self.proj_seconds,
            self.examples,
            self.grad_dim
        )
    }
}

/// Featurizes the embedded demo pool on `compute` (fresh LoRA r=8 on q/k/v/o, SFT loss).
/// Before these numbers, the first version projected every batch of 8 separately: see README.
pub fn featurize_throughput(compute: &Compute, k: usize, batch: usize) -> Result<Throughput> {
    let assets = crate::assets::materialize()?;
    let model = CausalLm::load(&assets.model_dir, &compute.device)?;
    let tok = TextTokenizer::from_file(&assets.model_dir.join("tokenizer.json"), model.config.eos_token_id)?;
    let adapter = LoraAdapter::fresh(&model.linears, 8, 32.0, &default_targets(model.config.arch), 0)?;
    let pool = load_jsonl(&assets.pool)?;
    let (examples, _) = tok.examples(&pool.examples, 512)?;
    let tokens = examples.iter().map(|e| if let Tokenized::Single(s) = e { s.ids.len() } else { 0 }).sum();
    let n = adapter.num_params();
    let projector = match &compute.gpu {
        _ if k == 0 => Projector::Identity,
        Some(g) => Projector::Gpu { kernel: std::sync::Arc::new(GpuProjector::new(g.clone())), seed: 0, k },
        None => Projector::Cpu { seed: 0, k },
    };
    // Warm-up: kernel compilation and first allocations are not throughput.
    let warm =
        per_example_grads(&model, &adapter, &examples[..batch.min(examples.len())], LossKind::Sft, &compute.device)?;
    let warm_flat: Vec<f32> = warm.grads.into_data().iter::<f32>().collect();
    projector.apply(warm_flat, batch.min(examples.len()), n)?;

    // As `featurize` does: gradients batch by batch, then one projection over the whole pool
    // (its 200 × |θ| gradients fit the 256 MiB the store lets wait).
    let start = Instant::now();
    let mut flat = Vec::with_capacity(examples.len() * n);
    for b0 in (0..examples.len()).step_by(batch) {
        let b1 = (b0 + batch).min(examples.len());
        let g = per_example_grads(&model, &adapter, &examples[b0..b1], LossKind::Sft, &compute.device)?;
        flat.extend(g.grads.into_data().iter::<f32>());
    }
    let grad_seconds = start.elapsed().as_secs_f64();
    let t = Instant::now();
    projector.apply(flat, examples.len(), n)?;
    let proj_seconds = t.elapsed().as_secs_f64();
    Ok(Throughput {
        device: compute.label.clone(),
        examples: examples.len(),
        tokens,
        grad_dim: n,
        seconds: start.elapsed().as_secs_f64(),
        grad_seconds,
        proj_seconds,
    })
}
