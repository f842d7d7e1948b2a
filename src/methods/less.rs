//! LESS scoring (Xia et al. 2024). For each checkpoint i, the cosine between a candidate's
//! (Adam-preconditioned) gradient feature and each target example's gradient feature; averaged
//! over the target examples of a subtask; summed over checkpoints with weights η̄_i (the mean
//! learning rate of epoch i, renormalised to sum to 1); maximum over subtasks:
//! Score(z) = max_j mean_{z' ∈ j} Σ_i η̄_i · cos(Γ(z; θ_i), ∇ℓ(z'; θ_i)).
//! ROSE is the same with DPO-loss gradients of a preference target set.

use super::subtasks::subtask_groups;
use super::unit::unit_rows;
use crate::error::{Error, Result};
use crate::features::{FeatureRows, Features, BLOCK_ROWS};

/// Per-subtask mean cosine of every candidate, subtasks in name order.
pub(crate) type TaskCosines = Vec<(String, Vec<f64>)>;

/// Final scores.
#[derive(Debug, Clone)]
pub struct SubtaskScores {
    /// max over subtasks of the weighted per-subtask score.
    pub score: Vec<f64>,
    /// (subtask, weighted score over checkpoints) per candidate.
    pub per_task: TaskCosines,
}

/// Mean cosine similarity of each `pool` row to the `target` rows of each subtask (the target
/// manifest's `task` of each row). A zero gradient has cosine 0 with everything. The pool is
/// read `BLOCK_ROWS` rows at a time.
pub fn subtask_cosines(pool: &dyn FeatureRows, target: &Features) -> Result<TaskCosines> {
    let dim = pool.dim();
    if target.dim != dim {
        return Err(Error::WidthMismatch { left: "pool", left_width: dim, right: "target", right_width: target.dim });
    }
    let t = unit_rows(&target.data, target.rows, dim);
    let groups = subtask_groups(&target.manifest.tasks);
    let mut out: TaskCosines = groups.iter().map(|(name, _)| (name.clone(), Vec::with_capacity(pool.rows()))).collect();
    for r0 in (0..pool.rows()).step_by(BLOCK_ROWS) {
        let n = BLOCK_ROWS.min(pool.rows() - r0);
        let p = unit_rows(&pool.block(r0, n)?, n, dim);
        for pi in p.chunks(dim.max(1)).take(n) {
            let cos: Vec<f64> =
                (0..target.rows).map(|j| pi.iter().zip(&t[j * dim..(j + 1) * dim]).map(|(a, b)| a * b).sum()).collect();
            for ((_, members), (_, col)) in groups.iter().zip(out.iter_mut()) {
                col.push(members.iter().map(|&j| cos[j]).sum::<f64>() / members.len() as f64);
            }
        }
    }
    Ok(out)
}

/// Checkpoint weights: the learning rates renormalised to sum to 1 (equal weights if all are 0).
pub fn checkpoint_weights(mean_lrs: &[f64]) -> Vec<f64> {
    let total: f64 = mean_lrs.iter().sum();
    if total > 0.0 {
        mean_lrs.iter().map(|l| l / total).collect()
    } else {
        vec![1.0 / mean_lrs.len() as f64; mean_lrs.len()]
    }
}

/// Combines per-checkpoint subtask cosines with `weights` and takes the max over subtasks.
pub fn combine(per_checkpoint: &[TaskCosines], weights: &[f64]) -> SubtaskScores {
    assert_eq!(per_checkpoint.len(), weights.len());
    let first = &per_checkpoint[0];
    let n = first.first().map(|(_, s)| s.len()).unwrap_or(0);
    let per_task: TaskCosines = first
        .iter()
        .enumerate()
        .map(|(j, (name, _))| {
            let s = (0..n).map(|i| per_checkpoint.iter().zip(weights).map(|(c, w)| w * c[j].1[i]).sum()).collect();
            (name.clone(), s)
        })
        .collect();
    let score = (0..n).map(|i| per_task.iter().map(|(_, s)| s[i]).fold(f64::NEG_INFINITY, f64::max)).collect();
    SubtaskScores { score, per_task }
}
