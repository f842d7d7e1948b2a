//! Exact k-nearest neighbours on the GPU with shaders/knn.wgsl: the distances AND the top-K
//! stay on the device. Candidates stream through in tiles; each query keeps its `k + SLACK`
//! nearest in a sorted region that every tile is merged into (a bitonic sort of the tile, then
//! a bitonic merge), so the host never sees a distance matrix and never sorts the pool. Only
//! those `k + SLACK` indices per query come back; the host re-ranks them by exact f64 distance.
//! The slack absorbs f32 rounding, so the neighbours (and everything computed from them) equal
//! the CPU path's on every device.

use burn::tensor::wgpu::wgpu;

use super::sq_dist;
use crate::error::{Error, Result};
use crate::gpu::{f32_bytes, u32_bytes, Gpu, MAX_ROW};

/// Candidates per tile when the pool is large (a power of two).
const TILE: usize = 4096;
/// Extra neighbours kept before the exact re-ranking.
const SLACK: usize = 8;
/// Queries per dispatch (the y dimension of a dispatch holds at most 65,535 workgroups).
const MAX_QUERIES: usize = 65_535;
/// Largest sorted region: keeps every dispatch's x dimension under 65,535 workgroups of 64.
const MAX_REGION: usize = 1 << 22;
/// The kernel's "no candidate" index.
const EMPTY_ID: u32 = u32::MAX;

/// The compiled kernels.
pub struct GpuKnn {
    gpu: Gpu,
    fill: wgpu::ComputePipeline,
    distances: wgpu::ComputePipeline,
    sort_step: wgpu::ComputePipeline,
}

/// Buffer sizes for one search.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Slots of the sorted best region per query (a power of two >= k + slack).
    best: usize,
    /// Slots of the tile region per query (a power of two >= best).
    tile: usize,
    /// Candidate rows uploaded per distance dispatch (<= tile).
    piece: usize,
    /// Queries per chunk of the search.
    rows: usize,
}

impl Plan {
    fn new(limit: usize, dim: usize, keep: usize, candidates: usize, queries: usize) -> Result<Plan> {
        let best = keep.next_power_of_two();
        let tile = best.max(TILE.min(candidates.next_power_of_two()));
        let row_bytes = dim * 4;
        let piece = tile.min(limit / row_bytes.max(1));
        let rows = MAX_QUERIES.min(queries).min(limit / ((best + tile) * 4)).min(limit / row_bytes.max(1));
        if tile > MAX_REGION || piece == 0 || rows == 0 {
            return Err(Error::AdapterLimit(format!(
                "a kNN search keeping {keep} neighbours over {dim} columns does not fit this adapter's {limit}-byte buffers"
            )));
        }
        Ok(Plan { best, tile, piece, rows })
    }

    /// The sort of a tile, then its merge into the best region: (mode, span) of each step.
    fn steps(&self) -> Vec<(u32, u32)> {
        let mut steps = Vec::new();
        let mut block = 2;
        while block <= self.tile {
            steps.push((0, block as u32));
            let mut j = block / 4;
            while j >= 1 {
                steps.push((1, j as u32));
                j /= 2;
            }
            block *= 2;
        }
        steps.push((2, 0));
        let mut j = self.best / 2;
        while j >= 1 {
            steps.push((3, j as u32));
            j /= 2;
        }
        steps
    }

    /// Invocations of a sort step of `mode` per query.
    fn pairs(&self, mode: u32) -> usize {
        match mode {
            0 | 1 => self.tile / 2,
            2 => self.best,
            _ => self.best / 2,
        }
    }
}

impl GpuKnn {
    /// Compiles the kernels on `gpu`.
    pub fn new(gpu: Gpu) -> Self {
        let src = include_str!("../../../shaders/knn.wgsl");
        let fill = gpu.pipeline("knn fill", src, "fill");
        let distances = gpu.pipeline("knn distances", src, "distances");
        let sort_step = gpu.pipeline("knn sort step", src, "sort_step");
        GpuKnn { gpu, fill, distances, sort_step }
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
        if dim > MAX_ROW {
            return Err(Error::AdapterLimit(format!("the kNN kernel takes at most {MAX_ROW} columns, not {dim}")));
        }
        if subset.len() >= EMPTY_ID as usize {
            return Err(Error::AdapterLimit(format!("the kNN kernel takes fewer than {EMPTY_ID} candidates")));
        }
        let keep = (k + SLACK).min(subset.len());
        if keep == 0 || m == 0 {
            return Ok(vec![Vec::new(); m]);
        }
        let plan = Plan::new(self.gpu.max_binding(), dim, keep, subset.len(), m)?;
        let mut out = Vec::with_capacity(m);
        for j0 in (0..m).step_by(plan.rows) {
            let rows = plan.rows.min(m - j0);
            let qc = &q[j0 * dim..(j0 + rows) * dim];
            let found = self.search(x, subset, qc, rows, dim, keep, &plan)?;
            for (j, ids) in found.into_iter().enumerate() {
                let qj = &qc[j * dim..(j + 1) * dim];
                let mut exact: Vec<(f64, usize)> =
                    ids.into_iter().map(|i| (sq_dist(&x[i * dim..(i + 1) * dim], qj), i)).collect();
                exact.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                exact.truncate(k);
                out.push(exact);
            }
        }
        Ok(out)
    }

    /// The `keep` nearest candidate indices of each of `rows` queries, by f32 distance.
    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        x: &[f32],
        subset: &[usize],
        q: &[f32],
        rows: usize,
        dim: usize,
        keep: usize,
        plan: &Plan,
    ) -> Result<Vec<Vec<usize>>> {
        let ctx = &self.gpu;
        let none = wgpu::BufferUsages::empty();
        let query = ctx.storage("knn queries", (rows * dim * 4) as u64, none);
        ctx.queue.write_buffer(&query, 0, &f32_bytes(q));
        let slots = (rows * (plan.best + plan.tile) * 4) as u64;
        let keys = ctx.storage("knn keys", slots, none);
        let ids = ctx.storage("knn ids", slots, wgpu::BufferUsages::COPY_SRC);
        let cand = ctx.storage("knn candidates", (plan.piece * dim * 4) as u64, none);
        let cand_ids = ctx.storage("knn candidate ids", (plan.piece * 4) as u64, none);
        let params = |mode: u32, span: u32| -> wgpu::Buffer {
            let b = ctx.uniform("knn params", 32);
            let p = [rows, dim, plan.best, plan.tile, 0, 0, mode as usize, span as usize].map(|v| v as u32);
            ctx.queue.write_buffer(&b, 0, &u32_bytes(&p));
            b
        };
        let sorted = |p: &wgpu::Buffer| ctx.bind(&self.sort_step, &[(0, p), (4, &keys), (5, &ids)]);
        let fill_tile = params(0, 0);
        let fill_best = params(1, 0);
        let fill_tile_bind = ctx.bind(&self.fill, &[(0, &fill_tile), (4, &keys), (5, &ids)]);
        let fill_best_bind = ctx.bind(&self.fill, &[(0, &fill_best), (4, &keys), (5, &ids)]);
        let steps: Vec<(u32, wgpu::Buffer)> = plan.steps().into_iter().map(|(m, s)| (m, params(m, s))).collect();
        let step_binds: Vec<(u32, wgpu::BindGroup)> = steps.iter().map(|(m, b)| (*m, sorted(b))).collect();
        let piece_params = ctx.uniform("knn piece params", 32);
        let piece_bind = ctx.bind(
            &self.distances,
            &[(0, &piece_params), (1, &cand), (2, &cand_ids), (3, &query), (4, &keys), (5, &ids)],
        );
        let groups = |n: usize| n.div_ceil(64) as u32;
        let run = |pipeline: &wgpu::ComputePipeline, binds: &[(&wgpu::BindGroup, usize)]| {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(pipeline);
                for (bind, width) in binds {
                    pass.set_bind_group(0, *bind, &[]);
                    pass.dispatch_workgroups(groups(*width), rows as u32, 1);
                }
            }
            ctx.queue.submit(Some(enc.finish()));
        };
        run(&self.fill, &[(&fill_best_bind, plan.best)]);
        let mut piece_rows = vec![0f32; plan.piece * dim];
        for t0 in (0..subset.len()).step_by(plan.tile) {
            let t1 = (t0 + plan.tile).min(subset.len());
            run(&self.fill, &[(&fill_tile_bind, plan.tile)]);
            for p0 in (t0..t1).step_by(plan.piece) {
                let n = plan.piece.min(t1 - p0);
                let piece_ids: Vec<u32> = subset[p0..p0 + n].iter().map(|&i| i as u32).collect();
                for (r, &i) in subset[p0..p0 + n].iter().enumerate() {
                    piece_rows[r * dim..(r + 1) * dim].copy_from_slice(&x[i * dim..(i + 1) * dim]);
                }
                ctx.queue.write_buffer(&cand, 0, &f32_bytes(&piece_rows[..n * dim]));
                ctx.queue.write_buffer(&cand_ids, 0, &u32_bytes(&piece_ids));
                let p = [rows, dim, plan.best, plan.tile, n, p0 - t0, 0, 0].map(|v| v as u32);
                ctx.queue.write_buffer(&piece_params, 0, &u32_bytes(&p));
                run(&self.distances, &[(&piece_bind, n)]);
            }
            let binds: Vec<(&wgpu::BindGroup, usize)> = step_binds.iter().map(|(m, b)| (b, plan.pairs(*m))).collect();
            run(&self.sort_step, &binds);
        }
        let found = ctx.read_words(&ids, rows * plan.best)?;
        Ok(found
            .chunks(plan.best)
            .map(|row| row[..keep].iter().filter(|&&i| i != EMPTY_ID).map(|&i| i as usize).collect())
            .collect())
    }
}
