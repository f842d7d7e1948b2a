//! Training: our AdamW and the warmup that produces LESS's checkpoints.

pub mod adamw;
pub mod warmup;

pub use adamw::{AdamW, AdamWConfig};
pub use warmup::{linear_schedule, random_subset, read_state, warmup, CheckpointState, WarmupOptions};
