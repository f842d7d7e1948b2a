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
pub(crate) use lora_trainer::LoraTrainer;
pub use reference::DpoReference;
pub(crate) use schedule::LrSchedule;
pub use schedule::Schedule;
pub(crate) use warmup::recorded_reference;
pub use warmup::{read_state, warmup, CheckpointState, WarmupOptions};
