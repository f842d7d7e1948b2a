//! Does a selection help? Fine-tune a fresh LoRA adapter on each selected subset with a fixed
//! budget (steps, batch, learning rate), and on random subsets of the same size, for several
//! seeds; then measure every run on held-out test data.
//!
//! A selection's seeds vary the adapter's initialisation and the data order; a random arm's seeds
//! also draw its subset, so its spread includes the luck of the draw.

mod compare;
mod generate;
mod measure;
mod overlap;
mod summary;

use serde::{Deserialize, Serialize};

pub(crate) use compare::random_arms;
pub use compare::{compare, Comparison};
pub use generate::greedy;
pub use measure::{measure, Metrics, TestSets};
pub use overlap::{overlap, Overlap};
pub(crate) use summary::{markdown_table, summarize};
pub use summary::{Stat, Summary};

use crate::data::{Dataset, TextTokenizer};
use crate::device::Compute;
use crate::error::{Error, Result, Setting};
use crate::loss::LossKind;
use crate::model::{CausalLm, LoraAdapter};
use crate::train::{AdamWConfig, LoraTrainer, LrSchedule, Schedule};
use crate::util::SplitMix64;

/// The fixed fine-tuning budget and what is measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalOptions {
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub warmup_ratio: f64,
    pub lora_r: usize,
    pub lora_alpha: f64,
    /// Module-name suffixes the adapter attaches to.
    pub lora_targets: Vec<String>,
    pub seeds: Vec<u64>,
    /// DPO's β, for preference pools.
    pub beta: f64,
    pub max_len: usize,
    pub max_new_tokens: usize,
    /// Report a comparison although test prompts are in the pool, a selection or a target (the
    /// overlap is printed); without it, any overlap is an error.
    #[serde(default)]
    pub allow_overlap: bool,
}

impl Subset {
    /// The indices trained on at `seed` (None for a random subset, drawn at run time, or a
    /// per-seed selection without that seed).
    pub fn at(&self, seed: u64) -> Option<&[usize]> {
        match self {
            Subset::Fixed(ix) => Some(ix),
            Subset::PerSeed(by_seed) => by_seed.get(&seed).map(Vec::as_slice),
            Subset::Random(_) | Subset::RandomSized(_) => None,
        }
    }

    /// True for the random references (drawn at run time).
    pub fn is_random(&self) -> bool {
        matches!(self, Subset::Random(_) | Subset::RandomSized(_))
    }

    /// Every subset a selection arm can train on (one, or one per seed).
    pub fn selections(&self) -> Vec<&[usize]> {
        match self {
            Subset::Fixed(ix) => vec![ix.as_slice()],
            Subset::PerSeed(by_seed) => by_seed.values().map(Vec::as_slice).collect(),
            Subset::Random(_) | Subset::RandomSized(_) => Vec::new(),
        }
    }
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            steps: 40,
            batch_size: 8,
            lr: 2e-3,
            warmup_ratio: 0.1,
            lora_r: 8,
            lora_alpha: 16.0,
            lora_targets: Vec::new(),
            seeds: vec![1, 2, 3],
            beta: 0.1,
            max_len: 128,
            max_new_tokens: 12,
            allow_overlap: false,
        }
    }
}

/// A subset to fine-tune on.
#[derive(Debug, Clone)]
pub enum Subset {
    /// Fixed pool indices (a method's selection).
    Fixed(Vec<usize>),
    /// One selection per seed: the method's own randomness (projection seed, sampling draws,
    /// noise, warmup order) followed the evaluation seed.
    PerSeed(std::collections::BTreeMap<u64, Vec<usize>>),
    /// A fresh random subset of this size for every seed.
    Random(usize),
    /// A fresh random subset per seed, of the size given for that seed (the reference of a
    /// per-seed selection whose size varies, like a band's).
    RandomSized(std::collections::BTreeMap<u64, usize>),
}

/// One arm of the comparison.
#[derive(Debug, Clone)]
pub struct Arm {
    pub name: String,
    pub subset: Subset,
}

/// One fine-tune and its measurements.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub arm: String,
    pub seed: u64,
    /// Pool indices trained on (0-based).
    pub subset: Vec<usize>,
    /// Mean training loss of the last pass.
    pub train_loss: f64,
    pub metrics: Metrics,
}

/// `k` distinct pool indices drawn with `seed`, in increasing order.
pub(crate) fn random_indices(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64(seed ^ 0x7261_6E64);
    for i in 0..k.min(n) {
        let j = i + rng.below(n - i);
        idx.swap(i, j);
    }
    let mut out = idx[..k.min(n)].to_vec();
    out.sort_unstable();
    out
}

/// Fine-tunes a fresh adapter on `pool[subset]` (SFT for instruction pools, DPO for preference
/// pools) for `opts.steps` steps.
pub(crate) fn fine_tune(
    model: &CausalLm,
    tokenizer: &TextTokenizer,
    pool: &Dataset,
    subset: &[usize],
    opts: &EvalOptions,
    seed: u64,
    compute: &Compute,
) -> Result<(LoraAdapter, f64)> {
    if subset.is_empty() {
        return Err(Error::TooFew("eval: an empty subset cannot be fine-tuned on".into()));
    }
    if let Some(&bad) = subset.iter().find(|&&i| i >= pool.len()) {
        return Err(Error::OutsidePool { index: bad, pool: pool.name(), len: pool.len() });
    }
    let targets =
        if opts.lora_targets.is_empty() { model.config.arch.default_lora_targets() } else { opts.lora_targets.clone() };
    let mut adapter = LoraAdapter::fresh(&model.linears, opts.lora_r, opts.lora_alpha, &targets, seed)?;
    let examples: Vec<_> = subset.iter().map(|&i| pool.examples[i].clone()).collect();
    let (tokenized, _) = tokenizer.examples(&examples, opts.max_len)?;
    let loss = if pool.is_preference() { LossKind::Dpo { beta: opts.beta } } else { LossKind::Sft };
    let mut trainer = LoraTrainer::new(
        &adapter,
        AdamWConfig::default(),
        loss,
        opts.batch_size,
        LrSchedule { peak: opts.lr, warmup_ratio: opts.warmup_ratio, kind: Schedule::Linear },
        opts.steps,
    );
    let train_loss = trainer.run(model, &mut adapter, &tokenized, seed, &compute.device)?;
    Ok((adapter, train_loss))
}

/// Runs every arm for every seed, logging each finished run.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    model: &CausalLm,
    tokenizer: &TextTokenizer,
    pool: &Dataset,
    arms: &[Arm],
    tests: TestSets<'_>,
    opts: &EvalOptions,
    compute: &Compute,
) -> Result<Vec<Run>> {
    if opts.seeds.is_empty() {
        return Err(Error::setting(Setting::Seeds, "eval: at least one seed is needed"));
    }
    if opts.steps == 0 {
        return Err(Error::setting(Setting::Steps, "eval: at least one fine-tuning step is needed"));
    }
    if tests.test.is_none() && tests.pairs.is_none() {
        return Err(Error::setting(Setting::Test, "eval: give a test set (instruction records) or test pairs"));
    }
    let mut runs = Vec::new();
    for arm in arms {
        for &seed in &opts.seeds {
            let missing =
                || Error::setting(Setting::Seeds, format!("eval: `{}` has no subset for seed {seed}", arm.name));
            let subset = match &arm.subset {
                Subset::Random(k) => random_indices(pool.len(), *k, seed),
                Subset::RandomSized(k) => random_indices(pool.len(), *k.get(&seed).ok_or_else(missing)?, seed),
                s => s.at(seed).ok_or_else(missing)?.to_vec(),
            };
            let (adapter, train_loss) = fine_tune(model, tokenizer, pool, &subset, opts, seed, compute)?;
            let metrics = measure(model, Some(&adapter), tokenizer, tests, opts.max_len, opts.max_new_tokens, compute)?;
            let run = Run { arm: arm.name.clone(), seed, subset, train_loss, metrics };
            tracing::info!("eval: {} seed {}: {}", run.arm, run.seed, run.metrics);
            runs.push(run);
        }
    }
    Ok(runs)
}

/// A selection written by `select`: its name (the method, or the directory name), the selected
/// pool indices, and the pool and model it was made with.
#[derive(Debug, Clone)]
pub struct SavedSelection {
    /// The `select` output directory it was read from.
    pub dir: std::path::PathBuf,
    pub name: String,
    pub indices: Vec<usize>,
    /// The pool files, in order (empty when no manifest names them).
    pub pool: Vec<std::path::PathBuf>,
    /// The model directory it was made with.
    pub model: Option<std::path::PathBuf>,
    /// The target file it was selected for, if any.
    pub target: Option<std::path::PathBuf>,
}

/// Reads `selected.json` (and `manifest.json`, when present) of a `select` output directory.
pub fn read_selection(dir: &std::path::Path) -> Result<SavedSelection> {
    let path = dir.join("selected.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let indices: Vec<usize> = serde_json::from_str(&text)
        .map_err(|e| Error::format(&path, format!("expected a JSON array of pool indices: {e}")))?;
    let mpath = dir.join("manifest.json");
    let manifest: Option<serde_json::Value> = match std::fs::read_to_string(&mpath) {
        Ok(t) => Some(serde_json::from_str(&t).map_err(|e| Error::format(&mpath, format!("invalid JSON: {e}")))?),
        Err(_) => None,
    };
    let dir_name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "selection".into());
    let method = manifest.as_ref().and_then(|m| m["method"].as_str()).map(String::from);
    let pool = manifest
        .as_ref()
        .and_then(|m| m["pool"]["files"].as_array())
        .map(|files| files.iter().filter_map(|f| f["path"].as_str()).map(std::path::PathBuf::from).collect())
        .unwrap_or_default();
    let model = manifest.as_ref().and_then(|m| m["model"].as_str()).map(std::path::PathBuf::from);
    let target = manifest.as_ref().and_then(|m| m["target"]["path"].as_str()).map(std::path::PathBuf::from);
    Ok(SavedSelection { dir: dir.to_path_buf(), name: method.unwrap_or(dir_name), indices, pool, model, target })
}

/// The arms comparing `selections`, plus (with `random`) random subsets of each selection's size
/// (see `random_arms`). Arms are told apart by name: a clash (two selections of one method, or
/// a `random` selection beside the random baseline) takes the directory's name as well.
pub fn arms(selections: &[SavedSelection], random: bool) -> Vec<Arm> {
    let mut arms: Vec<Arm> = Vec::new();
    for s in selections {
        let mut name = s.name.clone();
        if name == "random" || arms.iter().any(|x| x.name == name) {
            name = format!("{name} ({})", s.dir.file_name().unwrap_or_default().to_string_lossy());
        }
        arms.push(Arm { name, subset: Subset::Fixed(s.indices.clone()) });
    }
    if random {
        let extra = random_arms(&arms);
        arms.extend(extra);
    }
    arms
}

/// Everything an evaluation produced (`eval.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    pub options: EvalOptions,
    pub pool: String,
    /// The model before fine-tuning.
    pub base: Metrics,
    pub runs: Vec<Run>,
    pub summary: Vec<Summary>,
    /// Each selection against random subsets of its size, paired by seed.
    #[serde(default)]
    pub comparisons: Vec<Comparison>,
    /// Test prompts found on the training side (all zero unless `allow_overlap`).
    #[serde(default)]
    pub overlap: Overlap,
    /// The Markdown table (`eval.md`).
    pub table: String,
}

impl EvalReport {
    /// Reads `eval.json` from an `eval` output directory.
    pub fn read(dir: &std::path::Path) -> Result<Self> {
        let path = dir.join("eval.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::format(&path, format!("not an eval report: {e}")))
    }
}

/// What an evaluation compares, on what.
pub struct EvalInputs<'a> {
    pub pool: &'a Dataset,
    pub arms: &'a [Arm],
    pub tests: TestSets<'a>,
    /// The target sets the selections were made for: a test prompt among them is a leak too.
    pub targets: &'a [&'a Dataset],
}

/// Checks the test sets against the pool, the fixed arms and the targets, measures `model`
/// before fine-tuning, runs every arm, and writes `eval.json` and `eval.md` into `out`.
pub fn run_and_write(
    model: &CausalLm,
    tokenizer: &TextTokenizer,
    inputs: &EvalInputs<'_>,
    opts: &EvalOptions,
    compute: &Compute,
    out: &std::path::Path,
) -> Result<EvalReport> {
    let overlap = overlap(inputs.tests, inputs.pool, inputs.arms, inputs.targets);
    if overlap.any() && !opts.allow_overlap {
        return Err(Error::Overlap(overlap.describe()));
    }
    let base = measure(model, None, tokenizer, inputs.tests, opts.max_len, opts.max_new_tokens, compute)?;
    let runs = evaluate(model, tokenizer, inputs.pool, inputs.arms, inputs.tests, opts, compute)?;
    let summary = summarize(&runs);
    let comparisons = compare(inputs.arms, &runs);
    let mut table = markdown_table(&summary, Some(&base), &comparisons);
    if overlap.any() {
        table.push_str(&format!(
            "
Overlap (allowed): {}\n",
            overlap.describe()
        ));
    }
    let report = EvalReport {
        options: opts.clone(),
        pool: inputs.pool.name(),
        base,
        runs,
        summary,
        comparisons,
        overlap,
        table,
    };
    crate::util::write_atomic(&out.join("eval.md"), report.table.as_bytes())?;
    let json = serde_json::to_string_pretty(&report).expect("json");
    crate::util::write_atomic(&out.join("eval.json"), json.as_bytes())?;
    Ok(report)
}
