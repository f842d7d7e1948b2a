//! The jobs the CLI runs, as library functions: load a model with its adapter, featurize a
//! data set, select with a method.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::data::{load_jsonl, TextTokenizer};
use crate::device::Compute;
use crate::error::{Error, Result};
pub use crate::features::FeatureOptions;
use crate::features::{self, Features, FeaturizeJob, LossKind};
use crate::methods::less;
use crate::model::{Arch, CausalLm, LoraAdapter};
use crate::select::{self, Budget};

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

/// Featurizes one JSONL file into `out`.
pub fn featurize(
    loaded: &Loaded,
    data: &Path,
    loss: LossKind,
    opts: &FeatureOptions,
    compute: &Compute,
    out: &Path,
) -> Result<Features> {
    let dataset = load_jsonl(data)?;
    let job = FeaturizeJob {
        model: &loaded.model,
        adapter: &loaded.adapter,
        adapter_key: loaded.adapter_key.clone(),
        data: &dataset,
        tokenizer: &loaded.tokenizer,
        loss,
        opts,
    };
    features::featurize(&job, compute, out)
}

/// Selection methods available through `select`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// LESS: gradient cosine, mean over shots, max over subtasks.
    Less,
}

/// What `select` produced.
pub struct Selection {
    pub selected: Vec<usize>,
    pub pool_size: usize,
    pub out: PathBuf,
}

/// Scores the pool against the target with `method` and writes the selection into `out`.
pub fn select(
    loaded: &Loaded,
    method: Method,
    pool_path: &Path,
    target_path: &Path,
    budget: Budget,
    opts: &FeatureOptions,
    compute: &Compute,
    out: &Path,
) -> Result<Selection> {
    let pool = load_jsonl(pool_path)?;
    let target = load_jsonl(target_path)?;
    let k = budget.count(pool.len())?;
    let (pool_loss, target_loss) = match method {
        Method::Less => (LossKind::Sft, LossKind::Sft),
    };
    if pool.is_preference() || target.is_preference() {
        return Err(Error::Invalid(
            "LESS scores instruction data: pool and target need {\"prompt\",\"completion\"} records".into(),
        ));
    }
    let pool_f = featurize(loaded, pool_path, pool_loss, opts, compute, &out.join("features/pool"))?;
    let target_f = featurize(loaded, target_path, target_loss, opts, compute, &out.join("features/target"))?;
    let scores = less::less_scores(&pool_f, &target_f);
    let columns: Vec<(String, Vec<f64>)> =
        scores.per_task.iter().map(|(name, s)| (format!("task:{name}"), s.clone())).collect();
    let manifest = json!({
        "method": "less",
        "pool": { "path": pool_path.display().to_string(), "examples": pool.len() },
        "target": { "path": target_path.display().to_string(), "examples": target.len(),
                    "subtasks": scores.per_task.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>() },
        "selected": k,
        "budget": match budget { Budget::Fraction(f) => json!({"fraction": f}), Budget::Count(c) => json!({"count": c}) },
        "model": loaded.model.dir.display().to_string(),
        "adapter": loaded.adapter_key,
        "loss": { "pool": pool_loss.name(), "target": target_loss.name() },
        "features": { "seed": opts.seed, "proj_dim": opts.proj_dim, "dtype": opts.dtype, "max_len": opts.max_len,
                      "pool_store": "features/pool", "target_store": "features/target" },
        "scoring": "cosine; mean over target examples of a subtask; max over subtasks; global top-k",
        "device": compute.label,
        "gradsift": env!("CARGO_PKG_VERSION"),
    });
    let selected = select::write_selection(out, &pool, &scores.score, &columns, k, manifest)?;
    Ok(Selection { selected, pool_size: pool.len(), out: out.to_path_buf() })
}
