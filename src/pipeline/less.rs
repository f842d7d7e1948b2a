//! LESS and ROSE: the checkpoints, their features, and the weighted cosine scores.

use serde_json::json;

use std::path::PathBuf;

use super::{Checkpoint, Chosen, Context, GradType, Loaded, Scored};
use crate::data::Dataset;
use crate::error::Result;
use crate::features::Transform;
use crate::loss::LossKind;
use crate::methods::{gpu_score, less};
use crate::train;

/// One gradient source: a checkpoint, its LESS weight and the candidate transform.
struct GradientSource {
    label: String,
    checkpoint: Checkpoint,
    transform: Transform,
    mean_lr: f64,
}

/// The loaded adapter alone (plain gradients), or every warmup checkpoint with its moments.
fn sources(loaded: &Loaded, checkpoints: &[PathBuf], grad_type: GradType) -> Result<Vec<GradientSource>> {
    if checkpoints.is_empty() {
        let checkpoint = Checkpoint::loaded(loaded);
        let transform = checkpoint.transform(grad_type)?;
        return Ok(vec![GradientSource { label: "model".into(), checkpoint, transform, mean_lr: 1.0 }]);
    }
    checkpoints
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let checkpoint = Checkpoint::load(loaded, dir)?;
            let state = train::read_state(dir)?;
            let transform = checkpoint.transform(grad_type)?;
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Ok(GradientSource { label: format!("{i}-{name}"), checkpoint, transform, mean_lr: state.mean_lr })
        })
        .collect()
}

/// LESS (SFT target gradients) and ROSE (DPO target gradients at `dpo_beta`): per-checkpoint
/// cosines, weighted, max over subtasks, top `budget`.
pub(super) fn less_like(
    cx: &Context<'_>,
    pool: &Dataset,
    target: &Dataset,
    checkpoints: &[PathBuf],
    grad_type: GradType,
    dpo_beta: Option<f64>,
    budget: usize,
) -> Result<Scored> {
    let target_loss = dpo_beta.map_or(LossKind::Sft, |beta| LossKind::Dpo { beta });
    let sources = sources(cx.loaded, checkpoints, grad_type)?;
    let weights = less::checkpoint_weights(&sources.iter().map(|s| s.mean_lr).collect::<Vec<_>>());
    let mut features = Vec::with_capacity(sources.len());
    for st in &sources {
        let dir = cx.out.join("features").join(&st.label);
        let f = cx.featurizer(&st.checkpoint);
        let pf = f.run_pool(pool, LossKind::Sft, &st.transform, &dir.join("pool"))?;
        let tf = f.run(target, target_loss, &Transform::Identity, &dir.join("target"))?;
        // The pool stays on disk and is scored a block at a time; the few targets are loaded.
        features.push((pf, tf.load()?));
    }
    let weighted: Vec<gpu_score::WeightedFeatures<'_>> = features
        .iter()
        .zip(&weights)
        .map(|((pf, tf), &weight)| gpu_score::WeightedFeatures { pool: pf, target: tf, weight })
        .collect();
    // On a GPU the WGSL kernel scores; on the CPU backend (or past the kernel's limits), plain Rust.
    let scorer = cx.compute.gpu.clone().map(gpu_score::GpuScorer::new);
    let (per_checkpoint, scores, scorer_name) = match scorer.filter(|s| s.unfit(&weighted).is_none()) {
        Some(s) => {
            let out = s.score(&weighted)?;
            (out.per_checkpoint, out.combined, "wgsl (f32)")
        }
        None => {
            let per: Vec<less::TaskCosines> =
                features.iter().map(|(pf, tf)| less::subtask_cosines(pf, tf)).collect::<Result<_>>()?;
            let combined = less::combine(&per, &weights);
            (per, combined, "cpu (f64)")
        }
    };
    let mut columns: Vec<(String, Vec<f64>)> =
        scores.per_task.iter().map(|(name, s)| (format!("task:{name}"), s.clone())).collect();
    if sources.len() > 1 {
        for (st, cos) in sources.iter().zip(&per_checkpoint) {
            columns.extend(cos.iter().map(|(name, s)| (format!("{}:task:{name}", st.label), s.clone())));
        }
    }
    let details = json!({
        "subtasks": scores.per_task.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "checkpoints": sources.iter().zip(&weights).map(|(st, w)| json!({
            "label": st.label, "adapter": st.checkpoint.key, "candidate_transform": st.transform.key(),
            "mean_lr": st.mean_lr, "weight": w,
            "pool_store": format!("features/{}/pool", st.label), "target_store": format!("features/{}/target", st.label),
        })).collect::<Vec<_>>(),
        "loss": { "pool": "sft", "target": target_loss.name(), "beta": dpo_beta },
        "scorer": scorer_name,
        "scoring": "cosine; mean over target examples of a subtask; sum over checkpoints weighted by normalised mean learning rate; max over subtasks; global top-k",
        "columns": "task:NAME = weighted score of subtask NAME; with several checkpoints, LABEL:task:NAME = that checkpoint's mean cosine (score = max over NAME of sum over LABEL of weight × column)",
    });
    Ok(Scored { scores: scores.score, columns, chosen: Chosen::Top(budget), details })
}
