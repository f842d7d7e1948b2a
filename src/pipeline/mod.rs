//! The jobs the CLI runs, as library functions: load a model, featurize a data set, warm up,
//! select with a method (one file per method family).

mod baselines;
mod less;
mod prism;
mod tif;
mod tsds;

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::data::{load_jsonl, Dataset, TextTokenizer};
use crate::device::Compute;
use crate::error::{Error, Result};
pub use crate::features::FeatureOptions;
use crate::features::{self, embeddings, FeatureFile, FeaturizeJob, LossKind, Pooling, Transform};
use crate::methods::prism::{Hessian, PairWeights};
use crate::methods::tsds::TsdsParams;
use crate::model::{Arch, CausalLm, LoraAdapter};
use crate::select::{self, Budget};
use crate::train::{self, WarmupOptions};

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

/// Default LoRA targets when none are given: the attention projections.
pub fn default_targets(arch: Arch) -> Vec<String> {
    match arch {
        Arch::Gpt2 => vec!["c_attn".into(), "c_proj".into()],
        _ => ["q_proj", "k_proj", "v_proj", "o_proj"].map(String::from).to_vec(),
    }
}

/// Loads model, tokenizer and adapter onto `compute`.
pub fn load(spec: &ModelSpec, compute: &Compute) -> Result<Loaded> {
    let model = CausalLm::load(&spec.model_dir, &compute.device)?;
    let tok_path = spec.model_dir.join("tokenizer.json");
    if !tok_path.exists() {
        return Err(Error::format(&tok_path, "missing tokenizer.json"));
    }
    let tokenizer = TextTokenizer::from_file(&tok_path, model.config.eos_token_id)?;
    let adapter = match &spec.adapter_dir {
        Some(dir) => LoraAdapter::load(dir, &model.linears)?,
        None => {
            let targets = if spec.lora_targets.is_empty() {
                default_targets(model.config.arch)
            } else {
                spec.lora_targets.clone()
            };
            LoraAdapter::fresh(&model.linears, spec.lora_r, spec.lora_alpha, &targets, spec.seed)?
        }
    };
    let adapter_key = features::adapter_key(&adapter, spec.seed)?;
    Ok(Loaded { model, adapter, tokenizer, adapter_key })
}

/// Featurizes one data set with `adapter` into `out`.
#[allow(clippy::too_many_arguments)]
fn featurize_with(
    loaded: &Loaded,
    adapter: &LoraAdapter,
    adapter_key: &serde_json::Value,
    dataset: &Dataset,
    loss: LossKind,
    transform: &Transform,
    opts: &FeatureOptions,
    compute: &Compute,
    out: &Path,
) -> Result<FeatureFile> {
    let job = FeaturizeJob {
        model: &loaded.model,
        adapter,
        adapter_key: adapter_key.clone(),
        data: dataset,
        tokenizer: &loaded.tokenizer,
        loss,
        transform,
        opts,
    };
    features::featurize(&job, compute, out)
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
    let pairs = matches!(loss, LossKind::Dpo { .. });
    if dataset.is_preference() != pairs {
        return Err(Error::Record {
            path: data.to_path_buf(),
            line: dataset.examples[0].line,
            message: format!("the {} loss needs {} records", loss.name(), record_kind(pairs)),
        });
    }
    featurize_with(loaded, &loaded.adapter, &loaded.adapter_key, &dataset, loss, &Transform::Sgd, opts, compute, out)
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

/// How a record kind is named in error messages.
fn record_kind(pairs: bool) -> &'static str {
    if pairs {
        "preference ({\"prompt\",\"chosen\",\"rejected\"})"
    } else {
        "instruction ({\"prompt\",\"completion\"})"
    }
}

/// Selection methods available through `select`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// LESS: gradient cosine to SFT-loss target gradients, mean over shots, max over subtasks.
    Less,
    /// ROSE: LESS with DPO-loss gradients of a preference target set.
    Rose,
    /// PRISM: preference-aware influence toward the targets' chosen and away from their rejected.
    Prism,
    /// TSDS: optimal-transport sampling toward the target distribution, near-duplicates discounted.
    Tsds,
    /// Baseline: a seeded uniformly random subset.
    Random,
    /// Baseline: highest token-mean loss (perplexity) first, or lowest with --low-loss.
    Loss,
    /// Baseline: RDS, last-token hidden-state cosine, mean over shots, max over subtasks.
    Rds,
    /// Baseline: RDS+, position-weighted mean pooling, round-robin over target examples.
    RdsPlus,
    /// Baseline: DSIR, hashed n-gram importance weights, Gumbel top-k.
    Dsir,
    /// TIF: preference pairs whose DPO influence on the validation set is in the middle band.
    Tif,
    /// LossDiff: middle band of ℓ_DPO(θ) − ℓ_DPO(θ_val), θ_val trained on the validation set.
    Lossdiff,
    /// IRM: middle band of the implicit reward margin (no validation set needed).
    Irm,
    /// Fusion: the intersection of the LossDiff and IRM bands.
    Fusion,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GradType {
    /// Adam-preconditioned with the checkpoint's moments (LESS's default).
    Adam,
    /// The plain gradient.
    Sgd,
    /// Its sign.
    Sign,
}

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
    let k = spec.budget.count(pool.len())?;
    let name = method_name(spec.method);
    let preference_pool = matches!(spec.method, Method::Tif | Method::Lossdiff | Method::Irm | Method::Fusion);
    if pool.is_preference() != preference_pool {
        return Err(Error::Invalid(format!(
            "{}: --method {name} scores {} candidates",
            spec.pool.display(),
            record_kind(preference_pool)
        )));
    }
    let needs_target = !matches!(spec.method, Method::Random | Method::Loss | Method::Irm);
    let wants_pairs = matches!(spec.method, Method::Rose | Method::Prism) || preference_pool;
    if let Some(t) = &target {
        if t.is_preference() != wants_pairs && needs_target {
            return Err(Error::Invalid(format!(
                "{}: --method {name} needs {} targets",
                t.path.display(),
                record_kind(wants_pairs)
            )));
        }
    } else if needs_target {
        return Err(Error::Invalid(format!("--method {name} needs --target")));
    }
    let (scores, columns, chosen, details) = match (spec.method, &target) {
        (Method::Tif | Method::Lossdiff | Method::Irm | Method::Fusion, t) => {
            tif::tif_family(loaded, spec, &pool, t.as_ref(), compute)?
        }
        (Method::Random | Method::Loss, _) => baselines::baseline(loaded, spec, &pool, None, compute, k)?,
        (_, Some(t)) => match spec.method {
            Method::Less | Method::Rose => less::less_like(loaded, spec, &pool, t, compute, k)?,
            Method::Prism => prism::prism_scores(loaded, spec, &pool, t, compute, k)?,
            Method::Tsds => tsds::tsds_select(loaded, spec, &pool, t, compute, k)?,
            _ => baselines::baseline(loaded, spec, &pool, Some(t), compute, k)?,
        },
        (_, None) => unreachable!("checked above"),
    };
    let kept = match &chosen {
        Chosen::Top(n) => *n,
        Chosen::List(l) => l.len(),
    };
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

/// The adapter of a method that works at one checkpoint: the one given with `--checkpoints`, or
/// the loaded adapter. Returns it, its store key and the checkpoint's path.
fn reference_checkpoint(
    loaded: &Loaded,
    spec: &SelectSpec<'_>,
    only_one: &str,
) -> Result<(LoraAdapter, serde_json::Value, Option<String>)> {
    match spec.checkpoints {
        [] => Ok((loaded.adapter.clone(), loaded.adapter_key.clone(), None)),
        [dir] => {
            let a = LoraAdapter::load(dir, &loaded.model.linears)?;
            let key = features::adapter_key(&a, 0)?;
            Ok((a, key, Some(dir.display().to_string())))
        }
        _ => Err(Error::Invalid(format!("{only_one} (--checkpoints DIR)"))),
    }
}

pub fn method_name(m: Method) -> &'static str {
    match m {
        Method::Less => "less",
        Method::Rose => "rose",
        Method::Prism => "prism",
        Method::Tsds => "tsds",
        Method::Random => "random",
        Method::Loss => "loss",
        Method::Rds => "rds",
        Method::RdsPlus => "rds-plus",
        Method::Dsir => "dsir",
        Method::Tif => "tif",
        Method::Lossdiff => "lossdiff",
        Method::Irm => "irm",
        Method::Fusion => "fusion",
    }
}

/// Which candidates a method keeps.
enum Chosen {
    /// The top n by score.
    Top(usize),
    /// An explicit list (round-robin order, or samples with repeats).
    List(Vec<usize>),
}

type Scored = (Vec<f64>, Vec<(String, Vec<f64>)>, Chosen, serde_json::Value);

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
