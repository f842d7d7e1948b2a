//! The baselines: random, loss, RDS, RDS+ and DSIR.

use serde_json::json;

use super::{Chosen, Context, Scored};
use crate::data::Dataset;
use crate::error::Result;
use crate::features::Pooling;
use crate::loss::sft_losses;
use crate::methods::baselines;

/// A seeded uniformly random subset.
pub(super) fn random(pool: &Dataset, seed: u64, budget: usize) -> Scored {
    Scored {
        scores: baselines::random_scores(pool.len(), seed),
        columns: vec![],
        chosen: Chosen::Top(budget),
        details: json!({ "seed": seed }),
    }
}

/// Highest (or lowest) token-mean SFT loss first.
pub(super) fn loss(cx: &Context<'_>, pool: &Dataset, lowest: bool, budget: usize) -> Result<Scored> {
    let (loaded, opts) = (cx.loaded, cx.opts);
    let (tok, _) = loaded.tokenizer.examples(&pool.examples, opts.max_len)?;
    let losses = sft_losses(&loaded.model, Some(&loaded.adapter), &tok, opts.batch_size, &cx.compute.device)?;
    let scores = losses.iter().map(|l| if lowest { -l } else { *l }).collect();
    let order = if lowest { "lowest loss first" } else { "highest loss first" };
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
    cx: &Context<'_>,
    pool: &Dataset,
    target: &Dataset,
    pooling: Pooling,
    budget: usize,
) -> Result<Scored> {
    let (n, m) = (pool.len(), target.len());
    let tasks: Vec<Option<String>> = target.examples.iter().map(|e| e.task.clone()).collect();
    let (pe, te) = (cx.embed(pool, pooling)?, cx.embed(target, pooling)?);
    let cos = baselines::cosine_matrix(&pe, n, &te, m, cx.loaded.model.config.hidden);
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
pub(super) fn dsir(pool: &Dataset, target: &Dataset, seed: u64, budget: usize) -> Scored {
    let (scores, logw) = baselines::dsir_scores(&pool.examples, &target.examples, seed);
    let d = json!({ "buckets": baselines::DSIR_BUCKETS,
                    "features": "unigrams and bigrams of lower-cased word-punctuation tokens, hashed by SHA-256 (the reference's)",
                    "weights": "sum of count * (log(p_target + 1e-8) - log(p_pool + 1e-8)), p = bucket counts / total",
                    "score": "log importance weight + Gumbel noise (seeded): top-k samples without replacement" });
    Scored { scores, columns: vec![("log_weight".into(), logw)], chosen: Chosen::Top(budget), details: d }
}
