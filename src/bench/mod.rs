//! Benchmarks (`gradsift bench`):
//! - featurization throughput: per-example gradients plus projection of the embedded demo pool,
//!   timed to completion (every batch's features are read back to the host, so nothing lazy
//!   escapes the clock), on each backend;
//! - scoring (`--scoring`): time and peak-memory growth of LESS scoring plus top-k over a
//!   synthetic feature matrix on disk, which shows that the scorers stream the pool;
//! - real model shapes (`--shape`, [`shape`]): a published config with seeded random weights.

pub mod shape;

use std::path::Path;
use std::time::Instant;

use crate::choice::Choice;
use crate::data::{load_records, TextTokenizer, Tokenized};
use crate::device::Compute;
use crate::error::{Error, Result};
use crate::features::npy::{NpyFile, NpyWriter};
use crate::features::rng::{fmix32, row_key};
use crate::features::{Dtype, Features, ProjectionKind, Projector, BLOCK_ROWS};
use crate::loss::{per_example_grads, LossKind};
use crate::methods::gpu_score::{GpuScorer, WeightedFeatures};
use crate::methods::less;
use crate::model::{CausalLm, LoraAdapter};
use crate::select;

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
    pub fn line(&self, k: usize, projection: ProjectionKind, batch: usize) -> String {
        format!(
            "{:<52} {:>7.1} examples/s {:>9.0} tokens/s   (gradients {:.2}s, {} projection k={k} {:.2}s; {} examples, |θ|={}, batch {batch})",
            self.device,
            self.examples as f64 / self.seconds,
            self.tokens as f64 / self.seconds,
            self.grad_seconds,
            projection.name(),
            self.proj_seconds,
            self.examples,
            self.grad_dim
        )
    }
}

/// Featurizes the embedded demo pool on `compute` (fresh LoRA r=8 on q/k/v/o, SFT loss): the
/// rate docs/performance.md reports.
pub fn featurize_throughput(
    compute: &Compute,
    k: usize,
    projection: ProjectionKind,
    nnz: usize,
    batch: usize,
) -> Result<Throughput> {
    let assets = crate::assets::materialize()?;
    let model = CausalLm::load(&assets.model_dir, &compute.device)?;
    let tok = TextTokenizer::from_file(&assets.model_dir.join("tokenizer.json"), model.config.eos_token_id)?;
    let adapter = LoraAdapter::fresh(&model.linears, 8, 32.0, &model.config.arch.default_lora_targets(), 0)?;
    let pool = load_records(&assets.pool)?;
    let (examples, _) = tok.examples(&pool.examples, 512)?;
    let tokens = examples.iter().map(|e| if let Tokenized::Single(s) = e { s.ids.len() } else { 0 }).sum();
    let n = adapter.num_params();
    let projector = Projector::new(compute.gpu.as_ref(), projection, 0, k, nnz)?;
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

/// One backend's LESS scoring of a feature matrix on disk (`gradsift bench --scoring`).
#[derive(Debug, Clone)]
pub struct ScoringRun {
    pub device: String,
    pub rows: usize,
    pub dim: usize,
    pub targets: usize,
    /// Size of the matrix's file.
    pub matrix_bytes: u64,
    /// Scoring plus the top-5% selection.
    pub seconds: f64,
    /// How far the process's peak resident memory rose while scoring (Linux only).
    pub peak_growth_bytes: Option<u64>,
}

impl ScoringRun {
    /// One table row.
    pub fn line(&self) -> String {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        format!(
            "{:<52} {:>8.2} s  {:>9.0} candidates/s   peak memory +{} while scoring a {:.0} MiB matrix ({} × {}, {} targets)",
            self.device,
            self.seconds,
            self.rows as f64 / self.seconds,
            self.peak_growth_bytes.map(|b| format!("{:.0} MiB", mib(b))).unwrap_or_else(|| "n/a".into()),
            mib(self.matrix_bytes),
            self.rows,
            self.dim,
            self.targets
        )
    }
}

/// Writes a `[rows, dim]` f32 matrix of counter-based random values to `path`, a block at a
/// time (the generator is keyed by (seed, row, column), as the projection's is).
pub(crate) fn synthetic_matrix(path: &Path, rows: usize, dim: usize, seed: u64) -> Result<NpyFile> {
    let mut w = NpyWriter::create(path, rows, dim, Dtype::F32)?;
    for r0 in (0..rows).step_by(BLOCK_ROWS) {
        let n = BLOCK_ROWS.min(rows - r0);
        let block: Vec<f32> = (r0..r0 + n)
            .flat_map(|r| {
                let key = row_key(seed, r as u32);
                (0..dim as u32).map(move |c| (fmix32(key ^ c.wrapping_mul(0x9E37_79B9)) as f32 / u32::MAX as f32) - 0.5)
            })
            .collect();
        w.append(&block)?;
    }
    w.finish()?;
    NpyFile::open(path)
}

/// The inputs of the scoring bench under `dir`: a `[rows, dim]` candidate matrix on disk and
/// `targets` target rows in memory, split into two subtasks.
pub fn scoring_inputs(dir: &Path, rows: usize, dim: usize, targets: usize) -> Result<(NpyFile, Features)> {
    let matrix = synthetic_matrix(&dir.join("features.npy"), rows, dim, 1)?;
    let t = synthetic_matrix(&dir.join("targets.npy"), targets, dim, 2)?;
    let tasks = (0..targets).map(|j| Some(if j % 2 == 0 { "a" } else { "b" }.to_string())).collect();
    Ok((matrix, Features::from_matrix(t.read_rows(0, targets)?, targets, dim, tasks)))
}

/// Which CPU backends a benchmark times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpus {
    /// None: the wgpu adapters alone (a GPU's run at a large shape without the CPU's, which
    /// would take far longer).
    None,
    /// The backend that computes (Flex).
    One,
    /// Flex and, in builds with the `ndarray` feature, NdArray beside it.
    Both,
}

/// Which wgpu adapters a benchmark times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapters<'a> {
    None,
    /// Every adapter on the supported graphics APIs.
    All,
    /// One, by index or case-insensitive name substring (as `gradsift devices` lists them).
    Named(&'a str),
}

/// An adapter that failed to open: its description and why.
pub type Unopened = (String, String);

/// The backends a benchmark compares: `cpus`, then `adapters`. Adapters that fail to open
/// come back as `(description, why)`; a named adapter that does not exist is an error.
pub fn backends(cpus: Cpus, adapters: Adapters) -> Result<(Vec<Compute>, Vec<Unopened>)> {
    let mut ok = Vec::new();
    if cpus != Cpus::None {
        ok.push(Compute::cpu());
    }
    #[cfg(feature = "ndarray")]
    if cpus == Cpus::Both {
        ok.push(Compute::cpu_other());
    }
    let listed = match adapters {
        Adapters::None => Vec::new(),
        _ => crate::device::list_adapters(),
    };
    let chosen = match adapters {
        Adapters::Named(spec) => vec![crate::device::find_adapter(&listed, spec)?],
        _ => (0..listed.len()).collect(),
    };
    let mut skipped = Vec::new();
    for entry in chosen.into_iter().map(|i| &listed[i]) {
        match crate::device::open_adapter(&listed, entry) {
            Ok(c) => ok.push(c),
            Err(e) => skipped.push((entry.describe(), e.to_string())),
        }
    }
    Ok((ok, skipped))
}

/// Scores `matrix` against `targets` (one checkpoint) on `compute`, then picks the top 5%:
/// the WGSL kernel on a GPU, plain Rust on the CPU backend; both stream the matrix.
pub fn scoring_memory(compute: &Compute, matrix: &NpyFile, targets: &Features) -> Result<ScoringRun> {
    reset_peak_rss();
    let before = peak_rss_bytes();
    let start = Instant::now();
    let scores = match &compute.gpu {
        Some(g) => {
            let scorer = GpuScorer::new(g.clone());
            let stage = [WeightedFeatures { pool: matrix, target: targets, weight: 1.0 }];
            if let Some(why) = scorer.unfit(&stage) {
                return Err(Error::AdapterLimit(why));
            }
            scorer.score(&stage)?.combined
        }
        None => less::combine(&[less::subtask_cosines(matrix, targets)?], &[1.0]),
    };
    std::hint::black_box(select::top_k(&scores.score, (matrix.rows / 20).max(1)));
    let seconds = start.elapsed().as_secs_f64();
    let matrix_bytes = std::fs::metadata(matrix.path()).map(|m| m.len()).unwrap_or(0);
    Ok(ScoringRun {
        device: compute.label.clone(),
        rows: matrix.rows,
        dim: matrix.cols,
        targets: targets.rows,
        matrix_bytes,
        seconds,
        peak_growth_bytes: before.zip(peak_rss_bytes()).map(|(b, a)| a.saturating_sub(b)),
    })
}

/// VmHWM, the process's peak resident memory, from /proc (None elsewhere than Linux).
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// Lowers the peak to the current resident memory (Linux: `5` to /proc/self/clear_refs), so
/// each measurement starts from where the process stands.
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
