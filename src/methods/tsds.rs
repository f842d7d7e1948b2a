//! TSDS (Liu et al., NeurIPS 2024): a sampling distribution over candidates that matches the
//! query (target) distribution in optimal-transport terms while discounting near-duplicates
//! with a kernel density estimate. Steps as in METHODS.md:
//! 1. each query's K nearest candidates (L2, ascending; D = non-squared distance);
//! 2. KDE over U, the candidates in some query's list: ρ_u = Σ over u's kde_K nearest points
//!    in U (itself included) of max(0, 1 − ‖x_u − x_l‖² / σ²); σ = 0 gives ρ = 1;
//! 3. the probability assignment by a min-heap over queries, stopping when
//!    (α/C)·total cost ≥ (1 − α)·M;
//! 4. p[I[j][k]] += 1/(M·s·ρ[j][k]) for k ≤ last[j], the remainder of 1/M to I[j][last[j]+1];
//! 5. sampling with replacement (multinomial, seeded), or the top by p without replacement.
//!
//! Neighbours are exact by default (ties broken by index), on the GPU when given one (see
//! [`super::gpu_knn`], whose distances and top-K run on the GPU and which returns the same
//! neighbours). [`KnnIndex::Ivf`] uses an approximate IVF-Flat index instead, as the
//! reference's faiss does, for pools too large for exact search.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::gpu_knn::GpuKnn;
use super::ivf::{IvfIndex, IvfParams};
use crate::error::{Error, Result};
use crate::util::SplitMix64;

/// How neighbours are found.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KnnIndex {
    /// Every candidate is compared (the default).
    Exact,
    /// An IVF-Flat index, as the reference's faiss: APPROXIMATE, for large pools.
    Ivf(IvfParams),
}

/// TSDS parameters; `None` picks the reference defaults min(5000, N/10) and min(1000, N/10).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct TsdsParams {
    pub k: Option<usize>,
    pub kde_k: Option<usize>,
    pub sigma: f64,
    pub alpha: f64,
    pub c: f64,
    pub index: KnnIndex,
}

impl Default for TsdsParams {
    fn default() -> Self {
        TsdsParams { k: None, kde_k: None, sigma: 0.75, alpha: 0.5, c: 5.0, index: KnnIndex::Exact }
    }
}

/// Squared L2 distance, accumulated in f64.
pub(crate) fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum()
}

/// The `k` nearest rows of `points` (among `candidates`) to `q`: (squared distance, index),
/// ascending, ties by index.
pub(crate) fn exact_neighbours(
    q: &[f32],
    points: &[f32],
    dim: usize,
    candidates: &[usize],
    k: usize,
) -> Vec<(f64, usize)> {
    let mut all: Vec<(f64, usize)> =
        candidates.iter().map(|&i| (sq_dist(q, &points[i * dim..(i + 1) * dim]), i)).collect();
    let cmp = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    let k = k.min(all.len());
    if k < all.len() {
        all.select_nth_unstable_by(k, cmp);
        all.truncate(k);
    }
    all.sort_by(cmp);
    all
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

/// The TSDS probabilities of `n` candidates `x` (`[n, dim]`) for `m` queries `q`.
pub fn probabilities(x: &[f32], n: usize, q: &[f32], m: usize, dim: usize, p: &TsdsParams) -> Result<Vec<f64>> {
    probabilities_with(x, n, q, m, dim, p, None)
}

/// Each query's `k` nearest rows of `x` among `subset` (by `index`), on the GPU if given one.
#[allow(clippy::too_many_arguments)]
fn neighbours(
    x: &[f32],
    subset: &[usize],
    q: &[f32],
    m: usize,
    dim: usize,
    k: usize,
    index: KnnIndex,
    knn: Option<&GpuKnn>,
) -> Result<Vec<Vec<(f64, usize)>>> {
    match (index, knn) {
        (KnnIndex::Ivf(p), _) => IvfIndex::build(x, subset, dim, &p, knn)?.search(x, q, m, k, p.nprobe, knn),
        (KnnIndex::Exact, Some(g)) if dim <= super::gpu_knn::MAX_DIM => g.nearest(x, subset, q, m, dim, k),
        _ => Ok((0..m).map(|j| exact_neighbours(&q[j * dim..(j + 1) * dim], x, dim, subset, k)).collect()),
    }
}

/// [`probabilities`], with the neighbour searches on `knn` when given.
pub fn probabilities_with(
    x: &[f32],
    n: usize,
    q: &[f32],
    m: usize,
    dim: usize,
    p: &TsdsParams,
    knn: Option<&GpuKnn>,
) -> Result<Vec<f64>> {
    if n < 2 || m == 0 {
        return Err(Error::Invalid("TSDS needs at least 2 candidates and 1 query".into()));
    }
    let big_k = p.k.unwrap_or(5000.min(n / 10)).clamp(2, n);
    let kde_k = p.kde_k.unwrap_or(1000.min(n / 10)).max(1);
    let all: Vec<usize> = (0..n).collect();
    // 1. Neighbours of each query.
    let (mut dists, mut idx) = (Vec::with_capacity(m), Vec::with_capacity(m));
    for nn in neighbours(x, &all, q, m, dim, big_k, p.index, knn)? {
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
        let rows: Vec<f32> = union.iter().flat_map(|&u| x[u * dim..(u + 1) * dim].iter().copied()).collect();
        let nn = neighbours(x, &union, &rows, union.len(), dim, kde_k, p.index, knn)?;
        union
            .iter()
            .zip(nn)
            .map(|(&u, near)| (u, near.iter().map(|(d2, _)| (1.0 - d2 / (p.sigma * p.sigma)).max(0.0)).sum()))
            .collect()
    };
    let rho: Vec<Vec<f64>> = idx.iter().map(|row| row.iter().map(|i| rho_of[i]).collect()).collect();
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
    Ok(prob)
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
