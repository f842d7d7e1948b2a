//! LESS scoring (Xia et al. 2024): cosine similarity between each candidate's gradient feature
//! and each target example's, averaged over the target examples of a subtask, maxed over
//! subtasks. (Adam-preconditioned candidate features and several checkpoints arrive with warmup
//! training; here the features are plain SGD gradients of one checkpoint.)

use std::collections::BTreeMap;

use crate::features::Features;

/// Scores of every candidate, overall and per subtask.
#[derive(Debug, Clone)]
pub struct SubtaskScores {
    /// max over subtasks of the per-subtask mean.
    pub score: Vec<f64>,
    /// (subtask name, per-candidate mean cosine), subtasks in name order.
    pub per_task: Vec<(String, Vec<f64>)>,
}

/// Name of the subtask of target examples without a `task` field.
pub const DEFAULT_TASK: &str = "target";

fn unit_rows(data: &[f32], rows: usize, dim: usize) -> Vec<f64> {
    let mut out = vec![0f64; rows * dim];
    for r in 0..rows {
        let row = &data[r * dim..(r + 1) * dim];
        let norm = row.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt();
        if norm > 0.0 {
            for (o, &x) in out[r * dim..(r + 1) * dim].iter_mut().zip(row) {
                *o = x as f64 / norm;
            }
        }
    }
    out
}

/// Cosine-similarity scores of `pool` rows against `target` rows, grouped by `target` tasks.
/// A zero gradient has cosine 0 with everything.
pub fn less_scores(pool: &Features, target: &Features) -> SubtaskScores {
    assert_eq!(pool.dim, target.dim, "pool and target features have different widths");
    let dim = pool.dim;
    let p = unit_rows(&pool.data, pool.rows, dim);
    let t = unit_rows(&target.data, target.rows, dim);
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (j, task) in target.manifest.tasks.iter().enumerate() {
        groups.entry(task.clone().unwrap_or_else(|| DEFAULT_TASK.into())).or_default().push(j);
    }
    let cos: Vec<f64> = {
        let mut c = vec![0f64; pool.rows * target.rows];
        for i in 0..pool.rows {
            let pi = &p[i * dim..(i + 1) * dim];
            for j in 0..target.rows {
                c[i * target.rows + j] = pi.iter().zip(&t[j * dim..(j + 1) * dim]).map(|(a, b)| a * b).sum();
            }
        }
        c
    };
    let per_task: Vec<(String, Vec<f64>)> = groups
        .into_iter()
        .map(|(name, members)| {
            let s = (0..pool.rows)
                .map(|i| members.iter().map(|&j| cos[i * target.rows + j]).sum::<f64>() / members.len() as f64)
                .collect();
            (name, s)
        })
        .collect();
    let score = (0..pool.rows).map(|i| per_task.iter().map(|(_, s)| s[i]).fold(f64::NEG_INFINITY, f64::max)).collect();
    SubtaskScores { score, per_task }
}
