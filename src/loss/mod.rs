//! The training objectives on tokenized batches: SFT and DPO losses, their exact per-example
//! LoRA gradients (one backward per batch), sequence log-probs and DPO statistics. Features,
//! training and evaluation all build on this module; it depends on none of them.

mod batch;
#[cfg(not(target_family = "wasm"))]
mod flex_head;
pub mod head;
mod pergrad;

pub use batch::SeqBatch;
pub use pergrad::{dpo_stats, per_example_grads, sft_losses, BatchGrads, DpoStats, LossKind, Objective};
pub(crate) use pergrad::{per_example_grads_async, sequence_logps};
