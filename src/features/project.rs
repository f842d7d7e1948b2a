//! Random projection of gradients: features = P·g with P a k × |θ| Rademacher matrix scaled by
//! 1/√k (Johnson–Lindenstrauss: inner products are preserved up to O(1/√k)). P comes from the
//! counter-based generator in [`super::rng`], so every device computes the same features.
//! On a GPU the WGSL kernel in shaders/project.wgsl generates P on the fly; on the CPU backend
//! the plain Rust version below does, and it is also the reference the kernel is tested against.
//! This is LESS's P (`--projection dense`); the default is the sparse P of [`super::sparse`],
//! with the same error at a fraction of the cost. [`Projector`] picks one per device.

use std::sync::Arc;

use burn::tensor::wgpu::wgpu;

use super::rng;
use super::sparse::{GpuSparseProjector, SparseJl};
use crate::blocking::block_on;
use crate::error::{Error, Result, Setting};
use crate::gpu::{f32_bytes, u32_bytes, Gpu};

/// How P is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProjectionKind {
    Sparse,
    Dense,
}

crate::choice::choice!(ProjectionKind {
    Sparse => "sparse": "--proj-nnz nonzeros ±1/√nnz per column (sparse JL): the dense P's error at nnz instead of k multiply-adds per gradient entry",
    Dense => "dense": "every entry ±1/√k, LESS's Rademacher P: k multiply-adds per gradient entry",
});

/// Columns one invocation sums (× (TILE_E + 1) loop iterations stays far below lavapipe's
/// 65,535-iteration limit).
const CHUNK: usize = 2048;
/// Examples one invocation handles (the shader's `TILE_E`).
const TILE_E: usize = 8;
/// Most chunks per pass (the z dimension of a dispatch).
const MAX_Z: usize = 64;
/// Most examples per dispatch group, bounding the partial-sum buffer.
const MAX_E: usize = 32;

/// Columns whose signs are generated together on the CPU: the sign block is reused by every
/// example, and each block's dot product runs in f32 lanes the compiler vectorises.
const CPU_BLOCK: usize = 1024;

/// Eight-lane f32 dot product (vectorised by the compiler).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Plain-Rust projection: `g` is `[e, n]` row-major; returns `[e, k]`. Blocks of 1,024 columns
/// are summed in f32 and the block sums in f64, which keeps the result within ~1e-7 of an
/// all-f64 sum. Rows of P are split across threads.
pub fn project_cpu(g: &[f32], e: usize, n: usize, seed: u64, k: usize) -> Vec<f32> {
    assert_eq!(g.len(), e * n, "gradient buffer has the wrong size");
    let mut out = vec![0f32; e * k];
    if e == 0 || k == 0 {
        return out;
    }
    let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1).min(k);
    let rows_per = k.div_ceil(threads);
    let scale = 1.0 / (k as f64).sqrt();
    let results: Vec<(usize, usize, Vec<f32>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let (r0, r1) = (t * rows_per, ((t + 1) * rows_per).min(k));
                    let width = r1.saturating_sub(r0);
                    let mut block = vec![0f32; e * width];
                    let mut signs = vec![0f32; CPU_BLOCK];
                    let mut acc = vec![0f64; e];
                    for r in r0..r1 {
                        let rk = rng::row_key(seed, r as u32);
                        acc.iter_mut().for_each(|a| *a = 0.0);
                        for c0 in (0..n).step_by(CPU_BLOCK) {
                            let len = CPU_BLOCK.min(n - c0);
                            for (j, s) in signs[..len].iter_mut().enumerate() {
                                *s = if rng::negative(rk, (c0 + j) as u32) { -1.0 } else { 1.0 };
                            }
                            for (i, a) in acc.iter_mut().enumerate() {
                                *a += dot(&signs[..len], &g[i * n + c0..i * n + c0 + len]) as f64;
                            }
                        }
                        for i in 0..e {
                            block[i * width + (r - r0)] = (acc[i] * scale) as f32;
                        }
                    }
                    (r0, width, block)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("projection thread")).collect()
    });
    for (r0, width, block) in results {
        for i in 0..e {
            out[i * k + r0..i * k + r0 + width].copy_from_slice(&block[i * width..(i + 1) * width]);
        }
    }
    out
}

/// The WGSL projection kernel on a shared wgpu device.
pub struct GpuProjector {
    gpu: Gpu,
    project: wgpu::ComputePipeline,
    accumulate: wgpu::ComputePipeline,
}

impl GpuProjector {
    /// Compiles the kernel.
    pub fn new(gpu: Gpu) -> Self {
        let src = include_str!("../../shaders/project.wgsl");
        let project = gpu.pipeline("project", src, "project");
        let accumulate = gpu.pipeline("accumulate", src, "accumulate");
        GpuProjector { gpu, project, accumulate }
    }

    /// Projects `g: [e, n]` to `[e, k]`.
    pub fn project(&self, g: &[f32], e: usize, n: usize, seed: u64, k: usize) -> Result<Vec<f32>> {
        block_on(self.project_async(g, e, n, seed, k))
    }

    /// [`Self::project`] for callers that can await (the browser page).
    pub async fn project_async(&self, g: &[f32], e: usize, n: usize, seed: u64, k: usize) -> Result<Vec<f32>> {
        if n > u32::MAX as usize {
            return Err(Error::setting(
                Setting::LoraTargets,
                format!("|θ| = {n} exceeds the projection's 2^32 columns"),
            ));
        }
        if k > u32::MAX as usize {
            return Err(Error::setting(Setting::ProjDim, format!("projection dim {k} exceeds 2^32")));
        }
        let mut out = Vec::with_capacity(e * k);
        for e0 in (0..e).step_by(MAX_E) {
            let ne = MAX_E.min(e - e0);
            out.extend(self.project_group(&g[e0 * n..(e0 + ne) * n], ne, n, seed, k).await?);
        }
        let scale = 1.0 / (k as f32).sqrt();
        out.iter_mut().for_each(|x| *x *= scale);
        Ok(out)
    }

    async fn project_group(&self, g: &[f32], e: usize, n: usize, seed: u64, k: usize) -> Result<Vec<f32>> {
        let ctx = &self.gpu;
        let limit = ctx.max_binding();
        let per_z = e * k * 4;
        if per_z > limit {
            return Err(Error::Device(format!("projection dim {k} too large for this adapter's {limit}-byte buffers")));
        }
        let z_max = MAX_Z.min(limit / per_z).max(1);
        let slab_cols = (z_max * CHUNK).min(n).min(limit / (4 * e)).max(1);
        let grads = ctx.storage("grads", (e * slab_cols * 4) as u64, wgpu::BufferUsages::empty());
        let partial = ctx.storage("partial", (z_max * per_z) as u64, wgpu::BufferUsages::empty());
        let out = ctx.storage("features", (e * k * 4) as u64, wgpu::BufferUsages::COPY_SRC);
        let params = ctx.uniform("project params", 32);
        let bg_project = ctx.bind(&self.project, &[(0, &params), (1, &grads), (2, &partial)]);
        let bg_accum = ctx.bind(&self.accumulate, &[(0, &params), (2, &partial), (3, &out)]);

        let mut slab = vec![0f32; e * slab_cols];
        let mut col_base = 0;
        while col_base < n {
            let cols = slab_cols.min(n - col_base);
            for i in 0..e {
                slab[i * cols..(i + 1) * cols].copy_from_slice(&g[i * n + col_base..i * n + col_base + cols]);
            }
            let z_count = cols.div_ceil(CHUNK);
            let p: [u32; 8] = [
                k as u32,
                e as u32,
                cols as u32,
                col_base as u32,
                CHUNK as u32,
                z_count as u32,
                seed as u32,
                (seed >> 32) as u32,
            ];
            ctx.queue.write_buffer(&params, 0, &u32_bytes(&p));
            ctx.queue.write_buffer(&grads, 0, &f32_bytes(&slab[..e * cols]));
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&self.project);
                pass.set_bind_group(0, &bg_project, &[]);
                pass.dispatch_workgroups(k.div_ceil(64) as u32, e.div_ceil(TILE_E) as u32, z_count as u32);
            }
            {
                let groups = (e * k).div_ceil(64);
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&self.accumulate);
                pass.set_bind_group(0, &bg_accum, &[]);
                pass.dispatch_workgroups(groups.min(65535) as u32, groups.div_ceil(65535) as u32, 1);
            }
            ctx.queue.submit(Some(enc.finish()));
            col_base += cols;
        }
        ctx.read_f32_async(&out, e * k).await
    }
}

/// Where and how features are projected.
#[derive(Clone)]
pub enum Projector {
    /// `--proj-dim 0`: the exact gradient is the feature.
    Identity,
    /// The dense P in plain Rust on the CPU.
    Cpu { seed: u64, k: usize },
    /// The dense P's WGSL kernel.
    Gpu { kernel: Arc<GpuProjector>, seed: u64, k: usize },
    /// The sparse P on the CPU.
    SparseCpu(SparseJl),
    /// The sparse P's WGSL kernel.
    SparseGpu { kernel: Arc<GpuSparseProjector>, jl: SparseJl },
}

impl Projector {
    /// The projector of `kind` to `k` dimensions (0: none) on `gpu`, or on the CPU without one.
    pub fn new(gpu: Option<&Gpu>, kind: ProjectionKind, seed: u64, k: usize, nnz: usize) -> Result<Projector> {
        Ok(match (kind, gpu) {
            _ if k == 0 => Projector::Identity,
            (ProjectionKind::Dense, None) => Projector::Cpu { seed, k },
            (ProjectionKind::Dense, Some(g)) => {
                Projector::Gpu { kernel: Arc::new(GpuProjector::new(g.clone())), seed, k }
            }
            (ProjectionKind::Sparse, None) => Projector::SparseCpu(SparseJl::new(seed, k, nnz)?),
            (ProjectionKind::Sparse, Some(g)) => Projector::SparseGpu {
                kernel: Arc::new(GpuSparseProjector::new(g.clone())),
                jl: SparseJl::new(seed, k, nnz)?,
            },
        })
    }

    /// Output width for gradients of length `n`.
    pub fn dim(&self, n: usize) -> usize {
        match self {
            Projector::Identity => n,
            Projector::Cpu { k, .. } | Projector::Gpu { k, .. } => *k,
            Projector::SparseCpu(jl) | Projector::SparseGpu { jl, .. } => jl.k(),
        }
    }

    /// Projects `g: [e, n]`.
    pub fn apply(&self, g: Vec<f32>, e: usize, n: usize) -> Result<Vec<f32>> {
        block_on(self.apply_async(g, e, n))
    }

    /// [`Self::apply`] for callers that can await (the browser page).
    pub async fn apply_async(&self, g: Vec<f32>, e: usize, n: usize) -> Result<Vec<f32>> {
        match self {
            Projector::Identity => Ok(g),
            Projector::Cpu { seed, k } => Ok(project_cpu(&g, e, n, *seed, *k)),
            Projector::Gpu { kernel, seed, k } => kernel.project_async(&g, e, n, *seed, *k).await,
            Projector::SparseCpu(jl) => jl.project_cpu(&g, e, n),
            Projector::SparseGpu { kernel, jl } => kernel.project_async(jl, &g, e, n).await,
        }
    }
}
