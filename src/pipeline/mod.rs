//! The jobs the CLI runs, as library functions: load a model, featurize a data set, warm up,
//! select with a method (one file per method family).

mod baselines;
mod featurizer;
mod less;
mod method;
mod prism;
mod scored;
mod tif;
mod tsds;

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::choice::{choice, Choice};
use crate::data::{load_jsonl, Dataset, TextTokenizer};
use crate::device::Compute;
use crate::error::{Error, Result};
pub use crate::features::FeatureOptions;
use crate::features::{self, embeddings, FeatureFile, Pooling, Transform};
use crate::loss::LossKind;
use crate::methods::prism::{Hessian, PairWeights};
use crate::methods::tsds::TsdsParams;
use crate::model::{CausalLm, LoraAdapter};
use crate::select::{self, Budget};
use crate::train::{self, WarmupOptions};

pub use method::{CheckpointUse, Method, TargetUse};

use featurizer::{Checkpoint, Featurizer};
use scored::{Chosen, Scored};
use tif::Member;

/// Which model, and which LoRA weights get gradients.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub model_dir: PathBuf,
    /// A PEFT adapter directory; None = a fresh adapter from the fields below.
    pub adapter_dir: Option<PathBuf>,
    pub lora_r: usize,
    pub lora_alpha: f64,
    /// Module-name suffixes; empty = the architecture's attention projections.
    pub lora_targets: Vec<String>,
    pub seed: u64,
}

/// A model ready for featurization.
pub struct Loaded {
    pub model: CausalLm,
    pub adapter: LoraAdapter,
    pub tokenizer: TextTokenizer,
    pub adapter_key: serde_json::Value,
}

/// Loads a model directory's weights and tokenizer onto `compute`, without an adapter.
pub fn load_base(model_dir: &Path, compute: &Compute) -> Result<(CausalLm, TextTokenizer)> {
    let model = CausalLm::load(model_dir, &compute.device)?;
    let tok_path = model_dir.join("tokenizer.json");
    if !tok_path.exists() {
        return Err(Error::format(&tok_path, "missing tokenizer.json"));
    }
    let tokenizer = TextTokenizer::from_file(&tok_path, model.config.eos_token_id)?;
    Ok((model, tokenizer))
}

/// Loads model, tokenizer and adapter onto `compute`.
pub fn load(spec: &ModelSpec, compute: &Compute) -> Result<Loaded> {
    let (model, tokenizer) = load_base(&spec.model_dir, compute)?;
    let adapter = match &spec.adapter_dir {
        Some(dir) => LoraAdapter::load(dir, &model.linears)?,
        None => {
            let targets = if spec.lora_targets.is_empty() {
                model.config.arch.default_lora_targets()
            } else {
                spec.lora_targets.clone()
            };
            LoraAdapter::fresh(&model.linears, spec.lora_r, spec.lora_alpha, &targets, spec.seed)?
        }
    };
    let adapter_key = features::adapter_key(&adapter, spec.seed)?;
    Ok(Loaded { model, adapter, tokenizer, adapter_key })
}

/// Featurizes one JSONL file into `out` with the loaded adapter (plain gradients).
pub fn featurize(
    loaded: &Loaded,
    data: &Path,
    loss: LossKind,
    opts: &FeatureOptions,
    compute: &Compute,
    out: &Path,
) -> Result<FeatureFile> {
    let dataset = load_jsonl(data)?;
    let wanted = loss.records();
    if dataset.kind() != wanted {
        return Err(Error::Record {
            path: data.to_path_buf(),
            line: dataset.examples[0].line,
            message: format!("the {} loss needs {} records", loss.name(), wanted.describe()),
        });
    }
    let checkpoint = Checkpoint::loaded(loaded);
    Featurizer { loaded, checkpoint: &checkpoint, opts, compute }.run(&dataset, loss, &Transform::Identity, out)
}

/// Runs warmup training of the loaded adapter on `pool`; returns the checkpoint directories.
pub fn warmup(
    loaded: &Loaded,
    pool: &Path,
    opts: &WarmupOptions,
    compute: &Compute,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let dataset = load_jsonl(pool)?;
    train::warmup(&loaded.model, loaded.adapter.clone(), &loaded.tokenizer, &dataset, opts, compute, out)
}

/// Options of the TIF family (bands are percentiles).
#[derive(Debug, Clone, Copy)]
pub struct TifOptions {
    /// TIF's band of IF.
    pub band: (f64, f64),
    pub lossdiff_band: (f64, f64),
    pub irm_band: (f64, f64),
    /// Learning rate of θ_val's one epoch on the validation set.
    pub val_lr: f64,
}

impl Default for TifOptions {
    fn default() -> Self {
        TifOptions { band: (20.0, 80.0), lossdiff_band: (20.0, 80.0), irm_band: (20.0, 80.0), val_lr: 1e-4 }
    }
}

/// TSDS's options.
#[derive(Debug, Clone, Default)]
pub struct TsdsOptions {
    pub params: TsdsParams,
    /// Hidden-state embeddings instead of gradient features.
    pub embed: Option<Pooling>,
    /// Precomputed `[N, d]` and `[M, d]` .npy embeddings (the reference tool's inputs).
    pub npy: Option<(PathBuf, PathBuf)>,
    /// Keep the top by probability instead of sampling with replacement.
    pub no_replacement: bool,
}

/// PRISM's options.
#[derive(Debug, Clone, Copy)]
pub struct PrismOptions {
    pub hessian: Hessian,
    pub weights: PairWeights,
    /// Use only the targets' chosen responses.
    pub unpaired: bool,
    /// Remove the budget's count of lowest-scoring candidates instead of keeping the top.
    pub repair: bool,
}

impl Default for PrismOptions {
    fn default() -> Self {
        PrismOptions { hessian: Hessian::Identity, weights: PairWeights::Pi, unpaired: false, repair: false }
    }
}

/// How candidate gradients are transformed when checkpoints with optimizer moments are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradType {
    Adam,
    Sgd,
    Sign,
}

choice!(GradType {
    Adam => "adam": "Adam-preconditioned with the checkpoint's moments (LESS's default)",
    Sgd => "sgd": "the plain gradient",
    Sign => "sign": "its sign",
});

/// What `select` needs beyond the loaded model.
pub struct SelectSpec<'a> {
    pub method: Method,
    pub pool: &'a Path,
    /// Target or validation examples (not needed by random, loss and IRM).
    pub target: Option<&'a Path>,
    pub budget: Budget,
    /// Warmup checkpoints; empty = the loaded adapter alone, plain gradients.
    pub checkpoints: &'a [PathBuf],
    pub grad_type: GradType,
    /// DPO temperature (ROSE's target loss).
    pub beta: f64,
    pub prism: PrismOptions,
    pub tsds: TsdsOptions,
    pub tif: TifOptions,
    /// Loss baseline: prefer the lowest loss.
    pub low_loss: bool,
    pub opts: &'a FeatureOptions,
    pub out: &'a Path,
}

/// What `select` produced.
pub struct Selection {
    pub selected: Vec<usize>,
    pub pool_size: usize,
    pub out: PathBuf,
}

/// Scores the pool against the target with `spec.method` and writes the selection.
pub fn select(loaded: &Loaded, spec: &SelectSpec<'_>, compute: &Compute) -> Result<Selection> {
    let pool = load_jsonl(spec.pool)?;
    let target = spec.target.map(load_jsonl).transpose()?;
    let budget = spec.budget.count(pool.len())?;
    let method = spec.method;
    let name = method.name();
    if pool.kind() != method.pool_kind() {
        return Err(Error::Invalid(format!(
            "{}: the {name} method scores {} candidates",
            spec.pool.display(),
            method.pool_kind().describe()
        )));
    }
    let target = match (method.target_use(), target) {
        (TargetUse::None, _) => None,
        (TargetUse::Required(_), None) => return Err(Error::MissingTarget { method: name }),
        (use_, Some(t)) => {
            let kind = use_.kind().expect("the method takes targets");
            if t.kind() != kind {
                return Err(Error::Invalid(format!(
                    "{}: the {name} method needs {} targets",
                    t.path.display(),
                    kind.describe()
                )));
            }
            Some(t)
        }
        (TargetUse::Optional(_), None) => None,
    };
    match (method.checkpoint_use(), spec.checkpoints.len()) {
        (CheckpointUse::Unused, 1..) => return Err(Error::CheckpointsUnused { method: name }),
        (CheckpointUse::One, 2..) => return Err(Error::OneCheckpoint { method: name }),
        _ => {}
    }
    let need = || target.as_ref().ok_or(Error::MissingTarget { method: name });
    let Scored { scores, columns, chosen, details } = match method {
        Method::Tif => tif::tif_family(Member::Tif, loaded, spec, &pool, target.as_ref(), compute)?,
        Method::Lossdiff => tif::tif_family(Member::Lossdiff, loaded, spec, &pool, target.as_ref(), compute)?,
        Method::Irm => tif::tif_family(Member::Irm, loaded, spec, &pool, target.as_ref(), compute)?,
        Method::Fusion => tif::tif_family(Member::Fusion, loaded, spec, &pool, target.as_ref(), compute)?,
        Method::Random => baselines::random(spec, &pool, budget),
        Method::Loss => baselines::loss(loaded, spec, &pool, compute, budget)?,
        Method::Less | Method::Rose => less::less_like(loaded, spec, &pool, need()?, compute, budget)?,
        Method::Prism => prism::prism_scores(loaded, spec, &pool, need()?, compute, budget)?,
        Method::Tsds => tsds::tsds_select(loaded, spec, &pool, need()?, compute, budget)?,
        Method::Rds => baselines::rds(loaded, spec, &pool, need()?, compute, budget, Pooling::LastToken)?,
        Method::RdsPlus => baselines::rds(loaded, spec, &pool, need()?, compute, budget, Pooling::Mean)?,
        Method::Dsir => baselines::dsir(spec, &pool, need()?, budget),
    };
    let kept = chosen.len();
    let manifest = json!({
        "method": name,
        "pool": { "path": spec.pool.display().to_string(), "examples": pool.len() },
        "target": target.as_ref().map(|t| json!({ "path": t.path.display().to_string(), "examples": t.len() })),
        "selected": kept,
        "budget": match spec.budget { Budget::Fraction(f) => json!({"fraction": f}), Budget::Count(c) => json!({"count": c}) },
        "model": loaded.model.dir.display().to_string(),
        "features": { "seed": spec.opts.seed, "proj_dim": spec.opts.proj_dim, "dtype": spec.opts.dtype, "max_len": spec.opts.max_len },
        "details": details,
        "device": compute.label,
        "gradsift": env!("CARGO_PKG_VERSION"),
    });
    let selected = match chosen {
        Chosen::Top(n) => select::write_selection(spec.out, &pool, &scores, &columns, n, manifest)?,
        Chosen::List(list) => {
            select::write_outputs(spec.out, &pool, &scores, &columns, &list, manifest)?;
            list
        }
    };
    Ok(Selection { selected, pool_size: pool.len(), out: spec.out.to_path_buf() })
}

/// The checkpoint of a method that works at one: the single warmup checkpoint given, or the
/// loaded adapter.
fn reference_checkpoint(loaded: &Loaded, spec: &SelectSpec<'_>) -> Result<Checkpoint> {
    match spec.checkpoints {
        [] => Ok(Checkpoint::loaded(loaded)),
        [dir] => Checkpoint::load(loaded, dir),
        _ => Err(Error::OneCheckpoint { method: spec.method.name() }),
    }
}

/// Hidden-state embeddings of a data set with the loaded adapter.
fn embed(
    loaded: &Loaded,
    data: &Dataset,
    pooling: Pooling,
    opts: &FeatureOptions,
    compute: &Compute,
) -> Result<Vec<f32>> {
    let (tok, _) = loaded.tokenizer.examples(&data.examples, opts.max_len)?;
    embeddings(&loaded.model, Some(&loaded.adapter), &tok, pooling, opts.batch_size, &compute.device)
}
