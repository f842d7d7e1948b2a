//! Training: our AdamW, LoRA fine-tuning (the warmup that produces LESS's checkpoints, and the
//! evaluation fine-tunes), and full training of the embedded base model.

pub mod adamw;
pub mod base;
pub mod lora_trainer;
mod reference;
pub mod schedule;
pub mod warmup;

pub use adamw::{AdamW, AdamWConfig};
pub use base::{train_base, write_model, BaseOptions, BaseRecord};
pub use lora_trainer::{LoraTrainer, PassStats};
pub use reference::DpoReference;
pub use schedule::{LrSchedule, Schedule};
pub use warmup::{random_subset, read_state, recorded_reference, warmup, CheckpointState, WarmupOptions};
