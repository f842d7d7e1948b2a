//! TSDS over gradient features, hidden-state embeddings or given matrices.
//!
//! The reference's σ = 0.75 and C = 5 are "in the same scale as the norm of the embeddings",
//! which it gives unit norm: gradient features and hidden states are L2-normalised here before
//! the kNN, the KDE and the transport; `.npy` matrices are used as given.
//!
//! At a warmup checkpoint the two sides are paired as LESS pairs them by default: candidates are
//! Adam features, queries plain gradients (`--grad-type` sets the candidates' transform). Adam
//! features on both sides would share the checkpoint's momentum term m/√v, the same vector for
//! every example, which then dominates every distance (measured on the demo pool: cosine 0.81
//! between unrelated candidates, and the queries nearer to other tasks' lines than to their own
//! task's).
//!
//! For the same reason the density estimate, whose σ says which candidates are near-duplicates,
//! runs on the pool's plain gradients by default: on Adam features nearly every pair of
//! candidates falls inside σ, every ρ is close to kde_K and duplicates are no longer discounted
//! (`--tsds-density candidates` keeps the reference's choice and saves the extra pass).

use std::path::Path;

use serde_json::json;

use super::{Checkpoint, Chosen, Context, GradType, Scored, TsdsDensity, TsdsOptions, TsdsSource};
use crate::choice::Choice;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::features::{self, Transform};
use crate::loss::LossKind;
use crate::methods::knn::{searcher, Exact};
use crate::methods::tsds::{self, Density};
use crate::methods::unit::unit_rows_f32;

/// TSDS over gradient features, hidden-state embeddings or given .npy matrices. The pool's
/// gradients are transformed as `grad_type` says (at a warmup `checkpoint` LESS's Adam features
/// by default) and the targets' are plain gradients, as LESS compares them.
pub(super) fn tsds_select(
    cx: &Context<'_>,
    pool: &Dataset,
    target: &Dataset,
    checkpoint: Option<&Path>,
    grad_type: GradType,
    t: &TsdsOptions,
    budget: usize,
) -> Result<Scored> {
    // Plain-gradient rows of the pool for the density, where they differ from the candidates.
    let mut plain: Option<(Vec<f32>, usize)> = None;
    let (x, q, dim, source, normalised) = match &t.source {
        TsdsSource::Npy { pool: pn, target: tn } => {
            let m = Matrices::read(pn, tn, Some(pool.len()))?;
            (m.x, m.q, m.dim, m.source, false)
        }
        TsdsSource::Embeddings(pooling) => {
            let x = cx.embed(pool, *pooling)?;
            let q = cx.embed(target, *pooling)?;
            (x, q, cx.loaded.model.config.hidden, json!({ "embed": pooling }), true)
        }
        TsdsSource::Gradients => {
            let dir = cx.out.join("features/tsds");
            let checkpoint = match checkpoint {
                None => Checkpoint::loaded(cx.loaded),
                Some(d) => Checkpoint::load(cx.loaded, d)?,
            };
            let transform = checkpoint.transform(grad_type)?;
            let f = cx.featurizer(&checkpoint);
            let pf = f.run_pool(pool, LossKind::Sft, &transform, &dir.join("pool"))?;
            let tf = f.run(target, LossKind::Sft, &Transform::Identity, &dir.join("target"))?;
            if t.density.unwrap_or(TsdsDensity::Plain) == TsdsDensity::Plain && grad_type != GradType::Sgd {
                let df = f.run_pool(pool, LossKind::Sft, &Transform::Identity, &dir.join("pool-plain"))?;
                plain = Some((df.load()?.data, df.dim));
            }
            // Exact kNN re-ranks candidates by exact distance: every row in memory.
            let dim = pf.dim;
            let at = checkpoint.label().unwrap_or_else(|| "the loaded adapter".into());
            let features = format!(
                "sft gradients at {at}: {} of the pool, plain gradients of the targets (as LESS pairs them)",
                grad_type.name()
            );
            let source = json!({
                "features": features,
                "grad_type": grad_type.name(),
                "stores": ["features/tsds/pool", "features/tsds/target"],
            });
            (pf.load()?.data, tf.load()?.data, dim, source, true)
        }
    };
    let (n, m) = (pool.len(), q.len() / dim);
    let (x, q) = if normalised { (unit_rows_f32(&x, n, dim), unit_rows_f32(&q, m, dim)) } else { (x, q) };
    let plain = plain.map(|(rows, d)| (unit_rows_f32(&rows, n, d), d));
    let (density, on) = match &plain {
        Some((data, dim)) => {
            (Density::Rows { data, dim: *dim }, "plain gradients of the pool (features/tsds/pool-plain)")
        }
        None => (Density::Candidates, "the candidate vectors"),
    };
    let exact = Exact::new(cx.compute.gpu.clone());
    let (probs, chosen, mut details) = run(&x, n, &q, dim, density, t, budget, cx.opts.seed, &exact, cx.out)?;
    details["density"]["features"] = json!(on);
    details["source"] = source;
    details["rows"] =
        json!(if normalised { "L2-normalised (sigma and C assume unit norm)" } else { "as given (.npy)" });
    Ok(Scored { scores: probs, columns: vec![], chosen, details })
}

/// Probabilities (also written to probabilities.npy), the draw, and what the manifest says of
/// them.
#[allow(clippy::too_many_arguments)]
fn run(
    x: &[f32],
    n: usize,
    q: &[f32],
    dim: usize,
    density: Density<'_>,
    t: &TsdsOptions,
    budget: usize,
    seed: u64,
    exact: &Exact,
    out: &Path,
) -> Result<(Vec<f64>, Chosen, serde_json::Value)> {
    let tsds::Outcome { probabilities: probs, densities } =
        tsds::probabilities_with(x, n, q, q.len() / dim, dim, density, &t.params, exact)?;
    let probs32: Vec<f32> = probs.iter().map(|&p| p as f32).collect();
    features::npy::write(&out.join("probabilities.npy"), &probs32, probs.len(), 1, features::Dtype::F32)?;
    let chosen = if t.no_replacement {
        Chosen::Top(budget)
    } else {
        Chosen::List(tsds::sample_with_replacement(&probs, budget, seed))
    };
    let (k, kde_k) = t.params.effective(n);
    let details = json!({
        "params": t.params,
        "neighbours_used": { "k": k, "kde_k": kde_k, "rule": "min(given, or 5000 and 1000, N/10), as the reference caps them" },
        "sampling": if t.no_replacement { "top by probability, without replacement" } else { "multinomial with replacement (indices repeat), seeded" },
        "probabilities": "probabilities.npy (and the score column)",
        "neighbours": searcher(t.params.index, exact).describe(),
        "density": {
            "features": "the candidate vectors",
            "rho": density_summary(&densities, kde_k),
        },
    });
    Ok((probs, chosen, details))
}

/// How the density estimate spread: ρ's quartiles over the candidates it was computed for.
/// Near-duplicates were discounted only where ρ varies; every ρ near kde_K means every pair
/// fell inside σ.
fn density_summary(sorted: &[f64], kde_k: usize) -> serde_json::Value {
    let at = |f: f64| sorted.get(((sorted.len().max(1) - 1) as f64 * f).round() as usize).copied();
    json!({
        "candidates": sorted.len(),
        "min": at(0.0), "quartile_1": at(0.25), "median": at(0.5), "quartile_3": at(0.75), "max": at(1.0),
        "kde_k": kde_k,
    })
}

/// The reference's own interface: candidate and query embeddings as two `.npy` matrices.
struct Matrices {
    x: Vec<f32>,
    q: Vec<f32>,
    n: usize,
    dim: usize,
    source: serde_json::Value,
}

impl Matrices {
    /// Reads both (f16, f32 or f64); `rows`, when the candidates are pool lines, is how many.
    fn read(pool: &Path, target: &Path, rows: Option<usize>) -> Result<Matrices> {
        let (x, n, dim) = features::npy::read(pool)?;
        let (q, _, qdim) = features::npy::read(target)?;
        if qdim != dim || rows.is_some_and(|r| r != n) {
            return Err(Error::format(
                target,
                format!(
                    "width {qdim}, and {} is [{n}, {dim}]: both need one width{}",
                    pool.display(),
                    rows.map_or(String::new(), |r| format!(", and the candidates one row per pool line ({r})"))
                ),
            ));
        }
        let hash =
            |p: &Path| crate::util::sha256_file(p).map(|h| json!({ "path": p.display().to_string(), "sha256": h }));
        let source = json!({ "npy": [hash(pool)?, hash(target)?] });
        Ok(Matrices { x, q, n, dim, source })
    }
}

/// TSDS on two `.npy` matrices alone, as the reference runs: no model, no pool or target file.
/// Writes probabilities.npy, selected.json (row indices; repeated when sampled with
/// replacement), scores.csv and manifest.json into `out`; with `pool` (the lines the rows
/// stand for), selected.jsonl and each row's file and line too.
#[allow(clippy::too_many_arguments)]
pub fn tsds_on_matrices(
    pool_npy: &Path,
    target_npy: &Path,
    pool: Option<&Dataset>,
    t: &TsdsOptions,
    budget: crate::select::Budget,
    seed: u64,
    compute: &crate::device::Compute,
    out: &Path,
) -> Result<super::Selection> {
    let m = Matrices::read(pool_npy, target_npy, pool.map(Dataset::len))?;
    let k = budget.count(m.n)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let exact = Exact::new(compute.gpu.clone());
    let (probs, chosen, mut details) = run(&m.x, m.n, &m.q, m.dim, Density::Candidates, t, k, seed, &exact, out)?;
    details["source"] = m.source;
    details["rows"] = json!("as given (.npy)");
    let selected = match chosen {
        Chosen::Top(k) => crate::select::top_k(&probs, k),
        Chosen::List(list) => list,
    };
    let manifest = json!({
        "method": "tsds",
        "pool": match pool {
            Some(p) => json!({ "examples": p.len(), "files": p.files.iter().map(|f| json!({ "path": f.display().to_string() })).collect::<Vec<_>>() }),
            None => json!({ "rows": m.n, "matrix": pool_npy.display().to_string() }),
        },
        "queries": m.q.len() / m.dim,
        "selected": selected.len(),
        "details": details,
        "device": compute.label,
        "gradsift": env!("CARGO_PKG_VERSION"),
    });
    crate::select::write_outputs(out, pool, &probs, &[], &selected, manifest)?;
    Ok(super::Selection { selected, pool_size: m.n, out: out.to_path_buf() })
}
