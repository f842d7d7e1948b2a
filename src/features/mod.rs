//! Features: per-example gradients, projected, stored.

pub mod adopt;
pub mod batches;
mod embed;
pub mod merge;
pub mod npy;
pub mod project;
pub mod rng;
mod rows;
pub mod shard;
pub mod sparse;
mod store;
mod transform;

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

pub use embed::{embeddings, Pooling};
pub use npy::Dtype;
pub use project::{project_cpu, GpuProjector, ProjectionKind, Projector};
pub use rows::FeatureRows;
pub(crate) use rows::{dot_rows, BLOCK_ROWS};
pub use store::{FeatureFile, Features, FileHash, Manifest, ProjectionKey, Store, StoreKey};
pub use transform::Transform;

use crate::blocking::block_on;
use crate::data::{Dataset, TextTokenizer, Tokenized};
use crate::device::Compute;
use crate::error::{Error, Result, Setting};
use crate::loss::{per_example_grads_async, LossKind, Objective};
use crate::model::{CausalLm, LoraAdapter};

/// Most gradient bytes held before they are projected together.
const PENDING_BYTES: usize = 256 << 20;

/// Hashes files for a manifest.
pub(crate) fn hash_files(paths: &[&Path]) -> Result<Vec<FileHash>> {
    paths.iter().map(|p| Ok(FileHash { path: p.display().to_string(), sha256: crate::util::sha256_file(p)? })).collect()
}

/// A description of an adapter for the store key: its files' hashes, or the fresh recipe.
pub(crate) fn adapter_key(adapter: &LoraAdapter, fresh_seed: u64) -> Result<serde_json::Value> {
    Ok(match &adapter.dir {
        Some(dir) => serde_json::to_value(hash_files(&[
            &dir.join("adapter_config.json"),
            &dir.join("adapter_model.safetensors"),
        ])?)
        .expect("json"),
        None => serde_json::json!({
            "fresh": { "r": adapter.rank, "alpha": adapter.alpha, "seed": fresh_seed,
                       "modules": adapter.modules.iter().map(|m| m.module.clone()).collect::<Vec<_>>() }
        }),
    })
}

/// A progress bar on stderr while log lines at INFO are wanted (the CLI without `--quiet`);
/// hidden otherwise, and by indicatif itself when stderr is not a terminal.
fn progress_bar(len: u64) -> ProgressBar {
    if !tracing::enabled!(tracing::Level::INFO) {
        return ProgressBar::hidden();
    }
    ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} examples {per_sec} eta {eta}")
            .expect("template")
            .progress_chars("=> "),
    )
}

/// Featurization options shared by `featurize` and `select`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeatureOptions {
    /// Seed of the projection.
    pub seed: u64,
    /// k; 0 = exact gradients.
    pub proj_dim: usize,
    /// How P is drawn.
    pub projection: ProjectionKind,
    /// Nonzeros per column of the sparse P.
    pub proj_nnz: usize,
    pub dtype: Dtype,
    pub max_len: usize,
    /// Examples per forward/backward pass.
    pub batch_size: usize,
    /// Examples per saved chunk (the unit of resumption).
    pub chunk_size: usize,
    /// Replace a store made with other arguments.
    pub overwrite: bool,
    /// Group examples by length into batches of at most this many padded tokens (instead of
    /// `batch_size` in input order); rows stay in input order in the store.
    pub max_batch_tokens: Option<usize>,
}

impl Default for FeatureOptions {
    /// The command line's defaults (its flags take them from here).
    fn default() -> Self {
        FeatureOptions {
            seed: 0,
            proj_dim: 8192,
            projection: ProjectionKind::Sparse,
            proj_nnz: 8,
            dtype: Dtype::F32,
            max_len: 512,
            batch_size: 8,
            chunk_size: 256,
            overwrite: false,
            max_batch_tokens: None,
        }
    }
}

impl FeatureOptions {
    /// How P is drawn, as the store key records it: nothing without a projection, the
    /// nonzeros per column (capped at k, as the projection caps them) for the sparse one.
    pub fn projection_key(&self) -> ProjectionKey {
        match self.projection {
            _ if self.proj_dim == 0 => ProjectionKey::default(),
            ProjectionKind::Dense => ProjectionKey { kind: ProjectionKind::Dense, nnz: 0 },
            ProjectionKind::Sparse => {
                ProjectionKey { kind: ProjectionKind::Sparse, nnz: self.proj_nnz.min(self.proj_dim) }
            }
        }
    }
}

/// What to featurize and how.
pub struct FeaturizeJob<'a> {
    pub model: &'a CausalLm,
    /// The model's weight files' digests.
    pub model_key: Vec<FileHash>,
    pub adapter: &'a LoraAdapter,
    /// From `adapter_key`.
    pub adapter_key: serde_json::Value,
    pub data: &'a Dataset,
    pub tokenizer: &'a TextTokenizer,
    pub loss: LossKind,
    /// DPO's reference policy (see [`Objective`]); None = the base model.
    pub reference: Option<&'a LoraAdapter>,
    /// Applied to each gradient before projection.
    pub transform: &'a Transform,
    pub opts: &'a FeatureOptions,
    /// Featurize only this shard's rows (whole chunks), into a store of its own.
    pub shard: Option<shard::Shard>,
}

/// Tokens of an example (both sides of a pair: they are one pass's rows).
fn token_count(t: &Tokenized) -> usize {
    match t {
        Tokenized::Single(s) => s.ids.len(),
        Tokenized::Pair(p) => p.chosen.ids.len() + p.rejected.ids.len(),
    }
}

/// Everything that determines the rows `job` computes (see [`StoreKey`]).
pub(crate) fn store_key(job: &FeaturizeJob<'_>) -> Result<StoreKey> {
    Ok(StoreKey {
        model: job.model_key.clone(),
        adapter: job.adapter_key.clone(),
        loss: job.loss,
        reference: match (job.loss, job.reference) {
            (LossKind::Dpo { .. }, Some(r)) => Some(adapter_key(r, 0)?),
            _ => None,
        },
        transform: job.transform.key(),
        seed: job.opts.seed,
        proj_dim: job.opts.proj_dim,
        projection: job.opts.projection_key(),
        dtype: job.opts.dtype,
        weights: job.model.matrices,
        max_len: job.opts.max_len,
        sources: hash_files(&job.data.files.iter().map(|p| p.as_path()).collect::<Vec<_>>())?,
        view: job.data.view,
        chunk_size: job.opts.chunk_size,
        shard: job.shard,
    })
}

/// Computes (or resumes, or reuses) the features of `job.data` into `store_dir`, and opens the
/// result; [`FeatureFile::load`] brings it into memory where a method needs every row.
pub fn featurize(job: &FeaturizeJob<'_>, compute: &Compute, store_dir: &Path) -> Result<FeatureFile> {
    if job.opts.batch_size == 0 {
        return Err(Error::setting(Setting::BatchSize, "the batch size must be positive"));
    }
    if job.opts.chunk_size == 0 {
        return Err(Error::setting(Setting::ChunkSize, "the chunk size must be positive"));
    }
    let rows = match job.shard {
        Some(s) => s.rows(job.data.len(), job.opts.chunk_size),
        None => 0..job.data.len(),
    };
    let examples = &job.data.examples[rows.clone()];
    let (tokenized, truncated) = job.tokenizer.examples(examples, job.opts.max_len)?;
    let n = tokenized.len();
    let grad_dim = job.adapter.num_params();
    let key = store_key(job)?;
    let store = Store::new(store_dir);
    let done = store.open_for(&key, job.opts.overwrite)?;
    if let Some(m) = store.manifest()? {
        if m.complete && m.key == key {
            tracing::info!("featurize: {} is complete, reusing it", store_dir.display());
            return store.open();
        }
    }
    let o = job.opts;
    let projector = Projector::new(compute.gpu.as_ref(), o.projection, o.seed, o.proj_dim, o.proj_nnz)?;
    let dim = projector.dim(grad_dim);
    let n_chunks = n.div_ceil(job.opts.chunk_size);
    let mut manifest = Manifest {
        format: "gradsift-features/1".into(),
        key: key.clone(),
        complete: false,
        num_examples: n,
        feature_dim: dim,
        grad_dim,
        chunks_done: done.min(n_chunks),
        truncated,
        rows: examples.iter().map(|e| e.line).collect(),
        tasks: examples.iter().map(|e| e.task.clone()).collect(),
        layout: if job.opts.proj_dim == 0 { job.adapter.layout() } else { Vec::new() },
        device: compute.label.clone(),
    };
    tracing::info!(
        "featurize {}: {n} examples ({truncated} truncated at {} tokens), loss {}, |θ| = {grad_dim}, features {dim}, on {}{}",
        job.data.name(),
        job.opts.max_len,
        job.loss.name(),
        compute.label,
        if done > 0 { format!(", resuming after {done} of {n_chunks} chunks") } else { String::new() }
    );
    store.write_manifest(&manifest)?;
    let bar = progress_bar(n as u64);
    bar.set_prefix("featurize");
    bar.set_position((manifest.chunks_done * job.opts.chunk_size).min(n) as u64);
    // Chunks an earlier run finished stay on disk; each new chunk is written as soon as it is
    // done, and the matrix is assembled from the chunks at the end, so memory holds one chunk.
    let pass = GradientPass {
        model: job.model,
        adapter: job.adapter,
        loss: job.loss,
        reference: job.reference,
        transform: job.transform,
        projector: &projector,
        opts: job.opts,
        compute,
    };
    for c in manifest.chunks_done..n_chunks {
        let (c0, c1) = (c * job.opts.chunk_size, ((c + 1) * job.opts.chunk_size).min(n));
        let (data, losses) = block_on(pass.rows(&tokenized[c0..c1], |done| {
            bar.inc(done as u64);
            std::future::ready(())
        }))?;
        store.write_chunk(c, &data, &losses, dim, job.opts.dtype)?;
        manifest.chunks_done = c + 1;
        store.write_manifest(&manifest)?;
    }
    bar.finish_and_clear();
    store.finish(&mut manifest)?;
    store.open()
}

/// How gradients become feature rows: the model and adapter they are taken at, the loss, the
/// candidate transform, the projection and the batching options.
pub(crate) struct GradientPass<'a> {
    pub model: &'a CausalLm,
    pub adapter: &'a LoraAdapter,
    pub loss: LossKind,
    /// DPO's reference policy; None = the base model.
    pub reference: Option<&'a LoraAdapter>,
    pub transform: &'a Transform,
    pub projector: &'a Projector,
    pub opts: &'a FeatureOptions,
    pub compute: &'a Compute,
}

impl GradientPass<'_> {
    /// Feature rows `[n, dim]` and losses of `examples` (one store chunk, or the browser
    /// page's slice of the pool), in input order whatever batch each example was in.
    /// `progress` hears the examples of each finished batch, and is awaited (the browser page
    /// yields there so it can repaint). Async so the page can await its GPU reads;
    /// [`featurize`] runs it through [`block_on`].
    pub async fn rows<F, Fut>(&self, examples: &[Tokenized], mut progress: F) -> Result<(Vec<f32>, Vec<f32>)>
    where
        F: FnMut(usize) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let n = examples.len();
        let grad_dim = self.adapter.num_params();
        let dim = self.projector.dim(grad_dim);
        let mut data = vec![0f32; n * dim];
        let mut losses = vec![0f32; n];
        let lens: Vec<usize> = examples.iter().map(token_count).collect();
        let plan = batches::batches(&lens, self.opts.batch_size, self.opts.max_batch_tokens);
        // Gradients wait here so the projection runs over many examples at once (P is
        // generated once per call and shared by every example), up to PENDING_BYTES.
        let (mut pending, mut pending_at): (Vec<f32>, Vec<usize>) = (Vec::new(), Vec::new());
        for (b, batch) in plan.iter().enumerate() {
            let group: Vec<Tokenized> = batch.iter().map(|&i| examples[i].clone()).collect();
            let objective = Objective { loss: self.loss, reference: self.reference };
            let g = per_example_grads_async(self.model, self.adapter, &group, objective, &self.compute.device).await?;
            let mut flat: Vec<f32> = g
                .grads
                .into_data_async()
                .await
                .map_err(|e| Error::Device(format!("reading gradients back: {e:?}")))?
                .iter::<f32>()
                .collect();
            self.transform.apply(&mut flat, grad_dim);
            pending.extend(flat);
            pending_at.extend(batch);
            for (&i, &l) in batch.iter().zip(&g.losses) {
                losses[i] = l as f32;
            }
            if b + 1 == plan.len() || pending.len() * 4 >= PENDING_BYTES {
                let rows = pending_at.len();
                let projected = self.projector.apply_async(std::mem::take(&mut pending), rows, grad_dim).await?;
                for (row, i) in projected.chunks_exact(dim).zip(pending_at.drain(..)) {
                    data[i * dim..(i + 1) * dim].copy_from_slice(row);
                }
            }
            progress(batch.len()).await;
        }
        Ok((data, losses))
    }
}
