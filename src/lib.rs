//! gradsift picks the training data worth fine-tuning a language model on.
//!
//! Crate map, in pipeline order:
//! - [`suite`]: the generated task suite (`make-data`).
//! - [`data`]: JSONL records and LESS-convention tokenization.
//! - [`model`]: Hugging Face causal LMs (Llama family, Qwen2, GPT-2) and PEFT LoRA adapters.
//! - [`features`]: exact per-example LoRA gradients (one backward per batch), the WGSL random
//!   projection, the resumable feature store and its row blocks (scorers stream the pool).
//! - [`methods`]: the scoring methods (LESS, ROSE, PRISM, the TIF family, TSDS, baselines), the
//!   WGSL scorer and kNN (distances and top-K on the GPU), and TSDS's approximate IVF index.
//! - [`select`]: top-k and the output files; [`train`]: AdamW, LoRA fine-tuning, warmup
//!   checkpoints and training the embedded base model.
//! - [`eval`]: fine-tune on selections and random subsets, measure held-out data;
//!   [`plot`]: the figures; [`demo`]: the classroom run end to end.
//! - [`device`]: wgpu adapters and the CPU fallback; [`gpu`]: our kernels' wgpu plumbing.
//! - [`pipeline`]: the jobs the CLI runs; [`assets`]: the embedded default model and data;
//!   [`bench`]: featurization throughput and streamed scoring.

pub mod assets;
pub mod bench;
pub mod data;
pub mod demo;
pub mod device;
pub mod error;
pub mod eval;
pub mod features;
pub mod gpu;
pub mod methods;
pub mod model;
pub mod pipeline;
pub mod plot;
pub mod select;
pub mod suite;
pub mod train;
pub mod util;

pub use device::{Compute, DeviceChoice};
pub use error::{Error, Result};
