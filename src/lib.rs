//! gradsift picks the training data worth fine-tuning a language model on.
//!
//! Crate map, in dependency order: each module uses only those above it (the command line, in
//! the binary's `cli/`, uses the library and nothing uses it).
//! - [`error`], [`util`], [`choice`], [`blocking`], `host`: the error type, atomic writes and
//!   file digests, named options that front ends list and parse, waiting on async reads, CPU
//!   tensors as host vectors for our CPU kernels.
//! - [`data`]: JSONL records, record kinds and LESS-convention tokenization; [`suite`]: the
//!   generated task suite (`make-data`).
//! - [`model`]: Hugging Face causal LMs (typed config per family, memory-mapped weights, shared
//!   attention/MLP/norm blocks, cached positions) and PEFT LoRA adapters; [`gpu`]: our kernels'
//!   wgpu plumbing; [`device`]: adapters and the CPU fallback.
//! - [`loss`]: SFT and DPO losses and their exact per-example LoRA gradients (one backward per
//!   batch); [`train`]: AdamW, LoRA fine-tuning, warmup checkpoints, base-model training.
//! - [`features`]: gradients transformed, projected by the WGSL kernel, and kept in the
//!   resumable feature store, read back a block of rows at a time.
//! - [`methods`]: the scoring methods (LESS, ROSE, PRISM, the TIF family, TSDS, baselines),
//!   the WGSL scorer, nearest-neighbour search (exact CPU/GPU and IVF behind one trait), subtask
//!   grouping; [`select`]: top-k and the output files.
//! - [`eval`]: fine-tune on selections and random subsets, measure held-out data;
//!   [`pipeline`]: the jobs the CLI runs (load, featurize, warm up, select: what each method
//!   needs, in `pipeline::Method`), and LESS held in memory for the browser page; [`plot`]: the
//!   figures; [`demo`]: the classroom run; [`assets`]: the embedded default.
//! - [`mod@bench`] (throughput, streamed scoring) and [`doctor`] (every device checked against the
//!   CPU and Burn's second CPU backend): native only, as that second backend is.
//!
//! # Selecting with the library
//!
//! What `gradsift select --method less` does: load a model with a fresh LoRA adapter, score the
//! pool against the target examples, keep the top 5% and write `selected.jsonl`, `scores.csv`
//! and the feature stores under the output directory. Here on the embedded default model and
//! demo data, on the CPU; give your own files and [`pipeline::ModelSpec`] for yours, and
//! [`device::open`] for a GPU.
//!
//! ```
//! use gradsift::pipeline::{self, FeatureOptions, Method, MethodOptions, MethodSpec, ModelSpec, SelectSpec};
//! use gradsift::select::Budget;
//! use gradsift::Compute;
//!
//! # fn main() -> gradsift::Result<()> {
//! let compute = Compute::cpu();
//! let demo = gradsift::assets::materialize()?;
//! let loaded = pipeline::load(&ModelSpec::fresh(demo.model_dir.clone()), &compute)?;
//! # let scratch = tempfile::tempdir().unwrap();
//! # let out = scratch.path().join("selection");
//! let spec = SelectSpec {
//!     pool: std::slice::from_ref(&demo.pool),
//!     method: MethodSpec::new(Method::Less, Some(&demo.target), &[], &MethodOptions::default())?,
//!     budget: Budget::Fraction(0.05),
//!     opts: &FeatureOptions::default(),
//!     out: &out, // the output directory (here a temporary one)
//!     pool_features: &[],
//! };
//! let selection = pipeline::select(&loaded, &spec, &compute)?;
//! assert_eq!(selection.selected.len(), selection.pool_size / 20);
//! # Ok(())
//! # }
//! ```

pub mod assets;
#[cfg(not(target_family = "wasm"))]
pub mod bench;
pub mod blocking;
pub mod choice;
pub mod data;
pub mod demo;
pub mod device;
#[cfg(not(target_family = "wasm"))]
pub mod doctor;
pub mod error;
pub mod eval;
pub mod features;
pub mod gpu;
mod host;
pub mod loss;
pub mod methods;
pub mod model;
pub mod pipeline;
pub mod plot;
pub mod select;
pub mod suite;
pub mod train;
pub mod util;

pub use device::{Compute, DeviceChoice};
pub use error::{Error, Result, Setting};
