//! The baselines: random, loss, RDS, RDS+ and DSIR.

use serde_json::json;

use super::embed;
use super::{Chosen, Loaded, Scored, SelectSpec};
use crate::data::Dataset;
use crate::device::Compute;
use crate::error::Result;
use crate::features::Pooling;
use crate::loss::sft_losses;
use crate::methods::baselines;

/// A seeded uniformly random subset.
pub(super) fn random(spec: &SelectSpec<'_>, pool: &Dataset, budget: usize) -> Scored {
    Scored {
        scores: baselines::random_scores(pool.len(), spec.opts.seed),
        columns: vec![],
        chosen: Chosen::Top(budget),
        details: json!({ "seed": spec.opts.seed }),
    }
}

/// Highest (or lowest) token-mean SFT loss first.
pub(super) fn loss(
    loaded: &Loaded,
    spec: &SelectSpec<'_>,
    pool: &Dataset,
    compute: &Compute,
    budget: usize,
) -> Result<Scored> {
    let (tok, _) = loaded.tokenizer.examples(&pool.examples, spec.opts.max_len)?;
    let losses = sft_losses(&loaded.model, Some(&loaded.adapter), &tok, spec.opts.batch_size, &compute.device)?;
    let scores = losses.iter().map(|l| if spec.low_loss { -l } else { *l }).collect();
    let order = if spec.low_loss { "lowest loss first" } else { "highest loss first" };
    Ok(Scored {
        scores,
        columns: vec![("loss".into(), losses)],
        chosen: Chosen::Top(budget),
        details: json!({ "order": order, "loss": "token-mean sft" }),
    })
}

/// RDS (last-token states, mean over a subtask's targets, max over subtasks) or RDS+
/// (position-weighted mean pooling, round-robin over target examples).
pub(super) fn rds(
    loaded: &Loaded,
    spec: &SelectSpec<'_>,
    pool: &Dataset,
    target: &Dataset,
    compute: &Compute,
    budget: usize,
    pooling: Pooling,
) -> Result<Scored> {
    let (n, m) = (pool.len(), target.len());
    let tasks: Vec<Option<String>> = target.examples.iter().map(|e| e.task.clone()).collect();
    let pe = embed(loaded, pool, pooling, spec.opts, compute)?;
    let te = embed(loaded, target, pooling, spec.opts, compute)?;
    let cos = baselines::cosine_matrix(&pe, n, &te, m, loaded.model.config.hidden);
    Ok(match pooling {
        Pooling::LastToken => Scored {
            scores: baselines::mean_max(&cos, n, &tasks),
            columns: vec![],
            chosen: Chosen::Top(budget),
            details: json!({ "pooling": pooling, "matching": "mean over a subtask's targets, max over subtasks" }),
        },
        Pooling::Mean => {
            let best: Vec<f64> =
                (0..n).map(|i| (0..m).map(|j| cos[i * m + j]).fold(f64::NEG_INFINITY, f64::max)).collect();
            Scored {
                scores: best,
                columns: vec![],
                chosen: Chosen::List(baselines::round_robin(&cos, n, m, budget)),
                details: json!({ "pooling": pooling, "matching": "round-robin over target examples; score = best cosine" }),
            }
        }
    })
}

/// DSIR: hashed n-gram importance weights plus Gumbel noise, top k.
pub(super) fn dsir(spec: &SelectSpec<'_>, pool: &Dataset, target: &Dataset, budget: usize) -> Scored {
    let (scores, logw) = baselines::dsir_scores(&pool.examples, &target.examples, spec.opts.seed);
    let d = json!({ "buckets": baselines::DSIR_BUCKETS, "features": "hashed unigrams and bigrams of lower-cased words",
                    "score": "log importance weight + Gumbel noise (seeded): top-k samples without replacement" });
    Scored { scores, columns: vec![("log_weight".into(), logw)], chosen: Chosen::Top(budget), details: d }
}
