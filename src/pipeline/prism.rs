//! PRISM: the target pairs' direction and the candidates' scores.

use serde_json::json;

use std::path::Path;

use super::{reference_checkpoint, Chosen, Context, PrismOptions, Scored};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::features::Transform;
use crate::loss::LossKind;
use crate::methods::prism;

/// PRISM: direction from the target pairs, candidate summed-loss gradients, g·H⁻¹·d.
pub(super) fn prism_scores(
    cx: &Context<'_>,
    pool: &Dataset,
    target: &Dataset,
    checkpoint: Option<&Path>,
    p: &PrismOptions,
    budget: usize,
) -> Result<Scored> {
    let checkpoint = reference_checkpoint(cx.loaded, checkpoint)?;
    let dir = cx.out.join("features/prism");
    let f = cx.featurizer(&checkpoint);
    let cand = f.run_pool(pool, LossKind::SftSum, &Transform::Identity, &dir.join("pool"))?;
    let pos = f.run(&target.preference_side(true)?, LossKind::Sft, &Transform::Identity, &dir.join("target-chosen"))?;
    let neg = match p.unpaired {
        true => None,
        false => Some(f.run(
            &target.preference_side(false)?,
            LossKind::Sft,
            &Transform::Identity,
            &dir.join("target-rejected"),
        )?),
    };
    // The targets are few and loaded; the candidates stay on disk unless the covariance needs them.
    let (pos, neg) = (pos.load()?, neg.map(|n| n.load()).transpose()?);
    let (d, pi) = prism::direction(&pos, neg.as_ref(), p.weights);
    let scores = prism::scores(&cand, &d, p.hessian)?;
    let kept = if p.repair { pool.len() - budget } else { budget };
    if kept == 0 {
        return Err(Error::Budget(format!(
            "repair would remove every candidate: the budget is the whole pool of {}",
            pool.len()
        )));
    }
    let details = json!({
        "mode": if p.repair { "repair: the budget counts the removed lowest-scoring candidates" } else { "forward: top k" },
        "removed": if p.repair { budget } else { 0 },
        "weights": if p.unpaired { json!("unpaired") } else { json!(p.weights) },
        "pi": pi,
        "hessian": p.hessian,
        "checkpoint": checkpoint.label(),
        "adapter": checkpoint.key,
        "loss": { "candidates": "sft-sum", "targets": "sft (token mean)" },
        "scoring": "s(z) = g_z · H^-1 · d, d = mean over target pairs of pi_q (g(q,y+) - g(q,y-)); larger = more helpful",
        "stores": ["features/prism/pool", "features/prism/target-chosen", "features/prism/target-rejected"],
    });
    Ok(Scored { scores, columns: Vec::new(), chosen: Chosen::Top(kept), details })
}
