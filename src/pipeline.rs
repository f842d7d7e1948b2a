//! The jobs the CLI runs, as library functions: load a model, featurize a data set, warm up,
//! select with a method.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::data::{load_jsonl, Dataset, TextTokenizer};
use crate::device::Compute;
use crate::error::{Error, Result};
pub use crate::features::FeatureOptions;
use crate::features::{self, Features, FeaturizeJob, LossKind, Transform};
use crate::methods::less;
use crate::methods::prism::{self, Hessian, PairWeights};
use crate::model::{Arch, CausalLm, LoraAdapter};
use crate::select::{self, Budget};
use crate::train::{self, AdamW, WarmupOptions};

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
) -> Result<Features> {
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
) -> Result<Features> {
    let dataset = load_jsonl(data)?;
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

/// Selection methods available through `select`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// LESS: gradient cosine to SFT-loss target gradients, mean over shots, max over subtasks.
    Less,
    /// ROSE: LESS with DPO-loss gradients of a preference target set.
    Rose,
    /// PRISM: preference-aware influence toward the targets' chosen and away from their rejected.
    Prism,
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
    pub target: &'a Path,
    pub budget: Budget,
    /// Warmup checkpoints; empty = the loaded adapter alone, plain gradients.
    pub checkpoints: &'a [PathBuf],
    pub grad_type: GradType,
    /// DPO temperature (ROSE's target loss).
    pub beta: f64,
    pub prism: PrismOptions,
    pub opts: &'a FeatureOptions,
    pub out: &'a Path,
}

/// What `select` produced.
pub struct Selection {
    pub selected: Vec<usize>,
    pub pool_size: usize,
    pub out: PathBuf,
}

/// One gradient source: an adapter, its LESS weight and the candidate transform.
struct Stage {
    label: String,
    adapter: LoraAdapter,
    adapter_key: serde_json::Value,
    transform: Transform,
    mean_lr: f64,
}

fn stages(loaded: &Loaded, spec: &SelectSpec<'_>) -> Result<Vec<Stage>> {
    if spec.checkpoints.is_empty() {
        return Ok(vec![Stage {
            label: "model".into(),
            adapter: loaded.adapter.clone(),
            adapter_key: loaded.adapter_key.clone(),
            transform: Transform::Sgd,
            mean_lr: 1.0,
        }]);
    }
    spec.checkpoints
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let adapter = LoraAdapter::load(dir, &loaded.model.linears)?;
            let state = train::read_state(dir)?;
            let transform = match spec.grad_type {
                GradType::Sgd => Transform::Sgd,
                GradType::Sign => Transform::Sign,
                GradType::Adam => {
                    let p = dir.join("optimizer.safetensors");
                    Transform::adam(&AdamW::load(&p, &adapter.layout())?, crate::util::sha256_file(&p)?)
                }
            };
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Ok(Stage {
                label: format!("{i}-{name}"),
                adapter_key: features::adapter_key(&adapter, 0)?,
                adapter,
                transform,
                mean_lr: state.mean_lr,
            })
        })
        .collect()
}

/// Scores the pool against the target with `spec.method` and writes the selection.
pub fn select(loaded: &Loaded, spec: &SelectSpec<'_>, compute: &Compute) -> Result<Selection> {
    let pool = load_jsonl(spec.pool)?;
    let target = load_jsonl(spec.target)?;
    let k = spec.budget.count(pool.len())?;
    if pool.is_preference() {
        return Err(Error::Invalid(format!(
            "{}: LESS, ROSE and PRISM score instruction candidates ({{\"prompt\",\"completion\"}})",
            spec.pool.display()
        )));
    }
    let wants_pairs = spec.method != Method::Less;
    if target.is_preference() != wants_pairs {
        return Err(Error::Invalid(format!(
            "{}: --method {} needs {} targets",
            spec.target.display(),
            method_name(spec.method),
            if wants_pairs {
                "preference ({\"prompt\",\"chosen\",\"rejected\"})"
            } else {
                "instruction ({\"prompt\",\"completion\"})"
            }
        )));
    }
    let (scores, columns, kept, details) = match spec.method {
        Method::Less | Method::Rose => less_like(loaded, spec, &pool, &target, compute, k)?,
        Method::Prism => prism_scores(loaded, spec, &pool, &target, compute, k)?,
    };
    let manifest = json!({
        "method": method_name(spec.method),
        "pool": { "path": spec.pool.display().to_string(), "examples": pool.len() },
        "target": { "path": spec.target.display().to_string(), "examples": target.len() },
        "selected": kept,
        "budget": match spec.budget { Budget::Fraction(f) => json!({"fraction": f}), Budget::Count(c) => json!({"count": c}) },
        "model": loaded.model.dir.display().to_string(),
        "features": { "seed": spec.opts.seed, "proj_dim": spec.opts.proj_dim, "dtype": spec.opts.dtype, "max_len": spec.opts.max_len },
        "details": details,
        "device": compute.label,
        "gradsift": env!("CARGO_PKG_VERSION"),
    });
    let selected = select::write_selection(spec.out, &pool, &scores, &columns, kept, manifest)?;
    Ok(Selection { selected, pool_size: pool.len(), out: spec.out.to_path_buf() })
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Less => "less",
        Method::Rose => "rose",
        Method::Prism => "prism",
    }
}

type Scored = (Vec<f64>, Vec<(String, Vec<f64>)>, usize, serde_json::Value);

/// LESS and ROSE: per-checkpoint cosines, weighted, max over subtasks, top k.
fn less_like(
    loaded: &Loaded,
    spec: &SelectSpec<'_>,
    pool: &Dataset,
    target: &Dataset,
    compute: &Compute,
    k: usize,
) -> Result<Scored> {
    let target_loss = if spec.method == Method::Rose { LossKind::Dpo { beta: spec.beta } } else { LossKind::Sft };
    let stages = stages(loaded, spec)?;
    let weights = less::checkpoint_weights(&stages.iter().map(|s| s.mean_lr).collect::<Vec<_>>());
    let mut per_checkpoint = Vec::with_capacity(stages.len());
    for st in &stages {
        let dir = spec.out.join("features").join(&st.label);
        let pf = featurize_with(
            loaded,
            &st.adapter,
            &st.adapter_key,
            pool,
            LossKind::Sft,
            &st.transform,
            spec.opts,
            compute,
            &dir.join("pool"),
        )?;
        let tf = featurize_with(
            loaded,
            &st.adapter,
            &st.adapter_key,
            target,
            target_loss,
            &Transform::Sgd,
            spec.opts,
            compute,
            &dir.join("target"),
        )?;
        per_checkpoint.push(less::subtask_cosines(&pf, &tf));
    }
    let scores = less::combine(&per_checkpoint, &weights);
    let mut columns: Vec<(String, Vec<f64>)> =
        scores.per_task.iter().map(|(name, s)| (format!("task:{name}"), s.clone())).collect();
    if stages.len() > 1 {
        for (st, cos) in stages.iter().zip(&per_checkpoint) {
            columns.extend(cos.iter().map(|(name, s)| (format!("{}:task:{name}", st.label), s.clone())));
        }
    }
    let details = json!({
        "subtasks": scores.per_task.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "checkpoints": stages.iter().zip(&weights).map(|(st, w)| json!({
            "label": st.label, "adapter": st.adapter_key, "candidate_transform": st.transform.key(),
            "mean_lr": st.mean_lr, "weight": w,
            "pool_store": format!("features/{}/pool", st.label), "target_store": format!("features/{}/target", st.label),
        })).collect::<Vec<_>>(),
        "loss": { "pool": "sft", "target": target_loss.name(), "beta": spec.beta },
        "scoring": "cosine; mean over target examples of a subtask; sum over checkpoints weighted by normalised mean learning rate; max over subtasks; global top-k",
        "columns": "task:NAME = weighted score of subtask NAME; with several checkpoints, LABEL:task:NAME = that checkpoint's mean cosine (score = max over NAME of sum over LABEL of weight × column)",
    });
    Ok((scores.score, columns, k, details))
}

/// PRISM: direction from the target pairs, candidate summed-loss gradients, g·H⁻¹·d.
fn prism_scores(
    loaded: &Loaded,
    spec: &SelectSpec<'_>,
    pool: &Dataset,
    target: &Dataset,
    compute: &Compute,
    k: usize,
) -> Result<Scored> {
    let (adapter, adapter_key, checkpoint) = match spec.checkpoints {
        [] => (loaded.adapter.clone(), loaded.adapter_key.clone(), None),
        [dir] => {
            let a = LoraAdapter::load(dir, &loaded.model.linears)?;
            let key = features::adapter_key(&a, 0)?;
            (a, key, Some(dir.display().to_string()))
        }
        _ => return Err(Error::Invalid("PRISM takes one reference checkpoint (--checkpoints DIR)".into())),
    };
    let p = &spec.prism;
    let dir = spec.out.join("features/prism");
    let sgd = Transform::Sgd;
    let cand = featurize_with(
        loaded,
        &adapter,
        &adapter_key,
        pool,
        LossKind::SftSum,
        &sgd,
        spec.opts,
        compute,
        &dir.join("pool"),
    )?;
    let pos_data = target.preference_side(true)?;
    let pos = featurize_with(
        loaded,
        &adapter,
        &adapter_key,
        &pos_data,
        LossKind::Sft,
        &sgd,
        spec.opts,
        compute,
        &dir.join("target-chosen"),
    )?;
    let neg = if p.unpaired {
        None
    } else {
        let neg_data = target.preference_side(false)?;
        Some(featurize_with(
            loaded,
            &adapter,
            &adapter_key,
            &neg_data,
            LossKind::Sft,
            &sgd,
            spec.opts,
            compute,
            &dir.join("target-rejected"),
        )?)
    };
    let (d, pi) = prism::direction(&pos, neg.as_ref(), p.weights);
    let scores = prism::scores(&cand, &d, p.hessian);
    let kept = if p.repair { pool.len() - k } else { k };
    if kept == 0 {
        return Err(Error::Invalid("--repair would remove every candidate".into()));
    }
    let details = json!({
        "mode": if p.repair { "repair: the budget counts the removed lowest-scoring candidates" } else { "forward: top k" },
        "removed": if p.repair { k } else { 0 },
        "weights": if p.unpaired { json!("unpaired") } else { json!(p.weights) },
        "pi": pi,
        "hessian": p.hessian,
        "checkpoint": checkpoint,
        "adapter": adapter_key,
        "loss": { "candidates": "sft-sum", "targets": "sft (token mean)" },
        "scoring": "s(z) = g_z · H^-1 · d, d = mean over target pairs of pi_q (g(q,y+) - g(q,y-)); larger = more helpful",
        "stores": ["features/prism/pool", "features/prism/target-chosen", "features/prism/target-rejected"],
    });
    Ok((scores, Vec::new(), kept, details))
}
