//! LESS on data held in memory, awaited step by step: the selection the browser page makes.
//!
//! Why a second path: `select` keeps features in resumable stores on disk and blocks on every
//! GPU read, and a page has neither files nor the right to block. The numbers are the same as
//! `select --method less` on the same model, adapter and data (the test holds them to it):
//! the same tokenization, chunks and batches ([`GradientPass`]), projection, scorer and top-k;
//! only no store is written, and the caller may yield after every batch.

use std::future::Future;

use super::Loaded;
use crate::data::Dataset;
use crate::device::Compute;
use crate::error::Result;
use crate::features::{FeatureOptions, Features, GradientPass, Projector, Transform};
use crate::loss::LossKind;
use crate::methods::{gpu_score, less};
use crate::select::top_k;

/// Where the work is, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// "target" or "pool".
    pub stage: &'static str,
    /// Examples of that set done, and its size.
    pub done: usize,
    pub total: usize,
}

/// What [`less_in_memory`] computed.
pub struct InMemorySelection {
    /// Every candidate's score: max over subtasks of its mean cosine.
    pub scores: Vec<f64>,
    /// Each subtask's mean cosine for every candidate (subtasks in name order).
    pub per_task: Vec<(String, Vec<f64>)>,
    /// The `budget` best, in rank order.
    pub selected: Vec<usize>,
    /// The pool's feature rows (the PCA map's input).
    pub pool: Features,
    /// Which scorer ran: "wgsl (f32)" or "cpu (f64)", as select's manifest says.
    pub scorer: &'static str,
}

/// LESS with the loaded adapter's plain gradients (SFT loss on both sides), as `select
/// --method less` without `--checkpoints`: features of `target` and `pool` under `opts`, the
/// cosine scores, the top `budget`. `step` is awaited after every batch.
pub async fn less_in_memory<F, Fut>(
    loaded: &Loaded,
    compute: &Compute,
    opts: &FeatureOptions,
    pool: &Dataset,
    target: &Dataset,
    budget: usize,
    mut step: F,
) -> Result<InMemorySelection>
where
    F: FnMut(Progress) -> Fut,
    Fut: Future<Output = ()>,
{
    let projector = Projector::new(compute.gpu.as_ref(), opts.projection, opts.seed, opts.proj_dim, opts.proj_nnz)?;
    let pass = GradientPass {
        model: &loaded.model,
        adapter: &loaded.adapter,
        loss: LossKind::Sft,
        reference: None,
        transform: &Transform::Identity,
        projector: &projector,
        opts,
        compute,
    };
    let target = features(&pass, loaded, opts, target, "target", &mut step).await?;
    let pool = features(&pass, loaded, opts, pool, "pool", &mut step).await?;
    let weights = less::checkpoint_weights(&[1.0]);
    let stage = [gpu_score::WeightedFeatures { pool: &pool, target: &target, weight: weights[0] }];
    let scorer = compute.gpu.clone().map(gpu_score::GpuScorer::new).filter(|s| s.unfit(&stage).is_none());
    let (scores, name) = match scorer {
        Some(s) => (s.score_async(&stage).await?.combined, "wgsl (f32)"),
        None => (less::combine(&[less::subtask_cosines(&pool, &target)?], &weights), "cpu (f64)"),
    };
    let selected = top_k(&scores.score, budget);
    Ok(InMemorySelection { scores: scores.score, per_task: scores.per_task, selected, pool, scorer: name })
}

/// The feature rows of `data`, a store chunk at a time as `featurize` makes them.
async fn features<F, Fut>(
    pass: &GradientPass<'_>,
    loaded: &Loaded,
    opts: &FeatureOptions,
    data: &Dataset,
    stage: &'static str,
    step: &mut F,
) -> Result<Features>
where
    F: FnMut(Progress) -> Fut,
    Fut: Future<Output = ()>,
{
    let (tokenized, _) = loaded.tokenizer.examples(&data.examples, opts.max_len)?;
    let total = tokenized.len();
    let (mut rows, mut done) = (Vec::new(), 0);
    for chunk in tokenized.chunks(opts.chunk_size.max(1)) {
        let (part, _) = pass
            .rows(chunk, |n| {
                done += n;
                step(Progress { stage, done, total })
            })
            .await?;
        rows.extend(part);
    }
    let dim = pass.projector.dim(loaded.adapter.num_params());
    Ok(Features::from_matrix(rows, total, dim, data.examples.iter().map(|e| e.task.clone()).collect()))
}
