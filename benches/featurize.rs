//! Featurization throughput on the embedded default model and demo pool, per backend:
//! per-example gradients (one backward per batch) + projection, timed to completion.
//!
//!     cargo bench --bench featurize            # all backends found
//!     GRADSIFT_BENCH_K=8192 cargo bench --bench featurize
//!
//! Prints examples/s and tokens/s for the Flex and NdArray CPU backends and the wgpu adapter
//! `--device auto` would pick (if any).

use std::time::Instant;

use burn::prelude::*;
use gradsift::data::{load_jsonl, Tokenized};
use gradsift::device::{self, Compute, DeviceChoice};
use gradsift::features::{per_example_grads, GpuProjector, LossKind, Projector};
use gradsift::model::{CausalLm, LoraAdapter};
use gradsift::pipeline::default_targets;

fn bench(c: &Compute, k: usize, batch: usize) {
    let assets = gradsift::assets::materialize().unwrap();
    let model = CausalLm::load(&assets.model_dir, &c.device).unwrap();
    let tok = gradsift::data::TextTokenizer::from_file(&assets.model_dir.join("tokenizer.json"), model.config.eos_token_id).unwrap();
    let adapter = LoraAdapter::fresh(&model.linears, 8, 32.0, &default_targets(model.config.arch), 0).unwrap();
    let pool = load_jsonl(&assets.pool).unwrap();
    let (examples, _) = tok.examples(&pool.examples, 512).unwrap();
    let tokens: usize = examples.iter().map(|e| if let Tokenized::Single(s) = e { s.ids.len() } else { 0 }).sum();
    let n = adapter.num_params();
    let projector = match &c.gpu {
        Some(g) if k > 0 => Projector::Gpu { kernel: std::sync::Arc::new(GpuProjector::new(g.clone())), seed: 0, k },
        _ if k > 0 => Projector::Cpu { seed: 0, k },
        _ => Projector::Identity,
    };
    // Warm-up (kernel compilation, allocations).
    let _ = per_example_grads(&model, &adapter, &examples[..batch], LossKind::Sft, &c.device).unwrap().grads.into_data();
    let (mut t_grad, mut t_proj) = (0f64, 0f64);
    let start = Instant::now();
    for b0 in (0..examples.len()).step_by(batch) {
        let b1 = (b0 + batch).min(examples.len());
        let t = Instant::now();
        let g = per_example_grads(&model, &adapter, &examples[b0..b1], LossKind::Sft, &c.device).unwrap();
        let flat: Vec<f32> = g.grads.into_data().iter::<f32>().collect();
        t_grad += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let f = projector.apply(flat, b1 - b0, n).unwrap();
        assert_eq!(f.len(), (b1 - b0) * projector.dim(n));
        t_proj += t.elapsed().as_secs_f64();
    }
    let total = start.elapsed().as_secs_f64();
    println!(
        "{:<48} {:>4} ex  {:>7.1} examples/s  {:>8.0} tokens/s   (gradients {:.2}s, projection k={} {:.2}s, |θ|={n}, batch {batch})",
        c.label,
        examples.len(),
        examples.len() as f64 / total,
        tokens as f64 / total,
        t_grad,
        k,
        t_proj
    );
}

fn main() {
    let k: usize = std::env::var("GRADSIFT_BENCH_K").ok().and_then(|v| v.parse().ok()).unwrap_or(8192);
    let batch: usize = std::env::var("GRADSIFT_BENCH_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    println!("featurization of the embedded demo pool (sft loss, fresh LoRA r=8 on q/k/v/o)");
    bench(&Compute::cpu(), k, batch);
    #[allow(deprecated)]
    let ndarray = Compute { device: Device::ndarray().autodiff(), gpu: None, label: "cpu (burn ndarray backend)".into(), notice: None };
    bench(&ndarray, k, batch);
    match device::open(DeviceChoice::Gpu, None) {
        Ok(c) => bench(&c, k, batch),
        Err(e) => println!("wgpu: skipped ({e})"),
    }
}
