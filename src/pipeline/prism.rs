//! PRISM: the target pairs' direction and the candidates' scores.

use serde_json::json;

use super::reference_checkpoint;
use super::{featurize_with, Chosen, Loaded, Scored, SelectSpec};
use crate::data::Dataset;
use crate::device::Compute;
use crate::error::{Error, Result};
use crate::features::{LossKind, Transform};
use crate::methods::prism;

/// PRISM: direction from the target pairs, candidate summed-loss gradients, g·H⁻¹·d.
pub(super) fn prism_scores(
    loaded: &Loaded,
    spec: &SelectSpec<'_>,
    pool: &Dataset,
    target: &Dataset,
    compute: &Compute,
    k: usize,
) -> Result<Scored> {
    let (adapter, adapter_key, checkpoint) =
        reference_checkpoint(loaded, spec, "PRISM takes one reference checkpoint")?;
    let p = &spec.prism;
    let dir = spec.out.join("features/prism");
    let sgd = Transform::Sgd;
    let cand = featurize_with(
        loaded,
        &adapter,
        &adapter_key,
        pool,
        LossKind::SftSum,
        &sgd,
        spec.opts,
        compute,
        &dir.join("pool"),
    )?;
    let pos_data = target.preference_side(true)?;
    let pos = featurize_with(
        loaded,
        &adapter,
        &adapter_key,
        &pos_data,
        LossKind::Sft,
        &sgd,
        spec.opts,
        compute,
        &dir.join("target-chosen"),
    )?;
    let neg = if p.unpaired {
        None
    } else {
        let neg_data = target.preference_side(false)?;
        Some(featurize_with(
            loaded,
            &adapter,
            &adapter_key,
            &neg_data,
            LossKind::Sft,
            &sgd,
            spec.opts,
            compute,
            &dir.join("target-rejected"),
        )?)
    };
    // The targets are few and loaded; the candidates stay on disk unless the covariance needs them.
    let (pos, neg) = (pos.load()?, neg.map(|n| n.load()).transpose()?);
    let (d, pi) = prism::direction(&pos, neg.as_ref(), p.weights);
    let scores = prism::scores(&cand, &d, p.hessian)?;
    let kept = if p.repair { pool.len() - k } else { k };
    if kept == 0 {
        return Err(Error::Invalid("--repair would remove every candidate".into()));
    }
    let kept = Chosen::Top(kept);
    let details = json!({
        "mode": if p.repair { "repair: the budget counts the removed lowest-scoring candidates" } else { "forward: top k" },
        "removed": if p.repair { k } else { 0 },
        "weights": if p.unpaired { json!("unpaired") } else { json!(p.weights) },
        "pi": pi,
        "hessian": p.hessian,
        "checkpoint": checkpoint,
        "adapter": adapter_key,
        "loss": { "candidates": "sft-sum", "targets": "sft (token mean)" },
        "scoring": "s(z) = g_z · H^-1 · d, d = mean over target pairs of pi_q (g(q,y+) - g(q,y-)); larger = more helpful",
        "stores": ["features/prism/pool", "features/prism/target-chosen", "features/prism/target-rejected"],
    });
    Ok((scores, Vec::new(), kept, details))
}
