//! The jobs the CLI runs, as library functions: load a model, featurize a data set, warm up,
//! select with a method (one file per method family).

mod baselines;
mod featurizer;
mod in_memory;
mod less;
mod method;
mod prism;
mod scored;
mod spec;
mod tif;
mod tsds;

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::choice::Choice;
use crate::data::{
    load_files, load_records, ChatTemplate, Dataset, FileFormat, RecordKind, TemplateChoice, TextTokenizer,
};
use crate::device::Compute;
use crate::error::{Error, Result};
use crate::features::shard::Shard;
pub use crate::features::FeatureOptions;
use crate::features::{self, embeddings, FeatureFile, Pooling};
use crate::loss::LossKind;
use crate::model::{Backprop, CausalLm, LoraAdapter, WeightsDtype};
use crate::select::{self, Budget};
use crate::train::{self, DpoReference, WarmupOptions};

pub use in_memory::{less_in_memory, InMemorySelection, Progress};
pub use method::{CheckpointUse, Method};
pub use spec::Band;
pub use spec::{
    GradType, MethodOptions, MethodSpec, PrismOptions, SelectSpec, TifOptions, TsdsDensity, TsdsOptions, TsdsSource,
    ValTraining,
};
pub use tsds::tsds_on_matrices;

use featurizer::{Checkpoint, Featurizer, PoolStores};
use scored::{Chosen, Scored};

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
    /// The chat template of chat records.
    pub chat_template: TemplateChoice,
    /// How gradient passes keep what their backward pass needs.
    pub backprop: Backprop,
    /// The type the frozen matrices are kept in on the device.
    pub weights_dtype: WeightsDtype,
}

impl ModelSpec {
    /// `model_dir` with a fresh adapter (LoRA r = 8, α = 32 on the architecture's attention
    /// projections, seed 0) and the model's own chat template.
    pub fn fresh(model_dir: PathBuf) -> Self {
        ModelSpec {
            model_dir,
            adapter_dir: None,
            lora_r: 8,
            lora_alpha: 32.0,
            lora_targets: Vec::new(),
            seed: 0,
            chat_template: Default::default(),
            backprop: Backprop::default(),
            weights_dtype: WeightsDtype::default(),
        }
    }
}

/// A model ready for featurization.
pub struct Loaded {
    pub model: CausalLm,
    pub adapter: LoraAdapter,
    pub tokenizer: TextTokenizer,
    pub adapter_key: serde_json::Value,
}

/// Loads a model's weights and tokenizer onto `compute`, without an adapter, its frozen
/// matrices in the type `dtype` resolves to there. `model` is a directory, or a Hub name
/// (`ORG/NAME[@REVISION]`) found in the local Hugging Face cache; chat records will be
/// rendered with the template `chat_template` names.
pub fn load_base(
    model: &Path,
    chat_template: &TemplateChoice,
    dtype: WeightsDtype,
    compute: &Compute,
) -> Result<(CausalLm, TextTokenizer)> {
    let model_dir = &crate::model::hub::model_dir(model)?;
    let model = CausalLm::load_as(model_dir, &compute.device, dtype)?;
    let tok_path = model_dir.join("tokenizer.json");
    if !tok_path.exists() {
        return Err(Error::format(&tok_path, "missing tokenizer.json"));
    }
    let tokenizer = TextTokenizer::from_file(&tok_path, model.config.eos_token_id)?
        .with_template(ChatTemplate::load(chat_template, model_dir)?)
        .with_position_limit(model.config.position_limit());
    Ok((model, tokenizer))
}

/// Loads model, tokenizer and adapter onto `compute`.
pub fn load(spec: &ModelSpec, compute: &Compute) -> Result<Loaded> {
    let (mut model, tokenizer) = load_base(&spec.model_dir, &spec.chat_template, spec.weights_dtype, compute)?;
    model.backprop = spec.backprop;
    let adapter = match &spec.adapter_dir {
        Some(dir) => LoraAdapter::load(dir, &model.linears)?,
        None => fresh_adapter(spec, &model)?,
    };
    let adapter_key = features::adapter_key(&adapter, spec.seed)?;
    Ok(Loaded { model, adapter, tokenizer, adapter_key })
}

/// The fresh adapter `spec` describes, on `model`.
fn fresh_adapter(spec: &ModelSpec, model: &CausalLm) -> Result<LoraAdapter> {
    let targets =
        if spec.lora_targets.is_empty() { model.config.arch.default_lora_targets() } else { spec.lora_targets.clone() };
    LoraAdapter::fresh(&model.linears, spec.lora_r, spec.lora_alpha, &targets, spec.seed)
}

/// The embedded default model with the fresh adapter of [`ModelSpec::fresh`], straight from
/// the bytes in the binary: the same model, tokenizer and adapter `select` gets with no
/// `--model`, with no file written (the browser page has no file system). Errors name
/// `<embedded>/FILE`.
pub fn load_embedded(compute: &Compute) -> Result<Loaded> {
    let origin = crate::assets::origin;
    let file =
        |name: &str| crate::assets::bytes(name).ok_or_else(|| Error::Internal(format!("no embedded file `{name}`")));
    let config_path = origin("model/config.json");
    let v: serde_json::Value = serde_json::from_slice(file("model/config.json")?)
        .map_err(|e| Error::format(&config_path, format!("invalid JSON: {e}")))?;
    let config = crate::model::ModelConfig::from_value(&v, &config_path)?;
    let weights_path = origin("model/model.safetensors");
    let tensors = crate::model::parse_safetensors(file("model/model.safetensors")?, &weights_path)?;
    let weights = crate::model::Weights::from_tensors(tensors, &weights_path);
    let (model, _) = CausalLm::build(config, &weights, &origin("model"), &compute.device, false)?;
    let tokenizer = TextTokenizer::from_bytes(
        file("model/tokenizer.json")?,
        &origin("model/tokenizer.json"),
        model.config.eos_token_id,
    )?;
    let spec = ModelSpec::fresh(origin("model"));
    let adapter = fresh_adapter(&spec, &model)?;
    let adapter_key = features::adapter_key(&adapter, spec.seed)?;
    Ok(Loaded { model, adapter, tokenizer, adapter_key })
}

/// What `featurize` computes: the gradients of a data file's examples under `loss`, each
/// transformed as `grad_type` says (Adam: with the moments of the warmup checkpoint the adapter
/// was loaded from).
pub struct Gradients<'a> {
    pub data: &'a Path,
    pub loss: LossKind,
    pub grad_type: GradType,
    /// DPO's reference policy; None = the one the adapter's warmup trained against (its
    /// trainer_state.json), else the base model.
    pub dpo_reference: Option<DpoReference>,
}

impl<'a> Gradients<'a> {
    /// The plain gradients (`sgd`), with DPO's reference policy as [`Self::dpo_reference`]
    /// defaults.
    pub fn plain(data: &'a Path, loss: LossKind) -> Self {
        Gradients { data, loss, grad_type: GradType::Sgd, dpo_reference: None }
    }
}

/// DPO's reference policy for a policy adapter saved in `policy` (None: not saved, a fresh one):
/// the one `given`, else the one the policy's warmup trained against (recorded in its
/// trainer_state.json), else the base model. Returns it with how it was chosen.
fn resolve_reference(given: Option<&DpoReference>, policy: Option<&Path>) -> Result<(DpoReference, String)> {
    let recorded = match policy {
        Some(dir) => train::recorded_reference(dir)?.map(|r| (r, dir)),
        None => None,
    };
    Ok(match (given, recorded) {
        (Some(r), Some((rec, dir))) if *r != rec => {
            tracing::warn!(
                "DPO reference: {} as given, where {} was trained against {}",
                r.describe(),
                dir.display(),
                rec.describe()
            );
            (r.clone(), "given".into())
        }
        (Some(r), _) => (r.clone(), "given".into()),
        (None, Some((rec, dir))) => (rec, format!("recorded in {}", dir.join("trainer_state.json").display())),
        (None, None) => (DpoReference::Base, "the default (no trainer_state.json beside the policy)".into()),
    })
}

/// Featurizes `what` into `out` with the loaded adapter: all of it, or one `shard` (whole
/// chunks) into a store of its own, for [`crate::features::merge::merge`] or `select
/// --pool-features`. A store left incomplete (an interrupted run) is resumed from its last
/// whole chunk.
///
/// # Examples
///
/// The embedded demo's target examples, projected to 256 dimensions on the CPU, then read
/// back from the store a block of rows at a time:
///
/// ```
/// use gradsift::features::{FeatureOptions, Store};
/// use gradsift::loss::LossKind;
/// use gradsift::pipeline::{self, Gradients};
/// use gradsift::Compute;
///
/// # fn main() -> gradsift::Result<()> {
/// let compute = Compute::cpu();
/// let loaded = pipeline::load_embedded(&compute)?;
/// let demo = gradsift::assets::materialize()?;
/// # let scratch = tempfile::tempdir().unwrap();
/// # let out = scratch.path().join("target-features");
/// let opts = FeatureOptions { proj_dim: 256, ..Default::default() };
/// let written = pipeline::featurize(&loaded, &Gradients::plain(&demo.target, LossKind::Sft), &opts, &compute, &out, None)?;
/// assert_eq!((written.rows, written.dim), (8, 256));
///
/// let store = Store::new(&out).open()?;
/// let first_two = store.read_rows(0, 2)?; // row-major, 2 × 256 values
/// assert_eq!(first_two.len(), 2 * 256);
/// assert_eq!(store.losses.len(), 8); // each example's loss
/// # Ok(())
/// # }
/// ```
pub fn featurize(
    loaded: &Loaded,
    what: &Gradients<'_>,
    opts: &FeatureOptions,
    compute: &Compute,
    out: &Path,
    shard: Option<Shard>,
) -> Result<FeatureFile> {
    let dataset = load_records(what.data)?;
    let wanted = what.loss.records();
    if dataset.kind() != wanted {
        return Err(Error::Record {
            path: what.data.to_path_buf(),
            line: dataset.examples[0].line,
            message: format!("the {} loss needs {} records", what.loss.name(), wanted.describe()),
        });
    }
    let reference = match (&what.dpo_reference, what.loss) {
        (given, LossKind::Dpo { .. }) => {
            let (r, how) = resolve_reference(given.as_ref(), loaded.adapter.dir.as_deref())?;
            tracing::info!("featurize: DPO reference policy: {} ({how})", r.describe());
            r.load(&loaded.model)?
        }
        (None, _) => None,
        (Some(r), loss) => {
            return Err(Error::ReferenceUnused { reference: r.describe(), what: format!("the {} loss", loss.name()) })
        }
    };
    let checkpoint = Checkpoint::loaded(loaded);
    let transform = featurizer::candidate_transform(&loaded.adapter, loaded.adapter.dir.as_deref(), what.grad_type)?;
    let none = PoolStores::new(&[]);
    Featurizer {
        loaded,
        checkpoint: &checkpoint,
        reference: reference.as_ref(),
        opts,
        compute,
        shard,
        pool_stores: &none,
    }
    .run(&dataset, what.loss, &transform, out)
}

/// Runs warmup training of the loaded adapter on `pool`; returns the checkpoint directories.
pub fn warmup(
    loaded: &Loaded,
    pool: &[PathBuf],
    opts: &WarmupOptions,
    compute: &Compute,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let dataset = load_files(pool)?;
    train::warmup(&loaded.model, loaded.adapter.clone(), &loaded.tokenizer, &dataset, opts, compute, out)
}

/// What `select` produced.
pub struct Selection {
    pub selected: Vec<usize>,
    pub pool_size: usize,
    pub out: PathBuf,
}

/// What every method's code works with: the model, the device, the feature settings and the
/// selection's output directory (feature stores go under it).
struct Context<'a> {
    loaded: &'a Loaded,
    compute: &'a Compute,
    opts: &'a FeatureOptions,
    out: &'a Path,
    /// Stores of the pool made elsewhere (see [`SelectSpec::pool_features`]).
    pool_stores: &'a PoolStores<'a>,
    /// DPO's reference policy (ROSE's targets, the TIF family); None = the base model.
    reference: Option<&'a LoraAdapter>,
}

impl<'a> Context<'a> {
    /// Featurizes at `checkpoint` with the selection's settings.
    fn featurizer(&'a self, checkpoint: &'a Checkpoint) -> Featurizer<'a> {
        Featurizer {
            loaded: self.loaded,
            checkpoint,
            reference: self.reference,
            opts: self.opts,
            compute: self.compute,
            shard: None,
            pool_stores: self.pool_stores,
        }
    }

    /// Hidden-state embeddings of a data set with the loaded adapter.
    fn embed(&self, data: &Dataset, pooling: Pooling) -> Result<Vec<f32>> {
        let (tok, _) = self.loaded.tokenizer.examples(&data.examples, self.opts.max_len)?;
        embeddings(
            &self.loaded.model,
            Some(&self.loaded.adapter),
            &tok,
            pooling,
            self.opts.batch_size,
            &self.compute.device,
        )
    }
}

/// Reads the target (or validation) file of `method`, which must hold `kind` records.
fn load_target(path: &Path, kind: RecordKind, method: Method) -> Result<Dataset> {
    let t = load_records(path)?;
    if t.kind() != kind {
        return Err(Error::RecordKind {
            file: path.display().to_string(),
            user: format!("the {} method's target", method.name()),
            needs: kind.describe(),
            input: "target",
        });
    }
    Ok(t)
}

/// Scores the pool with `spec.method` and writes the selection.
pub fn select(loaded: &Loaded, spec: &SelectSpec<'_>, compute: &Compute) -> Result<Selection> {
    let pool = load_files(spec.pool)?;
    let budget = spec.budget.count(pool.len())?;
    let method = spec.method.method();
    let name = method.name();
    if pool.kind() != method.pool_kind() {
        return Err(Error::RecordKind {
            file: pool.name(),
            user: format!("the {name} method's pool"),
            needs: method.pool_kind().describe(),
            input: "pool",
        });
    }
    let target = match (spec.method.target(), method.target_kind()) {
        (Some(path), Some(kind)) => Some(load_target(path, kind, method)?),
        _ => None,
    };
    let target_ref = || target.as_ref().ok_or(Error::MissingTarget { method: name });
    let stores = PoolStores::new(spec.pool_features);
    // DPO's reference policy, for the methods with a DPO loss: at the policy they work at.
    let dpo_reference = match spec.method.uses_dpo() {
        true => Some(resolve_reference(spec.method.dpo_reference(), spec.method.policy_dir(loaded))?),
        false => None,
    };
    let reference = match &dpo_reference {
        Some((r, _)) => r.load(&loaded.model)?,
        None => None,
    };
    let cx = Context {
        loaded,
        compute,
        opts: spec.opts,
        out: spec.out,
        pool_stores: &stores,
        reference: reference.as_ref(),
    };
    let seed = spec.opts.seed;
    let Scored { scores, columns, chosen, details } = match &spec.method {
        MethodSpec::Less { checkpoints, grad_type, dpo_beta, .. } => {
            less::less_like(&cx, &pool, target_ref()?, checkpoints, *grad_type, *dpo_beta, budget)?
        }
        MethodSpec::Prism { checkpoint, options, .. } => {
            prism::prism_scores(&cx, &pool, target_ref()?, *checkpoint, options, budget)?
        }
        MethodSpec::Tsds { options, checkpoint, grad_type, .. } => {
            tsds::tsds_select(&cx, &pool, target_ref()?, *checkpoint, *grad_type, options, budget)?
        }
        MethodSpec::Random => baselines::random(&pool, seed, budget),
        MethodSpec::Loss { lowest } => baselines::loss(&cx, &pool, *lowest, budget)?,
        MethodSpec::Rds { pooling, .. } => baselines::rds(&cx, &pool, target_ref()?, *pooling, budget)?,
        MethodSpec::Dsir { .. } => baselines::dsir(&pool, target_ref()?, seed, budget),
        MethodSpec::PreferenceBand { band, checkpoint, beta, val, with_if, .. } => {
            let inputs = tif::Inputs {
                validation: target.as_ref(),
                checkpoint: *checkpoint,
                beta: *beta,
                dpo_reference: dpo_reference.as_ref().map_or(&DpoReference::Base, |(r, _)| r),
                val: *val,
                with_if: *with_if,
            };
            tif::tif_family(&cx, &pool, *band, method, &inputs)?
        }
    };
    if !stores.given.is_empty() && !stores.consulted.get() {
        tracing::warn!(
            "--pool-features: {name} computed no gradient features of the pool here; the stores were not used"
        );
    }
    let kept = chosen.len();
    let mut manifest = json!({
        "method": name,
        "pool": {
            "examples": pool.len(),
            "files": pool.spans().iter().map(|s| json!({
                "path": s.path.display().to_string(),
                "format": format!("{:?}", FileFormat::of(&s.path)),
                "indices": [s.rows.start, s.rows.end],
            })).collect::<Vec<_>>(),
        },
        "target": target.as_ref().map(|t| json!({ "path": t.name(), "examples": t.len() })),
        "selected": kept,
        "budget": match spec.budget { Budget::Fraction(f) => json!({"fraction": f}), Budget::Count(c) => json!({"count": c}) },
        "model": loaded.model.dir.display().to_string(),
        "features": { "seed": spec.opts.seed, "proj_dim": spec.opts.proj_dim, "projection": spec.opts.projection_key(), "dtype": spec.opts.dtype, "max_len": spec.opts.max_len },
        "details": details,
        "device": compute.label,
        "gradsift": env!("CARGO_PKG_VERSION"),
    });
    if let Some((r, how)) = &dpo_reference {
        manifest["dpo_reference"] = json!({
            "policy": r,
            "described": r.describe(),
            "chosen": how,
            "files": reference.as_ref().map(|a| features::adapter_key(a, 0)).transpose()?,
        });
    }
    let selected = match chosen {
        Chosen::Top(n) => select::write_selection(spec.out, &pool, &scores, &columns, n, manifest)?,
        Chosen::List(list) => {
            select::write_outputs(spec.out, Some(&pool), &scores, &columns, &list, manifest)?;
            list
        }
    };
    Ok(Selection { selected, pool_size: pool.len(), out: spec.out.to_path_buf() })
}

/// The checkpoint of a method that works at one: the warmup checkpoint given, or the loaded
/// adapter.
fn reference_checkpoint(loaded: &Loaded, dir: Option<&Path>) -> Result<Checkpoint> {
    match dir {
        None => Ok(Checkpoint::loaded(loaded)),
        Some(dir) => Checkpoint::load(loaded, dir),
    }
}
