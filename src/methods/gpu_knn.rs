//! Exact k-nearest neighbours with the distance kernel of shaders/knn.wgsl. The GPU computes
//! f32 squared distances tile by tile; the host keeps each query's `k + SLACK` nearest in a
//! bounded heap, then re-ranks those by exact f64 distance. The slack absorbs f32 rounding, so
//! the neighbours (and everything computed from them) equal the CPU path's on every device.

use std::collections::BinaryHeap;

use burn::tensor::wgpu::wgpu;

use super::tsds::sq_dist;
use crate::error::{Error, Result};
use crate::gpu::{f32_bytes, u32_bytes, Gpu};

/// Candidates per dispatch.
const TILE: usize = 4096;
/// Extra neighbours kept before the exact re-ranking.
const SLACK: usize = 8;
/// Longest row the one-loop kernel takes.
pub const MAX_DIM: usize = 60_000;
/// Queries per dispatch.
const MAX_QUERIES: usize = 65_535;

/// The compiled distance kernel.
pub struct GpuKnn {
    gpu: Gpu,
    pipeline: wgpu::ComputePipeline,
}

/// Ordered by distance, then index (a max-heap keeps the current worst on top).
#[derive(PartialEq)]
struct Near(f32, usize);
impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Near {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

impl GpuKnn {
    /// Compiles the kernel on `gpu`.
    pub fn new(gpu: Gpu) -> Self {
        let pipeline = gpu.pipeline("knn", include_str!("../../shaders/knn.wgsl"), "distances");
        GpuKnn { gpu, pipeline }
    }

    /// For each of the `m` queries, its `k` nearest rows among `subset` of `x` (`[*, dim]`):
    /// (exact squared distance, index), ascending, ties by index.
    pub fn nearest(
        &self,
        x: &[f32],
        subset: &[usize],
        q: &[f32],
        m: usize,
        dim: usize,
        k: usize,
    ) -> Result<Vec<Vec<(f64, usize)>>> {
        if dim > MAX_DIM {
            return Err(Error::Invalid(format!("the kNN kernel takes at most {MAX_DIM} columns, not {dim}")));
        }
        // A dispatch's y dimension holds at most 65,535 queries.
        let mut out = Vec::with_capacity(m);
        for j0 in (0..m).step_by(MAX_QUERIES) {
            let mj = MAX_QUERIES.min(m - j0);
            out.extend(self.nearest_chunk(x, subset, &q[j0 * dim..(j0 + mj) * dim], mj, dim, k)?);
        }
        Ok(out)
    }

    fn nearest_chunk(
        &self,
        x: &[f32],
        subset: &[usize],
        q: &[f32],
        m: usize,
        dim: usize,
        k: usize,
    ) -> Result<Vec<Vec<(f64, usize)>>> {
        let ctx = &self.gpu;
        let keep = (k + SLACK).min(subset.len());
        let query = ctx.storage("queries", (m * dim * 4) as u64, wgpu::BufferUsages::empty());
        ctx.queue.write_buffer(&query, 0, &f32_bytes(q));
        let tile = TILE.min(subset.len().max(1));
        let cand = ctx.storage("candidates", (tile * dim * 4) as u64, wgpu::BufferUsages::empty());
        let d2 = ctx.storage("d2", (tile * m * 4) as u64, wgpu::BufferUsages::COPY_SRC);
        let params = ctx.uniform("knn params", 16);
        let bind = ctx.bind(&self.pipeline, &[(0, &params), (1, &cand), (2, &query), (3, &d2)]);
        let mut heaps: Vec<BinaryHeap<Near>> = (0..m).map(|_| BinaryHeap::with_capacity(keep + 1)).collect();
        let mut rows = vec![0f32; tile * dim];
        for t0 in (0..subset.len()).step_by(tile) {
            let n = tile.min(subset.len() - t0);
            for (r, &i) in subset[t0..t0 + n].iter().enumerate() {
                rows[r * dim..(r + 1) * dim].copy_from_slice(&x[i * dim..(i + 1) * dim]);
            }
            ctx.queue.write_buffer(&cand, 0, &f32_bytes(&rows[..n * dim]));
            ctx.queue.write_buffer(&params, 0, &u32_bytes(&[n as u32, m as u32, dim as u32, 0]));
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&self.pipeline);
                pass.set_bind_group(0, &bind, &[]);
                pass.dispatch_workgroups(n.div_ceil(64) as u32, m as u32, 1);
            }
            ctx.queue.submit(Some(enc.finish()));
            let d = ctx.read_f32(&d2, n * m)?;
            for (j, heap) in heaps.iter_mut().enumerate() {
                for r in 0..n {
                    let cand = Near(d[j * n + r], subset[t0 + r]);
                    if heap.len() < keep {
                        heap.push(cand);
                    } else if cand < *heap.peek().expect("non-empty") {
                        heap.pop();
                        heap.push(cand);
                    }
                }
            }
        }
        Ok(heaps
            .into_iter()
            .enumerate()
            .map(|(j, heap)| {
                let qj = &q[j * dim..(j + 1) * dim];
                let mut exact: Vec<(f64, usize)> =
                    heap.into_iter().map(|Near(_, i)| (sq_dist(&x[i * dim..(i + 1) * dim], qj), i)).collect();
                exact.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                exact.truncate(k);
                exact
            })
            .collect())
    }
}
