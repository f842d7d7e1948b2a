//! Featurizing inside `select`: one adapter (the loaded one or a warmup checkpoint's) turns
//! data sets into feature stores under the selection's output directory.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use super::GradType;
use super::Loaded;
use crate::data::Dataset;
use crate::device::Compute;
use crate::error::{Error, Result, Setting};
use crate::features::shard::Shard;
use crate::features::{self, FeatureFile, FeatureOptions, FeaturizeJob, FileHash, Transform};
use crate::loss::LossKind;
use crate::model::{CausalLm, LoraAdapter};
use crate::train::AdamW;

/// The adapter gradients are taken at, with the key that identifies it in feature stores.
pub(super) struct Checkpoint {
    pub adapter: LoraAdapter,
    pub key: serde_json::Value,
    /// The warmup checkpoint directory; None for the loaded adapter.
    pub dir: Option<PathBuf>,
}

impl Checkpoint {
    /// The loaded adapter.
    pub fn loaded(loaded: &Loaded) -> Self {
        Checkpoint { adapter: loaded.adapter.clone(), key: loaded.adapter_key.clone(), dir: None }
    }

    /// The adapter saved in a warmup checkpoint directory.
    pub fn load(loaded: &Loaded, dir: &Path) -> Result<Self> {
        let adapter = LoraAdapter::load(dir, &loaded.model.linears)?;
        let key = features::adapter_key(&adapter, 0)?;
        Ok(Checkpoint { adapter, key, dir: Some(dir.to_path_buf()) })
    }

    /// The directory as the manifest records it.
    pub fn label(&self) -> Option<String> {
        self.dir.as_ref().map(|d| d.display().to_string())
    }

    /// The candidate transform of `grad_type` at this checkpoint: Adam reads the moments the
    /// warmup saved beside it.
    pub fn transform(&self, grad_type: GradType) -> Result<Transform> {
        candidate_transform(&self.adapter, self.dir.as_deref(), grad_type)
    }
}

/// The candidate transform of `grad_type` for `adapter`, saved in `dir` (Adam needs a warmup
/// checkpoint's `optimizer.safetensors`).
pub(crate) fn candidate_transform(adapter: &LoraAdapter, dir: Option<&Path>, grad_type: GradType) -> Result<Transform> {
    Ok(match grad_type {
        GradType::Sgd => Transform::Identity,
        GradType::Sign => Transform::Sign,
        GradType::Adam => {
            let dir = dir.ok_or_else(|| {
                Error::setting(
                    Setting::GradType,
                    "the adam gradient type needs a warmup checkpoint (its optimizer moments)",
                )
            })?;
            let p = dir.join("optimizer.safetensors");
            Transform::adam(&AdamW::load(&p, &adapter.layout())?, crate::util::sha256_file(&p)?)
        }
    })
}

/// Featurizes data sets at one checkpoint with the selection's feature options.
pub(super) struct Featurizer<'a> {
    pub loaded: &'a Loaded,
    pub checkpoint: &'a Checkpoint,
    /// DPO's reference policy; None = the base model.
    pub reference: Option<&'a LoraAdapter>,
    pub opts: &'a FeatureOptions,
    pub compute: &'a Compute,
    /// Featurize one shard of the data (`featurize --shard`); None everywhere else.
    pub shard: Option<Shard>,
    /// Stores of the pool made elsewhere (`select --pool-features`), taken where they match.
    pub pool_stores: &'a PoolStores<'a>,
}

/// The stores of `select --pool-features`, and whether a pool featurization looked at them
/// (a method that featurizes no pool has no use for them, which the user is told).
pub(crate) struct PoolStores<'a> {
    pub given: &'a [PathBuf],
    pub consulted: Cell<bool>,
}

impl<'a> PoolStores<'a> {
    pub fn new(given: &'a [PathBuf]) -> Self {
        PoolStores { given, consulted: Cell::new(false) }
    }
}

impl Featurizer<'_> {
    /// The features of `data` under `loss`, each gradient transformed by `transform`, in the
    /// store at `out` (computed, resumed or reused).
    pub fn run(&self, data: &Dataset, loss: LossKind, transform: &Transform, out: &Path) -> Result<FeatureFile> {
        features::featurize(&self.job(data, loss, transform)?, self.compute, out)
    }

    /// [`Self::run`] for the candidate pool: where `pool_stores` were given, the ones made with
    /// this run's arguments are taken (shards merged) instead of computing them.
    pub fn run_pool(&self, pool: &Dataset, loss: LossKind, transform: &Transform, out: &Path) -> Result<FeatureFile> {
        let job = self.job(pool, loss, transform)?;
        if !self.pool_stores.given.is_empty() {
            self.pool_stores.consulted.set(true);
            features::adopt::adopt(self.pool_stores.given, &features::store_key(&job)?, out)?;
        }
        features::featurize(&job, self.compute, out)
    }

    fn job<'b>(&'b self, data: &'b Dataset, loss: LossKind, transform: &'b Transform) -> Result<FeaturizeJob<'b>> {
        Ok(FeaturizeJob {
            model: &self.loaded.model,
            model_key: model_key(&self.loaded.model)?,
            adapter: &self.checkpoint.adapter,
            adapter_key: self.checkpoint.key.clone(),
            data,
            tokenizer: &self.loaded.tokenizer,
            loss,
            reference: self.reference,
            transform,
            opts: self.opts,
            shard: self.shard,
        })
    }
}

/// The model's part of a store key: its weight files' digests; a model loaded by
/// [`super::load_embedded`] has no files on disk: its digests are those of the bytes in the
/// binary.
fn model_key(model: &CausalLm) -> Result<Vec<FileHash>> {
    model
        .files
        .iter()
        .map(|path| {
            let sha256 = match crate::assets::embedded_bytes(path) {
                Some(bytes) => crate::util::sha256_bytes(bytes),
                None => crate::util::sha256_file(path)?,
            };
            Ok(FileHash { path: path.display().to_string(), sha256 })
        })
        .collect()
}
