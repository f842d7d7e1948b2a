//! `gradsift doctor`: does gradsift work, and is it right, on this machine? Every wgpu adapter
//! (hardware and software) and the CPU backend is described (name, vendor, API, driver, the
//! limits our kernels depend on), checked against the CPU reference on fresh seeded inputs
//! (the WGSL projection, scoring and kNN, per-example SFT and DPO gradients of the embedded
//! model, and the end result of `select --method less`), and timed. One adapter's failure (a
//! device lost, a shader that does not compile, a limit too small) is that adapter's row, never
//! the end of the run.

mod checks;
mod report;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use checks::{Check, CheckName, Throughput};
pub use report::markdown;

use crate::bench::shape::Shape;
use crate::choice::Choice;
use crate::data::{load_records, TextTokenizer, Tokenized};
use crate::device::{self, AdapterEntry, Compute, DeviceLimits};
use crate::error::{Error, Result};
use crate::features::FeatureOptions;
use crate::loss::LossKind;
use crate::model::ModelConfig;
use crate::pipeline::{self, Method, MethodOptions, MethodSpec, ModelSpec, SelectSpec};
use crate::select::Budget;

/// Which adapters to examine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adapters {
    /// Every wgpu adapter.
    All,
    /// One, by index or name (as `gradsift devices` lists them).
    One(String),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    pub adapters: Adapters,
    /// Smaller inputs and a shorter throughput run (for CI).
    pub quick: bool,
    /// Seed of the fresh inputs (the report records it).
    pub seed: u64,
    /// Run these checks only, and measure no throughput (to re-run a failing check); empty:
    /// every check and the throughput.
    pub only: Vec<CheckName>,
}

impl DoctorOptions {
    fn wants(&self, check: CheckName) -> bool {
        self.only.is_empty() || self.only.contains(&check)
    }

    /// Throughput is measured in whole runs only, not in runs of chosen checks.
    fn times_throughput(&self) -> bool {
        self.only.is_empty()
    }
}

/// The limits and features of an adapter our kernels depend on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdapterFacts {
    pub name: String,
    pub vendor: u32,
    pub api: String,
    pub device_type: String,
    pub driver: String,
    pub max_buffer_size: u64,
    pub max_storage_binding: u64,
    pub max_workgroup_size_x: u32,
    pub max_invocations_per_workgroup: u32,
    pub subgroup_sizes: (u32, u32),
    pub shader_f16: bool,
    /// Whether our kernels fit these limits, and what does not.
    pub kernels_fit: bool,
    pub limit_notes: Vec<String>,
    /// The largest batch of each `bench --shape` model this adapter binds, at a few lengths.
    #[serde(default)]
    pub batches: Vec<ShapeBatch>,
}

/// How large a batch of one real model's shape an adapter can take. Weights past the binding
/// limit are kept in parts, so what the limit bounds is a batch's widest activation; whether
/// the weights fit the device's memory is not known here (wgpu does not report it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShapeBatch {
    pub shape: String,
    pub tokens: usize,
    /// The most sequences of `tokens` positions whose widest activation (f32, attention and the
    /// output head a block at a time, as the layerwise backward takes them) fits one binding;
    /// 0: not even one.
    pub batch: usize,
    /// Why the adapter cannot run this shape at all, where it cannot.
    pub refused: Option<String>,
}

/// The lengths [`ShapeBatch`] is reported at.
const BATCH_LENGTHS: [usize; 2] = [512, 2048];

/// [`ShapeBatch`] of every bench shape on a device with `limits`.
fn shape_batches(limits: DeviceLimits) -> Vec<ShapeBatch> {
    let mut out = Vec::new();
    for &shape in Shape::ALL {
        let config = ModelConfig::from_value(&shape.config(), Path::new(shape.name())).expect("bench shapes parse");
        let refused = limits.refuses_vocabulary(config.vocab_size);
        for tokens in BATCH_LENGTHS {
            let batch = limits.max_binding / (4 * tokens * config.widest_layer());
            out.push(ShapeBatch { shape: shape.name().to_string(), tokens, batch, refused: refused.clone() });
        }
    }
    out
}

/// One device's row of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceReport {
    pub device: String,
    pub facts: Option<AdapterFacts>,
    pub checks: Vec<Check>,
    pub throughput: Option<Throughput>,
    /// Why the device could not be examined at all (it could not be opened, say).
    pub error: Option<String>,
    /// What was not checked on this device, and why (not a failure).
    #[serde(default)]
    pub unchecked: Option<String>,
}

impl DeviceReport {
    /// Every check passed and nothing failed outright.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|c| c.passed)
    }
}

/// report.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DoctorReport {
    pub gradsift: String,
    pub os: String,
    pub arch: String,
    pub seed: u64,
    pub quick: bool,
    /// The checks asked for (`--check`); empty: every check, and the throughput.
    #[serde(default)]
    pub only: Vec<String>,
    pub devices: Vec<DeviceReport>,
    pub passed: bool,
}

/// Our kernels' needs: 64-wide workgroups, rows of up to [`crate::gpu::MAX_ROW`] values per invocation, and
/// storage bindings of at least a few MiB.
fn facts(entry: &AdapterEntry, c: &Compute) -> AdapterFacts {
    let i = &entry.info;
    let (limits, features) = match &c.gpu {
        Some(g) => (g.device.limits(), g.device.features()),
        None => (Default::default(), Default::default()),
    };
    let mut notes = Vec::new();
    if limits.max_compute_workgroup_size_x < 64 || limits.max_compute_invocations_per_workgroup < 64 {
        notes.push("workgroups of 64 invocations are not allowed".to_string());
    }
    let binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
    if binding < (16 << 20) {
        notes.push(format!("storage bindings of {binding} bytes (under 16 MiB): large pools fall back to the CPU"));
    }
    let batches = crate::device::limits_of(&c.device).map(shape_batches).unwrap_or_default();
    AdapterFacts {
        name: i.name.clone(),
        vendor: i.vendor,
        api: format!("{:?}", i.backend),
        device_type: format!("{:?}", i.device_type),
        driver: format!("{} {}", i.driver, i.driver_info).trim().to_string(),
        max_buffer_size: limits.max_buffer_size,
        max_storage_binding: limits.max_storage_buffer_binding_size,
        max_workgroup_size_x: limits.max_compute_workgroup_size_x,
        max_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        subgroup_sizes: (i.subgroup_min_size, i.subgroup_max_size),
        shader_f16: features.contains(burn::tensor::wgpu::wgpu::Features::SHADER_F16),
        kernels_fit: notes.is_empty(),
        limit_notes: notes,
        batches,
    }
}

/// Runs `f`, turning an error or a panic (a lost device, a shader that fails to compile) into
/// a failed check named `name`.
fn guarded(name: CheckName, f: impl FnOnce() -> Result<Check>) -> Check {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => Check::failed(name, e.to_string()),
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            Check::failed(name, format!("panicked: {}", msg.unwrap_or_else(|| "no message".into())))
        }
    }
}

/// What every device is checked on: the embedded model and demo data.
struct Inputs {
    model_dir: std::path::PathBuf,
    pool: std::path::PathBuf,
    target: std::path::PathBuf,
    singles: Vec<Tokenized>,
    pairs: Vec<Tokenized>,
    /// The reference (CPU, Flex) per-example SFT and DPO gradients of `singles` and `pairs`.
    sft: Vec<f64>,
    dpo: Vec<f64>,
    /// The reference run of `select --method less` (CPU): selected indices and scores.
    less: (Vec<usize>, Vec<f64>),
}

const DPO: LossKind = LossKind::Dpo { beta: 0.1 };

/// The gradient checks `o` asks for and, when it asks for everything, the throughput of `c`,
/// with the embedded model loaded there once.
fn model_checks(c: &Compute, inputs: &Inputs, o: &DoctorOptions) -> (Vec<Check>, Option<Throughput>) {
    let wanted: Vec<CheckName> =
        [CheckName::SftGradients, CheckName::DpoGradients].into_iter().filter(|&n| o.wants(n)).collect();
    if wanted.is_empty() && !o.times_throughput() {
        return (Vec::new(), None);
    }
    let loaded = catch_unwind(AssertUnwindSafe(|| checks::model_on(c, &inputs.model_dir, o.seed)));
    let (model, adapter) = match loaded {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return (wanted.iter().map(|&n| Check::failed(n, e.to_string())).collect(), None),
        Err(_) => {
            let msg = "panicked while loading the embedded model";
            return (wanted.iter().map(|&n| Check::failed(n, msg.to_string())).collect(), None);
        }
    };
    let list = wanted
        .iter()
        .map(|&name| {
            let (examples, loss, want) = match name {
                CheckName::SftGradients => (&inputs.singles, LossKind::Sft, &inputs.sft),
                _ => (&inputs.pairs, DPO, &inputs.dpo),
            };
            guarded(name, || {
                let got = checks::grads(&model, &adapter, examples, loss, c)?;
                Ok(checks::gradients(name, got, want, examples.len()))
            })
        })
        .collect();
    let throughput = o
        .times_throughput()
        .then(|| catch_unwind(AssertUnwindSafe(|| checks::throughput(c, &model, &adapter, &inputs.singles))).ok())
        .flatten()
        .and_then(Result::ok);
    (list, throughput)
}

/// `select --method less` on the embedded default, on `c`, into a temporary directory.
fn less_on(c: &Compute, inputs: &Inputs, quick: bool, tag: &str) -> Result<(Vec<usize>, Vec<f64>)> {
    let loaded = pipeline::load(&ModelSpec::fresh(inputs.model_dir.clone()), c)?;
    let scratch = tempfile::Builder::new()
        .prefix(&format!("gradsift-doctor-{tag}-"))
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let out = scratch.path().to_path_buf();
    let opts = FeatureOptions {
        proj_dim: if quick { 256 } else { 2048 },
        max_len: 128,
        overwrite: true,
        ..Default::default()
    };
    let spec = SelectSpec {
        pool: std::slice::from_ref(&inputs.pool),
        method: MethodSpec::new(Method::Less, Some(&inputs.target), &[], &MethodOptions::default())?,
        budget: Budget::Fraction(0.05),
        opts: &opts,
        out: &out,
        pool_features: &[],
    };
    let sel = pipeline::select(&loaded, &spec, c)?;
    let mut csv = csv::Reader::from_path(out.join("scores.csv")).map_err(|e| Error::format(&out, e.to_string()))?;
    let scores = csv
        .records()
        .map(|r| r.ok().and_then(|r| r.get(1).and_then(|s| s.parse::<f64>().ok())).unwrap_or(f64::NAN))
        .collect();
    Ok((sel.selected, scores))
}

fn end_result(c: &Compute, inputs: &Inputs, quick: bool) -> Result<Check> {
    let (selected, mut scores) = less_on(c, inputs, quick, "device")?;
    let (want_sel, want_scores) = &inputs.less;
    let shared = selected.iter().filter(|i| want_sel.contains(i)).count();
    let overlap = shared as f64 / want_sel.len().max(1) as f64;
    if checks::plant_requested(CheckName::SelectLess) {
        scores[0] += 1.0;
    }
    let err = checks::rel_err(&scores, want_scores);
    // Both must hold: the same top k, and scores within the suite's tolerance.
    let error = if overlap < 1.0 { f64::INFINITY } else { err };
    Ok(Check {
        name: CheckName::SelectLess.as_str().into(),
        error,
        tolerance: 1e-4,
        passed: overlap == 1.0 && err <= 1e-4,
        detail: format!("top-{} overlap with the CPU {overlap:.3}, score rel err {err:.2e}", want_sel.len()),
    })
}

/// The checks of a wgpu adapter against the CPU reference.
fn gpu_row(entry: &AdapterEntry, adapters: &[AdapterEntry], inputs: &Inputs, o: &DoctorOptions) -> DeviceReport {
    let c = match catch_unwind(AssertUnwindSafe(|| device::open_adapter(adapters, entry))) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return DeviceReport::broken(entry.describe(), e.to_string()),
        Err(_) => return DeviceReport::broken(entry.describe(), "panicked while opening the adapter".into()),
    };
    let seed = o.seed;
    let kernels: [(CheckName, &dyn Fn() -> Result<Check>); 4] = [
        (CheckName::Projection, &|| checks::projection(&c, seed)),
        (CheckName::SparseProjection, &|| checks::sparse_projection(&c, seed)),
        (CheckName::Scoring, &|| checks::scoring(&c, seed + 1)),
        (CheckName::Knn, &|| checks::knn(&c, seed + 2)),
    ];
    let mut checks: Vec<Check> =
        kernels.into_iter().filter(|(name, _)| o.wants(*name)).map(|(name, f)| guarded(name, f)).collect();
    let (gradients, throughput) = model_checks(&c, inputs, o);
    checks.extend(gradients);
    if o.wants(CheckName::SelectLess) {
        checks.push(guarded(CheckName::SelectLess, || end_result(&c, inputs, o.quick)));
    }
    DeviceReport {
        device: c.label.clone(),
        facts: Some(facts(entry, &c)),
        checks,
        throughput,
        error: None,
        unchecked: None,
    }
}

/// The CPU backend's row. In builds with the `ndarray` feature, the reference gradients
/// (computed on [`Compute::cpu`]) are checked against Burn's other CPU backend, an independent
/// implementation; otherwise the row says they were not. The kernels' reference is the CPU
/// itself.
fn cpu_row(inputs: &Inputs, o: &DoctorOptions) -> DeviceReport {
    #[cfg(feature = "ndarray")]
    let (checks, unchecked) = (model_checks(&Compute::cpu_other(), inputs, o).0, None);
    #[cfg(not(feature = "ndarray"))]
    let (checks, unchecked) = (
        Vec::new(),
        (o.wants(CheckName::SftGradients) || o.wants(CheckName::DpoGradients)).then(|| {
            "gradients not cross-checked: this build has no second CPU backend (build with `--features ndarray`)"
                .to_string()
        }),
    );
    let throughput = o
        .times_throughput()
        .then(|| {
            catch_unwind(AssertUnwindSafe(|| {
                let c = Compute::cpu();
                let (model, adapter) = checks::model_on(&c, &inputs.model_dir, o.seed)?;
                checks::throughput(&c, &model, &adapter, &inputs.singles)
            }))
            .ok()
        })
        .flatten()
        .and_then(Result::ok);
    DeviceReport { device: Compute::cpu().label, facts: None, checks, throughput, error: None, unchecked }
}

impl DeviceReport {
    fn broken(device: String, error: String) -> DeviceReport {
        DeviceReport { device, facts: None, checks: Vec::new(), throughput: None, error: Some(error), unchecked: None }
    }
}

/// Examines the CPU backend and the chosen adapters.
pub fn run(o: &DoctorOptions) -> Result<DoctorReport> {
    let assets = crate::assets::materialize()?;
    let cpu = Compute::cpu();
    // The reference: the embedded model on the CPU, loaded once.
    let (model, adapter) = checks::model_on(&cpu, &assets.model_dir, o.seed)?;
    let tok = TextTokenizer::from_file(&assets.model_dir.join("tokenizer.json"), model.config.eos_token_id)?;
    let n = if o.quick { 8 } else { 32 };
    let pool = load_records(&assets.pool)?;
    let pairs = load_records(&assets.pool_pairs)?;
    let (singles, _) = tok.examples(&pool.examples[..n.min(pool.len())], 128)?;
    let (pairs, _) = tok.examples(&pairs.examples[..(n / 2).min(pairs.len())], 128)?;
    let reference = |check: CheckName, examples: &[Tokenized], loss: LossKind| match o.wants(check) {
        true => checks::grads(&model, &adapter, examples, loss, &cpu),
        false => Ok(Vec::new()),
    };
    let sft = reference(CheckName::SftGradients, &singles, LossKind::Sft)?;
    let dpo = reference(CheckName::DpoGradients, &pairs, DPO)?;
    drop((model, adapter));
    // Quick: the end-to-end selection scores the first 100 pool lines (a software adapter
    // featurizes 10 to 35 examples a second).
    let head = match o.quick {
        true => {
            let text = std::fs::read_to_string(&assets.pool).map_err(|e| Error::io(&assets.pool, e))?;
            let head: String = text.lines().take(100).map(|l| format!("{l}\n")).collect();
            let file = tempfile::Builder::new()
                .prefix("gradsift-doctor-pool-")
                .suffix(".jsonl")
                .tempfile()
                .map_err(|e| Error::io(std::env::temp_dir(), e))?;
            std::fs::write(file.path(), head).map_err(|e| Error::io(file.path(), e))?;
            Some(file)
        }
        false => None,
    };
    let pool_file = head.as_ref().map_or_else(|| assets.pool.clone(), |f| f.path().to_path_buf());
    let mut inputs = Inputs {
        model_dir: assets.model_dir.clone(),
        pool: pool_file,
        target: assets.target.clone(),
        singles,
        pairs,
        sft,
        dpo,
        less: (Vec::new(), Vec::new()),
    };
    if o.wants(CheckName::SelectLess) {
        inputs.less = less_on(&cpu, &inputs, o.quick, "cpu")?;
    }
    let adapters = device::list_adapters();
    let chosen: Vec<&AdapterEntry> = match &o.adapters {
        Adapters::All => adapters.iter().collect(),
        Adapters::One(spec) => vec![&adapters[device::find_adapter(&adapters, spec)?]],
    };
    let mut devices = vec![cpu_row(&inputs, o)];
    for entry in chosen {
        tracing::info!("doctor: checking {}", entry.describe());
        devices.push(gpu_row(entry, &adapters, &inputs, o));
    }
    let passed = devices.iter().all(DeviceReport::passed);
    Ok(DoctorReport {
        gradsift: env!("CARGO_PKG_VERSION").into(),
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        seed: o.seed,
        quick: o.quick,
        only: o.only.iter().map(|c| c.to_string()).collect(),
        devices,
        passed,
    })
}

/// Writes report.md and report.json into `out`.
pub fn write(report: &DoctorReport, out: &Path) -> Result<()> {
    crate::util::write_atomic(&out.join("report.md"), markdown(report).as_bytes())?;
    let json = serde_json::to_string_pretty(report).expect("json");
    crate::util::write_atomic(&out.join("report.json"), json.as_bytes())
}
