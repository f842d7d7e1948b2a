//! The `gradsift` command line: argument parsing only; every subcommand calls the library.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use gradsift::data::TextTokenizer;
use gradsift::demo::DemoOptions;
use gradsift::device::{self, Compute, DeviceChoice};
use gradsift::eval::{Arm, EvalOptions, Subset, TestSets};
use gradsift::features::Pooling;
use gradsift::features::{Dtype, LossKind};
use gradsift::methods::ivf::IvfParams;
use gradsift::methods::prism::{Hessian, PairWeights};
use gradsift::methods::tsds::{KnnIndex, TsdsParams};
use gradsift::model::CausalLm;
use gradsift::pipeline::{
    self, FeatureOptions, GradType, Method, ModelSpec, PrismOptions, SelectSpec, TifOptions, TsdsOptions,
};
use gradsift::select::Budget;
use gradsift::suite::SuiteSpec;
use gradsift::train::{AdamWConfig, WarmupOptions};

#[derive(Parser)]
#[command(
    name = "gradsift",
    version,
    about = "Pick the training data worth fine-tuning on, by gradient influence, on any GPU (WebGPU) or the CPU."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the wgpu adapters and the one `--device auto` picks.
    Devices,
    /// Compute per-example gradient features of a data set into a feature store.
    Featurize(FeaturizeArgs),
    /// Score a pool against a target set and write the selected subset.
    Select(SelectArgs),
    /// LoRA warmup training on a random fraction of the pool, a checkpoint per epoch.
    Warmup(WarmupArgs),
    /// Measure featurization throughput on every backend (the embedded model and demo pool).
    Bench(BenchArgs),
    /// Generate a seeded task suite: pool, pairs, few-shot targets, held-out tests.
    MakeData(MakeDataArgs),
    /// Fine-tune on selections and on random subsets of the same size; measure on test data.
    Eval(EvalArgs),
    /// Draw the figures of a select, eval or demo output directory (PNG and SVG, in DIR/plots).
    Plot {
        /// The output directory to draw from.
        dir: PathBuf,
    },
    /// The classroom run on the embedded default: make data, warm up, select with every method,
    /// evaluate against random, write a report.
    Demo(DemoArgs),
}

#[derive(Args)]
struct DemoArgs {
    /// Report directory.
    #[arg(long, default_value = "gradsift-demo")]
    out: PathBuf,
    /// Seeds of every fine-tune.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    seeds: Vec<u64>,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args)]
struct MakeDataArgs {
    /// Output directory.
    #[arg(long, default_value = "gradsift-data")]
    out: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Pool size (instruction pool and preference pool alike).
    #[arg(long, default_value_t = 1000)]
    pool: usize,
    /// Target tasks, comma-separated (see the task list in README.md).
    #[arg(long, value_delimiter = ',', default_value = "add,capital")]
    target_tasks: Vec<String>,
    /// Few-shot target examples per target task.
    #[arg(long, default_value_t = 4)]
    shots: usize,
    /// Held-out test examples per target task.
    #[arg(long, default_value_t = 40)]
    test: usize,
    /// Clean validation pairs per task kind (val-pairs.jsonl).
    #[arg(long, default_value_t = 10)]
    val_shots: usize,
    /// Fraction of the pool that is off-suite chat.
    #[arg(long, default_value_t = 0.15)]
    distractor_rate: f64,
    /// Fraction of the pool with wrong or evasive answers.
    #[arg(long, default_value_t = 0.15)]
    low_quality_rate: f64,
    /// Fraction of preference pairs with chosen and rejected swapped.
    #[arg(long, default_value_t = 0.3)]
    flip_rate: f64,
    /// Size of the generic mix for base-model training (base.jsonl).
    #[arg(long, default_value_t = 4000)]
    base: usize,
}

#[derive(Args)]
struct EvalArgs {
    /// Hugging Face model directory [default: the model named in the first selection's
    /// manifest, else the embedded base model].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Output directories of `select` to compare.
    #[arg(long, num_args = 1.., required = true)]
    selection: Vec<PathBuf>,
    /// The pool the selections index [default: the pool named in the first selection's manifest].
    #[arg(long)]
    pool: Option<PathBuf>,
    /// Held-out instruction records: test loss and exact-match accuracy.
    #[arg(long)]
    test: Option<PathBuf>,
    /// Held-out preference pairs: preference accuracy.
    #[arg(long)]
    test_pairs: Option<PathBuf>,
    /// Skip the random subsets (of the first selection's size).
    #[arg(long)]
    no_random: bool,
    /// Seeds; every arm is fine-tuned once per seed.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    seeds: Vec<u64>,
    /// Optimiser steps of every fine-tune.
    #[arg(long, default_value_t = 40)]
    steps: usize,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    #[arg(long, default_value_t = 8)]
    lora_r: usize,
    #[arg(long, default_value_t = 16.0)]
    lora_alpha: f64,
    /// DPO temperature (preference pools).
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    /// Output directory (eval.json, eval.md).
    #[arg(long, default_value = "gradsift-eval")]
    out: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args)]
struct BenchArgs {
    /// Projection dimension k (0 = none).
    #[arg(long, default_value_t = 8192)]
    proj_dim: usize,
    /// Examples per forward/backward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Skip the wgpu adapters.
    #[arg(long)]
    cpu_only: bool,
    /// Benchmark LESS scoring of a synthetic feature matrix on disk instead (time, and how far
    /// peak memory rises: the scorers stream the pool a block at a time).
    #[arg(long)]
    scoring: bool,
    /// --scoring: candidates in the synthetic matrix.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// --scoring: its width.
    #[arg(long, default_value_t = 2048)]
    dim: usize,
    /// --scoring: target examples (in two subtasks).
    #[arg(long, default_value_t = 16)]
    targets: usize,
}

#[derive(Args)]
struct DeviceArgs {
    /// auto = the best wgpu adapter, else the CPU backend.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Which wgpu adapter: an index or a name substring from `gradsift devices`.
    #[arg(long, value_name = "INDEX|NAME")]
    gpu_adapter: Option<String>,
}

#[derive(Args)]
struct ModelArgs {
    /// Hugging Face model directory (config.json, safetensors, tokenizer.json).
    #[arg(long)]
    model: Option<PathBuf>,
    /// PEFT LoRA adapter directory; without it a fresh LoRA is created.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Rank of a fresh LoRA.
    #[arg(long, default_value_t = 8)]
    lora_r: usize,
    /// Alpha of a fresh LoRA (scale = alpha / r).
    #[arg(long, default_value_t = 32.0)]
    lora_alpha: f64,
    /// Comma-separated module-name suffixes of a fresh LoRA [default: attention projections].
    #[arg(long, value_delimiter = ',')]
    lora_targets: Vec<String>,
}

#[derive(Args)]
struct FeatureArgs {
    /// Seed of the random projection (and of a fresh LoRA).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Projection dimension k; 0 = exact gradients.
    #[arg(long, default_value_t = 8192)]
    proj_dim: usize,
    /// Storage precision of the features.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    dtype: Dtype,
    /// Truncate sequences to this many tokens.
    #[arg(long, default_value_t = 512)]
    max_len: usize,
    /// Examples per forward/backward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Examples per saved chunk (a resumed run restarts at the first incomplete chunk).
    #[arg(long, default_value_t = 256)]
    chunk_size: usize,
    /// Replace a feature store made with other arguments.
    #[arg(long)]
    overwrite: bool,
    /// No progress bar or log lines.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum LossArg {
    Sft,
    SftSum,
    Dpo,
}

#[derive(Args)]
struct FeaturizeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// JSONL data set.
    #[arg(long)]
    data: PathBuf,
    /// Loss whose gradient is the feature.
    #[arg(long, value_enum, default_value_t = LossArg::Sft)]
    loss: LossArg,
    /// DPO temperature.
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    /// Feature store directory.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    features: FeatureArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args)]
struct SelectArgs {
    /// Selection method.
    #[arg(long, value_enum, default_value_t = Method::Less)]
    method: Method,
    #[command(flatten)]
    model: ModelArgs,
    /// Candidate pool (JSONL) [default: the embedded demo pool].
    #[arg(long)]
    pool: Option<PathBuf>,
    /// Target examples (JSONL; `task` names subtasks) [default: the embedded demo target].
    #[arg(long)]
    target: Option<PathBuf>,
    /// Fraction of the pool to select.
    #[arg(long, default_value_t = 0.05, conflicts_with = "count")]
    fraction: f64,
    /// Number of examples to select (instead of --fraction).
    #[arg(long)]
    count: Option<usize>,
    /// Warmup checkpoints (from `gradsift warmup`), combined with learning-rate weights.
    #[arg(long, num_args = 1..)]
    checkpoints: Vec<PathBuf>,
    /// Candidate gradient type with checkpoints.
    #[arg(long, value_enum, default_value_t = GradType::Adam)]
    grad_type: GradType,
    /// DPO temperature of ROSE's target loss.
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    /// PRISM curvature: identity, or the damped covariance of the candidates' features.
    #[arg(long, value_enum, default_value_t = HessianArg::Identity)]
    hessian: HessianArg,
    /// PRISM: λ = damping × mean eigenvalue of the covariance.
    #[arg(long, default_value_t = 0.1)]
    damping: f64,
    /// PRISM target-pair weights.
    #[arg(long, value_enum, default_value_t = PairWeights::Pi)]
    weights: PairWeights,
    /// PRISM: use only the targets' chosen responses.
    #[arg(long)]
    unpaired: bool,
    /// PRISM: remove the --fraction/--count lowest-scoring candidates, keep the rest.
    #[arg(long)]
    repair: bool,
    /// TSDS (and nothing else): hidden-state embeddings instead of gradient features.
    #[arg(long, value_enum)]
    embed: Option<Pooling>,
    /// TSDS: precomputed candidate embeddings [N, d] (.npy), with --target-npy.
    #[arg(long, requires = "target_npy")]
    pool_npy: Option<PathBuf>,
    /// TSDS: precomputed query embeddings [M, d] (.npy), with --pool-npy.
    #[arg(long, requires = "pool_npy")]
    target_npy: Option<PathBuf>,
    /// TSDS: neighbours per query [default: min(5000, N/10)].
    #[arg(long)]
    tsds_k: Option<usize>,
    /// TSDS: neighbours of the density estimate [default: min(1000, N/10)].
    #[arg(long)]
    kde_k: Option<usize>,
    /// TSDS: kernel width (0 = no density correction).
    #[arg(long, default_value_t = 0.75)]
    sigma: f64,
    /// TSDS: trade-off between matching the target and diversity.
    #[arg(long, default_value_t = 0.5)]
    alpha: f64,
    /// TSDS: the constant C.
    #[arg(long, default_value_t = 5.0)]
    tsds_c: f64,
    /// TSDS: keep the most probable candidates instead of sampling with replacement.
    #[arg(long)]
    no_replacement: bool,
    /// TSDS: neighbour search; ivf = the reference's IVF-Flat index, APPROXIMATE, for large pools.
    #[arg(long, value_enum, default_value_t = IndexArg::Exact)]
    tsds_index: IndexArg,
    /// TSDS --tsds-index ivf: cells [default: max(1, √N / 2)].
    #[arg(long)]
    nlist: Option<usize>,
    /// TSDS --tsds-index ivf: cells scanned per query.
    #[arg(long, default_value_t = 10)]
    nprobe: usize,
    /// Loss baseline: prefer the lowest loss instead of the highest.
    #[arg(long)]
    low_loss: bool,
    /// TIF: keep pairs whose influence lies strictly between these percentiles.
    #[arg(long, value_parser = parse_band, default_value = "20,80")]
    band: (f64, f64),
    /// LossDiff (and fusion) band, percentiles.
    #[arg(long, value_parser = parse_band, default_value = "20,80")]
    lossdiff_band: (f64, f64),
    /// IRM (and fusion) band, percentiles.
    #[arg(long, value_parser = parse_band, default_value = "20,80")]
    irm_band: (f64, f64),
    /// LossDiff: learning rate of the one epoch on the validation set.
    #[arg(long, default_value_t = 1e-4)]
    val_lr: f64,
    /// Output directory.
    #[arg(long, default_value = "gradsift-out")]
    out: PathBuf,
    #[command(flatten)]
    features: FeatureArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

/// TSDS's neighbour search.
#[derive(Clone, Copy, ValueEnum)]
enum IndexArg {
    Exact,
    Ivf,
}

#[derive(Clone, Copy, ValueEnum)]
enum HessianArg {
    Identity,
    Cov,
}

#[derive(Clone, Copy, ValueEnum)]
enum WarmupLoss {
    Sft,
    Dpo,
}

#[derive(Args)]
struct WarmupArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Pool (JSONL) to draw the warmup subset from [default: the embedded demo pool].
    #[arg(long)]
    pool: Option<PathBuf>,
    /// Fraction of the pool to train on.
    #[arg(long, default_value_t = 0.05)]
    fraction: f64,
    #[arg(long, default_value_t = 4)]
    epochs: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-5)]
    lr: f64,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 0.03)]
    warmup_ratio: f64,
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// sft for instruction data, dpo for preference pairs (reference = the base model).
    #[arg(long, value_enum, default_value_t = WarmupLoss::Sft)]
    loss: WarmupLoss,
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 512)]
    max_len: usize,
    /// Output directory (checkpoint-1, checkpoint-2, ...).
    #[arg(long, default_value = "gradsift-warmup")]
    out: PathBuf,
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Parses `LO,HI` percentiles.
fn parse_band(s: &str) -> std::result::Result<(f64, f64), String> {
    let (lo, hi) = s.split_once(',').ok_or("expected LO,HI (percentiles)")?;
    let (lo, hi): (f64, f64) =
        (lo.trim().parse().map_err(|e| format!("{e}"))?, hi.trim().parse().map_err(|e| format!("{e}"))?);
    if !(0.0..=100.0).contains(&lo) || !(0.0..=100.0).contains(&hi) || lo >= hi {
        return Err(format!("{lo},{hi}: need 0 <= LO < HI <= 100"));
    }
    Ok((lo, hi))
}

fn open_device(args: &DeviceArgs) -> Result<Compute> {
    let c = device::open(args.device, args.gpu_adapter.as_deref())?;
    if let Some(n) = &c.notice {
        eprintln!("{n}");
    }
    Ok(c)
}

/// Loads the model and says which checkpoint tensors the architecture did not use.
fn load_model(spec: &ModelSpec, compute: &Compute) -> Result<pipeline::Loaded> {
    let loaded = pipeline::load(spec, compute)?;
    let unused = &loaded.model.unused;
    if !unused.is_empty() {
        let shown: Vec<&str> = unused.iter().take(5).map(String::as_str).collect();
        eprintln!(
            "note: {} checkpoint tensors unused by the architecture: {}{}",
            unused.len(),
            shown.join(", "),
            if unused.len() > 5 { ", ..." } else { "" }
        );
    }
    Ok(loaded)
}

fn model_spec(m: &ModelArgs, model_dir: PathBuf, seed: u64) -> ModelSpec {
    ModelSpec {
        model_dir,
        adapter_dir: m.adapter.clone(),
        lora_r: m.lora_r,
        lora_alpha: m.lora_alpha,
        lora_targets: m.lora_targets.clone(),
        seed,
    }
}

fn feature_options(f: &FeatureArgs) -> FeatureOptions {
    FeatureOptions {
        seed: f.seed,
        proj_dim: f.proj_dim,
        dtype: f.dtype,
        max_len: f.max_len,
        batch_size: f.batch_size,
        chunk_size: f.chunk_size,
        overwrite: f.overwrite,
        verbose: !f.quiet,
    }
}

fn devices() -> Result<()> {
    let adapters = device::list_adapters();
    if adapters.is_empty() {
        println!("no wgpu adapter (Vulkan, Metal or DX12); --device auto uses the CPU backend");
        return Ok(());
    }
    let pick = device::auto_pick(&adapters)?;
    for a in &adapters {
        let mark = if Some(a.index) == pick { "  <- auto" } else { "" };
        println!("{}{mark}", a.describe());
    }
    if pick.is_none() {
        println!("--device auto uses the CPU backend (no hardware adapter; --device gpu takes the best one listed)");
    }
    Ok(())
}

fn featurize(a: FeaturizeArgs) -> Result<()> {
    let Some(model_dir) = a.model.model.clone() else { bail!("featurize needs --model DIR") };
    let compute = open_device(&a.device)?;
    let loaded = load_model(&model_spec(&a.model, model_dir, a.features.seed), &compute)?;
    let loss = match a.loss {
        LossArg::Sft => LossKind::Sft,
        LossArg::SftSum => LossKind::SftSum,
        LossArg::Dpo => LossKind::Dpo { beta: a.beta },
    };
    let f = pipeline::featurize(&loaded, &a.data, loss, &feature_options(&a.features), &compute, &a.out)?;
    println!("wrote {} features of width {} to {}", f.rows, f.dim, a.out.display());
    Ok(())
}

fn select(a: SelectArgs) -> Result<()> {
    let pairs_pool = matches!(a.method, Method::Tif | Method::Lossdiff | Method::Irm | Method::Fusion);
    let (model_dir, pool, target) = match (&a.model.model, &a.pool) {
        (None, None) if a.target.is_none() => {
            let d = gradsift::assets::materialize()?;
            eprintln!(
                "using the embedded default model and demo data ({})",
                d.model_dir.parent().unwrap_or(&d.model_dir).display()
            );
            let pairs = pairs_pool || matches!(a.method, Method::Rose | Method::Prism);
            let pool = if pairs_pool { d.pool_pairs } else { d.pool };
            (d.model_dir, pool, Some(if pairs { d.target_pairs } else { d.target }))
        }
        (Some(m), Some(p)) => (m.clone(), p.clone(), a.target.clone()),
        _ => bail!("give --model and --pool (and --target) together, or none of them for the embedded default"),
    };
    let compute = open_device(&a.device)?;
    let loaded = load_model(&model_spec(&a.model, model_dir, a.features.seed), &compute)?;
    let budget = match a.count {
        Some(c) => Budget::Count(c),
        None => Budget::Fraction(a.fraction),
    };
    let opts = feature_options(&a.features);
    let spec = SelectSpec {
        method: a.method,
        pool: &pool,
        target: target.as_deref(),
        budget,
        checkpoints: &a.checkpoints,
        grad_type: a.grad_type,
        beta: a.beta,
        prism: PrismOptions {
            hessian: match a.hessian {
                HessianArg::Identity => Hessian::Identity,
                HessianArg::Cov => Hessian::Covariance { damping: a.damping },
            },
            weights: a.weights,
            unpaired: a.unpaired,
            repair: a.repair,
        },
        tsds: TsdsOptions {
            params: TsdsParams {
                k: a.tsds_k,
                kde_k: a.kde_k,
                sigma: a.sigma,
                alpha: a.alpha,
                c: a.tsds_c,
                index: match a.tsds_index {
                    IndexArg::Exact => KnnIndex::Exact,
                    IndexArg::Ivf => {
                        KnnIndex::Ivf(IvfParams { nlist: a.nlist, nprobe: a.nprobe, seed: a.features.seed })
                    }
                },
            },
            embed: a.embed,
            npy: a.pool_npy.clone().zip(a.target_npy.clone()),
            no_replacement: a.no_replacement,
        },
        low_loss: a.low_loss,
        tif: TifOptions { band: a.band, lossdiff_band: a.lossdiff_band, irm_band: a.irm_band, val_lr: a.val_lr },
        opts: &opts,
        out: &a.out,
    };
    let s = pipeline::select(&loaded, &spec, &compute).context("select")?;
    println!("selected {} of {} examples -> {}", s.selected.len(), s.pool_size, s.out.display());
    Ok(())
}

fn warmup(a: WarmupArgs) -> Result<()> {
    let (model_dir, pool) = match (&a.model.model, &a.pool) {
        (None, None) => {
            let d = gradsift::assets::materialize()?;
            (d.model_dir, if matches!(a.loss, WarmupLoss::Dpo) { d.pool_pairs } else { d.pool })
        }
        (Some(m), Some(p)) => (m.clone(), p.clone()),
        _ => bail!("give --model and --pool together, or neither for the embedded default"),
    };
    let compute = open_device(&a.device)?;
    let loaded = load_model(&model_spec(&a.model, model_dir, a.seed), &compute)?;
    let opts = WarmupOptions {
        fraction: a.fraction,
        epochs: a.epochs,
        lr: a.lr,
        batch_size: a.batch_size,
        warmup_ratio: a.warmup_ratio,
        adamw: AdamWConfig { weight_decay: a.weight_decay, ..Default::default() },
        loss: match a.loss {
            WarmupLoss::Sft => LossKind::Sft,
            WarmupLoss::Dpo => LossKind::Dpo { beta: a.beta },
        },
        seed: a.seed,
        max_len: a.max_len,
        verbose: !a.quiet,
    };
    let paths = pipeline::warmup(&loaded, &pool, &opts, &compute, &a.out)?;
    for p in paths {
        println!("{}", p.display());
    }
    Ok(())
}

fn bench(a: BenchArgs) -> Result<()> {
    let mut targets = vec![Compute::cpu(), Compute::cpu_ndarray()];
    if a.scoring {
        // One CPU backend: the CPU scorer is plain Rust, whatever the tensor backend.
        targets.truncate(1);
    }
    if !a.cpu_only {
        let adapters = device::list_adapters();
        for entry in &adapters {
            match device::open_adapter(&adapters, entry) {
                Ok(c) => targets.push(c),
                Err(e) => println!("{}: skipped ({e})", entry.describe()),
            }
        }
    }
    if a.scoring {
        return bench_scoring(&a, &targets);
    }
    println!("featurization of the embedded demo pool (SFT loss, fresh LoRA r=8 on q/k/v/o)");
    for c in &targets {
        let t = gradsift::bench::featurize_throughput(c, a.proj_dim, a.batch_size)?;
        println!("{}", t.line(a.proj_dim, a.batch_size));
    }
    Ok(())
}

fn bench_scoring(a: &BenchArgs, devices: &[Compute]) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("gradsift-bench-scoring-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let matrix = gradsift::bench::synthetic_matrix(&dir.join("features.npy"), a.rows, a.dim, 1)?;
    let t = gradsift::bench::synthetic_matrix(&dir.join("targets.npy"), a.targets, a.dim, 2)?;
    let tasks = (0..a.targets).map(|j| Some(if j % 2 == 0 { "a" } else { "b" }.to_string())).collect();
    let targets = gradsift::features::Features::from_matrix(t.read_rows(0, a.targets)?, a.targets, a.dim, tasks);
    println!("LESS scoring of a feature matrix on disk, then the top 5%");
    let result = devices.iter().try_for_each(|c| -> Result<()> {
        match gradsift::bench::scoring_memory(c, &matrix, &targets) {
            Ok(r) => println!("{}", r.line()),
            Err(e) => println!("{}: skipped ({e})", c.label),
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn make_data(a: MakeDataArgs) -> Result<()> {
    let spec = SuiteSpec {
        seed: a.seed,
        pool: a.pool,
        target_tasks: a.target_tasks,
        shots: a.shots,
        test: a.test,
        val_shots: a.val_shots,
        distractor_rate: a.distractor_rate,
        low_quality_rate: a.low_quality_rate,
        flip_rate: a.flip_rate,
        base: a.base,
    };
    let m = spec.write(&a.out)?;
    println!("wrote {} to {}", m.files.join(", "), a.out.display());
    Ok(())
}

fn eval(a: EvalArgs) -> Result<()> {
    let selections =
        a.selection.iter().map(|d| gradsift::eval::read_selection(d)).collect::<gradsift::Result<Vec<_>>>()?;
    let pool_path = match (&a.pool, &selections[0].pool) {
        (Some(p), _) | (None, Some(p)) => p.clone(),
        (None, None) => bail!("{}: no manifest.json names the pool; give --pool", a.selection[0].display()),
    };
    let model_dir = match (&a.model, &selections[0].model) {
        (Some(m), _) | (None, Some(m)) => m.clone(),
        (None, None) => gradsift::assets::materialize()?.model_dir,
    };
    let compute = open_device(&a.device)?;
    let pool = gradsift::data::load_jsonl(&pool_path)?;
    let test = a.test.as_deref().map(gradsift::data::load_jsonl).transpose()?;
    let pairs = a.test_pairs.as_deref().map(gradsift::data::load_jsonl).transpose()?;
    // Arms are told apart by name: a clash (two selections of one method, or a `random`
    // selection beside the random baseline) takes the directory's name as well.
    let mut arms: Vec<Arm> = Vec::new();
    for (s, dir) in selections.iter().zip(&a.selection) {
        let mut name = s.name.clone();
        if name == "random" || arms.iter().any(|x| x.name == name) {
            name = format!("{name} ({})", dir.file_name().unwrap_or_default().to_string_lossy());
        }
        arms.push(Arm { name, subset: Subset::Fixed(s.indices.clone()) });
    }
    if !a.no_random {
        arms.push(Arm { name: "random".into(), subset: Subset::Random(selections[0].indices.len()) });
    }
    let opts = EvalOptions {
        steps: a.steps,
        batch_size: a.batch_size,
        lr: a.lr,
        lora_r: a.lora_r,
        lora_alpha: a.lora_alpha,
        seeds: a.seeds.clone(),
        beta: a.beta,
        ..EvalOptions::default()
    };
    let tests = TestSets { test: test.as_ref(), pairs: pairs.as_ref() };
    let model = CausalLm::load(&model_dir, &compute.device)?;
    let tokenizer = TextTokenizer::from_file(&model_dir.join("tokenizer.json"), model.config.eos_token_id)?;
    let report =
        gradsift::eval::run_and_write(&model, &tokenizer, &pool, &arms, tests, &opts, &compute, &a.out, &mut |r| {
            eprintln!("eval: {} seed {}: {}", r.arm, r.seed, r.metrics)
        })?;
    println!("{}", report.table);
    println!("wrote {}", a.out.join("eval.md").display());
    Ok(())
}

fn demo(a: DemoArgs) -> Result<()> {
    let compute = open_device(&a.device)?;
    let assets = gradsift::assets::materialize()?;
    let mut opts = DemoOptions::classroom(assets.model_dir);
    opts.eval.seeds = a.seeds;
    let r = gradsift::demo::run(&opts, &compute, &a.out, &mut |line| eprintln!("{line}"))?;
    println!("{}", r.instruction.table);
    println!("report: {}", a.out.join("report.md").display());
    Ok(())
}

fn plot(dir: &std::path::Path) -> Result<()> {
    for p in gradsift::plot::plot_dir(dir)? {
        println!("{}", p.display());
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Devices => devices(),
        Command::Featurize(a) => featurize(a),
        Command::Select(a) => select(a),
        Command::Warmup(a) => warmup(a),
        Command::Bench(a) => bench(a),
        Command::MakeData(a) => make_data(a),
        Command::Eval(a) => eval(a),
        Command::Demo(a) => demo(a),
        Command::Plot { dir } => plot(&dir),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
