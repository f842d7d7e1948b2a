//! LESS and ROSE: the checkpoints, their features, and the weighted cosine scores.

use serde_json::json;

use super::{featurize_with, Chosen, Loaded, Scored, SelectSpec};
use super::{GradType, Method};
use crate::data::Dataset;
use crate::device::Compute;
use crate::error::Result;
use crate::features::{self, LossKind, Transform};
use crate::methods::{gpu_score, less};
use crate::model::LoraAdapter;
use crate::train::{self, AdamW};

/// One gradient source: an adapter, its LESS weight and the candidate transform.
pub(super) struct Stage {
    label: String,
    adapter: LoraAdapter,
    adapter_key: serde_json::Value,
    transform: Transform,
    mean_lr: f64,
}

pub(super) fn stages(loaded: &Loaded, spec: &SelectSpec<'_>) -> Result<Vec<Stage>> {
    if spec.checkpoints.is_empty() {
        return Ok(vec![Stage {
            label: "model".into(),
            adapter: loaded.adapter.clone(),
            adapter_key: loaded.adapter_key.clone(),
            transform: Transform::Sgd,
            mean_lr: 1.0,
        }]);
    }
    spec.checkpoints
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let adapter = LoraAdapter::load(dir, &loaded.model.linears)?;
            let state = train::read_state(dir)?;
            let transform = match spec.grad_type {
                GradType::Sgd => Transform::Sgd,
                GradType::Sign => Transform::Sign,
                GradType::Adam => {
                    let p = dir.join("optimizer.safetensors");
                    Transform::adam(&AdamW::load(&p, &adapter.layout())?, crate::util::sha256_file(&p)?)
                }
            };
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Ok(Stage {
                label: format!("{i}-{name}"),
                adapter_key: features::adapter_key(&adapter, 0)?,
                adapter,
                transform,
                mean_lr: state.mean_lr,
            })
        })
        .collect()
}

/// LESS and ROSE: per-checkpoint cosines, weighted, max over subtasks, top k.
pub(super) fn less_like(
    loaded: &Loaded,
    spec: &SelectSpec<'_>,
    pool: &Dataset,
    target: &Dataset,
    compute: &Compute,
    k: usize,
) -> Result<Scored> {
    let target_loss = if spec.method == Method::Rose { LossKind::Dpo { beta: spec.beta } } else { LossKind::Sft };
    let stages = stages(loaded, spec)?;
    let weights = less::checkpoint_weights(&stages.iter().map(|s| s.mean_lr).collect::<Vec<_>>());
    let mut features = Vec::with_capacity(stages.len());
    for st in &stages {
        let dir = spec.out.join("features").join(&st.label);
        let pf = featurize_with(
            loaded,
            &st.adapter,
            &st.adapter_key,
            pool,
            LossKind::Sft,
            &st.transform,
            spec.opts,
            compute,
            &dir.join("pool"),
        )?;
        let tf = featurize_with(
            loaded,
            &st.adapter,
            &st.adapter_key,
            target,
            target_loss,
            &Transform::Sgd,
            spec.opts,
            compute,
            &dir.join("target"),
        )?;
        // The pool stays on disk and is scored a block at a time; the few targets are loaded.
        features.push((pf, tf.load()?));
    }
    let gpu_stages: Vec<gpu_score::Stage<'_>> = features
        .iter()
        .zip(&weights)
        .map(|((pf, tf), &weight)| gpu_score::Stage { pool: pf, target: tf, weight })
        .collect();
    // On a GPU the WGSL kernel scores; on the CPU backend (or past the kernel's limits), plain Rust.
    let scorer = compute.gpu.clone().map(gpu_score::GpuScorer::new);
    let (per_checkpoint, scores, scorer_name) = match scorer.filter(|s| s.unfit(&gpu_stages).is_none()) {
        Some(s) => {
            let out = s.score(&gpu_stages)?;
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
    if stages.len() > 1 {
        for (st, cos) in stages.iter().zip(&per_checkpoint) {
            columns.extend(cos.iter().map(|(name, s)| (format!("{}:task:{name}", st.label), s.clone())));
        }
    }
    let details = json!({
        "subtasks": scores.per_task.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "checkpoints": stages.iter().zip(&weights).map(|(st, w)| json!({
            "label": st.label, "adapter": st.adapter_key, "candidate_transform": st.transform.key(),
            "mean_lr": st.mean_lr, "weight": w,
            "pool_store": format!("features/{}/pool", st.label), "target_store": format!("features/{}/target", st.label),
        })).collect::<Vec<_>>(),
        "loss": { "pool": "sft", "target": target_loss.name(), "beta": spec.beta },
        "scorer": scorer_name,
        "scoring": "cosine; mean over target examples of a subtask; sum over checkpoints weighted by normalised mean learning rate; max over subtasks; global top-k",
        "columns": "task:NAME = weighted score of subtask NAME; with several checkpoints, LABEL:task:NAME = that checkpoint's mean cosine (score = max over NAME of sum over LABEL of weight × column)",
    });
    Ok((scores.score, columns, Chosen::Top(k), details))
}
