//! What the command line adds to a library error: the flag that fixes it. The library speaks
//! of targets, checkpoints and stores; only here do those become `--target` and friends.

use gradsift::{Error, Setting};

/// A hint naming the flags that fix `e`, when there is one.
pub fn hint(e: &Error) -> Option<String> {
    Some(match e {
        Error::MissingTarget { .. } => "give the target examples with --target FILE".into(),
        Error::CheckpointsUnused { .. } => "leave out --checkpoints for this method".into(),
        Error::GradTypeUnused { .. } => "leave out --grad-type for this method".into(),
        Error::ReferenceUnused { .. } => "leave out --dpo-reference: only a DPO loss has a reference policy".into(),
        Error::OneCheckpoint { .. } => "pass a single directory with --checkpoints DIR".into(),
        Error::NoSpread { .. } => "run `gradsift warmup --loss dpo` and pass its checkpoint with --checkpoints".into(),
        Error::Budget(_) => "--fraction takes a value in (0, 1]; --count at most the pool size".into(),
        Error::NoLoraTarget { .. } => "choose modules with --lora-targets".into(),
        Error::StoreMismatch { .. } => "choose another --out, or pass --overwrite to replace it".into(),
        Error::Overlap(_) => {
            "draw the test set from prompts the pool does not hold (`gradsift make-data` does), or pass \
             --allow-overlap to report the comparison with the overlap printed"
                .into()
        }
        Error::NoSuchAdapter(_) => "`gradsift devices` lists the adapters --gpu-adapter takes".into(),
        Error::RecordKind { input, needs, .. } => {
            let needs = needs.split(" (").next().unwrap_or(needs);
            format!("give --{input} {needs} records, or choose the method (and --loss) made for the records you have")
        }
        Error::WidthMismatch { .. } => {
            "compute both with the same model, --lora-targets, --grad-type and --proj-dim (featurize or select \
             with one set of flags)"
                .into()
        }
        Error::Shard(_) => {
            "--shard takes I/N with 0 ≤ I < N; in a Kubernetes Indexed Job give --shards N (its completions)".into()
        }
        Error::AdapterLimit(_) => "run this step on the CPU backend with --device cpu".into(),
        Error::Setting { setting, .. } => return flag(*setting).map(|f| format!("change {f}")),
        Error::Records { .. } => "choose the --loss (and method) made for the records you have".into(),
        Error::ModelNotFound { .. } => "--model takes a model directory or a Hub id already in the local cache".into(),
        Error::OutsidePool { .. } => "pass the --pool the selection was made from".into(),
        Error::Environment { var, .. } => format!("unset {var} or give it a value it takes"),
        _ => return None,
    })
}

/// The flag that sets `s`, on the commands that take it; None for options no flag sets (the
/// demo's own settings).
fn flag(s: Setting) -> Option<&'static str> {
    Some(match s {
        Setting::BatchSize => "--batch-size",
        Setting::ChunkSize => "--chunk-size",
        Setting::Epochs => "--epochs",
        Setting::ValEpochs => "--val-epochs",
        Setting::ValBatchSize => "--val-batch-size",
        Setting::Seeds => "--seeds",
        Setting::Steps => "--steps",
        Setting::SeqLen => "--seq-len",
        Setting::Examples => "--examples",
        Setting::ProjDim => "--proj-dim",
        Setting::ProjNnz => "--proj-nnz",
        Setting::LoraTargets => "--lora-targets",
        Setting::GradType => "--grad-type (adam needs --checkpoints from `gradsift warmup`)",
        Setting::WeightsDtype => "--weights-dtype",
        Setting::GpuMaxBinding => "--gpu-max-binding (a GPU's option)",
        Setting::Damping => "--damping",
        Setting::TsdsDensity => "--tsds-density (leave it out here)",
        Setting::Checks => "--check",
        Setting::Data => "--data",
        Setting::PoolFeatures => "--pool-features",
        Setting::Stores => "the stores given to merge",
        Setting::Test => "--test or --test-pairs",
        Setting::Loss => "--loss",
        Setting::TargetTasks => "--target-tasks",
        Setting::PoolSize => "--pool",
        Setting::Shots => "--shots",
        Setting::HeldOut => "--shots, --test or --val-shots (to lower values)",
        Setting::TestSize => "--test",
        Setting::ValShots => "--val-shots",
        Setting::DistractorRate => "--distractor-rate",
        Setting::LowQualityRate => "--low-quality-rate or --distractor-rate",
        Setting::FlipRate => "--flip-rate",
        Setting::DpoWarmupLrs => return None,
    })
}
