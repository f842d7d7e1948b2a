//! The command line's arguments: clap structs, one per subcommand. Library option sets are
//! built from them in `convert.rs`; library enums are parsed by name through [`choice`].

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use gradsift::bench::shape::Shape;
use gradsift::choice::Choice;
use gradsift::device::DeviceChoice;
use gradsift::features::{Dtype, FeatureOptions, Pooling, ProjectionKind};
use gradsift::methods::prism::PairWeights;
use gradsift::model::{Backprop, WeightsDtype};
use gradsift::pipeline::{GradType, Method, TsdsDensity};
use gradsift::train::{DpoReference, Schedule};

/// A parser for a library enum: its names and one-line descriptions from [`Choice`].
pub fn choice<T: Choice>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::ALL.iter().map(|c| PossibleValue::new(c.name()).help(c.about())))
        .map(|name: String| T::from_name(&name).expect("clap accepted only listed names"))
}

#[derive(Parser)]
#[command(
    name = "gradsift",
    version,
    about = "Pick the training data worth fine-tuning on, by gradient influence, on any GPU (WebGPU) or the CPU."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// No progress bars or log lines: warnings and errors only.
    #[arg(long, global = true)]
    pub quiet: bool,
}

#[derive(Subcommand)]
// Built once and never moved in bulk: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// List the wgpu adapters and the one `--device auto` picks.
    Devices,
    /// Merge the shard stores of `featurize --shard` into one store, bit-identical to an
    /// unsharded run.
    Merge {
        /// The merged store's directory.
        #[arg(long)]
        out: PathBuf,
        /// The shard stores, in any order.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
    },
    /// Check every adapter and the CPU backend against the CPU reference: kernels, gradients,
    /// the end result of `select --method less`, and throughput; exits non-zero if a check fails.
    Doctor(DoctorArgs),
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
pub struct DoctorArgs {
    /// Where report.md and report.json go.
    #[arg(long, default_value = "gradsift-doctor")]
    pub out: PathBuf,
    /// `all`, or one adapter by index or name (`gradsift devices` lists them).
    #[arg(long, default_value = "all")]
    pub adapter: String,
    /// Smaller inputs and a shorter throughput run (for CI).
    #[arg(long)]
    pub quick: bool,
    /// Seed of the fresh inputs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Run this check only, and no throughput run (repeatable; to re-run a failing check):
    /// projection, sparse-projection, scoring, knn-top-k, sft-gradients, dpo-gradients,
    /// select-less (the report's names, spaces or dashes).
    #[arg(long = "check", value_name = "NAME")]
    pub checks: Vec<gradsift::doctor::CheckName>,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Report directory.
    #[arg(long, default_value = "gradsift-demo")]
    pub out: PathBuf,
    /// Seeds of every fine-tune (each arm paired with its random arm seed by seed).
    /// Ten by default: "beats" is an exact test whose smallest p-value is 2^-seeds, Holm-adjusted
    /// over the seven methods, so fewer than eight seeds can never pass.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5,6,7,8,9,10")]
    pub seeds: Vec<u64>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Args)]
pub struct MakeDataArgs {
    /// Output directory.
    #[arg(long, default_value = "gradsift-data")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Pool size (instruction pool and preference pool alike).
    #[arg(long, default_value_t = 1000)]
    pub pool: usize,
    /// Target tasks, comma-separated (the task kinds are listed in docs/guide.md, make-data).
    #[arg(long, value_delimiter = ',', default_value = "add,capital")]
    pub target_tasks: Vec<String>,
    /// Few-shot target examples per target task.
    #[arg(long, default_value_t = 4)]
    pub shots: usize,
    /// Held-out test examples per target task.
    #[arg(long, default_value_t = 40)]
    pub test: usize,
    /// Clean validation pairs per task kind (val-pairs.jsonl).
    #[arg(long, default_value_t = 10)]
    pub val_shots: usize,
    /// Fraction of the pool that is off-suite chat.
    #[arg(long, default_value_t = 0.15)]
    pub distractor_rate: f64,
    /// Fraction of the pool with wrong or evasive answers.
    #[arg(long, default_value_t = 0.15)]
    pub low_quality_rate: f64,
    /// Fraction of preference pairs with chosen and rejected swapped.
    #[arg(long, default_value_t = 0.3)]
    pub flip_rate: f64,
    /// Size of the generic mix for base-model training (base.jsonl).
    #[arg(long, default_value_t = 4000)]
    pub base: usize,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Hugging Face model directory or Hub name in the local cache [default: the model named in the first selection's
    /// manifest, else the embedded base model].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output directories of `select` to compare.
    #[arg(long, num_args = 1.., required = true)]
    pub selection: Vec<PathBuf>,
    /// The pool the selections index, its files in the order select read them [default: the
    /// pool named in the first selection's manifest].
    #[arg(long, num_args = 1..)]
    pub pool: Vec<PathBuf>,
    /// Held-out instruction records: test loss and exact-match accuracy.
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Held-out preference pairs: preference accuracy.
    #[arg(long)]
    pub test_pairs: Option<PathBuf>,
    /// Chat template for chat records: a Jinja file, or `none` [default: the model's own].
    #[arg(long, value_name = "FILE|none")]
    pub chat_template: Option<PathBuf>,
    /// Skip the random subsets (one arm per selection size, compared with each selection paired
    /// by seed).
    #[arg(long)]
    pub no_random: bool,
    /// Report the comparison although test prompts appear in the pool, a selection or a target
    /// set (the overlap is printed under the table); without it, any overlap is an error.
    #[arg(long)]
    pub allow_overlap: bool,
    /// Seeds; every arm is fine-tuned once per seed (paired across arms).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
    pub seeds: Vec<u64>,
    /// Optimiser steps of every fine-tune.
    #[arg(long, default_value_t = 40)]
    pub steps: usize,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 8)]
    pub lora_r: usize,
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f64,
    /// DPO temperature (preference pools).
    #[arg(long, default_value_t = 0.1)]
    pub beta: f64,
    /// Output directory (eval.json, eval.md).
    #[arg(long, default_value = "gradsift-eval")]
    pub out: PathBuf,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Projection dimension k (0 = none).
    #[arg(long, default_value_t = 8192)]
    pub proj_dim: usize,
    /// How P is drawn (--shape also times the dense P beside the sparse one).
    #[arg(long, value_parser = choice::<ProjectionKind>(), default_value = "sparse")]
    pub projection: ProjectionKind,
    /// Nonzeros per column of the sparse P.
    #[arg(long, default_value_t = FeatureOptions::default().proj_nnz)]
    pub proj_nnz: usize,
    /// Examples per forward/backward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Skip the wgpu adapters.
    #[arg(long)]
    pub cpu_only: bool,
    /// Time the wgpu adapters alone, not the CPU (a GPU's run at a large shape, where the
    /// CPU's would take far longer); an error when no adapter opens.
    #[arg(long, conflicts_with_all = ["cpu_only", "single_cpu"])]
    pub gpu_only: bool,
    /// Time this wgpu adapter alone (an index or a name substring from `gradsift devices`),
    /// not every one.
    #[arg(long, value_name = "INDEX|NAME", conflicts_with = "cpu_only")]
    pub gpu_adapter: Option<String>,
    /// Time only the CPU backend that computes (Flex), not NdArray beside it (halves a large
    /// shape's run). Only builds with the `ndarray` feature have NdArray; the bench lists the
    /// backends it times.
    #[arg(long)]
    pub single_cpu: bool,
    /// Benchmark LESS scoring of a synthetic feature matrix on disk instead (time, and how far
    /// peak memory rises: the scorers stream the pool a block at a time).
    #[arg(long)]
    pub scoring: bool,
    /// --scoring: candidates in the synthetic matrix.
    #[arg(long, default_value_t = 100_000)]
    pub rows: usize,
    /// --scoring: its width.
    #[arg(long, default_value_t = 2048)]
    pub dim: usize,
    /// --scoring: target examples (in two subtasks).
    #[arg(long, default_value_t = 16)]
    pub targets: usize,
    /// Featurize at a real model's shape instead: its published config with seeded random
    /// weights (generated once into the temporary directory, bf16), LoRA r = 8 on the attention projections.
    #[arg(long, value_parser = choice::<Shape>())]
    pub shape: Option<Shape>,
    /// --shape: tokens per generated record.
    #[arg(long, default_value_t = 192)]
    pub seq_len: usize,
    /// --shape: generated records.
    #[arg(long, default_value_t = 16)]
    pub examples: usize,
    /// --shape: how the gradient passes keep what their backward pass needs.
    #[arg(long, value_parser = choice::<Backprop>(), default_value = "auto")]
    pub backprop: Backprop,
    /// --shape: the type the frozen weights are kept in (see `featurize --help`).
    #[arg(long, value_parser = choice::<WeightsDtype>(), default_value = "f32")]
    pub weights_dtype: WeightsDtype,
}

#[derive(Args)]
pub struct DeviceArgs {
    /// auto = the best wgpu adapter, else the CPU backend.
    #[arg(long, value_parser = choice::<DeviceChoice>(), default_value = "auto")]
    pub device: DeviceChoice,
    /// Which wgpu adapter: an index or a name substring from `gradsift devices`.
    #[arg(long, value_name = "INDEX|NAME")]
    pub gpu_adapter: Option<String>,
    /// Ask the GPU for storage bindings of at most SIZE (bytes, or with KiB, MiB or GiB), as a
    /// browser grants a page (WebGPU's default is 128MiB): weights larger than the limit are
    /// kept in parts, as they are where the adapter's own limit is lower than a tensor.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub gpu_max_binding: Option<u64>,
}

#[derive(Args)]
pub struct ModelArgs {
    /// Hugging Face model directory (config.json, safetensors, tokenizer.json), or a Hub name
    /// ORG/NAME[@REVISION] found in the local cache (HF_HUB_CACHE, HF_HOME/hub,
    /// ~/.cache/huggingface/hub); nothing is downloaded.
    #[arg(long, value_name = "DIR|ORG/NAME[@REV]")]
    pub model: Option<PathBuf>,
    /// PEFT LoRA adapter directory; without it a fresh LoRA is created.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Rank of a fresh LoRA.
    #[arg(long, default_value_t = 8)]
    pub lora_r: usize,
    /// Alpha of a fresh LoRA (scale = alpha / r).
    #[arg(long, default_value_t = 32.0)]
    pub lora_alpha: f64,
    /// Comma-separated module-name suffixes of a fresh LoRA [default: attention projections].
    #[arg(long, value_delimiter = ',')]
    pub lora_targets: Vec<String>,
    /// Chat template for chat records: a Jinja file, or `none` [default: the model's own].
    #[arg(long, value_name = "FILE|none")]
    pub chat_template: Option<PathBuf>,
    /// How gradient passes keep what their backward pass needs: layerwise holds one block at a
    /// time (memory linear in the sequence length) for one more forward pass (attention aside).
    #[arg(long, value_parser = choice::<Backprop>(), default_value = "auto")]
    pub backprop: Backprop,
    /// The type the frozen weights are kept in on the device: f32 is exact and the same on
    /// every device; 16 bits halve their memory (products accumulate in f32; LoRA, norms,
    /// softmax and the loss stay f32).
    #[arg(long, value_parser = choice::<WeightsDtype>(), default_value = "f32")]
    pub weights_dtype: WeightsDtype,
}

#[derive(Args)]
pub struct FeatureArgs {
    /// Seed of the random projection (and of a fresh LoRA).
    #[arg(long, default_value_t = FeatureOptions::default().seed)]
    pub seed: u64,
    /// Projection dimension k; 0 = exact gradients.
    #[arg(long, default_value_t = FeatureOptions::default().proj_dim)]
    pub proj_dim: usize,
    /// How the random projection P is drawn.
    #[arg(long, value_parser = choice::<ProjectionKind>(), default_value = "sparse")]
    pub projection: ProjectionKind,
    /// Nonzeros per column of the sparse P (more: closer to the dense P on gradients with a few
    /// large entries, at proportionally more cost).
    #[arg(long, default_value_t = FeatureOptions::default().proj_nnz)]
    pub proj_nnz: usize,
    /// Storage precision of the features.
    #[arg(long, value_parser = choice::<Dtype>(), default_value = "f32")]
    pub dtype: Dtype,
    /// Truncate sequences to this many tokens.
    #[arg(long, default_value_t = FeatureOptions::default().max_len)]
    pub max_len: usize,
    /// Examples per forward/backward pass.
    #[arg(long, default_value_t = FeatureOptions::default().batch_size)]
    pub batch_size: usize,
    /// Examples per saved chunk (a resumed run restarts at the first incomplete chunk).
    #[arg(long, default_value_t = FeatureOptions::default().chunk_size)]
    pub chunk_size: usize,
    /// Replace a feature store made with other arguments.
    #[arg(long)]
    pub overwrite: bool,
    /// Batch by a budget of padded tokens instead of --batch-size: examples grouped by length,
    /// so a batch pads little (rows stay in input order in the store).
    #[arg(long)]
    pub max_batch_tokens: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LossArg {
    Sft,
    SftSum,
    Dpo,
}

#[derive(Args)]
pub struct FeaturizeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Data set (JSONL, a .json array of records, or .parquet).
    #[arg(long)]
    pub data: PathBuf,
    /// Loss whose gradient is the feature.
    #[arg(long, value_enum, default_value_t = LossArg::Sft)]
    pub loss: LossArg,
    /// DPO temperature.
    #[arg(long, default_value_t = 0.1)]
    pub beta: f64,
    /// DPO's reference policy: `base`, or the base model with the PEFT adapter in DIR
    /// [default: the one the adapter's warmup trained against (its trainer_state.json), else
    /// base].
    #[arg(long, value_name = "base|DIR", value_parser = parse_reference)]
    pub dpo_reference: Option<DpoReference>,
    /// Feature store directory.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub features: FeatureArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Featurize shard I of N (whole chunks) into a store of its own, for `gradsift merge`
    /// [default: from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX with
    /// --shards].
    #[arg(long, conflicts_with = "shards")]
    pub shard: Option<String>,
    /// The number of shards of a Kubernetes Indexed Job (its completions), with
    /// JOB_COMPLETION_INDEX.
    #[arg(long)]
    pub shards: Option<usize>,
    /// What each gradient becomes before projection: the gradient (sgd), its sign, or the Adam
    /// update with the moments of the warmup checkpoint given as --adapter (what `select
    /// --checkpoints` uses for LESS and TSDS).
    #[arg(long, value_parser = choice::<GradType>(), default_value = "sgd")]
    pub grad_type: GradType,
}

#[derive(Args)]
pub struct SelectArgs {
    /// Selection method.
    #[arg(long, value_parser = choice::<Method>(), default_value = "less")]
    pub method: Method,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Candidate pool: one or more files (JSONL, a .json array, or .parquet), read as one pool in
    /// the order given; scores.csv names each row's file and line [default: the embedded demo
    /// pool]. Without --model, the embedded model scores it.
    #[arg(long, num_args = 1..)]
    pub pool: Vec<PathBuf>,
    /// Target examples (JSONL, .json or .parquet; `task` names subtasks) [default: the embedded demo target].
    #[arg(long)]
    pub target: Option<PathBuf>,
    /// Feature stores of the pool made by `featurize` (whole, or every shard of a `--shard`
    /// job, in any order): each pool featurization takes the ones made with its own arguments
    /// (shards merged, bit-identical to computing them here) and is refused, naming what
    /// differs, when none is.
    #[arg(long, num_args = 1..)]
    pub pool_features: Vec<PathBuf>,
    /// Fraction of the pool to select.
    #[arg(long, default_value_t = 0.05, conflicts_with = "count")]
    pub fraction: f64,
    /// Number of examples to select (instead of --fraction).
    #[arg(long)]
    pub count: Option<usize>,
    /// Warmup checkpoints (from `gradsift warmup`), combined with learning-rate weights.
    #[arg(long, num_args = 1..)]
    pub checkpoints: Vec<PathBuf>,
    /// Candidate gradient type of LESS, ROSE and TSDS over gradients (other methods refuse it)
    /// [default: adam with --checkpoints, sgd without].
    #[arg(long, value_parser = choice::<GradType>())]
    pub grad_type: Option<GradType>,
    /// DPO temperature of ROSE's target loss and the TIF family.
    #[arg(long, default_value_t = 0.1)]
    pub beta: f64,
    /// DPO's reference policy of ROSE and the TIF family: `base`, or the base model with the
    /// PEFT adapter in DIR [default: the one the checkpoint's warmup trained against (its
    /// trainer_state.json), else base].
    #[arg(long, value_name = "base|DIR", value_parser = parse_reference)]
    pub dpo_reference: Option<DpoReference>,
    /// PRISM curvature: identity, or the damped covariance of the candidates' features.
    #[arg(long, value_enum, default_value_t = HessianArg::Identity)]
    pub hessian: HessianArg,
    /// PRISM: λ = damping × mean eigenvalue of the covariance.
    #[arg(long, default_value_t = 0.1)]
    pub damping: f64,
    /// PRISM target-pair weights.
    #[arg(long, value_parser = choice::<PairWeights>(), default_value = "pi")]
    pub weights: PairWeights,
    /// PRISM: use only the targets' chosen responses.
    #[arg(long)]
    pub unpaired: bool,
    /// PRISM: remove the --fraction/--count lowest-scoring candidates, keep the rest.
    #[arg(long)]
    pub repair: bool,
    /// TSDS (and nothing else): hidden-state embeddings instead of gradient features.
    #[arg(long, value_parser = choice::<Pooling>())]
    pub embed: Option<Pooling>,
    /// TSDS: precomputed candidate embeddings [N, d] (.npy), with --target-npy.
    #[arg(long, requires = "target_npy")]
    pub pool_npy: Option<PathBuf>,
    /// TSDS: precomputed query embeddings [M, d] (.npy), with --pool-npy.
    #[arg(long, requires = "pool_npy")]
    pub target_npy: Option<PathBuf>,
    /// TSDS: neighbours per query [default: min(5000, N/10)].
    #[arg(long)]
    pub tsds_k: Option<usize>,
    /// TSDS: neighbours of the density estimate [default: min(1000, N/10)].
    #[arg(long)]
    pub kde_k: Option<usize>,
    /// TSDS: kernel width (0 = no density correction).
    #[arg(long, default_value_t = 0.75)]
    pub sigma: f64,
    /// TSDS: trade-off between matching the target and diversity.
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f64,
    /// TSDS: the constant C.
    #[arg(long, default_value_t = 5.0)]
    pub tsds_c: f64,
    /// TSDS over gradients: the features its density estimate finds near-duplicates on
    /// [default: plain].
    #[arg(long, value_parser = choice::<TsdsDensity>())]
    pub tsds_density: Option<TsdsDensity>,
    /// TSDS: keep the most probable candidates instead of sampling with replacement.
    #[arg(long)]
    pub no_replacement: bool,
    /// TSDS: neighbour search; ivf = the reference's IVF-Flat index, APPROXIMATE, for large pools.
    #[arg(long, value_enum, default_value_t = IndexArg::Exact)]
    pub tsds_index: IndexArg,
    /// TSDS --tsds-index ivf: cells [default: max(1, √N / 2)].
    #[arg(long)]
    pub nlist: Option<usize>,
    /// TSDS --tsds-index ivf: cells scanned per query.
    #[arg(long, default_value_t = 10)]
    pub nprobe: usize,
    /// Loss baseline: prefer the lowest loss instead of the highest.
    #[arg(long)]
    pub low_loss: bool,
    /// TIF: keep pairs whose influence lies strictly between these percentiles.
    #[arg(long, value_parser = parse_band, default_value = "20,80")]
    pub band: (f64, f64),
    /// LossDiff (and fusion) band, percentiles.
    #[arg(long, value_parser = parse_band, default_value = "20,80")]
    pub lossdiff_band: (f64, f64),
    /// IRM (and fusion) band, percentiles.
    #[arg(long, value_parser = parse_band, default_value = "20,80")]
    pub irm_band: (f64, f64),
    /// LossDiff: learning rate of θ_val's training on the validation set.
    #[arg(long, default_value_t = 1e-4)]
    pub val_lr: f64,
    /// LossDiff: batch size of θ_val's training (its own, not --batch-size).
    #[arg(long, default_value_t = 8)]
    pub val_batch_size: usize,
    /// LossDiff: epochs of θ_val's training (the paper: one).
    #[arg(long, default_value_t = 1)]
    pub val_epochs: usize,
    /// LossDiff: θ_val's learning-rate schedule after warmup.
    #[arg(long, value_parser = choice::<Schedule>(), default_value = "constant")]
    pub val_schedule: Schedule,
    /// Fusion: also compute the influence (IF) and report the overlap with TIF's band (costs a
    /// gradient pass over the pool).
    #[arg(long)]
    pub with_if: bool,
    /// Output directory.
    #[arg(long, default_value = "gradsift-out")]
    pub out: PathBuf,
    #[command(flatten)]
    pub features: FeatureArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// TSDS's neighbour search.
#[derive(Clone, Copy, ValueEnum)]
pub enum IndexArg {
    Exact,
    Ivf,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum HessianArg {
    Identity,
    Cov,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum WarmupLoss {
    Sft,
    Dpo,
}

#[derive(Args)]
pub struct WarmupArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Pool to draw the warmup subset from: one or more files (JSONL, .json or .parquet)
    /// [default: the embedded demo pool]. Without --model, the embedded model trains on it.
    #[arg(long, num_args = 1..)]
    pub pool: Vec<PathBuf>,
    /// Fraction of the pool to train on.
    #[arg(long, default_value_t = 0.05)]
    pub fraction: f64,
    #[arg(long, default_value_t = 4)]
    pub epochs: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-5)]
    pub lr: f64,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0.03)]
    pub warmup_ratio: f64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// sft for instruction data, dpo for preference pairs (against --dpo-reference).
    #[arg(long, value_enum, default_value_t = WarmupLoss::Sft)]
    pub loss: WarmupLoss,
    #[arg(long, default_value_t = 0.1)]
    pub beta: f64,
    /// DPO's reference policy: `base`, or the base model with the PEFT adapter in DIR
    /// [default: the policy the run starts from: the --adapter, an SFT policy, as TRL's
    /// ref_model; the base model for a fresh adapter].
    #[arg(long, value_name = "base|DIR", value_parser = parse_reference)]
    pub dpo_reference: Option<DpoReference>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 512)]
    pub max_len: usize,
    /// Output directory (checkpoint-1, checkpoint-2, ...).
    #[arg(long, default_value = "gradsift-warmup")]
    pub out: PathBuf,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// `--dpo-reference`: `base` or an adapter directory.
fn parse_reference(s: &str) -> std::result::Result<DpoReference, String> {
    match s.trim() {
        "" => Err("expected `base` or an adapter directory".into()),
        s => Ok(DpoReference::parse(s)),
    }
}

/// Parses `LO,HI` percentiles.
pub fn parse_band(s: &str) -> std::result::Result<(f64, f64), String> {
    let (lo, hi) = s.split_once(',').ok_or("expected LO,HI (percentiles)")?;
    let (lo, hi): (f64, f64) =
        (lo.trim().parse().map_err(|e| format!("{e}"))?, hi.trim().parse().map_err(|e| format!("{e}"))?);
    if !(0.0..=100.0).contains(&lo) || !(0.0..=100.0).contains(&hi) || lo >= hi {
        return Err(format!("{lo},{hi}: need 0 <= LO < HI <= 100"));
    }
    Ok((lo, hi))
}

/// Parses a size in bytes: a whole number, optionally followed by KiB, MiB or GiB.
fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(digits);
    let n: u64 = n.parse().map_err(|_| format!("`{s}`: expected a number of bytes, e.g. 64MiB"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        u => return Err(format!("`{u}`: the unit is one of B, KiB, MiB, GiB")),
    };
    match n.checked_shl(shift).filter(|&b| b >> shift == n && b > 0) {
        Some(b) => Ok(b),
        None => Err(format!("`{s}`: a size above 0 that fits in 64 bits")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_read_bytes_and_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        for bad in ["", "MiB", "64MB", "0", "-1", "99999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad} accepted");
        }
    }
}
