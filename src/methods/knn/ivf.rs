//! An inverted-file index (IVF-Flat, as faiss's `IndexIVFFlat` that the TSDS reference uses) for
//! approximate nearest neighbours in large pools. APPROXIMATE: a query scans only the
//! candidates of its `nprobe` nearest cells, so a true neighbour in an unprobed cell is missed.
//! - Training: seeded k-means (Lloyd) with `nlist` centroids on at most 256 points per centroid
//!   (faiss's default sample), started from distinct sampled points; a cell left empty keeps its
//!   previous centroid.
//! - Every point then goes to the list of its nearest centroid.
//! - Search: the query's `nprobe` nearest centroids (more while their lists hold fewer than `k`
//!   candidates, so a query always gets `k` neighbours), then an exact scan of their lists.
//!
//! Assignments use exact neighbour searches (on the GPU when given one, which returns the same
//! neighbours as the CPU), so the index, and what it finds, is the same on every device.

use super::{exact_neighbours, Exact, NeighbourSearch};
use crate::error::{Error, Result};
use crate::util::SplitMix64;

/// Lloyd iterations of the training.
const ITERATIONS: usize = 10;
/// Training points per centroid (faiss's `max_points_per_centroid`).
const SAMPLE_PER_CELL: usize = 256;

/// The index's settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct IvfParams {
    /// Cells; None = max(1, ⌊√N / 2⌋) as the TSDS reference sets it.
    pub nlist: Option<usize>,
    /// Cells scanned per query (the reference's 10).
    pub nprobe: usize,
    /// Seed of the k-means initialisation and sample.
    pub seed: u64,
}

impl Default for IvfParams {
    fn default() -> Self {
        IvfParams { nlist: None, nprobe: 10, seed: 0 }
    }
}

/// A trained index over `subset` rows of a matrix.
pub struct IvfIndex {
    dim: usize,
    /// `[nlist, dim]`.
    centroids: Vec<f32>,
    /// Row indices (into the matrix) of each cell, ascending.
    lists: Vec<Vec<usize>>,
}

/// `count` distinct items of `items`, chosen by a seeded partial shuffle, in drawn order.
fn sample(items: &[usize], count: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut pool = items.to_vec();
    let count = count.min(pool.len());
    for i in 0..count {
        let j = i + rng.below(pool.len() - i);
        pool.swap(i, j);
    }
    pool.truncate(count);
    pool
}

impl IvfIndex {
    /// Trains the index on `subset` rows of `x` (`[*, dim]`) and fills its lists.
    pub fn build(x: &[f32], subset: &[usize], dim: usize, p: &IvfParams, exact: &Exact) -> Result<IvfIndex> {
        if subset.is_empty() {
            return Err(Error::TooFew("an IVF index needs at least one point".into()));
        }
        let nlist = p.nlist.unwrap_or(((subset.len() as f64).sqrt() / 2.0) as usize).clamp(1, subset.len());
        let mut rng = SplitMix64(p.seed ^ 0x1f5f_1a7e);
        let train = sample(subset, SAMPLE_PER_CELL * nlist, &mut rng);
        let mut centroids: Vec<f32> =
            sample(&train, nlist, &mut rng).iter().flat_map(|&i| x[i * dim..(i + 1) * dim].iter().copied()).collect();
        let train_rows: Vec<f32> = train.iter().flat_map(|&i| x[i * dim..(i + 1) * dim].iter().copied()).collect();
        for _ in 0..ITERATIONS {
            let cells = nearest_cells(&centroids, nlist, &train_rows, train.len(), dim, 1, exact)?;
            let mut sums = vec![0f64; nlist * dim];
            let mut counts = vec![0usize; nlist];
            for (t, cell) in cells.iter().enumerate() {
                let c = cell[0];
                counts[c] += 1;
                for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(&train_rows[t * dim..(t + 1) * dim]) {
                    *s += v as f64;
                }
            }
            for c in (0..nlist).filter(|&c| counts[c] > 0) {
                for (o, s) in centroids[c * dim..(c + 1) * dim].iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
                    *o = (*s / counts[c] as f64) as f32;
                }
            }
        }
        let rows: Vec<f32> = subset.iter().flat_map(|&i| x[i * dim..(i + 1) * dim].iter().copied()).collect();
        let mut lists = vec![Vec::new(); nlist];
        for (r, cell) in nearest_cells(&centroids, nlist, &rows, subset.len(), dim, 1, exact)?.into_iter().enumerate() {
            lists[cell[0]].push(subset[r]);
        }
        lists.iter_mut().for_each(|l| l.sort_unstable());
        Ok(IvfIndex { dim, centroids, lists })
    }

    /// Cells of the index.
    pub fn nlist(&self) -> usize {
        self.lists.len()
    }

    /// For each of the `m` queries `q`, its `k` nearest among the candidates of its `nprobe`
    /// nearest cells (more cells while those hold fewer than `k`): (exact squared distance,
    /// index), ascending, ties by index.
    pub fn search(
        &self,
        x: &[f32],
        q: &[f32],
        m: usize,
        k: usize,
        nprobe: usize,
        exact: &Exact,
    ) -> Result<Vec<Vec<(f64, usize)>>> {
        let (dim, nlist) = (self.dim, self.nlist());
        let probes = nearest_cells(&self.centroids, nlist, q, m, dim, nprobe.clamp(1, nlist), exact)?;
        let total: usize = self.lists.iter().map(Vec::len).sum();
        (0..m)
            .map(|j| {
                let qj = &q[j * dim..(j + 1) * dim];
                let probed = &probes[j];
                let mut candidates: Vec<usize> = probed.iter().flat_map(|&c| self.lists[c].iter().copied()).collect();
                if candidates.len() < k.min(total) {
                    // Too few in the probed cells: widen to the next nearest cells.
                    let order = nearest_cells(&self.centroids, nlist, qj, 1, dim, nlist, &Exact::Cpu)?.remove(0);
                    for c in order.into_iter().filter(|c| !probed.contains(c)) {
                        candidates.extend(&self.lists[c]);
                        if candidates.len() >= k {
                            break;
                        }
                    }
                }
                Ok(exact_neighbours(qj, x, dim, &candidates, k))
            })
            .collect()
    }
}

/// The `k` nearest centroids of each of `m` points, nearest first (ties by cell index).
fn nearest_cells(
    centroids: &[f32],
    nlist: usize,
    points: &[f32],
    m: usize,
    dim: usize,
    k: usize,
    exact: &Exact,
) -> Result<Vec<Vec<usize>>> {
    let all: Vec<usize> = (0..nlist).collect();
    let found = exact.nearest(centroids, &all, points, m, dim, k)?;
    Ok(found.into_iter().map(|near| near.into_iter().map(|(_, c)| c).collect()).collect())
}
