//! `gradsift demo`: the classroom run. Make the task suite → warm up → featurize and select with
//! every method at the same budget → fine-tune on each selection and on random subsets of the
//! same size → write a report directory (report.md, eval tables, selections, plots).
//!
//! The preference half asks the TIF question: on a pool with flipped pairs, does the fusion's
//! kept set hold clean pairs, and does DPO on it beat DPO on the whole pool?

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::load_jsonl;
use crate::device::Compute;
use crate::error::Result;
use crate::eval::{self, Arm, EvalOptions, EvalReport, Subset, TestSets};
use crate::features::{Dtype, LossKind};
use crate::pipeline::{self, FeatureOptions, GradType, Method, ModelSpec, SelectSpec, TifOptions};
use crate::select::Budget;
use crate::suite::{SuiteManifest, SuiteSpec};
use crate::train::{AdamWConfig, WarmupOptions};
use crate::util::write_atomic;

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub suite: SuiteSpec,
    /// The base model directory.
    pub model_dir: PathBuf,
    /// Fraction of the pool every method selects.
    pub fraction: f64,
    /// Instruction-pool methods compared with random.
    pub methods: Vec<Method>,
    pub warmup_epochs: usize,
    pub proj_dim: usize,
    pub eval: EvalOptions,
    /// DPO fine-tuning steps of the preference half (the rest: [`EvalOptions::default`]).
    pub dpo_steps: usize,
}

impl DemoOptions {
    /// The classroom defaults on `model_dir` (the embedded base model).
    pub fn classroom(model_dir: PathBuf) -> Self {
        DemoOptions {
            suite: SuiteSpec { pool: 400, ..SuiteSpec::default() },
            model_dir,
            fraction: 0.05,
            methods: vec![
                Method::Less,
                Method::Rose,
                Method::Prism,
                Method::Tsds,
                Method::Rds,
                Method::Dsir,
                Method::Loss,
            ],
            warmup_epochs: 2,
            proj_dim: 2048,
            eval: EvalOptions {
                steps: 60,
                lr: 5e-3,
                lora_targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
                    .map(String::from)
                    .to_vec(),
                ..EvalOptions::default()
            },
            dpo_steps: 40,
        }
    }
}

/// What one method's selection looked like.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SelectionInfo {
    pub method: String,
    pub dir: String,
    pub selected: usize,
    /// Share of the selection that is a correct example of a target task.
    pub target_share: f64,
    /// Share that is low quality (wrong or evasive answers).
    pub low_quality_share: f64,
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
    pub preference: EvalReport,
    /// Seconds per stage, in order.
    pub stages: Vec<(String, f64)>,
    /// Figures written (relative to the report directory).
    pub plots: Vec<String>,
}

/// Runs the demo into `out`; `log` hears one line per stage.
pub fn run(opts: &DemoOptions, compute: &Compute, out: &Path, log: &mut dyn FnMut(&str)) -> Result<DemoReport> {
    let start = Instant::now();
    let mut stages: Vec<(String, f64)> = Vec::new();
    let mut lap = |name: &str, t: &mut Instant, log: &mut dyn FnMut(&str)| {
        let s = t.elapsed().as_secs_f64();
        stages.push((name.to_string(), s));
        log(&format!("demo: {name} done in {s:.1} s"));
        *t = Instant::now();
    };
    let mut t = Instant::now();

    let data = out.join("data");
    let suite: SuiteManifest = opts.suite.write(&data)?;
    let file = |n: &str| data.join(n);
    lap("make-data", &mut t, log);

    let spec = ModelSpec {
        model_dir: opts.model_dir.clone(),
        adapter_dir: None,
        lora_r: 8,
        lora_alpha: 32.0,
        lora_targets: Vec::new(),
        seed: 0,
    };
    let loaded = pipeline::load(&spec, compute)?;
    let warm = WarmupOptions {
        fraction: opts.fraction,
        epochs: opts.warmup_epochs,
        lr: 1e-3,
        batch_size: 8,
        warmup_ratio: 0.03,
        adamw: AdamWConfig::default(),
        loss: LossKind::Sft,
        seed: 0,
        max_len: 128,
        verbose: false,
    };
    let checkpoints = pipeline::warmup(&loaded, &file("pool.jsonl"), &warm, compute, &out.join("warmup"))?;
    lap("warmup", &mut t, log);

    let features = FeatureOptions {
        seed: 0,
        proj_dim: opts.proj_dim,
        dtype: Dtype::F32,
        max_len: 128,
        batch_size: 8,
        chunk_size: 256,
        overwrite: true,
        verbose: false,
    };
    let budget = Budget::Fraction(opts.fraction);
    let select_dir = out.join("select");
    let pool_path = file("pool.jsonl");
    let pairs_path = file("pool-pairs.jsonl");
    let (target_path, target_pairs_path) = (file("target.jsonl"), file("target-pairs.jsonl"));
    let mut selections = Vec::new();
    let mut arms = Vec::new();
    // The proxies' bands start above the expected share of flipped pairs, which sink to the
    // bottom of the IRM ranking.
    let band = ((100.0 * opts.suite.flip_rate + 10.0).min(90.0), 100.0);
    let run_select = |method: Method, pool: &Path, target: Option<&Path>, checkpoints: &[PathBuf], dir: &Path| {
        let pspec = SelectSpec {
            method,
            pool,
            target,
            budget,
            checkpoints,
            grad_type: GradType::Adam,
            beta: 0.1,
            prism: Default::default(),
            tsds: Default::default(),
            tif: TifOptions { val_lr: 1e-3, lossdiff_band: band, irm_band: band, ..Default::default() },
            low_loss: false,
            opts: &features,
            out: dir,
        };
        pipeline::select(&loaded, &pspec, compute)
    };
    for &method in &opts.methods {
        let name = pipeline::method_name(method);
        let m0 = Instant::now();
        let target = match method {
            Method::Rose | Method::Prism => Some(target_pairs_path.as_path()),
            Method::Random | Method::Loss => None,
            _ => Some(target_path.as_path()),
        };
        let dir = select_dir.join(name);
        // LESS and ROSE weigh every warmup checkpoint; PRISM works at the last one; the rest
        // see the fresh adapter (TSDS) or no gradients at all.
        let ckpts: &[PathBuf] = match method {
            Method::Less | Method::Rose => &checkpoints,
            Method::Prism => &checkpoints[checkpoints.len() - 1..],
            _ => &[],
        };
        let s = run_select(method, &pool_path, target, ckpts, &dir)?;
        let share = |kind: &dyn Fn(&str) -> bool| {
            s.selected.iter().filter(|&&i| kind(&suite.pool_kinds[i])).count() as f64 / s.selected.len().max(1) as f64
        };
        let info = SelectionInfo {
            method: name.to_string(),
            dir: format!("select/{name}"),
            selected: s.selected.len(),
            target_share: share(&|k| opts.suite.target_tasks.iter().any(|t| t == k)),
            low_quality_share: share(&|k| k == "low-quality"),
            seconds: m0.elapsed().as_secs_f64(),
        };
        log(&format!(
            "demo: {name}: {} selected, {:.0}% target-task, {:.1} s",
            info.selected,
            100.0 * info.target_share,
            info.seconds
        ));
        selections.push(info);
        arms.push(Arm { name: name.to_string(), subset: Subset::Fixed(s.selected) });
    }
    lap("select", &mut t, log);

    let k = budget.count(suite.pool_kinds.len())?;
    arms.push(Arm { name: "random".into(), subset: Subset::Random(k) });
    let pool = load_jsonl(&pool_path)?;
    let test = load_jsonl(&file("test.jsonl"))?;
    let instruction = eval::run_and_write(
        &loaded.model,
        &loaded.tokenizer,
        &pool,
        &arms,
        TestSets { test: Some(&test), pairs: None },
        &opts.eval,
        compute,
        &out.join("eval"),
        &mut |r| log(&format!("demo: eval {} seed {}: {}", r.arm, r.seed, r.metrics)),
    )?;
    lap("eval (instruction)", &mut t, log);

    // The TIF family scores pairs at a DPO warmup checkpoint: one epoch on the whole pool.
    // A light epoch: margins then reflect what the pool agrees on rather than memorised pairs
    // (measured on the demo pool: IRM separates flipped pairs with AUC 0.70 at lr 2e-4, 0.58
    // after two epochs at 2e-3).
    let dpo_warm = WarmupOptions {
        fraction: 1.0,
        epochs: 1,
        lr: 2e-4,
        warmup_ratio: 0.0,
        loss: LossKind::Dpo { beta: 0.1 },
        ..warm
    };
    let dpo_ckpt = pipeline::warmup(&loaded, &pairs_path, &dpo_warm, compute, &out.join("warmup-dpo"))?;
    let fusion_dir = select_dir.join("fusion");
    let last = &dpo_ckpt[dpo_ckpt.len() - 1..];
    let fusion = run_select(Method::Fusion, &pairs_path, Some(&file("val-pairs.jsonl")), last, &fusion_dir)?;
    let flipped: std::collections::HashSet<usize> = suite.flipped.iter().map(|l| l - 1).collect();
    let n_pairs = opts.suite.pool;
    let pool_clean = 1.0 - flipped.len() as f64 / n_pairs.max(1) as f64;
    let fusion_clean =
        fusion.selected.iter().filter(|i| !flipped.contains(i)).count() as f64 / fusion.selected.len().max(1) as f64;
    log(&format!(
        "demo: fusion kept {} of {n_pairs} pairs, clean fraction {fusion_clean:.3} (pool {pool_clean:.3})",
        fusion.selected.len()
    ));
    lap("select (fusion)", &mut t, log);

    let pairs = load_jsonl(&pairs_path)?;
    let test_pairs = load_jsonl(&file("heldout-pairs.jsonl"))?;
    // DPO moves a model that already prefers the right answer on most kinds: the default,
    // gentler budget (attention LoRA, lr 2e-3) rather than the SFT half's.
    let dpo = EvalOptions { steps: opts.dpo_steps, seeds: opts.eval.seeds.clone(), ..EvalOptions::default() };
    let pref_arms = vec![
        Arm { name: "fusion (kept)".into(), subset: Subset::Fixed(fusion.selected.clone()) },
        Arm { name: "whole pool".into(), subset: Subset::Fixed((0..pairs.len()).collect()) },
    ];
    let preference = eval::run_and_write(
        &loaded.model,
        &loaded.tokenizer,
        &pairs,
        &pref_arms,
        TestSets { test: None, pairs: Some(&test_pairs) },
        &dpo,
        compute,
        &out.join("eval-dpo"),
        &mut |r| log(&format!("demo: dpo {} seed {}: {}", r.arm, r.seed, r.metrics)),
    )?;
    lap("eval (preference)", &mut t, log);

    let mut report = DemoReport {
        pool: suite.pool_kinds.len(),
        budget: k,
        selections,
        instruction,
        pool_clean,
        fusion_clean,
        fusion_kept: fusion.selected.len(),
        preference,
        stages: Vec::new(),
        plots: Vec::new(),
    };
    // eval.json files are on disk: the plots read them like `gradsift plot` does.
    let plots = crate::plot::plot_dir(out)?;
    report.plots = plots.iter().filter_map(|p| p.strip_prefix(out).ok().map(|r| r.display().to_string())).collect();
    lap("plots", &mut t, log);
    report.stages = stages;
    report.stages.push(("total".into(), start.elapsed().as_secs_f64()));
    write_atomic(&out.join("demo.json"), serde_json::to_string_pretty(&report).expect("json").as_bytes())?;
    write_atomic(&out.join("report.md"), markdown(&report, &opts.suite, compute).as_bytes())?;
    Ok(report)
}

/// report.md.
fn markdown(r: &DemoReport, suite: &SuiteSpec, compute: &Compute) -> String {
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
        "\nEvery fine-tune: {} steps of {} examples, lr {}, LoRA r={} α={}; seeds {:?}. A random arm draws a new subset per seed.\n\n",
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
         ({}% of pairs flipped). After one DPO warmup epoch, the fusion of LossDiff (validation set: val-pairs.jsonl, \
         clean pairs of every kind) and IRM kept {} pairs, {:.3} clean. DPO on the kept set against DPO on the whole \
         pool, measured on held-out pairs of every kind (heldout-pairs.jsonl):\n\n",
        r.pool,
        r.pool_clean,
        (100.0 * suite.flip_rate).round(),
        r.fusion_kept,
        r.fusion_clean
    ));
    s.push_str(&r.preference.table);
    s.push_str(&format!(
        "\nDPO (β = {}), {} steps per run.\n\n",
        r.preference.options.beta, r.preference.options.steps
    ));
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
