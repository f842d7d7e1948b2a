//! Featurizing inside `select`: one adapter (the loaded one or a warmup checkpoint's) turns
//! data sets into feature stores under the selection's output directory.

use std::path::{Path, PathBuf};

use super::Loaded;
use crate::data::Dataset;
use crate::device::Compute;
use crate::error::Result;
use crate::features::shard::Shard;
use crate::features::{self, FeatureFile, FeatureOptions, FeaturizeJob, Transform};
use crate::loss::LossKind;
use crate::model::LoraAdapter;

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
}

/// Featurizes data sets at one checkpoint with the selection's feature options.
pub(super) struct Featurizer<'a> {
    pub loaded: &'a Loaded,
    pub checkpoint: &'a Checkpoint,
    pub opts: &'a FeatureOptions,
    pub compute: &'a Compute,
    /// Featurize one shard of the data (`featurize --shard`); None everywhere else.
    pub shard: Option<Shard>,
}

impl Featurizer<'_> {
    /// The features of `data` under `loss`, each gradient transformed by `transform`, in the
    /// store at `out` (computed, resumed or reused).
    pub fn run(&self, data: &Dataset, loss: LossKind, transform: &Transform, out: &Path) -> Result<FeatureFile> {
        let job = FeaturizeJob {
            model: &self.loaded.model,
            adapter: &self.checkpoint.adapter,
            adapter_key: self.checkpoint.key.clone(),
            data,
            tokenizer: &self.loaded.tokenizer,
            loss,
            transform,
            opts: self.opts,
            shard: self.shard,
        };
        features::featurize(&job, self.compute, out)
    }
}
