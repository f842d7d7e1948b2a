//! The WGSL scoring kernel (shaders/score.wgsl): cosine of every candidate with every target and
//! the per-subtask means, on the GPU, over candidate chunks so that GPU memory stays bounded
//! as the pool grows. [`super::less::subtask_cosines`] is the CPU reference it is tested against.

use burn::tensor::wgpu::wgpu;

use super::less::{TaskCosines, DEFAULT_TASK};
use crate::error::{Error, Result};
use crate::features::Features;
use crate::gpu::{f32_bytes, u32_bytes, Gpu};

/// Candidates scored per dispatch (bounds the GPU buffers).
const CHUNK_ROWS: usize = 4096;
/// Longest feature row the one-loop kernel takes (lavapipe's 65,535-iteration limit).
pub const MAX_DIM: usize = 60_000;

/// The compiled kernel.
pub struct GpuScorer {
    gpu: Gpu,
    dots: wgpu::ComputePipeline,
    aggregate: wgpu::ComputePipeline,
}

fn unit_rows(data: &[f32], dim: usize) -> Vec<f32> {
    let mut out = data.to_vec();
    for row in out.chunks_mut(dim) {
        let norm = row.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|x| *x = (*x as f64 / norm) as f32);
        }
    }
    out
}

impl GpuScorer {
    /// Compiles the kernel on `gpu`.
    pub fn new(gpu: Gpu) -> Self {
        let src = include_str!("../../shaders/score.wgsl");
        let dots = gpu.pipeline("dots", src, "dots");
        let aggregate = gpu.pipeline("aggregate", src, "aggregate");
        GpuScorer { gpu, dots, aggregate }
    }

    /// Per-subtask mean cosines, as [`super::less::subtask_cosines`] computes them.
    pub fn subtask_cosines(&self, pool: &Features, target: &Features) -> Result<TaskCosines> {
        let (m, dim) = (target.rows, target.dim);
        if pool.dim != dim {
            return Err(Error::Invalid("pool and target features have different widths".into()));
        }
        if m > 65_535 {
            return Err(Error::Invalid(format!("{m} target examples exceed the scoring kernel's 65,535")));
        }
        if dim > MAX_DIM {
            return Err(Error::Invalid(format!("feature width {dim} exceeds the scoring kernel's {MAX_DIM}")));
        }
        let mut groups: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
        for (j, t) in target.manifest.tasks.iter().enumerate() {
            groups.entry(t.clone().unwrap_or_else(|| DEFAULT_TASK.into())).or_default().push(j as u32);
        }
        let names: Vec<String> = groups.keys().cloned().collect();
        let mut members = Vec::with_capacity(m);
        let mut offsets = vec![0u32];
        for g in groups.values() {
            members.extend_from_slice(g);
            offsets.push(members.len() as u32);
        }
        let g_count = names.len();
        let ctx = &self.gpu;
        let targ = ctx.storage("targets", (m * dim * 4) as u64, wgpu::BufferUsages::empty());
        ctx.queue.write_buffer(&targ, 0, &f32_bytes(&unit_rows(&target.data, dim)));
        let members_buf = ctx.storage("members", (members.len() * 4) as u64, wgpu::BufferUsages::empty());
        ctx.queue.write_buffer(&members_buf, 0, &u32_bytes(&members));
        let offsets_buf = ctx.storage("offsets", (offsets.len() * 4) as u64, wgpu::BufferUsages::empty());
        ctx.queue.write_buffer(&offsets_buf, 0, &u32_bytes(&offsets));
        let rows = CHUNK_ROWS.min(pool.rows.max(1));
        let cand = ctx.storage("candidates", (rows * dim * 4) as u64, wgpu::BufferUsages::empty());
        let dots = ctx.storage("dots", (rows * m * 4) as u64, wgpu::BufferUsages::empty());
        let per_task = ctx.storage("per_task", (rows * g_count * 4) as u64, wgpu::BufferUsages::COPY_SRC);
        let params = ctx.uniform("score params", 16);
        let bg_dots = ctx.bind(&self.dots, &[(0, &params), (1, &cand), (2, &targ), (3, &dots)]);
        let bg_agg = ctx
            .bind(&self.aggregate, &[(0, &params), (3, &dots), (4, &members_buf), (5, &offsets_buf), (6, &per_task)]);
        let mut out: Vec<Vec<f64>> = vec![Vec::with_capacity(pool.rows); g_count];
        for r0 in (0..pool.rows).step_by(rows) {
            let n = rows.min(pool.rows - r0);
            ctx.queue.write_buffer(&cand, 0, &f32_bytes(&unit_rows(&pool.data[r0 * dim..(r0 + n) * dim], dim)));
            ctx.queue.write_buffer(&params, 0, &u32_bytes(&[n as u32, m as u32, dim as u32, g_count as u32]));
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&self.dots);
                pass.set_bind_group(0, &bg_dots, &[]);
                pass.dispatch_workgroups(n.div_ceil(64) as u32, m as u32, 1);
                pass.set_pipeline(&self.aggregate);
                pass.set_bind_group(0, &bg_agg, &[]);
                pass.dispatch_workgroups(n.div_ceil(64) as u32, 1, 1);
            }
            ctx.queue.submit(Some(enc.finish()));
            let chunk = ctx.read_f32(&per_task, n * g_count)?;
            for i in 0..n {
                for (g, col) in out.iter_mut().enumerate() {
                    col.push(chunk[i * g_count + g] as f64);
                }
            }
        }
        Ok(names.into_iter().zip(out).collect())
    }
}
