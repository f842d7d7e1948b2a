//! k-nearest-neighbour search, exact or approximate, on the CPU or a GPU. TSDS and the IVF
//! index ask one `NeighbourSearch` for neighbours; which backend answers is decided once, when
//! the search is made ([`Exact::new`], `searcher`), not at every call.
//!
//! Every search returns, per query, `(exact squared distance, index)` ascending with ties broken
//! by index, so the exact searches give identical neighbours on every device.

pub mod gpu;
pub mod ivf;

pub use gpu::GpuKnn;
pub use ivf::{IvfIndex, IvfParams};

use crate::error::Result;
use crate::gpu::Gpu;

/// Neighbours of each query: `(squared distance, row index)`, nearest first.
pub(crate) type Neighbours = Vec<Vec<(f64, usize)>>;

/// A way of finding nearest neighbours.
pub(crate) trait NeighbourSearch {
    /// For each of the `m` queries `q` (`[m, dim]`), its `k` nearest rows among `subset` of `x`
    /// (`[*, dim]`).
    fn nearest(&self, x: &[f32], subset: &[usize], q: &[f32], m: usize, dim: usize, k: usize) -> Result<Neighbours>;

    /// What the search is, for manifests.
    fn describe(&self) -> &'static str;
}

/// Which index TSDS uses.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KnnIndex {
    /// Every candidate is compared (the default).
    Exact,
    /// An IVF-Flat index, as the reference's faiss: APPROXIMATE, for large pools.
    Ivf(IvfParams),
}

/// Exact search: every candidate compared, on the CPU or with the WGSL kernel.
pub enum Exact {
    Cpu,
    Gpu(GpuKnn),
}

impl Exact {
    /// The GPU kernel when a GPU is given, else the CPU.
    pub fn new(gpu: Option<Gpu>) -> Self {
        gpu.map_or(Exact::Cpu, |g| Exact::Gpu(GpuKnn::new(g)))
    }
}

impl NeighbourSearch for Exact {
    fn nearest(&self, x: &[f32], subset: &[usize], q: &[f32], m: usize, dim: usize, k: usize) -> Result<Neighbours> {
        match self {
            // Rows wider than the kernel takes fall back to the CPU (same answers).
            Exact::Gpu(g) if dim <= crate::gpu::MAX_ROW => g.nearest(x, subset, q, m, dim, k),
            _ => Ok((0..m).map(|j| exact_neighbours(&q[j * dim..(j + 1) * dim], x, dim, subset, k)).collect()),
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Exact::Cpu => "exact (ties by index)",
            Exact::Gpu(_) => "exact: distances and top-K on the GPU, re-ranked in f64 (ties by index)",
        }
    }
}

/// An IVF index built over each searched subset, its assignments made with `exact`.
pub struct Ivf<'a> {
    pub params: IvfParams,
    pub exact: &'a Exact,
}

impl NeighbourSearch for Ivf<'_> {
    fn nearest(&self, x: &[f32], subset: &[usize], q: &[f32], m: usize, dim: usize, k: usize) -> Result<Neighbours> {
        IvfIndex::build(x, subset, dim, &self.params, self.exact)?.search(x, q, m, k, self.params.nprobe, self.exact)
    }

    fn describe(&self) -> &'static str {
        "APPROXIMATE: IVF-Flat index (see params.index), exact scan of the probed cells"
    }
}

/// The search `index` asks for, with its exact parts on `exact`.
pub(crate) fn searcher(index: KnnIndex, exact: &Exact) -> Box<dyn NeighbourSearch + '_> {
    match index {
        KnnIndex::Exact => Box::new(ExactRef(exact)),
        KnnIndex::Ivf(params) => Box::new(Ivf { params, exact }),
    }
}

/// A borrowed [`Exact`], so [`searcher`] can hand out either kind behind one box.
struct ExactRef<'a>(&'a Exact);

impl NeighbourSearch for ExactRef<'_> {
    fn nearest(&self, x: &[f32], subset: &[usize], q: &[f32], m: usize, dim: usize, k: usize) -> Result<Neighbours> {
        self.0.nearest(x, subset, q, m, dim, k)
    }

    fn describe(&self) -> &'static str {
        self.0.describe()
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
