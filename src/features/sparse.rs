//! The sparse Johnson–Lindenstrauss projection (`--projection sparse`, the default): Kane and
//! Nelson's block construction. The k rows of P are split into `nnz` blocks; every column has
//! one nonzero ±1/√nnz in each block, at a row and with a sign hashed from (seed, column,
//! block) by `super::rng::sparse_slot`. Each block is a CountSketch of k/nnz rows and P
//! averages `nnz` of them, so ⟨Pu, Pv⟩ is unbiased with the same variance as the dense
//! Rademacher P, (‖u‖²‖v‖² + ⟨u,v⟩² − 2Σu_c²v_c²)/k, but costs nnz multiply-adds per gradient
//! entry instead of k: at k = 8,192 and nnz = 8, a thousandth of the dense projection.
//!
//! Every device computes bit-identical features: the CPU adds each column's ±g into its rows
//! in column order, and the WGSL kernel (shaders/sparse_project.wgsl) walks each row's
//! columns in the same order from lists the host builds ([`SparseJl::by_row`]), both in f32,
//! and both scale by 1/√nnz at the end.

use std::sync::{Arc, Mutex};

use burn::tensor::wgpu::wgpu;

use super::rng;
use crate::blocking::block_on;
use crate::error::{Error, Result, Setting};
use crate::gpu::{f32_bytes, u32_bytes, Gpu};

/// Most examples one dispatch projects (bounds the gradient slab buffer).
const MAX_E: usize = 32;
/// Mean entries per row in one slab's lists: lavapipe silently stops an invocation after
/// 65,535 loop iterations, and a row's count strays from the mean by a few hundred at most.
const MEAN_ROW_ENTRIES: usize = 16_384;
/// Longest row list a slab may have (checked when the lists are built).
const MAX_ROW_ENTRIES: usize = 60_000;
/// The sign bit of a list entry (the low 31 bits hold the column inside the slab).
const NEG: u32 = 0x8000_0000;

/// P for one (seed, k, nnz).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseJl {
    key: u32,
    k: usize,
    /// Nonzeros per column (at most k).
    nnz: usize,
}

impl SparseJl {
    /// P with `nnz` nonzeros per column (capped at k, so every block has a row).
    pub fn new(seed: u64, k: usize, nnz: usize) -> Result<SparseJl> {
        if k == 0 {
            return Err(Error::setting(Setting::ProjDim, "the sparse projection needs a dimension of at least 1"));
        }
        if nnz == 0 {
            return Err(Error::setting(Setting::ProjNnz, "the sparse projection needs at least 1 nonzero per column"));
        }
        if k > NEG as usize {
            return Err(Error::setting(Setting::ProjDim, format!("projection dim {k} exceeds 2^31")));
        }
        Ok(SparseJl { key: rng::sparse_key(seed), k, nnz: nnz.min(k) })
    }

    /// Output width.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The scale of every nonzero: 1/√nnz.
    pub fn scale(&self) -> f32 {
        (1.0 / (self.nnz as f64).sqrt()) as f32
    }

    /// Row and sign (true: negative) of column `col`'s nonzero in `block`. Block b holds rows
    /// [b·k/nnz, (b+1)·k/nnz); the row inside it comes from the hash's low 31 bits by a
    /// multiply-shift (no division).
    #[inline]
    pub fn slot(&self, col: u32, block: usize) -> (usize, bool) {
        let h = rng::sparse_slot(self.key, col, block as u32);
        let start = block * self.k / self.nnz;
        let size = (block + 1) * self.k / self.nnz - start;
        let within = ((h & !NEG) as u64 * size as u64) >> 31;
        (start + within as usize, h & NEG != 0)
    }

    /// Projects `g: [e, n]` row-major to `[e, k]` on the CPU, examples split across threads.
    pub fn project_cpu(&self, g: &[f32], e: usize, n: usize) -> Result<Vec<f32>> {
        assert_eq!(g.len(), e * n, "gradient buffer has the wrong size");
        if n > NEG as usize {
            return Err(Error::setting(
                Setting::LoraTargets,
                format!("|θ| = {n} exceeds the sparse projection's 2^31 columns"),
            ));
        }
        let mut out = vec![0f32; e * self.k];
        if e == 0 {
            return Ok(out);
        }
        // One thread where there is one (or none to spawn, as in a browser).
        let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1).min(e);
        if threads <= 1 {
            self.project_rows(g, n, &mut out);
        } else {
            let per = e.div_ceil(threads);
            std::thread::scope(|s| {
                for (rows_out, rows_in) in out.chunks_mut(per * self.k).zip(g.chunks(per * n)) {
                    s.spawn(move || self.project_rows(rows_in, n, rows_out));
                }
            });
        }
        let scale = self.scale();
        out.iter_mut().for_each(|x| *x *= scale);
        Ok(out)
    }

    /// Adds ±g into `out` (unscaled), column by column: the order the kernel sums each row in.
    fn project_rows(&self, g: &[f32], n: usize, out: &mut [f32]) {
        let e = g.len() / n.max(1);
        let mut slots = vec![(0usize, false); self.nnz];
        for c in 0..n {
            for (b, slot) in slots.iter_mut().enumerate() {
                *slot = self.slot(c as u32, b);
            }
            for i in 0..e {
                let v = g[i * n + c];
                let row = &mut out[i * self.k..(i + 1) * self.k];
                for &(r, neg) in &slots {
                    row[r] += if neg { -v } else { v };
                }
            }
        }
    }

    /// Columns [c0, c1) grouped by row: `offsets[r]..offsets[r + 1]` index `entries`, each the
    /// column minus c0 with `NEG` set for a negative sign, in ascending column order.
    pub fn by_row(&self, c0: usize, c1: usize) -> Result<RowLists> {
        let mut counts = vec![0u32; self.k + 1];
        for c in c0..c1 {
            for b in 0..self.nnz {
                counts[self.slot(c as u32, b).0 + 1] += 1;
            }
        }
        if let Some(&most) = counts.iter().max() {
            if most as usize > MAX_ROW_ENTRIES {
                return Err(Error::Device(format!("sparse projection: a row holds {most} entries of one slab")));
            }
        }
        for r in 0..self.k {
            counts[r + 1] += counts[r];
        }
        let offsets = counts;
        let mut next = offsets.clone();
        let mut entries = vec![0u32; (c1 - c0) * self.nnz];
        for c in c0..c1 {
            for b in 0..self.nnz {
                let (r, neg) = self.slot(c as u32, b);
                entries[next[r] as usize] = (c - c0) as u32 | if neg { NEG } else { 0 };
                next[r] += 1;
            }
        }
        Ok(RowLists { offsets, entries })
    }

    /// Columns per slab on the GPU: each row's list stays far below lavapipe's loop limit and
    /// every buffer within `max_binding` bytes.
    fn slab_cols(&self, n: usize, max_binding: usize) -> usize {
        let by_loop = MEAN_ROW_ENTRIES * self.k / self.nnz;
        let by_buffers = (max_binding / (4 * MAX_E)).min(max_binding / (4 * self.nnz));
        by_loop.min(by_buffers).min(n).max(1)
    }
}

/// One slab's columns grouped by output row (see [`SparseJl::by_row`]).
pub struct RowLists {
    pub offsets: Vec<u32>,
    pub entries: Vec<u32>,
}

/// One slab's row lists, uploaded.
struct SlabBuffers {
    cols: usize,
    offsets: wgpu::Buffer,
    entries: wgpu::Buffer,
}

/// The uploaded lists of one P at one gradient length, kept between calls (every batch of a
/// featurization projects with the same P).
struct Uploaded {
    jl: SparseJl,
    n: usize,
    slabs: Vec<SlabBuffers>,
}

/// The WGSL sparse projection on a shared wgpu device.
pub struct GpuSparseProjector {
    gpu: Gpu,
    pipeline: wgpu::ComputePipeline,
    uploaded: Mutex<Option<Arc<Uploaded>>>,
}

impl GpuSparseProjector {
    /// Compiles the kernel.
    pub fn new(gpu: Gpu) -> Self {
        let pipeline = gpu.pipeline("sparse project", include_str!("../../shaders/sparse_project.wgsl"), "project");
        GpuSparseProjector { gpu, pipeline, uploaded: Mutex::new(None) }
    }

    /// Projects `g: [e, n]` to `[e, k]`, bit-identical to [`SparseJl::project_cpu`].
    pub fn project(&self, jl: &SparseJl, g: &[f32], e: usize, n: usize) -> Result<Vec<f32>> {
        block_on(self.project_async(jl, g, e, n))
    }

    /// [`Self::project`] for callers that can await (the browser page).
    pub async fn project_async(&self, jl: &SparseJl, g: &[f32], e: usize, n: usize) -> Result<Vec<f32>> {
        if n > NEG as usize {
            return Err(Error::setting(
                Setting::LoraTargets,
                format!("|θ| = {n} exceeds the sparse projection's 2^31 columns"),
            ));
        }
        let ctx = &self.gpu;
        let k = jl.k;
        if MAX_E * k * 4 > ctx.max_binding() {
            return Err(Error::Device(format!("projection dim {k} too large for this adapter's buffers")));
        }
        // Taken out of the lock: the reads below are awaited, and no lock is held across them.
        let uploaded = {
            let mut cached = self.uploaded.lock().map_err(|_| Error::Device("sparse projector poisoned".into()))?;
            match cached.as_ref().filter(|u| u.jl == *jl && u.n == n) {
                Some(u) => u.clone(),
                None => cached.insert(Arc::new(self.upload(jl, n)?)).clone(),
            }
        };
        let slabs = &uploaded.slabs;
        let slab_max = slabs.iter().map(|s| s.cols).max().unwrap_or(1);
        let mut out = Vec::with_capacity(e * k);
        for e0 in (0..e).step_by(MAX_E) {
            let ne = MAX_E.min(e - e0);
            let grads = ctx.storage("grads", (ne * slab_max * 4) as u64, wgpu::BufferUsages::empty());
            let result = ctx.storage("features", (ne * k * 4) as u64, wgpu::BufferUsages::COPY_SRC);
            let params = ctx.uniform("sparse params", 16);
            let mut col_base = 0;
            let mut slab = vec![0f32; ne * slab_max];
            for s in slabs {
                for i in 0..ne {
                    let src = &g[(e0 + i) * n + col_base..(e0 + i) * n + col_base + s.cols];
                    slab[i * s.cols..(i + 1) * s.cols].copy_from_slice(src);
                }
                ctx.queue.write_buffer(&params, 0, &u32_bytes(&[k as u32, ne as u32, s.cols as u32, 0]));
                ctx.queue.write_buffer(&grads, 0, &f32_bytes(&slab[..ne * s.cols]));
                let bind = ctx
                    .bind(&self.pipeline, &[(0, &params), (1, &grads), (2, &s.offsets), (3, &s.entries), (4, &result)]);
                let mut enc = ctx.device.create_command_encoder(&Default::default());
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&self.pipeline);
                    pass.set_bind_group(0, &bind, &[]);
                    pass.dispatch_workgroups(k.div_ceil(64) as u32, ne as u32, 1);
                }
                ctx.queue.submit(Some(enc.finish()));
                col_base += s.cols;
            }
            out.extend(ctx.read_f32_async(&result, ne * k).await?);
        }
        let scale = jl.scale();
        out.iter_mut().for_each(|x| *x *= scale);
        Ok(out)
    }

    /// Builds and uploads the row lists of every slab of `n` columns.
    fn upload(&self, jl: &SparseJl, n: usize) -> Result<Uploaded> {
        let ctx = &self.gpu;
        let per = jl.slab_cols(n, ctx.max_binding());
        let mut slabs = Vec::with_capacity(n.div_ceil(per));
        for c0 in (0..n).step_by(per) {
            let c1 = (c0 + per).min(n);
            let lists = jl.by_row(c0, c1)?;
            let offsets = ctx.storage("sparse offsets", (lists.offsets.len() * 4) as u64, wgpu::BufferUsages::empty());
            let entries = ctx.storage("sparse entries", (lists.entries.len() * 4) as u64, wgpu::BufferUsages::empty());
            ctx.queue.write_buffer(&offsets, 0, &u32_bytes(&lists.offsets));
            ctx.queue.write_buffer(&entries, 0, &u32_bytes(&lists.entries));
            slabs.push(SlabBuffers { cols: c1 - c0, offsets, entries });
        }
        Ok(Uploaded { jl: *jl, n, slabs })
    }
}
