//! `gradsift demo`: the classroom run. Make the task suite → warm up → featurize and select with
//! every method at the same budget → fine-tune on each selection and on random subsets of the
//! same size → write a report directory (report.md, eval tables, selections, plots).
//!
//! The preference half asks the TIF question: on a pool with flipped pairs, does the fusion's
//! kept set hold clean pairs, and does DPO on it beat DPO on the whole pool?

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::choice::Choice;
use crate::data::{load_records, RecordKind};
use crate::device::Compute;
use crate::error::{Error, Result, Setting};
use crate::eval::{self, Arm, EvalInputs, EvalOptions, EvalReport, Subset, TestSets};
use crate::loss::{dpo_stats, LossKind};
use crate::model::LoraAdapter;
use crate::pipeline::{
    self, CheckpointUse, FeatureOptions, GradType, Loaded, Method, MethodOptions, MethodSpec, ModelSpec, SelectSpec,
    Selection, TifOptions, ValTraining,
};
use crate::select::Budget;
use crate::suite::{SuiteManifest, SuiteSpec};
use crate::train::{AdamWConfig, Schedule, WarmupOptions};
use crate::util::write_atomic;

/// The demo's seeds: ten, so that the exact paired test can pass a real effect after Holm's
/// adjustment over seven methods (its smallest p-value is 2^-seeds; 2^-8 is the least that can).
pub(crate) const DEFAULT_SEEDS: [u64; 10] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

/// Every setting of the demo; [`DemoOptions::classroom`] holds the values the report shows.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub suite: SuiteSpec,
    /// The base model directory.
    pub model: ModelSpec,
    /// Fraction of the pool every method selects.
    pub fraction: f64,
    /// Instruction-pool methods compared with random.
    pub methods: Vec<Method>,
    /// The SFT warmup whose checkpoints LESS, ROSE and PRISM use (its fraction is the budget's).
    pub warmup: WarmupOptions,
    pub features: FeatureOptions,
    pub grad_type: GradType,
    /// DPO temperature of ROSE's targets and of the TIF family.
    pub beta: f64,
    /// The SFT fine-tunes of the instruction half.
    pub eval: EvalOptions,
    /// The DPO warmup epoch the TIF family scores pairs at.
    pub dpo_warmup: WarmupOptions,
    /// Learning rates the DPO warmup chooses from (its `lr` is not used): the one whose
    /// checkpoint has the lowest mean DPO loss on the validation pairs, at the first seed.
    pub dpo_warmup_lrs: Vec<f64>,
    pub tif: TifOptions,
    /// The DPO fine-tunes of the preference half.
    pub dpo_eval: EvalOptions,
}

impl DemoOptions {
    /// The classroom defaults on `model_dir` (the embedded base model).
    pub fn classroom(model_dir: PathBuf) -> Self {
        let suite = SuiteSpec { pool: 400, ..SuiteSpec::default() };
        let fraction = 0.05;
        let warmup = WarmupOptions {
            fraction,
            epochs: 2,
            lr: 1e-3,
            batch_size: 8,
            warmup_ratio: 0.03,
            schedule: Schedule::Linear,
            adamw: AdamWConfig::default(),
            loss: LossKind::Sft,
            reference: None,
            seed: 0,
            max_len: 128,
        };
        // The TIF family scores pairs at one DPO epoch on the whole pool (one pass: margins then
        // reflect what the pool agrees on rather than memorised pairs). Its learning rate is
        // chosen from data a user has, the clean validation pairs (see `dpo_warmup_lrs`), never
        // from the flip labels.
        let dpo_warmup = WarmupOptions {
            fraction: 1.0,
            epochs: 1,
            lr: f64::NAN,
            warmup_ratio: 0.0,
            loss: LossKind::Dpo { beta: 0.1 },
            ..warmup.clone()
        };
        DemoOptions {
            model: ModelSpec::fresh(model_dir),
            fraction,
            methods: vec![
                Method::Less,
                Method::Rose,
                Method::Prism,
                Method::Tsds,
                Method::Rds,
                Method::Dsir,
                Method::Loss,
            ],
            warmup,
            // The library's projection (k = 8192, sparse); the demo's records are short.
            features: FeatureOptions { max_len: 128, overwrite: true, ..Default::default() },
            grad_type: GradType::Adam,
            beta: 0.1,
            eval: EvalOptions {
                steps: 60,
                lr: 5e-3,
                lora_targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
                    .map(String::from)
                    .to_vec(),
                seeds: DEFAULT_SEEDS.to_vec(),
                ..EvalOptions::default()
            },
            dpo_warmup,
            // A log grid over the usual LoRA learning rates, a factor of about 3 apart.
            dpo_warmup_lrs: vec![1e-4, 3e-4, 1e-3, 3e-3],
            // The library's bands (the middle 20–80% of each proxy): nothing here knows how many
            // pairs are flipped.
            tif: TifOptions { val: ValTraining { lr: 1e-3, ..Default::default() }, ..Default::default() },
            // DPO moves a model that already prefers the right answer on most kinds: the
            // default, gentler budget (attention LoRA, lr 2e-3) rather than the SFT half's.
            dpo_eval: EvalOptions { steps: 40, seeds: DEFAULT_SEEDS.to_vec(), ..EvalOptions::default() },
            suite,
        }
    }

    /// Every fine-tune of both halves runs once per seed of `seeds` (paired across arms).
    pub fn set_seeds(&mut self, seeds: Vec<u64>) {
        self.dpo_eval.seeds = seeds.clone();
        self.eval.seeds = seeds;
    }
}

/// What one method's selections looked like, over the seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SelectionInfo {
    pub method: String,
    /// The first seed's selection (the others are under `seeds/`).
    pub dir: String,
    /// Size of the first seed's selection.
    pub selected: usize,
    /// Share of the selection that is a correct example of a target task (mean over seeds).
    pub target_share: f64,
    /// Share that is low quality (wrong or evasive answers; mean over seeds).
    pub low_quality_share: f64,
    /// Seconds per seed (mean).
    pub seconds: f64,
}

/// `demo.json`: the numbers behind report.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoReport {
    pub pool: usize,
    pub budget: usize,
    pub selections: Vec<SelectionInfo>,
    pub instruction: EvalReport,
    /// Clean fraction of the preference pool, and of the fusion's kept set.
    pub pool_clean: f64,
    pub fusion_clean: f64,
    pub fusion_kept: usize,
    /// The DPO warmup's learning rate, chosen on the validation pairs.
    pub dpo_warmup_lr: LrChoice,
    pub preference: EvalReport,
    /// Seconds per stage, in order.
    pub stages: Vec<(String, f64)>,
    /// Figures written (relative to the report directory).
    pub plots: Vec<String>,
}

/// Seconds per stage, logged as each ends.
struct Stages {
    done: Vec<(String, f64)>,
    lap: Instant,
}

impl Stages {
    fn end(&mut self, name: &str) {
        let s = self.lap.elapsed().as_secs_f64();
        tracing::info!("demo: {name} done in {s:.1} s");
        self.done.push((name.to_string(), s));
        self.lap = Instant::now();
    }
}

/// What both halves share: the model, the generated suite and where things go.
struct Run<'a> {
    opts: &'a DemoOptions,
    compute: &'a Compute,
    out: &'a Path,
    loaded: Loaded,
    suite: SuiteManifest,
    data: PathBuf,
}

impl Run<'_> {
    fn file(&self, name: &str) -> PathBuf {
        self.data.join(name)
    }

    /// Where the selection-side work of `seed` goes: the report directory for the first seed
    /// (so `select/NAME` is what the plots draw), `seeds/seed-N/` for the others.
    fn seed_dir(&self, seed: u64) -> PathBuf {
        if self.opts.eval.seeds.first() == Some(&seed) {
            self.out.to_path_buf()
        } else {
            self.out.join("seeds").join(format!("seed-{seed}"))
        }
    }

    /// `select` with `method` and the demo's settings at `seed` (the projection's seed, and
    /// with it TSDS's draws and DSIR's noise), into `select/NAME` under [`Self::seed_dir`].
    fn select(
        &self,
        method: Method,
        pool: &Path,
        target: Option<&Path>,
        checkpoints: &[PathBuf],
        seed: u64,
    ) -> Result<Selection> {
        let o = self.opts;
        let grad_type = method.uses_grad_type().then_some(o.grad_type);
        let options = MethodOptions { grad_type, beta: o.beta, tif: o.tif, ..MethodOptions::default() };
        let features = FeatureOptions { seed, ..o.features.clone() };
        let spec = SelectSpec {
            pool: &[pool.to_path_buf()],
            method: MethodSpec::new(method, target, checkpoints, &options)?,
            budget: Budget::Fraction(o.fraction),
            opts: &features,
            out: &self.seed_dir(seed).join("select").join(method.name()),
            pool_features: &[],
        };
        pipeline::select(&self.loaded, &spec, self.compute)
    }

    /// The warmup of `opts` at `seed` (its subset and order), into `name` under [`Self::seed_dir`].
    fn warmup(&self, pool: &Path, opts: &WarmupOptions, seed: u64, name: &str) -> Result<Vec<PathBuf>> {
        let opts = WarmupOptions { seed, ..opts.clone() };
        let out = self.seed_dir(seed).join(name);
        pipeline::warmup(&self.loaded, std::slice::from_ref(&pool.to_path_buf()), &opts, self.compute, &out)
    }
}

/// One method's selections over the seeds.
struct Picked {
    method: Method,
    by_seed: BTreeMap<u64, Vec<usize>>,
    seeds: Vec<SeedShares>,
}

/// What one seed's selection held, and how long it took.
struct SeedShares {
    target: f64,
    low_quality: f64,
    seconds: f64,
}

/// The instruction half: per seed, the SFT warmup and every method's selection; then the
/// fine-tunes that compare each method with random subsets of its size, seed by seed.
fn instruction_half(run: &Run<'_>, stages: &mut Stages) -> Result<(Vec<SelectionInfo>, EvalReport, usize)> {
    let o = run.opts;
    let pool_path = run.file("pool.jsonl");
    let seeds = &o.eval.seeds;
    // Per method: the selection of every seed, and the shares and times behind SelectionInfo.
    let mut picked: Vec<Picked> =
        o.methods.iter().map(|&m| Picked { method: m, by_seed: BTreeMap::new(), seeds: Vec::new() }).collect();
    for &seed in seeds {
        let checkpoints = run.warmup(&pool_path, &o.warmup, seed, "warmup")?;
        for Picked { method, by_seed, seeds: shares } in &mut picked {
            let method = *method;
            let m0 = Instant::now();
            let target = method.target_kind().map(|kind| match kind {
                RecordKind::Instructions => run.file("target.jsonl"),
                RecordKind::Preferences => run.file("target-pairs.jsonl"),
            });
            // LESS and ROSE weigh every warmup checkpoint; PRISM and TSDS work at the last one;
            // the rest see the fresh adapter or no gradients at all.
            let ckpts: &[PathBuf] = match method.checkpoint_use() {
                CheckpointUse::Weighted => &checkpoints,
                CheckpointUse::One => &checkpoints[checkpoints.len() - 1..],
                CheckpointUse::Unused => &[],
            };
            let s = run.select(method, &pool_path, target.as_deref(), ckpts, seed)?;
            let share = |kind: &dyn Fn(&str) -> bool| {
                s.selected.iter().filter(|&&i| kind(&run.suite.pool_kinds[i])).count() as f64
                    / s.selected.len().max(1) as f64
            };
            let target_share = share(&|k| o.suite.target_tasks.iter().any(|t| t == k));
            shares.push(SeedShares {
                target: target_share,
                low_quality: share(&|k| k == "low-quality"),
                seconds: m0.elapsed().as_secs_f64(),
            });
            tracing::info!(
                "demo: seed {seed}: {}: {} selected, {:.0}% target-task",
                method.name(),
                s.selected.len(),
                100.0 * target_share
            );
            by_seed.insert(seed, s.selected);
        }
    }
    stages.end("warmup and select (every seed)");
    let mean = |xs: &[SeedShares], f: fn(&SeedShares) -> f64| xs.iter().map(f).sum::<f64>() / xs.len().max(1) as f64;
    let selections: Vec<SelectionInfo> = picked
        .iter()
        .map(|p| SelectionInfo {
            method: p.method.name().to_string(),
            dir: format!("select/{}", p.method.name()),
            selected: p.by_seed.values().next().map_or(0, Vec::len),
            target_share: mean(&p.seeds, |x| x.target),
            low_quality_share: mean(&p.seeds, |x| x.low_quality),
            seconds: mean(&p.seeds, |x| x.seconds),
        })
        .collect();
    let mut arms: Vec<Arm> = picked
        .into_iter()
        .map(|p| Arm { name: p.method.name().to_string(), subset: Subset::PerSeed(p.by_seed) })
        .collect();
    let budget = Budget::Fraction(o.fraction).count(run.suite.pool_kinds.len())?;
    // Random subsets of every size a method chose (PRISM's repair can change the size), each
    // method compared with its own size.
    let random = eval::random_arms(&arms);
    arms.extend(random);
    let pool = load_records(&pool_path)?;
    let test = load_records(&run.file("test.jsonl"))?;
    let targets = [load_records(&run.file("target.jsonl"))?, load_records(&run.file("target-pairs.jsonl"))?];
    let inputs = EvalInputs {
        pool: &pool,
        arms: &arms,
        tests: TestSets { test: Some(&test), pairs: None },
        targets: &[&targets[0], &targets[1]],
    };
    let report = eval::run_and_write(
        &run.loaded.model,
        &run.loaded.tokenizer,
        &inputs,
        &o.eval,
        run.compute,
        &run.out.join("eval"),
    )?;
    stages.end("eval (instruction)");
    Ok((selections, report, budget))
}

/// What the preference half measured.
struct PreferenceHalf {
    /// The DPO warmup's learning rate and each candidate's validation DPO loss.
    dpo_lr: LrChoice,
    pool_clean: f64,
    /// Mean over seeds.
    fusion_clean: f64,
    /// Of the first seed.
    fusion_kept: usize,
    report: EvalReport,
}

/// The preference half: per seed, the DPO warmup and the fusion's kept set (and how clean it
/// is); then DPO on the kept set against DPO on random subsets of the kept size and on the
/// whole pool.
fn preference_half(run: &Run<'_>, stages: &mut Stages) -> Result<PreferenceHalf> {
    let o = run.opts;
    let pairs_path = run.file("pool-pairs.jsonl");
    let flipped: HashSet<usize> = run.suite.flipped.iter().map(|l| l - 1).collect();
    let n_pairs = o.suite.pool;
    let pool_clean = 1.0 - flipped.len() as f64 / n_pairs.max(1) as f64;
    let mut kept_by_seed = BTreeMap::new();
    let mut clean = Vec::new();
    let (dpo_lr, chosen_run) = choose_dpo_lr(run, &pairs_path)?;
    // The first seed reuses the chosen rate's warmup; the others train their own.
    let mut first = Some(chosen_run);
    stages.end("DPO warmup learning rate (validation pairs)");
    let dpo_warmup = WarmupOptions { lr: dpo_lr.chosen, ..o.dpo_warmup.clone() };
    for &seed in &o.dpo_eval.seeds {
        let dpo_ckpt = match first.take() {
            Some(ckpts) => ckpts,
            None => run.warmup(&pairs_path, &dpo_warmup, seed, "warmup-dpo")?,
        };
        let last = &dpo_ckpt[dpo_ckpt.len() - 1..];
        let fusion = run.select(Method::Fusion, &pairs_path, Some(&run.file("val-pairs.jsonl")), last, seed)?;
        let c = fusion.selected.iter().filter(|i| !flipped.contains(i)).count() as f64
            / fusion.selected.len().max(1) as f64;
        tracing::info!(
            "demo: seed {seed}: fusion kept {} of {n_pairs} pairs, clean fraction {c:.3} (pool {pool_clean:.3})",
            fusion.selected.len()
        );
        clean.push(c);
        kept_by_seed.insert(seed, fusion.selected);
    }
    stages.end("DPO warmup and fusion (every seed)");

    let pairs = load_records(&pairs_path)?;
    let test_pairs = load_records(&run.file("heldout-pairs.jsonl"))?;
    let fusion_kept = kept_by_seed.values().next().map_or(0, Vec::len);
    let kept = Arm { name: "fusion (kept)".into(), subset: Subset::PerSeed(kept_by_seed) };
    let mut arms = eval::random_arms(std::slice::from_ref(&kept));
    arms.insert(0, kept);
    arms.push(Arm { name: "whole pool".into(), subset: Subset::Fixed((0..pairs.len()).collect()) });
    let validation = load_records(&run.file("val-pairs.jsonl"))?;
    let inputs = EvalInputs {
        pool: &pairs,
        arms: &arms,
        tests: TestSets { test: None, pairs: Some(&test_pairs) },
        targets: &[&validation],
    };
    let report = eval::run_and_write(
        &run.loaded.model,
        &run.loaded.tokenizer,
        &inputs,
        &o.dpo_eval,
        run.compute,
        &run.out.join("eval-dpo"),
    )?;
    stages.end("eval (preference)");
    let fusion_clean = clean.iter().sum::<f64>() / clean.len().max(1) as f64;
    Ok(PreferenceHalf { dpo_lr, pool_clean, fusion_clean, fusion_kept, report })
}

/// How the DPO warmup's learning rate was chosen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LrChoice {
    pub chosen: f64,
    /// Each candidate and the mean DPO loss of its checkpoint on the validation pairs.
    pub validation_loss: Vec<(f64, f64)>,
}

/// The DPO warmup at the first seed with each learning rate of `dpo_warmup_lrs`; the one whose
/// last checkpoint has the lowest mean DPO loss on the validation pairs (clean pairs a user
/// has; TIF's validation set) is chosen. Returns it and its checkpoints (the first seed's warmup).
fn choose_dpo_lr(run: &Run<'_>, pairs: &Path) -> Result<(LrChoice, Vec<PathBuf>)> {
    let o = run.opts;
    let seed =
        *o.dpo_eval.seeds.first().ok_or_else(|| Error::setting(Setting::Seeds, "the demo needs at least one seed"))?;
    let validation = load_records(&run.file("val-pairs.jsonl"))?;
    let (val, _) = run.loaded.tokenizer.examples(&validation.examples, o.dpo_warmup.max_len)?;
    let beta = match o.dpo_warmup.loss {
        LossKind::Dpo { beta } => beta,
        LossKind::Sft | LossKind::SftSum => {
            return Err(Error::setting(Setting::Loss, "the demo's DPO warmup must use the DPO loss"))
        }
    };
    let mut best: Option<(f64, f64, Vec<PathBuf>)> = None;
    let mut validation_loss = Vec::new();
    for &lr in &o.dpo_warmup_lrs {
        let opts = WarmupOptions { lr, ..o.dpo_warmup.clone() };
        let ckpts = run.warmup(pairs, &opts, seed, &format!("warmup-dpo-lr-{lr:e}"))?;
        let last = ckpts.last().ok_or_else(|| Error::Internal("the DPO warmup saved no checkpoint".into()))?;
        let adapter = LoraAdapter::load(last, &run.loaded.model.linears)?;
        let stats = dpo_stats(&run.loaded.model, &adapter, None, &val, beta, &run.compute.device)?;
        let loss = stats.iter().map(|s| s.loss).sum::<f64>() / stats.len().max(1) as f64;
        tracing::info!("demo: DPO warmup at lr {lr:e}: validation DPO loss {loss:.4}");
        validation_loss.push((lr, loss));
        if best.as_ref().is_none_or(|b| loss < b.1) {
            best = Some((lr, loss, ckpts));
        }
    }
    let (chosen, _, ckpts) = best
        .ok_or_else(|| Error::setting(Setting::DpoWarmupLrs, "the demo needs at least one DPO warmup learning rate"))?;
    Ok((LrChoice { chosen, validation_loss }, ckpts))
}

/// Runs the demo into `out`, logging one line per stage.
pub fn run(opts: &DemoOptions, compute: &Compute, out: &Path) -> Result<DemoReport> {
    let start = Instant::now();
    let mut stages = Stages { done: Vec::new(), lap: Instant::now() };
    let data = out.join("data");
    let suite = opts.suite.write(&data)?;
    stages.end("make-data");
    let loaded = pipeline::load(&opts.model, compute)?;
    let run = Run { opts, compute, out, loaded, suite, data };
    let (selections, instruction, budget) = instruction_half(&run, &mut stages)?;
    let preference = preference_half(&run, &mut stages)?;
    let mut report = DemoReport {
        pool: run.suite.pool_kinds.len(),
        budget,
        selections,
        instruction,
        pool_clean: preference.pool_clean,
        fusion_clean: preference.fusion_clean,
        fusion_kept: preference.fusion_kept,
        dpo_warmup_lr: preference.dpo_lr,
        preference: preference.report,
        stages: Vec::new(),
        plots: Vec::new(),
    };
    // eval.json files are on disk: the plots read them like `gradsift plot` does.
    let plots = crate::plot::plot_dir(out)?;
    report.plots = plots.iter().filter_map(|p| p.strip_prefix(out).ok().map(|r| r.display().to_string())).collect();
    stages.end("plots");
    report.stages = stages.done;
    report.stages.push(("total".into(), start.elapsed().as_secs_f64()));
    write_atomic(&out.join("demo.json"), serde_json::to_string_pretty(&report).expect("json").as_bytes())?;
    write_atomic(&out.join("report.md"), markdown(&report, opts, compute).as_bytes())?;
    Ok(report)
}

/// How each of the demo's settings was fixed: a priori, or from data a user has. None was
/// chosen by looking at the test sets or at which pairs are flipped (suite.json).
const CHOSEN: &str = "## How each setting was chosen\n\n\
| setting | value | how it was chosen |\n|---|---|---|\n\
| budget | 5% of the pool | LESS's budget (the paper selects 5% of its pool) |\n\
| SFT warmup | 2 epochs on the budget's fraction, lr 1e-3, linear schedule | LESS's recipe (a warmup on a random 5%, \
checkpoints along it), shortened from its 4 epochs for the classroom's time; lr a common LoRA rate |\n\
| projection, gradient type, β | k = 8192 sparse, Adam, 0.1 | the library's defaults (LESS's Adam features; β as in DPO) |\n\
| fine-tunes (SFT) | 60 steps of 8, lr 5e-3, LoRA on attention and MLP | fixed for time: 480 examples, about 24 passes \
over a 20-example selection, the same for every arm |\n\
| fine-tunes (DPO) | 40 steps, the library's evaluation defaults | the library's defaults |\n\
| DPO warmup | 1 epoch over the preference pool, lr from a grid | the lr with the lowest DPO loss on the clean validation \
pairs (val-pairs.jsonl, TIF's validation set), at the first seed |\n\
| fusion bands | LossDiff and IRM 20–80% | the library's defaults: nothing here knows the flip rate |\n\
| seeds | see below | enough for the exact test to be able to pass a real effect after Holm's correction: with n seeds \
the smallest p-value is 2^-n |\n\n";

/// Every setting of every arm, as report.md lists them.
fn settings(o: &DemoOptions) -> String {
    let all = serde_json::json!({
        "suite": o.suite,
        "model": { "dir": o.model.model_dir, "lora_r": o.model.lora_r, "lora_alpha": o.model.lora_alpha },
        "selection": {
            "budget_fraction": o.fraction,
            "methods": o.methods.iter().map(|m| m.name()).collect::<Vec<_>>(),
            "features": o.features,
            "features_seed": "the evaluation seed of each run (projection, TSDS draws, DSIR noise)",
            "grad_type": o.grad_type.name(),
            "beta": o.beta,
            "warmup": o.warmup,
            "warmup_seed": "the evaluation seed of each run (subset and order)",
        },
        "fusion": {
            "tif": o.tif,
            "bands": "the library defaults: nothing in the demo knows which pairs are flipped",
            "dpo_warmup": o.dpo_warmup,
            "dpo_warmup_lrs": o.dpo_warmup_lrs,
            "dpo_warmup_lr": "the candidate whose checkpoint has the lowest mean DPO loss on val-pairs.jsonl (first seed)",
        },
        "eval_sft": o.eval,
        "eval_dpo": o.dpo_eval,
    });
    format!(
        "## Settings\n\nEvery arm's settings, in full (demo.json has the per-seed values).\n\n```json\n{}\n```\n\n",
        serde_json::to_string_pretty(&all).expect("json")
    )
}

/// report.md.
fn markdown(r: &DemoReport, opts: &DemoOptions, compute: &Compute) -> String {
    let suite = &opts.suite;
    let mut s = String::from("# gradsift demo report\n\n");
    s.push_str(&format!(
        "Pool: {} instruction examples of {} task kinds plus chat and low-quality lines (seed {}); target tasks: {}. \
         Every method selects {} examples ({:.0}%). Device: {}.\n\n",
        r.pool,
        crate::suite::tasks::KINDS.len(),
        suite.seed,
        suite.target_tasks.join(", "),
        r.budget,
        100.0 * r.budget as f64 / r.pool.max(1) as f64,
        compute.label
    ));
    s.push_str("## Does the selection beat random? (LoRA SFT, test set of the target tasks)\n\n");
    s.push_str(&r.instruction.table);
    s.push_str(&format!(
        "\nEvery fine-tune: {} steps of {} examples, lr {}, LoRA r={} α={}; seeds {:?}. Each seed redoes the warmup and every \
         selection with that seed, and a random arm of each selection's size draws a new subset per seed; the comparison \
         column is the paired difference over seeds (random's test loss minus the method's: positive = better than random), \
         its standard error and the seeds won; p = the exact one-sided sign-flip (permutation) test of the paired differences \
         (the smallest possible is 2^-seeds), Holm-adjusted over the arms of the table; \"beats\" = Holm's p ≤ 0.05, so the \
         chance of any false \"beats\" in the table is at most 5%.\n\n",
        r.instruction.options.steps,
        r.instruction.options.batch_size,
        r.instruction.options.lr,
        r.instruction.options.lora_r,
        r.instruction.options.lora_alpha,
        r.instruction.options.seeds
    ));
    s.push_str("## What each method picked\n\n| method | selected | target-task share | low-quality share | seconds |\n|---|---|---|---|---|\n");
    for x in &r.selections {
        s.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {:.1} |\n",
            x.method, x.selected, x.target_share, x.low_quality_share, x.seconds
        ));
    }
    s.push_str(&format!(
        "\n## Flipped preference pairs (TIF fusion)\n\nThe preference pool ({} pairs over every task kind) is {:.3} clean \
         ({}% of pairs flipped). After one DPO warmup epoch (per seed), the fusion of LossDiff (validation set: \
         val-pairs.jsonl, clean pairs of every kind) and IRM, each in the library's default band ({:?} and {:?} \
         percentiles: no knowledge of the flip rate), kept {} pairs at the first seed, {:.3} clean on average over the \
         seeds. DPO on the kept set against DPO on random subsets of the kept size and on the whole pool, measured on \
         held-out pairs of every kind (heldout-pairs.jsonl):\n\n",
        r.pool,
        r.pool_clean,
        (100.0 * suite.flip_rate).round(),
        opts.tif.lossdiff_band,
        opts.tif.irm_band,
        r.fusion_kept,
        r.fusion_clean
    ));
    s.push_str(&r.preference.table);
    s.push_str(&format!(
        "\nDPO (β = {}), {} steps per run. The DPO warmup's learning rate, {:e}, had the lowest mean DPO loss on the \
         validation pairs among the candidates (lr: loss) {}.\n\n",
        r.preference.options.beta,
        r.preference.options.steps,
        r.dpo_warmup_lr.chosen,
        r.dpo_warmup_lr.validation_loss.iter().map(|(lr, l)| format!("{lr:e}: {l:.4}")).collect::<Vec<_>>().join(", ")
    ));
    s.push_str(CHOSEN);
    s.push_str(&settings(opts));
    s.push_str("## Figures\n\n");
    for p in r.plots.iter().filter(|p| p.ends_with(".png")) {
        s.push_str(&format!("![{p}]({p})\n\n"));
    }
    s.push_str("## Time\n\n| stage | seconds |\n|---|---|\n");
    for (name, secs) in &r.stages {
        s.push_str(&format!("| {name} | {secs:.1} |\n"));
    }
    s
}
