//! What the command line adds to a library error: the flag that fixes it. The library speaks
//! of targets, checkpoints and stores; only here do those become `--target` and friends.

use gradsift::Error;

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
        _ => return None,
    })
}
