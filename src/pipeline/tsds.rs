//! TSDS over gradient features, hidden-state embeddings or given matrices.

use serde_json::json;

use super::{Checkpoint, Chosen, Context, Scored, TsdsOptions, TsdsSource};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::features::{self, Transform};
use crate::loss::LossKind;
use crate::methods::knn::{searcher, Exact};
use crate::methods::tsds;

/// TSDS over gradient features, hidden-state embeddings or given .npy matrices.
pub(super) fn tsds_select(
    cx: &Context<'_>,
    pool: &Dataset,
    target: &Dataset,
    t: &TsdsOptions,
    budget: usize,
) -> Result<Scored> {
    let (x, q, dim, source) = match &t.source {
        TsdsSource::Npy { pool: pn, target: tn } => {
            let (x, rows, dim) = features::npy::read(pn)?;
            let (q, _, qdim) = features::npy::read(tn)?;
            if rows != pool.len() || qdim != dim {
                return Err(Error::Invalid(format!(
                    "{} is [{rows}, {dim}], {} has width {qdim}: the candidate matrix needs one row per pool line ({}) and both the same width",
                    pn.display(), tn.display(), pool.len()
                )));
            }
            (x, q, dim, json!({ "npy": [pn.display().to_string(), tn.display().to_string()] }))
        }
        TsdsSource::Embeddings(pooling) => {
            let x = cx.embed(pool, *pooling)?;
            let q = cx.embed(target, *pooling)?;
            (x, q, cx.loaded.model.config.hidden, json!({ "embed": pooling }))
        }
        TsdsSource::Gradients => {
            let dir = cx.out.join("features/tsds");
            let checkpoint = Checkpoint::loaded(cx.loaded);
            let f = cx.featurizer(&checkpoint);
            let pf = f.run(pool, LossKind::Sft, &Transform::Identity, &dir.join("pool"))?;
            let tf = f.run(target, LossKind::Sft, &Transform::Identity, &dir.join("target"))?;
            // Exact kNN re-ranks candidates by exact distance: every row in memory.
            let dim = pf.dim;
            (
                pf.load()?.data,
                tf.load()?.data,
                dim,
                json!({ "features": "sft gradients", "stores": ["features/tsds/pool", "features/tsds/target"] }),
            )
        }
    };
    let exact = Exact::new(cx.compute.gpu.clone());
    let probs = tsds::probabilities_with(&x, pool.len(), &q, q.len() / dim, dim, &t.params, &exact)?;
    let probs32: Vec<f32> = probs.iter().map(|&p| p as f32).collect();
    features::npy::write(&cx.out.join("probabilities.npy"), &probs32, probs.len(), 1, features::Dtype::F32)?;
    let chosen = if t.no_replacement {
        Chosen::Top(budget)
    } else {
        Chosen::List(tsds::sample_with_replacement(&probs, budget, cx.opts.seed))
    };
    let details = json!({
        "params": t.params, "source": source,
        "sampling": if t.no_replacement { "top by probability, without replacement" } else { "multinomial with replacement (indices repeat), seeded" },
        "probabilities": "probabilities.npy (and the score column)",
        "neighbours": searcher(t.params.index, &exact).describe(),
    });
    Ok(Scored { scores: probs, columns: vec![], chosen, details })
}
