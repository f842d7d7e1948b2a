//! The baselines: random, loss, RDS, RDS+ and DSIR.

use serde_json::json;

use super::{embed, Method};
use super::{method_name, Chosen, Loaded, Scored, SelectSpec};
use crate::data::Dataset;
use crate::device::Compute;
use crate::error::{Error, Result};
use crate::features::{sft_losses, Pooling};
use crate::methods::baselines;

/// The baselines.
pub(super) fn baseline(
    loaded: &Loaded,
    spec: &SelectSpec<'_>,
    pool: &Dataset,
    target: Option<&Dataset>,
    compute: &Compute,
    k: usize,
) -> Result<Scored> {
    let n = pool.len();
    let needs =
        || target.ok_or_else(|| Error::Invalid(format!("--method {} needs --target", method_name(spec.method))));
    Ok(match spec.method {
        Method::Random => {
            (baselines::random_scores(n, spec.opts.seed), vec![], Chosen::Top(k), json!({ "seed": spec.opts.seed }))
        }
        Method::Loss => {
            let (tok, _) = loaded.tokenizer.examples(&pool.examples, spec.opts.max_len)?;
            let losses = sft_losses(&loaded.model, Some(&loaded.adapter), &tok, spec.opts.batch_size, &compute.device)?;
            let scores = losses.iter().map(|l| if spec.low_loss { -l } else { *l }).collect();
            let order = if spec.low_loss { "lowest loss first" } else { "highest loss first" };
            (scores, vec![("loss".into(), losses)], Chosen::Top(k), json!({ "order": order, "loss": "token-mean sft" }))
        }
        Method::Rds | Method::RdsPlus => {
            let target = needs()?;
            let m = target.len();
            let tasks: Vec<Option<String>> = target.examples.iter().map(|e| e.task.clone()).collect();
            let pooling = if spec.method == Method::Rds { Pooling::LastToken } else { Pooling::Mean };
            let (pe, te) = (
                embed(loaded, pool, pooling, spec.opts, compute)?,
                embed(loaded, target, pooling, spec.opts, compute)?,
            );
            let dim = loaded.model.config.hidden;
            let cos = baselines::cosine_matrix(&pe, n, &te, m, dim);
            if spec.method == Method::Rds {
                let scores = baselines::mean_max(&cos, n, &tasks);
                (
                    scores,
                    vec![],
                    Chosen::Top(k),
                    json!({ "pooling": pooling, "matching": "mean over a subtask's targets, max over subtasks" }),
                )
            } else {
                let best: Vec<f64> =
                    (0..n).map(|i| (0..m).map(|j| cos[i * m + j]).fold(f64::NEG_INFINITY, f64::max)).collect();
                let list = baselines::round_robin(&cos, n, m, k);
                (
                    best,
                    vec![],
                    Chosen::List(list),
                    json!({ "pooling": pooling, "matching": "round-robin over target examples; score = best cosine" }),
                )
            }
        }
        Method::Dsir => {
            let (scores, logw) = baselines::dsir_scores(&pool.examples, &needs()?.examples, spec.opts.seed);
            let d = json!({ "buckets": baselines::DSIR_BUCKETS, "features": "hashed unigrams and bigrams of lower-cased words",
                            "score": "log importance weight + Gumbel noise (seeded): top-k samples without replacement" });
            (scores, vec![("log_weight".into(), logw)], Chosen::Top(k), d)
        }
        _ => unreachable!("not a baseline"),
    })
}
