//! One function per subcommand: resolve the inputs, call the library, print what came out.

use std::path::Path;

use anyhow::{bail, Context, Result};

use gradsift::assets;
use gradsift::choice::Choice;
use gradsift::demo::DemoOptions;
use gradsift::device::{self, Compute};
use gradsift::eval::{EvalInputs, EvalOptions, TestSets};
use gradsift::features::shard::Shard;
use gradsift::features::FeatureOptions;
use gradsift::pipeline::{self, MethodSpec, SelectSpec};

use super::args::{
    BenchArgs, DemoArgs, DeviceArgs, DoctorArgs, EvalArgs, FeaturizeArgs, MakeDataArgs, SelectArgs, WarmupArgs,
};
use super::say;

fn open_device(args: &DeviceArgs) -> Result<Compute> {
    let c = device::open_limited(args.device, args.gpu_adapter.as_deref(), args.gpu_max_binding)?;
    if let Some(n) = &c.notice {
        tracing::warn!("{n}");
    }
    Ok(c)
}

/// Loads the model and says which checkpoint tensors the architecture did not use.
fn load_model(spec: &pipeline::ModelSpec, compute: &Compute) -> Result<pipeline::Loaded> {
    let loaded = pipeline::load(spec, compute)?;
    let unused = &loaded.model.unused;
    if !unused.is_empty() {
        let shown: Vec<&str> = unused.iter().take(5).map(String::as_str).collect();
        tracing::warn!(
            "note: {} checkpoint tensors unused by the architecture: {}{}",
            unused.len(),
            shown.join(", "),
            if unused.len() > 5 { ", ..." } else { "" }
        );
    }
    Ok(loaded)
}

/// The embedded default's files, with a one-line notice of where they are.
fn embedded() -> Result<assets::DefaultAssets> {
    let d = assets::materialize()?;
    tracing::info!(
        "using the embedded default model and demo data ({})",
        d.model_dir.parent().unwrap_or(&d.model_dir).display()
    );
    Ok(d)
}

/// The embedded model, for a user's own data given without --model; said in one line.
fn embedded_model() -> Result<std::path::PathBuf> {
    let d = assets::materialize()?;
    tracing::info!("no --model: using the embedded demo model ({})", d.model_dir.display());
    Ok(d.model_dir)
}

pub fn merge(out: &Path, shards: &[std::path::PathBuf]) -> Result<()> {
    let m = gradsift::features::merge::merge(shards, out)?;
    say(format_args!(
        "merged {} shards: {} rows of width {} -> {}",
        shards.len(),
        m.num_examples,
        m.feature_dim,
        out.display()
    ))
}

pub fn doctor(a: DoctorArgs) -> Result<()> {
    use gradsift::doctor::{self, Adapters, DoctorOptions};
    let adapters = if a.adapter.eq_ignore_ascii_case("all") { Adapters::All } else { Adapters::One(a.adapter.clone()) };
    let report = doctor::run(&DoctorOptions { adapters, quick: a.quick, seed: a.seed, only: a.checks })?;
    doctor::write(&report, &a.out)?;
    say(doctor::markdown(&report))?;
    let failed: usize = report
        .devices
        .iter()
        .map(|d| d.checks.iter().filter(|c| !c.passed).count() + usize::from(d.error.is_some()))
        .sum();
    if failed > 0 {
        bail!("doctor: {failed} checks failed (report: {})", a.out.join("report.md").display());
    }
    say(format_args!("wrote {}", a.out.join("report.json").display()))
}

pub fn devices() -> Result<()> {
    let adapters = device::list_adapters();
    if adapters.is_empty() {
        say("no wgpu adapter (Vulkan, Metal or DX12); --device auto uses the CPU backend")?;
        return Ok(());
    }
    let pick = device::auto_pick(&adapters)?;
    for a in &adapters {
        let mark = if Some(a.index) == pick { "  <- auto" } else { "" };
        say(format_args!("{}{mark}", a.describe()))?;
    }
    if pick.is_none() {
        say("--device auto uses the CPU backend (no hardware adapter; --device gpu takes the best one listed)")?;
    }
    Ok(())
}

pub fn featurize(a: FeaturizeArgs) -> Result<()> {
    let Some(model_dir) = a.model.model.clone() else { bail!("featurize needs --model DIR") };
    let compute = open_device(&a.device)?;
    let loaded = load_model(&a.model.spec(model_dir, a.features.seed), &compute)?;
    let opts = FeatureOptions::from(&a.features);
    let shard = match &a.shard {
        Some(s) => Some(Shard::parse(s)?),
        None => Shard::from_env(|k| std::env::var(k).ok(), a.shards)?,
    };
    if let Some(s) = shard {
        tracing::info!("featurize: shard {} of {}", s.index, s.count);
    }
    let what = pipeline::Gradients {
        data: &a.data,
        loss: a.loss.loss(a.beta),
        grad_type: a.grad_type,
        dpo_reference: a.dpo_reference.clone(),
    };
    let f = pipeline::featurize(&loaded, &what, &opts, &compute, &a.out, shard)?;
    say(format_args!("wrote {} features of width {} to {}", f.rows, f.dim, a.out.display()))
}

pub fn select(a: SelectArgs) -> Result<()> {
    let method = a.method;
    if let (Some(pool_npy), Some(target_npy)) = (&a.pool_npy, &a.target_npy) {
        return tsds_on_matrices(&a, pool_npy, target_npy);
    }
    let (model_dir, pool, target) = match (&a.model.model, a.pool.is_empty()) {
        (None, true) if a.target.is_none() => {
            let d = embedded()?;
            let target = method.target_kind().map(|k| d.target_of(k).clone());
            (d.model_dir.clone(), vec![d.pool_of(method.pool_kind()).clone()], target)
        }
        (None, true) => bail!("--target needs --pool: the candidates to score against it"),
        (Some(_), true) => bail!("--model needs --pool: the candidates to score"),
        (Some(m), false) => (m.clone(), a.pool.clone(), a.target.clone()),
        (None, false) => (embedded_model()?, a.pool.clone(), a.target.clone()),
    };
    let compute = open_device(&a.device)?;
    let loaded = load_model(&a.model.spec(model_dir, a.features.seed), &compute)?;
    let opts = FeatureOptions::from(&a.features);
    let method_spec = MethodSpec::new(method, target.as_deref(), &a.checkpoints, &a.method_options())?;
    let spec = SelectSpec {
        pool: &pool,
        method: method_spec,
        budget: a.budget(),
        opts: &opts,
        out: &a.out,
        pool_features: &a.pool_features,
    };
    let s = pipeline::select(&loaded, &spec, &compute).with_context(|| format!("select --method {}", method.name()))?;
    say(format_args!("selected {} of {} examples -> {}", s.selected.len(), s.pool_size, s.out.display()))
}

/// TSDS on two embedding matrices, as the reference runs: no model and no target file; the
/// pool files, when given, name the lines the rows stand for.
fn tsds_on_matrices(a: &SelectArgs, pool_npy: &Path, target_npy: &Path) -> Result<()> {
    if a.method != gradsift::pipeline::Method::Tsds {
        bail!("--pool-npy and --target-npy are TSDS's inputs; use them with --method tsds");
    }
    if a.model.model.is_some() || a.target.is_some() {
        bail!("--pool-npy and --target-npy replace the model and the target: leave out --model and --target");
    }
    let pool = if a.pool.is_empty() { None } else { Some(gradsift::data::load_files(&a.pool)?) };
    let compute = open_device(&a.device)?;
    let s = pipeline::tsds_on_matrices(
        pool_npy,
        target_npy,
        pool.as_ref(),
        &a.tsds(),
        a.budget(),
        a.features.seed,
        &compute,
        &a.out,
    )?;
    say(format_args!("selected {} of {} rows -> {}", s.selected.len(), s.pool_size, s.out.display()))
}

pub fn warmup(a: WarmupArgs) -> Result<()> {
    let (model_dir, pool) = match (&a.model.model, a.pool.is_empty()) {
        (None, true) => {
            let d = embedded()?;
            let pool = d.pool_of(a.loss.loss(a.beta).records()).clone();
            (d.model_dir, vec![pool])
        }
        (Some(_), true) => bail!("--model needs --pool: the examples to train on"),
        (Some(m), false) => (m.clone(), a.pool.clone()),
        (None, false) => (embedded_model()?, a.pool.clone()),
    };
    let compute = open_device(&a.device)?;
    let loaded = load_model(&a.model.spec(model_dir, a.seed), &compute)?;
    let paths = pipeline::warmup(&loaded, &pool, &(&a).into(), &compute, &a.out)?;
    for p in paths {
        say(p.display())?;
    }
    Ok(())
}

pub fn bench(a: BenchArgs) -> Result<()> {
    // The scoring bench needs one CPU backend: the CPU scorer is plain Rust, whatever the
    // tensor backend.
    use gradsift::bench::{Adapters, Cpus};
    let cpus = match (a.gpu_only, a.scoring || a.single_cpu) {
        (true, _) => Cpus::None,
        (false, true) => Cpus::One,
        (false, false) => Cpus::Both,
    };
    let adapters = match (a.cpu_only, a.gpu_adapter.as_deref()) {
        (true, _) => Adapters::None,
        (false, Some(spec)) => Adapters::Named(spec),
        (false, None) => Adapters::All,
    };
    let (backends, skipped) = gradsift::bench::backends(cpus, adapters)?;
    for (adapter, why) in skipped {
        say(format_args!("{adapter}: skipped ({why})"))?;
    }
    if backends.is_empty() {
        bail!("--gpu-only: no wgpu adapter opened (`gradsift doctor` says why)");
    }
    if a.scoring {
        return bench_scoring(&a, &backends);
    }
    if let Some(shape) = a.shape {
        use gradsift::bench::shape::{self, ShapeOptions};
        let o = ShapeOptions {
            shape,
            seq_len: a.seq_len,
            batch: a.batch_size,
            proj_dim: a.proj_dim,
            projection: a.projection,
            proj_nnz: a.proj_nnz,
            examples: a.examples,
            backprop: a.backprop,
            weights_dtype: a.weights_dtype,
            dir: std::env::temp_dir().join(format!("gradsift-bench-{}", shape.name())),
        };
        for c in &backends {
            for line in shape::run(&o, c)?.lines() {
                say(line)?;
            }
        }
        return Ok(());
    }
    say("featurization of the embedded demo pool (SFT loss, fresh LoRA r=8 on q/k/v/o)")?;
    for c in &backends {
        let t = gradsift::bench::featurize_throughput(c, a.proj_dim, a.projection, a.proj_nnz, a.batch_size)?;
        say(t.line(a.proj_dim, a.projection, a.batch_size))?;
    }
    Ok(())
}

fn bench_scoring(a: &BenchArgs, backends: &[Compute]) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("gradsift-bench-scoring-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let result = (|| -> Result<()> {
        let (matrix, targets) = gradsift::bench::scoring_inputs(&dir, a.rows, a.dim, a.targets)?;
        say("LESS scoring of a feature matrix on disk, then the top 5%")?;
        for c in backends {
            match gradsift::bench::scoring_memory(c, &matrix, &targets) {
                Ok(r) => say(r.line())?,
                Err(e) => say(format_args!("{}: skipped ({e})", c.label))?,
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

pub fn make_data(a: MakeDataArgs) -> Result<()> {
    let out = a.out.clone();
    let m = gradsift::suite::SuiteSpec::from(a).write(&out)?;
    say(format_args!("wrote {} to {}", m.files.join(", "), out.display()))
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let selections =
        a.selection.iter().map(|d| gradsift::eval::read_selection(d)).collect::<gradsift::Result<Vec<_>>>()?;
    let pool_files = match (a.pool.is_empty(), selections[0].pool.is_empty()) {
        (false, _) => a.pool.clone(),
        (true, false) => selections[0].pool.clone(),
        (true, true) => bail!("{}: no manifest.json names the pool; give --pool", a.selection[0].display()),
    };
    let model_dir = match (&a.model, &selections[0].model) {
        (Some(m), _) | (None, Some(m)) => m.clone(),
        (None, None) => embedded_model()?,
    };
    let compute = open_device(&a.device)?;
    let pool = gradsift::data::load_files(&pool_files)?;
    let test = a.test.as_deref().map(gradsift::data::load_records).transpose()?;
    let pairs = a.test_pairs.as_deref().map(gradsift::data::load_records).transpose()?;
    let arms = gradsift::eval::arms(&selections, !a.no_random);
    let opts = EvalOptions {
        steps: a.steps,
        batch_size: a.batch_size,
        lr: a.lr,
        lora_r: a.lora_r,
        lora_alpha: a.lora_alpha,
        seeds: a.seeds.clone(),
        beta: a.beta,
        allow_overlap: a.allow_overlap,
        ..EvalOptions::default()
    };
    let tests = TestSets { test: test.as_ref(), pairs: pairs.as_ref() };
    // The targets the selections were made for: a test prompt among them is a leak too.
    let mut target_files: Vec<&Path> = selections.iter().filter_map(|s| s.target.as_deref()).collect();
    target_files.dedup();
    let targets = target_files.iter().map(|p| gradsift::data::load_records(p)).collect::<gradsift::Result<Vec<_>>>()?;
    let targets: Vec<&gradsift::data::Dataset> = targets.iter().collect();
    // Fine-tuning measures the selections: the exact f32 model, whatever selected them.
    let (model, tokenizer) =
        pipeline::load_base(&model_dir, &a.chat_template(), gradsift::model::WeightsDtype::F32, &compute)?;
    let inputs = EvalInputs { pool: &pool, arms: &arms, tests, targets: &targets };
    let report = gradsift::eval::run_and_write(&model, &tokenizer, &inputs, &opts, &compute, &a.out)?;
    say(&report.table)?;
    say(format_args!("wrote {}", a.out.join("eval.md").display()))
}

pub fn demo(a: DemoArgs) -> Result<()> {
    let compute = open_device(&a.device)?;
    let assets = assets::materialize()?;
    let mut opts = DemoOptions::classroom(assets.model_dir);
    opts.set_seeds(a.seeds);
    let r = gradsift::demo::run(&opts, &compute, &a.out)?;
    say(&r.instruction.table)?;
    say(format_args!("report: {}", a.out.join("report.md").display()))
}

pub fn plot(dir: &Path) -> Result<()> {
    for p in gradsift::plot::plot_dir(dir)? {
        say(p.display())?;
    }
    Ok(())
}
