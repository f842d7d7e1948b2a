//! TIF and its forward-only proxies (Zhang et al., ICLR 2026), for a preference pool at a DPO
//! warmup checkpoint θ:
//! - IF(d) = ⟨∇ℓ_DPO(d; θ), mean over validation pairs of ∇ℓ_DPO(v; θ)⟩ (Hessian ≈ identity);
//!   TIF keeps the pairs whose IF lies strictly inside a middle percentile band (low IF: noisy or
//!   ambiguous pairs; very high IF: pairs that overfit);
//! - LossDiff(d) = ℓ_DPO(d; θ) − ℓ_DPO(d; θ_val), θ_val = θ trained one epoch on the validation set;
//! - IRM(d) = the implicit reward margin β·(log π_θ/π_ref (y_w) − log π_θ/π_ref (y_l)), which
//!   needs no validation set;
//! - fusion: the intersection of the LossDiff band and the IRM band.

use crate::error::{Error, Result};
use crate::features::{dot_rows, FeatureRows, Features};

/// A percentile with linear interpolation between order statistics (NumPy's default).
pub(crate) fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Indices whose value lies strictly between the `lo` and `hi` percentiles, and the thresholds.
pub fn band(values: &[f64], lo: f64, hi: f64) -> (Vec<usize>, f64, f64) {
    let (a, b) = (percentile(values, lo), percentile(values, hi));
    ((0..values.len()).filter(|&i| values[i] > a && values[i] < b).collect(), a, b)
}

/// Sorted intersection of two sorted index lists.
pub(crate) fn intersect(a: &[usize], b: &[usize]) -> Vec<usize> {
    a.iter().filter(|i| b.binary_search(i).is_ok()).copied().collect()
}

/// |a ∩ b| / |a ∪ b| and |a ∩ b| / |a| for sorted index lists.
pub fn overlap(a: &[usize], b: &[usize]) -> (f64, f64) {
    let inter = intersect(a, b).len() as f64;
    let union = (a.len() + b.len()) as f64 - inter;
    (if union > 0.0 { inter / union } else { 1.0 }, if a.is_empty() { 0.0 } else { inter / a.len() as f64 })
}

/// IF of each pool row against the mean validation row (the pool read a block at a time).
pub fn influence(pool: &dyn FeatureRows, val: &Features) -> Result<Vec<f64>> {
    let (m, dim) = (val.rows, val.dim);
    if pool.dim() != dim {
        return Err(Error::WidthMismatch {
            left: "pool",
            left_width: pool.dim(),
            right: "validation",
            right_width: dim,
        });
    }
    let mean: Vec<f64> =
        (0..dim).map(|j| (0..m).map(|r| val.data[r * dim + j] as f64).sum::<f64>() / m as f64).collect();
    dot_rows(pool, &mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v = [4.0, 1.0, 3.0, 2.0, 5.0];
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 50.0), 3.0);
        assert_eq!(percentile(&v, 20.0), 1.8);
        assert_eq!(percentile(&v, 100.0), 5.0);
        // 20th percentile 1.8, 80th 4.2: strictly inside are 4, 3 and 2.
        assert_eq!(band(&v, 20.0, 80.0).0, vec![0, 2, 3]);
    }

    #[test]
    fn overlap_counts_shared_indices() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[3, 4, 5]), vec![3, 5]);
        assert_eq!(overlap(&[1, 3, 5, 7], &[3, 4, 5]), (2.0 / 5.0, 0.5));
    }
}
