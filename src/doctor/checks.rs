//! The numeric self-checks: each runs one of our computations on the device under test and on
//! the plain-Rust (CPU) reference, on fresh seeded inputs, and reports the error against the
//! tolerance the test suite uses for it.

use std::time::Instant;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::Tokenized;
use crate::device::Compute;
use crate::error::{Error, Result, Setting};
use crate::features::sparse::{GpuSparseProjector, SparseJl};
use crate::features::{project_cpu, Features, GpuProjector};
use crate::loss::{per_example_grads, LossKind};
use crate::methods::gpu_score::{GpuScorer, WeightedFeatures};
use crate::methods::knn::{Exact, NeighbourSearch};
use crate::methods::less;
use crate::model::{CausalLm, LoraAdapter};
use crate::util::SplitMix64;

/// The doctor's checks, by the name each has in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckName {
    Projection,
    SparseProjection,
    Scoring,
    Knn,
    SftGradients,
    DpoGradients,
    SelectLess,
}

impl CheckName {
    /// Every check, in the order a device's row lists them.
    pub const ALL: [CheckName; 7] = [
        CheckName::Projection,
        CheckName::SparseProjection,
        CheckName::Scoring,
        CheckName::Knn,
        CheckName::SftGradients,
        CheckName::DpoGradients,
        CheckName::SelectLess,
    ];

    /// The name in the report (and on the command line).
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Projection => "projection",
            CheckName::SparseProjection => "sparse projection",
            CheckName::Scoring => "scoring",
            CheckName::Knn => "knn top-k",
            CheckName::SftGradients => "sft gradients",
            CheckName::DpoGradients => "dpo gradients",
            CheckName::SelectLess => "select less",
        }
    }
}

impl std::fmt::Display for CheckName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CheckName {
    type Err = Error;

    /// A report name; `-` may stand for its spaces (`sft-gradients`).
    fn from_str(s: &str) -> Result<CheckName> {
        let want = s.trim().replace('-', " ").to_ascii_lowercase();
        CheckName::ALL.into_iter().find(|c| c.as_str().replace('-', " ") == want).ok_or_else(|| {
            let names: Vec<&str> = CheckName::ALL.iter().map(|c| c.as_str()).collect();
            Error::setting(
                Setting::Checks,
                format!("no doctor check is called `{s}`; the checks: {}", names.join(", ")),
            )
        })
    }
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    /// Relative L2 error (or, for top-k results, the share of mismatches).
    pub error: f64,
    pub tolerance: f64,
    pub passed: bool,
    /// What was compared, or why the check could not run.
    pub detail: String,
}

impl Check {
    fn new(check: CheckName, error: f64, tolerance: f64, detail: String) -> Check {
        Check { name: check.as_str().into(), error, tolerance, passed: error.is_finite() && error <= tolerance, detail }
    }

    /// A check that could not run (a shader that does not compile, a device lost...).
    pub fn failed(check: CheckName, message: String) -> Check {
        Check { name: check.as_str().into(), error: f64::INFINITY, tolerance: 0.0, passed: false, detail: message }
    }
}

/// ‖a − b‖ / ‖b‖ (‖a − b‖ when b = 0): the suite's relative error.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    if a.len() != b.len() {
        f64::INFINITY
    } else if den == 0.0 {
        num
    } else {
        num / den
    }
}

/// Uniform values in [−1, 1) from `seed`.
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    (0..n).map(|_| (2.0 * rng.uniform() - 1.0) as f32).collect()
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// The test-only hook that plants a wrong result in one check (`GRADSIFT_DOCTOR_PLANT=NAME`):
/// the doctor's own test uses it to see a failing check fail. Only builds with the
/// `doctor-faults` feature (the tests') read the variable.
fn planted(check: CheckName, values: &mut [f64]) {
    if plant_requested(check) {
        if let Some(v) = values.first_mut() {
            *v += 1.0;
        }
    }
}

/// Whether the test-only hook asks for a wrong result in check `name` (see [`planted`]).
pub(super) fn plant_requested(check: CheckName) -> bool {
    cfg!(feature = "doctor-faults") && std::env::var("GRADSIFT_DOCTOR_PLANT").is_ok_and(|p| p == check.as_str())
}

/// The WGSL dense random projection against the Rust one.
pub fn projection(c: &Compute, seed: u64) -> Result<Check> {
    let gpu = c.gpu.clone().ok_or_else(|| Error::Device("no GPU".into()))?;
    let (e, n, k) = (5usize, 1_000usize, 96usize);
    let g = random(e * n, seed);
    let mut got = f64s(&GpuProjector::new(gpu).project(&g, e, n, seed, k)?);
    let want = f64s(&project_cpu(&g, e, n, seed, k));
    planted(CheckName::Projection, &mut got);
    Ok(Check::new(CheckName::Projection, rel_err(&got, &want), 1e-5, format!("{e} rows of {n} to k = {k}")))
}

/// The WGSL sparse projection against the Rust one: they sum in the same order, so any
/// difference at all is a fault.
pub(crate) fn sparse_projection(c: &Compute, seed: u64) -> Result<Check> {
    let gpu = c.gpu.clone().ok_or_else(|| Error::Device("no GPU".into()))?;
    let (e, n, k, nnz) = (5usize, 3_001usize, 96usize, 8usize);
    let g = random(e * n, seed ^ 0x5A);
    let jl = SparseJl::new(seed, k, nnz)?;
    let mut got = f64s(&GpuSparseProjector::new(gpu).project(&jl, &g, e, n)?);
    let want = f64s(&jl.project_cpu(&g, e, n)?);
    planted(CheckName::SparseProjection, &mut got);
    let detail = format!("{e} rows of {n} to k = {k}, {nnz} nonzeros a column");
    Ok(Check::new(CheckName::SparseProjection, rel_err(&got, &want), 0.0, detail))
}

/// The WGSL LESS scoring (cosines, mean per subtask, weighted sum, max) against the Rust one.
pub fn scoring(c: &Compute, seed: u64) -> Result<Check> {
    let gpu = c.gpu.clone().ok_or_else(|| Error::Device("no GPU".into()))?;
    let (n, m, dim) = (300usize, 6usize, 130usize);
    let tasks: Vec<Option<String>> = (0..m).map(|j| Some(format!("t{}", j % 2))).collect();
    let weights = [0.6, 0.4];
    let feats: Vec<(Features, Features)> = (0..2u64)
        .map(|s| {
            let pool = Features::from_matrix(random(n * dim, seed + 10 * s), n, dim, vec![None; n]);
            (pool, Features::from_matrix(random(m * dim, seed + 10 * s + 1), m, dim, tasks.clone()))
        })
        .collect();
    let per: Vec<_> = feats.iter().map(|(p, t)| less::subtask_cosines(p, t)).collect::<Result<_>>()?;
    let want = less::combine(&per, &weights);
    let stages: Vec<WeightedFeatures<'_>> =
        feats.iter().zip(weights).map(|((p, t), weight)| WeightedFeatures { pool: p, target: t, weight }).collect();
    let mut got = GpuScorer::new(gpu).score(&stages)?.combined.score;
    planted(CheckName::Scoring, &mut got);
    Ok(Check::new(
        CheckName::Scoring,
        rel_err(&got, &want.score),
        1e-5,
        format!("{n} candidates, {m} targets, k = {dim}"),
    ))
}

/// The WGSL exact kNN (distances and top-K) against the Rust search: the share of neighbour
/// lists that differ.
pub fn knn(c: &Compute, seed: u64) -> Result<Check> {
    let (n, m, dim, k) = (700usize, 5usize, 24usize, 12usize);
    let x = random(n * dim, seed);
    let q = random(m * dim, seed + 1);
    let all: Vec<usize> = (0..n).collect();
    let got = Exact::new(c.gpu.clone()).nearest(&x, &all, &q, m, dim, k)?;
    let want = Exact::Cpu.nearest(&x, &all, &q, m, dim, k)?;
    let mut ids: Vec<f64> = got.iter().flatten().map(|(_, i)| *i as f64).collect();
    planted(CheckName::Knn, &mut ids);
    let want_ids: Vec<f64> = want.iter().flatten().map(|(_, i)| *i as f64).collect();
    let differ = ids.iter().zip(&want_ids).filter(|(a, b)| a != b).count();
    Ok(Check::new(CheckName::Knn, differ as f64 / ids.len().max(1) as f64, 0.0, format!("{m} queries, {k} of {n}")))
}

/// The embedded model with a seeded non-zero adapter on `c` (a fresh adapter's B = 0 would make
/// every A-gradient zero and the comparison empty).
pub(crate) fn model_on(c: &Compute, model_dir: &std::path::Path, seed: u64) -> Result<(CausalLm, LoraAdapter)> {
    let model = CausalLm::load(model_dir, &c.device)?;
    let mut adapter = LoraAdapter::fresh(&model.linears, 4, 8.0, &model.config.arch.default_lora_targets(), seed)?;
    let p = random(adapter.num_params(), seed ^ 0x6164_6170);
    adapter.set_flat_params(&p.iter().map(|x| 0.05 * x).collect::<Vec<f32>>());
    Ok((model, adapter))
}

/// Per-example gradients of `loss` for `examples`, flattened.
pub fn grads(
    model: &CausalLm,
    adapter: &LoraAdapter,
    examples: &[Tokenized],
    loss: LossKind,
    c: &Compute,
) -> Result<Vec<f64>> {
    let g = per_example_grads(model, adapter, examples, loss, &c.device)?;
    Ok(g.grads.into_data().iter::<f32>().map(f64::from).collect())
}

/// Gradients computed on the device under test against the reference backend's (the same model
/// and adapter there).
pub fn gradients(check: CheckName, mut got: Vec<f64>, want: &[f64], examples: usize) -> Check {
    planted(check, &mut got);
    Check::new(check, rel_err(&got, want), 1e-4, format!("{examples} examples of the embedded model"))
}

/// Examples per second of gradient featurization on `c`, and the device's f32 matmul rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    pub examples_per_second: f64,
    pub matmul_gflops: f64,
}

/// Measures [`Throughput`] of `model` on `c`: `examples` after a warm-up batch, and a 512³ matmul.
pub fn throughput(c: &Compute, model: &CausalLm, adapter: &LoraAdapter, examples: &[Tokenized]) -> Result<Throughput> {
    let batch = 8.min(examples.len()).max(1);
    per_example_grads(model, adapter, &examples[..batch], LossKind::Sft, &c.device)?;
    let t = Instant::now();
    for chunk in examples.chunks(batch) {
        let g = per_example_grads(model, adapter, chunk, LossKind::Sft, &c.device)?;
        let _ = g.grads.into_data();
    }
    let examples_per_second = examples.len() as f64 / t.elapsed().as_secs_f64();
    let n = 512;
    let a: Tensor<2> = Tensor::from_data(TensorData::new(random(n * n, 3), [n, n]), &c.device);
    let b: Tensor<2> = Tensor::from_data(TensorData::new(random(n * n, 4), [n, n]), &c.device);
    let _ = a.clone().matmul(b.clone()).into_data();
    let reps = 8;
    let t = Instant::now();
    for _ in 0..reps {
        let _ = a.clone().matmul(b.clone()).sum().into_data();
    }
    let matmul_gflops = reps as f64 * 2.0 * (n * n * n) as f64 / t.elapsed().as_secs_f64() / 1e9;
    Ok(Throughput { examples_per_second, matmul_gflops })
}
