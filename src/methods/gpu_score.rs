//! The WGSL scoring kernel (shaders/score.wgsl) for LESS and ROSE: cosine of every candidate
//! with every target, the per-subtask means, the learning-rate-weighted sum over checkpoints
//! and the maximum over subtasks, all on the GPU. The candidates stream from the feature store
//! in chunks of `BLOCK_ROWS`, so host and GPU memory hold one chunk of features however large
//! the pool; only scores (one number per candidate and subtask) grow with it.
//! [`super::less::subtask_cosines`] and [`super::less::combine`] are the CPU reference it is
//! tested against.

use burn::tensor::wgpu::wgpu;

use super::less::{SubtaskScores, TaskCosines};
use super::subtasks::subtask_groups;
use super::unit::unit_rows_f32;
use crate::blocking::block_on;
use crate::error::{Error, Result};
use crate::features::{FeatureRows, Features, BLOCK_ROWS};
use crate::gpu::{f32_bytes, u32_bytes, Gpu, MAX_ROW};

/// Most loop iterations of one `aggregate` invocation (targets + subtasks).
const MAX_AGGREGATE: usize = 65_535;
/// Candidates per y-row of a `maximum` dispatch (1,024 workgroups of 64).
const MAX_X: usize = 1024 * 64;

/// One checkpoint's features and its weight.
pub struct WeightedFeatures<'a> {
    pub pool: &'a dyn FeatureRows,
    pub target: &'a Features,
    pub weight: f64,
}

/// What [`GpuScorer::score`] returns.
pub struct CheckpointScores {
    /// Per checkpoint: each subtask's mean cosine for every candidate.
    pub per_checkpoint: Vec<TaskCosines>,
    /// The weighted sums over checkpoints and their maximum over subtasks.
    pub combined: SubtaskScores,
}

/// The compiled kernel.
pub struct GpuScorer {
    gpu: Gpu,
    dots: wgpu::ComputePipeline,
    aggregate: wgpu::ComputePipeline,
    maximum: wgpu::ComputePipeline,
}

impl GpuScorer {
    /// Compiles the kernel on `gpu`.
    pub fn new(gpu: Gpu) -> Self {
        let src = include_str!("../../shaders/score.wgsl");
        let dots = gpu.pipeline("dots", src, "dots");
        let aggregate = gpu.pipeline("aggregate", src, "aggregate");
        let maximum = gpu.pipeline("maximum", src, "maximum");
        GpuScorer { gpu, dots, aggregate, maximum }
    }

    /// Why the kernel cannot score `stages`, or None when it can (the caller then uses the
    /// CPU scorer): feature width, target count, and buffer sizes against the adapter's limits.
    pub fn unfit(&self, stages: &[WeightedFeatures<'_>]) -> Option<String> {
        let limit = self.gpu.max_binding();
        let first = stages.first()?;
        let (n, m) = (first.pool.rows(), first.target.rows);
        let groups = subtask_groups(&first.target.manifest.tasks).len();
        let dim = stages.iter().map(|s| s.pool.dim()).max().unwrap_or(0);
        if dim > MAX_ROW {
            Some(format!("feature width {dim} exceeds the scoring kernel's {MAX_ROW}"))
        } else if m + groups > MAX_AGGREGATE {
            Some(format!("{m} targets in {groups} subtasks exceed the scoring kernel's {MAX_AGGREGATE} iterations"))
        } else if [n * groups, m * dim, dim, m].iter().any(|&w| w * 4 > limit) {
            Some(format!("{n} candidates × {m} targets × {dim} columns exceed this adapter's {limit}-byte buffers"))
        } else {
            None
        }
    }

    /// LESS scores: for each stage, every candidate's mean cosine to each subtask's targets;
    /// Σ weight × mean over stages; max over subtasks. Every stage needs the same target rows
    /// and subtasks (the checkpoints' features of one target set).
    pub fn score(&self, stages: &[WeightedFeatures<'_>]) -> Result<CheckpointScores> {
        block_on(self.score_async(stages))
    }

    /// [`Self::score`] for callers that can await (the browser page).
    pub async fn score_async(&self, stages: &[WeightedFeatures<'_>]) -> Result<CheckpointScores> {
        if let Some(why) = self.unfit(stages) {
            return Err(Error::AdapterLimit(why));
        }
        let first = &stages[0];
        let total = first.pool.rows();
        let groups = subtask_groups(&first.target.manifest.tasks);
        if groups.is_empty() {
            return Err(Error::TooFew("no target features to score against".into()));
        }
        if stages.iter().any(|s| s.pool.rows() != total || subtask_groups(&s.target.manifest.tasks) != groups) {
            return Err(Error::Internal("the checkpoints' features cover different pools or target sets".into()));
        }
        let g_count = groups.len();
        let ctx = &self.gpu;
        let none = wgpu::BufferUsages::empty();
        let members: Vec<u32> = groups.iter().flat_map(|(_, m)| m.iter().map(|&j| j as u32)).collect();
        let mut offsets = vec![0u32];
        for (_, m) in &groups {
            offsets.push(offsets.last().copied().unwrap_or(0) + m.len() as u32);
        }
        let members_buf = ctx.storage("members", (members.len() * 4) as u64, none);
        ctx.queue.write_buffer(&members_buf, 0, &u32_bytes(&members));
        let offsets_buf = ctx.storage("offsets", (offsets.len() * 4) as u64, none);
        ctx.queue.write_buffer(&offsets_buf, 0, &u32_bytes(&offsets));
        // Zero-initialised by wgpu: the weighted sum starts at 0.
        let weighted = ctx.storage("weighted", (total * g_count * 4) as u64, wgpu::BufferUsages::COPY_SRC);
        let score = ctx.storage("score", (total * 4) as u64, wgpu::BufferUsages::COPY_SRC);
        let params = ctx.uniform("score params", 32);
        let write_params = |n: usize, m: usize, dim: usize, row0: usize, weight: f64| {
            let p = [n, m, dim, g_count, row0, total].map(|v| v as u32);
            let mut words = p.to_vec();
            words.extend([(weight as f32).to_bits(), 0]);
            ctx.queue.write_buffer(&params, 0, &u32_bytes(&words));
        };
        let mut per_checkpoint = Vec::with_capacity(stages.len());
        for stage in stages {
            let (m, dim) = (stage.target.rows, stage.pool.dim());
            if stage.target.dim != dim {
                return Err(Error::WidthMismatch {
                    left: "pool",
                    left_width: dim,
                    right: "target",
                    right_width: stage.target.dim,
                });
            }
            let targ = ctx.storage("targets", (m * dim * 4) as u64, none);
            ctx.queue.write_buffer(&targ, 0, &f32_bytes(&unit_rows_f32(&stage.target.data, stage.target.rows, dim)));
            // Candidates in blocks of up to BLOCK_ROWS rows, fewer where the device binds less.
            let rows = BLOCK_ROWS.min(total.max(1)).min(ctx.max_binding() / (4 * dim.max(m).max(1))).max(1);
            let cand = ctx.storage("candidates", (rows * dim * 4) as u64, none);
            let dots = ctx.storage("dots", (rows * m * 4) as u64, none);
            let per_task = ctx.storage("per_task", (rows * g_count * 4) as u64, wgpu::BufferUsages::COPY_SRC);
            let bg_dots = ctx.bind(&self.dots, &[(0, &params), (1, &cand), (2, &targ), (3, &dots)]);
            let bg_agg = ctx.bind(
                &self.aggregate,
                &[(0, &params), (3, &dots), (4, &members_buf), (5, &offsets_buf), (6, &per_task), (7, &weighted)],
            );
            let mut cols: Vec<Vec<f64>> = vec![Vec::with_capacity(total); g_count];
            for r0 in (0..total).step_by(rows) {
                let n = rows.min(total - r0);
                ctx.queue.write_buffer(&cand, 0, &f32_bytes(&unit_rows_f32(&stage.pool.block(r0, n)?, n, dim)));
                write_params(n, m, dim, r0, stage.weight);
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
                let chunk = ctx.read_f32_async(&per_task, n * g_count).await?;
                for row in chunk.chunks(g_count) {
                    cols.iter_mut().zip(row).for_each(|(c, &v)| c.push(v as f64));
                }
            }
            per_checkpoint.push(groups.iter().map(|(name, _)| name.clone()).zip(cols).collect::<TaskCosines>());
        }
        write_params(0, 0, 0, 0, 0.0);
        let bg_max = ctx.bind(&self.maximum, &[(0, &params), (7, &weighted), (8, &score)]);
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.maximum);
            pass.set_bind_group(0, &bg_max, &[]);
            pass.dispatch_workgroups((MAX_X / 64) as u32, total.div_ceil(MAX_X).max(1) as u32, 1);
        }
        ctx.queue.submit(Some(enc.finish()));
        let sums = ctx.read_f32_async(&weighted, total * g_count).await?;
        let per_task = groups
            .iter()
            .enumerate()
            .map(|(g, (name, _))| (name.clone(), sums.iter().skip(g).step_by(g_count).map(|&v| v as f64).collect()))
            .collect();
        let score = ctx.read_f32_async(&score, total).await?.into_iter().map(f64::from).collect();
        Ok(CheckpointScores { per_checkpoint, combined: SubtaskScores { score, per_task } })
    }
}
