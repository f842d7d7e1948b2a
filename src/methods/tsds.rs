//! TSDS (Liu et al., NeurIPS 2024): a sampling distribution over candidates that matches the
//! query (target) distribution in optimal-transport terms while discounting near-duplicates
//! with a kernel density estimate. The reference implementation's steps:
//! 1. each query's K nearest candidates (L2, ascending; D = non-squared distance);
//! 2. KDE over U, the candidates in some query's list: ρ_u = Σ over u's kde_K nearest points
//!    in U (itself included) of max(0, 1 − ‖x_u − x_l‖² / σ²); σ = 0 gives ρ = 1. A group of d
//!    near-duplicates then has ρ ≈ d each and together weighs as one candidate. The reference
//!    measures these distances on the candidate vectors; [`probabilities_with`] can take other
//!    features of the same candidates for them (see [`Density`]);
//! 3. the probability assignment by a min-heap over queries, stopping when
//!    (α/C)·total cost ≥ (1 − α)·M;
//! 4. `p[I[j][k]] += 1/(M·s·ρ[j][k])` for `k ≤ last[j]`, the remainder of 1/M to `I[j][last[j]+1]`;
//! 5. sampling with replacement (multinomial, seeded), or the top by p without replacement.
//!
//! Neighbours come from [`super::knn`]: exact by default (ties broken by index, the same on
//! the CPU and the GPU), or [`KnnIndex::Ivf`], an approximate IVF-Flat index as the
//! reference's faiss uses, for pools too large for exact search.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

pub use super::knn::KnnIndex;
use super::knn::{searcher, Exact};
use crate::error::{Error, Result};
use crate::util::SplitMix64;

/// TSDS parameters; `None` picks the reference defaults 5000 and 1000 (see [`TsdsParams::effective`]).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct TsdsParams {
    /// K: neighbours of each query (the candidates it can be matched to).
    pub neighbours: Option<usize>,
    /// kde_K: neighbours of each candidate in its density estimate.
    pub kde_neighbours: Option<usize>,
    pub sigma: f64,
    pub alpha: f64,
    pub c: f64,
    pub index: KnnIndex,
}

impl Default for TsdsParams {
    fn default() -> Self {
        TsdsParams { neighbours: None, kde_neighbours: None, sigma: 0.75, alpha: 0.5, c: 5.0, index: KnnIndex::Exact }
    }
}

/// A heap entry ordered by (count, k, j), as Python's tuples compare.
#[derive(PartialEq)]
struct Entry(f64, usize, usize);
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1)).then(self.2.cmp(&o.2))
    }
}

impl TsdsParams {
    /// K and kde_K for `n` candidates, as the reference caps them: at most N/10 (given or not;
    /// defaults 5000 and 1000), K at least 2 and kde_K at least 1.
    pub fn effective(&self, n: usize) -> (usize, usize) {
        let cap = n / 10;
        let k = self.neighbours.unwrap_or(5000).min(cap).clamp(2, n.max(2));
        let kde = self.kde_neighbours.unwrap_or(1000).min(cap).max(1);
        (k, kde)
    }
}

/// The rows the density estimate measures distances on. The reference uses the candidate
/// vectors themselves; where those share a large common component (LESS's Adam features: the
/// checkpoint's m/√v is the same for every example), every pair falls inside σ, the density is
/// nearly uniform and near-duplicates are no longer discounted, so the pipeline can give other
/// features of the same candidates (their plain gradients).
#[derive(Debug, Clone, Copy)]
pub enum Density<'a> {
    /// The candidate vectors (the reference).
    Candidates,
    /// `[n, dim]` rows of other features, one per candidate, in the same order.
    Rows { data: &'a [f32], dim: usize },
}

/// What [`probabilities_with`] computes.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// One per candidate, summing to 1.
    pub probabilities: Vec<f64>,
    /// ρ of each candidate in some query's neighbour list, ascending (how much near-duplicates
    /// were discounted: all near 1 or all near kde_K means none was).
    pub densities: Vec<f64>,
}

/// The TSDS probabilities of `n` candidates `x` (`[n, dim]`) for `m` queries `q`.
pub fn probabilities(x: &[f32], n: usize, q: &[f32], m: usize, dim: usize, p: &TsdsParams) -> Result<Vec<f64>> {
    Ok(probabilities_with(x, n, q, m, dim, Density::Candidates, p, &Exact::Cpu)?.probabilities)
}

/// [`probabilities`], the density measured on `density`, with the exact parts of the neighbour
/// searches on `exact`.
#[allow(clippy::too_many_arguments)]
pub fn probabilities_with(
    x: &[f32],
    n: usize,
    q: &[f32],
    m: usize,
    dim: usize,
    density: Density<'_>,
    p: &TsdsParams,
    exact: &Exact,
) -> Result<Outcome> {
    let search = searcher(p.index, exact);
    if n < 2 || m == 0 {
        return Err(Error::TooFew("TSDS needs at least 2 candidates and 1 query".into()));
    }
    let (dx, ddim) = match density {
        Density::Candidates => (x, dim),
        Density::Rows { data, dim: d } if d > 0 && data.len() == n * d => (data, d),
        Density::Rows { data, dim: d } => {
            return Err(Error::Internal(format!(
                "TSDS density features: {} values do not make {n} rows of width {d}",
                data.len()
            )))
        }
    };
    let (big_k, kde_k) = p.effective(n);
    let all: Vec<usize> = (0..n).collect();
    // 1. Neighbours of each query.
    let (mut dists, mut idx) = (Vec::with_capacity(m), Vec::with_capacity(m));
    for nn in search.nearest(x, &all, q, m, dim, big_k)? {
        dists.push(nn.iter().map(|(d, _)| d.sqrt()).collect::<Vec<f64>>());
        idx.push(nn.iter().map(|(_, i)| *i).collect::<Vec<usize>>());
    }
    // 2. KDE over the union of the lists.
    let mut union: Vec<usize> = idx.iter().flatten().copied().collect();
    union.sort_unstable();
    union.dedup();
    let rho_of: HashMap<usize, f64> = if p.sigma == 0.0 {
        union.iter().map(|&u| (u, 1.0)).collect()
    } else {
        let rows: Vec<f32> = union.iter().flat_map(|&u| dx[u * ddim..(u + 1) * ddim].iter().copied()).collect();
        let nn = search.nearest(dx, &union, &rows, union.len(), ddim, kde_k)?;
        union
            .iter()
            .zip(nn)
            .map(|(&u, near)| (u, near.iter().map(|(d2, _)| (1.0 - d2 / (p.sigma * p.sigma)).max(0.0)).sum()))
            .collect()
    };
    let rho: Vec<Vec<f64>> = idx.iter().map(|row| row.iter().map(|i| rho_of[i]).collect()).collect();
    let mut densities: Vec<f64> = rho_of.values().copied().collect();
    densities.sort_by(f64::total_cmp);
    // 3. Probability assignment.
    let mut heap: BinaryHeap<Reverse<Entry>> = (0..m).map(|j| Reverse(Entry(1.0 / rho[j][0], 0, j))).collect();
    let mut weighted: Vec<f64> = (0..m).map(|j| dists[j][0] / rho[j][0]).collect();
    let mut cost = vec![0f64; m];
    let mut last = vec![0usize; m];
    let (mut total, mut s) = (0f64, 0f64);
    while let Some(Reverse(Entry(count, k, j))) = heap.pop() {
        s = count;
        total -= cost[j];
        cost[j] = dists[j][k + 1] * count - weighted[j];
        total += cost[j];
        if p.alpha / p.c * total >= (1.0 - p.alpha) * m as f64 {
            break;
        }
        last[j] = k;
        if k + 2 < big_k {
            heap.push(Reverse(Entry(count + 1.0 / rho[j][k + 1], k + 1, j)));
            weighted[j] += dists[j][k + 1] / rho[j][k + 1];
        }
    }
    // 4. Spread each query's 1/M.
    let mut prob = vec![0f64; n];
    for j in 0..m {
        let mut sum = 0.0;
        for k in 0..=last[j] {
            let w = 1.0 / m as f64 / s / rho[j][k];
            prob[idx[j][k]] += w;
            sum += w;
        }
        prob[idx[j][last[j] + 1]] += (1.0 / m as f64 - sum).max(0.0);
    }
    Ok(Outcome { probabilities: prob, densities })
}

/// `size` draws from `p` with replacement (seeded), returned in increasing index order.
pub fn sample_with_replacement(p: &[f64], size: usize, seed: u64) -> Vec<usize> {
    let mut cdf = Vec::with_capacity(p.len());
    let mut acc = 0.0;
    for &x in p {
        acc += x;
        cdf.push(acc);
    }
    let mut rng = SplitMix64(seed ^ 0x7473_6473);
    let mut out: Vec<usize> = (0..size)
        .map(|_| {
            let u = rng.uniform() * acc;
            cdf.partition_point(|&c| c <= u).min(p.len() - 1)
        })
        .collect();
    out.sort_unstable();
    out
}
