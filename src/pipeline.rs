//! The jobs the CLI runs, as library functions: load a model, featurize a data set, warm up,
//! select with a method.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::data::{load_jsonl, Dataset, TextTokenizer};
use crate::device::Compute;
use crate::error::{Error, Result};
pub use crate::features::FeatureOptions;
use crate::features::{self, Features, FeaturizeJob, LossKind, Transform};
use crate::features::{embeddings, sft_losses, Pooling};
use crate::methods::prism::{self, Hessian, PairWeights};
use crate::methods::tsds::{self, TsdsParams};
use crate::methods::{baselines, gpu_score, less, tif};
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
    let target = spec.target.map(load_jsonl).transpose()?;
    let k = spec.budget.count(pool.len())?;
    let name = method_name(spec.method);
    let preference_pool = matches!(spec.method, Method::Tif | Method::Lossdiff | Method::Irm | Method::Fusion);
    if pool.is_preference() != preference_pool {
        return Err(Error::Invalid(format!(
            "{}: --method {name} scores {} candidates",
            spec.pool.display(),
            if preference_pool {
                "preference ({\"prompt\",\"chosen\",\"rejected\"})"
            } else {
                "instruction ({\"prompt\",\"completion\"})"
            }
        )));
    }
    let needs_target = !matches!(spec.method, Method::Random | Method::Loss | Method::Irm);
    let wants_pairs = matches!(spec.method, Method::Rose | Method::Prism) || preference_pool;
    if let Some(t) = &target {
        if t.is_preference() != wants_pairs && needs_target {
            return Err(Error::Invalid(format!(
                "{}: --method {name} needs {} targets",
                t.path.display(),
                if wants_pairs {
                    "preference ({\"prompt\",\"chosen\",\"rejected\"})"
                } else {
                    "instruction ({\"prompt\",\"completion\"})"
                }
            )));
        }
    } else if needs_target {
        return Err(Error::Invalid(format!("--method {name} needs --target")));
    }
    let (scores, columns, chosen, details) = match (spec.method, &target) {
        (Method::Tif | Method::Lossdiff | Method::Irm | Method::Fusion, t) => {
            tif_family(loaded, spec, &pool, t.as_ref(), compute)?
        }
        (Method::Random | Method::Loss, _) => baseline(loaded, spec, &pool, None, compute, k)?,
        (_, Some(t)) => match spec.method {
            Method::Less | Method::Rose => less_like(loaded, spec, &pool, t, compute, k)?,
            Method::Prism => prism_scores(loaded, spec, &pool, t, compute, k)?,
            Method::Tsds => tsds_select(loaded, spec, &pool, t, compute, k)?,
            _ => baseline(loaded, spec, &pool, Some(t), compute, k)?,
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

/// TIF, LossDiff, IRM and their fusion over a preference pool. The selection is a band, so the
/// budget does not apply.
fn tif_family(
    loaded: &Loaded,
    spec: &SelectSpec<'_>,
    pool: &Dataset,
    val: Option<&Dataset>,
    compute: &Compute,
) -> Result<Scored> {
    let (theta, theta_key, checkpoint) =
        reference_checkpoint(loaded, spec, "the TIF family takes one DPO warmup checkpoint")?;
    let t = &spec.tif;
    let (pairs, _) = loaded.tokenizer.examples(&pool.examples, spec.opts.max_len)?;
    let stats = |adapter: &LoraAdapter| -> Result<Vec<features::DpoStats>> {
        let mut out = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(spec.opts.batch_size.max(1)) {
            out.extend(features::dpo_stats(&loaded.model, adapter, chunk, spec.beta, &compute.device)?);
        }
        Ok(out)
    };
    let at_theta = stats(&theta)?;
    let irm: Vec<f64> = at_theta.iter().map(|s| s.margin).collect();
    let mut columns = vec![("irm".to_string(), irm.clone())];
    let mut details = json!({ "checkpoint": checkpoint, "beta": spec.beta });

    let want_if = matches!(spec.method, Method::Tif | Method::Fusion);
    let want_lossdiff = matches!(spec.method, Method::Lossdiff | Method::Fusion);
    let influence = if want_if {
        let val = val.expect("validation set checked");
        let dir = spec.out.join("features/tif");
        let loss = LossKind::Dpo { beta: spec.beta };
        let pf = featurize_with(
            loaded,
            &theta,
            &theta_key,
            pool,
            loss,
            &Transform::Sgd,
            spec.opts,
            compute,
            &dir.join("pool"),
        )?;
        let vf = featurize_with(
            loaded,
            &theta,
            &theta_key,
            val,
            loss,
            &Transform::Sgd,
            spec.opts,
            compute,
            &dir.join("validation"),
        )?;
        let v = tif::influence(&pf.data, pf.rows, &vf.data, vf.rows, pf.dim);
        columns.push(("if".into(), v.clone()));
        Some(v)
    } else {
        None
    };
    let lossdiff = if want_lossdiff {
        let val = val.expect("validation set checked");
        let opts = WarmupOptions {
            fraction: 1.0,
            epochs: 1,
            lr: t.val_lr,
            batch_size: spec.opts.batch_size,
            warmup_ratio: 0.0,
            adamw: Default::default(),
            loss: LossKind::Dpo { beta: spec.beta },
            seed: spec.opts.seed,
            max_len: spec.opts.max_len,
            verbose: spec.opts.verbose,
        };
        let dirs = train::warmup(
            &loaded.model,
            theta.clone(),
            &loaded.tokenizer,
            val,
            &opts,
            compute,
            &spec.out.join("theta-val"),
        )?;
        let theta_val = LoraAdapter::load(&dirs[0], &loaded.model.linears)?;
        let at_val = stats(&theta_val)?;
        let v: Vec<f64> = at_theta.iter().zip(&at_val).map(|(a, b)| a.loss - b.loss).collect();
        columns.push(("lossdiff".into(), v.clone()));
        details["theta_val"] = json!({ "checkpoint": "theta-val/checkpoint-1", "lr": t.val_lr, "epochs": 1 });
        Some(v)
    } else {
        None
    };
    let n = pool.len() as f64;
    let report = |kept: &[usize], lo: f64, hi: f64, a: f64, b: f64| json!({ "band_percentiles": [lo, hi], "thresholds": [a, b], "retained": kept.len(), "retained_fraction": kept.len() as f64 / n });
    let tif_kept = influence.as_ref().map(|v| {
        let (k, a, b) = tif::band(v, t.band.0, t.band.1);
        details["tif"] = report(&k, t.band.0, t.band.1, a, b);
        k
    });
    let (scores, kept) = match spec.method {
        Method::Tif => (influence.expect("computed"), tif_kept.clone().expect("computed")),
        Method::Irm => {
            let (k, a, b) = tif::band(&irm, t.irm_band.0, t.irm_band.1);
            details["irm"] = report(&k, t.irm_band.0, t.irm_band.1, a, b);
            (irm, k)
        }
        Method::Lossdiff => {
            let v = lossdiff.expect("computed");
            let (k, a, b) = tif::band(&v, t.lossdiff_band.0, t.lossdiff_band.1);
            details["lossdiff"] = report(&k, t.lossdiff_band.0, t.lossdiff_band.1, a, b);
            (v, k)
        }
        _ => {
            let v = lossdiff.expect("computed");
            let (kl, a, b) = tif::band(&v, t.lossdiff_band.0, t.lossdiff_band.1);
            details["lossdiff"] = report(&kl, t.lossdiff_band.0, t.lossdiff_band.1, a, b);
            let (ki, a, b) = tif::band(&irm, t.irm_band.0, t.irm_band.1);
            details["irm"] = report(&ki, t.irm_band.0, t.irm_band.1, a, b);
            let fused = tif::intersect(&kl, &ki);
            details["fusion"] = json!({ "retained": fused.len(), "retained_fraction": fused.len() as f64 / n });
            if let Some(tk) = &tif_kept {
                let (jaccard, share) = tif::overlap(&fused, tk);
                details["fusion"]["overlap_with_tif"] = json!({ "jaccard": jaccard, "share_of_fusion_in_tif": share });
            }
            (irm, fused)
        }
    };
    let (lo, hi) = scores.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    if lo == hi {
        return Err(Error::Invalid(format!(
            "--method {}: every pair has the same score ({lo}), so no band can be formed; the adapter \
             likely still equals the reference model: run `gradsift warmup --loss dpo` and pass its checkpoint \
             with --checkpoints",
            method_name(spec.method)
        )));
    }
    details["score"] = json!(match spec.method {
        Method::Tif => "if",
        Method::Lossdiff => "lossdiff",
        _ => "irm",
    });
    details["selection"] =
        json!("a band: --fraction/--count do not apply; selected.json lists the kept pairs in pool order");
    Ok((scores, columns, Chosen::List(kept), details))
}

fn method_name(m: Method) -> &'static str {
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

/// The baselines.
fn baseline(
    loaded: &Loaded,
    spec: &SelectSpec<'_>,
    pool: &Dataset,
    target: Option<&Dataset>,
    compute: &Compute,
    k: usize,
) -> Result<Scored> {
    let n = pool.len();
    let needs =
        || target.ok_or_else(|| Error::Invalid(format!("--method {} needs --target", method_name(spec.method))));
    Ok(match spec.method {
        Method::Random => {
            (baselines::random_scores(n, spec.opts.seed), vec![], Chosen::Top(k), json!({ "seed": spec.opts.seed }))
        }
        Method::Loss => {
            let (tok, _) = loaded.tokenizer.examples(&pool.examples, spec.opts.max_len)?;
            let losses = sft_losses(&loaded.model, Some(&loaded.adapter), &tok, spec.opts.batch_size, &compute.device)?;
            let scores = losses.iter().map(|l| if spec.low_loss { -l } else { *l }).collect();
            let order = if spec.low_loss { "lowest loss first" } else { "highest loss first" };
            (scores, vec![("loss".into(), losses)], Chosen::Top(k), json!({ "order": order, "loss": "token-mean sft" }))
        }
        Method::Rds | Method::RdsPlus => {
            let target = needs()?;
            let m = target.len();
            let tasks: Vec<Option<String>> = target.examples.iter().map(|e| e.task.clone()).collect();
            let pooling = if spec.method == Method::Rds { Pooling::LastToken } else { Pooling::Mean };
            let (pe, te) = (
                embed(loaded, pool, pooling, spec.opts, compute)?,
                embed(loaded, target, pooling, spec.opts, compute)?,
            );
            let dim = loaded.model.config.hidden;
            let cos = baselines::cosine_matrix(&pe, n, &te, m, dim);
            if spec.method == Method::Rds {
                let scores = baselines::mean_max(&cos, n, &tasks);
                (
                    scores,
                    vec![],
                    Chosen::Top(k),
                    json!({ "pooling": pooling, "matching": "mean over a subtask's targets, max over subtasks" }),
                )
            } else {
                let best: Vec<f64> =
                    (0..n).map(|i| (0..m).map(|j| cos[i * m + j]).fold(f64::NEG_INFINITY, f64::max)).collect();
                let list = baselines::round_robin(&cos, n, m, k);
                (
                    best,
                    vec![],
                    Chosen::List(list),
                    json!({ "pooling": pooling, "matching": "round-robin over target examples; score = best cosine" }),
                )
            }
        }
        Method::Dsir => {
            let (scores, logw) = baselines::dsir_scores(&pool.examples, &needs()?.examples, spec.opts.seed);
            let d = json!({ "buckets": baselines::DSIR_BUCKETS, "features": "hashed unigrams and bigrams of lower-cased words",
                            "score": "log importance weight + Gumbel noise (seeded): top-k samples without replacement" });
            (scores, vec![("log_weight".into(), logw)], Chosen::Top(k), d)
        }
        _ => unreachable!("not a baseline"),
    })
}

/// TSDS over gradient features, hidden-state embeddings or given .npy matrices.
fn tsds_select(
    loaded: &Loaded,
    spec: &SelectSpec<'_>,
    pool: &Dataset,
    target: &Dataset,
    compute: &Compute,
    k: usize,
) -> Result<Scored> {
    let t = &spec.tsds;
    let (x, q, dim, source) = match (&t.npy, t.embed) {
        (Some((pn, tn)), _) => {
            let (x, rows, dim) = features::npy::read(pn)?;
            let (q, _, qdim) = features::npy::read(tn)?;
            if rows != pool.len() || qdim != dim {
                return Err(Error::Invalid(format!(
                    "{} is [{rows}, {dim}], {} has width {qdim}: the candidate matrix needs one row per pool line ({}) and both the same width",
                    pn.display(), tn.display(), pool.len()
                )));
            }
            (x, q, dim, json!({ "npy": [pn.display().to_string(), tn.display().to_string()] }))
        }
        (None, Some(pooling)) => {
            let x = embed(loaded, pool, pooling, spec.opts, compute)?;
            let q = embed(loaded, target, pooling, spec.opts, compute)?;
            (x, q, loaded.model.config.hidden, json!({ "embed": pooling }))
        }
        (None, None) => {
            let dir = spec.out.join("features/tsds");
            let pf = featurize_with(
                loaded,
                &loaded.adapter,
                &loaded.adapter_key,
                pool,
                LossKind::Sft,
                &Transform::Sgd,
                spec.opts,
                compute,
                &dir.join("pool"),
            )?;
            let tf = featurize_with(
                loaded,
                &loaded.adapter,
                &loaded.adapter_key,
                target,
                LossKind::Sft,
                &Transform::Sgd,
                spec.opts,
                compute,
                &dir.join("target"),
            )?;
            let dim = pf.dim;
            (
                pf.data,
                tf.data,
                dim,
                json!({ "features": "sft gradients", "stores": ["features/tsds/pool", "features/tsds/target"] }),
            )
        }
    };
    let probs = tsds::probabilities(&x, pool.len(), &q, q.len() / dim, dim, &t.params)?;
    let probs32: Vec<f32> = probs.iter().map(|&p| p as f32).collect();
    features::npy::write(&spec.out.join("probabilities.npy"), &probs32, probs.len(), 1, features::Dtype::F32)?;
    let chosen = if t.no_replacement {
        Chosen::Top(k)
    } else {
        Chosen::List(tsds::sample_with_replacement(&probs, k, spec.opts.seed))
    };
    let details = json!({
        "params": t.params, "source": source,
        "sampling": if t.no_replacement { "top by probability, without replacement" } else { "multinomial with replacement (indices repeat), seeded" },
        "probabilities": "probabilities.npy (and the score column)",
        "neighbours": "exact (ties by index)",
    });
    Ok((probs, vec![], chosen, details))
}

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
    // On a GPU the WGSL kernel scores; on the CPU backend, plain Rust.
    let scorer = compute.gpu.clone().map(gpu_score::GpuScorer::new);
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
        per_checkpoint.push(match (&scorer, pf.dim <= gpu_score::MAX_DIM) {
            (Some(s), true) => s.subtask_cosines(&pf, &tf)?,
            _ => less::subtask_cosines(&pf, &tf),
        });
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
    Ok((scores.score, columns, Chosen::Top(k), details))
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
    let (adapter, adapter_key, checkpoint) =
        reference_checkpoint(loaded, spec, "PRISM takes one reference checkpoint")?;
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
    let kept = Chosen::Top(kept);
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
