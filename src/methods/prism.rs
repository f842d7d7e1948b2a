//! PRISM (Lin et al. 2026): preference-aware influence. Target pairs (q, y⁺, y⁻); ĝ(q, y) the
//! projected gradient of the token-mean loss ℓ̄ at the reference checkpoint; weights
//! π_q = p̄(y⁺|q) / (p̄(y⁺|q) + p̄(y⁻|q)) with p̄ = exp(−ℓ̄) the length-normalised likelihood;
//! direction d = (1/|Q|) Σ π_q (ĝ⁺ − ĝ⁻); score s(z) = g_zᵀ H⁻¹ d with g_z the gradient of the
//! candidate's summed loss −log p(y|x). Why the sign: a step θ ← θ − η g_z changes
//! ℓ̄(y⁺) − ℓ̄(y⁻) by ≈ −η g_z·(ĝ⁺ − ĝ⁻), so g_z·d > 0 lowers y⁺'s loss relative to y⁻'s.

use super::solve;
use crate::error::{Error, Result, Setting};
use crate::features::{dot_rows, FeatureRows, Features};

/// How target pairs are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PairWeights {
    Pi,
    Uniform,
}

crate::choice::choice!(PairWeights {
    Pi => "pi": "pi_q from the length-normalised likelihoods (targets the model nearly prefers weigh more)",
    Uniform => "uniform": "pi_q = 1/2 (ablation)",
});

/// The curvature used in the score.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Hessian {
    Identity,
    /// ĜᵀĜ/N + λI over the candidates' features, λ = damping × mean eigenvalue.
    Covariance {
        damping: f64,
    },
}

/// π_q for each pair from token-mean losses: p̄⁺/(p̄⁺ + p̄⁻) = σ(ℓ̄⁻ − ℓ̄⁺), computed stably.
pub(crate) fn preference_weights(loss_pos: &[f32], loss_neg: &[f32]) -> Vec<f64> {
    loss_pos
        .iter()
        .zip(loss_neg)
        .map(|(&p, &n)| {
            let z = n as f64 - p as f64;
            if z >= 0.0 {
                1.0 / (1.0 + (-z).exp())
            } else {
                z.exp() / (1.0 + z.exp())
            }
        })
        .collect()
}

/// The direction d and the weights used. `neg = None`: unpaired targets, d = mean ĝ⁺.
pub fn direction(pos: &Features, neg: Option<&Features>, weights: PairWeights) -> (Vec<f64>, Vec<f64>) {
    let (q, k) = (pos.rows, pos.dim);
    let mut d = vec![0f64; k];
    let pi = match (neg, weights) {
        (None, _) => vec![1.0; q],
        (Some(_), PairWeights::Uniform) => vec![0.5; q],
        (Some(n), PairWeights::Pi) => preference_weights(&pos.losses, &n.losses),
    };
    for (i, w) in pi.iter().enumerate() {
        for (j, dj) in d.iter_mut().enumerate() {
            let diff = pos.row(i)[j] as f64 - neg.map_or(0.0, |n| n.row(i)[j] as f64);
            *dj += w * diff / q as f64;
        }
    }
    (d, pi)
}

/// s(z) = g_zᵀ H⁻¹ d for every candidate row. With H = identity the candidates are read a
/// block at a time; the covariance needs every row at once.
pub fn scores(candidates: &dyn FeatureRows, d: &[f64], hessian: Hessian) -> Result<Vec<f64>> {
    let (n, k) = (candidates.rows(), candidates.dim());
    let x = match hessian {
        Hessian::Identity => d.to_vec(),
        Hessian::Covariance { damping } => {
            let all = candidates.block(0, n)?;
            let lambda = solve::damping_lambda(&all, n, k, damping);
            if lambda.is_nan() || lambda <= 0.0 {
                return Err(Error::setting(
                    Setting::Damping,
                    format!(
                        "the covariance Hessian needs a positive damping and nonzero candidate features (λ = {lambda})"
                    ),
                ));
            }
            solve::damped_covariance_solve(&all, n, k, lambda, d)
        }
    };
    dot_rows(candidates, &x)
}
