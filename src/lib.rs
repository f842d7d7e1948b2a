//! gradsift picks the training data worth fine-tuning a language model on.
//!
//! Crate map, in pipeline order:
//! - [`data`]: JSONL records and LESS-convention tokenization.
//! - [`model`]: Hugging Face causal LMs (Llama family, Qwen2, GPT-2) and PEFT LoRA adapters.
//! - [`features`]: exact per-example LoRA gradients (one backward per batch), the WGSL random
//!   projection and the resumable feature store.
//! - [`methods`]: scoring methods (LESS).
//! - [`select`]: top-k and the output files; [`train`]: AdamW and warmup checkpoints.
//! - [`device`]: wgpu adapters and the CPU fallback; [`gpu`]: our kernels' wgpu plumbing.
//! - [`pipeline`]: the jobs the CLI runs; [`assets`]: the embedded default model and data;
//!   [`bench`]: featurization throughput.

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
