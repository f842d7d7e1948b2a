//! The library's error type. Every variant names the file (and, where it applies, the line,
//! field or tensor) so that a user can fix bad input without reading our source.

use std::path::PathBuf;

/// Errors raised by gradsift's library code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSONL record is malformed or lacks a field.
    #[error("{path}:{line}: {message}")]
    Record { path: PathBuf, line: usize, message: String },
    /// A file has the wrong content (JSON syntax, safetensors header, config field...).
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// The model's `model_type` is not one we implement.
    #[error("{path}: unsupported model_type `{model_type}` (supported: {supported})")]
    UnknownArchitecture { path: PathBuf, model_type: String, supported: String },
    /// A tensor the architecture needs is not in the checkpoint.
    #[error("{path}: missing tensor `{name}`")]
    MissingTensor { path: PathBuf, name: String },
    /// A tensor exists but its shape does not fit the model.
    #[error("{path}: tensor `{name}` has shape {found:?}, the model needs {expected:?}")]
    Shape { path: PathBuf, name: String, found: Vec<usize>, expected: Vec<usize> },
    /// The tokenizer could not be loaded or failed on a text.
    #[error("{path}: tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    /// No usable compute device, or a GPU operation failed.
    #[error("device: {0}")]
    Device(String),
    /// A method that matches a target set was given none.
    #[error("the {method} method needs a target set")]
    MissingTarget { method: &'static str },
    /// Checkpoints were given to a method that works with the loaded adapter only.
    #[error("the {method} method does not use warmup checkpoints")]
    CheckpointsUnused { method: &'static str },
    /// A gradient type was given to a method whose candidates are not transformed gradients, or
    /// to TSDS over embeddings or given matrices.
    #[error("the {method} method does not use --grad-type ({why})")]
    GradTypeUnused { method: &'static str, why: &'static str },
    /// A DPO reference policy given where no DPO loss is computed.
    #[error("a DPO reference policy ({reference}) was given, but {what} has no reference policy")]
    ReferenceUnused { reference: String, what: String },
    /// Several checkpoints were given to a method that works at one reference checkpoint.
    #[error("the {method} method takes one reference checkpoint")]
    OneCheckpoint { method: &'static str },
    /// A band method saw the same score for every pair: usually an adapter that still equals
    /// the reference model, so every margin is zero.
    #[error("{method}: every pair has the same score ({value}), so no band can be formed; the adapter likely still equals the reference model")]
    NoSpread { method: &'static str, value: f64 },
    /// Test prompts are on the training side of an evaluation: its numbers would not measure
    /// generalisation.
    #[error("eval: test prompts leak into the training side: {0}")]
    Overlap(String),
    /// The selection budget does not fit the pool.
    #[error("{0}")]
    Budget(String),
    /// Fresh LoRA targets that match no module of the model.
    #[error("LoRA targets {targets:?} match no module (modules look like {examples:?})")]
    NoLoraTarget { targets: Vec<String>, examples: Vec<String> },
    /// A feature store exists at this path, made with other inputs or settings.
    #[error("{}: this feature store was made with other arguments ({})", path.display(), differs.join(", "))]
    StoreMismatch { path: PathBuf, differs: Vec<String> },
    /// A wgpu adapter asked for by index or name is not there.
    #[error("{0}")]
    NoSuchAdapter(String),
    /// A file holds the other kind of records than the step reading it needs (instruction or
    /// chat examples against preference pairs). `input` says which of the step's inputs it is
    /// ("pool", "target").
    #[error("{file}: {user} needs {needs} records")]
    RecordKind { file: String, user: String, needs: &'static str, input: &'static str },
    /// Two feature matrices that must share a width do not: they were computed with other
    /// settings (model, LoRA modules, gradient type, projection size).
    #[error("{left} features have width {left_width}, {right} features {right_width}")]
    WidthMismatch { left: &'static str, left_width: usize, right: &'static str, right_width: usize },
    /// A shard given as `I/N`, or by a cluster job's variables, that cannot be used.
    #[error("{0}")]
    Shard(String),
    /// Input too large for a GPU kernel on this adapter (its buffer limits, or a kernel's fixed
    /// capacity).
    #[error("{0}")]
    AdapterLimit(String),
    /// An option has a value that cannot be used. `setting` names the option, so that a front
    /// end can point to its own flag or field for it.
    #[error("{message}")]
    Setting { setting: Setting, message: String },
    /// A step was handed records of another kind than it needs, with no file to name (the
    /// records were tokenized already); [`Error::RecordKind`] names the file where there is one.
    #[error("{user} needs {needs} records")]
    Records { user: String, needs: &'static str },
    /// A model named by Hub id that is not in the local Hugging Face cache: gradsift never
    /// downloads.
    #[error(
        "model `{spec}` is neither a directory nor in the local Hugging Face cache (looked for {looked}); \
         gradsift never downloads: fetch it first (e.g. `huggingface-cli download {name}`) or give its directory"
    )]
    ModelNotFound { spec: String, name: String, looked: String },
    /// A selection names an example the pool does not have: it was made from another pool.
    #[error("selected index {index} is outside {pool} ({len} examples)")]
    OutsidePool { index: usize, pool: String, len: usize },
    /// An environment variable that steers gradsift has a value it cannot use.
    #[error("{var}=`{value}`: {message}")]
    Environment { var: &'static str, value: String, message: String },
    /// Too few inputs for a computation to mean anything (an empty subset, a single candidate).
    #[error("{0}")]
    TooFew(String),
    /// A broken invariant inside gradsift, not a problem with the input: a bug to report.
    #[error("internal error: {0} (a bug in gradsift; please report it)")]
    Internal(String),
}

/// The options an [`Error::Setting`] can name, by their names in the library's option structs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// Examples per batch of a gradient pass or a training step.
    BatchSize,
    /// Examples per chunk of the feature store.
    ChunkSize,
    /// Passes over the data in training.
    Epochs,
    /// TIF's LossDiff: epochs of the validation fine-tune (θ_val).
    ValEpochs,
    /// TIF's LossDiff: batch size of the validation fine-tune.
    ValBatchSize,
    /// The seeds of a comparison or of the demo.
    Seeds,
    /// Fine-tuning steps of an evaluation arm.
    Steps,
    /// `bench --shape`: tokens per generated record.
    SeqLen,
    /// `bench --shape`: how many records.
    Examples,
    /// The projection's output dimension.
    ProjDim,
    /// Nonzeros per column of the sparse projection.
    ProjNnz,
    /// The LoRA modules (their parameter count bounds the projection's input).
    LoraTargets,
    /// How candidate gradients are transformed (SGD, sign, Adam).
    GradType,
    /// The precision frozen weights are kept in on the device.
    WeightsDtype,
    /// The storage-binding limit asked of a GPU.
    GpuMaxBinding,
    /// PRISM's covariance damping.
    Damping,
    /// TSDS's density features.
    TsdsDensity,
    /// The doctor's checks, by name.
    Checks,
    /// The data files of a step.
    Data,
    /// Feature stores adopted for the pool.
    PoolFeatures,
    /// Shard stores to merge.
    Stores,
    /// A test set (instruction records) or test pairs for an evaluation.
    Test,
    /// The loss a step trains or differentiates.
    Loss,
    /// The demo's DPO warmup learning rates.
    DpoWarmupLrs,
    /// `make-data`: the tasks the target and test sets are drawn from.
    TargetTasks,
    /// `make-data`: the pool's size.
    PoolSize,
    /// `make-data`: target examples per task.
    Shots,
    /// `make-data`: test examples per task.
    TestSize,
    /// `make-data`: validation pairs per task kind.
    ValShots,
    /// `make-data`: the target, test and validation examples together, which are held out of
    /// each kind's prompts.
    HeldOut,
    /// `make-data`: the fraction of off-suite chat.
    DistractorRate,
    /// `make-data`: the fraction of wrong or off-request responses.
    LowQualityRate,
    /// `make-data`: the fraction of preference pairs swapped.
    FlipRate,
}

/// Shorthand for results with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// A content error for `path`.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format { path: path.into(), message: message.into() }
    }

    /// A refused value of `setting`.
    pub fn setting(setting: Setting, message: impl Into<String>) -> Self {
        Error::Setting { setting, message: message.into() }
    }
}
